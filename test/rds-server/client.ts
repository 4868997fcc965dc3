/**
 * Runs the RDS test server (server.ts) as a child process, so that a test can SIGKILL the process
 * under test while the server — and the log files it holds — lives on.
 *
 *   const rds = await spawnRdsServer({ instances: ['db1'], shuffleListing: true });
 *   await rds.putFile('db1', 'error/postgresql.log.2024-05-01-10', lines);
 *   await rds.faults({ kind: 'throttle', action: 'DownloadDBLogFilePortion', count: 2 });
 *   … run auditship against rds.url, kill it, append, run it again …
 *   const stats = await rds.stats();
 *   await rds.stop();
 */
import { spawnServerProcess } from '../helpers/server-process.js';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import type { ControlCommand, FaultRule, FaultState, RdsConfigUpdate, RdsFileInfo, RdsServerOptions, RdsStats } from './server.js';

export type {
  ActiveFault,
  ControlCommand,
  FaultAction,
  FaultKind,
  FaultRule,
  FaultState,
  IamAction,
  RdsConfigUpdate,
  RdsCredential,
  RdsFileInfo,
  RdsFileInit,
  RdsInstanceInit,
  RdsRequestRecord,
  RdsServerOptions,
  RdsStats,
} from './server.js';
export { TEST_CREDENTIALS, TRUNCATION_NOTICE } from './server.js';

export interface SpawnedRdsServer {
  url: string;
  pid: number;
  /** The /_test API: any {@link ControlCommand}. */
  control(cmd: ControlCommand): Promise<unknown>;
  stats(): Promise<RdsStats>;
  /** Adds fault rules (they stack); returns every active rule. */
  faults(f: FaultRule | FaultRule[]): Promise<FaultState>;
  clearFaults(): Promise<void>;
  /** Changes deny / shuffleListing / credentials at run time. */
  configure(c: RdsConfigUpdate): Promise<void>;
  /** Back to the start-up instances and files; clears faults and counters. */
  reset(): Promise<void>;
  createInstance(id: string): Promise<void>;
  /** Creates or replaces a file (content sent raw, so large and binary files are cheap). */
  putFile(instance: string, name: string, content: string | Buffer, opts?: { lastWritten?: number; reportedSizeDelta?: number }): Promise<RdsFileInfo>;
  /** Appends to a file and bumps its LastWritten (to `lastWritten` when given). */
  appendFile(instance: string, name: string, content: string | Buffer, opts?: { lastWritten?: number }): Promise<RdsFileInfo>;
  /** Removes a file, as retention does. */
  deleteFile(instance: string, name: string): Promise<void>;
  listFiles(instance: string): Promise<RdsFileInfo[]>;
  /** The file's current bytes, read through the control API (no auth, no faults). */
  readFile(instance: string, name: string): Promise<Buffer>;
  /** SIGTERM, then SIGKILL after 3 s; resolves once the process is gone. */
  stop(): Promise<void>;
  /** What the server wrote on stderr so far (for failure messages). */
  stderr(): string;
}

const SERVER = fileURLToPath(new URL('./server.ts', import.meta.url));

/** One request to the server; resolves with status and body bytes. */
export function requestRaw(
  url: string,
  method: string,
  path: string,
  body?: Buffer,
  contentType = 'application/json',
): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      new URL(path, url),
      {
        method,
        headers: body ? { 'content-type': contentType, 'content-length': body.length } : {},
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

export async function spawnRdsServer(opts: RdsServerOptions & { startTimeoutMs?: number } = {}): Promise<SpawnedRdsServer> {
  const { startTimeoutMs = 20_000, ...options } = opts;
  const server = await spawnServerProcess<{ url: string }>('rds-server', SERVER, ['--port', String(options.port ?? 0), '--options', JSON.stringify(options)], {
    startTimeoutMs,
  });
  const { url } = server.info;

  const call = async (method: string, path: string, body?: Buffer, contentType?: string): Promise<Buffer> => {
    const r = await requestRaw(url, method, path, body, contentType);
    if (r.status !== 200) throw new Error(`rds-server ${method} ${path} failed (${r.status}): ${r.body.toString('utf8')}`);
    return r.body;
  };
  const control = async (cmd: ControlCommand): Promise<unknown> => {
    const { op, ...rest } = cmd;
    const text = op === 'stats' ? await call('GET', '/_test/stats') : await call('POST', `/_test/${op}`, Buffer.from(JSON.stringify(rest)));
    return JSON.parse(text.toString('utf8')) as unknown;
  };
  const filePath = (instance: string, name: string, query: string) => `/_test/files/${encodeURIComponent(instance)}/${encodeURIComponent(name)}${query}`;
  const qs = (o: Record<string, number | undefined>) => {
    const p = Object.entries(o)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}=${v}`);
    return p.length ? `?${p.join('&')}` : '';
  };
  const bytes = (c: string | Buffer) => (typeof c === 'string' ? Buffer.from(c, 'utf8') : c);

  return {
    url,
    pid: server.pid,
    control,
    stats: async () => (await control({ op: 'stats' })) as RdsStats,
    faults: async (f) => (await control({ op: 'faults', add: Array.isArray(f) ? f : [f] })) as FaultState,
    clearFaults: async () => {
      await control({ op: 'faults', clear: true });
    },
    configure: async (c) => {
      await control({ op: 'configure', ...c });
    },
    reset: async () => {
      await control({ op: 'reset' });
    },
    createInstance: async (id) => {
      await control({ op: 'createInstance', id });
    },
    putFile: async (instance, name, content, o = {}) =>
      JSON.parse(
        (
          await call(
            'PUT',
            filePath(instance, name, qs({ lastWritten: o.lastWritten, reportedSizeDelta: o.reportedSizeDelta })),
            bytes(content),
            'application/octet-stream',
          )
        ).toString('utf8'),
      ) as RdsFileInfo,
    appendFile: async (instance, name, content, o = {}) =>
      JSON.parse(
        (
          await call(
            'POST',
            filePath(instance, name, o.lastWritten !== undefined ? `?lastWritten=${o.lastWritten}&append` : '?append'),
            bytes(content),
            'application/octet-stream',
          )
        ).toString('utf8'),
      ) as RdsFileInfo,
    deleteFile: async (instance, name) => {
      await control({ op: 'deleteFile', instance, name });
    },
    listFiles: async (instance) => (await control({ op: 'listFiles', instance })) as RdsFileInfo[],
    readFile: async (instance, name) => call('GET', filePath(instance, name, '')),
    stderr: server.stderr,
    stop: server.stop,
  };
}
