import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { ConnectorError } from '../../core/errors.js';

/**
 * A small HTTP client for the Elasticsearch/OpenSearch REST API on node:http(s) — chosen over the official
 * clients because one client then serves both products (the Elasticsearch client refuses OpenSearch by its
 * product check, and its v9 sends `compatible-with=9`, which Elasticsearch 8 rejects), a CA file and the
 * `insecure` switch are plain agent options (Node 20's fetch needs undici for that), and it adds no
 * dependency that needs Node 22. Keep-alive sockets; a timeout per request.
 */
export interface EsAuth {
  username?: string;
  password?: string;
  apiKey?: string;
  bearerToken?: string;
}

export interface EsHttpOptions {
  url: string;
  auth: EsAuth;
  caFile?: string;
  insecure?: boolean;
  timeoutMs: number;
  /** Requests in flight at most (the agent's socket pool). */
  maxSockets: number;
}

export interface EsResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A transport failure (no HTTP answer): connection refused or reset, timeout. Worth retrying. */
export class EsTransportError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
    this.name = 'EsTransportError';
  }
}

export class EsHttp {
  readonly base: URL;
  private readonly agent: http.Agent;
  private readonly lib: typeof http | typeof https;
  private readonly authHeader: string | null;
  /** Extra headers every request carries (content negotiation once the server's version is known). */
  accept = 'application/json';
  contentType = 'application/json';
  ndjsonType = 'application/x-ndjson';

  constructor(private readonly options: EsHttpOptions) {
    let base: URL;
    try {
      base = new URL(options.url);
    } catch {
      throw new ConnectorError('elasticsearch', 'bad_url', `url ${JSON.stringify(options.url)} is not a URL (http://host:9200 or https://...)`, false);
    }
    if (base.protocol !== 'http:' && base.protocol !== 'https:')
      throw new ConnectorError('elasticsearch', 'bad_url', `url must start with http:// or https://`, false);
    if (base.username || base.password) {
      // Credentials in the URL: taken as basic auth, and removed from everything that is shown.
      options.auth = { ...options.auth, username: decodeURIComponent(base.username), password: decodeURIComponent(base.password) };
      base.username = '';
      base.password = '';
    }
    this.base = base;
    this.lib = base.protocol === 'https:' ? https : http;
    let ca: Buffer | undefined;
    if (options.caFile) {
      try {
        ca = readFileSync(options.caFile);
      } catch (err) {
        throw new ConnectorError(
          'elasticsearch',
          'ca_file_unreadable',
          `cannot read ca_file ${options.caFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
          false,
        );
      }
    }
    this.agent =
      base.protocol === 'https:'
        ? new https.Agent({ keepAlive: true, maxSockets: options.maxSockets, ...(ca ? { ca } : {}), rejectUnauthorized: !options.insecure })
        : new http.Agent({ keepAlive: true, maxSockets: options.maxSockets });
    const a = options.auth;
    this.authHeader = a.apiKey
      ? `ApiKey ${a.apiKey}`
      : a.bearerToken
        ? `Bearer ${a.bearerToken}`
        : a.username
          ? `Basic ${Buffer.from(`${a.username}:${a.password ?? ''}`).toString('base64')}`
          : null;
  }

  /** The URL as shown in messages: no credentials. */
  get where(): string {
    return this.base.origin + (this.base.pathname === '/' ? '' : this.base.pathname);
  }

  request(method: string, path: string, body?: string | Buffer, contentType?: string): Promise<EsResponse> {
    const prefix = this.base.pathname.replace(/\/$/, '');
    const headers: http.OutgoingHttpHeaders = { accept: this.accept };
    if (this.authHeader) headers['authorization'] = this.authHeader;
    if (body !== undefined) {
      headers['content-type'] = contentType ?? this.contentType;
      headers['content-length'] = Buffer.byteLength(body);
    }
    return new Promise((resolve, reject) => {
      const req = this.lib.request(
        {
          protocol: this.base.protocol,
          hostname: this.base.hostname,
          port: this.base.port || undefined,
          method,
          path: prefix + path,
          headers,
          agent: this.agent,
          timeout: this.options.timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', (err) => reject(new EsTransportError(`the response from ${this.where} broke off: ${err.message}`, 'response_aborted')));
        },
      );
      req.on('timeout', () => req.destroy(new EsTransportError(`no answer from ${this.where} within ${this.options.timeoutMs} ms`, 'timeout')));
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (err instanceof EsTransportError) {
          reject(err);
          return;
        }
        if (err.code === 'ECONNREFUSED') reject(new EsTransportError(`cannot connect to ${this.where}: connection refused`, 'connection_refused'));
        else if (err.code === 'ENOTFOUND' || err.code === 'EAI_AGAIN')
          reject(new EsTransportError(`cannot connect to ${this.where}: host not found`, 'host_not_found'));
        else if (/certificate|self.signed|SSL|TLS/i.test(err.message) || String(err.code).startsWith('ERR_TLS') || /CERT/.test(String(err.code))) {
          reject(
            new ConnectorError(
              'elasticsearch',
              'tls_failed',
              `TLS to ${this.where} failed: ${err.message}; set ca_file to the cluster's CA (or insecure: true for a test cluster)`,
              false,
            ),
          );
        } else reject(new EsTransportError(`the connection to ${this.where} failed: ${err.code ?? err.message}`, err.code ?? 'connection_failed'));
      });
      if (body !== undefined) req.end(body);
      else req.end();
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

/** The `reason` of an Elasticsearch/OpenSearch error body, or its start. */
export function errorReason(body: string): string {
  try {
    const j = JSON.parse(body) as { error?: { type?: string; reason?: string; root_cause?: { reason?: string }[] } | string };
    if (typeof j.error === 'string') return j.error;
    if (j.error) return `${j.error.type ?? 'error'}: ${j.error.reason ?? j.error.root_cause?.[0]?.reason ?? ''}`.trim();
  } catch {
    /* not JSON */
  }
  return body.slice(0, 200);
}
