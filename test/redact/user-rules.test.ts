import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { CsvlogGenerator, csvOf } from '../helpers/csvlog-gen.js';
import { queryDb, runCli, scratchDir, withDb } from '../helpers/ingest-cli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/pg-db.js';
import { installAudit } from '../../src/sources/pg-audit-table/install.js';

/**
 * The user's redaction rules (config `redaction`): regex patterns on pgaudit texts, columns of audited tables
 * in an audit table's rows, JSON paths of outbox messages. Each secret is nowhere in the store afterwards —
 * not in any text column, not in the file's bytes — and what is around it is kept.
 */
const { dir, cleanup } = scratchDir('redact-rules-');
let tdb: TestDatabase;

before(async () => {
  tdb = await createTestDatabase('redact_rules');
});
after(async () => {
  await tdb?.drop();
  cleanup();
});

function writeConfig(name: string, source: string[], redaction: string[]): { config: string; db: string } {
  const db = join(dir, `${name}.duckdb`);
  const config = join(dir, `${name}.yaml`);
  writeFileSync(
    config,
    [
      'pipelines:',
      '  p:',
      '    source:',
      ...source,
      '    sinks:',
      '      - type: duckdb',
      `        path: ${JSON.stringify(db)}`,
      'redaction:',
      ...redaction,
      '',
    ].join('\n'),
  );
  return { config, db };
}

/** Every text column of every table holding the text, and whether the file's bytes do (after CHECKPOINT). */
async function findIn(db: string, secret: string): Promise<string[]> {
  await withDb(db, async (q) => void (await q('CHECKPOINT')), false);
  const found = await withDb(db, async (q) => {
    const cols = await q(
      `SELECT table_name, column_name FROM information_schema.columns WHERE data_type IN ('VARCHAR', 'JSON') AND table_schema = 'main'
         AND table_name IN (SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE')`,
    );
    const out: string[] = [];
    for (const c of cols) {
      const [n] = await q(
        `SELECT count(*)::INTEGER AS n FROM "${String(c['table_name'])}" WHERE contains("${String(c['column_name'])}"::VARCHAR, '${secret}')`,
      );
      if (Number(n!['n']) > 0) out.push(`${String(c['table_name'])}.${String(c['column_name'])}`);
    }
    return out;
  });
  if (readFileSync(db).includes(secret)) found.push('the bytes of the file');
  return found;
}

test('patterns: an SSN in statements, quoted or not, is masked, the rule named', async () => {
  const logs = join(dir, 'logs');
  mkdirSync(logs);
  const gen = new CsvlogGenerator({ seed: 11 });
  const recs = gen.records(500);
  const audit = recs.filter((r) => r.audit);
  // One in a string constant, one bare (no quote: the fast path would pass it by without the patterns).
  recs.push(gen.withStatement(audit[5]!, `SELECT * FROM people WHERE ssn = '123-45-6789'`));
  recs.push(gen.withStatement(audit[6]!, `SELECT 1 FROM people WHERE id = 987-65-4321`));
  writeFileSync(join(logs, 'postgresql-2024-05-01_120000.csv'), csvOf(recs));
  const { config, db } = writeConfig(
    'patterns',
    ['      type: pg_logs', `      path: ${JSON.stringify(logs)}`],
    ['  patterns:', `    - ${JSON.stringify('ssn=\\b\\d{3}-\\d{2}-\\d{4}\\b')}`],
  );
  const r = await runCli(['run', '--config', config, '--quiet']);
  assert.equal(r.code, 0, r.stderr);
  for (const secret of ['123-45-6789', '987-65-4321']) assert.deepEqual(await findIn(db, secret), [], `${secret} stored`);
  const rows = await queryDb(db, `SELECT statement, redactions::VARCHAR AS r FROM audit_logs WHERE redactions IS NOT NULL ORDER BY statement`);
  assert.deepEqual(rows, [
    { statement: `SELECT * FROM people WHERE ssn = '<redacted:ssn>'`, r: '[ssn]' },
    { statement: `SELECT 1 FROM people WHERE id = <redacted:ssn>`, r: '[ssn]' },
  ]);
  const [n] = await queryDb(db, 'SELECT count(*)::INTEGER AS n FROM audit_logs');
  assert.equal(n!['n'], 502, 'every event stored');
});

test('a bad pattern is a configuration error, every problem on its line', async () => {
  const { config } = writeConfig(
    'bad',
    ['      type: pg_logs', `      path: ${JSON.stringify(dir)}`],
    ['  patterns: ["SSN=x", "ok=("]', '  columns: ["users.password"]', '  json_paths: ["a..b"]'],
  );
  const r = await runCli(['run', '--config', config]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /redaction.patterns: "SSN=x": give NAME=REGEX/);
  assert.match(r.stderr, /redaction.patterns: "ok=\(":/);
  assert.match(r.stderr, /redaction.columns: "users.password": give SCHEMA.TABLE.COLUMN/);
  assert.match(r.stderr, /redaction.json_paths: "a..b": give a dotted path/);
});

test('columns: a password hash masked and an SSN left out of row_data and changed_fields, in PostgreSQL', async () => {
  const c = tdb.client;
  await c.query('CREATE TABLE users (id int PRIMARY KEY, email text, password_hash text, ssn text)');
  await c.query('CREATE TABLE notes (id int PRIMARY KEY, password_hash text)');
  await installAudit(c, { schema: 'auditship', tables: ['users', 'notes'] });
  await c.query(`INSERT INTO users VALUES (1, 'a@example.com', '$2b$12$hashhashhashhashhashhash', '111-22-3333')`);
  await c.query(`UPDATE users SET password_hash = '$2b$12$otherotherotherotherother', ssn = '444-55-6666' WHERE id = 1`);
  await c.query(`INSERT INTO notes VALUES (1, 'kept: another table')`);
  const { config, db } = writeConfig(
    'columns',
    ['      type: pg_audit_table', `      url: ${JSON.stringify(tdb.url)}`, '      table: auditship.logged_actions'],
    ['  columns: ["public.users.password_hash", "public.users.ssn:drop"]'],
  );
  const r = await runCli(['run', '--config', config, '--quiet']);
  assert.equal(r.code, 0, r.stderr);
  for (const secret of ['hashhash', 'otherother', '111-22-3333', '444-55-6666']) assert.deepEqual(await findIn(db, secret), [], `${secret} stored`);
  const rows = await queryDb(db, `SELECT table_name, action, row_data, changed_fields FROM row_changes ORDER BY event_id`);
  assert.equal(rows.length, 3);
  const data = rows.map((x) => ({
    t: x['table_name'],
    a: x['action'],
    d: JSON.parse(String(x['row_data'])) as Record<string, unknown>,
    ch: x['changed_fields'] === null ? null : (JSON.parse(String(x['changed_fields'])) as Record<string, unknown>),
  }));
  assert.deepEqual(data[0]!.d, { id: 1, email: 'a@example.com', password_hash: '<redacted:column>' });
  assert.deepEqual(data[1]!.ch, { password_hash: '<redacted:column>' }, 'the changed fields too; the dropped column is gone from them');
  assert.deepEqual(data[2]!.d, { id: 1, password_hash: 'kept: another table' }, 'a column of the same name in another table is kept');
});

test('json paths: an outbox message masked and dropped before the store', async () => {
  const c = tdb.client;
  await c.query('CREATE TABLE ob (id bigint PRIMARY KEY, is_sent boolean DEFAULT false, message jsonb, created_at timestamptz DEFAULT now())');
  await c.query(`INSERT INTO ob (id, message) VALUES
    (1, '{"audit_event": {"date_time": "2024-05-01T12:00:00Z", "changes": {"password": ["old-pass-1", "new-pass-2"]}, "actor": {"email": "x@y.z", "id": 5}}}'),
    (2, '{"audit_event": {"date_time": "2024-05-01T12:00:01Z", "op": "login"}}')`);
  const { config, db } = writeConfig(
    'paths',
    ['      type: sql_outbox', `      url: ${JSON.stringify(tdb.url)}`, '      table: ob'],
    ['  json_paths: ["audit_event.changes.password", "audit_event.actor.email:drop"]'],
  );
  const r = await runCli(['run', '--config', config, '--quiet']);
  assert.equal(r.code, 0, r.stderr);
  for (const secret of ['old-pass-1', 'new-pass-2', 'x@y.z']) assert.deepEqual(await findIn(db, secret), [], `${secret} stored`);
  const rows = await queryDb(db, 'SELECT row_id, message FROM app_events ORDER BY row_id');
  assert.deepEqual(JSON.parse(String(rows[0]!['message'])), {
    audit_event: { date_time: '2024-05-01T12:00:00Z', changes: { password: '<redacted:json_path>' }, actor: { id: 5 } },
  });
  assert.deepEqual(JSON.parse(String(rows[1]!['message'])), { audit_event: { date_time: '2024-05-01T12:00:01Z', op: 'login' } });
  const sent = await c.query('SELECT count(*)::int AS n FROM ob WHERE is_sent');
  assert.equal(sent.rows[0].n, 2, 'both rows marked sent');
});
