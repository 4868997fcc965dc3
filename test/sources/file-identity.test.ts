import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  appendFileSync,
  chmodSync,
  chownSync,
  copyFileSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  symlinkSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { basename, join } from 'node:path';
import { after, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { CsvlogGenerator, auditOnly, csvOf, digestOf, digestSql, jsonOf, type GenRecord } from '../helpers/csvlog-gen.js';
import { ROOT, hasStackTrace, ingestOk, lines, queryCli, runCli, scratchDir, spawnCli, type CliChild } from '../helpers/ingest-cli.js';
import { readCsvlog, readJsonlog } from '../helpers/raw-logs.js';

/**
 * Which bytes of which file are read, and how often: files are known by content (a fingerprint of their
 * first line), not by name, path or compression; the active file is read up to its last complete record;
 * bad records are quarantined without blocking what follows. Everything through the CLI.
 */

const cleanups: (() => void)[] = [];
const children = new Set<CliChild>();
after(() => {
  for (const c of children) c.kill('SIGKILL');
  for (const c of cleanups) c();
});

function scratch(name: string): string {
  const s = scratchDir(`identity-${name}`);
  cleanups.push(s.cleanup);
  return s.dir;
}

/** A session range per test, so generated events never collide across tests. */
let sessionBase = 0;
function generator(seed: number, options: { multilineShare?: number } = {}): CsvlogGenerator {
  sessionBase += 100_000;
  return new CsvlogGenerator({ seed, sessionBase, ...options });
}

const BASE_TIME = Math.floor(Date.now() / 1000) - 86_400;

/** Writes a log file and sets its mtime (seconds after BASE_TIME): the newest per directory is active. */
function writeLog(path: string, content: string | Buffer, minute: number): string {
  writeFileSync(path, content);
  touch(path, minute);
  return path;
}

function touch(path: string, minute: number): void {
  utimesSync(path, BASE_TIME + minute * 60, BASE_TIME + minute * 60);
}

async function digest(db: string, where = 'true') {
  const [row] = await queryCli(db, digestSql(where));
  return { count: Number(row!['count']), statementBytes: Number(row!['statement_bytes']), md5: row!['md5'] };
}

async function count(db: string, sql: string): Promise<number> {
  const rows = await queryCli(db, sql);
  return Number(Object.values(rows[0]!)[0]);
}

async function ingestFiles(db: string) {
  return queryCli(db, 'SELECT file_name, path, compression, byte_offset, events, quarantined, complete FROM ingest_files ORDER BY file_name');
}

/** Asserts audit_logs holds exactly the audit records given, each once, with statement and parameter intact. */
async function assertStoredExactly(db: string, records: GenRecord[], label = 'stored events'): Promise<void> {
  assert.deepEqual(await digest(db), digestOf(records), label);
  assert.equal(await count(db, 'SELECT count(*) - count(DISTINCT (session_id, session_line_num)) FROM audit_logs'), 0, 'no duplicate identity');
}

/** A record cut at a newline inside its quoted message (how a tailer sees a record being written). */
function cutInside(r: GenRecord): { head: string; tail: string } {
  const nl = r.csv.indexOf('\n');
  assert.ok(nl >= 0 && nl < r.csv.length - 1, 'a multi-line record');
  return { head: r.csv.slice(0, nl + 1), tail: r.csv.slice(nl + 1) };
}

/** The next record of the generator that spans lines. */
function multilineRecord(gen: CsvlogGenerator): GenRecord {
  for (;;) {
    const r = gen.next();
    if (r.audit && r.csv.indexOf('\n') < r.csv.length - 1) return r;
  }
}

describe('file identity and reading positions', () => {
  test('(a) a rerun with nothing new reads nothing and stores nothing', async () => {
    const dir = scratch('a');
    const logs = join(dir, 'log');
    mkdirSync(logs);
    const gen = generator(1);
    const all: GenRecord[] = [];
    for (let i = 0; i < 3; i++) {
      const recs = gen.records(20_000);
      all.push(...recs);
      writeLog(join(logs, `postgresql-2024-05-01_1${i}0000.csv`), csvOf(recs), i);
    }
    const db = join(dir, 'a.duckdb');
    const first = await ingestOk(db, [logs]);
    assert.equal(first.stored, auditOnly(all).length);
    const second = await ingestOk(db, [logs]);
    // Speed is the benchmark's business; here: not one byte is read again.
    assert.deepEqual(
      { events: second.events, stored: second.stored, duplicates: second.duplicates, filesRead: second.filesRead, bytes: second.bytes },
      { events: 0, stored: 0, duplicates: 0, filesRead: 0, bytes: 0 },
    );
    await assertStoredExactly(db, all);
  });

  test('(b) a renamed file, a symlink, a second path to the directory and a gzip/zstd copy are not read again', async () => {
    const dir = scratch('b');
    const logs = join(dir, 'log');
    mkdirSync(logs);
    const gen = generator(2);
    const recs = [gen.records(3000), gen.records(3000), gen.records(3000)];
    const names = ['postgresql-2024-05-01_100000.csv', 'postgresql-2024-05-01_110000.csv', 'postgresql-2024-05-01_120000.csv'];
    recs.forEach((r, i) => writeLog(join(logs, names[i]!), csvOf(r), i));
    const db = join(dir, 'b.duckdb');
    const all = recs.flat();
    assert.equal((await ingestOk(db, [logs])).stored, auditOnly(all).length);
    const before = await ingestFiles(db);
    assert.equal(before.length, 3);

    const nothingNew = async (label: string, paths: string[]) => {
      const s = await ingestOk(db, paths);
      assert.deepEqual({ stored: s.stored, duplicates: s.duplicates, events: s.events }, { stored: 0, duplicates: 0, events: 0 }, `${label}: read again`);
      const rows = await ingestFiles(db);
      assert.equal(rows.length, 3, `${label}: a new ingest_files row`);
      assert.deepEqual(
        rows.map((r) => [r['events'], r['byte_offset']]).sort(),
        before.map((r) => [r['events'], r['byte_offset']]).sort(),
        `${label}: checkpoints changed`,
      );
    };

    // Renamed: the oldest file, and the active (newest) one with its mtime kept.
    renameSync(join(logs, names[0]!), join(logs, 'old-renamed.csv'));
    touch(join(logs, 'old-renamed.csv'), 0);
    await nothingNew('renamed finished file', [logs]);
    renameSync(join(logs, names[2]!), join(logs, 'postgresql-2024-05-01_120000-moved.csv'));
    touch(join(logs, 'postgresql-2024-05-01_120000-moved.csv'), 2);
    await nothingNew('renamed active file', [logs]);

    // Through symlinks to each file, a symlink to the directory, and another spelling of its path.
    const links = join(dir, 'links');
    mkdirSync(links);
    for (const n of readdirSync(logs)) symlinkSync(join(logs, n), join(links, n));
    await nothingNew('symlinked files', [links]);
    symlinkSync(logs, join(dir, 'log-link'));
    await nothingNew('symlinked directory', [join(dir, 'log-link')]);
    await nothingNew('second spelling of the directory', [`${logs}/../log/.`]);
    await nothingNew('the same directory given twice', [logs, join(dir, 'log-link'), join(logs, 'old-renamed.csv')]);

    // Compressed after rotation: x.csv → x.csv.gz (and x.csv.zst), the original removed.
    const finished = join(logs, names[1]!);
    writeLog(`${finished}.gz`, gzipSync(readFileSync(finished)), 1);
    unlinkSync(finished);
    await nothingNew('gzip copy', [logs]);
    const old = join(logs, 'old-renamed.csv');
    execFileSync('zstd', ['-q', '--rm', old, '-o', `${old}.zst`]);
    touch(`${old}.zst`, 0);
    await nothingNew('zstd copy', [logs]);
    await assertStoredExactly(db, all);
  });

  test('(c) an active file ingested in part, then rotated and compressed, continues from its offset', async () => {
    const dir = scratch('c');
    const logs = join(dir, 'log');
    mkdirSync(logs);
    const gen = generator(3);
    const f1 = gen.records(2000);
    const f2a = gen.records(2000);
    const half = multilineRecord(gen);
    const { head, tail } = cutInside(half);
    writeLog(join(logs, 'postgresql-2024-05-01_100000.csv'), csvOf(f1), 0);
    const active = join(logs, 'postgresql-2024-05-01_110000.csv');
    writeLog(active, csvOf(f2a) + head, 1);
    const db = join(dir, 'c.duckdb');
    const first = await ingestOk(db, [logs]);
    assert.equal(first.stored, auditOnly([...f1, ...f2a]).length);
    assert.equal(first.quarantined, 0);

    // The server finishes the record, writes more, rotates; the rotated file is gzipped.
    const f2b = gen.records(1500);
    appendFileSync(active, tail + csvOf(f2b));
    const f3 = gen.records(1000);
    writeLog(join(logs, 'postgresql-2024-05-01_120000.csv'), csvOf(f3), 3);
    writeLog(`${active}.gz`, gzipSync(readFileSync(active)), 2);
    unlinkSync(active);
    const second = await ingestOk(db, [logs]);
    assert.equal(second.duplicates, 0, 'continued from the offset, not from the start');
    assert.equal(second.stored, auditOnly([half, ...f2b, ...f3]).length);
    await assertStoredExactly(db, [...f1, ...f2a, half, ...f2b, ...f3]);
    const rows = await ingestFiles(db);
    const gz = rows.find((r) => r['file_name'] === `${basename(active)}.gz`);
    assert.ok(gz, 'the checkpoint follows the file to its compressed name');
    assert.equal(gz['compression'], 'gzip');
    assert.equal(gz['complete'], true);
    assert.equal(Number(gz['events']), auditOnly([...f2a, half, ...f2b]).length);
    assert.equal(Number(gz['byte_offset']), Buffer.byteLength(csvOf([...f2a, half, ...f2b])));
    assert.equal(rows.length, 3);
  });

  test('(d) a truncated file and a recreated file are noticed and read from the start', async () => {
    const dir = scratch('d');
    const logs = join(dir, 'log');
    mkdirSync(logs);
    const gen = generator(4);
    const older = gen.records(500);
    writeLog(join(logs, 'postgresql-2024-05-01_090000.csv'), csvOf(older), 0);
    const path = join(logs, 'postgresql-2024-05-01_100000.csv');
    const original = gen.records(3000);
    writeLog(path, csvOf(original), 1);
    const db = join(dir, 'd.duckdb');
    await ingestOk(db, [logs]);
    const stored = [...older, ...original];

    // Truncated: the same first records, then new ones, shorter than the checkpoint.
    const kept = original.slice(0, 1000);
    const fresh = gen.records(500);
    writeLog(path, csvOf([...kept, ...fresh]), 2);
    assert.ok(Buffer.byteLength(csvOf([...kept, ...fresh])) < Buffer.byteLength(csvOf(original)));
    const t = await ingestOk(db, [logs]);
    assert.equal(t.stored, auditOnly(fresh).length, 'truncated: the new events are stored');
    assert.equal(t.duplicates, auditOnly(kept).length, 'truncated: read from the start');
    stored.push(...fresh);
    await assertStoredExactly(db, stored);

    // Recreated with the same name and new content (a new first line).
    unlinkSync(path);
    const recreated = gen.records(2000);
    writeLog(path, csvOf(recreated), 3);
    const r = await ingestOk(db, [logs]);
    assert.equal(r.stored, auditOnly(recreated).length, 'recreated: every event stored');
    assert.equal(r.duplicates, 0);
    stored.push(...recreated);

    // Rewritten in place, same first record, longer than before: the bytes before the checkpoint changed.
    const rewritten = gen.records(4000);
    writeLog(path, csvOf([recreated[0]!, ...rewritten]), 4);
    const w = await ingestOk(db, [logs]);
    assert.equal(w.stored, auditOnly(rewritten).length, 'rewritten: every new event stored');
    assert.equal(w.duplicates, auditOnly([recreated[0]!]).length, 'rewritten: read from the start');
    stored.push(...rewritten);
    await assertStoredExactly(db, stored);
  });

  test('(e1) the half-written last record of the active file is not quarantined, and is stored once complete', async () => {
    const dir = scratch('e1');
    const logs = join(dir, 'log');
    mkdirSync(logs);
    const gen = generator(5);
    const recs = gen.records(1000);
    const half = multilineRecord(gen);
    const path = join(logs, 'postgresql-2024-05-01_100000.csv');
    const db = join(dir, 'e1.duckdb');
    // Cut at a newline inside the quoted message, then at an arbitrary byte (inside a UTF-8 character too).
    const { head, tail } = cutInside(half);
    writeLog(path, csvOf(recs) + head, 0);
    const s1 = await ingestOk(db, [logs]);
    assert.equal(s1.quarantined, 0);
    assert.equal(s1.stored, auditOnly(recs).length);
    const bytes = Buffer.from(tail);
    const at = Math.max(1, bytes.indexOf(Buffer.from('é')) + 1 || Math.floor(bytes.length / 2));
    appendFileSync(path, bytes.subarray(0, at));
    const s2 = await ingestOk(db, [logs]);
    assert.deepEqual({ stored: s2.stored, quarantined: s2.quarantined }, { stored: 0, quarantined: 0 });
    appendFileSync(path, bytes.subarray(at));
    const s3 = await ingestOk(db, [logs]);
    assert.deepEqual({ stored: s3.stored, quarantined: s3.quarantined, duplicates: s3.duplicates }, { stored: 1, quarantined: 0, duplicates: 0 });
    assert.equal(await count(db, 'SELECT count(*) FROM quarantine'), 0);
    await assertStoredExactly(db, [...recs, half]);
  });

  test('(e2) a finished file ending in a broken record: it is quarantined with its offset and reason', async () => {
    const dir = scratch('e2');
    const logs = join(dir, 'log');
    mkdirSync(logs);
    const gen = generator(6);
    const recs = gen.records(800);
    const broken = multilineRecord(gen);
    const { head } = cutInside(broken);
    const finished = writeLog(join(logs, 'postgresql-2024-05-01_100000.csv'), csvOf(recs) + head, 0);
    const newer = gen.records(200);
    writeLog(join(logs, 'postgresql-2024-05-01_110000.csv'), csvOf(newer), 1);
    const db = join(dir, 'e2.duckdb');
    const s = await ingestOk(db, [logs]);
    assert.equal(s.quarantined, 1);
    await assertStoredExactly(db, [...recs, ...newer]);
    const q = await queryCli(db, 'SELECT file_name, path, byte_offset, reason, raw FROM quarantine');
    assert.equal(q.length, 1);
    assert.equal(q[0]!['file_name'], basename(finished));
    assert.equal(Number(q[0]!['byte_offset']), Buffer.byteLength(csvOf(recs)));
    assert.ok(String(q[0]!['reason']).length > 0, 'a reason');
    assert.equal(q[0]!['raw'], head);
    // Quarantined once, not again on the next run.
    const again = await ingestOk(db, [logs]);
    assert.equal(again.quarantined, 0);
    assert.equal(await count(db, 'SELECT count(*) FROM quarantine'), 1);
  });

  /** Finished files, each with one kind of damage in the middle, and good records on both sides. */
  const damages: { name: string; make: (r: GenRecord) => string }[] = [
    { name: 'record cut short by a crash (ends at a newline inside quotes)', make: (r) => cutInside(r).head },
    { name: 'a missing quote in a multi-line message', make: (r) => r.csv.replace(/"AUDIT: /, 'AUDIT: ') },
    { name: 'a stray quote after a closing quote', make: (r) => r.csv.replace('"client backend"', '"client backend"x"') },
    { name: 'an extra column', make: (r) => r.csv.replace(/\n$/, ',"extra"\n') },
    { name: 'a line of garbage', make: () => 'this is not a csvlog record, "nor is this\n' },
    { name: 'a pgaudit message with the wrong field count', make: (r) => r.csv.replace('"AUDIT: SESSION,', '"AUDIT: SESSION,1,') },
  ];
  for (const [i, damage] of damages.entries()) {
    test(`(e3) records after a corrupted one in a finished file are still ingested: ${damage.name}`, async () => {
      const dir = scratch(`e3-${i}`);
      const logs = join(dir, 'log');
      mkdirSync(logs);
      const gen = generator(100 + i);
      const before = gen.records(500);
      const bad = multilineRecord(gen);
      const afterRecs = gen.records(500);
      const badText = damage.make(bad);
      const path = writeLog(join(logs, 'postgresql-2024-05-01_100000.csv'), csvOf(before) + badText + csvOf(afterRecs), 0);
      const active = gen.records(50);
      writeLog(join(logs, 'postgresql-2024-05-01_110000.csv'), csvOf(active), 1);
      const db = join(dir, 'e3.duckdb');
      const s = await ingestOk(db, [logs]);
      await assertStoredExactly(db, [...before, ...afterRecs, ...active]);
      const q = await queryCli(db, 'SELECT file_name, byte_offset, reason FROM quarantine ORDER BY byte_offset');
      assert.equal(q.length, 1, `one quarantined record, got ${JSON.stringify(q)}`);
      assert.equal(s.quarantined, 1);
      assert.equal(q[0]!['file_name'], basename(path));
      assert.equal(Number(q[0]!['byte_offset']), Buffer.byteLength(csvOf(before)));
      assert.ok(String(q[0]!['reason']).length > 0);
    });
  }

  test('(e4) a corrupted record in the middle of the active file does not hold back the records after it', async () => {
    const dir = scratch('e4');
    const logs = join(dir, 'log');
    mkdirSync(logs);
    const gen = generator(7, { multilineShare: 0 });
    const before = gen.records(300);
    const bad = multilineRecord(new CsvlogGenerator({ seed: 8, sessionBase: 99_000_000, multilineShare: 1 }));
    const afterRecs = gen.records(300);
    writeLog(join(logs, 'postgresql-2024-05-01_100000.csv'), csvOf(before) + cutInside(bad).head + csvOf(afterRecs), 0);
    const db = join(dir, 'e4.duckdb');
    const s = await ingestOk(db, [logs]);
    assert.equal(s.stored, auditOnly([...before, ...afterRecs]).length, 'the records after the corrupted one are stored');
    assert.equal(s.quarantined, 1);
  });

  test('(f) --force re-ingests from scratch without duplicates', async () => {
    const dir = scratch('f');
    const logs = join(dir, 'log');
    mkdirSync(logs);
    const gen = generator(9);
    const a = gen.records(2000);
    const broken = multilineRecord(gen);
    const b = gen.records(2000);
    writeLog(join(logs, 'postgresql-2024-05-01_100000.csv'), csvOf(a) + cutInside(broken).head, 0);
    writeLog(join(logs, 'postgresql-2024-05-01_110000.csv'), csvOf(b), 1);
    const db = join(dir, 'f.duckdb');
    await ingestOk(db, [logs]);
    const filesBefore = await ingestFiles(db);
    const forced = await ingestOk(db, [logs], ['--force']);
    const n = auditOnly([...a, ...b]).length;
    assert.equal(forced.events, n, 'every file read from its start');
    assert.equal(forced.stored + forced.duplicates, n);
    await assertStoredExactly(db, [...a, ...b]);
    assert.deepEqual(await ingestFiles(db), filesBefore, 'checkpoints as after the first run (not added up)');
    assert.equal(await count(db, 'SELECT count(*) FROM quarantine'), 1, 'the broken record quarantined once');
    const after = await ingestOk(db, [logs]);
    assert.equal(after.events, 0, 'after --force, a rerun reads nothing');
  });

  test('(g) --skip-active leaves the newest file for later', async () => {
    const dir = scratch('g');
    const logs = join(dir, 'log');
    mkdirSync(logs);
    const gen = generator(10);
    const a = gen.records(1000);
    const b = gen.records(1000);
    const c = gen.records(1000);
    writeLog(join(logs, 'postgresql-2024-05-01_100000.csv'), csvOf(a), 0);
    writeLog(join(logs, 'postgresql-2024-05-01_110000.csv'), csvOf(b), 1);
    const newest = writeLog(join(logs, 'postgresql-2024-05-01_120000.csv'), csvOf(c), 2);
    const db = join(dir, 'g.duckdb');
    const s = await ingestOk(db, [logs], ['--skip-active']);
    assert.equal(s.stored, auditOnly([...a, ...b]).length);
    assert.ok(!(await ingestFiles(db)).some((r) => r['file_name'] === basename(newest)), 'no checkpoint for the active file');
    await assertStoredExactly(db, [...a, ...b]);
    const later = await ingestOk(db, [logs]);
    assert.equal(later.stored, auditOnly(c).length);
    assert.equal(later.duplicates, 0);
  });

  test('(h1) a jsonlog twin of a csvlog file (same stem): only one of them is read', async () => {
    const dir = scratch('h1');
    const logs = join(dir, 'log');
    mkdirSync(logs);
    const gen = generator(11);
    const a = gen.records(1500);
    const b = gen.records(1500);
    for (const [recs, stem, minute] of [
      [a, 'postgresql-2024-05-01_100000', 0],
      [b, 'postgresql-2024-05-01_110000', 1],
    ] as const) {
      writeLog(join(logs, `${stem}.csv`), csvOf(recs), minute);
      writeLog(join(logs, `${stem}.json`), jsonOf(recs), minute);
    }
    const db = join(dir, 'h1.duckdb');
    const s = await ingestOk(db, [logs]);
    const n = auditOnly([...a, ...b]).length;
    assert.deepEqual({ events: s.events, stored: s.stored, duplicates: s.duplicates }, { events: n, stored: n, duplicates: 0 }, 'each event read once');
    assert.equal((await ingestFiles(db)).length, 2, 'one checkpoint per twin pair');
    await assertStoredExactly(db, [...a, ...b]);
  });

  test('(h2) the same events as jsonlog in another directory (same --server) are stored once', async () => {
    const dir = scratch('h2');
    const csvDir = join(dir, 'csv');
    const jsonDir = join(dir, 'json');
    mkdirSync(csvDir);
    mkdirSync(jsonDir);
    const gen = generator(12);
    const a = gen.records(1500);
    const b = gen.records(1500);
    writeLog(join(csvDir, 'postgresql-2024-05-01_100000.csv'), csvOf(a), 0);
    writeLog(join(csvDir, 'postgresql-2024-05-01_110000.csv'), csvOf(b), 1);
    writeLog(join(jsonDir, 'postgresql-2024-05-01_100000.json'), jsonOf(a), 0);
    writeLog(join(jsonDir, 'postgresql-2024-05-01_110000.json'), jsonOf(b), 1);
    const n = auditOnly([...a, ...b]).length;
    const db = join(dir, 'h2.duckdb');
    assert.equal((await ingestOk(db, [csvDir], ['--server', 'pg1'])).stored, n);
    const json = await ingestOk(db, [jsonDir], ['--server', 'pg1']);
    assert.deepEqual({ stored: json.stored, duplicates: json.duplicates }, { stored: 0, duplicates: n });
    await assertStoredExactly(db, [...a, ...b]);
    // Both directories in one run, into a new database.
    const both = await ingestOk(join(dir, 'both.duckdb'), [csvDir, jsonDir], ['--server', 'pg1']);
    assert.deepEqual({ stored: both.stored, duplicates: both.duplicates }, { stored: n, duplicates: n });
    // Another server's events are other events.
    const other = await ingestOk(db, [jsonDir], ['--server', 'pg2']);
    assert.equal(other.stored, n);
  });

  test('(h3) real logs: csvlog and jsonlog of the same server give the same rows, stored once', async () => {
    const dir = scratch('h3');
    const examples = join(ROOT, 'examples', 'pgaudit-logs');
    const csvDir = join(dir, 'csv');
    const jsonDir = join(dir, 'json');
    mkdirSync(csvDir);
    mkdirSync(jsonDir);
    for (const n of readdirSync(examples)) {
      if (/\.csv(\.gz)?$/.test(n)) copyFileSync(join(examples, n), join(csvDir, n));
      if (/\.json$/.test(n)) copyFileSync(join(examples, n), join(jsonDir, n));
    }
    const csvFiles = readdirSync(csvDir)
      .sort()
      .map((n) => join(csvDir, n));
    const jsonFiles = readdirSync(jsonDir)
      .sort()
      .map((n) => join(jsonDir, n));
    const oracleCsv = readCsvlog(csvFiles).filter((r) => r.audit);
    const oracleJson = readJsonlog(jsonFiles).filter((r) => r.audit);
    assert.equal(oracleCsv.length, oracleJson.length);

    const columns = `session_id, session_line_num, epoch_ms(log_time) AS t, user_name, database_name, nullif(application_name, '') AS application_name, audit_type,
      statement_id, substatement_id, class, command, object_type, object_name, md5(statement) AS statement, md5(parameter) AS parameter, rows`;
    const order = 'ORDER BY session_id, session_line_num';
    const fromCsv = join(dir, 'csv.duckdb');
    const fromJson = join(dir, 'json.duckdb');
    assert.equal((await ingestOk(fromCsv, [csvDir])).stored, oracleCsv.length);
    assert.equal((await ingestOk(fromJson, [jsonDir])).stored, oracleJson.length);
    const csvRows = await queryCli(fromCsv, `SELECT ${columns} FROM audit_logs ${order}`);
    assert.deepEqual(await queryCli(fromJson, `SELECT ${columns} FROM audit_logs ${order}`), csvRows);
    const md5 = (s: string | null) => (s === null ? null : createHash('md5').update(s).digest('hex'));
    // With log_statement_once, `<previously logged>` stands for the first entry's text of the same
    // (session, statement, substatement); auditship fills it in.
    const firstText = new Map<string, string | null>();
    const want = oracleCsv
      .map((r) => {
        const key = `${r.sessionId}|${r.audit!.statementId}|${r.audit!.substatementId}`;
        let text = r.audit!.statement;
        if (text === '<previously logged>' && firstText.has(key)) text = firstText.get(key)!;
        else if (!firstText.has(key)) firstText.set(key, text);
        return [r.sessionId, String(r.lineNum), md5(text)];
      })
      .sort((x, y) => (x[0]! < y[0]! ? -1 : x[0]! > y[0]! ? 1 : Number(x[1]) - Number(y[1])));
    assert.deepEqual(
      csvRows.map((r) => [r['session_id'], String(r['session_line_num']), r['statement']]),
      want,
      'statements as the oracle reads them',
    );

    const both = await ingestOk(fromCsv, [jsonDir]);
    assert.deepEqual({ stored: both.stored, duplicates: both.duplicates }, { stored: 0, duplicates: oracleJson.length });
  });

  test('(h4) real logs: an empty application_name is stored alike from csvlog ("") and jsonlog (key left out)', async () => {
    const dir = scratch('h4');
    const examples = join(ROOT, 'examples', 'pgaudit-logs');
    const csvDir = join(dir, 'csv');
    const jsonDir = join(dir, 'json');
    mkdirSync(csvDir);
    mkdirSync(jsonDir);
    for (const n of readdirSync(examples)) {
      if (/\.csv(\.gz)?$/.test(n)) copyFileSync(join(examples, n), join(csvDir, n));
      if (/\.json$/.test(n)) copyFileSync(join(examples, n), join(jsonDir, n));
    }
    const fromCsv = join(dir, 'csv.duckdb');
    const fromJson = join(dir, 'json.duckdb');
    await ingestOk(fromCsv, [csvDir]);
    await ingestOk(fromJson, [jsonDir]);
    const sql = 'SELECT session_id, session_line_num, application_name FROM audit_logs ORDER BY session_id, session_line_num';
    assert.deepEqual(await queryCli(fromJson, sql), await queryCli(fromCsv, sql));
  });

  test('(i) a second ingest on a database in use fails with exit 1 and one line naming the holder', async () => {
    const dir = scratch('i');
    const logs = join(dir, 'log');
    mkdirSync(logs);
    const gen = generator(13);
    for (let i = 0; i < 4; i++) writeLog(join(logs, `postgresql-2024-05-01_1${i}0000.csv`), csvOf(gen.records(40_000)), i);
    const small = join(dir, 'small');
    mkdirSync(small);
    writeLog(join(small, 'postgresql-2024-05-01_100000.csv'), csvOf(gen.records(10)), 0);
    const db = join(dir, 'i.duckdb');
    const first = spawnCli(['ingest', '--db', db, '--quiet', logs]);
    children.add(first);
    let exited = false;
    void first.result.then(() => {
      exited = true;
    });
    // Wait until the first run has the database (its file exists), then try a second run.
    for (let i = 0; i < 100 && !exited; i++) {
      try {
        readFileSync(db, { flag: 'r' }); // throws until the file exists
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    await new Promise((r) => setTimeout(r, 300));
    const second = await runCli(['ingest', '--db', db, small]);
    assert.ok(!exited, 'the first run was still running when the second ended (make the data larger)');
    assert.equal(second.code, 1, `exit 1; stderr: ${second.stderr}`);
    const errLines = lines(second.stderr);
    assert.equal(errLines.length, 1, `one line: ${second.stderr}`);
    assert.match(errLines[0]!, new RegExp(`PID ${first.pid}\\b`));
    assert.ok(!hasStackTrace(second.stderr));
    const jsonSecond = await runCli(['ingest', '--db', db, '--json', small]);
    assert.equal(jsonSecond.code, 1, 'also with --json');
    const r = await first.result;
    children.delete(first);
    assert.equal(r.code, 0, `the first run is not disturbed: ${r.stderr}`);
  });

  test('(j) a path that does not exist, a directory where a file is expected, an unreadable file: exit ≠ 0, one line, no stack', async (t) => {
    const dir = scratch('j');
    const logs = join(dir, 'log');
    mkdirSync(logs);
    const gen = generator(14);
    const good = gen.records(200);
    writeLog(join(logs, 'postgresql-2024-05-01_100000.csv'), csvOf(good), 0);
    const db = join(dir, 'j.duckdb');

    const missing = join(dir, 'no-such-dir');
    for (const args of [[missing], [join(logs, 'postgresql-2099-01-01_000000.csv')], [logs, missing], [`${logs}/*.csv`]]) {
      const r = await runCli(['ingest', '--db', db, ...args]);
      assert.notEqual(r.code, 0, `${args.join(' ')}: exit ≠ 0`);
      assert.equal(lines(r.stderr).length, 1, `${args.join(' ')}: one line: ${r.stderr}`);
      assert.ok(!hasStackTrace(r.stderr), `${args.join(' ')}: no stack trace`);
      assert.ok(r.stderr.includes(args.at(-1) === missing ? missing : args.at(-1)!), `${args.join(' ')}: names the path: ${r.stderr}`);
    }

    // A directory whose name matches the file glob (a log file target that is not a file).
    mkdirSync(join(logs, 'postgresql-2024-05-01_110000.csv'));
    const d = await runCli(['ingest', '--db', db, '--json', logs]);
    assert.ok(!hasStackTrace(d.stderr), 'no stack trace');
    if (d.code === 0) {
      // Passed over (not a file): the real log file is still read.
      assert.equal(JSON.parse(d.stdout.trim().split('\n').pop()!).stored, auditOnly(good).length);
    } else {
      assert.equal(lines(d.stderr).length, 1, `one line: ${d.stderr}`);
    }

    // Unreadable (chmod 000): we run as root, so the CLI runs as nobody.
    if (process.getuid?.() !== 0) {
      t.diagnostic('not root: the unreadable-file case is skipped');
      return;
    }
    const ndir = join(dir, 'nobody');
    mkdirSync(ndir);
    const nlogs = join(ndir, 'log');
    mkdirSync(nlogs);
    writeLog(join(nlogs, 'postgresql-2024-05-01_100000.csv'), csvOf(gen.records(100)), 0);
    const locked = writeLog(join(nlogs, 'postgresql-2024-05-01_110000.csv'), csvOf(gen.records(100)), 1);
    chmodSync(dir, 0o755);
    for (const p of [ndir, nlogs]) chownSync(p, 65534, 65534);
    chmodSync(locked, 0o000);
    const r = await runCli(['ingest', '--db', join(ndir, 'n.duckdb'), nlogs], { uid: 65534, gid: 65534 });
    assert.notEqual(r.code, 0, `unreadable file: exit ≠ 0\n${r.stdout}${r.stderr}`);
    assert.ok(!hasStackTrace(r.stderr), 'no stack trace');
    const errLines = lines(r.stderr);
    assert.equal(errLines.length, 1, `one line: ${r.stderr}`);
    assert.match(errLines[0]!, /permission denied/i);
    assert.ok(errLines[0]!.includes(locked), 'names the file');
  });

  test('(k) a 50 MB statement comes through whole', { timeout: 120_000 }, async () => {
    const dir = scratch('k');
    const logs = join(dir, 'log');
    mkdirSync(logs);
    const gen = generator(15);
    const before = gen.records(100);
    const huge = gen.huge(50 * 1024 * 1024);
    const afterRecs = gen.records(100);
    writeLog(join(logs, 'postgresql-2024-05-01_100000.csv'), csvOf(before), 0);
    writeLog(join(logs, 'postgresql-2024-05-01_110000.csv'), csvOf([...before.slice(0, 0), huge, ...afterRecs]), 1);
    const db = join(dir, 'k.duckdb');
    const s = await ingestOk(db, [logs]);
    assert.equal(s.stored, auditOnly([...before, huge, ...afterRecs]).length);
    assert.equal(s.quarantined, 0);
    const [row] = await queryCli(
      db,
      `SELECT strlen(statement) AS bytes, md5(statement) AS md5, parameter FROM audit_logs
      WHERE session_id = '${huge.sessionId}' AND session_line_num = ${huge.line}`,
    );
    assert.ok(row, 'the record is stored');
    assert.equal(Number(row['bytes']), Buffer.byteLength(huge.statement!));
    assert.equal(row['md5'], createHash('md5').update(huge.statement!).digest('hex'));
    await assertStoredExactly(db, [...before, huge, ...afterRecs]);
  });

  test(
    '(k2) the 50 MB statement can be read back whole with `query --format json`',
    {
      timeout: 120_000,
    },
    async () => {
      const dir = scratch('k2');
      const logs = join(dir, 'log');
      mkdirSync(logs);
      const huge = generator(16).huge(50 * 1024 * 1024);
      writeLog(join(logs, 'postgresql-2024-05-01_100000.csv'), huge.csv, 0);
      const db = join(dir, 'k2.duckdb');
      assert.equal((await ingestOk(db, [logs])).stored, 1);
      const r = await runCli(['query', '--db', db, '--format', 'json', 'SELECT statement FROM audit_logs']);
      assert.equal(r.code, 0, r.stderr);
      const rows = JSON.parse(r.stdout) as { statement: string }[];
      assert.equal(rows.length, 1);
      assert.equal(rows[0]!.statement.length, huge.statement!.length);
      assert.ok(rows[0]!.statement === huge.statement, 'the statement text, byte for byte');
    },
  );
});
