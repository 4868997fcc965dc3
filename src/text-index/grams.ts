/**
 * Trigrams of statement text as bits of a fixed-size bitmap: the building block of the text index.
 *
 * The free-text filter is a case-insensitive substring match (RE2 with a literal pattern and the `i` flag).
 * Every row that matches a term contains every trigram of the term, folded to lower case, so a block of
 * rows whose bitmap lacks one of them cannot hold a match. The index may say "maybe" too often (two trigrams
 * share a bit), never "no" wrongly; the scan's condition still decides each row, so results equal the scan's.
 *
 * Trigrams find short terms; a block of a few thousand statements holds nearly every trigram of digits and
 * common words, so the 6-grams are set too: they tell blocks apart for terms such as an id, an address or a
 * longer word, which are what people look for ("who touched 2382417?").
 *
 * What a trigram is, on UTF-8 bytes: three consecutive characters that are all ASCII after case folding, with
 * A-Z folded to a-z. Other characters end a run (their folding under RE2's Unicode rules can change their
 * length), except the two non-ASCII characters whose case folding is ASCII in Unicode: U+212A KELVIN SIGN
 * (matches k) and U+017F LATIN SMALL LETTER LONG S (matches s), which count as k and s. A 6-gram is six such
 * characters. A term yields the trigrams and 6-grams of its ASCII runs; a term with none (no three ASCII
 * characters in a row) cannot use the index.
 */
const BITS_LOG2 = 17;
export const BITMAP_BITS = 1 << BITS_LOG2;
export const BITMAP_BYTES = BITMAP_BITS >>> 3;
/** A bitmap is stored as this many pages (columns), so that a search reads only the pages holding its bits. */
export const BITMAP_PAGES = 64;
export const PAGE_BITS = BITMAP_BITS / BITMAP_PAGES;
export const PAGE_BYTES = PAGE_BITS >>> 3;

/** The column holding page i of a bitmap. */
export const pageColumn = (i: number): string => `g${i}`;

/** The condition that a stored bitmap has bit `bit` (DuckDB's get_bit on the page; bits are integers, not input). */
export const bitCondition = (bit: number): string => `get_bit(${pageColumn(Math.floor(bit / PAGE_BITS))}, ${bit % PAGE_BITS}) = 1`;

/** The bit of a trigram of folded ASCII codes a, b, c. */
function bitOf3(a: number, b: number, c: number): number {
  return Math.imul((a << 14) | (b << 7) | c, 0x9e3779b1) >>> (32 - BITS_LOG2);
}

/** The bit of a 6-gram: two trigrams' codes mixed (murmur3's finaliser). */
function bitOf6(x: number, y: number): number {
  let h = Math.imul(x, 0x9e3779b1) ^ Math.imul(y, 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d);
  h = Math.imul(h ^ (h >>> 12), 0x297a2d39);
  return (h ^ (h >>> 15)) >>> (32 - BITS_LOG2);
}

/**
 * Sets the bits of every trigram of buf[start, end) in `bits` (BITMAP_BYTES long). The hot loop of the
 * index's cost at ingest: one pass over the bytes, no allocation.
 */
export function addGrams(bits: Uint8Array, buf: Uint8Array, start: number, end: number): void {
  // The last five characters (p5 the latest) and how many of them are in the current ASCII run.
  let p1 = 0,
    p2 = 0,
    p3 = 0,
    p4 = 0,
    p5 = 0,
    run = 0;
  for (let i = start; i < end; i++) {
    let c = buf[i]!;
    if (c >= 0x80) {
      if (c === 0xe2 && buf[i + 1] === 0x84 && buf[i + 2] === 0xaa && i + 2 < end) {
        c = 0x6b; // U+212A → k
        i += 2;
      } else if (c === 0xc5 && buf[i + 1] === 0xbf && i + 1 < end) {
        c = 0x73; // U+017F → s
        i += 1;
      } else {
        run = 0;
        continue;
      }
    } else if (c >= 0x41 && c <= 0x5a) {
      c |= 0x20;
    }
    if (run >= 2) {
      const bit = bitOf3(p4, p5, c);
      bits[bit >>> 3]! |= 1 << (bit & 7);
      if (run >= 5) {
        const bit6 = bitOf6((p1 << 14) | (p2 << 7) | p3, (p4 << 14) | (p5 << 7) | c);
        bits[bit6 >>> 3]! |= 1 << (bit6 & 7);
      } else {
        run++;
      }
    } else {
      run++;
    }
    p1 = p2;
    p2 = p3;
    p3 = p4;
    p4 = p5;
    p5 = c;
  }
}

/** The bits a block must have set to hold the term (sorted, distinct); empty when the term has no trigram. */
export function termBits(term: string): number[] {
  const bits = new Uint8Array(BITMAP_BYTES);
  const buf = Buffer.from(term, 'utf8');
  addGrams(bits, buf, 0, buf.length);
  const out: number[] = [];
  for (let i = 0; i < BITMAP_BYTES; i++) {
    const v = bits[i]!;
    if (v === 0) continue;
    for (let j = 0; j < 8; j++) if (v & (1 << j)) out.push((i << 3) | j);
  }
  return out;
}

/** Whether a block's bitmap has every one of the bits. */
export function hasAll(bitmap: Uint8Array, bits: readonly number[]): boolean {
  for (const bit of bits) if ((bitmap[bit >>> 3]! & (1 << (bit & 7))) === 0) return false;
  return true;
}
