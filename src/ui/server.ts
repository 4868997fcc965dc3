import { chmodSync, unlinkSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import type { Logger } from '../core/log.js';
import { PROMETHEUS_CONTENT_TYPE } from '../core/metrics.js';
import { QueryInputError } from '../query/index.js';
import { API, reportHandler, type ReportFn, type UiQueries } from './api.js';
import { SOURCE_API } from './api-sources.js';
import { EXPORTS } from './export.js';
import type { SavedSearch } from './saved-searches.js';
import { openGate, type UiAuth } from './gate.js';
import { alertsHandler } from './alerts-api.js';
import type { AlertQueries } from '../alerts/queries.js';
import { HttpError, listen, loggableError, removeStaleSocket, send, serveStatic } from './http.js';

/**
 * The UI's HTTP server: every request passes the gate (gate.ts: host, method, authentication), then gets the page
 * (http.ts), the metrics, or an answer of the JSON API (api.ts); one access-log line per request, never its query
 * string.
 */
export type { UiAuth } from './gate.js';
export type { UiQueries } from './api.js';
export { UiServerError } from './http.js';

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
  report?: ReportFn;
  /** Serves `GET /metrics` (the Prometheus text this returns), behind the same authentication as the rest. Absent: 404. */
  metrics?: () => string;
  /** The config's saved searches (ui.saved_searches), at /api/saved-searches. */
  savedSearches?: SavedSearch[];
  /** Fired alerts and their deliveries, at /api/alerts (src/alerts/queries.ts). Absent: 404. */
  alerts?: Pick<AlertQueries, 'list'>;
}

export interface UiServer {
  /** `http://HOST:PORT/` (the port actually bound), or `unix:PATH`. */
  url: string;
  close(): Promise<void>;
}

/**
 * Starts the UI's HTTP server: the static page and its read-only JSON API over `queries`. Resolves once it
 * listens; rejects with UiServerError when the address is unsafe (non-loopback without auth) or taken.
 */
export async function startUiServer(opts: UiServerOptions): Promise<UiServer> {
  const { queries, log } = opts;
  const title = opts.title ?? 'auditship';
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port ?? 8080;
  const gate = await openGate(opts.auth, { socketPath: opts.socketPath, host });

  const handle = async (req: IncomingMessage, res: ServerResponse, path: string, params: URLSearchParams) => {
    if (gate.admit(req, res, path, params)) return;
    const api = path.startsWith('/api/');
    if (path === '/metrics' && opts.metrics) {
      send(req, res, 200, PROMETHEUS_CONTENT_TYPE, opts.metrics(), { 'Cache-Control': 'no-store' });
      return;
    }
    if (!api) return serveStatic(req, res, path, title);
    if (path === '/api/saved-searches') {
      if ([...params.keys()].length) throw new HttpError(400, 'this endpoint takes no parameters');
      send(req, res, 200, 'application/json; charset=utf-8', JSON.stringify(opts.savedSearches ?? []), { 'Cache-Control': 'no-store' });
      return;
    }
    const handler =
      path === '/api/report' && opts.report
        ? reportHandler(opts.report)
        : path === '/api/alerts' && opts.alerts
          ? alertsHandler(opts.alerts)
          : (API[path] ?? SOURCE_API[path]);
    const exporter = EXPORTS[path];
    if (!handler && !exporter) throw new HttpError(404, 'no such API endpoint');
    let result: unknown;
    try {
      // An export streams its own answer (export.ts); its errors before the first byte are answered as any other.
      if (exporter) return await exporter(queries, params, req, res);
      result = await handler!(queries, params);
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

  let url: string;
  const socketPath = opts.socketPath;
  if (socketPath !== undefined) {
    await removeStaleSocket(socketPath);
    await listen(server, { path: socketPath });
    chmodSync(socketPath, 0o600);
    url = `unix:${socketPath}`;
  } else {
    await listen(server, { host, port });
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
