import { createHash } from 'node:crypto';
import type { ArchiveForm, CorrelationDataset } from './layout.js';

/**
 * The manifest: one JSON line per archived object, saying what it holds and how to check it. It is kept in
 * the DuckDB state (table archive_objects, committed with the checkpoint that moves past the object's
 * source range, so every range is in it exactly once) and published to the archive in parts under
 * `_manifest/` — an auditor needs only the bucket to verify it (`auditship verify-archive`).
 *
 * A part is JSON lines: a header line (`"manifest_part"`) naming the writer (one DuckDB state), the first and
 * last sequence number, and the key and SHA-256 of the writer's previous part — a hash chain, so a part
 * that goes missing or is altered is noticed — then the entries in sequence order.
 */
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

export interface ManifestHeader {
  manifest_part: 1;
  writer: string;
  server: string;
  first_seq: number;
  last_seq: number;
  entries: number;
  prev_key: string | null;
  prev_sha256: string | null;
  created_at: string;
}

export function renderPart(header: ManifestHeader, entries: ManifestEntry[]): Buffer {
  return Buffer.from([JSON.stringify(header), ...entries.map((e) => JSON.stringify(e))].join('\n') + '\n', 'utf8');
}

export interface ParsedPart {
  header: ManifestHeader | null;
  entries: ManifestEntry[];
  /** Lines that are not valid JSON or not entries (a damaged part). */
  bad: number;
  sha256: string;
}

export function parsePart(body: Buffer): ParsedPart {
  const out: ParsedPart = { header: null, entries: [], bad: 0, sha256: createHash('sha256').update(body).digest('hex') };
  const lines = body.toString('utf8').split('\n');
  lines.forEach((line, i) => {
    if (!line.trim()) return;
    let v: unknown;
    try { v = JSON.parse(line); } catch { out.bad++; return; }
    const o = v as Record<string, unknown>;
    if (i === 0 && o['manifest_part'] === 1) out.header = o as unknown as ManifestHeader;
    else if (o['v'] === 1 && typeof o['key'] === 'string' && typeof o['sha256'] === 'string' && typeof o['size'] === 'number') out.entries.push(o as unknown as ManifestEntry);
    else out.bad++;
  });
  return out;
}
