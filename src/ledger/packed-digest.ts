import { createHash } from 'node:crypto';
import type { PgAuditRecord } from '../parse/index.js';
import type { KnownRows } from './ledger.js';

/**
 * The rows digest of a pgaudit batch computed from the bytes the store loads, so that DuckDB need not hash
 * what it has just inserted: the packed rows (parse/packed.ts: they are the canonical encoding, ledger/
 * streams.ts) and the records that travel as objects, encoded the same way, sorted by identity (context_id,
 * session_line_num, then the bytes) and hashed as one stream. Valid only when every row was stored as given
 * (the sink falls back to SQL when a row was skipped as already stored).
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
  context = new Float64Array(1024);
  line = new Float64Array(1024);

  add(buf: Buffer, start: number, end: number, cut: number, context: number, line: number): void {
    if (this.count === this.start.length) this.grow();
    const i = this.count++;
    this.buf[i] = buf;
    this.start[i] = start;
    this.end[i] = end;
    this.cut[i] = cut;
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
    this.context = grow(this.context, (k) => new Float64Array(k));
    this.line = grow(this.line, (k) => new Float64Array(k));
  }

  /** The encoding of row i (LF included). */
  bytes(i: number): Buffer {
    const b = this.buf[i]!;
    const cut = this.cut[i]!;
    return cut < 0 ? b.subarray(this.start[i]!, this.end[i]!) : Buffer.concat([b.subarray(this.start[i]!, cut), Buffer.from([LF])]);
  }
}

/** Reads the identity (fields 1 and 3: context_id, session_line_num) at the start of a packed row. */
function identityAt(packed: Buffer, start: number, rows: Rows, end: number, keepMessage: boolean): void {
  let i = start;
  let context = 0;
  let line = 0;
  for (let f = 0; f < 4; f++) {
    let v = 0;
    let neg = false;
    for (let b = packed[i]!; b !== US; b = packed[++i]!) {
      if (b === 45) neg = true;
      else v = v * 10 + (b - 48);
    }
    if (f === 1) context = neg ? -v : v;
    else if (f === 3) line = neg ? -v : v;
    i++;
  }
  // A message is left out when messages are not stored (the store keeps NULL): its field is cut. The message
  // is the last field; packed text holds no GS, so its opening GS is the last but one of the row.
  let cut = -1;
  if (!keepMessage && packed[end - 2] !== US) cut = packed.lastIndexOf(GS, end - 3);
  rows.add(packed, start, end, cut, context, line);
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

/**
 * The rows in identity order. A session's rows come in the order of their line numbers, so grouping by context
 * (in file order) and putting the groups in id order is the sort, in linear time; a group whose lines do not
 * ascend (a batch holding one identity twice) is sorted in full, ties by the bytes as SQL orders them.
 */
function identityOrder(rows: Rows): Uint32Array {
  const n = rows.count;
  const { context, line } = rows;
  const groupOf = new Map<number, number>();
  const ids: number[] = [];
  const sizes: number[] = [];
  const group = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    let g = groupOf.get(context[i]!);
    if (g === undefined) {
      g = ids.length;
      groupOf.set(context[i]!, g);
      ids.push(context[i]!);
      sizes.push(0);
    }
    group[i] = g;
    sizes[g]!++;
  }
  const byId = ids.map((_, g) => g).sort((a, b) => ids[a]! - ids[b]!);
  const at = new Array<number>(ids.length);
  let pos = 0;
  for (const g of byId) {
    at[g] = pos;
    pos += sizes[g]!;
  }
  const from = at.slice();
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[at[group[i]!]!++] = i;
  for (const g of byId) {
    const s = from[g]!;
    const e = s + sizes[g]!;
    let ascending = true;
    for (let k = s + 1; k < e && ascending; k++) ascending = line[order[k]!]! > line[order[k - 1]!]!;
    if (!ascending) order.subarray(s, e).sort((a, b) => line[a]! - line[b]! || Buffer.compare(rows.bytes(a), rows.bytes(b)));
  }
  return order;
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
    rows.add(buf, 0, buf.length, -1, Number(r.context_id), Number(r.session_line_num));
  }
  const n = rows.count;
  const order = identityOrder(rows);
  // The rows in identity order, copied into one buffer and hashed at once.
  let size = 0;
  for (let i = 0; i < n; i++) size += rows.cut[i]! < 0 ? rows.end[i]! - rows.start[i]! : rows.cut[i]! - rows.start[i]! + 1;
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (let k = 0; k < n; k++) {
    const i = order[k]!;
    const cut = rows.cut[i]!;
    if (cut < 0) at += rows.buf[i]!.copy(out, at, rows.start[i]!, rows.end[i]!);
    else {
      at += rows.buf[i]!.copy(out, at, rows.start[i]!, cut);
      out[at++] = LF;
    }
  }
  return { rows: n, digest: createHash('sha256').update(out).digest('hex') };
}
