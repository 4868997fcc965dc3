import assert from 'node:assert/strict';
import { mkdirSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { constants as zc, gunzipSync, gzipSync } from 'node:zlib';
import { CsvlogGenerator, Rng, csvEndOffsets, csvOf, digestOf, digestSql, type GenRecord } from '../helpers/csvlog-gen.js';
import { ingest, lines, scratchDir, spawnCli, withDb, type CliChild, type Query } from '../helpers/ingest-cli.js';

/**
 * Exactly once under SIGKILL, with damaged compressed files: `auditship` is killed at random moments while it
 * reads a truncated .gz and a .gz whose first member fails its checksum (read a second time, up to the damage
 * a byte at a time), with commits every few thousand events inside them. After every kill the database holds
 * exactly the events its checkpoints claim, and a file's damage is in quarantine exactly when its checkpoint
 * says it was read to its end (they commit together). At the end: every readable record once, each damage
 * quarantined once, and a run that reads nothing and says nothing.
 */

const children = new Set<CliChild>();
const { dir, cleanup } = scratchDir('kill9-damaged');
after(() => {
  for (const c of children) c.kill('SIGKILL');
  cleanup();
});

interface ModelFile {
  path: string;
  records: GenRecord[];
  ends: number[];
  /** Where its checkpoint ends: the last complete record before the damage (or the end of the file). */
  finalOffset: number;
  /** The damage's quarantine entry, for a damaged file. */
  damage?: { raw: string; reason: RegExp };
}

function model(path: string, records: GenRecord[], readable: number, reason?: RegExp): ModelFile {
  const ends = csvEndOffsets(records);
  const complete = ends.filter((e) => e <= readable);
  const finalOffset = complete.length ? complete[complete.length - 1]! : 0;
  const f: ModelFile = { path, records, ends, finalOffset };
  if (reason) f.damage = { raw: Buffer.from(csvOf(records)).subarray(finalOffset, readable).toString('utf8'), reason };
  return f;
}

/** After a kill: rows = what the checkpoints claim; a damage entry exactly with a finished checkpoint. */
async function assertConsistent(db: string, files: ModelFile[], label: string): Promise<number> {
  return withDb(db, async (q: Query) => {
    const [t] = await q(`SELECT count(*) AS n FROM information_schema.tables WHERE table_name IN ('audit_logs', 'ingest_files', 'quarantine')`);
    if (Number(t!['n']) < 3) return 0; // killed before the schema was committed
    const cps = await q('SELECT path, byte_offset, events, complete FROM ingest_files');
    const quarantine = await q('SELECT path, byte_offset, reason, raw FROM quarantine');
    const expected: GenRecord[] = [];
    for (const cp of cps) {
      const f = files.find((m) => m.path === cp['path']);
      assert.ok(f, `${label}: a checkpoint for an unknown file ${String(cp['path'])}`);
      const offset = Number(cp['byte_offset']);
      assert.ok(offset === 0 || f.ends.includes(offset), `${label}: checkpoint ${offset} of ${f.path} is not on a record boundary`);
      assert.ok(offset <= f.finalOffset, `${label}: checkpoint ${offset} of ${f.path} past the damage (${f.finalOffset})`);
      const upTo = f.records.filter((_, i) => f.ends[i]! <= offset);
      expected.push(...upTo);
      assert.equal(Number(cp['events']), upTo.filter((r) => r.audit).length, `${label}: ingest_files.events of ${f.path}`);
      const damage = quarantine.filter((x) => x['path'] === f.path);
      if (f.damage && cp['complete'] === true) {
        assert.equal(offset, f.finalOffset, `${label}: ${f.path} read to its end`);
        assert.equal(damage.length, 1, `${label}: ${f.path} finished, its damage quarantined once`);
        assert.equal(Number(damage[0]!['byte_offset']), f.finalOffset);
        assert.match(String(damage[0]!['reason']), f.damage.reason);
        assert.equal(damage[0]!['raw'], f.damage.raw);
      } else {
        assert.deepEqual(damage, [], `${label}: ${f.path} has a quarantine entry without a finished checkpoint`);
      }
    }
    assert.equal(
      quarantine.length,
      cps.reduce((n, cp) => n + (cp['complete'] === true && files.find((m) => m.path === cp['path'])?.damage ? 1 : 0), 0),
      `${label}: quarantine entries of files without a checkpoint\n${JSON.stringify({ cps, quarantine: quarantine.map((x) => ({ ...x, raw: String(x['raw']).length })) }, (_, v) => (typeof v === 'bigint' ? Number(v) : v))}`,
    );
    const [got] = await q(digestSql());
    const [keys] = await q('SELECT count(*) AS n, count(DISTINCT (session_id, session_line_num)) AS k FROM audit_logs');
    assert.equal(Number(keys!['k']), Number(keys!['n']), `${label}: duplicate (session_id, session_line_num)`);
    const want = digestOf(expected);
    assert.deepEqual(
      { count: Number(got!['count']), statementBytes: Number(got!['statement_bytes']), md5: got!['md5'] },
      want,
      `${label}: stored rows differ from what the checkpoints claim`,
    );
    return want.count;
  });
}

async function runAndKill(args: string[], delayMs: number): Promise<{ killed: boolean; ms: number }> {
  const child = spawnCli(args);
  children.add(child);
  const timer = setTimeout(() => {
    child.kill('SIGKILL');
  }, delayMs);
  const r = await child.result;
  clearTimeout(timer);
  children.delete(child);
  if (r.signal !== 'SIGKILL' && r.code !== 0) throw new Error(`exited ${r.code} (not killed)\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return { killed: r.signal === 'SIGKILL', ms: r.ms };
}

test('damaged .gz files: ≥ 12 kills at random moments, then every readable record once and each damage quarantined once', { timeout: 240_000 }, async (t) => {
  const logs = join(dir, 'log');
  mkdirSync(logs);
  const gen = new CsvlogGenerator({ seed: 4711, sessionBase: 70_000_000 });
  const base = Math.floor(Date.now() / 1000) - 3600;
  const files: ModelFile[] = [];

  // Cut short in the middle of a record.
  const cutRecords = gen.records(25_000);
  const cutGz = gzipSync(csvOf(cutRecords));
  const cut = cutGz.subarray(0, Math.floor(cutGz.length * 0.7));
  const cutPath = join(logs, 'postgresql-2024-05-01_100000.csv.gz');
  writeFileSync(cutPath, cut);
  const cutReadable = gunzipSync(cut, { finishFlush: zc.Z_SYNC_FLUSH }).length;
  files.push(model(cutPath, cutRecords, cutReadable, /^damaged compressed file: truncated gzip stream after/));

  // Two members, the first with a wrong checksum: its content is all readable, the second member is not.
  const first = gen.records(25_000);
  const second = gen.records(2_000);
  const m1 = gzipSync(csvOf(first));
  m1[m1.length - 7] = m1[m1.length - 7]! ^ 0x5a;
  const crcPath = join(logs, 'postgresql-2024-05-01_110000.csv.gz');
  writeFileSync(crcPath, Buffer.concat([m1, gzipSync(csvOf(second))]));
  files.push(
    model(crcPath, [...first, ...second], Buffer.byteLength(csvOf(first)), /^damaged compressed file: corrupt gzip data after .* \(incorrect data check\)/),
  );

  const goodRecords = gen.records(5_000);
  const goodPath = join(logs, 'postgresql-2024-05-01_120000.csv');
  writeFileSync(goodPath, csvOf(goodRecords));
  files.push(model(goodPath, goodRecords, Buffer.byteLength(csvOf(goodRecords))));
  files.forEach((f, i) => utimesSync(f.path, base + i * 60, base + i * 60));

  // Calibrate: a run with nearly nothing to read, and one whole run, into scratch databases.
  const tiny = join(dir, 'tiny');
  mkdirSync(tiny);
  writeFileSync(join(tiny, 'postgresql-2024-05-01_000000.csv'), csvOf(new CsvlogGenerator({ seed: 1, sessionBase: 79_000_000 }).records(1)));
  const startupMs = (await ingest(join(dir, 'calibration0.duckdb'), [tiny])).ms;
  const calibration = await ingest(join(dir, 'calibration.duckdb'), [logs]);
  assert.equal(calibration.code, 0, calibration.stderr);
  const fullMs = calibration.ms;
  const total = digestOf(files.flatMap((f) => f.records.filter((_, i) => f.ends[i]! <= f.finalOffset))).count;

  // Rounds, each on a new database: up to five runs killed at random moments, then one that completes it.
  // Half the runs commit every few thousand events, so kills also land between commits inside a damaged file;
  // a resumed run decodes a compressed file from its start again, so any moment of a run is worth a kill.
  const rng = new Rng(8128);
  let kills = 0;
  const log: string[] = [];
  for (let round = 0; kills < 12 || round < 3; round++) {
    assert.ok(round < 10, `only ${kills} runs were killed:\n${log.join('\n')}`);
    mkdirSync(join(dir, `db${round}`));
    const db = join(dir, `db${round}`, 'audit.duckdb');
    const config = join(dir, `db${round}.yaml`);
    writeFileSync(
      config,
      [
        // Named `ingest`, the pipeline the ingest command runs: checkpoints are kept per pipeline, and both commands
        // go on with one reading of the files (a pipeline of another name reads them for its own sinks).
        'pipelines:',
        '  ingest:',
        '    source:',
        '      type: pg_logs',
        `      path: ${JSON.stringify(logs)}`,
        '      batch_bytes: 1MB',
        '    sinks:',
        '      - type: duckdb',
        `        path: ${JSON.stringify(db)}`,
        '        commit_events: 4000',
        '',
      ].join('\n'),
    );
    for (let i = 0; i < 5; i++) {
      const delay = i === 0 && round % 2 === 1 ? rng.int(0, 60) : startupMs + Math.round(rng.float() * (fullMs - startupMs));
      const viaRun = (round + i) % 2 === 1;
      const r = await runAndKill(viaRun ? ['run', '--config', config, '--json', '--quiet'] : ['ingest', '--db', db, '--json', '--quiet', logs], delay);
      const stored = statSafe(db) ? await assertConsistent(db, files, `round ${round} after run ${i} (delay ${delay} ms)`) : 0;
      log.push(
        `round ${round} run ${i}${viaRun ? ' (small commits)' : ''}: delay ${delay} ms, ${r.killed ? 'killed' : 'finished'} after ${r.ms} ms, ${stored} of ${total} stored`,
      );
      if (!r.killed) break;
      kills++;
    }
    // A run to the end: every readable record once, each damage once; then a run that reads and says nothing.
    const last = await ingest(db, [logs]);
    assert.equal(last.code, 0, last.stderr);
    assert.equal(last.summary.duplicates, 0, 'resumed from checkpoints: nothing read twice');
    assert.equal(await assertConsistent(db, files, `round ${round}: the last run`), total);
    await withDb(db, async (q) => {
      const [x] = await q('SELECT count(*) AS n FROM ingest_files WHERE complete');
      assert.equal(Number(x!['n']), 2, 'both damaged files read to their end');
      const [y] = await q('SELECT count(*) AS n FROM quarantine');
      assert.equal(Number(y!['n']), 2, 'each damage quarantined once');
    });
    const again = await ingest(db, [logs]);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(
      { events: again.summary.events, stored: again.summary.stored, quarantined: again.summary.quarantined },
      { events: 0, stored: 0, quarantined: 0 },
    );
    assert.deepEqual(lines(again.stderr), []);
  }
  t.diagnostic(`startup ≈ ${startupMs} ms, full run ≈ ${fullMs} ms\n${log.join('\n')}`);
});

function statSafe(path: string): boolean {
  try {
    return statSync(path).size > 0;
  } catch {
    return false;
  }
}
