import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DuckDBInstance } from '@duckdb/node-api';
import { addGrams, BITMAP_BYTES, BlockBuilder, hasAll, termBits } from '../../src/text-index/index.js';
import { Rng } from '../helpers/csvlog-gen.js';

/**
 * The text index may only say "maybe" wrongly, never "no": whenever the store's own condition (DuckDB's
 * RE2, case-insensitive, the term as a literal) matches a statement, the statement's bitmap has every bit of
 * the term. Checked with DuckDB as the oracle on random statements and terms mixing ASCII with characters whose
 * case folding is special (KELVIN SIGN and LONG S fold to ASCII; ß, Σ/σ/ς, İ/ı, É/é do not).
 */
const bitmapOf = (text: string): Uint8Array => {
  const bits = new Uint8Array(BITMAP_BYTES);
  const buf = Buffer.from(text, 'utf8');
  addGrams(bits, buf, 0, buf.length);
  return bits;
};
const literal = (t: string) => t.replace(/[\\^$.|?*+()[\]{}]/g, (c) => `\\${c}`);

test('terms: trigrams of ASCII runs, case-folded; none below three characters', () => {
  assert.deepEqual(termBits('ab'), []);
  assert.deepEqual(termBits('éé'), []);
  assert.equal(termBits('abc').length, 1);
  assert.equal(termBits('abcdef').length, 5, 'four trigrams and one 6-gram');
  assert.deepEqual(termBits('SALARY'), termBits('salary'));
  assert.deepEqual(termBits('\u212Aey'), termBits('key'), 'KELVIN SIGN counts as k');
  assert.deepEqual(termBits('\u017Fal'), termBits('sal'), 'LONG S counts as s');
  assert.deepEqual(termBits('aé bcd'), termBits(' bcd'), 'a run ends at other characters');
  assert.ok(hasAll(bitmapOf('UPDATE public.salary SET x = 1'), termBits('Salary')));
  assert.ok(!hasAll(bitmapOf('UPDATE public.wages SET x = 1'), termBits('salary')));
});

test('blocks of packed rows: time range and the statement field only', () => {
  const US = '\x1f',
    GS = '\x1d';
  // EVENT_ROW_COLUMNS: time, context, kind, line, vxid, xid, query id, stmt id, substmt id, object, statement, parameter, rows, message
  const row = (t: number, obj: string, stmt: string | null, param: string) =>
    [
      String(t),
      '1',
      '2',
      '3',
      `${GS}3/1${GS}`,
      '',
      '',
      '1',
      '1',
      `${GS}${obj}${GS}`,
      stmt === null ? '' : `${GS}${stmt}${GS}`,
      `${GS}${param}${GS}`,
      '',
      '',
    ].join(US) + '\n';
  const packed = Buffer.from(
    row(1000, 'public.salary', 'SELECT 1\nFROM t', 'x') + row(3000, 'o', null, 'salary') + row(2000, 'o', 'UPDATE pay SET a=1 -- with \x1f inside', ''),
  );
  const b = new BlockBuilder(2);
  b.addPacked(packed, 3);
  assert.equal(b.blocks.length, 2);
  assert.deepEqual(
    b.blocks.map((x) => [x.lo, x.hi, x.rows]),
    [
      [1000, 3000, 2],
      [2000, 2000, 1],
    ],
  );
  assert.ok(hasAll(b.blocks[0]!.bits, termBits('1\nfrom')), 'statements may hold newlines');
  assert.ok(!hasAll(b.blocks[0]!.bits, termBits('salary')), 'object names and parameters are not statement text');
  assert.ok(hasAll(b.blocks[1]!.bits, termBits('inside')), 'a statement may hold the field separator');
});

test('a repeated statement is skipped within its block only; one with the same key but other bytes is not', () => {
  const US = '\x1f',
    GS = '\x1d';
  const row = (t: number, stmt: string) => [String(t), '1', '2', '3', '', '', '', '1', '1', '', `${GS}${stmt}${GS}`, '', '', ''].join(US) + '\n';
  // The same length and the same bytes where the key looks (a quarter, the middle, the end) as "SELECT alpha_one z".
  const packed = Buffer.from(
    row(1, 'SELECT alpha_one z') + row(2, 'SELECT alpha_one z') + row(3, 'SELECT ompha_one z') + row(4, 'SELECT alpha_one z') + row(5, 'SELECT alpha'),
  );
  const b = new BlockBuilder(3);
  b.addPacked(packed, 5);
  assert.equal(b.blocks.length, 2);
  assert.ok(hasAll(b.blocks[0]!.bits, termBits('alpha_one')));
  assert.ok(hasAll(b.blocks[0]!.bits, termBits('ompha_one')), 'a statement with the same key but other bytes is indexed');
  assert.ok(hasAll(b.blocks[1]!.bits, termBits('alpha_one')), 'a statement seen in the previous block is indexed in its own');
  assert.ok(!hasAll(b.blocks[1]!.bits, termBits('ompha_one')));
});

test('whenever DuckDB matches a term, the bitmap has its bits (random statements and terms)', async () => {
  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  const rng = new Rng(3);
  const alphabet = [
    'a',
    'B',
    'z',
    'Z',
    'k',
    'K',
    's',
    'S',
    'e',
    '1',
    ' ',
    '_',
    '.',
    '\n',
    '\u212A',
    '\u017F',
    'ß',
    'é',
    'É',
    'Σ',
    'σ',
    'ς',
    'İ',
    'ı',
    'ǅ',
    '€',
    '😀',
  ];
  const variants: Record<string, string[]> = { k: ['k', 'K', '\u212A'], s: ['s', 'S', '\u017F'], é: ['é', 'É'], σ: ['σ', 'Σ', 'ς'] };
  let matched = 0;
  for (let round = 0; round < 40; round++) {
    const rows: [string, string][] = [];
    for (let i = 0; i < 100; i++) {
      const s = Array.from({ length: rng.int(3, 40) }, () => rng.pick(alphabet)).join('');
      const chars = Array.from(s);
      const from = rng.int(0, chars.length - 1);
      // A substring with each character swapped for one of its case variants, or a random string.
      const t = rng.chance(0.8)
        ? chars
            .slice(from, from + rng.int(1, 10))
            .map((c) => {
              const v = variants[c.toLowerCase()] ?? [c.toLowerCase(), c.toUpperCase()];
              return rng.pick(v);
            })
            .join('')
        : Array.from({ length: rng.int(3, 6) }, () => rng.pick(alphabet)).join('');
      rows.push([s, t]);
    }
    const values = rows.map(([s, t]) => `(${sql(s)}, ${sql(literal(t))})`).join(', ');
    const result = await conn.runAndReadAll(`SELECT regexp_matches(s, t, 'i') FROM (VALUES ${values}) AS v(s, t)`);
    result.getRows().forEach((r, i) => {
      const [s, t] = rows[i]!;
      if (r[0] === true) {
        matched++;
        assert.ok(hasAll(bitmapOf(s), termBits(t)), `the index must not rule out ${JSON.stringify(t)} in ${JSON.stringify(s)}`);
      }
    });
  }
  assert.ok(matched > 1000, `enough matching pairs to mean something (${matched})`);
  conn.closeSync();
});

const sql = (s: string) => `'${s.replaceAll("'", "''")}'`;
