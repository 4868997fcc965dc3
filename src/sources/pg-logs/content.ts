import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { ConnectorError, describeFileError } from '../../core/errors.js';
import type { BufferPool } from '../../parse/index.js';
import { DamagedContent, openContent } from './decompress.js';
import { TAIL_BYTES, type LogFile } from './files.js';

/**
 * The bytes of a log file as reader.ts consumes them: read from a byte offset (a plain file by positional reads,
 * a compressed one decompressed from its start, the bytes before the offset skipped), held in one work buffer
 * that grows only for a record longer than it, and consumed from its front once parsed or quarantined.
 * It knows the content offset of the first unconsumed byte and the TAIL_BYTES before it (the checkpoint's tail
 * hash), and where a damaged compressed file's content ends, and why.
 */
export class LogContent {
  /** The unconsumed bytes are work[0, held). */
  work: Buffer;
  held = 0;
  /** Absolute content offset of the first unconsumed byte. */
  offset: number;
  /** The TAIL_BYTES before `offset`. */
  tail: Buffer = Buffer.alloc(0);
  /** The content is read to its end (or to its damage). */
  eof = false;
  /** Content bytes still to skip to reach the start offset (compressed files). */
  skip: number;
  /** Where a damaged compressed file's content ends, and why. */
  damage: DamagedContent | null = null;
  private fh: FileHandle | null = null;
  private position: number;
  private iterator: AsyncIterator<Buffer> | null = null;
  private stream: AsyncIterable<Buffer> | null = null;

  private constructor(
    private readonly file: LogFile,
    private readonly pool: BufferPool,
    size: number,
    startOffset: number,
    private readonly timing: { readMs: number } | undefined,
    private readonly onProgress: ((bytes: number) => void) | undefined,
  ) {
    this.work = pool.acquire(size);
    this.offset = startOffset;
    this.skip = startOffset;
    this.position = startOffset;
  }

  /** Opens the file for reading from `startOffset` with a work buffer of `size` bytes. */
  static async open(
    file: LogFile,
    pool: BufferPool,
    size: number,
    startOffset: number,
    timing?: { readMs: number },
    onProgress?: (bytes: number) => void,
  ): Promise<LogContent> {
    const c = new LogContent(file, pool, size, startOffset, timing, onProgress);
    try {
      if (file.compression === 'none') {
        c.fh = await fsp.open(file.path, 'r');
        if (startOffset > 0) {
          c.tail = Buffer.from(await readTailBefore(file.path, startOffset));
          c.skip = 0;
        }
      } else {
        c.stream = openContent(file.path, file.compression);
        c.iterator = c.stream[Symbol.asyncIterator]();
      }
    } catch (err) {
      await c.close();
      throw err;
    }
    return c;
  }

  /** Reads until `want` new bytes are held and at least `minHeld` in all, or to the end of the content. */
  async fill(want: number, minHeld: number): Promise<void> {
    const { timing } = this;
    let added = 0;
    while (!this.eof && (added < want || this.held < minHeld)) {
      if (this.fh) {
        this.grow(this.held + want);
        const t0 = timing ? performance.now() : 0;
        const { bytesRead } = await this.fh.read(this.work, this.held, Math.min(want, this.work.length - this.held), this.position);
        if (timing) timing.readMs += performance.now() - t0;
        if (bytesRead === 0) {
          this.eof = true;
          break;
        }
        this.position += bytesRead;
        this.held += bytesRead;
        added += bytesRead;
        continue;
      }
      const t0 = timing ? performance.now() : 0;
      let next: IteratorResult<Buffer>;
      try {
        next = await this.iterator!.next();
      } catch (err) {
        if (!(err instanceof DamagedContent)) throw err;
        this.damage = err;
        this.eof = true;
        break;
      }
      if (timing) timing.readMs += performance.now() - t0;
      if (next.done) {
        this.eof = true;
        break;
      }
      let chunk = next.value;
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length);
        this.advanceTail(chunk.subarray(0, n));
        this.skip -= n;
        if (n === chunk.length) continue;
        chunk = chunk.subarray(n);
      }
      this.grow(this.held + chunk.length);
      chunk.copy(this.work, this.held);
      this.held += chunk.length;
      added += chunk.length;
    }
  }

  /** The unconsumed bytes. */
  get bytes(): Buffer {
    return this.work.subarray(0, this.held);
  }

  /** Drops the first n held bytes (parsed or quarantined). */
  consume(n: number): void {
    this.advanceTail(this.work.subarray(0, n));
    this.offset += n;
    this.onProgress?.(n);
    this.work.copyWithin(0, n, this.held);
    this.held -= n;
  }

  grow(min: number): void {
    if (this.work.length >= min) return;
    let size = this.work.length * 2;
    while (size < min) size *= 2;
    const next = this.pool.acquire(size);
    this.work.copy(next, 0, 0, this.held);
    this.pool.release(this.work);
    this.work = next;
  }

  private advanceTail(bytes: Buffer): void {
    this.tail = bytes.length >= TAIL_BYTES ? Buffer.from(bytes.subarray(bytes.length - TAIL_BYTES)) : Buffer.concat([this.tail, bytes]).subarray(-TAIL_BYTES);
  }

  async close(): Promise<void> {
    this.pool.release(this.work);
    await this.fh?.close();
    await this.iterator?.return?.();
    (this.stream as { destroy?: () => void } | null)?.destroy?.();
  }
}

/** Reads the `TAIL_BYTES` before `offset` of a plain file (to verify a checkpoint before resuming). */
export async function readTailBefore(path: string, offset: number): Promise<Buffer> {
  const start = Math.max(0, offset - TAIL_BYTES);
  let fh;
  try {
    fh = await fsp.open(path, 'r');
    const buf = Buffer.alloc(offset - start);
    const { bytesRead } = await fh.read(buf, 0, buf.length, start);
    return buf.subarray(0, bytesRead);
  } catch (err) {
    throw new ConnectorError(
      'pg_logs',
      'file_unreadable',
      describeFileError(err, path, 'reading a log file') ?? `cannot read ${path}: ${(err as Error).message}`,
      false,
      { cause: err },
    );
  } finally {
    await fh?.close();
  }
}
