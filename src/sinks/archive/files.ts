import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { createGunzip } from 'node:zlib';
import { Decompress as ZstdDecompress } from 'fzstd';
import { ConnectorError, describeFileError } from '../../core/errors.js';
import { TimestampResolver } from '../../parse/index.js';
import type { NewEntry } from '../../state/archive-state.js';
import { compressInto, compressionSuffix, readFileReusing, type Compression } from './compress.js';
import type { Archive } from './archive.js';
import { fileDate, fileKey } from './layout.js';
import type { ManifestEntry, SourceIdentity } from './manifest.js';

/**
 * Form `files`: a completed log file archived whole, as it is. A plain file is compressed on the way
 * (gzip or zstd); a file that is compressed already (.gz, .zst) is stored byte for byte. While streaming,
 * the original content is hashed (content_sha256: what the object decompresses to) and its lines counted,
 * and the first and last record times are read from its head and tail.
 *
 * A file is archived once per version: the state knows, per fingerprint, the last archived size, last write
 * and content hash. A file whose size or last write changed is hashed again; only different content makes
 * a new version (key `<name>.v2…`, superseding the earlier one), so a file that was merely compressed or
 * touched is not archived twice. A file that changes *while* it is archived (its size or mtime differ after
 * the upload from before it) is detected: the object is discarded and the file archived again from the start.
 */
export interface ArchivableFile {
  /** Where to read it (a local path; for RDS the downloaded copy). */
  path: string;
  source: SourceIdentity;
  /** Compression of the file as stored on disk. */
  compression: Compression;
  /** Size and last write that identify this version (RDS: LastWritten; local: mtime). */
  size: number;
  mtimeMs: number;
  /** For RDS copies: the size and time were checked at download; the local copy does not change. */
  stable?: boolean;
  /** Events parsed from the file, when known (the same run ingested it). */
  events?: number;
  download?: ManifestEntry['download'];
  /** The server's log_timezone, to read the first and last record time. */
  logTimezone?: string;
}

export interface FileArchiveResult {
  status: 'archived' | 'unchanged' | 'changed_while_archiving';
  entry?: ManifestEntry;
  bytes: number;
}

const MAX_ATTEMPTS = 3;
const TAIL_KEEP = 64 * 1024;

function openRaw(path: string): AsyncIterable<Buffer> {
  return readFileReusing(path);
}

/** The decompressed content of a stream of compressed chunks (for content_sha256 of a .gz/.zst file). */
class ContentTap {
  private readonly gunzip?: ReturnType<typeof createGunzip>;
  private readonly zstd?: ZstdDecompress;
  private done: Promise<void> = Promise.resolve();

  constructor(
    compression: Compression,
    private readonly onContent: (c: Buffer) => void,
  ) {
    if (compression === 'gzip') {
      this.gunzip = createGunzip();
      this.gunzip.on('data', (c: Buffer) => onContent(c));
      this.done = new Promise((resolve, reject) => {
        this.gunzip!.once('end', resolve);
        this.gunzip!.once('error', reject);
      });
    } else if (compression === 'zstd') {
      this.zstd = new ZstdDecompress((c) => onContent(Buffer.from(c.buffer, c.byteOffset, c.byteLength)));
    }
  }

  push(raw: Buffer): void {
    // Copies: the caller reuses its buffers, and decompression keeps hold of its input for a while.
    if (this.gunzip) this.gunzip.write(Buffer.from(raw));
    else if (this.zstd) this.zstd.push(Buffer.from(raw));
    else this.onContent(raw);
  }

  async end(): Promise<void> {
    if (this.gunzip) {
      this.gunzip.end();
      await this.done;
    } else if (this.zstd) this.zstd.push(new Uint8Array(0), true);
  }
}

/** Counts lines and keeps the head and tail of a file's content, to tell its first and last record time. */
class ContentSummary {
  private readonly sha = createHash('sha256');
  bytes = 0;
  lines = 0;
  private head: Buffer = Buffer.alloc(0);
  /** The last TAIL_KEEP bytes, kept in one buffer (a copy per chunk would be garbage for the collector). */
  private readonly tailBuf = Buffer.allocUnsafe(TAIL_KEEP);
  private tailLen = 0;

  add(c: Buffer): void {
    this.sha.update(c);
    this.bytes += c.length;
    for (let i = c.indexOf(10); i >= 0; i = c.indexOf(10, i + 1)) this.lines++;
    if (this.head.length < 8192) this.head = Buffer.concat([this.head, c.subarray(0, 8192 - this.head.length)]);
    if (c.length >= TAIL_KEEP) {
      c.copy(this.tailBuf, 0, c.length - TAIL_KEEP);
      this.tailLen = TAIL_KEEP;
    } else {
      const keep = Math.min(this.tailLen, TAIL_KEEP - c.length);
      this.tailBuf.copyWithin(0, this.tailLen - keep, this.tailLen);
      c.copy(this.tailBuf, keep);
      this.tailLen = keep + c.length;
    }
  }

  sha256(): string {
    return this.sha.digest('hex');
  }

  /** First and last record time (ISO), read from the lines that start with a log timestamp. */
  times(logTimezone?: string): { first: string | null; last: string | null } {
    let resolver: TimestampResolver;
    try {
      resolver = new TimestampResolver(logTimezone);
    } catch {
      return { first: null, last: null };
    }
    const at = (line: string): string | null => {
      const m = /^(?:\{"timestamp":")?(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d{1,6})? (?:[A-Za-z]{1,6}|[+-]\d{2}(?::?\d{2})?))/.exec(line);
      if (!m) return null;
      try {
        return new Date(resolver.toEpochMs(m[1]!)).toISOString();
      } catch {
        return null;
      }
    };
    let first: string | null = null;
    for (const line of this.head.toString('utf8').split('\n')) {
      first = at(line);
      if (first) break;
    }
    let last: string | null = null;
    const lines = this.tailBuf.toString('utf8', 0, this.tailLen).split('\n');
    for (let i = lines.length - 1; i >= 0 && !last; i--) last = at(lines[i]!);
    return { first, last };
  }
}

/** SHA-256 of a file's (decompressed) content. */
async function contentHash(path: string, compression: Compression): Promise<string> {
  const summary = new ContentSummary();
  const tap = new ContentTap(compression, (c) => summary.add(c));
  for await (const raw of openRaw(path)) tap.push(raw);
  await tap.end();
  return summary.sha256();
}

async function statOf(path: string): Promise<{ size: number; mtimeMs: number }> {
  try {
    const st = await fsp.stat(path);
    return { size: st.size, mtimeMs: st.mtimeMs };
  } catch (err) {
    throw new ConnectorError(
      'archive',
      'file_unreadable',
      describeFileError(err, path, 'archiving a log file') ?? `cannot read ${path}: ${(err as Error).message}`,
      false,
      { cause: err },
    );
  }
}

/** Archives one completed log file unless this version is archived already; its entry is committed in the DuckDB state. */
export async function archiveLogFile(archive: Archive, file: ArchivableFile, onBytes?: (n: number) => void): Promise<FileArchiveResult> {
  const state = archive.state;
  const latest = await state.latestFile(file.source.fingerprint);
  if (latest && latest.size === file.size && Math.round(latest.mtimeMs) === Math.round(file.mtimeMs)) {
    return { status: 'unchanged', bytes: 0 };
  }
  if (latest && (await contentHash(file.path, file.compression)) === latest.contentSha256) {
    return { status: 'unchanged', bytes: 0 };
  }
  const store = file.compression === 'none' ? archive.options.compression : 'none';
  const suffix = file.compression === 'none' ? compressionSuffix(archive.options.compression) : '';
  const date = fileDate(file.source.name, file.mtimeMs);
  let version = (latest?.version ?? 0) + 1;
  while (await state.isCommitted(fileKey(file.source.server, date, file.source.name, suffix, version))) version++;
  const key = fileKey(file.source.server, date, file.source.name, suffix, version);

  for (let attempt = 1; ; attempt++) {
    const before = await statOf(file.path);
    const summary = new ContentSummary();
    const tap = new ContentTap(file.compression, (c) => summary.add(c));
    let rawBytes = 0;
    const stored = await archive.writeObject(
      key,
      { contentType: file.compression === 'none' && store === 'none' ? 'text/plain' : 'application/octet-stream', sizeHint: before.size },
      async (w) => {
        rawBytes = await compressInto(openRaw(file.path), store, archive.options.compressionLevel, w, (c) => {
          tap.push(c);
          onBytes?.(c.length);
        });
        await tap.end();
      },
    );
    const after = await statOf(file.path);
    const changed = !file.stable && (after.size !== before.size || after.mtimeMs !== before.mtimeMs || rawBytes !== before.size);
    if (changed) {
      await archive.discard(key);
      if (attempt >= MAX_ATTEMPTS) return { status: 'changed_while_archiving', bytes: rawBytes };
      continue;
    }
    const times = summary.times(file.logTimezone);
    const lock = archive.lockOf();
    const entry: NewEntry = {
      v: 1,
      key,
      form: 'files',
      size: stored.size,
      sha256: stored.sha256,
      md5: stored.md5,
      etag: stored.etag,
      ...(stored.versionId ? { version_id: stored.versionId } : {}),
      parts: stored.parts,
      storage_class: stored.storageClass,
      compression: file.compression === 'none' ? store : file.compression,
      ...(archive.options.sse ? { sse: archive.options.sse } : {}),
      ...(lock ? { object_lock: lock } : {}),
      source: { ...file.source, size: summary.bytes, last_written: new Date(file.mtimeMs).toISOString() },
      range: { unit: 'bytes', start: 0, end: summary.bytes },
      ...(file.events !== undefined ? { events: file.events } : {}),
      lines: summary.lines,
      first_event_time: times.first,
      last_event_time: times.last,
      content_sha256: summary.sha256(),
      ...(file.download ? { download: file.download } : {}),
      ...(latest ? { supersedes: latest.key } : {}),
      archived_at: new Date().toISOString(),
      version,
      sourceMtimeMs: file.mtimeMs,
      sourceDiskSize: file.size,
    };
    const [committed] = await state.commitEntries([entry]);
    await state.dropPending(key);
    return { status: 'archived', entry: committed!, bytes: rawBytes };
  }
}
