import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, readFileSync, renameSync, truncateSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { gzipSync } from 'node:zlib';
import { validateConfig } from '../../src/config/load.js';
import { quietLogger } from '../../src/core/log.js';
import { noProgress } from '../../src/core/progress.js';
import { LogsPipeline, type RunSummary } from '../../src/jobs/ingest.js';
import { openDatabase } from '../../src/sinks/duckdb/database.js';
import { PgLogsSource } from '../../src/sources/pg-logs/source.js';
import { LogWatch } from '../../src/sources/pg-logs/watch.js';
import { entriesOf, localManifest } from '../helpers/archive.js';
import { CsvlogGenerator, auditOnly, csvOf, digestOf, digestSql, type GenRecord } from '../helpers/csvlog-gen.js';
import { scratchDir } from '../helpers/ingest-cli.js';

/**
 * A pg_logs pipeline kept open across passes (as the follow daemon keeps it) stores exactly what one-shot runs
 * would: a pass with nothing changed touches nothing (not even the plan), and every change a one-shot run notices
 * — an active file that grows, a finished file PostgreSQL appends to, a rotated and gzipped file, a truncated
 * file, a file whose first record completes — is noticed by the next pass, read once, and archived.
 */
const { dir, cleanup } = scratchDir('opened-pipeline');
after(cleanup);

const BASE_S = Math.floor(Date.now() / 1000) - 86_400;
const at = (minute: number) => BASE_S + minute * 60;
function touch(path: string, minute: number): void {
  utimesSync(path, at(minute), at(minute));
}

/** A record that spans lines, cut after its first line (a record being written). */
function halfRecord(gen: CsvlogGenerator): { rec: GenRecord; head: string; tail: string } {
  for (;;) {
    const rec = gen.next();
    const nl = rec.csv.indexOf('\n');
    if (rec.audit && nl < rec.csv.length - 1) return { rec, head: rec.csv.slice(0, nl + 1), tail: rec.csv.slice(nl + 1) };
  }
}

test('a pipeline kept open: nothing changed costs no plan; growth, appends to a finished file, rotation, truncation and a completed first record are read once', async () => {
  const logs = join(dir, 'logs');
  const archive = join(dir, 'archive');
  mkdirSync(logs);
  const dbPath = join(dir, 'opened.duckdb');
  const config = validateConfig({
    pipelines: {
      logs: {
        source: { type: 'pg_logs', path: logs, server: 'db1' },
        sinks: [
          { type: 'archive', directory: archive, form: 'files' },
          { type: 'duckdb', path: dbPath },
        ],
      },
    },
  });
  const db = await openDatabase(dbPath);
  const conn = await db.instance.connect();
  const digest = async () => {
    const row = (await conn.runAndReadAll(digestSql())).getRowObjects()[0]!;
    return { count: Number(row['count']), statementBytes: Number(row['statement_bytes']), md5: row['md5'] };
  };
  let plans = 0;
  const plan = PgLogsSource.prototype.plan;
  PgLogsSource.prototype.plan = function (this: PgLogsSource, ...args: Parameters<typeof plan>) {
    plans++;
    return plan.apply(this, args);
  };
  const pipeline = new LogsPipeline(config.pipelines[0]!, { log: quietLogger(), progress: noProgress, db });
  const stored: GenRecord[] = [];
  const pass = async (label: string): Promise<RunSummary> => {
    const s = await pipeline.runOnce();
    assert.ok(s.ok, `${label}: ${JSON.stringify(s.errors)}`);
    assert.deepEqual(await digest(), digestOf(stored), `${label}: every event stored once`);
    return s;
  };
  const idle = async (label: string) => {
    const before = plans;
    const s = await pass(label);
    assert.deepEqual([s.filesRead, s.events, s.stored, plans - before], [0, 0, 0, 0], `${label}: nothing read, nothing planned`);
  };
  const archived = () =>
    entriesOf(localManifest(archive))
      .map((e) => `${e.source.name}@${e.range.end}`)
      .sort();
  try {
    const gen = new CsvlogGenerator({ seed: 16, sessionBase: 1_600_000 });
    const f1 = join(logs, 'postgresql-2024-05-01_100000.csv');
    const f2 = join(logs, 'postgresql-2024-05-01_110000.csv');
    const r1 = gen.records(800);
    const r2 = gen.records(600);
    const half = halfRecord(gen);
    writeFileSync(f1, csvOf(r1));
    touch(f1, 0);
    writeFileSync(f2, csvOf(r2) + half.head);
    touch(f2, 1);
    await pipeline.open();
    stored.push(...r1, ...r2);
    const first = await pass('first pass');
    assert.equal(first.stored, auditOnly(stored).length);
    assert.deepEqual(archived(), [`postgresql-2024-05-01_100000.csv@${Buffer.byteLength(csvOf(r1))}`], 'the finished file is archived');
    await idle('nothing changed');
    await idle('nothing changed, again');

    // The active file grows: the record completes, more follow.
    const r2b = gen.records(300);
    appendFileSync(f2, half.tail + csvOf(r2b));
    touch(f2, 2);
    stored.push(half.rec, ...r2b);
    const grew = await pass('the active file grew');
    assert.deepEqual([grew.stored, grew.duplicates], [auditOnly([half.rec, ...r2b]).length, 0]);
    await idle('after growth');

    // PostgreSQL appends to a finished file (a file name in use again); its time is set back, so it stays finished.
    const r1b = gen.records(200);
    appendFileSync(f1, csvOf(r1b));
    touch(f1, 0);
    stored.push(...r1b);
    const appended = await pass('a finished file grew');
    assert.deepEqual([appended.stored, appended.duplicates], [auditOnly(r1b).length, 0]);
    assert.ok(
      archived().includes(`postgresql-2024-05-01_100000.csv@${Buffer.byteLength(csvOf([...r1, ...r1b]))}`),
      'the grown finished file is archived again',
    );
    await idle('after the append');

    // Rotation: the active file is gzipped (the checkpoint follows it by content), a new file is active.
    const f3 = join(logs, 'postgresql-2024-05-01_120000.csv');
    const r3 = gen.records(500);
    writeFileSync(`${f2}.gz`, gzipSync(readFileSync(f2)));
    touch(`${f2}.gz`, 2);
    unlinkSync(f2);
    writeFileSync(f3, csvOf(r3));
    touch(f3, 3);
    stored.push(...r3);
    const rotated = await pass('rotated and gzipped');
    assert.deepEqual([rotated.stored, rotated.duplicates], [auditOnly(r3).length, 0]);
    assert.ok(
      archived().includes(`postgresql-2024-05-01_110000.csv.gz@${Buffer.byteLength(csvOf([...r2, half.rec, ...r2b]))}`),
      'the rotated file is archived',
    );
    await idle('after rotation');

    // A rename alone (same content under another name) is noticed, and nothing is read twice.
    renameSync(f1, join(logs, 'postgresql-old.csv'));
    const renamed = await pass('renamed');
    assert.deepEqual([renamed.stored, renamed.duplicates], [0, 0]);
    await idle('after the rename');

    // Truncation: the active file starts over shorter, with its first records kept.
    const kept = r3.slice(0, 100);
    const fresh = gen.records(150);
    writeFileSync(f3, csvOf([...kept, ...fresh]));
    touch(f3, 4);
    stored.push(...fresh);
    const truncated = await pass('truncated');
    assert.deepEqual([truncated.stored, truncated.duplicates], [auditOnly(fresh).length, auditOnly(kept).length]);
    await idle('after truncation');

    // Emptied and written again alike, its time set back: only its change time tells, and that is enough to look.
    truncateSync(f3, 0);
    writeFileSync(f3, csvOf([...kept, ...fresh]));
    touch(f3, 4);
    const plansBefore = plans;
    const rewritten = await pass('rewritten alike');
    assert.deepEqual([rewritten.stored, rewritten.duplicates, plans - plansBefore], [0, 0, 1]);

    // A new file whose first line is not complete yet (nothing to know it by), then is.
    const f4 = join(logs, 'postgresql-2024-05-01_130000.csv');
    const [r4a] = gen.records(1);
    writeFileSync(f4, r4a!.csv.slice(0, 40));
    touch(f4, 5);
    const partial = await pass('a first record half written');
    assert.deepEqual([partial.stored, partial.skipped?.some((s) => s.reason === 'no complete record yet')], [0, true]);
    await idle('still half written');
    const r4 = gen.records(50);
    appendFileSync(f4, r4a!.csv.slice(40) + csvOf(r4));
    touch(f4, 6);
    stored.push(r4a!, ...r4);
    const completed = await pass('the first record completed');
    assert.equal(completed.stored, auditOnly([r4a!, ...r4]).length);
    await idle('at the end');
  } finally {
    PgLogsSource.prototype.plan = plan;
    await pipeline.close();
    conn.closeSync();
    await db.close();
  }
});

test('LogWatch: a write to a log file wakes the waiter at once; other files and silence do not', async () => {
  const logs = join(dir, 'watched');
  mkdirSync(logs);
  writeFileSync(join(logs, 'postgresql.csv'), '');
  const w = new LogWatch([logs], undefined, quietLogger(), 'p');
  const signal = new AbortController().signal;
  try {
    w.refresh();
    w.clear();
    let t = Date.now();
    setTimeout(() => appendFileSync(join(logs, 'postgresql.csv'), 'x\n'), 100);
    await w.wait(5000, 50, signal);
    const woke = Date.now() - t;
    assert.ok(woke < 2000, `woken by the write (${woke} ms)`);

    w.clear();
    t = Date.now();
    setTimeout(() => appendFileSync(join(logs, 'postgresql.log'), 'stderr output\n'), 100);
    await w.wait(800, 50, signal);
    assert.ok(Date.now() - t >= 750, 'a file the glob does not take is no news');

    // A change reported while no one waits (during a pass) wakes the next wait at once.
    w.clear();
    appendFileSync(join(logs, 'postgresql.csv'), 'y\n');
    await sleep(200);
    t = Date.now();
    await w.wait(5000, 50, signal);
    assert.ok(Date.now() - t < 2000, 'a change during the pass counts');

    // The directory replaced by another: the watch follows the path.
    w.clear();
    renameSync(logs, `${logs}-old`);
    mkdirSync(logs);
    await w.wait(300, 50, signal); // the rename of the directory itself may or may not be reported
    w.clear();
    t = Date.now();
    setTimeout(() => writeFileSync(join(logs, 'postgresql-1.csv'), 'z\n'), 300);
    await w.wait(5000, 50, signal);
    assert.ok(Date.now() - t < 2500, 'the new directory is watched');
  } finally {
    w.close();
  }
});

test("a pipeline opened again on the daemon's database after DuckDB spilled to its temporary directory", async () => {
  const logs = join(dir, 'spill-logs');
  mkdirSync(logs);
  const gen = new CsvlogGenerator({ seed: 17, sessionBase: 1_700_000 });
  const recs = gen.records(300);
  writeFileSync(join(logs, 'postgresql-2024-05-01_100000.csv'), csvOf(recs));
  const dbPath = join(dir, 'spill.duckdb');
  const config = validateConfig({ pipelines: { logs: { source: { type: 'pg_logs', path: logs }, sinks: [{ type: 'duckdb', path: dbPath }] } } });
  const db = await openDatabase(dbPath, { memoryLimit: '64MB', threads: 1 });
  const pipeline = new LogsPipeline(config.pipelines[0]!, { log: quietLogger(), progress: noProgress, db });
  try {
    await pipeline.open();
    assert.equal((await pipeline.runOnce()).stored, auditOnly(recs).length);
    // A sort larger than the memory limit spills to the temporary directory the sink set (<db>.stage/spill).
    await db.connection.run(`CREATE TEMP TABLE big AS SELECT md5(range::VARCHAR) || md5((range + 1)::VARCHAR) AS s FROM range(2500000) ORDER BY s`);
    await db.connection.run('DROP TABLE big');
    await pipeline.close();
    // DuckDB refuses to set its temporary directory again once it was used, even to the same one.
    const more = gen.records(100);
    appendFileSync(join(logs, 'postgresql-2024-05-01_100000.csv'), csvOf(more));
    await pipeline.open();
    assert.equal((await pipeline.runOnce()).stored, auditOnly(more).length);
  } finally {
    await pipeline.close();
    await db.close();
  }
});
