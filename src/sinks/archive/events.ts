import { createReadStream, createWriteStream, mkdirSync, promises as fsp, rmSync, writeFileSync, type WriteStream } from 'node:fs';
import { basename, join } from 'node:path';
import { createInterface } from 'node:readline';
import { randomBytes } from 'node:crypto';
import { DuckDBInstance, type DuckDBConnection } from '../../duckdb/duckdb.js';
import type { Batch, FileCheckpoint, Sink, WriteReport } from '../../core/connector.js';
import type { Logger } from '../../core/log.js';
import { dimensionsOf, PACKED_COLUMNS, recordRows } from '../../parse/packed.js';
import { firstOutcomes, type EventContext, type EventKind, type StatementOutcome } from '../../parse/session-tracker.js';
import type { SessionRecord } from '../../parse/session-log.js';
import type { PgAuditPayload } from '../../model/pg-audit-payload.js';
import type { NewEntry } from '../../state/archive-state.js';
import type { StoredSession } from '../../model/sessions.js';
import { msToTimestamptz, sqlString } from '../../duckdb/sql.js';
import { readPackedSql } from '../../duckdb/packed-sql.js';
import { CONTEXT_STAGE, KIND_STAGE, stageRows, type StageType } from '../../duckdb/stage.js';
import { jsonString } from '../../core/json.js';
import { GzipMembers } from './compress.js';
import {
  correlationLine,
  logonFailureRow,
  mergeSession,
  parquetColumns,
  sessionRow,
  stageColumns,
  statementErrorRow,
  type CorrelationRow,
} from './correlation.js';
import type { Archive } from './archive.js';
import { eventsKey, rejectsKey, utcDate, type CorrelationDataset } from './layout.js';
import type { ManifestEntry, SourceIdentity } from './manifest.js';
import type { ObjectWriter, StoredObject } from './store.js';
import {
  BASE_MEMORY,
  BASE_MEMORY_SETTING,
  copyLines,
  copyParquet,
  dateStats,
  failureKind,
  indexLines,
  isResourceFailure,
  keyRangeSql,
  ofDateSql,
  packedKeys,
  parquetError,
  type DateStats,
  type LineKey,
  type SearchKey,
} from './parquet-write.js';

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
 *
 * Kept as one file (about 950 lines): the ndjson and Parquet forms share the range bookkeeping, the staging
 * and the commit protocol with the state sink; what only Parquet needs to find a record it refuses is
 * parquet-write.ts.
 */
export const EVENT_COLUMNS = [
  'log_time',
  'user_name',
  'database_name',
  'client_addr',
  'client_port',
  'application_name',
  'session_id',
  'session_line_num',
  'process_id',
  'virtual_transaction_id',
  'transaction_id',
  'command_tag',
  'session_start',
  'error_severity',
  'backend_type',
  'leader_pid',
  'query_id',
  'audit_type',
  'statement_id',
  'substatement_id',
  'class',
  'command',
  'object_type',
  'object_name',
  'statement',
  'parameter',
  'rows',
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
    if (sec !== this.sec) {
      this.sec = sec;
      this.prefix = new Date(sec * 1000).toISOString().slice(0, 20);
    }
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
  const statement = Number(v[COL.statement_id]),
    line = Number(v[COL.session_line_num]);
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
  /** Bytes of the longest line of the objects file (DuckDB's JSON reader is sized to it). */
  objectsLongest: number;
  /** Bytes of the objects file. */
  objectsBytes: number;
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

const OUTCOME_STAGE: [string, StageType][] = [
  ['session_id', 'VARCHAR'],
  ['statement_id', 'BIGINT'],
  ['first_line', 'BIGINT'],
  ['last_line', 'BIGINT'],
  ['sqlstate', 'VARCHAR'],
  ['message', 'VARCHAR'],
];

const FLUSH_CHARS = 256 * 1024;
/** One range's Parquet being written: its objects' entries, the keys taken, the records Parquet refused. */
interface ParquetJob {
  range: Range;
  out: string;
  used: Set<string>;
  entries: NewEntry[];
  rejects: { v: (string | number | null)[]; reason: string }[];
  /** Spool files made (for their names). */
  files: number;
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
  readonly counts = { objects: 0, bytes: 0, events: 0, rejected: 0 };
  private lastDay = NaN;
  private lastDate = '';
  /** Parquet: the outcomes of the batches since the last commit, joined onto the events at the commit. */
  private outcomes: StatementOutcome[] = [];
  private outcomesStaged = false;

  constructor(
    readonly archive: Archive,
    private readonly options: ArchiveEventsOptions,
    private readonly log: Logger,
  ) {
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
        start: cp.offset - batch.bytes,
        end: cp.offset,
        events: 0,
        dates: new Map(),
        stages: [],
        contexts: new Map(),
        kinds: new Map(),
        objectsFile: null,
        objectsStream: null,
        objectsLongest: 0,
        objectsBytes: 0,
        sessions: [],
        failures: [],
        errors: [],
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
          if (list) list.push(o);
          else bySession.set(o.session_id, [o]);
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
          const bytes = Buffer.byteLength(line);
          if (bytes > range.objectsLongest) range.objectsLongest = bytes;
          range.objectsBytes += bytes;
          if (!range.objectsStream.write(line)) await new Promise<void>((r) => range.objectsStream!.once('drain', r));
        }
      }
    }
    return { stored: 0, duplicates: 0, quarantined: 0 };
  }

  private addLine(range: Range, timeMs: number, line: string): Promise<void> | undefined {
    const day = Math.floor(timeMs / 86_400_000);
    if (day !== this.lastDay) {
      this.lastDay = day;
      this.lastDate = utcDate(timeMs);
    }
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
    while (await this.archive.state.isCommitted(key))
      key = eventsKey('ndjson', this.options.server, date, range.source.name, range.source.fingerprint, range.start, ++attempt);
    const writer = await this.archive.openObject(key, { contentType: 'application/x-ndjson' });
    range.dates.set(date, {
      key,
      writer,
      gzip: new GzipMembers(writer, this.archive.options.compressionLevel),
      buffer: line,
      events: 1,
      minMs: timeMs,
      maxMs: timeMs,
    });
  }

  private entryOf(range: Range, stored: StoredObject, events: number, minMs: number, maxMs: number, dataset?: CorrelationDataset): NewEntry {
    const lock = this.archive.lockOf();
    const entry: Omit<ManifestEntry, 'seq' | 'writer'> = {
      v: 1,
      key: stored.key,
      form: this.archive.options.form,
      size: stored.size,
      sha256: stored.sha256,
      md5: stored.md5,
      etag: stored.etag,
      ...(stored.versionId ? { version_id: stored.versionId } : {}),
      parts: stored.parts,
      storage_class: stored.storageClass,
      ...(this.archive.options.form === 'ndjson' ? { compression: 'gzip' as const } : {}),
      ...(this.archive.options.sse ? { sse: this.archive.options.sse } : {}),
      ...(lock ? { object_lock: lock } : {}),
      source: range.source,
      range: { unit: 'bytes', start: range.start, end: range.end },
      ...(dataset ? { events: 0, dataset, rows: events } : { events }),
      first_event_time: new Date(minMs).toISOString(),
      last_event_time: new Date(maxMs).toISOString(),
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
            if (d.buffer) {
              await d.gzip.write(d.buffer);
              d.buffer = '';
            }
            await d.gzip.end();
            const stored = await d.writer.finish();
            entries.push(this.entryOf(range, stored, d.events, d.minMs, d.maxMs));
            this.counts.objects++;
            this.counts.bytes += stored.size;
            this.counts.events += d.events;
          }
          range.dates.clear();
        } else if (range.events > 0) {
          entries.push(...(await this.writeParquet(range)));
        }
        entries.push(...(await this.writeCorrelation(range, sessions)));
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
      const instance = await DuckDBInstance.create(':memory:', {
        threads: '1',
        memory_limit: BASE_MEMORY_SETTING,
        preserve_insertion_order: 'false',
        temp_directory: join(this.options.spoolDir, 'spill'),
      });
      const conn = await instance.connect();
      // The outcomes (one row per failed statement) are the hash join's build side, never the events.
      await conn.run("LOAD icu; SET TimeZone = 'UTC'; SET disabled_optimizers = 'build_side_probe_side'");
      this.duck = { instance, conn };
    }
    return this.duck.conn;
  }

  /**
   * Writes the range's staged events as one Parquet file per date, then uploads each. Very large records get
   * the memory they need (up to parquet_memory_limit). Should a date's file fail for a reason other than space,
   * its ordinary and its large records (over 1 MB, staged as JSON) are written apart, each searched for the
   * records that cannot be written (searchParquet); those are archived beside the Parquet files as NDJSON.gz
   * (rejects). One record never stalls the archive.
   */
  private async writeParquet(range: Range): Promise<NewEntry[]> {
    const conn = await this.connection();
    const packedSql = range.stages.length ? await this.stagedRecordsSql(conn, range) : null;
    if (range.objectsStream) {
      await new Promise<void>((r) => range.objectsStream!.end(r));
      range.objectsStream = null;
    }
    const objectsSql = range.objectsFile ? this.objectsSql(range.objectsFile, range.objectsLongest) : null;
    const out = join(this.options.spoolDir, `parquet-${this.tag}-${this.seq++}`);
    mkdirSync(out, { recursive: true });
    const outcomes = await this.stageOutcomes(conn);
    const selectOf = (parts: string[]) => `SELECT ${EVENT_COLUMNS.map((c) => `e.${c}`).join(', ')}, ${sqlString(range.source.name)} AS file_name,
        ${outcomes ? 'o.sqlstate, o.message AS error_message' : 'NULL::VARCHAR AS sqlstate, NULL::VARCHAR AS error_message'}
      FROM (${parts.map((p) => `SELECT ${EVENT_COLUMNS.join(', ')} FROM (${p})`).join(' UNION ALL ')}) AS e
      ${
        outcomes
          ? `LEFT JOIN temp.commit_outcomes AS o ON o.session_id = e.session_id AND o.statement_id = e.statement_id
        AND e.session_line_num BETWEEN o.first_line AND o.last_line`
          : ''
      }`;
    const memory = this.memoryFor(range);
    if (memory !== BASE_MEMORY) await conn.run(`SET memory_limit = '${Math.ceil(memory / 1048576)}MiB'`);
    const job: ParquetJob = { range, out, used: new Set(), entries: [], rejects: [], files: 0 };
    try {
      // One date at a time: a single Parquet writer (and its row group) in memory.
      const all = selectOf([packedSql, objectsSql].filter((p): p is string => p !== null));
      let byDate: Map<string, DateStats> | null = null;
      try {
        byDate = await dateStats(conn, all);
      } catch (err) {
        if (isResourceFailure(err) || !objectsSql) throw parquetError(err);
        this.log.warn('The events of a range could not be read back for Parquet; writing its large records apart.', {
          file: range.source.name,
          reason: failureKind(err),
        });
      }
      const failedDates = new Set<string>();
      for (const [date, s] of byDate ?? []) {
        const path = this.spoolPath(job);
        const failed = await copyParquet(conn, ofDateSql(all, date), path);
        if (failed === null) await this.uploadParquet(job, date, path, s);
        else if (isResourceFailure(failed)) throw parquetError(failed);
        else {
          failedDates.add(date);
          this.log.warn('A Parquet file could not be written; looking for the records that cannot be.', {
            file: range.source.name,
            date,
            events: s.events,
            reason: failureKind(failed),
          });
        }
      }
      if (byDate === null || failedDates.size > 0) {
        const wanted = (date: string) => byDate === null || failedDates.has(date);
        if (packedSql) {
          // The ordinary records: a record that fails on its own is not to blame (the run fails).
          const packed = selectOf([packedSql]);
          let dates: Map<string, DateStats>;
          try {
            dates = await dateStats(conn, packed);
          } catch (err) {
            throw parquetError(err);
          }
          for (const date of dates.keys()) {
            if (!wanted(date)) continue;
            const keys = await packedKeys(conn, ofDateSql(packed, date));
            await this.searchParquet(
              conn,
              job,
              date,
              keys,
              false,
              async (lo, hi) => `SELECT * FROM (${ofDateSql(packed, date)}) WHERE ${keyRangeSql(keys, lo, hi)}`,
            );
          }
        }
        if (range.objectsFile) {
          // The large records, each date's written from a JSON file of just the lines tried: one that fails on its
          // own (even being read) is rejected.
          const lines = await indexLines(range.objectsFile);
          const dates = new Map<string, LineKey[]>();
          for (const l of lines) {
            if (!wanted(l.date)) continue;
            const list = dates.get(l.date);
            if (list) list.push(l);
            else dates.set(l.date, [l]);
          }
          for (const [date, keys] of dates) {
            keys.sort((a, b) => a.bytes - b.bytes || (a.session < b.session ? -1 : a.session > b.session ? 1 : a.line - b.line));
            let file = '';
            await this.searchParquet(conn, job, date, keys, true, async (lo, hi) => {
              if (file) await fsp.rm(file, { force: true }); // the previous try's
              file = `${this.spoolPath(job)}.jsonl`;
              await copyLines(range.objectsFile!, keys.slice(lo, hi), file);
              return selectOf([
                this.objectsSql(
                  file,
                  keys.slice(lo, hi).reduce((m, k) => Math.max(m, k.length), 0),
                ),
              ]);
            });
          }
        }
      }
      if (job.rejects.length) await this.writeRejects(job);
      return job.entries;
    } finally {
      if (memory !== BASE_MEMORY) await conn.run(`SET memory_limit = '${BASE_MEMORY_SETTING}'`).catch(() => {});
      rmSync(out, { recursive: true, force: true });
    }
  }

  /** The large records of a JSON-lines file, with the columns of a packed row. */
  private objectsSql(file: string, longest: number): string {
    const cols = PACKED_COLUMNS.filter((c) => c !== 'message')
      .map(
        (c) =>
          `'${c}': '${c === 'client_port' || c === 'process_id' || c === 'leader_pid' ? 'INTEGER' : ['log_time_ms', 'session_line_num', 'transaction_id', 'session_start_ms', 'statement_id', 'substatement_id', 'rows'].includes(c) ? 'BIGINT' : 'VARCHAR'}'`,
      )
      .join(', ');
    // DuckDB's JSON reader holds about twice the largest object: sized to the longest line, not to its 1 GiB cap.
    const maxObject = Math.max(16 << 20, longest + (64 << 10));
    return `SELECT ${msToTimestamptz('log_time_ms')} AS log_time, ${msToTimestamptz('session_start_ms')} AS session_start, *
      FROM read_json(${sqlString(file)}, format = 'newline_delimited', maximum_object_size = ${maxObject}, columns = {${cols}})`;
  }

  private spoolPath(job: ParquetJob): string {
    return join(job.out, `${job.files++}.parquet`);
  }

  /**
   * The memory a range's Parquet may take: the base, plus room for the JSON reader's buffer (twice the largest
   * record) and for the large records' text held at once, up to the cap.
   */
  private memoryFor(range: Range): number {
    if (range.objectsLongest === 0) return BASE_MEMORY;
    return Math.max(BASE_MEMORY, Math.min(this.archive.options.parquetMemoryLimit, BASE_MEMORY + 4 * range.objectsLongest + 2 * range.objectsBytes));
  }

  /**
   * Writes one date's records (`keys`, smallest first; `selectOf(lo, hi)` selects [lo, hi) of them), searching
   * for those that cannot be written: all at once first, then the longest run of the smallest records that can
   * be written becomes one file (binary search on its length), the rest is tried at once, and so on — one file
   * for the ordinary records and one for the large ones in the usual case. A record that fails on its own is
   * rejected (`rejectAlone`) or, for the ordinary records, fails the run: it is not one record's fault then.
   */
  private async searchParquet(
    conn: DuckDBConnection,
    job: ParquetJob,
    date: string,
    keys: SearchKey[],
    rejectAlone: boolean,
    selectOf: (lo: number, hi: number) => Promise<string>,
  ): Promise<void> {
    const tryWrite = async (lo: number, hi: number): Promise<{ path: string } | { failed: unknown }> => {
      const path = this.spoolPath(job);
      const failed = await copyParquet(conn, await selectOf(lo, hi), path);
      if (failed !== null && isResourceFailure(failed)) throw parquetError(failed);
      return failed === null ? { path } : { failed };
    };
    const upload = async (path: string) => {
      const st = (
        await conn.runAndReadAll(`SELECT count(*), epoch_ms(min(log_time)), epoch_ms(max(log_time)) FROM read_parquet(${sqlString(path)})`)
      ).getRows()[0]!;
      await this.uploadParquet(job, date, path, { events: Number(st[0]), min: Number(st[1]), max: Number(st[2]) });
    };
    const rejected = new Map<string, string>();
    let lo = 0;
    let failure: unknown = null;
    while (lo < keys.length) {
      const rest = await tryWrite(lo, keys.length);
      if ('path' in rest) {
        await upload(rest.path);
        break;
      }
      failure = rest.failed;
      // The longest prefix [lo, good) that can be written; [lo, bad) cannot.
      let good = lo,
        bad = keys.length,
        kept: string | null = null;
      while (bad - good > 1) {
        const mid = good + Math.floor((bad - good) / 2);
        const r = await tryWrite(lo, mid);
        if ('path' in r) {
          if (kept) await fsp.rm(kept, { force: true });
          kept = r.path;
          good = mid;
        } else {
          failure = r.failed;
          bad = mid;
        }
      }
      if (kept) {
        await upload(kept);
        lo = good;
      } else {
        // The record at lo cannot be written on its own.
        if (!rejectAlone) throw parquetError(failure);
        const k = keys[lo]!;
        rejected.set(`${k.session}\u0000${k.line}`, `${failureKind(failure)} writing a record of ${k.bytes.toLocaleString('en-US')} bytes to Parquet`);
        lo++;
      }
    }
    if (rejected.size) {
      for (const v of await this.rangeRows(job.range, rejected))
        job.rejects.push({ v, reason: rejected.get(`${v[COL.session_id]}\u0000${v[COL.session_line_num]}`)! });
    }
  }

  /** Uploads a written Parquet file under the range's next free key of the date. */
  private async uploadParquet(job: ParquetJob, date: string, path: string, s: { events: number; min: number; max: number }): Promise<void> {
    const key = await this.freeKey(job, (attempt) =>
      eventsKey('parquet', this.options.server, date, job.range.source.name, job.range.source.fingerprint, job.range.start, attempt),
    );
    const stored = await this.archive.writeObject(key, { contentType: 'application/vnd.apache.parquet' }, async (w) => {
      for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) await w.write(chunk as Buffer);
    });
    await fsp.rm(path, { force: true });
    job.entries.push(this.entryOf(job.range, stored, s.events, s.min, s.max));
    this.counts.objects++;
    this.counts.bytes += stored.size;
    this.counts.events += s.events;
  }

  private async freeKey(job: ParquetJob, keyOf: (attempt: number) => string): Promise<string> {
    let attempt = 1;
    let key = keyOf(attempt);
    while (job.used.has(key) || (await this.archive.state.isCommitted(key))) key = keyOf(++attempt);
    job.used.add(key);
    return key;
  }

  /** The range's large records (the objects file), as rows in PACKED_COLUMNS order. */
  private async objectRows(range: Range): Promise<(string | number | null)[][]> {
    const rows: (string | number | null)[][] = [];
    if (!range.objectsFile) return rows;
    const lines = createInterface({ input: createReadStream(range.objectsFile, { encoding: 'utf8', highWaterMark: 1 << 20 }), crlfDelay: Infinity });
    for await (const line of lines) {
      if (!line) continue;
      const o = JSON.parse(line) as Record<string, string | number | null>;
      rows.push(PACKED_COLUMNS.map((c) => o[c] ?? null));
    }
    return rows;
  }

  /** The range's rows (packed stages and objects) whose (session_id, session_line_num) is in `wanted`. */
  private async rangeRows(range: Range, wanted: Map<string, unknown>): Promise<(string | number | null)[][]> {
    const rows: (string | number | null)[][] = [];
    const dims = dimensionsOf([...range.contexts.values()], [...range.kinds.values()]);
    for (const file of range.stages.filter((f) => basename(f).startsWith('stage-'))) {
      for (const v of recordRows(await fsp.readFile(file), dims)) {
        if (wanted.has(`${v[COL.session_id]}\u0000${v[COL.session_line_num]}`)) rows.push([...v]);
      }
    }
    for (const v of await this.objectRows(range)) if (wanted.has(`${v[COL.session_id]}\u0000${v[COL.session_line_num]}`)) rows.push(v);
    return rows;
  }

  /**
   * The records Parquet could not take, as NDJSON.gz (the ndjson form's lines) under pgaudit-rejects/, one object
   * per date, each listed in the manifest with its events and why each record is there.
   */
  private async writeRejects(job: ParquetJob): Promise<void> {
    const fileJson = JSON.stringify(job.range.source.name);
    const bySession = new Map<string, StatementOutcome[]>();
    for (const o of firstOutcomes(this.outcomes)) {
      const list = bySession.get(o.session_id);
      if (list) list.push(o);
      else bySession.set(o.session_id, [o]);
    }
    const byDate = new Map<string, { v: (string | number | null)[]; reason: string }[]>();
    for (const r of job.rejects) {
      const date = utcDate(Number(r.v[COL.log_time_ms]));
      const list = byDate.get(date);
      if (list) list.push(r);
      else byDate.set(date, [r]);
    }
    for (const [date, list] of byDate) {
      list.sort((a, b) => Number(a.v[COL.log_time_ms]) - Number(b.v[COL.log_time_ms]));
      const key = await this.freeKey(job, (attempt) =>
        rejectsKey(this.options.server, date, job.range.source.name, job.range.source.fingerprint, job.range.start, attempt),
      );
      const stored = await this.archive.writeObject(key, { contentType: 'application/x-ndjson' }, async (w) => {
        const gzip = new GzipMembers(w, this.archive.options.compressionLevel);
        try {
          for (const r of list) await gzip.write(eventLine(this.serverJson, fileJson, r.v, outcomeOf(bySession, r.v)));
          await gzip.end();
        } catch (err) {
          await gzip.abandon();
          throw err;
        }
      });
      const times = list.map((r) => Number(r.v[COL.log_time_ms]));
      const entry = this.entryOf(job.range, stored, list.length, Math.min(...times), Math.max(...times));
      entry.compression = 'gzip';
      entry.rejected = list.map((r) => ({ session_id: String(r.v[COL.session_id]), session_line_num: Number(r.v[COL.session_line_num]), reason: r.reason }));
      job.entries.push(entry);
      this.counts.objects++;
      this.counts.bytes += stored.size;
      this.counts.events += list.length;
      this.counts.rejected += list.length;
    }
    this.log.warn(
      'Records that cannot be written to Parquet were archived as NDJSON.gz beside it (pgaudit-rejects/); the manifest lists each with the reason.',
      {
        file: job.range.source.name,
        records: job.rejects.length,
      },
    );
  }

  /** Parquet: the commit's outcomes as temp.commit_outcomes (one per statement), once per commit; false when there are none. */
  private async stageOutcomes(conn: DuckDBConnection): Promise<boolean> {
    if (this.outcomes.length === 0) return false;
    if (this.outcomesStaged) return true;
    const file = join(this.options.spoolDir, `outcomes-${this.tag}-${this.seq++}.csv`);
    const { text, sql } = stageRows(
      file,
      OUTCOME_STAGE,
      firstOutcomes(this.outcomes).map((o) => [o.session_id, o.statement_id, o.first_line, o.last_line, o.sqlstate, o.message]),
    );
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
    const ctx = stageRows(
      `${dims}-contexts.csv`,
      CONTEXT_STAGE,
      [...range.contexts.values()].map((c) => [
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
    const kinds = stageRows(
      `${dims}-kinds.csv`,
      KIND_STAGE,
      [...range.kinds.values()].map((k) => [k.id, k.audit_type, k.class, k.command, k.object_type, k.command_tag, k.error_severity]),
    );
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
        if (list) list.push(row);
        else byDate.set(date, [row]);
      }
      for (const [date, list] of byDate) {
        const form = this.archive.options.form === 'parquet' ? 'parquet' : 'ndjson';
        let attempt = 1;
        let key = eventsKey(form, this.options.server, date, range.source.name, range.source.fingerprint, range.start, attempt, dataset);
        while (await this.archive.state.isCommitted(key))
          key = eventsKey(form, this.options.server, date, range.source.name, range.source.fingerprint, range.start, ++attempt, dataset);
        const stored = form === 'ndjson' ? await this.writeCorrelationNdjson(key, dataset, list) : await this.writeCorrelationParquet(key, dataset, list);
        const minMs = list.reduce((m, r) => Math.min(m, r.dateMs), Infinity);
        const maxMs = list.reduce((m, r) => Math.max(m, r.dateMs), -Infinity);
        entries.push(this.entryOf(range, stored, list.length, minMs, maxMs, dataset));
        this.counts.objects++;
        this.counts.bytes += stored.size;
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
          if (text.length >= FLUSH_CHARS) {
            await gzip.write(text);
            text = '';
          }
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
      const { text, sql } = stageRows(
        stage,
        stageColumns(dataset),
        rows.map((r) => r.values),
      );
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
