import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Rng } from '../helpers/csvlog-gen.js';
import { assertLedgerVerifies, queryDb, runCli, scratchDir, spawnCli, type CliChild } from '../helpers/ingest-cli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/pg-db.js';
import { installAudit } from '../../src/sources/pg-audit-table/install.js';

/**
 * `auditship run --follow` on an audit table with delete_after_ship, SIGKILLed again and again while two
 * writers commit concurrently (transactions of 1-20 rows, some rolled back, committing out of id order).
 * At the end every committed row is in DuckDB exactly once, and the audit table is empty: no row was
 * deleted before it was stored, none was shipped twice.
 */

const { dir, cleanup } = scratchDir('table-kill9');
let tdb: TestDatabase | undefined;
const children = new Set<CliChild>();
after(async () => {
  for (const c of children) c.kill('SIGKILL');
  await tdb?.drop();
  cleanup();
});

test('SIGKILL in a loop under concurrent writes: every committed row exactly once, no unshipped row deleted', async () => {
  tdb = await createTestDatabase('table_kill9');
  const c = tdb.client;
  await c.query('CREATE TABLE items (id bigint PRIMARY KEY, v text)');
  await installAudit(c, { schema: 'auditship', tables: ['items'] });
  const db = join(dir, 'rows.duckdb');
  const config = join(dir, 'config.yaml');
  writeFileSync(
    config,
    [
      'pipelines:',
      '  rows:',
      '    source:',
      '      type: pg_audit_table',
      `      url: ${tdb.url}`,
      '      delete_after_ship: true',
      '      batch_rows: 300',
      '      delete_chunk_rows: 100',
      '      poll_interval_ms: 200',
      '      batch_latency_ms: 0',
      '    sinks:',
      '      - type: duckdb',
      `        path: ${db}`,
      '        ledger: true',
      '',
    ].join('\n'),
  );

  const committed = new Set<number>();
  let nextId = 1;
  let writing = true;
  const rng = new Rng(9);
  const writer = async (seed: number) => {
    const w = await tdb!.connect();
    const r = new Rng(seed);
    try {
      while (writing) {
        const n = r.int(1, 20);
        const ids = Array.from({ length: n }, () => nextId++);
        await w.query('BEGIN');
        await w.query(`INSERT INTO items SELECT g, repeat('x', $2) FROM unnest($1::bigint[]) g`, [ids, r.int(1, 300)]);
        if (r.chance(0.3)) await sleep(r.int(1, 30)); // hold the transaction open: later ids commit first
        if (r.chance(0.1)) {
          await w.query('ROLLBACK');
          continue;
        }
        await w.query('COMMIT');
        for (const id of ids) committed.add(id);
      }
    } finally {
      await w.end();
    }
  };
  const writers = [writer(1), writer(2)];

  let kills = 0;
  // Eight rounds, and more while nothing has been shipped yet: the horizon is cluster-wide, so a long
  // transaction of a test running alongside can hold every row back for a while (a delay, never a loss).
  let shippedSoFar = 0;
  for (let round = 0; round < 8 || (shippedSoFar === 0 && round < 40); round++) {
    const child = spawnCli(['run', '--config', config, '--follow']);
    children.add(child);
    // Past round 8 with nothing shipped, the daemon has not reached its first commit before the kill (a
    // loaded machine starts it slowly, or another test's transaction holds the horizon): give it longer.
    await sleep(rng.int(300, 1500) + (round >= 8 && shippedSoFar === 0 ? (round - 7) * 400 : 0));
    child.kill('SIGKILL');
    const r = await child.result;
    children.delete(child);
    if (r.signal === 'SIGKILL') kills++;
    else assert.fail(`the daemon exited by itself (code ${r.code}): ${r.stderr.slice(-2000)}`);
    if (round >= 7 && shippedSoFar === 0 && existsSync(db))
      shippedSoFar = Number((await queryDb(db, 'SELECT count(*)::INTEGER AS n FROM row_changes').catch(() => [{ n: 0 }]))[0]!['n']);
  }
  writing = false;
  await Promise.all(writers);
  assert.ok(kills >= 6, `killed ${kills} times`);
  assert.ok(committed.size > 500, `the writers committed ${committed.size} rows`);

  const [before] = await queryDb(db, 'SELECT count(*)::INTEGER AS n FROM row_changes');
  assert.ok(Number(before!['n']) > 0, 'the daemon shipped rows between the kills');

  // Catch up once the writers are done (a run may stop short while another transaction holds the horizon).
  for (let i = 0; i < 50; i++) {
    const r = await runCli(['run', '--config', config, '--json', '--quiet']);
    assert.equal(r.code, 0, r.stderr);
    const left = await c.query<{ n: string }>('SELECT count(*) AS n FROM auditship.logged_actions');
    if (Number(left.rows[0]!.n) === 0) break;
    await sleep(100);
  }
  const left = await c.query<{ n: string }>('SELECT count(*) AS n FROM auditship.logged_actions');
  assert.equal(Number(left.rows[0]!.n), 0, 'every shipped row was deleted');

  const stored = await queryDb(db, `SELECT (row_data->>'id')::BIGINT AS id FROM row_changes WHERE action = 'INSERT' ORDER BY id`);
  const want = [...committed].sort((a, b) => a - b);
  const got = stored.map((r) => Number(r['id']));
  const missing = want.filter((id) => !got.includes(id));
  assert.deepEqual(missing, [], 'no committed row is missing (none deleted before it was stored)');
  assert.deepEqual(got, want, 'exactly the committed rows, each once');
  const [counts] = await queryDb(db, 'SELECT count(*)::INTEGER AS n, count(DISTINCT event_id)::INTEGER AS d FROM row_changes');
  assert.equal(counts!['n'], counts!['d'], 'no event stored twice');
  const ledger = await assertLedgerVerifies(db, 'after the kills');
  assert.equal(ledger.streams.length, 1);
  assert.equal(ledger.streams[0]!.rows, Number(counts!['n']), 'the ledger covers every stored row change');
});
