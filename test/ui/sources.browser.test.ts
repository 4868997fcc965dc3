import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import { openStoreReader, type StoreReader } from '../../src/sinks/duckdb/reader.js';
import { browserUnavailable, launchBrowser, type TestBrowser } from '../helpers/browser.js';
import { ingestOk, scratchDir, spawnCli, type CliChild } from '../helpers/ingest-cli.js';
import { APP_ACTORS, writeSourceRows } from '../helpers/source-rows.js';
import { generateWorkload } from './workload.js';

/**
 * The UI's other sources and the event list's tools in headless Chromium, over `auditship ui` serving a store
 * of pgaudit events (ingested csvlog), row changes and application events (written by the real sinks): the
 * row-changes view with a field diff, the application-events view, the column chooser kept by the browser,
 * sorting by a column, an export download, the top-values sidebar adding a filter, and the live tail showing an
 * event ingested while the page is open.
 */
const skip = browserUnavailable() ?? false;

interface DomEl {
  dataset: Record<string, string | undefined>;
  textContent: string | null;
  querySelector(sel: string): DomEl | null;
}
declare const document: { querySelector(sel: string): DomEl | null };
declare const localStorage: { getItem(k: string): string | null };

describe('auditship ui: row changes, application events and the event list tools', { skip }, () => {
  const { dir, cleanup } = scratchDir('ui-sources');
  const db = join(dir, 'audit.duckdb');
  let browser: TestBrowser;
  let cli: CliChild;
  let url = '';
  let reader: StoreReader;
  let lastMs = 0;

  before(async () => {
    const w = generateWorkload({ seed: 31, sessions: 80 });
    lastMs = w.counts.lastMs;
    mkdirSync(join(dir, 'logs'));
    writeFileSync(join(dir, 'logs', 'postgresql-2026-03-01_000000.csv'), w.csv);
    await ingestOk(db, [join(dir, 'logs')], ['--server', 'pg-main']);
    await writeSourceRows(db, { changes: 300, appEvents: 200, startMs: Date.UTC(2026, 2, 1), gapMs: 60_000 });
    cli = spawnCli(['ui', '--db', db, '--listen', '127.0.0.1:0']);
    url = await new Promise<string>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`no URL in 30 s: ${out}`)), 30_000);
      cli.stdout!.on('data', (d: Buffer | string) => {
        out += String(d);
        const m = /at (http:\/\/\S+)$/m.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]!);
        }
      });
    });
    browser = await launchBrowser();
    reader = openStoreReader(db);
  });
  after(async () => {
    await browser?.close();
    await reader?.close();
    if (cli && cli.exitCode === null) cli.kill('SIGTERM');
    await cli?.result;
    cleanup();
  });

  const seq = (page: Page, sel: string) => page.$eval(sel, (el: DomEl) => Number(el.dataset['loadSeq'] ?? 0));
  async function afterLoad(page: Page, sel: string, action: () => Promise<unknown>): Promise<void> {
    const prev = await seq(page, sel);
    await action();
    await page.waitForFunction(
      ([s, p]) => {
        const el = document.querySelector(s as string);
        return !!el && Number(el.dataset['loadSeq'] ?? 0) > (p as number) && el.dataset['state'] !== 'loading';
      },
      [sel, prev],
    );
  }
  async function openMain(page: Page, hash = ''): Promise<void> {
    await page.goto(`${url}${hash}`);
    await page.waitForSelector('[data-testid=results]:not([data-state=loading])');
    await page.waitForSelector('[data-testid=top-values][data-state=ready]');
  }
  const cells = (page: Page, cls: string) => page.$$eval(`[data-testid=event-row] .${cls}`, (tds: DomEl[]) => tds.map((td) => td.textContent ?? ''));

  test('row changes: filter by action, open one, read the diff of its fields', async () => {
    const { page, errors } = await browser.newPage();
    await page.goto(`${url}#view=changes`);
    await page.waitForSelector('[data-testid=source-results][data-state=ready]');
    await page.waitForSelector('[data-testid=source-charts][data-state=ready]');
    assert.equal(await page.textContent('#tab-changes-n'), '300');
    assert.ok(await page.isHidden('[data-testid=filters]'), 'the pgaudit filters are out of the way');
    assert.equal((await page.$$('[data-testid=source-row]')).length, 50);
    assert.ok(await page.$('svg[data-testid=source-chart-timeline] rect[data-class=UPDATE]'), 'changes over time by action');
    await page.selectOption('[data-testid=source-filter-action]', 'UPDATE');
    await afterLoad(page, '[data-testid=source-results]', () => page.click('[data-testid=source-apply]'));
    const actions = await page.$$eval('[data-testid=source-row] .c-action', (tds: DomEl[]) => tds.map((td) => td.textContent));
    assert.ok(actions.length > 0 && actions.every((a) => a === 'UPDATE'));
    assert.equal(new URLSearchParams(new URL(page.url()).hash.slice(1)).get('action'), 'UPDATE');

    await page.click('[data-testid=source-row] >> nth=0');
    await page.waitForSelector('[data-testid=source-detail][data-state=ready]');
    const diff = await page.$$eval('[data-testid=diff-row]', (trs: DomEl[]) => trs.map((tr) => [tr.dataset['field'], tr.dataset['kind']]));
    const kinds = Object.fromEntries(diff);
    assert.equal(kinds['amount'], 'changed');
    assert.equal(kinds['status'], 'added');
    assert.equal(kinds['name'], 'unchanged');
    assert.equal(await page.textContent('[data-testid=diff-summary]'), '1 changed, 1 added, 0 removed');
    const before = await page.textContent('[data-testid=diff-row][data-field=amount] .diff-before');
    const afterText = await page.textContent('[data-testid=diff-row][data-field=amount] .diff-after');
    assert.equal(Number(afterText), Number(before) + 1, 'before and after of the changed field');
    assert.match((await page.textContent('[data-testid=diff-row][data-field=name] .diff-before')) ?? '', /"quoted/);
    await page.screenshot({ path: join(dir, 'changes.png') });
    await page.keyboard.press('Escape');
    await page.waitForSelector('[data-testid=source-detail]', { state: 'hidden' });
    assert.deepEqual(errors, []);
  });

  test('application events: a top actor filters, one opens with its message', async () => {
    const { page, errors } = await browser.newPage();
    await page.goto(`${url}#view=app-events`);
    await page.waitForSelector('[data-testid=source-results][data-state=ready]');
    await page.waitForSelector('[data-testid=source-charts][data-state=ready]');
    const actor = APP_ACTORS[1];
    await afterLoad(page, '[data-testid=source-results]', () => page.click(`[data-testid=source-chart-actor] .hbar[data-key="${actor}"]`));
    const actors = await page.$$eval('[data-testid=source-row] .c-user', (tds: DomEl[]) => tds.map((td) => td.textContent));
    assert.ok(actors.length > 0 && actors.every((a) => a === actor));
    assert.equal(await page.inputValue('[data-testid=source-filter-actor]'), actor);
    await page.click('[data-testid=source-row] >> nth=0');
    await page.waitForSelector('[data-testid=source-detail][data-state=ready]');
    const message = JSON.parse((await page.textContent('[data-testid=source-message]')) ?? '{}') as { audit_event: { actor: string } };
    assert.equal(message.audit_event.actor, actor);
    // Back to the statements: the pgaudit list is there again.
    await page.click('[data-testid=tab-events]');
    await page.waitForSelector('[data-testid=results][data-state=ready]');
    assert.ok(await page.isHidden('[data-testid=sources]'));
    assert.deepEqual(errors, []);
  });

  test('the column chooser adds columns and the browser keeps the choice', async () => {
    const { page, errors } = await browser.newPage();
    await openMain(page);
    assert.equal((await page.$$('[data-testid=event-row] .c-application')).length, 0);
    await page.click('[data-testid=column-chooser]');
    await page.check('[data-testid=column-toggle-application]');
    await page.check('[data-testid=column-toggle-client]');
    await page.uncheck('[data-testid=column-toggle-database]');
    assert.ok((await cells(page, 'c-application')).some((t) => t !== ''));
    assert.equal((await page.$$('[data-testid=head-row] th.c-client')).length, 1);
    assert.equal((await page.$$('[data-testid=event-row] .c-database')).length, 0);
    await page.reload();
    await page.waitForSelector('[data-testid=results][data-state=ready]');
    assert.equal((await page.$$('[data-testid=head-row] th.c-application')).length, 1, 'kept after a reload');
    assert.equal((await page.$$('[data-testid=head-row] th.c-database')).length, 0);
    const saved = JSON.parse((await page.evaluate(() => localStorage.getItem('auditship.columns'))) ?? '[]') as string[];
    assert.ok(saved.includes('application') && saved.includes('client') && !saved.includes('database'));
    assert.deepEqual(errors, []);
  });

  test('a click on a header sorts by that column, again the other way', async () => {
    const { page, errors } = await browser.newPage();
    await openMain(page);
    await afterLoad(page, '[data-testid=results]', () => page.click('[data-testid=sort-user]'));
    const hash = new URLSearchParams(new URL(page.url()).hash.slice(1));
    assert.deepEqual([hash.get('sort'), hash.get('dir')], ['user', 'asc']);
    const up = await cells(page, 'c-user');
    assert.deepEqual(up, [...up].sort());
    const [first] = await reader.all(`SELECT min(coalesce(user_name, '')) AS u FROM audit_logs`);
    assert.equal(up[0], first!['u']);
    await afterLoad(page, '[data-testid=results]', () => page.click('[data-testid=sort-user]'));
    const down = await cells(page, 'c-user');
    assert.deepEqual(down, [...down].sort().reverse());
    assert.equal(await page.getAttribute('[data-testid=head-row] th.c-user', 'aria-sort'), 'descending');
    // Older pages go on in that order.
    const last = down.at(-1)!;
    await afterLoad(page, '[data-testid=results]', () => page.click('[data-testid=next-page]'));
    const next = await cells(page, 'c-user');
    assert.ok(next[0]! <= last);
    assert.deepEqual(errors, []);
  });

  test('export downloads every event of the filter as CSV', async () => {
    const { page, errors } = await browser.newPage();
    await openMain(page, '#class=WRITE');
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('[data-testid=export-csv]')]);
    assert.match(download.suggestedFilename(), /^auditship-events-[\d-TZ]+\.csv$/);
    const file = join(dir, 'export.csv');
    await download.saveAs(file);
    const body = readFileSync(file, 'utf8');
    assert.ok(body.startsWith('log_time,server,user_name,'));
    const [{ n } = {}] = await reader.all(`SELECT count(*)::INTEGER AS n FROM audit_logs WHERE class = 'WRITE'`);
    // Records end with CRLF; a statement's own newlines are LF inside quotes.
    assert.equal(body.split('\r\n').length - 2, Number(n));
    assert.deepEqual(errors, []);
  });

  test('a top value in the sidebar adds its filter', async () => {
    const { page, errors } = await browser.newPage();
    await openMain(page);
    const value = await page.getAttribute('[data-testid=top-value][data-field=user] >> nth=1', 'data-value');
    assert.ok(value);
    await afterLoad(page, '[data-testid=results]', () => page.click(`[data-testid=top-value][data-field=user][data-value="${value}"]`));
    assert.equal(await page.inputValue('[data-testid=filter-user]'), value);
    const users = await cells(page, 'c-user');
    assert.ok(users.length > 0 && users.every((u) => u === value));
    await page.waitForSelector('[data-testid=top-values][data-state=ready]');
    const listed = await page.$$eval('[data-testid=top-value][data-field=user]', (bs: DomEl[]) => bs.map((b) => b.dataset['value']));
    assert.deepEqual(listed, [value], 'the sidebar follows the filter');
    // A field without a select (application) is an input of the form.
    const app = await page.getAttribute('[data-testid=top-value][data-field=application] >> nth=0', 'data-value');
    await afterLoad(page, '[data-testid=results]', () => page.click(`[data-testid=top-value][data-field=application][data-value="${app}"]`));
    assert.equal(await page.inputValue('[data-testid=filter-application]'), app);
    assert.deepEqual(errors, []);
  });

  test('live tail: an event ingested while the page is open shows up on top', async () => {
    const { page, errors } = await browser.newPage();
    await openMain(page);
    await page.click('[data-testid=live-tail]');
    await page.waitForSelector('[data-testid=results][data-tail=on]');
    const w = generateWorkload({ seed: 32, sessions: 1, startMs: lastMs + 3_600_000, sessionBase: 50_000 });
    mkdirSync(join(dir, 'later'));
    writeFileSync(join(dir, 'later', 'postgresql-2026-03-09_000000.csv'), w.csv);
    await ingestOk(db, [join(dir, 'later')], ['--server', 'pg-main']);
    const [newest] = await reader.all(`SELECT strftime(max(log_time), '%Y-%m-%dT%H:%M:%S.%gZ') AS t FROM audit_logs`);
    await page.waitForSelector(`[data-testid=event-row][data-log-time="${String(newest!['t'])}"]`, { timeout: 15_000 });
    const times = await page.$$eval('[data-testid=event-row]', (trs: DomEl[]) => trs.map((tr) => tr.dataset['logTime'] ?? ''));
    assert.equal(times[0], newest!['t'], 'the newest is on top');
    assert.equal(new Set(await page.$$eval('[data-testid=event-row]', (trs: DomEl[]) => trs.map((tr) => tr.dataset['id']))).size, times.length, 'no row twice');
    assert.ok(Number(await page.getAttribute('[data-testid=results]', 'data-tailed')) >= w.counts.audit);
    // Paging stops it.
    await page.click('[data-testid=next-page]');
    await page.waitForSelector('[data-testid=results][data-tail=off]');
    assert.deepEqual(errors, []);
  });
});
