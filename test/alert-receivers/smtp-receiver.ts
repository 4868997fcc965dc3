/**
 * A local SMTP receiver for tests, on npm's smtp-server: 127.0.0.1, port 0, STARTTLS with a self-signed
 * certificate made at start (openssl; its PEM is written to a temp file for ca_file), AUTH PLAIN/LOGIN for one
 * test user (AUTH only after TLS, as a real relay wants), and a record of every message accepted or refused
 * (envelope, headers, decoded text body).
 *
 *   const smtp = await startSmtpReceiver();             // STARTTLS offered, AUTH required
 *   const smtp = await startSmtpReceiver({ tls: 'none' });      // no STARTTLS at all (502 to the command)
 *   const smtp = await startSmtpReceiver({ tls: 'implicit' });  // TLS from the first byte (like port 465)
 *   smtp.setMode('tempfail');                           // 451 after DATA
 *
 * Modes: ok (250), tempfail (451 after DATA), reject (550 after DATA), hang (reads the message, never answers;
 * close() ends the session).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SMTPServer } from 'smtp-server';

export type SmtpMode = 'ok' | 'tempfail' | 'reject' | 'hang';

export interface ReceivedMail {
  from: string;
  to: string[];
  /** The authenticated user, if any. */
  user?: string;
  /** Whether the session was encrypted (STARTTLS or implicit TLS). */
  secure: boolean;
  /** Header names in lower case; values unfolded and decoded (RFC 2047). */
  headers: Record<string, string>;
  messageId: string;
  subject: string;
  /** The text body, decoded (quoted-printable or base64). */
  text: string;
  raw: Buffer;
  /** The reply code given after DATA (undefined while hanging). */
  status?: number;
}

export interface SmtpReceiver {
  host: string;
  port: number;
  user: string;
  password: string;
  /** A PEM file holding the receiver's self-signed certificate (for ca_file). */
  caFile: string;
  received: ReceivedMail[];
  /** Accepted messages, first of each Message-ID. */
  unique(): ReceivedMail[];
  /** AUTH attempts (user names only) and their outcome. */
  auths: { user: string; ok: boolean }[];
  setMode(mode: SmtpMode): void;
  close(): Promise<void>;
}

export interface SmtpReceiverOptions {
  /** starttls (default): offered and required before AUTH; implicit: TLS from the first byte; none: no TLS. */
  tls?: 'starttls' | 'implicit' | 'none';
  /** Require AUTH before MAIL (default true). */
  auth?: boolean;
  mode?: SmtpMode;
}

/** A self-signed certificate for 127.0.0.1 and localhost (openssl, a few milliseconds with an EC key). */
export function selfSignedCertificate(): { key: Buffer; cert: Buffer; dir: string; certFile: string } {
  const dir = mkdtempSync(join(tmpdir(), 'auditship-smtp-'));
  const keyFile = join(dir, 'key.pem');
  const certFile = join(dir, 'cert.pem');
  try {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        '2',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=DNS:localhost,IP:127.0.0.1',
        '-keyout',
        keyFile,
        '-out',
        certFile,
      ],
      { stdio: 'pipe' },
    );
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    // Node's crypto makes keys but not X.509 certificates, so there is no fallback without openssl.
    throw new Error(`smtp receiver: openssl could not make a test certificate (${(err as Error).message.split('\n')[0]}); install openssl`);
  }
  return { key: readFileSync(keyFile), cert: readFileSync(certFile), dir, certFile };
}

/** RFC 2047 encoded words (=?UTF-8?B?…?= / ?Q?) in a header value. */
function decodeWords(value: string): string {
  return value.replace(/=\?([^?]+)\?([BbQq])\?([^?]*)\?=(\s+(?==\?))?/g, (_m, _charset: string, enc: string, data: string) => {
    if (enc.toUpperCase() === 'B') return Buffer.from(data, 'base64').toString('utf8');
    const bytes = data.replace(/_/g, ' ').replace(/=([0-9A-Fa-f]{2})/g, (_h, hex: string) => String.fromCharCode(parseInt(hex, 16)));
    return Buffer.from(bytes, 'latin1').toString('utf8');
  });
}

function decodeQuotedPrintable(body: string): string {
  const bytes = body.replace(/=\r?\n/g, '').replace(/=([0-9A-Fa-f]{2})/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16)));
  return Buffer.from(bytes, 'latin1').toString('utf8');
}

/** Headers and text of a single-part message (what the alert transport sends). */
export function parseMail(raw: Buffer): { headers: Record<string, string>; text: string } {
  const s = raw.toString('latin1');
  const end = s.search(/\r?\n\r?\n/);
  const head = end < 0 ? s : s.slice(0, end);
  const bodyRaw = end < 0 ? '' : s.slice(end).replace(/^\r?\n\r?\n/, '');
  const headers: Record<string, string> = {};
  for (const line of head.replace(/\r?\n[ \t]+/g, ' ').split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    headers[line.slice(0, colon).trim().toLowerCase()] = decodeWords(Buffer.from(line.slice(colon + 1).trim(), 'latin1').toString('utf8'));
  }
  const cte = (headers['content-transfer-encoding'] ?? '7bit').toLowerCase();
  const text =
    cte === 'quoted-printable'
      ? decodeQuotedPrintable(bodyRaw)
      : cte === 'base64'
        ? Buffer.from(bodyRaw.replace(/\s+/g, ''), 'base64').toString('utf8')
        : Buffer.from(bodyRaw, 'latin1').toString('utf8');
  return { headers, text: text.replace(/\r\n/g, '\n') };
}

export async function startSmtpReceiver(options: SmtpReceiverOptions = {}): Promise<SmtpReceiver> {
  const tls = options.tls ?? 'starttls';
  const requireAuth = options.auth ?? true;
  let mode: SmtpMode = options.mode ?? 'ok';
  const user = 'alerts';
  const password = 'test-Password-1';
  const received: ReceivedMail[] = [];
  const auths: { user: string; ok: boolean }[] = [];
  const cert = selfSignedCertificate();

  const server = new SMTPServer({
    secure: tls === 'implicit',
    key: cert.key,
    cert: cert.cert,
    disabledCommands: tls === 'none' ? ['STARTTLS'] : [],
    // Without TLS there is no other way to AUTH; with it, AUTH waits for TLS.
    allowInsecureAuth: tls === 'none',
    authMethods: ['PLAIN', 'LOGIN'],
    authOptional: !requireAuth,
    closeTimeout: 100,
    logger: false,
    onAuth(auth, _session, callback) {
      const ok = auth.username === user && auth.password === password;
      auths.push({ user: auth.username ?? '', ok });
      if (ok) callback(null, { user: auth.username });
      else callback(Object.assign(new Error('5.7.8 Authentication failed'), { responseCode: 535 }));
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const raw = Buffer.concat(chunks);
        const { headers, text } = parseMail(raw);
        const mail: ReceivedMail = {
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          secure: session.secure,
          headers,
          messageId: headers['message-id'] ?? '',
          subject: headers['subject'] ?? '',
          text,
          raw,
        };
        if (typeof session.user === 'string') mail.user = session.user;
        received.push(mail);
        switch (mode) {
          case 'ok':
            mail.status = 250;
            return callback(null, 'queued');
          case 'tempfail':
            mail.status = 451;
            return callback(Object.assign(new Error('4.3.0 Temporary failure, try again later'), { responseCode: 451 }));
          case 'reject':
            mail.status = 550;
            return callback(Object.assign(new Error('5.7.1 Message rejected'), { responseCode: 550 }));
          case 'hang':
            return; // never answered; close() ends the session
        }
      });
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', () => {}); // a client dropping a hung session is not the test's failure
  const port = (server.server.address() as AddressInfo).port;

  return {
    host: '127.0.0.1',
    port,
    user,
    password,
    caFile: cert.certFile,
    received,
    auths,
    unique() {
      const seen = new Set<string>();
      return received.filter((m) => {
        if (m.status !== 250 || seen.has(m.messageId)) return false;
        seen.add(m.messageId);
        return true;
      });
    },
    setMode(m) {
      mode = m;
    },
    close() {
      return new Promise<void>((resolve) =>
        server.close(() => {
          rmSync(cert.dir, { recursive: true, force: true });
          resolve();
        }),
      );
    },
  };
}
