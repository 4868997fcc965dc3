import { createHash } from 'node:crypto';
import { promises as fsp, type Stats } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { ConnectorError, describeFileError } from '../../core/errors.js';
import { CSVLOG_COLUMN_COUNTS, scanCsvRecord } from '../../parse/index.js';
import { DamagedContent, openContent, type Compression } from './decompress.js';
import { globToRegExp } from './glob.js';

/**
 * Finding log files and telling them apart by content.
 *
 * A file is identified by its **fingerprint** — a hash of its first line (at most 4 KiB) after
 * decompression — not by its name or inode: a renamed, moved or compressed copy of a file has the same
 * fingerprint, a recreated file has a new one.
 */

export type LogFormat = 'csvlog' | 'jsonlog';
export type { Compression };

export interface LogFile {
  path: string;
  /** Path as real on disk (symlinks resolved). */
  realPath: string;
  dir: string;
  name: string;
  format: LogFormat;
  compression: Compression;
  size: number;
  mtimeMs: number;
  /** The file the server may still be writing: read only up to its last complete record. */
  active: boolean;
  /** Base name without format and compression suffixes: a csvlog and its jsonlog twin share it. */
  stem: string;
  /** Where the file is said to be in checkpoints and quarantine, when not `path` (an RDS file's copy: rds:<region>/<instance>/<name>). */
  label?: string;
  /**
   * Device, inode, size, modification and change time, as listed: while a file's stamp is the same, so is its
   * content (a write, a truncation, a rename over it, even a modification time set back, changes the change time).
   */
  stamp?: string;
}

export const DEFAULT_FILE_GLOB = '*.{csv,json}{,.gz,.zst}';
export const FINGERPRINT_BYTES = 4096;

function compressionOf(name: string): Compression {
  if (name.endsWith('.gz')) return 'gzip';
  if (name.endsWith('.zst')) return 'zstd';
  return 'none';
}

function stripCompression(name: string): string {
  return name.replace(/\.(gz|zst)$/, '');
}

/** The first bytes of a file's content (decompressed), up to `max`; of a damaged compressed file, what is readable. */
export async function readHead(path: string, compression: Compression, max: number): Promise<Buffer> {
  return (await readHeadChecked(path, compression, max)).head;
}

/** The first bytes of a file's content, up to `max`, and the damage met before `max` bytes (a compressed file). */
export async function readHeadChecked(path: string, compression: Compression, max: number): Promise<{ head: Buffer; damage: DamagedContent | null }> {
  const parts: Buffer[] = [];
  let total = 0;
  let damage: DamagedContent | null = null;
  const stream = openContent(path, compression, 64 * 1024);
  try {
    for await (const chunk of stream) {
      parts.push(chunk);
      total += chunk.length;
      if (total >= max) break;
    }
  } catch (err) {
    if (!(err instanceof DamagedContent)) throw err;
    damage = err;
  } finally {
    (stream as { destroy?: () => void }).destroy?.();
  }
  const head = Buffer.concat(parts);
  return { head: head.length > max ? head.subarray(0, max) : head, damage };
}

/** Fingerprint of content that starts with `head`, or null if the first line is not complete yet. */
export function fingerprintOf(head: Buffer): string | null {
  const nl = head.indexOf(10);
  let end: number;
  if (nl >= 0 && nl < FINGERPRINT_BYTES) end = nl + 1;
  else if (head.length >= FINGERPRINT_BYTES) end = FINGERPRINT_BYTES;
  else return null;
  return createHash('sha256').update(head.subarray(0, end)).digest('hex').slice(0, 32);
}

export async function fingerprintFile(path: string, compression: Compression): Promise<string | null> {
  return fingerprintOf(await readHead(path, compression, FINGERPRINT_BYTES));
}

/** Hash of up to 64 bytes before `offset`: lets a resumed read notice a file rewritten in place. */
export function tailHashOf(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex').slice(0, 16);
}

export const TAIL_BYTES = 64;

/** Format from the name, else from the first byte of content. */
async function detectFormat(path: string, name: string, compression: Compression): Promise<LogFormat | null> {
  const plain = stripCompression(name);
  if (plain.endsWith('.csv')) return 'csvlog';
  if (plain.endsWith('.json')) return 'jsonlog';
  // Another name (a custom glob, a numbered rotation suffix): look at the first record. A stderr log
  // also starts with a date, so a csvlog needs a record with a csvlog column count.
  const head = (await readHead(path, compression, 64 * 1024)).toString('utf8');
  if (head.startsWith('{"timestamp":')) return 'jsonlog';
  const rec = scanCsvRecord(head, 0);
  if (rec && !rec.error && (CSVLOG_COLUMN_COUNTS as readonly number[]).includes(rec.fields.length)) return 'csvlog';
  return null;
}

/** What a listing found of a path. */
export interface ListedFile {
  stamp: string;
  dev: number;
  ino: number;
  realPath: string;
  format: LogFormat | null;
}

export interface DiscoverOptions {
  fileGlob?: string;
  /** When a csvlog file and its jsonlog twin both exist, which to read. */
  preferFormat?: LogFormat;
  /**
   * What the last listing found, by path (filled in): a file of another name than *.csv/*.json is not read
   * again to tell its format while its stamp is the same, and a path's real path is not resolved again while it
   * leads to the same file (device and inode).
   */
  known?: Map<string, ListedFile>;
}

export interface Discovery {
  files: LogFile[];
  /** Files passed over, with why (twin of a file read in the other format, unknown format). */
  skipped: { path: string; reason: string }[];
}

/**
 * Lists the log files under the given paths (files or directories, not recursive), newest last per
 * directory. The newest uncompressed file of each format in a directory is the active one.
 */
export async function discoverLogFiles(paths: string[], options: DiscoverOptions = {}): Promise<Discovery> {
  const pattern = globToRegExp(options.fileGlob ?? DEFAULT_FILE_GLOB);
  const prefer = options.preferFormat ?? 'jsonlog';
  const candidates: { path: string; explicit: boolean }[] = [];
  for (const p of paths) {
    const abs = resolve(p);
    let st: Stats;
    try {
      st = await fsp.stat(abs);
    } catch (err) {
      const missing = (err as NodeJS.ErrnoException).code === 'ENOENT' ? "; give PostgreSQL's log_directory (SHOW log_directory;) or a log file" : '';
      throw new ConnectorError(
        'pg_logs',
        'path_unreadable',
        `${describeFileError(err, abs, 'listing log files') ?? `cannot read ${abs}: ${(err as Error).message}`}${missing}`,
        false,
        { cause: err },
      );
    }
    if (st.isDirectory()) {
      let names: string[];
      try {
        names = await fsp.readdir(abs);
      } catch (err) {
        throw new ConnectorError(
          'pg_logs',
          'path_unreadable',
          describeFileError(err, abs, 'listing log files') ?? `cannot list ${abs}: ${(err as Error).message}`,
          false,
          { cause: err },
        );
      }
      for (const n of names.sort()) if (pattern.test(n)) candidates.push({ path: join(abs, n), explicit: false });
    } else {
      candidates.push({ path: abs, explicit: true });
    }
  }
  const skipped: Discovery['skipped'] = [];
  const files: LogFile[] = [];
  const seenReal = new Set<string>();
  const listed = new Map<string, ListedFile>();
  for (const c of candidates) {
    let st: Stats;
    let realPath: string;
    const known = options.known?.get(c.path);
    try {
      st = await fsp.stat(c.path);
      realPath = known && known.dev === st.dev && known.ino === st.ino ? known.realPath : await fsp.realpath(c.path);
    } catch (err) {
      throw new ConnectorError(
        'pg_logs',
        'file_unreadable',
        describeFileError(err, c.path, 'reading a log file') ?? `cannot read ${c.path}: ${(err as Error).message}`,
        false,
        { cause: err },
      );
    }
    if (!st.isFile()) continue;
    if (seenReal.has(realPath)) {
      skipped.push({ path: c.path, reason: 'same file as another path given' });
      continue;
    }
    seenReal.add(realPath);
    const name = basename(c.path);
    const compression = compressionOf(name);
    const stamp = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
    let format: LogFormat | null;
    if (known && known.stamp === stamp) {
      format = known.format;
    } else {
      try {
        format = await detectFormat(c.path, name, compression);
      } catch (err) {
        throw new ConnectorError(
          'pg_logs',
          'file_unreadable',
          describeFileError(err, c.path, 'reading a log file') ?? `cannot read ${c.path}: ${(err as Error).message}`,
          false,
          { cause: err },
        );
      }
    }
    listed.set(c.path, { stamp, dev: st.dev, ino: st.ino, realPath, format });
    if (!format) {
      skipped.push({ path: c.path, reason: 'neither csvlog nor jsonlog (or empty)' });
      continue;
    }
    const plain = stripCompression(name);
    const stem = plain.replace(/\.(csv|json)$/, '');
    files.push({ path: c.path, realPath, dir: dirname(c.path), name, format, compression, size: st.size, mtimeMs: st.mtimeMs, active: false, stem, stamp });
  }
  if (options.known) {
    options.known.clear();
    for (const [path, f] of listed) options.known.set(path, f);
  }
  // Twins: one stem written in both formats by one server — read one.
  const byStem = new Map<string, LogFile[]>();
  for (const f of files) {
    const key = `${f.dir}\0${f.stem}`;
    const list = byStem.get(key) ?? [];
    list.push(f);
    byStem.set(key, list);
  }
  const kept: LogFile[] = [];
  for (const list of byStem.values()) {
    const formats = new Set(list.map((f) => f.format));
    if (formats.size > 1) {
      for (const f of list) {
        if (f.format === prefer) kept.push(f);
        else skipped.push({ path: f.path, reason: `twin of the ${prefer} file with the same name, which is read instead` });
      }
    } else kept.push(...list);
  }
  // Active file: the newest uncompressed file of each format in each directory.
  const newest = new Map<string, LogFile>();
  for (const f of kept) {
    if (f.compression !== 'none') continue;
    const key = `${f.dir}\0${f.format}`;
    const cur = newest.get(key);
    if (!cur || f.mtimeMs > cur.mtimeMs || (f.mtimeMs === cur.mtimeMs && f.name > cur.name)) newest.set(key, f);
  }
  for (const f of newest.values()) f.active = true;
  kept.sort((a, b) => a.mtimeMs - b.mtimeMs || a.name.localeCompare(b.name));
  return { files: kept, skipped };
}

/**
 * What a plan depends on of a listing, as one string: the files (path, real path, format, compression, active,
 * stamp) and those passed over. Two listings with the same key plan alike against the same checkpoints.
 */
export function discoveryKey(d: Discovery): string {
  return JSON.stringify([
    d.files.map((f) => [f.path, f.realPath, f.label ?? '', f.format, f.compression, f.active, f.stamp ?? `${f.size}:${f.mtimeMs}`]),
    d.skipped,
  ]);
}
