import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { csvOf, CsvlogGenerator } from '../helpers/csvlog-gen.js';
import { queryDb, runCli, scratchDir, spawnCli, type CliChild } from '../helpers/ingest-cli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/pg-db.js';
import { startEsServer } from '../es-server/server.js';
import { parsePrometheusText, sampleValue, type PromFamily } from '../helpers/prom-text.js';
import { installAudit } from '../../src/sources/pg-audit-table/install.js';

/**
 * `auditship run --follow` serves Prometheus metrics: on `metrics.listen` (or `--metrics`) and on the UI's TCP
 * listener. Log files arrive and grow while it runs; the counters reach what the store holds (events, the
 * quarantine), lag and checkpoint age are there, every scrape reads back by a strict reader of the text
 * format, and `auditship status --json` gives the same numbers from the status file.
 */
const { dir, cleanup } = scratchDir('metrics');
const children: CliChild[] = [];
let tdb: TestDatabase | undefined;
after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await tdb?.drop();
  cleanup();
});

/** The URL of the metrics listener, from the daemon's log line (the port is chosen by the system). */
async function metricsUrl(daemon: CliChild): Promise<string> {
  let err = '';
  daemon.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  for (let i = 0; i < 300; i++) {
    const m = /"msg":"Serving metrics\.","url":"(http:\/\/[^"]+)"/.exec(err);
    if (m) return m[1]!;
    if (daemon.exitCode !== null) break;
    await sleep(100);
  }
  throw new Error(`the daemon did not log its metrics address:\n${err.slice(-2000)}`);
}

interface Scrape {
  status: number;
  type: string | null;
  text: string;
  families: Map<string, PromFamily>;
}

async function scrape(url: string, init?: RequestInit): Promise<Scrape> {
  const res = await fetch(url, init);
  const text = await res.text();
  return { status: res.status, type: res.headers.get('content-type'), text, families: res.status === 200 ? parsePrometheusText(text) : new Map() };
}

async function until<T>(what: string, get: () => Promise<T>, ok: (v: T) => boolean, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  let v = await get();
  while (!ok(v) && Date.now() < end) {
    await sleep(150);
    v = await get();
  }
  assert.ok(ok(v), `timed out waiting for ${what}`);
  return v;
}

/** Every histogram's series: counts per bucket never above _count, and sums not negative (the reader checked the rest). */
function checkHistograms(families: Map<string, PromFamily>, names: string[]): void {
  for (const name of names) {
    const f = families.get(name);
    assert.equal(f?.type, 'histogram', name);
    for (const s of f.samples.filter((x) => x.name === `${name}_sum`)) assert.ok(s.value >= 0, `${name}_sum ≥ 0`);
  }
}

test('run --follow: /metrics counts what a pg_logs pipeline stores while log files arrive and grow', { timeout: 180_000 }, async () => {
  const logs = join(dir, 'logs');
  mkdirSync(logs);
  const gen = new CsvlogGenerator({ seed: 16, sessionBase: 1_600_000 });
  const first = gen.records(1500);
  const garbage = 'this is not a csvlog record, only a line of noise\n';
  writeFileSync(join(logs, 'postgresql-2024-05-01_100000.csv'), csvOf(first.slice(0, 700)) + garbage + csvOf(first.slice(700)));
  const db = join(dir, 'audit.duckdb');
  const config = join(dir, 'config.yaml');
  writeFileSync(
    config,
    [
      'pipelines:',
      '  db-one.1:',
      `    source: { type: pg_logs, path: ${JSON.stringify(logs)}, poll_interval_ms: 200, server: db1 }`,
      `    sinks: [ { type: duckdb, path: ${JSON.stringify(db)} } ]`,
      'ui:',
      '  listen: 127.0.0.1:0',
      'metrics:',
      '  listen: 127.0.0.1:0',
      '',
    ].join('\n'),
  );
  const daemon = spawnCli(['run', '--config', config, '--follow']);
  children.push(daemon);
  const url = await metricsUrl(daemon);
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
  const P = { pipeline: 'db-one.1', source: 'pg_logs' };
  const stored = (s: Scrape) => sampleValue(s.families, 'auditship_events_stored_total', P) ?? -1;
  let expected = first.filter((r) => r.audit).length;
  await until(
    'the first file',
    () => scrape(url),
    (s) => stored(s) === expected,
  );

  // A second file arrives, then grows.
  const second = gen.records(1200);
  const file2 = join(logs, 'postgresql-2024-05-01_110000.csv');
  writeFileSync(file2, csvOf(second));
  expected += second.filter((r) => r.audit).length;
  await until(
    'the second file',
    () => scrape(url),
    (s) => stored(s) === expected,
  );
  const more = gen.records(800);
  appendFileSync(file2, csvOf(more));
  expected += more.filter((r) => r.audit).length;
  const s = await until(
    'the appended records',
    () => scrape(url),
    (x) => stored(x) === expected,
  );

  assert.equal(s.status, 200);
  assert.equal(s.type, 'text/plain; version=0.0.4; charset=utf-8');
  const v = (name: string, labels: Record<string, string> = P) => sampleValue(s.families, name, labels);
  assert.equal(v('auditship_records_quarantined_total'), 1, 'the line of noise');
  assert.equal(v('auditship_events_duplicate_total'), 0);
  assert.equal(v('auditship_events_read_total'), expected + 1, 'events and the quarantined record');
  const bytes = statSync(join(logs, 'postgresql-2024-05-01_100000.csv')).size + statSync(file2).size;
  assert.equal(v('auditship_read_bytes_total'), bytes, 'every byte of both files');
  assert.ok(v('auditship_commits_total')! >= 3, 'a commit per file, and one for the appended records');
  assert.ok(v('auditship_batches_total')! >= v('auditship_commits_total')!);
  assert.equal(v('auditship_retries_total'), 0);
  assert.equal(s.families.get('auditship_errors_total')!.samples.length, 0, 'no error');
  assert.equal(v('auditship_pipeline_state', { ...P, state: 'following' }), 1);
  assert.equal(v('auditship_pipeline_state', { ...P, state: 'retrying' }), 0);
  const lag = v('auditship_lag_seconds')!;
  const age = v('auditship_checkpoint_age_seconds')!;
  assert.ok(lag >= 0 && age >= 0, `lag ${lag}, checkpoint age ${age}`);
  const newest = more[more.length - 1]!.logTimeMs;
  assert.ok(Math.abs(lag - (Date.now() - newest) / 1000) < 60, `lag ${lag} s is now − the latest event time committed`);
  assert.ok(age < 60, `checkpoint age ${age} s`);
  checkHistograms(s.families, ['auditship_sink_write_duration_seconds', 'auditship_sink_commit_duration_seconds']);
  assert.equal(v('auditship_sink_commit_duration_seconds_count', { ...P, sink: 'duckdb' }), v('auditship_commits_total'), 'one commit time per commit');
  assert.equal(v('auditship_sink_write_duration_seconds_count', { ...P, sink: 'duckdb' }), v('auditship_batches_total'), 'one write time per batch');
  assert.ok(v('process_resident_memory_bytes', {})! > 10 << 20);
  assert.ok(v('nodejs_heap_size_used_bytes', {})! > 0);
  assert.equal(v('auditship_build_info', { version: JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version }), 1);
  // Every counter is named …_total, and no label holds anything but the bounded sets.
  for (const f of s.families.values()) {
    if (f.type === 'counter') assert.match(f.name, /_total$/);
    for (const x of f.samples)
      for (const k of Object.keys(x.labels)) assert.ok(['pipeline', 'source', 'sink', 'kind', 'state', 'le', 'version'].includes(k), `${f.name} label ${k}`);
  }
  assert.ok(!s.text.includes('SELECT') && !s.text.includes(logs), 'no statement text, no path');

  // Only GET /metrics there.
  assert.equal((await scrape(url.replace(/metrics$/, ''))).status, 404);
  assert.equal((await scrape(url, { method: 'POST' })).status, 405);

  // The UI's TCP listener serves them too.
  const st = await until(
    'the status file',
    async () => {
      try {
        return JSON.parse(readFileSync(`${db}.status.json`, 'utf8')) as Record<string, any>;
      } catch {
        return null;
      }
    },
    (x) => Boolean(x?.ui?.url),
  );
  const viaUi = await scrape(`${String(st!['ui'].url).replace(/\/$/, '')}/metrics`);
  assert.equal(viaUi.status, 200);
  assert.equal(viaUi.type, 'text/plain; version=0.0.4; charset=utf-8');
  assert.equal(sampleValue(viaUi.families, 'auditship_events_stored_total', P), expected);

  // status --json: the same counters, from the status file the daemon writes.
  const status = await until(
    'status --json to have the counters',
    async () => {
      const r = await runCli(['status', '--db', db, '--json']);
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout) as Record<string, any>;
    },
    (x) => x['metrics']?.pipelines?.['db-one.1']?.events_stored === expected,
  );
  const m = status['metrics'].pipelines['db-one.1'];
  assert.equal(m.source, 'pg_logs');
  assert.equal(m.records_quarantined, 1);
  assert.equal(m.events_read, expected + 1);
  assert.equal(m.commits, v('auditship_commits_total'));
  assert.ok(m.lag_seconds >= 0 && m.checkpoint_age_seconds >= 0);
  assert.ok(status['metrics'].process.resident_memory_bytes > 0);
  assert.equal(status['daemon'].pipelines[0].state, 'following');
  assert.equal(status['daemon'].metrics, undefined, 'printed once, under metrics');

  daemon.kill('SIGTERM');
  const r = await daemon.result;
  assert.equal(r.code, 0, r.stderr.slice(-2000));
  const [counts] = await queryDb(db, 'SELECT (SELECT count(*) FROM audit_logs)::INTEGER AS events, (SELECT count(*) FROM quarantine)::INTEGER AS quarantined');
  assert.deepEqual(counts, { events: expected, quarantined: 1 }, 'the counters are what the store holds');
  await assert.rejects(fetch(url), 'the listener is closed');

  // Without a daemon, status --json is as before: no metrics.
  const after = await runCli(['status', '--db', db, '--json']);
  assert.equal(after.code, 0, after.stderr);
  const plain = JSON.parse(after.stdout) as Record<string, unknown>;
  assert.equal(plain['metrics'], undefined);
  assert.equal(plain['daemon'], undefined);
  assert.equal(Number((plain['totals'] as Record<string, unknown>)['events']), expected);
});

test('run --follow --metrics: a pg_audit_table pipeline counts its rows', { timeout: 120_000 }, async () => {
  tdb = await createTestDatabase('metrics');
  await tdb.client.query('CREATE TABLE t (id int PRIMARY KEY, note text)');
  await installAudit(tdb.client, { schema: 'auditship', tables: ['t'] });
  const db = join(dir, 'rows.duckdb');
  const config = join(dir, 'rows.yaml');
  writeFileSync(
    config,
    [
      'pipelines:',
      `  rows: { source: { type: pg_audit_table, url: ${JSON.stringify(tdb.url)}, poll_interval_ms: 200, batch_latency_ms: 0 }, sinks: [ { type: duckdb, path: ${JSON.stringify(db)} } ] }`,
      '',
    ].join('\n'),
  );
  const daemon = spawnCli(['run', '--config', config, '--follow', '--metrics', '127.0.0.1:0']);
  children.push(daemon);
  const url = await metricsUrl(daemon);
  const P = { pipeline: 'rows', source: 'pg_audit_table' };
  await until(
    'the pipeline to follow',
    () => scrape(url),
    (s) => sampleValue(s.families, 'auditship_pipeline_state', { ...P, state: 'following' }) === 1,
  );
  await tdb.client.query("INSERT INTO t SELECT g, 'n' || g FROM generate_series(1, 30) g");
  await tdb.client.query("UPDATE t SET note = 'x' WHERE id <= 10");
  const s = await until(
    '40 rows',
    () => scrape(url),
    (x) => sampleValue(x.families, 'auditship_events_stored_total', P) === 40,
  );
  const v = (name: string, labels: Record<string, string> = P) => sampleValue(s.families, name, labels);
  assert.equal(v('auditship_events_read_total'), 40);
  assert.equal(v('auditship_records_quarantined_total'), 0);
  assert.ok(v('auditship_commits_total')! >= 1);
  assert.ok(v('auditship_lag_seconds')! >= 0 && v('auditship_lag_seconds')! < 120, "lag from the rows' clock time");
  assert.ok(v('auditship_checkpoint_age_seconds')! >= 0);
  assert.equal(v('auditship_sink_commit_duration_seconds_count', { ...P, sink: 'duckdb' }), v('auditship_commits_total'));
  checkHistograms(s.families, ['auditship_sink_write_duration_seconds', 'auditship_sink_commit_duration_seconds']);
  daemon.kill('SIGTERM');
  const r = await daemon.result;
  assert.equal(r.code, 0, r.stderr.slice(-2000));
  const [rows] = await queryDb(db, 'SELECT count(*)::INTEGER AS n FROM row_changes');
  assert.equal(rows!['n'], 40);
});

test('run --follow: a document too large for the search cluster counts as a dead letter of the elasticsearch sink', { timeout: 120_000 }, async () => {
  const es = await startEsServer({ flavor: 'elasticsearch', refresh: 'immediate' });
  try {
    const logs = join(dir, 'es-logs');
    mkdirSync(logs);
    const gen = new CsvlogGenerator({ seed: 17, sessionBase: 1_700_000 });
    const records = [...gen.records(300), gen.huge(200_000), ...gen.records(300)];
    writeFileSync(join(logs, 'postgresql-2024-05-01_100000.csv'), csvOf(records));
    const db = join(dir, 'es.duckdb');
    const config = join(dir, 'es.yaml');
    writeFileSync(
      config,
      [
        'pipelines:',
        '  search:',
        `    source: { type: pg_logs, path: ${JSON.stringify(logs)}, poll_interval_ms: 200 }`,
        '    sinks:',
        `      - { type: elasticsearch, url: ${JSON.stringify(es.url)}, max_content_length: 65536 }`,
        `      - { type: duckdb, path: ${JSON.stringify(db)} }`,
        'metrics: { listen: "127.0.0.1:0" }',
        '',
      ].join('\n'),
    );
    const daemon = spawnCli(['run', '--config', config, '--follow']);
    children.push(daemon);
    const url = await metricsUrl(daemon);
    const P = { pipeline: 'search', source: 'pg_logs' };
    const expected = records.filter((r) => r.audit).length;
    const s = await until(
      'the file and its dead letter',
      () => scrape(url),
      (x) =>
        sampleValue(x.families, 'auditship_events_stored_total', P) === expected &&
        sampleValue(x.families, 'auditship_dead_letters_total', { ...P, sink: 'elasticsearch' }) === 1,
    );
    checkHistograms(s.families, ['auditship_sink_write_duration_seconds', 'auditship_sink_commit_duration_seconds']);
    for (const sink of ['elasticsearch', 'duckdb']) {
      assert.ok(sampleValue(s.families, 'auditship_sink_write_duration_seconds_count', { ...P, sink })! >= 1, `${sink} writes timed`);
      assert.equal(
        sampleValue(s.families, 'auditship_sink_commit_duration_seconds_count', { ...P, sink }),
        sampleValue(s.families, 'auditship_commits_total', P),
        `${sink} commits timed`,
      );
    }
    daemon.kill('SIGTERM');
    const r = await daemon.result;
    assert.equal(r.code, 0, r.stderr.slice(-2000));
    const [dead] = await queryDb(db, 'SELECT count(*)::INTEGER AS n FROM es_dead_letters');
    assert.equal(dead!['n'], 1, 'the counter is what es_dead_letters holds');
  } finally {
    await es.close();
  }
});

test('--metrics needs --follow; a malformed address is a usage error', async () => {
  const config = join(dir, 'usage.yaml');
  writeFileSync(
    config,
    `pipelines:\n  logs: { source: { type: pg_logs, path: ${JSON.stringify(dir)} }, sinks: [ { type: duckdb, path: ${JSON.stringify(join(dir, 'usage.duckdb'))} } ] }\n`,
  );
  const once = await runCli(['run', '--config', config, '--metrics', '127.0.0.1:9464']);
  assert.equal(once.code, 2);
  assert.match(once.stderr, /--metrics needs --follow/);
  const bad = await runCli(['run', '--config', config, '--follow', '--metrics', 'nowhere']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--metrics: "nowhere" is not HOST:PORT/);
});
