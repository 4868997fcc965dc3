import assert from 'node:assert/strict';
import { request, type IncomingMessage } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { generateCsvlog } from '../../bench/generate.js';
import { quietLogger } from '../../src/core/log.js';
import {
  AppEventQueries,
  diffOf,
  duckdbRunner,
  EventListQueries,
  RowChangeQueries,
  storeQueries,
  type EventFilter,
  type QueryRunner,
  type SortSpec,
} from '../../src/query/index.js';
import { openDatabase, type Database } from '../../src/sinks/duckdb/database.js';
import { buildReport, renderHtml, renderMarkdown } from '../../src/report/index.js';
import { EXPORT_PAGE, csvField } from '../../src/ui/export.js';
import { startUiServer, type UiServer } from '../../src/ui/index.js';
import { auditship, tempDir } from '../helpers/cli.js';
import { APP_ACTORS, writeSourceRows } from '../helpers/source-rows.js';
import { fakeQueries } from '../ui/fake-queries.js';

/**
 * Row changes, application events, the sorted event list, top values and export, against a store filled by the
 * real sinks (ingest of generated csvlog; RowChangesSink and AppEventsSink): every page walk is compared with
 * a plain SQL listing of the same rows, and export is read back through the HTTP server.
 */

/** RFC 4180: fields separated by commas, records by CRLF; quoted fields may hold commas, quotes (doubled), CR and LF. */
function parseCsv(text: string): string[][] {
  const out: string[][] = [];
  let row: string[] = [];
  let field = '';
  let i = 0;
  let quoted = false;
  while (i < text.length) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i += 2;
      } else if (c === '"') {
        quoted = false;
        i++;
      } else {
        field += c;
        i++;
      }
    } else if (c === '"') {
      quoted = true;
      i++;
    } else if (c === ',') {
      row.push(field);
      field = '';
      i++;
    } else if (c === '\r' && text[i + 1] === '\n') {
      row.push(field);
      out.push(row);
      row = [];
      field = '';
      i += 2;
    } else {
      assert.ok(c !== '\n' && c !== '\r', `a bare line break outside quotes at ${i}`);
      field += c;
      i++;
    }
  }
  assert.equal(field, '', 'the last record ends with CRLF');
  assert.equal(row.length, 0);
  return out;
}

function get(url: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    request(url, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    })
      .on('error', reject)
      .end();
  });
}

describe('row changes, application events, sorting, top values and export', () => {
  const tmp = tempDir();
  const path = `${tmp.dir}/s.duckdb`;
  let db: Database;
  let run: QueryRunner;
  let server: UiServer;
  /** Rows each query call returned, most first: the export must never hold more than a page. */
  let biggest = 0;

  before(async () => {
    await generateCsvlog(`${tmp.dir}/logs`, { events: 3_000, seed: 9, meanGapMs: 400, fileBytes: 4 << 20 });
    const r = await auditship(['ingest', '--db', path, '--quiet', `${tmp.dir}/logs`]);
    assert.equal(r.code, 0, r.stderr);
    await writeSourceRows(path, { changes: 1_300, appEvents: 1_200, startMs: Date.UTC(2026, 2, 1), gapMs: 900 });
    db = await openDatabase(path, { readOnly: true, threads: 2, memoryLimit: '512MB' });
    const inner = duckdbRunner(db.connection);
    run = inner;
    const counting: QueryRunner = {
      all: async (sql, params) => {
        const rows = await inner.all(sql, params);
        biggest = Math.max(biggest, rows.length);
        return rows;
      },
    };
    server = await startUiServer({ queries: storeQueries(counting), log: quietLogger(), port: 0 });
  });
  after(async () => {
    await server?.close();
    await db?.close();
    tmp.cleanup();
  });

  /** Follows `next` to the end; asserts every page but the last is full. */
  async function walk<R>(page: (after: string | null) => Promise<{ rows: R[]; next: string | null }>, limit: number): Promise<R[]> {
    const all: R[] = [];
    let after: string | null = null;
    for (let i = 0; i < 10_000; i++) {
      const p = await page(after);
      all.push(...p.rows);
      if (!p.next) break;
      assert.equal(p.rows.length, limit, 'every page before the last is full');
      after = p.next;
    }
    return all;
  }

  const ids = async (sql: string, params: (string | number)[] = []) => (await run.all(sql, params)).map((r) => String(r['k']));

  test('row changes: pages neither skip nor repeat, newest first, in every sort and filter', async () => {
    const q = new RowChangeQueries(run);
    const cases: { filter: Parameters<RowChangeQueries['listChanges']>[0]; where: string; sort?: SortSpec; order: string }[] = [
      { filter: {}, where: 'true', order: 'action_tstamp_clk DESC, server DESC, source_table DESC, event_id DESC' },
      { filter: {}, where: 'true', sort: { by: 'time', dir: 'asc' }, order: 'action_tstamp_clk, server, source_table, event_id' },
      {
        filter: { table: ['orders'], action: ['update'] },
        where: `table_name = 'orders' AND action = 'UPDATE'`,
        order: 'action_tstamp_clk DESC, server DESC, source_table DESC, event_id DESC',
      },
      {
        filter: { table: ['billing.invoices', 'customers'], user: ['bob'] },
        where: `(schema_name || '.' || table_name = 'billing.invoices' OR table_name = 'customers') AND session_user_name = 'bob'`,
        order: 'action_tstamp_clk DESC, server DESC, source_table DESC, event_id DESC',
      },
      {
        filter: {},
        where: 'true',
        sort: { by: 'table', dir: 'asc' },
        order: `coalesce(table_name, ''), action_tstamp_clk, server, source_table, event_id`,
      },
      {
        filter: { text: 'PAID' },
        where: `(changed_fields ILIKE '%paid%' OR row_data ILIKE '%paid%')`,
        sort: { by: 'user', dir: 'desc' },
        order: `coalesce(session_user_name, '') DESC, action_tstamp_clk DESC, server DESC, source_table DESC, event_id DESC`,
      },
      {
        filter: { from: Date.UTC(2026, 2, 1, 0, 5), to: Date.UTC(2026, 2, 1, 0, 9) },
        where: `action_tstamp_clk >= '2026-03-01 00:05:00+00' AND action_tstamp_clk < '2026-03-01 00:09:00+00'`,
        order: 'action_tstamp_clk DESC, server DESC, source_table DESC, event_id DESC',
      },
    ];
    for (const c of cases) {
      const got = await walk((after) => q.listChanges(c.filter, { limit: 97, after, ...(c.sort ? { sort: c.sort } : {}) }), 97);
      const want = await ids(`SELECT event_id::VARCHAR AS k FROM row_changes WHERE ${c.where} ORDER BY ${c.order}`);
      assert.ok(want.length > 0, `${JSON.stringify(c.filter)} matches rows`);
      assert.deepEqual(
        got.map((r) => r.event_id),
        want,
        `${JSON.stringify(c.filter)} ${JSON.stringify(c.sort ?? {})}`,
      );
    }
    await assert.rejects(q.listChanges({}, { sort: { by: 'row_data; DROP', dir: 'asc' } }), /sort/);
    const page = await q.listChanges({}, { limit: 5, sort: { by: 'table', dir: 'asc' } });
    await assert.rejects(q.listChanges({}, { limit: 5, after: page.next }), /another sort/);
  });

  test('a row change in full: the diff of its fields', async () => {
    const q = new RowChangeQueries(run);
    const [u] = (await q.listChanges({ action: ['UPDATE'] }, { limit: 1 })).rows;
    const c = (await q.getChange(u!.id))!;
    assert.equal(c.action, 'UPDATE');
    const before = c.row_data as Record<string, unknown>;
    const changed = c.changed_fields as Record<string, unknown>;
    assert.deepEqual(
      c.diff.find((d) => d.field === 'amount'),
      { field: 'amount', kind: 'changed', before: before['amount'], after: changed['amount'] },
    );
    assert.deepEqual(
      c.diff.find((d) => d.field === 'status'),
      { field: 'status', kind: 'added', after: changed['status'] },
    );
    assert.equal(c.diff.find((d) => d.field === 'name')?.kind, 'unchanged');
    assert.match(String(before['name']), /"quoted"\nsecond line/);
    assert.deepEqual(u!.changed?.sort(), ['amount', 'status']);
    assert.deepEqual(diffOf('INSERT', { a: 1 }, null), [{ field: 'a', kind: 'added', after: 1 }]);
    assert.deepEqual(diffOf('DELETE', { a: 1 }, null), [{ field: 'a', kind: 'removed', before: 1 }]);
    assert.equal(await q.getChange(Buffer.from(JSON.stringify([1, 'x', 'y', '1'])).toString('base64url')), null);
    await assert.rejects(q.getChange('nonsense'), /malformed id/);
  });

  test('application events: pages, filters by actor, operation and text, one event in full', async () => {
    const q = new AppEventQueries(run);
    const actor = `json_extract_string(message, '$.audit_event.actor')`;
    const op = `json_extract_string(message, '$.audit_event.operation')`;
    const key = `row_id || '/' || source_name`;
    const cases: { filter: Parameters<AppEventQueries['listAppEvents']>[0]; where: string; sort?: SortSpec; order: string }[] = [
      { filter: {}, where: 'true', order: 'event_time DESC, source_name DESC, source_table DESC, row_id DESC, fingerprint DESC' },
      {
        filter: { actor: [APP_ACTORS[0]], operation: ['update', 'delete'] },
        where: `${actor} = '${APP_ACTORS[0]}' AND ${op} IN ('update', 'delete')`,
        order: 'event_time DESC, source_name DESC, source_table DESC, row_id DESC, fingerprint DESC',
      },
      {
        filter: { text: 'ORDER #7' },
        where: `message::VARCHAR ILIKE '%order #7%'`,
        order: 'event_time DESC, source_name DESC, source_table DESC, row_id DESC, fingerprint DESC',
      },
      {
        filter: { source: ['billing-outbox'] },
        where: `source_name = 'billing-outbox'`,
        sort: { by: 'actor', dir: 'asc' },
        order: `coalesce(${actor}, ''), event_time, source_name, source_table, row_id, fingerprint`,
      },
    ];
    for (const c of cases) {
      const got = await walk((after) => q.listAppEvents(c.filter, { limit: 101, after, ...(c.sort ? { sort: c.sort } : {}) }), 101);
      const want = await ids(`SELECT ${key} AS k FROM app_events WHERE ${c.where} ORDER BY ${c.order}`);
      assert.ok(want.length > 0, JSON.stringify(c.filter));
      assert.deepEqual(
        got.map((r) => `${r.row_id}/${r.source_name}`),
        want,
        JSON.stringify(c),
      );
    }
    const [first] = (await q.listAppEvents({ operation: ['create'] }, { limit: 1 })).rows;
    assert.equal(first!.operation, 'create');
    const e = (await q.getAppEvent(first!.id))!;
    assert.equal((e.message as { audit_event: { operation: string } }).audit_event.operation, 'create');
    assert.equal(e.actor, first!.actor);
  });

  test('the sources summary; a store without those tables says null', async () => {
    const s = await storeQueries(run).rowChanges.summary();
    assert.equal(s!.rows, 1300);
    assert.deepEqual(s!.actions, ['DELETE', 'INSERT', 'UPDATE']);
    assert.ok(s!.tables.includes('billing.orders') || s!.tables.includes('public.orders'));
    const a = await storeQueries(run).appEvents.summary();
    assert.equal(a!.rows, 1200);
    assert.deepEqual(a!.sources, ['billing-outbox', 'shop-auditlog']);
    assert.deepEqual(a!.operations, ['access', 'create', 'delete', 'update']);

    const bare = await openDatabase(`${tmp.dir}/bare.duckdb`);
    try {
      const r = duckdbRunner(bare.connection);
      assert.equal(await new RowChangeQueries(r).summary(), null);
      assert.equal(await new AppEventQueries(r).summary(), null);
    } finally {
      await bare.close();
    }
  });

  test('the event list sorted by a column, either way, pages neither skip nor repeat', async () => {
    const q = new EventListQueries(run);
    const key = `session_id || ':' || session_line_num`;
    const cases: { filter: EventFilter; where: string; sort: SortSpec; order: string }[] = [
      { filter: {}, where: 'true', sort: { by: 'time', dir: 'desc' }, order: 'log_time DESC, context_id DESC, session_line_num DESC' },
      { filter: {}, where: 'true', sort: { by: 'time', dir: 'asc' }, order: 'log_time, context_id, session_line_num' },
      {
        filter: { class: ['READ', 'WRITE'] },
        where: `class IN ('READ', 'WRITE')`,
        sort: { by: 'user', dir: 'asc' },
        order: `coalesce(user_name, ''), log_time, context_id, session_line_num`,
      },
      {
        filter: {},
        where: 'true',
        sort: { by: 'object', dir: 'desc' },
        order: `coalesce(object_name, '') DESC, log_time DESC, context_id DESC, session_line_num DESC`,
      },
    ];
    for (const c of cases) {
      const got = await walk((after) => q.listSorted(c.filter, { limit: 250, after, sort: c.sort }), 250);
      const want = await ids(
        `SELECT ${key} AS k FROM event_rows JOIN event_contexts USING (context_id) JOIN event_kinds USING (kind_id) WHERE ${c.where} ORDER BY ${c.order}`,
      );
      assert.equal(got.length, want.length, JSON.stringify(c));
      assert.deepEqual(
        got.map((r) => `${r.session_id}:${r.session_line_num}`),
        want,
        JSON.stringify(c),
      );
    }
  });

  test('top values of each field follow the filter', async () => {
    const q = new EventListQueries(run);
    const top = await q.topValues({ class: ['READ'] }, 5);
    const users = await run.all(
      `SELECT user_name AS k, count(*)::DOUBLE AS n FROM audit_logs WHERE class = 'READ' AND user_name IS NOT NULL GROUP BY 1 ORDER BY n DESC, k LIMIT 5`,
    );
    assert.deepEqual(
      top['user'],
      users.map((r) => ({ key: String(r['k']), n: Number(r['n']) })),
    );
    assert.deepEqual(
      top['class']!.map((t) => t.key),
      ['READ'],
    );
    for (const f of ['database', 'server', 'application', 'client', 'command', 'object']) assert.ok(top[f]!.length > 0, f);
    const objects = await run.all(
      `SELECT object_name AS k, count(*)::DOUBLE AS n FROM audit_logs WHERE class = 'READ' AND object_name IS NOT NULL GROUP BY 1 ORDER BY n DESC, k LIMIT 5`,
    );
    assert.deepEqual(
      top['object'],
      objects.map((r) => ({ key: String(r['k']), n: Number(r['n']) })),
    );
  });

  test('CSV fields are quoted per RFC 4180', () => {
    assert.equal(csvField('plain'), 'plain');
    assert.equal(csvField('a,b'), '"a,b"');
    assert.equal(csvField('say "hi"'), '"say ""hi"""');
    assert.equal(csvField('two\nlines'), '"two\nlines"');
    assert.equal(csvField('cr\rhere'), '"cr\rhere"');
    assert.equal(csvField(null), '');
    assert.equal(csvField(42), '42');
  });

  test('export: every matching event as CSV and NDJSON, statements intact, more rows than a page', async () => {
    const [{ n } = {}] = await run.all(`SELECT count(*)::DOUBLE AS n FROM audit_logs`);
    assert.ok(Number(n) > EXPORT_PAGE * 3, 'more rows than three pages');
    biggest = 0;
    const csv = await get(`${server.url}api/export?format=csv`);
    assert.equal(csv.status, 200);
    assert.match(String(csv.headers['content-type']), /^text\/csv/);
    assert.match(String(csv.headers['content-disposition']), /^attachment; filename="auditship-events-[\d-TZ]+\.csv"$/);
    assert.equal(csv.headers['transfer-encoding'], 'chunked', 'streamed, not buffered');
    const records = parseCsv(csv.body);
    const head = records[0]!;
    assert.deepEqual(head.slice(0, 3), ['log_time', 'server', 'user_name']);
    assert.equal(records.length - 1, Number(n));
    assert.ok(biggest <= EXPORT_PAGE + 1, `the server read at most a page at a time (${biggest} rows)`);
    const stmt = head.indexOf('statement');
    const line = head.indexOf('session_line_num');
    const sess = head.indexOf('session_id');
    const stored = new Map(
      (await run.all(`SELECT session_id || ':' || session_line_num AS k, statement FROM audit_logs`)).map((r) => [String(r['k']), r['statement']]),
    );
    let tricky = 0;
    for (const rec of records.slice(1)) {
      const want = stored.get(`${rec[sess]}:${rec[line]}`);
      assert.equal(rec[stmt], want ?? '', 'the statement reads back exactly');
      if (/[,"\n]/.test(rec[stmt] ?? '')) tricky++;
    }
    assert.ok(tricky > 0, 'some statements hold commas, quotes or newlines');
    // Newest first, as the list.
    const times = records.slice(1).map((r) => r[0]!);
    assert.deepEqual([...times].sort().reverse(), times);

    const nd = await get(`${server.url}api/export?format=ndjson&class=READ&sort=user&dir=asc`);
    assert.equal(nd.status, 200);
    assert.match(String(nd.headers['content-type']), /^application\/x-ndjson/);
    const lines = nd.body
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, string>);
    const [{ m } = {}] = await run.all(`SELECT count(*)::DOUBLE AS m FROM audit_logs WHERE class = 'READ'`);
    assert.equal(lines.length, Number(m));
    assert.ok(lines.every((l) => l['class'] === 'READ'));
    const users = lines.map((l) => l['user_name'] ?? '');
    assert.deepEqual([...users].sort(), users, 'sorted by user');

    assert.equal((await get(`${server.url}api/export?format=xml`)).status, 400);
    assert.equal((await get(`${server.url}api/export?sort=statement`)).status, 400);
    assert.equal((await get(`${server.url}api/export?nope=1`)).status, 400);
  });

  test('export of row changes and application events: JSON values intact in CSV and NDJSON', async () => {
    const csv = await get(`${server.url}api/changes/export?format=csv&action=UPDATE`);
    assert.equal(csv.status, 200);
    assert.match(String(csv.headers['content-disposition']), /auditship-row-changes-.*\.csv"$/);
    const records = parseCsv(csv.body);
    const head = records[0]!;
    const rows = new Map(
      (await run.all(`SELECT event_id::VARCHAR AS k, row_data, changed_fields FROM row_changes WHERE action = 'UPDATE'`)).map((r) => [String(r['k']), r]),
    );
    assert.equal(records.length - 1, rows.size);
    for (const rec of records.slice(1)) {
      const want = rows.get(rec[head.indexOf('event_id')]!)!;
      assert.equal(rec[head.indexOf('row_data')], want['row_data']);
      assert.equal(rec[head.indexOf('changed_fields')], want['changed_fields']);
    }
    const nd = await get(`${server.url}api/app-events/export?format=ndjson`);
    const lines = nd.body
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as { message: { audit_event: { message: string } } });
    assert.equal(lines.length, 1200);
    assert.match(lines[0]!.message.audit_event.message, /"comment": "a, \\"b\\"\\nc"/);
  });

  test('export holds a page at a time: a client that stops reading stops the reading of the store', async () => {
    // An endless store: page after page of 500 events with 2 kB statements (1 MB a page).
    let pages = 0;
    const statement = `SELECT '${'x'.repeat(2000)}'`;
    const endless = {
      exportPage: async () => {
        pages++;
        return { rows: Array.from({ length: EXPORT_PAGE }, (_, i) => ({ log_time: String(pages), session_line_num: i, statement })), next: `page-${pages}` };
      },
    } as unknown as EventListQueries;
    const slow = await startUiServer({ queries: { ...fakeQueries([]), eventList: endless }, log: quietLogger(), port: 0 });
    try {
      const req = request(`${slow.url}api/export?format=csv`);
      const res = await new Promise<IncomingMessage>((resolve, reject) => req.on('response', resolve).on('error', reject).end());
      res.pause();
      await sleep(300);
      const paused = pages;
      await sleep(300);
      assert.equal(pages, paused, 'no page is read while the client reads nothing');
      assert.ok(paused < 20, `only what the socket buffers hold was read (${paused} pages of 1 MB)`);
      let bytes = 0;
      res.on('data', (d: Buffer) => (bytes += d.length));
      res.resume();
      while (bytes < 30 << 20) await sleep(20);
      assert.ok(pages > paused + 10, 'reading goes on as the client reads');
      req.destroy();
      await sleep(200);
      const stopped = pages;
      await sleep(200);
      assert.ok(pages <= stopped + 1, 'a client that went away stops the export');
    } finally {
      await slow.close();
    }
  });

  test('the report has sections for row changes and application events, in JSON, Markdown and HTML', async () => {
    const r = await buildReport(run, { since: Date.UTC(2020, 0, 1), until: Date.UTC(2030, 0, 1) });
    assert.equal(r.row_changes!.total, 1300);
    assert.equal(
      r.row_changes!.by_table_action.reduce((a, x) => a + x.n, 0),
      1300,
    );
    const [{ n } = {}] = await run.all(
      `SELECT count(*)::DOUBLE AS n FROM row_changes WHERE table_name = 'orders' AND schema_name = 'public' AND action = 'UPDATE'`,
    );
    assert.equal(r.row_changes!.by_table_action.find((x) => x.table === 'public.orders' && x.action === 'UPDATE')?.n, Number(n));
    assert.deepEqual(r.row_changes!.top_users.map((u) => u.user_name).sort(), ['alice', 'app_rw', 'bob']);
    assert.equal(
      r.row_changes!.per_day.reduce((a, x) => a + x.n, 0),
      1300,
    );
    assert.equal(r.app_events!.total, 1200);
    assert.deepEqual(r.app_events!.top_actors.map((a) => a.actor).sort(), [...APP_ACTORS].sort());
    assert.deepEqual([...new Set(r.app_events!.by_source_operation.map((x) => x.source))], ['billing-outbox', 'shop-auditlog']);
    const md = renderMarkdown(r);
    assert.match(md, /## Row changes \(trigger audit tables\): 1,300/);
    assert.match(md, /\| public\.orders \| UPDATE \|/);
    assert.match(md, /## Application events \(outbox, django-auditlog\): 1,200/);
    const html = renderHtml(r);
    assert.match(html, /<h2>Row changes \(trigger audit tables\): 1,300<\/h2>\s*<svg/);
    assert.match(html, /Grace Hopper/);
    // --server narrows row changes; application events have no server.
    const other = await buildReport(run, { since: Date.UTC(2020, 0, 1), until: Date.UTC(2030, 0, 1), server: ['elsewhere'] });
    assert.equal(other.row_changes!.total, 0);
    assert.equal(other.app_events!.total, 1200);
  });

  test('the API of the other sources', async () => {
    const sources = JSON.parse((await get(`${server.url}api/sources`)).body) as { row_changes: { rows: number }; app_events: { rows: number } };
    assert.equal(sources.row_changes.rows, 1300);
    assert.equal(sources.app_events.rows, 1200);
    const page = JSON.parse((await get(`${server.url}api/changes?limit=3&table=orders&sort=action&dir=asc`)).body) as { rows: { id: string }[]; next: string };
    assert.equal(page.rows.length, 3);
    const next = JSON.parse((await get(`${server.url}api/changes?limit=3&table=orders&sort=action&dir=asc&after=${page.next}`)).body) as {
      rows: { id: string }[];
    };
    assert.equal(new Set([...page.rows, ...next.rows].map((r) => r.id)).size, 6);
    const one = await get(`${server.url}api/change?id=${encodeURIComponent(page.rows[0]!.id)}`);
    assert.equal(one.status, 200);
    assert.ok(Array.isArray((JSON.parse(one.body) as { diff: unknown[] }).diff));
    const top = JSON.parse((await get(`${server.url}api/changes/charts/top?by=user&n=2`)).body) as { key: string }[];
    assert.equal(top.length, 2);
    const tl = JSON.parse((await get(`${server.url}api/app-events/charts/timeline?operation=create`)).body) as { points: { class: string }[] };
    assert.ok(tl.points.length > 0 && tl.points.every((p) => p.class === 'create'));
    const actors = JSON.parse((await get(`${server.url}api/app-events/charts/top?by=actor`)).body) as { key: string }[];
    assert.deepEqual(actors.map((a) => a.key).sort(), [...APP_ACTORS].sort());
    assert.equal((await get(`${server.url}api/changes/charts/top?by=row_data`)).status, 400);
    assert.equal((await get(`${server.url}api/changes?sort=row_data`)).status, 400);
    assert.equal((await get(`${server.url}api/app-event?id=bad`)).status, 400);
    const events = JSON.parse((await get(`${server.url}api/events?limit=4&sort=user&dir=asc`)).body) as { rows: { user_name: string }[] };
    assert.equal(events.rows.length, 4);
    const tv = JSON.parse((await get(`${server.url}api/top-values?n=3&class=READ`)).body) as Record<string, { key: string }[]>;
    assert.deepEqual(
      tv['class']!.map((x) => x.key),
      ['READ'],
    );
  });
});
