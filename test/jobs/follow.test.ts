import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ROOT, queryDb, scratchDir, spawnCli } from '../helpers/ingest-cli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/pg-db.js';
import { installAudit } from '../../src/sources/pg-audit-table/install.js';

/**
 * `auditship run --follow` with a pg_logs and a pg_audit_table pipeline writing to the same DuckDB file: one
 * daemon holds the file and serves both; new log files and new audit rows arrive while it runs; SIGTERM
 * makes it finish and exit 0 with everything committed.
 */

const { dir, cleanup } = scratchDir('follow');
let tdb: TestDatabase | undefined;
after(async () => {
  await tdb?.drop();
  cleanup();
});

test('one daemon, two pipelines on one DuckDB file: log files and audit rows keep arriving', async () => {
  tdb = await createTestDatabase('follow');
  await tdb.client.query('CREATE TABLE t (id int PRIMARY KEY)');
  await installAudit(tdb.client, { schema: 'auditship', tables: ['t'] });
  const logs = join(dir, 'logs');
  mkdirSync(logs);
  const examples = join(ROOT, 'examples', 'pgaudit-logs');
  const csvs = readdirSync(examples)
    .filter((n) => n.endsWith('.json'))
    .sort();
  assert.ok(csvs.length >= 2, 'the examples hold at least two jsonlog files');
  copyFileSync(join(examples, csvs[0]!), join(logs, csvs[0]!));
  const db = join(dir, 'audit.duckdb');
  const config = join(dir, 'config.yaml');
  writeFileSync(
    config,
    [
      'pipelines:',
      '  logs:',
      `    source: { type: pg_logs, path: ${JSON.stringify(logs)}, poll_interval_ms: 200 }`,
      `    sinks: [ { type: duckdb, path: ${JSON.stringify(db)} } ]`,
      '  rows:',
      `    source: { type: pg_audit_table, url: ${JSON.stringify(tdb.url)}, poll_interval_ms: 200 }`,
      `    sinks: [ { type: duckdb, path: ${JSON.stringify(db)} } ]`,
      '',
    ].join('\n'),
  );
  const daemon = spawnCli(['run', '--config', config, '--follow']);
  const status = () => {
    try {
      return (JSON.parse(readFileSync(`${db}.status.json`, 'utf8')) as { pipelines: Record<string, unknown>[] }).pipelines;
    } catch {
      return [];
    }
  };
  const until = async (what: string, ok: () => boolean) => {
    for (let i = 0; i < 200 && !ok(); i++) await sleep(100);
    assert.ok(ok(), `timed out waiting for ${what}: ${JSON.stringify(status())}`);
  };
  const of = (name: string) => status().find((p) => p['pipeline'] === name);
  try {
    await until('both pipelines to run', () => of('logs')?.['state'] === 'following' && of('rows')?.['state'] === 'following');
    const firstEvents = Number(of('logs')!['stored']);
    assert.ok(firstEvents > 0, 'the first log file was ingested');
    await tdb.client.query('INSERT INTO t SELECT generate_series(1, 25)');
    copyFileSync(join(examples, csvs[1]!), join(logs, csvs[1]!));
    await until('the new rows', () => Number(of('rows')?.['shipped']) === 25);
    await until('the new log file', () => Number(of('logs')?.['stored']) > firstEvents);
  } finally {
    daemon.kill('SIGTERM');
  }
  const r = await daemon.result;
  assert.equal(r.code, 0, r.stderr.slice(-2000));
  assert.ok(
    status().every((p) => p['state'] === 'stopped'),
    JSON.stringify(status()),
  );
  const [rows] = await queryDb(db, 'SELECT count(*)::INTEGER AS n FROM row_changes');
  assert.equal(rows!['n'], 25);
  const files = await queryDb(db, 'SELECT count(*)::INTEGER AS n FROM ingest_files');
  assert.equal(files[0]!['n'], 2);
});

test('two audit-table pipelines on one DuckDB file keep their rows apart under concurrent load', async () => {
  const a = await createTestDatabase('follow_a');
  const b = await createTestDatabase('follow_b');
  try {
    for (const t of [a, b]) {
      await t.client.query('CREATE TABLE t (id bigint PRIMARY KEY, src text, pad text)');
      await installAudit(t.client, { schema: 'auditship', tables: ['t'] });
    }
    const db = join(dir, 'two.duckdb');
    const config = join(dir, 'two.yaml');
    writeFileSync(
      config,
      [
        'pipelines:',
        `  a: { source: { type: pg_audit_table, url: ${JSON.stringify(a.url)}, server: a, batch_latency_ms: 0 }, sinks: [ { type: duckdb, path: ${JSON.stringify(db)} } ] }`,
        `  b: { source: { type: pg_audit_table, url: ${JSON.stringify(b.url)}, server: b, batch_latency_ms: 0 }, sinks: [ { type: duckdb, path: ${JSON.stringify(db)} } ] }`,
        '',
      ].join('\n'),
    );
    const daemon = spawnCli(['run', '--config', config, '--follow']);
    const shipped = (name: string) => {
      try {
        const st = JSON.parse(readFileSync(`${db}.status.json`, 'utf8')) as { pipelines: Record<string, unknown>[] };
        return Number(st.pipelines.find((p) => p['pipeline'] === name)?.['shipped'] ?? -1);
      } catch {
        return -1;
      }
    };
    try {
      for (let i = 0; i < 200 && (shipped('a') < 0 || shipped('b') < 0); i++) await sleep(100);
      const load = (t: TestDatabase, src: string) =>
        (async () => {
          for (let k = 0; k < 150; k++)
            await t.client.query(`INSERT INTO t SELECT g, $1, repeat('x', 100) FROM generate_series(${k * 10 + 1}, ${k * 10 + 10}) g`, [src]);
        })();
      await Promise.all([load(a, 'A'), load(b, 'B')]);
      for (let i = 0; i < 300 && (shipped('a') < 1500 || shipped('b') < 1500); i++) await sleep(100);
    } finally {
      daemon.kill('SIGTERM');
    }
    const r = await daemon.result;
    assert.equal(r.code, 0, r.stderr.slice(-2000));
    const rows = await queryDb(
      db,
      `SELECT server, row_data->>'src' AS src, count(*)::INTEGER AS n, count(DISTINCT event_id)::INTEGER AS d
                                    FROM row_changes GROUP BY ALL ORDER BY ALL`,
    );
    assert.deepEqual(rows, [
      { server: 'a', src: 'A', n: 1500, d: 1500 },
      { server: 'b', src: 'B', n: 1500, d: 1500 },
    ]);
  } finally {
    await a.drop();
    await b.drop();
  }
});

test('pg_logs: after a pass that found nothing changed, a write is shipped at once (fs.watch), not at the next poll', async (t) => {
  const logs = join(dir, 'watched-logs');
  mkdirSync(logs);
  const examples = join(ROOT, 'examples', 'pgaudit-logs');
  const jsons = readdirSync(examples)
    .filter((n) => n.endsWith('.json'))
    .sort();
  copyFileSync(join(examples, jsons[0]!), join(logs, jsons[0]!));
  const db = join(dir, 'watched.duckdb');
  const config = join(dir, 'watched.yaml');
  const POLL_MS = 4000;
  writeFileSync(
    config,
    [
      'pipelines:',
      '  logs:',
      `    source: { type: pg_logs, path: ${JSON.stringify(logs)}, poll_interval_ms: ${POLL_MS} }`,
      `    sinks: [ { type: duckdb, path: ${JSON.stringify(db)} } ]`,
      '',
    ].join('\n'),
  );
  const daemon = spawnCli(['run', '--config', config, '--follow', '--quiet']);
  const status = () => {
    try {
      return (JSON.parse(readFileSync(`${db}.status.json`, 'utf8')) as { pipelines: Record<string, unknown>[] }).pipelines[0] ?? {};
    } catch {
      return {};
    }
  };
  const until = async (what: string, ok: () => boolean, ms = 20_000) => {
    const deadline = Date.now() + ms;
    while (!ok()) {
      assert.ok(Date.now() < deadline, `timed out waiting for ${what}: ${JSON.stringify(status())}`);
      await sleep(20);
    }
  };
  try {
    await until('the first pass', () => Number(status()['stored']) > 0);
    const first = String(status()['lastRunAt']);
    const stored = Number(status()['stored']);
    // The second pass, a poll later, finds nothing changed; right after it, a new file.
    await until('the second pass', () => String(status()['lastRunAt']) !== first);
    const t0 = Date.now();
    copyFileSync(join(examples, jsons[1]!), join(logs, jsons[1]!));
    await until('the new file', () => Number(status()['stored']) > stored, POLL_MS * 3);
    const ms = Date.now() - t0;
    t.diagnostic(`shipped ${ms} ms after the write`);
    assert.ok(ms < POLL_MS / 2, `shipped ${ms} ms after the write (the next poll was ${POLL_MS} ms away)`);
  } finally {
    daemon.kill('SIGTERM');
  }
  const r = await daemon.result;
  assert.equal(r.code, 0, r.stderr.slice(-2000));
});
