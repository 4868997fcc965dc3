import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BulkWriter } from '../../src/sinks/elasticsearch/bulk.js';
import { EsHttp } from '../../src/sinks/elasticsearch/http.js';
import type { Logger } from '../../src/core/log.js';
import { requestJson, spawnEsServer, type SpawnedEsServer } from '../es-server/client.js';
import { startEsServer } from '../es-server/server.js';
import { writeLogs } from '../helpers/archive.js';
import { esDocs, esFailure, esOutcomes, esSession, storeCorrelation } from '../helpers/correlation.js';
import { auditOnly, csvOf, CsvlogGenerator, type GenRecord } from '../helpers/csvlog-gen.js';
import { queryDb, runCli, scratchDir } from '../helpers/ingest-cli.js';
import { generateWorkload } from '../ui/workload.js';

/**
 * One large pgaudit record (a multi-MB statement) never stalls the elasticsearch sink: with
 * max_content_length set to the cluster's http.max_content_length it is dead-lettered before sending; with the
 * cluster's limit lower than max_content_length, the 413s are split until the document is refused alone and
 * dead-lettered. Either way every other event — before it, after it in the same file, in later files — is in
 * the cluster once, the run exits 0, and a rerun adds nothing. Through the CLI, against the test server
 * (test/es-server) with maxContentLength set: it answers 413 with an empty body and applies nothing, as
 * Elasticsearch and OpenSearch do.
 */

const { dir, cleanup } = scratchDir('es-large');
after(cleanup);
let seq = 0;
const MiB = 1024 * 1024;
/** The repeated unit of CsvlogGenerator.huge(): no log line may show it. */
const STATEMENT_TEXT = `SELECT "a, b", 'c''d' FROM t`;

interface Setup {
  config: string;
  db: string;
}

function config(url: string, logs: string, es: Record<string, unknown> = {}): Setup {
  const n = seq++;
  const db = join(dir, `large-${n}.duckdb`);
  const lines = [
    'pipelines:',
    '  logs:',
    '    source:',
    '      type: pg_logs',
    `      path: ${JSON.stringify(logs)}`,
    '      server: db1',
    '    sinks:',
    '      - type: elasticsearch',
    `        url: ${JSON.stringify(url)}`,
  ];
  for (const [k, v] of Object.entries(es)) lines.push(`        ${k}: ${JSON.stringify(v)}`);
  lines.push('      - type: duckdb', `        path: ${db}`);
  const file = join(dir, `large-${n}.yaml`);
  writeFileSync(file, lines.join('\n') + '\n');
  return { config: file, db };
}

interface Search {
  created: number;
  duplicates: number;
  correlated: number;
  deadLettered: number;
}
interface Summary {
  stored: number;
  ok: boolean;
  search: Search[];
}

async function run(s: Setup): Promise<{ summary: Summary; stderr: string }> {
  const r = await runCli(['run', '--config', s.config, '--json']);
  assert.equal(r.code, 0, `run failed: ${r.stderr.slice(-3000)}`);
  assert.ok(!r.stderr.includes(STATEMENT_TEXT) && !r.stdout.includes(STATEMENT_TEXT), 'no statement text in the output');
  return { summary: (JSON.parse(r.stdout.trim().split('\n').pop()!) as { pipelines: Summary[] }).pipelines[0]!, stderr: r.stderr };
}

/** (session id, line) of every pgaudit document the server holds, sorted — each document once. */
async function eventsInCluster(url: string): Promise<string[]> {
  const stats = (await requestJson(url, 'GET', '/_test/stats')).body as { indices: Record<string, number> };
  const out: string[] = [];
  for (const index of Object.keys(stats.indices).filter((i) => i.startsWith('auditship-pgaudit-'))) {
    const dump = (await requestJson(url, 'GET', `/_test/docs/${index}`)).body;
    const text = typeof dump === 'string' ? dump : `${JSON.stringify(dump)}\n`;
    for (const line of text.split('\n').filter(Boolean)) {
      const doc = JSON.parse(line) as { _source: { postgresql: { log: { session_id: string; session_line_num: number } } } };
      out.push(`${doc._source.postgresql.log.session_id}:${doc._source.postgresql.log.session_line_num}`);
    }
  }
  return out.sort();
}

const keys = (records: readonly GenRecord[]) =>
  auditOnly(records)
    .map((r) => `${r.sessionId}:${r.line}`)
    .sort();

/** Session documents in the cluster (one per session, updated by its connection and disconnection records). */
async function sessionDocs(url: string): Promise<number> {
  const stats = (await requestJson(url, 'GET', '/_test/stats')).body as { indices: Record<string, number> };
  return Object.entries(stats.indices)
    .filter(([i]) => i.startsWith('auditship-sessions-'))
    .reduce((n, [, c]) => n + c, 0);
}

interface Logs {
  dir: string;
  big: GenRecord;
  all: GenRecord[];
  later: (n: number) => GenRecord[];
}

/**
 * A log directory: `before` events, the record with a statement of `bigBytes`, `afterCount` events in the same
 * file; then a second file of `laterCount` events. later(n) writes a third file (a later run).
 */
function logs(name: string, seed: number, bigBytes: number, beforeCount: number, afterCount: number, laterCount: number): Logs {
  const d = join(dir, name);
  mkdirSync(d, { recursive: true });
  const gen = new CsvlogGenerator({ seed, otherShare: 0.05 });
  const head = gen.records(beforeCount);
  const big = gen.huge(bigBytes);
  const tail = gen.records(afterCount);
  const second = gen.records(laterCount);
  writeFileSync(join(d, 'postgresql-2024-05-01_120000.csv'), csvOf([...head, big, ...tail]));
  writeFileSync(join(d, 'postgresql-2024-05-01_130000.csv'), csvOf(second));
  const all = [...head, big, ...tail, ...second];
  return {
    dir: d,
    big,
    all,
    later: (n) => {
      const third = gen.records(n);
      writeFileSync(join(d, 'postgresql-2024-05-01_140000.csv'), csvOf(third));
      all.push(...third);
      return third;
    },
  };
}

async function deadLetters(db: string): Promise<Record<string, unknown>[]> {
  return queryDb(db, 'SELECT doc_id, index_name, status, reason, document FROM es_dead_letters ORDER BY dead_at');
}

async function distinctSessions(db: string): Promise<number> {
  const [r] = await queryDb(db, 'SELECT count(DISTINCT session_id)::INTEGER AS n FROM sessions');
  return Number(r!['n']);
}

describe('elasticsearch sink: a document larger than the cluster takes', () => {
  let es: SpawnedEsServer;
  before(async () => {
    es = await spawnEsServer({ flavor: 'elasticsearch', maxContentLength: '2mb' });
  });
  after(async () => {
    await es?.stop();
  });

  test("max_content_length at the cluster's 2mb: the 3 MB statement is dead-lettered unsent, every other event is in the cluster once, later files go on, a rerun adds nothing", async () => {
    await es.reset();
    const l = logs('at-limit', 11, 3 * MiB, 300, 300, 200);
    const s = config(es.url, l.dir, { max_content_length: '2MiB' });
    const { summary, stderr } = await run(s);
    const events = auditOnly(l.all).length;
    assert.equal(summary.stored, events, 'DuckDB keeps every event, the large one too');
    assert.deepEqual([summary.search[0]!.created, summary.search[0]!.deadLettered], [events - 1, 1]);
    const dead = await deadLetters(s.db);
    assert.equal(dead.length, 1);
    assert.equal(dead[0]!['status'], 413);
    assert.match(String(dead[0]!['reason']), /^document_too_large: \d{1,3}(,\d{3})+ bytes > max_content_length 2,097,152$/);
    const bytes = Number(/: ([\d,]+) bytes/.exec(String(dead[0]!['reason']))![1]!.replaceAll(',', ''));
    assert.ok(bytes > 3 * MiB && bytes < 4 * MiB, `the document's size (${bytes})`);
    const kept = JSON.parse(String(dead[0]!['document'])) as {
      postgresql: { audit: { statement: string }; log: { session_id: string; session_line_num: number } };
    };
    assert.equal(kept.postgresql.audit.statement, l.big.statement, 'the whole document is kept in es_dead_letters');
    assert.equal(`${kept.postgresql.log.session_id}:${kept.postgresql.log.session_line_num}`, `${l.big.sessionId}:${l.big.line}`);
    assert.match(stderr, /Documents refused for good; kept in es_dead_letters/);
    // auditship status shows it, by kind of reason.
    const st = await runCli(['status', '--db', s.db]);
    assert.equal(st.code, 0, st.stderr);
    assert.match(
      st.stdout,
      /documents refused for good by a search cluster \(es_dead_letters[^\n]*\n.*\n.*\ndb1 +elasticsearch http:\/\/127\.0\.0\.1:\d+ +document_too_large +1 +\d{4}-/,
    );
    const stJson = JSON.parse((await runCli(['status', '--db', s.db, '--json'])).stdout) as { dead_letters: { reason: string; documents: number }[] };
    assert.deepEqual(
      stJson.dead_letters.map((d) => [d.reason, Number(d.documents)]),
      [['document_too_large', 1]],
    );
    const stats = await es.stats();
    assert.equal(stats.rejected413, 0, 'nothing too large was sent');
    const expected = keys(l.all.filter((r) => r !== l.big));
    assert.deepEqual(await eventsInCluster(es.url), expected, 'every other event once: before it, after it in its file, in the next file');
    const sessions = await distinctSessions(s.db);
    assert.ok(sessions > 0);
    assert.equal(await sessionDocs(es.url), sessions, 'the sessions went through the same requests');
    // A rerun: nothing new to read, nothing sent again, the dead letter stays one.
    const again = await run(s);
    assert.deepEqual([again.summary.stored, again.summary.search[0]!.created, again.summary.search[0]!.deadLettered], [0, 0, 0]);
    assert.equal((await deadLetters(s.db)).length, 1);
    // A later file: shipped; the pipeline did not stall on the large record.
    const third = l.later(150);
    const next = await run(s);
    assert.deepEqual(
      [next.summary.stored, next.summary.search[0]!.created, next.summary.search[0]!.deadLettered],
      [auditOnly(third).length, auditOnly(third).length, 0],
    );
    assert.deepEqual(await eventsInCluster(es.url), keys(l.all.filter((r) => r !== l.big)));
    assert.equal((await deadLetters(s.db)).length, 1);
  });

  test('max_content_length left at 100MiB, the cluster at 2mb, flush_bytes 8MB: the 413s are split, the 3 MB statement ends refused alone in es_dead_letters, every other event once, one warning', async () => {
    await es.reset();
    // About 9 MB of ordinary documents: a request of 8 MB is refused, and sent again in halves.
    const l = logs('over-limit', 12, 3 * MiB, 9000, 4000, 3000);
    const s = config(es.url, l.dir, { flush_bytes: '8MB', flush_docs: 100000 });
    const { summary, stderr } = await run(s);
    const events = auditOnly(l.all).length;
    assert.equal(summary.stored, events);
    assert.deepEqual([summary.search[0]!.created, summary.search[0]!.deadLettered], [events - 1, 1]);
    const dead = await deadLetters(s.db);
    assert.equal(dead.length, 1);
    assert.deepEqual([dead[0]!['status'], dead[0]!['reason']], [413, 'request_too_large (413)']);
    const kept = JSON.parse(String(dead[0]!['document'])) as { postgresql: { log: { session_id: string; session_line_num: number } } };
    assert.equal(`${kept.postgresql.log.session_id}:${kept.postgresql.log.session_line_num}`, `${l.big.sessionId}:${l.big.line}`);
    assert.equal(stderr.match(/refused a bulk request as too large \(413\)/g)?.length, 1, 'one warning');
    assert.match(stderr, /Set max_content_length to the cluster's http\.max_content_length/);
    const stats = await es.stats();
    // Refused: the first 8 MB requests and their 4 MB halves, and the large document's requests; after that,
    // requests are built no larger than 2 MB halves — far fewer refusals than requests.
    assert.ok(stats.rejected413 >= 3, `the 8 MB requests, their halves, the large document's: ${stats.rejected413}`);
    assert.deepEqual(await eventsInCluster(es.url), keys(l.all.filter((r) => r !== l.big)));
    assert.equal(await sessionDocs(es.url), await distinctSessions(s.db), 'the sessions went through the same split requests');
    const again = await run(s);
    assert.deepEqual([again.summary.stored, again.summary.search[0]!.created, again.summary.search[0]!.deadLettered], [0, 0, 0]);
    const third = l.later(200);
    const next = await run(s);
    assert.deepEqual([next.summary.search[0]!.created, next.summary.search[0]!.deadLettered], [auditOnly(third).length, 0]);
    assert.deepEqual(await eventsInCluster(es.url), keys(l.all.filter((r) => r !== l.big)));
    assert.equal((await deadLetters(s.db)).length, 1);
  });

  test('a limit below flush_bytes (a proxy in front): after the first refusals requests are built smaller — a few 413s, not one per request', async () => {
    const small = await spawnEsServer({ flavor: 'elasticsearch', maxContentLength: '256kb' });
    try {
      const d = join(dir, 'proxy-limit');
      mkdirSync(d, { recursive: true });
      const records = new CsvlogGenerator({ seed: 13, otherShare: 0.05 }).records(30_000);
      writeFileSync(join(d, 'postgresql-2024-05-01_120000.csv'), csvOf(records));
      // 512 KB requests, twice what the server takes: each is refused, and its halves go through.
      const s = config(small.url, d, { flush_bytes: '512KB', flush_docs: 100000 });
      const { summary, stderr } = await run(s);
      const events = auditOnly(records).length;
      assert.deepEqual([summary.stored, summary.search[0]!.created, summary.search[0]!.deadLettered], [events, events, 0]);
      assert.deepEqual(await eventsInCluster(small.url), keys(records));
      assert.equal(stderr.match(/refused a bulk request as too large \(413\)/g)?.length, 1, 'one warning');
      const stats = await small.stats();
      // Refused: the requests built before the first refusal (two in flight, one waiting, one being filled),
      // perhaps one more built meanwhile; after that, requests are no larger than the halves that went through.
      // Were they only kept below the refused size, nearly every one of them would be refused and split.
      assert.ok(stats.bulkRequests >= 60, `requests: ${stats.bulkRequests}`);
      assert.ok(stats.rejected413 >= 1 && stats.rejected413 <= 8, `413s: ${stats.rejected413} of ${stats.bulkRequests} requests`);
    } finally {
      await small.stop();
    }
  });
});

describe('elasticsearch sink: correlation through refused requests', () => {
  test('sessions, logon failures and outcomes under a 16kb limit: the refused requests are split, and the cluster has what the DuckDB store has', async () => {
    const es = await spawnEsServer({ flavor: 'elasticsearch', maxContentLength: '16kb' });
    try {
      const w = generateWorkload({ seed: 51, sessions: 200, startMs: Date.UTC(2026, 2, 1, 8), spanMs: 4 * 3600e3 });
      const logs = join(dir, 'workload');
      mkdirSync(logs, { recursive: true });
      writeLogs(logs, [{ name: 'postgresql-2026-03-01_080000.csv', text: w.csv, agoS: 60 }]);
      const s = config(es.url, logs);
      const { summary } = await run(s);
      assert.equal(summary.search[0]!.deadLettered, 0);
      assert.equal(summary.search[0]!.created, w.counts.audit);
      const want = await storeCorrelation(s.db);
      assert.ok(w.counts.errors > 0 && w.counts.logonFailures > 0);
      assert.deepEqual((await esDocs(es.url, 'auditship-sessions-*')).map(esSession).sort(), want.sessions);
      assert.deepEqual((await esDocs(es.url, 'auditship-logon-failures-*')).map(esFailure).sort(), want.failures);
      assert.deepEqual((await esOutcomes(es.url)).sort(), want.failed);
      assert.equal((await esDocs(es.url, 'auditship-pgaudit-*')).length, w.counts.audit);
      assert.ok((await es.stats()).rejected413 > 0, 'requests were refused and split');
    } finally {
      await es.stop();
    }
  });

  test('updates (an upsert, outcomes of documents that may not exist) in a refused request: split, applied once each, none lost; one refused alone is dead-lettered', async () => {
    const server = await startEsServer({ flavor: 'elasticsearch', maxContentLength: '4kb', refresh: 'immediate' });
    const warnings: string[] = [];
    const log: Logger = {
      debug() {},
      info() {},
      warn: (m: string) => {
        warnings.push(m);
      },
      error() {},
    };
    const http = new EsHttp({ url: server.url, auth: {}, timeoutMs: 10_000, maxSockets: 3 });
    try {
      const writer = () =>
        new BulkWriter(
          http,
          { flushBytes: 1 << 20, maxContentLength: 100 * 2 ** 20, flushDocs: 5000, concurrency: 2, maxRetries: 2, retryInitialMs: 10, retryMaxMs: 50 },
          log,
        );
      let bulk = writer();
      const ids = Array.from({ length: 40 }, (_, i) => `e${i}`);
      for (const id of ids) await bulk.add({ index: 'events', id, source: JSON.stringify({ n: id, pad: 'x'.repeat(60) }) });
      await bulk.flush();
      assert.deepEqual([bulk.counts.created, bulk.counts.deadLettered], [40, 0]);
      const refusedBefore = server.stats().rejected413;
      assert.ok(refusedBefore > 0, 'the first request (about 5 kB) was refused');
      // A new writer (it has not learnt the limit): outcomes onto every event and onto ids that have no document
      // (404: done), a session upsert, and an update too large to go through alone — in one request, refused.
      bulk = writer();
      for (const id of [...ids, 'none1', 'none2'])
        await bulk.add({ index: 'events', id, source: '{"doc":{"outcome":"failure"}}', action: 'update', ifExists: true, correlation: true });
      await bulk.add({ index: 'sessions', id: 's1', source: '{"doc":{"user":"u"},"doc_as_upsert":true}', action: 'update', correlation: true });
      await bulk.add({
        index: 'sessions',
        id: 's2',
        source: `{"doc":{"note":"${'y'.repeat(5000)}"},"doc_as_upsert":true}`,
        action: 'update',
        correlation: true,
      });
      await bulk.flush();
      assert.equal(
        server.stats().rejected413,
        refusedBefore + 2,
        'the whole request (about 9 kB), then s2 alone; the half with the outcomes and s1 went through',
      );
      assert.deepEqual([bulk.counts.correlated, bulk.counts.deadLettered], [41, 1]);
      const dead = bulk.takeDeadLetters();
      assert.deepEqual(
        dead.map((d) => [d.index, d.id, d.status, d.reason]),
        [['sessions', 's2', 413, 'request_too_large (413)']],
      );
      assert.equal(JSON.parse(dead[0]!.source).doc.note.length, 5000);
      for (const id of ids) {
        const r = await requestJson(server.url, 'GET', `/events/_doc/${id}`);
        assert.equal((r.body as { _source: { outcome?: string } })._source.outcome, 'failure', id);
        assert.equal((r.body as { _version: number })._version, 2, `${id}: updated once`);
      }
      assert.equal((await requestJson(server.url, 'GET', '/sessions/_doc/s1')).status, 200);
      assert.equal((await requestJson(server.url, 'GET', '/sessions/_doc/s2')).status, 404);
      assert.equal(warnings.filter((w) => /too large \(413\)/.test(w)).length, 2, 'one warning per writer (per run)');
    } finally {
      http.close();
      await server.close();
    }
  });
});
