/**
 * An archive manifest entry: what one archived object holds and how to check it (sinks/archive/manifest.ts
 * writes and reads the manifest; the state store keeps the entries).
 */

/** The forms an archive keeps logs in (sinks/archive/layout.ts). */
export type ArchiveForm = 'files' | 'ndjson' | 'parquet';

/** What the event forms archive besides the events: the correlation of the same source ranges. */
export type CorrelationDataset = 'sessions' | 'logon_failures' | 'statement_errors';

export interface SourceIdentity {
  kind: 'pg_logs' | 'rds_logs';
  server: string;
  /** The log file's name (RDS: LogFileName). */
  name: string;
  /** Where it was read: a local path, or rds:<region>/<instance>/<LogFileName>. */
  location: string;
  /** Hash of the file's first line (the content identity auditship checkpoints by). */
  fingerprint: string;
  /** Size and last write of the source file when it was archived (files form). */
  size?: number;
  last_written?: string;
}

export interface ManifestEntry {
  v: 1;
  writer: string;
  seq: number;
  key: string;
  form: ArchiveForm;
  size: number;
  sha256: string;
  md5: string;
  etag: string;
  version_id?: string;
  parts: number;
  storage_class: string;
  compression?: 'gzip' | 'zstd' | 'none';
  sse?: string;
  object_lock?: { mode: string; retain_until: string };
  source: SourceIdentity;
  /** Bytes of the source's (decompressed) content the object holds: [start, end). */
  range: { unit: 'bytes'; start: number; end: number };
  /** pgaudit events in the object (events forms; files form when the file was parsed in the same run). */
  events?: number;
  /**
   * Forms parquet and ndjson: what the object holds when it is not the events (then `events` is 0) — the range's
   * sessions, logon failures or statement errors — and its rows.
   */
  dataset?: CorrelationDataset;
  rows?: number;
  /**
   * Form parquet: the object is NDJSON.gz (the ndjson form's lines) of records Parquet could not take, each
   * with the reason (under pgaudit-rejects/); its `events` count with the range's.
   */
  rejected?: { session_id: string; session_line_num: number; reason: string }[];
  /** Lines of the source file (files form). */
  lines?: number;
  first_event_time?: string | null;
  last_event_time?: string | null;
  /** SHA-256 of the original file's bytes (files form): what the object decompresses to. */
  content_sha256?: string;
  /** How the file was fetched (rds_logs): the whole-file REST download, or portions (with truncated lines). */
  download?: { method: 'complete' | 'portion'; truncated_lines?: number };
  supersedes?: string;
  archived_at: string;
}
