/**
 * Property tests for the CSV layer (src/parse/csv.ts, record-scanner.ts) and the four nested decode levels
 * of a pgaudit csvlog line, against an independent reference encoder/reader (test/helpers/csv-reference.ts).
 * Seeded and deterministic; see test/helpers/prng.ts for replaying a failing case (PROP_CASE=...).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { encodeCsv, encodeCsvField, splitCsv } from '../../src/parse/csv.js';
import { findNextRecordStart, scanCsvRecord, type ScannedRecord } from '../../src/parse/record-scanner.js';
import { decodeParameterList, parsePgAuditMessage } from '../../src/parse/pgaudit.js';
import { csvlogRecord, type PgAuditRecord } from '../../src/parse/log-record.js';
import { TimestampResolver } from '../../src/parse/timestamp.js';
import { caseSeed, forAll, Rng, showInput } from '../helpers/prng.js';
import {
  csvlogBare,
  csvlogText,
  garbageText,
  joinRecords,
  randomFields,
  randomRecordsText,
  randomString,
  refEncodeField,
  refEncodeRecord,
  refNextRecordStart,
  type Column,
  type TextRecords,
} from '../helpers/csv-reference.js';
import { GARBAGE_PROPERTY } from './csv-garbage.js';

// ---------------------------------------------------------------------------------------------------------
// Level 1: one CSV record

describe('splitCsv round-trips the reference RFC 4180 encoder', () => {
  test('random field lists (0–30 fields: commas, quotes, CR, LF, CRLF, unicode, "", NULL)', () => {
    forAll(
      { name: 'splitCsv(encode(fields))', seed: 0xc5f1_0001, runs: 3000 },
      (rng) => randomFields(rng, 0, 30),
      (fields) => {
        const encoded = refEncodeRecord(fields);
        // No fields and one NULL field are both the empty text in CSV; splitCsv reads it as one NULL.
        const expected = fields.length === 0 ? [null] : fields;
        assert.deepEqual(splitCsv(encoded), { fields: expected, error: null });
      },
    );
  });

  test('a record embedded in a larger text, split through start/end', () => {
    forAll(
      { name: 'splitCsv(prefix + encode(fields) + suffix, start, end)', seed: 0xc5f1_0002, runs: 2000 },
      (rng) => ({ prefix: randomString(rng, 4), fields: randomFields(rng, 1, 12), suffix: randomString(rng, 4) }),
      ({ prefix, fields, suffix }) => {
        const encoded = refEncodeRecord(fields);
        const text = prefix + encoded + suffix;
        assert.deepEqual(splitCsv(text, prefix.length, prefix.length + encoded.length), { fields, error: null });
      },
    );
  });

  test('single fields: every value comes back, and the quoting rule matches the reference', () => {
    forAll(
      { name: 'single field', seed: 0xc5f1_0003, runs: 2000 },
      (rng) => randomString(rng, 10),
      (value) => {
        assert.deepEqual(splitCsv(refEncodeField(value)).fields, [value]);
        // src's encoder follows pgaudit: quote iff , " CR LF — identical to the reference except for '' (below).
        if (value !== '') assert.equal(encodeCsvField(value), refEncodeField(value));
      },
    );
  });

  test('encodeCsv (src) round-trips through splitCsv for lists without empty strings', () => {
    forAll(
      { name: 'splitCsv(encodeCsv(fields))', seed: 0xc5f1_0004, runs: 2000 },
      (rng) => randomFields(rng, 1, 20).map((f) => (f === '' ? null : f)),
      (fields) => assert.deepEqual(splitCsv(encodeCsv(fields)), { fields, error: null }),
    );
  });

  test("encodeCsvField('') writes an empty field, like pgaudit's append_valid_csv (so it reads back as NULL)", () => {
    assert.equal(encodeCsvField(''), '');
    assert.equal(encodeCsvField(null), '');
    assert.deepEqual(splitCsv('""').fields, ['']);
    assert.deepEqual(splitCsv('').fields, [null]);
  });
});

// ---------------------------------------------------------------------------------------------------------
// csvlog records: scanning a text of several records

function scanAll(text: string): ScannedRecord[] {
  const out: ScannedRecord[] = [];
  let pos = 0;
  for (;;) {
    const rec = scanCsvRecord(text, pos);
    if (!rec) break;
    assert.ok(rec.next > pos, 'scanner made no progress');
    out.push(rec);
    pos = rec.next;
  }
  return out;
}

function expectRecords(text: string, records: TextRecords['records']): void {
  assert.deepEqual(
    scanAll(text),
    records.map((r) => ({ ...r, error: null })),
  );
}

describe('scanCsvRecord over multi-record text', () => {
  test('random records (NULL, bare tokens, quoted text with newlines; LF and CRLF line ends)', () => {
    forAll(
      { name: 'scan(join(records))', seed: 0xc5f1_0101, runs: 2000 },
      (rng) => randomRecordsText(rng, 8, 30, 6),
      ({ text, records }) => {
        expectRecords(text, records);
        assert.equal(scanCsvRecord(text, text.length), null, 'nothing after the last record');
      },
    );
  });

  test('broken records end at the next newline outside quotes and carry an error', () => {
    const afterQuote = scanCsvRecord('"a"x,1\n2\n', 0);
    assert.deepEqual(afterQuote && { next: afterQuote.next, error: afterQuote.error }, { next: 7, error: 'text_after_closing_quote' });
    const strayQuote = scanCsvRecord('a"b"c,1\nnext,2\n', 0);
    assert.deepEqual(strayQuote && { next: strayQuote.next, error: strayQuote.error }, { next: 8, error: 'quote_in_unquoted_field' });
    const loneCr = scanCsvRecord('a\rb,1\nnext\n', 0);
    assert.ok(loneCr && loneCr.error !== null && loneCr.next === 6, 'a lone CR outside quotes is an error');
    // The scan continues cleanly after a broken record.
    assert.deepEqual(scanCsvRecord('a"b"c,1\nnext,2\n', 8)?.fields, ['next', '2']);
    // An unterminated quote swallows the rest: no newline outside quotes, so no record yet.
    assert.equal(scanCsvRecord('1,"open\n2,3\n', 0), null);
  });
});

// ---------------------------------------------------------------------------------------------------------
// Four levels: csvlog record → message → pgaudit fields → parameter list

const AUDIT_TYPES = ['SESSION', 'OBJECT'] as const;
const CLASSES = ['READ', 'WRITE', 'FUNCTION', 'ROLE', 'DDL', 'MISC', 'MISC_SET'] as const;
const MARKERS = ['<none>', '<not logged>', '<previously logged>'] as const;
const CONNECTIONS: readonly [string | null, string | null, number | null][] = [
  ['127.0.0.1:42942', '127.0.0.1', 42942],
  ['[local]', '[local]', null],
  ['::1:5432', '::1', 5432],
  ['2001:db8::7:65535', '2001:db8::7', 65535],
  [null, null, null],
];

function utcText(ms: number, withMillis: boolean): string {
  const iso = new Date(ms).toISOString(); // 2024-05-01T12:00:00.123Z
  return `${iso.slice(0, 10)} ${iso.slice(11, withMillis ? 23 : 19)} UTC`;
}

interface AuditLine {
  columns: Column[];
  /** Expected csvlogRecord outcome. */
  expected: { kind: 'audit'; record: PgAuditRecord } | { kind: 'other' };
  /** The parameter list the PARAMETER field encodes, or null for a marker / NULL. */
  params: (string | null)[] | null;
}

function genAuditLine(rng: Rng, columnCount: 23 | 24 | 26): AuditLine {
  const auditType = rng.pick(AUDIT_TYPES);
  const statementId = rng.int(1, 2 ** 31);
  const substatementId = rng.int(1, 1000);
  const klass = rng.pick(CLASSES);
  const opt = (p: number) => (rng.bool(p) ? null : randomString(rng, 6));
  const command = opt(0.1);
  const objectType = opt(0.3);
  const objectName = opt(0.3);
  const statement = rng.bool(0.1) ? rng.pick(MARKERS.slice(1)) : opt(0.05);
  let params: (string | null)[] | null = null;
  let parameter: string | null;
  if (rng.bool(0.7)) {
    do params = randomFields(rng, 1, 6, 5);
    while (params.length === 1 && (MARKERS as readonly (string | null)[]).includes(params[0]!));
    if (rng.bool(0.1)) params[rng.int(0, params.length - 1)] = '<long param suppressed>';
    parameter = refEncodeRecord(params);
  } else {
    parameter = rng.bool(0.8) ? rng.pick(MARKERS) : null;
  }
  const tenth = rng.bool(0.5);
  const rows = tenth && rng.bool(0.8) ? rng.int(0, 2 ** 40) : null;
  const pg = [auditType, String(statementId), String(substatementId), klass, command, objectType, objectName, statement, parameter];
  if (tenth) pg.push(rows === null ? null : String(rows));
  const message = 'AUDIT: ' + refEncodeRecord(pg);

  const logMs = rng.int(Date.UTC(2020, 0, 1), Date.UTC(2030, 0, 1));
  const startMs = Math.floor((logMs - rng.int(0, 86_400_000)) / 1000) * 1000;
  const user = opt(0.1);
  const db = opt(0.1);
  const pid = rng.int(1, 4_194_304);
  const [conn, addr, port] = rng.pick(CONNECTIONS);
  const sessionId = `${startMs.toString(16).slice(0, 8)}.${pid.toString(16)}`;
  const lineNum = rng.int(1, 1_000_000);
  const tag = opt(0.2);
  const vxid = rng.bool(0.9) ? `${rng.int(1, 99)}/${rng.int(0, 1e6)}` : null;
  const txid = rng.int(0, 2 ** 32 - 1);
  const app = opt(0.2);
  const backend = rng.bool(0.9) ? 'client backend' : 'background worker';
  const leader = rng.bool(0.2) ? rng.int(1, 4_194_304) : null;
  const queryId = rng.pick(['0', '-7123456789012345678', '9223372036854775807', '-9223372036854775808', String(rng.int(-1e9, 1e9))]);
  const otherMessage = rng.bool(0.25) ? `checkpoint complete: ${randomString(rng, 5)}` : null;

  const columns: Column[] = [
    { value: utcText(logMs, true), text: csvlogBare(utcText(logMs, true)) },
    { value: user, text: csvlogText(user) },
    { value: db, text: csvlogText(db) },
    { value: String(pid), text: csvlogBare(pid) },
    { value: conn, text: csvlogText(conn) },
    { value: sessionId, text: csvlogBare(sessionId) },
    { value: String(lineNum), text: csvlogBare(lineNum) },
    { value: tag, text: csvlogText(tag) },
    { value: utcText(startMs, false), text: csvlogBare(utcText(startMs, false)) },
    { value: vxid, text: csvlogBare(vxid) },
    { value: String(txid), text: csvlogBare(txid) },
    { value: 'LOG', text: 'LOG' },
    { value: '00000', text: '00000' },
    { value: otherMessage ?? message, text: csvlogText(otherMessage ?? message) },
  ];
  for (let i = 14; i < 22; i++) columns.push({ value: null, text: '' }); // detail … location
  columns.push({ value: app, text: csvlogText(app) });
  if (columnCount >= 24) columns.push({ value: backend, text: csvlogText(backend) });
  if (columnCount === 26) {
    columns.push({ value: leader === null ? null : String(leader), text: csvlogBare(leader) });
    columns.push({ value: queryId, text: csvlogBare(queryId) });
  }
  assert.equal(columns.length, columnCount);

  if (otherMessage !== null) return { columns, expected: { kind: 'other' }, params: null };
  return {
    columns,
    params,
    expected: {
      kind: 'audit',
      record: {
        log_time_ms: logMs,
        user_name: user,
        database_name: db,
        process_id: pid,
        client_addr: addr,
        client_port: port,
        session_id: sessionId,
        session_line_num: lineNum,
        command_tag: tag,
        session_start_ms: startMs,
        virtual_transaction_id: vxid,
        transaction_id: txid,
        error_severity: 'LOG',
        application_name: app === '' ? null : app, // an empty application_name is NULL, as jsonlog has it
        backend_type: columnCount >= 24 ? backend : null,
        leader_pid: columnCount === 26 ? leader : null,
        query_id: columnCount === 26 ? queryId : null,
        message,
        audit_type: auditType,
        statement_id: statementId,
        substatement_id: substatementId,
        class: klass,
        command,
        object_type: objectType,
        object_name: objectName,
        statement,
        parameter,
        rows,
      },
    },
  };
}

interface AuditFile {
  lines: AuditLine[];
  columnCount: 23 | 24 | 26;
  text: TextRecords;
}

function genAuditFile(rng: Rng, maxRecords: number): AuditFile {
  const columnCount = rng.pick([23, 24, 26] as const);
  const lines: AuditLine[] = [];
  const n = rng.int(1, maxRecords);
  for (let i = 0; i < n; i++) lines.push(genAuditLine(rng, columnCount));
  return {
    lines,
    columnCount,
    text: joinRecords(
      lines.map((l) => l.columns),
      () => '\n',
    ),
  };
}

describe('pgaudit in csvlog: record → message → pgaudit fields → parameter list', () => {
  test('scanCsvRecord + parsePgAuditMessage + decodeParameterList give back the original fields', () => {
    forAll<AuditFile>(
      { name: 'four decode levels', seed: 0xc5f1_0201, runs: 1500, show: (f) => showInput(f.text.text) },
      (rng) => genAuditFile(rng, 5),
      ({ lines, text }) => {
        const scanned = scanAll(text.text);
        assert.equal(scanned.length, lines.length, 'record count');
        lines.forEach((line, i) => {
          const rec = scanned[i]!;
          assert.deepEqual(
            rec.fields,
            line.columns.map((c) => c.value),
            `record ${i} fields`,
          );
          if (line.expected.kind !== 'audit') return;
          const want = line.expected.record;
          const parsed = parsePgAuditMessage(rec.fields[13]!);
          assert.ok(parsed.ok, `record ${i}: ${parsed.ok ? '' : parsed.reason}`);
          assert.deepEqual(parsed.fields, {
            audit_type: want.audit_type,
            statement_id: want.statement_id,
            substatement_id: want.substatement_id,
            class: want.class,
            command: want.command,
            object_type: want.object_type,
            object_name: want.object_name,
            statement: want.statement,
            parameter: want.parameter,
            rows: want.rows,
          });
          assert.deepEqual(decodeParameterList(parsed.fields.parameter), line.params, `record ${i} parameter list`);
        });
      },
    );
  });

  test('csvlogRecord maps every column of 23/24/26-column records (random text in every text column)', () => {
    forAll<AuditFile>(
      { name: 'csvlogRecord(scan(record))', seed: 0xc5f1_0202, runs: 1500, show: (f) => showInput(f.text.text) },
      (rng) => genAuditFile(rng, 3),
      ({ lines, columnCount, text }) => {
        const times = new TimestampResolver();
        const scanned = scanAll(text.text);
        lines.forEach((line, i) => {
          const rec = scanned[i]!;
          assert.deepEqual(csvlogRecord(rec.fields, rec.error, columnCount, times), line.expected, `record ${i}`);
        });
      },
    );
  });
});

// ---------------------------------------------------------------------------------------------------------
// Truncation: a tailer sees every prefix of a file

function checkEveryPrefix(text: string, records: TextRecords['records']): void {
  for (let n = 0; n <= text.length; n++) {
    const prefix = text.slice(0, n);
    let pos = 0;
    for (const want of records) {
      const rec = scanCsvRecord(prefix, pos);
      if (want.next <= n) {
        assert.deepEqual(rec, { ...want, error: null }, `prefix of length ${n}: complete record at ${pos}`);
        pos = want.next;
      } else {
        assert.equal(rec, null, `prefix of length ${n}: the record at ${pos} is incomplete, expected null, got ${showInput(rec, 400)}`);
        break;
      }
    }
  }
}

describe('truncation: every prefix yields the original complete records, then null', () => {
  test('random small records (LF and CRLF)', () => {
    forAll<TextRecords>(
      { name: 'prefixes of random records', seed: 0xc5f1_0301, runs: 600, show: (t) => showInput(t.text) },
      (rng) => randomRecordsText(rng, 4, 6, 4),
      ({ text, records }) => {
        checkEveryPrefix(text, records);
      },
    );
  });

  test('realistic 26-column pgaudit csvlog records', () => {
    forAll<TextRecords>(
      { name: 'prefixes of csvlog audit records', seed: 0xc5f1_0302, runs: 25, show: (t) => showInput(t.text) },
      (rng) => genAuditFile(rng, 3).text,
      ({ text, records }) => {
        checkEveryPrefix(text, records);
      },
    );
  });

  test('hand-picked cut points: inside "" pairs, between CR and LF, after a closing quote, after the last digit', () => {
    const text = '1,"a""b",2\r\n"x\r\ny","",\n,,"q"\n7\n';
    const records = [
      { fields: ['1', 'a"b', '2'], start: 0, next: 12 },
      { fields: ['x\r\ny', '', null], start: 12, next: 23 },
      { fields: [null, null, 'q'], start: 23, next: 29 },
      { fields: ['7'], start: 29, next: 31 },
    ];
    expectRecords(text, records);
    checkEveryPrefix(text, records);
  });
});

// ---------------------------------------------------------------------------------------------------------
// Garbage: never throws, never hangs, never a wrong record (runs in a worker under a watchdog)

describe('garbage input', () => {
  test('random and mutated text: no throw, no hang, null / error / record ending at a newline; resync agrees', async () => {
    const progress = new SharedArrayBuffer(4);
    const counter = new Int32Array(progress);
    const tsx = import.meta.resolve('tsx/esm/api');
    const url = new URL('./csv-garbage.worker.ts', import.meta.url).href;
    const code = `import(${JSON.stringify(tsx)}).then((api) => { api.register(); return import(${JSON.stringify(url)}); });`;
    const worker = new Worker(code, { eval: true, workerData: { progress } });
    const limitMs = 15_000;
    let timer: NodeJS.Timeout | undefined;
    try {
      const result = await new Promise<{ ok: boolean; runs?: number; message?: string }>((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
        worker.once('exit', (code) => reject(new Error(`garbage worker exited with code ${code} before reporting`)));
        timer = setTimeout(() => {
          const started = Atomics.load(counter, 0);
          const base = process.env['PROP_SEED'] ? Number(process.env['PROP_SEED']) : GARBAGE_PROPERTY.seed;
          const seed = process.env['PROP_CASE'] ? Number(process.env['PROP_CASE']) : caseSeed(base, started - 1);
          reject(
            new Error(
              `garbage check did not finish in ${limitMs} ms (probable infinite loop) on run ${started - 1}, ` +
                `case seed ${seed} (replay: PROP_CASE=${seed})\ninput: ${showInput(garbageText(new Rng(seed)))}`,
            ),
          );
        }, limitMs);
      });
      assert.ok(result.ok, result.message);
      assert.ok((result.runs ?? 0) > 0);
    } finally {
      clearTimeout(timer);
      await worker.terminate();
    }
  });
});

// ---------------------------------------------------------------------------------------------------------
// Resynchronisation

describe('findNextRecordStart', () => {
  const good1 = '2024-05-01 12:00:00.123 UTC,"u","d",1,"[local]",a.1,1,"SELECT",2024-05-01 11:00:00 UTC,3/1,0,LOG,00000,"m1",,,,,,,,,"app"\n';
  const good2 = '2024-05-01 12:00:01.000 CEST,"u","d",1,"[local]",a.1,2,"SELECT",2024-05-01 11:00:00 UTC,3/2,0,LOG,00000,"m2",,,,,,,,,"app"\n';

  test('after a record with an unterminated quote, finds the next line that starts with a csvlog timestamp', () => {
    const broken = '2024-05-01 11:59:59.999 UTC,"u","d",1,"[local]",a.1,0,"SELECT",,,0,LOG,00000,"AUDIT: SESSION,1,1,READ,SELECT,,,""oops\n';
    const text = broken + 'not a record start, just a line\n' + '2024-05-01 12:00:00 UTC,no millis\n' + good1 + good2;
    const at = findNextRecordStart(text, 1);
    assert.equal(at, text.indexOf(good1));
    assert.deepEqual(
      scanAll(text.slice(at)).map((r) => r.fields[13]),
      ['m1', 'm2'],
    );
    assert.equal(findNextRecordStart(text, at + 1), text.indexOf(good2));
    assert.equal(findNextRecordStart(text, text.indexOf(good2) + 1), -1);
  });

  test('only line starts count; pos on the newline itself finds the line after it; index 0 is never returned', () => {
    const text = good1 + good2;
    assert.equal(findNextRecordStart(text, 0), good1.length);
    assert.equal(findNextRecordStart(text, good1.length - 1), good1.length);
    assert.equal(findNextRecordStart(text, good1.length), -1);
    assert.equal(findNextRecordStart('x 2024-05-01 12:00:00.123 UTC,\n', 0), -1);
  });

  test('a timestamp line with no comma after the zone, or a line start inside the text only partly present, is not a start', () => {
    assert.equal(findNextRecordStart('x\n2024-05-01 12:00:00.123 UTC\n', 0), -1);
    assert.equal(findNextRecordStart('x\n2024-05-01 12:00:00.12', 0), -1);
    assert.equal(findNextRecordStart('x\n2024-05-01 12:00:00.123 +05:30,', 0), 2);
  });

  test('agrees with the reference on random texts and positions', () => {
    forAll(
      { name: 'findNextRecordStart vs reference', seed: 0xc5f1_0501, runs: 2000 },
      (rng) => ({ text: garbageText(rng), at: rng.float() }),
      ({ text, at }) => {
        const pos = Math.floor(at * (text.length + 1));
        assert.equal(findNextRecordStart(text, pos), refNextRecordStart(text, pos));
      },
    );
  });
});
