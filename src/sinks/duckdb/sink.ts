import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { unlink } from 'node:fs/promises';
import type { DuckDBConnection } from '@duckdb/node-api';
import {
  DAMAGE_REASON_PREFIX,
  type Batch,
  type FileCheckpoint,
  type Sink,
  type StateReader,
  type StoredFileState,
  type WriteReport,
} from '../../core/connector.js';
import { ConnectorError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { EVENT_ROW_COLUMNS, PREVIOUSLY_LOGGED, type EventContext, type EventKind, type PgAuditRecord, type StatementState } from '../../parse/index.js';
import type { PgAuditPayload } from '../../model/pg-audit-payload.js';
import { profile } from '../../core/profile.js';
import {
  DEAD_LETTERS_DDL,
  insertDeadLetters,
  oneSchemaAtATime,
  openDatabase,
  profileStatements,
  timedRun,
  translateWriteError,
  type Database,
  type DeadLetterRow,
} from './database.js';
import { msToTimestamptz, sqlString } from '../../duckdb/sql.js';
import { loadSessionStates, loadStoredSessions, PendingCorrelation } from './correlation.js';
import { type StoredSession } from '../../model/sessions.js';
import { ensureSchema, SCHEMA_VERSION } from './schema.js';
import { FROM_PACKED, PACKED_TYPES, readPackedSql } from '../../duckdb/packed-sql.js';
import { CONTEXT_STAGE, KIND_STAGE, stageRows } from '../../duckdb/stage.js';
import { LedgerWriter, type KnownRows } from '../../ledger/ledger.js';
import type { Anchorer } from '../../ledger/anchor.js';
import { packedRowsDigest } from '../../ledger/packed-digest.js';
import { pgauditStream, type Stream } from '../../ledger/streams.js';
import { BlockBuilder } from '../../text-index/index.js';
import { buildMissingIndex, indexRowsOf, storeBlocks, TEXT_INDEX_DDL } from './text-index.js';

/**
 * The DuckDB sink: stores pgaudit events in the star of schema.ts (`event_rows`, `event_contexts`,
 * `event_kinds`; users query the `audit_logs` view) and, as the pipeline's state store, the file checkpoints
 * in `ingest_files` and the sessions' correlation state — in one transaction, so a kill at any moment loses
 * and duplicates nothing.
 *
 * Transfer: a batch's packed rows (parse/packed.ts: a CSV dialect) are written to a stage file that DuckDB's
 * CSV reader loads — one call per batch instead of one per value. Records the packed form cannot carry
 * (very long ones, or text holding its quote character) go through DuckDB's appender instead. The batch's
 * new contexts and kinds are inserted before its rows.
 *
 * Identity (server, session_id, session_line_num): the checkpoint committed with the rows already gives
 * exactly once, so rows are checked against stored ones only where they could be stored already: a file
 * read again from its start (--force, or rewritten), a database of the seed script, and the rows of a batch
 * at or before the latest time stored when its file began (the first rows of each file, which interleave
 * with the end of the one before). No index is needed for it.
 *
 * Kept as one file (about 720 lines): the insert paths, the identity checks below the watermark and the
 * transaction that commits events with their checkpoints share one connection's state and one commit protocol.
 */
export interface DuckDbSinkOptions {
  path: string;
  server: string;
  /**
   * The pipeline whose state this sink keeps: checkpoints (`ingest_files`) and correlation state are its own, so
   * that two pipelines of one server in one store each read every file for their sinks. Events, sessions and the
   * other correlation tables are the server's, shared (stored once by identity).
   */
  pipeline: string;
  /** Keep the raw `message` column (the seed's), besides the parsed fields. */
  storeMessage: boolean;
  memoryLimit?: string;
  threads?: number;
  /** --force: replace events that are already stored instead of skipping them. */
  replace?: boolean;
  /** A database the caller holds open (the follow daemon); the sink uses a connection of its own. */
  database?: Database;
  /** False: keep checkpoints, correlation, quarantine and dead letters only — the events live in a search or archive sink. */
  storeEvents?: boolean;
  /** Append a ledger entry with each transaction that stores or removes events (src/ledger). */
  ledger?: boolean;
  /** Writes the ledger's heads outside the store after commits (ledger_anchor). */
  anchorer?: Anchorer;
}

/** Ids of contexts and kinds kept in memory as known to be stored, at most (then the set starts over). */
const MAX_KNOWN_IDS = 500_000;

export class DuckDbSink implements Sink<PgAuditPayload>, StateReader {
  readonly kind = 'duckdb';
  private db!: Database;
  private conn!: DuckDBConnection;
  private inTransaction = false;
  private logPathIds = new Map<string, number>();
  private legacyMaxMs: number | null = null;
  private markerSessions = new Set<string>();
  /** Latest log_time (epoch ms) stored for this server: committed, or in the open transaction. */
  private watermarkMs = -Infinity;
  /** The watermark when the current file's first batch came (its own rows do not count). */
  private fileWatermarkMs = -Infinity;
  private currentFile = '';
  private stageDir = '';
  private memoryLimit = '';
  private memoryRaised = false;
  private stageSeq = 0;
  /** Unique per sink: several sinks of one process (the daemon) may share the stage directory. */
  private readonly stageTag = `${process.pid}-${randomBytes(4).toString('hex')}`;
  private filesToReplace = new Set<string>();
  private filesToCheck = new Set<string>();
  private damageToForget = new Set<string>();
  private sharedDb = false;
  /** Contexts and kinds stored, committed or in the open transaction (so each is inserted once). */
  private knownContexts = new Set<number>();
  private knownKinds = new Set<number>();
  private readonly correlation = new PendingCorrelation((name) => this.stageFile(name));
  /** Runs in the open transaction just before each commit of events and checkpoints (alert rules: src/alerts). */
  beforeCommit: ((conn: DuckDBConnection) => Promise<void>) | null = null;

  private constructor(
    private readonly options: DuckDbSinkOptions,
    private readonly log: Logger,
  ) {}

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
      sink.db = { path: shared.path, instance: shared.instance, connection: conn, close: async () => conn.closeSync() };
      sink.sharedDb = true;
    } else {
      sink.db = await openDatabase(options.path, openOpts);
    }
    sink.conn = sink.db.connection;
    if (options.ledger) sink.ledger = new LedgerWriter(sink.conn);
    sink.stream = pgauditStream(options.server);
    try {
      const started = Date.now();
      const info = await oneSchemaAtATime(sink.db.instance, async () => {
        const schema = await ensureSchema(sink.conn, options.server);
        await sink.conn.run(DEAD_LETTERS_DDL);
        await sink.conn.run(TEXT_INDEX_DDL);
        await buildMissingIndex(sink.conn, log);
        return schema;
      });
      if (info.upgradedFromSeed) {
        log.info('Upgraded a pg_audit_to_duckdb database in place.', { db: sink.db.path, rows: info.legacyRows, server: options.server });
      } else if (info.upgradedFrom > 0) {
        log.info(`Upgraded the store to schema version ${SCHEMA_VERSION} in place.`, {
          db: sink.db.path,
          from: info.upgradedFrom,
          rows: info.upgradedRows,
          ms: Date.now() - started,
        });
      }
      await sink.takeOverUnkeyedState();
      sink.stageDir = `${sink.db.path}.stage`;
      mkdirSync(sink.stageDir, { recursive: true });
      if (!sink.sharedDb) {
        for (const f of readdirSync(sink.stageDir)) rmSync(join(sink.stageDir, f), { recursive: true, force: true }); // left by a killed run
      }
      // DuckDB spills there too, so nothing is left next to the database after a run. It refuses to set its
      // temporary directory again, even to the same one, once it spilled there: a sink of a shared database
      // (the daemon's: another pipeline, or this one opened again) finds it set.
      const spill = join(sink.stageDir, 'spill');
      const tempDir = (await sink.conn.runAndReadAll(`SELECT current_setting('temp_directory')`)).getRows()[0]?.[0];
      if (tempDir !== spill) await sink.conn.run(`SET temp_directory = ${sqlString(spill)}`);
      await profileStatements(sink.conn, sink.stageDir);
      sink.memoryLimit = String((await sink.conn.runAndReadAll(`SELECT current_setting('memory_limit')`)).getRows()[0]![0]);
      await sink.loadWatermark();
      const meta = await sink.conn.runAndReadAll(`SELECT value FROM auditship_meta WHERE key = 'legacy_max_log_time'`);
      const legacy = meta.getRows()[0]?.[0];
      if (legacy != null) sink.legacyMaxMs = Number(legacy);
    } catch (err) {
      await sink.db.close();
      throw err instanceof ConnectorError
        ? err
        : new ConnectorError('duckdb', 'schema_failed', `cannot prepare ${sink.db.path}: ${(err as Error).message}`, false, { cause: err });
    }
    return sink;
  }

  /**
   * Checkpoints and correlation state of a store upgraded from version 3 carry no pipeline (''): the first
   * pipeline of their server that opens the store takes them over, so it goes on where the store was — nothing
   * read again. That is the pipeline that wrote them unless a store of several pipelines of one server was
   * upgraded (they shared the checkpoints then); another pipeline reads the files from their start, and its
   * DuckDB rows are checked against the stored ones by identity (insertNew), so nothing is stored twice.
   */
  private async takeOverUnkeyedState(): Promise<void> {
    const server = sqlString(this.options.server);
    const pipeline = sqlString(this.options.pipeline);
    const r = await this.conn.runAndReadAll(`SELECT (SELECT count(*) FROM ingest_files WHERE pipeline = '' AND server = ${server}),
      (SELECT count(*) FROM correlation_sessions WHERE pipeline = '' AND server = ${server}),
      (SELECT count(*) FROM ingest_files WHERE pipeline = ${pipeline} AND server = ${server})`);
    const [files, sessions, own] = r.getRows()[0]!.map(Number) as [number, number, number];
    if (files + sessions === 0 || own > 0) return;
    await this.conn.run('BEGIN TRANSACTION');
    try {
      await this.conn.run(`UPDATE ingest_files SET pipeline = ${pipeline} WHERE pipeline = '' AND server = ${server}`);
      await this.conn.run(`UPDATE correlation_sessions SET pipeline = ${pipeline} WHERE pipeline = '' AND server = ${server}`);
      await this.conn.run('COMMIT');
    } catch (err) {
      await this.conn.run('ROLLBACK').catch(() => {});
      throw err;
    }
    this.log.info('This pipeline took over the checkpoints the store had before they were kept per pipeline.', {
      pipeline: this.options.pipeline,
      server: this.options.server,
      files,
    });
  }

  /**
   * The latest event time of this server, from the file checkpoints (committed with the events) of every
   * pipeline: rows of this server stored by any of them are at or before it.
   */
  private async loadWatermark(): Promise<void> {
    const r = await this.conn.runAndReadAll(`SELECT epoch_ms(max(last_event_time)) FROM ingest_files WHERE server = ${sqlString(this.options.server)}`);
    const v = r.getRows()[0]?.[0];
    this.watermarkMs = v === null || v === undefined ? -Infinity : Number(v);
    if (this.legacyMaxMs !== null) this.watermarkMs = Math.max(this.watermarkMs, this.legacyMaxMs);
    this.currentFile = '';
  }

  /**
   * A new pass of a sink kept open (the follow daemon): it starts from what is committed now, as a sink opened
   * for the pass would — another pipeline of this server may have stored rows since (the watermark) — with no
   * file marked by an earlier pass.
   */
  async startPass(): Promise<void> {
    await this.rollback();
    this.filesToReplace.clear();
    this.filesToCheck.clear();
    this.damageToForget.clear();
    this.logPathIds.clear();
    await this.loadWatermark();
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

  /** This pipeline's checkpoints of the server's files. */
  async fileCheckpoints(server: string): Promise<Map<string, StoredFileState>> {
    const r = await this.conn.runAndReadAll(
      `SELECT fingerprint, server, path, byte_offset, tail_hash, size, mtime, complete, columns, format FROM ingest_files
       WHERE pipeline = ${sqlString(this.options.pipeline)} AND server = ${sqlString(server)}`,
    );
    const out = new Map<string, StoredFileState>();
    for (const row of r.getRows()) {
      out.set(String(row[0]), {
        fingerprint: String(row[0]),
        server: String(row[1]),
        path: String(row[2]),
        offset: Number(row[3]),
        tailHash: String(row[4] ?? ''),
        size: Number(row[5]),
        mtimeMs: Number(row[6]),
        complete: Boolean(row[7]),
        columns: Number(row[8] ?? 0),
        format: String(row[9]) as 'csvlog' | 'jsonlog',
      });
    }
    return out;
  }

  /** The last statement of each session of the server open at this pipeline's last commit (correlation, across runs). */
  sessionStates(server: string): Promise<StatementState[]> {
    return loadSessionStates(this.conn, this.options.pipeline, server);
  }

  /**
   * The server's sessions as committed (correlation of earlier commits, by any pipeline), read in this sink's
   * transaction: an archive merges the session records of its ranges into them.
   */
  storedSessions(ids: readonly string[]): Promise<Map<string, StoredSession>> {
    return this.withinTransaction(() => loadStoredSessions(this.conn, this.options.server, ids));
  }

  /** Events this pipeline read from each file it read to its end (by fingerprint). */
  async completeFileEvents(server: string): Promise<Map<string, number>> {
    const r = await this.conn.runAndReadAll(`SELECT fingerprint, events FROM ingest_files
      WHERE pipeline = ${sqlString(this.options.pipeline)} AND server = ${sqlString(server)} AND complete`);
    return new Map(r.getRows().map((row) => [String(row[0]), Number(row[1])]));
  }

  /** --force: the file is read again from its start; its checkpoint and quarantine go with its first batch. */
  markForReplace(fingerprint: string): void {
    this.filesToReplace.add(fingerprint);
  }

  /** The file is read again from its start (it was rewritten): its rows are checked against stored ones. */
  markForIdentityCheck(fingerprint: string): void {
    this.filesToCheck.add(fingerprint);
  }

  /** Fingerprints of the server's damaged compressed files: those with a damage entry in quarantine. */
  async damagedFiles(server: string): Promise<Set<string>> {
    const r = await this.conn.runAndReadAll(`SELECT DISTINCT fingerprint FROM quarantine
      WHERE server = ${sqlString(server)} AND starts_with(reason, ${sqlString(DAMAGE_REASON_PREFIX)})`);
    return new Set(r.getRows().map((row) => String(row[0])));
  }

  /**
   * A damaged file is read again past its damage (it changed): its damage entry goes with its first batch, in the
   * same transaction; the read records the damage again if it is still there.
   */
  markDamageReread(fingerprint: string): void {
    this.damageToForget.add(fingerprint);
  }

  /**
   * Drops the checkpoints and damage entries of damaged files known by their path whose path now holds another
   * file (a complete copy): nothing was stored from them. One transaction of its own, before the run reads.
   */
  async forgetDamagedFiles(server: string, fingerprints: string[]): Promise<void> {
    if (fingerprints.length === 0) return;
    const where = `server = ${sqlString(server)} AND fingerprint IN (${fingerprints.map(sqlString).join(', ')})`;
    await this.begin();
    try {
      await this.conn.run(`DELETE FROM quarantine WHERE ${where} AND starts_with(reason, ${sqlString(DAMAGE_REASON_PREFIX)})`);
      await this.conn.run(`DELETE FROM ingest_files WHERE ${where}`);
      await this.conn.run('COMMIT');
      this.inTransaction = false;
    } catch (err) {
      await this.rollback();
      throw translateWriteError(err, this.db.path);
    }
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

  private stageFile(name: string): string {
    return join(this.stageDir, `${name}-${this.stageTag}-${this.stageSeq++}.csv`);
  }

  /** The ledger of this server's events: each transaction that stores or removes events appends an entry. */
  private ledger: LedgerWriter | null = null;
  private stream!: Stream;

  async write(batch: Batch<PgAuditPayload>): Promise<WriteReport> {
    const report: WriteReport = { stored: 0, duplicates: 0, quarantined: 0 };
    try {
      await this.begin();
      const cp = batch.checkpoint;
      const { packed, packedCount, objects, markerSessions } = batch.payload;
      if (this.filesToReplace.delete(cp.fingerprint)) {
        // --force: the file is read again from its start; forget its old checkpoint and quarantine.
        await this.conn.run(`DELETE FROM quarantine WHERE server = ${sqlString(cp.server)} AND fingerprint = ${sqlString(cp.fingerprint)}`);
        await this.conn.run(
          `DELETE FROM ingest_files WHERE pipeline = ${sqlString(this.options.pipeline)} AND server = ${sqlString(cp.server)} AND fingerprint = ${sqlString(cp.fingerprint)}`,
        );
      }
      if (this.damageToForget.delete(cp.fingerprint)) {
        await this.conn.run(`DELETE FROM quarantine WHERE server = ${sqlString(cp.server)} AND fingerprint = ${sqlString(cp.fingerprint)}
          AND starts_with(reason, ${sqlString(DAMAGE_REASON_PREFIX)})`);
      }
      if (cp.fingerprint !== this.currentFile) {
        this.currentFile = cp.fingerprint;
        this.fileWatermarkMs = this.watermarkMs;
      }
      if (this.options.storeEvents === false) {
        // The events went to the sinks before this one (which acknowledged them before the commit).
        report.stored = packedCount + objects.length;
      } else {
        for (const s of markerSessions) this.markerSessions.add(s);
        const seq = this.ledger ? await this.ledger.begin(this.stream) : null;
        const newDimensions = await this.storeDimensions(batch.payload.contexts, batch.payload.kinds, cp.path, seq);
        let known: KnownRows | undefined;
        if (packedCount + objects.length > 0) {
          const source = await this.stage(packed, objects);
          try {
            const inserting = this.insertNew(source, batch, cp, seq);
            // While DuckDB inserts the rows, the text index and the ledger read the same bytes here (the ledger
            // not when --force may replace rows).
            const blocks = profile.timeSync('text index: n-grams of the rows', 'js', () => {
              const builder = new BlockBuilder();
              builder.addPacked(packed, packedCount);
              for (const o of objects) builder.addText(o.log_time_ms, o.statement);
              return builder.blocks;
            });
            if (this.ledger && !this.options.replace) {
              known = profile.timeSync('ledger: hash packed rows', 'js', () =>
                packedRowsDigest(packed, batch.payload.packedEnds, objects, this.options.storeMessage),
              );
            }
            report.stored = await inserting;
            await storeBlocks(this.conn, blocks);
          } finally {
            await source.cleanup();
          }
          report.duplicates = packedCount + objects.length - report.stored;
        }
        // Rows skipped as stored already: the batch's rows are hashed in SQL, as stored.
        if (this.ledger) await this.ledger.end(this.stream, known?.rows === report.stored ? known : undefined, newDimensions);
      }
      // Sessions, logon failures and statement errors are kept whether or not the events are.
      this.correlation.add(batch.payload.correlation);
      if (batch.quarantine.length > 0) {
        const stmt = await this.conn.prepare(`INSERT OR IGNORE INTO quarantine VALUES ($1, $2, $3, $4, $5, $6, $7, now())`);
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

  /**
   * Inserts the contexts and kinds of a batch that are not stored yet (before its rows), with the batch's
   * ledger number; returns whether there were any.
   */
  private async storeDimensions(contexts: EventContext[], kinds: EventKind[], path: string, seq: number | null): Promise<boolean> {
    const newContexts = contexts.filter((c) => !this.knownContexts.has(c.id));
    const newKinds = kinds.filter((k) => !this.knownKinds.has(k.id));
    if (newContexts.length > 0) {
      const logPathId = await this.logPathId(dirname(path));
      const file = this.stageFile('contexts');
      const { text, sql } = stageRows(
        file,
        CONTEXT_STAGE,
        newContexts.map((c) => [
          c.id,
          c.session_id,
          c.user_name,
          c.database_name,
          c.client_addr,
          c.client_port,
          c.application_name,
          c.backend_type,
          c.session_start_ms,
          c.process_id,
          c.leader_pid,
        ]),
      );
      writeFileSync(file, text);
      try {
        await timedRun(
          this.conn,
          'insert event_contexts',
          `INSERT OR IGNORE INTO event_contexts
          SELECT context_id, ${sqlString(this.options.server)}, session_id, user_name, database_name, client_addr, client_port, application_name,
                 backend_type, ${msToTimestamptz('session_start_ms')}, process_id, leader_pid, ${logPathId}, ${sqlString(basename(path))},
                 ${seq ?? 'NULL'}
          FROM ${sql}`,
        );
      } finally {
        await unlink(file).catch(() => {});
      }
      if (this.knownContexts.size > MAX_KNOWN_IDS) this.knownContexts.clear();
      for (const c of newContexts) this.knownContexts.add(c.id);
    }
    if (newKinds.length > 0) {
      const file = this.stageFile('kinds');
      const { text, sql } = stageRows(
        file,
        KIND_STAGE,
        newKinds.map((k) => [k.id, k.audit_type, k.class, k.command, k.object_type, k.command_tag, k.error_severity]),
      );
      writeFileSync(file, text);
      try {
        await timedRun(
          this.conn,
          'insert event_kinds',
          `INSERT OR IGNORE INTO event_kinds SELECT *, ${seq === null ? 'NULL' : sqlString(this.stream.name)}, ${seq ?? 'NULL'} FROM ${sql}`,
        );
      } finally {
        await unlink(file).catch(() => {});
      }
      if (this.knownKinds.size > MAX_KNOWN_IDS) this.knownKinds.clear();
      for (const k of newKinds) this.knownKinds.add(k.id);
    }
    return newContexts.length + newKinds.length > 0;
  }

  /** Puts the batch where the INSERT can read it; returns the SQL of a relation with FROM_PACKED's columns. */
  private async stage(packed: Buffer, slow: PgAuditRecord[]): Promise<{ sql: string; cleanup: () => Promise<void> }> {
    const parts: string[] = [];
    let file: string | null = null;
    if (packed.length > 0) {
      file = this.stageFile('batch');
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
      const types: Record<string, string> = { ...PACKED_TYPES, log_time_ms: 'VARCHAR' };
      await this.conn.run(`CREATE TEMP TABLE IF NOT EXISTS stage_slow (${EVENT_ROW_COLUMNS.map((c) => `${c} ${types[c]}`).join(', ')})`);
      await this.conn.run('DELETE FROM stage_slow');
      const appender = await this.conn.createAppender('stage_slow', 'main', 'temp');
      for (const r of slow) {
        const row: (string | number | null | undefined)[] = [
          new Date(r.log_time_ms).toISOString(),
          r.context_id,
          r.kind_id,
          r.session_line_num,
          r.virtual_transaction_id,
          r.transaction_id,
          r.query_id,
          r.statement_id,
          r.substatement_id,
          r.object_name,
          r.statement,
          r.parameter,
          r.rows,
          r.message === '' ? null : r.message,
        ];
        for (const value of row) {
          if (value === null || value === undefined) appender.appendNull();
          else appender.appendVarchar(String(value));
        }
        appender.endRow();
      }
      appender.closeSync();
      parts.push(
        `SELECT ${FROM_PACKED.map(([name, expr]) => `${name === 'log_time' ? 'log_time_ms::TIMESTAMPTZ' : expr} AS ${name}`).join(', ')} FROM temp.stage_slow`,
      );
    }
    return {
      sql: parts.join(' UNION ALL '),
      cleanup: async () => {
        if (file) await unlink(file).catch(() => {});
      },
    };
  }

  /** Back to the configured memory limit once the long records are stored. */
  private async restoreMemoryLimit(): Promise<void> {
    if (!this.memoryRaised) return;
    this.memoryRaised = false;
    await this.conn.run(`SET memory_limit = ${sqlString(this.memoryLimit)}`);
  }

  /** Inserts the staged rows whose identity is not stored yet; returns how many were inserted. */
  private async insertNew(source: { sql: string }, batch: Batch<PgAuditPayload>, cp: FileCheckpoint, seq: number | null): Promise<number> {
    const server = sqlString(this.options.server);
    const min = batch.minTimeMs,
      max = batch.maxTimeMs;
    const ts = (ms: number) => msToTimestamptz(String(ms));
    const cols = [...FROM_PACKED.map(([n]) => n), 'statement_filled', 'ledger_seq'];
    const star = `${this.options.storeMessage ? 's.*' : 's.* REPLACE (NULL::VARCHAR AS raw_message)'}, false, ${seq ?? 'NULL'}`;
    const select = `SELECT ${star} FROM (${source.sql}) AS s`;
    // Rows already stored can only lie at or before the latest time stored when the file began — unless the
    // database holds rows of the seed script (times maybe off by the server's UTC offset), or the file is read
    // again from its start.
    const wholeTable = this.legacyMaxMs !== null && min <= this.legacyMaxMs + 2 * 86400000;
    const reread = this.options.replace === true || this.filesToCheck.has(cp.fingerprint);
    const checkUpTo = wholeTable || reread ? max : Math.min(max, this.fileWatermarkMs);
    const identity = (upTo: number) => `SELECT 1 FROM event_rows AS a JOIN event_contexts AS ac ON ac.context_id = a.context_id
      WHERE ac.server = ${server} AND ac.session_id = sc.session_id AND a.session_line_num = s.session_line_num
      ${wholeTable ? '' : `AND a.log_time BETWEEN ${ts(min)} AND ${ts(upTo)}`}`;
    if (this.options.replace) {
      const stored = `SELECT a.rowid FROM event_rows AS a JOIN event_contexts AS ac ON ac.context_id = a.context_id,
          (${source.sql}) AS s JOIN event_contexts AS sc ON sc.context_id = s.context_id
        WHERE ac.server = ${server} AND ac.session_id = sc.session_id AND a.session_line_num = s.session_line_num
          ${wholeTable ? '' : `AND a.log_time BETWEEN ${ts(min)} AND ${ts(max)}`}`;
      // The ledger keeps the hashes of the rows replaced, so that their batches still verify.
      await this.ledger?.removing(this.stream, `e.rowid IN (${stored})`);
      await timedRun(this.conn, 'replace: delete stored rows', `DELETE FROM event_rows AS a WHERE a.rowid IN (${stored})`);
    }
    let stored = 0;
    if (min > checkUpTo || this.options.replace) {
      stored = Number((await timedRun(this.conn, 'insert event_rows', `INSERT INTO event_rows (${cols.join(', ')}) ${select}`)).rowsChanged);
    } else {
      // Rows after checkUpTo are new; those at or before it are checked.
      if (max > checkUpTo) {
        stored += Number(
          (
            await timedRun(
              this.conn,
              'insert event_rows',
              `INSERT INTO event_rows (${cols.join(', ')}) ${select}
          WHERE s.log_time > ${ts(checkUpTo)}`,
            )
          ).rowsChanged,
        );
      }
      stored += Number(
        (
          await timedRun(
            this.conn,
            'insert event_rows (identity checked)',
            `INSERT INTO event_rows (${cols.join(', ')})
        SELECT ${star} FROM (${source.sql}) AS s JOIN event_contexts AS sc ON sc.context_id = s.context_id
        WHERE s.log_time <= ${ts(checkUpTo)} AND NOT EXISTS (${identity(checkUpTo)})`,
          )
        ).rowsChanged,
      );
    }
    if (max > this.watermarkMs) this.watermarkMs = max;
    return stored;
  }

  async commit(checkpoints: FileCheckpoint[]): Promise<void> {
    try {
      await this.begin();
      if (!this.correlation.empty) {
        await this.correlation.store(this.conn, this.options.pipeline, this.options.server, this.options.storeEvents !== false);
      }
      if (this.markerSessions.size > 0) {
        const sessions = [...this.markerSessions];
        await profile.time('markers: fill <previously logged>', 'duckdb', () => this.fillPreviouslyLogged(sessions));
        await profile.time('markers: track pending', 'duckdb', () => this.trackPendingMarkers(sessions));
        this.markerSessions.clear();
      }
      // Alert rules read the rows of this transaction and store what fired in it (src/alerts/evaluate.ts).
      if (this.beforeCommit) await this.beforeCommit(this.conn);
      for (const cp of checkpoints) await profile.time('checkpoint: save file state', 'duckdb', () => this.saveCheckpoint(cp));
      await timedRun(this.conn, 'commit (as observed by the event loop)', 'COMMIT');
      this.inTransaction = false;
      await this.restoreMemoryLimit();
      await this.options.anchorer?.afterCommit(this.conn);
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
    // The rows' new statements go into the text index (RETURNING names them).
    await indexRowsOf(
      this.conn,
      `
      UPDATE event_rows AS a SET statement = p.statement, parameter = p.parameter, statement_filled = true
      FROM (
        SELECT server, session_id, statement_id, substatement_id,
               arg_min(statement, session_line_num) AS statement, arg_min(parameter, session_line_num) AS parameter
        FROM audit_events
        WHERE server = ${server}${sessionFilter} AND statement IS DISTINCT FROM '${PREVIOUSLY_LOGGED}'
          AND (session_id, statement_id, substatement_id) IN (
            SELECT session_id, statement_id, substatement_id FROM audit_events
            WHERE server = ${server}${sessionFilter} AND statement = '${PREVIOUSLY_LOGGED}')
        GROUP BY ALL
      ) AS p, event_contexts AS c
      WHERE c.context_id = a.context_id AND c.server = p.server AND c.session_id = p.session_id AND a.statement_id = p.statement_id
        AND a.substatement_id = p.substatement_id AND a.statement = '${PREVIOUSLY_LOGGED}'
      RETURNING epoch_ms(a.log_time)::DOUBLE, a.statement`,
    );
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
    const lastEvent = cp.lastEventMs === null ? 'NULL' : msToTimestamptz(String(cp.lastEventMs));
    await this.conn.run(`
      INSERT INTO ingest_files VALUES (${sqlString(this.options.pipeline)}, ${server}, ${fp}, ${sqlString(cp.path)}, ${sqlString(basename(cp.path))}, '${cp.format}',
        '${cp.compression}', ${cp.columns}, ${cp.offset}, ${sqlString(cp.tailHash)}, ${cp.size}, ${cp.mtimeMs}, ${cp.bytesDelta},
        ${cp.eventsDelta}, ${cp.quarantinedDelta}, ${lastEvent}, ${cp.complete}, now(), now())
      ON CONFLICT (pipeline, server, fingerprint) DO UPDATE SET
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
    this.ledger?.reset();
    await this.correlation.clear();
    // What the rolled-back transaction inserted is gone: forget every id (the next batches insert theirs again).
    this.knownContexts.clear();
    this.knownKinds.clear();
    await this.conn.run('ROLLBACK').catch(() => {});
    await this.loadWatermark().catch(() => {});
    await this.restoreMemoryLimit().catch(() => {});
  }

  async close(): Promise<void> {
    await this.rollback();
    await this.options.anchorer?.close(this.conn);
    await profile.time('close (checkpoint into the database file)', 'duckdb', () => this.db.close());
    if (!this.sharedDb) rmSync(this.stageDir, { recursive: true, force: true });
  }
}
