import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { quietLogger } from '../../src/core/log.js';
import { startUiServer, type UiServer } from '../../src/ui/index.js';
import { launchBrowser, type TestBrowser } from '../helpers/browser.js';
import { scratchDir } from '../helpers/ingest-cli.js';
import { fakeQueries, fixtureEvent } from './fake-queries.js';
import { skip, uiSuite } from './ui-suite.js';
import { join } from 'node:path';

/**
 * The UI over an ingested store (ui-suite.ts), then the page against a fake store full of markup, which must
 * stay text.
 */
uiSuite({ name: 'auditship ui over an ingested store' });

const { dir, cleanup } = scratchDir('ui-hostile');

// Functions given to page.evaluate run in the page; the test program has no DOM types, so these say what they use.
interface DomEl {
  textContent: string | null;
}
declare const document: { querySelectorAll(sel: string): ArrayLike<DomEl>; title: string };
declare const window: Record<string, unknown>;

describe('the page with hostile data', { skip }, () => {
  let server: UiServer;
  let tb: TestBrowser;

  before(async () => {
    const evil = '<img src=x onerror="window.__xss=1">';
    const events = Array.from({ length: 30 }, (_, i) =>
      fixtureEvent(i, {
        user_name: i % 2 ? evil : `"><svg onload="window.__xss=2">`,
        statement: `</pre><script>window.__xss=3</script><b>bold ${i}</b>`,
        object_name: `public.t<iframe src="javascript:window.__xss=4">${i % 3}`,
        application_name: `<style>body{display:none}</style>`,
        error_message: i % 7 === 0 ? '<a href="javascript:alert(1)">x</a>' : null,
      }),
    );
    server = await startUiServer({
      queries: fakeQueries(events, {
        total: 2,
        bucket_ms: 3600e3,
        points: [{ t: Date.UTC(2026, 0, 1), n: 2 }],
        top: [{ user_name: evil, client_addr: '<i>10.0.0.1</i>', reason: '<b>bad</b>', n: 2 }],
      }),
      log: quietLogger(),
      port: 0,
      title: '<script>alert(1)</script>',
    });
    tb = await launchBrowser();
  });
  after(async () => {
    await tb?.close();
    await server?.close();
  });

  test('markup in audit data stays text everywhere', async () => {
    const { page, errors } = await tb.newPage();
    await page.goto(server.url);
    await page.waitForSelector('[data-testid=results][data-state=ready]');
    await page.waitForSelector('[data-testid=charts][data-state=ready]');
    await page.click('[data-testid=event-row] >> nth=0');
    await page.waitForSelector('[data-testid=detail-panel][data-state=ready]');
    const injected = await page.evaluate(() => ({
      xss: window['__xss'] ?? null,
      elements: document.querySelectorAll(
        'main img, main iframe, main script, main style, main a, aside img, aside script, aside iframe, aside a, #rows svg, main b, aside b, main i',
      ).length,
      title: document.title,
    }));
    assert.deepEqual(injected, { xss: null, elements: 0, title: '<script>alert(1)</script> · auditship' });
    assert.match((await page.textContent('[data-testid=detail-statement]')) ?? '', /<\/pre><script>window.__xss=3<\/script>/);
    assert.match((await page.textContent('[data-testid=rows]')) ?? '', /<img src=x onerror=/);
    assert.match((await page.textContent('[data-testid=logon-top]')) ?? '', /<b>bad<\/b>/);
    assert.ok(await page.isVisible('[data-testid=results]'), 'no injected style hid the page');
    await page.screenshot({ path: join(dir, 'hostile.png') });
    assert.deepEqual(errors, [], 'no CSP violation, no script error');
  });
});

after(() => cleanup());
