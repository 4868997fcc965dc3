/**
 * A deliberately small, independent reader for the log files a test cluster wrote: it is the
 * oracle the real parser in src/ is compared against, so it shares no code with it.
 *
 * jsonlog: one JSON object per line. csvlog: RFC-4180-style records that may span lines.
 * The pgaudit message (`AUDIT: f1,f2,...`) is split with the same CSV rules (pgaudit's
 * append_valid_csv quotes a field only when it contains a comma, a double quote, CR or LF).
 * Files ending in `.gz` are gunzipped.
 */
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import type { ExpectedEvent } from './workload.js';

/** Reads a log file as UTF-8, gunzipping `*.gz`. */
export function readLogText(path: string): string {
  const raw = readFileSync(path);
  return (path.endsWith('.gz') ? gunzipSync(raw) : raw).toString('utf8');
}

/**
 * Splits CSV text into records of fields. A field that was quoted is returned as its content
 * (possibly ''), an unquoted empty field as null.
 */
export function parseCsv(text: string): (string | null)[][] {
  const records: (string | null)[][] = [];
  let fields: (string | null)[] = [];
  let i = 0;
  const n = text.length;
  if (n === 0) return records;
  for (;;) {
    let value: string | null;
    if (text[i] === '"') {
      const start = i + 1;
      let q = start;
      for (;;) {
        q = text.indexOf('"', q);
        if (q < 0) throw new Error(`unterminated quoted CSV field at offset ${start - 1}`);
        if (text[q + 1] !== '"') break;
        q += 2;
      }
      value = text.slice(start, q).replaceAll('""', '"');
      i = q + 1;
    } else {
      let j = i;
      while (j < n && text[j] !== ',' && text[j] !== '\n' && text[j] !== '\r') j++;
      value = j === i ? null : text.slice(i, j);
      i = j;
    }
    fields.push(value);
    if (i >= n) {
      records.push(fields);
      return records;
    }
    const sep = text[i];
    if (sep === ',') {
      i++;
      if (i >= n) {
        fields.push(null);
        records.push(fields);
        return records;
      }
    } else if (sep === '\n' || sep === '\r') {
      i += sep === '\r' && text[i + 1] === '\n' ? 2 : 1;
      records.push(fields);
      fields = [];
      if (i >= n) return records;
    } else {
      throw new Error(`unexpected character ${JSON.stringify(sep)} after CSV field at offset ${i}`);
    }
  }
}

/** Splits one CSV line (no record separators expected inside quotes-less fields). */
export function splitCsvFields(text: string): (string | null)[] {
  if (text === '') return [null];
  const records = parseCsv(text);
  if (records.length !== 1) throw new Error(`expected one CSV record, got ${records.length}`);
  return records[0]!;
}

/** The fields of a pgaudit message, after one CSV decode. Empty fields are null. */
export interface RawAuditFields {
  auditType: string;
  statementId: number;
  substatementId: number;
  class: string;
  command: string;
  objectType: string | null;
  objectName: string | null;
  /** Raw STATEMENT field (may be `<previously logged>` / `<not logged>`). */
  statement: string | null;
  /** Raw PARAMETER field after one decode (`<none>`, `<previously logged>`, or the nested CSV list). */
  parameter: string | null;
  /** ROWS, or null when the message has 9 fields. */
  rows: number | null;
  fieldCount: number;
}

/** Parses `AUDIT: ...`; returns null for other messages. */
export function parseAuditMessage(message: string): RawAuditFields | null {
  if (!message.startsWith('AUDIT: ')) return null;
  const f = splitCsvFields(message.slice('AUDIT: '.length));
  if (f.length !== 9 && f.length !== 10) throw new Error(`pgaudit message with ${f.length} fields: ${message.slice(0, 200)}`);
  return {
    auditType: f[0] ?? '',
    statementId: Number(f[1]),
    substatementId: Number(f[2]),
    class: f[3] ?? '',
    command: f[4] ?? '',
    objectType: f[5] || null,
    objectName: f[6] || null,
    statement: f[7] ?? null,
    parameter: f[8] || null,
    rows: f.length === 10 ? Number(f[9]) : null,
    fieldCount: f.length,
  };
}

/** One log record, whichever format it came from. */
export interface RawLogRecord {
  file: string;
  /** Position of the record in its file (0-based). */
  index: number;
  timestamp: string;
  user: string | null;
  dbname: string | null;
  sessionId: string;
  lineNum: number;
  severity: string;
  message: string;
  applicationName: string | null;
  audit: RawAuditFields | null;
}

/** Reads jsonlog files (`.json`, `.json.gz`) in the order given. */
export function readJsonlog(files: string[]): RawLogRecord[] {
  const out: RawLogRecord[] = [];
  for (const file of files) {
    const lines = readLogText(file).split('\n');
    let index = 0;
    for (const line of lines) {
      if (line === '') continue;
      const r = JSON.parse(line) as Record<string, unknown>;
      const message = String(r['message'] ?? '');
      out.push({
        file,
        index: index++,
        timestamp: String(r['timestamp']),
        user: (r['user'] as string | undefined) ?? null,
        dbname: (r['dbname'] as string | undefined) ?? null,
        sessionId: String(r['session_id']),
        lineNum: Number(r['line_num']),
        severity: String(r['error_severity']),
        message,
        applicationName: (r['application_name'] as string | undefined) || null,
        audit: parseAuditMessage(message),
      });
    }
  }
  return out;
}

/** csvlog column positions (PostgreSQL 14+, 26 columns). */
const CSV = { logTime: 0, user: 1, db: 2, sessionId: 5, lineNum: 6, severity: 11, message: 13, applicationName: 22 } as const;

/** Reads csvlog files (`.csv`, `.csv.gz`) in the order given. */
export function readCsvlog(files: string[]): RawLogRecord[] {
  const out: RawLogRecord[] = [];
  for (const file of files) {
    const records = parseCsv(readLogText(file));
    records.forEach((f, index) => {
      if (f.length !== 26) throw new Error(`${file}: csvlog record ${index} has ${f.length} columns`);
      const message = f[CSV.message] ?? '';
      out.push({
        file,
        index,
        timestamp: f[CSV.logTime] ?? '',
        user: f[CSV.user] ?? null,
        dbname: f[CSV.db] ?? null,
        sessionId: f[CSV.sessionId] ?? '',
        lineNum: Number(f[CSV.lineNum]),
        severity: f[CSV.severity] ?? '',
        message,
        applicationName: f[CSV.applicationName] || null,
        audit: parseAuditMessage(message),
      });
    });
  }
  return out;
}

/** Log files of one format in the directory listing, oldest first (names carry the start time). */
export function filesOfFormat(files: string[], format: 'jsonlog' | 'csvlog'): string[] {
  const ext = format === 'jsonlog' ? '.json' : '.csv';
  return files.filter((f) => f.endsWith(ext) || f.endsWith(`${ext}.gz`)).sort();
}

/** The raw pgaudit fields an expected event should produce. */
export function expectedRawFields(e: ExpectedEvent): Omit<RawAuditFields, 'fieldCount'> {
  return {
    auditType: e.auditType,
    statementId: e.statementId,
    substatementId: e.substatementId,
    class: e.class,
    command: e.command,
    objectType: e.objectType,
    objectName: e.objectName,
    statement: e.statementOnce ? '<previously logged>' : e.statement,
    parameter: e.statementOnce ? '<previously logged>' : e.parameter,
    rows: e.rows,
  };
}

function shorten(value: unknown): string {
  const s = JSON.stringify(value) ?? 'undefined';
  return s.length > 300 ? `${s.slice(0, 150)}…(${s.length} chars)…${s.slice(-100)}` : s;
}

/**
 * Compares expected events with the audit records found in the logs: for each application
 * name used by the expectations, the audit records carrying it must be exactly the expected
 * events, in order, field by field. Returns human-readable differences (empty = all good).
 */
export function compareWithLogs(expected: ExpectedEvent[], records: RawLogRecord[]): string[] {
  const problems: string[] = [];
  const apps = [...new Set(expected.map((e) => e.sessionApplicationName))];
  for (const app of apps) {
    const want = expected.filter((e) => e.sessionApplicationName === app);
    const got = records.filter((r) => r.audit !== null && r.applicationName === app);
    if (want.length !== got.length) {
      problems.push(`${app}: expected ${want.length} audit records, found ${got.length}`);
    }
    for (let i = 0; i < Math.max(want.length, got.length); i++) {
      const w = want[i];
      const g = got[i];
      if (w === undefined || g === undefined) {
        problems.push(`${app} #${i}: ${w === undefined ? `unexpected record ${shorten(g?.message)}` : `missing ${shorten(expectedRawFields(w))}`}`);
        continue;
      }
      const wf = expectedRawFields(w);
      const gf = g.audit!;
      for (const key of Object.keys(wf) as (keyof typeof wf)[]) {
        if (wf[key] !== gf[key]) problems.push(`${app} #${i} ${key}: expected ${shorten(wf[key])}, found ${shorten(gf[key])} (${g.file}#${g.index})`);
      }
      if (gf.fieldCount !== (w.rows === null ? 9 : 10)) problems.push(`${app} #${i}: ${gf.fieldCount} fields`);
      if (g.dbname !== w.database) problems.push(`${app} #${i} database: expected ${w.database}, found ${g.dbname}`);
      if (g.severity !== 'LOG') problems.push(`${app} #${i} severity ${g.severity}`);
    }
  }
  return problems;
}
