/**
 * Headless Chromium for UI tests: Debian's /usr/bin/chromium driven by playwright-core (which never downloads
 * a browser). The flags keep it off the network (this machine has none) and quiet: no sync, no component
 * updates, no QUIC. Each launch gets a fresh browser context, so no cookie leaks from one test to the next.
 */
import { existsSync } from 'node:fs';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM = process.env['AUDITSHIP_TEST_CHROMIUM'] ?? '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Why the browser tests cannot run here, or null (for `test(..., { skip })`). */
export function browserUnavailable(): string | null {
  return existsSync(CHROMIUM) ? null : `${CHROMIUM} is missing (apt-get install chromium; scripts/test.mjs installs it)`;
}

export interface TestBrowser {
  browser: Browser;
  /** A new isolated context (own cookies) and a page in it; console errors and page errors are collected. */
  newPage(options?: { viewport?: { width: number; height: number } }): Promise<{ context: BrowserContext; page: Page; errors: string[] }>;
  close(): Promise<void>;
}

export async function launchBrowser(): Promise<TestBrowser> {
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  return {
    browser,
    async newPage(options = {}) {
      const context = await browser.newContext({ viewport: options.viewport ?? { width: 1440, height: 1000 } });
      // tsx (esbuild keepNames) wraps named functions in __name(...); a function sent to page.evaluate carries
      // the call into the page, where __name does not exist.
      await context.addInitScript({ content: 'globalThis.__name ??= (fn) => fn;' });
      const page = await context.newPage();
      const errors: string[] = [];
      page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
      page.on('console', (msg) => {
        if (msg.type() === 'error') errors.push(`console: ${msg.text()}`);
      });
      return { context, page, errors };
    },
    close: () => browser.close(),
  };
}
