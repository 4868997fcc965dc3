/**
 * Runs the Elasticsearch/OpenSearch test server (server.ts) as a child process, so that a test can
 * SIGKILL the process under test while the server — and the documents it holds — lives on.
 *
 *   const es = await spawnEsServer({ flavor: 'opensearch' });
 *   await es.control({ op: 'faults', faults: { resetNext: 1, resetAfterApply: true } });
 *   … run auditship against es.url, kill it, run it again …
 *   const stats = await es.stats();
 *   await es.stop();
 */
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import type { ControlCommand, EsServerOptions, EsStats, FaultSettings, FaultState } from './server.js';

export type { ControlCommand, EsServerOptions, EsStats, FaultSettings, FaultState } from './server.js';

export interface SpawnedEsServer {
  url: string;
  pid: number;
  /** The /_test API: faults, reset, stats, refresh. */
  control(cmd: ControlCommand): Promise<unknown>;
  stats(): Promise<EsStats>;
  faults(f: FaultSettings): Promise<FaultState>;
  reset(): Promise<void>;
  /** SIGTERM, then SIGKILL after 3 s; resolves once the process is gone. */
  stop(): Promise<void>;
  /** What the server wrote on stderr so far (for failure messages). */
  stderr(): string;
}

const SERVER = fileURLToPath(new URL('./server.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** A JSON request to the server; resolves with status and parsed body (text when not JSON). */
export function requestJson(url: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    const req = http.request(new URL(path, url), {
      method,
      headers: data ? { 'content-type': 'application/json', 'content-length': data.length } : {},
      agent: false,
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown = text;
        try { parsed = JSON.parse(text); } catch { /* text */ }
        resolve({ status: res.statusCode ?? 0, body: parsed });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(data);
  });
}

export async function spawnEsServer(opts: EsServerOptions & { startTimeoutMs?: number } = {}): Promise<SpawnedEsServer> {
  const { startTimeoutMs = 20_000, ...options } = opts;
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', SERVER, '--port', String(options.port ?? 0), '--options', JSON.stringify(options)], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`es-server did not start within ${startTimeoutMs} ms: ${stderr}`)); }, startTimeoutMs);
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      try {
        resolve((JSON.parse(out.slice(0, nl)) as { url: string }).url);
      } catch {
        reject(new Error(`es-server printed an unexpected first line: ${out.slice(0, nl)}`));
      }
    });
    child.once('exit', (code, signal) => { clearTimeout(timer); reject(new Error(`es-server exited before listening (${code ?? signal}): ${stderr}`)); });
  });

  const control = async (cmd: ControlCommand): Promise<unknown> => {
    const path = cmd.op === 'faults' ? '/_test/faults' : cmd.op === 'stats' ? '/_test/stats' : cmd.op === 'reset' ? '/_test/reset' : '/_test/refresh';
    const r = await requestJson(url, cmd.op === 'stats' ? 'GET' : 'POST', path, cmd.op === 'faults' ? cmd.faults : undefined);
    if (r.status !== 200) throw new Error(`es-server ${cmd.op} failed (${r.status}): ${JSON.stringify(r.body)}`);
    return r.body;
  };

  return {
    url,
    pid: child.pid!,
    control,
    stats: async () => (await control({ op: 'stats' })) as EsStats,
    faults: async (f) => (await control({ op: 'faults', faults: f })) as FaultState,
    reset: async () => { await control({ op: 'reset' }); },
    stderr: () => stderr,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(timer);
    },
  };
}
