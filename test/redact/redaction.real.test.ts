import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { requestJson, spawnEsServer, type SpawnedEsServer } from '../es-server/client.js';
import { listDir } from '../helpers/archive.js';
import { runCli, scratchDir, withDb } from '../helpers/ingest-cli.js';
import { DuckDBInstance } from '@duckdb/node-api';
import { API } from '../../src/ui/api.js';
import { AuditQueries, duckdbRunner } from '../../src/query/index.js';
import { startPgCluster, type PgCluster } from '../helpers/pg-cluster.js';

/**
 * Secrets in what PostgreSQL 15 + pgaudit really write, with parameters logged: every form the redaction rules
 * know — a role password in a statement that succeeds (pgaudit masks it) and in one that fails (it does not, and
 * the server's ERROR record holds it), user mapping and server passwords, dblink connection strings, pgcrypto
 * keys as literals and as bound parameters, E'…' and $$…$$ quoting, a multi-statement string. Each secret is a
 * distinct word. Ingested from csvlog and from jsonlog with the raw message kept (store_message), the store
 * must hold none of them — in any text column of any table, nor in the bytes of the file after CHECKPOINT — while
 * the statements are otherwise intact and name the rules that fired. A run with redaction turned off finds the
 * secrets, which shows that the search would see a leak.
 */
const { dir, cleanup } = scratchDir('redaction-real');
let cluster: PgCluster;
let es: SpawnedEsServer;

const SECRETS = {
  roleFailed: 'SEKRETroleFailed',
  roleDollar: 'SEKRETroleDollar',
  roleEscape: 'SEKRETroleEscape',
  roleMulti: 'SEKRETroleMulti',
  mapping: 'SEKRETmapping',
  mappingAlter: 'SEKRETmappingAlter',
  server: 'SEKRETserver',
  dblink: 'SEKRETdblink',
  keyLiteral: 'SEKRETkeyLiteral',
  keyParam: 'SEKRETkeyParam',
  keyFailed: 'SEKRETkeyFailed',
};

before(async () => {
  es = await spawnEsServer({});
  cluster = await startPgCluster({ settings: { 'pgaudit.log_parameter': 'on' } });
  await cluster.exec('CREATE EXTENSION pgcrypto; CREATE EXTENSION dblink; CREATE EXTENSION postgres_fdw; CREATE ROLE alice LOGIN');
  const c = await cluster.client();
  const fails = async (sql: string) => {
    await c.query(sql).then(
      () => assert.fail(`expected to fail: ${sql.slice(0, 40)}`),
      () => {},
    );
  };
  try {
    await fails(`CREATE ROLE alice LOGIN PASSWORD '${SECRETS.roleFailed}'`); // exists: an ERROR record with the query
    // pgaudit masks a role's password in its record of the ALTER ROLE, but a multi-statement string is logged
    // whole with each statement's record: the SELECT's record carries the password.
    await c.query(`SELECT 1; ALTER ROLE alice PASSWORD $q$${SECRETS.roleDollar}$q$`);
    await c.query(`SELECT 2; ALTER ROLE alice PASSWORD E'${SECRETS.roleEscape}\\'x'`);
    await c.query(`SELECT 3; ALTER ROLE alice PASSWORD '${SECRETS.roleMulti}'`);
    await c.query(`CREATE SERVER remote FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host 'localhost', dbname 'postgres')`);
    await fails(`ALTER SERVER remote OPTIONS (ADD password '${SECRETS.server}')`); // postgres_fdw refuses it on a server
    await c.query(`CREATE USER MAPPING FOR alice SERVER remote OPTIONS (user 'alice', password '${SECRETS.mapping}')`);
    await c.query(`ALTER USER MAPPING FOR alice SERVER remote OPTIONS (SET password '${SECRETS.mappingAlter}')`);
    await c.query(`SELECT dblink_connect('c1', 'host=127.0.0.1 port=${cluster.port} dbname=postgres user=postgres password=${SECRETS.dblink}')`);
    await c.query(`SELECT dblink_disconnect('c1')`);
    await c.query(`SELECT pgp_sym_encrypt('payload', '${SECRETS.keyLiteral}')`);
    await c.query('SELECT pgp_sym_encrypt($1, $2)', ['payload', SECRETS.keyParam]); // extended protocol: PARAMETER field
    await fails(`SELECT pgp_sym_decrypt(pgp_sym_encrypt('x', 'other'), '${SECRETS.keyFailed}')`); // wrong key: an ERROR record
  } finally {
    await c.end();
  }
  await cluster.flushLogs();
});

after(async () => {
  await cluster?.stop();
  await es?.stop();
  cleanup();
});

/** Runs a pg_logs pipeline over the cluster's logs into a new store; returns its path. */
async function ingest(name: string, format: 'csvlog' | 'jsonlog', redaction: boolean, more: Record<string, unknown>[] = []): Promise<string> {
  const db = join(dir, `${name}.duckdb`);
  const config = join(dir, `${name}.yaml`);
  writeFileSync(
    config,
    [
      'pipelines:',
      '  logs:',
      `    source: { type: pg_logs, path: ${JSON.stringify(cluster.logDir)}, server: db1, prefer_format: ${format} }`,
      `    sinks: [ ${[...more.map((m) => JSON.stringify(m)), `{ type: duckdb, path: ${JSON.stringify(db)}, store_message: true }`].join(', ')} ]`,
      ...(redaction ? [] : ['redaction:', '  enabled: false']),
      '',
    ].join('\n'),
  );
  const r = await runCli(['run', '--config', config, '--json']);
  assert.equal(r.code, 0, r.stderr.slice(-2000));
  await withDb(db, async (q) => void (await q('CHECKPOINT')), false);
  return db;
}

/** Every secret found in any text column of any table of the store, with where. */
async function secretsIn(db: string): Promise<string[]> {
  return withDb(db, async (q) => {
    const cols = await q(
      `SELECT table_name, column_name FROM information_schema.columns WHERE data_type = 'VARCHAR' AND table_schema = 'main' AND table_name IN (SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE')`,
    );
    const found: string[] = [];
    for (const c of cols) {
      for (const [name, secret] of Object.entries(SECRETS)) {
        const [n] = await q(`SELECT count(*)::INTEGER AS n FROM "${String(c['table_name'])}" WHERE contains("${String(c['column_name'])}", '${secret}')`);
        if (Number(n!['n']) > 0) found.push(`${name} in ${String(c['table_name'])}.${String(c['column_name'])}`);
      }
    }
    return found;
  });
}

describe('redaction on real pgaudit logs', () => {
  test('without redaction the secrets are in the store: the search below would see a leak', async () => {
    const db = await ingest('control', 'csvlog', false);
    const found = await secretsIn(db);
    const bytes = readFileSync(db);
    const inBytes = Object.entries(SECRETS).filter(([, secret]) => bytes.indexOf(secret) >= 0);
    assert.ok(inBytes.length > 0, 'the byte search finds secrets in a store that holds them');
    for (const name of ['roleDollar', 'roleEscape', 'roleMulti', 'mapping', 'mappingAlter', 'dblink', 'keyLiteral', 'keyParam', 'keyFailed'])
      assert.ok(
        found.some((f) => f.startsWith(`${name} in `)),
        `${name} found without redaction: ${found.join('; ')}`,
      );
  });

  test('Elasticsearch documents and the archive’s ndjson objects hold no secret either', async () => {
    await es.reset();
    const archive = join(dir, 'archive');
    await ingest('sinks', 'csvlog', true, [
      { type: 'elasticsearch', url: es.url },
      { type: 'archive', directory: archive, form: 'ndjson' },
    ]);
    await requestJson(es.url, 'POST', '/_test/refresh');
    const indices = (await requestJson(es.url, 'GET', '/_cat/indices?format=json')).body as { index: string }[];
    let docs = '';
    for (const { index } of indices) docs += await (await fetch(`${es.url}/_test/docs/${encodeURIComponent(index)}`)).text();
    assert.ok(docs.includes('<redacted:option_password>') && docs.includes('<redacted:crypto_key>'), 'the documents hold the masked statements');
    let objects = '';
    for (const key of listDir(archive)) {
      const body = readFileSync(join(archive, key));
      objects += key.endsWith('.gz') ? gunzipSync(body).toString('utf8') : body.toString('utf8');
    }
    assert.ok(objects.includes('<redacted:conninfo_password>'), 'the archive holds the masked statements');
    for (const [name, secret] of Object.entries(SECRETS)) {
      assert.ok(!docs.includes(secret), `${name} in an Elasticsearch document`);
      assert.ok(!objects.includes(secret), `${name} in an archive object`);
    }
  });

  test('the Parquet archive holds no secret: every text value of every object, read back', async () => {
    const archive = join(dir, 'archive-parquet');
    await ingest('parquet', 'csvlog', true, [{ type: 'archive', directory: archive, form: 'parquet' }]);
    const files = listDir(archive).filter((k) => k.endsWith('.parquet'));
    assert.ok(files.length > 0, 'parquet objects were written');
    const inst = await DuckDBInstance.create(':memory:');
    const conn = await inst.connect();
    try {
      let text = '';
      for (const f of files) {
        // Every column as text (Parquet pages are compressed: the bytes cannot be searched as they are).
        const rows = (await conn.runAndReadAll(`SELECT to_json(p)::VARCHAR FROM read_parquet('${join(archive, f)}') AS p`)).getRows();
        text += rows.map((r) => String(r[0])).join('\n');
      }
      assert.ok(text.includes('<redacted:role_password>') && text.includes('<redacted:crypto_key>'), 'the objects hold the masked statements');
      for (const [name, secret] of Object.entries(SECRETS)) assert.ok(!text.includes(secret), `${name} in a Parquet object`);
    } finally {
      conn.closeSync();
      inst.closeSync();
    }
  });

  for (const format of ['csvlog', 'jsonlog'] as const) {
    test(`${format}: no secret in any table or in the file's bytes; statements otherwise intact and naming the rules`, async () => {
      const db = await ingest(`redacted-${format}`, format, true);
      assert.deepEqual(await secretsIn(db), []);
      const bytes = readFileSync(db);
      for (const [name, secret] of Object.entries(SECRETS)) assert.equal(bytes.indexOf(secret), -1, `${name} in the bytes of the DuckDB file`);
      const rows = await withDb(db, (q) => q(`SELECT statement, parameter FROM audit_logs ORDER BY log_time, session_line_num`));
      const statements = rows.map((r) => String(r['statement']));
      const has = (s: string) =>
        assert.ok(statements.includes(s), `${s}\nnot among:\n${statements.filter((x) => /alice|remote|pgp|dblink/.test(x)).join('\n')}`);
      has(`SELECT 1; ALTER ROLE alice PASSWORD $q$<redacted:role_password>$q$`);
      has(`SELECT 2; ALTER ROLE alice PASSWORD E'<redacted:role_password>'`);
      has(`SELECT 3; ALTER ROLE alice PASSWORD '<redacted:role_password>'`);
      has(`SELECT pgp_sym_decrypt(pgp_sym_encrypt('x', '<redacted:crypto_key>'), '<redacted:crypto_key>')`);
      has(`CREATE USER MAPPING FOR alice SERVER remote OPTIONS (user 'alice', password '<redacted:option_password>')`);
      has(`ALTER USER MAPPING FOR alice SERVER remote OPTIONS (SET password '<redacted:option_password>')`);
      has(`SELECT dblink_connect('c1', 'host=127.0.0.1 port=${cluster.port} dbname=postgres user=postgres password=<redacted:conninfo_password>')`);
      has(`SELECT pgp_sym_encrypt('payload', '<redacted:crypto_key>')`);
      const param = rows.find((r) => r['statement'] === 'SELECT pgp_sym_encrypt($1, $2)');
      assert.ok(param, 'the extended-protocol statement is there');
      assert.equal(param['parameter'], 'payload,<redacted:crypto_key>');

      // Each event names the rules that masked it (names only), in the redactions column.
      const fired = await withDb(db, (q) =>
        q(
          `SELECT statement, redactions::VARCHAR AS r FROM audit_logs WHERE redactions IS NOT NULL OR contains(statement, 'pgp_') ORDER BY log_time, session_line_num`,
        ),
      );
      const rulesOf = (st: string) => fired.find((r) => r['statement'] === st)?.['r'];
      assert.equal(rulesOf(`SELECT 3; ALTER ROLE alice PASSWORD '<redacted:role_password>'`), '[role_password]');
      assert.equal(rulesOf('SELECT pgp_sym_encrypt($1, $2)'), '[crypto_key]', 'a masked parameter names its rule too');
      assert.equal(rulesOf(`CREATE USER MAPPING FOR alice SERVER remote OPTIONS (user 'alice', password '<redacted:option_password>')`), '[option_password]');
      const [none] = await withDb(db, (q) =>
        q(`SELECT count(*)::INTEGER AS n FROM audit_logs WHERE redactions IS NULL AND NOT contains(concat(statement, parameter), '<redacted:')`),
      );
      assert.ok(Number(none!['n']) > 0, 'events with nothing masked have no redactions');

      // What the UI's API and every report format show of the store: no secret, the masked statements.
      const inst = await DuckDBInstance.create(db, { access_mode: 'READ_ONLY' });
      const conn = await inst.connect();
      try {
        const queries = new AuditQueries(duckdbRunner(conn));
        const range = new URLSearchParams({ from: '2000-01-01T00:00:00Z', to: '2100-01-01T00:00:00Z' });
        const pages: unknown[] = [];
        let after: string | null = null;
        do {
          const params = new URLSearchParams(range);
          params.set('limit', '500');
          if (after) params.set('after', after);
          const page = (await API['/api/events']!(queries, params)) as { rows: { id: string }[]; next: string | null };
          pages.push(page);
          for (const e of page.rows) pages.push(await API['/api/event']!(queries, new URLSearchParams({ id: e.id })));
          after = page.next;
        } while (after);
        for (const path of Object.keys(API).filter((k) => k.startsWith('/api/charts/') || k === '/api/facets')) {
          pages.push(await API[path]!(queries, path === '/api/facets' ? new URLSearchParams() : new URLSearchParams(range)).catch((e: Error) => e.message));
        }
        const api = JSON.stringify(pages);
        assert.ok(api.includes('<redacted:option_password>'), 'the API shows the masked statements');
        for (const [name, secret] of Object.entries(SECRETS)) assert.ok(!api.includes(secret), `${name} in the UI API`);
      } finally {
        conn.closeSync();
        inst.closeSync();
      }
      for (const fmt of ['md', 'html', 'json']) {
        const r = await runCli(['report', '--db', db, '--since', '2000-01-01', '--format', fmt]);
        assert.equal(r.code, 0, r.stderr);
        for (const [name, secret] of Object.entries(SECRETS)) assert.ok(!r.stdout.includes(secret), `${name} in the ${fmt} report`);
      }
    });
  }
});
