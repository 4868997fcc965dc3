import assert from 'node:assert/strict';
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import { browserUnavailable, launchBrowser, type TestBrowser } from '../helpers/browser.js';
import { hasStackTrace, ingestOk, queryDb, scratchDir, spawnCli, type CliChild } from '../helpers/ingest-cli.js';
import { generateWorkload, type WorkloadCounts } from './workload.js';

/**
 * `auditship ui` end to end: a DuckDB file ingested from generated csvlog (two servers, six users, every
 * pgaudit class, failed statements, failed logins), the real CLI serving it, headless Chromium using the page
 * the way a DBA does — filter, page, open an event and its session, read the charts — and the token flow
 * off loopback. A suite run as is (ui.browser.test.ts) and while other processes write the same store
 * (side-by-side.browser.test.ts).
 */

export const skip = browserUnavailable() ?? false;

export interface UiSuiteOptions {
  name: string;
  /** Filter state put in every page's hash (e.g. `server=a,b`), so that data others add meanwhile stays out of view. */
  hash?: string;
  /** Reads the store for the expected values (default: opened read-only in this process). */
  query?: (db: string, sql: string) => Promise<Record<string, unknown>[]>;
  /** Checks the event total the page shows against the workload's (default: equal). */
  checkTotal?: (shown: number, workload: number) => void;
  /** Started once the store holds the workload and the UI serves it; stopped (and its checks run) after the suite. */
  background?: (db: string) => { stop(): Promise<void> };
}

// Functions given to page.evaluate run in the page; the test program has no DOM types, so these say what they use.
interface DomEl {
  dataset: Record<string, string | undefined>;
  textContent: string | null;
  nextElementSibling: DomEl | null;
  querySelector(sel: string): DomEl | null;
  querySelectorAll(sel: string): ArrayLike<DomEl>;
  getAttribute(name: string): string | null;
  getBBox(): { width: number; height: number };
}
declare const document: { querySelector(sel: string): DomEl | null; querySelectorAll(sel: string): ArrayLike<DomEl>; title: string };
const TOKEN = 'ui-browser-test-token-5f2c9a';

export function uiSuite(opts: UiSuiteOptions): void {
  const { dir, cleanup } = scratchDir('ui-browser');
  const db = join(dir, 'audit.duckdb');
  let browser: TestBrowser;
  let counts: WorkloadCounts[] = [];
  const children: CliChild[] = [];
  const sql = (text: string) => (opts.query ?? queryDb)(db, text);

  /** Starts `auditship ui ARGS` and resolves with the URL of its startup line. */
  async function startCli(args: string[]): Promise<{ child: CliChild; url: string }> {
    const child = spawnCli(['ui', ...args]);
    children.push(child);
    let out = '';
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`auditship ui printed no URL in 30 s; stdout: ${out}`)), 30_000);
      child.stdout!.on('data', (d: Buffer | string) => {
        out += String(d);
        const m = /^auditship ui: serving (.+) at (http:\/\/\S+)$/m.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(m[2]!);
        }
      });
      void child.result.then((r) => {
        clearTimeout(timer);
        reject(new Error(`auditship ui exited (${r.code}) before serving: ${r.stderr}`));
      });
    });
    return { child, url };
  }

  async function stopCli(child: CliChild): Promise<void> {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const r = await child.result;
    assert.equal(r.code, 0, `auditship ui exits 0 on SIGTERM; stderr: ${r.stderr.slice(-500)}`);
  }

  const seqOf = (page: Page, sel: string) => page.$eval(sel, (el: DomEl) => Number(el.dataset['loadSeq'] ?? 0));

  /** Runs `action` and waits until the table (and the charts, when `charts`) finished loading after it. */
  async function afterLoad(page: Page, action: () => Promise<unknown>, charts = false): Promise<void> {
    const rows = await seqOf(page, '[data-testid=results]');
    const chartSeq = await seqOf(page, '[data-testid=charts]');
    await action();
    await page.waitForFunction((prev) => {
      const el = document.querySelector('[data-testid=results]')!;
      return Number(el.dataset['loadSeq'] ?? 0) > prev && el.dataset['state'] !== 'loading';
    }, rows);
    if (charts) {
      await page.waitForFunction((prev) => {
        const el = document.querySelector('[data-testid=charts]')!;
        return Number(el.dataset['loadSeq'] ?? 0) > prev && el.dataset['state'] === 'ready';
      }, chartSeq);
    }
  }

  async function openPage(url: string): Promise<{ page: Page; errors: string[] }> {
    const { page, errors } = await browser.newPage();
    await page.goto(url);
    await page.waitForSelector('[data-testid=results]:not([data-state=loading])');
    await page.waitForSelector('[data-testid=charts][data-state=ready]');
    return { page, errors };
  }

  interface ShownRow {
    id: string;
    time: string;
    user: string;
    cls: string;
    command: string;
    statement: string;
    outcome: string;
  }

  function shownRows(page: Page): Promise<ShownRow[]> {
    return page.$$eval('[data-testid=event-row]', (trs: DomEl[]) =>
      trs.map((tr) => ({
        id: tr.dataset['id']!,
        time: tr.dataset['logTime']!,
        user: tr.querySelector('.c-user')!.textContent ?? '',
        cls: tr.querySelector('.c-class')!.textContent ?? '',
        command: tr.querySelector('.c-command')!.textContent ?? '',
        statement: tr.querySelector('.c-statement')!.textContent ?? '',
        outcome: tr.querySelector('.c-outcome')!.dataset['outcome']!,
      })),
    );
  }

  describe(opts.name, { skip }, () => {
    let url = '';
    let home = '';
    let cli: CliChild;
    let background: { stop(): Promise<void> } | null = null;

    before(async () => {
      const workloads = [
        { server: 'pg-main', ...generateWorkload({ seed: 7, sessions: 300 }) },
        { server: 'pg-replica', ...generateWorkload({ seed: 8, sessions: 60, sessionBase: 10_000 }) },
      ];
      for (const w of workloads) {
        const logs = join(dir, w.server);
        mkdirSync(logs);
        writeFileSync(join(logs, 'postgresql-2026-03-01_000000.csv'), w.csv);
        const s = await ingestOk(db, [logs], ['--server', w.server]);
        assert.equal(s.stored, w.counts.audit);
      }
      counts = workloads.map((w) => w.counts);
      // A config for its saved searches (the UI reads only ui.saved_searches of it).
      const config = join(dir, 'ui.yaml');
      const scope = opts.hash ? `&${opts.hash}` : '';
      writeFileSync(
        config,
        JSON.stringify({
          ui: { saved_searches: [`Alice reads=user=alice&class=READ${scope}`, `Failed statements=outcome=error${scope}`] },
          pipelines: { unused: { source: { type: 'pg_logs', path: dir }, sinks: [{ type: 'duckdb', path: db }] } },
        }),
      );
      ({ child: cli, url } = await startCli(['--db', db, '--listen', '127.0.0.1:0', '--config', config]));
      home = opts.hash ? `${url}#${opts.hash}` : url;
      browser = await launchBrowser();
      background = opts.background?.(db) ?? null;
    });

    after(async () => {
      try {
        await background?.stop();
      } finally {
        await browser?.close();
        if (cli) await stopCli(cli);
      }
    });

    test('the page loads with the newest events and the stored range', async () => {
      const { page, errors } = await openPage(home);
      const rows = await shownRows(page);
      assert.equal(rows.length, 50);
      const total = counts.reduce((a, c) => a + c.audit, 0);
      const shown = Number(/^([\d,]+) events/.exec((await page.textContent('[data-testid=stats]')) ?? '')?.[1]?.replaceAll(',', '') ?? NaN);
      (opts.checkTotal ?? ((n, t) => assert.equal(n, t, 'the stats show every stored event')))(shown, total);
      const [newest] = await sql(`SELECT strftime(max(log_time), '%Y-%m-%dT%H:%M:%S.%gZ') AS t FROM audit_logs`);
      assert.equal(rows[0]!.time, newest!['t'], 'the first row is the newest event');
      assert.equal(await page.textContent('[data-testid=page-number]'), 'Page 1');
      assert.ok(await page.isDisabled('[data-testid=prev-page]'));
      assert.ok(await page.isEnabled('[data-testid=next-page]'));
      await page.screenshot({ path: join(dir, 'main.png'), fullPage: true });
      assert.deepEqual(errors, []);
    });

    test('filters narrow the table, live in the URL hash, survive a reload and follow the back button', async () => {
      const { page, errors } = await openPage(home);
      await page.selectOption('[data-testid=filter-user]', 'alice');
      await page.selectOption('[data-testid=filter-class]', 'READ');
      await afterLoad(page, () => page.click('[data-testid=apply]'), true);
      const alice = await shownRows(page);
      assert.ok(alice.length > 0);
      assert.ok(
        alice.every((r) => r.user === 'alice' && r.cls === 'READ'),
        'every row is alice, READ',
      );
      assert.ok(
        alice.some((r) => !/balance/i.test(r.statement)),
        'alice reads more than accounts',
      );
      const hash = new URLSearchParams(new URL(page.url()).hash.slice(1));
      assert.equal(hash.get('user'), 'alice');
      assert.equal(hash.get('class'), 'READ');
      // The charts follow: the only top user is alice.
      const users = await page.$$eval('[data-testid=chart-top-users] .hbar', (gs: DomEl[]) => gs.map((g) => g.dataset['key']));
      assert.deepEqual(users, ['alice']);

      await page.fill('[data-testid=filter-q]', 'balance');
      await afterLoad(page, () => page.press('[data-testid=filter-q]', 'Enter'));
      const narrowed = await shownRows(page);
      assert.ok(narrowed.length > 0);
      assert.ok(
        narrowed.every((r) => r.user === 'alice' && r.cls === 'READ' && /balance/i.test(r.statement)),
        'free text narrows',
      );
      assert.ok(await page.$('[data-testid=event-row] mark'), 'the match is highlighted');
      const [expected] = await sql(
        `SELECT count(*)::INTEGER AS n FROM audit_logs WHERE user_name = 'alice' AND class = 'READ' AND statement ILIKE '%balance%'`,
      );
      if (Number(expected!['n']) <= 50) assert.equal(narrowed.length, Number(expected!['n']));

      await page.reload();
      await page.waitForSelector('[data-testid=results]:not([data-state=loading])');
      assert.equal(await page.inputValue('[data-testid=filter-q]'), 'balance');
      assert.equal(await page.inputValue('[data-testid=filter-user]'), 'alice');
      assert.deepEqual(
        (await shownRows(page)).map((r) => r.id),
        narrowed.map((r) => r.id),
        'a reload shows the same rows',
      );

      await afterLoad(page, () => page.goBack());
      assert.equal(await page.inputValue('[data-testid=filter-q]'), '');
      assert.deepEqual(
        (await shownRows(page)).map((r) => r.id),
        alice.map((r) => r.id),
        'back restores the previous filter',
      );

      await page.selectOption('[data-testid=filter-outcome]', 'error');
      await afterLoad(page, () => page.click('[data-testid=apply]'));
      const failed = await shownRows(page);
      assert.ok(failed.every((r) => r.outcome === 'error'));
      assert.deepEqual(errors, []);
    });

    test("saved searches: the config's are listed and apply; one saved in the page is kept by the browser; #search=NAME opens one", async () => {
      const { page, errors } = await openPage(home);
      const listed = await page.$$eval('[data-testid=saved-searches] optgroup', (gs: DomEl[]) =>
        Array.from(gs).map((g) => [g.getAttribute('label'), Array.from(g.querySelectorAll('option')).map((o) => o.textContent)]),
      );
      assert.deepEqual(listed, [['From the config', ['Alice reads', 'Failed statements']]]);
      await afterLoad(page, () => page.selectOption('[data-testid=saved-searches]', { label: 'Alice reads' }), true);
      const alice = await shownRows(page);
      assert.ok(alice.length > 0);
      assert.ok(
        alice.every((r) => r.user === 'alice' && r.cls === 'READ'),
        'the saved filter applies',
      );
      assert.equal(new URLSearchParams(new URL(page.url()).hash.slice(1)).get('user'), 'alice', 'and is in the URL');
      assert.equal(await page.inputValue('[data-testid=filter-user]'), 'alice', 'and in the form');

      // Saved in the page: narrowed by text, named, listed under this browser — after a reload too.
      await page.fill('[data-testid=filter-q]', 'balance');
      await afterLoad(page, () => page.press('[data-testid=filter-q]', 'Enter'));
      page.once('dialog', (d) => void d.accept('Balances read by alice'));
      await page.click('[data-testid=save-search]');
      await page.reload();
      await page.waitForSelector('[data-testid=results]:not([data-state=loading])');
      const mine = await page.$$eval('[data-testid=saved-searches] optgroup[label="Saved in this browser"] option', (os: DomEl[]) =>
        Array.from(os).map((o) => o.textContent),
      );
      assert.deepEqual(mine, ['Balances read by alice']);
      assert.equal(
        await page.$eval('[data-testid=saved-searches]', (el: DomEl) => (el as unknown as { selectedOptions: DomEl[] }).selectedOptions[0]!.textContent),
        'Balances read by alice',
        'the current filter shows as the saved search it is',
      );

      // A link by name: the hash becomes the search's filter.
      await afterLoad(page, () => page.goto(`${url}#search=${encodeURIComponent('Failed statements')}`));
      const failed = await shownRows(page);
      assert.ok(failed.length > 0 && failed.every((r) => r.outcome === 'error'));
      assert.equal(new URLSearchParams(new URL(page.url()).hash.slice(1)).get('outcome'), 'error');
      await page.goto(`${url}#search=nothing-of-that-name`);
      await page.waitForSelector('#error-bar:not([hidden])');
      assert.match((await page.textContent('#error-text')) ?? '', /no saved search named "nothing-of-that-name"/);
      assert.deepEqual(errors, []);
    });

    test('keyset pagination: Older twice, Newer once — no overlap, newest first, Newer shows the same rows', async () => {
      const { page, errors } = await openPage(home);
      const p1 = await shownRows(page);
      await afterLoad(page, () => page.click('[data-testid=next-page]'));
      const p2 = await shownRows(page);
      assert.equal(await page.textContent('[data-testid=page-number]'), 'Page 2');
      await afterLoad(page, () => page.click('[data-testid=next-page]'));
      const p3 = await shownRows(page);
      assert.equal(await page.textContent('[data-testid=page-number]'), 'Page 3');
      const all = [...p1, ...p2, ...p3];
      assert.equal(all.length, 150);
      assert.equal(new Set(all.map((r) => r.id)).size, 150, 'pages do not overlap');
      for (let i = 1; i < all.length; i++) assert.ok(all[i - 1]!.time >= all[i]!.time, `descending time at ${i}: ${all[i - 1]!.time} ${all[i]!.time}`);
      const [{ t } = {}] = await sql(`SELECT strftime(log_time, '%Y-%m-%dT%H:%M:%S.%gZ') AS t FROM audit_logs ORDER BY log_time DESC LIMIT 1 OFFSET 149`);
      assert.equal(p3.at(-1)!.time, t, 'the 150th row is the 150th newest event');
      await afterLoad(page, () => page.click('[data-testid=prev-page]'));
      assert.equal(await page.textContent('[data-testid=page-number]'), 'Page 2');
      assert.deepEqual(
        (await shownRows(page)).map((r) => r.id),
        p2.map((r) => r.id),
      );
      assert.deepEqual(errors, []);
    });

    test('an event opens with its statement, its fields and its session timeline', async () => {
      const { page, errors } = await openPage(home);
      await page.selectOption('[data-testid=filter-outcome]', 'error');
      await afterLoad(page, () => page.click('[data-testid=apply]'));
      const [row] = await shownRows(page);
      assert.ok(row, 'there are failed statements');
      await page.click(`[data-testid=event-row][data-id="${row.id}"]`);
      await page.waitForSelector(`[data-testid=detail-panel][data-state=ready][data-event-id="${row.id}"]`);
      const field = async (label: string) =>
        page.$eval(
          '[data-testid=detail-fields]',
          (dl: DomEl, l) => {
            const dt = Array.from(dl.querySelectorAll('dt')).find((d) => d.textContent === l);
            return dt?.nextElementSibling?.textContent ?? null;
          },
          label,
        );
      const session = (await field('Session'))!;
      const line = Number(await field('Session line'));
      const [stored] = await sql(
        `SELECT statement, sqlstate, error_message FROM audit_logs WHERE session_id = '${session.replaceAll("'", "''")}' AND session_line_num = ${line}`,
      );
      assert.ok(stored, 'the fields name a stored event');
      assert.equal(await page.textContent('[data-testid=detail-statement]'), stored['statement']);
      assert.ok(row.statement.startsWith(String(stored['statement']).replace(/\s+/g, ' ').slice(0, 40)), 'it is the row clicked');
      assert.match(
        (await page.textContent('[data-testid=detail-error]')) ?? '',
        new RegExp(`${stored['sqlstate']}.*${String(stored['error_message']).slice(0, 20)}`),
      );
      const items = await page.$$eval('[data-testid=timeline-item]', (lis: DomEl[]) =>
        lis.map((li) => ({ kind: li.dataset['kind'], current: li.dataset['current'] === 'true', text: li.textContent })),
      );
      assert.equal(items[0]!.kind, 'connect');
      assert.equal(items.at(-1)!.kind, 'disconnect');
      assert.equal(items.filter((i) => i.current).length, 1, 'the event is highlighted');
      assert.ok(
        items.some((i) => i.kind === 'error'),
        'the error is in the timeline',
      );
      assert.ok(items.filter((i) => i.kind === 'audit').length >= 1);
      assert.match((await page.textContent('[data-testid=detail-session]')) ?? '', /Disconnected/);
      await page.screenshot({ path: join(dir, 'detail.png') });

      // Another audit item of the session opens that event.
      const other = await page.$('[data-testid=timeline-item][data-kind=audit]:not([data-current]) button.tl-link');
      if (other) {
        const id = await other.getAttribute('data-id');
        await other.click();
        await page.waitForSelector(`[data-testid=detail-panel][data-state=ready][data-event-id="${id}"]`);
        assert.equal(await page.$$eval('[data-testid=timeline-item][data-current=true]', (l: DomEl[]) => l.length), 1);
        assert.equal(await field('Session'), session);
      }
      await page.keyboard.press('Escape');
      await page.waitForSelector('[data-testid=detail-panel]', { state: 'hidden' });
      assert.ok(!new URL(page.url()).hash.includes('ev='));
      assert.deepEqual(errors, []);
    });

    test('the charts are drawn and follow the filters', async () => {
      const { page, errors } = await openPage(home);
      for (const id of ['chart-timeline', 'chart-top-users', 'chart-top-objects', 'chart-logon-failures']) {
        const drawn = await page.$$eval(
          `svg[data-testid=${id}] rect, svg[data-testid=${id}] path`,
          (els: DomEl[]) =>
            els.filter((e) => {
              if (e.getAttribute('fill') === 'transparent') return false;
              const b = e.getBBox();
              return b.width > 0 && b.height > 0;
            }).length,
        );
        assert.ok(drawn > 0, `${id} has a drawn shape`);
      }
      const legend = (await page.textContent('[data-testid=legend-timeline]')) ?? '';
      for (const cls of ['READ', 'WRITE', 'DDL', 'ROLE', 'FUNCTION', 'MISC']) assert.ok(legend.includes(cls), `legend has ${cls}`);
      const failures = counts.reduce((a, c) => a + c.logonFailures, 0);
      assert.equal(await page.textContent('[data-testid=logon-total]'), failures.toLocaleString('en-US'));
      assert.match((await page.textContent('[data-testid=logon-top]')) ?? '', /password authentication failed/);
      const topUsers = await page.$$eval('[data-testid=chart-top-users] .hbar', (gs: DomEl[]) => gs.map((g) => g.dataset['key']));
      assert.deepEqual([...topUsers].sort(), ['alice', 'bob', 'carol', 'etl_loader', 'postgres', 'report_ro']);

      // A click on a bar filters by it.
      await afterLoad(page, () => page.click('[data-testid=chart-top-users] .hbar[data-key=carol]'), true);
      assert.ok((await shownRows(page)).every((r) => r.user === 'carol'));
      assert.equal(await page.inputValue('[data-testid=filter-user]'), 'carol');
      assert.deepEqual(errors, []);
    });

    test('an empty range says so', async () => {
      const { page, errors } = await openPage(`${url}#${opts.hash ? `${opts.hash}&` : ''}from=2020-01-01T00:00:00.000Z&to=2020-01-02T00:00:00.000Z`);
      assert.equal((await shownRows(page)).length, 0);
      assert.ok(await page.isVisible('[data-testid=empty]'));
      assert.match((await page.textContent('[data-testid=empty]')) ?? '', /No events in this range/);
      assert.equal(await page.getAttribute('svg[data-testid=chart-timeline]', 'data-empty'), 'true');
      assert.deepEqual(errors, []);
    });

    test('off loopback: refused without a token; with one, 401 until ?token= is given once', async () => {
      const refused = await spawnCli(['ui', '--db', db, '--listen', '0.0.0.0:0']).result;
      assert.equal(refused.code, 2);
      assert.match(refused.stderr, /^auditship: refusing to serve audit data on 0\.0\.0\.0.*token/);
      assert.equal(refused.stderr.trim().split('\n').length, 1);
      assert.ok(!hasStackTrace(refused.stderr));

      const { child, url: open } = await startCli(['--db', db, '--listen', '0.0.0.0:0', '--token', TOKEN]);
      try {
        const base = open.replace('//0.0.0.0:', '//127.0.0.1:');
        const { page, context, errors } = await browser.newPage();
        const anon = await page.goto(base);
        assert.equal(anon?.status(), 401);
        const wrong = await page.goto(`${base}?token=nope`);
        assert.equal(wrong?.status(), 401);
        await page.goto(`${base}?token=${TOKEN}`);
        await page.waitForSelector('[data-testid=results][data-state=ready]');
        assert.ok(!page.url().includes(TOKEN), 'the token left the address bar');
        assert.equal((await shownRows(page)).length, 50);
        const [cookie] = await context.cookies();
        assert.ok(cookie?.httpOnly && cookie.sameSite === 'Strict');
        assert.ok(!cookie.value.includes(TOKEN));
        // A fresh context (no cookie) is out again.
        const { page: other } = await browser.newPage();
        assert.equal((await other.goto(base))?.status(), 401);
        // Chromium reports the 401 page loads above on the console; nothing else may be there.
        assert.deepEqual(
          errors.filter((e) => !/status of 401 \(Unauthorized\)/.test(e)),
          [],
        );
      } finally {
        await stopCli(child);
      }
      const log = (await child.result).stderr;
      assert.ok(!log.includes(TOKEN), 'the token is not logged');
      assert.ok(!log.includes('?'), 'no query string in the access log');
    });
  });

  after(() => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    if (!process.env['AUDITSHIP_KEEP_UI_TEST']) cleanup();
    else console.log(`kept ${dir}`);
  });
}
