import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { packedRowsDigest } from '../../src/ledger/packed-digest.js';
import type { PgAuditRecord } from '../../src/parse/index.js';
import { Rng } from '../helpers/prng.js';

/**
 * The JavaScript digest of a batch against a plain reference: every row encoded (packed encoding, the
 * message left out when messages are not stored), sorted by (log time, context, line, bytes) with NULL last,
 * concatenated and hashed once. Batches in order, nearly in order, shuffled (past the insertion sort's
 * budget), with ties of the identity, with records that travel as objects, with and without recorded ends.
 */
const US = '\x1f';
const text = (x: string | null) => (x === null ? '' : `\x1d${x.replaceAll('\x1d', '\x1d\x1d')}\x1d`);
const num = (x: number | null) => (x === null ? '' : String(x));

interface Row {
  time: number | null;
  context: number;
  line: number;
  statement: string;
  message: string | null;
}

function encode(r: Row, withMessage: boolean): string {
  return (
    [
      num(r.time),
      num(r.context),
      num(7),
      num(r.line),
      text('3/14'),
      num(null),
      num(null),
      num(1),
      num(1),
      text('public.t'),
      text(r.statement),
      text(null),
      num(null),
      text(withMessage ? r.message : null),
    ].join(US) + '\n'
  );
}

function asObject(r: Row): PgAuditRecord {
  return {
    log_time_ms: r.time,
    context_id: r.context,
    kind_id: 7,
    session_line_num: r.line,
    virtual_transaction_id: '3/14',
    transaction_id: null,
    query_id: null,
    statement_id: 1,
    substatement_id: 1,
    object_name: 'public.t',
    statement: r.statement,
    parameter: null,
    rows: null,
    message: r.message ?? '',
  } as unknown as PgAuditRecord;
}

function reference(rows: Row[], keepMessage: boolean): string {
  const keyed = rows.map((r) => ({ r, bytes: Buffer.from(encode(r, keepMessage)) }));
  const k = (x: number | null) => (x === null ? Infinity : x);
  keyed.sort((a, b) => k(a.r.time) - k(b.r.time) || a.r.context - b.r.context || a.r.line - b.r.line || Buffer.compare(a.bytes, b.bytes));
  return createHash('sha256')
    .update(Buffer.concat(keyed.map((x) => x.bytes)))
    .digest('hex');
}

function batch(rng: Rng, n: number, disorder: 'none' | 'near' | 'shuffled'): Row[] {
  const rows: Row[] = [];
  let t = 1_714_564_800_000;
  for (let i = 0; i < n; i++) {
    t += rng.int(0, 2);
    rows.push({
      time: rng.int(0, 500) === 0 ? null : t,
      context: rng.int(1, 40),
      line: rng.int(1, 5),
      statement: `SELECT ${rng.int(0, 1e6)} /* ${'x'.repeat(rng.int(0, 30))} */`,
      message: rng.int(0, 3) === 0 ? null : `AUDIT: SESSION,${i}`,
    });
  }
  if (disorder === 'none') rows.sort((a, b) => (a.time ?? Infinity) - (b.time ?? Infinity) || a.context - b.context || a.line - b.line);
  if (disorder === 'near') for (let i = 1; i < n; i += rng.int(1, 9)) [rows[i - 1], rows[i]] = [rows[i]!, rows[i - 1]!];
  if (disorder === 'shuffled')
    for (let i = rows.length - 1; i > 0; i--) {
      const j = rng.int(0, i);
      [rows[i], rows[j]] = [rows[j]!, rows[i]!];
    }
  // Ties of the identity: a row repeated with another statement, and one repeated as it is.
  rows.push({ ...rows[3]!, statement: 'SELECT tie' });
  rows.push({ ...rows[5]! });
  return rows;
}

for (const disorder of ['none', 'near', 'shuffled'] as const) {
  for (const keepMessage of [true, false]) {
    test(`rows ${disorder === 'none' ? 'in order' : disorder === 'near' ? 'nearly in order' : 'shuffled'}, messages ${keepMessage ? 'stored' : 'left out'}: the digest equals the reference`, () => {
      const rng = new Rng(disorder.length * 31 + (keepMessage ? 1 : 0));
      for (const n of [0, 6, 50, 3000]) {
        const rows = n === 0 ? [] : batch(rng, n, disorder);
        const objects = rows.filter((_, i) => i % 97 === 13);
        const packedRows = rows.filter((_, i) => i % 97 !== 13);
        // The packer packs the message only when it is stored (else the field is cut by the digest).
        const lines = packedRows.map((r) => encode(r, true));
        const packed = Buffer.from(lines.join(''));
        const ends = new Uint32Array(lines.length);
        let at = 0;
        lines.forEach((l, i) => (ends[i] = at += Buffer.byteLength(l)));
        const want = reference(rows, keepMessage);
        const viaEnds = packedRowsDigest(packed, ends, objects.map(asObject), keepMessage);
        const viaCut = packedRowsDigest(packed, undefined, objects.map(asObject), keepMessage);
        assert.equal(viaEnds.rows, rows.length);
        assert.equal(viaEnds.digest, want, `n=${n}, ends recorded`);
        assert.equal(viaCut.digest, want, `n=${n}, ends found by cutting`);
      }
    });
  }
}
