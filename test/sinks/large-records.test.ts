import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { csvOf, CsvlogGenerator, type GenRecord } from '../helpers/csvlog-gen.js';
import { decode, duck, entriesOf, localManifest, writeLogs } from '../helpers/archive.js';
import { queryDb, runCli, scratchDir } from '../helpers/ingest-cli.js';

/**
 * One large record never stalls a pipeline: statements of megabytes (a bulk INSERT, a function body) go to the
 * DuckDB store, the NDJSON archive and Parquet; a record Parquet cannot take within the memory allowed is
 * archived beside it as NDJSON.gz, listed with the reason, and everything after it is archived as usual.
 */
const { dir, cleanup } = scratchDir('large-records');
after(cleanup);

const MB = 1 << 20;

interface Logs {
  path: string;
  records: GenRecord[];
  big: GenRecord[];
}

/** Two log files: ordinary records with large statements among them, a line of garbage, and a later file. */
function makeLogs(name: string, bigSizes: number[]): Logs {
  const path = join(dir, name, 'log');
  mkdirSync(path, { recursive: true });
  const gen = new CsvlogGenerator({ seed: 31, sessionBase: 5_000_000 });
  const first: GenRecord[] = [];
  const big: GenRecord[] = [];
  for (let i = 0; i < 4000; i++) {
    if (i % 1000 === 500 && big.length < bigSizes.length) {
      const r = gen.huge(bigSizes[big.length]!);
      big.push(r);
      first.push(r);
    } else {
      first.push(gen.next());
    }
  }
  const second = gen.records(300);
  const garbage = 'this is not a csvlog record, just a line of noise in the file\n';
  writeLogs(path, [
    { name: 'postgresql-2024-05-01_100000.csv', text: csvOf(first.slice(0, 2000)) + garbage + csvOf(first.slice(2000)), agoS: 600 },
    { name: 'postgresql-2024-05-01_110000.csv', text: csvOf(second), agoS: 300 },
  ]);
  return { path, records: [...first, ...second].filter((r) => r.audit), big };
}

function setup(name: string, logs: Logs, parquet: Record<string, unknown>) {
  const base = join(dir, name);
  const archive = join(base, 'archive');
  const db = join(base, 'a.duckdb');
  const config = join(base, 'c.yaml');
  writeFileSync(
    config,
    [
      'pipelines:',
      '  logs:',
      `    source: { type: pg_logs, path: ${JSON.stringify(logs.path)}, server: db1 }`,
      '    sinks:',
      `      - ${JSON.stringify({ type: 'archive', directory: join(archive, 'parquet'), form: 'parquet', ...parquet })}`,
      `      - ${JSON.stringify({ type: 'archive', directory: join(archive, 'ndjson'), form: 'ndjson' })}`,
      `      - ${JSON.stringify({ type: 'duckdb', path: db })}`,
      '',
    ].join('\n'),
  );
  return { config, db, parquet: join(archive, 'parquet'), ndjson: join(archive, 'ndjson') };
}

async function runOk(config: string): Promise<{ summary: Record<string, unknown>; stderr: string }> {
  const r = await runCli(['run', '--config', config, '--json']);
  assert.equal(r.code, 0, `run failed: ${r.stderr.slice(-3000)}`);
  return { summary: (JSON.parse(r.stdout.trim().split('\n').pop()!) as { pipelines: Record<string, unknown>[] }).pipelines[0]!, stderr: r.stderr };
}

const keyOf = (session: unknown, line: unknown) => `${String(session)}/${Number(line)}`;

/** Every event of the logs in the store once, the large statements whole. */
async function assertStore(db: string, logs: Logs): Promise<void> {
  const rows = await queryDb(db, 'SELECT session_id, session_line_num, length(statement) AS len FROM audit_logs');
  assert.equal(rows.length, logs.records.length);
  assert.deepEqual(new Set(rows.map((r) => keyOf(r['session_id'], r['session_line_num']))), new Set(logs.records.map((r) => keyOf(r.sessionId, r.line))));
  const lengths = new Map(rows.map((r) => [keyOf(r['session_id'], r['session_line_num']), Number(r['len'])]));
  for (const b of logs.big) assert.equal(lengths.get(keyOf(b.sessionId, b.line)), b.statement!.length, 'a large statement stored whole');
  const [q] = await queryDb(db, 'SELECT count(*) AS n FROM quarantine');
  assert.equal(Number(q!['n']), 1, 'the line of noise quarantined, nothing else');
}

/** The NDJSON lines of the archive's objects whose key starts with `prefix`. */
function ndjsonLines(root: string, prefix: string): Record<string, unknown>[] {
  return entriesOf(localManifest(root))
    .filter((e) => e.key.startsWith(prefix))
    .flatMap((e) =>
      decode(readFileSync(join(root, e.key)), 'gzip')
        .toString('utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
    );
}

describe('large records', { timeout: 600_000 }, () => {
  test('statements of 1.3 MB and 24 MB: stored whole, in one Parquet file per range with the others, in NDJSON; a rerun adds nothing', async () => {
    const logs = makeLogs('fits', [1.3 * MB, 1.3 * MB, 24 * MB, 1.3 * MB]);
    const s = setup('fits', logs, {});
    const { summary, stderr } = await runOk(s.config);
    assert.equal(summary['stored'], logs.records.length);
    assert.doesNotMatch(stderr, /could not be written/);
    await assertStore(s.db, logs);
    const entries = entriesOf(localManifest(s.parquet)).filter((e) => !e.dataset);
    assert.deepEqual(
      entries.map((e) => e.key.split('/')[0]),
      ['pgaudit', 'pgaudit'],
      'one Parquet object per file range, no rejects',
    );
    const pq = await duck(`SELECT session_id, session_line_num, length(statement) AS len FROM read_parquet('${s.parquet}/pgaudit/**/*.parquet')`);
    assert.equal(pq.length, logs.records.length);
    const lengths = new Map(pq.map((r) => [keyOf(r['session_id'], r['session_line_num']), Number(r['len'])]));
    for (const b of logs.big) assert.equal(lengths.get(keyOf(b.sessionId, b.line)), b.statement!.length, 'a large statement whole in Parquet');
    const nd = ndjsonLines(s.ndjson, 'pgaudit-ndjson/');
    assert.equal(nd.length, logs.records.length);
    const bigNd = nd.filter((l) => logs.big.some((b) => keyOf(b.sessionId, b.line) === keyOf(l['session_id'], l['session_line_num'])));
    assert.deepEqual(bigNd.map((l) => String(l['statement'])).sort(), logs.big.map((b) => b.statement!).sort(), 'large statements whole in NDJSON');

    const again = await runOk(s.config);
    assert.equal(again.summary['stored'], 0);
    assert.equal(entriesOf(localManifest(s.parquet)).filter((e) => !e.dataset).length, 2, 'a rerun archives nothing');
  });

  test('a record Parquet cannot take within parquet_memory_limit is archived beside it as NDJSON.gz with the reason; nothing stalls, every event once', async () => {
    // 48 MB of statement: DuckDB's JSON reader alone needs twice that, more than the 100MB allowed.
    const logs = makeLogs('rejects', [1.3 * MB, 48 * MB]);
    const s = setup('rejects', logs, { parquet_memory_limit: '100MB' });
    const { summary, stderr } = await runOk(s.config);
    assert.equal(summary['stored'], logs.records.length);
    assert.match(stderr, /Records that cannot be written to Parquet were archived as NDJSON\.gz/);
    assert.ok(!stderr.includes(logs.big[1]!.statement!.slice(0, 200)), 'no statement text in the log');
    await assertStore(s.db, logs);

    const entries = entriesOf(localManifest(s.parquet));
    const rejects = entries.filter((e) => e.key.startsWith('pgaudit-rejects/'));
    assert.equal(rejects.length, 1);
    const listed = (rejects[0] as unknown as { rejected: { session_id: string; session_line_num: number; reason: string }[] }).rejected;
    assert.deepEqual(
      listed.map((r) => keyOf(r.session_id, r.session_line_num)),
      [keyOf(logs.big[1]!.sessionId, logs.big[1]!.line)],
    );
    assert.match(listed[0]!.reason, /^Out of Memory Error (writing|reading) a record/);
    assert.equal(rejects[0]!.events, 1);
    const rejected = ndjsonLines(s.parquet, 'pgaudit-rejects/');
    assert.equal(rejected.length, 1);
    assert.equal(rejected[0]!['statement'], logs.big[1]!.statement, 'the rejected event whole, statement and all');
    assert.equal(rejected[0]!['server'], 'db1');

    // Parquet and the rejects together: every event exactly once.
    const pq = await duck(`SELECT session_id, session_line_num FROM read_parquet('${s.parquet}/pgaudit/**/*.parquet')`);
    const keys = [...pq.map((r) => keyOf(r['session_id'], r['session_line_num'])), ...rejected.map((l) => keyOf(l['session_id'], l['session_line_num']))];
    assert.equal(keys.length, logs.records.length);
    assert.deepEqual(new Set(keys), new Set(logs.records.map((r) => keyOf(r.sessionId, r.line))));
    assert.equal(
      entries.filter((e) => !e.dataset).reduce((n, e) => n + (e.events ?? 0), 0),
      logs.records.length,
      'manifest events add up',
    );

    const verify = await runCli(['verify-archive', '--directory', s.parquet]);
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);
    const status = await runCli(['status', '--db', s.db, '--json']);
    assert.equal((JSON.parse(status.stdout) as { totals: { archive_rejects: number } }).totals.archive_rejects, 1);
    const statusText = await runCli(['status', '--db', s.db]);
    assert.match(statusText.stdout, /1 event\(s\) Parquet could not take, archived as NDJSON\.gz under pgaudit-rejects\//);

    const again = await runOk(s.config);
    assert.equal(again.summary['stored'], 0);
    assert.equal(entriesOf(localManifest(s.parquet)).length, entries.length, 'a rerun archives nothing');
  });
});
