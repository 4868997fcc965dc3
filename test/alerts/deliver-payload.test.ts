import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { checkConnector } from '../../src/config/load.js';
import {
  CUT_MARK,
  DESTINATION_SPECS,
  MAX_ALERT_BYTES,
  emailSubject,
  renderEmailBody,
  renderWebhookBody,
  toSmtpDestination,
  toWebhookDestination,
  type AlertMessage,
  type SmtpDestinationOptions,
  type WebhookDestinationOptions,
} from '../../src/alerts/deliver/index.js';
import { cutBytes, cutChars } from '../../src/alerts/deliver/payload.js';
import { parseRetryAfter, retryableStatus } from '../../src/alerts/deliver/webhook.js';

/** The pure parts of alert delivery: cutting, the cap's priorities, Retry-After, statuses, the config specs. */

const msg = (over: Partial<AlertMessage> = {}): AlertMessage => ({
  id: 'id-1',
  rule: 'r',
  title: 'auditship: r fired',
  text: 'hello',
  fields: { matched: 3, key: null },
  firedAt: '2026-01-01T00:00:00Z',
  samples: [{ a: 1 }],
  ...over,
});

describe('cutting', () => {
  test('cutChars and cutBytes never split a surrogate pair and end in the mark', () => {
    const s = '😀'.repeat(10); // 20 code units, 40 bytes
    for (let max = 6; max < 22; max++) {
      const c = cutChars(s, max);
      assert.ok(c.length <= Math.max(max, CUT_MARK.length), `${max}: ${c.length}`);
      assert.ok(!/[\ud800-\udbff](?![\udc00-\udfff])/.test(c), `split at ${max}`);
      if (max < 20) assert.ok(c.endsWith(CUT_MARK));
    }
    for (let max = 8; max < 44; max++) {
      const c = cutBytes(s, max);
      assert.ok(Buffer.byteLength(c) <= max, `${max}: ${Buffer.byteLength(c)}`);
      assert.ok(!c.includes('\ufffd') && !/[\ud800-\udbff](?![\udc00-\udfff])/.test(c));
    }
    assert.equal(cutBytes('abc', 3), 'abc');
  });

  test('the cap keeps title and fields, then text, and drops samples before the text gets short', () => {
    const samples = Array.from({ length: 20 }, (_, i) => ({ i, v: 'v'.repeat(500), w: 'w'.repeat(500) })); // 20 KB
    const body = JSON.parse(renderWebhookBody('json', msg({ text: 't'.repeat(100_000), samples }))) as {
      title: string;
      fields: unknown;
      text: string;
      samples: Record<string, unknown>[];
    };
    assert.equal(body.title, 'auditship: r fired');
    assert.deepEqual(body.fields, { matched: 3, key: null });
    assert.ok(body.text.length >= 2048 && body.text.endsWith(CUT_MARK));
    assert.ok(body.samples.length > 2 && body.samples.length < 20, `${body.samples.length} samples`);
    assert.deepEqual(Object.keys(body.samples.at(-1)!), [CUT_MARK]);
    // Small messages are left whole.
    assert.deepEqual(JSON.parse(renderWebhookBody('json', msg())).samples, [{ a: 1 }]);
  });

  test('every format stays within MAX_ALERT_BYTES whatever is large: text, title, fields, samples, control characters', () => {
    const huge = '\u0001"\\'.repeat(200_000); // JSON escapes grow these six-fold
    const fields = Object.fromEntries(Array.from({ length: 500 }, (_, i) => [`k${i}${'\u0002'.repeat(200)}`, huge.slice(0, 5000)]));
    const samples = Array.from({ length: 100 }, () => Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`s${i}`, huge.slice(0, 3000)])));
    const m = msg({ title: huge, text: huge, fields, samples });
    for (const format of ['json', 'slack', 'teams'] as const) {
      const out = renderWebhookBody(format, m);
      assert.ok(Buffer.byteLength(out) <= MAX_ALERT_BYTES, `${format}: ${Buffer.byteLength(out)}`);
      JSON.parse(out);
    }
    assert.ok(Buffer.byteLength(renderEmailBody(m)) <= MAX_ALERT_BYTES);
    assert.ok(!/[\r\n]/.test(emailSubject(m)) && emailSubject(m).length <= 200);
  });
});

describe('webhook outcomes', () => {
  test('retryable statuses and Retry-After', () => {
    assert.deepEqual([200, 400, 401, 403, 404, 408, 410, 413, 425, 429, 500, 502, 503, 504].filter(retryableStatus), [408, 425, 429, 500, 502, 503, 504]);
    assert.equal(parseRetryAfter('120'), 120_000);
    assert.equal(parseRetryAfter('Wed, 21 Oct 2015 07:28:10 GMT', Date.parse('Wed, 21 Oct 2015 07:28:00 GMT')), 10_000);
    assert.equal(parseRetryAfter('soon'), undefined);
    assert.equal(parseRetryAfter(null), undefined);
  });
});

describe('destination config', () => {
  test('the specs decode a webhook and an smtp destination with defaults, and reject bad values without echoing them', () => {
    const problems: string[] = [];
    const hook = checkConnector(
      { type: 'webhook', url: 'https://hooks.example.com/services/T0/B0/secret', format: 'slack', headers: ['Authorization: Bearer x'] },
      DESTINATION_SPECS,
      'sink',
      'alerts.destinations.ops',
      problems,
    ) as unknown as WebhookDestinationOptions;
    const mail = checkConnector(
      { type: 'smtp', host: 'smtp.example.com', from: 'a@example.com', to: 'b@example.com', username: 'a', password: 'p' },
      DESTINATION_SPECS,
      'sink',
      'alerts.destinations.mail',
      problems,
    ) as unknown as SmtpDestinationOptions;
    assert.deepEqual(problems, []);
    assert.deepEqual(toWebhookDestination('ops', hook, 'alerts.destinations.ops', problems), {
      type: 'webhook',
      name: 'ops',
      url: 'https://hooks.example.com/services/T0/B0/secret',
      format: 'slack',
      headers: { Authorization: 'Bearer x' },
      timeout_ms: 10000,
    });
    assert.deepEqual(toSmtpDestination('mail', mail), {
      type: 'smtp',
      name: 'mail',
      host: 'smtp.example.com',
      port: 587,
      security: 'starttls',
      username: 'a',
      password: 'p',
      from: 'a@example.com',
      to: ['b@example.com'],
      timeout_ms: 30000,
      tls_reject_unauthorized: true,
    });
    const bad: string[] = [];
    checkConnector({ type: 'webhook', url: 'ftp://x/secret-path' }, DESTINATION_SPECS, 'sink', 'd', bad);
    toWebhookDestination('d', { type: 'webhook', url: 'https://x', format: 'json', timeout_ms: 1, headers: ['no colon secret'] }, 'd', bad);
    assert.equal(bad.length, 2);
    assert.ok(
      bad.every((p) => !p.includes('secret')),
      bad.join('\n'),
    );
  });
});
