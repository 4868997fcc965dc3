import { promises as fsp } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { gzip } from 'node:zlib';
import type { ObjectWriter } from './store.js';

/**
 * Compressing a stream of bytes into an object writer: gzip (zlib, off the main thread) or zstd (a WASM
 * build of the reference library, in frames of ZSTD_FRAME_BYTES — a concatenation of frames is one valid
 * zstd stream, so memory stays bounded whatever the input). Node 20's zlib has no zstd.
 */
export type Compression = 'gzip' | 'zstd' | 'none';

/** The suffix an object gets for its compression. */
export function compressionSuffix(c: Compression): string {
  return c === 'gzip' ? '.gz' : c === 'zstd' ? '.zst' : '';
}

const ZSTD_FRAME_BYTES = 4 << 20;

interface ZstdModule {
  init(): Promise<void>;
  compress(buf: Uint8Array, level?: number): Uint8Array;
}
let zstdReady: Promise<ZstdModule> | null = null;

function zstd(): Promise<ZstdModule> {
  zstdReady ??= (async () => {
    const mod = createRequire(import.meta.url)('@bokuweb/zstd-wasm') as ZstdModule;
    await mod.init();
    return mod;
  })();
  return zstdReady;
}

/** Default levels: gzip 6 (gzip's own default), zstd 3 (zstd's). */
export function defaultLevel(c: Compression): number {
  return c === 'zstd' ? 3 : 6;
}

/**
 * Reads `source`, compresses it and writes the result to `writer`. `onRaw` sees every input chunk (the
 * caller hashes the original content). Returns the number of input bytes.
 */
export async function compressInto(
  source: AsyncIterable<Buffer>,
  compression: Compression,
  level: number,
  writer: ObjectWriter,
  onRaw?: (chunk: Buffer) => void,
): Promise<number> {
  let raw = 0;
  if (compression === 'none') {
    for await (const chunk of source) {
      raw += chunk.length;
      onRaw?.(chunk);
      await writer.write(chunk);
    }
    return raw;
  }
  if (compression === 'zstd') {
    const z = await zstd();
    let frame = Buffer.allocUnsafe(ZSTD_FRAME_BYTES);
    let fill = 0;
    const emit = async () => {
      if (fill === 0) return;
      const out = z.compress(frame.subarray(0, fill), level);
      fill = 0;
      await writer.write(Buffer.from(out.buffer, out.byteOffset, out.byteLength));
    };
    for await (const chunk of source) {
      raw += chunk.length;
      onRaw?.(chunk);
      let at = 0;
      while (at < chunk.length) {
        const n = Math.min(chunk.length - at, ZSTD_FRAME_BYTES - fill);
        chunk.copy(frame, fill, at, at + n);
        fill += n;
        at += n;
        if (fill === ZSTD_FRAME_BYTES) await emit();
      }
    }
    await emit();
    frame = Buffer.alloc(0);
    return raw;
  }
  const gz = new GzipMembers(writer, level);
  try {
    for await (const chunk of source) {
      raw += chunk.length;
      onRaw?.(chunk);
      await gz.write(chunk);
    }
    await gz.end();
  } catch (err) {
    await gz.abandon();
    throw err;
  }
  return raw;
}

/**
 * gzip written as independent members: the input is cut into blocks of GZIP_BLOCK_BYTES, each compressed on
 * the thread pool as a gzip member of its own, `gzipParallelism` at a time, and written to the object in
 * order. A concatenation of members is one valid gzip file (RFC 1952; gunzip, zlib, Python and Java read it
 * whole — pigz and bgzip write the same), so one object uses every core with bounded memory; the ratio is
 * within a fraction of a percent of one stream. `write` copies its input: the caller may reuse its buffer.
 */
export class GzipMembers {
  private readonly parallel = gzipParallelism();
  private readonly free: Buffer[] = Array.from({ length: this.parallel + 1 }, () => Buffer.allocUnsafe(GZIP_BLOCK_BYTES));
  private readonly queue: { block: Buffer; out: Promise<Buffer> }[] = [];
  private block = this.free.pop()!;
  private fill = 0;
  bytesIn = 0;

  constructor(
    private readonly writer: ObjectWriter,
    private readonly level: number,
  ) {}

  private async drainOne(): Promise<void> {
    const q = this.queue.shift()!;
    const out = await q.out;
    this.free.push(q.block);
    await this.writer.write(out);
  }

  private async submit(): Promise<void> {
    if (this.fill === 0) return;
    const input = this.block.subarray(0, this.fill);
    this.queue.push({
      block: this.block,
      out: new Promise<Buffer>((resolve, reject) =>
        gzip(input, { level: this.level, chunkSize: GZIP_OUT_CHUNK }, (err, out) => (err ? reject(err) : resolve(out))),
      ),
    });
    while (this.queue.length >= this.parallel || this.free.length === 0) await this.drainOne();
    this.block = this.free.pop()!;
    this.fill = 0;
  }

  async write(data: Buffer | string): Promise<void> {
    const chunk = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    this.bytesIn += chunk.length;
    let at = 0;
    while (at < chunk.length) {
      const n = Math.min(chunk.length - at, GZIP_BLOCK_BYTES - this.fill);
      chunk.copy(this.block, this.fill, at, at + n);
      this.fill += n;
      at += n;
      if (this.fill === GZIP_BLOCK_BYTES) await this.submit();
    }
  }

  /** Compresses what is left and hands every member to the writer (which the caller then finishes). */
  async end(): Promise<void> {
    await this.submit();
    while (this.queue.length) await this.drainOne();
  }

  /** Waits for blocks still on the thread pool (their buffers), writing nothing more. */
  async abandon(): Promise<void> {
    await Promise.allSettled(this.queue.map((q) => q.out));
    this.queue.length = 0;
  }
}

const GZIP_BLOCK_BYTES = 2 << 20;
/** Output buffer of one block's compression: log text compresses 6-10x, so a block fits one or two (fewer, larger buffers for the collector). */
const GZIP_OUT_CHUNK = 256 * 1024;

/** Gzip members compressed at once: the cores, at most the thread pool's four. */
function gzipParallelism(): number {
  return Math.max(1, Math.min(4, availableParallelism()));
}

/** A file's bytes in chunks of two alternating buffers: a chunk is valid until the one after next is read. */
export async function* readFileReusing(path: string, chunkBytes = 1 << 20): AsyncIterable<Buffer> {
  const fh = await fsp.open(path, 'r');
  const buffers = [Buffer.allocUnsafe(chunkBytes), Buffer.allocUnsafe(chunkBytes)];
  try {
    for (let i = 0; ; i++) {
      const b = buffers[i & 1]!;
      const { bytesRead } = await fh.read(b, 0, chunkBytes, null);
      if (bytesRead === 0) return;
      yield b.subarray(0, bytesRead);
    }
  } finally {
    await fh.close();
  }
}
