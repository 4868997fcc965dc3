import { createHash, timingSafeEqual } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect as netConnect, isIP } from 'node:net';
import type { Logger } from '../core/log.js';
import { PROMETHEUS_CONTENT_TYPE } from '../core/metrics.js';
import { parseFilter, parseTime, QueryInputError, type AuditQueries, type EventFilter } from '../query/index.js';

/** What the UI asks of the query layer: every AuditQueries method (a fake in tests, the real class in use). */
export type UiQueries = Pick<AuditQueries, 'facets' | 'listEvents' | 'getEvent' | 'eventsOverTime' | 'topUsers' | 'topObjects' | 'logonFailures'>;

/** Who may use the UI. Either form admits a request; with both, either one does. */
export interface UiAuth {
  /** A shared secret: `Authorization: Bearer TOKEN`, or `?token=TOKEN` on a page load (sets a cookie). */
  token?: string;
  /** HTTP Basic credentials. */
  basic?: { user: string; password: string };
}

export interface UiServerOptions {
  queries: UiQueries;
  /** Address to listen on (default 127.0.0.1). A non-loopback address needs `auth`. */
  host?: string;
  /** TCP port (default 8080; 0 = any free port). */
  port?: number;
  /** Listen on this unix socket (mode 0600) instead of TCP; auth is optional there and the Host header is not checked. */
  socketPath?: string;
  auth?: UiAuth;
  /** Access log (one line per request, never the query string) and query failures. */
  log: Logger;
  /** Shown in the page header and title (e.g. the database file). */
  title?: string;
  /**
   * Serves `/api/report?since=&until=[&server=]` (the data of `auditship report`), so that the report can be
   * made while the daemon holds the database. Absent: 404.
   */
  report?: (opts: { since: number; until: number; server?: string[] }) => Promise<unknown>;
  /** Serves `GET /metrics` (the Prometheus text this returns), behind the same authentication as the rest. Absent: 404. */
  metrics?: () => string;
}

export interface UiServer {
  /** `http://HOST:PORT/` (the port actually bound), or `unix:PATH`. */
  url: string;
  close(): Promise<void>;
}

/** Why the UI server did not start: `unsafe_listen` (a usage error) or a failure to bind. */
export class UiServerError extends Error {
  constructor(
    readonly code: 'unsafe_listen' | 'address_in_use' | 'listen_failed',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'UiServerError';
  }
}

/** Folder of index.html, app.js, style.css: the same from src/ui/server.ts (tsx) and dist/ui/server.js. */
const STATIC_DIR = new URL('../../src/ui/static/', import.meta.url);
const STATIC_TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  svg: 'image/svg+xml',
};
/** A static file name: no slash, no dot but the extension's, so nothing outside STATIC_DIR can be named. */
const STATIC_NAME = /^\/([a-z0-9][a-z0-9-]*\.(html|js|css|svg))$/;

const SECURITY_HEADERS: Record<string, string> = {
  'Content-Security-Policy': "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

const COOKIE = 'auditship_ui';
const FILTER_KEYS = ['from', 'to', 'server', 'user', 'database', 'class', 'command', 'object', 'outcome', 'q'];

/** A request the client got wrong: answered with this status and message. */
class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

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

/** One line of a DuckDB (or other) error for the server log, with quoted literals — possibly bound values — masked. */
function loggableError(err: unknown): string {
  const msg = String((err as Error)?.message ?? err).split('\n')[0]!;
  return msg
    .replace(/'(?:[^']|'')*'/g, "'…'")
    .replace(/"(?:[^"]|"")*"/g, '"…"')
    .slice(0, 300);
}

function intParam(params: URLSearchParams, name: string, def: number, min: number, max: number): number {
  const raw = params.get(name);
  if (raw === null) return def;
  if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) throw new HttpError(400, `${name} must be an integer from ${min} to ${max}`);
  return Number(raw);
}

function checkKeys(params: URLSearchParams, allowed: string[]): void {
  for (const key of new Set(params.keys())) {
    if (!allowed.includes(key)) throw new HttpError(400, `unknown parameter "${key.slice(0, 40)}"; this endpoint takes ${allowed.join(', ') || 'none'}`);
  }
}

function filterOf(params: URLSearchParams, extra: string[]): EventFilter {
  checkKeys(params, [...FILTER_KEYS, ...extra]);
  const only = new URLSearchParams();
  for (const [k, v] of params) if (FILTER_KEYS.includes(k)) only.append(k, v);
  try {
    return parseFilter(only);
  } catch (err) {
    throw new HttpError(400, String((err as Error).message ?? err).split('\n')[0]!);
  }
}

type ApiHandler = (q: UiQueries, params: URLSearchParams) => Promise<unknown>;

const API: Record<string, ApiHandler> = {
  '/api/facets': async (q, p) => {
    checkKeys(p, []);
    return q.facets();
  },
  '/api/events': async (q, p) => {
    const filter = filterOf(p, ['limit', 'after']);
    const limit = intParam(p, 'limit', 50, 1, 500);
    const after = p.get('after');
    if (after !== null && (after === '' || after.length > 1000)) throw new HttpError(400, 'after must be a cursor from a previous page (`next`)');
    return q.listEvents(filter, { limit, after });
  },
  '/api/event': async (q, p) => {
    checkKeys(p, ['id']);
    const id = p.get('id');
    if (!id || id.length > 1000) throw new HttpError(400, 'id is required (an event id from /api/events)');
    const event = await q.getEvent(id);
    if (!event) throw new HttpError(404, 'no event with this id');
    return event;
  },
  '/api/charts/timeline': async (q, p) => q.eventsOverTime(filterOf(p, [])),
  '/api/charts/top-users': async (q, p) => {
    const f = filterOf(p, ['n']);
    return q.topUsers(f, intParam(p, 'n', 10, 1, 100));
  },
  '/api/charts/top-objects': async (q, p) => {
    const f = filterOf(p, ['n']);
    return q.topObjects(f, intParam(p, 'n', 10, 1, 100));
  },
  '/api/charts/logon-failures': async (q, p) => q.logonFailures(filterOf(p, [])),
};

/** `/api/report`: since and until (epoch ms or ISO), servers. */
function reportHandler(report: NonNullable<UiServerOptions['report']>): ApiHandler {
  return async (_q, p) => {
    checkKeys(p, ['since', 'until', 'server']);
    const bound = (name: string) => {
      const v = p.get(name);
      if (!v) throw new HttpError(400, `${name} is required`);
      try {
        return parseTime(v, name);
      } catch (err) {
        throw new HttpError(400, (err as Error).message);
      }
    };
    const since = bound('since'),
      until = bound('until');
    if (since >= until) throw new HttpError(400, 'since must be earlier than until');
    const server = p.getAll('server');
    return report({ since, until, ...(server.length ? { server } : {}) });
  };
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * Starts the UI's HTTP server: the static page and its read-only JSON API over `queries`. Resolves once it
 * listens; rejects with UiServerError when the address is unsafe (non-loopback without auth) or taken.
 */
export async function startUiServer(opts: UiServerOptions): Promise<UiServer> {
  const { queries, log } = opts;
  const title = opts.title ?? 'auditship';
  const token = opts.auth?.token || undefined;
  const basic = opts.auth?.basic && opts.auth.basic.user !== '' ? opts.auth.basic : undefined;
  const hasAuth = Boolean(token || basic);
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port ?? 8080;
  let guardHost = false;
  if (opts.socketPath === undefined) {
    const loopback = await isLoopbackHost(host);
    if (!loopback && !hasAuth) {
      throw new UiServerError(
        'unsafe_listen',
        `refusing to serve audit data on ${host}, which is not a loopback address, without authentication; set a token (--token or AUDITSHIP_UI_TOKEN) or basic auth (--basic-auth or AUDITSHIP_UI_BASIC_AUTH), or listen on 127.0.0.1`,
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

  const send = (req: IncomingMessage, res: ServerResponse, status: number, type: string, body: string | Buffer, headers: Record<string, string> = {}) => {
    const buf = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
    res.writeHead(status, { ...SECURITY_HEADERS, 'Content-Type': type, 'Content-Length': String(buf.length), ...headers });
    res.end(req.method === 'HEAD' ? undefined : buf);
  };

  const serveStatic = async (req: IncomingMessage, res: ServerResponse, path: string) => {
    const m = STATIC_NAME.exec(path === '/' ? '/index.html' : path);
    if (!m) throw new HttpError(404, 'not found');
    let body: Buffer;
    try {
      body = await readFile(new URL(m[1]!, STATIC_DIR));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new HttpError(404, 'not found');
      throw err;
    }
    if (m[2] === 'html') body = Buffer.from(body.toString('utf8').replaceAll('{{title}}', escapeHtml(title)), 'utf8');
    send(req, res, 200, STATIC_TYPES[m[2]!]!, body, { 'Cache-Control': 'no-cache' });
  };

  const handle = async (req: IncomingMessage, res: ServerResponse, path: string, params: URLSearchParams) => {
    const api = path.startsWith('/api/');
    if (guardHost && !isLoopbackHostHeader(req.headers.host)) {
      throw new HttpError(403, 'this server answers only to a loopback host name (localhost, 127.0.0.1, [::1]); start it with --token to serve other names');
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') throw new HttpError(405, 'read-only: only GET and HEAD', { Allow: 'GET, HEAD' });
    // Browsers ask for it on pages without an icon (the 401 page): nothing, rather than a 404 or a 401.
    if (path === '/favicon.ico') {
      send(req, res, 204, 'image/x-icon', '');
      return;
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
      return;
    }
    if (!authenticate(req)) throw unauthorized(api);
    if (path === '/metrics' && opts.metrics) {
      send(req, res, 200, PROMETHEUS_CONTENT_TYPE, opts.metrics(), { 'Cache-Control': 'no-store' });
      return;
    }
    if (!api) return serveStatic(req, res, path);
    const handler = path === '/api/report' && opts.report ? reportHandler(opts.report) : API[path];
    if (!handler) throw new HttpError(404, 'no such API endpoint');
    let result: unknown;
    try {
      result = await handler(queries, params);
    } catch (err) {
      if (err instanceof HttpError) throw err;
      if (err instanceof QueryInputError) throw new HttpError(400, String(err.message).split('\n')[0]!);
      log.error('UI query failed.', { path, error: loggableError(err) });
      throw new HttpError(500, 'the query failed; the server log has the reason');
    }
    send(req, res, 200, 'application/json; charset=utf-8', JSON.stringify(result), { 'Cache-Control': 'no-store' });
  };

  const server: Server = createServer({ headersTimeout: 10_000, requestTimeout: 120_000 }, (req, res) => {
    const started = performance.now();
    let path = '/';
    let params = new URLSearchParams();
    try {
      const url = new URL(req.url ?? '/', 'http://ui.invalid');
      path = url.pathname;
      params = url.searchParams;
    } catch {
      /* answered 404 below with path '/' replaced */
    }
    res.on('finish', () => {
      log.info('UI request.', {
        method: String(req.method).slice(0, 10),
        path: path.slice(0, 200),
        status: res.statusCode,
        ms: Math.round(performance.now() - started),
      });
    });
    handle(req, res, path, params).catch((err: unknown) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const e = err instanceof HttpError ? err : new HttpError(500, 'internal error');
      if (!(err instanceof HttpError)) log.error('UI request failed.', { path, error: loggableError(err) });
      const headers = { 'Cache-Control': 'no-store', ...e.headers };
      if (path.startsWith('/api/')) send(req, res, e.status, 'application/json; charset=utf-8', JSON.stringify({ error: e.message }), headers);
      else send(req, res, e.status, 'text/plain; charset=utf-8', `auditship ui: ${e.message}\n`, headers);
    });
  });

  const listen = (target: { path: string } | { host: string; port: number }) =>
    new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        const where = 'path' in target ? target.path : `${target.host}:${target.port}`;
        reject(
          err.code === 'EADDRINUSE'
            ? new UiServerError('address_in_use', `${where} is already in use; pick another with --listen HOST:PORT (port 0 = any free port)`, { cause: err })
            : new UiServerError('listen_failed', `cannot listen on ${where}: ${err.message}`, { cause: err }),
        );
      };
      server.once('error', onError);
      server.once('listening', () => {
        server.off('error', onError);
        resolve();
      });
      if ('path' in target) {
        // Bind with umask 0177 so that the socket is 0600 from its first instant (the bind is synchronous).
        const old = process.umask(0o177);
        try {
          server.listen(target.path);
        } finally {
          process.umask(old);
        }
      } else {
        server.listen(target.port, target.host);
      }
    });

  let url: string;
  const socketPath = opts.socketPath;
  if (socketPath !== undefined) {
    await removeStaleSocket(socketPath);
    await listen({ path: socketPath });
    chmodSync(socketPath, 0o600);
    url = `unix:${socketPath}`;
  } else {
    await listen({ host, port });
    const addr = server.address();
    const bound = typeof addr === 'object' && addr ? addr.port : port;
    url = `http://${isIP(host) === 6 ? `[${host}]` : host}:${bound}/`;
  }

  return {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => {
          if (socketPath !== undefined) {
            try {
              unlinkSync(socketPath);
            } catch {
              /* gone */
            }
          }
          resolve();
        });
        server.closeAllConnections();
      }),
  };
}

/** A socket file left by a process that died is removed; one a live server answers on is an error. */
async function removeStaleSocket(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return;
  }
  if (!isSocket) throw new UiServerError('listen_failed', `${path} exists and is not a socket; remove it or choose another socket path`);
  const alive = await new Promise<boolean>((resolve) => {
    const s = netConnect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
  if (alive) throw new UiServerError('address_in_use', `${path} is in use by a running server`);
  unlinkSync(path);
}
