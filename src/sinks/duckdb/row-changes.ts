import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import type { Logger } from '../../core/log.js';
import { ROW_INDEX as C, type RawRow, type StagedRows, type TableBatch, type TableCursor } from '../../model/table-rows.js';
import {
  DEAD_LETTERS_DDL,
  insertDeadLetters,
  oneSchemaAtATime,
  profileStatements,
  timedRun,
  translateWriteError,
  type Database,
  type DeadLetterRow,
} from './database.js';
import { sqlString, usToTimestamptz } from '../../duckdb/sql.js';
import { US, stageCsvOptions, stageText } from '../../duckdb/stage.js';
import { ensureLedgerColumn, LEDGER_DDL, LedgerWriter } from '../../ledger/ledger.js';
import type { Anchorer } from '../../ledger/anchor.js';
import { rowChangesStream } from '../../ledger/streams.js';

/**
 * Row changes from trigger-based audit tables, in DuckDB:
 *  - `row_changes`: one row per audited INSERT/UPDATE/DELETE (and statement-level TRUNCATE); identity
 *    (server, source_table, event_id); row data and changed fields as JSON.
 *  - `row_quarantine`: audit rows that could not be converted, with the reason and the raw row as JSON.
 *  - `table_cursors`: per (server, source_table), the cursor up to which rows are stored, written in the
 *    same transaction as the rows — so a kill at any moment loses and duplicates nothing.
 * A batch reaches DuckDB as a stage file in the CSV dialect of parse/packed.ts (US delimiter, GS quote,
 * inner GS doubled), read by read_csv: one call per batch instead of one per value.
 */
export const ROW_CHANGES_DDL = `
CREATE TABLE IF NOT EXISTS row_changes (
  server            VARCHAR NOT NULL,
  source_table      VARCHAR NOT NULL,
  event_id          BIGINT NOT NULL,
  txid              BIGINT,
  schema_name       VARCHAR,
  table_name        VARCHAR,
  relid             BIGINT,
  action            VARCHAR,
  row_data          VARCHAR,
  changed_fields    VARCHAR,
  statement_only    BOOLEAN,
  session_user_name VARCHAR,
  application_name  VARCHAR,
  client_addr       VARCHAR,
  client_port       INTEGER,
  action_tstamp_tx  TIMESTAMPTZ,
  action_tstamp_stm TIMESTAMPTZ,
  action_tstamp_clk TIMESTAMPTZ,
  client_query      VARCHAR,
  shipped_at        TIMESTAMPTZ,
  ledger_seq        BIGINT
);
CREATE TABLE IF NOT EXISTS row_quarantine (
  server         VARCHAR NOT NULL,
  source_table   VARCHAR NOT NULL,
  event_id       BIGINT,
  reason         VARCHAR,
  raw            VARCHAR,
  quarantined_at TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS table_cursors (
  server           VARCHAR NOT NULL,
  source_table     VARCHAR NOT NULL,
  cursor           VARCHAR,
  rows_shipped     BIGINT,
  rows_quarantined BIGINT,
  last_event_time  TIMESTAMPTZ,
  updated_at       TIMESTAMPTZ,
  PRIMARY KEY (server, source_table)
);`;

/**
 * Rows in a DuckDB row group (its default). A transaction's full row groups are written straight to the
 * file when it commits; a partly filled one is merged with its neighbours at the next checkpoint, which
 * decompresses and recompresses them (measured: ~2 s per 1M rows committed in 250,000-row transactions,
 * ~0.05 s when each transaction ends on a row-group boundary). Backlog transactions are cut to multiples.
 */
export const ROW_GROUP_ROWS = 122_880;

const ACTIONS: Record<string, string> = {
  I: 'INSERT',
  U: 'UPDATE',
  D: 'DELETE',
  T: 'TRUNCATE',
  INSERT: 'INSERT',
  UPDATE: 'UPDATE',
  DELETE: 'DELETE',
  TRUNCATE: 'TRUNCATE',
};

const STAGE_COLUMNS: [string, string][] = [
  ['event_id', 'BIGINT'],
  ['txid', 'BIGINT'],
  ['schema_name', 'VARCHAR'],
  ['table_name', 'VARCHAR'],
  ['relid', 'BIGINT'],
  ['action', 'VARCHAR'],
  ['row_data', 'VARCHAR'],
  ['changed_fields', 'VARCHAR'],
  ['statement_only', 'BOOLEAN'],
  ['session_user_name', 'VARCHAR'],
  ['application_name', 'VARCHAR'],
  ['client_addr', 'VARCHAR'],
  ['client_port', 'INTEGER'],
  ['tx_us', 'BIGINT'],
  ['stm_us', 'BIGINT'],
  ['clk_us', 'BIGINT'],
  ['client_query', 'VARCHAR'],
];

const text = stageText;

function num(v: string | null): string {
  return v === null ? '' : v;
}

/** A row's value (null when absent). */
function at(r: RawRow, i: number): string | null {
  return r[i] ?? null;
}

export interface Quarantined {
  eventId: string | null;
  reason: string;
  raw: string;
}

/** Checks one row; returns the reason it cannot be stored, or null. */
export function checkRow(r: RawRow, validateJson: boolean): string | null {
  const id = at(r, C.event_id);
  if (id === null || !/^-?\d+$/.test(id)) return 'event_id is missing or not an integer';
  const action = at(r, C.action);
  if (action === null || !ACTIONS[action.toUpperCase()]) return `unknown action ${JSON.stringify(action)} (expected I, U, D or T)`;
  if (at(r, C.table_name) === null) return 'table_name is missing';
  if (validateJson) {
    for (const [i, name] of [
      [C.row_data, 'row_data'],
      [C.changed_fields, 'changed_fields'],
    ] as const) {
      const v = at(r, i);
      if (v === null) continue;
      try {
        JSON.parse(v);
      } catch {
        return `${name} is not valid JSON`;
      }
    }
  }
  return null;
}

export class RowChangesSink {
  private conn!: DuckDBConnection;
  /** Each transaction that stores rows appends an entry to the source's ledger stream. */
  private ledger: LedgerWriter | null = null;
  private anchorer: Anchorer | undefined;
  private stageDir = '';
  private seq = 0;
  /** Unique per sink: the daemon's sinks share the stage directory of their database. */
  private readonly stageTag = `${process.pid}-${randomBytes(4).toString('hex')}`;
  private inTransaction = false;
  private maxIds = new Map<string, bigint>();
  private pending: { stored: number; quarantined: number; lastClkUs: string | null } = { stored: 0, quarantined: 0, lastClkUs: null };
  /** Runs in the open transaction just before each commit of rows and cursor (alert rules: src/alerts). */
  beforeCommit: ((conn: DuckDBConnection) => Promise<void>) | null = null;

  private constructor(
    private readonly db: Database,
    private readonly ownsDb: boolean,
    private readonly log: Logger,
  ) {}

  /** Opens on a database the caller holds (the daemon shares one per file) with a connection of its own. */
  static async open(db: Database, log: Logger, ownsDb = false, ledger = false, anchorer?: Anchorer): Promise<RowChangesSink> {
    const sink = new RowChangesSink(db, ownsDb, log);
    sink.conn = await db.instance.connect();
    await sink.conn.run("SET TimeZone = 'UTC'");
    await oneSchemaAtATime(db.instance, async () => {
      await sink.conn.run(ROW_CHANGES_DDL);
      await ensureLedgerColumn(sink.conn, 'row_changes');
      await sink.conn.run(LEDGER_DDL);
      await sink.conn.run(DEAD_LETTERS_DDL);
    });
    if (ledger) sink.ledger = new LedgerWriter(sink.conn);
    sink.anchorer = anchorer;
    sink.stageDir = `${db.path}.stage`;
    mkdirSync(sink.stageDir, { recursive: true });
    await profileStatements(sink.conn, sink.stageDir);
    return sink;
  }

  get path(): string {
    return this.db.path;
  }

  async loadCursor(server: string, sourceTable: string): Promise<TableCursor | null> {
    const r = await this.conn.runAndReadAll(
      `SELECT cursor FROM table_cursors WHERE server = ${sqlString(server)} AND source_table = ${sqlString(sourceTable)}`,
    );
    const v = r.getRows()[0]?.[0];
    return v == null ? null : (JSON.parse(String(v)) as TableCursor);
  }

  /** Starts a transaction: batches appended until commit() are stored together with the cursor. */
  async begin(): Promise<void> {
    await this.conn.run('BEGIN TRANSACTION');
    this.inTransaction = true;
    this.pending = { stored: 0, quarantined: 0, lastClkUs: null };
  }

  /**
   * Appends a batch to the open transaction. Rows already stored (same server, source table and event id:
   * a re-read after a restore or a cursor reset) are skipped. Returns what was stored.
   */
  async append(
    server: string,
    sourceTable: string,
    batch: TableBatch,
    validateJson: boolean,
  ): Promise<{ stored: number; duplicates: number; quarantined: Quarantined[] }> {
    const quarantined: Quarantined[] = [];
    const parts: string[] = [];
    let longest = 0;
    let minId: bigint | null = null;
    let maxId: bigint | null = null;
    let good = 0;
    let lastClockUs: string | null = null;
    for (const r of batch.rows) {
      const reason = checkRow(r, validateJson);
      if (reason) {
        quarantined.push({ eventId: at(r, C.event_id), reason, raw: JSON.stringify(r) });
        continue;
      }
      const id = BigInt(at(r, C.event_id)!);
      if (minId === null || id < minId) minId = id;
      if (maxId === null || id > maxId) maxId = id;
      const line =
        [
          num(at(r, C.event_id)),
          num(at(r, C.txid)),
          text(at(r, C.schema_name)),
          text(at(r, C.table_name)),
          num(at(r, C.relid)),
          text(ACTIONS[at(r, C.action)!.toUpperCase()]!),
          text(at(r, C.row_data)),
          text(at(r, C.changed_fields)),
          at(r, C.statement_only) === null ? '' : at(r, C.statement_only) === 'true' || at(r, C.statement_only) === 't' ? 'true' : 'false',
          text(at(r, C.session_user_name)),
          text(at(r, C.application_name)),
          text(at(r, C.client_addr)),
          num(at(r, C.client_port)),
          num(at(r, C.action_tstamp_tx_us)),
          num(at(r, C.action_tstamp_stm_us)),
          num(at(r, C.action_tstamp_clk_us)),
          text(at(r, C.client_query)),
        ].join(US) + '\n';
      if (line.length > longest) longest = line.length;
      parts.push(line);
      good++;
      const clk = at(r, C.action_tstamp_clk_us);
      if (clk !== null) lastClockUs = clk;
    }
    let stored = 0;
    if (good > 0) {
      const file = this.stageFile();
      const content = parts.join('');
      writeFileSync(file, content);
      // JavaScript lengths count UTF-16 units; a unit is at most 3 bytes of UTF-8.
      stored = (
        await this.appendStaged(server, sourceTable, {
          file,
          rows: good,
          fileBytes: Buffer.byteLength(content),
          longestLine: longest * 3,
          minEventId: String(minId),
          maxEventId: String(maxId),
          lastClockUs,
        })
      ).stored;
    }
    if (quarantined.length > 0) {
      try {
        const stmt = await this.conn.prepare(`INSERT INTO row_quarantine VALUES (${sqlString(server)}, ${sqlString(sourceTable)}, $1, $2, $3, now())`);
        for (const q of quarantined) {
          if (q.eventId !== null && /^-?\d+$/.test(q.eventId)) stmt.bindBigInt(1, BigInt(q.eventId));
          else stmt.bindNull(1);
          stmt.bindVarchar(2, q.reason);
          stmt.bindVarchar(3, q.raw);
          await stmt.run();
        }
      } catch (err) {
        throw translateWriteError(err, this.db.path);
      }
      this.pending.quarantined += quarantined.length;
    }
    return { stored, duplicates: good - stored, quarantined };
  }

  /** A fresh stage file name (readStaged() and append() write batches there). */
  stageFile(): string {
    return join(this.stageDir, `copy-${this.stageTag}-${this.seq++}.csv`);
  }

  /**
   * Appends a batch from a stage file — written by PostgreSQL (COPY) or by append() — whose rows were all
   * checked (the action is mapped to INSERT/UPDATE/DELETE/TRUNCATE here). Rows already stored are skipped.
   * The file is removed.
   */
  async appendStaged(server: string, sourceTable: string, staged: StagedRows): Promise<{ stored: number; duplicates: number }> {
    const srv = sqlString(server);
    const src = sqlString(sourceTable);
    const columns = STAGE_COLUMNS.map(([n, t]) => `'${n}': '${t}'`).join(', ');
    const action = `CASE upper(s.action) WHEN 'I' THEN 'INSERT' WHEN 'INSERT' THEN 'INSERT' WHEN 'U' THEN 'UPDATE' WHEN 'UPDATE' THEN 'UPDATE'
      WHEN 'D' THEN 'DELETE' WHEN 'DELETE' THEN 'DELETE' WHEN 'T' THEN 'TRUNCATE' WHEN 'TRUNCATE' THEN 'TRUNCATE' END`;
    // Only a batch reaching down to event ids already stored can hold rows stored before (after a
    // cursor reset); the others skip the identity check.
    const floor = await this.maxStoredId(server, sourceTable);
    const seq = this.ledger === null ? 'NULL' : await this.ledger.begin(rowChangesStream(server, sourceTable));
    const check = floor !== null && BigInt(staged.minEventId) <= floor;
    const sql = (maxLine: number) => `
      INSERT INTO row_changes
      SELECT ${srv}, ${src}, s.event_id, s.txid, s.schema_name, s.table_name, s.relid, ${action}, s.row_data, s.changed_fields,
             s.statement_only, s.session_user_name, s.application_name, s.client_addr, s.client_port,
             ${usToTimestamptz('s.tx_us')}, ${usToTimestamptz('s.stm_us')}, ${usToTimestamptz('s.clk_us')},
             s.client_query, now(), ${seq}
      FROM read_csv(${sqlString(staged.file)}, ${stageCsvOptions(maxLine)}, columns = {${columns}}) AS s
      ${
        check
          ? `WHERE NOT EXISTS (SELECT 1 FROM row_changes AS x WHERE x.server = ${srv} AND x.source_table = ${src}
                  AND x.event_id BETWEEN ${BigInt(staged.minEventId)} AND ${BigInt(staged.maxEventId)} AND x.event_id = s.event_id)`
          : ''
      }`;
    try {
      let r;
      try {
        r = await timedRun(this.conn, 'insert row_changes', sql(Math.max(2_000_000, staged.longestLine * 2 + 1024)));
      } catch (err) {
        // A value holding newlines can make a record longer than the longest line measured: allow the whole file.
        if (!/line size|maximum line/i.test((err as Error).message)) throw err;
        r = await this.conn.run(sql(staged.fileBytes + 1));
      }
      const stored = Number(r.rowsChanged);
      if (staged.lastClockUs !== null) this.pending.lastClkUs = staged.lastClockUs;
      this.pending.stored += stored;
      const hi = BigInt(staged.maxEventId);
      const key = `${server}\u0000${sourceTable}`;
      if ((this.maxIds.get(key) ?? -1n) < hi) this.maxIds.set(key, hi);
      return { stored, duplicates: staged.rows - stored };
    } catch (err) {
      throw translateWriteError(err, this.db.path);
    } finally {
      await unlink(staged.file).catch(() => {});
    }
  }

  /** Highest event id stored for this source (null when none); cached, forgotten on rollback. */
  private async maxStoredId(server: string, sourceTable: string): Promise<bigint | null> {
    const key = `${server}\u0000${sourceTable}`;
    if (this.maxIds.has(key)) return this.maxIds.get(key)!;
    const r = await this.conn.runAndReadAll(
      `SELECT max(event_id)::VARCHAR FROM row_changes WHERE server = ${sqlString(server)} AND source_table = ${sqlString(sourceTable)}`,
    );
    const v = r.getRows()[0]?.[0];
    const id = v === null || v === undefined ? null : BigInt(String(v));
    if (id !== null) this.maxIds.set(key, id);
    return id;
  }

  /** Documents a search sink refused for good, stored in the open transaction (es_dead_letters). */
  async addDeadLetters(server: string, sink: string, letters: DeadLetterRow[]): Promise<void> {
    if (!letters.length) return;
    try {
      await insertDeadLetters(this.conn, server, sink, letters);
    } catch (err) {
      throw translateWriteError(err, this.db.path);
    }
  }

  /** The clock time (epoch ms) of the last row appended since begin(), or null: what commit() records as last_event_time. */
  get pendingLastEventMs(): number | null {
    return this.pending.lastClkUs === null ? null : Number(this.pending.lastClkUs) / 1000;
  }

  /** Stores the cursor and commits everything appended since begin(). */
  async commit(server: string, sourceTable: string, cursor: TableCursor): Promise<void> {
    const srv = sqlString(server);
    const src = sqlString(sourceTable);
    const { stored, quarantined, lastClkUs } = this.pending;
    const lastEvent = lastClkUs === null ? 'NULL' : usToTimestamptz(lastClkUs);
    try {
      await this.conn.run(`
        INSERT INTO table_cursors VALUES (${srv}, ${src}, ${sqlString(JSON.stringify(cursor))}, ${stored}, ${quarantined}, ${lastEvent}, now())
        ON CONFLICT (server, source_table) DO UPDATE SET cursor = excluded.cursor,
          rows_shipped = table_cursors.rows_shipped + excluded.rows_shipped,
          rows_quarantined = table_cursors.rows_quarantined + excluded.rows_quarantined,
          last_event_time = coalesce(excluded.last_event_time, table_cursors.last_event_time), updated_at = now()`);
      if (this.beforeCommit) await this.beforeCommit(this.conn);
      await this.ledger?.end(rowChangesStream(server, sourceTable));
      await timedRun(this.conn, 'commit (as observed by the event loop)', 'COMMIT');
      this.inTransaction = false;
      await this.anchorer?.afterCommit(this.conn);
    } catch (err) {
      await this.rollback();
      throw translateWriteError(err, this.db.path);
    }
  }

  async rollback(): Promise<void> {
    if (!this.inTransaction) return;
    this.inTransaction = false;
    this.maxIds.clear();
    this.ledger?.reset();
    await this.conn.run('ROLLBACK').catch(() => {});
  }

  async close(): Promise<void> {
    await this.rollback();
    await this.anchorer?.close(this.conn);
    this.conn.closeSync();
    if (this.ownsDb) {
      await this.db.close();
      rmSync(this.stageDir, { recursive: true, force: true });
    }
  }
}
