import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import { installAudit } from '../../src/sources/pg-audit-table/install.js';
import { queryDb, runCli, scratchDir, spawnCli, type CliChild } from '../helpers/ingest-cli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/pg-db.js';

/**
 * The pg_audit_table source against the real PostgreSQL server: commit-order safety of the horizon cursor,
 * a long transaction holding the horizon back, NOTIFY missed while disconnected, big rows, a 91plus hstore
 * table, TRUNCATE, names that need quoting, bad rows quarantined, and clear failures.
 */

const { dir, cleanup } = scratchDir('audit-table');
let tdb: TestDatabase;
let c: pg.Client;
let configSeq = 0;

before(async () => {
  tdb = await createTestDatabase('audit_table');
  c = tdb.client;
});
after(async () => {
  await tdb?.drop();
  cleanup();
});

interface Setup {
  config: string;
  db: string;
}

function pipelineConfig(source: Record<string, unknown>, db?: string): Setup {
  const n = configSeq++;
  const dbPath = db ?? join(dir, `rows-${n}.duckdb`);
  const lines = ['pipelines:', '  rows:', '    source:', '      type: pg_audit_table', `      url: ${tdb.url}`];
  for (const [k, v] of Object.entries(source)) lines.push(`      ${k}: ${JSON.stringify(v)}`);
  lines.push('    sinks:', '      - type: duckdb', `        path: ${dbPath}`);
  const config = join(dir, `config-${n}.yaml`);
  writeFileSync(config, lines.join('\n') + '\n');
  return { config, db: dbPath };
}

interface TableRun {
  code: number | null;
  stderr: string;
  summary: Record<string, unknown> | null;
}

async function runOnce(s: Setup): Promise<TableRun> {
  const r = await runCli(['run', '--config', s.config, '--json']);
  let summary: Record<string, unknown> | null = null;
  try {
    summary = (JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as { pipelines: Record<string, unknown>[] }).pipelines[0] ?? null;
  } catch {
    /* no summary: the caller asserts on code and stderr */
  }
  return { code: r.code, stderr: r.stderr, summary };
}

async function runOk(s: Setup): Promise<Record<string, unknown>> {
  const r = await runOnce(s);
  assert.equal(r.code, 0, `run failed: ${r.stderr}`);
  return r.summary!;
}

/**
 * Runs until `expected` rows were stored in all. The horizon is cluster-wide: a transaction of another test
 * on this server can hold rows back for a moment (a delay, never a loss), so a single run may stop short.
 */
async function runUntil(s: Setup, expected: number): Promise<number> {
  let stored = 0;
  for (let i = 0; i < 50 && stored < expected; i++) {
    if (i > 0) await sleep(100);
    stored += Number((await runOk(s))['stored']);
  }
  return stored;
}

async function shippedIds(db: string, where = "action = 'INSERT'"): Promise<number[]> {
  const rows = await queryDb(db, `SELECT (row_data->>'id')::BIGINT AS id FROM row_changes WHERE ${where} ORDER BY id`);
  return rows.map((r) => Number(r['id']));
}

async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (await check()) return;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

function readStatus(db: string): { pipelines: Record<string, unknown>[] } | null {
  try {
    return JSON.parse(readFileSync(`${db}.status.json`, 'utf8')) as { pipelines: Record<string, unknown>[] };
  } catch {
    return null;
  }
}

async function stop(child: CliChild): Promise<void> {
  child.kill('SIGTERM');
  const r = await child.result;
  assert.equal(r.code, 0, `the daemon did not stop cleanly: ${r.stderr.slice(-2000)}`);
}

describe('pg_audit_table on auditship pg install', () => {
  before(async () => {
    await c.query(`CREATE TABLE items (id bigint PRIMARY KEY, name text, qty int)`);
    await c.query(`CREATE TABLE "Order Items" ("Id" bigint PRIMARY KEY, "Note" text)`);
    await installAudit(c, { schema: 'auditship', tables: ['items', 'public.Order Items'] });
  });

  test('two transactions committing out of id order are both shipped, exactly once', async () => {
    await c.query('TRUNCATE auditship.logged_actions');
    const s = pipelineConfig({});
    const t1 = await tdb.connect();
    const t2 = await tdb.connect();
    try {
      await t1.query('BEGIN');
      await t1.query(`INSERT INTO items VALUES (1, 'first', 1)`); // takes the lower event id and xid
      await t2.query('BEGIN');
      await t2.query(`INSERT INTO items VALUES (2, 'second', 1)`);
      await t2.query('COMMIT'); // the later id commits first
      const ids = (await c.query<{ event_id: string }>('SELECT event_id FROM auditship.logged_actions ORDER BY event_id')).rows;
      assert.equal(ids.length, 1, 'only the committed row is visible');
      // A cursor on "id > last" would ship id 2 now and never see id 1. The horizon holds id 2 back.
      assert.equal((await runOk(s))['stored'], 0);
      await t1.query('COMMIT');
      assert.equal(await runUntil(s, 2), 2);
      assert.equal((await runOk(s))['stored'], 0);
      assert.deepEqual(await shippedIds(s.db), [1, 2]);
      const cnt = await queryDb(s.db, 'SELECT count(*)::INTEGER AS n, count(DISTINCT event_id)::INTEGER AS d FROM row_changes');
      assert.deepEqual(cnt, [{ n: 2, d: 2 }]);
    } finally {
      await t1.end();
      await t2.end();
    }
  });

  test('a long-running transaction holds the horizon back; nothing is lost', async () => {
    await c.query('DELETE FROM items');
    await c.query('TRUNCATE auditship.logged_actions');
    const s = pipelineConfig({ batch_rows: 50 });
    const long = await tdb.connect();
    try {
      await long.query('BEGIN');
      await long.query('SELECT pg_current_xact_id()'); // holds an xid, writes nothing audited
      for (let i = 0; i < 10; i++) await c.query(`INSERT INTO items SELECT g, 'n' || g, g FROM generate_series(${i * 100 + 10}, ${i * 100 + 109}) g`);
      assert.equal((await runOk(s))['stored'], 0, 'rows of transactions newer than the open one wait');
      await long.query('COMMIT');
      assert.equal(await runUntil(s, 1000), 1000);
      assert.deepEqual(
        await shippedIds(s.db),
        Array.from({ length: 1000 }, (_, i) => i + 10),
      );
    } finally {
      await long.end();
    }
  });

  test('UPDATE, DELETE and TRUNCATE; a 1 MB row; a table whose name needs quoting', async () => {
    await c.query('DELETE FROM items');
    await c.query('TRUNCATE auditship.logged_actions');
    const big = 'é'.repeat(512 * 1024) + 'x'.repeat(10); // 1 MiB of UTF-8 and a bit
    await c.query(`INSERT INTO items VALUES (1, $1, 1), (2, 'two', 2)`, [big]);
    await c.query(`UPDATE items SET qty = 5 WHERE id = 2`);
    await c.query(`DELETE FROM items WHERE id = 2`);
    await c.query(`INSERT INTO "Order Items" VALUES (7, 'quoted')`);
    await c.query(`TRUNCATE items`);
    const s = pipelineConfig({});
    assert.equal(await runUntil(s, 6), 6);
    const rows = await queryDb(
      s.db,
      `
      SELECT action, table_name, length(row_data->>'name')::INTEGER AS name_len, changed_fields::VARCHAR AS changed, statement_only,
             row_data->>'Note' AS note
      FROM row_changes ORDER BY event_id`,
    );
    assert.deepEqual(rows, [
      { action: 'INSERT', table_name: 'items', name_len: big.length, changed: null, statement_only: false, note: null },
      { action: 'INSERT', table_name: 'items', name_len: 3, changed: null, statement_only: false, note: null },
      { action: 'UPDATE', table_name: 'items', name_len: 3, changed: '{"qty": 5}', statement_only: false, note: null },
      { action: 'DELETE', table_name: 'items', name_len: 3, changed: null, statement_only: false, note: null },
      { action: 'INSERT', table_name: 'Order Items', name_len: null, changed: null, statement_only: false, note: 'quoted' },
      { action: 'TRUNCATE', table_name: 'items', name_len: null, changed: null, statement_only: true, note: null },
    ]);
    const [first] = await queryDb(s.db, `SELECT row_data->>'name' AS name FROM row_changes ORDER BY event_id LIMIT 1`);
    assert.equal(first!['name'], big, 'the 1 MB value arrives whole');
  });

  test('delete_after_ship deletes exactly the shipped rows, never the ones behind the horizon', async () => {
    await c.query('DELETE FROM items');
    await c.query('TRUNCATE auditship.logged_actions');
    const s = pipelineConfig({ delete_after_ship: true, batch_rows: 7, delete_chunk_rows: 3 });
    await c.query(`INSERT INTO items SELECT g, 'n', 1 FROM generate_series(1, 20) g`);
    const open = await tdb.connect();
    try {
      await open.query('BEGIN');
      await open.query(`INSERT INTO items VALUES (100, 'late', 1)`);
      await c.query(`INSERT INTO items SELECT g, 'n', 1 FROM generate_series(21, 30) g`);
      assert.equal(await runUntil(s, 20), 20);
      const left = await c.query<{ n: string }>(`SELECT count(*) AS n FROM auditship.logged_actions`);
      assert.equal(Number(left.rows[0]!.n), 10, 'rows behind the open transaction stay');
      await open.query('COMMIT');
      assert.equal(await runUntil(s, 11), 11);
      assert.equal(Number((await c.query<{ n: string }>(`SELECT count(*) AS n FROM auditship.logged_actions`)).rows[0]!.n), 0);
      assert.deepEqual(await shippedIds(s.db), [...Array.from({ length: 30 }, (_, i) => i + 1), 100]);
    } finally {
      await open.end();
    }
  });

  test('a backlog is committed in transactions of whole DuckDB row groups, every row once', async () => {
    await c.query('TRUNCATE auditship.logged_actions');
    // Written straight into the audit table (the triggers are not what this is about): 260,000 rows.
    await c.query(`INSERT INTO auditship.logged_actions (schema_name, table_name, relid, action, row_data, statement_only,
                     action_tstamp_tx, action_tstamp_stm, action_tstamp_clk)
                   SELECT 'public', 'items', 1, 'I', jsonb_build_object('id', g), false, now(), now(), now()
                   FROM generate_series(1, 260000) g`);
    // 100,000-row reads would make transactions of 200,000 rows; each ends at 122,880 instead.
    const s = pipelineConfig({ batch_rows: 100000, commit_rows: 122880 });
    assert.equal(await runUntil(s, 260000), 260000);
    // shipped_at is the storing transaction's now(): one value per DuckDB transaction.
    const txs = await queryDb(s.db, 'SELECT count(*)::INTEGER AS n FROM row_changes GROUP BY shipped_at ORDER BY min(event_id)');
    assert.deepEqual(
      txs.map((r) => r['n']),
      [122880, 122880, 14240],
    );
    const cnt = await queryDb(
      s.db,
      `SELECT count(DISTINCT event_id)::INTEGER AS d, min((row_data->>'id')::INTEGER) AS lo, max((row_data->>'id')::INTEGER) AS hi FROM row_changes`,
    );
    assert.deepEqual(cnt, [{ d: 260000, lo: 1, hi: 260000 }]);
    await c.query('TRUNCATE auditship.logged_actions');
  });

  test('follow: rows committed while the NOTIFY connection is down are caught up after it reconnects', async () => {
    await c.query('DELETE FROM items');
    await c.query('TRUNCATE auditship.logged_actions');
    // Polling every 10 minutes: only NOTIFY and the catch-up after a reconnect can ship these rows in time.
    const s = pipelineConfig({ poll_interval_ms: 600000, batch_latency_ms: 0 });
    const daemon = spawnCli(['run', '--config', s.config, '--follow']);
    try {
      const shipped = () => Number(readStatus(s.db)?.pipelines[0]?.['shipped'] ?? -1);
      await waitFor('the daemon to follow', () => readStatus(s.db)?.pipelines[0]?.['listening'] === true);
      await c.query(`INSERT INTO items VALUES (1, 'a', 1)`);
      await waitFor('the first row to be shipped on NOTIFY', () => shipped() === 1);
      const killed = await c.query(
        `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'auditship-listen' AND datname = current_database()`,
      );
      assert.equal(killed.rowCount, 1);
      await c.query(`INSERT INTO items SELECT g, 'b', 1 FROM generate_series(2, 50) g`); // nobody listens now
      await waitFor('the rows missed while disconnected', () => shipped() === 50);
      // status, while the daemon holds the database: its pipelines' state from the status file.
      const st = await runCli(['status', '--db', s.db]);
      assert.equal(st.code, 0, st.stderr);
      assert.match(st.stdout, /is held by auditship run --follow \(PID \d+/);
      assert.match(st.stdout, /rows\s+pg_audit_table\s+following\s+50\s/);
    } catch (err) {
      daemon.kill('SIGTERM');
      const r = await daemon.result;
      throw new Error(`${(err as Error).message}; status: ${JSON.stringify(readStatus(s.db))}; daemon log: ${r.stderr.slice(-3000)}`);
    }
    await stop(daemon);
    assert.deepEqual(
      await shippedIds(s.db),
      Array.from({ length: 50 }, (_, i) => i + 1),
    );
    assert.equal(readStatus(s.db)?.pipelines[0]?.['state'], 'stopped');
  });

  test('a missing table, a wrong URL: one clear line, exit 1', async () => {
    const missing = await runOnce(pipelineConfig({ table: 'nope.logged_actions' }));
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /audit table nope\.logged_actions does not exist/);
    assert.doesNotMatch(missing.stderr, /\n\s+at /, 'no stack trace');
    const s = pipelineConfig({});
    writeFileSync(s.config, readFileSync(s.config, 'utf8').replace(tdb.url, 'postgres://auditship:secret@127.0.0.1:1/x'));
    const down = await runOnce(s);
    assert.equal(down.code, 1);
    assert.match(down.stderr, /unreachable|cannot connect/);
    assert.doesNotMatch(down.stderr, /secret/, 'the password is never printed');
  });
});

describe('pg_audit_table on existing audit tables', () => {
  before(async () => {
    await c.query('CREATE EXTENSION IF NOT EXISTS hstore');
    await c.query('CREATE SCHEMA audit');
    // The audit-trigger 91plus layout: hstore row data, transaction_id from txid_current().
    await c.query(`CREATE TABLE audit.logged_actions (
      event_id bigserial PRIMARY KEY, schema_name text NOT NULL, table_name text NOT NULL, relid oid NOT NULL,
      session_user_name text, action_tstamp_tx timestamptz NOT NULL, action_tstamp_stm timestamptz NOT NULL,
      action_tstamp_clk timestamptz NOT NULL, transaction_id bigint, application_name text, client_addr inet,
      client_port integer, client_query text, action text NOT NULL CHECK (action IN ('I','D','U','T')),
      row_data hstore, changed_fields hstore, statement_only boolean NOT NULL)`);
    await c.query(`CREATE FUNCTION audit.log91() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        INSERT INTO audit.logged_actions (schema_name, table_name, relid, session_user_name, action_tstamp_tx, action_tstamp_stm,
          action_tstamp_clk, transaction_id, application_name, client_addr, client_port, client_query, action, row_data, changed_fields, statement_only)
        VALUES (TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_RELID, session_user, current_timestamp, statement_timestamp(), clock_timestamp(),
          txid_current(), current_setting('application_name'), inet_client_addr(), inet_client_port(), current_query(), substring(TG_OP, 1, 1),
          CASE WHEN TG_OP = 'INSERT' THEN hstore(NEW.*) ELSE hstore(OLD.*) END,
          CASE WHEN TG_OP = 'UPDATE' THEN hstore(NEW.*) - hstore(OLD.*) END, false);
        RETURN NULL;
      END $$`);
    await c.query(`CREATE TABLE legacy (id int PRIMARY KEY, name text)`);
    await c.query(`CREATE TRIGGER a AFTER INSERT OR UPDATE OR DELETE ON legacy FOR EACH ROW EXECUTE FUNCTION audit.log91()`);
  });

  test('a 91plus table: hstore becomes JSON objects; the txid cursor keeps commit order safe', async () => {
    await c.query(`INSERT INTO legacy VALUES (1, 'x'), (2, NULL)`);
    await c.query(`UPDATE legacy SET name = 'y' WHERE id = 1`);
    const s = pipelineConfig({ table: 'audit.logged_actions' });
    const r = await runOnce(s);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /lag-window/, 'a bigint transaction_id gives the safe cursor');
    const first = Number(r.summary!['stored']);
    assert.equal(first + (first < 3 ? await runUntil(s, 3 - first) : 0), 3);
    const rows = await queryDb(
      s.db,
      `SELECT action, row_data::VARCHAR AS row_data, changed_fields::VARCHAR AS changed, txid IS NOT NULL AS has_txid, client_query IS NOT NULL AS has_query FROM row_changes ORDER BY event_id`,
    );
    assert.deepEqual(rows, [
      { action: 'INSERT', row_data: '{"id": "1", "name": "x"}', changed: null, has_txid: true, has_query: true },
      { action: 'INSERT', row_data: '{"id": "2", "name": null}', changed: null, has_txid: true, has_query: true },
      { action: 'UPDATE', row_data: '{"id": "1", "name": "x"}', changed: '{"name": "y"}', has_txid: true, has_query: true },
    ]);
  });

  test('bad rows in a table read with COPY (txid cursor) are quarantined with their reason; the rest is stored', async () => {
    await c.query(`CREATE TABLE audit.variant2 (event_id bigserial PRIMARY KEY, transaction_id bigint DEFAULT txid_current(),
      schema_name text, table_name text, action text, row_data jsonb)`);
    await c.query(`INSERT INTO audit.variant2 (schema_name, table_name, action, row_data) VALUES
      ('public', 't', 'I', '{"a": 1}'), ('public', 't', 'X', '{"a": 2}'), ('public', NULL, 'D', '{"a": 3}'), ('public', 't', 'u', '{"a": 4}')`);
    const s = pipelineConfig({ table: 'audit.variant2' });
    let stored = 0;
    let quarantined = 0;
    for (let i = 0; i < 50 && stored + quarantined < 4; i++) {
      if (i) await sleep(100);
      const r = await runOk(s);
      stored += Number(r['stored']);
      quarantined += Number(r['quarantined']);
    }
    assert.deepEqual({ stored, quarantined }, { stored: 2, quarantined: 2 });
    assert.deepEqual(await queryDb(s.db, `SELECT event_id::INTEGER AS id, reason FROM row_quarantine ORDER BY event_id`), [
      { id: 2, reason: 'unknown action "X" (expected I, U, D or T)' },
      { id: 3, reason: 'table_name is missing' },
    ]);
    assert.deepEqual(await queryDb(s.db, `SELECT event_id::INTEGER AS id, action, row_data->>'a' AS a FROM row_changes ORDER BY event_id`), [
      { id: 1, action: 'INSERT', a: '1' },
      { id: 4, action: 'UPDATE', a: '4' },
    ]);
  });

  test('a variant without a transaction column runs in lag-window mode and says so; bad rows are quarantined, never blocking', async () => {
    await c.query(`CREATE TABLE audit.variant (event_id bigserial PRIMARY KEY, schema_name text, table_name text, action text,
      row_data text, action_timestamp timestamptz DEFAULT now())`);
    await c.query(`INSERT INTO audit.variant (schema_name, table_name, action, row_data) VALUES
      ('public', 't', 'I', '{"a": 1}'), ('public', 't', 'X', '{"a": 2}'), ('public', 't', 'I', 'not json'), ('public', 't', 'U', '{"a": 3}')`);
    const s = pipelineConfig({ table: 'audit.variant' });
    const r = await runOnce(s);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /lag-window mode/);
    assert.equal(r.summary!['stored'], 2);
    assert.equal(r.summary!['quarantined'], 2);
    const q = await queryDb(s.db, `SELECT event_id::INTEGER AS id, reason FROM row_quarantine ORDER BY event_id`);
    assert.deepEqual(q, [
      { id: 2, reason: 'unknown action "X" (expected I, U, D or T)' },
      { id: 3, reason: 'row_data is not valid JSON' },
    ]);
    // An id that is missing now (its transaction still open) is shipped when it commits.
    const open = await tdb.connect();
    try {
      await open.query('BEGIN');
      await open.query(`INSERT INTO audit.variant (schema_name, table_name, action, row_data) VALUES ('public', 't', 'I', '{"late": true}')`);
      await c.query(`INSERT INTO audit.variant (schema_name, table_name, action, row_data) VALUES ('public', 't', 'D', '{"a": 9}')`);
      assert.equal((await runOk(s))['stored'], 1);
      await open.query('COMMIT');
      assert.equal((await runOk(s))['stored'], 1);
    } finally {
      await open.end();
    }
    const all = await queryDb(s.db, `SELECT event_id::INTEGER AS id, action FROM row_changes ORDER BY event_id`);
    assert.deepEqual(all, [
      { id: 1, action: 'INSERT' },
      { id: 4, action: 'UPDATE' },
      { id: 5, action: 'INSERT' },
      { id: 6, action: 'DELETE' },
    ]);
    // delete_after_ship cannot be safe without a transaction column: refused with one line.
    const refused = await runOnce(pipelineConfig({ table: 'audit.variant', delete_after_ship: true }));
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /delete_after_ship needs a transaction column/);
    assert.ok(existsSync(s.db));
  });
});
