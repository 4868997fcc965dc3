import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { DuckDBInstance } from '@duckdb/node-api';
import { openStoreReader, SqlError } from '../../src/sinks/duckdb/reader.js';
import { CsvlogGenerator, csvOf, digestOf, digestSql, type GenRecord } from '../helpers/csvlog-gen.js';
import { ingestOk, runCli, scratchDir, spawnCli, type CliChild } from '../helpers/ingest-cli.js';

/**
 * One store, readers and writers side by side (sinks/duckdb/lock.ts, read-service.ts, reader.ts): a writer
 * waits for readers instead of failing — auditship's readers let go at once when it asks, a foreign read-only
 * holder when it is done; while a writer holds the file, reads go through it and see only committed data, and
 * it refuses statements that would write; a second writer is refused at once, naming the first.
 */
const { dir, cleanup } = scratchDir('shared-store');
const children = new Set<CliChild>();
after(() => {
  for (const c of children) c.kill('SIGKILL');
  cleanup();
});

const BASE = Math.floor(Date.now() / 1000) - 86_400;

function writeLogs(name: string, files: number, perFile: number, seed: number): { logs: string; records: GenRecord[] } {
  const logs = join(dir, name);
  mkdirSync(logs);
  const gen = new CsvlogGenerator({ seed, sessionBase: seed * 100_000 });
  const records: GenRecord[] = [];
  for (let i = 0; i < files; i++) {
    const batch = gen.records(perFile);
    records.push(...batch);
    const f = join(logs, `postgresql-2024-05-01_${String(i).padStart(2, '0')}0000.csv`);
    writeFileSync(f, csvOf(batch));
    utimesSync(f, BASE + i * 60, BASE + i * 60);
  }
  return { logs, records };
}

test('an ingest waits for readers: auditship readers let go when it asks, a foreign read-only holder when it is done', async () => {
  const first = writeLogs('wait-a', 1, 2000, 41);
  const db = join(dir, 'wait.duckdb');
  await ingestOk(db, [first.logs]);

  // An auditship reader that would keep the file open for a minute after its statement.
  const reader = openStoreReader(db, { lingerMs: 60_000 });
  await reader.sql('SELECT count(*) FROM audit_logs');
  assert.equal(reader.lastVia, 'file');
  const second = writeLogs('wait-b', 1, 2000, 42);
  const r1 = await runCli(['ingest', '--db', db, '--json', second.logs]);
  assert.equal(r1.code, 0, `the ingest waited for the reader to let go: ${r1.stderr}`);
  assert.ok(r1.ms < 30_000, 'the reader let go when the writer asked, not after its minute');
  assert.ok(!existsSync(`${db}.writer-waiting`), 'the writer removed its marker');

  // A read-only DuckDB of another program, let go of after two seconds.
  const foreign = await DuckDBInstance.create(db, { access_mode: 'READ_ONLY' });
  const third = writeLogs('wait-c', 1, 2000, 43);
  const child = spawnCli(['ingest', '--db', db, '--json', third.logs]);
  children.add(child);
  await sleep(2000);
  assert.equal(child.exitCode, null, 'the ingest is still waiting');
  foreign.closeSync();
  const r2 = await child.result;
  children.delete(child);
  assert.equal(r2.code, 0, `the ingest went on once the holder let go: ${r2.stderr}`);

  const [got] = await reader.all(digestSql());
  assert.deepEqual(
    { count: Number(got!['count']), statementBytes: Number(got!['statement_bytes']), md5: got!['md5'] },
    digestOf([...first.records, ...second.records, ...third.records]),
  );
  await reader.close();
});

test('while an ingest writes, reads go through it and see whole commits; writes are refused; a second writer is refused at once', async () => {
  const { logs, records } = writeLogs('through', 8, 15_000, 44);
  const db = join(dir, 'through.duckdb');
  const child = spawnCli(['ingest', '--db', db, '--json', logs]);
  children.add(child);
  while (!existsSync(`${db}.read.sock`) && child.exitCode === null) await sleep(10);
  assert.equal(child.exitCode, null, 'the ingest runs');

  const reader = openStoreReader(db);
  const seen: number[] = [];
  let refused = 0;
  let second: Awaited<ReturnType<typeof runCli>> | null = null;
  while (child.exitCode === null) {
    let row: Record<string, unknown> | undefined;
    try {
      [row] = await reader.all('SELECT count(*) AS n, count(DISTINCT (session_id, session_line_num)) AS k FROM audit_logs');
    } catch (err) {
      // A new store: the writer creates its tables right after it opened the file.
      if (err instanceof SqlError && /audit_logs does not exist/.test(err.message)) continue;
      throw err;
    }
    if (reader.lastVia === 'writer') {
      seen.push(Number(row!['n']));
      assert.equal(Number(row!['k']), Number(row!['n']), 'no event seen twice');
      if (refused === 0) {
        const target = join(dir, 'copied.csv');
        await assert.rejects(reader.sql(`COPY (SELECT * FROM audit_logs) TO '${target}'`), SqlError);
        await assert.rejects(reader.sql('DELETE FROM audit_logs'), SqlError);
        assert.ok(!existsSync(target), 'nothing written');
        refused++;
        second = await runCli(['ingest', '--db', db, '--json', logs]);
      }
    }
    await sleep(50);
  }
  const r = await child.result;
  children.delete(child);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(seen.length >= 2, `reads went through the writer (${seen.length})`);
  for (let i = 1; i < seen.length; i++) assert.ok(seen[i]! >= seen[i - 1]!, `counts never go back: ${seen.join(', ')}`);
  assert.equal(refused, 1);
  assert.equal(second!.code, 1, 'the second writer is refused');
  const lines = second!.stderr.trim().split('\n');
  assert.equal(lines.length, 1, second!.stderr);
  assert.match(lines[0]!, /is being written by another process \(PID \d+: .*auditship ingest .*\); wait for it to finish/);

  // Done: reads are on the file again, and it holds every event once.
  const [got] = await reader.all(digestSql());
  assert.equal(reader.lastVia, 'file');
  assert.deepEqual({ count: Number(got!['count']), statementBytes: Number(got!['statement_bytes']), md5: got!['md5'] }, digestOf(records));
  await reader.close();
  assert.deepEqual(
    readdirSync(dir).filter((f) => f.startsWith('through.duckdb.')),
    [],
    'no socket, marker or stage left',
  );
});
