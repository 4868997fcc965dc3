/**
 * A deterministic generator of PostgreSQL 15 csvlog (and the matching jsonlog) records carrying pgaudit
 * entries, for tests. It shares no code with src/: the expectations it returns are the oracle.
 *
 * csvlog (csvlog.c): 26 columns, no header; text columns always quoted with inner quotes doubled; NULL is
 * an empty field; numbers, times, severity, SQLSTATE and vxid unquoted. The pgaudit message (pgaudit.c
 * append_valid_csv) quotes a field only when it holds a comma, a quote, CR or LF:
 *   AUDIT: SESSION,<statement id>,1,READ,SELECT,TABLE,public.t,<statement>,<parameter>
 * Every record has its own (session_id, session_line_num). Statements are sometimes multi-line, with
 * quotes, commas, CR LF, non-ASCII text and (rarely) control characters. A few records are not audit
 * entries (connections, disconnections), as in a real log.
 */
import { createHash } from 'node:crypto';

/** sfc32 seeded through splitmix32: small, fast, deterministic. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    let s = seed >>> 0;
    const next = (): number => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next();
    for (let i = 0; i < 12; i++) this.u32();
  }

  u32(): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) >>> 0;
    return t;
  }

  /** [0, 1) */
  float(): number {
    return this.u32() / 4294967296;
  }

  /** Integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.float() * (hi - lo + 1));
  }

  chance(p: number): boolean {
    return this.float() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.float() * items.length)]!;
  }
}

/** csvlog text column: always quoted, quotes doubled; NULL is nothing. */
export function csvText(s: string | null): string {
  return s === null ? '' : `"${s.replaceAll('"', '""')}"`;
}

/** pgaudit append_valid_csv: quoted only when it holds a comma, quote, CR or LF; NULL/empty is nothing. */
export function pgauditField(s: string | null): string {
  if (s === null || s === '') return '';
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

/** pgaudit PARAMETER: each value through append_valid_csv, joined by commas (the caller quotes again). */
export function pgauditParamList(values: readonly (string | null)[]): string {
  return values.length === 0 ? '<none>' : values.map((v) => pgauditField(v)).join(',');
}

function pad(n: number, w: number): string {
  return String(n).padStart(w, '0');
}

/** `2024-05-01 12:00:00.123 UTC`, as elog.c writes log_time with log_timezone = UTC. */
export function pgLogTime(ms: number, withMillis = true): string {
  const d = new Date(ms);
  const base = `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1, 2)}-${pad(d.getUTCDate(), 2)} ${pad(d.getUTCHours(), 2)}:${pad(d.getUTCMinutes(), 2)}:${pad(d.getUTCSeconds(), 2)}`;
  return `${base}${withMillis ? '.' + pad(d.getUTCMilliseconds(), 3) : ''} UTC`;
}

/** One generated log record. */
export interface GenRecord {
  /** The csvlog text of the record, newline included. */
  csv: string;
  /** The same record as one jsonlog line, newline included. */
  json: string;
  /** True for a pgaudit entry (stored as an event); false for other server messages. */
  audit: boolean;
  sessionId: string;
  line: number;
  logTimeMs: number;
  /** The decoded pgaudit STATEMENT (audit records only). */
  statement: string | null;
  /** The pgaudit PARAMETER after one decode, as auditship stores it (audit records only). */
  parameter: string | null;
  /** The whole message (`AUDIT: ...`). */
  message: string;
  applicationName: string;
}

export interface GeneratorOptions {
  seed?: number;
  /** log_time of the first record (default 2024-05-01 12:00:00.123 UTC). */
  startMs?: number;
  /** First session number: generators with disjoint ranges never share a session_id. */
  sessionBase?: number;
  /** Share of audit records whose statement spans lines (default 0.15). */
  multilineShare?: number;
  /** Share of records that are not audit entries (default 0.03). */
  otherShare?: number;
}

const TABLES = ['public.t', 'public.accounts', 'public."odd, name"', 'sales.orders'];
const APPS = ['psql', 'app-web', 'report, nightly', 'etl "loader"'];

export class CsvlogGenerator {
  private readonly rng: Rng;
  private timeMs: number;
  private sessionNo: number;
  private session = { id: '', pid: 0, startMs: 0, line: 0, left: 0, statementId: 0, app: '', port: 0 };
  private readonly multilineShare: number;
  private readonly otherShare: number;
  private serial = 0;

  constructor(options: GeneratorOptions = {}) {
    this.rng = new Rng(options.seed ?? 1);
    this.timeMs = options.startMs ?? Date.UTC(2024, 4, 1, 12, 0, 0, 123);
    this.sessionNo = options.sessionBase ?? 0;
    this.multilineShare = options.multilineShare ?? 0.15;
    this.otherShare = options.otherShare ?? 0.03;
  }

  private newSession(): void {
    const r = this.rng;
    this.sessionNo++;
    const pid = 1000 + (this.sessionNo % 60000);
    const startSec = Math.floor(this.timeMs / 1000);
    // session_id is "<hex start epoch>.<hex pid>"; the session number keeps every id unique.
    const id = `${startSec.toString(16)}.${(this.sessionNo * 65536 + pid).toString(16)}`;
    this.session = { id, pid, startMs: startSec * 1000, line: 0, left: r.int(1, 300), statementId: 0, app: r.pick(APPS), port: r.int(30000, 60000) };
  }

  private statement(n: number): string {
    const r = this.rng;
    const kind = r.chance(this.multilineShare) ? r.int(0, 3) : r.int(4, 8);
    switch (kind) {
      case 0:
        return `SELECT "col, x", 'it''s', "q""uoted"\nFROM public.t\nWHERE note = 'a "b", c' AND id = ${n}`;
      case 1:
        return `WITH x AS (\n  SELECT id, 'é, ü — 日本語' AS s\n  FROM public.t\n)\nSELECT * FROM x WHERE id = ${n};`;
      case 2:
        return `UPDATE public.t\r\nSET note = '""", ,\n,"'\r\nWHERE id = ${n}`;
      case 3: {
        const lines = r.int(2, 40);
        const out: string[] = [];
        for (let i = 0; i < lines; i++) out.push(`  , "c${i}" -- "${'x'.repeat(r.int(0, 60))}", 'y'`);
        return `SELECT ${n}\n${out.join('\n')}\nFROM public.t`;
      }
      case 4:
        return `SELECT * FROM public.t WHERE id = ${n}`;
      case 5:
        return `SELECT a, b FROM public.t WHERE id = ${n}`;
      case 6:
        return `INSERT INTO public.t VALUES (${n}, 'naïve café ☕', "x")`;
      case 7:
        return r.chance(0.01) ? `SELECT 'tab\there, unit\x1fsep' /* ${n} */` : `DELETE FROM public.t WHERE id = ${n} AND s = 'a''b'`;
      default:
        return `SELECT count(*) FROM public.t /* ${'p'.repeat(r.int(0, 200))} ${n} */`;
    }
  }

  private parameter(): string {
    const r = this.rng;
    const k = r.int(0, 9);
    if (k < 5) return '<none>';
    if (k < 7) return '<not logged>';
    if (k === 7) return pgauditParamList([String(r.int(0, 1e6))]);
    if (k === 8) return pgauditParamList([String(r.int(0, 99)), 'x, "y"', null]);
    return pgauditParamList(['multi\nline', 'é']);
  }

  /** The next record: an audit entry, or now and then another server message. */
  next(): GenRecord {
    const r = this.rng;
    if (this.session.left <= 0) this.newSession();
    const s = this.session;
    s.left--;
    s.line++;
    this.timeMs += r.int(0, 3);
    const other = r.chance(this.otherShare);
    let message: string;
    let statement: string | null = null;
    let parameter: string | null = null;
    if (other) {
      message = r.chance(0.5)
        ? `connection authorized: user=postgres database=postgres application_name=${s.app}`
        : `disconnection: session time: 0:00:0${r.int(0, 9)}.${pad(r.int(0, 999), 3)} user=postgres database=postgres host=10.0.0.5 port=${s.port}`;
    } else {
      s.statementId++;
      this.serial++;
      statement = this.statement(this.serial);
      parameter = this.parameter();
      const table = r.pick(TABLES);
      message = `AUDIT: SESSION,${s.statementId},1,READ,SELECT,TABLE,${pgauditField(table)},${pgauditField(statement)},${pgauditField(parameter)}`;
    }
    const vxid = `3/${s.line + 40}`;
    const time = pgLogTime(this.timeMs);
    const start = pgLogTime(s.startMs, false);
    const csv =
      [
        time,
        csvText('postgres'),
        csvText('appdb'),
        String(s.pid),
        csvText(`10.0.0.5:${s.port}`),
        s.id,
        String(s.line),
        csvText(other ? 'idle' : 'SELECT'),
        start,
        vxid,
        '0',
        'LOG',
        '00000',
        csvText(message),
        '',
        '',
        '',
        '',
        '',
        '',
        '',
        '',
        csvText(s.app),
        csvText('client backend'),
        '',
        '0',
      ].join(',') + '\n';
    const jsonObj: Record<string, unknown> = {
      timestamp: time,
      user: 'postgres',
      dbname: 'appdb',
      pid: s.pid,
      remote_host: '10.0.0.5',
      remote_port: s.port,
      session_id: s.id,
      line_num: s.line,
      ps: other ? 'idle' : 'SELECT',
      session_start: start,
      vxid,
      txid: 0,
      error_severity: 'LOG',
      state_code: '00000',
      message,
      application_name: s.app,
      backend_type: 'client backend',
      query_id: 0,
    };
    return {
      csv,
      json: JSON.stringify(jsonObj) + '\n',
      audit: !other,
      sessionId: s.id,
      line: s.line,
      logTimeMs: this.timeMs,
      statement,
      parameter,
      message,
      applicationName: s.app,
    };
  }

  /** Records until `auditCount` audit entries were produced. */
  records(auditCount: number): GenRecord[] {
    const out: GenRecord[] = [];
    let n = 0;
    while (n < auditCount) {
      const rec = this.next();
      out.push(rec);
      if (rec.audit) n++;
    }
    return out;
  }

  /** An audit record with a statement of `bytes` bytes (quotes, commas and newlines in it). */
  huge(bytes: number): GenRecord {
    const unit = `SELECT "a, b", 'c''d' FROM t; -- é\n`; // 40 bytes in UTF-8
    const unitBytes = Buffer.byteLength(unit);
    let body = unit.repeat(Math.floor(bytes / unitBytes));
    body += 'x'.repeat(bytes - Buffer.byteLength(body));
    const rec = this.next();
    if (!rec.audit) return this.huge(bytes);
    return this.withStatement(rec, body);
  }

  /** Rewrites an audit record with another statement (same identity and time). */
  withStatement(rec: GenRecord, statement: string): GenRecord {
    const parameter = '<none>';
    const message =
      rec.message.replace(/^(AUDIT: SESSION,\d+,1,READ,SELECT,TABLE,(?:"(?:[^"]|"")*"|[^,]*),)[\s\S]*$/, '$1') + `${pgauditField(statement)},${parameter}`;
    const csv = rec.csv.replace(csvText(rec.message), () => csvText(message));
    const o = JSON.parse(rec.json) as Record<string, unknown>;
    o['message'] = message;
    return { ...rec, csv, json: JSON.stringify(o) + '\n', statement, parameter, message };
  }
}

export function csvOf(records: readonly GenRecord[]): string {
  return records.map((r) => r.csv).join('');
}

export function jsonOf(records: readonly GenRecord[]): string {
  return records.map((r) => r.json).join('');
}

export function auditOnly(records: readonly GenRecord[]): GenRecord[] {
  return records.filter((r) => r.audit);
}

/** Byte offset just after each record (csvlog), in order. */
export function csvEndOffsets(records: readonly GenRecord[]): number[] {
  const out: number[] = [];
  let at = 0;
  for (const r of records) {
    at += Buffer.byteLength(r.csv);
    out.push(at);
  }
  return out;
}

export interface Digest {
  count: number;
  statementBytes: number;
  md5: string;
}

/** Line digested per event: identity plus hashes of statement and parameter. */
function digestLine(sessionId: string, line: number, statement: string | null, parameter: string | null): string {
  const h = (s: string | null) => (s === null ? 'NULL' : createHash('md5').update(s, 'utf8').digest('hex'));
  return `${sessionId}:${line}:${h(statement)}:${h(parameter)}`;
}

/** The digest of a set of audit records, to compare with {@link DIGEST_SQL} over audit_logs. */
export function digestOf(records: readonly GenRecord[]): Digest {
  const audit = records.filter((r) => r.audit);
  const sorted = [...audit].sort((a, b) => (a.sessionId < b.sessionId ? -1 : a.sessionId > b.sessionId ? 1 : a.line - b.line));
  let bytes = 0;
  for (const r of sorted) bytes += Buffer.byteLength(r.statement ?? '');
  const md5 = createHash('md5')
    .update(sorted.map((r) => digestLine(r.sessionId, r.line, r.statement, r.parameter)).join('\n'), 'utf8')
    .digest('hex');
  return { count: audit.length, statementBytes: bytes, md5 };
}

/** SQL computing {@link Digest} over audit_logs (optionally filtered). */
export function digestSql(where = 'true'): string {
  return `SELECT count(*) AS count,
    coalesce(sum(strlen(coalesce(statement, ''))), 0) AS statement_bytes,
    md5(coalesce(string_agg(session_id || ':' || session_line_num || ':' || coalesce(md5(statement), 'NULL') || ':' || coalesce(md5(parameter), 'NULL'),
        chr(10) ORDER BY session_id, session_line_num), '')) AS md5
    FROM audit_logs WHERE ${where}`;
}
