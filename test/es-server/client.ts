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
import { spawnServerProcess } from '../helpers/server-process.js';
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

/** A JSON request to the server; resolves with status and parsed body (text when not JSON). */
export function requestJson(url: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    const req = http.request(
      new URL(path, url),
      {
        method,
        headers: data ? { 'content-type': 'application/json', 'content-length': data.length } : {},
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            /* text */
          }
          resolve({ status: res.statusCode ?? 0, body: parsed });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

export async function spawnEsServer(opts: EsServerOptions & { startTimeoutMs?: number } = {}): Promise<SpawnedEsServer> {
  const { startTimeoutMs = 20_000, ...options } = opts;
  const server = await spawnServerProcess<{ url: string }>('es-server', SERVER, ['--port', String(options.port ?? 0), '--options', JSON.stringify(options)], {
    startTimeoutMs,
  });
  const { url } = server.info;

  const control = async (cmd: ControlCommand): Promise<unknown> => {
    const path = cmd.op === 'faults' ? '/_test/faults' : cmd.op === 'stats' ? '/_test/stats' : cmd.op === 'reset' ? '/_test/reset' : '/_test/refresh';
    const r = await requestJson(url, cmd.op === 'stats' ? 'GET' : 'POST', path, cmd.op === 'faults' ? cmd.faults : undefined);
    if (r.status !== 200) throw new Error(`es-server ${cmd.op} failed (${r.status}): ${JSON.stringify(r.body)}`);
    return r.body;
  };

  return {
    url,
    pid: server.pid,
    control,
    stats: async () => (await control({ op: 'stats' })) as EsStats,
    faults: async (f) => (await control({ op: 'faults', faults: f })) as FaultState,
    reset: async () => {
      await control({ op: 'reset' });
    },
    stderr: server.stderr,
    stop: server.stop,
  };
}
