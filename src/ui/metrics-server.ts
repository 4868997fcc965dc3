import { createServer, type ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import { ConnectorError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { PROMETHEUS_CONTENT_TYPE } from '../core/metrics.js';

/**
 * The daemon's metrics listener (`metrics.listen`, `run --follow --metrics HOST:PORT`): `GET /metrics` in the
 * Prometheus text format, nothing else. It needs no authentication and may listen on any address: the metrics
 * hold counts, durations, pipeline names and kinds, never audit data. (The UI's TCP listener serves
 * `/metrics` too, behind the UI's authentication.)
 */
export interface MetricsServer {
  /** `http://HOST:PORT/` (the port actually bound). */
  url: string;
  close(): Promise<void>;
}

export async function startMetricsServer(opts: { host: string; port: number; render: () => string; log: Logger }): Promise<MetricsServer> {
  const send = (res: ServerResponse, head: boolean, status: number, type: string, body: string, headers: Record<string, string> = {}) => {
    const buf = Buffer.from(body, 'utf8');
    res.writeHead(status, {
      'Content-Type': type,
      'Content-Length': String(buf.length),
      'Cache-Control': 'no-store',
      'X-Content-Type-Options': 'nosniff',
      ...headers,
    });
    res.end(head ? undefined : buf);
  };
  const server = createServer({ headersTimeout: 10_000, requestTimeout: 30_000 }, (req, res) => {
    let path = '/';
    try {
      path = new URL(req.url ?? '/', 'http://metrics.invalid').pathname;
    } catch {
      /* answered 404 */
    }
    const head = req.method === 'HEAD';
    if (req.method !== 'GET' && !head) {
      send(res, head, 405, 'text/plain; charset=utf-8', 'only GET and HEAD\n', { Allow: 'GET, HEAD' });
      return;
    }
    if (path !== '/metrics') {
      send(res, head, 404, 'text/plain; charset=utf-8', 'not found; the metrics are at /metrics\n');
      return;
    }
    let body: string;
    try {
      body = opts.render();
    } catch (err) {
      opts.log.error('Rendering the metrics failed.', {
        reason: String((err as Error)?.message ?? err)
          .split('\n')[0]!
          .slice(0, 300),
      });
      send(res, head, 500, 'text/plain; charset=utf-8', 'rendering the metrics failed; the log has the reason\n');
      return;
    }
    send(res, head, 200, PROMETHEUS_CONTENT_TYPE, body);
  });
  const where = `${opts.host}:${opts.port}`;
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      reject(
        err.code === 'EADDRINUSE'
          ? new ConnectorError(
              'metrics',
              'address_in_use',
              `metrics: ${where} is already in use; pick another address with metrics.listen or --metrics HOST:PORT (port 0 = any free port)`,
              false,
              { cause: err },
            )
          : new ConnectorError('metrics', 'listen_failed', `metrics: cannot listen on ${where}: ${err.message}`, false, { cause: err }),
      );
    };
    server.once('error', onError);
    server.once('listening', () => {
      server.off('error', onError);
      resolve();
    });
    server.listen(opts.port, opts.host);
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : opts.port;
  return {
    url: `http://${isIP(opts.host) === 6 ? `[${opts.host}]` : opts.host}:${port}/`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
