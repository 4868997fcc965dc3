/**
 * parsePgAuditMessage and decodeParameterList (src/parse/pgaudit.ts): the message after it has been decoded
 * from csvlog/jsonlog. Inputs follow pgaudit's append_valid_csv (quote iff , " CR LF; NULL = empty); several
 * are copied from the real PostgreSQL 15 + pgaudit 1.7 logs in examples/pgaudit-logs.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { decodeParameterList, parsePgAuditMessage, type PgAuditFields } from '../../src/parse/pgaudit.js';

function parseOk(message: string): PgAuditFields {
  const r = parsePgAuditMessage(message);
  if (!r.ok) assert.fail(`expected ${JSON.stringify(message)} to parse, got: ${r.reason}`);
  return r.fields;
}

function reasonOf(message: string): string {
  const r = parsePgAuditMessage(message);
  if (r.ok) assert.fail(`expected ${JSON.stringify(message)} to be rejected, got ${JSON.stringify(r.fields)}`);
  assert.equal(typeof r.reason, 'string');
  assert.ok(r.reason.length > 0);
  return r.reason;
}

describe('field counts', () => {
  test('9 fields (pgaudit.log_rows off, or pgaudit < 1.6): rows is null', () => {
    assert.deepEqual(parseOk('AUDIT: SESSION,1,1,READ,SELECT,TABLE,public.accounts,SELECT count(*) FROM accounts,<none>'), {
      audit_type: 'SESSION',
      statement_id: 1,
      substatement_id: 1,
      class: 'READ',
      command: 'SELECT',
      object_type: 'TABLE',
      object_name: 'public.accounts',
      statement: 'SELECT count(*) FROM accounts',
      parameter: '<none>',
      rows: null,
    });
  });

  test('10 fields (pgaudit.log_rows on): rows is a number; 0 stays 0', () => {
    // examples/pgaudit-logs, wl-params
    assert.deepEqual(parseOk('AUDIT: SESSION,11,1,READ,SELECT,TABLE,public.accounts,SELECT count(*) FROM accounts,<none>,1'), {
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
    });
    assert.equal(parseOk("AUDIT: SESSION,1,1,MISC,SET,,,SET application_name = 'wl-plpgsql',<none>,0").rows, 0);
    assert.equal(parseOk('AUDIT: SESSION,1,1,WRITE,INSERT,TABLE,public.t,INSERT INTO t SELECT g FROM g,<none>,1234567').rows, 1234567);
  });

  test('10th field empty → rows null', () => {
    assert.equal(parseOk('AUDIT: SESSION,1,1,READ,SELECT,,,SELECT 1,<none>,').rows, null);
  });

  test('large statement ids', () => {
    const f = parseOk('AUDIT: SESSION,2147483648,99999,READ,SELECT,,,SELECT 1,<none>');
    assert.equal(f.statement_id, 2147483648);
    assert.equal(f.substatement_id, 99999);
  });
});

describe('markers stay as written', () => {
  test('<none>: parameter logging on, no parameters', () => {
    const f = parseOk('AUDIT: SESSION,1,1,READ,SELECT,,,SELECT 1,<none>,1');
    assert.equal(f.parameter, '<none>');
    assert.equal(decodeParameterList(f.parameter), null);
  });

  test('<not logged>: in PARAMETER (log_parameter off) and in STATEMENT+PARAMETER (log_statement off)', () => {
    const p = parseOk('AUDIT: SESSION,1,1,READ,SELECT,TABLE,public.a,SELECT * FROM a,<not logged>');
    assert.equal(p.statement, 'SELECT * FROM a');
    assert.equal(p.parameter, '<not logged>');
    const s = parseOk('AUDIT: SESSION,1,1,READ,SELECT,TABLE,public.a,<not logged>,<not logged>,3');
    assert.equal(s.statement, '<not logged>');
    assert.equal(s.parameter, '<not logged>');
    assert.equal(s.rows, 3);
    assert.equal(decodeParameterList(s.parameter), null);
  });

  test('<previously logged>,<previously logged> (log_statement_once)', () => {
    const f = parseOk('AUDIT: SESSION,4,2,WRITE,INSERT,TABLE,public.b,<previously logged>,<previously logged>,1');
    assert.equal(f.statement, '<previously logged>');
    assert.equal(f.parameter, '<previously logged>');
    assert.equal(decodeParameterList(f.parameter), null);
  });

  test('<long param suppressed> inside a parameter list is one parameter, kept as written', () => {
    // Parameters 1 and 3 short, 2 larger than log_parameter_max_size: list `1,<long param suppressed>,x`,
    // quoted again as one PARAMETER field because it holds commas.
    const f = parseOk('AUDIT: SESSION,5,1,WRITE,INSERT,TABLE,public.docs,"INSERT INTO docs VALUES ($1, $2, $3)","1,<long param suppressed>,x",1');
    assert.equal(f.parameter, '1,<long param suppressed>,x');
    assert.deepEqual(decodeParameterList(f.parameter), ['1', '<long param suppressed>', 'x']);
    // A single suppressed parameter is not quoted at all; it is still a list of one, not a marker.
    const one = parseOk('AUDIT: SESSION,6,1,WRITE,INSERT,TABLE,public.docs,INSERT INTO docs VALUES ($1),<long param suppressed>,1');
    assert.deepEqual(decodeParameterList(one.parameter), ['<long param suppressed>']);
  });
});

describe('empty fields are NULL', () => {
  test('command, object type, object name, statement, parameter and rows', () => {
    assert.deepEqual(parseOk('AUDIT: SESSION,3,1,MISC,,,,,,'), {
      audit_type: 'SESSION',
      statement_id: 3,
      substatement_id: 1,
      class: 'MISC',
      command: null,
      object_type: null,
      object_name: null,
      statement: null,
      parameter: null,
      rows: null,
    });
  });

  test('a quoted empty field is the empty string, not NULL', () => {
    const f = parseOk('AUDIT: SESSION,3,1,MISC,"",,,"",<none>');
    assert.equal(f.command, '');
    assert.equal(f.statement, '');
    assert.equal(f.object_type, null);
  });
});

describe('quotes, commas and newlines', () => {
  test('object name and statement with doubled quotes, commas, LF and CRLF (real pgaudit 1.7 line)', () => {
    // examples/pgaudit-logs/postgresql-2026-11-22_031157.json line 2, the message after JSON decoding
    const message =
      'AUDIT: SESSION,10,1,WRITE,UPDATE,TABLE,"public.""we""""ird, name\nx""","UPDATE ""we""""ird, name\nx"" SET ""col, """"q"""""" = $1 WHERE id = $2","""new\r\nvalue, """"x"""""",1",1';
    const f = parseOk(message);
    assert.equal(f.object_name, 'public."we""ird, name\nx"');
    assert.equal(f.statement, 'UPDATE "we""ird, name\nx" SET "col, ""q""" = $1 WHERE id = $2');
    assert.equal(f.parameter, '"new\r\nvalue, ""x""",1');
    assert.deepEqual(decodeParameterList(f.parameter), ['new\r\nvalue, "x"', '1']);
    assert.equal(f.rows, 1);
  });

  test('multi-line DO block with unicode identifiers', () => {
    const statement = 'DO $$\nBEGIN\n  INSERT INTO "städte 東京" (name, note) VALUES (\'Bern\', \'CH, "Bärn"\');\nEND\n$$';
    const f = parseOk(`AUDIT: SESSION,4,1,FUNCTION,DO,,,"${statement.replaceAll('"', '""')}",<none>,0`);
    assert.equal(f.statement, statement);
    assert.equal(f.object_name, null);
  });

  test('a statement that looks like more fields stays one field', () => {
    const f = parseOk('AUDIT: SESSION,1,1,READ,SELECT,,,"SELECT 1,2,3, \'a,b\'",<none>');
    assert.equal(f.statement, "SELECT 1,2,3, 'a,b'");
  });

  test('object name with only a comma needs quotes; one with a quote too', () => {
    const f = parseOk('AUDIT: SESSION,1,1,DDL,CREATE TABLE,TABLE,"public.""a,b""","CREATE TABLE ""a,b"" ()",<none>');
    assert.equal(f.object_name, 'public."a,b"');
    assert.equal(f.statement, 'CREATE TABLE "a,b" ()');
    assert.equal(parseOk('AUDIT: SESSION,1,1,DDL,CREATE TABLE,TABLE,"public.a,b",CREATE TABLE x (),<none>').object_name, 'public.a,b');
  });
});

describe('OBJECT audit type', () => {
  test('object audit entry (pgaudit.role grants matched)', () => {
    assert.deepEqual(parseOk('AUDIT: OBJECT,2,1,READ,SELECT,TABLE,public.account,"SELECT password FROM account WHERE id = $1",1,1'), {
      audit_type: 'OBJECT',
      statement_id: 2,
      substatement_id: 1,
      class: 'READ',
      command: 'SELECT',
      object_type: 'TABLE',
      object_name: 'public.account',
      statement: 'SELECT password FROM account WHERE id = $1',
      parameter: '1',
      rows: 1,
    });
  });
});

describe('rejections carry a reason', () => {
  test('wrong field count', () => {
    assert.match(reasonOf('AUDIT: SESSION,1,1,READ,SELECT,TABLE,public.a,SELECT 1'), /8 fields, expected 9 or 10/);
    assert.match(reasonOf('AUDIT: SESSION,1,1,READ,SELECT,TABLE,public.a,SELECT 1,<none>,1,extra'), /11 fields/);
    assert.match(reasonOf('AUDIT: '), /1 fields/);
    // An unquoted comma in a statement (not pgaudit output) shifts the count.
    assert.match(reasonOf('AUDIT: SESSION,1,1,READ,SELECT,,,SELECT 1,2,<none>,1'), /11 fields/);
  });

  test('statement and substatement ids must be non-negative integers', () => {
    for (const [sid, ssid] of [
      ['x', '1'],
      ['1', 'y'],
      ['', '1'],
      ['1', ''],
      ['-1', '1'],
      ['1.5', '1'],
      [' 1', '1'],
      ['1e3', '1'],
      ['0x10', '1'],
    ] as const) {
      assert.match(
        reasonOf(`AUDIT: SESSION,${sid},${ssid},READ,SELECT,,,SELECT 1,<none>`),
        /STATEMENT_ID or SUBSTATEMENT_ID is not an integer/,
        `${sid}/${ssid}`,
      );
    }
  });

  test('audit type must be SESSION or OBJECT; class must be present; rows must be an integer', () => {
    assert.match(reasonOf('AUDIT: session,1,1,READ,SELECT,,,SELECT 1,<none>'), /neither SESSION nor OBJECT/);
    assert.match(reasonOf('AUDIT: ,1,1,READ,SELECT,,,SELECT 1,<none>'), /neither SESSION nor OBJECT/);
    assert.match(reasonOf('AUDIT: SESSION,1,1,,SELECT,,,SELECT 1,<none>'), /CLASS is empty/);
    assert.match(reasonOf('AUDIT: SESSION,1,1,READ,SELECT,,,SELECT 1,<none>,many'), /ROWS is not an integer/);
    assert.match(reasonOf('AUDIT: SESSION,1,1,READ,SELECT,,,SELECT 1,<none>,-1'), /ROWS is not an integer/);
  });

  test('the message must start with exactly "AUDIT: "', () => {
    for (const m of [
      'SESSION,1,1,READ,SELECT,,,SELECT 1,<none>',
      'AUDIT:SESSION,1,1,READ,SELECT,,,SELECT 1,<none>',
      'audit: SESSION,1,1,READ,SELECT,,,SELECT 1,<none>',
      ' AUDIT: SESSION,1,1,READ,SELECT,,,SELECT 1,<none>',
      'LOG:  AUDIT: SESSION,1,1,READ,SELECT,,,SELECT 1,<none>',
      '',
    ]) {
      assert.match(reasonOf(m), /does not start with "AUDIT: "/, JSON.stringify(m));
    }
  });

  test('invalid CSV names the CSV error', () => {
    assert.match(reasonOf('AUDIT: SESSION,1,1,READ,SELECT,,,"SELECT 1,<none>'), /not valid CSV \(unterminated_quote\)/);
    assert.match(reasonOf('AUDIT: SESSION,1,1,READ,SELECT,,,"SELECT 1"x,<none>'), /not valid CSV \(text_after_closing_quote\)/);
    assert.match(reasonOf('AUDIT: SESSION,1,1,READ,SELECT,,,SELECT "1",<none>'), /not valid CSV \(quote_in_unquoted_field\)/);
  });
});

describe('decodeParameterList', () => {
  test('cases from real pgaudit output', () => {
    // 4 parameters, the second holds a comma, the fourth is NULL
    assert.deepEqual(decodeParameterList('1,"a,b",2,'), ['1', 'a,b', '2', null]);
    // one parameter holding a comma: only a second decode tells it from two parameters
    assert.deepEqual(decodeParameterList('"a,b"'), ['a,b']);
    // two NULL parameters
    assert.deepEqual(decodeParameterList(','), [null, null]);
    // examples/pgaudit-logs: set_config(..., n::text, ...) with parameters NULL, 3, NULL
    assert.deepEqual(decodeParameterList(',3,'), [null, '3', null]);
    // examples/pgaudit-logs: USING 'Bern', 'Köln'
    assert.deepEqual(decodeParameterList('Bern,Köln'), ['Bern', 'Köln']);
    // examples/pgaudit-logs: 'O''Brien, "Bob"' and NULL
    assert.deepEqual(decodeParameterList('"O\'Brien, ""Bob""",'), ['O\'Brien, "Bob"', null]);
  });

  test('one short parameter is not quoted', () => {
    assert.deepEqual(decodeParameterList('42'), ['42']);
    assert.deepEqual(decodeParameterList('"1,2"'), ['1,2']);
    assert.deepEqual(decodeParameterList('1,2'), ['1', '2']);
  });

  test('markers and NULL are not lists', () => {
    assert.equal(decodeParameterList(null), null);
    assert.equal(decodeParameterList('<none>'), null);
    assert.equal(decodeParameterList('<not logged>'), null);
    assert.equal(decodeParameterList('<previously logged>'), null);
  });

  test('a parameter list that is not valid CSV is not a list', () => {
    assert.equal(decodeParameterList('"unterminated'), null);
    assert.equal(decodeParameterList('a"b'), null);
  });

  test('full path: PARAMETER decoded from the message, then the list decoded', () => {
    // params: 'x,y', NULL, 'say "hi"\n'  → list: "x,y",,"say ""hi""\n"  → field: """x,y"",,""say """"hi""""\n"""
    const f = parseOk('AUDIT: SESSION,7,1,WRITE,INSERT,TABLE,public.t,"INSERT INTO t VALUES ($1, $2, $3)","""x,y"",,""say """"hi""""\n""",1');
    assert.deepEqual(decodeParameterList(f.parameter), ['x,y', null, 'say "hi"\n']);
  });
});
