import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { DeliveryError, MAX_ALERT_BYTES, deliver, type AlertMessage, type SmtpDestination } from '../../src/alerts/deliver/index.js';
import { startSmtpReceiver, type SmtpReceiver } from '../alert-receivers/smtp-receiver.js';

/**
 * The SMTP transport against smtp-server: STARTTLS (verified against the receiver's own certificate) and AUTH
 * deliver one message with the alert's Message-ID; STARTTLS required but not offered sends nothing; a wrong
 * password and a 5xx are final, a 451 and a silent server are worth a retry; the password never shows.
 */

function message(over: Partial<AlertMessage> = {}): AlertMessage {
  return {
    id: 'c0ffee0123456789',
    rule: 'ddl-outside-window',
    title: 'auditship: ddl-outside-window fired (1 event,\r\nBcc: evil@example.com)',
    text: 'DROP TABLE seen on db1 at 03:12, outside the change window.\nLine two: crème brûlée 😀',
    fields: { rule: 'ddl-outside-window', matched: 1, server: 'db1', key: null },
    firedAt: '2026-01-01T03:12:05Z',
    samples: [{ at: '2026-01-01T03:12:04Z', user: 'bob', command: 'DROP TABLE' }],
    ...over,
  };
}

let smtp: SmtpReceiver;

function dest(rx: SmtpReceiver, over: Partial<SmtpDestination> = {}): SmtpDestination {
  return {
    type: 'smtp',
    name: 'mail',
    host: rx.host,
    port: rx.port,
    security: 'starttls',
    username: rx.user,
    password: rx.password,
    from: 'auditship <alerts@example.com>',
    to: ['dba@example.com', 'oncall@example.com'],
    timeout_ms: 3000,
    tls_reject_unauthorized: true,
    ca_file: rx.caFile,
    ...over,
  };
}

async function failure(p: Promise<unknown>, secrets: string[] = []): Promise<DeliveryError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof DeliveryError, `expected a DeliveryError, got ${String(err)}`);
    for (const s of [smtp.password, Buffer.from(`\0${smtp.user}\0${smtp.password}`).toString('base64'), ...secrets]) {
      assert.ok(!err.message.includes(s), `the error shows a secret: ${err.message}`);
    }
    assert.ok(!err.message.includes('DROP TABLE seen'), 'the error shows the body');
    return err;
  }
  assert.fail('expected the delivery to fail');
}

before(async () => {
  smtp = await startSmtpReceiver();
});
after(async () => {
  await smtp.close();
});

describe('smtp delivery', () => {
  test('STARTTLS + AUTH delivers one plain-text message with Message-ID <id@auditship> and a one-line subject', async () => {
    smtp.setMode('ok');
    await deliver(dest(smtp), message());
    const mail = smtp.received.at(-1)!;
    assert.equal(mail.secure, true);
    assert.equal(mail.user, 'alerts');
    assert.equal(mail.from, 'alerts@example.com');
    assert.deepEqual(mail.to, ['dba@example.com', 'oncall@example.com']);
    assert.equal(mail.messageId, '<c0ffee0123456789@auditship>');
    assert.equal(mail.headers['x-auditship-alert-id'], 'c0ffee0123456789');
    assert.equal(mail.subject, 'auditship: ddl-outside-window fired (1 event, Bcc: evil@example.com)');
    assert.equal(mail.headers['bcc'], undefined);
    assert.match(mail.headers['content-type'] ?? '', /^text\/plain/);
    assert.ok(mail.text.startsWith('DROP TABLE seen on db1 at 03:12, outside the change window.\nLine two: crème brûlée 😀\n'));
    assert.ok(mail.text.includes('\nmatched: 1\n'));
    assert.ok(mail.text.includes('at=2026-01-01T03:12:04Z user=bob command="DROP TABLE"'));
  });

  test('a repeat has the same Message-ID; the receiver keeps one', async () => {
    await deliver(dest(smtp), message({ id: 'again-42' }));
    await deliver(dest(smtp), message({ id: 'again-42' }));
    assert.equal(smtp.received.filter((m) => m.messageId === '<again-42@auditship>').length, 2);
    assert.equal(smtp.unique().filter((m) => m.messageId === '<again-42@auditship>').length, 1);
  });

  test('the subject is cut to 200 characters and the body to MAX_ALERT_BYTES', async () => {
    await deliver(dest(smtp), message({ title: 'S'.repeat(500), text: 'ü'.repeat(1_000_000) }));
    const mail = smtp.received.at(-1)!;
    assert.equal(mail.subject.length, 200);
    assert.ok(mail.subject.endsWith('…(cut)'));
    assert.ok(Buffer.byteLength(mail.text, 'utf8') <= MAX_ALERT_BYTES, `${Buffer.byteLength(mail.text, 'utf8')} bytes`);
    assert.ok(mail.text.includes('…(cut)'));
  });

  test('security=starttls against a server without STARTTLS refuses and sends nothing', async () => {
    const plain = await startSmtpReceiver({ tls: 'none' });
    try {
      const e = await failure(deliver(dest(plain), message()));
      assert.equal(e.retryable, false);
      assert.equal(e.code, 'tls');
      assert.match(e.message, /^smtp "mail": 5\d\d .*\(at STARTTLS\)$/);
      assert.equal(plain.received.length, 0);
      assert.equal(plain.auths.length, 0, 'credentials were sent in clear');
      // The same server takes mail when the destination says none (an internal relay).
      await deliver(dest(plain, { security: 'none' }), message());
      assert.equal(plain.received.length, 1);
      assert.equal(plain.received[0]!.secure, false);
    } finally {
      await plain.close();
    }
  });

  test('implicit TLS (security=tls) delivers', async () => {
    const implicit = await startSmtpReceiver({ tls: 'implicit' });
    try {
      await deliver(dest(implicit, { security: 'tls' }), message());
      assert.equal(implicit.received.length, 1);
      assert.equal(implicit.received[0]!.secure, true);
    } finally {
      await implicit.close();
    }
  });

  test('an untrusted certificate is a final TLS error', async () => {
    const { ca_file: _ca, ...rest } = dest(smtp);
    const e = await failure(deliver(rest, message()));
    assert.equal(e.retryable, false);
    assert.equal(e.code, 'tls');
    assert.match(e.message, /^smtp "mail": TLS could not be set up: .*certificate/);
  });

  test('a wrong password is final (535) and not shown', async () => {
    const wrong = 'Wrong-Pass-9876';
    const e = await failure(deliver(dest(smtp, { password: wrong }), message()), [wrong, Buffer.from(`\0alerts\0${wrong}`).toString('base64')]);
    assert.equal(e.retryable, false);
    assert.equal(e.status, 535);
    assert.match(e.message, /^smtp "mail": 535 .*Authentication failed.*\(at AUTH\)$/);
  });

  test('451 after DATA is retryable, 550 is final', async () => {
    smtp.setMode('tempfail');
    const e451 = await failure(deliver(dest(smtp), message()));
    assert.equal(e451.retryable, true);
    assert.equal(e451.status, 451);
    assert.match(e451.message, /^smtp "mail": 451 /);
    smtp.setMode('reject');
    const e550 = await failure(deliver(dest(smtp), message()));
    assert.equal(e550.retryable, false);
    assert.equal(e550.status, 550);
    smtp.setMode('ok');
  });

  test('a server that never answers after DATA ends at timeout_ms, retryable', async () => {
    smtp.setMode('hang');
    const started = Date.now();
    const e = await failure(deliver(dest(smtp, { timeout_ms: 500 }), message()));
    const took = Date.now() - started;
    assert.equal(e.retryable, true);
    assert.equal(e.code, 'timeout');
    assert.ok(took >= 450 && took < 3000, `took ${took} ms`);
    smtp.setMode('ok');
  });

  test('connection refused is retryable; an abort ends a delivery in flight', async () => {
    const gone = await startSmtpReceiver();
    const port = gone.port;
    await gone.close();
    const e = await failure(deliver(dest(smtp, { port }), message()));
    assert.equal(e.retryable, true);
    assert.equal(e.code, 'connection');

    smtp.setMode('hang');
    const controller = new AbortController();
    const pending = deliver(dest(smtp, { timeout_ms: 10_000 }), message(), { signal: controller.signal });
    setTimeout(() => controller.abort(), 200);
    const aborted = await failure(pending);
    assert.equal(aborted.code, 'aborted');
    smtp.setMode('ok');
  });
});
