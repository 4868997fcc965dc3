import type { Logger } from './log.js';

/**
 * The contract between sources, sinks and the pipeline (glossary):
 *  - an **event** is one audit record a source produced (for pg_logs: a PgAuditRecord);
 *  - a **batch** is a run of events from one source position to the next, plus the records of that range
 *    that could not be parsed (**quarantine**) and the **checkpoint** that is true once the batch is stored;
 *  - a **sink** stores batches; the pipeline **commits** sinks at commit points, and the sink that owns the
 *    pipeline's **state** stores the checkpoints in the same transaction as the events (exactly once);
 *  - the **server** names the PostgreSQL instance the events came from; with session_id and
 *    session_line_num it is an event's identity.
 */

/** A record that could not be turned into an event, kept with the reason and its raw text. */
export interface QuarantinedRecord {
  server: string;
  /** Path of the file (or other source location) the record came from. */
  source: string;
  /** Content identity of the source (a file fingerprint). */
  sourceId: string;
  /** Byte offset of the record in the (decompressed) source. */
  offset: number;
  reason: string;
  raw: string;
}

/**
 * The start of the quarantine reason of a damaged compressed file (the source writes it; the state store and
 * `status` recognise a damaged file by it).
 */
export const DAMAGE_REASON_PREFIX = 'damaged compressed file: ';

/** Progress of one log file, committed together with the events read from it. */
export interface FileCheckpoint {
  server: string;
  /** Content identity: hash of the file's first record. */
  fingerprint: string;
  path: string;
  format: 'csvlog' | 'jsonlog';
  compression: 'none' | 'gzip' | 'zstd';
  /** csvlog column count (23, 24 or 26), 0 for jsonlog or not yet known. */
  columns: number;
  /** Bytes of (decompressed) content consumed: everything before it is stored or quarantined. */
  offset: number;
  /** Hash of the bytes just before `offset`, to notice a file rewritten under the same first record. */
  tailHash: string;
  /** File size and mtime when last read (of the file as stored, compressed or not). */
  size: number;
  mtimeMs: number;
  /** Events, quarantined records and bytes added by this batch (the state store accumulates them). */
  eventsDelta: number;
  quarantinedDelta: number;
  bytesDelta: number;
  /** Latest event time seen in this batch (epoch ms) or null. */
  lastEventMs: number | null;
  /** True once the file is finished (not the active file) and read to its end. */
  complete: boolean;
}

export interface Batch<P> {
  /** The events, in the source's own compact form (for pg_logs: packed rows, see parse/packed.ts). */
  payload: P;
  /** Number of events in the payload. */
  eventCount: number;
  quarantine: QuarantinedRecord[];
  checkpoint: FileCheckpoint;
  /** Bytes of source content this batch covers. */
  bytes: number;
  /** Earliest and latest event time in the batch (epoch ms); 0 when empty. */
  minTimeMs: number;
  maxTimeMs: number;
  /** Set on the last batch of a file: a natural commit point. */
  endOfSource: boolean;
  /**
   * Set on the last batch of a damaged compressed file (truncated, corrupt, empty): why the rest of it cannot be
   * read. The batch's quarantine holds the damage; the records before it are in the batch.
   */
  damage?: string;
  /** Called by the pipeline once every sink has written the batch: its memory may be reused. */
  release?: () => void;
}

/** Counters a sink returns for what it stored. */
export interface WriteReport {
  /** Events newly stored. */
  stored: number;
  /** Events the sink already had (same identity) and therefore skipped. */
  duplicates: number;
  quarantined: number;
}

/** Checkpoint state a source reads at start. */
export interface StateReader {
  fileCheckpoints(server: string): Promise<Map<string, StoredFileState>>;
}

/** What the state store holds for a file. */
export interface StoredFileState {
  fingerprint: string;
  server: string;
  path: string;
  offset: number;
  tailHash: string;
  size: number;
  mtimeMs: number;
  complete: boolean;
  columns: number;
  format: 'csvlog' | 'jsonlog';
}

export interface Sink<P> {
  readonly kind: string;
  /** Stores a batch (may stay uncommitted until `commit`). Never throws for one bad event. */
  write(batch: Batch<P>): Promise<WriteReport>;
  /**
   * Makes everything written so far durable. The state-owning sink receives the checkpoints and stores
   * them in the same transaction.
   */
  commit(checkpoints: FileCheckpoint[]): Promise<void>;
  /** Discards what was written since the last commit (on a failed run). */
  rollback(): Promise<void>;
  close(): Promise<void>;
}

/** Context every connector gets. */
export interface ConnectorContext {
  log: Logger;
  /** Called with bytes of source content processed, for progress reporting. */
  onProgress?: (bytes: number) => void;
  signal?: AbortSignal;
}
