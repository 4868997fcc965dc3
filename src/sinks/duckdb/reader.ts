/**
 * Reading a store that may be written meanwhile — by `ingest` from cron, `run`, or `run --follow`. Each
 * statement runs on the file opened read-only when no process writes it; the file is let go of as soon as
 * no statement needs it (after `lingerMs`, at once when a writer waits for it — see lock.ts). While a process
 * writes the file, statements go to that process's read service (read-service.ts), which answers from
 * committed data. So `ui`, `status`, `query` and `report` neither block a writer nor get refused by one; a
 * statement waits at most `waitMs` for the file to become readable one way or the other.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConnectorError } from '../../core/errors.js';
import { openDatabase, type Database } from './database.js';
import { describeHolder, lockHolders, writerWaiting } from './lock.js';
import { remoteSql, runReadOnly, ServiceUnavailable, type SqlOptions, type SqlResult } from './read-service.js';

export { SqlError, type SqlOptions, type SqlResult } from './read-service.js';

export type SqlParams = readonly (string | number | null)[];

export interface StoreReader {
  /** The database file (absolute). */
  path: string;
  /** Runs one read-only statement (SELECT, EXPLAIN); SqlError when it is refused or fails. */
  sql(sql: string, params?: SqlParams, options?: SqlOptions): Promise<SqlResult>;
  /** The rows as objects (column name → DuckDB's JSON form of the value). */
  all(sql: string, params?: SqlParams): Promise<Record<string, unknown>[]>;
  /** Where the last statement ran: on the file, or through the process writing it. */
  readonly lastVia: 'file' | 'writer' | null;
  close(): Promise<void>;
}

export interface StoreReaderOptions {
  /** Keep the file open this long after the last statement, unless a writer waits (default 1000 ms). */
  lingerMs?: number;
  /** Give up after this long without a way to read the file (default 30 s). */
  waitMs?: number;
  memoryLimit?: string;
  threads?: number;
}

export function objectsOf(r: SqlResult): Record<string, unknown>[] {
  return r.rows.map((row) => Object.fromEntries(r.columns.map((c, i) => [c, row[i]])));
}

/** A reader of the store at `path`; db_missing when there is no such file. */
export function openStoreReader(path: string, options: StoreReaderOptions = {}): StoreReader {
  const abs = resolve(path);
  if (!existsSync(abs)) throw new ConnectorError('duckdb', 'db_missing', `${abs} does not exist; run \`auditship ingest\` first or pass --db`, false);
  const lingerMs = options.lingerMs ?? 1000;
  const waitMs = options.waitMs ?? 30_000;
  let local: Database | null = null;
  let opening: Promise<Database> | null = null;
  let users = 0;
  let idleSince = 0;
  let idleTimer: NodeJS.Timeout | null = null;
  let lastVia: 'file' | 'writer' | null = null;
  let lastLock: ConnectorError | null = null;

  const letGo = async () => {
    if (idleTimer) {
      clearInterval(idleTimer);
      idleTimer = null;
    }
    const db = local;
    local = null;
    if (db) await db.close();
  };
  const release = () => {
    users--;
    if (users > 0) return;
    idleSince = Date.now();
    if (idleTimer) return;
    idleTimer = setInterval(
      () => {
        if (users > 0) return;
        if (Date.now() - idleSince >= lingerMs || writerWaiting(abs)) void letGo();
      },
      Math.min(50, Math.max(lingerMs, 1)),
    );
    idleTimer.unref();
    if (writerWaiting(abs) || lingerMs <= 0) void letGo();
  };

  /** The file opened read-only, or null when a process writes it (or is about to). */
  const acquire = async (): Promise<Database | null> => {
    if (writerWaiting(abs)) return null;
    if (!local) {
      opening ??= openDatabase(abs, { readOnly: true, memoryLimit: options.memoryLimit ?? '1GB', threads: options.threads ?? 2 }).finally(() => {
        opening = null;
      });
      try {
        local = await opening;
      } catch (err) {
        if (err instanceof ConnectorError && err.code === 'db_locked') {
          lastLock = err;
          return null;
        }
        throw err;
      }
    }
    users++;
    return local;
  };

  const sql = async (text: string, params: SqlParams = [], sqlOptions: SqlOptions = {}): Promise<SqlResult> => {
    const started = Date.now();
    for (;;) {
      const db = await acquire();
      if (db) {
        try {
          const conn = await db.instance.connect();
          try {
            await conn.run("SET TimeZone = 'UTC'");
            const r = await runReadOnly(conn, text, params, sqlOptions);
            lastVia = 'file';
            return r;
          } finally {
            conn.closeSync();
          }
        } finally {
          release();
        }
      }
      try {
        const r = await remoteSql(abs, text, params, sqlOptions);
        lastVia = 'writer';
        return r;
      } catch (err) {
        if (!(err instanceof ServiceUnavailable)) throw err;
      }
      if (Date.now() - started >= waitMs) {
        const writer = lockHolders(abs)?.find((h) => h.kind === 'write');
        throw new ConnectorError(
          'duckdb',
          'db_locked',
          `${abs} is held by ${writer ? `another process (${describeHolder(writer.pid)})` : 'another process'}, which does not answer reads (a program other than auditship, or an older auditship); try again when it is done`,
          true,
          { cause: lastLock },
        );
      }
      await sleep(25);
    }
  };

  return {
    path: abs,
    sql,
    all: async (text, params) => objectsOf(await sql(text, params)),
    get lastVia() {
      return lastVia;
    },
    close: async () => {
      while (users > 0) await sleep(10);
      await letGo();
    },
  };
}
