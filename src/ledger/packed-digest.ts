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

/**
 * The rows of a batch: where each one's bytes are (in the packed bytes, or in the encoded objects) and its
 * identity, in typed arrays sized once (a JS array of buffers per row cost a fifth of the hashing).
 */
class Rows {
  count = 0;
  /** 1: in the objects' buffer; 0: in the packed bytes. */
  readonly inObjects: Uint8Array;
  readonly start: Uint32Array;
  /** End of the bytes hashed, LF included. */
  readonly end: Uint32Array;
  /** Where the message field starts when it is left out (messages not stored), else -1. */
  readonly cut: Int32Array;
  readonly time: Float64Array;
  readonly context: Float64Array;
  readonly line: Float64Array;
  objects: Buffer = Buffer.alloc(0);

  constructor(
    readonly packed: Buffer,
    capacity: number,
  ) {
    this.inObjects = new Uint8Array(capacity);
    this.start = new Uint32Array(capacity);
    this.end = new Uint32Array(capacity);
    this.cut = new Int32Array(capacity);
    this.time = new Float64Array(capacity);
    this.context = new Float64Array(capacity);
    this.line = new Float64Array(capacity);
  }

  add(inObjects: number, start: number, end: number, cut: number, time: number, context: number, line: number): void {
    const i = this.count++;
    this.inObjects[i] = inObjects;
    this.start[i] = start;
    this.end[i] = end;
    this.cut[i] = cut;
    this.time[i] = time;
    this.context[i] = context;
    this.line[i] = line;
  }

  /** The bytes row i contributes (without the left-out message and its LF when cut). */
  private stop(i: number): number {
    return this.cut[i]! >= 0 ? this.cut[i]! : this.end[i]!;
  }

  /** How many bytes row i contributes to the hash, LF included. */
  size(i: number): number {
    return this.cut[i]! >= 0 ? this.cut[i]! - this.start[i]! + 1 : this.end[i]! - this.start[i]!;
  }

  /** Copies row i's encoding (LF included) to out at pos; returns the position after it. */
  copy(i: number, out: Buffer, pos: number): number {
    const from = this.inObjects[i] ? this.objects : this.packed;
    pos += from.copy(out, pos, this.start[i], this.stop(i));
    if (this.cut[i]! >= 0) out[pos++] = LF;
    return pos;
  }

  /** The encoding of row i (LF included): only for ties of the identity, which are rare. */
  bytes(i: number): Buffer {
    const out = Buffer.allocUnsafe(this.size(i));
    this.copy(i, out, 0);
    return out;
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
  rows.add(0, start, end, cut, time, context, line);
}

/** The ends of packed rows where the parser did not record them (fields 0–3 are numbers, text is between GS). */
function cutPacked(packed: Buffer): Uint32Array {
  const len = packed.length;
  let ends = new Uint32Array(1024);
  let n = 0;
  let i = 0;
  while (i < len) {
    for (let f = 0; f < FIELDS; f++) {
      if (packed[i] === GS) i = packed.indexOf(GS, i + 1) + 1;
      else while (packed[i] !== US && packed[i] !== LF) i++;
      i++; // the separator after the field (LF after the last)
    }
    if (n === ends.length) {
      const grown = new Uint32Array(n * 2);
      grown.set(ends);
      ends = grown;
    }
    ends[n++] = i;
  }
  return ends.subarray(0, n);
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

/** Reused between batches: the rows in the stream's order when they are not in it as loaded. */
let scratch = Buffer.alloc(0);

export function packedRowsDigest(packed: Buffer, ends: Uint32Array | undefined, objects: readonly PgAuditRecord[], keepMessage: boolean): KnownRows {
  const rowEnds = ends ?? cutPacked(packed);
  const rows = new Rows(packed, rowEnds.length + objects.length);
  let start = 0;
  for (let r = 0; r < rowEnds.length; r++) {
    identityAt(packed, start, rows, rowEnds[r]!, keepMessage);
    start = rowEnds[r]!;
  }
  if (objects.length > 0) {
    const encoded = objects.map((r) => encodeObject(r, keepMessage));
    rows.objects = Buffer.concat(encoded);
    let at = 0;
    objects.forEach((r, k) => {
      const len = encoded[k]!.length;
      rows.add(1, at, at + len, -1, r.log_time_ms ?? Infinity, Number(r.context_id), Number(r.session_line_num));
      at += len;
    });
  }
  const n = rows.count;
  let sorted = true;
  let cuts = false;
  let total = 0;
  for (let i = 0; i < n; i++) {
    if (rows.cut[i]! >= 0) cuts = true;
    total += rows.size(i);
    if (i > 0 && sorted && compare(rows, i - 1, i) >= 0) sorted = false;
  }
  const hash = createHash('sha256');
  // The usual case: the batch is its packed bytes, in order.
  if (sorted && !cuts && objects.length === 0) return { rows: n, digest: hash.update(packed.subarray(0, n ? rows.end[n - 1]! : 0)).digest('hex') };
  // Otherwise the rows are copied in order into one buffer and hashed in one call (a call per row or run of
  // rows cost more than the copy). A batch is nearly in order (log time): an insertion sort moves the few rows
  // out of place; past a bound of moves the rest is sorted by the engine's sort.
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  if (!sorted) sortNearlySorted(order, (a, b) => compare(rows, a, b));
  if (scratch.length < total) scratch = Buffer.allocUnsafe(Math.max(total, scratch.length * 2));
  // Copied in runs: rows next to each other in the order and in the packed bytes go in one copy.
  let pos = 0;
  for (let k = 0; k < n;) {
    const i = order[k]!;
    if (rows.inObjects[i] || rows.cut[i]! >= 0) {
      pos = rows.copy(i, scratch, pos);
      k++;
      continue;
    }
    let last = i;
    k++;
    while (k < n && order[k] === last + 1 && !rows.inObjects[last + 1] && rows.cut[last + 1]! < 0) last = order[k++]!;
    pos += packed.copy(scratch, pos, rows.start[i], rows.end[last]);
  }
  const digest = hash.update(scratch.subarray(0, pos)).digest('hex');
  // A batch far larger than usual (a huge statement) does not stay allocated.
  if (scratch.length > 64 << 20) scratch = Buffer.alloc(0);
  return { rows: n, digest };
}

/** Sorts order by cmp: insertion sort while the moves stay few (nearly sorted input), else a full sort. */
function sortNearlySorted(order: Uint32Array, cmp: (a: number, b: number) => number): void {
  const n = order.length;
  let budget = 8 * n + 64;
  for (let i = 1; i < n; i++) {
    const x = order[i]!;
    let j = i - 1;
    while (j >= 0 && cmp(order[j]!, x) > 0) {
      order[j + 1] = order[j]!;
      j--;
      if (--budget < 0) {
        order[j + 1] = x;
        const all = Array.from(order).sort(cmp);
        order.set(all);
        return;
      }
    }
    order[j + 1] = x;
  }
}
