/**
 * Decompressing a log file's content (gzip, zstd) — and telling what a damaged file still holds.
 *
 * A compressed file can be damaged: a copy cut short, a disk that filled while compressing, a file still being
 * written, bytes garbled in the middle, or an empty file. Its content is then read up to the damage, to the last
 * byte the decoder produced, and the stream ends with a {@link DamagedContent} error that says how many bytes of
 * log were readable and why the rest is not. The reader stores the complete records before the damage and
 * quarantines the damage; it never fails the run for it.
 *
 * Node's zlib drops the output of the decoder call that meets bad data (up to a megabyte), and a stream that
 * fails drops what it had decoded and not yet handed over. So after a zlib error the file is decoded once more
 * (only then: an undamaged file is decoded once, as a plain stream), in large writes up to the input the first
 * pass got through without error, then one byte at a time: everything decodable before the damage comes out.
 */
import { createReadStream, promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { createGunzip, type Gunzip } from 'node:zlib';
import { Decompress as ZstdDecompress } from 'fzstd';
import { DAMAGE_REASON_PREFIX } from '../../core/connector.js';

export type Compression = 'none' | 'gzip' | 'zstd';

/**
 * Start of the quarantine reason of a damaged compressed file: the state store and `auditship status` know a
 * damaged file by it (one quarantine entry per damaged file, at the offset where reading stopped).
 */

/** The end of a compressed file's readable content: why the rest cannot be read. */
export class DamagedContent extends Error {
  constructor(
    /** empty: a 0-byte file; truncated: the data ends early; corrupt: invalid data (the rest is not decodable). */
    readonly kind: 'empty' | 'truncated' | 'corrupt',
    readonly compression: Exclude<Compression, 'none'>,
    /** Bytes of content decoded before the damage (all of them were handed over). */
    readonly contentBytes: number,
    /** The decoder's own words (zlib's or fzstd's message). */
    readonly detail: string,
  ) {
    super(`${kind} ${compression} stream after ${contentBytes} bytes of content: ${detail}`);
    this.name = 'DamagedContent';
  }

  /** The quarantine reason: what is wrong, after how much log, in a sentence. */
  get reason(): string {
    const n = this.contentBytes.toLocaleString('en');
    const what = this.compression === 'gzip' ? 'gzip' : 'zstd';
    const suffix = this.compression === 'gzip' ? '.gz' : '.zst';
    switch (this.kind) {
      case 'empty':
        return `${DAMAGE_REASON_PREFIX}empty ${suffix} file (0 bytes, no ${what} data at all)`;
      case 'truncated':
        return `${DAMAGE_REASON_PREFIX}truncated ${what} stream after ${n} bytes of log (the file ends before its ${what} data does)`;
      default:
        return `${DAMAGE_REASON_PREFIX}corrupt ${what} data after ${n} bytes of log (${this.detail}); the rest of the file cannot be decoded`;
    }
  }
}

/** Opens a file's (decompressed) content as a stream of chunks; a damaged file's ends with DamagedContent. */
export function openContent(path: string, compression: Compression, highWaterMark = 1 << 20): AsyncIterable<Buffer> {
  if (compression === 'gzip') return gunzipContent(path);
  if (compression === 'zstd') return zstdContent(path, highWaterMark);
  return createReadStream(path, { highWaterMark });
}

/**
 * Compressed bytes per write into zlib: what the decoder may have to go through a byte at a time after an
 * error. Measured on a 100 MB csvlog: as fast as 1 MiB writes (the time is zlib's).
 */
const GZIP_FEED_BYTES = 64 << 10;

function isZlibError(err: unknown): err is Error & { code: string } {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'Z_BUF_ERROR' || code === 'Z_DATA_ERROR' || code === 'Z_NEED_DICT';
}

async function* gunzipContent(path: string): AsyncGenerator<Buffer> {
  const raw = createReadStream(path, { highWaterMark: GZIP_FEED_BYTES });
  const gz = createGunzip({ chunkSize: 1 << 20 });
  raw.on('error', (err) => gz.destroy(err)); // pipe() does not pass the file's errors on
  let emitted = 0;
  let failure: Error & { code: string };
  let consumed: number;
  try {
    for await (const chunk of raw.pipe(gz) as AsyncIterable<Buffer>) {
      emitted += chunk.length;
      yield chunk;
    }
    return;
  } catch (err) {
    if (!isZlibError(err)) throw err;
    failure = err;
    consumed = gz.bytesWritten; // compressed bytes decoded without error
  } finally {
    raw.destroy();
    gz.destroy();
  }
  yield* salvageGzip(path, emitted, consumed, failure);
}

/** A gunzip fed by hand: each write resolves once its bytes are decoded, or the decoder failed. */
class GunzipFeed {
  private readonly z: Gunzip = createGunzip({ chunkSize: 1 << 20 });
  private out: Buffer[] = [];
  private wake: (() => void) | null = null;
  failure: (Error & { code?: string }) | null = null;
  ended = false;

  constructor() {
    this.z.on('data', (c: Buffer) => {
      this.out.push(c);
    });
    this.z.on('error', (err) => {
      this.failure = err;
      this.wake?.();
    });
    this.z.on('end', () => {
      this.ended = true;
      this.wake?.();
    });
  }

  write(bytes: Buffer): Promise<void> {
    return new Promise((resolve) => {
      this.wake = resolve;
      this.z.write(bytes, () => resolve()); // not called when the decoder fails: the error event wakes us
    });
  }

  end(): Promise<void> {
    return new Promise((resolve) => {
      this.wake = resolve;
      this.z.end();
    });
  }

  take(): Buffer[] {
    const out = this.out;
    this.out = [];
    return out;
  }

  destroy(): void {
    this.z.destroy();
  }
}

/**
 * The second pass over a damaged gzip file: decodes it again from its start, hands over the content after the
 * first `emitted` bytes, up to the damage, and ends with DamagedContent. `consumed` compressed bytes decoded
 * without error the first time: they are fed in large writes, the rest a byte at a time.
 */
async function* salvageGzip(path: string, emitted: number, consumed: number, firstFailure: Error & { code: string }): AsyncGenerator<Buffer> {
  const feed = new GunzipFeed();
  let fh: FileHandle | null = null;
  let skip = emitted;
  let total = emitted;
  let size = 0;
  const handOver = function* (chunks: Buffer[]): Generator<Buffer> {
    for (let c of chunks) {
      if (skip > 0) {
        const n = Math.min(skip, c.length);
        skip -= n;
        if (n === c.length) continue;
        c = c.subarray(n);
      }
      total += c.length;
      yield c;
    }
  };
  try {
    fh = await fsp.open(path, 'r');
    size = (await fh.stat()).size;
    const buf = Buffer.alloc(GZIP_FEED_BYTES);
    // One byte at a time from where the first pass failed, for as far as that pass had fed (a file that changed
    // meanwhile is decoded on in large writes).
    const byteByByteUntil = consumed + 2 * GZIP_FEED_BYTES;
    let position = 0;
    while (!feed.failure && position < size) {
      const want = position < consumed ? Math.min(GZIP_FEED_BYTES, consumed - position) : position < byteByByteUntil ? 1 : GZIP_FEED_BYTES;
      const { bytesRead } = await fh.read(buf, 0, want, position);
      if (bytesRead === 0) break;
      position += bytesRead;
      await feed.write(Buffer.from(buf.subarray(0, bytesRead))); // a copy: zlib holds the input until decoded
      yield* handOver(feed.take());
    }
    if (!feed.failure) await feed.end();
    yield* handOver(feed.take());
  } finally {
    feed.destroy();
    await fh?.close();
  }
  const failure = feed.failure ?? (feed.ended ? null : firstFailure);
  if (!failure) return; // decoded whole this time: the file was completed between the two passes
  const kind = size === 0 ? 'empty' : failure.code === 'Z_BUF_ERROR' ? 'truncated' : 'corrupt';
  throw new DamagedContent(kind, 'gzip', total, failure.message);
}

async function* zstdContent(path: string, highWaterMark: number): AsyncGenerator<Buffer> {
  const out: Uint8Array[] = [];
  const d = new ZstdDecompress((chunk) => {
    out.push(chunk);
  });
  let total = 0;
  let fed = 0;
  const handOver = function* (): Generator<Buffer> {
    while (out.length) {
      const c = out.shift()!;
      total += c.byteLength;
      yield Buffer.from(c.buffer, c.byteOffset, c.byteLength);
    }
  };
  // fzstd hands each block over as soon as it is decoded; on bad data it throws (an Error with a numeric code),
  // after the blocks before it.
  const push = (chunk: Uint8Array, final: boolean): (Error & { code: number }) | null => {
    try {
      d.push(chunk, final);
      return null;
    } catch (err) {
      if (typeof (err as { code?: unknown })?.code !== 'number') throw err;
      return err as Error & { code: number };
    }
  };
  let failure: (Error & { code: number }) | null = null;
  for await (const chunk of createReadStream(path, { highWaterMark }) as AsyncIterable<Buffer>) {
    fed += chunk.length;
    failure = push(chunk, false);
    yield* handOver();
    if (failure) break;
  }
  if (!failure) {
    failure = push(new Uint8Array(0), true);
    yield* handOver();
  }
  if (fed === 0) throw new DamagedContent('empty', 'zstd', 0, 'empty file');
  if (failure) throw new DamagedContent(failure.code === 5 ? 'truncated' : 'corrupt', 'zstd', total, failure.message);
}
