import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { generateCsvlog } from '../../bench/generate.js';
import { AuditQueries, duckdbRunner, EventListQueries, type EventFilter, type QueryRunner, type SortSpec } from '../../src/query/index.js';
import { openDatabase, type Database } from '../../src/sinks/duckdb/database.js';
import { auditship, tempDir } from '../helpers/cli.js';
import { Rng } from '../helpers/csvlog-gen.js';

/**
 * Free-text search through the text index answers exactly what a scan answers: the same events page by page,
 * the same chart and the same top users, for random terms cut from stored statements (in random case), terms
 * that are nowhere, and random time ranges — on a store loaded by `auditship ingest`, and on a store whose index
 * was built afterwards (a store made before the index).
 */
describe('text index', () => {
  const tmp = tempDir();
  let db: Database;
  let run: QueryRunner;
  const sql: string[] = [];
  let indexed: AuditQueries;
  let scanning: AuditQueries;
  let indexedList: EventListQueries;
  let scanningList: EventListQueries;
  let lo = 0,
    hi = 0;

  before(async () => {
    await generateCsvlog(`${tmp.dir}/logs`, { events: 40_000, seed: 9, meanGapMs: 40, fileBytes: 4 << 20 });
    const r = await auditship(['ingest', '--db', `${tmp.dir}/a.duckdb`, '--quiet', `${tmp.dir}/logs`]);
    assert.equal(r.code, 0, r.stderr);
    await open();
  });
  after(async () => {
    await db?.close();
    tmp.cleanup();
  });

  async function open() {
    db = await openDatabase(`${tmp.dir}/a.duckdb`, { readOnly: true, threads: 2, memoryLimit: '512MB' });
    const real = duckdbRunner(db.connection);
    run = { all: (s, p) => (sql.push(s), real.all(s, p)) };
    indexed = new AuditQueries(run);
    // The same queries on a store that does not say its index is complete: they scan.
    const unindexed: QueryRunner = { all: (s, p) => (/auditship_meta WHERE key = 'text_index'/.test(s) ? Promise.resolve([]) : real.all(s, p)) };
    scanning = new AuditQueries(unindexed);
    indexedList = new EventListQueries(run);
    scanningList = new EventListQueries(unindexed);
    const [b] = await run.all('SELECT epoch_ms(min(log_time))::DOUBLE AS lo, epoch_ms(max(log_time))::DOUBLE AS hi FROM audit_events');
    [lo, hi] = [Number(b!['lo']), Number(b!['hi']) + 1];
  }

  async function walk(q: AuditQueries, filter: EventFilter): Promise<string[]> {
    const ids: string[] = [];
    let after: string | null = null;
    for (let pages = 0; pages < 1000; pages++) {
      const page = await q.listEvents(filter, { limit: 200, after });
      ids.push(...page.rows.map((r) => r.id));
      if (!page.next) return ids;
      after = page.next;
    }
    throw new Error('too many pages');
  }

  /** Every page of the sorted list (the UI's column sort and export). */
  async function walkSorted(q: EventListQueries, filter: EventFilter, sort: SortSpec): Promise<string[]> {
    const ids: string[] = [];
    let after: string | null = null;
    for (let pages = 0; pages < 1000; pages++) {
      const page = await q.exportPage(filter, sort, after, 300);
      ids.push(...page.rows.map((r) => r.id));
      if (!page.next) return ids;
      after = page.next;
    }
    throw new Error('too many pages');
  }

  async function randomTerms(rng: Rng, n: number): Promise<string[]> {
    const rows = await run.all(`SELECT statement FROM event_rows WHERE statement IS NOT NULL USING SAMPLE ${n} ROWS (reservoir, 7)`);
    const terms = rows.map((r) => {
      const s = String(r['statement']);
      const from = rng.int(0, Math.max(0, s.length - 4));
      const cut = s.slice(from, from + rng.int(3, 14));
      return Array.from(cut)
        .map((c) => (rng.chance(0.5) ? c.toUpperCase() : c.toLowerCase()))
        .join('');
    });
    return [...terms, 'zq-no-such-text', 'salary_history', 'Kx9#'];
  }

  async function sameAnswers(terms: string[], rng: Rng) {
    for (const text of terms) {
      const to = lo + rng.float() * (hi - lo);
      const f: EventFilter = rng.chance(0.5) ? { text } : { text, from: Math.max(lo, to - (hi - lo) / 5), to };
      if (rng.chance(0.3)) f.outcome = 'success';
      const label = JSON.stringify(f);
      const ids = await walk(indexed, f);
      assert.deepEqual(ids, await walk(scanning, f), `events of ${label}`);
      assert.deepEqual(await indexed.eventsOverTime(f), await scanning.eventsOverTime(f), `chart of ${label}`);
      assert.deepEqual(await indexed.topUsers(f, 10), await scanning.topUsers(f, 10), `top users of ${label}`);
      assert.deepEqual(await indexedList.topValues(f), await scanningList.topValues(f), `top values of ${label}`);
      const sort: SortSpec = rng.chance(0.5) ? { by: 'time', dir: 'asc' } : { by: 'user', dir: 'desc' };
      assert.deepEqual(await walkSorted(indexedList, f, sort), await walkSorted(scanningList, f, sort), `sorted list of ${label}`);
    }
  }

  test('random terms: the same events, chart and top users as a scan', async () => {
    const [blocks] = await run.all('SELECT count(*)::DOUBLE AS n FROM text_index');
    assert.ok(Number(blocks!['n']) >= 8, 'the ingest wrote blocks');
    const rng = new Rng(21);
    await sameAnswers(await randomTerms(rng, 40), rng);
  });

  test("events at a block's first and last time are found", async () => {
    const edges = await run.all(`SELECT e.statement FROM event_rows AS e JOIN text_index AS b ON e.log_time = b.hi OR e.log_time = b.lo
      WHERE e.statement IS NOT NULL AND length(e.statement) BETWEEN 20 AND 400 ORDER BY e.log_time LIMIT 40`);
    assert.ok(edges.length >= 10);
    const rng = new Rng(23);
    let narrowed = 0;
    for (const e of edges) {
      const text = String(e['statement']).slice(0, 60).trim();
      sql.length = 0;
      await sameAnswers([text], rng);
      if (sql.some((s) => s.includes('SELECT * FROM event_rows WHERE log_time >= make_timestamp(') && s.includes('regexp_matches'))) narrowed++;
    }
    assert.ok(narrowed > 0, 'some of these searches were narrowed to the blocks of the index');
  });

  test('a term that is nowhere reads no statement', async () => {
    sql.length = 0;
    assert.deepEqual(await walk(indexed, { text: 'zq-no-such-text' }), []);
    assert.deepEqual((await indexed.eventsOverTime({ text: 'zq-no-such-text' })).points, []);
    assert.ok(sql.some((s) => s.includes('FROM text_index')));
    assert.ok(!sql.some((s) => s.includes('regexp_matches')), 'the index ruled out every block');
  });

  test('rows an auditship from before the index wrote later are found: the index is not used then', async () => {
    await db.close();
    const w = await openDatabase(`${tmp.dir}/a.duckdb`, { threads: 2 });
    await w.connection.run(`INSERT INTO event_rows SELECT * REPLACE (log_time + INTERVAL 1 SECOND AS log_time, session_line_num + 1000000 AS session_line_num,
      'SELECT 1 -- zq written by an older version' AS statement) FROM event_rows LIMIT 1`);
    await w.close();
    await open();
    assert.equal((await walk(indexed, { text: 'zq WRITTEN by an older' })).length, 1);
    assert.equal((await indexed.eventsOverTime({ text: 'zq WRITTEN by an older' })).points.length, 1);
  });

  test('a store made before the index gets it built when a writer opens it; the answers stay the same', async () => {
    await db.close();
    const w = await openDatabase(`${tmp.dir}/a.duckdb`, { threads: 2 });
    await w.connection.run(`DROP TABLE text_index; DELETE FROM auditship_meta WHERE key = 'text_index'`);
    await w.close();
    await generateCsvlog(`${tmp.dir}/more`, { events: 2_000, seed: 10, meanGapMs: 40, fileBytes: 4 << 20 });
    const r = await auditship(['ingest', '--db', `${tmp.dir}/a.duckdb`, `${tmp.dir}/more`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /Building the text index/);
    await open();
    const [blocks] = await run.all(`SELECT count(*)::DOUBLE AS n, (SELECT value FROM auditship_meta WHERE key = 'text_index') AS state FROM text_index`);
    assert.equal(blocks!['state'], 'complete');
    const rng = new Rng(22);
    await sameAnswers(await randomTerms(rng, 15), rng);
  });
});
