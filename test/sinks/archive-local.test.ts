import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, rmSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { after, describe, test } from 'node:test';
import { csvOf, CsvlogGenerator } from '../helpers/csvlog-gen.js';
import { decode, duck, entriesOf, listDir, localManifest, sha256, writeLogs } from '../helpers/archive.js';
import { hasStackTrace, queryDb, ROOT, runCli, scratchDir } from '../helpers/ingest-cli.js';

/**
 * The archive sink into a local directory, end to end through the CLI: the three forms from real pgaudit
 * logs (what PostgreSQL 15 wrote), the manifest, verify-archive finding damage, versions of a file that
 * changed, compressed copies not archived twice, and the config checks.
 */
const { dir, cleanup } = scratchDir('archive-local');
after(cleanup);
const REAL_LOGS = join(ROOT, 'examples', 'pgaudit-logs');
let seq = 0;

function setup(sinks: Record<string, unknown>[], opts: { logs?: string; server?: string; storeEvents?: boolean } = {}) {
  const n = seq++;
  const base = join(dir, `t${n}`);
  mkdirSync(base, { recursive: true });
  const db = join(base, 'a.duckdb');
  const archive = join(base, 'archive');
  const lines = [
    'pipelines:',
    '  logs:',
    '    source:',
    '      type: pg_logs',
    `      path: ${JSON.stringify(opts.logs ?? REAL_LOGS)}`,
    `      server: ${opts.server ?? 'db1'}`,
    '    sinks:',
  ];
  for (const s of sinks) lines.push(`      - ${JSON.stringify({ type: 'archive', directory: archive, ...s })}`);
  lines.push(`      - ${JSON.stringify({ type: 'duckdb', path: db, ...(opts.storeEvents === false ? { store_events: false } : {}) })}`);
  const config = join(base, 'c.yaml');
  writeFileSync(config, lines.join('\n') + '\n');
  return { config, db, archive, base };
}

async function runOk(config: string): Promise<Record<string, unknown>> {
  const r = await runCli(['run', '--config', config, '--json']);
  assert.equal(r.code, 0, `run failed: ${r.stderr.slice(-3000)}`);
  return (JSON.parse(r.stdout.trim().split('\n').pop()!) as { pipelines: Record<string, unknown>[] }).pipelines[0]!;
}

describe('archive sink, local directory', () => {
  test('real pgaudit logs in all three forms: every event once, the files byte for byte, the manifest exact, verify-archive passes; a rerun adds nothing', async () => {
    const s = setup([{ form: 'files' }, { form: 'parquet' }, { form: 'ndjson' }]);
    await runOk(s.config);
    const stored = await queryDb(s.db, `SELECT session_id, session_line_num FROM audit_logs ORDER BY 1, 2`);
    assert.equal(stored.length, 121);
    const want = stored.map((r) => `${r['session_id']}/${r['session_line_num']}`);

    // Parquet, as DuckDB users will read it: hive partitions server and date.
    const pq = await duck(
      `SELECT server, CAST(date AS VARCHAR) AS date, session_id, session_line_num, log_time, statement FROM read_parquet('${s.archive}/pgaudit/**/*.parquet', hive_partitioning = true) ORDER BY session_id, session_line_num`,
    );
    assert.deepEqual(
      pq.map((r) => `${r['session_id']}/${r['session_line_num']}`),
      want,
    );
    assert.ok(pq.every((r) => r['server'] === 'db1' && String(r['log_time']).startsWith(String(r['date']))));
    // The archive keeps what pgaudit wrote; the DuckDB store fills `<previously logged>` from the first entry.
    const statements = await queryDb(
      s.db,
      `SELECT CASE WHEN statement_filled THEN '<previously logged>' ELSE statement END AS statement FROM audit_logs ORDER BY session_id, session_line_num`,
    );
    assert.deepEqual(
      pq.map((r) => r['statement']),
      statements.map((r) => r['statement']),
    );

    // NDJSON.gz.
    const entries = entriesOf(localManifest(s.archive));
    const nd = entries
      .filter((e) => e.form === 'ndjson' && !e.dataset)
      .flatMap((e) =>
        decode(readFileSync(join(s.archive, e.key)), 'gzip')
          .toString('utf8')
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as Record<string, unknown>),
      );
    assert.deepEqual(nd.map((r) => `${r['session_id']}/${r['session_line_num']}`).sort(), [...want].sort());
    assert.ok(nd.every((r) => r['server'] === 'db1'));
    const times = new Map(
      (
        await queryDb(
          s.db,
          `SELECT session_id || '/' || session_line_num AS id, strftime(log_time, '%Y-%m-%dT%H:%M:%S.%gZ') AS t, strftime(session_start, '%Y-%m-%dT%H:%M:%S.%gZ') AS s FROM audit_logs`,
        )
      ).map((r) => [r['id'], r]),
    );
    for (const r of nd) {
      const db = times.get(`${r['session_id']}/${r['session_line_num']}`)!;
      assert.equal(r['log_time'], db['t']);
      assert.equal(r['session_start'], db['s']);
    }

    // Files: the finished log file (the newest of each format is active and not archived yet), byte for byte.
    const files = entries.filter((e) => e.form === 'files');
    assert.deepEqual(
      files.map((e) => e.key),
      ['logs/server=db1/date=2026-11-22/postgresql-2026-11-22_031156.json.gz'],
    );
    const original = readFileSync(join(REAL_LOGS, 'postgresql-2026-11-22_031156.json'));
    const object = readFileSync(join(s.archive, files[0]!.key));
    assert.ok(decode(object, 'gzip').equals(original));
    assert.equal(files[0]!.content_sha256, sha256(original));
    assert.equal(files[0]!.sha256, sha256(object));
    assert.equal(files[0]!.size, object.length);
    assert.equal(files[0]!.lines, original.toString().split('\n').length - 1);
    assert.equal(files[0]!.first_event_time, '2026-11-22T03:11:56.566Z'); // the file's first and last record
    assert.equal(files[0]!.last_event_time, '2026-11-22T03:11:57.754Z');
    assert.equal(files[0]!.events, 40);

    // Every entry: checksum and size of what is on disk, one entry per key, events adding up per form.
    for (const e of entries) {
      const body = readFileSync(join(s.archive, e.key));
      assert.equal(e.sha256, sha256(body), e.key);
      assert.equal(e.size, body.length);
    }
    assert.equal(new Set(entries.map((e) => e.key)).size, entries.length);
    assert.equal(
      entries.filter((e) => e.form === 'parquet').reduce((n, e) => n + e.events!, 0),
      121,
    );
    assert.deepEqual(
      entries.map((e) => e.seq),
      entries.map((_, i) => i + 1),
    );

    const v = await runCli(['verify-archive', '--directory', s.archive]);
    assert.equal(v.code, 0, v.stdout + v.stderr);
    // Besides the 5 objects of files and events, each event form's correlation of the two ranges (sessions of
    // both files, statement errors of the second): 6 objects.
    assert.deepEqual(
      entries
        .filter((e) => e.dataset)
        .map((e) => `${e.form} ${e.dataset}`)
        .sort(),
      ['ndjson sessions', 'ndjson sessions', 'ndjson statement_errors', 'parquet sessions', 'parquet sessions', 'parquet statement_errors'],
    );
    assert.match(v.stdout, /✔ .*: 11 of 11 objects intact/);

    const before = listDir(s.archive);
    await runOk(s.config);
    assert.deepEqual(listDir(s.archive), before, 'a rerun with nothing new writes nothing');
    assert.equal(Number((await queryDb(s.db, 'SELECT count(*) AS n FROM archive_pending'))[0]!['n']), 0);
  });

  test('verify-archive names a damaged object, a missing one and a deleted manifest part, and exits 1', async () => {
    const logs = join(dir, 'logs-verify');
    mkdirSync(logs);
    const gen = new CsvlogGenerator({ seed: 7 });
    writeLogs(logs, [
      { name: 'postgresql-2024-05-01_120000.csv', text: csvOf(gen.records(200)), agoS: 300 },
      { name: 'postgresql-2024-05-01_130000.csv', text: csvOf(gen.records(200)), agoS: 200 },
    ]);
    const s = setup([{ form: 'files' }], { logs, storeEvents: false });
    await runOk(s.config);
    // A second part for a second file.
    writeLogs(logs, [{ name: 'postgresql-2024-05-01_140000.csv', text: csvOf(gen.records(10)), agoS: 100 }]);
    await runOk(s.config);
    const parts = localManifest(s.archive);
    assert.equal(parts.length, 2);
    const entries = entriesOf(parts);
    assert.equal(entries.length, 2);
    assert.equal(parts[1]!.header['prev_sha256'], sha256(parts[0]!.text), 'the second part chains to the first');

    const ok = await runCli(['verify-archive', '--directory', s.archive, '--deep']);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);

    const damaged = join(s.archive, entries[0]!.key);
    const bytes = readFileSync(damaged);
    bytes[bytes.length >> 1] = bytes[bytes.length >> 1]! ^ 0x40;
    writeFileSync(damaged, bytes);
    unlinkSync(join(s.archive, entries[1]!.key));
    unlinkSync(join(s.archive, parts[0]!.key));
    writeFileSync(join(s.archive, 'logs/server=db1/date=2024-05-01/stray.csv.gz'), 'x');
    const bad = await runCli(['verify-archive', '--directory', s.archive]);
    assert.equal(bad.code, 1);
    // The first part is gone: its entry is no longer checked, but the chain says it is missing.
    assert.match(bad.stdout, /✘ manifest: _manifest\/server=db1\/.*entries 1\.\.1 .* are missing/);
    assert.match(bad.stdout, new RegExp(`✘ missing: ${entries[1]!.key.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    // The stray file, and the object whose entry was in the deleted part.
    assert.match(bad.stdout, /2 object\(s\) in no manifest entry/);
    assert.match(bad.stderr, /problem\(s\) found/);
    assert.ok(!hasStackTrace(bad.stderr));

    // Restore the part: now the damaged object is found by its SHA-256.
    writeFileSync(join(s.archive, parts[0]!.key), parts[0]!.text);
    const bad2 = await runCli(['verify-archive', '--directory', s.archive, '--json']);
    assert.equal(bad2.code, 1);
    const report = JSON.parse(bad2.stdout) as { archives: { problems: { kind: string; key: string }[] }[] };
    assert.deepEqual(report.archives[0]!.problems.map((p) => `${p.kind} ${p.key}`).sort(), [`corrupt ${entries[0]!.key}`, `missing ${entries[1]!.key}`].sort());
  });

  test('a finished file whose content changes is archived again whole (a new version superseding the old); a renamed or gzipped copy is not archived again', async () => {
    const logs = join(dir, 'logs-versions');
    mkdirSync(logs);
    const gen = new CsvlogGenerator({ seed: 8 });
    const first = csvOf(gen.records(100));
    writeLogs(logs, [
      { name: 'postgresql-2024-05-01_120000.csv', text: first, agoS: 300 },
      { name: 'postgresql-2024-05-01_130000.csv', text: csvOf(gen.records(10)), agoS: 100 },
    ]);
    const s = setup([{ form: 'files', compression: 'zstd' }], { logs, storeEvents: false });
    await runOk(s.config);
    let entries = entriesOf(localManifest(s.archive));
    assert.deepEqual(
      entries.map((e) => e.key),
      ['logs/server=db1/date=2024-05-01/postgresql-2024-05-01_120000.csv.zst'],
    );
    assert.ok(decode(readFileSync(join(s.archive, entries[0]!.key)), 'zstd').equals(Buffer.from(first)));

    // Compressed by a cron job: same content, so nothing new.
    const path = join(logs, 'postgresql-2024-05-01_120000.csv');
    writeFileSync(`${path}.gz`, gzipSync(readFileSync(path)));
    utimesSync(`${path}.gz`, Date.now() / 1000 - 250, Date.now() / 1000 - 250);
    unlinkSync(path);
    await runOk(s.config);
    assert.equal(entriesOf(localManifest(s.archive)).length, 1);

    // Someone appends to the finished file: a second version, the first kept.
    rmSync(`${path}.gz`);
    const more = csvOf(gen.records(5));
    writeLogs(logs, [{ name: 'postgresql-2024-05-01_120000.csv', text: first + more, agoS: 250 }]);
    await runOk(s.config);
    entries = entriesOf(localManifest(s.archive));
    assert.deepEqual(
      entries.map((e) => e.key),
      ['logs/server=db1/date=2024-05-01/postgresql-2024-05-01_120000.csv.zst', 'logs/server=db1/date=2024-05-01/postgresql-2024-05-01_120000.csv.v2.zst'],
    );
    assert.equal(entries[1]!.supersedes, entries[0]!.key);
    assert.ok(decode(readFileSync(join(s.archive, entries[1]!.key)), 'zstd').equals(Buffer.from(first + more)));
    assert.ok(decode(readFileSync(join(s.archive, entries[0]!.key)), 'zstd').equals(Buffer.from(first)));
    const v = await runCli(['verify-archive', '--directory', s.archive, '--deep']);
    assert.equal(v.code, 0, v.stdout + v.stderr);
  });

  test('archive-only pipelines do not parse; a parse pipeline records the events of each archived file', async () => {
    const logs = join(dir, 'logs-noparse');
    mkdirSync(logs);
    const gen = new CsvlogGenerator({ seed: 9 });
    writeLogs(logs, [
      { name: 'postgresql-2024-05-01_120000.csv', text: csvOf(gen.records(50)), agoS: 300 },
      { name: 'postgresql-2024-05-01_130000.csv', text: csvOf(gen.records(10)), agoS: 100 },
    ]);
    const only = setup([{ form: 'files' }], { logs, storeEvents: false });
    const summary = await runOk(only.config);
    assert.equal(summary['events'], 0);
    assert.equal(entriesOf(localManifest(only.archive))[0]!.events, undefined);
    const both = setup([{ form: 'files' }], { logs });
    await runOk(both.config);
    assert.equal(entriesOf(localManifest(both.archive))[0]!.events, 50);
  });

  test('config: every wrong archive setting is named, exit 2', async () => {
    const base = join(dir, 'cfg');
    mkdirSync(base, { recursive: true });
    const config = join(base, 'c.yaml');
    writeFileSync(
      config,
      [
        'pipelines:',
        '  a:',
        '    source: { type: pg_logs, path: /tmp }',
        '    sinks:',
        `      - { type: archive, directory: ${base}/x, bucket: b, object_lock_mode: COMPLIANCE, storage_class: GLACIER }`,
        `      - { type: duckdb, path: ${base}/a.duckdb }`,
        '  b:',
        '    source: { type: pg_audit_table, url: "postgres://x@127.0.0.1/db" }',
        '    sinks:',
        `      - { type: archive, bucket: b2, object_lock_days: 3, sse_kms_key_id: k }`,
        `      - { type: duckdb, path: ${base}/b.duckdb }`,
      ].join('\n') + '\n',
    );
    const r = await runCli(['run', '--config', config]);
    assert.equal(r.code, 2, r.stderr);
    for (const want of [
      /pipelines\.a\.sinks\[0\]: give either directory \(a local archive\) or bucket \(S3\), not both/,
      /pipelines\.a\.sinks\[0\]\.object_lock_days: required with object_lock_mode COMPLIANCE/,
      /pipelines\.a\.sinks\[0\]\.storage_class: applies to a bucket/,
      /pipelines\.b\.sinks\[0\]: the archive sink takes log files .* pg_logs or rds_logs pipeline/,
      /pipelines\.b\.sinks\[0\]\.object_lock_days: only with object_lock_mode/,
      /pipelines\.b\.sinks\[0\]\.sse_kms_key_id: only with sse: aws:kms/,
    ])
      assert.match(r.stderr, want);
    assert.ok(!hasStackTrace(r.stderr));
  });

  test('an unwritable archive directory is one line, exit 1', async () => {
    const logs = join(dir, 'logs-unwritable');
    mkdirSync(logs);
    copyFileSync(join(REAL_LOGS, 'postgresql-2026-11-22_031156.json'), join(logs, 'postgresql-2026-11-22_031156.json'));
    const s = setup([{ form: 'files' }], { logs });
    writeFileSync(s.archive, 'a file where the directory should be');
    const r = await runCli(['run', '--config', s.config]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /auditship: pipeline logs failed: .*archive/);
    assert.ok(!hasStackTrace(r.stderr));
  });
});
