import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { openSqlClient, type SqlClient } from '../../src/sources/sql/client.js';
import { assertLedgerVerifies, queryDb, runCli, scratchDir, spawnCli } from '../helpers/ingest-cli.js';
import { createTestMysqlDatabase } from '../helpers/mysql-db.js';
import { createTestDatabase } from '../helpers/pg-db.js';

/**
 * sql_outbox against the real PostgreSQL and MariaDB servers of this machine, one database each: rows
 * shipped once and marked sent, ids inserted out of order, a re-sent row stored once and a reused id stored
 * as a new event, bad rows at the head of the queue quarantined without blocking it, two concurrent
 * shippers, SIGKILL mid-batch, and a purge that never deletes an unsent row.
 */

const { dir, cleanup } = scratchDir('sql-outbox');
let seq = 0;

interface Backend {
  name: 'postgres' | 'mariadb';
  url: string;
  c: SqlClient;
  drop(): Promise<void>;
  /** DDL of the outbox table `name` (message as text when `textMessage`, to let invalid JSON in). */
  ddl(name: string, textMessage?: boolean): string;
  /** A time `days` ago as the server takes it. */
  ago(days: number): string;
}

const backends: Backend[] = [];

before(async () => {
  const pg = await createTestDatabase('outbox');
  const pgClient = await openSqlClient(pg.url, 'test');
  backends.push({
    name: 'postgres',
    url: pg.url,
    c: pgClient,
    async drop() {
      await pgClient.close();
      await pg.drop();
    },
    ddl: (name, text) =>
      `CREATE TABLE ${name} (id bigint PRIMARY KEY, is_sent boolean DEFAULT false, message ${text ? 'text' : 'jsonb'}, created_at timestamptz)`,
    ago: (days) => new Date(Date.now() - days * 86_400_000).toISOString(),
  });
  const my = await createTestMysqlDatabase('outbox');
  const myClient = await openSqlClient(my.url, 'test');
  backends.push({
    name: 'mariadb',
    url: my.url,
    c: myClient,
    async drop() {
      await myClient.close();
      await my.drop();
    },
    ddl: (name, text) =>
      `CREATE TABLE ${name} (id BIGINT NOT NULL PRIMARY KEY, is_sent BOOLEAN DEFAULT FALSE, message ${text ? 'LONGTEXT' : 'JSON'}, created_at TIMESTAMP(6) NULL)`,
    ago: (days) => new Date(Date.now() - days * 86_400_000).toISOString().replace('T', ' ').replace('Z', ''),
  });
});

after(async () => {
  for (const b of backends) await b.drop().catch(() => {});
  cleanup();
});

function config(b: Backend, table: string, source: Record<string, unknown> = {}, db?: string): { config: string; db: string } {
  const n = seq++;
  const dbPath = db ?? join(dir, `${b.name}-${n}.duckdb`);
  const lines = ['pipelines:', '  outbox:', '    source:', '      type: sql_outbox', `      url: ${JSON.stringify(b.url)}`, `      table: ${table}`];
  for (const [k, v] of Object.entries(source)) lines.push(`      ${k}: ${JSON.stringify(v)}`);
  lines.push('    sinks:', '      - type: duckdb', `        path: ${dbPath}`, '        ledger: true');
  const file = join(dir, `config-${n}.yaml`);
  writeFileSync(file, lines.join('\n') + '\n');
  return { config: file, db: dbPath };
}

async function run(cfg: { config: string }, extra: string[] = []): Promise<Record<string, number | boolean>> {
  const r = await runCli(['run', '--config', cfg.config, '--json', ...extra]);
  assert.equal(r.code, 0, `run failed: ${r.stderr}`);
  return (JSON.parse(r.stdout.trim().split('\n').pop()!) as { pipelines: Record<string, number | boolean>[] }).pipelines[0]!;
}

function msg(id: number, time = '2024-05-01T12:00:00.000Z'): string {
  return JSON.stringify({ audit_event: { date_time: time, operation: 'READ', target: { id: String(id), type: 'Profile' } } });
}

async function insert(b: Backend, table: string, rows: [number, string | null, string | null][]): Promise<void> {
  for (const [id, message, created] of rows) {
    await b.c.execute(
      `INSERT INTO ${table} (id, is_sent, message, created_at) VALUES (${b.c.p(1)}, ${b.name === 'postgres' ? 'false' : '0'}, ${b.c.p(2)}, ${b.c.p(3)})`,
      [id, message, created],
    );
  }
}

async function unsentIds(b: Backend, table: string): Promise<number[]> {
  const r = await b.c.query(`SELECT id FROM ${table} WHERE is_sent IS NULL OR is_sent = ${b.name === 'postgres' ? 'false' : '0'} ORDER BY id`);
  return r.map((x) => Number(x['id']));
}

for (const name of ['postgres', 'mariadb'] as const) {
  describe(`sql_outbox on ${name}`, () => {
    const b = () => backends.find((x) => x.name === name)!;

    test('ships unsent rows once and marks them sent; a re-sent row is stored once, a reused id is a new event', async () => {
      await b().c.execute(b().ddl('ob_basic'));
      // ids inserted out of order, with and without created_at, times with offsets
      await insert(b(), 'ob_basic', [
        [5, msg(5), b().ago(1)],
        [2, msg(2, '2024-05-01T15:00:00.123+0300'), b().ago(1)],
        [9, JSON.stringify({ other: true }), '2024-02-03 04:05:06'],
        [1, msg(1), null],
        // epoch milliseconds; a JSON null at the time path falls back to created_at
        [6, JSON.stringify({ audit_event: { date_time: 1714564800500 } }), null],
        [7, JSON.stringify({ audit_event: { date_time: null } }), '2024-02-03 04:05:07'],
      ]);
      const cfg = config(b(), 'ob_basic', { chunk_size: 2 });
      const first = await run(cfg);
      assert.equal(first['stored'], 6);
      assert.equal(first['marked'], 6);
      assert.deepEqual(await unsentIds(b(), 'ob_basic'), []);
      const rows = await queryDb(
        cfg.db,
        `SELECT row_id, strftime(event_time, '%Y-%m-%d %H:%M:%S.%f') AS t, message->>'$.audit_event.operation' AS op FROM app_events ORDER BY row_num`,
      );
      assert.deepEqual(rows, [
        { row_id: '1', t: '2024-05-01 12:00:00.000000', op: 'READ' },
        { row_id: '2', t: '2024-05-01 12:00:00.123000', op: 'READ' },
        { row_id: '5', t: '2024-05-01 12:00:00.000000', op: 'READ' },
        { row_id: '6', t: '2024-05-01 12:00:00.500000', op: null },
        { row_id: '7', t: '2024-02-03 04:05:07.000000', op: null },
        { row_id: '9', t: '2024-02-03 04:05:06.000000', op: null }, // no time in the message: created_at
      ]);
      assert.equal((await run(cfg))['stored'], 0, 'nothing left to ship');
      // A crash after the sink's commit and before "mark sent" leaves a shipped row unsent: stored once.
      await b().c.execute(`UPDATE ob_basic SET is_sent = ${name === 'postgres' ? 'false' : '0'} WHERE id = 5`);
      const again = await run(cfg);
      assert.equal(again['stored'], 0);
      assert.equal(again['duplicates'], 1);
      // A restore or a second application reuses id 2 for another row: a new event, not "already sent".
      await b().c.execute('DELETE FROM ob_basic WHERE id = 2');
      await insert(b(), 'ob_basic', [[2, msg(2, '2025-01-01T00:00:00Z'), b().ago(0)]]);
      assert.equal((await run(cfg))['stored'], 1);
      const twos = await queryDb(cfg.db, `SELECT count(*)::INTEGER AS n FROM app_events WHERE row_id = '2'`);
      assert.equal(twos[0]!['n'], 2);
      assert.deepEqual(await unsentIds(b(), 'ob_basic'), []);
    });

    test('ten bad rows at the head of the queue are quarantined, stay unsent and never block the good ones', async () => {
      await b().c.execute(b().ddl('ob_bad', true));
      const bad: [number, string | null, string | null][] = [];
      for (let i = 1; i <= 10; i++)
        bad.push([i, i % 3 === 0 ? '{"audit_event": {"date_time": "yesterday"}}' : i % 3 === 1 ? '{not json' : null, i === 10 ? null : b().ago(1)]);
      bad[9] = [10, '{"audit_event": {}}', null]; // valid JSON, no time anywhere
      await insert(b(), 'ob_bad', bad);
      await insert(
        b(),
        'ob_bad',
        Array.from({ length: 20 }, (_, i) => [100 + i, msg(100 + i), b().ago(1)] as [number, string, string]),
      );
      // batch_size 5 is smaller than the bad head: the runs still get through it, then ship everything.
      const cfg = config(b(), 'ob_bad', { chunk_size: 3, batch_size: 5 });
      let stored = 0;
      let quarantined = 0;
      for (let i = 0; i < 10 && stored < 20; i++) {
        const s = await run(cfg);
        stored += Number(s['stored']);
        quarantined += Number(s['quarantined']);
      }
      assert.equal(stored, 20);
      assert.equal(quarantined, 10);
      assert.deepEqual(
        await unsentIds(b(), 'ob_bad'),
        Array.from({ length: 10 }, (_, i) => i + 1),
        'bad rows are not marked sent',
      );
      const reasons = await queryDb(cfg.db, 'SELECT row_id, reason FROM app_quarantine ORDER BY row_id::INTEGER');
      assert.equal(reasons.length, 10);
      assert.match(String(reasons[0]!['reason']), /not valid JSON/);
      assert.match(String(reasons[1]!['reason']), /NULL/);
      assert.match(String(reasons[2]!['reason']), /is not a time/);
      assert.match(String(reasons[9]!['reason']), /no event time/);
      const next = await run(cfg);
      assert.deepEqual([next['stored'], next['quarantined'], next['skipped']], [0, 0, 10], 'known bad rows are skipped, not quarantined again');
      // Fixed at the source, a bad row ships.
      await b().c.execute(`UPDATE ob_bad SET message = ${b().c.p(1)} WHERE id = 1`, [msg(1)]);
      assert.equal((await run(cfg, []))['stored'], 1);
    });

    test('two shippers at once never ship the same row; together they ship every row', async () => {
      await b().c.execute(b().ddl('ob_two'));
      const total = 3000;
      if (name === 'postgres') {
        await b().c.execute(
          `INSERT INTO ob_two SELECT g, false, jsonb_build_object('audit_event', jsonb_build_object('date_time', '2024-05-01T12:00:00Z', 'n', g)), now() FROM generate_series(1, ${total}) g`,
        );
      } else {
        await b().c.execute(
          `INSERT INTO ob_two SELECT seq, 0, JSON_OBJECT('audit_event', JSON_OBJECT('date_time', '2024-05-01T12:00:00Z', 'n', seq)), NOW(6) FROM seq_1_to_${total}`,
        );
      }
      const one = config(b(), 'ob_two', { chunk_size: 50, batch_size: 0 });
      const two = config(b(), 'ob_two', { chunk_size: 50, batch_size: 0 });
      const [r1, r2] = await Promise.all([run(one), run(two)]);
      assert.equal(Number(r1['stored']) + Number(r2['stored']), total);
      const a = (await queryDb(one.db, 'SELECT row_id FROM app_events')).map((r) => String(r['row_id']));
      const c = (await queryDb(two.db, 'SELECT row_id FROM app_events')).map((r) => String(r['row_id']));
      const inA = new Set(a);
      assert.equal(c.filter((id) => inA.has(id)).length, 0, 'no row in both');
      assert.equal(new Set([...a, ...c]).size, total);
      assert.ok(a.length > 0 && c.length > 0, `both shippers worked (${a.length} / ${c.length})`);
      assert.deepEqual(await unsentIds(b(), 'ob_two'), []);
    });

    test('SIGKILL mid-batch, again and again, then a rerun: every row exactly once and marked sent', async () => {
      await b().c.execute(b().ddl('ob_kill'));
      const total = 20000;
      if (name === 'postgres') {
        await b().c.execute(
          `INSERT INTO ob_kill SELECT g, false, jsonb_build_object('audit_event', jsonb_build_object('date_time', '2024-05-01T12:00:00Z', 'n', g)), now() FROM generate_series(1, ${total}) g`,
        );
      } else {
        await b().c.execute(
          `INSERT INTO ob_kill SELECT seq, 0, JSON_OBJECT('audit_event', JSON_OBJECT('date_time', '2024-05-01T12:00:00Z', 'n', seq)), NOW(6) FROM seq_1_to_${total}`,
        );
      }
      const cfg = config(b(), 'ob_kill', { chunk_size: 100, batch_size: 0 });
      for (let i = 0; i < 6; i++) {
        const child = spawnCli(['run', '--config', cfg.config, '--quiet']);
        await sleep(400 + i * 150);
        child.kill('SIGKILL');
        await child.result;
      }
      const last = await run(cfg);
      assert.ok(last['ok']);
      const [counts] = await queryDb(cfg.db, 'SELECT count(*)::INTEGER AS n, count(DISTINCT row_id)::INTEGER AS d FROM app_events');
      assert.deepEqual(counts, { n: total, d: total });
      assert.deepEqual(await unsentIds(b(), 'ob_kill'), []);
      // The ledger committed with the rows after every kill: the store verifies and covers every event.
      const ledger = await assertLedgerVerifies(cfg.db, 'outbox after SIGKILLs');
      assert.equal(ledger.streams.length, 1);
      assert.match(ledger.streams[0]!.stream, /^app_events:.*\/ob_kill$/);
      assert.equal(ledger.streams[0]!.rows, total, 'the ledger covers every stored event');
    });

    test('purge deletes rows marked sent and older than retain_days, never an unsent one', async () => {
      await b().c.execute(b().ddl('ob_purge'));
      const f = name === 'postgres' ? 'false' : '0';
      const t = name === 'postgres' ? 'true' : '1';
      const rows: [number, string, string, string][] = [
        [1, t, b().ago(40), 'sent, old'],
        [2, t, b().ago(5), 'sent, recent'],
        [3, f, b().ago(40), 'unsent, old'],
        [4, 'NULL', b().ago(40), 'flag missing, old'],
        [5, t, 'NULL', 'sent, no time'],
      ];
      for (const [id, sent, created] of rows) {
        await b().c.execute(
          `INSERT INTO ob_purge (id, is_sent, message, created_at) VALUES (${id}, ${sent}, ${b().c.p(1)}, ${created === 'NULL' ? 'NULL' : b().c.p(2)})`,
          created === 'NULL' ? [msg(id)] : [msg(id), created],
        );
      }
      const cfg = config(b(), 'ob_purge', { retain_days: 30, purge_chunk_rows: 1 });
      const r = await runCli(['purge', '--config', cfg.config]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /outbox: 1 rows marked sent and older than 30 days deleted from ob_purge/);
      const left = (await b().c.query('SELECT id FROM ob_purge ORDER BY id')).map((x) => Number(x['id']));
      assert.deepEqual(left, [2, 3, 4, 5]);
    });

    test('run --follow ships rows as they come and purges on schedule; status shows the pipeline', async () => {
      await b().c.execute(b().ddl('ob_follow'));
      const t = name === 'postgres' ? 'true' : '1';
      await b().c.execute(`INSERT INTO ob_follow (id, is_sent, message, created_at) VALUES (1, ${t}, ${b().c.p(1)}, ${b().c.p(2)})`, [msg(1), b().ago(60)]);
      const cfg = config(b(), 'ob_follow', { poll_interval_ms: 200, purge_interval_hours: 1, retain_days: 30 });
      const daemon = spawnCli(['run', '--config', cfg.config, '--follow']);
      const statusOf = async () => {
        const st = await runCli(['status', '--db', cfg.db]);
        return st.stdout;
      };
      try {
        await insert(b(), 'ob_follow', [
          [2, msg(2), b().ago(0)],
          [3, msg(3), b().ago(0)],
        ]);
        const until = Date.now() + 20_000;
        while (Date.now() < until && (await unsentIds(b(), 'ob_follow')).length > 0) await sleep(100);
        assert.deepEqual(await unsentIds(b(), 'ob_follow'), []);
        await insert(b(), 'ob_follow', [[4, msg(4), b().ago(0)]]);
        while (Date.now() < until && (await unsentIds(b(), 'ob_follow')).length > 0) await sleep(100);
        assert.deepEqual(await unsentIds(b(), 'ob_follow'), []);
        let st = await statusOf();
        for (let i = 0; i < 50 && !/outbox\s+sql_outbox\s+following\s+3\s/.test(st); i++) {
          await sleep(100);
          st = await statusOf();
        }
        assert.match(st, /outbox\s+sql_outbox\s+following\s+3\s/);
        const left = (await b().c.query('SELECT id FROM ob_follow ORDER BY id')).map((x) => Number(x['id']));
        assert.deepEqual(left, [2, 3, 4], 'the 60-day-old sent row was purged on schedule');
      } finally {
        daemon.kill('SIGTERM');
        const r = await daemon.result;
        assert.equal(r.code, 0, r.stderr.slice(-2000));
      }
      assert.deepEqual(
        (await queryDb(cfg.db, 'SELECT row_id FROM app_events ORDER BY row_num')).map((x) => x['row_id']),
        ['2', '3', '4'],
      );
    });

    test('a missing table or wrong credentials: one clear line, exit 1', async () => {
      const missing = config(b(), 'no_such_outbox');
      const r = await runCli(['run', '--config', missing.config]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /table no_such_outbox does not exist/);
      assert.doesNotMatch(r.stderr, /\n\s+at /);
      const u = new URL(b().url);
      u.username = 'nobody_here';
      u.password = 'secret-pw';
      const bad = config({ ...b(), url: u.toString() }, 'ob_basic');
      const r2 = await runCli(['run', '--config', bad.config]);
      assert.equal(r2.code, 1);
      assert.match(r2.stderr, /cannot connect to .*nobody_here/);
      assert.doesNotMatch(r2.stderr, /secret-pw/, 'the password is never printed');
    });
  });
}
