import { createRequire } from 'node:module';
import { constants, createGzip } from 'node:zlib';
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

interface ZstdModule { init(): Promise<void>; compress(buf: Uint8Array, level?: number): Uint8Array }
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
export async function compressInto(source: AsyncIterable<Buffer>, compression: Compression, level: number, writer: ObjectWriter, onRaw?: (chunk: Buffer) => void): Promise<number> {
  let raw = 0;
  if (compression === 'none') {
    for await (const chunk of source) { raw += chunk.length; onRaw?.(chunk); await writer.write(chunk); }
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
  // gzip: zlib runs in the thread pool; the output is drained into the writer as it comes, and input is
  // written only when zlib asks for more (backpressure both ways).
  const gz = createGzip({ level, chunkSize: 256 * 1024, memLevel: 8, strategy: constants.Z_DEFAULT_STRATEGY });
  let failed: unknown = null;
  const drained = (async () => {
    try {
      for await (const out of gz) await writer.write(out as Buffer);
    } catch (err) {
      failed ??= err;
      gz.destroy();
    }
  })();
  try {
    for await (const chunk of source) {
      if (failed) break;
      raw += chunk.length;
      onRaw?.(chunk);
      if (!gz.write(chunk)) await new Promise<void>((r) => { gz.once('drain', r); gz.once('close', r); });
    }
  } catch (err) {
    failed ??= err;
    gz.destroy();
  }
  if (!failed) gz.end();
  await drained;
  if (failed) throw failed;
  return raw;
}

/**
 * A gzip stream into an object writer that is fed piece by piece (events rendered batch by batch): `write`
 * resolves when zlib can take more, `end` once everything is compressed and handed to the writer.
 */
export class GzipInto {
  private readonly gz: ReturnType<typeof createGzip>;
  private failed: unknown = null;
  private readonly drained: Promise<void>;
  bytesIn = 0;

  constructor(writer: ObjectWriter, level: number) {
    const gz = createGzip({ level, chunkSize: 256 * 1024 });
    this.gz = gz;
    this.drained = (async () => {
      try {
        for await (const out of gz) await writer.write(out as Buffer);
      } catch (err) {
        this.failed ??= err;
        gz.destroy();
      }
    })();
  }

  async write(chunk: Buffer | string): Promise<void> {
    if (this.failed) throw this.failed;
    const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    this.bytesIn += buf.length;
    if (!this.gz.write(buf)) await new Promise<void>((r) => { this.gz.once('drain', r); this.gz.once('close', r); });
    if (this.failed) throw this.failed;
  }

  async end(): Promise<void> {
    if (!this.failed) this.gz.end();
    await this.drained;
    if (this.failed) throw this.failed;
  }

  destroy(): void {
    this.gz.destroy();
  }
}
