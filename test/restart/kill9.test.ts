import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { after, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { CsvlogGenerator, Rng, csvOf, digestOf, digestSql, type GenRecord } from '../helpers/csvlog-gen.js';
import { assertLedgerVerifies, ingestOk, queryDb, scratchDir, spawnCli, withDb, type CliChild, type Query } from '../helpers/ingest-cli.js';

/**
 * Exactly once under SIGKILL: `auditship ingest` is killed at random moments (before DuckDB opens, while the
 * schema is created, in the middle of a file, between files), then run to completion. After every kill the
 * database must hold exactly the events its checkpoints claim (rows and checkpoints commit together), every
 * checkpoint must sit on a record boundary, and at the end every generated event is stored once with its
 * statement text intact.
 */

const children = new Set<CliChild>();
const cleanups: (() => void)[] = [];
after(() => {
  for (const c of children) c.kill('SIGKILL');
  for (const c of cleanups) c();
});

interface KillRun {
  killed: boolean;
  ms: number;
  code: number | null;
  stderr: string;
}

/** Runs `ingest`, SIGKILLs it after `delayMs` unless it ended first. */
async function ingestAndKill(db: string, paths: string[], delayMs: number, during?: () => Promise<void>, config?: string): Promise<KillRun> {
  const child = spawnCli(config ? ['run', '--config', config, '--json', '--quiet'] : ['ingest', '--db', db, '--json', '--quiet', '--ledger', ...paths]);
  children.add(child);
  let killed = false;
  const timer = setTimeout(() => {
    killed = child.kill('SIGKILL');
  }, delayMs);
  const concurrent = during?.();
  const r = await child.result;
  clearTimeout(timer);
  children.delete(child);
  await concurrent;
  // A run that ended on its own must have succeeded; one that was killed must have died of the signal.
  if (r.signal !== 'SIGKILL' && r.code !== 0) {
    throw new Error(`ingest exited ${r.code} (not killed)\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  }
  return { killed: r.signal === 'SIGKILL' && killed, ms: r.ms, code: r.code, stderr: r.stderr };
}

/** One log file as the test wrote it: its records, and every path it had (renamed, compressed). */
interface ModelFile {
  path: string;
  paths: Set<string>;
  records: GenRecord[];
  ends: number[];
  /** Bytes of a record not written yet (the file ends in a half-written record). */
  rest: Buffer | null;
  size: number;
}

function newModelFile(path: string): ModelFile {
  return { path, paths: new Set([path]), records: [], ends: [], rest: null, size: 0 };
}

function appendRecords(f: ModelFile, records: GenRecord[]): void {
  if (records.length === 0) return;
  const text = Buffer.from(csvOf(records));
  appendFileSync(f.path, text);
  for (const r of records) {
    f.size += Buffer.byteLength(r.csv);
    f.records.push(r);
    f.ends.push(f.size);
  }
}

/** Writes only the first part of a record: at a newline inside a quoted field, or at any byte. */
function appendHalf(f: ModelFile, r: GenRecord, rng: Rng): void {
  const bytes = Buffer.from(r.csv);
  const inner = [...bytes.subarray(0, bytes.length - 1).entries()].filter(([, b]) => b === 10).map(([i]) => i + 1);
  const cut = inner.length && rng.chance(0.5) ? rng.pick(inner) : rng.int(1, bytes.length - 1);
  appendFileSync(f.path, bytes.subarray(0, cut));
  f.rest = bytes.subarray(cut);
  f.size += bytes.length;
  f.records.push(r);
  f.ends.push(f.size);
}

function completeHalf(f: ModelFile): void {
  if (f.rest) appendFileSync(f.path, f.rest);
  f.rest = null;
}

/**
 * After a kill: what ingest_files claims must be exactly what audit_logs holds. For each checkpoint, the
 * audit records of its file that end at or before its offset; the union over files must be the table.
 */
async function assertCheckpointsMatchRows(db: string, files: ModelFile[], label: string): Promise<{ stored: number; offsets: Map<ModelFile, number> }> {
  return withDb(db, async (q: Query) => {
    const tables = await q(`SELECT count(*) AS n FROM information_schema.tables WHERE table_name IN ('audit_logs', 'ingest_files')`);
    const offsets = new Map<ModelFile, number>();
    if (Number(tables[0]!['n']) < 2) {
      // Killed before the schema was committed: nothing may be stored.
      const any = await q(`SELECT count(*) AS n FROM information_schema.tables WHERE table_name = 'audit_logs'`);
      if (Number(any[0]!['n']) === 1) assert.equal(Number((await q('SELECT count(*) AS n FROM audit_logs'))[0]!['n']), 0, `${label}: rows without checkpoints`);
      return { stored: 0, offsets };
    }
    const cps = await q('SELECT path, byte_offset, events, complete FROM ingest_files');
    const expected: GenRecord[] = [];
    for (const cp of cps) {
      const path = String(cp['path']);
      const f = files.find((m) => m.paths.has(path));
      assert.ok(f, `${label}: checkpoint for an unknown file ${path}`);
      assert.ok(!offsets.has(f), `${label}: two checkpoints for ${path}`);
      const offset = Number(cp['byte_offset']);
      offsets.set(f, offset);
      assert.ok(offset === 0 || f.ends.includes(offset), `${label}: checkpoint ${offset} of ${path} is not on a record boundary`);
      const upTo = f.records.filter((_, i) => f.ends[i]! <= offset);
      expected.push(...upTo);
      assert.equal(Number(cp['events']), upTo.filter((r) => r.audit).length, `${label}: ingest_files.events of ${path}`);
    }
    const want = digestOf(expected);
    const [got] = await q(digestSql());
    const [keys] = await q('SELECT count(*) AS n, count(DISTINCT (session_id, session_line_num)) AS k FROM audit_logs');
    assert.equal(Number(keys!['k']), Number(keys!['n']), `${label}: duplicate (session_id, session_line_num)`);
    assert.deepEqual(
      { count: Number(got!['count']), statementBytes: Number(got!['statement_bytes']), md5: got!['md5'] },
      want,
      `${label}: stored rows differ from what the checkpoints claim`,
    );
    return { stored: want.count, offsets };
  });
}

/** After a complete run, killed runs have left nothing behind next to the database. */
function assertNoLeftovers(db: string): void {
  const extra = readdirSync(dirname(db)).filter((n) => n !== basename(db) && n !== `${basename(db)}.wal`);
  assert.deepEqual(extra, [], `files left next to the database after a complete run`);
}

async function assertAllStored(db: string, files: ModelFile[]): Promise<void> {
  const all = files.flatMap((f) => f.records);
  const want = digestOf(all);
  const [got] = await queryDb(db, digestSql());
  const [keys] = await queryDb(db, 'SELECT count(*) AS n, count(DISTINCT (session_id, session_line_num)) AS k FROM audit_logs');
  assert.equal(Number(keys!['n']), want.count, 'count(*) = generated audit records');
  assert.equal(Number(keys!['k']), Number(keys!['n']), 'no duplicate identity');
  assert.deepEqual(
    { count: Number(got!['count']), statementBytes: Number(got!['statement_bytes']), md5: got!['md5'] },
    want,
    'every generated (session_id, line) present with its statement and parameter',
  );
  const [q] = await queryDb(db, 'SELECT count(*) AS n FROM quarantine');
  assert.equal(Number(q!['n']), 0, 'nothing quarantined');
}

describe('exactly once under SIGKILL', { concurrency: false }, () => {
  test('finished files: ≥ 15 kills at random moments, then a full run stores every event once', { timeout: 180_000 }, async (t) => {
    const { dir, cleanup } = scratchDir('kill9-finished');
    cleanups.push(cleanup);
    const logs = join(dir, 'log');
    mkdirSync(logs);
    const gen = new CsvlogGenerator({ seed: 9001 });
    const files: ModelFile[] = [];
    const base = Date.now() / 1000 - 3600;
    for (let i = 0; i < 6; i++) {
      const f = newModelFile(join(logs, `postgresql-2024-05-01_12${String(i).padStart(2, '0')}00.csv`));
      writeFileSync(f.path, '');
      appendRecords(f, gen.records(40_000));
      utimesSync(f.path, base + i * 60, base + i * 60);
      files.push(f);
    }
    const totalBytes = files.reduce((s, f) => s + f.size, 0);

    // Calibrate: a run with almost nothing to read (an empty directory is an error: nothing to ingest), and
    // one file alone, into scratch databases.
    const calDir = join(dir, 'cal');
    mkdirSync(calDir);
    writeFileSync(join(calDir, 'tiny.csv'), csvOf(gen.records(1)));
    let t0 = Date.now();
    await ingestOk(join(dir, 'cal0.duckdb'), [calDir]);
    const startupMs = Date.now() - t0;
    rmSync(join(calDir, 'tiny.csv'));
    writeFileSync(join(calDir, 'one.csv'), readFileSync(files[0]!.path));
    t0 = Date.now();
    await ingestOk(join(dir, 'cal1.duckdb'), [calDir]);
    const calMs = Date.now() - t0;
    const msPerByte = Math.max(1, calMs - startupMs) / files[0]!.size;
    const fullMs = startupMs + Math.round(totalBytes * msPerByte);

    mkdirSync(join(dir, 'db'));
    const db = join(dir, 'db', 'audit.duckdb');
    // Some runs go through `run` with commits every few thousand events, so kills also land between
    // commits inside a file and later runs resume in the middle of a finished file. Checkpoints are kept per
    // pipeline: the config's pipeline is named `ingest`, as the ingest command's is, so both kinds of run
    // resume one set of checkpoints.
    const config = join(dir, 'small-commits.yaml');
    writeFileSync(
      config,
      [
        'pipelines:',
        '  ingest:',
        '    source:',
        '      type: pg_logs',
        `      path: ${JSON.stringify(logs)}`,
        '      batch_bytes: 1MB',
        '    sinks:',
        '      - type: duckdb',
        `        path: ${JSON.stringify(db)}`,
        '        commit_events: 5000',
        '        ledger: true',
        '',
      ].join('\n'),
    );
    const rng = new Rng(424242);
    let speed = 1;
    let startupEst = startupMs;
    let kills = 0;
    const log: string[] = [];
    let done = { stored: 0, offsets: new Map<ModelFile, number>() };
    for (let i = 0; kills < 16 && i < 40; i++) {
      const remaining = files.reduce((s, f) => s + f.size - (done.offsets.get(f) ?? 0), 0);
      const remainingMs = Math.round(remaining * msPerByte * speed);
      let delay: number;
      // Spread from "before DuckDB opens" (node is still loading) to most of what is left to do, which
      // at first is a full run; aimed inside the remaining work so that most runs die mid-work, and skewed
      // short to keep the test quick.
      if (i % 6 === 0) delay = rng.int(0, 40);
      else delay = Math.max(50, startupEst + Math.round(rng.float() ** 2 * remainingMs * 0.6));
      const viaRun = i % 3 === 2;
      const r = await ingestAndKill(db, [logs], delay, undefined, viaRun ? config : undefined);
      if (r.killed) kills++;
      else {
        // It finished first: the calibration ran on a busier machine than this run. Aim shorter from now on.
        speed *= 0.6;
        startupEst = Math.min(startupEst, Math.round(r.ms * 0.7));
      }
      if (statSafe(db)) {
        done = await assertCheckpointsMatchRows(db, files, `after run ${i} (delay ${delay} ms)`);
        // The ledger commits with the rows: a kill anywhere leaves a store that verifies.
        if (i % 4 === 1) await assertLedgerVerifies(db, `after run ${i}`);
      }
      log.push(
        `run ${i}${viaRun ? ' (small commits)' : ''}: delay ${delay} ms, ${r.killed ? 'killed' : `exited ${r.code}`} after ${r.ms} ms, ${done.stored} stored`,
      );
    }
    t.diagnostic(`calibration: startup ${startupMs} ms, ${calMs} ms for ${files[0]!.size} bytes; full run ≈ ${fullMs} ms\n${log.join('\n')}`);
    assert.ok(kills >= 15, `only ${kills} runs were killed:\n${log.join('\n')}`);

    const last = await ingestOk(db, [logs], ['--ledger']);
    assert.equal(last.duplicates, 0, 'resumed from checkpoints: nothing read twice');
    await assertAllStored(db, files);
    const again = await ingestOk(db, [logs], ['--ledger']);
    assert.equal(again.stored, 0);
    assert.equal(again.events, 0, 'a rerun reads nothing');
    await assertAllStored(db, files);
    const ledger = await assertLedgerVerifies(db, 'after the kills');
    assert.equal(ledger.streams[0]!.rows, digestOf(files.flatMap((f) => f.records)).count, 'the ledger covers every stored event');
    assertNoLeftovers(db);
  });

  test('a growing active file (half-written records, rotation, gzip) killed mid-run', { timeout: 180_000 }, async (t) => {
    const { dir, cleanup } = scratchDir('kill9-active');
    cleanups.push(cleanup);
    const logs = join(dir, 'log');
    mkdirSync(logs);
    const gen = new CsvlogGenerator({ seed: 77, sessionBase: 1_000_000 });
    const rng = new Rng(2718);
    const files: ModelFile[] = [];
    let fileNo = 0;
    let past = Date.now() / 1000 - 7200;
    const newFile = (): ModelFile => {
      const f = newModelFile(join(logs, `postgresql-2024-05-01_13${String(fileNo++).padStart(4, '0')}.csv`));
      writeFileSync(f.path, '');
      files.push(f);
      return f;
    };
    const finish = (f: ModelFile): void => {
      completeHalf(f);
      past += 60;
      utimesSync(f.path, past, past);
      if (rng.chance(0.5)) {
        // Rotated and compressed: x.csv → x.csv.gz, original removed.
        const gz = `${f.path}.gz`;
        writeFileSync(gz, gzipSync(readFileSync(f.path)));
        utimesSync(gz, past, past);
        unlinkSync(f.path);
        f.path = gz;
        f.paths.add(gz);
      }
    };
    const first = newFile();
    appendRecords(first, gen.records(15_000));
    finish(first);
    let active = newFile();
    appendRecords(active, gen.records(10_000));

    mkdirSync(join(dir, 'db'));
    const db = join(dir, 'db', 'audit.duckdb');
    let kills = 0;
    let runMs = 1000; // a run's length here, learnt from the runs that were not killed
    const log: string[] = [];
    for (let i = 0; kills < 12 && i < 30; i++) {
      // Between runs: the server completes what it was writing, writes more, sometimes rotates.
      completeHalf(active);
      if (i > 0 && rng.chance(0.25)) {
        finish(active);
        active = newFile();
      }
      appendRecords(active, gen.records(rng.int(200, 6000)));
      if (rng.chance(0.6)) appendHalf(active, gen.next(), rng);
      // Some runs also see the file grow while they read it.
      const writer = rng.chance(0.4)
        ? async () => {
            const target = active;
            for (let k = 0; k < 5; k++) {
              await new Promise((res) => setTimeout(res, rng.int(20, 150)));
              completeHalf(target);
              appendRecords(target, gen.records(rng.int(50, 800)));
              if (rng.chance(0.5)) appendHalf(target, gen.next(), rng);
            }
          }
        : undefined;
      const delay = i % 6 === 0 ? rng.int(0, 40) : rng.int(50, Math.max(100, Math.round(runMs * 0.9)));
      const r = await ingestAndKill(db, [logs], delay, writer);
      if (r.killed) kills++;
      else runMs = Math.round((runMs + r.ms) / 2);
      log.push(`run ${i}: delay ${delay} ms, ${r.killed ? 'killed' : `exited ${r.code}`} after ${r.ms} ms`);
      if (statSafe(db)) {
        await assertCheckpointsMatchRows(db, files, `after run ${i} (delay ${delay} ms)`);
        const [q] = await queryDb(db, `SELECT (SELECT count(*) FROM information_schema.tables WHERE table_name = 'quarantine') AS t`);
        if (Number(q!['t']) === 1) {
          const [n] = await queryDb(db, 'SELECT count(*) AS n FROM quarantine');
          assert.equal(Number(n!['n']), 0, `after run ${i}: a half-written record was quarantined`);
        }
      }
    }
    t.diagnostic(log.join('\n'));
    assert.ok(kills >= 12, `only ${kills} runs were killed:\n${log.join('\n')}`);

    completeHalf(active);
    const last = await ingestOk(db, [logs]);
    assert.equal(last.duplicates, 0, 'resumed from checkpoints: nothing read twice');
    await assertAllStored(db, files);
    assert.equal((await ingestOk(db, [logs])).stored, 0);
    assertNoLeftovers(db);
  });

  test('a kill while a new database is being created leaves one the next run can use', { timeout: 120_000 }, async () => {
    const { dir, cleanup } = scratchDir('kill9-create');
    cleanups.push(cleanup);
    const logs = join(dir, 'log');
    mkdirSync(logs);
    const gen = new CsvlogGenerator({ seed: 31337, sessionBase: 2_000_000 });
    const f = newModelFile(join(logs, 'postgresql-2024-05-01_140000.csv'));
    writeFileSync(f.path, '');
    appendRecords(f, gen.records(3000));
    // Find when a run first has the database file, then kill around that moment.
    const probe = join(dir, 'probe.duckdb');
    const t = Date.now();
    await ingestOk(probe, [logs]);
    const runMs = Date.now() - t;
    const rng = new Rng(99);
    for (let i = 0; i < 6; i++) {
      const db = join(dir, `create-${i}.duckdb`);
      const delay = Math.round(runMs * (0.15 + 0.13 * i)) + rng.int(0, 30);
      await ingestAndKill(db, [logs], delay);
      if (statSafe(db)) await assertCheckpointsMatchRows(db, [f], `create ${i} (delay ${delay} ms)`);
      const s = await ingestOk(db, [logs]);
      assert.equal(s.duplicates, 0, `create ${i}: nothing stored twice`);
      await assertAllStored(db, [f]);
      rmSync(db, { force: true });
      rmSync(`${db}.wal`, { force: true });
    }
  });
});

function statSafe(path: string): boolean {
  try {
    return statSync(path).size > 0;
  } catch {
    return false;
  }
}
