import assert from 'node:assert/strict';
import { existsSync, mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { CsvlogGenerator, csvOf, digestOf, digestSql, type GenRecord } from '../helpers/csvlog-gen.js';
import { ingestOk, queryDb, runCli, scratchDir, spawnCli, type CliChild } from '../helpers/ingest-cli.js';

/**
 * Ctrl-C during a long ingest: the first SIGINT (or SIGTERM) stops reading, commits what was read, prints the
 * summary and one line saying so, and exits 130 (143); a second signal ends the process at once. Either way the
 * next run continues from the checkpoints and the database ends with every event exactly once.
 */
const { dir, cleanup } = scratchDir('interrupt');
const children = new Set<CliChild>();
after(() => {
  for (const c of children) c.kill('SIGKILL');
  cleanup();
});

const BASE = Math.floor(Date.now() / 1000) - 86_400;

/** Enough log that a run takes seconds: 12 finished files of 25 000 records. */
function writeLogs(name: string, seed: number): { logs: string; records: GenRecord[] } {
  const logs = join(dir, name);
  mkdirSync(logs);
  const gen = new CsvlogGenerator({ seed, multilineShare: 0.1 });
  const records: GenRecord[] = [];
  for (let i = 0; i < 12; i++) {
    const batch = gen.records(25_000);
    records.push(...batch);
    const f = join(logs, `postgresql-2024-05-01_${String(i).padStart(2, '0')}0000.csv`);
    writeFileSync(f, csvOf(batch));
    utimesSync(f, BASE + i * 60, BASE + i * 60);
  }
  return { logs, records };
}

/** Starts ingest; once it has opened its database, sends `signals` (one after the other); returns the exit. */
async function interrupted(db: string, logs: string, signals: NodeJS.Signals[]) {
  const child = spawnCli(['ingest', '--db', db, '--json', logs]);
  children.add(child);
  let exited = false;
  void child.result.then(() => {
    exited = true;
  });
  // The database file appears when the sink opens — after the CLI installed its signal handlers.
  while (!existsSync(db) && !exited) await sleep(20);
  await sleep(400);
  for (const s of signals) {
    child.kill(s);
    await sleep(5);
  }
  const r = await child.result;
  children.delete(child);
  return r;
}

async function assertExactlyOnce(db: string, records: GenRecord[]): Promise<void> {
  const want = digestOf(records);
  const [got] = await queryDb(db, digestSql());
  const [keys] = await queryDb(db, 'SELECT count(*) AS n, count(DISTINCT (session_id, session_line_num)) AS k FROM audit_logs');
  assert.equal(Number(keys!['k']), Number(keys!['n']), 'no event stored twice');
  assert.deepEqual(
    { count: Number(got!['count']), statementBytes: Number(got!['statement_bytes']), md5: got!['md5'] },
    want,
    'every event stored once, statement and parameter intact',
  );
}

for (const [signal, code] of [
  ['SIGINT', 130],
  ['SIGTERM', 143],
] as const) {
  test(`${signal}: what was read is committed, the run says so and exits ${code}; the next run finishes the job`, async () => {
    const { logs, records } = writeLogs(signal, signal === 'SIGINT' ? 31 : 32);
    const db = join(dir, `${signal}.duckdb`);
    const r = await interrupted(db, logs, [signal]);
    assert.equal(r.signal, null, `the CLI handles ${signal} itself (stderr: ${r.stderr.slice(0, 500)})`);
    assert.equal(r.code, code, r.stderr.slice(0, 1000));
    const summary = JSON.parse(r.stdout.trim().split('\n').pop()!) as { stored: number; interrupted?: boolean };
    assert.equal(summary.interrupted, true, 'the summary says the run was interrupted');
    const total = digestOf(records).count;
    assert.ok(summary.stored < total, `stopped before the end (${summary.stored} of ${total})`);
    const last = r.stderr.trim().split('\n').pop()!;
    assert.match(last, new RegExp(`stopped by ${signal}: [\\d,]+ new events committed; the same command continues from there`));
    // What the summary claims is what the database holds.
    const [n] = await queryDb(db, 'SELECT count(*) AS n FROM audit_logs');
    assert.equal(Number(n!['n']), summary.stored, 'committed = reported');

    const rest = await ingestOk(db, [logs]);
    assert.equal(summary.stored + rest.stored, total, 'the next run stores exactly the rest');
    await assertExactlyOnce(db, records);
  });
}

test('a second Ctrl-C ends the process at once; nothing is lost or stored twice', async () => {
  const { logs, records } = writeLogs('twice', 33);
  const db = join(dir, 'twice.duckdb');
  const r = await interrupted(db, logs, ['SIGINT', 'SIGINT']);
  assert.equal(r.code, 130, r.stderr.slice(0, 1000));
  await ingestOk(db, [logs]);
  await assertExactlyOnce(db, records);
});

test('run: SIGINT commits what was read, skips the pipelines not started, says so and exits 130; the next run finishes', async () => {
  const { logs, records } = writeLogs('run', 34);
  const db = join(dir, 'run.duckdb');
  const config = join(dir, 'run.yaml');
  writeFileSync(
    config,
    [
      'pipelines:',
      '  first:',
      `    source: { type: pg_logs, path: ${JSON.stringify(logs)}, server: db1 }`,
      `    sinks: [ { type: duckdb, path: ${JSON.stringify(db)} } ]`,
      '',
    ].join('\n'),
  );
  const child = spawnCli(['run', '--config', config, '--json']);
  children.add(child);
  while (!existsSync(db) && child.exitCode === null) await sleep(20);
  await sleep(400);
  child.kill('SIGINT');
  const r = await child.result;
  children.delete(child);
  assert.equal(r.code, 130, r.stderr.slice(0, 1000));
  const summary = JSON.parse(r.stdout.trim().split('\n').pop()!) as { interrupted?: string; pipelines: { stored: number; interrupted?: boolean }[] };
  assert.equal(summary.interrupted, 'SIGINT');
  assert.equal(summary.pipelines[0]!.interrupted, true);
  assert.match(
    r.stderr.trim().split('\n').pop()!,
    /stopped by SIGINT: 1 of 1 pipeline\(s\) ran, each committed what it read; the same command continues from there/,
  );
  const [n] = await queryDb(db, 'SELECT count(*) AS n FROM audit_logs');
  assert.equal(Number(n!['n']), summary.pipelines[0]!.stored, 'committed = reported');
  const again = await runCli(['run', '--config', config, '--json']);
  assert.equal(again.code, 0, again.stderr);
  await assertExactlyOnce(db, records);
});
