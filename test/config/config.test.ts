import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { parse } from 'yaml';
import { loadConfig, parseSize, validateConfig } from '../../src/config/load.js';
import { renderConfigDocs, renderExampleConfig } from '../../src/config/render.js';
import { ConfigError } from '../../src/core/errors.js';
import { auditship, tempDir } from '../helpers/cli.js';
import { field } from '../helpers/config.js';

const root = new URL('../../', import.meta.url).pathname;

function problems(doc: unknown, env: NodeJS.ProcessEnv = {}): string[] {
  try {
    validateConfig(doc, env);
    return [];
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.problems;
  }
}

describe('config schema', () => {
  test('the committed example config and reference are generated from the schema (run npm run gen:config)', () => {
    assert.equal(readFileSync(`${root}auditship.example.yaml`, 'utf8'), renderExampleConfig());
    assert.equal(readFileSync(`${root}docs/configuration.md`, 'utf8'), renderConfigDocs());
  });

  test('the example config is valid and gets every default', () => {
    const config = validateConfig(parse(readFileSync(`${root}auditship.example.yaml`, 'utf8')));
    assert.equal(config.pipelines.length, 1);
    const p = config.pipelines[0]!;
    assert.deepEqual(field(p.source, 'path'), ['/var/lib/postgresql/15/main/log']);
    assert.equal(field(p.source, 'batch_bytes'), 16_000_000); // the default since the store's star layout (fewer, larger inserts)
    assert.equal(field(p.sinks[0]!, 'path'), './auditship.duckdb');
  });

  test('one message per wrong key, with its path, what is wrong and what is allowed', () => {
    const got = problems({
      pipelines: {
        main: {
          source: { type: 'pg_logs', pth: '/x', prefer_format: 'xml', skip_active: 'yes' },
          sinks: [{ type: 'duckdb', path: 'a.duckdb', threads: 0 }, { type: 'elastic' }],
          extra: 1,
        },
      },
      verbose: true,
    });
    assert.deepEqual(
      got.sort(),
      [
        'pipelines.main.extra: unknown key; allowed: source, sinks, state',
        'pipelines.main.sinks[0].threads: 0 is not an integer ≥ 1',
        'pipelines.main.sinks[1].type: "elastic" is not a sink type; allowed: duckdb, elasticsearch, archive',
        "pipelines.main.source.path: required (The server's log_directory (or a log file); a list reads several)",
        'pipelines.main.source.prefer_format: "xml" is not one of jsonlog, csvlog',
        'pipelines.main.source.pth: unknown key for a pg_logs source; allowed: path, server, file_glob, prefer_format, skip_active, log_timezone, max_record_bytes, batch_bytes, poll_interval_ms',
        'pipelines.main.source.skip_active: "yes" is not a boolean',
        'verbose: unknown top-level key; allowed: pipelines, ui, metrics, redaction, alerts',
      ].sort(),
    );
  });

  test('missing pipelines, sinks and source type are reported', () => {
    assert.deepEqual(problems({}), ['pipelines: required — a mapping of pipeline names to { source, sinks }']);
    assert.deepEqual(problems({ pipelines: { a: { source: { path: '/x' }, sinks: [] } } }).sort(), [
      'pipelines.a.sinks: required — a list of sinks, e.g. [ { type: duckdb, path: ./auditship.duckdb } ]',
      'pipelines.a.source.type: missing; allowed: pg_logs, rds_logs, pg_audit_table, sql_outbox, django_auditlog',
    ]);
  });

  test('a search sink needs a duckdb sink after it; store_events: false only for pg_logs behind a search sink', () => {
    const es = { type: 'elasticsearch', url: 'http://127.0.0.1:9200' };
    assert.deepEqual(problems({ pipelines: { a: { source: { type: 'pg_logs', path: '/x' }, sinks: [es] } } }), [
      "pipelines.a.sinks: the last sink must be duckdb (it keeps the pipeline's checkpoints, and the dead letters of search sinks)",
    ]);
    assert.deepEqual(
      problems({ pipelines: { a: { source: { type: 'pg_audit_table', url: 'postgres://x/y' }, sinks: [es, { type: 'duckdb', store_events: false }] } } }),
      [
        'pipelines.a.sinks: store_events: false needs a search or archive sink before the duckdb sink, in a pg_logs or rds_logs pipeline (else the events would go nowhere)',
      ],
    );
    assert.deepEqual(problems({ pipelines: { a: { source: { type: 'pg_audit_table', url: 'postgres://x/y' }, sinks: [es, { type: 'duckdb' }] } } }), []);
    assert.deepEqual(problems({ pipelines: { a: { source: { type: 'pg_logs', path: '/x' }, sinks: [es, { type: 'duckdb' }] } } }), []);
  });

  test('${ENV} interpolation, defaults, escapes, and a missing variable named with its key', () => {
    const doc = {
      pipelines: {
        a: {
          source: { type: 'pg_logs', path: '${LOGDIR}', server: '${SERVER:-db1}', file_glob: '$${literal}' },
          sinks: [{ type: 'duckdb', path: '${DBFILE}' }],
        },
      },
    };
    const config = validateConfig(doc, { LOGDIR: '/var/log/pg', DBFILE: '/data/a.duckdb' });
    assert.deepEqual(field(config.pipelines[0]!.source, 'path'), ['/var/log/pg']);
    assert.equal(field(config.pipelines[0]!.source, 'server'), 'db1');
    assert.equal(field(config.pipelines[0]!.source, 'file_glob'), '${literal}');
    assert.deepEqual(problems(doc, { LOGDIR: '/x' }), [
      'pipelines.a.sinks[0].path: environment variable DBFILE is not set (write ${DBFILE:-default} to give a default)',
    ]);
  });

  test('a database URL must be one the source speaks: scheme and shape are config errors, one line per key, never the password', () => {
    const pipe = (source: Record<string, unknown>) => ({ source, sinks: [{ type: 'duckdb' }] });
    const got = problems({
      pipelines: {
        no_scheme: pipe({ type: 'pg_audit_table', url: 'auditship:s3cret@db.example.com:5432/app' }),
        mysql_for_pg: pipe({ type: 'pg_audit_table', url: 'mysql://auditship:s3cret@db.example.com/app' }),
        http_outbox: pipe({ type: 'sql_outbox', url: 'http://auditship:s3cret@db.example.com/app' }),
        hash_in_password: pipe({ type: 'django_auditlog', url: 'postgres://auditship:s3#cret@db.example.com/app' }),
        not_text: pipe({ type: 'sql_outbox', url: 5432 }),
      },
    });
    assert.deepEqual(got, [
      'pipelines.no_scheme.source.url: expected a URL starting with postgres:// or postgresql:// (this one has no scheme://), e.g. postgres://auditship:${PGPASSWORD}@db.example.com:5432/app',
      'pipelines.mysql_for_pg.source.url: expected a URL starting with postgres:// or postgresql://, not mysql://, e.g. postgres://auditship:${PGPASSWORD}@db.example.com:5432/app',
      'pipelines.http_outbox.source.url: expected a URL starting with postgres://, postgresql://, mysql:// or mariadb://, not http://, e.g. mysql://auditship:${DB_PASSWORD}@db.example.com:3306/app',
      'pipelines.hash_in_password.source.url: not a valid postgres:// URL: check HOST:PORT, and percent-encode @ : / ? # % in the user name and password (%40 %3A %2F %3F %23 %25)',
      'pipelines.not_text.source.url: 5432 is not a postgres://, postgresql://, mysql://, mariadb:// URL',
    ]);
    assert.ok(
      got.every((p) => !p.includes('s3cret') && !p.includes('s3#cret')),
      'no password in the messages',
    );
    // What the connectors read: a socket directory in ?host= (no host), an encoded password, either dialect.
    assert.deepEqual(
      problems({
        pipelines: {
          socket: pipe({ type: 'pg_audit_table', url: 'postgresql://auditship@/app?host=/var/run/postgresql' }),
          encoded: pipe({ type: 'django_auditlog', url: 'postgres://auditship:s3%23cret@db.example.com:5432/app' }),
          maria: pipe({ type: 'sql_outbox', url: 'mariadb://root@127.0.0.1:3306/test' }),
          mysql: pipe({ type: 'sql_outbox', url: 'MySQL://root@127.0.0.1/test' }),
        },
      }),
      [],
    );
    assert.deepEqual(
      problems({
        pipelines: { es: { source: { type: 'pg_logs', path: '/x' }, sinks: [{ type: 'elasticsearch', url: 'es.example.com:9200' }, { type: 'duckdb' }] } },
      }),
      ['pipelines.es.sinks[0].url: expected a URL starting with http:// or https:// (this one has no scheme://), e.g. https://es.example.com:9200'],
    );
    // max_content_length: 100MiB (Elasticsearch's 100mb) unless set; a size in bytes too small to be a cluster's limit is refused.
    const es = (extra: Record<string, unknown>) => ({
      pipelines: { es: { source: { type: 'pg_logs', path: '/x' }, sinks: [{ type: 'elasticsearch', url: 'http://es:9200', ...extra }, { type: 'duckdb' }] } },
    });
    assert.equal(field(validateConfig(es({})).pipelines[0]!.sinks[0]!, 'max_content_length'), 104_857_600);
    assert.equal(field(validateConfig(es({ max_content_length: '2MiB' })).pipelines[0]!.sinks[0]!, 'max_content_length'), 2_097_152);
    assert.deepEqual(problems(es({ max_content_length: 100 })), [
      'pipelines.es.sinks[0].max_content_length: 100 is not a size such as 16MB or 1GiB, at least 65536 bytes',
    ]);
  });

  test('redaction: on by default; turned off per config; raw log files kept from buckets when the policy says so', () => {
    const pipeline = (sinks: unknown[]) => ({ logs: { source: { type: 'pg_logs', path: '/x' }, sinks: [...sinks, { type: 'duckdb' }] } });
    assert.deepEqual(validateConfig({ pipelines: pipeline([]) }).pipelines[0]!.redaction, { enabled: true, raw_logs_may_leave_host: true });
    assert.equal(validateConfig({ pipelines: pipeline([]), redaction: { enabled: false } }).pipelines[0]!.redaction!.enabled, false);
    const files = { type: 'archive', form: 'files', bucket: 'b' };
    assert.deepEqual(problems({ pipelines: pipeline([files]), redaction: { raw_logs_may_leave_host: false } }), [
      'pipelines.logs.sinks[0]: the files form uploads the raw log files, secrets and all, and redaction.raw_logs_may_leave_host is false; use form ndjson or parquet (redacted), or a local directory',
    ]);
    assert.deepEqual(problems({ pipelines: pipeline([{ ...files, form: 'parquet' }]), redaction: { raw_logs_may_leave_host: false } }), []);
    assert.deepEqual(
      problems({ pipelines: pipeline([{ type: 'archive', form: 'files', directory: '/srv/a' }]), redaction: { raw_logs_may_leave_host: false } }),
      [],
    );
    assert.deepEqual(problems({ pipelines: pipeline([]), redaction: { enabled: 'yes' } }), ['redaction.enabled: "yes" is not a boolean']);
  });

  test('sizes', () => {
    assert.equal(parseSize('16MB'), 16_000_000);
    assert.equal(parseSize('1GiB'), 1 << 30);
    assert.equal(parseSize(4096), 4096);
    assert.equal(parseSize('lots'), undefined);
  });

  test('YAML syntax errors name the file and line', () => {
    const tmp = tempDir();
    try {
      writeFileSync(`${tmp.dir}/bad.yaml`, 'pipelines:\n  a: [\n');
      assert.throws(
        () => loadConfig(`${tmp.dir}/bad.yaml`),
        (err: unknown) => err instanceof ConfigError && /bad\.yaml: YAML syntax error at line/.test(err.message),
      );
      assert.throws(() => loadConfig(`${tmp.dir}/none.yaml`), /config file not found/);
    } finally {
      tmp.cleanup();
    }
  });
});

describe('auditship run', () => {
  test('runs every pipeline; a failing one does not stop the others; exit code 1 names it', async () => {
    const tmp = tempDir();
    try {
      writeFileSync(
        `${tmp.dir}/auditship.yaml`,
        [
          'pipelines:',
          '  broken:',
          '    source: { type: pg_logs, path: /nonexistent/log }',
          `    sinks: [ { type: duckdb, path: "${tmp.dir}/a.duckdb" } ]`,
          '  examples:',
          `    source: { type: pg_logs, path: "${root}examples/pgaudit-logs", server: "\${SERVER_NAME:-example}" }`,
          `    sinks: [ { type: duckdb, path: "${tmp.dir}/a.duckdb" } ]`,
          '',
        ].join('\n'),
      );
      const r = await auditship(['run', '--config', `${tmp.dir}/auditship.yaml`]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /pipeline broken failed: \/nonexistent\/log does not exist/);
      assert.match(r.stderr, /1 of 2 pipeline\(s\) failed: broken/);
      assert.match(r.stdout, /examples: \d+ new audit events/);
      const again = await auditship(['run', '--config', `${tmp.dir}/auditship.yaml`, '--pipeline', 'examples', '--json']);
      assert.equal(again.code, 0, again.stderr);
      const out = JSON.parse(again.stdout) as { ok: boolean; pipelines: { stored: number; server: string }[] };
      assert.equal(out.ok, true);
      assert.equal(out.pipelines[0]!.stored, 0);
      assert.equal(out.pipelines[0]!.server, 'example');
    } finally {
      tmp.cleanup();
    }
  });

  test('config errors exit 2 with every problem listed', async () => {
    const tmp = tempDir();
    try {
      writeFileSync(`${tmp.dir}/c.yaml`, 'pipelines:\n  a:\n    source: { type: pg_logs }\n    sinks: [ { type: duckdb, pth: x } ]\n');
      const r = await auditship(['run', '--config', `${tmp.dir}/c.yaml`]);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /2 configuration problems/);
      assert.match(r.stderr, /c\.yaml: pipelines\.a\.source\.path: required/);
      assert.match(r.stderr, /c\.yaml: pipelines\.a\.sinks\[0\]\.pth: unknown key for a duckdb sink/);
    } finally {
      tmp.cleanup();
    }
  });

  test('a url that is not a PostgreSQL/MySQL URL: exit 2 before connecting, every problem listed together', async () => {
    const tmp = tempDir();
    try {
      writeFileSync(
        `${tmp.dir}/c.yaml`,
        [
          'pipelines:',
          '  audit:',
          '    source: { type: pg_audit_table, url: "localhost:5432/app" }',
          `    sinks: [ { type: duckdb, path: "${tmp.dir}/a.duckdb" } ]`,
          '  outbox:',
          '    source: { type: sql_outbox, url: "https://auditship:s3cret@127.0.0.1:3306/test" }',
          `    sinks: [ { type: duckdb, path: "${tmp.dir}/b.duckdb", threads: 0 } ]`,
          '',
        ].join('\n'),
      );
      const r = await auditship(['run', '--config', `${tmp.dir}/c.yaml`]);
      assert.equal(r.code, 2, r.stderr);
      assert.deepEqual(r.stderr.trimEnd().split('\n'), [
        'auditship: 3 configuration problems:',
        `  ${tmp.dir}/c.yaml: pipelines.audit.source.url: expected a URL starting with postgres:// or postgresql:// (this one has no scheme://), e.g. postgres://auditship:\${PGPASSWORD}@db.example.com:5432/app`,
        `  ${tmp.dir}/c.yaml: pipelines.outbox.source.url: expected a URL starting with postgres://, postgresql://, mysql:// or mariadb://, not https://, e.g. mysql://auditship:\${DB_PASSWORD}@db.example.com:3306/app`,
        `  ${tmp.dir}/c.yaml: pipelines.outbox.sinks[0].threads: 0 is not an integer ≥ 1`,
      ]);
      assert.ok(!existsSync(`${tmp.dir}/a.duckdb`) && !existsSync(`${tmp.dir}/b.duckdb`), 'nothing opened');
    } finally {
      tmp.cleanup();
    }
  });

  test('the ui section: listen, token (from the environment), basic_auth; mistakes listed', () => {
    const pipelines = { main: { source: { type: 'pg_logs', path: '/logs' }, sinks: [{ type: 'duckdb', path: 'a.duckdb' }] } };
    const ok = validateConfig({ pipelines, ui: { listen: '0.0.0.0:8080', token: '${TOK}' } }, { TOK: 'a'.repeat(32) });
    assert.deepEqual(ok.ui, { listen: '0.0.0.0:8080', token: 'a'.repeat(32) });
    assert.equal(validateConfig({ pipelines }).ui, undefined);
    try {
      validateConfig({ pipelines, ui: { listen: '127.0.0.1:1', token: 'short', basic_auth: 'nopassword', port: 1 } });
      assert.fail('accepted');
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      assert.deepEqual(err.problems, [
        'ui.port: unknown key in the ui section; allowed: listen, token, basic_auth, saved_searches',
        'ui.token: at least 16 characters (e.g. `openssl rand -hex 16`)',
        'ui.basic_auth: USER:PASSWORD, both non-empty',
      ]);
    }
  });

  test('ui.saved_searches: NAME=FILTER in the terms of the page; mistakes listed', () => {
    const pipelines = { main: { source: { type: 'pg_logs', path: '/logs' }, sinks: [{ type: 'duckdb', path: 'a.duckdb' }] } };
    const ok = validateConfig({ pipelines, ui: { saved_searches: ['Failed logins=class=ROLE&outcome=error', 'Salary=q=salary&range=7d'] } });
    assert.deepEqual(ok.ui?.saved_searches, ['Failed logins=class=ROLE&outcome=error', 'Salary=q=salary&range=7d']);
    assert.deepEqual(
      problems({
        pipelines,
        ui: { saved_searches: ['no filter here', 'A=colour=red', 'B=outcome=maybe', 'C=range=2y', 'D=', 'E=q=x', 'E=q=y'] },
      }),
      [
        'ui.saved_searches: "no filter here": NAME=FILTER, e.g. "Failed logins=class=ROLE&outcome=error"',
        'ui.saved_searches: A: unknown filter key "colour"; allowed: range, from, to, server, user, database, class, command, object, outcome, q',
        'ui.saved_searches: B: outcome is success or error',
        'ui.saved_searches: C: range is 1h, 24h, 7d, 30d, all or custom',
        'ui.saved_searches: D: the filter is empty',
        'ui.saved_searches: E: named twice',
      ],
    );
  });

  test('the metrics section: listen (any address: the metrics hold no audit data); mistakes listed', () => {
    const pipelines = { main: { source: { type: 'pg_logs', path: '/logs' }, sinks: [{ type: 'duckdb', path: 'a.duckdb' }] } };
    assert.deepEqual(validateConfig({ pipelines, metrics: { listen: '${AT:-0.0.0.0:9464}' } }).metrics, { listen: '0.0.0.0:9464' });
    assert.equal(validateConfig({ pipelines }).metrics, undefined);
    assert.deepEqual(problems({ pipelines, metrics: { listen: '127.0.0.1:9464', path: '/m' } }), [
      'metrics.path: unknown key in the metrics section; allowed: listen',
    ]);
    assert.deepEqual(problems({ pipelines, metrics: '127.0.0.1:9464' }), ['metrics: must be a mapping (listen)']);
  });
});
