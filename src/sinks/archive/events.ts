import { createReadStream, createWriteStream, mkdirSync, promises as fsp, rmSync, writeFileSync, type WriteStream } from 'node:fs';
import { basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { DuckDBInstance, type DuckDBConnection } from '../duckdb/duckdb.js';
import type { Batch, FileCheckpoint, Sink, WriteReport } from '../../core/connector.js';
import { ConnectorError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { dimensionsOf, PACKED_COLUMNS, recordRows } from '../../parse/packed.js';
import { firstOutcomes, type EventContext, type EventKind, type StatementOutcome } from '../../parse/session-tracker.js';
import type { SessionRecord } from '../../parse/session-log.js';
import type { PgAuditPayload } from '../../sources/pg-logs/payload.js';
import type { NewEntry } from '../duckdb/archive-state.js';
import type { StoredSession } from '../duckdb/correlation.js';
import { msToTimestamptz, sqlString } from '../duckdb/database.js';
import { readPackedSql } from '../duckdb/sink.js';
import { stageRows, type StageType } from '../duckdb/stage.js';
import { jsonString } from '../elasticsearch/documents.js';
import { GzipMembers } from './compress.js';
import { correlationLine, logonFailureRow, mergeSession, parquetColumns, sessionRow, stageColumns, statementErrorRow, type CorrelationRow } from './correlation.js';
import type { Archive } from './index.js';
import { eventsKey, utcDate, type CorrelationDataset } from './layout.js';
import type { ManifestEntry, SourceIdentity } from './manifest.js';
import type { ObjectWriter, StoredObject } from './store.js';

/**
 * Forms `ndjson` and `parquet`: the parsed pgaudit events, one object per source range (the events between
 * two checkpoints of one log file) and event date (UTC), under `pgaudit[-ndjson]/server=…/date=…/`.
 *
 * The sink is never the state store. ndjson objects are compressed and uploaded while the batches arrive;
 * parquet batches are staged on local disk and written by an embedded DuckDB at the commit (Parquet needs
 * the whole file before its footer). `commit()` finishes every object and hands the manifest entries to the
 * state sink, which stores them in the transaction of the checkpoint — so an object's entry exists exactly
 * when its range is checkpointed. A run that fails or is killed before that leaves pending objects, which the
 * next start removes (Archive.reconcile) before the range is read and archived again under the same key.
 *
 * Columns (both forms): log_time, user_name, database_name, client_addr, client_port, application_name,
 * session_id, session_line_num, process_id, virtual_transaction_id, transaction_id, command_tag,
 * session_start, error_severity, backend_type, leader_pid, query_id, the pgaudit fields audit_type,
 * statement_id, substatement_id, class, command, object_type, object_name, statement, parameter, rows, and
 * file_name, and the outcome of the statement, sqlstate and error_message, when its error was read before the
 * event was written out (see correlation.ts; every outcome is in the range's statement_errors). NDJSON lines
 * also carry `server` (absent values are left out); in Parquet, server and date are the partition directories.
 * Statements are kept as pgaudit wrote them (`<previously logged>` stays). Each range's sessions, logon
 * failures and statement errors are objects of their own datasets (correlation.ts).
 */
export const EVENT_COLUMNS = [
  'log_time', 'user_name', 'database_name', 'client_addr', 'client_port', 'application_name', 'session_id', 'session_line_num',
  'process_id', 'virtual_transaction_id', 'transaction_id', 'command_tag', 'session_start', 'error_severity', 'backend_type',
  'leader_pid', 'query_id', 'audit_type', 'statement_id', 'substatement_id', 'class', 'command', 'object_type', 'object_name',
  'statement', 'parameter', 'rows',
] as const;

const COL = Object.fromEntries(PACKED_COLUMNS.map((c, i) => [c, i])) as Record<(typeof PACKED_COLUMNS)[number], number>;
/** Where each event column is in a packed row, and whether it is a time (epoch ms → ISO). */
const FIELDS: { name: string; at: number; time: boolean; text: boolean }[] = EVENT_COLUMNS.map((name) => {
  const packed = name === 'log_time' ? 'log_time_ms' : name === 'session_start' ? 'session_start_ms' : name;
  const at = COL[packed as keyof typeof COL];
  const numeric = ['client_port', 'session_line_num', 'process_id', 'transaction_id', 'leader_pid', 'statement_id', 'substatement_id', 'rows'].includes(name);
  return { name, at, time: packed !== name, text: !numeric && packed === name };
});

/** ISO 8601 of epoch ms; the second's prefix is computed once per second (events come in time order). */
class IsoTimes {
  private sec = NaN;
  private prefix = '';
  of(ms: number): string {
    const sec = Math.floor(ms / 1000);
    if (sec !== this.sec) { this.sec = sec; this.prefix = new Date(sec * 1000).toISOString().slice(0, 20); }
    const f = ms - sec * 1000;
    return `${this.prefix}${f < 10 ? '00' : f < 100 ? '0' : ''}${f}Z`;
  }
}
const logTimes = new IsoTimes();
const startTimes = new IsoTimes();

/** One event as an NDJSON line (values in PACKED_COLUMNS order), with its statement's outcome when known. */
export function eventLine(serverJson: string, fileJson: string, v: readonly (string | number | null)[], outcome?: StatementOutcome): string {
  let s = '{';
  for (const f of FIELDS) {
    const x = v[f.at];
    if (x === null || x === undefined || x === '') {
      if (f.text && x === '') s += `"${f.name}":"",`;
      continue;
    }
    if (f.time) s += `"${f.name}":"${(f.name === 'log_time' ? logTimes : startTimes).of(Number(x))}",`;
    else if (f.text) s += `"${f.name}":${jsonString(String(x))},`;
    else s += `"${f.name}":${Number(x)},`;
  }
  if (outcome) s += `${outcome.sqlstate === null ? '' : `"sqlstate":${jsonString(outcome.sqlstate)},`}"error_message":${jsonString(outcome.message)},`;
  return `${s}"server":${serverJson},"file_name":${fileJson}}\n`;
}

/** The outcome of an event's statement among a batch's outcomes (by session), if any. */
function outcomeOf(bySession: Map<string, StatementOutcome[]>, v: readonly (string | number | null)[]): StatementOutcome | undefined {
  const list = bySession.get(String(v[COL.session_id]));
  if (!list) return undefined;
  const statement = Number(v[COL.statement_id]), line = Number(v[COL.session_line_num]);
  return list.find((o) => o.statement_id === statement && line >= o.first_line && line <= o.last_line);
}

interface DateObject {
  key: string;
  writer: ObjectWriter;
  gzip: GzipMembers;
  buffer: string;
  events: number;
  minMs: number;
  maxMs: number;
}

/** The events of one log file since its last checkpoint. */
interface Range {
  source: SourceIdentity;
  start: number;
  end: number;
  events: number;
  /** ndjson: an open object per event date. */
  dates: Map<string, DateObject>;
  /** parquet: stage files of packed rows, the contexts and kinds they use, and a JSON-lines file of the records that cannot be packed. */
  stages: string[];
  contexts: Map<number, EventContext>;
  kinds: Map<number, EventKind>;
  objectsFile: string | null;
  objectsStream: WriteStream | null;
  /** The range's connection and disconnection records, failed logins and errors (in log order). */
  sessions: SessionRecord[];
  failures: SessionRecord[];
  errors: { record: SessionRecord; statementId: number | null }[];
}

export interface ArchiveEventsOptions {
  server: string;
  sourceKind: SourceIdentity['kind'];
  /** Local scratch space (parquet stage files and output). */
  spoolDir: string;
  /** Turns a checkpoint's path into the location recorded in the manifest (RDS: rds:<region>/<instance>/<name>). */
  locationOf?: (cp: FileCheckpoint) => { name: string; location: string };
  /** The sessions as the state store knows them (committed): a range's session records are merged into them. */
  storedSessions?: (ids: string[]) => Promise<Map<string, StoredSession>>;
}

const CONTEXT_STAGE: [string, StageType][] = [
  ['context_id', 'BIGINT'], ['session_id', 'VARCHAR'], ['user_name', 'VARCHAR'], ['database_name', 'VARCHAR'], ['client_addr', 'VARCHAR'],
  ['client_port', 'INTEGER'], ['application_name', 'VARCHAR'], ['backend_type', 'VARCHAR'], ['session_start_ms', 'BIGINT'],
  ['process_id', 'INTEGER'], ['leader_pid', 'INTEGER'],
];
const KIND_STAGE: [string, StageType][] = [
  ['kind_id', 'BIGINT'], ['audit_type', 'VARCHAR'], ['class', 'VARCHAR'], ['command', 'VARCHAR'], ['object_type', 'VARCHAR'],
  ['command_tag', 'VARCHAR'], ['error_severity', 'VARCHAR'],
];

const OUTCOME_STAGE: [string, StageType][] = [
  ['session_id', 'VARCHAR'], ['statement_id', 'BIGINT'], ['first_line', 'BIGINT'], ['last_line', 'BIGINT'], ['sqlstate', 'VARCHAR'], ['message', 'VARCHAR'],
];

const FLUSH_CHARS = 256 * 1024;
/** Rows per Parquet row group: about 20 MB of events in memory while a file is written (DuckDB's default, 122,880, needs ~45 MB). */
const PARQUET_ROW_GROUP_ROWS = 61_440;

function parquetError(err: unknown): ConnectorError {
  const msg = ((err as Error)?.message ?? String(err)).split('\n')[0] ?? '';
  return new ConnectorError('archive', 'parquet_failed', /No space left/i.test(msg)
    ? `no space left for the Parquet spool files: ${msg}` : `writing Parquet failed: ${msg}`, false, { cause: err });
}

export class ArchiveEventsSink implements Sink<PgAuditPayload> {
  readonly kind = 'archive';
  private ranges = new Map<string, Range>();
  private duck: { instance: DuckDBInstance; conn: DuckDBConnection } | null = null;
  private readonly tag = randomBytes(4).toString('hex');
  private seq = 0;
  private readonly serverJson: string;
  /** Given each commit's manifest entries; the state sink stores them in its open transaction. */
  onEntries?: (entries: NewEntry[]) => Promise<void>;
  readonly counts = { objects: 0, bytes: 0, events: 0 };
  private lastDay = NaN;
  private lastDate = '';
  /** Parquet: the outcomes of the batches since the last commit, joined onto the events at the commit. */
  private outcomes: StatementOutcome[] = [];
  private outcomesStaged = false;

  constructor(readonly archive: Archive, private readonly options: ArchiveEventsOptions, private readonly log: Logger) {
    this.serverJson = JSON.stringify(options.server);
    mkdirSync(options.spoolDir, { recursive: true });
  }

  get where(): string {
    return this.archive.where;
  }

  private rangeOf(batch: Batch<PgAuditPayload>): Range {
    const cp = batch.checkpoint;
    let r = this.ranges.get(cp.fingerprint);
    if (!r) {
      const loc = this.options.locationOf?.(cp) ?? { name: basename(cp.path), location: cp.path };
      r = {
        source: { kind: this.options.sourceKind, server: this.options.server, name: loc.name, location: loc.location, fingerprint: cp.fingerprint },
        start: cp.offset - batch.bytes, end: cp.offset, events: 0, dates: new Map(), stages: [], contexts: new Map(), kinds: new Map(),
        objectsFile: null, objectsStream: null, sessions: [], failures: [], errors: [],
      };
      this.ranges.set(cp.fingerprint, r);
    }
    r.end = cp.offset;
    return r;
  }

  async write(batch: Batch<PgAuditPayload>): Promise<WriteReport> {
    const range = this.rangeOf(batch);
    const { packed, packedCount, objects, correlation } = batch.payload;
    range.events += packedCount + objects.length;
    for (const r of correlation.sessions) range.sessions.push(r);
    for (const r of correlation.logonFailures) range.failures.push(r);
    for (const e of correlation.errors) range.errors.push(e);
    if (this.archive.options.form === 'ndjson') {
      const fileJson = JSON.stringify(range.source.name);
      // The outcomes of this batch onto its events (most errors follow their statement closely); only a batch
      // with outcomes looks them up.
      let bySession: Map<string, StatementOutcome[]> | null = null;
      if (correlation.outcomes.length) {
        bySession = new Map();
        for (const o of firstOutcomes(correlation.outcomes)) {
          const list = bySession.get(o.session_id);
          if (list) list.push(o); else bySession.set(o.session_id, [o]);
        }
      }
      // addLine is synchronous but for a new date's object and a full buffer: await only then.
      if (packedCount > 0) {
        for (const v of recordRows(packed, dimensionsOf(batch.payload.contexts, batch.payload.kinds))) {
          const p = this.addLine(range, Number(v[COL.log_time_ms]), eventLine(this.serverJson, fileJson, v, bySession ? outcomeOf(bySession, v) : undefined));
          if (p) await p;
        }
      }
      for (const rec of objects) {
        const o = rec as unknown as Record<string, string | number | null>;
        const v = PACKED_COLUMNS.map((c) => o[c] ?? null);
        const p = this.addLine(range, Number(v[COL.log_time_ms]), eventLine(this.serverJson, fileJson, v, bySession ? outcomeOf(bySession, v) : undefined));
        if (p) await p;
      }
    } else {
      for (const o of correlation.outcomes) this.outcomes.push(o);
      if (packedCount > 0) {
        const file = join(this.options.spoolDir, `stage-${this.tag}-${this.seq++}.csv`);
        writeFileSync(file, packed);
        range.stages.push(file);
        for (const c of batch.payload.contexts) range.contexts.set(c.id, c);
        for (const k of batch.payload.kinds) range.kinds.set(k.id, k);
      }
      if (objects.length > 0) {
        if (!range.objectsStream) {
          range.objectsFile = join(this.options.spoolDir, `objects-${this.tag}-${this.seq++}.jsonl`);
          range.objectsStream = createWriteStream(range.objectsFile);
        }
        for (const rec of objects) {
          const o = rec as unknown as Record<string, unknown>;
          const line = JSON.stringify(Object.fromEntries(PACKED_COLUMNS.filter((c) => c !== 'message').map((c) => [c, o[c] ?? null]))) + '\n';
          if (!range.objectsStream.write(line)) await new Promise<void>((r) => range.objectsStream!.once('drain', r));
        }
      }
    }
    return { stored: 0, duplicates: 0, quarantined: 0 };
  }

  private addLine(range: Range, timeMs: number, line: string): Promise<void> | undefined {
    const day = Math.floor(timeMs / 86_400_000);
    if (day !== this.lastDay) { this.lastDay = day; this.lastDate = utcDate(timeMs); }
    const d = range.dates.get(this.lastDate);
    if (!d) return this.openDate(range, this.lastDate, timeMs, line);
    d.buffer += line;
    d.events++;
    if (timeMs < d.minMs) d.minMs = timeMs;
    if (timeMs > d.maxMs) d.maxMs = timeMs;
    if (d.buffer.length < FLUSH_CHARS) return undefined;
    const text = d.buffer;
    d.buffer = '';
    return d.gzip.write(text);
  }

  private async openDate(range: Range, date: string, timeMs: number, line: string): Promise<void> {
    let attempt = 1;
    let key = eventsKey('ndjson', this.options.server, date, range.source.name, range.source.fingerprint, range.start);
    while (await this.archive.state.isCommitted(key)) key = eventsKey('ndjson', this.options.server, date, range.source.name, range.source.fingerprint, range.start, ++attempt);
    const writer = await this.archive.openObject(key, { contentType: 'application/x-ndjson' });
    range.dates.set(date, { key, writer, gzip: new GzipMembers(writer, this.archive.options.compressionLevel), buffer: line, events: 1, minMs: timeMs, maxMs: timeMs });
  }

  private entryOf(range: Range, stored: StoredObject, events: number, minMs: number, maxMs: number, dataset?: CorrelationDataset): NewEntry {
    const lock = this.archive.lockOf();
    const entry: Omit<ManifestEntry, 'seq' | 'writer'> = {
      v: 1, key: stored.key, form: this.archive.options.form, size: stored.size, sha256: stored.sha256, md5: stored.md5, etag: stored.etag,
      ...(stored.versionId ? { version_id: stored.versionId } : {}), parts: stored.parts, storage_class: stored.storageClass,
      ...(this.archive.options.form === 'ndjson' ? { compression: 'gzip' as const } : {}),
      ...(this.archive.options.sse ? { sse: this.archive.options.sse } : {}), ...(lock ? { object_lock: lock } : {}),
      source: range.source, range: { unit: 'bytes', start: range.start, end: range.end }, ...(dataset ? { events: 0, dataset, rows: events } : { events }),
      first_event_time: new Date(minMs).toISOString(), last_event_time: new Date(maxMs).toISOString(),
      archived_at: new Date().toISOString(),
    };
    return entry;
  }

  async commit(_checkpoints: FileCheckpoint[]): Promise<void> {
    const entries: NewEntry[] = [];
    try {
      const sessions = await this.knownSessions();
      for (const range of this.ranges.values()) {
        if (this.archive.options.form === 'ndjson') {
          for (const d of range.dates.values()) {
            if (d.buffer) { await d.gzip.write(d.buffer); d.buffer = ''; }
            await d.gzip.end();
            const stored = await d.writer.finish();
            entries.push(this.entryOf(range, stored, d.events, d.minMs, d.maxMs));
            this.counts.objects++; this.counts.bytes += stored.size; this.counts.events += d.events;
          }
          range.dates.clear();
        } else if (range.events > 0) {
          entries.push(...await this.writeParquet(range));
        }
        entries.push(...await this.writeCorrelation(range, sessions));
      }
    } catch (err) {
      await this.rollback();
      throw err;
    }
    await this.cleanupStages();
    this.ranges.clear();
    this.outcomes = [];
    this.outcomesStaged = false;
    if (entries.length && this.onEntries) await this.onEntries(entries);
  }

  private async connection(): Promise<DuckDBConnection> {
    if (!this.duck) {
      const instance = await DuckDBInstance.create(':memory:', { threads: '1', memory_limit: '96MB', preserve_insertion_order: 'false', temp_directory: join(this.options.spoolDir, 'spill') });
      const conn = await instance.connect();
      await conn.run("LOAD icu; SET TimeZone = 'UTC'");
      this.duck = { instance, conn };
    }
    return this.duck.conn;
  }

  /** Writes the range's staged events as one Parquet file per date, then uploads each. */
  private async writeParquet(range: Range): Promise<NewEntry[]> {
    const conn = await this.connection();
    const parts: string[] = [];
    if (range.stages.length) parts.push(await this.stagedRecordsSql(conn, range));
    if (range.objectsStream) {
      await new Promise<void>((r) => range.objectsStream!.end(r));
      range.objectsStream = null;
      const cols = PACKED_COLUMNS.filter((c) => c !== 'message').map((c) => `'${c}': '${c === 'client_port' || c === 'process_id' || c === 'leader_pid' ? 'INTEGER' : ['log_time_ms', 'session_line_num', 'transaction_id', 'session_start_ms', 'statement_id', 'substatement_id', 'rows'].includes(c) ? 'BIGINT' : 'VARCHAR'}'`).join(', ');
      parts.push(`SELECT ${msToTimestamptz('log_time_ms')} AS log_time, ${msToTimestamptz('session_start_ms')} AS session_start, *
        FROM read_json(${sqlString(range.objectsFile!)}, format = 'newline_delimited', maximum_object_size = 1073741824, columns = {${cols}})`);
    }
    const out = join(this.options.spoolDir, `parquet-${this.tag}-${this.seq++}`);
    mkdirSync(out, { recursive: true });
    const outcomes = await this.stageOutcomes(conn);
    const select = `SELECT ${EVENT_COLUMNS.map((c) => `e.${c}`).join(', ')}, ${sqlString(range.source.name)} AS file_name,
        ${outcomes ? 'o.sqlstate, o.message AS error_message' : 'NULL::VARCHAR AS sqlstate, NULL::VARCHAR AS error_message'}
      FROM (${parts.map((p) => `SELECT ${EVENT_COLUMNS.join(', ')} FROM (${p})`).join(' UNION ALL ')}) AS e
      ${outcomes ? `LEFT JOIN temp.commit_outcomes AS o ON o.session_id = e.session_id AND o.statement_id = e.statement_id
        AND e.session_line_num BETWEEN o.first_line AND o.last_line` : ''}`;
    try {
      let byDate: [string, { events: number; min: number; max: number }][];
      try {
        const stats = await conn.runAndReadAll(`SELECT strftime(log_time, '%Y-%m-%d') AS date, count(*), epoch_ms(min(log_time)), epoch_ms(max(log_time)) FROM (${select}) GROUP BY 1 ORDER BY 1`);
        byDate = stats.getRows().map((r) => [String(r[0]), { events: Number(r[1]), min: Number(r[2]), max: Number(r[3]) }]);
      } catch (err) {
        throw parquetError(err);
      }
      const entries: NewEntry[] = [];
      // One date at a time: a single Parquet writer (and its row group) in memory.
      for (const [date, s] of byDate) {
        const path = join(out, `${date}.parquet`);
        try {
          await conn.run(`COPY (SELECT * FROM (${select}) WHERE strftime(log_time, '%Y-%m-%d') = ${sqlString(date)})
            TO ${sqlString(path)} (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE ${PARQUET_ROW_GROUP_ROWS})`);
        } catch (err) {
          throw parquetError(err);
        }
        let attempt = 1;
        let key = eventsKey('parquet', this.options.server, date, range.source.name, range.source.fingerprint, range.start);
        while (await this.archive.state.isCommitted(key)) key = eventsKey('parquet', this.options.server, date, range.source.name, range.source.fingerprint, range.start, ++attempt);
        const stored = await this.archive.writeObject(key, { contentType: 'application/vnd.apache.parquet' }, async (w) => {
          for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) await w.write(chunk as Buffer);
        });
        await fsp.rm(path, { force: true });
        entries.push(this.entryOf(range, stored, s.events, s.min, s.max));
        this.counts.objects++; this.counts.bytes += stored.size; this.counts.events += s.events;
      }
      return entries;
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }

  /** Parquet: the commit's outcomes as temp.commit_outcomes (one per statement), once per commit; false when there are none. */
  private async stageOutcomes(conn: DuckDBConnection): Promise<boolean> {
    if (this.outcomes.length === 0) return false;
    if (this.outcomesStaged) return true;
    const file = join(this.options.spoolDir, `outcomes-${this.tag}-${this.seq++}.csv`);
    const { text, sql } = stageRows(file, OUTCOME_STAGE, firstOutcomes(this.outcomes).map((o) => [o.session_id, o.statement_id, o.first_line, o.last_line, o.sqlstate, o.message]));
    writeFileSync(file, text);
    try {
      await conn.run(`CREATE OR REPLACE TEMP TABLE commit_outcomes AS SELECT * FROM ${sql}`);
    } finally {
      await fsp.rm(file, { force: true });
    }
    this.outcomesStaged = true;
    return true;
  }

  /** The range's staged rows with their contexts and kinds joined back: every record column. */
  private async stagedRecordsSql(conn: DuckDBConnection, range: Range): Promise<string> {
    const rowFiles = [...range.stages];
    const dims = join(this.options.spoolDir, `dims-${this.tag}-${this.seq++}`);
    const ctx = stageRows(`${dims}-contexts.csv`, CONTEXT_STAGE, [...range.contexts.values()].map((c) => [c.id, c.session_id, c.user_name,
      c.database_name, c.client_addr, c.client_port, c.application_name, c.backend_type, c.session_start_ms, c.process_id, c.leader_pid]));
    const kinds = stageRows(`${dims}-kinds.csv`, KIND_STAGE, [...range.kinds.values()].map((k) => [k.id, k.audit_type, k.class, k.command,
      k.object_type, k.command_tag, k.error_severity]));
    writeFileSync(`${dims}-contexts.csv`, ctx.text);
    writeFileSync(`${dims}-kinds.csv`, kinds.text);
    range.stages.push(`${dims}-contexts.csv`, `${dims}-kinds.csv`); // removed with the stages
    await conn.run(`CREATE OR REPLACE TEMP TABLE range_contexts AS SELECT * FROM ${ctx.sql}`);
    await conn.run(`CREATE OR REPLACE TEMP TABLE range_kinds AS SELECT * FROM ${kinds.sql}`);
    return `SELECT r.log_time, c.user_name, c.database_name, c.client_addr, c.client_port, c.application_name, c.session_id, r.session_line_num,
        c.process_id, r.virtual_transaction_id, r.transaction_id, k.command_tag, ${msToTimestamptz('c.session_start_ms')} AS session_start,
        k.error_severity, c.backend_type, c.leader_pid, r.query_id, k.audit_type, r.statement_id, r.substatement_id, k.class, k.command,
        k.object_type, r.object_name, r.statement, r.parameter, r.rows
      FROM (${readPackedSql(rowFiles)}) AS r
      JOIN temp.range_contexts AS c ON c.context_id = r.context_id JOIN temp.range_kinds AS k ON k.kind_id = r.kind_id`;
  }

  private async cleanupStages(): Promise<void> {
    for (const r of this.ranges.values()) {
      r.objectsStream?.destroy();
      for (const f of r.stages) await fsp.rm(f, { force: true });
      if (r.objectsFile) await fsp.rm(r.objectsFile, { force: true });
    }
  }

  /** What the state store knows of the sessions this commit's ranges have records of. */
  private async knownSessions(): Promise<Map<string, StoredSession>> {
    const ids = new Set<string>();
    for (const r of this.ranges.values()) for (const s of r.sessions) ids.add(s.session_id);
    if (ids.size === 0 || !this.options.storedSessions) return new Map();
    return this.options.storedSessions([...ids]);
  }

  /**
   * The range's sessions (each merged into what is known, which it updates: a later range of the commit
   * starts from there), logon failures and statement errors: one object per dataset and date.
   */
  private async writeCorrelation(range: Range, known: Map<string, StoredSession>): Promise<NewEntry[]> {
    const touched = new Set<string>();
    for (const r of range.sessions) {
      touched.add(r.session_id);
      known.set(r.session_id, mergeSession(known.get(r.session_id), r));
    }
    const datasets: [CorrelationDataset, CorrelationRow[]][] = [
      ['sessions', [...touched].map((id) => sessionRow(id, known.get(id)!))],
      ['logon_failures', range.failures.map(logonFailureRow)],
      ['statement_errors', range.errors.map((e) => statementErrorRow(e.record, e.statementId))],
    ];
    const entries: NewEntry[] = [];
    for (const [dataset, rows] of datasets) {
      const byDate = new Map<string, CorrelationRow[]>();
      for (const row of rows) {
        const date = utcDate(row.dateMs);
        const list = byDate.get(date);
        if (list) list.push(row); else byDate.set(date, [row]);
      }
      for (const [date, list] of byDate) {
        const form = this.archive.options.form === 'parquet' ? 'parquet' : 'ndjson';
        let attempt = 1;
        let key = eventsKey(form, this.options.server, date, range.source.name, range.source.fingerprint, range.start, attempt, dataset);
        while (await this.archive.state.isCommitted(key)) key = eventsKey(form, this.options.server, date, range.source.name, range.source.fingerprint, range.start, ++attempt, dataset);
        const stored = form === 'ndjson' ? await this.writeCorrelationNdjson(key, dataset, list) : await this.writeCorrelationParquet(key, dataset, list);
        const minMs = list.reduce((m, r) => Math.min(m, r.dateMs), Infinity);
        const maxMs = list.reduce((m, r) => Math.max(m, r.dateMs), -Infinity);
        entries.push(this.entryOf(range, stored, list.length, minMs, maxMs, dataset));
        this.counts.objects++; this.counts.bytes += stored.size;
      }
    }
    return entries;
  }

  private async writeCorrelationNdjson(key: string, dataset: CorrelationDataset, rows: CorrelationRow[]): Promise<StoredObject> {
    return this.archive.writeObject(key, { contentType: 'application/x-ndjson' }, async (w) => {
      const gzip = new GzipMembers(w, this.archive.options.compressionLevel);
      try {
        let text = '';
        for (const row of rows) {
          text += correlationLine(dataset, this.serverJson, row);
          if (text.length >= FLUSH_CHARS) { await gzip.write(text); text = ''; }
        }
        if (text) await gzip.write(text);
        await gzip.end();
      } catch (err) {
        await gzip.abandon();
        throw err;
      }
    });
  }

  private async writeCorrelationParquet(key: string, dataset: CorrelationDataset, rows: CorrelationRow[]): Promise<StoredObject> {
    const conn = await this.connection();
    const stage = join(this.options.spoolDir, `corr-${this.tag}-${this.seq++}.csv`);
    const path = join(this.options.spoolDir, `corr-${this.tag}-${this.seq++}.parquet`);
    try {
      const { text, sql } = stageRows(stage, stageColumns(dataset), rows.map((r) => r.values));
      writeFileSync(stage, text);
      try {
        await conn.run(`COPY (SELECT ${parquetColumns(dataset)} FROM ${sql}) TO ${sqlString(path)} (FORMAT parquet, COMPRESSION zstd)`);
      } catch (err) {
        throw parquetError(err);
      }
      return await this.archive.writeObject(key, { contentType: 'application/vnd.apache.parquet' }, async (w) => {
        for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) await w.write(chunk as Buffer);
      });
    } finally {
      await fsp.rm(stage, { force: true });
      await fsp.rm(path, { force: true });
    }
  }

  async rollback(): Promise<void> {
    this.outcomes = [];
    this.outcomesStaged = false;
    for (const r of this.ranges.values()) {
      for (const d of r.dates.values()) {
        await d.gzip.abandon();
        await this.archive.abandon(d.key, d.writer).catch(() => {});
      }
    }
    await this.cleanupStages();
    this.ranges.clear();
  }

  async close(): Promise<void> {
    await this.rollback();
    if (this.duck) {
      this.duck.conn.closeSync();
      this.duck.instance.closeSync();
      this.duck = null;
    }
    rmSync(this.options.spoolDir, { recursive: true, force: true });
  }
}
