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
  const csvs = readdirSync(examples).filter((n) => n.endsWith('.json')).sort();
  assert.ok(csvs.length >= 2, 'the examples hold at least two jsonlog files');
  copyFileSync(join(examples, csvs[0]!), join(logs, csvs[0]!));
  const db = join(dir, 'audit.duckdb');
  const config = join(dir, 'config.yaml');
  writeFileSync(config, [
    'pipelines:',
    '  logs:',
    `    source: { type: pg_logs, path: ${JSON.stringify(logs)}, poll_interval_ms: 200 }`,
    `    sinks: [ { type: duckdb, path: ${JSON.stringify(db)} } ]`,
    '  rows:',
    `    source: { type: pg_audit_table, url: ${JSON.stringify(tdb.url)}, poll_interval_ms: 200 }`,
    `    sinks: [ { type: duckdb, path: ${JSON.stringify(db)} } ]`,
    '',
  ].join('\n'));
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
  assert.ok(status().every((p) => p['state'] === 'stopped'), JSON.stringify(status()));
  const [rows] = await queryDb(db, 'SELECT count(*)::INTEGER AS n FROM row_changes');
  assert.equal(rows!['n'], 25);
  const files = await queryDb(db, 'SELECT count(*)::INTEGER AS n FROM ingest_files');
  assert.equal(files[0]!['n'], 2);
});
