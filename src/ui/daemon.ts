import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ConfigError, ConnectorError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { readDaemonStatus } from '../jobs/daemon-status.js';
import { AuditQueries, duckdbRunner } from '../query/index.js';
import { buildReport } from '../report/index.js';
import { openDatabase, type Database } from '../sinks/duckdb/database.js';
import { remoteQueries, type RemoteQueries } from './remote.js';
import { startUiServer, UiServerError, type UiAuth, type UiServer } from './server.js';

/**
 * The UI served by the `run --follow` daemon, which holds the DuckDB file (DuckDB lets one process open
 * it): always on a unix socket next to the database, mode 0600, which `auditship ui` and `auditship report`
 * reach when they find the file locked; and on TCP too when `run --follow --ui HOST:PORT` asks. Its
 * queries run on a connection of their own, so they read committed data while the pipelines write.
 */
export interface DaemonUi {
  socket: string;
  url?: string;
  close(): Promise<void>;
}

/** `<db>.ui.sock`, or a name under the temp directory when that path is too long for a unix socket. */
export function uiSocketPath(db: string): string {
  const path = `${resolve(db)}.ui.sock`;
  if (Buffer.byteLength(path) <= 100) return path;
  return join(tmpdir(), `auditship-${createHash('sha256').update(resolve(db)).digest('hex').slice(0, 16)}.ui.sock`);
}

export async function serveDaemonUi(db: Database, opts: { log: Logger; listen?: { host: string; port: number }; auth?: UiAuth }): Promise<DaemonUi> {
  const conn = await db.instance.connect();
  await conn.run("SET TimeZone = 'UTC'");
  const runner = duckdbRunner(conn);
  const queries = new AuditQueries(runner);
  const report = (o: { since: number; until: number; server?: string[] }) => buildReport(runner, o);
  const servers: UiServer[] = [];
  const socket = uiSocketPath(db.path);
  try {
    servers.push(await startUiServer({ queries, report, socketPath: socket, log: opts.log, title: db.path }));
    let url: string | undefined;
    if (opts.listen) {
      const tcp = await startUiServer({ queries, host: opts.listen.host, port: opts.listen.port, log: opts.log, title: db.path, ...(opts.auth ? { auth: opts.auth } : {}) });
      servers.push(tcp);
      url = tcp.url;
    }
    return {
      socket, ...(url ? { url } : {}),
      close: async () => {
        for (const s of servers) await s.close();
        conn.closeSync();
      },
    };
  } catch (err) {
    for (const s of servers) await s.close().catch(() => {});
    conn.closeSync();
    if (err instanceof UiServerError) {
      if (err.code === 'unsafe_listen') throw new ConfigError([`--ui: ${err.message}`], { cause: err });
      throw new ConnectorError('ui', err.code, err.message, false, { cause: err });
    }
    throw err;
  }
}

/**
 * The UI socket of the daemon holding `dbPath`, when the database is locked by a live `run --follow` that
 * serves one; else null.
 */
export function daemonUiSocket(dbPath: string): { socket: string; pid: number } | null {
  const st = readDaemonStatus(dbPath);
  return st?.ui?.socket ? { socket: st.ui.socket, pid: st.pid } : null;
}

/**
 * The store opened read-only — or, when a `run --follow` daemon holds the file (DuckDB lets one process
 * open it) and serves its UI, that daemon's queries over the UI socket. Used by `ui` and `report`.
 */
export async function openForReading(dbPath: string): Promise<{ db: Database } | { remote: RemoteQueries; pid: number }> {
  try {
    return { db: await openDatabase(dbPath, { readOnly: true, memoryLimit: '1GB', threads: 2 }) };
  } catch (err) {
    const daemon = err instanceof ConnectorError && err.code === 'db_locked' ? daemonUiSocket(dbPath) : null;
    if (!daemon) throw err;
    return { remote: remoteQueries(daemon.socket), pid: daemon.pid };
  }
}
