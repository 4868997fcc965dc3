import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { unlink } from 'node:fs/promises';
import type { DuckDBConnection } from '@duckdb/node-api';
import type { Batch, FileCheckpoint, Sink, StateReader, StoredFileState, WriteReport } from '../../core/connector.js';
import { ConnectorError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { NUMERIC_COLUMNS, PACKED_COLUMNS, PREVIOUSLY_LOGGED, type PackedColumn, type PgAuditRecord } from '../../parse/index.js';
import type { PgAuditPayload } from '../../sources/pg-logs/payload.js';
import { profile } from '../../core/profile.js';
import { insertDeadLetters, openDatabase, sqlString, timedRun, translateWriteError, type Database, type DeadLetterRow } from './database.js';
import { correlateBatch } from './correlate.js';
import { AUDIT_LOG_COLUMNS, ensureSchema } from './schema.js';

/**
 * The DuckDB sink: stores pgaudit records in `audit_events` (users query the `audit_logs` view) and, as the
 * pipeline's state store, the file
 * checkpoints in `ingest_files` — in one transaction, so a kill at any moment loses and duplicates nothing.
 *
 * Transfer: a batch's packed rows (parse/packed.ts: a CSV dialect) are written to a stage file that DuckDB's
 * CSV reader loads — one call per batch instead of one per value. Records the packed form cannot carry
 * (very long ones, or text holding its quote character) go through DuckDB's appender instead. Identity
 * (server, session_id, session_line_num) is checked by an anti-join limited to the batch's time range, and
 * only for batches that reach back into time already stored; no ART index is needed.
 */
export interface DuckDbSinkOptions {
  path: string;
  server: string;
  /** Keep the raw `message` column (the seed's), besides the parsed fields. */
  storeMessage: boolean;
  memoryLimit?: string;
  threads?: number;
  /** --force: replace events that are already stored instead of skipping them. */
  replace?: boolean;
  /** A database the caller holds open (the follow daemon); the sink uses a connection of its own. */
  database?: Database;
  /** False: keep checkpoints, quarantine and dead letters only — the events live in a search sink. */
  storeEvents?: boolean;
}


/** Type of each packed column as DuckDB's CSV reader parses it. */
export const PACKED_TYPES: Record<PackedColumn, string> = Object.fromEntries(PACKED_COLUMNS.map((c) => [c,
  c === 'client_port' || c === 'process_id' || c === 'leader_pid' ? 'INTEGER' : NUMERIC_COLUMNS.has(c) ? 'BIGINT' : 'VARCHAR'])) as Record<PackedColumn, string>;

/** audit_events columns filled from the packed rows, with the SQL that computes each from column `c`. */
export const FROM_PACKED: [string, string][] = PACKED_COLUMNS.map((c) =>
  c === 'log_time_ms' ? ['log_time', 'make_timestamp(log_time_ms * 1000)::TIMESTAMPTZ']
    : c === 'session_start_ms' ? ['session_start', 'make_timestamp(session_start_ms * 1000)::TIMESTAMPTZ']
      : c === 'message' ? ['raw_message', 'message'] : [c, c]);

/** A relation of the packed rows in one stage file or several (FROM_PACKED's columns). */
export function readPackedSql(file: string | string[]): string {
  const files = typeof file === 'string' ? sqlString(file) : `[${file.map(sqlString).join(', ')}]`;
  const columns = PACKED_COLUMNS.map((c) => `'${c}': '${PACKED_TYPES[c]}'`).join(', ');
  return `SELECT ${FROM_PACKED.map(([name, expr]) => `${expr} AS ${name}`).join(', ')}
    FROM read_csv(${files}, header = false, auto_detect = false, delim = '\x1f', quote = '\x1d', escape = '\x1d',
                  new_line = '\\n', allow_quoted_nulls = false, strict_mode = true, columns = {${columns}})`;
}

export class DuckDbSink implements Sink<PgAuditPayload>, StateReader {
  readonly kind = 'duckdb';
  private db!: Database;
  private conn!: DuckDBConnection;
  private inTransaction = false;
  private logPathIds = new Map<string, number>();
  private legacyMaxMs: number | null = null;
  private markerSessions = new Set<string>();
  /** Latest log_time (epoch ms) stored for this server, committed or in the open transaction. */
  private watermarkMs = -Infinity;
  private stageDir = '';
  private memoryLimit = '';
  private memoryRaised = false;
  private stageSeq = 0;
  /** Unique per sink: several sinks of one process (the daemon) may share the stage directory. */
  private readonly stageTag = `${process.pid}-${randomBytes(4).toString('hex')}`;
  private filesToReplace = new Set<string>();
  private sharedDb = false;

  private constructor(private readonly options: DuckDbSinkOptions, private readonly log: Logger) {}

  static async open(options: DuckDbSinkOptions, log: Logger): Promise<DuckDbSink> {
    const sink = new DuckDbSink(options, log);
    const openOpts: { memoryLimit?: string; threads?: number } = {};
    if (options.memoryLimit) openOpts.memoryLimit = options.memoryLimit;
    if (options.threads) openOpts.threads = options.threads;
    if (options.database) {
      // The daemon's shared database: a connection of our own; the instance stays with its owner.
      const shared = options.database;
      const conn = await shared.instance.connect();
      await conn.run("SET TimeZone = 'UTC'");
      sink.db = { path: shared.path, instance: shared.instance, connection: conn, close: () => conn.closeSync() };
      sink.sharedDb = true;
    } else {
      sink.db = await openDatabase(options.path, openOpts);
    }
    sink.conn = sink.db.connection;
    try {
      const info = await ensureSchema(sink.conn, options.server);
      if (info.upgradedFromSeed) {
        log.info('Upgraded a pg_audit_to_duckdb database in place.', { db: sink.db.path, rows: info.legacyRows, server: options.server });
      }
      sink.stageDir = `${sink.db.path}.stage`;
      mkdirSync(sink.stageDir, { recursive: true });
      if (!sink.sharedDb) {
        for (const f of readdirSync(sink.stageDir)) rmSync(join(sink.stageDir, f), { recursive: true, force: true }); // left by a killed run
      }
      // DuckDB spills there too, so nothing is left next to the database after a run.
      await sink.conn.run(`SET temp_directory = ${sqlString(join(sink.stageDir, 'spill'))}`);
      sink.memoryLimit = String((await sink.conn.runAndReadAll(`SELECT current_setting('memory_limit')`)).getRows()[0]![0]);
      await sink.loadWatermark();
      const meta = await sink.conn.runAndReadAll(`SELECT value FROM auditship_meta WHERE key = 'legacy_max_log_time'`);
      const legacy = meta.getRows()[0]?.[0];
      if (legacy != null) sink.legacyMaxMs = Number(legacy);
    } catch (err) {
      sink.db.close();
      throw err instanceof ConnectorError ? err : new ConnectorError('duckdb', 'schema_failed', `cannot prepare ${sink.db.path}: ${(err as Error).message}`, false, { cause: err });
    }
    return sink;
  }

  private async loadWatermark(): Promise<void> {
    const r = await this.conn.runAndReadAll(`SELECT epoch_ms(max(log_time)) FROM audit_events WHERE server = ${sqlString(this.options.server)}`);
    const v = r.getRows()[0]?.[0];
    this.watermarkMs = v === null || v === undefined ? -Infinity : Number(v);
  }

  get path(): string {
    return this.db.path;
  }

  get connection(): DuckDBConnection {
    return this.conn;
  }

  /** The DuckDB instance (other state, such as an archive's, opens connections of its own on it). */
  get instance(): Database['instance'] {
    return this.db.instance;
  }

  /** Runs `fn` inside this sink's open transaction (begun if need be): it commits with the next checkpoint. */
  async withinTransaction<T>(fn: () => Promise<T>): Promise<T> {
    await this.begin();
    try {
      return await fn();
    } catch (err) {
      throw translateWriteError(err, this.path);
    }
  }

  async fileCheckpoints(server: string): Promise<Map<string, StoredFileState>> {
    const r = await this.conn.runAndReadAll(
      `SELECT fingerprint, server, path, byte_offset, tail_hash, size, mtime, complete, columns, format FROM ingest_files WHERE server = ${sqlString(server)}`);
    const out = new Map<string, StoredFileState>();
    for (const row of r.getRows()) {
      out.set(String(row[0]), {
        fingerprint: String(row[0]), server: String(row[1]), path: String(row[2]), offset: Number(row[3]),
        tailHash: String(row[4] ?? ''), size: Number(row[5]), mtimeMs: Number(row[6]), complete: Boolean(row[7]),
        columns: Number(row[8] ?? 0), format: String(row[9]) as 'csvlog' | 'jsonlog',
      });
    }
    return out;
  }

  /** Events stored from each file read to its end (by fingerprint). */
  async completeFileEvents(server: string): Promise<Map<string, number>> {
    const r = await this.conn.runAndReadAll(`SELECT fingerprint, events FROM ingest_files WHERE server = ${sqlString(server)} AND complete`);
    return new Map(r.getRows().map((row) => [String(row[0]), Number(row[1])]));
  }

  /** --force: the file is read again from its start; its checkpoint and quarantine go with its first batch. */
  markForReplace(fingerprint: string): void {
    this.filesToReplace.add(fingerprint);
  }

  private async begin(): Promise<void> {
    if (!this.inTransaction) {
      await this.conn.run('BEGIN TRANSACTION');
      this.inTransaction = true;
    }
  }

  private async logPathId(dir: string): Promise<number> {
    let id = this.logPathIds.get(dir);
    if (id !== undefined) return id;
    await this.conn.run(`INSERT INTO log_paths (path) SELECT ${sqlString(dir)} WHERE NOT EXISTS (SELECT 1 FROM log_paths WHERE path = ${sqlString(dir)})`);
    const r = await this.conn.runAndReadAll(`SELECT id FROM log_paths WHERE path = ${sqlString(dir)}`);
    id = Number(r.getRows()[0]![0]);
    this.logPathIds.set(dir, id);
    return id;
  }

  async write(batch: Batch<PgAuditPayload>): Promise<WriteReport> {
    const report: WriteReport = { stored: 0, duplicates: 0, quarantined: 0 };
    try {
      await this.begin();
      const cp = batch.checkpoint;
      const logPathId = await this.logPathId(dirname(cp.path));
      const { packed, packedCount, objects, markerSessions } = batch.payload;
      if (this.filesToReplace.delete(cp.fingerprint)) {
        // --force: the file is read again from its start; forget its old checkpoint and quarantine.
        await this.conn.run(`DELETE FROM quarantine WHERE server = ${sqlString(cp.server)} AND fingerprint = ${sqlString(cp.fingerprint)}`);
        await this.conn.run(`DELETE FROM ingest_files WHERE server = ${sqlString(cp.server)} AND fingerprint = ${sqlString(cp.fingerprint)}`);
      }
      if (this.options.storeEvents === false) {
        // The events went to the sinks before this one (which acknowledged them before the commit).
        report.stored = packedCount + objects.length;
      } else {
        for (const s of markerSessions) this.markerSessions.add(s);
      }
      if (this.options.storeEvents !== false && packedCount + objects.length > 0) {
        const source = await this.stage(packed, objects);
        try {
          report.stored = await this.insertNew(source, batch, logPathId, cp);
        } finally {
          await source.cleanup();
        }
        report.duplicates = packedCount + objects.length - report.stored;
      }
      const sessionRecords = batch.payload.sessionRecords ?? [];
      if (this.options.storeEvents !== false && (sessionRecords.length > 0 || report.stored > 0)) {
        await correlateBatch(this.conn, this.options.server, sessionRecords, report.stored > 0 ? { minMs: batch.minTimeMs, maxMs: batch.maxTimeMs } : null);
      }
      if (batch.quarantine.length > 0) {
        const stmt = await this.conn.prepare(
          `INSERT OR IGNORE INTO quarantine VALUES ($1, $2, $3, $4, $5, $6, $7, now())`);
        const tq = performance.now();
        for (const q of batch.quarantine) {
          stmt.bindVarchar(1, q.server);
          stmt.bindVarchar(2, basename(q.source));
          stmt.bindVarchar(3, q.source);
          stmt.bindVarchar(4, q.sourceId);
          stmt.bindBigInt(5, BigInt(q.offset));
          stmt.bindVarchar(6, q.reason);
          stmt.bindVarchar(7, q.raw);
          await stmt.run();
        }
        profile.add('quarantine', 'duckdb', performance.now() - tq);
        report.quarantined = batch.quarantine.length;
      }
    } catch (err) {
      throw translateWriteError(err, this.db.path);
    }
    return report;
  }

  /** Puts the batch where the INSERT can read it; returns the SQL of a relation with FROM_PACKED's columns. */
  private async stage(packed: Buffer, slow: PgAuditRecord[]): Promise<{ sql: string; cleanup: () => Promise<void> }> {
    const parts: string[] = [];
    let file: string | null = null;
    if (packed.length > 0) {
      file = join(this.stageDir, `batch-${this.stageTag}-${this.stageSeq++}.csv`);
      // Synchronous on purpose: the INSERT then starts at once, before the parser takes the thread again.
      profile.timeSync('stage: write packed rows', 'js', () => writeFileSync(file!, packed));
      parts.push(readPackedSql(file));
    }
    if (slow.length > 0) {
      // Very long records (a 50 MB statement) need DuckDB memory beyond the usual limit for a moment.
      const bytes = slow.reduce((n, r) => n + r.message.length + (r.statement?.length ?? 0) + (r.parameter?.length ?? 0), 0) * 3;
      if (bytes > 4 << 20) {
        await this.conn.run(`SET memory_limit = '${Math.ceil((bytes * 4 + (256 << 20)) / (1 << 20))}MB'`);
        this.memoryRaised = true;
      }
      const types = new Map(AUDIT_LOG_COLUMNS);
      await this.conn.run(`CREATE TEMP TABLE IF NOT EXISTS stage_slow (${FROM_PACKED.map(([n]) => `${n} ${types.get(n)}`).join(', ')})`);
      await this.conn.run('DELETE FROM stage_slow');
      const appender = await this.conn.createAppender('stage_slow', 'main', 'temp');
      for (const r of slow) {
        const row: (string | number | null)[] = [
          r.log_time_ms, r.user_name, r.database_name, r.client_addr, r.client_port, r.message,
          r.application_name, r.session_id, r.session_line_num, r.process_id, r.virtual_transaction_id, r.transaction_id,
          r.command_tag, r.session_start_ms, r.error_severity, r.backend_type, r.leader_pid, r.query_id, r.audit_type,
          r.statement_id, r.substatement_id, r.class, r.command, r.object_type, r.object_name, r.statement, r.parameter, r.rows,
        ];
        for (let i = 0; i < row.length; i++) {
          const value = row[i];
          const name = FROM_PACKED[i]![0];
          if (value === null || value === undefined) appender.appendNull();
          else if (name === 'log_time' || name === 'session_start') appender.appendVarchar(new Date(value as number).toISOString());
          else appender.appendVarchar(String(value));
        }
        appender.endRow();
      }
      appender.closeSync();
      parts.push('SELECT * FROM temp.stage_slow');
    }
    return {
      sql: parts.join(' UNION ALL '),
      cleanup: async () => { if (file) await unlink(file).catch(() => {}); },
    };
  }

  /** Back to the configured memory limit once the long records are stored. */
  private async restoreMemoryLimit(): Promise<void> {
    if (!this.memoryRaised) return;
    this.memoryRaised = false;
    await this.conn.run(`SET memory_limit = ${sqlString(this.memoryLimit)}`);
  }

  /** Inserts the staged rows whose identity is not stored yet; returns how many were inserted. */
  private async insertNew(source: { sql: string }, batch: Batch<PgAuditPayload>, logPathId: number, cp: FileCheckpoint): Promise<number> {
    const server = sqlString(this.options.server);
    const min = batch.minTimeMs, max = batch.maxTimeMs;
    // A row later than every stored row of this server cannot be stored already; only a batch reaching back
    // into stored time needs the identity check. Rows already stored can only lie in the batch's time range —
    // unless the database holds rows of the seed script, whose times may be off by the server's UTC offset.
    const wholeTable = this.legacyMaxMs !== null && min <= this.legacyMaxMs + 2 * 86400000;
    const check = this.options.replace || wholeTable || min <= this.watermarkMs;
    const range = wholeTable ? '' : ` AND a.log_time BETWEEN make_timestamp(${min * 1000})::TIMESTAMPTZ AND make_timestamp(${max * 1000})::TIMESTAMPTZ`;
    const cols = ['server', 'log_path_id', 'file_name', ...FROM_PACKED.map(([n]) => n), 'statement_filled'];
    const star = this.options.storeMessage ? 's.*' : 's.* REPLACE (NULL::VARCHAR AS raw_message)';
    const select = `SELECT ${server}, ${logPathId}, ${sqlString(basename(cp.path))}, ${star}, false FROM (${source.sql}) AS s`;
    if (this.options.replace) {
      await timedRun(this.conn, 'replace: delete stored rows', `DELETE FROM audit_events AS a WHERE a.server = ${server}${range}
        AND (a.session_id, a.session_line_num) IN (SELECT session_id, session_line_num FROM (${source.sql}))`);
    }
    const sql = check
      ? `INSERT INTO audit_events (${cols.join(', ')})
         ${select}
         WHERE NOT EXISTS (SELECT 1 FROM audit_events AS a WHERE a.server = ${server}${range}
                           AND a.session_id = s.session_id AND a.session_line_num = s.session_line_num)`
      : `INSERT INTO audit_events (${cols.join(', ')}) ${select}`;
    const r = await timedRun(this.conn, check ? 'insert audit_events (with identity check)' : 'insert audit_events', sql);
    if (max > this.watermarkMs) this.watermarkMs = max;
    return Number(r.rowsChanged);
  }

  async commit(checkpoints: FileCheckpoint[]): Promise<void> {
    try {
      await this.begin();
      if (this.markerSessions.size > 0) {
        const sessions = [...this.markerSessions];
        await profile.time('markers: fill <previously logged>', 'duckdb', () => this.fillPreviouslyLogged(sessions));
        await profile.time('markers: track pending', 'duckdb', () => this.trackPendingMarkers(sessions));
        this.markerSessions.clear();
      }
      for (const cp of checkpoints) await profile.time('checkpoint: save file state', 'duckdb', () => this.saveCheckpoint(cp));
      await timedRun(this.conn, 'commit', 'COMMIT');
      this.inTransaction = false;
      await this.restoreMemoryLimit();
    } catch (err) {
      await this.rollback();
      throw translateWriteError(err, this.db.path);
    }
  }

  /**
   * With `pgaudit.log_statement_once`, entries after the first of a statement carry
   * `<previously logged>`: copy statement and parameter from the first entry of the same session,
   * statement and substatement, wherever it was ingested.
   */
  private async fillPreviouslyLogged(sessions: string[]): Promise<void> {
    const server = sqlString(this.options.server);
    const sessionFilter = ` AND session_id IN (${sessions.map(sqlString).join(', ')})`;
    await this.conn.run(`
      UPDATE audit_events AS a SET statement = p.statement, parameter = p.parameter, statement_filled = true
      FROM (
        SELECT server, session_id, statement_id, substatement_id,
               arg_min(statement, session_line_num) AS statement, arg_min(parameter, session_line_num) AS parameter
        FROM audit_events
        WHERE server = ${server}${sessionFilter} AND statement IS DISTINCT FROM '${PREVIOUSLY_LOGGED}'
          AND (session_id, statement_id, substatement_id) IN (
            SELECT session_id, statement_id, substatement_id FROM audit_events
            WHERE server = ${server}${sessionFilter} AND statement = '${PREVIOUSLY_LOGGED}')
        GROUP BY ALL
      ) AS p
      WHERE a.server = p.server AND a.session_id = p.session_id AND a.statement_id = p.statement_id
        AND a.substatement_id = p.substatement_id AND a.statement = '${PREVIOUSLY_LOGGED}'`);
  }

  /** Records which of these sessions still hold `<previously logged>` rows without their first entry. */
  private async trackPendingMarkers(sessions: string[]): Promise<void> {
    const server = sqlString(this.options.server);
    const list = sessions.map(sqlString).join(', ');
    await this.conn.run(`DELETE FROM pending_markers WHERE server = ${server} AND session_id IN (${list})`);
    await this.conn.run(`INSERT INTO pending_markers SELECT DISTINCT server, session_id FROM audit_events
      WHERE server = ${server} AND session_id IN (${list}) AND statement = '${PREVIOUSLY_LOGGED}'`);
  }

  /**
   * Resolves `<previously logged>` rows whose first entry arrived later (another file, a later run). Only
   * the sessions listed in `pending_markers` are looked at, so a run costs nothing here when none are.
   */
  async sweepPreviouslyLogged(): Promise<void> {
    const r = await this.conn.runAndReadAll(`SELECT session_id FROM pending_markers WHERE server = ${sqlString(this.options.server)}`);
    const sessions = r.getRows().map((row) => String(row[0]));
    if (sessions.length === 0) return;
    try {
      await this.begin();
      for (let i = 0; i < sessions.length; i += 1000) {
        const chunk = sessions.slice(i, i + 1000);
        await profile.time('markers: sweep', 'duckdb', () => this.fillPreviouslyLogged(chunk));
        await profile.time('markers: sweep', 'duckdb', () => this.trackPendingMarkers(chunk));
      }
      await this.conn.run('COMMIT');
      this.inTransaction = false;
    } catch (err) {
      await this.rollback();
      throw translateWriteError(err, this.db.path);
    }
  }

  private async saveCheckpoint(cp: FileCheckpoint): Promise<void> {
    const fp = sqlString(cp.fingerprint);
    const server = sqlString(cp.server);
    const lastEvent = cp.lastEventMs === null ? 'NULL' : `make_timestamp(${cp.lastEventMs * 1000})::TIMESTAMPTZ`;
    await this.conn.run(`
      INSERT INTO ingest_files VALUES (${server}, ${fp}, ${sqlString(cp.path)}, ${sqlString(basename(cp.path))}, '${cp.format}',
        '${cp.compression}', ${cp.columns}, ${cp.offset}, ${sqlString(cp.tailHash)}, ${cp.size}, ${cp.mtimeMs}, ${cp.bytesDelta},
        ${cp.eventsDelta}, ${cp.quarantinedDelta}, ${lastEvent}, ${cp.complete}, now(), now())
      ON CONFLICT (server, fingerprint) DO UPDATE SET
        path = excluded.path, file_name = excluded.file_name, format = excluded.format, compression = excluded.compression,
        columns = excluded.columns, byte_offset = excluded.byte_offset, tail_hash = excluded.tail_hash, size = excluded.size,
        mtime = excluded.mtime, bytes_ingested = ingest_files.bytes_ingested + excluded.bytes_ingested,
        events = ingest_files.events + excluded.events, quarantined = ingest_files.quarantined + excluded.quarantined,
        last_event_time = greatest(ingest_files.last_event_time, excluded.last_event_time), complete = excluded.complete,
        updated_at = now()`);
    const logPathId = await this.logPathId(dirname(cp.path));
    await this.conn.run(`INSERT OR REPLACE INTO log_summary VALUES (${logPathId}, ${sqlString(basename(cp.path))}, ${cp.mtimeMs / 1000}, ${cp.size})`);
  }

  /**
   * Documents a search sink refused for good (a mapping conflict, 400), stored in the open transaction:
   * they are committed with the checkpoint that moves past them, and never twice.
   */
  async addDeadLetters(sink: string, letters: DeadLetterRow[]): Promise<void> {
    if (!letters.length) return;
    await this.begin();
    try {
      await insertDeadLetters(this.conn, this.options.server, sink, letters);
    } catch (err) {
      throw translateWriteError(err, this.path);
    }
  }

  async rollback(): Promise<void> {
    if (!this.inTransaction) return;
    this.inTransaction = false;
    this.markerSessions.clear();
    await this.conn.run('ROLLBACK').catch(() => {});
    await this.loadWatermark().catch(() => {});
    await this.restoreMemoryLimit().catch(() => {});
  }

  async close(): Promise<void> {
    await this.rollback();
    profile.timeSync('close (checkpoint into the database file)', 'duckdb', () => this.db.close());
    if (!this.sharedDb) rmSync(this.stageDir, { recursive: true, force: true });
  }
}
