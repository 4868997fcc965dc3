/**
 * Runs the S3 test server (server.ts) as a child process, so that a test can SIGKILL the process under test
 * while the server — and the objects it holds — lives on; plus an S3Client configured for it.
 *
 *   const s3 = await spawnS3Server({ buckets: ['archive'], objectLockBuckets: ['worm'] });
 *   await s3.faults([{ match: { op: 'UploadPart' }, action: { type: 'reset_after_bytes', bytes: 65536 } }]);
 *   const client = s3ClientFor(s3.url, { maxAttempts: 3 });
 *   … run auditship against s3.url, kill it, run it again …
 *   const puts = await s3.requests({ op: 'PutObject' });
 *   await s3.stop();
 */
import { spawnServerProcess, type ServerProcess } from '../helpers/server-process.js';
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CreateBucketCommand, S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import type { BucketStateEntry, FaultRule, FaultState, ObjectLockEntry, ObjectStateEntry, RecordedRequest, RequestQuery, S3ServerOptions } from './server.js';

export type {
  BucketStateEntry,
  FaultAction,
  FaultMatch,
  FaultRule,
  FaultRuleState,
  FaultState,
  ObjectLockEntry,
  ObjectStateEntry,
  RecordedRequest,
  RequestQuery,
  S3AccessKey,
  S3Operation,
  S3ServerOptions,
  ObjectLockBucketOptions,
  ServerSideEncryption,
} from './server.js';

export interface SpawnedS3Server {
  /** The proxy: what clients use (path-style). */
  url: string;
  /** s3rver itself, without the proxy's emulation, faults or recording. */
  directUrl: string;
  /** s3rver's data directory. */
  dir: string;
  pid: number;
  /** The recorded requests (filters as in GET /_test/requests). */
  requests(q?: RequestQuery): Promise<RecordedRequest[]>;
  clearRequests(): Promise<void>;
  /** Adds fault rules; resolves with the whole fault state. */
  faults(rules: FaultRule[]): Promise<FaultState>;
  faultState(): Promise<FaultState>;
  clearFaults(): Promise<void>;
  /** Clears fault rules and recordings; with `data`, also every bucket, object and emulated state. */
  reset(opts?: { data?: boolean }): Promise<void>;
  /** Every object version with a retention or a legal hold. */
  objectLocks(): Promise<ObjectLockEntry[]>;
  /** What the proxy remembers per stored object (SSE, checksum, storage class, version). */
  objects(): Promise<ObjectStateEntry[]>;
  /** What the proxy emulates per bucket (Object Lock, versioning, default encryption, lifecycle XML). */
  buckets(): Promise<BucketStateEntry[]>;
  /** SIGTERM, then SIGKILL after 3 s; resolves once the process is gone. Removes the data directory it created. */
  stop(): Promise<void>;
  /** What the server wrote on stderr so far (for failure messages). */
  stderr(): string;
}

export interface SpawnS3ServerOptions extends S3ServerOptions {
  startTimeoutMs?: number;
  /** Keep the data directory on stop even when spawnS3Server created it. */
  keepDir?: boolean;
}

const SERVER = fileURLToPath(new URL('./server.ts', import.meta.url));

/** A JSON request to the /_test API; resolves with status and parsed body (text when not JSON). */
export function requestJson(url: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = http.request(
      new URL(path, url),
      {
        method,
        headers: data ? { 'content-type': 'application/json', 'content-length': data.length } : {},
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            /* text */
          }
          resolve({ status: res.statusCode ?? 0, body: parsed });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

function queryString(q: RequestQuery = {}): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) {
    if (v === undefined) continue;
    p.set(k, typeof v === 'boolean' ? (v ? '1' : '0') : String(v));
  }
  const s = p.toString();
  return s ? `?${s}` : '';
}

export async function spawnS3Server(opts: SpawnS3ServerOptions = {}): Promise<SpawnedS3Server> {
  const { startTimeoutMs = 20_000, keepDir = false, dir: givenDir, port = 0, ...options } = opts;
  const dir = givenDir ?? mkdtempSync(join(tmpdir(), 'auditship-s3-'));
  const ownDir = givenDir === undefined && !keepDir;
  const cleanup = () => {
    if (ownDir) rmSync(dir, { recursive: true, force: true });
  };
  let server: ServerProcess<{ url: string; directUrl: string }>;
  try {
    // stdin stays open as a lifeline: the server exits when this process dies without stopping it.
    server = await spawnServerProcess(
      's3-server',
      SERVER,
      ['--port', String(port), '--dir', dir, '--options', JSON.stringify(options), '--exit-on-stdin-close'],
      { startTimeoutMs, lifeline: true },
    );
  } catch (e) {
    cleanup();
    throw e;
  }
  const { url, directUrl } = server.info;

  const call = async (method: string, path: string, body?: unknown): Promise<unknown> => {
    const r = await requestJson(url, method, path, body);
    if (r.status !== 200) throw new Error(`s3-server ${method} ${path} failed (${r.status}): ${JSON.stringify(r.body)}`);
    return r.body;
  };

  return {
    url,
    directUrl,
    dir,
    pid: server.pid,
    requests: async (q) => (await call('GET', `/_test/requests${queryString(q)}`)) as RecordedRequest[],
    clearRequests: async () => {
      await call('DELETE', '/_test/requests');
    },
    faults: async (rules) => (await call('POST', '/_test/faults', rules)) as FaultState,
    faultState: async () => (await call('GET', '/_test/faults')) as FaultState,
    clearFaults: async () => {
      await call('DELETE', '/_test/faults');
    },
    reset: async (o) => {
      await call('POST', '/_test/reset', { data: o?.data === true });
    },
    objectLocks: async () => (await call('GET', '/_test/object-locks')) as ObjectLockEntry[],
    objects: async () => (await call('GET', '/_test/objects')) as ObjectStateEntry[],
    buckets: async () => (await call('GET', '/_test/buckets')) as BucketStateEntry[],
    stderr: server.stderr,
    stop: async () => {
      await server.stop();
      cleanup();
    },
  };
}

export interface S3ClientForOptions {
  accessKeyId?: string;
  secretAccessKey?: string;
  region?: string;
  /** The SDK default is 3. */
  maxAttempts?: number;
  /** WHEN_SUPPORTED (SDK default: CRC32 on every upload) or WHEN_REQUIRED. */
  requestChecksumCalculation?: 'WHEN_SUPPORTED' | 'WHEN_REQUIRED';
  responseChecksumValidation?: 'WHEN_SUPPORTED' | 'WHEN_REQUIRED';
  /** Socket idle timeout per request (NodeHttpHandler requestTimeout); the request then fails (throwOnRequestTimeout). */
  requestTimeoutMs?: number;
  connectionTimeoutMs?: number;
  /** Anything else S3ClientConfig takes; wins over the above. */
  config?: Partial<S3ClientConfig>;
}

/** An S3Client for the test server: path style, us-east-1, the S3RVER credentials unless given. */
export function s3ClientFor(url: string, opts: S3ClientForOptions = {}): S3Client {
  const requestHandler =
    opts.requestTimeoutMs !== undefined || opts.connectionTimeoutMs !== undefined
      ? { requestTimeout: opts.requestTimeoutMs, connectionTimeout: opts.connectionTimeoutMs, throwOnRequestTimeout: true }
      : undefined;
  return new S3Client({
    endpoint: url,
    forcePathStyle: true,
    region: opts.region ?? 'us-east-1',
    credentials: { accessKeyId: opts.accessKeyId ?? 'S3RVER', secretAccessKey: opts.secretAccessKey ?? 'S3RVER' },
    ...(opts.maxAttempts !== undefined ? { maxAttempts: opts.maxAttempts } : {}),
    ...(opts.requestChecksumCalculation ? { requestChecksumCalculation: opts.requestChecksumCalculation } : {}),
    ...(opts.responseChecksumValidation ? { responseChecksumValidation: opts.responseChecksumValidation } : {}),
    ...(requestHandler ? { requestHandler } : {}),
    ...opts.config,
  });
}

/** Creates a bucket (optionally with Object Lock); a bucket that already exists is fine. */
export async function createBucket(url: string, name: string, opts: { objectLock?: boolean; client?: S3ClientForOptions } = {}): Promise<void> {
  const client = s3ClientFor(url, opts.client);
  try {
    await client.send(new CreateBucketCommand({ Bucket: name, ...(opts.objectLock ? { ObjectLockEnabledForBucket: true } : {}) }));
  } catch (e) {
    if ((e as { name?: string }).name !== 'BucketAlreadyOwnedByYou') throw e;
  } finally {
    client.destroy();
  }
}
