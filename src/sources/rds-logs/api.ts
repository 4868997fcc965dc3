import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';
import { createWriteStream, promises as fsp } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { DescribeDBLogFilesCommand, DownloadDBLogFilePortionCommand, RDSClient } from '@aws-sdk/client-rds';
import { SignatureV4 } from '@smithy/signature-v4';
import { ConnectorError, describeFileError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';

/**
 * The RDS API as the rds_logs source uses it: DescribeDBLogFiles (paginated), the whole-file REST download
 * `GET /v19/downloadCompleteLogFile/<instance>/<file>` — which no SDK implements, signed here with SigV4
 * (session token included, so role credentials work) — and DownloadDBLogFilePortion as the fallback.
 *
 * Portions: start with Marker "0" and follow the markers until AdditionalDataPending is false. RDS returns
 * at most 1 MB per call and cuts the line crossing the limit, inserting `[Your log message was truncated]`
 * and moving the marker past the rest of that line; so a portion that holds the notice is asked for again
 * with half the lines, down to one line. A single line longer than 1 MB cannot be fetched whole this way:
 * it is kept as RDS gave it (the parser then quarantines the damaged record) and counted, so the manifest
 * says the copy is not exact.
 */
export interface RdsApiOptions {
  instance: string;
  region: string;
  endpoint?: string;
  maxRetries: number;
  timeoutMs: number;
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
}

export interface RdsLogFile {
  name: string;
  size: number;
  lastWritten: number;
}

export interface DownloadResult {
  bytes: number;
  method: 'complete' | 'portion';
  truncatedLines: number;
}

export const TRUNCATION_TEXT = '[Your log message was truncated]';
const MAX_LINES = 10_000;

/** SHA-256 / HMAC-SHA-256 for the signer, on node:crypto. */
type Data = string | ArrayBuffer | ArrayBufferView;
const bytesOf = (d: Data): string | Uint8Array =>
  typeof d === 'string' ? d : d instanceof ArrayBuffer ? new Uint8Array(d) : new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
class Sha256 {
  private h: Hash | Hmac;
  constructor(private readonly secret?: Data) {
    this.h = this.make();
  }
  private make() {
    return this.secret === undefined ? createHash('sha256') : createHmac('sha256', bytesOf(this.secret));
  }
  update(data: Data): void {
    this.h.update(bytesOf(data));
  }
  digest(): Promise<Uint8Array> {
    return Promise.resolve(new Uint8Array(this.h.digest()));
  }
  reset(): void {
    this.h = this.make();
  }
}

interface SdkError extends Error {
  $metadata?: { httpStatusCode?: number };
  Code?: string;
  code?: string;
}

export class RdsApi {
  readonly client: RDSClient;
  private readonly base: URL;

  constructor(
    private readonly options: RdsApiOptions,
    private readonly log: Logger,
  ) {
    this.client = new RDSClient({
      region: options.region,
      ...(options.endpoint ? { endpoint: options.endpoint } : {}),
      maxAttempts: options.maxRetries + 1,
      retryMode: 'standard',
      requestHandler: { connectionTimeout: Math.min(options.timeoutMs, 10_000), socketTimeout: options.timeoutMs },
      ...(options.credentials ? { credentials: options.credentials } : {}),
    });
    this.base = new URL(options.endpoint ?? `https://rds.${options.region}.amazonaws.com`);
  }

  get where(): string {
    return `rds:${this.options.region}/${this.options.instance}`;
  }

  /** Every log file of the instance (all pages; the order RDS gives is not relied on). */
  async listFiles(nameContains?: string): Promise<RdsLogFile[]> {
    const out = new Map<string, RdsLogFile>();
    let marker: string | undefined;
    do {
      let r;
      try {
        r = await this.client.send(
          new DescribeDBLogFilesCommand({
            DBInstanceIdentifier: this.options.instance,
            ...(marker ? { Marker: marker } : {}),
            ...(nameContains ? { FilenameContains: nameContains } : {}),
          }),
        );
      } catch (err) {
        throw this.error(err, 'DescribeDBLogFiles');
      }
      for (const f of r.DescribeDBLogFiles ?? []) {
        if (f.LogFileName) out.set(f.LogFileName, { name: f.LogFileName, size: Number(f.Size ?? 0), lastWritten: Number(f.LastWritten ?? 0) });
      }
      marker = r.Marker || undefined;
    } while (marker);
    return [...out.values()];
  }

  /** The file as listed now, or null when it is gone (expired by rds.log_retention_period). */
  async describeFile(name: string): Promise<RdsLogFile | null> {
    return (await this.listFiles(name)).find((f) => f.name === name) ?? null;
  }

  /** Downloads a file to `path`, whole (REST) or by portions. */
  async download(name: string, path: string, method: 'complete' | 'portion', onBytes?: (n: number) => void): Promise<DownloadResult> {
    return method === 'complete' ? this.downloadComplete(name, path, onBytes) : this.downloadPortions(name, path, onBytes);
  }

  private async signedRequest(name: string): Promise<{ url: URL; headers: Record<string, string> }> {
    const prefix = this.base.pathname.replace(/\/+$/, '');
    const path = `${prefix}/v19/downloadCompleteLogFile/${encodeURIComponent(this.options.instance)}/${name.split('/').map(encodeURIComponent).join('/')}`;
    const credentials = this.client.config.credentials;
    const signer = new SignatureV4({ service: 'rds', region: this.options.region, credentials, sha256: Sha256 });
    const host = this.base.host;
    let signed;
    try {
      signed = await signer.sign({
        method: 'GET',
        protocol: this.base.protocol,
        hostname: this.base.hostname,
        ...(this.base.port ? { port: Number(this.base.port) } : {}),
        path,
        query: {},
        headers: { host },
      });
    } catch (err) {
      throw this.error(err, 'downloadCompleteLogFile');
    }
    return { url: new URL(path, this.base), headers: signed.headers };
  }

  private async downloadComplete(name: string, path: string, onBytes?: (n: number) => void): Promise<DownloadResult> {
    for (let attempt = 0; ; attempt++) {
      try {
        const bytes = await this.getOnce(name, path, onBytes);
        return { bytes, method: 'complete', truncatedLines: 0 };
      } catch (err) {
        if (!(err instanceof ConnectorError) || !err.retryable || attempt >= this.options.maxRetries) throw err;
        const wait = Math.min(20_000, 250 * 2 ** attempt) * (0.5 + Math.random() / 2);
        this.log.warn('Log file download failed; retrying.', {
          instance: this.options.instance,
          file: name,
          attempt: attempt + 1,
          delayMs: Math.round(wait),
          reason: err.message,
        });
        await new Promise((r) => setTimeout(r, wait));
      }
    }
  }

  /** One GET of the whole file into `path`; the status is checked before a byte is kept. */
  private async getOnce(name: string, path: string, onBytes?: (n: number) => void): Promise<number> {
    const { url, headers } = await this.signedRequest(name);
    const lib = url.protocol === 'https:' ? https : http;
    return new Promise<number>((resolve, reject) => {
      const fail = (e: ConnectorError) => {
        req.destroy();
        reject(e);
      };
      const req = lib.request(url, { method: 'GET', headers, agent: false }, (res) => {
        const status = res.statusCode ?? 0;
        if (status !== 200) {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => {
            if (chunks.length < 64) chunks.push(c);
          });
          res.on('end', () => reject(this.restError(status, Buffer.concat(chunks).toString('utf8'), name)));
          res.on('error', () => reject(this.restError(status, '', name)));
          return;
        }
        const out = createWriteStream(path);
        let bytes = 0;
        res.on('data', (c: Buffer) => {
          bytes += c.length;
          onBytes?.(c.length);
          if (!out.write(c)) {
            res.pause();
            out.once('drain', () => res.resume());
          }
        });
        res.on('aborted', () => {
          out.destroy();
          reject(new ConnectorError('rds_logs', 'download_cut', `the download of ${name} was cut after ${bytes} bytes`, true));
        });
        res.on('error', (err) => {
          out.destroy();
          reject(new ConnectorError('rds_logs', 'download_cut', `the download of ${name} was cut after ${bytes} bytes: ${err.message}`, true, { cause: err }));
        });
        res.on('end', () => {
          if (!res.complete) return; // 'aborted' reports it
          out.end((err?: Error | null) => {
            if (err)
              reject(
                new ConnectorError(
                  'rds_logs',
                  'spool_failed',
                  describeFileError(err, path, 'saving a downloaded log file') ?? `cannot write ${path}: ${err.message}`,
                  false,
                  { cause: err },
                ),
              );
            else resolve(bytes);
          });
        });
        out.on('error', (err) =>
          fail(
            new ConnectorError(
              'rds_logs',
              'spool_failed',
              describeFileError(err, path, 'saving a downloaded log file') ?? `cannot write ${path}: ${err.message}`,
              false,
              { cause: err },
            ),
          ),
        );
      });
      req.setTimeout(this.options.timeoutMs, () =>
        fail(new ConnectorError('rds_logs', 'download_timeout', `the download of ${name} made no progress for ${this.options.timeoutMs} ms`, true)),
      );
      req.on('error', (err) =>
        reject(new ConnectorError('rds_logs', 'unreachable', `cannot reach ${this.base.host} to download ${name}: ${err.message}`, true, { cause: err })),
      );
      req.end();
    });
  }

  private restError(status: number, body: string, name: string): ConnectorError {
    const code = /<Code>([^<]*)<\/Code>/.exec(body)?.[1] ?? '';
    const message = (/<Message>([^<]*)<\/Message>/.exec(body)?.[1] ?? '')
      .replace(/&quot;/g, '"')
      .replace(/&apos;/g, "'")
      .replace(/&lt;/g, '<')
      .replace(/&gt;/g, '>')
      .replace(/&amp;/g, '&');
    const fake = Object.assign(new Error(message || `HTTP ${status}`), { name: code || `HTTP${status}`, Code: code, $metadata: { httpStatusCode: status } });
    return this.error(fake, 'downloadCompleteLogFile', name);
  }

  private async downloadPortions(name: string, path: string, onBytes?: (n: number) => void): Promise<DownloadResult> {
    const fh = await fsp.open(path, 'w').catch((err: unknown) => {
      throw new ConnectorError('rds_logs', 'spool_failed', describeFileError(err, path, 'saving a downloaded log file') ?? String(err), false, { cause: err });
    });
    let marker = '0';
    let lines = MAX_LINES;
    let bytes = 0;
    let truncatedLines = 0;
    try {
      for (;;) {
        let r;
        try {
          r = await this.client.send(
            new DownloadDBLogFilePortionCommand({ DBInstanceIdentifier: this.options.instance, LogFileName: name, Marker: marker, NumberOfLines: lines }),
          );
        } catch (err) {
          throw this.error(err, 'DownloadDBLogFilePortion', name);
        }
        const data = r.LogFileData ?? '';
        if (data.includes(TRUNCATION_TEXT)) {
          if (lines > 1) {
            lines = Math.max(1, lines >> 1);
            continue;
          }
          truncatedLines++;
          this.log.warn('A log line is longer than the 1 MB a portion can carry; it is kept truncated (use download: complete for exact copies).', {
            instance: this.options.instance,
            file: name,
          });
        }
        const buf = Buffer.from(data, 'utf8');
        if (buf.length) {
          await fh.write(buf);
          bytes += buf.length;
          onBytes?.(buf.length);
        }
        if (!r.AdditionalDataPending) break;
        if (!r.Marker || (r.Marker === marker && buf.length === 0)) {
          throw new ConnectorError('rds_logs', 'portion_stuck', `DownloadDBLogFilePortion of ${name} made no progress at marker ${marker}`, true);
        }
        marker = r.Marker;
        if (lines < MAX_LINES) lines = Math.min(MAX_LINES, lines * 2);
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
    return { bytes, method: 'portion', truncatedLines };
  }

  /** One sentence for what went wrong, naming the instance and the fix. */
  error(err: unknown, op: string, file?: string): ConnectorError {
    if (err instanceof ConnectorError) return err;
    const e = err as SdkError;
    const code = e.Code ?? e.name ?? '';
    const status = e.$metadata?.httpStatusCode;
    const what = `${op} on ${this.options.instance}${file ? ` (${file})` : ''} in ${this.options.region}`;
    const c = (id: string, msg: string, retryable = false) => new ConnectorError('rds_logs', id, msg, retryable, { cause: err });
    if (e.name === 'CredentialsProviderError' || /Could not load credentials/i.test(e.message ?? '')) {
      return c(
        'no_credentials',
        `no AWS credentials for ${what}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary ones), AWS_PROFILE, or run with an instance or task role`,
      );
    }
    switch (code) {
      case 'InvalidClientTokenId':
      case 'UnrecognizedClientException':
        return c(
          'bad_credentials',
          `RDS does not accept the access key or its session token (${code}, ${what}); check AWS_ACCESS_KEY_ID and, for temporary credentials, AWS_SESSION_TOKEN`,
        );
      case 'SignatureDoesNotMatch':
        return c('bad_credentials', `the secret key does not match the access key (SignatureDoesNotMatch, ${what}); check AWS_SECRET_ACCESS_KEY`);
      case 'ExpiredToken':
      case 'ExpiredTokenException':
      case 'RequestExpired':
        return c('expired_credentials', `the credentials have expired (${code}, ${what}); refresh the temporary credentials`);
      case 'AccessDenied':
      case 'AccessDeniedException':
      case 'UnauthorizedOperation': {
        const action = op === 'downloadCompleteLogFile' ? 'rds:DownloadCompleteDBLogFile' : `rds:${op}`;
        return c(
          'permission_denied',
          `access denied: ${action} on ${this.options.instance} (${code}); grant ${action} to the credentials${op === 'downloadCompleteLogFile' ? ', or set download: portion' : ''}`,
        );
      }
      case 'DBInstanceNotFound':
      case 'DBInstanceNotFoundFault':
        return c('no_instance', `there is no DB instance ${this.options.instance} in ${this.options.region} (DBInstanceNotFound); check instance and region`);
      case 'DBLogFileNotFoundFault':
        return c('file_gone', `${file ?? 'the log file'} is no longer on ${this.options.instance} (expired by rds.log_retention_period?)`);
      case 'InvalidParameterValue':
        if (/binary data/i.test(e.message ?? '')) {
          return c(
            'binary_file',
            `RDS will not page through ${file ?? 'the log file'} (it holds control characters or invalid UTF-8: "binary data"); it needs the whole-file download (download: complete or auto, and rds:DownloadCompleteDBLogFile)`,
          );
        }
        break;
      case 'Throttling':
      case 'ThrottlingException':
      case 'RequestLimitExceeded':
        return c('throttled', `RDS throttled ${what} beyond the retries; try again later or lower the poll frequency`, true);
    }
    if (status === 403) return c('permission_denied', `access denied (403) for ${what}: ${(e.message ?? '').split('\n')[0]}`);
    const net = `${e.code ?? ''} ${e.message ?? ''}`;
    if (/ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ECONNRESET|ETIMEDOUT|EPIPE|socket hang up/i.test(net) || e.name === 'TimeoutError') {
      return c('unreachable', `cannot reach the RDS API for ${what}: ${(e.message ?? '').split('\n')[0]}`, true);
    }
    if (status && status >= 500) return c('server_error', `RDS failed ${what} with ${status} ${code}`, true);
    return c('rds_error', `${what} failed: ${code || 'error'}${status ? ` (${status})` : ''}: ${(e.message ?? '').split('\n')[0]}`);
  }

  close(): void {
    this.client.destroy();
  }
}
