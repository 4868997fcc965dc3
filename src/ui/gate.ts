import { createHash, timingSafeEqual } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import { HttpError, SECURITY_HEADERS, send, UiServerError } from './http.js';

/**
 * Who may ask the UI anything, checked before any query runs: loopback by default, where the Host header must be a
 * loopback name (a DNS-rebinding guard); any other address needs a token (Bearer header, or `?token=` on a page
 * load, traded for an HttpOnly cookie that holds a digest of it) or Basic auth, compared in constant time. Only
 * GET and HEAD pass: the UI is read-only.
 */

/** Who may use the UI. Either form admits a request; with both, either one does. */
export interface UiAuth {
  /** A shared secret: `Authorization: Bearer TOKEN`, or `?token=TOKEN` on a page load (sets a cookie). */
  token?: string;
  /** HTTP Basic credentials. */
  basic?: { user: string; password: string };
}

const COOKIE = 'auditship_ui';

function sha256(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

/** Constant-time equality of two strings (of any lengths: their digests are compared). */
function secretEquals(given: string, expected: string): boolean {
  return timingSafeEqual(sha256(given), sha256(expected));
}

/** The cookie holds a digest of the token, not the token, so the browser's cookie store never has the secret. */
function cookieValue(token: string): string {
  return createHash('sha256').update(`auditship-ui-session\0${token}`, 'utf8').digest('base64url');
}

function isLoopbackAddress(addr: string): boolean {
  const a = addr.startsWith('::ffff:') ? addr.slice(7) : addr;
  if (isIP(a) === 4) return a.startsWith('127.');
  return a === '::1';
}

/** True when `host` is a loopback IP, or a name all of whose addresses are loopback. */
async function isLoopbackHost(host: string): Promise<boolean> {
  const h = host.replace(/^\[(.*)\]$/, '$1');
  if (isIP(h)) return isLoopbackAddress(h);
  try {
    const addrs = await lookup(h, { all: true });
    return addrs.length > 0 && addrs.every((a) => isLoopbackAddress(a.address));
  } catch {
    return false;
  }
}

/** The DNS-rebinding guard: a browser reaching a loopback server by name sends that name; only loopback names pass. */
function isLoopbackHostHeader(header: string | undefined): boolean {
  if (!header) return false;
  const m = /^(\[[0-9a-f:.]+\]|[^:]+)(:\d+)?$/i.exec(header.trim());
  if (!m) return false;
  const name = m[1]!.toLowerCase().replace(/^\[(.*)\]$/, '$1');
  if (name === 'localhost' || name.endsWith('.localhost')) return true;
  return isIP(name) !== 0 && isLoopbackAddress(name);
}

function parseCookies(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0) out.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  return out;
}

export interface Gate {
  /**
   * Passes a request on (false), answers it itself (true: the favicon, a `?token=` page load traded for a cookie),
   * or throws the HttpError it is answered with (a wrong Host, a method other than GET and HEAD, no credentials).
   */
  admit(req: IncomingMessage, res: ServerResponse, path: string, params: URLSearchParams): boolean;
}

/**
 * The gate of a server listening on `host` (or a unix socket, where the Host header is not checked). Rejects with
 * UiServerError `unsafe_listen` when a non-loopback address would serve audit data without authentication.
 */
export async function openGate(auth: UiAuth | undefined, where: { socketPath?: string | undefined; host: string }): Promise<Gate> {
  const token = auth?.token || undefined;
  const basic = auth?.basic && auth.basic.user !== '' ? auth.basic : undefined;
  const hasAuth = Boolean(token || basic);
  let guardHost = false;
  if (where.socketPath === undefined) {
    const loopback = await isLoopbackHost(where.host);
    if (!loopback && !hasAuth) {
      throw new UiServerError(
        'unsafe_listen',
        `refusing to serve audit data on ${where.host}, which is not a loopback address, without authentication; set a token (--token or AUDITSHIP_UI_TOKEN) or basic auth (--basic-auth or AUDITSHIP_UI_BASIC_AUTH), or listen on 127.0.0.1`,
      );
    }
    guardHost = loopback && !hasAuth;
  }

  const authenticate = (req: IncomingMessage): boolean => {
    if (!hasAuth) return true;
    const header = req.headers.authorization ?? '';
    const space = header.indexOf(' ');
    const scheme = space > 0 ? header.slice(0, space).toLowerCase() : '';
    const credentials = space > 0 ? header.slice(space + 1).trim() : '';
    if (token && scheme === 'bearer' && secretEquals(credentials, token)) return true;
    if (basic && scheme === 'basic') {
      const decoded = Buffer.from(credentials, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon >= 0) {
        // Both compared, whatever the first gives: the time taken says nothing about which was wrong.
        const userOk = secretEquals(decoded.slice(0, colon), basic.user);
        const passwordOk = secretEquals(decoded.slice(colon + 1), basic.password);
        if (userOk && passwordOk) return true;
      }
    }
    if (token) {
      const cookie = parseCookies(req.headers.cookie).get(COOKIE);
      if (cookie !== undefined && secretEquals(cookie, cookieValue(token))) return true;
    }
    return false;
  };

  const unauthorized = (api: boolean): HttpError =>
    new HttpError(
      401,
      api
        ? 'authentication required'
        : `authentication required: open this address with ?token=… (the token auditship ui was started with)${basic ? ', or sign in with the user and password' : ''}`,
      { 'WWW-Authenticate': basic ? 'Basic realm="auditship", charset="UTF-8"' : 'Bearer realm="auditship"' },
    );

  return {
    admit(req, res, path, params) {
      const api = path.startsWith('/api/');
      if (guardHost && !isLoopbackHostHeader(req.headers.host)) {
        throw new HttpError(403, 'this server answers only to a loopback host name (localhost, 127.0.0.1, [::1]); start it with --token to serve other names');
      }
      if (req.method !== 'GET' && req.method !== 'HEAD') throw new HttpError(405, 'read-only: only GET and HEAD', { Allow: 'GET, HEAD' });
      // Browsers ask for it on pages without an icon (the 401 page): nothing, rather than a 404 or a 401.
      if (path === '/favicon.ico') {
        send(req, res, 204, 'image/x-icon', '');
        return true;
      }
      // A page load with ?token=…: trade it for a cookie and drop it from the address bar (and the history).
      if (!api && token && params.has('token')) {
        if (!secretEquals(params.get('token')!, token)) throw unauthorized(false);
        params.delete('token');
        const rest = params.toString();
        res.writeHead(303, {
          ...SECURITY_HEADERS,
          // One leading slash: `//host` would be a redirect to another site.
          Location: `/${path.replace(/^\/+/, '')}${rest ? `?${rest}` : ''}`,
          'Set-Cookie': `${COOKIE}=${cookieValue(token)}; Path=/; HttpOnly; SameSite=Strict`,
          'Cache-Control': 'no-store',
          'Content-Length': '0',
        });
        res.end();
        return true;
      }
      if (!authenticate(req)) throw unauthorized(api);
      return false;
    },
  };
}
