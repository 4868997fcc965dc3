import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { LEDGER_DDL, LedgerWriter } from '../../src/ledger/ledger.js';
import { appEventsStream, rowChangesStream } from '../../src/ledger/streams.js';
import { verifyLedger } from '../../src/ledger/verify.js';
import { ROW_CHANGES_DDL } from '../../src/sinks/duckdb/row-changes.js';
import { APP_EVENTS_DDL } from '../../src/sinks/duckdb/app-events.js';

/**
 * The ledger's streams of audit tables and outboxes, at the level of the store: batches written as the sinks
 * write them (rows with the transaction's sequence number, the entry appended before COMMIT), then edited.
 */
async function store(): Promise<{ conn: DuckDBConnection; rows: (sql: string) => Promise<unknown[][]> }> {
  const inst = await DuckDBInstance.create(':memory:');
  const conn = await inst.connect();
  await conn.run("SET TimeZone = 'UTC'");
  await conn.run(ROW_CHANGES_DDL);
  await conn.run(APP_EVENTS_DDL);
  await conn.run(LEDGER_DDL);
  return { conn, rows: async (sql) => (await conn.runAndReadAll(sql)).getRows() };
}

async function writeRowChanges(conn: DuckDBConnection, ledger: LedgerWriter, from: number, n: number): Promise<void> {
  const stream = rowChangesStream('pg1', 'audit.logged_actions');
  await conn.run('BEGIN TRANSACTION');
  const seq = await ledger.begin(stream);
  await conn.run(`INSERT INTO row_changes SELECT 'pg1', 'audit.logged_actions', i, 1000 + i, 'public', 'users', 16384, 'UPDATE',
      '{"id":' || i || ',"password_hash":"x"}', '{"email":"a@b"}', false, 'app', 'web', '10.0.0.1', 5432,
      to_timestamp(1700000000 + i), to_timestamp(1700000000 + i), to_timestamp(1700000000 + i), 'UPDATE users SET email = $1', now(), ${seq}
    FROM range(${from}, ${from + n}) r(i)`);
  await ledger.end(stream);
  await conn.run('COMMIT');
}

async function writeAppEvents(conn: DuckDBConnection, ledger: LedgerWriter, from: number, n: number): Promise<void> {
  const stream = appEventsStream('shop', 'outbox');
  await conn.run('BEGIN TRANSACTION');
  const seq = await ledger.begin(stream);
  await conn.run(`INSERT INTO app_events SELECT 'shop', 'outbox', i::VARCHAR, i, md5(i::VARCHAR), to_timestamp(1700000000 + i), to_timestamp(1700000000 + i),
      '{"actor":"u' || i || '","op":"login"}', now(), ${seq} FROM range(${from}, ${from + n}) r(i)`);
  await ledger.end(stream);
  await conn.run('COMMIT');
}

test('row changes and application events: three batches verify; an edited, deleted or forged row names its batch', async () => {
  const { conn, rows } = await store();
  const ledger = new LedgerWriter(conn);
  for (let b = 0; b < 3; b++) {
    await writeRowChanges(conn, ledger, b * 100, 100);
    await writeAppEvents(conn, ledger, b * 50, 50);
  }
  const ok = await verifyLedger(rows);
  assert.equal(ok.ok, true, JSON.stringify(ok.streams));
  assert.deepEqual(
    ok.streams.map((s) => [s.stream, s.entries, s.rows]),
    [
      ['app_events:shop/outbox', 3, 150],
      ['row_changes:pg1/audit.logged_actions', 3, 300],
    ],
  );

  await conn.run(`UPDATE row_changes SET row_data = '{"id":150}' WHERE event_id = 150`);
  await conn.run(`DELETE FROM app_events WHERE row_id = '120'`);
  const bad = await verifyLedger(rows);
  assert.equal(bad.ok, false);
  const [ae, rc] = bad.streams;
  assert.equal(rc!.batch, 2);
  assert.match(rc!.problem!, /batch 2: its rows do not hash/);
  assert.equal(ae!.batch, 3);
  assert.match(ae!.problem!, /batch 3: the ledger lists 50 row\(s\), the store holds 49/);

  await conn.run(`UPDATE row_changes SET row_data = '{"id":150,"password_hash":"x"}' WHERE event_id = 150`);
  await conn.run(`INSERT INTO app_events SELECT * REPLACE ('forged' AS row_id) FROM app_events WHERE row_id = '10'`);
  const forged = await verifyLedger(rows);
  assert.equal(forged.streams[1]!.problem, null, 'the row restored as it was verifies again');
  assert.match(forged.streams[0]!.problem!, /batch 1: .* \(row\(s\) added\)/);
});

test("rows stored before the ledger become entry 0 at their stream's first entry, and are covered from then on", async () => {
  const { conn, rows } = await store();
  await conn.run(`INSERT INTO app_events SELECT 'shop', 'outbox', i::VARCHAR, i, md5(i::VARCHAR), NULL, NULL, '{}', now(), NULL FROM range(0, 40) r(i)`);
  const before = await verifyLedger(rows);
  assert.equal(before.ok, true);
  assert.equal(before.streams[0]!.unattested, 40, 'reported as not covered yet, not as a failure');
  await writeAppEvents(conn, new LedgerWriter(conn), 40, 10);
  const after = await verifyLedger(rows);
  assert.equal(after.ok, true, JSON.stringify(after.streams));
  assert.deepEqual([after.streams[0]!.entries, after.streams[0]!.rows, after.streams[0]!.unattested], [2, 50, 0]);
  await conn.run(`UPDATE app_events SET message = '{"x":1}' WHERE row_id = '3'`);
  const edited = await verifyLedger(rows);
  assert.equal(edited.streams[0]!.batch, 0);
  assert.match(edited.streams[0]!.problem!, /batch 0: its rows do not hash/);
});

test('a transaction rolled back leaves no entry; the next one takes the same number', async () => {
  const { conn, rows } = await store();
  const ledger = new LedgerWriter(conn);
  const stream = rowChangesStream('pg1', 't');
  await conn.run('BEGIN TRANSACTION');
  assert.equal(await ledger.begin(stream), 1);
  await conn.run('ROLLBACK');
  ledger.reset();
  await writeRowChanges(conn, ledger, 0, 5);
  const r = await rows(`SELECT stream, seq, rows FROM ledger`);
  assert.deepEqual(r, [['row_changes:pg1/audit.logged_actions', 1n, 5n]]);
  assert.equal((await verifyLedger(rows)).ok, true);
});
