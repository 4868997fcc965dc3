import { addGrams, BITMAP_BYTES } from './grams.js';

/**
 * Blocks of the text index: runs of up to BLOCK_ROWS stored events, each described by the time range its
 * rows lie in and the bitmap of their statements' trigrams. A search keeps the time ranges of the blocks that
 * may hold the term and reads only the row groups there (DuckDB skips the others by their log_time zone maps).
 */
export const BLOCK_ROWS = 4096;

export interface TextBlock {
  /** Earliest and latest log time of the block's rows, epoch ms. */
  lo: number;
  hi: number;
  rows: number;
  bits: Uint8Array;
}

const US = 0x1f;
const GS = 0x1d;
const LF = 0x0a;
/** The field of a packed row (parse/packed.ts EVENT_ROW_COLUMNS) holding the statement. */
const STATEMENT_FIELD = 10;

/** Collects rows into blocks. */
export class BlockBuilder {
  readonly blocks: TextBlock[] = [];
  private current: TextBlock | null = null;

  constructor(private readonly blockRows = BLOCK_ROWS) {}

  /**
   * Statements of the current block's packed rows whose n-grams are set, by a cheap key (length and three bytes)
   * → where their bytes start: a statement equal to one of them adds nothing to its block and is skipped. Audit
   * logs repeat statements (an application's prepared statements: 83 % of the benchmark's rows).
   */
  private seen = new Map<number, number>();

  private block(timeMs: number): TextBlock {
    let b = this.current;
    if (!b || b.rows >= this.blockRows) {
      b = this.current = { lo: timeMs, hi: timeMs, rows: 0, bits: new Uint8Array(BITMAP_BYTES) };
      this.blocks.push(b);
      this.seen.clear();
    }
    if (timeMs < b.lo) b.lo = timeMs;
    if (timeMs > b.hi) b.hi = timeMs;
    b.rows++;
    return b;
  }

  /** One row: its time and its statement's bytes buf[start, end). */
  addBytes(timeMs: number, buf: Uint8Array, start: number, end: number): void {
    addGrams(this.block(timeMs).bits, buf, start, end);
  }

  /** A statement of the packed rows: its n-grams, unless an equal statement of the same block set them. */
  private addPackedStatement(timeMs: number, packed: Buffer, start: number, end: number): void {
    const b = this.block(timeMs);
    const len = end - start;
    if (len === 0) return;
    const key = Math.imul(len, 0x9e3779b1) ^ (packed[start + (len >>> 1)]! << 8) ^ (packed[end - 1]! << 16) ^ (packed[start + (len >>> 2)]! << 24);
    const other = this.seen.get(key);
    if (other !== undefined) {
      // The same key: equal only if every byte is (a loop here: Buffer.compare's call costs more than it saves).
      let i = 0;
      while (i < len && packed[other + i] === packed[start + i]) i++;
      if (i === len) return;
    } else {
      this.seen.set(key, start);
    }
    addGrams(b.bits, packed, start, end);
  }

  addText(timeMs: number, text: string | null): void {
    const b = this.block(timeMs);
    if (text) {
      const buf = Buffer.from(text, 'utf8');
      addGrams(b.bits, buf, 0, buf.length);
    }
  }

  /**
   * The packed rows of a batch (parse/packed.ts: fields separated by US, text wrapped in GS, rows ending with
   * LF; a GS-wrapped field may hold US and LF, never GS).
   */
  addPacked(packed: Buffer, count: number): void {
    this.seen.clear(); // positions in this buffer only
    let pos = 0;
    for (let r = 0; r < count; r++) {
      let time = 0;
      for (let c = packed[pos]!; c !== US; c = packed[++pos]!) time = time * 10 + (c - 48);
      pos++; // US
      let field = 1;
      let stmtStart = -1,
        stmtEnd = -1;
      for (;;) {
        if (packed[pos] === GS) {
          const close = packed.indexOf(GS, pos + 1);
          if (field === STATEMENT_FIELD) {
            stmtStart = pos + 1;
            stmtEnd = close;
          }
          pos = close + 1;
        } else {
          while (packed[pos] !== US && packed[pos] !== LF) pos++;
        }
        const sep = packed[pos++];
        if (sep === LF) break;
        field++;
      }
      if (stmtStart >= 0) this.addPackedStatement(time, packed, stmtStart, stmtEnd);
      else this.block(time);
    }
  }
}
