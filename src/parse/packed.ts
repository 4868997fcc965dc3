import type { PgAuditRecord } from './log-record.js';
import type { EventContext, EventKind } from './dimensions.js';

/**
 * Packed rows: the compact form in which a batch of pgaudit records travels from the parser to a sink.
 *
 * A CSV dialect in UTF-8 that DuckDB's CSV reader loads in parallel: fields in EVENT_ROW_COLUMNS order
 * separated by US (0x1F); every text value wrapped in GS (0x1D) as its quote character, so it may hold
 * newlines and an empty text differs from NULL; NULL is an empty unquoted field; numbers are bare ASCII
 * digits (times as epoch milliseconds); each record ends with LF. A record whose text contains GS cannot
 * be packed and travels as a PgAuditRecord object instead (as do very long records).
 *
 * A row holds what is particular to one event; what it shares with its session (user, database, client,
 * application, ...) and with events of its kind (audit type, class, command, ...) is in the batch's
 * dimensions (session-tracker.ts), referenced by `context_id` and `kind_id`. `recordRows` joins them back
 * into every column of the record (PACKED_COLUMNS order), for sinks that send whole records.
 *
 * Kept as one file (about 480 lines): the packed row format, its writer and its reader, in one place so that
 * they cannot drift apart.
 */
export const US = 0x1f;
export const GS = 0x1d;
const LF = 0x0a;

/** Every column of a record, in the order recordRows() gives them (and sinks of whole records take them). */
export const PACKED_COLUMNS = [
  'log_time_ms',
  'user_name',
  'database_name',
  'client_addr',
  'client_port',
  'message',
  'application_name',
  'session_id',
  'session_line_num',
  'process_id',
  'virtual_transaction_id',
  'transaction_id',
  'command_tag',
  'session_start_ms',
  'error_severity',
  'backend_type',
  'leader_pid',
  'query_id',
  'audit_type',
  'statement_id',
  'substatement_id',
  'class',
  'command',
  'object_type',
  'object_name',
  'statement',
  'parameter',
  'rows',
] as const;

export type PackedColumn = (typeof PACKED_COLUMNS)[number];

/** The fields of a packed row, in order. */
export const EVENT_ROW_COLUMNS = [
  'log_time_ms',
  'context_id',
  'kind_id',
  'session_line_num',
  'virtual_transaction_id',
  'transaction_id',
  'query_id',
  'statement_id',
  'substatement_id',
  'object_name',
  'statement',
  'parameter',
  'rows',
  'message',
] as const;

export type EventRowColumn = (typeof EVENT_ROW_COLUMNS)[number];

/** Packed row fields holding numbers (everything else is text). */
export const EVENT_ROW_NUMERIC: ReadonlySet<EventRowColumn> = new Set([
  'log_time_ms',
  'context_id',
  'kind_id',
  'session_line_num',
  'transaction_id',
  'query_id',
  'statement_id',
  'substatement_id',
  'rows',
]);

/** Record columns holding numbers (everything else is text). */
export const NUMERIC_COLUMNS: ReadonlySet<PackedColumn> = new Set([
  'log_time_ms',
  'client_port',
  'session_line_num',
  'process_id',
  'transaction_id',
  'session_start_ms',
  'leader_pid',
  'query_id',
  'statement_id',
  'substatement_id',
  'rows',
]);

/** The contexts and kinds a batch's rows reference, by id. */
export interface Dimensions {
  contexts: ReadonlyMap<number, EventContext>;
  kinds: ReadonlyMap<number, EventKind>;
}

export function dimensionsOf(contexts: readonly EventContext[], kinds: readonly EventKind[]): Dimensions {
  return { contexts: new Map(contexts.map((c) => [c.id, c])), kinds: new Map(kinds.map((k) => [k.id, k])) };
}

const CONTROL = /\x1d/;

/** Records longer than this travel as objects: DuckDB's CSV reader caps line length. */
export const MAX_PACKED_RECORD_BYTES = 1 << 20;

/**
 * Reusable byte buffers. Node frees a Buffer only when V8 collects its tiny JS handle, which a small heap
 * does rarely; handing buffers back keeps memory flat however much is read.
 */
export class BufferPool {
  private readonly free: Buffer[] = [];
  constructor(private readonly keep = 4) {}

  /** The smallest free buffer of at least minSize bytes, or a new one. */
  acquire(minSize: number): Buffer {
    let best = -1;
    for (let i = 0; i < this.free.length; i++) {
      const len = this.free[i]!.length;
      if (len >= minSize && (best < 0 || len < this.free[best]!.length)) best = i;
    }
    if (best >= 0) return this.free.splice(best, 1)[0]!;
    return Buffer.allocUnsafe(minSize);
  }

  release(buf: Buffer): void {
    if (this.free.length < this.keep) this.free.push(buf);
  }
}

/** A growable byte buffer that packs records. */
export class PackWriter {
  buf: Buffer;
  len = 0;
  count = 0;
  /** Where each record ends (after its LF): the ledger hashes records in identity order without cutting them again. */
  private ends = new Uint32Array(4096);

  constructor(
    private readonly pool: BufferPool = new BufferPool(),
    private readonly initial = 1 << 20,
  ) {
    this.buf = pool.acquire(initial);
  }

  ensure(extra: number): void {
    if (this.len + extra <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + extra) size *= 2;
    const next = this.pool.acquire(size);
    this.buf.copy(next, 0, 0, this.len);
    this.pool.release(this.buf);
    this.buf = next;
  }

  // Unchecked writes for the csvlog packer, which reserves room for a whole record first (ensure).

  /** Copies src[s, e) without checking room. */
  uCopy(src: Uint8Array, s: number, e: number): void {
    const out = this.buf;
    if (e - s < 64) {
      let j = this.len;
      for (let i = s; i < e; i++) out[j++] = src[i]!;
      this.len = j;
    } else {
      Buffer.prototype.copy.call(src, out, this.len, s, e);
      this.len += e - s;
    }
  }

  /** Writes one byte without checking room. */
  uByte(b: number): void {
    this.buf[this.len++] = b;
  }

  /** Writes src[s, e) as quoted text without checking room; with `undouble`, "" becomes ". */
  uText(src: Buffer, s: number, e: number, undouble: boolean): void {
    this.buf[this.len++] = GS;
    if (!undouble) this.uCopy(src, s, e);
    else {
      let from = s;
      for (;;) {
        const q = src.indexOf(34, from);
        if (q < 0 || q >= e) break;
        this.uCopy(src, from, q + 1);
        from = q + 2;
      }
      this.uCopy(src, from, e);
    }
    this.buf[this.len++] = GS;
  }

  /** Turns the separator just written into the end of the record. */
  uEndRecord(): void {
    this.buf[this.len - 1] = LF;
    this.recordEnd();
  }

  private recordEnd(): void {
    if (this.count === this.ends.length) {
      const next = new Uint32Array(this.ends.length * 2);
      next.set(this.ends);
      this.ends = next;
    }
    this.ends[this.count++] = this.len;
  }

  /** Gives the buffer back to the pool; the writer is not used afterwards. */
  dispose(): void {
    this.pool.release(this.buf);
    this.buf = Buffer.alloc(0);
    this.len = 0;
  }

  /** Writes src[s, e) as a quoted text value. */
  text(src: Uint8Array, s: number, e: number): void {
    this.ensure(e - s + 2);
    this.buf[this.len++] = GS;
    this.copy(src, s, e);
    this.buf[this.len++] = GS;
  }

  /** Writes src[s, e) as a quoted text value, turning each doubled quote (") into one. */
  textUnquote(src: Buffer, s: number, e: number): void {
    this.ensure(e - s + 2);
    this.buf[this.len++] = GS;
    this.copyUnquote(src, s, e);
    this.ensure(1);
    this.buf[this.len++] = GS;
  }

  /** Copies src[s, e) as it is (numbers, or inside a quoted value). */
  copy(src: Uint8Array, s: number, e: number): void {
    const n = e - s;
    this.ensure(n + 1);
    const out = this.buf;
    if (n < 64) {
      let j = this.len;
      for (let i = s; i < e; i++) out[j++] = src[i]!;
    } else {
      Buffer.prototype.copy.call(src, out, this.len, s, e);
    }
    this.len += n;
  }

  /** Copies src[s, e) turning each doubled quote into one. */
  copyUnquote(src: Buffer, s: number, e: number): void {
    this.ensure(e - s + 1);
    let from = s;
    for (;;) {
      const q = src.indexOf(34, from);
      if (q < 0 || q >= e) break;
      this.copy(src, from, q + 1); // keep one quote
      from = q + 2; // skip its double
    }
    this.copy(src, from, e);
  }

  /** Writes a JS string as a quoted text value. */
  str(value: string): void {
    this.ensure(value.length * 3 + 2);
    this.buf[this.len++] = GS;
    this.len += this.buf.write(value, this.len, 'utf8');
    this.buf[this.len++] = GS;
  }

  /** Writes a safe integer in ASCII digits (in two 8-digit halves: small-integer arithmetic is fast). */
  int(value: number): void {
    this.ensure(24);
    if (value < 0) {
      this.buf[this.len++] = 45;
      value = -value;
    }
    if (value >= 1e16) {
      this.len += this.buf.write(String(value), this.len, 'latin1');
      return;
    }
    const hi = Math.floor(value / 1e8);
    const lo = value - hi * 1e8;
    if (hi > 0) {
      this.small(hi);
      const out = this.buf;
      let j = this.len + 8;
      this.len = j;
      let v = lo | 0;
      for (let k = 0; k < 8; k++) {
        const q = (v / 10) | 0;
        out[--j] = 48 + v - q * 10;
        v = q;
      }
    } else {
      this.small(lo | 0);
    }
  }

  /** Writes 0 ≤ v < 1e8 without leading zeros. */
  private small(v: number): void {
    const out = this.buf;
    let digits = 1;
    for (let t = v; t >= 10; t = (t / 10) | 0) digits++;
    let j = this.len + digits;
    this.len = j;
    do {
      const q = (v / 10) | 0;
      out[--j] = 48 + v - q * 10;
      v = q;
    } while (v > 0);
  }

  /** NULL: an empty unquoted field. */
  nul(): void {}

  sep(): void {
    this.ensure(1);
    this.buf[this.len++] = US;
  }

  endRecord(): void {
    this.ensure(1);
    this.buf[this.len++] = LF;
    this.recordEnd();
  }

  /**
   * Hands over the packed bytes so far (no copy) and continues in another buffer from the pool. Call
   * `release` once the bytes are no longer needed.
   */
  take(): { bytes: Buffer; count: number; ends: Uint32Array; release: () => void } {
    const whole = this.buf;
    const bytes = whole.subarray(0, this.len);
    const count = this.count;
    const ends = this.ends.slice(0, count);
    this.buf = this.pool.acquire(Math.max(this.initial, whole.length));
    this.len = 0;
    this.count = 0;
    return { bytes, count, ends, release: () => this.pool.release(whole) };
  }

  /**
   * Packs one record given as an object (jsonlog and the string path), with the ids its context and kind
   * have (SessionTracker.auditRecord). The caller checked `packable`.
   */
  record(r: PgAuditRecord, contextId: number, kindId: number): void {
    const t = (x: string | null) => {
      if (x !== null) this.str(x);
      this.sep();
    };
    const n = (x: number | null) => {
      if (x !== null) this.int(x);
      this.sep();
    };
    n(r.log_time_ms);
    n(contextId);
    n(kindId);
    n(r.session_line_num);
    t(r.virtual_transaction_id);
    n(r.transaction_id);
    if (r.query_id !== null) {
      this.ensure(r.query_id.length);
      this.len += this.buf.write(r.query_id, this.len, 'latin1');
    }
    this.sep();
    n(r.statement_id);
    n(r.substatement_id);
    t(r.object_name);
    t(r.statement);
    t(r.parameter);
    n(r.rows);
    if (r.message !== '') this.str(r.message);
    this.endRecord();
  }
}

/** True when the record can be packed (no GS in any text, not too long). */
export function packable(r: PgAuditRecord): boolean {
  return !(
    (r.message.length + (r.statement?.length ?? 0) + (r.parameter?.length ?? 0) + (r.object_name?.length ?? 0)) * 3 > MAX_PACKED_RECORD_BYTES ||
    CONTROL.test(r.message) ||
    (r.statement !== null && CONTROL.test(r.statement)) ||
    (r.parameter !== null && CONTROL.test(r.parameter)) ||
    (r.object_name !== null && CONTROL.test(r.object_name)) ||
    (r.command !== null && CONTROL.test(r.command)) ||
    (r.object_type !== null && CONTROL.test(r.object_type)) ||
    CONTROL.test(r.class) ||
    (r.user_name !== null && CONTROL.test(r.user_name)) ||
    (r.database_name !== null && CONTROL.test(r.database_name)) ||
    (r.application_name !== null && CONTROL.test(r.application_name)) ||
    (r.virtual_transaction_id !== null && CONTROL.test(r.virtual_transaction_id)) ||
    (r.client_addr !== null && CONTROL.test(r.client_addr)) ||
    CONTROL.test(r.session_id) ||
    (r.command_tag !== null && CONTROL.test(r.command_tag)) ||
    (r.backend_type !== null && CONTROL.test(r.backend_type)) ||
    (r.error_severity !== null && CONTROL.test(r.error_severity)) ||
    (r.query_id !== null && CONTROL.test(r.query_id))
  );
}

/**
 * Yields each packed row's fields in EVENT_ROW_COLUMNS order (numbers as numbers, query_id as text). One
 * array is reused for every row: the caller must not keep it.
 */
export function* packedRows(bytes: Uint8Array): Generator<(string | number | null)[]> {
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
  const values: (string | number | null)[] = new Array(EVENT_ROW_COLUMNS.length).fill(null);
  const queryId = EVENT_ROW_COLUMNS.indexOf('query_id');
  let pos = 0;
  while (pos < text.length) {
    for (let i = 0; i < EVENT_ROW_COLUMNS.length; i++) {
      if (text.charCodeAt(pos) === GS) {
        const close = text.indexOf('\x1d', pos + 1);
        values[i] = text.slice(pos + 1, close);
        pos = close + 1;
      } else {
        let end = pos;
        while (end < text.length && text.charCodeAt(end) !== US && text.charCodeAt(end) !== LF) end++;
        values[i] = end === pos ? null : i === queryId ? text.slice(pos, end) : Number(text.slice(pos, end));
        pos = end;
      }
      pos++; // US or LF
    }
    yield values;
  }
}

const ROW = Object.fromEntries(EVENT_ROW_COLUMNS.map((c, i) => [c, i])) as Record<EventRowColumn, number>;

/**
 * Yields each packed row as every column of its record, in PACKED_COLUMNS order, with its context and kind
 * from `dims`. One array is reused for every row: the caller must not keep it.
 */
export function* recordRows(bytes: Uint8Array, dims: Dimensions): Generator<(string | number | null)[]> {
  const out: (string | number | null)[] = new Array(PACKED_COLUMNS.length).fill(null);
  for (const v of packedRows(bytes)) {
    const c = dims.contexts.get(v[ROW.context_id] as number);
    const k = dims.kinds.get(v[ROW.kind_id] as number);
    if (!c || !k) throw new Error(`packed row references an unknown ${c ? 'kind' : 'context'} (this is a bug)`);
    fillRecord(out, v, c, k);
    yield out;
  }
}

function fillRecord(out: (string | number | null)[], v: readonly (string | number | null)[], c: EventContext, k: EventKind): void {
  out[0] = v[ROW.log_time_ms]!;
  out[1] = c.user_name;
  out[2] = c.database_name;
  out[3] = c.client_addr;
  out[4] = c.client_port;
  out[5] = v[ROW.message]!;
  out[6] = c.application_name;
  out[7] = c.session_id;
  out[8] = v[ROW.session_line_num]!;
  out[9] = c.process_id;
  out[10] = v[ROW.virtual_transaction_id]!;
  out[11] = v[ROW.transaction_id]!;
  out[12] = k.command_tag;
  out[13] = c.session_start_ms;
  out[14] = k.error_severity;
  out[15] = c.backend_type;
  out[16] = c.leader_pid;
  out[17] = v[ROW.query_id]!;
  out[18] = k.audit_type;
  out[19] = v[ROW.statement_id]!;
  out[20] = v[ROW.substatement_id]!;
  out[21] = k.class;
  out[22] = k.command;
  out[23] = k.object_type;
  out[24] = v[ROW.object_name]!;
  out[25] = v[ROW.statement]!;
  out[26] = v[ROW.parameter]!;
  out[27] = v[ROW.rows]!;
}

/** Unpacks rows into plain objects of every record column (for sinks that need objects, and for tests). */
export function unpackRows(bytes: Uint8Array, dims: Dimensions): Record<PackedColumn, string | number | null>[] {
  const out: Record<PackedColumn, string | number | null>[] = [];
  for (const v of recordRows(bytes, dims))
    out.push(Object.fromEntries(PACKED_COLUMNS.map((c, i) => [c, v[i] ?? null])) as Record<PackedColumn, string | number | null>);
  return out;
}
