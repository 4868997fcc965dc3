import { existsSync, linkSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { processAlive } from '../../core/pid.js';
import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DuckDBInstance, type DuckDBConnection } from '../../duckdb/duckdb.js';
import { clearWriterWaiting, describeHolder, lockHolders, markWriterWaiting } from './lock.js';
import { readServiceListening, serveReads, type ReadService } from './read-service.js';
import { ConnectorError, describeFileError, storageFailure } from '../../core/errors.js';
import { sqlString } from '../../duckdb/sql.js';
import { profile } from '../../core/profile.js';

/**
 * Opening an auditship DuckDB file. DuckDB lets one process write the file, or several read it. A writer
 * waits (up to lockWaitMs) while readers hold it — `ui`, `status`, `query` and `report` hold it only for a
 * request — and, once in, answers their queries itself over its read socket (read-service.ts); a second
 * writer is refused at once with one line naming the process that writes.
 */
export interface OpenOptions {
  readOnly?: boolean;
  /** DuckDB memory_limit, e.g. '256MB'. */
  memoryLimit?: string;
  threads?: number;
  /** A writer: how long to wait for readers to let go of the file (default 30 s). */
  lockWaitMs?: number;
  /** A writer: answer other processes' read-only queries over `<db>.read.sock` (default true). */
  serveReads?: boolean;
}

export interface Database {
  path: string;
  instance: DuckDBInstance;
  connection: DuckDBConnection;
  /** Stops the read service (after the query it is running), then closes the file (checkpointing it). */
  close(): Promise<void>;
}

export const DEFAULT_LOCK_WAIT_MS = 30_000;

/** Whether a DuckDB open failed because another process holds the file; with the PID DuckDB names. */
export function lockConflict(err: unknown): number | null {
  const m = /Conflicting lock is held in .*\(PID (\d+)\)/.exec((err as Error)?.message ?? '');
  return m ? Number(m[1]) : null;
}

/** The file is held: by a writer (`waitedMs` absent: refused at once), or by readers that did not let go in time. */
export function lockedError(abs: string, pid: number, cause: unknown, waitedMs?: number): ConnectorError {
  const who = describeHolder(pid);
  const text =
    waitedMs === undefined
      ? `${abs} is being written by another process (${who}); wait for it to finish, or stop it — overlapping runs are refused`
      : `${abs} is held by another process (${who}) and was not let go of in ${Math.round(waitedMs / 1000)} s; stop it, or open the file read-only there`;
  return new ConnectorError('duckdb', 'db_locked', text, true, { cause });
}

async function createInstance(abs: string, config: Record<string, string>, options: OpenOptions): Promise<DuckDBInstance> {
  const started = Date.now();
  const waitMs = options.lockWaitMs ?? DEFAULT_LOCK_WAIT_MS;
  let waiting = false;
  try {
    for (;;) {
      try {
        return await DuckDBInstance.create(abs, config);
      } catch (err) {
        const pid = lockConflict(err);
        if (pid === null) throw err;
        // Readers (shared locks) let go after their request: wait for them; a writer is refused at once. (No
        // holder left: the lock was just released — try again. No /proc/locks: a writer serves reads.)
        if (options.readOnly) throw lockedError(abs, pid, err);
        const holders = lockHolders(abs);
        const writer = holders ? holders.find((h) => h.kind === 'write') : await readServiceListening(abs);
        if (writer) throw lockedError(abs, typeof writer === 'object' ? writer.pid : pid, err);
        if (Date.now() - started >= waitMs) throw lockedError(abs, pid, err, Date.now() - started);
        if (!waiting) {
          markWriterWaiting(abs);
          waiting = true;
        }
        await sleep(25);
      }
    }
  } finally {
    if (waiting) clearWriterWaiting(abs);
  }
}

/**
 * A new database file appears whole or not at all: DuckDB writes its headers to a file of another name, which
 * is then linked into place (link fails if the name exists: two processes creating it at once both go on with
 * the one that won). A kill while DuckDB writes the headers of the file it opens would leave a file that no
 * run can open again (seen once in the SIGKILL tests); a kill here leaves only the other name, removed by the
 * next run.
 */
async function createWhole(abs: string, config: Record<string, string>): Promise<void> {
  const dir = dirname(abs);
  const prefix = `${basename(abs)}.creating-`;
  for (const f of readdirSync(dir)) {
    // Left by a run killed while creating (its pid is in the name): gone if that process is.
    const pid = f.startsWith(prefix) ? Number(f.slice(prefix.length).split('-')[0]) : NaN;
    if (Number.isInteger(pid) && !processAlive(pid)) rmSync(join(dir, f), { force: true });
  }
  const tmp = join(dir, `${prefix}${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    const instance = await DuckDBInstance.create(tmp, config);
    instance.closeSync();
    try {
      linkSync(tmp, abs);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  } finally {
    rmSync(tmp, { force: true });
    rmSync(`${tmp}.wal`, { force: true });
  }
}

export async function openDatabase(path: string, options: OpenOptions = {}): Promise<Database> {
  const abs = resolve(path);
  if (!options.readOnly) {
    try {
      await mkdir(dirname(abs), { recursive: true });
    } catch (err) {
      throw new ConnectorError(
        'duckdb',
        'db_unwritable',
        describeFileError(err, dirname(abs), 'creating the database directory') ?? `cannot create ${dirname(abs)}`,
        false,
        { cause: err },
      );
    }
  }
  // One thread: on a 2-core machine parsing runs on the other core, and a second DuckDB thread only adds
  // contention and memory for this single-stream insert load. Low allocator flush thresholds hand freed
  // memory back to the OS, keeping RSS close to memory_limit.
  const config: Record<string, string> = {
    threads: String(options.threads ?? 1),
    memory_limit: options.memoryLimit ?? '96MB',
    allocator_flush_threshold: '8MB',
    allocator_bulk_deallocation_flush_threshold: '8MB',
  };
  if (options.readOnly) config['access_mode'] = 'READ_ONLY';
  let instance: DuckDBInstance;
  try {
    if (!options.readOnly && !existsSync(abs)) await createWhole(abs, config);
    instance = await createInstance(abs, config, options);
  } catch (err) {
    if (err instanceof ConnectorError) throw err;
    const msg = (err as Error).message ?? String(err);
    if (/No such file|does not exist/i.test(msg) && options.readOnly) {
      throw new ConnectorError('duckdb', 'db_missing', `${abs} does not exist; run \`auditship ingest\` first or pass --db`, false, { cause: err });
    }
    if (/No space left/i.test(msg)) {
      throw new ConnectorError('duckdb', 'disk_full', `no space left on the device holding ${abs}; free space or move the database`, false, { cause: err });
    }
    if (/Permission denied/i.test(msg)) {
      throw new ConnectorError('duckdb', 'db_unwritable', `permission denied on ${abs}; run as a user that can write it`, false, { cause: err });
    }
    if (/not a valid DuckDB database|Invalid Input Error.*database file/i.test(msg)) {
      throw new ConnectorError('duckdb', 'db_invalid', `${abs} is not a DuckDB database file (or was written by an incompatible DuckDB version)`, false, {
        cause: err,
      });
    }
    throw new ConnectorError('duckdb', 'db_open_failed', `cannot open ${abs}: ${msg.split('\n')[0]}`, false, { cause: err });
  }
  let connection: DuckDBConnection;
  let service: ReadService | null = null;
  try {
    connection = await instance.connect();
    // Times are stored and shown in UTC whatever the machine's zone; ICU is statically linked.
    await connection.run("LOAD icu; SET TimeZone = 'UTC'");
    if (!options.readOnly && options.serveReads !== false) service = await serveReads({ path: abs, instance });
  } catch (err) {
    instance.closeSync();
    throw new ConnectorError('duckdb', 'db_open_failed', `cannot open ${abs}: ${(err as Error).message.split('\n')[0]}`, false, { cause: err });
  }
  let closed = false;
  return {
    path: abs,
    instance,
    connection,
    async close() {
      if (closed) return;
      closed = true;
      if (service) await service.close();
      connection.closeSync();
      instance.closeSync();
    },
  };
}

const schemaWork = new WeakMap<DuckDBInstance, Promise<unknown>>();

/**
 * Runs a sink's schema work (CREATE/ALTER of its tables) one sink at a time per database. The daemon's
 * pipelines share one instance and open their sinks together: two that create the same table in the same
 * moment fail with DuckDB's "Catalog write-write conflict" (seen in CI with the ledger's tables).
 */
export async function oneSchemaAtATime<T>(instance: DuckDBInstance, work: () => Promise<T>): Promise<T> {
  const before = schemaWork.get(instance) ?? Promise.resolve();
  const mine = before.then(work, work);
  schemaWork.set(
    instance,
    mine.catch(() => undefined),
  );
  return mine;
}

/** Rewrites a DuckDB error about the disk into one sentence; other errors pass through. */
export function translateWriteError(err: unknown, path: string): unknown {
  const msg = (err as Error)?.message ?? '';
  if (storageFailure(err) === 'no_space' || (/could not write/i.test(msg) && /write/i.test(msg))) {
    return new ConnectorError(
      'duckdb',
      'disk_full',
      `no space left on the device holding ${path}; free space or move the database — nothing of the failed batch was committed`,
      false,
      { cause: err },
    );
  }
  if (err instanceof ConnectorError) return err;
  return new ConnectorError('duckdb', 'write_failed', `DuckDB refused a write to ${path} (nothing of it was committed): ${msg.split('\n')[0]}`, false, {
    cause: err,
  });
}

/** Connections whose statements DuckDB profiles (--profile), with the file it writes each profile to. */
const profiled = new WeakMap<DuckDBConnection, string>();

/**
 * With the ingest profile on, DuckDB times each statement of this connection itself: the time a statement
 * takes is then DuckDB's own, not the time until the event loop (busy parsing the next batch) notices it ended.
 */
export async function profileStatements(conn: DuckDBConnection, dir: string): Promise<void> {
  if (!profile.enabled) return;
  const file = join(dir, `profile-${process.pid}-${Math.random().toString(36).slice(2)}.json`);
  await conn.run(`SET enable_profiling = 'json'`);
  await conn.run(`SET profiling_output = ${sqlString(file)}`);
  profiled.set(conn, file);
}

/** Removes the connection's last statement profile (before a statement, so that a stale one is never read). */
function clearLatency(conn: DuckDBConnection): void {
  const file = profiled.get(conn);
  if (file) rmSync(file, { force: true });
}

/** DuckDB's own time of the connection's last statement (ms), if it wrote a profile (COMMIT writes none). */
function statementLatency(conn: DuckDBConnection): number | null {
  const file = profiled.get(conn);
  if (!file) return null;
  try {
    const latency = (JSON.parse(readFileSync(file, 'utf8')) as { latency?: unknown }).latency;
    return typeof latency === 'number' ? latency * 1000 : null;
  } catch {
    return null;
  }
}

/** Runs one statement, timed as `step` in the ingest profile (core/profile.ts). */
export async function timedRun(conn: DuckDBConnection, step: string, sql: string): ReturnType<DuckDBConnection['run']> {
  if (!profile.enabled) return conn.run(sql);
  clearLatency(conn);
  const t0 = performance.now();
  const r = await conn.run(sql);
  profile.add(step, 'duckdb', statementLatency(conn) ?? performance.now() - t0);
  return r;
}

/** Runs one query and reads its rows, timed as `step` in the ingest profile. */
export async function timedRead(conn: DuckDBConnection, step: string, sql: string): ReturnType<DuckDBConnection['runAndReadAll']> {
  if (!profile.enabled) return conn.runAndReadAll(sql);
  clearLatency(conn);
  const t0 = performance.now();
  const r = await conn.runAndReadAll(sql);
  profile.add(step, 'duckdb', statementLatency(conn) ?? performance.now() - t0);
  return r;
}

/** Created by each sink when it opens (a table created inside two sinks' transactions at once conflicts). */
export const DEAD_LETTERS_DDL = `CREATE TABLE IF NOT EXISTS es_dead_letters (
    server VARCHAR, sink VARCHAR, index_name VARCHAR, doc_id VARCHAR, status INTEGER, reason VARCHAR, document VARCHAR, dead_at TIMESTAMPTZ)`;

/** A document a search sink refused for good. */
export interface DeadLetterRow {
  index: string;
  id: string;
  status: number;
  reason: string;
  source: string;
}

/**
 * Stores documents a search sink refused for good (a mapping conflict, a 400) in `es_dead_letters`, in the
 * caller's open transaction: they are committed with the checkpoint that moves past them, never twice.
 */
export async function insertDeadLetters(conn: DuckDBConnection, server: string, sink: string, letters: DeadLetterRow[]): Promise<void> {
  await conn.run(DEAD_LETTERS_DDL);
  const stmt = await conn.prepare(`INSERT INTO es_dead_letters VALUES ($1, $2, $3, $4, $5, $6, $7, now())`);
  for (const d of letters) {
    stmt.bindVarchar(1, server);
    stmt.bindVarchar(2, sink);
    stmt.bindVarchar(3, d.index);
    stmt.bindVarchar(4, d.id);
    stmt.bindInteger(5, d.status);
    stmt.bindVarchar(6, d.reason);
    stmt.bindVarchar(7, d.source);
    await stmt.run();
  }
}
