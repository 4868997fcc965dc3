import { createHash } from 'node:crypto';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  type CompletedPart,
  type ServerSideEncryption,
  type StorageClass,
} from '@aws-sdk/client-s3';
import { ConnectorError } from '../../core/errors.js';
import {
  etagMatches,
  isMd5Etag,
  ObjectHasher,
  type ListedObject,
  type ObjectHead,
  type ObjectStore,
  type ObjectWriter,
  type PutOptions,
  type StoredObject,
} from './store.js';

/**
 * An S3-compatible bucket as an object store, on the AWS SDK v3 S3 client (standard credential chain,
 * session tokens included, unless keys are configured).
 *
 * Multipart uploads are driven here rather than by @aws-sdk/lib-storage: each part is a buffer of
 * `partSize` bytes sent with its Content-MD5 (the store checks every part; Object Lock uploads require it),
 * at most `concurrency` parts in flight; the upload id is handed to the caller as soon as it exists, so
 * that an upload cut short by a kill is aborted on the next run rather than left to accrue storage. An
 * object smaller than one part is one PutObject. The ETag the store answers is compared with the MD5s of
 * what was sent (where it is MD5-based: not with SSE-KMS), so a damaged upload fails the write.
 *
 * Kept as one file (about 430 lines): the S3 store: multipart uploads, checksums, Object Lock and the
 * translation of S3's errors into one line each.
 */
export interface S3StoreOptions {
  bucket: string;
  /** Key prefix, '' or ending in '/'. */
  prefix: string;
  region: string;
  endpoint?: string;
  forcePathStyle: boolean;
  storageClass: string;
  sse?: 'AES256' | 'aws:kms';
  sseKmsKeyId?: string;
  objectLock?: { mode: 'GOVERNANCE' | 'COMPLIANCE'; days: number };
  partSize: number;
  concurrency: number;
  maxRetries: number;
  timeoutMs: number;
  requestChecksumCalculation: 'WHEN_SUPPORTED' | 'WHEN_REQUIRED';
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /**
   * Before a multipart upload starts, abort the open uploads of the same key (ListMultipartUploads). For a
   * pipeline whose state is in S3 (src/jobs/remote-state.ts): the upload ids a killed run noted in its state were
   * never written back, but the next run uploads the same file to the same key — and a live run that uploads it
   * too fetched the same state, so at most one of the two keeps its work anyway.
   */
  abortEarlierUploads?: boolean;
}

/**
 * Part buffers are kept for the next object: allocating and freeing buffers of many MB per object lets
 * glibc raise its mmap threshold and fragment the heap (RSS grew by tens of MB in the benchmark).
 */
const partPool: Buffer[] = [];
const MIB = 1 << 20;
const POOL_KEEP = 8;
function takePart(size: number): Buffer {
  const i = partPool.findIndex((b) => b.length === size);
  return i >= 0 ? partPool.splice(i, 1)[0]! : Buffer.allocUnsafe(size);
}
function givePart(b: Buffer): void {
  if (partPool.length < POOL_KEEP) partPool.push(b);
}

interface SdkError extends Error {
  $metadata?: { httpStatusCode?: number };
  $fault?: string;
  Code?: string;
  code?: string;
  $response?: { headers?: Record<string, string> };
}

export class S3Store implements ObjectStore {
  readonly where: string;
  private readonly client: S3Client;

  constructor(private readonly options: S3StoreOptions) {
    this.where = `s3://${options.bucket}/${options.prefix}`;
    this.client = new S3Client({
      region: options.region,
      ...(options.endpoint ? { endpoint: options.endpoint } : {}),
      forcePathStyle: options.forcePathStyle,
      maxAttempts: options.maxRetries + 1,
      retryMode: 'standard',
      requestChecksumCalculation: options.requestChecksumCalculation,
      responseChecksumValidation: options.requestChecksumCalculation,
      requestHandler: { connectionTimeout: Math.min(options.timeoutMs, 10_000), socketTimeout: options.timeoutMs },
      ...(options.credentials ? { credentials: options.credentials } : {}),
    });
  }

  private key(key: string): string {
    return this.options.prefix + key;
  }

  /** Parameters every written object carries: class, encryption, retention. */
  private putParams(options: PutOptions) {
    const o = this.options;
    const cls = options.storageClass ?? o.storageClass;
    return {
      Bucket: o.bucket,
      ContentType: options.contentType,
      ...(cls && cls !== 'STANDARD' ? { StorageClass: cls as StorageClass } : {}),
      ...(o.sse ? { ServerSideEncryption: o.sse as ServerSideEncryption } : {}),
      ...(o.sse === 'aws:kms' && o.sseKmsKeyId ? { SSEKMSKeyId: o.sseKmsKeyId } : {}),
      ...(o.objectLock ? { ObjectLockMode: o.objectLock.mode, ObjectLockRetainUntilDate: new Date(Date.now() + o.objectLock.days * 86_400_000) } : {}),
    };
  }

  /**
   * HeadBucket; its 403 has no body, so a listing of one key tells a bad key or secret from a missing
   * permission. A write-only role (no s3:ListBucket) passes: its writes will say what is wrong.
   */
  async check(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.options.bucket }));
    } catch (err) {
      if ((err as SdkError).$metadata?.httpStatusCode !== 403) throw this.error(err, 'HeadBucket', '');
      try {
        await this.client.send(new ListObjectsV2Command({ Bucket: this.options.bucket, MaxKeys: 1, Prefix: `${this.options.prefix}_manifest/` }));
      } catch (err2) {
        const e = this.error(err2, 'ListObjectsV2', '');
        if (e.code !== 'permission_denied') throw e;
      }
    }
  }

  async createWriter(key: string, options: PutOptions, onUploadStarted?: (uploadId: string) => Promise<void>): Promise<ObjectWriter> {
    const store = this;
    const fullKey = this.key(key);
    const params = this.putParams(options);
    const conditions = { ...(options.ifMatch ? { IfMatch: options.ifMatch } : {}), ...(options.ifNoneMatch ? { IfNoneMatch: options.ifNoneMatch } : {}) };
    // S3 allows 10,000 parts: a known large object gets larger parts (whole MiB), the configured size otherwise.
    const partSize = Math.max(this.options.partSize, options.sizeHint ? Math.ceil(options.sizeHint / 9_000 / MIB) * MIB : 0);
    const hasher = new ObjectHasher();
    let part: Buffer = takePart(partSize);
    let fill = 0;
    let uploadId: string | undefined;
    const completed: CompletedPart[] = [];
    const inflight = new Set<Promise<void>>();
    let failure: ConnectorError | null = null;
    let finished = false;

    const startUpload = async () => {
      if (this.options.abortEarlierUploads) await this.abortUploadsOf(key);
      try {
        const r = await this.client.send(new CreateMultipartUploadCommand({ ...params, Key: fullKey }));
        uploadId = r.UploadId!;
      } catch (err) {
        throw this.error(err, 'CreateMultipartUpload', key);
      }
      if (onUploadStarted) await onUploadStarted(uploadId);
    };

    const sendPart = (buf: Buffer, length: number, partNumber: number) => {
      const body = buf.subarray(0, length);
      const md5 = hasher.addPart(body);
      const p = (async () => {
        try {
          const r = await this.client.send(
            new UploadPartCommand({
              Bucket: this.options.bucket,
              Key: fullKey,
              UploadId: uploadId,
              PartNumber: partNumber,
              Body: body,
              ContentMD5: md5.toString('base64'),
              ContentLength: length,
            }),
          );
          completed.push({ PartNumber: partNumber, ETag: r.ETag });
        } catch (err) {
          failure ??= this.error(err, 'UploadPart', key);
        } finally {
          givePart(buf);
        }
      })();
      inflight.add(p);
      void p.finally(() => inflight.delete(p));
    };

    const flushPart = async () => {
      if (!uploadId) await startUpload();
      while (inflight.size >= this.options.concurrency) await Promise.race(inflight);
      if (failure) throw failure;
      const partNumber = hasher.partMd5s.length + 1;
      if (partNumber > 10_000)
        throw new ConnectorError('archive', 'object_too_large', `${key} would need more than 10,000 parts of ${partSize} bytes; raise part_size`, false);
      sendPart(part, fill, partNumber);
      part = takePart(partSize);
      fill = 0;
    };

    return {
      get uploadId() {
        return uploadId;
      },
      async write(chunk: Buffer) {
        if (failure) throw failure;
        hasher.update(chunk);
        let at = 0;
        while (at < chunk.length) {
          const n = Math.min(chunk.length - at, partSize - fill);
          chunk.copy(part, fill, at, at + n);
          fill += n;
          at += n;
          if (fill === partSize) await flushPart();
        }
      },
      async finish(): Promise<StoredObject> {
        let etag: string;
        let versionId: string | undefined;
        if (!uploadId) {
          // Smaller than one part: one PutObject.
          const body = part.subarray(0, fill);
          const digest = createHash('md5').update(body).digest('base64');
          try {
            const r = await store.client.send(
              new PutObjectCommand({ ...params, ...conditions, Key: fullKey, Body: body, ContentMD5: digest, ContentLength: fill }),
            );
            etag = r.ETag ?? '';
            versionId = r.VersionId;
          } catch (err) {
            throw store.error(err, 'PutObject', key);
          }
        } else {
          if (fill > 0) await flushPart();
          await Promise.all(inflight);
          if (failure) throw failure;
          completed.sort((a, b) => a.PartNumber! - b.PartNumber!);
          try {
            const r = await store.client.send(
              new CompleteMultipartUploadCommand({
                Bucket: store.options.bucket,
                Key: fullKey,
                UploadId: uploadId,
                MultipartUpload: { Parts: completed },
                ...conditions,
              }),
            );
            etag = r.ETag ?? '';
            versionId = r.VersionId;
          } catch (err) {
            throw store.error(err, 'CompleteMultipartUpload', key);
          }
        }
        finished = true;
        givePart(part);
        const d = hasher.digest();
        if (store.options.sse !== 'aws:kms' && isMd5Etag(etag) && !etagMatches(etag, d.md5, d.multipartEtag)) {
          throw new ConnectorError(
            'archive',
            'upload_corrupt',
            `${store.where}${key}: the store's ETag ${etag} does not match what was sent (md5 ${d.md5}); the object is damaged and will be written again`,
            true,
          );
        }
        return {
          key,
          size: hasher.size,
          sha256: d.sha256,
          md5: d.md5,
          etag,
          parts: Math.max(1, hasher.partMd5s.length),
          storageClass: options.storageClass ?? store.options.storageClass,
          ...(versionId ? { versionId } : {}),
        };
      },
      async abort() {
        if (finished) return;
        finished = true;
        await Promise.allSettled(inflight);
        givePart(part);
        if (uploadId) await store.abortUpload(key, uploadId).catch(() => {});
      },
    };
  }

  async putSmall(key: string, body: Buffer, options: PutOptions): Promise<StoredObject> {
    const w = await this.createWriter(key, options);
    await w.write(body);
    return w.finish();
  }

  async head(key: string): Promise<ObjectHead | null> {
    try {
      const r = await this.client.send(new HeadObjectCommand({ Bucket: this.options.bucket, Key: this.key(key), ChecksumMode: 'ENABLED' }));
      return {
        size: Number(r.ContentLength ?? 0),
        etag: r.ETag ?? '',
        storageClass: r.StorageClass ?? 'STANDARD',
        ...(r.VersionId ? { versionId: r.VersionId } : {}),
        ...(r.ChecksumSHA256 ? { checksumSha256: r.ChecksumSHA256 } : {}),
        ...(r.LastModified ? { lastModified: r.LastModified } : {}),
      };
    } catch (err) {
      const e = err as SdkError;
      if (e.$metadata?.httpStatusCode === 404 || e.name === 'NotFound' || e.name === 'NoSuchKey') return null;
      throw this.error(err, 'HeadObject', key);
    }
  }

  async *read(key: string): AsyncIterable<Buffer> {
    let body: AsyncIterable<Uint8Array>;
    try {
      const r = await this.client.send(new GetObjectCommand({ Bucket: this.options.bucket, Key: this.key(key) }));
      body = r.Body as unknown as AsyncIterable<Uint8Array>;
    } catch (err) {
      throw this.error(err, 'GetObject', key);
    }
    try {
      for await (const c of body) yield Buffer.from(c.buffer, c.byteOffset, c.byteLength);
    } catch (err) {
      throw this.error(err, 'GetObject', key);
    }
  }

  /**
   * GetObject with its ETag, or 'unchanged' when the object's ETag is still `ifNoneMatch` (304), or null when
   * there is no object. The body is read by the caller (to its end, or the connection stays taken).
   */
  async getIfChanged(key: string, ifNoneMatch?: string): Promise<{ etag: string; size: number; body: AsyncIterable<Buffer> } | 'unchanged' | null> {
    let r;
    try {
      r = await this.client.send(
        new GetObjectCommand({ Bucket: this.options.bucket, Key: this.key(key), ...(ifNoneMatch ? { IfNoneMatch: ifNoneMatch } : {}) }),
      );
    } catch (err) {
      const e = err as SdkError;
      if (e.$metadata?.httpStatusCode === 304) return 'unchanged';
      if (e.$metadata?.httpStatusCode === 404 || e.name === 'NoSuchKey' || e.name === 'NotFound') return null;
      throw this.error(err, 'GetObject', key);
    }
    const raw = r.Body as unknown as AsyncIterable<Uint8Array>;
    const store = this;
    async function* body(): AsyncIterable<Buffer> {
      try {
        for await (const c of raw) yield Buffer.from(c.buffer, c.byteOffset, c.byteLength);
      } catch (err) {
        throw store.error(err, 'GetObject', key);
      }
    }
    return { etag: r.ETag ?? '', size: Number(r.ContentLength ?? 0), body: body() };
  }

  async *list(prefix: string): AsyncIterable<ListedObject> {
    let token: string | undefined;
    do {
      let r;
      try {
        r = await this.client.send(
          new ListObjectsV2Command({ Bucket: this.options.bucket, Prefix: this.key(prefix), ...(token ? { ContinuationToken: token } : {}) }),
        );
      } catch (err) {
        throw this.error(err, 'ListObjectsV2', prefix);
      }
      for (const o of r.Contents ?? []) {
        yield { key: o.Key!.slice(this.options.prefix.length), size: Number(o.Size ?? 0), etag: o.ETag ?? '', storageClass: o.StorageClass ?? 'STANDARD' };
      }
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (token);
  }

  async delete(key: string): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.options.bucket, Key: this.key(key) }));
    } catch (err) {
      const e = err as SdkError;
      if (e.$metadata?.httpStatusCode === 404) return;
      throw this.error(err, 'DeleteObject', key);
    }
  }

  async abortUpload(key: string, uploadId: string): Promise<void> {
    try {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.options.bucket, Key: this.key(key), UploadId: uploadId }));
    } catch (err) {
      const e = err as SdkError;
      if (e.$metadata?.httpStatusCode === 404 || e.name === 'NoSuchUpload') return;
      throw this.error(err, 'AbortMultipartUpload', key);
    }
  }

  /** Aborts every open multipart upload of exactly this key. */
  private async abortUploadsOf(key: string): Promise<void> {
    const fullKey = this.key(key);
    let r;
    try {
      r = await this.client.send(new ListMultipartUploadsCommand({ Bucket: this.options.bucket, Prefix: fullKey }));
    } catch (err) {
      throw this.error(err, 'ListMultipartUploads', key);
    }
    for (const u of r.Uploads ?? []) if (u.Key === fullKey && u.UploadId) await this.abortUpload(key, u.UploadId);
  }

  close(): void {
    this.client.destroy();
  }

  /** One sentence for what went wrong, naming the bucket, the operation and the fix. */
  error(err: unknown, op: string, key: string): ConnectorError {
    if (err instanceof ConnectorError) return err;
    const e = err as SdkError;
    const status = e.$metadata?.httpStatusCode;
    const code = e.Code ?? e.name ?? '';
    const where = `s3://${this.options.bucket}/${this.options.prefix}${key}`;
    const endpoint = this.options.endpoint ?? `the AWS endpoint of region ${this.options.region}`;
    const c = (id: string, msg: string, retryable = false) => new ConnectorError('archive', id, msg, retryable, { cause: err });
    if (e.name === 'CredentialsProviderError' || /Could not load credentials/i.test(e.message ?? '')) {
      return c(
        'no_credentials',
        `no AWS credentials for ${where}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary ones), AWS_PROFILE, or run with an instance or task role`,
      );
    }
    if (status === 412 || code === 'PreconditionFailed' || (status === 409 && code === 'ConditionalRequestConflict'))
      return c('precondition_failed', `${op} on ${where}: the object changed since it was read (${code || status})`);
    switch (code) {
      case 'InvalidAccessKeyId':
        return c('bad_credentials', `${endpoint} does not know the access key (InvalidAccessKeyId, ${op} ${where}); check AWS_ACCESS_KEY_ID or the profile`);
      case 'SignatureDoesNotMatch':
        return c('bad_credentials', `the secret key does not match the access key (SignatureDoesNotMatch, ${op} ${where}); check AWS_SECRET_ACCESS_KEY`);
      case 'ExpiredToken':
      case 'TokenRefreshRequired':
        return c('expired_credentials', `the session token has expired (${code}, ${op} ${where}); refresh the temporary credentials`);
      case 'InvalidToken':
        return c('bad_credentials', `the session token is not valid (InvalidToken, ${op} ${where}); check AWS_SESSION_TOKEN`);
      case 'AccessDenied':
      case 'Forbidden':
      case 'AllAccessDisabled':
        return c(
          'permission_denied',
          `access denied: ${op} on ${where} (${code}); grant s3:${op === 'HeadBucket' ? 'ListBucket' : op === 'CreateMultipartUpload' || op === 'UploadPart' || op === 'CompleteMultipartUpload' ? 'PutObject' : op === 'ListMultipartUploads' ? 'ListBucketMultipartUploads' : op.replace(/V2$/, '').replace('ListObjects', 'ListBucket')}${this.options.sse === 'aws:kms' ? ' and kms:GenerateDataKey / kms:Decrypt on the key' : ''} to the credentials`,
        );
      case 'NoSuchBucket':
        return c('no_bucket', `bucket ${this.options.bucket} does not exist at ${endpoint}; create it or fix bucket/endpoint`);
      case 'PermanentRedirect':
      case 'AuthorizationHeaderMalformed':
      case 'IllegalLocationConstraintException':
        return c(
          'wrong_region',
          `bucket ${this.options.bucket} is not in region ${this.options.region}${e.$response?.headers?.['x-amz-bucket-region'] ? ` (it is in ${e.$response.headers['x-amz-bucket-region']})` : ''}; set region`,
        );
      case 'InvalidStorageClass':
        return c('bad_storage_class', `${endpoint} does not accept storage class ${this.options.storageClass} (${op} ${where}); choose another storage_class`);
      case 'InvalidObjectState':
        return c('cold_object', `${where} is in a cold storage class and must be restored before it can be read (InvalidObjectState)`);
      case 'NoSuchKey':
        return c('missing_object', `${where} does not exist (NoSuchKey)`);
      case 'InvalidRequest':
      case 'InvalidArgument':
        return c(
          'refused',
          `${endpoint} refused ${op} on ${where} (${code}: ${(e.message ?? '').split('\n')[0]})${this.options.objectLock ? '; Object Lock needs a bucket created with Object Lock enabled' : ''}`,
        );
    }
    if (status === 404 && op === 'HeadBucket')
      return c('no_bucket', `bucket ${this.options.bucket} does not exist at ${endpoint}; create it or fix bucket/endpoint`);
    if (status === 403) return c('permission_denied', `access denied (403): ${op} on ${where}; check the credentials' permissions on the bucket`);
    if (status === 301)
      return c(
        'wrong_region',
        `bucket ${this.options.bucket} is not in region ${this.options.region}${e.$response?.headers?.['x-amz-bucket-region'] ? ` (it is in ${e.$response.headers['x-amz-bucket-region']})` : ''}; set region`,
      );
    const net = e.code ?? (e as { errno?: string }).errno ?? '';
    if (/ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ECONNRESET|ETIMEDOUT|EPIPE|socket hang up/i.test(`${net} ${e.message}`) || e.name === 'TimeoutError') {
      return c('unreachable', `cannot reach ${endpoint} for ${op} on ${where}: ${(e.message ?? net).split('\n')[0]}`, true);
    }
    if (status && status >= 500) return c('server_error', `${endpoint} failed ${op} on ${where} with ${status} ${code} after retries`, true);
    return c('s3_error', `${op} on ${where} failed: ${code || 'error'}${status ? ` (${status})` : ''}: ${(e.message ?? '').split('\n')[0]}`);
  }
}
