import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { DeliveryError, MAX_ALERT_BYTES, deliver, type AlertMessage, type WebhookDestination } from '../../src/alerts/deliver/index.js';
import { startWebhookReceiver, type WebhookReceiver } from '../alert-receivers/webhook-receiver.js';

/**
 * The webhook transport against the local receiver: what arrives in each format (shape, headers, idempotency
 * key), which failures are worth a retry, timeouts and aborts, the size cap, and errors that never show the URL.
 */

const SECRET = 'T00000000/B00000000/XXXXsecretXXXXtoken';

function message(over: Partial<AlertMessage> = {}): AlertMessage {
  return {
    id: 'a1b2c3d4e5f60718',
    rule: 'failed-logins',
    title: 'auditship: failed-logins fired (7 events, user=alice)',
    text: '7 failed logins for alice from 10.0.0.5 within 5m on db1.',
    fields: {
      rule: 'failed-logins',
      source: 'pg-logs',
      matched: 7,
      window: '5m',
      key: 'user=alice',
      first: '2026-01-01T10:00:00Z',
      last: '2026-01-01T10:04:00Z',
      server: 'db1',
    },
    firedAt: '2026-01-01T10:04:01Z',
    samples: [
      { at: '2026-01-01T10:00:00Z', user: 'alice', client: '10.0.0.5', outcome: 'failed' },
      { at: '2026-01-01T10:01:00Z', user: 'alice', client: '10.0.0.5', outcome: 'failed' },
    ],
    ...over,
  };
}

let rx: WebhookReceiver;
const dest = (over: Partial<WebhookDestination> = {}): WebhookDestination => ({
  type: 'webhook',
  name: 'ops-hook',
  url: `${rx.url}/services/${SECRET}`,
  format: 'json',
  headers: {},
  timeout_ms: 2000,
  ...over,
});

/** The DeliveryError `p` rejects with. */
async function failure(p: Promise<unknown>): Promise<DeliveryError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof DeliveryError, `expected a DeliveryError, got ${String(err)}`);
    assert.ok(!err.message.includes(SECRET) && !err.message.includes('secret') && !err.message.includes(rx.url), `the error shows the URL: ${err.message}`);
    return err;
  }
  assert.fail('expected the delivery to fail');
}

before(async () => {
  rx = await startWebhookReceiver();
});
after(async () => {
  await rx.close();
});

describe('webhook formats', () => {
  test('json: our own shape, with the idempotency headers and configured headers', async () => {
    rx.setMode('ok');
    const before = rx.received.length;
    await deliver(dest({ headers: { Authorization: 'Bearer tok-123', 'Idempotency-Key': 'not-this' } }), message());
    const req = rx.received[before]!;
    assert.equal(req.method, 'POST');
    assert.equal(req.path, `/services/${SECRET}`);
    assert.equal(req.headers['content-type'], 'application/json');
    assert.equal(req.headers['idempotency-key'], 'a1b2c3d4e5f60718');
    assert.equal(req.headers['x-auditship-alert-id'], 'a1b2c3d4e5f60718');
    assert.equal(req.headers['authorization'], 'Bearer tok-123');
    assert.deepEqual(req.body, {
      id: 'a1b2c3d4e5f60718',
      rule: 'failed-logins',
      title: 'auditship: failed-logins fired (7 events, user=alice)',
      text: '7 failed logins for alice from 10.0.0.5 within 5m on db1.',
      fields: message().fields,
      fired_at: '2026-01-01T10:04:01Z',
      samples: message().samples,
    });
  });

  test('slack: text plus header, section, fields and samples within Block Kit limits; mrkdwn escaped', async () => {
    const before = rx.received.length;
    const fields: Record<string, string | number | null> = {};
    for (let i = 0; i < 14; i++) fields[`f${i}`] = i === 0 ? '<!channel> & <https://x|y>' : i;
    await deliver(dest({ format: 'slack' }), message({ title: 'T'.repeat(400), text: 'x'.repeat(5000), fields }));
    const body = rx.received[before]!.body as { text: string; blocks: { type: string; text?: { type: string; text: string }; fields?: { text: string }[] }[] };
    assert.equal(rx.received[before]!.headers['idempotency-key'], 'a1b2c3d4e5f60718');
    assert.equal(typeof body.text, 'string');
    assert.equal(body.blocks[0]!.type, 'header');
    assert.equal(body.blocks[0]!.text!.type, 'plain_text');
    assert.ok(body.blocks[0]!.text!.text.length <= 150 && body.blocks[0]!.text!.text.endsWith('…(cut)'));
    assert.equal(body.blocks[1]!.type, 'section');
    assert.ok(body.blocks[1]!.text!.text.length <= 3000 && body.blocks[1]!.text!.text.endsWith('…(cut)'));
    const fieldSections = body.blocks.filter((b) => b.fields);
    assert.deepEqual(
      fieldSections.map((b) => b.fields!.length),
      [10, 4],
    );
    assert.equal(fieldSections[0]!.fields![0]!.text, '*f0*\n&lt;!channel&gt; &amp; &lt;https://x|y&gt;');
    assert.ok(body.blocks.some((b) => b.type === 'section' && b.text?.text.startsWith('Sample events:\nat=2026-01-01T10:00:00Z user=alice')));
    assert.equal(body.blocks.at(-1)!.type, 'context');
    assert.ok(body.blocks.length <= 50);
    for (const b of body.blocks) {
      if (b.type === 'section' && b.text) assert.ok(b.text.text.length >= 1 && b.text.text.length <= 3000);
      for (const f of b.fields ?? []) assert.ok(f.text.length <= 2000);
    }
  });

  test('teams: a message with one Adaptive Card 1.4 attachment', async () => {
    const before = rx.received.length;
    await deliver(dest({ format: 'teams' }), message());
    const body = rx.received[before]!.body as {
      type: string;
      attachments: {
        contentType: string;
        content: { type: string; version: string; body: { type: string; facts?: { title: string; value: string }[]; inlines?: { text: string }[] }[] };
      }[];
    };
    assert.equal(body.type, 'message');
    assert.equal(body.attachments.length, 1);
    const card = body.attachments[0]!;
    assert.equal(card.contentType, 'application/vnd.microsoft.card.adaptive');
    assert.equal(card.content.type, 'AdaptiveCard');
    assert.equal(card.content.version, '1.4');
    assert.equal(card.content.body[0]!.inlines![0]!.text, 'auditship: failed-logins fired (7 events, user=alice)');
    const facts = card.content.body.find((b) => b.type === 'FactSet')!.facts!;
    assert.deepEqual(facts[2], { title: 'matched', value: '7' });
    assert.equal(rx.received[before]!.headers['x-auditship-alert-id'], 'a1b2c3d4e5f60718');
  });

  test('a 1 MB text (and big samples) yields a payload of at most MAX_ALERT_BYTES in every format, marked as cut', async () => {
    const big = 'é😀'.repeat(350_000); // ~1 MB of UTF-16, multi-byte in UTF-8, surrogate pairs to split
    const samples = Array.from({ length: 10 }, (_, i) => ({ i, query: 'q'.repeat(5000) }));
    for (const format of ['json', 'slack', 'teams'] as const) {
      const before = rx.received.length;
      await deliver(dest({ format }), message({ text: big, samples }));
      const req = rx.received[before]!;
      assert.ok(req.raw.length <= MAX_ALERT_BYTES, `${format}: ${req.raw.length} bytes`);
      assert.ok(req.raw.length > MAX_ALERT_BYTES / 2, `${format}: ${req.raw.length} bytes is too little of the room`);
      const text = req.raw.toString('utf8');
      assert.ok(!text.includes('\ufffd'), `${format}: a surrogate pair was split`);
      assert.ok(text.includes('…(cut)'), format);
    }
    const json = rx.received.at(-3)!.body as { text: string; samples: Record<string, unknown>[] };
    assert.ok(json.text.length >= 2048 && json.text.endsWith('…(cut)'));
  });

  test('a repeat carries the same key, so the receiver keeps one', async () => {
    rx.setMode('ok');
    const msg = message({ id: 'repeat-0001' });
    await deliver(dest(), msg);
    await deliver(dest(), msg);
    assert.equal(rx.unique().filter((r) => r.idempotencyKey === 'repeat-0001').length, 1);
    assert.equal(rx.received.filter((r) => r.idempotencyKey === 'repeat-0001').length, 2);
  });
});

describe('webhook failures', () => {
  test('503 is retryable, 400 is not; neither shows the URL', async () => {
    rx.setMode('fail');
    const e503 = await failure(deliver(dest(), message()));
    assert.equal(e503.retryable, true);
    assert.equal(e503.status, 503);
    assert.equal(e503.message, 'webhook "ops-hook": HTTP 503 (unavailable)');
    rx.setMode('reject');
    const e400 = await failure(deliver(dest(), message()));
    assert.equal(e400.retryable, false);
    assert.equal(e400.message, 'webhook "ops-hook": HTTP 400 (invalid_payload)');
    rx.setMode('ok');
  });

  test('429 passes Retry-After on; flaky fails n times then delivers', async () => {
    rx.setMode('retry-after', 30);
    const e = await failure(deliver(dest(), message()));
    assert.equal(e.retryable, true);
    assert.equal(e.retryAfterMs, 30_000);
    rx.setMode('flaky', 2);
    const outcomes: string[] = [];
    for (let i = 0; i < 3; i++) {
      try {
        await deliver(dest(), message({ id: 'flaky-1' }));
        outcomes.push('ok');
      } catch (err) {
        outcomes.push((err as DeliveryError).retryable ? 'retry' : 'final');
      }
    }
    assert.deepEqual(outcomes, ['retry', 'retry', 'ok']);
    rx.setMode('ok');
  });

  test('a receiver that never answers ends at timeout_ms, retryable', async () => {
    rx.setMode('hang');
    const started = Date.now();
    const e = await failure(deliver(dest({ timeout_ms: 300 }), message()));
    const took = Date.now() - started;
    assert.equal(e.retryable, true);
    assert.equal(e.code, 'timeout');
    assert.equal(e.message, 'webhook "ops-hook": no answer within 300 ms');
    assert.ok(took >= 280 && took < 3000, `took ${took} ms`);
    rx.setMode('ok');
  });

  test("the caller's signal aborts a delivery in flight", async () => {
    rx.setMode('hang');
    const controller = new AbortController();
    const count = rx.received.length;
    const pending = deliver(dest({ timeout_ms: 10_000 }), message(), { signal: controller.signal });
    await rx.waitFor(count);
    const started = Date.now();
    controller.abort();
    const e = await failure(pending);
    assert.equal(e.code, 'aborted');
    assert.equal(e.retryable, true);
    assert.ok(Date.now() - started < 1000);
    const e2 = await failure(deliver(dest(), message(), { signal: AbortSignal.abort() }));
    assert.equal(e2.code, 'aborted');
    rx.setMode('ok');
  });

  test('connection refused is retryable; a bad header value is a config error that does not quote it', async () => {
    const closed = await startWebhookReceiver();
    const url = `${closed.url}/services/${SECRET}`;
    await closed.close();
    const e = await failure(deliver(dest({ url }), message()));
    assert.equal(e.retryable, true);
    assert.equal(e.code, 'connection');
    assert.match(e.message, /^webhook "ops-hook": connection failed \(ECONNREFUSED\)$/);
    const bad = await failure(deliver(dest({ headers: { Authorization: 'Bearer secret-token\r\nX: y' } }), message()));
    assert.equal(bad.retryable, false);
    assert.equal(bad.code, 'config');
    assert.ok(!bad.message.includes('secret-token'));
  });
});
