import type { Batch, FileCheckpoint, QuarantinedRecord } from '../../core/connector.js';
import {
  BufferPool,
  packable,
  PackWriter,
  PREVIOUSLY_LOGGED,
  type CsvlogPackState,
  type PgAuditRecord,
  type RecordOutcome,
  type SessionTracker,
  type TimestampResolver,
} from '../../parse/index.js';
import type { PgAuditPayload } from '../../model/pg-audit-payload.js';
import { redactAuditRecord, redactRaw, SecretPrefilter, type PatternRule } from '../../redact/index.js';
import { tailHashOf, type LogFile } from './files.js';

/** Keep at most 1 MiB of a bad record's raw text. */
const RAW_QUARANTINE_LIMIT = 1 << 20;

export interface BatchBuilderOptions {
  server: string;
  fingerprint: string;
  times: TimestampResolver;
  /** Column count known from an earlier run (csvlog), 0 to detect. */
  columns: number;
  batchBytes: number;
  packMessage?: boolean;
  redact?: boolean;
  /** The user's patterns, compiled (redact/rules.ts). */
  patterns?: readonly PatternRule[];
  tracker: SessionTracker;
}

/**
 * What one batch of a log file gathers until it is taken: the packed rows of its audit records (and the few that
 * cannot be packed, as objects), the sessions it saw a `<previously logged>` marker of, its quarantined records,
 * its time range; then the Batch with the checkpoint that is true once it is stored (reader.ts decides when).
 *
 * `st` is the state the fast csvlog packer (parse/csvlog-pack.ts) writes into directly.
 */
export class BatchBuilder {
  readonly st: CsvlogPackState;
  private readonly out: PackWriter;
  private objects: PgAuditRecord[] = [];
  private markers = new Set<string>();
  private quarantine: QuarantinedRecord[] = [];
  /** The content offset this batch starts at. */
  start: number;

  constructor(
    private readonly file: LogFile,
    private readonly opts: BatchBuilderOptions,
    pool: BufferPool,
    startOffset: number,
  ) {
    // Packed rows take about 55 % of the log text they come from (pgbench-like logs; more with store_message).
    this.out = new PackWriter(pool, Math.min(opts.packMessage ? opts.batchBytes * 2 : (opts.batchBytes * 3) >> 2, 32 << 20));
    opts.tracker.beginFile(opts.server, file.label ?? file.path, this.out);
    this.start = startOffset;
    this.st = {
      columns: opts.columns,
      times: opts.times,
      storeMessage: opts.packMessage ?? false,
      // A plain property, always there: the packer reads this object per record (a spread could slow it down).
      secrets: opts.redact ? new SecretPrefilter((opts.patterns?.length ?? 0) > 0) : undefined,
      out: this.out,
      tracker: opts.tracker,
      onBad: () => {},
      onLarge: () => {},
      onMarker: (session) => {
        this.markers.add(session);
      },
      events: 0,
      minTimeMs: 0,
      maxTimeMs: 0,
    };
  }

  /** Audit events gathered so far. */
  get events(): number {
    return this.st.events;
  }

  /** csvlog column count of the file (0 until known). */
  get columns(): number {
    return this.st.columns;
  }

  /** A record that could not be used, kept with the reason and (up to 1 MiB of) its text. */
  bad(at: number, reason: string, raw: string): void {
    const kept = raw.length > RAW_QUARANTINE_LIMIT ? raw.slice(0, RAW_QUARANTINE_LIMIT) : raw;
    this.quarantine.push({
      server: this.opts.server,
      source: this.file.label ?? this.file.path,
      sourceId: this.opts.fingerprint,
      offset: at,
      reason,
      // A record that could not be parsed is masked conservatively (redactRaw): it may hold a secret too.
      raw: this.opts.redact ? redactRaw(kept) : kept,
    });
  }

  /** A record from the string path: an audit record is packed (or kept as an object), a session record tracked. */
  record(outcome: RecordOutcome, offsetOf: () => number, raw: () => string): void {
    const { st, opts } = this;
    if (outcome.kind === 'audit') {
      const r = outcome.record;
      const t = r.log_time_ms;
      if (st.events === 0) {
        st.minTimeMs = t;
        st.maxTimeMs = t;
      } else {
        if (t < st.minTimeMs) st.minTimeMs = t;
        if (t > st.maxTimeMs) st.maxTimeMs = t;
      }
      st.events++;
      if (r.statement === PREVIOUSLY_LOGGED) this.markers.add(r.session_id);
      if (!opts.packMessage) r.message = '';
      if (opts.redact) redactAuditRecord(r, opts.patterns);
      opts.tracker.auditRecord(r);
      if (packable(r)) this.out.record(r, opts.tracker.contextId, opts.tracker.kindId);
      else {
        r.context_id = opts.tracker.contextId;
        r.kind_id = opts.tracker.kindId;
        this.objects.push(r);
      }
    } else if (outcome.kind === 'session') {
      opts.tracker.sessionRecord(outcome.record);
    } else if (outcome.kind === 'bad') {
      this.bad(offsetOf(), outcome.reason, raw());
    }
  }

  /**
   * The batch of everything gathered, ending at content offset `offset` (whose preceding bytes are `tail`); the
   * builder starts the next one there.
   */
  take(offset: number, tail: Buffer, end: { endOfSource: boolean; complete: boolean; damage?: string | undefined }): Batch<PgAuditPayload> {
    const { st, file, opts } = this;
    const dims = opts.tracker.takeBatch(); // before take(): it reads the statements of the packed rows
    const { bytes: packed, count, ends, release } = this.out.take();
    const eventCount = st.events;
    const cp: FileCheckpoint = {
      server: opts.server,
      fingerprint: opts.fingerprint,
      path: file.label ?? file.path,
      format: file.format,
      compression: file.compression,
      columns: st.columns,
      offset,
      tailHash: tailHashOf(tail),
      size: file.size,
      mtimeMs: file.mtimeMs,
      eventsDelta: eventCount,
      quarantinedDelta: this.quarantine.length,
      bytesDelta: offset - this.start,
      lastEventMs: eventCount ? st.maxTimeMs : null,
      complete: end.complete,
    };
    const b: Batch<PgAuditPayload> = {
      payload: {
        packed,
        packedCount: count,
        packedEnds: ends,
        objects: this.objects,
        contexts: dims.contexts,
        kinds: dims.kinds,
        markerSessions: [...this.markers],
        correlation: dims.correlation,
      },
      eventCount,
      quarantine: this.quarantine,
      checkpoint: cp,
      bytes: offset - this.start,
      minTimeMs: st.minTimeMs,
      maxTimeMs: st.maxTimeMs,
      endOfSource: end.endOfSource,
      release,
      ...(end.endOfSource && end.damage !== undefined ? { damage: end.damage } : {}),
    };
    this.objects = [];
    this.markers = new Set();
    this.quarantine = [];
    this.start = offset;
    st.events = 0;
    st.minTimeMs = 0;
    st.maxTimeMs = 0;
    return b;
  }

  dispose(): void {
    this.out.dispose();
  }
}
