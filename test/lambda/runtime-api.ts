import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * The Lambda Runtime API (2018-06-01), as the Lambda service offers it to a runtime interface client such as
 * aws-lambda-ric: `GET /2018-06-01/runtime/invocation/next` long-polls for the next event (headers
 * Lambda-Runtime-Aws-Request-Id, -Deadline-Ms, -Invoked-Function-Arn, -Trace-Id), `POST …/invocation/{id}/response`
 * and `…/{id}/error` (202) end it, `POST …/runtime/init/error` reports a handler that cannot load. Queued events
 * are handed out one at a time; each outcome resolves the promise `invoke` returned.
 */
export interface Outcome {
  requestId: string;
  response?: unknown;
  error?: { errorMessage?: string; errorType?: string };
}

export interface RuntimeApi {
  /** host:port, for AWS_LAMBDA_RUNTIME_API. */
  address: string;
  invoke(event: unknown, timeoutMs: number): Promise<Outcome>;
  initError(): unknown;
  close(): Promise<void>;
}

function body(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let s = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => (s += d));
    req.on('end', () => resolve(s));
    req.on('error', reject);
  });
}

export async function startRuntimeApi(): Promise<RuntimeApi> {
  const queue: { requestId: string; event: unknown; deadline: number; done: (o: Outcome) => void }[] = [];
  const pending = new Map<string, (o: Outcome) => void>();
  const waiting: ((next: (typeof queue)[number]) => void)[] = [];
  let initError: unknown = null;
  const server: Server = createServer((req, res) => {
    void (async () => {
      const url = req.url ?? '';
      if (req.method === 'GET' && url === '/2018-06-01/runtime/invocation/next') {
        const next = queue.shift() ?? (await new Promise<(typeof queue)[number]>((r) => waiting.push(r)));
        pending.set(next.requestId, next.done);
        res.writeHead(200, {
          'content-type': 'application/json',
          'lambda-runtime-aws-request-id': next.requestId,
          'lambda-runtime-deadline-ms': String(next.deadline),
          'lambda-runtime-invoked-function-arn': 'arn:aws:lambda:us-east-1:123456789012:function:auditship',
          'lambda-runtime-trace-id': 'Root=1-00000000-000000000000000000000000;Sampled=0',
        });
        res.end(JSON.stringify(next.event));
        return;
      }
      const m = /^\/2018-06-01\/runtime\/invocation\/([^/]+)\/(response|error)$/.exec(url);
      if (req.method === 'POST' && m) {
        const text = await body(req);
        const done = pending.get(m[1]!);
        pending.delete(m[1]!);
        res.writeHead(done ? 202 : 400, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ status: done ? 'OK' : 'unknown request id' }));
        const parsed = text ? (JSON.parse(text) as unknown) : null;
        done?.(m[2] === 'response' ? { requestId: m[1]!, response: parsed } : { requestId: m[1]!, error: parsed as Outcome['error'] });
        return;
      }
      if (req.method === 'POST' && url === '/2018-06-01/runtime/init/error') {
        initError = JSON.parse((await body(req)) || 'null');
        res.writeHead(202).end('{}');
        return;
      }
      res.writeHead(404).end();
    })();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    address: `127.0.0.1:${port}`,
    invoke(event, timeoutMs) {
      return new Promise((done) => {
        const item = { requestId: randomUUID(), event, deadline: Date.now() + timeoutMs, done };
        const w = waiting.shift();
        if (w) w(item);
        else queue.push(item);
      });
    },
    initError: () => initError,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
