import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { lstatSync, unlinkSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { connect as netConnect } from 'node:net';

/**
 * The HTTP plumbing of the UI server: answers with the security headers every answer carries, the static files
 * of the page, binding a TCP address or a unix socket (mode 0600 from its first instant), and the errors of both.
 */

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

/** Folder of index.html, app.js, style.css: the same from src/ui/http.ts (tsx) and dist/ui/http.js. */
const STATIC_DIR = new URL('../../src/ui/static/', import.meta.url);
const STATIC_TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  svg: 'image/svg+xml',
};
/** A static file name: no slash, no dot but the extension's, so nothing outside STATIC_DIR can be named. */
const STATIC_NAME = /^\/([a-z0-9][a-z0-9-]*\.(html|js|css|svg))$/;

export const SECURITY_HEADERS: Record<string, string> = {
  'Content-Security-Policy': "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

/** A request the client got wrong: answered with this status and message. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** One line of a DuckDB (or other) error for the server log, with quoted literals — possibly bound values — masked. */
export function loggableError(err: unknown): string {
  const msg = String((err as Error)?.message ?? err).split('\n')[0]!;
  return msg
    .replace(/'(?:[^']|'')*'/g, "'…'")
    .replace(/"(?:[^"]|"")*"/g, '"…"')
    .slice(0, 300);
}

/** Answers with `body` (nothing for HEAD) and the security headers. */
export function send(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  type: string,
  body: string | Buffer,
  headers: Record<string, string> = {},
): void {
  const buf = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  res.writeHead(status, { ...SECURITY_HEADERS, 'Content-Type': type, 'Content-Length': String(buf.length), ...headers });
  res.end(req.method === 'HEAD' ? undefined : buf);
}

/** Serves a file of the page (static/), the title written into the HTML. */
export async function serveStatic(req: IncomingMessage, res: ServerResponse, path: string, title: string): Promise<void> {
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
}

/** Binds the server to a unix socket (mode 0600 from the bind on) or a TCP address; a taken address is one clear error. */
export function listen(server: Server, target: { path: string } | { host: string; port: number }): Promise<void> {
  return new Promise<void>((resolve, reject) => {
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
}

/** A socket file left by a process that died is removed; one a live server answers on is an error. */
export async function removeStaleSocket(path: string): Promise<void> {
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
