import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { auditship, queryJson, tempDir } from '../helpers/cli.js';
import { startPgCluster, type PgCluster } from '../helpers/pg-cluster.js';

/**
 * Correlation on logs PostgreSQL 15 + pgaudit really wrote: sessions from connection authorized and
 * disconnection records, logon failures from FATAL authentication errors, and the outcome of audited
 * statements from the ERROR records of the same session — inside and outside a transaction, and a syntax
 * error (never audited) that must not be pinned on the statement before it.
 */
describe('correlation: sessions, logon failures and statement outcomes', () => {
  let cluster: PgCluster;
  const tmp = tempDir();
  let okPid = 0;

  before(async () => {
    cluster = await startPgCluster();
    // Password authentication for one role (pg_hba.conf is read first line first).
    await cluster.exec(`CREATE ROLE pwuser LOGIN PASSWORD 'right-password'; CREATE TABLE accounts (id int PRIMARY KEY, owner text)`);
    const hba = join(cluster.dataDir, 'pg_hba.conf');
    writeFileSync(hba, `host all pwuser 127.0.0.1/32 scram-sha-256\n${readFileSync(hba, 'utf8')}`);
    await cluster.exec('SELECT pg_reload_conf()');
    await new Promise((r) => setTimeout(r, 300));

    const connect = (user: string, password?: string, app = 'correlation-test') => {
      const c = new pg.Client({ host: '127.0.0.1', port: cluster.port, database: 'postgres', user, password, application_name: app });
      return c;
    };
    // Two logon failures: a wrong password, and a role that does not exist.
    for (const [user, password] of [
      ['pwuser', 'wrong-password'],
      ['ghost', undefined],
    ] as const) {
      const c = connect(user, password);
      await assert.rejects(c.connect());
      await c.end().catch(() => {});
    }
    const c = connect('postgres', undefined, 'app-one');
    await c.connect();
    okPid = (await c.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
    // Outside a transaction: a success, then a unique violation.
    await c.query(`INSERT INTO accounts VALUES (1, 'alice')`);
    await assert.rejects(c.query(`INSERT INTO accounts VALUES (1, 'again')`));
    // Inside a transaction: a success, then a division by zero in an audited SELECT.
    await c.query('BEGIN');
    await c.query(`INSERT INTO accounts VALUES (2, 'bob')`);
    await assert.rejects(c.query('SELECT id / 0 FROM accounts'));
    await c.query('ROLLBACK');
    // A syntax error after a successful statement of the same transaction: never audited, not pinned on it.
    await c.query('BEGIN');
    await c.query(`INSERT INTO accounts VALUES (3, 'carol')`);
    await assert.rejects(c.query('SELEC 1'));
    await c.query('ROLLBACK');
    // A statement cancelled by statement_timeout after the log file rotated: its AUDIT record is in one file,
    // its ERROR in the next (another batch, another run's worth of state).
    await c.query(`SET statement_timeout = '2500ms'`);
    const slow = c.query('SELECT pg_sleep(5), id FROM accounts');
    await new Promise((r) => setTimeout(r, 1200));
    await cluster.exec('SELECT pg_rotate_logfile()');
    await assert.rejects(slow, /statement timeout/);
    await c.end();
    await cluster.flushLogs();
    const csvs = cluster.logFiles().filter((f) => f.endsWith('.csv'));
    const holding = (text: string) => csvs.filter((f) => readFileSync(f, 'utf8').includes(text));
    const auditFile = holding('READ,SELECT,TABLE,public.accounts,""SELECT pg_sleep(5), id FROM accounts""')[0];
    const errorFile = holding('canceling statement due to statement timeout')[0];
    assert.ok(auditFile && errorFile && auditFile !== errorFile, 'the statement and its error are in different files');
    // A session that is still open when the logs are read: no end yet.
    await cluster.flushLogs();
  });
  after(async () => {
    await cluster?.stop();
    tmp.cleanup();
  });

  for (const format of ['csvlog', 'jsonlog'] as const) {
    test(`${format}: sessions, logon_failures and outcomes`, async () => {
      const db = `${tmp.dir}/${format}.duckdb`;
      const r = await auditship(['ingest', '--db', db, '--prefer-format', format, '--json', cluster.logDir]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal((JSON.parse(r.stdout) as { quarantined: number }).quarantined, 0);

      const failures = await queryJson<{ user_name: string; client_addr: string; sqlstate: string; reason: string }>(
        db,
        `SELECT user_name, client_addr, sqlstate, reason FROM logon_failures ORDER BY log_time`,
      );
      assert.deepEqual(
        failures.map((f) => [f.user_name, f.client_addr, f.sqlstate]),
        [
          ['pwuser', '127.0.0.1', '28P01'],
          ['ghost', '127.0.0.1', '28000'],
        ],
      );
      assert.match(failures[0]!.reason, /password authentication failed for user "pwuser"/);
      assert.match(failures[1]!.reason, /role "ghost" does not exist/);

      const [s] = await queryJson<{
        user_name: string;
        database_name: string;
        application_name: string;
        client_addr: string;
        process_id: number;
        connected_at: string | null;
        disconnected_at: string | null;
        duration_ms: number | null;
        real_ms: number;
      }>(
        db,
        `SELECT user_name, database_name, application_name, client_addr, process_id, connected_at::VARCHAR AS connected_at,
                disconnected_at::VARCHAR AS disconnected_at, duration_ms, epoch_ms(disconnected_at) - epoch_ms(session_start) AS real_ms
         FROM sessions WHERE process_id = ${okPid}`,
      );
      assert.ok(s, 'the application session is in sessions');
      assert.equal(s.user_name, 'postgres');
      assert.equal(s.database_name, 'postgres');
      assert.equal(s.application_name, 'app-one');
      assert.equal(s.client_addr, '127.0.0.1');
      assert.ok(s.connected_at && s.disconnected_at, 'start and end are known');
      assert.ok(s.duration_ms !== null && Math.abs(s.duration_ms - s.real_ms) < 1000, `duration ${s.duration_ms} ms vs ${s.real_ms} ms between start and end`);

      const rows = await queryJson<{
        command: string;
        object_name: string;
        statement: string;
        outcome: string;
        sqlstate: string | null;
        error_message: string | null;
      }>(
        db,
        `SELECT command, object_name, statement, outcome, sqlstate, error_message FROM audit_logs
         WHERE process_id = ${okPid} AND object_name = 'public.accounts' ORDER BY session_line_num`,
      );
      const byStatement = rows.map((x) => [x.statement, x.outcome, x.sqlstate]);
      assert.deepEqual(byStatement, [
        [`INSERT INTO accounts VALUES (1, 'alice')`, 'success', null],
        [`INSERT INTO accounts VALUES (1, 'again')`, 'error', '23505'],
        [`INSERT INTO accounts VALUES (2, 'bob')`, 'success', null],
        ['SELECT id / 0 FROM accounts', 'error', '22012'],
        [`INSERT INTO accounts VALUES (3, 'carol')`, 'success', null],
        ['SELECT pg_sleep(5), id FROM accounts', 'error', '57014'],
      ]);
      assert.match(rows[1]!.error_message!, /duplicate key value violates unique constraint "accounts_pkey"/);
      assert.match(rows[3]!.error_message!, /division by zero/);

      const errors = await queryJson<{ sqlstate: string; matched: boolean }>(
        db,
        `SELECT sqlstate, statement_id IS NOT NULL AS matched FROM statement_errors WHERE session_id IN (SELECT session_id FROM sessions WHERE process_id = ${okPid}) ORDER BY session_line_num`,
      );
      assert.deepEqual(
        errors.map((e) => [e.sqlstate, e.matched]),
        [
          ['23505', true],
          ['22012', true],
          ['42601', false],
          ['57014', true],
        ],
      );
    });
  }

  test('auditship report: the failed login, the failed statements, the DDL in full (md, json, html)', async () => {
    const db = `${tmp.dir}/report.duckdb`;
    assert.equal((await auditship(['ingest', '--db', db, '--quiet', cluster.logDir])).code, 0);
    const json = await auditship(['report', '--db', db, '--since', '1d', '--format', 'json']);
    assert.equal(json.code, 0, json.stderr);
    const r = JSON.parse(json.stdout) as {
      totals: { logon_failures: number; failed_statements: number };
      changes: { command: string; statement: string }[];
      failed_statements: { statement: string; sqlstate: string; error_message: string }[];
      logon_failures: { user_name: string; sqlstate: string }[];
      access: { user_name: string; object_name: string; reads: number; writes: number }[];
      unaudited_errors: { sqlstate: string; n: number }[];
    };
    assert.equal(r.totals.logon_failures, 2);
    assert.deepEqual(
      r.logon_failures.map((f) => [f.user_name, f.sqlstate]),
      [
        ['pwuser', '28P01'],
        ['ghost', '28000'],
      ],
    );
    assert.deepEqual(
      r.failed_statements.map((f) => [f.statement, f.sqlstate]),
      [
        [`INSERT INTO accounts VALUES (1, 'again')`, '23505'],
        ['SELECT id / 0 FROM accounts', '22012'],
        ['SELECT pg_sleep(5), id FROM accounts', '57014'],
      ],
    );
    assert.ok(
      r.changes.some((c) => c.command === 'CREATE ROLE' && c.statement.includes(`CREATE ROLE pwuser LOGIN PASSWORD`)),
      'role changes in full',
    );
    assert.ok(
      r.changes.some((c) => c.command === 'CREATE TABLE' && c.statement.includes('CREATE TABLE accounts')),
      'DDL in full',
    );
    const acc = r.access.find((a) => a.user_name === 'postgres' && a.object_name === 'public.accounts');
    assert.deepEqual(acc && [acc.reads, acc.writes], [2, 4]);
    assert.deepEqual(r.unaudited_errors.find((e) => e.sqlstate === '42601')?.n, 1, 'the syntax error is counted, not pinned on a statement');

    const md = await auditship(['report', '--db', db, '--since', '1d']);
    assert.equal(md.code, 0, md.stderr);
    for (const heading of [
      '## Events by class and command',
      '## DDL and role/privilege changes',
      '## Tables read and written, per user',
      '## Failed logins',
      '## Failed statements',
    ]) {
      assert.ok(md.stdout.includes(heading), heading);
    }
    assert.match(md.stdout, /\| pwuser \|/);
    const out = `${tmp.dir}/report.html`;
    const html = await auditship([
      'report',
      '--db',
      db,
      '--since',
      '1d',
      '--until',
      new Date(Date.now() + 60_000).toISOString(),
      '--format',
      'html',
      '--output',
      out,
    ]);
    assert.equal(html.code, 0, html.stderr);
    const page = readFileSync(out, 'utf8');
    assert.match(page, /<svg[^>]*aria-label="events per day by class"[^>]*>.*<rect /s, 'the chart has bars');
    assert.ok(page.includes('SELECT id / 0 FROM accounts'));
    assert.ok(!/<script/i.test(page), 'no script in the report');
    const bad = await auditship(['report', '--db', db, '--since', 'last tuesday']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^auditship: --since: "last tuesday" is not a time/);
  });

  test('reading the same files again adds nothing (sessions, failures and errors once)', async () => {
    const db = `${tmp.dir}/twice.duckdb`;
    for (const format of ['csvlog', 'jsonlog']) {
      const r = await auditship(['ingest', '--db', db, '--prefer-format', format, '--quiet', cluster.logDir]);
      assert.equal(r.code, 0, r.stderr);
    }
    const [c] = await queryJson<{ f: number; e: number; s: number; ds: number }>(
      db,
      `SELECT (SELECT count(*) FROM logon_failures) AS f, (SELECT count(*) FROM statement_errors WHERE sqlstate IN ('23505','22012','42601','57014')) AS e,
              (SELECT count(*) FROM sessions) AS s, (SELECT count(DISTINCT session_id) FROM sessions) AS ds`,
    );
    assert.equal(Number(c!.f), 2);
    assert.equal(Number(c!.e), 4);
    assert.equal(Number(c!.s), Number(c!.ds));
  });
});
