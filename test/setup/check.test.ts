/**
 * `auditship check` against a real throwaway PostgreSQL 15 + pgaudit cluster, started misconfigured the
 * ways guides get it wrong (pgaudit not preloaded, `privilege` in pgaudit.log, stderr only, no
 * log_disconnections), then repaired by applying exactly the fixes check printed — after which every line
 * is ✔. The CLI is the built one (bin/auditship.js → dist/): run `npx tsc -p tsconfig.json` first.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { spawnEsServer } from '../es-server/client.js';
import { startPgCluster, type PgCluster } from '../helpers/pg-cluster.js';
import { hasStackTrace, lines, runCli, scratchDir } from '../helpers/ingest-cli.js';

/** The SQL statements of a printed fix, in order, and whether it asks for a restart. */
function fixOf(line: string): { sql: string[]; restart: boolean } {
  const fix = line.split(' — fix: ')[1] ?? '';
  return {
    sql: [...fix.matchAll(/(?:ALTER (?:SYSTEM|ROLE|DATABASE)|CREATE EXTENSION|GRANT|SELECT pg_reload_conf)[^;]*;/g)].map((m) => m[0]),
    restart: /then restart PostgreSQL/.test(fix),
  };
}

describe('auditship check', () => {
  let cluster: PgCluster;
  const scratch = scratchDir('check');

  before(async () => {
    cluster = await startPgCluster({
      preloadLibraries: 'pg_stat_statements',
      logDestination: 'stderr',
      settings: { 'pgaudit.log': 'READ, privilege', log_disconnections: 'off', log_file_mode: '0600' },
    });
    // Accepted while pgaudit is not loaded (a placeholder); refused at every login once it is.
    await cluster.exec("CREATE ROLE app_user LOGIN; ALTER ROLE app_user SET pgaudit.log = 'write, privilege'");
  });
  after(async () => {
    await cluster?.stop();
    scratch.cleanup();
  });

  const check = async (extra: string[] = [], env?: NodeJS.ProcessEnv) => {
    const r = await runCli(['check', '--url', cluster.url(), ...extra], env ? { env } : {});
    assert.ok(!hasStackTrace(r.stdout + r.stderr), r.stdout + r.stderr);
    return { ...r, out: lines(r.stdout) };
  };
  const lineOf = (out: string[], re: RegExp) => {
    const l = out.find((x) => re.test(x));
    assert.ok(l, `no line matching ${re} in:\n${out.join('\n')}`);
    return l;
  };

  test('a server without pgaudit preloaded, stderr only and privilege in pgaudit.log: ✘ lines with the exact fixes, exit 1', async () => {
    const r = await check();
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.out[0]!, /^✔ connected to postgresql:\/\/postgres@127\.0\.0\.1:\d+\/postgres: PostgreSQL 15\.\d+ as superuser postgres$/);
    assert.equal(
      lineOf(r.out, /shared_preload_libraries/),
      `✘ pgaudit is not in shared_preload_libraries (now 'pg_stat_statements') — fix: ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements', 'pgaudit'; then restart PostgreSQL (pg_ctl restart -D ${cluster.dataDir})`,
    );
    assert.equal(
      lineOf(r.out, /extension/),
      '✘ the pgaudit extension is not created in database postgres — fix: CREATE EXTENSION pgaudit; (in database postgres, once pgaudit is loaded)',
    );
    assert.match(
      lineOf(r.out, /^✘ pgaudit\.log = 'READ, privilege'/),
      /in .*postgresql\.conf line \d+ names 'privilege', which is not a pgaudit class .*PostgreSQL will refuse it when pgaudit is loaded and audit nothing — fix: ALTER SYSTEM SET pgaudit\.log = 'read'; SELECT pg_reload_conf\(\);/,
    );
    assert.equal(
      lineOf(r.out, /for role app_user/),
      "✘ pgaudit.log = 'write, privilege' set for role app_user names 'privilege', which is not a pgaudit class (GRANT and REVOKE are logged by class ROLE); PostgreSQL will ignore it once pgaudit is loaded — fix: ALTER ROLE app_user SET pgaudit.log = 'write';",
    );
    assert.equal(
      lineOf(r.out, /log_destination/),
      "✘ log_destination = 'stderr' writes neither csvlog nor jsonlog files — fix: ALTER SYSTEM SET log_destination = 'stderr,csvlog'; SELECT pg_reload_conf();",
    );
    assert.match(
      lineOf(r.out, /log_disconnections/),
      /^✘ log_disconnections is off; .* — fix: ALTER SYSTEM SET log_disconnections = on; SELECT pg_reload_conf\(\);$/,
    );
    assert.match(lineOf(r.out, /logging_collector/), /^✔ logging_collector is on$/);
    assert.match(lineOf(r.out, /log directory/), new RegExp(`^✔ the log directory ${cluster.logDir} is readable by `));
    assert.equal(r.out.length, 9, r.stdout);
  });

  test('pgaudit loaded (the printed preload fix applied, restarted): privilege refused, the server audits nothing', async () => {
    const first = await check();
    const { sql, restart } = fixOf(lineOf(first.out, /shared_preload_libraries/));
    assert.equal(restart, true);
    for (const s of sql) await cluster.exec(s);
    await cluster.restart();
    const r = await check();
    assert.equal(r.code, 1);
    assert.match(lineOf(r.out, /pgaudit is loaded/), /^✔ pgaudit is loaded \(shared_preload_libraries = 'pg_stat_statements, pgaudit'\)$/);
    const audit = lineOf(r.out, /^✘ pgaudit\.log = 'READ, privilege'/);
    assert.match(audit, /names 'privilege', which is not a pgaudit class/);
    assert.match(
      audit,
      /PostgreSQL refused it and runs with the default 'none': nothing is audited — fix: ALTER SYSTEM SET pgaudit\.log = 'read'; SELECT pg_reload_conf\(\);/,
    );
    // What PostgreSQL itself shows: only the default, not the mistake.
    const c = await cluster.client();
    try {
      assert.equal((await c.query('SHOW pgaudit.log')).rows[0]['pgaudit.log'], 'none');
    } finally {
      await c.end();
    }
    assert.match(
      lineOf(r.out, /for role app_user/),
      /PostgreSQL ignores it with a WARNING at each login — fix: ALTER ROLE app_user SET pgaudit\.log = 'write';$/,
    );
    assert.match(lineOf(r.out, /extension/), /^✘ .* — fix: CREATE EXTENSION pgaudit; \(in database postgres\)$/);
  });

  test('the printed fixes, applied as printed, make every check pass (exit 0)', async () => {
    const before = await check();
    for (const l of before.out.filter((x) => x.startsWith('✘'))) {
      const { sql, restart } = fixOf(l);
      assert.ok(sql.length || restart, `a fix with SQL in: ${l}`);
      for (const s of sql) await cluster.exec(s);
      if (restart) await cluster.restart();
    }
    const r = await check();
    assert.equal(r.code, 0, r.stdout);
    assert.deepEqual(
      r.out.filter((l) => !l.startsWith('✔ ')),
      [],
      r.stdout,
    );
    assert.equal(lineOf(r.out, /^✔ pgaudit\.log/), "✔ pgaudit.log = 'read' audits READ");
    assert.match(lineOf(r.out, /log_destination/), /^✔ log_destination = 'stderr,csvlog' writes csvlog files$/);
    assert.equal(lineOf(r.out, /extension/), '✔ the pgaudit extension (1.7) is created in database postgres');
    assert.equal(r.out.length, 8, r.stdout);
  });

  test('a role that cannot see the settings: the line says so and gives the GRANT, which makes the check pass', async () => {
    await cluster.exec('CREATE ROLE monitor LOGIN');
    const url = cluster.url().replace('postgres@', 'monitor@');
    const r = await runCli(['check', '--url', url]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    const out = lines(r.stdout);
    assert.match(out[0]!, /^✔ connected to .* as monitor$/);
    assert.match(lineOf(out, /pgaudit is loaded/), /^✔ pgaudit is loaded$/, 'seen without the privilege, from the settings pgaudit defines');
    assert.equal(
      lineOf(out, /log directory/),
      '✘ the log directory cannot be checked: role monitor is neither superuser nor a member of pg_read_all_settings, so data_directory and log_directory cannot be read — fix: GRANT pg_read_all_settings TO monitor;',
    );
    assert.match(
      lineOf(out, /^✔ pgaudit\.log/),
      /not compared with the configuration files, which role monitor may not read \(GRANT SELECT ON pg_file_settings TO monitor;/,
    );
    await cluster.exec(fixOf(lineOf(out, /log directory/)).sql.join(' '));
    const after = await runCli(['check', '--url', url]);
    assert.equal(after.code, 0, after.stdout);
    assert.match(lineOf(lines(after.stdout), /log directory/), /^✔ the log directory .* is readable by /);
  });

  test(
    'run as another OS user: a newest log file that user cannot read names log_file_mode and the group',
    { skip: process.getuid?.() !== 0 && 'needs root to run the CLI as nobody' },
    async () => {
      const r = await runCli(['check', '--url', cluster.url()], { uid: 65534, gid: 65534 });
      assert.equal(r.code, 1, r.stdout + r.stderr);
      const l = lineOf(lines(r.stdout), /newest log file/);
      assert.match(
        l,
        new RegExp(
          `^✘ the newest log file ${cluster.logDir}/postgresql-[^ ]+ \\(postgres:postgres 0600\\) is not readable by nobody: log_file_mode = 0600 makes log files readable by their owner only — fix: ALTER SYSTEM SET log_file_mode = '0640'; SELECT pg_reload_conf\\(\\); \\(for new files\\); chmod g\\+r ${cluster.logDir}/\\*; usermod -aG postgres nobody \\(then log in again\\)$`,
        ),
      );
    },
  );

  test('--config: a pg_logs directory that does not exist and an unreachable Elasticsearch, one ✘ line each; no server: one ✘ line, then the pipelines', async () => {
    const config = join(scratch.dir, 'broken.yaml');
    writeFileSync(
      config,
      [
        'pipelines:',
        '  main:',
        '    source: { type: pg_logs, path: /nonexistent/pg/log }',
        '    sinks:',
        '      - { type: elasticsearch, url: "http://elastic:s3cret@127.0.0.1:1", timeout_ms: 2000 }',
        `      - { type: duckdb, path: ${join(scratch.dir, 'new', 'a.duckdb')} }`,
        '',
      ].join('\n'),
    );
    // No --url, no server on the default socket: the server line fails and the pipelines are still checked.
    const r = await runCli(['check', '--config', config], { env: { PGHOST: join(scratch.dir, 'no-socket'), AUDITSHIP_PG_URL: '' } });
    assert.ok(!hasStackTrace(r.stdout + r.stderr), r.stdout + r.stderr);
    assert.equal(r.code, 1);
    const out = lines(r.stdout);
    const me = userInfo().username;
    assert.deepEqual(out, [
      `✘ cannot connect to postgresql://${me}@/${me}?host=${join(scratch.dir, 'no-socket')}&port=5432: there is no PostgreSQL socket ${join(scratch.dir, 'no-socket')}/.s.PGSQL.5432 (is PostgreSQL running on this machine, on that port?) — fix: give the server with --url postgres://USER@HOST:PORT/DB (or set AUDITSHIP_PG_URL, or PGHOST/PGPORT/PGUSER), or run as the postgres OS user`,
      "✘ pipeline main: source pg_logs /nonexistent/pg/log: does not exist — fix: set source.path to the server's log directory (auditship check prints it; SHOW log_directory, relative to data_directory)",
      '✘ pipeline main: sink elasticsearch http://127.0.0.1:1: cannot connect: connection refused — fix: check sinks[0].url, and that the cluster runs and is reachable from this host',
      `✔ pipeline main: sink duckdb ${join(scratch.dir, 'new', 'a.duckdb')}: does not exist yet and will be created, with its directory (${scratch.dir} is writable)`,
    ]);
    assert.doesNotMatch(r.stdout + r.stderr, /s3cret/, 'no password printed');
  });

  test('--config: Elasticsearch with the configured auth answers its version, wrong credentials are one ✘ line; a local archive is writable', async () => {
    const es = await spawnEsServer({ auth: { users: [{ username: 'auditship', password: 'right' }] } });
    try {
      const config = join(scratch.dir, 'sinks.yaml');
      const logs = join(scratch.dir, 'logs');
      mkdirSync(logs);
      writeFileSync(
        config,
        [
          'pipelines:',
          '  main:',
          `    source: { type: pg_logs, path: ${logs}, file_glob: "*.csv" }`,
          '    sinks:',
          `      - { type: elasticsearch, url: "${es.url}", username: auditship, password: right }`,
          `      - { type: elasticsearch, url: "${es.url}", username: auditship, password: wrong }`,
          `      - { type: archive, directory: ${join(scratch.dir, 'archive')} }`,
          `      - { type: duckdb, path: ${join(scratch.dir, 'sinks.duckdb')} }`,
          '',
        ].join('\n'),
      );
      const r = await check(['--config', config]);
      assert.equal(r.code, 1, r.stdout);
      const where = new URL(es.url).origin;
      const pipeline = r.out.filter((l) => l.includes('pipeline main'));
      assert.deepEqual(pipeline, [
        `✔ pipeline main: source pg_logs ${logs}: readable, no log files yet (file_glob "*.csv")`,
        `✔ pipeline main: sink elasticsearch ${where}: Elasticsearch 8.15.0`,
        `✘ pipeline main: sink elasticsearch ${where}: ${where} refused the credentials (401): security_exception: unable to authenticate user [auditship] for REST request [/] — fix: check username/password, api_key or bearer_token`,
        `✔ pipeline main: sink archive: ${join(scratch.dir, 'archive')} does not exist yet and will be created (${scratch.dir} is writable)`,
        `✔ pipeline main: sink duckdb ${join(scratch.dir, 'sinks.duckdb')}: does not exist yet and will be created (${scratch.dir} is writable)`,
      ]);
      assert.doesNotMatch(r.stdout + r.stderr, /right|wrong/, 'no password printed');
    } finally {
      await es.stop();
    }
  });

  test('usage and config errors exit 2', async () => {
    assert.equal((await runCli(['check', '--url', 'mysql://x@y/z'])).code, 2);
    assert.equal((await runCli(['check', '--bogus'])).code, 2);
    const r = await runCli(['check', '--config', join(scratch.dir, 'missing.yaml')]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /config file not found/);
  });

  test('a connection failure is one line naming the server without its password, exit 1', async () => {
    const r = await runCli(['check', '--url', 'postgres://auditship:hunter2@127.0.0.1:1/app']);
    assert.equal(r.code, 1);
    assert.deepEqual(lines(r.stdout), [
      '✘ cannot connect to postgres://auditship:****@127.0.0.1:1/app: connection refused (is PostgreSQL running and listening on that host and port?) — fix: check the URL given with --url (or AUDITSHIP_PG_URL), and that PostgreSQL is running',
    ]);
    assert.doesNotMatch(r.stdout + r.stderr, /hunter2/);
  });
});
