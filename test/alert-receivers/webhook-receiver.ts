/**
 * A local webhook receiver for tests: an HTTP server on 127.0.0.1 (port 0) that records every request
 * (headers and parsed JSON body) and answers as its mode says. Repeats of one alert are recognised by their
 * Idempotency-Key, as a real receiver would: `unique()` lists the first accepted request per key.
 *
 *   const rx = await startWebhookReceiver();
 *   await deliver({ type: 'webhook', url: `${rx.url}/hook/SECRET`, … }, msg);
 *   rx.setMode('flaky', 2);  // 503 twice, then 200
 *   await rx.close();
 *
 * Modes: ok (200 "ok"), fail (503), reject (400), hang (never answers; close() ends it), flaky n (503 for the
 * next n requests, then ok), retry-after s (429 with Retry-After: s).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export type WebhookMode = 'ok' | 'fail' | 'reject' | 'hang' | 'flaky' | 'retry-after';

export interface ReceivedRequest {
  method: string;
  path: string;
  /** Lower-case names. */
  headers: http.IncomingHttpHeaders;
  /** The body as sent. */
  raw: Buffer;
  /** The body parsed as JSON, or undefined when it is not JSON. */
  body: unknown;
  /** The status answered (undefined while hanging). */
  status?: number;
  idempotencyKey?: string;
}

export interface WebhookReceiver {
  /** http://127.0.0.1:PORT (append any path: every path is accepted). */
  url: string;
  port: number;
  received: ReceivedRequest[];
  /** The first accepted (2xx) request of each Idempotency-Key, in arrival order. */
  unique(): ReceivedRequest[];
  /** `n` is the number of failures for flaky, the seconds for retry-after. */
  setMode(mode: WebhookMode, n?: number): void;
  /** Resolves once a request has arrived beyond the `count` already received. */
  waitFor(count: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export async function startWebhookReceiver(initial: WebhookMode = 'ok', n = 0): Promise<WebhookReceiver> {
  let mode: WebhookMode = initial;
  let param = n;
  const received: ReceivedRequest[] = [];
  const waiters: { count: number; resolve: () => void }[] = [];

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      let body: unknown;
      try {
        body = JSON.parse(raw.toString('utf8'));
      } catch {
        body = undefined;
      }
      const key = req.headers['idempotency-key'];
      const entry: ReceivedRequest = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, raw, body };
      if (typeof key === 'string') entry.idempotencyKey = key;
      received.push(entry);
      for (const w of waiters.splice(0)) {
        if (received.length > w.count) w.resolve();
        else waiters.push(w);
      }
      const answer = (status: number, text: string, headers: Record<string, string> = {}) => {
        entry.status = status;
        res.writeHead(status, { 'content-type': 'text/plain', ...headers });
        res.end(text);
      };
      switch (mode) {
        case 'ok':
          return answer(200, 'ok');
        case 'fail':
          return answer(503, 'unavailable');
        case 'reject':
          return answer(400, 'invalid_payload');
        case 'hang':
          return; // never answered; close() destroys the socket
        case 'flaky':
          if (param > 0) {
            param--;
            return answer(503, 'unavailable');
          }
          return answer(200, 'ok');
        case 'retry-after':
          return answer(429, 'rate_limited', { 'retry-after': String(param) });
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    received,
    unique() {
      const seen = new Set<string>();
      return received.filter((r) => {
        if (r.status === undefined || r.status < 200 || r.status > 299) return false;
        const key = r.idempotencyKey ?? `\0${received.indexOf(r)}`;
        if (seen.has(key)) return false;
        seen.add(key);
        return true;
      });
    },
    setMode(m, value = 0) {
      mode = m;
      param = value;
    },
    waitFor(count, timeoutMs = 5000) {
      if (received.length > count) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`webhook receiver: no request beyond ${count} within ${timeoutMs} ms`)), timeoutMs);
        waiters.push({
          count,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        });
      });
    },
    close() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
