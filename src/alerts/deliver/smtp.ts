/**
 * The SMTP transport: one plain-text e-mail per alert, through nodemailer's SMTP client (SMTPConnection) and
 * MIME composer. We drive the connection ourselves rather than through nodemailer's transport so that one
 * deadline (timeout_ms) and the caller's AbortSignal can close it at any step, and so that each failure keeps
 * its SMTP reply code: 4xx replies, connection failures and timeouts are worth a retry, 5xx replies are final.
 *
 * security: starttls refuses to go on in clear (nodemailer's requireTLS: the STARTTLS command is sent even
 * when not offered, and its failure ends the session before AUTH or MAIL); tls is implicit TLS (port 465);
 * none never upgrades. The Message-ID is the alert's id, so a repeat after a lost reply is recognisable.
 *
 * Error messages name the destination and quote the server's reply line with the password and its AUTH
 * encodings removed; the message body never appears in them.
 */
import { readFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import addressparser from 'nodemailer/lib/addressparser';
import MailComposer from 'nodemailer/lib/mail-composer';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { emailSubject, oneLine, renderEmailBody } from './payload.js';
import { DeliveryError, type AlertMessage, type SmtpDestination } from './types.js';

/** `<id@auditship>`; an id with characters a Message-ID cannot hold is replaced by its SHA-256. */
export function messageIdOf(id: string): string {
  const local = /^[A-Za-z0-9._+-]{1,200}$/.test(id) ? id : createHash('sha256').update(id).digest('hex');
  return `<${local}@auditship>`;
}

/** The bare addresses of `list` ("Name <a@b>" gives a@b), for the envelope. */
export function envelopeAddresses(list: readonly string[]): string[] {
  return list.flatMap((item) => addressparser(item, { flatten: true }).flatMap((a) => (a.address ? [a.address] : [])));
}

/** The RFC 5322 message (headers and a quoted-printable text body). */
export async function composeAlertEmail(dest: SmtpDestination, msg: AlertMessage): Promise<Buffer> {
  const composer = new MailComposer({
    from: dest.from,
    to: dest.to,
    subject: emailSubject(msg),
    text: renderEmailBody(msg),
    textEncoding: 'quoted-printable',
    messageId: messageIdOf(msg.id),
    date: new Date(),
    xMailer: false,
    headers: {
      'X-Auditship-Alert-Id': oneLine(msg.id),
      // RFC 3834: machine-generated, so that vacation responders stay quiet.
      'Auto-Submitted': 'auto-generated',
    },
  });
  return new Promise((resolve, reject) => composer.compile().build((err, message) => (err ? reject(err) : resolve(message))));
}

interface SmtpFailure {
  code?: string;
  /** The system or TLS error code under nodemailer's ESOCKET/ECONNECTION. */
  originalCode?: string;
  responseCode?: number;
  response?: string;
  command?: string;
  message?: string;
}

/** The server's reply (or the client's words), one line, with any form of the credentials removed. */
function sanitized(text: string, dest: SmtpDestination): string {
  let s = oneLine(text.split(/\r?\n/)[0] ?? '');
  const secrets: string[] = [];
  if (dest.password) {
    const user = dest.username ?? '';
    secrets.push(
      dest.password,
      Buffer.from(dest.password).toString('base64'),
      Buffer.from(`\0${user}\0${dest.password}`).toString('base64'),
      Buffer.from(`${user}\0${user}\0${dest.password}`).toString('base64'),
    );
  }
  for (const secret of secrets) if (secret.length >= 2) s = s.split(secret).join('***');
  return s.length > 160 ? `${s.slice(0, 160)}…` : s;
}

const TLS_FAILURE = /CERT|SELF_SIGNED|ISSUER|LEAF_SIGNATURE|HOSTNAME_MISMATCH|^ERR_TLS_|^ERR_SSL_/;

/** A DeliveryError for a failure of nodemailer's SMTP client. */
export function smtpError(err: unknown, dest: SmtpDestination): DeliveryError {
  const label = `smtp ${JSON.stringify(dest.name)}`;
  const e = (err ?? {}) as SmtpFailure;
  const at = e.command && e.command !== 'CONN' ? ` (at ${e.command.split(' ')[0]})` : '';
  if (typeof e.responseCode === 'number' && e.responseCode >= 400) {
    const reply = e.response ? sanitized(e.response, dest) : String(e.responseCode);
    const retryable = e.responseCode < 500;
    return new DeliveryError(`${label}: ${reply}${at}`, retryable, { code: e.code === 'ETLS' ? 'tls' : 'rejected', status: e.responseCode });
  }
  const words = sanitized(e.message ?? String(err), dest);
  // Certificate and handshake failures (an untrusted or expired certificate, a host name it does not name,
  // TLS spoken to a plain port) come as socket errors; they need the operator, not a retry.
  if (TLS_FAILURE.test(e.originalCode ?? '') || TLS_FAILURE.test(e.code ?? '')) {
    return new DeliveryError(`${label}: TLS could not be set up: ${words}`, false, { code: 'tls' });
  }
  switch (e.code) {
    case 'ETIMEDOUT':
      return new DeliveryError(`${label}: no answer within ${dest.timeout_ms} ms${at}`, true, { code: 'timeout' });
    case 'ETLS':
      return new DeliveryError(`${label}: TLS could not be set up: ${words}`, false, { code: 'tls' });
    case 'EAUTH':
      return new DeliveryError(`${label}: authentication not possible: ${words}`, false, { code: 'config' });
    case 'EENVELOPE':
    case 'EMESSAGE':
      return new DeliveryError(`${label}: ${words}${at}`, false, { code: 'rejected' });
    default:
      return new DeliveryError(`${label}: connection failed: ${words}`, true, { code: 'connection' });
  }
}

/** Sends `msg` as an e-mail; resolves once the server accepted it (250 after DATA). */
export async function deliverSmtp(dest: SmtpDestination, msg: AlertMessage, opts: { signal?: AbortSignal } = {}): Promise<void> {
  const label = `smtp ${JSON.stringify(dest.name)}`;
  if (!dest.to || dest.to.length === 0) throw new DeliveryError(`${label}: no recipient (to is empty)`, false, { code: 'config' });
  let ca: Buffer | undefined;
  if (dest.ca_file) {
    try {
      ca = await readFile(dest.ca_file);
    } catch (err) {
      throw new DeliveryError(`${label}: cannot read ca_file ${dest.ca_file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`, false, { code: 'config' });
    }
  }
  const sender = envelopeAddresses([dest.from])[0];
  const recipients = envelopeAddresses(dest.to);
  if (!sender) throw new DeliveryError(`${label}: from holds no e-mail address`, false, { code: 'config' });
  if (recipients.length === 0) throw new DeliveryError(`${label}: to holds no e-mail address`, false, { code: 'config' });
  const message = await composeAlertEmail(dest, msg);
  if (opts.signal?.aborted) throw new DeliveryError(`${label}: aborted before sending`, true, { code: 'aborted' });

  const conn = new SMTPConnection({
    host: dest.host,
    port: dest.port,
    secure: dest.security === 'tls',
    requireTLS: dest.security === 'starttls',
    ignoreTLS: dest.security === 'none',
    connectionTimeout: dest.timeout_ms,
    greetingTimeout: dest.timeout_ms,
    socketTimeout: dest.timeout_ms,
    logger: false,
    tls: { rejectUnauthorized: dest.tls_reject_unauthorized, minVersion: 'TLSv1.2', ...(ca ? { ca } : {}) },
  });

  return new Promise<void>((resolve, reject) => {
    let settled = false;
    const finish = (err?: DeliveryError) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      if (err) {
        conn.close();
        reject(err);
      } else {
        conn.quit();
        resolve();
      }
    };
    const timer = setTimeout(() => finish(new DeliveryError(`${label}: no answer within ${dest.timeout_ms} ms`, true, { code: 'timeout' })), dest.timeout_ms);
    const onAbort = () => finish(new DeliveryError(`${label}: aborted`, true, { code: 'aborted' }));
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    // Every failure also reaches the callback of the step in progress; this listener keeps an 'error' event
    // without one (a socket error between steps) from being thrown.
    conn.on('error', (err) => finish(smtpError(err, dest)));

    const send = () =>
      conn.send({ from: sender, to: recipients }, message, (err) => {
        if (err) finish(smtpError(err, dest));
        else finish();
      });
    conn.connect((err) => {
      if (err) return finish(smtpError(err, dest));
      if (settled) return;
      if (dest.username === undefined || dest.username === '') return send();
      conn.login({ user: dest.username, pass: dest.password ?? '' }, (loginErr) => {
        if (loginErr) return finish(smtpError(loginErr, dest));
        if (!settled) send();
      });
    });
  });
}
