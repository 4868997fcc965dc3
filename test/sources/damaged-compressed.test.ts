import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { after, describe, test } from 'node:test';
import { constants as zc, gunzipSync, gzipSync } from 'node:zlib';
import { CsvlogGenerator, auditOnly, csvEndOffsets, csvOf, digestOf, digestSql, type GenRecord } from '../helpers/csvlog-gen.js';
import { decode, entriesOf, localManifest } from '../helpers/archive.js';
import { hasStackTrace, ingest, lines, queryCli, runCli, scratchDir } from '../helpers/ingest-cli.js';

/**
 * A damaged compressed log file — a copy cut short, a disk that filled while compressing, bytes garbled in the
 * middle, an empty file — does not fail the run or block the files after it: the complete records before the
 * damage are stored, once; the damage is quarantined with its reason (with the text of the record it cut) and
 * shown by `auditship status`; one warning line says what happened and what to do; the run exits 0, as for any
 * quarantined input; later runs neither store the file again nor fail on it. A complete copy put in its place is
 * read on from the damage, without duplicates.
 *
 * What is readable is taken from zlib itself (a cut file decompressed with Z_SYNC_FLUSH), or built so (files of
 * several gzip members or zstd frames, damaged after the first).
 */

const cleanups: (() => void)[] = [];
after(() => {
  for (const c of cleanups) c();
});

let sessionBase = 50_000_000;
function generator(seed: number): CsvlogGenerator {
  sessionBase += 100_000;
  return new CsvlogGenerator({ seed, sessionBase });
}

const BASE_TIME = Math.floor(Date.now() / 1000) - 86_400;

function writeLog(path: string, content: string | Buffer, minute: number): string {
  writeFileSync(path, content);
  utimesSync(path, BASE_TIME + minute * 60, BASE_TIME + minute * 60);
  return path;
}

function zstd(content: string): Buffer {
  return execFileSync('zstd', ['-q', '-c'], { input: content, maxBuffer: 1 << 30 });
}

/** A damaged file: its bytes, the records it was made from, and how many bytes of their content are readable. */
interface Damaged {
  name: string;
  bytes: Buffer;
  records: GenRecord[];
  readable: number;
  reason: RegExp;
}

/** The content zlib can decode from a cut gzip file. */
function readableGzip(bytes: Buffer): number {
  return gunzipSync(bytes, { finishFlush: zc.Z_SYNC_FLUSH }).length;
}

const n = (x: number) => x.toLocaleString('en');

const cases: { name: string; build: (gen: CsvlogGenerator) => Damaged }[] = [
  {
    name: 'cut inside the gzip header',
    build: (gen) => {
      const records = gen.records(500);
      return {
        name: 'postgresql-2024-05-01_090000.csv.gz',
        bytes: gzipSync(csvOf(records)).subarray(0, 5),
        records,
        readable: 0,
        reason: /^damaged compressed file: truncated gzip stream after 0 bytes of log/,
      };
    },
  },
  {
    name: 'cut in the middle of a record',
    build: (gen) => {
      const records = gen.records(3000);
      const gz = gzipSync(csvOf(records));
      const ends = new Set(csvEndOffsets(records));
      let cut = Math.floor(gz.length * 0.55);
      while (ends.has(readableGzip(gz.subarray(0, cut)))) cut++;
      const readable = readableGzip(gz.subarray(0, cut));
      assert.ok(readable > 0);
      return {
        name: 'postgresql-2024-05-01_090000.csv.gz',
        bytes: gz.subarray(0, cut),
        records,
        readable,
        reason: new RegExp(`^damaged compressed file: truncated gzip stream after ${n(readable)} bytes of log`),
      };
    },
  },
  {
    name: "cut right at a record boundary (a file of two gzip members, cut in the second one's header)",
    build: (gen) => {
      const first = gen.records(1500);
      const second = gen.records(1500);
      const readable = Buffer.byteLength(csvOf(first));
      const bytes = Buffer.concat([gzipSync(csvOf(first)), gzipSync(csvOf(second)).subarray(0, 6)]);
      return {
        name: 'postgresql-2024-05-01_090000.csv.gz',
        bytes,
        records: [...first, ...second],
        readable,
        reason: new RegExp(`^damaged compressed file: truncated gzip stream after ${n(readable)} bytes of log`),
      };
    },
  },
  {
    name: 'cut before the gzip trailer (every record readable)',
    build: (gen) => {
      const records = gen.records(2000);
      const gz = gzipSync(csvOf(records));
      const readable = Buffer.byteLength(csvOf(records));
      return {
        name: 'postgresql-2024-05-01_090000.csv.gz',
        bytes: gz.subarray(0, gz.length - 8),
        records,
        readable,
        reason: new RegExp(`^damaged compressed file: truncated gzip stream after ${n(readable)} bytes of log`),
      };
    },
  },
  {
    // The checksum is checked after the whole member is decoded: zlib has decoded more than a megabyte that
    // Node's stream drops with the error; it must be read all the same.
    name: 'corrupt in the middle: a wrong checksum at the end of the first of two gzip members',
    build: (gen) => {
      const first = gen.records(6000);
      const second = gen.records(1000);
      const m1 = gzipSync(csvOf(first));
      m1[m1.length - 8] = m1[m1.length - 8]! ^ 0xff;
      const readable = Buffer.byteLength(csvOf(first));
      assert.ok(readable > 1.5 * (1 << 20), 'more content than one decoder call hands over');
      const bytes = Buffer.concat([m1, gzipSync(csvOf(second))]);
      return {
        name: 'postgresql-2024-05-01_090000.csv.gz',
        bytes,
        records: [...first, ...second],
        readable,
        reason: new RegExp(
          `^damaged compressed file: corrupt gzip data after ${n(readable)} bytes of log \\(incorrect data check\\); the rest of the file cannot be decoded`,
        ),
      };
    },
  },
  {
    name: 'corrupt in the middle: invalid deflate data in the second gzip member',
    build: (gen) => {
      const first = gen.records(1500);
      const second = gen.records(1500);
      const m2 = gzipSync(csvOf(second));
      m2[10] = 0x07; // the first block: final, of type 3 (there is none)
      const readable = Buffer.byteLength(csvOf(first));
      const bytes = Buffer.concat([gzipSync(csvOf(first)), m2]);
      return {
        name: 'postgresql-2024-05-01_090000.csv.gz',
        bytes,
        records: [...first, ...second],
        readable,
        reason: new RegExp(`^damaged compressed file: corrupt gzip data after ${n(readable)} bytes of log \\(invalid block type\\)`),
      };
    },
  },
  {
    name: 'a zero-byte .gz',
    build: (gen) => {
      const records = gen.records(500);
      return { name: 'postgresql-2024-05-01_090000.csv.gz', bytes: Buffer.alloc(0), records, readable: 0, reason: /^damaged compressed file: empty \.gz file/ };
    },
  },
  {
    name: 'zstd: cut in the header of the second of two frames',
    build: (gen) => {
      const first = gen.records(1500);
      const second = gen.records(1500);
      const readable = Buffer.byteLength(csvOf(first));
      const bytes = Buffer.concat([zstd(csvOf(first)), zstd(csvOf(second)).subarray(0, 6)]);
      return {
        name: 'postgresql-2024-05-01_090000.csv.zst',
        bytes,
        records: [...first, ...second],
        readable,
        reason: new RegExp(`^damaged compressed file: truncated zstd stream after ${n(readable)} bytes of log`),
      };
    },
  },
  {
    name: 'zstd: a zero-byte .zst',
    build: (gen) => {
      const records = gen.records(500);
      return {
        name: 'postgresql-2024-05-01_090000.csv.zst',
        bytes: Buffer.alloc(0),
        records,
        readable: 0,
        reason: /^damaged compressed file: empty \.zst file/,
      };
    },
  },
];

/** What a damaged file must leave: its complete records before the damage, and the record the damage cut. */
function expectation(d: Damaged): { stored: GenRecord[]; offset: number; raw: string } {
  const ends = csvEndOffsets(d.records);
  const stored = d.records.filter((_, i) => ends[i]! <= d.readable);
  const offset = stored.length ? ends[stored.length - 1]! : 0;
  const raw = Buffer.from(csvOf(d.records)).subarray(offset, d.readable).toString('utf8');
  return { stored, offset, raw };
}

async function digest(db: string) {
  const [row] = await queryCli(db, digestSql());
  return { count: Number(row!['count']), statementBytes: Number(row!['statement_bytes']), md5: row!['md5'] };
}

async function statusOf(db: string, name: string): Promise<Record<string, unknown> | undefined> {
  const r = await runCli(['status', '--db', db, '--json']);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { files: Record<string, unknown>[] }).files.find((f) => f['file_name'] === name);
}

interface Scene {
  dir: string;
  logs: string;
  db: string;
  damagedPath: string;
  damaged: Damaged;
  good: GenRecord[];
  expected: ReturnType<typeof expectation>;
}

/** A log directory: the damaged file, and a good (newer, plain) one. */
function scene(label: string, seed: number, build: (gen: CsvlogGenerator) => Damaged): Scene {
  const s = scratchDir(`damaged-${label}`);
  cleanups.push(s.cleanup);
  const logs = join(s.dir, 'log');
  mkdirSync(logs);
  const gen = generator(seed);
  const damaged = build(gen);
  const damagedPath = writeLog(join(logs, damaged.name), damaged.bytes, 0);
  const good = gen.records(800);
  writeLog(join(logs, 'postgresql-2024-05-01_100000.csv'), csvOf(good), 1);
  return { dir: s.dir, logs, db: join(s.dir, 'audit.duckdb'), damagedPath, damaged, good, expected: expectation(damaged) };
}

/** The first run over a scene: everything a damaged file must leave behind. */
async function firstRun(s: Scene): Promise<void> {
  const r = await ingest(s.db, [s.logs]);
  assert.equal(r.code, 0, `exit 0, as for quarantined input\n${r.stdout}${r.stderr}`);
  assert.ok(r.summary.ok, JSON.stringify(r.summary));
  assert.deepEqual(r.summary.errors, []);
  assert.equal(r.summary.quarantined, 1, 'the damage is counted in the summary');
  assert.equal(r.summary.stored, auditOnly([...s.expected.stored, ...s.good]).length);
  const listed = r.summary['damaged'] as { file: string; reason: string }[] | undefined;
  assert.ok(listed && listed.length === 1, `the summary lists the damaged file: ${JSON.stringify(listed)}`);
  assert.equal(listed[0]!.file, s.damagedPath);
  assert.match(listed[0]!.reason, s.damaged.reason);

  // One line on stderr: what happened, to which file, what to do.
  assert.ok(!hasStackTrace(r.stderr));
  const err = lines(r.stderr);
  assert.equal(err.length, 1, `one line on stderr: ${r.stderr}`);
  const warning = JSON.parse(err[0]!) as Record<string, string>;
  assert.equal(warning['level'], 'warn');
  assert.equal(warning['file'], s.damagedPath);
  assert.match(`damaged compressed file: ${warning['damage']}`, s.damaged.reason);
  assert.match(warning['msg']!, /records before the damage are stored/);
  assert.match(warning['msg']!, /complete copy .* put it in its place: the next run reads the rest\. If not, there is nothing to do/);

  // Exactly the complete records before the damage, and every record of the good file, each once.
  assert.deepEqual(await digest(s.db), digestOf([...s.expected.stored, ...s.good]));
  const q = await queryCli(s.db, 'SELECT file_name, path, byte_offset, reason, raw FROM quarantine');
  assert.equal(q.length, 1, `one quarantine entry: ${JSON.stringify(q)}`);
  assert.equal(q[0]!['path'], s.damagedPath);
  assert.equal(Number(q[0]!['byte_offset']), s.expected.offset, 'at the record the damage cut');
  assert.match(String(q[0]!['reason']), s.damaged.reason);
  assert.equal(q[0]!['raw'], s.expected.raw, 'the text of the record the damage cut');

  const st = await statusOf(s.db, s.damaged.name);
  assert.ok(st, 'status lists the damaged file');
  assert.equal(st['state'], 'damaged');
  assert.equal(Number(st['quarantined']), 1);
  assert.equal(Number(st['events']), auditOnly(s.expected.stored).length);
  const human = await runCli(['status', '--db', s.db]);
  assert.match(human.stdout, new RegExp(`${s.damaged.name.replaceAll('.', '\\.')} .* damaged\\n`));
}

/** A later run: nothing new, no failure, no warning. */
async function nothingNew(s: Scene, label: string): Promise<void> {
  const r = await ingest(s.db, [s.logs]);
  assert.equal(r.code, 0, `${label}: exit 0\n${r.stderr}`);
  assert.ok(r.summary.ok);
  assert.deepEqual(
    { stored: r.summary.stored, duplicates: r.summary.duplicates, quarantined: r.summary.quarantined, events: r.summary.events },
    { stored: 0, duplicates: 0, quarantined: 0, events: 0 },
    `${label}: nothing read again`,
  );
  assert.equal(r.summary['damaged'], undefined);
  assert.deepEqual(lines(r.stderr), [], `${label}: nothing on stderr`);
}

describe('a damaged compressed log file', () => {
  for (const [i, c] of cases.entries()) {
    test(`${c.name}: the records before the damage are stored once, the damage is quarantined and shown, the run goes on`, async () => {
      const s = scene(`case${i}`, 300 + i, c.build);
      await firstRun(s);
      await nothingNew(s, 'second run');
      // The damaged file's checkpoint matches what is stored, and a third run still reads nothing.
      assert.deepEqual(await digest(s.db), digestOf([...s.expected.stored, ...s.good]));
      assert.equal(Number((await queryCli(s.db, 'SELECT count(*) AS n FROM quarantine'))[0]!['n']), 1);
      await nothingNew(s, 'third run');
    });
  }

  test('--force reads a damaged file again: nothing stored twice, its damage quarantined once', async () => {
    const s = scene('force', 400, cases[1]!.build);
    await firstRun(s);
    const r = await ingest(s.db, [s.logs], ['--force']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.summary.stored + r.summary.duplicates, auditOnly([...s.expected.stored, ...s.good]).length, 'every file read from its start');
    assert.equal(r.summary.quarantined, 1);
    assert.deepEqual(await digest(s.db), digestOf([...s.expected.stored, ...s.good]));
    const q = await queryCli(s.db, 'SELECT byte_offset, raw FROM quarantine');
    assert.deepEqual(
      q.map((x) => [Number(x['byte_offset']), x['raw']]),
      [[s.expected.offset, s.expected.raw]],
    );
    await nothingNew(s, 'after --force');
  });
});

describe('a complete copy put in place of a damaged file', () => {
  const restorable = [
    { label: 'cut in a record', index: 1 },
    { label: 'cut inside the gzip header', index: 0 },
    { label: 'zero bytes', index: 6 },
    { label: 'a wrong checksum', index: 4 },
    { label: 'zstd cut short', index: 7 },
  ];
  for (const { label, index } of restorable) {
    test(`${label}: the next run reads the rest, stores nothing twice, and the file is no longer damaged`, async () => {
      const s = scene(`restore${index}`, 500 + index, cases[index]!.build);
      await firstRun(s);
      const whole = csvOf(s.damaged.records);
      writeLog(s.damagedPath, s.damaged.name.endsWith('.zst') ? zstd(whole) : gzipSync(whole), 2);
      const r = await ingest(s.db, [s.logs]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(
        { stored: r.summary.stored, duplicates: r.summary.duplicates, quarantined: r.summary.quarantined },
        { stored: auditOnly(s.damaged.records).length - auditOnly(s.expected.stored).length, duplicates: 0, quarantined: 0 },
        'the records after the damage, the one it cut included, and nothing else',
      );
      assert.deepEqual(await digest(s.db), digestOf([...s.damaged.records, ...s.good]));
      assert.deepEqual(await queryCli(s.db, 'SELECT reason FROM quarantine'), [], 'the damage is gone from quarantine');
      const st = await statusOf(s.db, s.damaged.name);
      assert.equal(st?.['state'], 'done');
      assert.equal(Number(st?.['events']), auditOnly(s.damaged.records).length);
      assert.equal(Number((await queryCli(s.db, 'SELECT count(*) AS n FROM ingest_files'))[0]!['n']), 2, 'one checkpoint per file');
      await nothingNew(s, 'after the copy was read');
    });
  }

  test('the complete file appears uncompressed next to its damaged .gz: read on from the damage, once', async () => {
    const s = scene('beside', 600, cases[1]!.build);
    await firstRun(s);
    // Older than the good file, which stays the active one.
    const plain = writeLog(s.damagedPath.replace(/\.gz$/, ''), csvOf(s.damaged.records), 0.5);
    const r = await ingest(s.db, [s.logs]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.summary.duplicates, 0);
    assert.equal(r.summary.stored, auditOnly(s.damaged.records).length - auditOnly(s.expected.stored).length);
    assert.deepEqual(await digest(s.db), digestOf([...s.damaged.records, ...s.good]));
    assert.deepEqual(await queryCli(s.db, 'SELECT reason FROM quarantine'), []);
    const st = await statusOf(s.db, basename(plain));
    assert.equal(st?.['state'], 'done');
    await nothingNew(s, 'both files there');
    assert.ok(readFileSync(s.damagedPath).length > 0);
  });
});

test('with a file archive: a damaged file is not archived and fails no run; the complete copy put in its place is', async () => {
  const s = scene('archive', 700, cases[1]!.build);
  const finished = writeLog(join(s.logs, 'postgresql-2024-05-01_093000.csv'), csvOf(generator(701).records(300)), 0.5);
  const archive = join(s.dir, 'archive');
  const config = join(s.dir, 'c.yaml');
  writeFileSync(
    config,
    [
      'pipelines:',
      '  logs:',
      '    source:',
      '      type: pg_logs',
      `      path: ${JSON.stringify(s.logs)}`,
      '    sinks:',
      `      - ${JSON.stringify({ type: 'archive', directory: archive, form: 'files' })}`,
      `      - ${JSON.stringify({ type: 'duckdb', path: s.db })}`,
      '',
    ].join('\n'),
  );
  const run = async (label: string) => {
    const r = await runCli(['run', '--config', config, '--json']);
    assert.equal(r.code, 0, `${label}: ${r.stdout}${r.stderr}`);
    return entriesOf(localManifest(archive))
      .map((e) => e.source.name)
      .sort();
  };
  assert.deepEqual(await run('first run'), [basename(finished)], 'the finished good file is archived, the damaged one not');
  assert.deepEqual(await run('second run'), [basename(finished)]);
  const whole = csvOf(s.damaged.records);
  writeLog(s.damagedPath, gzipSync(whole), 2);
  assert.deepEqual(await run('after the complete copy'), [basename(finished), s.damaged.name].sort());
  const entry = entriesOf(localManifest(archive)).find((e) => e.source.name === s.damaged.name)!;
  assert.equal(decode(readFileSync(join(archive, entry.key)), entry.compression).toString('utf8'), whole, 'the complete copy, byte for byte');
  assert.deepEqual(await queryCli(s.db, 'SELECT reason FROM quarantine'), []);
});
