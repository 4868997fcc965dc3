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

/** The condition that the stored bitmap (column `grams`, type BIT) has bit `bit` (an integer, never input). */
export const bitCondition = (bit: number): string => `get_bit(grams, ${bit}) = 1`;

/** Folded ASCII code of each byte (A-Z to a-z); 0 for bytes of other characters. */
const FOLD = new Uint8Array(256).map((_, c) => (c >= 0x80 ? 0 : c >= 0x41 && c <= 0x5a ? c | 0x20 : c));

/**
 * Sets the bits of every trigram and 6-gram of buf[start, end) in `bits` (BITMAP_BYTES long). The hot loop of
 * the index's cost at ingest: one pass over the bytes, two multiplications per byte, no allocation. `last3`
 * holds the codes of the latest three characters (7 bits each), `prev3` those of the three before them.
 */
export function addGrams(bits: Uint8Array, buf: Uint8Array, start: number, end: number): void {
  let last3 = 0,
    prev3 = 0,
    run = 0;
  for (let i = start; i < end; i++) {
    let c = FOLD[buf[i]!]!;
    if (c === 0) {
      const b = buf[i]!;
      if (b === 0xe2 && i + 2 < end && buf[i + 1] === 0x84 && buf[i + 2] === 0xaa) {
        c = 0x6b; // U+212A → k
        i += 2;
      } else if (b === 0xc5 && i + 1 < end && buf[i + 1] === 0xbf) {
        c = 0x73; // U+017F → s
        i += 1;
      } else {
        run = 0;
        continue;
      }
    }
    prev3 = ((prev3 << 7) | (last3 >>> 14)) & 0x1fffff;
    last3 = ((last3 << 7) | c) & 0x1fffff;
    if (++run >= 3) {
      const h = Math.imul(last3, 0x9e3779b1);
      const bit = h >>> (32 - BITS_LOG2);
      bits[bit >>> 3]! |= 1 << (bit & 7);
      if (run >= 6) {
        const bit6 = Math.imul(h ^ prev3, 0x85ebca6b) >>> (32 - BITS_LOG2);
        bits[bit6 >>> 3]! |= 1 << (bit6 & 7);
      }
    }
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
