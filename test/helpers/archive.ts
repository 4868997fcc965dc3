/**
 * Reading an archive the way an auditor would, independent of src/: the manifest parts under _manifest/
 * (a local directory or, through the S3 client, a bucket), the objects, and their decoded contents.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { Decompress } from 'fzstd';
import { DuckDBInstance } from '@duckdb/node-api';

export interface Entry {
  v: number;
  writer: string;
  seq: number;
  key: string;
  form: string;
  size: number;
  sha256: string;
  md5: string;
  etag: string;
  storage_class: string;
  compression?: string;
  source: { kind: string; server: string; name: string; location: string; fingerprint: string; size?: number };
  range: { start: number; end: number };
  events?: number;
  dataset?: string;
  rows?: number;
  lines?: number;
  first_event_time?: string | null;
  last_event_time?: string | null;
  content_sha256?: string;
  supersedes?: string;
  object_lock?: { mode: string; retain_until: string };
  sse?: string;
  download?: { method: string; truncated_lines?: number };
}

export interface Part {
  key: string;
  header: Record<string, unknown>;
  entries: Entry[];
  text: string;
}

export const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/** Every file under a directory, as keys relative to it (temp files of unfinished writes included). */
export function listDir(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      return;
    }
    for (const n of names.sort()) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else out.push(relative(root, p).split(sep).join('/'));
    }
  };
  walk(root);
  return out;
}

export function parseParts(files: { key: string; body: Buffer }[]): Part[] {
  return files
    .filter((f) => f.key.startsWith('_manifest/') && f.key.endsWith('.jsonl'))
    .map((f) => {
      const text = f.body.toString('utf8');
      const lines = text
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      return { key: f.key, header: lines[0]!, entries: lines.slice(1) as unknown as Entry[], text };
    });
}

/** The manifest of a local archive directory. */
export function localManifest(root: string): Part[] {
  return parseParts(listDir(root).map((key) => ({ key, body: readFileSync(join(root, key)) })));
}

export function entriesOf(parts: Part[]): Entry[] {
  return parts.flatMap((p) => p.entries).sort((a, b) => a.seq - b.seq);
}

/** An object's bytes decompressed by its manifest compression. */
export function decode(body: Buffer, compression: string | undefined): Buffer {
  if (compression === 'gzip') return gunzipSync(body);
  if (compression === 'zstd') {
    const parts: Uint8Array[] = [];
    const d = new Decompress((c) => parts.push(c));
    d.push(body, true);
    return Buffer.concat(parts);
  }
  return body;
}

/** Rows of a query run by a fresh in-memory DuckDB (read_parquet over an archive, say). */
export async function duck(sql: string): Promise<Record<string, unknown>[]> {
  const i = await DuckDBInstance.create(':memory:');
  const c = await i.connect();
  try {
    await c.run("SET TimeZone = 'UTC'");
    return (await c.runAndReadAll(sql)).getRowObjectsJson();
  } finally {
    c.closeSync();
    i.closeSync();
  }
}

/** Writes log files with the given mtimes (seconds ago), so the newest is the active one. */
export function writeLogs(dir: string, files: { name: string; text: string | Buffer; agoS: number }[]): void {
  const now = Date.now() / 1000;
  for (const f of files) {
    writeFileSync(join(dir, f.name), f.text);
    utimesSync(join(dir, f.name), now - f.agoS, now - f.agoS);
  }
}
