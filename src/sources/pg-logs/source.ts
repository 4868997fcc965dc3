import type { StateReader, StoredFileState } from '../../core/connector.js';
import { ConnectorError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import type { SourceItem } from '../../core/pipeline.js';
import { profile } from '../../core/profile.js';
import { TimestampResolver, type StatementState } from '../../parse/index.js';
import type { PgAuditPayload } from '../../model/pg-audit-payload.js';
import type { DamagedContent } from './decompress.js';
import {
  discoverLogFiles,
  FINGERPRINT_BYTES,
  fingerprintOf,
  readHeadChecked,
  tailHashOf,
  type Discovery,
  type ListedFile,
  type LogFile,
  type LogFormat,
} from './files.js';
import { InlineParser, ParseThread, type Parser, type ParserOptions } from './parse-thread.js';

/** Below this much to read, the files are parsed on the main thread (starting the parser thread takes ~50 ms). */
const THREAD_MIN_BYTES = 32 << 20;
import { readTailBefore } from './reader.js';

/** Settings of a pg_logs source (see the config schema for their documentation). */
export interface PgLogsOptions {
  paths: string[];
  server: string;
  fileGlob?: string;
  preferFormat?: LogFormat;
  skipActive: boolean;
  logTimezone?: string;
  maxRecordBytes: number;
  batchBytes: number;
  /** Re-read the given files from their start and replace what is stored from them. */
  force: boolean;
  /** Keep each record's raw message (a sink stores it). */
  packMessage?: boolean;
  /** Mask secrets before any sink (default true: redaction.enabled of the config). */
  redact?: boolean;
  /** The user's patterns (redaction.patterns: NAME=REGEX), with redaction on. */
  patterns?: readonly string[];
}

/** The state store's side of correlation: the last statement of each session open at the last commit. */
export interface SessionStateReader extends StateReader {
  sessionStates(server: string): Promise<StatementState[]>;
  /** Fingerprints of the damaged compressed files (their damage is in quarantine). */
  damagedFiles(server: string): Promise<Set<string>>;
}

/** A file the run will read, from where, or why not. */
export interface PlannedFile {
  file: LogFile;
  fingerprint: string;
  startOffset: number;
  columns: number;
  /** Why the start offset is 0 although a checkpoint existed, for the log. */
  note?: string;
  /** Read again from its start although rows of it may be stored: they are checked against stored ones. */
  reread?: boolean;
  /** Why a finished file is read again from its checkpoint, for the log (not a problem). */
  info?: string;
  /** A damaged file read again (it changed): its recorded damage goes, this read records it again if it is still there. */
  rereadDamage?: boolean;
}

export interface Plan {
  files: PlannedFile[];
  skipped: { path: string; reason: string }[];
  /** Bytes to read (of content; for compressed files, of the file on disk as an estimate). */
  totalBytes: number;
  /** csvlog/jsonlog files found under the paths (read, skipped as done, or waiting for a complete record). */
  logFiles: number;
  /** Of those, the ones read to their end before and unchanged since. */
  unchanged: number;
  /**
   * Checkpoints of damaged files that had no readable first line (known by their path), whose path now holds a
   * readable file: they describe a file that is gone.
   */
  superseded: string[];
}

/**
 * Whether a line of a file's first bytes starts like a csvlog record (log_time, its zone, a comma) or a jsonlog
 * object. Any line will do: a damaged first record is quarantined, not a reason to pass the file over. A stderr
 * log's lines (`2024-05-01 12:00:00.123 UTC [123] LOG:`) do not.
 */
function looksLike(format: LogFile['format'], head: Buffer): boolean {
  const text = head.toString('latin1');
  const re = format === 'jsonlog' ? /(^|\n)\{"timestamp":/ : /(^|\n)\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)? [^ ,\n]+,/;
  return re.test(text);
}

/**
 * A file's content identity: the fingerprint of its first line; for a finished file without a complete
 * first line (a short file), a hash of what it holds; for a damaged compressed file without one (empty, cut
 * in its first line), its path — there is no content to know it by; null while there is nothing to identify it
 * by (an empty file, or the active file before its first line is complete).
 */
async function contentIdentity(file: LogFile): Promise<{ fingerprint: string | null; head: Buffer; damage: DamagedContent | null }> {
  let read: { head: Buffer; damage: DamagedContent | null };
  try {
    read = await readHeadChecked(file.path, file.compression, FINGERPRINT_BYTES);
  } catch (err) {
    throw new ConnectorError('pg_logs', 'file_unreadable', `cannot read ${file.path}: ${(err as Error).message}`, false, { cause: err });
  }
  const { head, damage } = read;
  const fingerprint = fingerprintOf(head);
  if (fingerprint !== null) return { fingerprint, head, damage };
  if (damage) return { fingerprint: tailHashOf(Buffer.from(file.label ?? file.path)) + DAMAGED_BY_PATH, head, damage };
  if (file.active || file.size === 0) return { fingerprint: null, head, damage };
  return { fingerprint: tailHashOf(head) + 'short', head, damage };
}

/** Suffix of the identity of a damaged file known by its path (no readable first line). */
const DAMAGED_BY_PATH = 'damaged';

/**
 * The pg_logs source: PostgreSQL csvlog/jsonlog files (plain, gzip or zstd) in one or more directories,
 * read from per-file checkpoints keyed by content fingerprint.
 */
export class PgLogsSource {
  private state: SessionStateReader | null = null;
  /** The damaged compressed files read by this source's runs, and why the rest of each cannot be read. */
  readonly damaged: { file: string; reason: string }[] = [];
  /** What the last listing found (formats of oddly named files, real paths). */
  private readonly listed = new Map<string, ListedFile>();
  /** Content identities of the finished files of the last completedFiles(), by path and stamp. */
  private identities = new Map<string, { stamp: string; fingerprint: string | null }>();

  constructor(
    private readonly options: PgLogsOptions,
    private readonly log: Logger,
  ) {
    try {
      new TimestampResolver(options.logTimezone); // a bad zone is a config error now, not in the parser thread
    } catch (err) {
      throw new ConnectorError('pg_logs', 'bad_log_timezone', `log_timezone: ${(err as Error).message}`, false, { cause: err });
    }
  }

  /** The log files under the configured paths; a path that does not exist or cannot be read fails (path_unreadable). */
  discover(): Promise<Discovery> {
    const discoveryOpts: Parameters<typeof discoverLogFiles>[1] = {};
    if (this.options.fileGlob) discoveryOpts.fileGlob = this.options.fileGlob;
    if (this.options.preferFormat) discoveryOpts.preferFormat = this.options.preferFormat;
    discoveryOpts.known = this.listed;
    return discoverLogFiles(this.options.paths, discoveryOpts);
  }

  /**
   * Decides which files to read and from where: the files found under the configured paths (`found` when
   * the caller has discovered them already), or `files` when given (an RDS file's downloaded copy).
   */
  async plan(state: SessionStateReader, found?: LogFile[] | Discovery): Promise<Plan> {
    const discovery = Array.isArray(found) ? { files: found, skipped: [] } : (found ?? (await this.discover()));
    const checkpoints = await state.fileCheckpoints(this.options.server);
    const damaged = await state.damagedFiles(this.options.server);
    this.state = state;
    // A file whose size and time are those of its checkpoint, read to its end, is not opened at all: a run
    // with nothing new costs one stat per file.
    const byPath = new Map<string, StoredFileState>();
    for (const cp of checkpoints.values()) byPath.set(cp.path, cp);
    const plan: Plan = { files: [], skipped: [...discovery.skipped], totalBytes: 0, logFiles: 0, unchanged: 0, superseded: [] };
    const seen = new Map<string, string>();
    for (const file of discovery.files) {
      plan.logFiles++;
      if (file.active && this.options.skipActive) {
        plan.skipped.push({ path: file.path, reason: 'active file (--skip-active)' });
        continue;
      }
      const known = byPath.get(file.label ?? file.path);
      if (
        known &&
        !this.options.force &&
        known.size === file.size &&
        known.mtimeMs === file.mtimeMs &&
        (known.complete || (file.compression === 'none' && known.offset === file.size))
      ) {
        plan.unchanged++;
        continue;
      }
      const { fingerprint, head, damage } = await contentIdentity(file);
      if (known && fingerprint !== null && known.fingerprint !== fingerprint && known.fingerprint.endsWith(DAMAGED_BY_PATH)) {
        plan.superseded.push(known.fingerprint);
      }
      // (A damaged file's first bytes may be too few to tell: the damage is news enough.)
      if (head.length > 0 && !damage && !looksLike(file.format, head) && !checkpoints.has(fingerprint ?? '')) {
        plan.logFiles--;
        plan.skipped.push({
          path: file.path,
          reason: `not ${file.format === 'csvlog' ? 'a csvlog' : 'a jsonlog'} file (its first bytes are not a PostgreSQL ${file.format} record)`,
        });
        continue;
      }
      if (fingerprint === null) {
        plan.skipped.push({ path: file.path, reason: 'no complete record yet' });
        continue;
      }
      const twin = seen.get(fingerprint);
      if (twin) {
        plan.skipped.push({ path: file.path, reason: `same content as ${twin}` });
        continue;
      }
      seen.set(fingerprint, file.path);
      const cp = checkpoints.get(fingerprint);
      const planned = await this.resume(file, fingerprint, cp, damaged.has(fingerprint));
      if (!planned) continue;
      if (cp && damaged.has(fingerprint) && !this.options.force) planned.rereadDamage = true;
      plan.files.push(planned);
      plan.totalBytes += Math.max(0, file.size - planned.startOffset);
    }
    return plan;
  }

  /**
   * The finished files (not the active one) under the configured paths, each once by content (a renamed or
   * compressed copy is the same file): what an archive of log files takes. A file listed with the same stamp
   * as last time is not read again: its content identity is the one found then.
   */
  async completedFiles(): Promise<{ file: LogFile; fingerprint: string }[]> {
    const out: { file: LogFile; fingerprint: string }[] = [];
    const seen = new Set<string>();
    const identities = new Map<string, { stamp: string; fingerprint: string | null }>();
    for (const file of (await this.discover()).files) {
      if (file.active) continue;
      const known = this.identities.get(file.path);
      const fingerprint = known && file.stamp !== undefined && known.stamp === file.stamp ? known.fingerprint : (await contentIdentity(file)).fingerprint;
      if (file.stamp !== undefined) identities.set(file.path, { stamp: file.stamp, fingerprint });
      if (fingerprint === null) continue;
      if (seen.has(fingerprint)) continue;
      seen.add(fingerprint);
      out.push({ file, fingerprint });
    }
    this.identities = identities;
    return out;
  }

  private async resume(file: LogFile, fingerprint: string, cp: StoredFileState | undefined, damaged: boolean): Promise<PlannedFile | null> {
    const base: PlannedFile = { file, fingerprint, startOffset: 0, columns: 0 };
    if (!cp || this.options.force) return base;
    base.columns = cp.format === file.format ? cp.columns : 0;
    // A damaged compressed file whose size or time changed since (a complete copy put in its place, or a copy
    // that was still being written): read on from the record the damage cut. Its checkpoint stops there.
    const repaired = 'a damaged file changed (a complete copy in its place?); reading it on from the record the damage cut';
    if (cp.complete && damaged && file.compression !== 'none') return { ...base, startOffset: cp.offset, info: repaired };
    // Read to its end before (perhaps under another name): nothing to do — unless it is a plain file that grew
    // since. PostgreSQL opens a file name that exists in append mode (log_truncate_on_rotation off, or a restart
    // or size-based rotation onto a name in use, such as postgresql-Mon.csv a week later): what it appended is
    // read from the checkpoint on, after the bytes before it are checked to be the ones read.
    if (cp.complete && (file.compression !== 'none' || file.size === cp.offset)) return null;
    if (file.compression === 'none') {
      if (file.size === cp.offset && file.mtimeMs === cp.mtimeMs && file.active) return null; // nothing new
      if (file.size < cp.offset) {
        return { ...base, reread: true, note: 'file is shorter than its checkpoint (truncated); reading it from the start' };
      }
      if (cp.offset > 0) {
        const tail = await readTailBefore(file.path, cp.offset);
        if (tailHashOf(tail) !== cp.tailHash) {
          return { ...base, reread: true, note: 'file content before the checkpoint changed (rewritten); reading it from the start' };
        }
      }
      if (file.size === cp.offset && file.active) return null;
      if (cp.complete && damaged) return { ...base, startOffset: cp.offset, info: repaired };
      if (cp.complete)
        return { ...base, startOffset: cp.offset, info: 'a finished file grew (PostgreSQL appended to a file name in use); reading what was appended' };
    }
    return { ...base, startOffset: cp.offset };
  }

  /**
   * Reads the planned files in order, yielding batches, or an error item for a file that failed. The files are
   * read and parsed on a thread of their own (parse-worker.ts), one batch ahead of the sinks.
   */
  async *read(plan: Plan, onProgress?: (bytes: number) => void): AsyncGenerator<SourceItem<PgAuditPayload>> {
    if (plan.files.length === 0) return;
    const options: ParserOptions = {
      server: this.options.server,
      batchBytes: this.options.batchBytes,
      maxRecordBytes: this.options.maxRecordBytes,
      packMessage: Boolean(this.options.packMessage),
      redact: this.options.redact !== false,
      patterns: this.options.redact !== false ? [...(this.options.patterns ?? [])] : [],
      profile: profile.enabled,
      ...(this.options.logTimezone ? { logTimezone: this.options.logTimezone } : {}),
    };
    const states = this.state ? await this.state.sessionStates(this.options.server) : [];
    const parser: Parser = plan.totalBytes >= THREAD_MIN_BYTES ? new ParseThread(options, states, onProgress) : new InlineParser(options, states, onProgress);
    try {
      for (const p of plan.files) {
        if (p.note) this.log.warn(`${p.note}.`, { file: p.file.path });
        if (p.info) this.log.info(`${p.info[0]!.toUpperCase()}${p.info.slice(1)}.`, { file: p.file.path, from: p.startOffset });
        for await (const item of parser.read(p.file, p.fingerprint, p.startOffset, p.columns)) {
          if (item.type === 'batch') {
            if (item.batch.damage) this.damaged.push({ file: p.file.label ?? p.file.path, reason: item.batch.damage });
            yield item;
            continue;
          }
          yield { type: 'error', source: p.file.path, error: item.error };
          // The pipeline rolled back to the last commit: so does the sessions' state.
          if (this.state) parser.reload(await this.state.sessionStates(this.options.server));
        }
      }
    } finally {
      await parser.close();
    }
  }
}
