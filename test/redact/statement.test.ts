import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { tokenize } from '../../src/redact/lexer.js';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SessionTracker, TimestampResolver } from '../../src/parse/index.js';
import { mayHoldSecret, redactAuditRecord, redactRaw, SecretPrefilter } from '../../src/redact/index.js';
import { readLogFile } from '../../src/sources/pg-logs/reader.js';
import { marker, REDACTED, redactParameters, redactStatement } from '../../src/redact/statement.js';

/**
 * Redaction of SQL text reads the statement as PostgreSQL does: quoting in every form, case, comments and
 * multi-statement strings; a secret becomes the marker, the rest of the statement stays byte for byte.
 */
const ROLE = `'${marker('role_password')}'`;
const OPT = `'${marker('option_password')}'`;
const KEY = `'${marker('crypto_key')}'`;
const CONN = marker('conninfo_password');

function redacted(sql: string): string {
  return redactStatement(sql).text;
}

describe('redaction: the lexer', () => {
  test('string constants in every form, comments and dollar quotes are single tokens', () => {
    const ts = tokenize(`SELECT 'it''s', E'a\\'b', $$x;y$$, $tag$ $$ $tag$, U&'d\\0061', "Quoted""Id" -- c; 'no'\n/* a /* nested */ 'no' */ $1`);
    assert.deepEqual(
      ts.map((t) => [t.kind, t.value]),
      [
        ['word', 'select'],
        ['string', "it's"],
        ['punct', ','],
        ['string', "a\\'b"],
        ['punct', ','],
        ['string', 'x;y'],
        ['punct', ','],
        ['string', ' $$ '],
        ['punct', ','],
        ['string', 'd\\0061'],
        ['punct', ','],
        ['ident', 'Quoted"Id'],
        ['param', '1'],
      ],
    );
  });

  test('an unterminated constant or comment runs to the end; the lexer never throws', () => {
    for (const s of ["SELECT 'abc", 'SELECT $x$ abc', 'SELECT /* abc', "E'\\'", '"abc', '$', "''''"]) assert.doesNotThrow(() => tokenize(s));
  });
});

describe('redaction: role passwords', () => {
  test('CREATE/ALTER ROLE/USER/GROUP … [ENCRYPTED] PASSWORD, in any case, with comments and options around', () => {
    assert.equal(redacted("CREATE ROLE alice LOGIN PASSWORD 's3cret'"), `CREATE ROLE alice LOGIN PASSWORD ${ROLE}`);
    assert.equal(redacted("alter user bob with encrypted password 'it''s; a secret'"), `alter user bob with encrypted password ${ROLE}`);
    assert.equal(
      redacted("Create Role x /* who */ PaSsWoRd E'e\\'scaped' VALID UNTIL '2030-01-01'"),
      `Create Role x /* who */ PaSsWoRd E${ROLE} VALID UNTIL '2030-01-01'`,
    );
    assert.equal(redacted('ALTER ROLE x PASSWORD $p$dollar quoted$p$'), `ALTER ROLE x PASSWORD $p$${marker('role_password')}$p$`);
    assert.equal(redacted("CREATE GROUP g PASSWORD 'x'"), `CREATE GROUP g PASSWORD ${ROLE}`);
  });

  test('what is not a password stays: PASSWORD NULL, pgaudit’s own mask, a string that only says password', () => {
    for (const s of [
      'ALTER ROLE x PASSWORD NULL',
      'CREATE ROLE alice LOGIN PASSWORD <REDACTED>',
      "SELECT 'password' AS word",
      "INSERT INTO notes VALUES ('my PASSWORD is not here')",
      "COMMENT ON ROLE x IS 'rotate the password yearly'",
    ])
      assert.deepEqual(redactStatement(s), { text: s, rules: [], secretParams: [] }, s);
  });

  test('a multi-statement string is read statement by statement; a semicolon inside a constant does not split', () => {
    const sql = "SELECT 1; CREATE ROLE a PASSWORD 'x;y'; SELECT 'PASSWORD ''z'''; ALTER ROLE b PASSWORD 'w'";
    const r = redactStatement(sql);
    assert.equal(r.text, `SELECT 1; CREATE ROLE a PASSWORD ${ROLE}; SELECT 'PASSWORD ''z'''; ALTER ROLE b PASSWORD ${ROLE}`);
    assert.deepEqual(r.rules, ['role_password']);
  });
});

describe('redaction: user mappings, servers and connection strings', () => {
  test('OPTIONS (user …, password …) of user mappings and servers, ADD/SET forms included', () => {
    assert.equal(
      redacted("CREATE USER MAPPING FOR alice SERVER remote OPTIONS (user 'alice', password 'pw1')"),
      `CREATE USER MAPPING FOR alice SERVER remote OPTIONS (user 'alice', password ${OPT})`,
    );
    assert.equal(
      redacted("ALTER USER MAPPING FOR CURRENT_USER SERVER s OPTIONS (SET password 'pw2', ADD \"sslpassword\" 'pw3')"),
      `ALTER USER MAPPING FOR CURRENT_USER SERVER s OPTIONS (SET password ${OPT}, ADD "sslpassword" ${OPT})`,
    );
    assert.equal(
      redacted("CREATE SERVER s FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host 'h', dbname 'd', password 'pw4')"),
      `CREATE SERVER s FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host 'h', dbname 'd', password ${OPT})`,
    );
    assert.deepEqual(redactStatement("CREATE USER MAPPING FOR a SERVER s OPTIONS (password 'p')").rules, ['option_password']);
  });

  test('password= in a connection string, bare or quoted, and a URL’s password, inside any constant', () => {
    assert.equal(
      redacted("SELECT dblink_connect('c1', 'host=db port=5432 dbname=app user=u password=hunter2')"),
      `SELECT dblink_connect('c1', 'host=db port=5432 dbname=app user=u password=${CONN}')`,
    );
    assert.equal(
      redacted("SELECT dblink('dbname=app password=''with space'' user=u', 'select 1')"),
      `SELECT dblink('dbname=app password=${CONN} user=u', 'select 1')`,
    );
    assert.equal(
      redacted("CREATE SUBSCRIPTION s CONNECTION 'postgresql://rep:topsecret@primary/app' PUBLICATION p"),
      `CREATE SUBSCRIPTION s CONNECTION 'postgresql://rep:${CONN}@primary/app' PUBLICATION p`,
    );
    assert.deepEqual(redactStatement("SELECT dblink_connect('password=x')").rules, ['conninfo_password']);
  });
});

describe('redaction: pgcrypto keys and parameters', () => {
  test('the key of pgp_sym_encrypt/decrypt, encrypt/decrypt, hmac, crypt’s password, pgp_pub_decrypt’s password', () => {
    assert.equal(redacted("SELECT pgp_sym_encrypt('data', 'k3y')"), `SELECT pgp_sym_encrypt('data', ${KEY})`);
    assert.equal(
      redacted("SELECT PGP_SYM_DECRYPT(col, 'k3y', 'cipher-algo=aes256') FROM t"),
      `SELECT PGP_SYM_DECRYPT(col, ${KEY}, 'cipher-algo=aes256') FROM t`,
    );
    assert.equal(redacted("select encrypt('x'::bytea, 'key', 'aes')"), `select encrypt('x'::bytea, ${KEY}, 'aes')`);
    assert.equal(redacted("SELECT hmac('msg', 'k', 'sha256')"), `SELECT hmac('msg', ${KEY}, 'sha256')`);
    assert.equal(redacted("SELECT crypt('new password', gen_salt('bf'))"), `SELECT crypt(${KEY}, gen_salt('bf'))`);
    assert.equal(redacted("SELECT pgp_pub_decrypt(m, dearmor('k'), 'pw')"), `SELECT pgp_pub_decrypt(m, dearmor(${KEY}), ${KEY})`);
    assert.equal(redacted("SELECT public.pgp_sym_encrypt(f(a, b), 'k')"), `SELECT public.pgp_sym_encrypt(f(a, b), ${KEY})`);
  });

  test('a key passed as a parameter makes that parameter secret; the parameter field is masked at that place', () => {
    const r = redactStatement('INSERT INTO t (c) VALUES (pgp_sym_encrypt($1, $2))');
    assert.deepEqual(r.secretParams, [2]);
    assert.deepEqual(r.rules, ['crypto_key']);
    assert.equal(r.text, 'INSERT INTO t (c) VALUES (pgp_sym_encrypt($1, $2))', 'the statement itself has nothing to mask');
    assert.equal(redactParameters('payload,k3y', r.secretParams), `payload,${REDACTED}`);
    assert.equal(redactParameters('"a,b","k,""3""y",7', [2]), `"a,b",${REDACTED},7`);
    assert.equal(redactParameters('<none>', [1]), '<none>');
    assert.equal(redactParameters('<not logged>', [1]), '<not logged>');
    assert.equal(redactParameters('only', [2]), 'only');
  });

  test('a column or table that is named like a function is not a call', () => {
    const s = 'SELECT t.encrypt, hmac FROM crypto.encrypt_log t';
    assert.deepEqual(redactStatement(s), { text: s, rules: [], secretParams: [] });
  });
});

describe('redaction: records and the fast path’s byte test', () => {
  test('mayHoldSecret finds every word the rules start from, in any case, and nothing else in plain statements', () => {
    const b = (s: string) => Buffer.from(s, 'utf8');
    for (const s of ['x PASSWORD y', 'pgp_sym_encrypt(', 'encrypt(', 'HMAC(', 'dblink_connect(', 'a host=b', 'DBNAME=x', 'postgres://u:p@h', 'Crypt(']) {
      const buf = b(`SELECT ${s} FROM t`);
      assert.ok(mayHoldSecret(buf, 0, buf.length), s);
    }
    for (const s of ['SELECT * FROM accounts WHERE id = $1', "INSERT INTO t VALUES (1, 'passe')", 'UPDATE orders SET status = 2']) {
      const buf = b(s);
      // 'passe' holds "pass": the test may say yes where the rules then find nothing (that is only slower).
      assert.equal(mayHoldSecret(buf, 0, buf.length), s.includes('pass'), s);
    }
  });

  test('every statement the rules would change is one the byte test lets through (random statements)', () => {
    const parts = [
      "'k'",
      'pgp_sym_encrypt(',
      ', ',
      ')',
      'PASSWORD ',
      'ALTER ROLE x ',
      'OPTIONS (password ',
      "'host=h password=p'",
      'SELECT ',
      '; ',
      'crypt(',
      'hmac(',
      "'postgres://u:pw@h/db'",
    ];
    let seed = 7;
    const rnd = (n: number) => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n;
    for (let i = 0; i < 2000; i++) {
      let s = '';
      for (let k = rnd(8) + 1; k > 0; k--) s += parts[rnd(parts.length)];
      const buf = Buffer.from(s);
      if (redactStatement(s).rules.length > 0) assert.ok(mayHoldSecret(buf, 0, buf.length), s);
    }
  });

  test('a pgaudit record: statement, parameters and the kept raw message masked alike; the rules returned', () => {
    const r = {
      statement: "SELECT pgp_sym_encrypt($1, $2), 'a,b'",
      parameter: 'data,k3y',
      message: 'AUDIT: SESSION,1,1,READ,SELECT,,,"SELECT pgp_sym_encrypt($1, $2), \'a,b\'",data,k3y',
    };
    assert.deepEqual(redactAuditRecord(r), ['crypto_key']);
    assert.equal(r.parameter, `data,${marker('crypto_key')}`);
    assert.ok(!r.message.includes('k3y') && r.message.includes(marker('crypto_key')), r.message);
    const q = { statement: "CREATE USER MAPPING FOR a SERVER s OPTIONS (password 'p,w')", parameter: '<none>', message: '' };
    assert.deepEqual(redactAuditRecord(q), ['option_password']);
    assert.equal(q.statement, `CREATE USER MAPPING FOR a SERVER s OPTIONS (password '${marker('option_password')}')`);
    const plain = { statement: 'SELECT 1', parameter: '<none>', message: '' };
    assert.deepEqual(redactAuditRecord(plain), []);
    assert.equal(plain.statement, 'SELECT 1');
  });
});

describe('redaction: the prefilter of the fast path', () => {
  test('lets through every statement the rules would change, in one buffer, in order; passes plain ones', () => {
    const statements = [
      'SELECT abalance FROM pgbench_accounts WHERE aid = $1;',
      'INSERT INTO h (tid, bid) VALUES ($1, $2)',
      'SELECT pgp_sym_encrypt($1, $2)',
      'SELECT 1',
      "ALTER ROLE a PASSWORD 'x'",
      'UPDATE t SET v = v + $1 WHERE id = $2',
      'SELECT hmac /* c */ ($1, $2, $3)',
      'ALTER ROLE a PASSWORD $q$x$q$',
      'SELECT encrypt\n($1, $2, $3)',
      'SELECT count(*) FROM t WHERE a = $1',
    ];
    const buf = Buffer.from(statements.join('\n'));
    const pf = new SecretPrefilter();
    let at = 0;
    for (const s of statements) {
      const len = Buffer.byteLength(s);
      const may = pf.may(buf, at, at + len);
      if (redactStatement(s).rules.length > 0) assert.ok(may, s);
      if (s === 'SELECT abalance FROM pgbench_accounts WHERE aid = $1;' || s === 'SELECT 1' || s === 'UPDATE t SET v = v + $1 WHERE id = $2')
        assert.equal(may, false, s);
      at += len + 1;
    }
  });
});

describe('redaction: what could not be parsed', () => {
  test('a quarantined line is masked conservatively: constants after PASSWORD, password= and URL passwords, constants near crypto calls', () => {
    assert.equal(redactRaw(`junk,"SELECT 1; ALTER ROLE a PASSWORD 'it''s'",x`), `junk,"SELECT 1; ALTER ROLE a PASSWORD '${marker('role_password')}'",x`);
    assert.equal(redactRaw('ALTER ROLE a PASSWORD $q$s$q$ VALID'), `ALTER ROLE a PASSWORD '${marker('role_password')}' VALID`);
    assert.equal(redactRaw('x password=s host=h'), `x password=${marker('conninfo_password')} host=h`);
    assert.equal(redactRaw('x postgres://u:pw@h/db'), `x postgres://u:${marker('conninfo_password')}@h/db`);
    assert.equal(redactRaw("select hmac('m', 'k', 'sha1')"), `select hmac('${marker('crypto_key')}', '${marker('crypto_key')}', '${marker('crypto_key')}')`);
    assert.equal(redactRaw('this is not a csvlog record, only a line of noise'), 'this is not a csvlog record, only a line of noise');
  });

  test('the reader masks a quarantined record that holds a secret', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'redact-quarantine-'));
    try {
      const path = join(dir, 'postgresql.csv');
      writeFileSync(path, "not a csvlog record: ALTER ROLE a PASSWORD 'sekretQ' and password=sekretC\n");
      const file = { path, size: statSync(path).size, mtimeMs: 0, format: 'csvlog', compression: 'none', active: false } as never;
      const raws: string[] = [];
      for await (const b of readLogFile(file, {
        server: 's',
        fingerprint: 'f',
        startOffset: 0,
        times: new TimestampResolver(undefined),
        columns: 0,
        batchBytes: 1 << 20,
        maxRecordBytes: 1 << 20,
        tracker: new SessionTracker(),
        redact: true,
      })) {
        raws.push(...b.quarantine.map((q) => q.raw));
        b.release?.();
      }
      assert.equal(raws.length, 1);
      assert.ok(!raws[0]!.includes('sekret'), raws[0]);
      assert.ok(raws[0]!.includes(marker('role_password')) && raws[0]!.includes(marker('conninfo_password')), raws[0]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
