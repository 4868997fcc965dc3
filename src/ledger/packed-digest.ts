import { createHash } from 'node:crypto';
import type { PgAuditRecord } from '../parse/index.js';
import type { KnownRows } from './ledger.js';

/**
 * The rows digest of a pgaudit batch computed from the bytes the store loads, so that DuckDB need not hash
 * what it has just inserted: the packed rows (parse/packed.ts: they are the canonical encoding, ledger/
 * streams.ts) and the records that travel as objects, encoded the same way, in the stream's order (log time,
 * context, line, then the bytes) and hashed as one stream. A log file is nearly in that order already, so
 * a batch is usually hashed as it is, in one call; rows out of order are sorted and hashed in runs. Valid
 * only when every row was stored as given (the sink falls back to SQL when a row was skipped as stored).
 */
const US = 0x1f;
const GS = 0x1d;
const LF = 0x0a;
const FIELDS = 14;

/** The rows of a batch: where each one's bytes are, and its identity. */
class Rows {
  count = 0;
  buf: Buffer[] = [];
  start = new Uint32Array(1024);
  /** End of the bytes hashed, LF included. */
  end = new Uint32Array(1024);
  /** Where the message field starts when it is left out (messages not stored), else -1. */
  cut = new Int32Array(1024);
  time = new Float64Array(1024);
  context = new Float64Array(1024);
  line = new Float64Array(1024);

  add(buf: Buffer, start: number, end: number, cut: number, time: number, context: number, line: number): void {
    if (this.count === this.start.length) this.grow();
    const i = this.count++;
    this.buf[i] = buf;
    this.start[i] = start;
    this.end[i] = end;
    this.cut[i] = cut;
    this.time[i] = time;
    this.context[i] = context;
    this.line[i] = line;
  }

  private grow(): void {
    const n = this.start.length * 2;
    const grow = <T extends Uint32Array | Int32Array | Float64Array>(a: T, make: (n: number) => T): T => {
      const b = make(n);
      b.set(a);
      return b;
    };
    this.start = grow(this.start, (k) => new Uint32Array(k));
    this.end = grow(this.end, (k) => new Uint32Array(k));
    this.cut = grow(this.cut, (k) => new Int32Array(k));
    this.time = grow(this.time, (k) => new Float64Array(k));
    this.context = grow(this.context, (k) => new Float64Array(k));
    this.line = grow(this.line, (k) => new Float64Array(k));
  }

  /** The encoding of row i (LF included). */
  bytes(i: number): Buffer {
    const b = this.buf[i]!;
    const cut = this.cut[i]!;
    return cut < 0 ? b.subarray(this.start[i], this.end[i]) : Buffer.concat([b.subarray(this.start[i], cut), Buffer.from([LF])]);
  }
}

/** Reads the order keys at the start of a packed row: log time, context_id, session_line_num (fields 0, 1, 3). */
function identityAt(packed: Buffer, start: number, rows: Rows, end: number, keepMessage: boolean): void {
  let i = start;
  let time = 0;
  let context = 0;
  let line = 0;
  for (let f = 0; f < 4; f++) {
    let v = 0;
    let neg = false;
    const from = i;
    for (let b = packed[i]!; b !== US; b = packed[++i]!) {
      if (b === 45) neg = true;
      else v = v * 10 + (b - 48);
    }
    // NULL (an empty field) sorts last, as in SQL.
    const value = i === from ? Infinity : neg ? -v : v;
    if (f === 0) time = value;
    else if (f === 1) context = value;
    else if (f === 3) line = value;
    i++;
  }
  // A message is left out when messages are not stored (the store keeps NULL): its field is cut. The message
  // is the last field; packed text holds no GS, so its opening GS is the last but one of the row.
  let cut = -1;
  if (!keepMessage && packed[end - 2] !== US) cut = packed.lastIndexOf(GS, end - 3);
  rows.add(packed, start, end, cut, time, context, line);
}

/** Cuts packed rows where the parser did not record their ends (fields 0–3 are numbers, text is between GS). */
function cutPacked(packed: Buffer, keepMessage: boolean, rows: Rows): void {
  const len = packed.length;
  let i = 0;
  while (i < len) {
    const start = i;
    for (let f = 0; f < FIELDS; f++) {
      if (packed[i] === GS) i = packed.indexOf(GS, i + 1) + 1;
      else while (packed[i] !== US && packed[i] !== LF) i++;
      i++; // the separator after the field (LF after the last)
    }
    identityAt(packed, start, rows, i, keepMessage);
  }
}

/** A record object in the packed encoding, GS in text doubled (objects are the records that may hold GS). */
function encodeObject(r: PgAuditRecord, keepMessage: boolean): Buffer {
  const t = (x: string | null) => (x === null ? '' : `\x1d${x.replaceAll('\x1d', '\x1d\x1d')}\x1d`);
  const n = (x: number | string | null | undefined) => (x === null || x === undefined ? '' : String(x));
  const message = keepMessage && r.message !== '' ? r.message : null;
  const fields = [
    n(r.log_time_ms),
    n(r.context_id),
    n(r.kind_id),
    n(r.session_line_num),
    t(r.virtual_transaction_id),
    n(r.transaction_id),
    n(r.query_id),
    n(r.statement_id),
    n(r.substatement_id),
    t(r.object_name),
    t(r.statement),
    t(r.parameter),
    n(r.rows),
    t(message),
  ];
  return Buffer.from(fields.join('\x1f') + '\n', 'utf8');
}

/** Compares rows i and j in the stream's order. */
function compare(rows: Rows, i: number, j: number): number {
  return rows.time[i]! - rows.time[j]! || rows.context[i]! - rows.context[j]! || rows.line[i]! - rows.line[j]! || Buffer.compare(rows.bytes(i), rows.bytes(j));
}

export function packedRowsDigest(packed: Buffer, ends: Uint32Array | undefined, objects: readonly PgAuditRecord[], keepMessage: boolean): KnownRows {
  const rows = new Rows();
  if (ends) {
    let start = 0;
    for (let r = 0; r < ends.length; r++) {
      identityAt(packed, start, rows, ends[r]!, keepMessage);
      start = ends[r]!;
    }
  } else cutPacked(packed, keepMessage, rows);
  for (const r of objects) {
    const buf = encodeObject(r, keepMessage);
    rows.add(buf, 0, buf.length, -1, r.log_time_ms ?? Infinity, Number(r.context_id), Number(r.session_line_num));
  }
  const n = rows.count;
  let sorted = true;
  let cuts = false;
  for (let i = 0; i < n; i++) {
    if (rows.cut[i]! >= 0) cuts = true;
    if (i > 0 && sorted && compare(rows, i - 1, i) >= 0) sorted = false;
  }
  const hash = createHash('sha256');
  // The usual case: the batch is its packed bytes, in order.
  if (sorted && !cuts && objects.length === 0) return { rows: n, digest: hash.update(packed.subarray(0, n ? rows.end[n - 1]! : 0)).digest('hex') };
  const order = Array.from({ length: n }, (_, i) => i);
  if (!sorted) order.sort((a, b) => compare(rows, a, b));
  // Hashed in runs of rows that lie one after the other in the same buffer.
  const lf = Buffer.from([LF]);
  for (let k = 0; k < n;) {
    const i = order[k]!;
    const buf = rows.buf[i]!;
    if (rows.cut[i]! >= 0) {
      hash.update(buf.subarray(rows.start[i], rows.cut[i]));
      hash.update(lf);
      k++;
      continue;
    }
    let last = i;
    k++;
    while (k < n && order[k] === last + 1 && rows.buf[last + 1] === buf && rows.cut[last + 1]! < 0) last = order[k++]!;
    hash.update(buf.subarray(rows.start[i], rows.end[last]));
  }
  return { rows: n, digest: hash.digest('hex') };
}
