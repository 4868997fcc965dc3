import type { CsvError } from './csv.js';
import { MAX_PACKED_RECORD_BYTES, PackWriter, US } from './packed.js';
import { TimestampError, type TimestampResolver } from './timestamp.js';

/**
 * The fast csvlog path: scans csvlog records in raw UTF-8 bytes and packs the pgaudit ones straight into a
 * PackWriter, without building strings or objects per field. Semantics are those of scanCsvRecord +
 * csvlogRecord (the string path, which stays the reference and handles the rare records this path
 * declines): field positions are recorded per record, then copied in packed order.
 *
 * The caller guarantees that `buf[start, end)` is valid UTF-8, ends with a newline, and holds no GS byte
 * (otherwise it uses the string path for the chunk). Records longer than MAX_PACKED_RECORD_BYTES are
 * handed back through onLarge for the string path.
 */
export interface CsvlogPackState {
  /** csvlog column count of the file (23, 24, 26), 0 until detected. */
  columns: number;
  times: TimestampResolver;
  storeMessage: boolean;
  out: PackWriter;
  /** Record [start, end) could not be used: the reader quarantines it with the reason. */
  onBad: (start: number, end: number, reason: string) => void;
  /** Record [start, end) is too long to pack: the reader parses it on the string path. */
  onLarge: (start: number, end: number) => void;
  /**
   * Record [start, end) is a connection, disconnection, authentication failure or error record
   * (parse/session-log.ts): the reader parses it on the string path. Unset: such records are skipped.
   */
  onSession?: (start: number, end: number) => void;
  /** A `<previously logged>` record of this session was packed. */
  onMarker: (sessionId: string) => void;
  events: number;
  minTimeMs: number;
  maxTimeMs: number;
}

const MAX_FIELDS = 32;
const fs = new Int32Array(MAX_FIELDS);
const fe = new Int32Array(MAX_FIELDS);
const fq = new Uint8Array(MAX_FIELDS); // 0 unquoted, 1 quoted, 2 quoted with doubled quotes
const ps = new Int32Array(12);
const pe = new Int32Array(12);
const pq = new Uint8Array(12);
let scratch = Buffer.allocUnsafe(1 << 16);

const QUOTE = 34, COMMA = 44, LF = 10, CR = 13;
const AUDIT = Buffer.from('AUDIT: ');
const SESSION_SEVERITIES = ['ERROR', 'FATAL', 'PANIC'].map((s) => Buffer.from(s));
const SESSION_MESSAGES = ['connection authorized: ', 'replication connection authorized: ', 'disconnection: '].map((s) => Buffer.from(s));

function startsWithBytes(src: Uint8Array, s: number, e: number, lit: Uint8Array): boolean {
  if (e - s < lit.length) return false;
  for (let i = 0; i < lit.length; i++) if (src[s + i] !== lit[i]) return false;
  return true;
}

/** Whether a record that is not a pgaudit entry is one correlation keeps (parse/session-log.ts). */
function isSessionRecord(buf: Buffer): boolean {
  for (const sev of SESSION_SEVERITIES) if (equalBytes(buf, fs[11]!, fe[11]!, sev)) return true;
  for (const msg of SESSION_MESSAGES) if (startsWithBytes(buf, fs[13]!, fe[13]!, msg)) return true;
  return false;
}
const MARKER = Buffer.from('<previously logged>');
const SESSION = Buffer.from('SESSION');
const OBJECT = Buffer.from('OBJECT');

/** Index of the next quote in buf[from, end), or -1. A short loop first: Buffer.indexOf costs a call. */
function findQuote(buf: Buffer, from: number, end: number): number {
  const stop = from + 48 < end ? from + 48 : end;
  for (let i = from; i < stop; i++) if (buf[i] === QUOTE) return i;
  if (stop === end) return -1;
  const q = buf.indexOf(QUOTE, stop);
  return q < 0 || q >= end ? -1 : q;
}

function equalBytes(src: Uint8Array, s: number, e: number, lit: Uint8Array): boolean {
  if (e - s !== lit.length) return false;
  for (let i = 0; i < lit.length; i++) if (src[s + i] !== lit[i]) return false;
  return true;
}

function isInteger(src: Uint8Array, s: number, e: number, signed: boolean): boolean {
  if (s >= e) return false;
  let i = s;
  if (signed && src[i] === 45 /* - */) { i++; if (i >= e) return false; }
  for (; i < e; i++) { const c = src[i]!; if (c < 48 || c > 57) return false; }
  return true;
}

const isDigit = (c: number | undefined) => c !== undefined && c >= 48 && c <= 57;

/**
 * Index of the first line start in buf[from, end) that looks like a csvlog record
 * (`YYYY-MM-DD HH:MM:SS.mmm ZONE,`), or -1. Used only to resynchronise after damage.
 */
export function findRecordStart(buf: Buffer, from: number, end: number): number {
  let nl = from - 1;
  for (;;) {
    nl = buf.indexOf(LF, nl + 1);
    if (nl < 0 || nl + 25 >= end) return -1;
    const p = nl + 1;
    if (isDigit(buf[p]) && isDigit(buf[p + 3]) && buf[p + 4] === 45 && buf[p + 7] === 45 && buf[p + 10] === 32
      && buf[p + 13] === 58 && buf[p + 16] === 58 && buf[p + 19] === 46 && isDigit(buf[p + 22]) && buf[p + 23] === 32) {
      let q = p + 24;
      while (q < end && buf[q] !== COMMA && buf[q] !== LF) q++;
      if (q < end && buf[q] === COMMA && q > p + 24) return p;
    }
  }
}

function numberOrNull(buf: Buffer, i: number, signed: boolean): boolean {
  return fe[i]! === fs[i]! || isInteger(buf, fs[i]!, fe[i]!, signed);
}

/** Packs field i as text and its separator: NULL when empty and unquoted (as csvlog and pgaudit write NULL). */
function packText(out: PackWriter, src: Buffer, starts: Int32Array, ends: Int32Array, quoted: Uint8Array, i: number, n: number): void {
  if (i < n) {
    const s = starts[i]!, e = ends[i]!, q = quoted[i]!;
    if (q !== 0 || s !== e) out.uText(src, s, e, q === 2);
  }
  out.uByte(US);
}

/** Packs field i as a number (validated before) and its separator: its digits, or NULL when empty. */
function packNumber(out: PackWriter, src: Buffer, starts: Int32Array, ends: Int32Array, i: number, n: number): void {
  if (i < n) out.uCopy(src, starts[i]!, ends[i]!);
  out.uByte(US);
}

/** A timestamp cache: the bytes of the last field without its milliseconds, and its epoch ms. */
class TimeCache {
  private key = new Uint8Array(64);
  private keyLen = -1;
  private base = 0;
  constructor(private readonly times: TimestampResolver) {}

  /** Epoch ms of a log timestamp in buf[s, e); throws TimestampError. */
  value(buf: Buffer, s: number, e: number): number {
    const len = e - s;
    // `YYYY-MM-DD HH:MM:SS.mmm ZZZ`: milliseconds at 20..22; the rest decides the base.
    const withMs = len > 24 && buf[s + 19] === 46 && buf[s + 23] === 32;
    let ms = 0;
    if (withMs) {
      const a = buf[s + 20]! - 48, b = buf[s + 21]! - 48, c = buf[s + 22]! - 48;
      if (a < 0 || a > 9 || b < 0 || b > 9 || c < 0 || c > 9) throw new TimestampError('malformed milliseconds', 'malformed');
      ms = a * 100 + b * 10 + c;
    }
    if (len === this.keyLen && len <= 64) {
      let same = true;
      for (let i = 0; i < len; i++) {
        if (withMs && i >= 20 && i <= 22) continue;
        if (this.key[i] !== buf[s + i]) { same = false; break; }
      }
      if (same) return this.base + ms;
    }
    const value = this.times.toEpochMs(buf.toString('latin1', s, e));
    if (len <= 64) {
      for (let i = 0; i < len; i++) this.key[i] = buf[s + i]!;
      this.keyLen = len;
      this.base = value - ms;
    }
    return value;
  }
}

const timeCaches = new WeakMap<TimestampResolver, [TimeCache, TimeCache]>();

/**
 * Packs the complete records in buf[pos, end) (end just after a newline). Returns the position after the
 * last complete record; records of other kinds are skipped, malformed ones reported through onBad.
 * Throws TimestampError (code ≠ malformed) when a time zone cannot be resolved: the file then fails.
 */
export function packCsvlog(buf: Buffer, pos: number, end: number, st: CsvlogPackState): number {
  let caches = timeCaches.get(st.times);
  if (!caches) { caches = [new TimeCache(st.times), new TimeCache(st.times)]; timeCaches.set(st.times, caches); }
  const [logTimes, startTimes] = caches;
  const out = st.out;
  let p = pos;
  record: while (p < end) {
    const recStart = p;
    let nf = 0;
    let broken: CsvError | 'too_many_fields' | null = null;
    // 1. Field positions.
    for (;;) {
      if (nf >= MAX_FIELDS) { broken = 'too_many_fields'; break; }
      let c = buf[p];
      if (c === QUOTE) {
        const s = p + 1;
        let q = s;
        let doubled = false;
        for (;;) {
          q = findQuote(buf, q, end);
          if (q < 0) return recStart; // the record goes on past `end`
          if (buf[q + 1] === QUOTE && q + 1 < end) { doubled = true; q += 2; continue; }
          break;
        }
        fs[nf] = s; fe[nf] = q; fq[nf] = doubled ? 2 : 1; nf++;
        p = q + 1;
        c = buf[p];
        if (c === COMMA) { p++; continue; }
        if (c === LF) { p++; break; }
        if (c === CR && buf[p + 1] === LF) { p += 2; break; }
        broken = 'text_after_closing_quote';
        break;
      }
      const s = p;
      while (p < end) {
        c = buf[p]!;
        if (c === COMMA || c === LF || c === QUOTE || c === CR) break;
        p++;
      }
      if (p >= end) return recStart;
      fs[nf] = s; fe[nf] = p; fq[nf] = 0; nf++;
      if (c === COMMA) { p++; continue; }
      if (c === LF) { p++; break; }
      if (c === CR && buf[p + 1] === LF) { p += 2; break; }
      broken = 'quote_in_unquoted_field';
      break;
    }
    if (broken) {
      // Damaged: quarantine everything up to the next line that starts like a record, so that neither
      // the records it swallowed nor its own fragments are lost or counted as records.
      const next = findRecordStart(buf, recStart + 1, end);
      if (next < 0) return recStart; // wait for more data (or the end of a finished file)
      st.onBad(recStart, next, `csvlog record is not valid CSV (${broken})`);
      p = next;
      continue;
    }
    const recEnd = p;
    if (recEnd - recStart > MAX_PACKED_RECORD_BYTES) { st.onLarge(recStart, recEnd); continue; }
    if (st.columns === 0 && (nf === 23 || nf === 24 || nf === 26)) st.columns = nf;
    if (nf !== (st.columns || 26)) {
      const next = findRecordStart(buf, recStart + 1, end);
      if (next < 0) return recStart;
      st.onBad(recStart, next, `csvlog record has ${nf} columns, expected ${st.columns || 26}`);
      p = next;
      continue;
    }
    // 2. Only pgaudit entries: the message (field 14) must start with "AUDIT: ".
    let ms = fs[13]!, me = fe[13]!;
    if (fq[13] === 0 || me - ms < 7 || !startsWithBytes(buf, ms, me, AUDIT)) {
      if (st.onSession && isSessionRecord(buf)) st.onSession(recStart, recEnd);
      continue record;
    }
    let src: Buffer = buf;
    if (fq[13] === 2) {
      // Undouble the csvlog quotes of the message into scratch; pgaudit fields are parsed there.
      if (scratch.length < me - ms) scratch = Buffer.allocUnsafe(Math.max(me - ms, scratch.length * 2));
      let j = 0, from = ms;
      for (;;) {
        const q = buf.indexOf(QUOTE, from);
        if (q < 0 || q >= me) break;
        buf.copy(scratch, j, from, q + 1); j += q + 1 - from; from = q + 2;
      }
      buf.copy(scratch, j, from, me); j += me - from;
      src = scratch; ms = 0; me = j;
    }
    // 3. pgaudit fields.
    let np = 0;
    let a = ms + 7;
    let pbroken: string | null = null;
    for (;;) {
      if (np >= 10) { pbroken = 'pgaudit message has more than 10 fields'; break; }
      if (a < me && src[a] === QUOTE) {
        const s = a + 1;
        let q = s;
        let doubled = false;
        for (;;) {
          q = findQuote(src, q, me);
          if (q < 0) { pbroken = 'pgaudit message is not valid CSV (unterminated_quote)'; break; }
          if (q + 1 < me && src[q + 1] === QUOTE) { doubled = true; q += 2; continue; }
          break;
        }
        if (pbroken) break;
        ps[np] = s; pe[np] = q; pq[np] = doubled ? 2 : 1; np++;
        a = q + 1;
        if (a === me) break;
        if (src[a] !== COMMA) { pbroken = 'pgaudit message is not valid CSV (text_after_closing_quote)'; break; }
        a++;
        continue;
      }
      let comma = a;
      let cc = 0;
      while (comma < me) { cc = src[comma]!; if (cc === COMMA || cc === QUOTE) break; comma++; }
      if (comma < me && cc === QUOTE) { pbroken = 'pgaudit message is not valid CSV (quote_in_unquoted_field)'; break; }
      ps[np] = a; pe[np] = comma; pq[np] = 0; np++;
      if (comma === me) break;
      a = comma + 1;
    }
    if (!pbroken) {
      if (np !== 9 && np !== 10) pbroken = `pgaudit message has ${np} fields, expected 9 or 10`;
      else if (!equalBytes(src, ps[0]!, pe[0]!, SESSION) && !equalBytes(src, ps[0]!, pe[0]!, OBJECT)) pbroken = 'pgaudit AUDIT_TYPE is neither SESSION nor OBJECT';
      else if (pq[1] !== 0 || pq[2] !== 0 || !isInteger(src, ps[1]!, pe[1]!, false) || !isInteger(src, ps[2]!, pe[2]!, false)) pbroken = 'pgaudit STATEMENT_ID or SUBSTATEMENT_ID is not an integer';
      else if (pe[3]! === ps[3]!) pbroken = 'pgaudit CLASS is empty';
      else if (np === 10 && pe[9]! > ps[9]! && (pq[9] !== 0 || !isInteger(src, ps[9]!, pe[9]!, false))) pbroken = 'pgaudit ROWS is not an integer';
    }
    if (pbroken) { st.onBad(recStart, recEnd, pbroken); continue; }
    // 4. Other fields that must be numbers or present.
    if (fe[5]! === fs[5]! || fq[6] !== 0 || !isInteger(buf, fs[6]!, fe[6]!, false)) {
      st.onBad(recStart, recEnd, 'csvlog record has no session_id or session_line_num');
      continue;
    }
    let logTime: number, sessionStart = -1;
    try {
      logTime = logTimes.value(buf, fs[0]!, fe[0]!);
      if (fe[8]! > fs[8]!) sessionStart = startTimes.value(buf, fs[8]!, fe[8]!);
    } catch (err) {
      if (err instanceof TimestampError && err.code !== 'malformed') throw err;
      st.onBad(recStart, recEnd, (err as Error).message);
      continue;
    }
    if (!numberOrNull(buf, 3, false) || !numberOrNull(buf, 10, false) || (nf > 24 && (!numberOrNull(buf, 24, false) || !numberOrNull(buf, 25, true)))) {
      st.onBad(recStart, recEnd, 'csvlog record has a malformed number (process_id, transaction_id, leader_pid or query_id)');
      continue;
    }
    // 5. Pack, in PACKED_COLUMNS order: room for the whole record first, then unchecked writes.
    out.ensure(recEnd - recStart + (st.storeMessage ? me - ms : 0) + 192);
    const field = (i: number) => packText(out, buf, fs, fe, fq, i, nf);
    const num = (i: number) => packNumber(out, buf, fs, fe, i, nf);
    const pfield = (i: number) => packText(out, src, ps, pe, pq, i, np);
    const pnum = (i: number) => packNumber(out, src, ps, pe, i, np);
    out.int(logTime); out.uByte(US);
    field(1); field(2);
    // connection_from: host:port, [local], or ::1:5432 → address and port.
    {
      const s = fs[4]!, e = fe[4]!;
      let colon = -1;
      for (let i = e - 1; i > s; i--) if (buf[i] === 58) { colon = i; break; }
      if (s === e) out.uByte(US);
      else if (colon > s && isInteger(buf, colon + 1, e, false) && fq[4] !== 2) { out.uText(buf, s, colon, false); out.uByte(US); out.uCopy(buf, colon + 1, e); }
      else field(4);
    }
    out.uByte(US);
    if (st.storeMessage) out.uText(src, ms, me, false);
    out.uByte(US);
    if (fe[22]! > fs[22]!) field(22); // an empty application_name is NULL, as jsonlog has it
    else out.uByte(US);
    field(5); num(6); num(3); field(9); num(10); field(7);
    if (sessionStart >= 0) out.int(sessionStart);
    out.uByte(US);
    field(11); field(23); num(24); num(25);
    pfield(0); pnum(1); pnum(2); pfield(3); pfield(4); pfield(5); pfield(6); pfield(7); pfield(8); pnum(9);
    out.uEndRecord();
    if (pq[7] === 0 && equalBytes(src, ps[7]!, pe[7]!, MARKER)) st.onMarker(buf.toString('utf8', fs[5]!, fe[5]!));
    if (st.events === 0) { st.minTimeMs = logTime; st.maxTimeMs = logTime; }
    else { if (logTime < st.minTimeMs) st.minTimeMs = logTime; if (logTime > st.maxTimeMs) st.maxTimeMs = logTime; }
    st.events++;
  }
  return p;
}
