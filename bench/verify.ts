/**
 * Checks generated csvlog files two independent ways:
 *   1. DuckDB read_csv (26 VARCHAR columns, auto_detect off, strict, no ignore_errors): every
 *      record parses, record and AUDIT counts match the expectation;
 *   2. a byte-level RFC 4180 state machine in JS: 26 fields per record, pgaudit message decodes
 *      to 9 or 10 fields with a known class, the PARAMETER list decodes, (session_id,
 *      session_line_num) is unique and increasing per session.
 *
 * usage: node --import tsx bench/verify.ts DIR [--events N] [--records N]
 * Prints one JSON line; exits 1 when a check fails.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DuckDBInstance } from '@duckdb/node-api';

export const CSVLOG_COLUMNS = [
  'log_time',
  'user_name',
  'database_name',
  'process_id',
  'connection_from',
  'session_id',
  'session_line_num',
  'command_tag',
  'session_start_time',
  'virtual_transaction_id',
  'transaction_id',
  'error_severity',
  'sql_state_code',
  'message',
  'detail',
  'hint',
  'internal_query',
  'internal_query_pos',
  'context',
  'query',
  'query_pos',
  'location',
  'application_name',
  'backend_type',
  'leader_pid',
  'query_id',
] as const;

/** Split one CSV text into records of fields (quotes: "" escapes; unquoted empty -> null). */
export function* csvRecords(text: string): Generator<(string | null)[]> {
  const n = text.length;
  let i = 0;
  while (i < n) {
    const fields: (string | null)[] = [];
    for (;;) {
      if (text[i] === '"') {
        let val = '';
        i++;
        for (;;) {
          const q = text.indexOf('"', i);
          if (q < 0) throw new Error(`unterminated quote at ${i}`);
          val += text.slice(i, q);
          if (text[q + 1] === '"') {
            val += '"';
            i = q + 2;
          } else {
            i = q + 1;
            break;
          }
        }
        fields.push(val);
      } else {
        let j = i;
        while (j < n && text[j] !== ',' && text[j] !== '\n') j++;
        fields.push(j === i ? null : text.slice(i, j));
        i = j;
      }
      const c = text[i];
      if (c === ',') {
        i++;
        continue;
      }
      if (c === '\n' || c === undefined) {
        i++;
        break;
      }
      throw new Error(`unexpected character ${JSON.stringify(c)} after field at ${i}`);
    }
    yield fields;
  }
}

/** Decode a pgaudit-style CSV list (append_valid_csv quoting; no trailing newline). */
export function auditFields(s: string): (string | null)[] {
  const out: (string | null)[] = [];
  for (const rec of csvRecords(s)) out.push(...rec);
  return out;
}

const CLASSES = new Set(['READ', 'WRITE', 'FUNCTION', 'ROLE', 'DDL', 'MISC', 'MISC_SET']);

export interface VerifyResult {
  ok: boolean;
  files: number;
  duckdbRecords: number;
  duckdbAudit: number;
  jsRecords: number;
  jsAudit: number;
  audit9: number;
  audit10: number;
  multiline: number;
  maxRecordBytes: number;
  errors: string[];
}

export async function verifyDir(dir: string, expect: { events?: number; records?: number } = {}): Promise<VerifyResult> {
  const names = (await readdir(dir)).filter((f) => /\.csv$/.test(f)).sort();
  const files = names.map((f) => join(dir, f));
  const errors: string[] = [];
  const res: VerifyResult = {
    ok: false,
    files: files.length,
    duckdbRecords: 0,
    duckdbAudit: 0,
    jsRecords: 0,
    jsAudit: 0,
    audit9: 0,
    audit10: 0,
    multiline: 0,
    maxRecordBytes: 0,
    errors,
  };

  // 1. DuckDB
  const inst = await DuckDBInstance.create(':memory:');
  const con = await inst.connect();
  try {
    const cols = '{' + CSVLOG_COLUMNS.map((c) => `'${c}': 'VARCHAR'`).join(', ') + '}';
    const list = '[' + files.map((f) => `'${f.replaceAll("'", "''")}'`).join(', ') + ']';
    const reader = await con.runAndReadAll(
      `SELECT count(*)::BIGINT AS n, count(*) FILTER (WHERE message LIKE 'AUDIT: %')::BIGINT AS audit,
              count(*) FILTER (WHERE query_id IS NULL OR backend_type IS NULL)::BIGINT AS short
         FROM read_csv(${list}, header = false, auto_detect = false, columns = ${cols},
                       delim = ',', quote = '"', escape = '"', nullstr = '', strict_mode = true,
                       ignore_errors = false, null_padding = false, max_line_size = 4000000)`,
    );
    const row = reader.getRowsJS()[0] ?? [];
    res.duckdbRecords = Number(row[0]);
    res.duckdbAudit = Number(row[1]);
    if (Number(row[2]) !== 0) errors.push(`duckdb: ${String(row[2])} records without query_id/backend_type`);
  } catch (e) {
    errors.push('duckdb: ' + (e instanceof Error ? e.message : String(e)));
  } finally {
    con.closeSync();
    inst.closeSync();
  }

  // 2. JS
  const lastLine = new Map<string, number>();
  for (const file of files) {
    const text = await readFile(file, 'utf8');
    if (text.length && !text.endsWith('\n')) errors.push(`${file}: does not end with \\n`);
    let recNo = 0;
    try {
      for (const rec of csvRecords(text)) {
        recNo++;
        res.jsRecords++;
        if (rec.length !== 26) {
          errors.push(`${file} record ${recNo}: ${rec.length} fields`);
          if (errors.length > 20) break;
          continue;
        }
        const msg = rec[13] ?? '';
        const sid = rec[5] ?? '';
        const line = Number(rec[6]);
        const prev = lastLine.get(sid);
        if (prev !== undefined && line <= prev) errors.push(`${file} record ${recNo}: session ${sid} line ${line} after ${prev}`);
        lastLine.set(sid, line);
        if (!/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} UTC$/.test(rec[0] ?? '')) errors.push(`${file} record ${recNo}: log_time ${rec[0]}`);
        if (!/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/.test(rec[8] ?? '')) errors.push(`${file} record ${recNo}: session_start_time ${rec[8]}`);
        if (msg.includes('\n')) res.multiline++;
        if (msg.startsWith('AUDIT: ')) {
          res.jsAudit++;
          const f = auditFields(msg.slice(7));
          if (f.length === 9) res.audit9++;
          else if (f.length === 10) res.audit10++;
          else errors.push(`${file} record ${recNo}: ${f.length} pgaudit fields`);
          if (!CLASSES.has(f[3] ?? '')) errors.push(`${file} record ${recNo}: class ${f[3]}`);
          if (f[0] !== 'SESSION' && f[0] !== 'OBJECT') errors.push(`${file} record ${recNo}: audit type ${f[0]}`);
          const p = f[8] ?? '';
          if (p !== '<none>' && p !== '<not logged>') auditFields(p); // must decode
        }
      }
    } catch (e) {
      errors.push(`${file} record ${recNo + 1}: ${e instanceof Error ? e.message : String(e)}`);
    }
    // longest record in bytes (approximation: longest run between record starts)
    const starts = [...text.matchAll(/(?:^|\n)\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} UTC,/g)].map((m) => m.index);
    for (let k = 1; k < starts.length; k++) {
      const a = starts[k - 1] ?? 0;
      const b = starts[k] ?? 0;
      if (b - a > res.maxRecordBytes) res.maxRecordBytes = b - a;
    }
  }
  if (res.duckdbRecords !== res.jsRecords) errors.push(`duckdb saw ${res.duckdbRecords} records, JS ${res.jsRecords}`);
  if (res.duckdbAudit !== res.jsAudit) errors.push(`duckdb saw ${res.duckdbAudit} AUDIT records, JS ${res.jsAudit}`);
  if (expect.events !== undefined && res.jsAudit !== expect.events) errors.push(`expected ${expect.events} AUDIT records, found ${res.jsAudit}`);
  if (expect.records !== undefined && res.jsRecords !== expect.records) errors.push(`expected ${expect.records} records, found ${res.jsRecords}`);
  res.ok = errors.length === 0;
  return res;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  let dir: string | undefined;
  const expect: { events?: number; records?: number } = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--events') expect.events = Number(argv[++i]);
    else if (a === '--records') expect.records = Number(argv[++i]);
    else if (a !== undefined) dir = a;
  }
  if (!dir) throw new Error('usage: verify.ts DIR [--events N] [--records N]');
  const res = await verifyDir(resolve(dir), expect);
  console.log(JSON.stringify({ ...res, errors: res.errors.slice(0, 20) }));
  if (!res.ok) process.exit(1);
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
    process.exit(1);
  });
}
