import type { PgAuditRecord } from './log-record.js';

/**
 * Packed rows: the compact form in which a batch of pgaudit records travels from the parser to a sink.
 *
 * UTF-8 bytes; fields in PACKED_COLUMNS order separated by US (0x1F), records ended by RS (0x1E), NULL
 * written as GS (0x1D). Times are epoch milliseconds in ASCII digits. A record whose text contains one of
 * these three control characters cannot be packed and travels as a PgAuditRecord object instead.
 * The DuckDB sink hands the bytes to DuckDB in one call; other sinks can `unpackRows` them.
 */
export const US = 0x1f;
export const RS = 0x1e;
export const GS = 0x1d;

export const PACKED_COLUMNS = [
  'log_time_ms', 'user_name', 'database_name', 'client_addr', 'client_port', 'message', 'application_name',
  'session_id', 'session_line_num', 'process_id', 'virtual_transaction_id', 'transaction_id', 'command_tag',
  'session_start_ms', 'error_severity', 'backend_type', 'leader_pid', 'query_id', 'audit_type', 'statement_id',
  'substatement_id', 'class', 'command', 'object_type', 'object_name', 'statement', 'parameter', 'rows',
] as const;

export type PackedColumn = (typeof PACKED_COLUMNS)[number];

/** Packed columns holding numbers (everything else is text). */
export const NUMERIC_COLUMNS: ReadonlySet<PackedColumn> = new Set([
  'log_time_ms', 'client_port', 'session_line_num', 'process_id', 'transaction_id', 'session_start_ms',
  'leader_pid', 'query_id', 'statement_id', 'substatement_id', 'rows',
]);

const CONTROL = /[\x1d-\x1f]/;

/** True when a string cannot be packed (holds US, RS or GS). */
export function hasPackControl(value: string): boolean {
  return CONTROL.test(value);
}

/** A growable byte buffer that packs records. */
export class PackWriter {
  buf: Buffer;
  len = 0;
  count = 0;

  constructor(initial = 1 << 20) {
    this.buf = Buffer.allocUnsafe(initial);
  }

  ensure(extra: number): void {
    if (this.len + extra <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + extra) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }

  /** Copies src[s, e) as it is. */
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

  str(value: string): void {
    this.ensure(value.length * 3 + 1);
    this.len += this.buf.write(value, this.len, 'utf8');
  }

  /** Writes a safe integer in ASCII digits. */
  int(value: number): void {
    this.ensure(24);
    const out = this.buf;
    if (value < 0) { out[this.len++] = 45; value = -value; }
    if (value < 10) { out[this.len++] = 48 + value; return; }
    let digits = 0;
    for (let v = value; v >= 1; v = Math.floor(v / 10)) digits++;
    let j = this.len + digits;
    this.len = j;
    while (value >= 1) { const q = Math.floor(value / 10); out[--j] = 48 + (value - q * 10); value = q; }
  }

  nul(): void {
    this.ensure(1);
    this.buf[this.len++] = GS;
  }

  sep(): void {
    this.ensure(1);
    this.buf[this.len++] = US;
  }

  endRecord(): void {
    this.ensure(1);
    this.buf[this.len++] = RS;
    this.count++;
  }

  /** Returns the packed bytes so far (a copy) and starts over. */
  take(): { bytes: Buffer; count: number } {
    const bytes = Buffer.from(this.buf.subarray(0, this.len));
    const count = this.count;
    this.len = 0;
    this.count = 0;
    return { bytes, count };
  }

  /** Packs one record given as an object (jsonlog and the slow path). The caller checked hasPackControl. */
  record(r: PgAuditRecord, storeMessage: boolean): void {
    const v = (x: string | number | null) => { if (x === null) this.nul(); else if (typeof x === 'number') this.int(x); else this.str(x); };
    v(r.log_time_ms); this.sep(); v(r.user_name); this.sep(); v(r.database_name); this.sep(); v(r.client_addr); this.sep();
    v(r.client_port); this.sep(); v(storeMessage ? r.message : null); this.sep(); v(r.application_name); this.sep();
    v(r.session_id); this.sep(); v(r.session_line_num); this.sep(); v(r.process_id); this.sep(); v(r.virtual_transaction_id); this.sep();
    v(r.transaction_id); this.sep(); v(r.command_tag); this.sep(); v(r.session_start_ms); this.sep(); v(r.error_severity); this.sep();
    v(r.backend_type); this.sep(); v(r.leader_pid); this.sep(); v(r.query_id); this.sep(); v(r.audit_type); this.sep();
    v(r.statement_id); this.sep(); v(r.substatement_id); this.sep(); v(r.class); this.sep(); v(r.command); this.sep();
    v(r.object_type); this.sep(); v(r.object_name); this.sep(); v(r.statement); this.sep(); v(r.parameter); this.sep(); v(r.rows);
    this.endRecord();
  }
}

/** True when the record can be packed (no US/RS/GS in any text). */
export function packable(r: PgAuditRecord): boolean {
  return !(CONTROL.test(r.message) || (r.user_name !== null && CONTROL.test(r.user_name))
    || (r.database_name !== null && CONTROL.test(r.database_name))
    || (r.application_name !== null && CONTROL.test(r.application_name))
    || (r.virtual_transaction_id !== null && CONTROL.test(r.virtual_transaction_id))
    || (r.client_addr !== null && CONTROL.test(r.client_addr)) || CONTROL.test(r.session_id)
    || (r.command_tag !== null && CONTROL.test(r.command_tag)) || (r.backend_type !== null && CONTROL.test(r.backend_type))
    || (r.error_severity !== null && CONTROL.test(r.error_severity)) || (r.query_id !== null && CONTROL.test(r.query_id)));
}

/** Unpacks rows into records (for sinks that need objects, and for tests). `message` is null if not stored. */
export function unpackRows(bytes: Uint8Array): Record<PackedColumn, string | number | null>[] {
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
  const out: Record<PackedColumn, string | number | null>[] = [];
  if (text.length === 0) return out;
  for (const rec of text.slice(0, -1).split('\x1e')) {
    const fields = rec.split('\x1f');
    const row = {} as Record<PackedColumn, string | number | null>;
    PACKED_COLUMNS.forEach((name, i) => {
      const f = fields[i];
      row[name] = f === undefined || f === '\x1d' ? null : NUMERIC_COLUMNS.has(name) && name !== 'query_id' ? Number(f) : f;
    });
    out.push(row);
  }
  return out;
}
