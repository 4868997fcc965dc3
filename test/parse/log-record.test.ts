/**
 * csvlogRecord and jsonlogRecord (src/parse/log-record.ts): column/key mapping for PostgreSQL 12 (23 csvlog
 * columns), 13 (24) and 14+ (26) and jsonlog (15+), audit vs other vs bad. Base lines are copied from the
 * real PostgreSQL 15 + pgaudit 1.7 logs in examples/pgaudit-logs.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { csvlogRecord, jsonlogRecord, type PgAuditRecord, type RecordOutcome } from '../../src/parse/log-record.js';
import { scanCsvRecord } from '../../src/parse/record-scanner.js';
import { TimestampError, TimestampResolver } from '../../src/parse/timestamp.js';
import { forAll } from '../helpers/prng.js';
import { randomFields, randomString, refEncodeRecord } from '../helpers/csv-reference.js';

const times = () => new TimestampResolver();

const AUDIT_MESSAGE = 'AUDIT: SESSION,11,1,READ,SELECT,TABLE,public.accounts,SELECT count(*) FROM accounts,<none>,1';

/** examples/pgaudit-logs/postgresql-2026-11-22_031157.csv, wl-params line 13 (26 columns), as decoded fields. */
function base26(): (string | null)[] {
  return [
    '2026-11-22 03:11:57.759 UTC',
    'postgres',
    'postgres',
    '12055',
    '127.0.0.1:42942',
    '6b025d7c.2f17',
    '13',
    'SELECT',
    '2026-11-22 03:11:56 UTC',
    '3/45',
    '0',
    'LOG',
    '00000',
    AUDIT_MESSAGE,
    null,
    null,
    null,
    null,
    null,
    null,
    null,
    null, // detail, hint, internal_query, internal_query_pos, context, query, query_pos, location
    'wl-params',
    'client backend',
    null,
    '0',
  ];
}

function fieldsFor(columns: 23 | 24 | 26, overrides: Record<number, string | null> = {}): (string | null)[] {
  const f = base26().slice(0, columns);
  for (const [i, v] of Object.entries(overrides)) f[Number(i)] = v;
  return f;
}

const BASE_RECORD: PgAuditRecord = {
  log_time_ms: Date.UTC(2026, 10, 22, 3, 11, 57, 759),
  user_name: 'postgres',
  database_name: 'postgres',
  process_id: 12055,
  client_addr: '127.0.0.1',
  client_port: 42942,
  session_id: '6b025d7c.2f17',
  session_line_num: 13,
  command_tag: 'SELECT',
  session_start_ms: Date.UTC(2026, 10, 22, 3, 11, 56),
  virtual_transaction_id: '3/45',
  transaction_id: 0,
  error_severity: 'LOG',
  application_name: 'wl-params',
  backend_type: 'client backend',
  leader_pid: null,
  query_id: '0',
  message: AUDIT_MESSAGE,
  audit_type: 'SESSION',
  statement_id: 11,
  substatement_id: 1,
  class: 'READ',
  command: 'SELECT',
  object_type: 'TABLE',
  object_name: 'public.accounts',
  statement: 'SELECT count(*) FROM accounts',
  parameter: '<none>',
  rows: 1,
};

function auditOf(outcome: RecordOutcome): PgAuditRecord {
  if (outcome.kind !== 'audit') assert.fail(`expected an audit record, got ${JSON.stringify(outcome)}`);
  return outcome.record;
}

function csv(columns: 23 | 24 | 26, overrides: Record<number, string | null> = {}, expected: number = columns): RecordOutcome {
  return csvlogRecord(fieldsFor(columns, overrides), null, expected, times());
}

// ---------------------------------------------------------------------------------------------------------

describe('csvlogRecord: column mapping', () => {
  test('26 columns (PG14+): every column', () => {
    assert.deepEqual(csv(26), { kind: 'audit', record: BASE_RECORD });
  });

  test('24 columns (PG13): backend_type, no leader_pid / query_id', () => {
    assert.deepEqual(csv(24), { kind: 'audit', record: { ...BASE_RECORD, leader_pid: null, query_id: null } });
  });

  test('23 columns (PG12): no backend_type either', () => {
    assert.deepEqual(csv(23), { kind: 'audit', record: { ...BASE_RECORD, backend_type: null, leader_pid: null, query_id: null } });
  });

  test('a real csvlog line, scanned and mapped', () => {
    // examples/pgaudit-logs/postgresql-2026-11-22_031157.csv
    const line =
      '2026-11-22 03:11:57.759 UTC,"postgres","postgres",12055,"127.0.0.1:42942",6b025d7c.2f17,13,"SELECT",2026-11-22 03:11:56 UTC,3/45,0,LOG,00000,"AUDIT: SESSION,11,1,READ,SELECT,TABLE,public.accounts,SELECT count(*) FROM accounts,<none>,1",,,,,,,,,"wl-params","client backend",,0\n';
    const rec = scanCsvRecord(line, 0);
    assert.ok(rec);
    assert.deepEqual(csvlogRecord(rec.fields, rec.error, 26, times()), { kind: 'audit', record: BASE_RECORD });
  });

  test('connection_from: host:port, [local], IPv6 ::1:5432, hostname, NULL', () => {
    const cases: [string | null, string | null, number | null][] = [
      ['127.0.0.1:42942', '127.0.0.1', 42942],
      ['[local]', '[local]', null],
      ['::1:5432', '::1', 5432],
      ['fe80::1ff:fe23:4567:890a:50000', 'fe80::1ff:fe23:4567:890a', 50000],
      ['db-client.example.com:6000', 'db-client.example.com', 6000],
      [null, null, null],
    ];
    for (const [from, addr, port] of cases) {
      const r = auditOf(csv(26, { 4: from }));
      assert.deepEqual([r.client_addr, r.client_port], [addr, port], String(from));
    }
  });

  test('user, database, pid, session id, line number, command tag, vxid, txid, application name', () => {
    const r = auditOf(
      csv(26, {
        1: 'app "owner", x',
        2: 'städte 東京',
        3: '4194304',
        5: '66a1f2b3.4e2',
        6: '2147483647',
        7: 'CREATE FUNCTION',
        9: '12/345678',
        10: '4294967295',
        22: 'psql, "quoted"\nline',
      }),
    );
    assert.equal(r.user_name, 'app "owner", x');
    assert.equal(r.database_name, 'städte 東京');
    assert.equal(r.process_id, 4194304);
    assert.equal(r.session_id, '66a1f2b3.4e2');
    assert.equal(r.session_line_num, 2147483647);
    assert.equal(r.command_tag, 'CREATE FUNCTION');
    assert.equal(r.virtual_transaction_id, '12/345678');
    assert.equal(r.transaction_id, 4294967295);
    assert.equal(r.application_name, 'psql, "quoted"\nline');
  });

  test('NULL columns stay NULL (user, database, command tag, vxid, txid, session start, application name)', () => {
    const r = auditOf(csv(26, { 1: null, 2: null, 7: null, 8: null, 9: null, 10: null, 22: null, 23: null }));
    assert.deepEqual(
      [r.user_name, r.database_name, r.command_tag, r.session_start_ms, r.virtual_transaction_id, r.transaction_id, r.application_name, r.backend_type],
      [null, null, null, null, null, null, null, null],
    );
  });

  test('backend_type, leader_pid (parallel worker) and query_id', () => {
    const r = auditOf(csv(26, { 23: 'parallel worker', 24: '12055', 25: '4811234567890123456' }));
    assert.equal(r.backend_type, 'parallel worker');
    assert.equal(r.leader_pid, 12055);
    assert.equal(r.query_id, '4811234567890123456');
  });

  test('query_id is a full signed int64, kept exact as a string', () => {
    for (const q of ['-7123456789012345678', '-9223372036854775808', '9223372036854775807', '9007199254740993', '0', '-1']) {
      assert.equal(auditOf(csv(26, { 25: q })).query_id, q);
    }
  });

  test('severity is passed through', () => {
    assert.equal(auditOf(csv(26, { 11: 'LOG' })).error_severity, 'LOG');
  });
});

describe('csvlogRecord: audit or not', () => {
  test('non-AUDIT messages that correlation does not use → other', () => {
    for (const [severity, message] of [
      ['LOG', 'checkpoint starting: time'],
      ['LOG', 'statement: SELECT 1'],
      ['WARNING', 'there is no transaction in progress'],
      ['NOTICE', 'relation "t" already exists, skipping'],
      ['STATEMENT', 'SELECT 1'],
      ['LOG', null],
      ['LOG', ''],
      ['LOG', 'connection received: host=127.0.0.1 port=42942'],
    ] as const) {
      assert.deepEqual(csv(26, { 11: severity, 12: severity === 'LOG' ? '00000' : '42P01', 13: message }), { kind: 'other' }, `${severity}: ${message}`);
    }
  });

  test('connection, disconnection, authentication failure and error records → session records', () => {
    const cases = [
      ['LOG', '00000', 'connection authorized: user=postgres database=postgres application_name=psql', 'connect'],
      ['LOG', '00000', 'replication connection authorized: user=repl application_name=walreceiver', 'connect'],
      ['LOG', '00000', 'disconnection: session time: 1:02:03.456 user=postgres database=postgres host=127.0.0.1 port=42942', 'disconnect'],
      ['FATAL', '28P01', 'password authentication failed for user "x"', 'logon_failure'],
      ['FATAL', '28000', 'no pg_hba.conf entry for host "10.0.0.9", user "x", database "y", no encryption', 'logon_failure'],
      ['ERROR', '42P01', 'relation "nope" does not exist', 'error'],
      ['FATAL', '57P01', 'terminating connection due to administrator command', 'error'],
    ] as const;
    for (const [severity, sqlstate, message, kind] of cases) {
      const out = csv(26, { 11: severity, 12: sqlstate, 13: message, 14: 'a detail', 19: 'SELECT * FROM nope', 22: '' });
      assert.equal(out.kind, 'session', message);
      if (out.kind !== 'session') continue;
      assert.equal(out.record.kind, kind, message);
      assert.equal(out.record.sqlstate, sqlstate);
      assert.equal(out.record.message, message);
      assert.equal(out.record.query, kind === 'error' ? 'SELECT * FROM nope' : null, 'only errors keep the statement, to match it');
    }
    const connect = csv(26, { 11: 'LOG', 12: '00000', 13: cases[0][2], 22: '' });
    assert.equal(connect.kind === 'session' && connect.record.application_name, 'psql');
    const ssl = csv(26, {
      11: 'LOG',
      12: '00000',
      13: 'connection authorized: user=a database=b application_name=my app SSL enabled (protocol=TLSv1.3, cipher=TLS_AES_256_GCM_SHA384, bits=256)',
      22: '',
    });
    assert.equal(ssl.kind === 'session' && ssl.record.application_name, 'my app');
    const disconnect = csv(26, { 11: 'LOG', 12: '00000', 13: cases[2][2] });
    assert.equal(disconnect.kind === 'session' && disconnect.record.duration_ms, 3723456);
  });

  test("'AUDIT: ' counts only at the start of the message", () => {
    for (const message of [
      'statement: SELECT 1 -- AUDIT: SESSION,1,1,READ,SELECT,,,SELECT 1,<none>',
      ' AUDIT: SESSION,1,1,READ,SELECT,,,SELECT 1,<none>',
      'AUDIT:SESSION,1,1,READ,SELECT,,,SELECT 1,<none>',
      'audit: SESSION,1,1,READ,SELECT,,,SELECT 1,<none>',
      'AUDIT SESSION,1,1,READ,SELECT,,,SELECT 1,<none>',
      'duration: 0.1 ms  AUDIT: SESSION,1,1,READ,SELECT,,,SELECT 1,<none>',
    ]) {
      assert.deepEqual(csv(26, { 13: message }), { kind: 'other' }, message);
    }
  });

  test('an AUDIT message that pgaudit could not have written → bad with the reason', () => {
    const out = csv(26, { 13: 'AUDIT: SESSION,x,1,READ,SELECT,,,SELECT 1,<none>' });
    assert.equal(out.kind, 'bad');
    assert.match(out.kind === 'bad' ? out.reason : '', /not an integer/);
  });
});

describe('csvlogRecord: bad records', () => {
  test('wrong column count → bad', () => {
    for (const n of [1, 13, 22, 25, 27]) {
      const f = base26().slice(0, Math.min(n, 26));
      while (f.length < n) f.push(null);
      const out = csvlogRecord(f, null, 26, times());
      assert.equal(out.kind, 'bad', `${n} columns`);
      assert.match(out.kind === 'bad' ? out.reason : '', new RegExp(`${n} columns, expected 26`));
    }
    // also for a non-audit message
    const other = base26().slice(0, 25);
    other[13] = 'connection authorized';
    assert.equal(csvlogRecord(other, null, 26, times()).kind, 'bad');
  });

  test('a record whose count differs from the count detected for the file → bad', () => {
    assert.equal(csv(24, {}, 26).kind, 'bad');
    assert.equal(csv(26, {}, 23).kind, 'bad');
  });

  test('a CSV error → bad', () => {
    const out = csvlogRecord(base26(), 'text_after_closing_quote', 26, times());
    assert.deepEqual(out, { kind: 'bad', reason: 'csvlog record is not valid CSV (text_after_closing_quote)' });
  });

  test('missing session_id or line number, malformed log_time → bad', () => {
    assert.equal(csv(26, { 5: null }).kind, 'bad');
    assert.equal(csv(26, { 6: null }).kind, 'bad');
    assert.equal(csv(26, { 6: 'x' }).kind, 'bad');
    assert.equal(csv(26, { 0: null }).kind, 'bad');
    assert.equal(csv(26, { 0: '2026-11-22T03:11:57Z' }).kind, 'bad');
    assert.equal(csv(26, { 8: 'yesterday' }).kind, 'bad');
  });

  test('an ambiguous zone is a configuration error: it throws instead of quarantining every record', () => {
    assert.throws(
      () => csv(26, { 0: '2026-11-22 08:41:57.759 IST' }),
      (e: unknown) => e instanceof TimestampError && e.code === 'unknown_zone',
    );
    // with log_timezone the same record maps
    const r = auditOf(
      csvlogRecord(fieldsFor(26, { 0: '2026-11-22 08:41:57.759 IST', 8: '2026-11-22 08:41:56 IST' }), null, 26, new TimestampResolver('Asia/Kolkata')),
    );
    assert.equal(r.log_time_ms, BASE_RECORD.log_time_ms);
    assert.equal(r.session_start_ms, BASE_RECORD.session_start_ms);
  });
});

// ---------------------------------------------------------------------------------------------------------

/** examples/pgaudit-logs/postgresql-2026-11-22_031157.json line 3. */
const JSON_LINE =
  '{"timestamp":"2026-11-22 03:11:57.759 UTC","user":"postgres","dbname":"postgres","pid":12055,"remote_host":"127.0.0.1","remote_port":42942,"session_id":"6b025d7c.2f17","line_num":13,"ps":"SELECT","session_start":"2026-11-22 03:11:56 UTC","vxid":"3/45","txid":0,"error_severity":"LOG","message":"AUDIT: SESSION,11,1,READ,SELECT,TABLE,public.accounts,SELECT count(*) FROM accounts,<none>,1","application_name":"wl-params","backend_type":"client backend","query_id":0}';

function jsonLine(obj: Record<string, unknown>, raw: Record<string, string> = {}): string {
  let s = JSON.stringify(obj);
  // keys whose value must be written as a bare int64 that JSON.stringify cannot produce
  for (const [k, v] of Object.entries(raw)) s = s.slice(0, -1) + `,"${k}":${v}}`;
  return s;
}

const MINIMAL = { timestamp: '2026-11-22 03:11:57.759 UTC', session_id: '6b025d7c.2f17', line_num: 13, error_severity: 'LOG', message: AUDIT_MESSAGE };

describe('jsonlogRecord: key mapping', () => {
  test('a real jsonlog line maps to the same record as the csvlog line', () => {
    assert.deepEqual(jsonlogRecord(JSON_LINE, times()), { kind: 'audit', record: BASE_RECORD });
  });

  test('every key of REFERENCE §2', () => {
    const line = jsonLine(
      {
        timestamp: '2024-07-15 12:00:00.250 CEST',
        user: 'alice',
        dbname: 'shop',
        pid: 4321,
        remote_host: '::1',
        remote_port: 5433,
        session_id: '66a1f2b3.10e1',
        line_num: 7,
        ps: 'INSERT',
        session_start: '2024-07-15 11:59:00 CEST',
        vxid: '4/17',
        txid: 987654,
        error_severity: 'LOG',
        state_code: '00000',
        message: 'AUDIT: OBJECT,3,2,WRITE,INSERT,TABLE,public.orders,"INSERT INTO orders VALUES ($1, $2)","5,""x, y""",1',
        application_name: 'shop-api',
        backend_type: 'parallel worker',
        leader_pid: 4300,
      },
      { query_id: '-7123456789012345678' },
    );
    assert.deepEqual(jsonlogRecord(line, times()), {
      kind: 'audit',
      record: {
        log_time_ms: Date.UTC(2024, 6, 15, 10, 0, 0, 250),
        user_name: 'alice',
        database_name: 'shop',
        process_id: 4321,
        client_addr: '::1',
        client_port: 5433,
        session_id: '66a1f2b3.10e1',
        session_line_num: 7,
        command_tag: 'INSERT',
        session_start_ms: Date.UTC(2024, 6, 15, 9, 59),
        virtual_transaction_id: '4/17',
        transaction_id: 987654,
        error_severity: 'LOG',
        application_name: 'shop-api',
        backend_type: 'parallel worker',
        leader_pid: 4300,
        query_id: '-7123456789012345678',
        message: 'AUDIT: OBJECT,3,2,WRITE,INSERT,TABLE,public.orders,"INSERT INTO orders VALUES ($1, $2)","5,""x, y""",1',
        audit_type: 'OBJECT',
        statement_id: 3,
        substatement_id: 2,
        class: 'WRITE',
        command: 'INSERT',
        object_type: 'TABLE',
        object_name: 'public.orders',
        statement: 'INSERT INTO orders VALUES ($1, $2)',
        parameter: '5,"x, y"',
        rows: 1,
      },
    });
  });

  test('[local] connection: remote_host without remote_port', () => {
    const r = auditOf(jsonlogRecord(jsonLine({ ...MINIMAL, remote_host: '[local]' }), times()));
    assert.equal(r.client_addr, '[local]');
    assert.equal(r.client_port, null);
  });

  test('omitted keys → null', () => {
    const r = auditOf(jsonlogRecord(jsonLine(MINIMAL), times()));
    assert.deepEqual(
      {
        user_name: r.user_name,
        database_name: r.database_name,
        process_id: r.process_id,
        client_addr: r.client_addr,
        client_port: r.client_port,
        command_tag: r.command_tag,
        session_start_ms: r.session_start_ms,
        virtual_transaction_id: r.virtual_transaction_id,
        application_name: r.application_name,
        backend_type: r.backend_type,
        leader_pid: r.leader_pid,
        query_id: r.query_id,
      },
      {
        user_name: null,
        database_name: null,
        process_id: null,
        client_addr: null,
        client_port: null,
        command_tag: null,
        session_start_ms: null,
        virtual_transaction_id: null,
        application_name: null,
        backend_type: null,
        leader_pid: null,
        query_id: null,
      },
    );
    assert.equal(r.session_id, MINIMAL.session_id);
    assert.equal(r.session_line_num, 13);
    assert.equal(r.log_time_ms, BASE_RECORD.log_time_ms);
  });

  test('omitted txid → null (as an empty csvlog transaction_id is)', () => {
    assert.equal(auditOf(jsonlogRecord(jsonLine(MINIMAL), times())).transaction_id, null);
    assert.equal(auditOf(csv(26, { 10: null })).transaction_id, null);
  });

  test('query_id beyond 2^53 is kept exact', () => {
    for (const q of ['9007199254740993', '9223372036854775807', '-9223372036854775808', '-7123456789012345678', '18014398509481985']) {
      assert.equal(auditOf(jsonlogRecord(jsonLine(MINIMAL, { query_id: q }), times())).query_id, q, q);
    }
    for (const q of ['0', '-1', '9007199254740991', '-9007199254740991', '123456789']) {
      assert.equal(auditOf(jsonlogRecord(jsonLine(MINIMAL, { query_id: q }), times())).query_id, q, q);
    }
  });

  test('a statement that mentions "query_id": does not confuse the exact query_id', () => {
    const msg = 'AUDIT: SESSION,1,1,READ,SELECT,,,"SELECT \'{""query_id"":1}\'::json",<none>,1';
    const line = jsonLine({ ...MINIMAL, message: msg }, { query_id: '9007199254740993' });
    const r = auditOf(jsonlogRecord(line, times()));
    assert.equal(r.query_id, '9007199254740993');
    assert.equal(r.statement, 'SELECT \'{"query_id":1}\'::json');
  });
});

describe('jsonlogRecord: other and bad', () => {
  test('non-JSON lines → bad', () => {
    for (const line of [
      'not json at all',
      '2026-11-22 03:11:57.759 UTC,"postgres",...',
      '{"timestamp":"2026-11-22 03:11:57.759 UTC","message":"AUDIT: SESSION,1,1,READ,SELECT,,,SELECT 1,<none>"', // cut off
      '{"message":"AUDIT: SESSION,1,1,READ,SELECT,,,SELECT 1,<none>",}',
      '{"message":"AUDIT: SESSION,1,1,READ,SELECT,,,SELECT 1,<none>"} trailing',
      '[Your log message was truncated]',
    ]) {
      assert.equal(jsonlogRecord(line, times()).kind, 'bad', line);
    }
  });

  test('JSON lines without an AUDIT message → other, or a session record', () => {
    for (const obj of [
      { ...MINIMAL, message: 'checkpoint starting: time' },
      { ...MINIMAL, message: 'statement: SELECT 1 -- AUDIT: SESSION,1,1,READ,SELECT,,,SELECT 1,<none>' },
      { ...MINIMAL, message: ' AUDIT: SESSION,1,1,READ,SELECT,,,SELECT 1,<none>' },
      { timestamp: MINIMAL.timestamp, error_severity: 'LOG' },
      { ...MINIMAL, message: 42 },
    ]) {
      assert.deepEqual(jsonlogRecord(JSON.stringify(obj), times()), { kind: 'other' }, JSON.stringify(obj));
    }
    const connect = jsonlogRecord(JSON.stringify({ ...MINIMAL, message: 'connection authorized: user=postgres database=postgres' }), times());
    assert.equal(connect.kind === 'session' && connect.record.kind, 'connect');
    // An error whose statement looks like a pgaudit entry is an error, not an audit record.
    const error = jsonlogRecord(
      JSON.stringify({
        ...MINIMAL,
        error_severity: 'ERROR',
        state_code: '42P01',
        message: 'relation "nope" does not exist',
        statement: 'AUDIT: SESSION,1,1,READ,SELECT,,,SELECT 1,<none>',
      }),
      times(),
    );
    assert.equal(error.kind === 'session' && error.record.kind, 'error');
    assert.equal(error.kind === 'session' && error.record.query, 'AUDIT: SESSION,1,1,READ,SELECT,,,SELECT 1,<none>');
  });

  test('an AUDIT message that is not pgaudit CSV → bad; no session id → bad', () => {
    assert.equal(jsonlogRecord(jsonLine({ ...MINIMAL, message: 'AUDIT: SESSION,1,1' }), times()).kind, 'bad');
    const { session_id: _s, ...noSession } = MINIMAL;
    assert.equal(jsonlogRecord(jsonLine(noSession), times()).kind, 'bad');
  });
});

describe('jsonlogRecord: property', () => {
  test('random pgaudit messages survive JSON encoding (3 decode levels)', () => {
    forAll(
      { name: 'jsonlog round trip', seed: 0x150_0001, runs: 1500 },
      (rng) => {
        const params = randomFields(rng, 1, 4, 4);
        const pg = [
          rng.pick(['SESSION', 'OBJECT']),
          String(rng.int(1, 1e6)),
          String(rng.int(1, 99)),
          rng.pick(['READ', 'WRITE', 'DDL']),
          randomString(rng, 4),
          rng.bool(0.3) ? null : 'TABLE',
          rng.bool(0.3) ? null : randomString(rng, 5),
          randomString(rng, 8),
          refEncodeRecord(params),
          String(rng.int(0, 1e6)),
        ];
        return { pg, params, user: randomString(rng, 4), app: randomString(rng, 4) };
      },
      ({ pg, user, app }) => {
        const message = 'AUDIT: ' + refEncodeRecord(pg);
        const r = auditOf(jsonlogRecord(jsonLine({ ...MINIMAL, user, message, application_name: app }), times()));
        assert.equal(r.message, message);
        assert.equal(r.user_name, user);
        assert.equal(r.application_name, app === '' ? null : app, 'an empty application_name is NULL (jsonlog cannot tell it from a missing one)');
        assert.deepEqual(
          [
            r.audit_type,
            String(r.statement_id),
            String(r.substatement_id),
            r.class,
            r.command,
            r.object_type,
            r.object_name,
            r.statement,
            r.parameter,
            String(r.rows),
          ],
          pg,
        );
      },
    );
  });
});
