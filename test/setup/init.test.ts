/**
 * `auditship init` against a real throwaway PostgreSQL 15 + pgaudit cluster: the config it writes loads,
 * and `auditship run --config` of it ships that cluster's audit events; `check --config` passes on it; an
 * existing file is kept; a server that is not ready gets its fixes at the top. The CLI is the built one
 * (bin/auditship.js → dist/): run `npx tsc -p tsconfig.json` first.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { loadConfig } from '../../src/config/load.js';
import { startPgCluster, type PgCluster } from '../helpers/pg-cluster.js';
import { hasStackTrace, lines, queryDb, runCli, scratchDir, spawnCli } from '../helpers/ingest-cli.js';
import { field } from '../helpers/config.js';

describe('auditship init', () => {
  let cluster: PgCluster;
  const scratch = scratchDir('init');
  const file = join(scratch.dir, 'auditship.yaml');
  const db = join(scratch.dir, 'audit.duckdb');

  before(async () => {
    cluster = await startPgCluster();
  });
  after(async () => {
    await cluster?.stop();
    scratch.cleanup();
  });

  test("writes a config that loads and ships the cluster's audit events with run --config", async () => {
    const r = await runCli(['init', '--url', cluster.url(), '--output', file, '--db', db]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.deepEqual(lines(r.stdout), [
      `wrote ${file}: pipeline main reads the csvlog files (*.csv) of ${cluster.logDir} into ${db}`,
      `next: auditship run --config ${file}`,
    ]);
    const text = readFileSync(file, 'utf8');
    assert.doesNotMatch(text, /NOT READY/, 'a ready server has no fixes to list');
    assert.match(text, /^# auditship configuration for PostgreSQL 15\.\d+ \(port \d+, data directory\s/m);
    const config = loadConfig(file);
    assert.equal(config.pipelines.length, 1);
    const p = config.pipelines[0]!;
    assert.equal(p.source.type, 'pg_logs');
    assert.deepEqual(field(p.source, 'path'), [cluster.logDir]);
    assert.equal(field(p.source, 'file_glob'), '*.csv', 'csvlog preferred when the server writes both');
    assert.equal(field(p.source, 'log_timezone'), 'UTC');
    assert.deepEqual(
      p.sinks.map((s) => [s.type, field(s, 'path')]),
      [['duckdb', db]],
    );

    await cluster.exec(
      "SET application_name = 'init-test'; CREATE TABLE init_probe (id int); INSERT INTO init_probe VALUES (1); SELECT count(*) FROM init_probe",
    );
    await cluster.flushLogs();
    const run = await runCli(['run', '--config', file]);
    assert.equal(run.code, 0, run.stdout + run.stderr);
    assert.match(run.stdout, /^main: \d+ new audit events/m);
    const rows = await queryDb(db, "SELECT class, command, object_name FROM audit_logs WHERE application_name = 'init-test' ORDER BY session_line_num");
    assert.deepEqual(
      rows.map((x) => [x['class'], x['command'], x['object_name']]),
      [
        ['MISC', 'SET', null],
        ['DDL', 'CREATE TABLE', 'public.init_probe'],
        ['WRITE', 'INSERT', 'public.init_probe'],
        ['READ', 'SELECT', 'public.init_probe'],
      ],
    );
  });

  test('check --config passes on the written config: the server, the log directory and the DuckDB file', async () => {
    const r = await runCli(['check', '--url', cluster.url(), '--config', file]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const out = lines(r.stdout);
    assert.deepEqual(
      out.filter((l) => !l.startsWith('✔ ')),
      [],
    );
    assert.match(
      out.find((l) => l.includes('source pg_logs'))!,
      new RegExp(`^✔ pipeline main: source pg_logs ${cluster.logDir}: \\d+ csvlog files? match(?:es)? "\\*\\.csv", all readable$`),
    );
    assert.equal(
      out.find((l) => l.includes('sink duckdb')),
      `✔ pipeline main: sink duckdb ${db}: opens`,
    );
  });

  test('check --config while run --follow holds the DuckDB file: held by the running daemon', async () => {
    const daemon = spawnCli(['run', '--follow', '--config', file]);
    try {
      const status = `${db}.status.json`;
      const deadline = Date.now() + 30_000;
      while (!existsSync(status)) {
        assert.ok(Date.now() < deadline, 'run --follow wrote no status file within 30 s');
        await sleep(100);
      }
      const r = await runCli(['check', '--url', cluster.url(), '--config', file]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(
        lines(r.stdout).find((l) => l.includes('sink duckdb'))!,
        new RegExp(`^✔ pipeline main: sink duckdb ${db}: held by the running daemon \\(PID ${daemon.pid}, auditship run --follow since \\S+\\)$`),
      );
    } finally {
      daemon.kill('SIGTERM');
      await daemon.result;
    }
  });

  test('an existing file is kept without --force (one line, exit 2); --force overwrites it', async () => {
    writeFileSync(file, '# mine\n');
    const r = await runCli(['init', '--url', cluster.url(), '--output', file]);
    assert.equal(r.code, 2);
    assert.equal(r.stdout, '');
    assert.deepEqual(lines(r.stderr), [`auditship: ${file} already exists; pass --force to overwrite it (or --output FILE)`]);
    assert.equal(readFileSync(file, 'utf8'), '# mine\n');
    const forced = await runCli(['init', '--url', cluster.url(), '--output', file, '--db', db, '--force']);
    assert.equal(forced.code, 0, forced.stderr);
    assert.equal(field(loadConfig(file).pipelines[0]!.sinks[0]!, 'path'), db);
  });

  test('a server that is not ready: its fixes head the file, which still loads', async () => {
    // ALTER SYSTEM runs alone (not in the implicit transaction of a multi-statement string).
    for (const sql of ["ALTER SYSTEM SET log_destination = 'stderr'", 'ALTER SYSTEM SET log_disconnections = off', 'SELECT pg_reload_conf()'])
      await cluster.exec(sql);
    try {
      const out = join(scratch.dir, 'not-ready.yaml');
      const r = await runCli(['init', '--url', cluster.url(), '--output', out]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(
        r.stdout,
        /^the server is not ready yet: 2 problems, listed with their fixes at the top of .*not-ready\.yaml; after fixing them: auditship check --config /m,
      );
      const text = readFileSync(out, 'utf8');
      const head = text.slice(0, text.indexOf('pipelines:'));
      assert.match(head, /^# THIS SERVER IS NOT READY YET: auditship check found 2 problems\./m);
      assert.match(head, /^#       fix: ALTER SYSTEM SET log_destination = 'stderr,csvlog'; SELECT pg_reload_conf\(\);$/m);
      assert.match(head, /^#       fix: ALTER SYSTEM SET log_disconnections = on; SELECT pg_reload_conf\(\);$/m);
      assert.match(text, /which it does not write yet \(log_destination = 'stderr'/);
      const p = loadConfig(out).pipelines[0]!;
      assert.equal(field(p.source, 'file_glob'), '*.csv', 'the format the fix makes it write');
      assert.equal(field(p.sinks[0]!, 'path'), 'auditship.duckdb', 'the default DuckDB file');
    } finally {
      for (const sql of ['ALTER SYSTEM RESET log_destination', 'ALTER SYSTEM RESET log_disconnections', 'SELECT pg_reload_conf()']) await cluster.exec(sql);
    }
  });

  test('no server: one line naming --url, exit 1, nothing written', async () => {
    const out = join(scratch.dir, 'none.yaml');
    const r = await runCli(['init', '--url', 'postgres://postgres:pw@127.0.0.1:1/postgres', '--output', out]);
    assert.equal(r.code, 1);
    assert.ok(!hasStackTrace(r.stderr), r.stderr);
    assert.deepEqual(lines(r.stderr), [
      'auditship: cannot connect to postgres://postgres:****@127.0.0.1:1/postgres: connection refused (is PostgreSQL running and listening on that host and port?); check the URL given with --url (or AUDITSHIP_PG_URL), and that PostgreSQL is running',
    ]);
    assert.equal(existsSync(out), false);
  });
});
