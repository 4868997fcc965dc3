import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { CsvlogGenerator, csvOf } from '../helpers/csvlog-gen.js';
import { hasStackTrace, lines, runCli, scratchDir } from '../helpers/ingest-cli.js';

/**
 * Silent success is a failure mode: an ingest whose paths hold no log file auditship can read — an empty
 * directory, PostgreSQL's stderr log, a file named .csv that is not a csvlog — ends with exit 1 and one line
 * saying why and what to do; and an ingest that passes files over says which and why in its normal output.
 */
const { dir, cleanup } = scratchDir('auditship-nothing-read-');
after(cleanup);

async function failsWith(path: string, pattern: RegExp, db = join(dir, 'x.duckdb')): Promise<void> {
  const r = await runCli(['ingest', '--db', db, path]);
  assert.equal(r.code, 1, `${path}: exit 1\n${r.stdout}${r.stderr}`);
  assert.ok(!hasStackTrace(r.stderr));
  const l = lines(r.stderr);
  assert.equal(l.length, 1, `one line: ${r.stderr}`);
  assert.match(l[0]!, pattern);
  assert.ok(l[0]!.includes(path), 'names the path');
}

test('an empty directory, a stderr log, random bytes named .csv: exit 1 with one line naming why and the fix', async () => {
  const empty = join(dir, 'empty');
  mkdirSync(empty);
  await failsWith(empty, /no csvlog or jsonlog file .*no file matches.*log_directory/);

  const stderrDir = join(dir, 'stderr');
  mkdirSync(stderrDir);
  const stderrLog = join(stderrDir, 'postgresql-15-main.log');
  writeFileSync(
    stderrLog,
    '2024-05-01 12:00:00.123 UTC [123] LOG:  database system is ready to accept connections\n' +
      '2024-05-01 12:00:01.456 UTC [124] LOG:  AUDIT: SESSION,1,1,READ,SELECT,,,"SELECT 1, 2",<none>\n',
  );
  await failsWith(stderrLog, /stderr log.*log_destination = 'csvlog'/);

  const randDir = join(dir, 'rand');
  mkdirSync(randDir);
  const rand = join(randDir, 'x.csv');
  writeFileSync(rand, Buffer.from(Array.from({ length: 20_000 }, (_, i) => (i * 7919 + 13) % 256)));
  await failsWith(rand, /not a csvlog file/);
});

test('the normal output says which files were passed over and why, and how many were read before', async () => {
  const logs = join(dir, 'logs');
  mkdirSync(logs);
  const gen = new CsvlogGenerator({ seed: 31 });
  writeFileSync(join(logs, 'postgresql-2024-05-01_100000.csv'), csvOf(gen.records(50)));
  writeFileSync(join(logs, 'postgresql-2024-05-01_110000.csv'), Buffer.from('\x00\x01binary, not a log\n'.repeat(100)));
  const db = join(dir, 'logs.duckdb');
  const first = await runCli(['ingest', '--db', db, logs]);
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stdout, /postgresql-2024-05-01_110000\.csv: not a csvlog file/);
  const again = await runCli(['ingest', '--db', db, logs]);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /1 file\(s\) read before and unchanged/);
});

test('a path that does not exist: ingest and run fail with one line naming it (exit 1) before any sink opens, leaving no DuckDB file', async () => {
  const out = join(dir, 'missing-out');
  mkdirSync(out);
  const missing = join(dir, 'no-such-log-dir');
  await failsWith(missing, /does not exist.*log_directory/, join(out, 'ingest.duckdb'));
  const config = join(dir, 'missing.yaml');
  writeFileSync(
    config,
    `pipelines:\n  main:\n    source: { type: pg_logs, path: "${missing}" }\n    sinks: [ { type: duckdb, path: "${join(out, 'run.duckdb')}" } ]\n`,
  );
  const r = await runCli(['run', '--config', config]);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.ok(!hasStackTrace(r.stderr));
  assert.deepEqual(lines(r.stderr), [
    `auditship: pipeline main failed: ${missing} does not exist (listing log files); give PostgreSQL's log_directory (SHOW log_directory;) or a log file`,
  ]);
  assert.deepEqual(readdirSync(out), [], 'no database file, no .wal');
});

test('an ingest of a directory with no log file creates no DuckDB file', async () => {
  const empty = join(dir, 'empty-too');
  mkdirSync(empty);
  const db = join(dir, 'never.duckdb');
  await failsWith(empty, /no csvlog or jsonlog file/, db);
  assert.ok(!existsSync(db) && !existsSync(`${db}.wal`));
});
