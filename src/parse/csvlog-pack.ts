import type { SecretPrefilter } from '../redact/index.js';
import type { CsvError } from './csv.js';
import { MAX_PACKED_RECORD_BYTES, PackWriter, US } from './packed.js';
import type { SessionTracker } from './session-tracker.js';
import { applicationNameOf, sessionRecordKind, sessionTimeOf, type SessionRecord } from './session-log.js';
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
 *
 * Kept as one file (about 570 lines): the byte-level packer is the ingest's hot loop, kept together with the
 * helpers it calls per field.
 */
export interface CsvlogPackState {
  /** csvlog column count of the file (23, 24, 26), 0 until detected. */
  columns: number;
  times: TimestampResolver;
  storeMessage: boolean;
  /** Redaction is on: a record whose statement may hold a secret goes to onLarge, the string path, to be redacted there. */
  secrets?: SecretPrefilter | undefined;
  out: PackWriter;
  /** Gives each event its context and kind ids, and follows each session's statements (correlation). */
  tracker: SessionTracker;
  /** Record [start, end) could not be used: the reader quarantines it with the reason. */
  onBad: (start: number, end: number, reason: string) => void;
  /** Record [start, end) is too long to pack: the reader parses it on the string path. */
  onLarge: (start: number, end: number) => void;
  /**
   * Record [start, end) is a connection, disconnection, authentication failure or error record
   * (parse/session-log.ts): the reader parses it on the string path. Unset: such records are skipped.
   */
  onSession?: (start: number, end: number) => void;
  /**
   * Receives connection, disconnection, authentication failure and error records built here from the byte
   * positions (the same records the string path builds); when set, onSession is not called.
   */
  onSessionRecord?: (record: SessionRecord) => void;
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

const QUOTE = 34,
  COMMA = 44,
  LF = 10,
  CR = 13;
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
  if (signed && src[i] === 45 /* - */) {
    i++;
    if (i >= e) return false;
  }
  for (; i < e; i++) {
    const c = src[i]!;
    if (c < 48 || c > 57) return false;
  }
  return true;
}

const isDigit = (c: number | undefined) => c !== undefined && c >= 48 && c <= 57;

/** The value of ASCII digits src[s, e) (validated before). */
function digits(src: Uint8Array, s: number, e: number): number {
  let v = 0;
  for (let i = s; i < e; i++) v = v * 10 + src[i]! - 48;
  return v;
}

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
    if (
      isDigit(buf[p]) &&
      isDigit(buf[p + 3]) &&
      buf[p + 4] === 45 &&
      buf[p + 7] === 45 &&
      buf[p + 10] === 32 &&
      buf[p + 13] === 58 &&
      buf[p + 16] === 58 &&
      buf[p + 19] === 46 &&
      isDigit(buf[p + 22]) &&
      buf[p + 23] === 32
    ) {
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
    const s = starts[i]!,
      e = ends[i]!,
      q = quoted[i]!;
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
      const a = buf[s + 20]! - 48,
        b = buf[s + 21]! - 48,
        c = buf[s + 22]! - 48;
      if (a < 0 || a > 9 || b < 0 || b > 9 || c < 0 || c > 9) throw new TimestampError('malformed milliseconds', 'malformed');
      ms = a * 100 + b * 10 + c;
    }
    if (len === this.keyLen && len <= 64) {
      let same = true;
      for (let i = 0; i < len; i++) {
        if (withMs && i >= 20 && i <= 22) continue;
        if (this.key[i] !== buf[s + i]) {
          same = false;
          break;
        }
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

/** Field i as the string path decodes it: null when absent or empty and unquoted; doubled quotes undone. */
function textOf(buf: Buffer, nf: number, i: number): string | null {
  if (i >= nf) return null;
  const a = fs[i]!,
    b = fe[i]!,
    q = fq[i]!;
  if (q === 0 && a === b) return null;
  const v = buf.toString('utf8', a, b);
  return q === 2 ? v.replaceAll('""', '"') : v;
}

/** Field i as an integer, or null when it is not one (as the string path's int()). */
function intOf(buf: Buffer, nf: number, i: number): number | null {
  const v = textOf(buf, nf, i);
  return v !== null && /^-?\d+$/.test(v) ? Number(v) : null;
}

/**
 * A connection, disconnection, authentication failure or error record from the current field positions: what
 * csvlogRecord builds from the same record (null: correlation does not use it; a string: why it is bad).
 */
function sessionRecordOf(buf: Buffer, nf: number, logTimes: TimeCache, startTimes: TimeCache): SessionRecord | string | null {
  const message = textOf(buf, nf, 13) ?? '';
  const severity = textOf(buf, nf, 11);
  const sqlstate = textOf(buf, nf, 12) || null;
  const kind = sessionRecordKind(severity, sqlstate, message);
  if (kind === null) return null;
  const sessionId = textOf(buf, nf, 5);
  const line = intOf(buf, nf, 6);
  if (!sessionId || line === null) return 'csvlog record has no session_id or session_line_num';
  let logTime: number,
    sessionStart: number | null = null;
  try {
    logTime = logTimes.value(buf, fs[0]!, fe[0]!);
    const start = textOf(buf, nf, 8);
    if (start) sessionStart = startTimes.value(buf, fs[8]!, fe[8]!);
  } catch (err) {
    if (err instanceof TimestampError && err.code !== 'malformed') throw err;
    return (err as Error).message;
  }
  let addr: string | null = textOf(buf, nf, 4),
    port: number | null = null;
  if (addr !== null) {
    const colon = addr.lastIndexOf(':');
    if (colon > 0 && /^-?\d+$/.test(addr.slice(colon + 1))) {
      port = Number(addr.slice(colon + 1));
      addr = addr.slice(0, colon);
    }
  }
  return {
    kind,
    log_time_ms: logTime,
    user_name: textOf(buf, nf, 1) || null,
    database_name: textOf(buf, nf, 2) || null,
    process_id: intOf(buf, nf, 3),
    client_addr: addr,
    client_port: port,
    session_id: sessionId,
    session_line_num: line,
    session_start_ms: sessionStart,
    virtual_transaction_id: textOf(buf, nf, 9) || null,
    transaction_id: intOf(buf, nf, 10),
    severity,
    sqlstate,
    message,
    detail: textOf(buf, nf, 14) || null,
    application_name: textOf(buf, nf, 22) || (kind === 'connect' ? applicationNameOf(message) : null),
    backend_type: textOf(buf, nf, 23) || null,
    query: kind === 'error' ? textOf(buf, nf, 19) || null : null,
    duration_ms: kind === 'disconnect' ? sessionTimeOf(message) : null,
  };
}

/**
 * Packs the complete records in buf[pos, end) (end just after a newline). Returns the position after the
 * last complete record; records of other kinds are skipped, malformed ones reported through onBad.
 * Throws TimestampError (code ≠ malformed) when a time zone cannot be resolved: the file then fails.
 */
export function packCsvlog(buf: Buffer, pos: number, end: number, st: CsvlogPackState): number {
  st.secrets?.reset(); // the buffer's content is new
  let caches = timeCaches.get(st.times);
  if (!caches) {
    caches = [new TimeCache(st.times), new TimeCache(st.times)];
    timeCaches.set(st.times, caches);
  }
  const [logTimes, startTimes] = caches;
  const out = st.out;
  let p = pos;
  record: while (p < end) {
    const recStart = p;
    let nf = 0;
    let broken: CsvError | 'too_many_fields' | null = null;
    // 1. Field positions.
    for (;;) {
      if (nf >= MAX_FIELDS) {
        broken = 'too_many_fields';
        break;
      }
      let c = buf[p];
      if (c === QUOTE) {
        const s = p + 1;
        let q = s;
        let doubled = false;
        for (;;) {
          q = findQuote(buf, q, end);
          if (q < 0) return recStart; // the record goes on past `end`
          if (buf[q + 1] === QUOTE && q + 1 < end) {
            doubled = true;
            q += 2;
            continue;
          }
          break;
        }
        fs[nf] = s;
        fe[nf] = q;
        fq[nf] = doubled ? 2 : 1;
        nf++;
        p = q + 1;
        c = buf[p];
        if (c === COMMA) {
          p++;
          continue;
        }
        if (c === LF) {
          p++;
          break;
        }
        if (c === CR && buf[p + 1] === LF) {
          p += 2;
          break;
        }
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
      fs[nf] = s;
      fe[nf] = p;
      fq[nf] = 0;
      nf++;
      if (c === COMMA) {
        p++;
        continue;
      }
      if (c === LF) {
        p++;
        break;
      }
      if (c === CR && buf[p + 1] === LF) {
        p += 2;
        break;
      }
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
    if (recEnd - recStart > MAX_PACKED_RECORD_BYTES) {
      st.onLarge(recStart, recEnd);
      continue;
    }
    if (st.columns === 0 && (nf === 23 || nf === 24 || nf === 26)) st.columns = nf;
    if (nf !== (st.columns || 26)) {
      const next = findRecordStart(buf, recStart + 1, end);
      if (next < 0) return recStart;
      st.onBad(recStart, next, `csvlog record has ${nf} columns, expected ${st.columns || 26}`);
      p = next;
      continue;
    }
    // 2. Only pgaudit entries: the message (field 14) must start with "AUDIT: ".
    let ms = fs[13]!,
      me = fe[13]!;
    if (fq[13] === 0 || me - ms < 7 || !startsWithBytes(buf, ms, me, AUDIT)) {
      if (st.onSessionRecord && isSessionRecord(buf)) {
        const r = sessionRecordOf(buf, nf, logTimes, startTimes);
        if (typeof r === 'string') st.onBad(recStart, recEnd, r);
        else if (r !== null) st.onSessionRecord(r);
      } else if (st.onSession && isSessionRecord(buf)) st.onSession(recStart, recEnd);
      continue record;
    }
    let src: Buffer = buf;
    if (fq[13] === 2) {
      // Undouble the csvlog quotes of the message into scratch; pgaudit fields are parsed there.
      if (scratch.length < me - ms) scratch = Buffer.allocUnsafe(Math.max(me - ms, scratch.length * 2));
      let j = 0,
        from = ms;
      for (;;) {
        const q = buf.indexOf(QUOTE, from);
        if (q < 0 || q >= me) break;
        buf.copy(scratch, j, from, q + 1);
        j += q + 1 - from;
        from = q + 2;
      }
      buf.copy(scratch, j, from, me);
      j += me - from;
      src = scratch;
      ms = 0;
      me = j;
    }
    // 3. pgaudit fields.
    let np = 0;
    let a = ms + 7;
    let pbroken: string | null = null;
    for (;;) {
      if (np >= 10) {
        pbroken = 'pgaudit message has more than 10 fields';
        break;
      }
      if (a < me && src[a] === QUOTE) {
        const s = a + 1;
        let q = s;
        let doubled = false;
        for (;;) {
          q = findQuote(src, q, me);
          if (q < 0) {
            pbroken = 'pgaudit message is not valid CSV (unterminated_quote)';
            break;
          }
          if (q + 1 < me && src[q + 1] === QUOTE) {
            doubled = true;
            q += 2;
            continue;
          }
          break;
        }
        if (pbroken) break;
        ps[np] = s;
        pe[np] = q;
        pq[np] = doubled ? 2 : 1;
        np++;
        a = q + 1;
        if (a === me) break;
        if (src[a] !== COMMA) {
          pbroken = 'pgaudit message is not valid CSV (text_after_closing_quote)';
          break;
        }
        a++;
        continue;
      }
      let comma = a;
      let cc = 0;
      while (comma < me) {
        cc = src[comma]!;
        if (cc === COMMA || cc === QUOTE) break;
        comma++;
      }
      if (comma < me && cc === QUOTE) {
        pbroken = 'pgaudit message is not valid CSV (quote_in_unquoted_field)';
        break;
      }
      ps[np] = a;
      pe[np] = comma;
      pq[np] = 0;
      np++;
      if (comma === me) break;
      a = comma + 1;
    }
    if (!pbroken) {
      if (np !== 9 && np !== 10) pbroken = `pgaudit message has ${np} fields, expected 9 or 10`;
      else if (!equalBytes(src, ps[0]!, pe[0]!, SESSION) && !equalBytes(src, ps[0]!, pe[0]!, OBJECT))
        pbroken = 'pgaudit AUDIT_TYPE is neither SESSION nor OBJECT';
      else if (pq[1] !== 0 || pq[2] !== 0 || !isInteger(src, ps[1]!, pe[1]!, false) || !isInteger(src, ps[2]!, pe[2]!, false))
        pbroken = 'pgaudit STATEMENT_ID or SUBSTATEMENT_ID is not an integer';
      else if (pe[3]! === ps[3]!) pbroken = 'pgaudit CLASS is empty';
      else if (np === 10 && pe[9]! > ps[9]! && (pq[9] !== 0 || !isInteger(src, ps[9]!, pe[9]!, false))) pbroken = 'pgaudit ROWS is not an integer';
    }
    if (pbroken) {
      st.onBad(recStart, recEnd, pbroken);
      continue;
    }
    if (st.secrets && pe[7]! > ps[7]! && st.secrets.may(src, ps[7]!, pe[7]!)) {
      st.onLarge(recStart, recEnd);
      continue;
    }
    // 4. Other fields that must be numbers or present.
    if (fe[5]! === fs[5]! || fq[6] !== 0 || !isInteger(buf, fs[6]!, fe[6]!, false)) {
      st.onBad(recStart, recEnd, 'csvlog record has no session_id or session_line_num');
      continue;
    }
    if (!numberOrNull(buf, 3, false) || !numberOrNull(buf, 10, false) || (nf > 24 && (!numberOrNull(buf, 24, false) || !numberOrNull(buf, 25, true)))) {
      st.onBad(recStart, recEnd, 'csvlog record has a malformed number (process_id, transaction_id, leader_pid or query_id)');
      continue;
    }
    // The session's context (who, from where, which file) is usually the one of its last event: the session
    // start time is read only for a new one.
    const tracker = st.tracker;
    const knownContext = tracker.beginEvent(buf, fs, fe, fq, nf);
    let logTime: number,
      sessionStart = -1;
    try {
      logTime = logTimes.value(buf, fs[0]!, fe[0]!);
      if (!knownContext && fe[8]! > fs[8]!) sessionStart = startTimes.value(buf, fs[8]!, fe[8]!);
    } catch (err) {
      if (err instanceof TimestampError && err.code !== 'malformed') throw err;
      st.onBad(recStart, recEnd, (err as Error).message);
      continue;
    }
    if (!knownContext) tracker.newContext(buf, fs, fe, fq, nf, sessionStart);
    // 5. Context, kind and the session's statement; then pack, in PACKED_COLUMNS order: room for the whole
    // record first, then unchecked writes.
    tracker.kindEvent(buf, fs, fe, fq, nf, src, ps, pe, pq);
    out.ensure(recEnd - recStart + (st.storeMessage ? me - ms : 0) + 96);
    // (No closures here: four per record were four million allocations per million events.)
    out.int(logTime);
    out.uByte(US);
    const cd = tracker.contextDigits,
      kd = tracker.kindDigits;
    out.uCopy(cd, 0, cd.length);
    out.uByte(US);
    out.uCopy(kd, 0, kd.length);
    out.uByte(US);
    packNumber(out, buf, fs, fe, 6, nf);
    const vxidAt = out.len;
    packText(out, buf, fs, fe, fq, 9, nf);
    const vxidEnd = out.len;
    packNumber(out, buf, fs, fe, 10, nf);
    packNumber(out, buf, fs, fe, 25, nf);
    packNumber(out, src, ps, pe, 1, np);
    packNumber(out, src, ps, pe, 2, np);
    packText(out, src, ps, pe, pq, 6, np);
    const textAt = out.len;
    packText(out, src, ps, pe, pq, 7, np);
    const textEnd = out.len;
    packText(out, src, ps, pe, pq, 8, np);
    packNumber(out, src, ps, pe, 9, np);
    if (st.storeMessage) out.uText(src, ms, me, false);
    out.uByte(US);
    out.uEndRecord(); // the last separator becomes the end of the record
    // A packed text is GS, its bytes, GS, US; NULL is US alone.
    const marker = pq[7] === 0 && equalBytes(src, ps[7]!, pe[7]!, MARKER);
    tracker.statementEvent(
      logTime,
      digits(buf, fs[6]!, fe[6]!),
      digits(src, ps[1]!, pe[1]!),
      marker,
      vxidEnd - vxidAt > 1 ? vxidAt + 1 : -1,
      vxidEnd - 2,
      textEnd - textAt > 1 ? textAt + 1 : -1,
      textEnd - 2,
    );
    if (marker) st.onMarker(buf.toString('utf8', fs[5], fe[5]));
    if (st.events === 0) {
      st.minTimeMs = logTime;
      st.maxTimeMs = logTime;
    } else {
      if (logTime < st.minTimeMs) st.minTimeMs = logTime;
      if (logTime > st.maxTimeMs) st.maxTimeMs = logTime;
    }
    st.events++;
  }
  return p;
}
