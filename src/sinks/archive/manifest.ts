import { createHash } from 'node:crypto';
import type { ManifestEntry } from '../../model/manifest.js';

export type { ManifestEntry, SourceIdentity } from '../../model/manifest.js';

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
  /**
   * The heads of the writer's store's ledger when the part was published (src/ledger; absent without a
   * ledger): an anchor outside the store that `auditship verify --anchor <archive>` checks.
   */
  ledger_heads?: { stream: string; seq: number; digest: string }[];
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
    try {
      v = JSON.parse(line);
    } catch {
      out.bad++;
      return;
    }
    const o = v as Record<string, unknown>;
    if (i === 0 && o['manifest_part'] === 1) out.header = o as unknown as ManifestHeader;
    else if (o['v'] === 1 && typeof o['key'] === 'string' && typeof o['sha256'] === 'string' && typeof o['size'] === 'number')
      out.entries.push(o as unknown as ManifestEntry);
    else out.bad++;
  });
  return out;
}
