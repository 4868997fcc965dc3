import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { generateCsvlog } from '../../bench/generate.js';
import { AuditQueries, duckdbRunner, parseFilter, type EventFilter, type QueryRunner } from '../../src/query/index.js';
import { openDatabase, type Database } from '../../src/sinks/duckdb/database.js';
import { auditship, tempDir } from '../helpers/cli.js';

/**
 * The UI's queries against a store loaded from realistic generated csvlog (pgbench, application, web,
 * reporting, ETL and admin sessions with errors and failed logins): every answer is compared with a plain
 * SQL count or listing of the same data.
 */
describe('audit queries (UI, report, bench)', () => {
  const tmp = tempDir();
  let db: Database;
  let run: QueryRunner;
  let q: AuditQueries;
  let lo = 0,
    hi = 0;

  before(async () => {
    await generateCsvlog(`${tmp.dir}/logs`, { events: 30_000, seed: 5, meanGapMs: 40, fileBytes: 4 << 20 });
    const r = await auditship(['ingest', '--db', `${tmp.dir}/a.duckdb`, '--quiet', `${tmp.dir}/logs`]);
    assert.equal(r.code, 0, r.stderr);
    db = await openDatabase(`${tmp.dir}/a.duckdb`, { readOnly: true, threads: 2, memoryLimit: '512MB' });
    run = duckdbRunner(db.connection);
    q = new AuditQueries(run);
    const [b] = await run.all('SELECT epoch_ms(min(log_time))::DOUBLE AS lo, epoch_ms(max(log_time))::DOUBLE AS hi FROM audit_events');
    lo = Number(b!['lo']);
    hi = Number(b!['hi']);
  });
  after(async () => {
    await db?.close();
    tmp.cleanup();
  });

  const count = async (where: string, params: (string | number)[] = []) =>
    Number((await run.all(`SELECT count(*)::DOUBLE AS n FROM audit_logs WHERE ${where}`, params))[0]!['n']);

  test('facets list the distinct values and the stored range', async () => {
    const f = await q.facets();
    const users = (await run.all('SELECT DISTINCT user_name AS u FROM audit_events WHERE user_name IS NOT NULL ORDER BY 1')).map((r) => r['u']);
    assert.deepEqual(f.users, users);
    assert.ok(f.classes.includes('DDL') && f.classes.includes('READ') && f.classes.includes('ROLE'));
    assert.equal(f.events, 30_000);
    assert.equal(Date.parse(f.min_time!), lo);
    assert.equal(Date.parse(f.max_time!), hi);
  });

  /** Follows `next` to the end; returns every row. */
  async function walk(filter: EventFilter, limit: number) {
    const rows = [];
    let after: string | null = null;
    for (let pages = 0; pages < 10_000; pages++) {
      const page = await q.listEvents(filter, { limit, after });
      rows.push(...page.rows);
      if (!page.next) break;
      assert.equal(page.rows.length, limit, 'every page before the last is full');
      after = page.next;
    }
    return rows;
  }

  test('keyset pagination returns every matching event exactly once, newest first', async () => {
    const filter: EventFilter = { class: ['WRITE'], user: ['app'] };
    const rows = await walk(filter, 200);
    const expected = await count(`class = 'WRITE' AND user_name = 'app'`);
    assert.ok(expected > 1000, `enough rows to page (${expected})`);
    assert.equal(rows.length, expected);
    assert.equal(new Set(rows.map((r) => r.id)).size, rows.length, 'no event twice');
    for (let i = 1; i < rows.length; i++) {
      const a = rows[i - 1]!,
        b = rows[i]!;
      assert.ok(a.log_time >= b.log_time, `descending time at ${i}`);
    }
    assert.ok(rows.every((r) => r.class === 'WRITE' && r.user_name === 'app'));
  });

  test('filters: time range, object, free text, outcome, command — each equals the SQL count', async () => {
    const mid = lo + (hi - lo) / 2;
    const cases: [EventFilter, string, (string | number)[]][] = [
      [{ from: lo, to: mid }, 'log_time < make_timestamp($1::BIGINT * 1000)::TIMESTAMPTZ', [Math.round(mid)]],
      [{ object: 'CUSTOMERS' }, `object_name ILIKE '%customers%'`, []],
      [{ text: 'where id = $1' }, `statement ILIKE '%where id = $1%'`, []],
      [{ text: '100%' }, `contains(lower(statement), '100%')`, []],
      [{ outcome: 'error' }, `outcome = 'error'`, []],
      [{ outcome: 'success', class: ['DDL'] }, `outcome = 'success' AND class = 'DDL'`, []],
      [{ command: ['GRANT', 'REVOKE'] }, `command IN ('GRANT', 'REVOKE')`, []],
    ];
    for (const [filter, where, params] of cases) {
      const rows = await walk(filter, 500);
      assert.equal(rows.length, await count(where, params), JSON.stringify(filter));
    }
    assert.ok((await count(`outcome = 'error'`)) > 0, 'the data has failed statements');
  });

  test('an event in full, with its session and timeline', async () => {
    const [e] = await run.all(`SELECT session_id, session_line_num::DOUBLE AS l FROM audit_events a
      WHERE sqlstate IS NOT NULL AND EXISTS (SELECT 1 FROM sessions s WHERE s.session_id = a.session_id AND s.connected_at IS NOT NULL AND s.disconnected_at IS NOT NULL)
      ORDER BY log_time LIMIT 1`);
    assert.ok(e, 'a failed statement in a session with both ends logged');
    const page = await q.listEvents({ outcome: 'error' }, { limit: 500 });
    const row = page.rows.find((r) => r.session_id === e['session_id'] && r.session_line_num === Number(e['l']));
    assert.ok(row);
    const detail = await q.getEvent(row.id);
    assert.ok(detail);
    assert.equal(detail.event.outcome, 'error');
    assert.ok(detail.event.sqlstate && detail.event.error_message, 'sqlstate and message of the error');
    assert.ok(detail.event.statement && detail.event.statement.length > 0);
    assert.ok(detail.session?.connected_at && detail.session.disconnected_at);
    const kinds = detail.timeline.map((t) => t.kind);
    assert.equal(kinds[0], 'connect');
    assert.equal(kinds.at(-1), detail.truncated ? kinds.at(-1) : 'disconnect');
    assert.ok(
      detail.timeline.some((t) => t.kind === 'audit' && t.id === row.id),
      'the event itself is on the timeline',
    );
    assert.ok(
      detail.timeline.some((t) => t.kind === 'error'),
      'its error is on the timeline',
    );
    assert.ok(
      detail.timeline.every((t) => !('statement' in t)),
      'the timeline carries no statement text',
    );
    assert.equal(await q.getEvent(Buffer.from(JSON.stringify([1, 'x', 'y', 1])).toString('base64url')), null);
    await assert.rejects(q.getEvent('not-an-id'), /malformed/);
  });

  test('charts add up to the filtered counts', async () => {
    const filter: EventFilter = { user: ['web', 'app'] };
    const series = await q.eventsOverTime(filter);
    assert.ok(series.points.length > 3);
    assert.equal(
      series.points.reduce((s, p) => s + p.n, 0),
      await count(`user_name IN ('web', 'app')`),
    );
    const users = await q.topUsers({}, 3);
    assert.equal(users.length, 3);
    assert.equal(users[0]!.n, await count(`user_name = $1`, [users[0]!.key]));
    assert.ok(users[0]!.n >= users[1]!.n && users[1]!.n >= users[2]!.n);
    const objects = await q.topObjects({ class: ['READ'] }, 5);
    assert.equal(objects[0]!.n, await count(`class = 'READ' AND object_name = $1`, [objects[0]!.key]));
    const failures = await q.logonFailures({});
    const [f] = await run.all('SELECT count(*)::DOUBLE AS n FROM logon_failures');
    assert.ok(Number(f!['n']) > 0, 'the data has failed logins');
    assert.equal(failures.total, Number(f!['n']));
    assert.equal(
      failures.points.reduce((s, p) => s + p.n, 0),
      failures.total,
    );
    assert.ok(failures.top[0]!.reason.includes('password authentication failed'));
  });

  test('parseFilter reads URL parameters and refuses malformed ones with one line', () => {
    const f = parseFilter(new URLSearchParams('from=2024-05-01T12:00:00Z&to=1714568400000&user=a,b&user=c&class=read&outcome=error&q=%20x%20&object=t'));
    assert.deepEqual(f, {
      from: Date.UTC(2024, 4, 1, 12),
      to: 1714568400000,
      user: ['a', 'b', 'c'],
      class: ['READ'],
      outcome: 'error',
      text: 'x',
      object: 't',
    });
    assert.throws(() => parseFilter(new URLSearchParams('from=yesterday')), /from: "yesterday" is not a time/);
    assert.throws(() => parseFilter(new URLSearchParams('outcome=maybe')), /outcome/);
    assert.throws(() => parseFilter(new URLSearchParams('from=2024-05-02&to=2024-05-01')), /earlier/);
  });
});
