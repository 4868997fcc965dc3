/**
 * The S3 test server against the real @aws-sdk/client-s3 and the documented AWS behaviour it stands in for.
 * It is test infrastructure for the archive sink: when it is wrong, those tests prove nothing. The first
 * block pins down what s3rver 3.7.1 does on its own (the gaps README.md lists), so an s3rver upgrade that
 * changes them shows up here.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetBucketVersioningCommand,
  GetObjectCommand,
  GetObjectLegalHoldCommand,
  GetBucketLifecycleConfigurationCommand,
  GetObjectLockConfigurationCommand,
  GetObjectRetentionCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsCommand,
  ListObjectsV2Command,
  ListObjectVersionsCommand,
  ListPartsCommand,
  PutBucketLifecycleConfigurationCommand,
  PutBucketVersioningCommand,
  PutObjectCommand,
  PutObjectLegalHoldCommand,
  PutObjectRetentionCommand,
  RestoreObjectCommand,
  S3Client,
  UploadPartCommand,
  type ListObjectsV2CommandOutput,
  type PutObjectCommandInput,
} from '@aws-sdk/client-s3';
import { SignatureV4 } from '@smithy/signature-v4';
import { classifyRequest, s3Checksum, startS3Server, type S3ServerHandle, type S3ServerOptions } from './server.js';
import { createBucket, requestJson, s3ClientFor, spawnS3Server } from './client.js';

const MIB = 1024 * 1024;
const md5b64 = (b: Buffer | string) => crypto.createHash('md5').update(b).digest('base64');
const md5hex = (b: Buffer | string) => crypto.createHash('md5').update(b).digest('hex');
const tomorrow = () => new Date(Date.now() + 86_400_000);
const utf8 = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

async function withServer(opts: S3ServerOptions, fn: (s3: S3ServerHandle) => Promise<void>): Promise<void> {
  const s3 = await startS3Server(opts);
  try {
    await fn(s3);
  } finally {
    await s3.close();
  }
}

type S3Err = Error & { code?: string; $metadata?: { httpStatusCode?: number; attempts?: number }; [k: string]: unknown };

/** The error a command rejects with (fails when it resolves). */
async function rejection(p: Promise<unknown>): Promise<S3Err> {
  try {
    await p;
  } catch (e) {
    return e as S3Err;
  }
  assert.fail('expected the call to fail');
}

async function bodyOf(client: S3Client, Bucket: string, Key: string, VersionId?: string): Promise<Buffer> {
  const r = await client.send(new GetObjectCommand({ Bucket, Key, VersionId }));
  return Buffer.from(await r.Body!.transformToByteArray());
}

/** A raw HTTP request (no signature), for what the SDK will not send. */
function raw(
  url: string,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: Buffer | string,
): Promise<{ status: number; headers: http.IncomingHttpHeaders; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(new URL(path, url), { method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

function isConnectionError(e: S3Err): boolean {
  return e.$metadata?.httpStatusCode === undefined && /ECONNRESET|EPIPE|socket hang up|aborted|premature/i.test(`${e.code ?? ''} ${e.message} ${e.name}`);
}

describe('classification (method + query + headers → operation)', () => {
  const cases: Array<[string, string, Record<string, string>, string]> = [
    ['GET', '/', {}, 'ListBuckets'],
    ['PUT', '/b', {}, 'CreateBucket'],
    ['HEAD', '/b', {}, 'HeadBucket'],
    ['DELETE', '/b', {}, 'DeleteBucket'],
    ['GET', '/b?list-type=2&prefix=x', {}, 'ListObjectsV2'],
    ['GET', '/b?prefix=x', {}, 'ListObjects'],
    ['GET', '/b?uploads', {}, 'ListMultipartUploads'],
    ['GET', '/b?versions', {}, 'ListObjectVersions'],
    ['PUT', '/b?versioning', {}, 'PutBucketVersioning'],
    ['PUT', '/b?object-lock', {}, 'PutObjectLockConfiguration'],
    ['GET', '/b?object-lock', {}, 'GetObjectLockConfiguration'],
    ['PUT', '/b?lifecycle', {}, 'PutBucketLifecycleConfiguration'],
    ['POST', '/b?delete', {}, 'DeleteObjects'],
    ['PUT', '/b/k?x-id=PutObject', {}, 'PutObject'],
    ['PUT', '/b/k', { 'x-amz-copy-source': '/b/j' }, 'CopyObject'],
    ['POST', '/b/k?uploads', {}, 'CreateMultipartUpload'],
    ['PUT', '/b/k?partNumber=1&uploadId=u', {}, 'UploadPart'],
    ['PUT', '/b/k?partNumber=1&uploadId=u', { 'x-amz-copy-source': '/b/j' }, 'UploadPartCopy'],
    ['POST', '/b/k?uploadId=u', {}, 'CompleteMultipartUpload'],
    ['DELETE', '/b/k?uploadId=u', {}, 'AbortMultipartUpload'],
    ['GET', '/b/k?uploadId=u', {}, 'ListParts'],
    ['GET', '/b/a%20b/c?x-id=GetObject', {}, 'GetObject'],
    ['HEAD', '/b/k', {}, 'HeadObject'],
    ['DELETE', '/b/k', {}, 'DeleteObject'],
    ['PUT', '/b/k?retention', {}, 'PutObjectRetention'],
    ['GET', '/b/k?retention', {}, 'GetObjectRetention'],
    ['PUT', '/b/k?legal-hold', {}, 'PutObjectLegalHold'],
    ['POST', '/b/k?restore', {}, 'RestoreObject'],
    ['GET', '/b/k?tagging', {}, 'GetObjectTagging'],
  ];
  for (const [method, url, headers, op] of cases) {
    test(`${method} ${url}${Object.keys(headers).length ? ' (copy source)' : ''} → ${op}`, () => {
      assert.equal(classifyRequest(method, url, headers).op, op);
    });
  }
  test('bucket and key are decoded from the path', () => {
    const r = classifyRequest('GET', '/my-bucket/dir/a%20b%2Bc.txt', {});
    assert.equal(r.bucket, 'my-bucket');
    assert.equal(r.key, 'dir/a b+c.txt');
  });
});

describe('s3rver 3.7.1 on its own (no proxy, no store fixes): the gaps the proxy fills', () => {
  let bare: { run(): Promise<{ port: number }>; close(): Promise<void> };
  let dir: string;
  let url: string;
  let direct: S3Client;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'auditship-s3rver-'));
    const S3rver = createRequire(import.meta.url)('s3rver') as new (o: object) => typeof bare;
    bare = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: dir, vhostBuckets: false, configureBuckets: [{ name: 'direct' }] });
    url = `http://127.0.0.1:${(await bare.run()).port}`;
    direct = s3ClientFor(url, { maxAttempts: 1 });
  });
  after(async () => {
    direct.destroy();
    await bare.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('Content-MD5 and x-amz-checksum-crc32 are not verified', async () => {
    await direct.send(new PutObjectCommand({ Bucket: 'direct', Key: 'md5', Body: 'abc', ContentMD5: md5b64('other') }));
    await direct.send(new PutObjectCommand({ Bucket: 'direct', Key: 'crc', Body: 'abc', ChecksumCRC32: 'AAAAAA==' }));
  });

  test('an aws-chunked body (the SDK default for streams) is stored with its framing', async () => {
    await direct.send(new PutObjectCommand({ Bucket: 'direct', Key: 'chunked', Body: Readable.from([Buffer.from('hello')]), ContentLength: 5 }));
    const text = (await bodyOf(direct, 'direct', 'chunked')).toString();
    assert.match(text, /^5\r\nhello\r\n0\r\nx-amz-checksum-crc32:/);
  });

  test('multipart: the ETag is the MD5 of the whole object; Abort, ListMultipartUploads are missing; unknown uploads take parts', async () => {
    const { UploadId } = await direct.send(new CreateMultipartUploadCommand({ Bucket: 'direct', Key: 'mp' }));
    const p1 = await direct.send(new UploadPartCommand({ Bucket: 'direct', Key: 'mp', UploadId, PartNumber: 1, Body: 'aaa' }));
    const done = await direct.send(
      new CompleteMultipartUploadCommand({ Bucket: 'direct', Key: 'mp', UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: p1.ETag }] } }),
    );
    assert.equal(done.ETag, `"${md5hex('aaa')}"`);
    const second = await direct.send(new CreateMultipartUploadCommand({ Bucket: 'direct', Key: 'mp2' }));
    const abort = await rejection(direct.send(new AbortMultipartUploadCommand({ Bucket: 'direct', Key: 'mp2', UploadId: second.UploadId })));
    assert.equal(abort.$metadata?.httpStatusCode, 405);
    const list = await rejection(direct.send(new ListMultipartUploadsCommand({ Bucket: 'direct' })));
    assert.equal(list.name, 'NotImplemented');
    await direct.send(new UploadPartCommand({ Bucket: 'direct', Key: 'mp', UploadId: 'no-such-upload', PartNumber: 1, Body: 'x' }));
  });

  test('ListObjectsV2 fails with 500 on any truncated page (DES continuation tokens under OpenSSL 3) and sorts "a/b" before "a-c"', async () => {
    for (const Key of ['lst/a/b', 'lst/a-c', 'lst/b']) await direct.send(new PutObjectCommand({ Bucket: 'direct', Key, Body: 'x' }));
    const err = await rejection(direct.send(new ListObjectsV2Command({ Bucket: 'direct', Prefix: 'lst/', MaxKeys: 1 })));
    assert.equal(err.$metadata?.httpStatusCode, 500);
    const all = await direct.send(new ListObjectsV2Command({ Bucket: 'direct', Prefix: 'lst/' }));
    assert.deepEqual(
      all.Contents!.map((c) => c.Key),
      ['lst/a/b', 'lst/a-c', 'lst/b'],
    );
  });

  test('PutBucketVersioning is routed to CreateBucket; retention is NotImplemented; lock and SSE headers are ignored', async () => {
    const v = await rejection(direct.send(new PutBucketVersioningCommand({ Bucket: 'direct', VersioningConfiguration: { Status: 'Enabled' } })));
    assert.equal(v.name, 'BucketAlreadyExists');
    const put = await direct.send(
      new PutObjectCommand({
        Bucket: 'direct',
        Key: 'locked',
        Body: 'abc',
        ObjectLockMode: 'COMPLIANCE',
        ObjectLockRetainUntilDate: tomorrow(),
        ServerSideEncryption: 'aws:kms',
      }),
    );
    assert.equal(put.ServerSideEncryption, undefined);
    assert.equal(put.VersionId, undefined);
    const head = await direct.send(new HeadObjectCommand({ Bucket: 'direct', Key: 'locked' }));
    assert.equal(head.ObjectLockMode, undefined);
    await direct.send(new DeleteObjectCommand({ Bucket: 'direct', Key: 'locked' }));
    const r = await rejection(direct.send(new GetObjectRetentionCommand({ Bucket: 'direct', Key: 'md5' })));
    assert.equal(r.name, 'NotImplemented');
  });

  test('GLACIER objects are readable; HEAD echoes the class; ListObjectsV2 says STANDARD', async () => {
    await direct.send(new PutObjectCommand({ Bucket: 'direct', Key: 'cold/g', Body: 'frozen', StorageClass: 'GLACIER' }));
    assert.equal((await bodyOf(direct, 'direct', 'cold/g')).toString(), 'frozen');
    const head = await direct.send(new HeadObjectCommand({ Bucket: 'direct', Key: 'cold/g' }));
    assert.equal(head.StorageClass, 'GLACIER');
    const list = await direct.send(new ListObjectsV2Command({ Bucket: 'direct', Prefix: 'cold/' }));
    assert.equal(list.Contents![0]!.StorageClass, 'STANDARD');
  });

  test('also missing or mis-routed: ListParts, ListObjectVersions, lock configuration, RestoreObject, encryption and lifecycle; GetBucketVersioning lists objects', async () => {
    const codes = async (p: Promise<unknown>) => {
      const e = await rejection(p);
      return [e.$metadata?.httpStatusCode, e.name];
    };
    assert.deepEqual(await codes(direct.send(new ListPartsCommand({ Bucket: 'direct', Key: 'k', UploadId: 'u' }))), [405, 'MethodNotAllowed']);
    assert.deepEqual(await codes(direct.send(new ListObjectVersionsCommand({ Bucket: 'direct' }))), [405, 'MethodNotAllowed']);
    assert.deepEqual(await codes(direct.send(new GetObjectLockConfigurationCommand({ Bucket: 'direct' }))), [501, 'NotImplemented']);
    assert.deepEqual(
      await codes(direct.send(new PutObjectRetentionCommand({ Bucket: 'direct', Key: 'md5', Retention: { Mode: 'GOVERNANCE', RetainUntilDate: tomorrow() } }))),
      [405, 'MethodNotAllowed'],
    );
    assert.equal((await codes(direct.send(new RestoreObjectCommand({ Bucket: 'direct', Key: 'md5', RestoreRequest: { Days: 1 } }))))[0], 501);
    assert.deepEqual(await codes(direct.send(new GetBucketLifecycleConfigurationCommand({ Bucket: 'direct' }))), [501, 'NotImplemented']);
    const versioning = await raw(url, 'GET', '/direct?versioning', { 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' });
    assert.match(versioning.text, /<ListBucketResult/);
  });

  test('anonymous requests are served; CreateBucket on an existing bucket is 409; a URL-encoded copy source is NoSuchKey; encoding-type is ignored', async () => {
    await direct.send(new PutObjectCommand({ Bucket: 'direct', Key: 'a b/x+y', Body: 'x' }));
    assert.equal((await raw(url, 'GET', '/direct/md5')).status, 200);
    assert.equal((await rejection(direct.send(new CreateBucketCommand({ Bucket: 'direct' })))).name, 'BucketAlreadyExists');
    const copy = await rejection(direct.send(new CopyObjectCommand({ Bucket: 'direct', Key: 'copy', CopySource: `direct/${encodeURIComponent('a b/x+y')}` })));
    assert.equal(copy.name, 'NoSuchKey');
    const listed = await direct.send(new ListObjectsV2Command({ Bucket: 'direct', Prefix: 'a b/', EncodingType: 'url' }));
    assert.deepEqual([listed.EncodingType, listed.Contents!.map((c) => c.Key)], [undefined, ['a b/x+y']]);
  });

  test('SigV4 signatures are not checked (any secret works for S3RVER)', async () => {
    const wrong = s3ClientFor(url, { maxAttempts: 1, secretAccessKey: 'not-the-secret' });
    await wrong.send(new HeadObjectCommand({ Bucket: 'direct', Key: 'md5' }));
    wrong.destroy();
  });

  test('conditional writes are ignored: If-None-Match: * and a stale or missing If-Match overwrite or create (PutObject, CompleteMultipartUpload)', async () => {
    const first = await direct.send(new PutObjectCommand({ Bucket: 'direct', Key: 'cond', Body: 'first' }));
    await direct.send(new PutObjectCommand({ Bucket: 'direct', Key: 'cond', Body: 'second', IfNoneMatch: '*' }));
    assert.equal((await bodyOf(direct, 'direct', 'cond')).toString(), 'second');
    await direct.send(new PutObjectCommand({ Bucket: 'direct', Key: 'cond', Body: 'third', IfMatch: first.ETag }));
    assert.equal((await bodyOf(direct, 'direct', 'cond')).toString(), 'third');
    await direct.send(new PutObjectCommand({ Bucket: 'direct', Key: 'cond-missing', Body: 'created', IfMatch: first.ETag }));
    assert.equal((await bodyOf(direct, 'direct', 'cond-missing')).toString(), 'created');
    const { UploadId } = await direct.send(new CreateMultipartUploadCommand({ Bucket: 'direct', Key: 'cond' }));
    const part = await direct.send(new UploadPartCommand({ Bucket: 'direct', Key: 'cond', UploadId, PartNumber: 1, Body: 'multipart' }));
    await direct.send(
      new CompleteMultipartUploadCommand({
        Bucket: 'direct',
        Key: 'cond',
        UploadId,
        MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.ETag }] },
        IfNoneMatch: '*',
      }),
    );
    assert.equal((await bodyOf(direct, 'direct', 'cond')).toString(), 'multipart');
  });
});

describe('objects through the proxy', () => {
  let s3: S3ServerHandle;
  let client: S3Client;
  before(async () => {
    s3 = await startS3Server({ buckets: ['arch'] });
    client = s3ClientFor(s3.url, { maxAttempts: 1 });
  });
  after(async () => {
    client.destroy();
    await s3.close();
  });

  test('put, get, head, list, delete round trip with SSE-S3 by default', async () => {
    const put = await client.send(new PutObjectCommand({ Bucket: 'arch', Key: 'rt/one.json', Body: '{"a":1}', ContentType: 'application/json' }));
    assert.equal(put.ETag, `"${md5hex('{"a":1}')}"`);
    assert.equal(put.ServerSideEncryption, 'AES256');
    assert.equal(put.ChecksumCRC32, s3Checksum('CRC32', Buffer.from('{"a":1}')));
    const get = await client.send(new GetObjectCommand({ Bucket: 'arch', Key: 'rt/one.json' }));
    assert.equal(await get.Body!.transformToString(), '{"a":1}');
    assert.equal(get.ContentType, 'application/json');
    assert.equal(get.ServerSideEncryption, 'AES256');
    assert.ok(get.$metadata.requestId, 'x-amz-request-id is sent');
    const head = await client.send(new HeadObjectCommand({ Bucket: 'arch', Key: 'rt/one.json' }));
    assert.equal(head.ContentLength, 7);
    assert.equal(head.StorageClass, undefined, 'AWS sends no x-amz-storage-class for STANDARD');
    const list = await client.send(new ListObjectsV2Command({ Bucket: 'arch', Prefix: 'rt/' }));
    assert.deepEqual(
      list.Contents!.map((c) => [c.Key, c.Size, c.StorageClass]),
      [['rt/one.json', 7, 'STANDARD']],
    );
    await client.send(new DeleteObjectCommand({ Bucket: 'arch', Key: 'rt/one.json' }));
    const gone = await rejection(client.send(new GetObjectCommand({ Bucket: 'arch', Key: 'rt/one.json' })));
    assert.equal(gone.name, 'NoSuchKey');
  });

  test('stream bodies (aws-chunked with a trailing CRC32) are stored decoded; WHEN_REQUIRED sends plain bodies', async () => {
    await client.send(
      new PutObjectCommand({ Bucket: 'arch', Key: 'chunked', Body: Readable.from([Buffer.from('hello '), Buffer.from('stream')]), ContentLength: 12 }),
    );
    assert.equal((await bodyOf(client, 'arch', 'chunked')).toString(), 'hello stream');
    const rec = s3.requests({ op: 'PutObject', keyPrefix: 'chunked' })[0]!;
    assert.equal(rec.headers['x-amz-trailer'], 'x-amz-checksum-crc32');
    assert.ok(rec.bodyBytes > 12, 'the framed body was longer than the object');
    const relaxed = s3ClientFor(s3.url, { maxAttempts: 1, requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' });
    await relaxed.send(new PutObjectCommand({ Bucket: 'arch', Key: 'plain', Body: Readable.from([Buffer.from('plain')]), ContentLength: 5 }));
    assert.equal((await bodyOf(relaxed, 'arch', 'plain')).toString(), 'plain');
    const plain = s3.requests({ op: 'PutObject', keyPrefix: 'plain' })[0]!;
    assert.equal(plain.headers['x-amz-trailer'], undefined);
    assert.equal(plain.headers['x-amz-checksum-crc32'], undefined);
    relaxed.destroy();
  });

  test('GetObject returns the stored CRC32 when asked (x-amz-checksum-mode), and the SDK validates it', async () => {
    await client.send(new PutObjectCommand({ Bucket: 'arch', Key: 'sum', Body: 'checked' }));
    const get = await client.send(new GetObjectCommand({ Bucket: 'arch', Key: 'sum', ChecksumMode: 'ENABLED' }));
    assert.equal(get.ChecksumCRC32, s3Checksum('CRC32', Buffer.from('checked')));
    assert.equal(await get.Body!.transformToString(), 'checked');
  });

  test('a wrong Content-MD5 or CRC32 is BadDigest and leaves the previous object in place', async () => {
    await client.send(new PutObjectCommand({ Bucket: 'arch', Key: 'digest', Body: 'v1' }));
    const md5 = await rejection(client.send(new PutObjectCommand({ Bucket: 'arch', Key: 'digest', Body: 'v2', ContentMD5: md5b64('v3') })));
    assert.equal(md5.name, 'BadDigest');
    assert.equal(md5.message, 'The Content-MD5 you specified did not match what we received.');
    const crc = await rejection(
      client.send(new PutObjectCommand({ Bucket: 'arch', Key: 'digest', Body: 'v2', ChecksumCRC32: s3Checksum('CRC32', Buffer.from('v3')) })),
    );
    assert.equal(crc.name, 'BadDigest');
    assert.equal(crc.message, 'The CRC32 you specified did not match the calculated checksum.');
    const bad = await rejection(client.send(new PutObjectCommand({ Bucket: 'arch', Key: 'digest', Body: 'v2', ContentMD5: 'not-md5' })));
    assert.equal(bad.name, 'InvalidDigest');
    assert.equal((await bodyOf(client, 'arch', 'digest')).toString(), 'v1');
    for (const alg of ['CRC32C', 'SHA1', 'SHA256', 'CRC64NVME'] as const) {
      const r = await client.send(new PutObjectCommand({ Bucket: 'arch', Key: `alg/${alg}`, Body: 'algorithm', ChecksumAlgorithm: alg }));
      const field = `Checksum${alg}` as keyof typeof r;
      assert.equal(r[field], s3Checksum(alg, Buffer.from('algorithm')), alg);
    }
  });

  test('a malformed aws-chunked body is answered 400 mid-body (not a reset), and stores nothing', async () => {
    await withServer({ buckets: ['raw'], allowAnonymous: true }, async (open) => {
      const body = `5\r\nhello\r\nzz\r\n${'x'.repeat(200_000)}`;
      const r = await raw(
        open.url,
        'PUT',
        '/raw/chunky',
        {
          'content-encoding': 'aws-chunked',
          'x-amz-content-sha256': 'STREAMING-UNSIGNED-PAYLOAD-TRAILER',
          'x-amz-decoded-content-length': '10',
          'content-length': String(body.length),
        },
        body,
      );
      assert.equal(r.status, 400);
      assert.match(r.text, /<Code>InvalidChunkSizeError<\/Code>/);
      assert.equal((await raw(open.url, 'HEAD', '/raw/chunky')).status, 404);
      const ok = await raw(
        open.url,
        'PUT',
        '/raw/chunky',
        {
          'content-encoding': 'aws-chunked',
          'x-amz-content-sha256': 'STREAMING-UNSIGNED-PAYLOAD-TRAILER',
          'x-amz-decoded-content-length': '5',
          'x-amz-trailer': 'x-amz-checksum-crc32',
        },
        `5\r\nhello\r\n0\r\nx-amz-checksum-crc32:${s3Checksum('CRC32', Buffer.from('hello'))}\r\n\r\n`,
      );
      assert.equal(ok.status, 200);
      assert.equal((await raw(open.url, 'GET', '/raw/chunky')).text, 'hello');
    });
  });

  test('a client that goes away mid-upload leaves the previous object intact (atomic writes)', async () => {
    await client.send(new PutObjectCommand({ Bucket: 'arch', Key: 'atomic', Body: 'old' }));
    const abort = new AbortController();
    const slow = new Readable({ read() {} });
    slow.push(Buffer.alloc(64 * 1024, 'n'));
    const relaxed = s3ClientFor(s3.url, { maxAttempts: 1, requestChecksumCalculation: 'WHEN_REQUIRED' });
    const pending = relaxed.send(new PutObjectCommand({ Bucket: 'arch', Key: 'atomic', Body: slow, ContentLength: MIB }), { abortSignal: abort.signal });
    setTimeout(() => abort.abort(), 150);
    await rejection(pending);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal((await bodyOf(client, 'arch', 'atomic')).toString(), 'old');
    const rec = s3.requests({ op: 'PutObject', keyPrefix: 'atomic' }).at(-1)!;
    assert.equal(rec.clientAborted, true);
    relaxed.destroy();
  });

  test('multipart upload of three parts: the ETag is MD5(part MD5s)-3, parts are checked, ListParts works', async () => {
    const parts = [Buffer.alloc(5 * MIB, 'a'), Buffer.alloc(5 * MIB, 'b'), Buffer.from('tail')];
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: 'arch', Key: 'big.bin' }));
    const etags: string[] = [];
    for (let i = 0; i < parts.length; i++) {
      const r = await client.send(new UploadPartCommand({ Bucket: 'arch', Key: 'big.bin', UploadId, PartNumber: i + 1, Body: parts[i] }));
      assert.equal(r.ETag, `"${md5hex(parts[i]!)}"`);
      etags.push(r.ETag);
    }
    const listed = await client.send(new ListPartsCommand({ Bucket: 'arch', Key: 'big.bin', UploadId }));
    assert.deepEqual(
      listed.Parts!.map((p) => [p.PartNumber, p.Size]),
      [
        [1, 5 * MIB],
        [2, 5 * MIB],
        [3, 4],
      ],
    );
    const order = await rejection(
      client.send(
        new CompleteMultipartUploadCommand({
          Bucket: 'arch',
          Key: 'big.bin',
          UploadId,
          MultipartUpload: {
            Parts: [
              { PartNumber: 2, ETag: etags[1] },
              { PartNumber: 1, ETag: etags[0] },
            ],
          },
        }),
      ),
    );
    assert.equal(order.name, 'InvalidPartOrder');
    const wrong = await rejection(
      client.send(
        new CompleteMultipartUploadCommand({
          Bucket: 'arch',
          Key: 'big.bin',
          UploadId,
          MultipartUpload: { Parts: [{ PartNumber: 1, ETag: `"${md5hex('x')}"` }] },
        }),
      ),
    );
    assert.equal(wrong.name, 'InvalidPart');
    const done = await client.send(
      new CompleteMultipartUploadCommand({
        Bucket: 'arch',
        Key: 'big.bin',
        UploadId,
        MultipartUpload: { Parts: etags.map((ETag, i) => ({ PartNumber: i + 1, ETag })) },
      }),
    );
    const expected = `${crypto
      .createHash('md5')
      .update(Buffer.concat(parts.map((p) => crypto.createHash('md5').update(p).digest())))
      .digest('hex')}-3`;
    assert.equal(done.ETag, `"${expected}"`);
    const head = await client.send(new HeadObjectCommand({ Bucket: 'arch', Key: 'big.bin' }));
    assert.equal(head.ETag, `"${expected}"`);
    assert.equal(head.ContentLength, 10 * MIB + 4);
    assert.ok((await bodyOf(client, 'arch', 'big.bin')).equals(Buffer.concat(parts)));
  });

  test('parts below 5 MiB (but the last) are EntityTooSmall; Abort removes the upload; parts of an aborted upload are NoSuchUpload', async () => {
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: 'arch', Key: 'small.bin' }));
    const a = await client.send(new UploadPartCommand({ Bucket: 'arch', Key: 'small.bin', UploadId, PartNumber: 1, Body: 'small' }));
    const b = await client.send(new UploadPartCommand({ Bucket: 'arch', Key: 'small.bin', UploadId, PartNumber: 2, Body: 'last' }));
    const small = await rejection(
      client.send(
        new CompleteMultipartUploadCommand({
          Bucket: 'arch',
          Key: 'small.bin',
          UploadId,
          MultipartUpload: {
            Parts: [
              { PartNumber: 1, ETag: a.ETag },
              { PartNumber: 2, ETag: b.ETag },
            ],
          },
        }),
      ),
    );
    assert.equal(small.name, 'EntityTooSmall');
    const before = await client.send(new ListMultipartUploadsCommand({ Bucket: 'arch', Prefix: 'small' }));
    assert.deepEqual(
      before.Uploads!.map((u) => [u.Key, u.UploadId]),
      [['small.bin', UploadId]],
    );
    await client.send(new AbortMultipartUploadCommand({ Bucket: 'arch', Key: 'small.bin', UploadId }));
    const afterAbort = await client.send(new ListMultipartUploadsCommand({ Bucket: 'arch', Prefix: 'small' }));
    assert.equal(afterAbort.Uploads, undefined);
    const late = await rejection(client.send(new UploadPartCommand({ Bucket: 'arch', Key: 'small.bin', UploadId, PartNumber: 3, Body: 'late' })));
    assert.equal(late.name, 'NoSuchUpload');
    const again = await rejection(client.send(new AbortMultipartUploadCommand({ Bucket: 'arch', Key: 'small.bin', UploadId })));
    assert.equal(again.name, 'NoSuchUpload');
  });

  test('ListObjectsV2: UTF-8 order, prefix, delimiter, start-after and continuation tokens; V1 markers', async () => {
    const keys = ['p/a/b', 'p/a-c', 'p/a/d', 'p/b', 'p/c/1', 'p/c/2', 'p/d'];
    for (const Key of keys) await client.send(new PutObjectCommand({ Bucket: 'arch', Key, Body: 'x' }));
    const seen: string[] = [];
    let token: string | undefined;
    let pages = 0;
    do {
      const r: ListObjectsV2CommandOutput = await client.send(new ListObjectsV2Command({ Bucket: 'arch', Prefix: 'p/', MaxKeys: 2, ContinuationToken: token }));
      assert.ok((r.KeyCount ?? 0) <= 2);
      seen.push(...(r.Contents ?? []).map((c) => c.Key!));
      token = r.NextContinuationToken;
      pages++;
    } while (token);
    assert.deepEqual(seen, [...keys].sort());
    assert.deepEqual(seen.slice(0, 3), ['p/a-c', 'p/a/b', 'p/a/d']);
    assert.equal(pages, 4);
    const grouped = await client.send(new ListObjectsV2Command({ Bucket: 'arch', Prefix: 'p/', Delimiter: '/' }));
    assert.deepEqual(
      grouped.Contents!.map((c) => c.Key),
      ['p/a-c', 'p/b', 'p/d'],
    );
    assert.deepEqual(
      grouped.CommonPrefixes!.map((c) => c.Prefix),
      ['p/a/', 'p/c/'],
    );
    assert.equal(grouped.KeyCount, 5);
    const paged: string[] = [];
    token = undefined;
    do {
      const r: ListObjectsV2CommandOutput = await client.send(
        new ListObjectsV2Command({ Bucket: 'arch', Prefix: 'p/', Delimiter: '/', MaxKeys: 2, ContinuationToken: token }),
      );
      paged.push(...(r.Contents ?? []).map((c) => c.Key!), ...(r.CommonPrefixes ?? []).map((c) => c.Prefix!));
      token = r.NextContinuationToken;
    } while (token);
    assert.deepEqual(paged.sort(), ['p/a-c', 'p/a/', 'p/b', 'p/c/', 'p/d']);
    const after = await client.send(new ListObjectsV2Command({ Bucket: 'arch', Prefix: 'p/', StartAfter: 'p/b' }));
    assert.deepEqual(
      after.Contents!.map((c) => c.Key),
      ['p/c/1', 'p/c/2', 'p/d'],
    );
    const v1 = await client.send(new ListObjectsCommand({ Bucket: 'arch', Prefix: 'p/', Marker: 'p/c/1', MaxKeys: 1 }));
    assert.deepEqual(
      v1.Contents!.map((c) => c.Key),
      ['p/c/2'],
    );
    assert.equal(v1.IsTruncated, true);
    const bad = await rejection(client.send(new ListObjectsV2Command({ Bucket: 'arch', ContinuationToken: 'bogus' })));
    assert.equal(bad.name, 'InvalidArgument');
  });

  test('keys with spaces, +, =, %, quotes, non-ASCII and emoji: signed, stored, listed (also url-encoded) and copied', async () => {
    const keys = ['odd/a b+c=d~e*f(ü).txt', "odd/q'uote&amp;<x>.json", 'odd/100%.csv', 'odd/日本/語', 'odd/😀;,:@$'];
    for (const Key of keys) {
      await client.send(new PutObjectCommand({ Bucket: 'arch', Key, Body: Key }));
      assert.equal((await bodyOf(client, 'arch', Key)).toString(), Key);
    }
    const listed = await client.send(new ListObjectsV2Command({ Bucket: 'arch', Prefix: 'odd/' }));
    assert.deepEqual(
      listed.Contents!.map((c) => c.Key),
      [...keys].sort(utf8),
    );
    const encoded = await client.send(new ListObjectsV2Command({ Bucket: 'arch', Prefix: 'odd/a b', EncodingType: 'url' }));
    assert.deepEqual([encoded.Prefix, encoded.Contents!.map((c) => c.Key)], ['odd/a+b', ['odd/a+b%2Bc%3Dd~e*f(%C3%BC).txt']]);
    await client.send(new CopyObjectCommand({ Bucket: 'arch', Key: 'odd-copy', CopySource: `arch/${encodeURIComponent(keys[0]!)}` }));
    assert.equal((await bodyOf(client, 'arch', 'odd-copy')).toString(), keys[0]);
  });

  test('DeleteObjects deletes, reports missing keys as deleted, and honours Quiet', async () => {
    for (const Key of ['del/1', 'del/2']) await client.send(new PutObjectCommand({ Bucket: 'arch', Key, Body: 'x' }));
    const r = await client.send(new DeleteObjectsCommand({ Bucket: 'arch', Delete: { Objects: [{ Key: 'del/1' }, { Key: 'del/none' }] } }));
    assert.deepEqual(
      r.Deleted!.map((d) => d.Key),
      ['del/1', 'del/none'],
    );
    const quiet = await client.send(new DeleteObjectsCommand({ Bucket: 'arch', Delete: { Objects: [{ Key: 'del/2' }], Quiet: true } }));
    assert.equal(quiet.Deleted, undefined);
    const left = await client.send(new ListObjectsV2Command({ Bucket: 'arch', Prefix: 'del/' }));
    assert.equal(left.KeyCount, 0);
  });

  test('GLACIER and DEEP_ARCHIVE answer GetObject with InvalidObjectState until restored; HEAD works; GLACIER_IR stays readable', async () => {
    await client.send(new PutObjectCommand({ Bucket: 'arch', Key: 'cold/g', Body: 'frozen', StorageClass: 'GLACIER' }));
    await client.send(new PutObjectCommand({ Bucket: 'arch', Key: 'cold/d', Body: 'deeper', StorageClass: 'DEEP_ARCHIVE' }));
    await client.send(new PutObjectCommand({ Bucket: 'arch', Key: 'cold/ir', Body: 'instant', StorageClass: 'GLACIER_IR' }));
    await client.send(new PutObjectCommand({ Bucket: 'arch', Key: 'cold/ia', Body: 'ia', StorageClass: 'STANDARD_IA' }));
    for (const [Key, cls] of [
      ['cold/g', 'GLACIER'],
      ['cold/d', 'DEEP_ARCHIVE'],
    ] as const) {
      const e = await rejection(client.send(new GetObjectCommand({ Bucket: 'arch', Key })));
      assert.equal(e.name, 'InvalidObjectState');
      assert.equal(e.$metadata?.httpStatusCode, 403);
      assert.equal(e['StorageClass'], cls);
      const head = await client.send(new HeadObjectCommand({ Bucket: 'arch', Key }));
      assert.equal(head.StorageClass, cls);
    }
    assert.equal((await bodyOf(client, 'arch', 'cold/ir')).toString(), 'instant');
    assert.equal((await bodyOf(client, 'arch', 'cold/ia')).toString(), 'ia');
    const list = await client.send(new ListObjectsV2Command({ Bucket: 'arch', Prefix: 'cold/' }));
    assert.deepEqual(Object.fromEntries(list.Contents!.map((c) => [c.Key, c.StorageClass])), {
      'cold/d': 'DEEP_ARCHIVE',
      'cold/g': 'GLACIER',
      'cold/ia': 'STANDARD_IA',
      'cold/ir': 'GLACIER_IR',
    });
    // Restoring makes it readable; overwriting with another class forgets the class.
    const restore = await client.send(new RestoreObjectCommand({ Bucket: 'arch', Key: 'cold/g', RestoreRequest: { Days: 1 } }));
    assert.equal(restore.$metadata.httpStatusCode, 202);
    assert.match((await client.send(new HeadObjectCommand({ Bucket: 'arch', Key: 'cold/g' }))).Restore!, /ongoing-request="false"/);
    assert.equal((await bodyOf(client, 'arch', 'cold/g')).toString(), 'frozen');
    await client.send(new PutObjectCommand({ Bucket: 'arch', Key: 'cold/d', Body: 'warm' }));
    assert.equal((await bodyOf(client, 'arch', 'cold/d')).toString(), 'warm');
    const notCold = await rejection(client.send(new RestoreObjectCommand({ Bucket: 'arch', Key: 'cold/ir', RestoreRequest: { Days: 1 } })));
    assert.equal(notCold.name, 'InvalidObjectState');
    const invalid = await rejection(client.send(new PutObjectCommand({ Bucket: 'arch', Key: 'cold/x', Body: 'x', StorageClass: 'ICE' as 'GLACIER' })));
    assert.equal(invalid.name, 'InvalidStorageClass');
  });
});

describe('fault injection', () => {
  let s3: S3ServerHandle;
  before(async () => {
    s3 = await startS3Server({ buckets: ['faults'] });
  });
  after(async () => {
    await s3.close();
  });

  test('a reset mid UploadPart is a connection error with maxAttempts 1, and is retried successfully with maxAttempts 3', async () => {
    const part = Buffer.alloc(MIB, 'p');
    const once = s3ClientFor(s3.url, { maxAttempts: 1 });
    const { UploadId } = await once.send(new CreateMultipartUploadCommand({ Bucket: 'faults', Key: 'reset.bin' }));
    s3.faults([{ match: { op: 'UploadPart' }, action: { type: 'reset_after_bytes', bytes: 64 * 1024 } }]);
    const e = await rejection(once.send(new UploadPartCommand({ Bucket: 'faults', Key: 'reset.bin', UploadId, PartNumber: 1, Body: part })));
    assert.ok(isConnectionError(e), `expected a connection error, got ${e.name}: ${e.message}`);
    const parts = await once.send(new ListPartsCommand({ Bucket: 'faults', Key: 'reset.bin', UploadId }));
    assert.equal(parts.Parts, undefined, 'nothing was stored');
    const rec = s3.requests({ op: 'UploadPart' }).at(-1)!;
    assert.deepEqual(rec.faults, ['reset_after_bytes']);
    assert.ok(rec.bodyBytes >= 64 * 1024 && rec.bodyBytes < MIB, `read ${rec.bodyBytes} bytes`);
    assert.equal(rec.status, null);

    s3.faults([{ match: { op: 'UploadPart', keyPrefix: 'reset' }, action: { type: 'reset_after_bytes', bytes: 1000 } }]);
    const retrying = s3ClientFor(s3.url, { maxAttempts: 3 });
    const r = await retrying.send(new UploadPartCommand({ Bucket: 'faults', Key: 'reset.bin', UploadId, PartNumber: 1, Body: part }));
    assert.equal(r.ETag, `"${md5hex(part)}"`);
    assert.equal(r.$metadata.attempts, 2);
    const state = s3.faultState();
    assert.deepEqual(
      state.rules.map((x) => [x.fired, x.remaining]),
      [
        [1, 0],
        [1, 0],
      ],
    );
    once.destroy();
    retrying.destroy();
  });

  test('reset_before_response: s3rver stored the object but the client never heard', async () => {
    const client = s3ClientFor(s3.url, { maxAttempts: 1 });
    s3.faults([{ match: { op: 'PutObject', keyPrefix: 'applied' }, action: { type: 'reset_before_response' } }]);
    const e = await rejection(client.send(new PutObjectCommand({ Bucket: 'faults', Key: 'applied', Body: 'stored anyway' })));
    assert.ok(isConnectionError(e), `${e.name}: ${e.message}`);
    assert.equal((await bodyOf(client, 'faults', 'applied')).toString(), 'stored anyway');
    client.destroy();
  });

  test('reset_after_response_bytes cuts a GetObject body', async () => {
    const client = s3ClientFor(s3.url, { maxAttempts: 1 });
    await client.send(new PutObjectCommand({ Bucket: 'faults', Key: 'cut', Body: Buffer.alloc(256 * 1024, 'c') }));
    s3.faults([{ match: { op: 'GetObject', keyPrefix: 'cut' }, action: { type: 'reset_after_response_bytes', bytes: 1000 } }]);
    const get = await client.send(new GetObjectCommand({ Bucket: 'faults', Key: 'cut' }));
    assert.equal(get.ContentLength, 256 * 1024);
    await rejection(get.Body!.transformToByteArray());
    const rec = s3.requests({ op: 'GetObject', keyPrefix: 'cut' }).at(-1)!;
    assert.equal(rec.responseBytes, 1000);
    client.destroy();
  });

  test('500 InternalError and 503 SlowDown: retried by the SDK, surfaced with maxAttempts 1; after skips requests', async () => {
    const retrying = s3ClientFor(s3.url, { maxAttempts: 3 });
    s3.faults([{ match: { op: 'PutObject', keyPrefix: 's5' }, action: { type: 'status', status: 500 }, times: 2 }]);
    const ok = await retrying.send(new PutObjectCommand({ Bucket: 'faults', Key: 's5', Body: 'x' }));
    assert.equal(ok.$metadata.attempts, 3);
    const once = s3ClientFor(s3.url, { maxAttempts: 1 });
    s3.faults([{ match: { method: 'GET', bucket: 'faults' }, action: { type: 'status', status: 503 }, after: 1 }]);
    await once.send(new GetObjectCommand({ Bucket: 'faults', Key: 's5' }));
    const slow = await rejection(once.send(new GetObjectCommand({ Bucket: 'faults', Key: 's5' })));
    assert.equal(slow.name, 'SlowDown');
    assert.equal(slow.$metadata?.httpStatusCode, 503);
    assert.equal(slow.message, 'Please reduce your request rate.');
    s3.faults([{ match: { op: 'DeleteObject' }, action: { type: 'status', status: 403, code: 'AccessDenied', message: 'Access Denied' } }]);
    const denied = await rejection(once.send(new DeleteObjectCommand({ Bucket: 'faults', Key: 's5' })));
    assert.equal(denied.name, 'AccessDenied');
    assert.equal((await bodyOf(once, 'faults', 's5')).toString(), 'x', 'nothing was forwarded');
    const recs = s3.requests({ bucket: 'faults', keyPrefix: 's5' });
    assert.deepEqual(
      recs.filter((r) => r.faults.includes('status')).map((r) => [r.op, r.status, r.errorCode]),
      [
        ['PutObject', 500, 'InternalError'],
        ['PutObject', 500, 'InternalError'],
        ['GetObject', 503, 'SlowDown'],
        ['DeleteObject', 403, 'AccessDenied'],
      ],
    );
    retrying.destroy();
    once.destroy();
  });

  test('delay slows a response; a client timeout shorter than the delay gives up and the server carries on', async () => {
    const client = s3ClientFor(s3.url, { maxAttempts: 1 });
    await client.send(new PutObjectCommand({ Bucket: 'faults', Key: 'slow', Body: 'x' }));
    s3.faults([{ match: { op: 'HeadObject', keyPrefix: 'slow' }, action: { type: 'delay', ms: 300 } }]);
    const t0 = Date.now();
    await client.send(new HeadObjectCommand({ Bucket: 'faults', Key: 'slow' }));
    assert.ok(Date.now() - t0 >= 290, `took ${Date.now() - t0} ms`);
    const impatient = s3ClientFor(s3.url, { maxAttempts: 1, requestTimeoutMs: 150 });
    s3.faults([{ match: { op: 'GetObject', keyPrefix: 'slow' }, action: { type: 'delay', ms: 600 } }]);
    const e = await rejection(impatient.send(new GetObjectCommand({ Bucket: 'faults', Key: 'slow' })));
    assert.match(`${e.name} ${e.message}`, /timeout|timed out|socket hang up|ECONNRESET/i);
    await new Promise((r) => setTimeout(r, 600));
    assert.equal((await bodyOf(client, 'faults', 'slow')).toString(), 'x');
    client.destroy();
    impatient.destroy();
  });

  test('slow_body throttles the response body', async () => {
    const client = s3ClientFor(s3.url, { maxAttempts: 1 });
    await client.send(new PutObjectCommand({ Bucket: 'faults', Key: 'trickle', Body: Buffer.alloc(40_000, 't') }));
    s3.faults([{ match: { op: 'GetObject', keyPrefix: 'trickle' }, action: { type: 'slow_body', bytesPerSecond: 100_000 } }]);
    const t0 = Date.now();
    const body = await bodyOf(client, 'faults', 'trickle');
    assert.equal(body.length, 40_000);
    assert.ok(Date.now() - t0 >= 350, `took ${Date.now() - t0} ms`);
    client.destroy();
  });

  test('invalid rules are refused; reset clears rules and recordings', async () => {
    assert.throws(() => s3.faults([{ action: { type: 'explode' } as never }]), /type among/);
    assert.throws(() => s3.faults([{ action: { type: 'delay', ms: -1 } }]), /ms as a number/);
    s3.faults([{ action: { type: 'delay', ms: 1 }, times: 'always' }]);
    await s3.reset();
    assert.deepEqual(s3.faultState().rules, []);
    assert.deepEqual(s3.requests(), []);
  });
});

describe('Object Lock (emulated; s3rver ignores it)', () => {
  let s3: S3ServerHandle;
  let relaxed: S3Client;
  let crc: S3Client;
  before(async () => {
    s3 = await startS3Server({
      buckets: ['plain'],
      objectLockBuckets: ['worm', { name: 'worm-default', defaultRetention: { mode: 'GOVERNANCE', days: 1 } }],
    });
    relaxed = s3ClientFor(s3.url, { maxAttempts: 1, requestChecksumCalculation: 'WHEN_REQUIRED' });
    crc = s3ClientFor(s3.url, { maxAttempts: 1 });
  });
  after(async () => {
    relaxed.destroy();
    crc.destroy();
    await s3.close();
  });

  const lockPut = (Key: string, extra: Partial<PutObjectCommandInput> = {}): PutObjectCommandInput => ({
    Bucket: 'worm',
    Key,
    Body: 'worm data',
    ObjectLockMode: 'COMPLIANCE',
    ObjectLockRetainUntilDate: tomorrow(),
    ...extra,
  });

  test('a lock upload without Content-MD5 or a checksum is refused; with either it is stored, versioned and recorded', async () => {
    const e = await rejection(relaxed.send(new PutObjectCommand(lockPut('a'))));
    assert.equal(e.name, 'InvalidRequest');
    assert.equal(e.$metadata?.httpStatusCode, 400);
    assert.equal(e.message, 'Content-MD5 OR x-amz-checksum- HTTP header is required for Put Object requests with Object Lock parameters');
    const until = tomorrow();
    const put = await relaxed.send(new PutObjectCommand(lockPut('a', { ContentMD5: md5b64('worm data'), ObjectLockRetainUntilDate: until })));
    assert.ok(put.VersionId);
    const withCrc = await crc.send(new PutObjectCommand(lockPut('b', { ObjectLockMode: 'GOVERNANCE' })));
    assert.ok(withCrc.VersionId, 'the SDK default CRC32 header satisfies the rule');
    const locks = s3.objectLocks().filter((l) => l.key === 'a');
    assert.deepEqual(locks, [
      {
        bucket: 'worm',
        key: 'a',
        versionId: put.VersionId,
        mode: 'COMPLIANCE',
        retainUntil: until.toISOString(),
        legalHold: null,
        isLatest: true,
        hasBytes: true,
      },
    ]);
    const head = await crc.send(new HeadObjectCommand({ Bucket: 'worm', Key: 'a' }));
    assert.equal(head.ObjectLockMode, 'COMPLIANCE');
    assert.equal(head.ObjectLockRetainUntilDate?.toISOString(), until.toISOString());
    assert.equal(head.VersionId, put.VersionId);
    const retention = await crc.send(new GetObjectRetentionCommand({ Bucket: 'worm', Key: 'a' }));
    assert.equal(retention.Retention?.Mode, 'COMPLIANCE');
  });

  test('lock header errors follow AWS: unknown mode, past or malformed date, one without the other, a bucket without Object Lock', async () => {
    const md5 = md5b64('worm data');
    const mode = await rejection(relaxed.send(new PutObjectCommand(lockPut('e', { ContentMD5: md5, ObjectLockMode: 'FOREVER' as 'COMPLIANCE' }))));
    assert.deepEqual([mode.name, mode.message], ['InvalidArgument', 'Unknown wormMode directive.']);
    const past = await rejection(relaxed.send(new PutObjectCommand(lockPut('e', { ContentMD5: md5, ObjectLockRetainUntilDate: new Date(Date.now() - 1000) }))));
    assert.deepEqual([past.name, past.message], ['InvalidArgument', 'The retain until date must be in the future!']);
    const one = await rejection(
      relaxed.send(new PutObjectCommand({ Bucket: 'worm', Key: 'e', Body: 'x', ContentMD5: md5b64('x'), ObjectLockMode: 'GOVERNANCE' })),
    );
    assert.deepEqual([one.name, one.message], ['InvalidArgument', 'x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be supplied']);
    const plain = await rejection(crc.send(new PutObjectCommand({ ...lockPut('e'), Bucket: 'plain' })));
    assert.deepEqual([plain.name, plain.message], ['InvalidRequest', 'Bucket is missing ObjectLockConfiguration']);
    const malformed = await raw(s3.url, 'GET', '/worm/e');
    assert.equal(malformed.status, 403, 'unsigned requests are refused');
  });

  test('a large refused upload is answered before its body is read (Expect: 100-continue)', async () => {
    const big = Buffer.alloc(3 * MIB, 'z');
    const e = await rejection(relaxed.send(new PutObjectCommand(lockPut('big', { Body: big }))));
    assert.equal(e.name, 'InvalidRequest');
    const rec = s3.requests({ op: 'PutObject', keyPrefix: 'big' }).at(-1)!;
    assert.deepEqual([rec.status, rec.bodyBytes], [400, 0]);
    const ok = await relaxed.send(new PutObjectCommand(lockPut('big', { Body: big, ContentMD5: md5b64(big) })));
    assert.ok(ok.VersionId, 'the client carries on');
  });

  test('multipart: a lock upload needs Content-MD5 or a checksum on every part', async () => {
    const { UploadId } = await relaxed.send(
      new CreateMultipartUploadCommand({ Bucket: 'worm', Key: 'mp', ObjectLockMode: 'GOVERNANCE', ObjectLockRetainUntilDate: tomorrow() }),
    );
    const e = await rejection(relaxed.send(new UploadPartCommand({ Bucket: 'worm', Key: 'mp', UploadId, PartNumber: 1, Body: 'part' })));
    assert.equal(e.message, 'Content-MD5 OR x-amz-checksum- HTTP header is required for Put Part requests with Object Lock parameters');
    const p = await relaxed.send(new UploadPartCommand({ Bucket: 'worm', Key: 'mp', UploadId, PartNumber: 1, Body: 'part', ContentMD5: md5b64('part') }));
    const done = await relaxed.send(
      new CompleteMultipartUploadCommand({ Bucket: 'worm', Key: 'mp', UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: p.ETag }] } }),
    );
    assert.ok(done.VersionId);
    assert.equal(s3.objectLocks().find((l) => l.key === 'mp')?.mode, 'GOVERNANCE');
  });

  test('DeleteObject without a version adds a delete marker; the locked version stays, and deleting it is AccessDenied', async () => {
    const put = await crc.send(new PutObjectCommand(lockPut('d')));
    const del = await crc.send(new DeleteObjectCommand({ Bucket: 'worm', Key: 'd' }));
    assert.equal(del.DeleteMarker, true);
    assert.ok(del.VersionId && del.VersionId !== put.VersionId);
    const gone = await rejection(crc.send(new GetObjectCommand({ Bucket: 'worm', Key: 'd' })));
    assert.equal(gone.name, 'NoSuchKey');
    const list = await crc.send(new ListObjectsV2Command({ Bucket: 'worm', Prefix: 'd' }));
    assert.equal(list.KeyCount, 0);
    assert.equal((await bodyOf(crc, 'worm', 'd', put.VersionId)).toString(), 'worm data');
    const versions = await crc.send(new ListObjectVersionsCommand({ Bucket: 'worm', Prefix: 'd' }));
    assert.deepEqual(
      versions.Versions!.map((v) => [v.VersionId, v.IsLatest]),
      [[put.VersionId, false]],
    );
    assert.deepEqual(
      versions.DeleteMarkers!.map((v) => [v.VersionId, v.IsLatest]),
      [[del.VersionId, true]],
    );
    const denied = await rejection(crc.send(new DeleteObjectCommand({ Bucket: 'worm', Key: 'd', VersionId: put.VersionId })));
    assert.equal(denied.name, 'AccessDenied');
    const bulk = await crc.send(new DeleteObjectsCommand({ Bucket: 'worm', Delete: { Objects: [{ Key: 'd', VersionId: put.VersionId }] } }));
    assert.equal(bulk.Errors![0]!.Code, 'AccessDenied');
    assert.deepEqual(
      s3
        .objectLocks()
        .filter((l) => l.key === 'd')
        .map((l) => [l.versionId, l.isLatest, l.hasBytes]),
      [[put.VersionId, false, true]],
    );
    // Removing the delete marker brings the object back.
    await crc.send(new DeleteObjectCommand({ Bucket: 'worm', Key: 'd', VersionId: del.VersionId }));
    assert.equal((await bodyOf(crc, 'worm', 'd')).toString(), 'worm data');
  });

  test('GOVERNANCE yields to x-amz-bypass-governance-retention; COMPLIANCE retention cannot be shortened', async () => {
    const gov = await crc.send(new PutObjectCommand(lockPut('g', { ObjectLockMode: 'GOVERNANCE' })));
    const refused = await rejection(crc.send(new DeleteObjectCommand({ Bucket: 'worm', Key: 'g', VersionId: gov.VersionId })));
    assert.equal(refused.name, 'AccessDenied');
    await crc.send(new DeleteObjectCommand({ Bucket: 'worm', Key: 'g', VersionId: gov.VersionId, BypassGovernanceRetention: true }));
    assert.equal((await rejection(crc.send(new HeadObjectCommand({ Bucket: 'worm', Key: 'g' })))).$metadata?.httpStatusCode, 404);
    const comp = await crc.send(new PutObjectCommand(lockPut('c')));
    const later = new Date(Date.now() + 3 * 86_400_000);
    await crc.send(
      new PutObjectRetentionCommand({ Bucket: 'worm', Key: 'c', VersionId: comp.VersionId, Retention: { Mode: 'COMPLIANCE', RetainUntilDate: later } }),
    );
    const shorter = await rejection(
      crc.send(new PutObjectRetentionCommand({ Bucket: 'worm', Key: 'c', Retention: { Mode: 'COMPLIANCE', RetainUntilDate: tomorrow() } })),
    );
    assert.equal(shorter.name, 'AccessDenied');
    const r = await crc.send(new GetObjectRetentionCommand({ Bucket: 'worm', Key: 'c' }));
    assert.equal(r.Retention?.RetainUntilDate?.toISOString(), later.toISOString());
  });

  test('legal hold blocks deletes until released', async () => {
    const put = await crc.send(new PutObjectCommand({ Bucket: 'worm', Key: 'hold', Body: 'x', ObjectLockLegalHoldStatus: 'ON' }));
    assert.equal((await crc.send(new GetObjectLegalHoldCommand({ Bucket: 'worm', Key: 'hold' }))).LegalHold?.Status, 'ON');
    assert.equal((await rejection(crc.send(new DeleteObjectCommand({ Bucket: 'worm', Key: 'hold', VersionId: put.VersionId })))).name, 'AccessDenied');
    await crc.send(new PutObjectLegalHoldCommand({ Bucket: 'worm', Key: 'hold', LegalHold: { Status: 'OFF' } }));
    await crc.send(new DeleteObjectCommand({ Bucket: 'worm', Key: 'hold', VersionId: put.VersionId }));
  });

  test('a default retention applies to plain uploads, which then need Content-MD5 or a checksum', async () => {
    const e = await rejection(relaxed.send(new PutObjectCommand({ Bucket: 'worm-default', Key: 'x', Body: 'x' })));
    assert.equal(e.name, 'InvalidRequest');
    await crc.send(new PutObjectCommand({ Bucket: 'worm-default', Key: 'x', Body: 'x' }));
    const lock = s3.objectLocks().find((l) => l.bucket === 'worm-default' && l.key === 'x')!;
    assert.equal(lock.mode, 'GOVERNANCE');
    assert.ok(Math.abs(Date.parse(lock.retainUntil!) - (Date.now() + 86_400_000)) < 60_000);
    const cfg = await crc.send(new GetObjectLockConfigurationCommand({ Bucket: 'worm-default' }));
    assert.deepEqual(cfg.ObjectLockConfiguration?.Rule?.DefaultRetention, { Mode: 'GOVERNANCE', Days: 1 });
    const none = await rejection(crc.send(new GetObjectLockConfigurationCommand({ Bucket: 'plain' })));
    assert.equal(none.name, 'ObjectLockConfigurationNotFoundError');
  });

  test('CreateBucket with ObjectLockEnabledForBucket gives a versioned lock bucket; lock buckets cannot suspend versioning', async () => {
    await createBucket(s3.url, 'made-worm', { objectLock: true });
    assert.equal((await crc.send(new GetBucketVersioningCommand({ Bucket: 'made-worm' }))).Status, 'Enabled');
    const put = await crc.send(
      new PutObjectCommand({ Bucket: 'made-worm', Key: 'k', Body: 'x', ObjectLockMode: 'GOVERNANCE', ObjectLockRetainUntilDate: tomorrow() }),
    );
    assert.ok(put.VersionId);
    const suspend = await rejection(crc.send(new PutBucketVersioningCommand({ Bucket: 'made-worm', VersioningConfiguration: { Status: 'Suspended' } })));
    assert.equal(suspend.name, 'InvalidBucketState');
    assert.equal((await crc.send(new GetBucketVersioningCommand({ Bucket: 'plain' }))).Status, undefined);
    await createBucket(s3.url, 'made-worm');
  });

  test('lifecycle configurations are stored as sent (not applied), so a sink can set them and a test can assert them', async () => {
    const missing = await rejection(crc.send(new GetBucketLifecycleConfigurationCommand({ Bucket: 'plain' })));
    assert.equal(missing.name, 'NoSuchLifecycleConfiguration');
    await crc.send(
      new PutBucketLifecycleConfigurationCommand({
        Bucket: 'plain',
        LifecycleConfiguration: {
          Rules: [
            { ID: 'abort-uploads', Status: 'Enabled', Filter: { Prefix: '' }, AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 } },
            { ID: 'to-glacier', Status: 'Enabled', Filter: { Prefix: 'audit/' }, Transitions: [{ Days: 30, StorageClass: 'GLACIER' }] },
          ],
        },
      }),
    );
    const got = await crc.send(new GetBucketLifecycleConfigurationCommand({ Bucket: 'plain' }));
    assert.deepEqual(
      got.Rules!.map((r) => [r.ID, r.AbortIncompleteMultipartUpload?.DaysAfterInitiation, r.Transitions?.[0]?.StorageClass]),
      [
        ['abort-uploads', 1, undefined],
        ['to-glacier', undefined, 'GLACIER'],
      ],
    );
    const plain = (await s3.buckets()).find((b) => b.name === 'plain')!;
    assert.match(plain.lifecycle!, /<DaysAfterInitiation>1<\/DaysAfterInitiation>/);
    assert.deepEqual((await s3.buckets()).find((b) => b.name === 'worm-default')!.defaultRetention, { mode: 'GOVERNANCE', days: 1 });
  });
});

describe('server-side encryption (emulated; s3rver ignores it)', () => {
  let s3: S3ServerHandle;
  let client: S3Client;
  before(async () => {
    s3 = await startS3Server({ buckets: ['sse'] });
    client = s3ClientFor(s3.url, { maxAttempts: 1 });
  });
  after(async () => {
    client.destroy();
    await s3.close();
  });

  test('aws:kms with a key id is recorded and answered on PUT, HEAD and GET with the key ARN', async () => {
    const put = await client.send(
      new PutObjectCommand({ Bucket: 'sse', Key: 'kms', Body: 'secret', ServerSideEncryption: 'aws:kms', SSEKMSKeyId: 'key-1', BucketKeyEnabled: true }),
    );
    const arn = 'arn:aws:kms:us-east-1:123456789000:key/key-1';
    assert.deepEqual([put.ServerSideEncryption, put.SSEKMSKeyId, put.BucketKeyEnabled], ['aws:kms', arn, true]);
    const head = await client.send(new HeadObjectCommand({ Bucket: 'sse', Key: 'kms' }));
    assert.deepEqual([head.ServerSideEncryption, head.SSEKMSKeyId], ['aws:kms', arn]);
    const get = await client.send(new GetObjectCommand({ Bucket: 'sse', Key: 'kms' }));
    assert.deepEqual([get.ServerSideEncryption, get.SSEKMSKeyId], ['aws:kms', arn]);
    await get.Body!.transformToString();
    const entry = (await s3.objects()).find((o) => o.key === 'kms')!;
    assert.deepEqual(entry.sse, { algorithm: 'aws:kms', kmsKeyId: arn, bucketKeyEnabled: true, requested: true });
    assert.notEqual(put.ETag, `"${md5hex('secret')}"`, 'SSE-KMS ETags are not the MD5 of the data');
    assert.equal(head.ETag, put.ETag);
    const plain = await client.send(new PutObjectCommand({ Bucket: 'sse', Key: 'aes', Body: 'x', ServerSideEncryption: 'AES256' }));
    assert.equal(plain.SSEKMSKeyId, undefined);
    assert.equal(plain.ETag, `"${md5hex('x')}"`);
  });

  test('multipart uploads keep the upload SSE on every part and on completion', async () => {
    const { UploadId, ServerSideEncryption } = await client.send(
      new CreateMultipartUploadCommand({ Bucket: 'sse', Key: 'mp', ServerSideEncryption: 'aws:kms' }),
    );
    assert.equal(ServerSideEncryption, 'aws:kms');
    const p = await client.send(new UploadPartCommand({ Bucket: 'sse', Key: 'mp', UploadId, PartNumber: 1, Body: 'only' }));
    assert.equal(p.ServerSideEncryption, 'aws:kms');
    const done = await client.send(
      new CompleteMultipartUploadCommand({ Bucket: 'sse', Key: 'mp', UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: p.ETag }] } }),
    );
    assert.equal(done.ServerSideEncryption, 'aws:kms');
    assert.match(done.SSEKMSKeyId ?? '', /^arn:aws:kms:us-east-1:123456789000:key\//, 'the AWS managed key');
  });

  test('invalid SSE requests get AWS errors', async () => {
    const bad = await rejection(client.send(new PutObjectCommand({ Bucket: 'sse', Key: 'bad', Body: 'x', ServerSideEncryption: 'AES128' as 'AES256' })));
    assert.deepEqual([bad.name, bad.message], ['InvalidArgument', 'The encryption method specified is not supported']);
    const keyOnly = await rejection(client.send(new PutObjectCommand({ Bucket: 'sse', Key: 'bad', Body: 'x', SSEKMSKeyId: 'key-1' })));
    assert.equal(keyOnly.message, 'Server Side Encryption with AWS KMS managed key requires HTTP header x-amz-server-side-encryption : aws:kms');
    const customer = await rejection(
      client.send(new PutObjectCommand({ Bucket: 'sse', Key: 'bad', Body: 'x', SSECustomerAlgorithm: 'AES256', SSECustomerKey: 'k'.repeat(32) })),
    );
    assert.equal(customer.message, 'Requests specifying Server Side Encryption with Customer provided keys must be made over a secure connection.');
    assert.equal((await rejection(client.send(new HeadObjectCommand({ Bucket: 'sse', Key: 'bad' })))).$metadata?.httpStatusCode, 404);
  });
});

describe('conditional writes (If-None-Match / If-Match; emulated, s3rver ignores them)', () => {
  let s3: S3ServerHandle;
  let client: S3Client;
  let relaxed: S3Client;
  const Bucket = 'cond';
  before(async () => {
    s3 = await startS3Server({ buckets: [Bucket, 'cond-versioned'] });
    client = s3ClientFor(s3.url, { maxAttempts: 1 });
    relaxed = s3ClientFor(s3.url, { maxAttempts: 1, requestChecksumCalculation: 'WHEN_REQUIRED' });
  });
  after(async () => {
    client.destroy();
    relaxed.destroy();
    await s3.close();
  });

  /** [status, name, Code, Condition] of a refused write, as @aws-sdk/client-s3 surfaces it. */
  const refusal = async (p: Promise<unknown>) => {
    const e = await rejection(p);
    return [e.$metadata?.httpStatusCode, e.name, e['Code'], e['Condition']];
  };
  const head = (Key: string, B = Bucket) => client.send(new HeadObjectCommand({ Bucket: B, Key }));
  const put = (Key: string, Body: string, cond: { IfMatch?: string; IfNoneMatch?: string } = {}) =>
    client.send(new PutObjectCommand({ Bucket, Key, Body, ...cond }));
  const until = async (what: string, ok: () => boolean) => {
    for (const started = Date.now(); !ok(); await new Promise((r) => setTimeout(r, 5))) {
      if (Date.now() - started > 5000) assert.fail(`timed out waiting until ${what}`);
    }
  };
  /** Creates an upload of one part; `complete` finishes it with the given conditions. */
  const upload = async (Key: string, Body: string) => {
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket, Key }));
    const part = await client.send(new UploadPartCommand({ Bucket, Key, UploadId, PartNumber: 1, Body }));
    return {
      UploadId: UploadId!,
      etag: `"${crypto.createHash('md5').update(crypto.createHash('md5').update(Body).digest()).digest('hex')}-1"`,
      complete: (cond: { IfMatch?: string; IfNoneMatch?: string } = {}) =>
        client.send(new CompleteMultipartUploadCommand({ Bucket, Key, UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.ETag }] }, ...cond })),
    };
  };

  test('PutObject If-None-Match: * creates a missing key and is 412 PreconditionFailed on an existing one, which keeps its bytes and ETag', async () => {
    const created = await put('state/inm.json', '{"v":1}', { IfNoneMatch: '*' });
    assert.equal(created.ETag, `"${md5hex('{"v":1}')}"`);
    const refused = await rejection(put('state/inm.json', '{"v":2}', { IfNoneMatch: '*' }));
    assert.equal(refused.$metadata?.httpStatusCode, 412);
    assert.equal(refused.name, 'PreconditionFailed');
    assert.equal(refused['Code'], 'PreconditionFailed');
    assert.equal(refused['Condition'], 'If-None-Match');
    assert.equal(refused.message, 'At least one of the pre-conditions you specified did not hold');
    // A streamed (aws-chunked) body is refused the same way.
    const streamed = client.send(
      new PutObjectCommand({ Bucket, Key: 'state/inm.json', Body: Readable.from([Buffer.from('streamed')]), ContentLength: 8, IfNoneMatch: '*' }),
    );
    assert.deepEqual(await refusal(streamed), [412, 'PreconditionFailed', 'PreconditionFailed', 'If-None-Match']);
    assert.equal((await bodyOf(client, Bucket, 'state/inm.json')).toString(), '{"v":1}');
    assert.equal((await head('state/inm.json')).ETag, created.ETag);
    assert.deepEqual(
      s3.requests({ op: 'PutObject', keyPrefix: 'state/inm.json' }).map((r) => [r.status, r.errorCode, r.handledBy, r.headers['if-none-match']]),
      [
        [200, null, 's3rver', '*'],
        [412, 'PreconditionFailed', 'proxy', '*'],
        [412, 'PreconditionFailed', 'proxy', '*'],
      ],
    );
  });

  test('PutObject If-Match: the current ETag (quoted or not) replaces the object and returns the new ETag; a stale one is 412, a missing key 404 NoSuchKey', async () => {
    const v1 = await put('state/im.json', 'one');
    const v2 = await put('state/im.json', 'two', { IfMatch: v1.ETag });
    assert.equal(v2.ETag, `"${md5hex('two')}"`);
    assert.deepEqual(await refusal(put('state/im.json', 'three', { IfMatch: v1.ETag })), [412, 'PreconditionFailed', 'PreconditionFailed', 'If-Match']);
    assert.equal((await bodyOf(client, Bucket, 'state/im.json')).toString(), 'two');
    assert.equal((await head('state/im.json')).ETag, v2.ETag);
    const v3 = await put('state/im.json', 'three', { IfMatch: v2.ETag.replace(/"/g, '') });
    assert.equal(v3.ETag, `"${md5hex('three')}"`);
    assert.equal((await head('state/im.json')).ETag, v3.ETag);
    const missing = await rejection(put('state/none.json', 'x', { IfMatch: v3.ETag }));
    assert.deepEqual([missing.$metadata?.httpStatusCode, missing.name, missing['Key']], [404, 'NoSuchKey', 'state/none.json']);
    assert.equal((await rejection(head('state/none.json'))).$metadata?.httpStatusCode, 404, 'nothing was created');
  });

  test('CompleteMultipartUpload: If-None-Match: * and If-Match the same way; a refused completion keeps the object and the upload', async () => {
    const first = await upload('mp/state', 'first');
    const done = await first.complete({ IfNoneMatch: '*' });
    assert.equal(done.ETag, first.etag);
    const second = await upload('mp/state', 'second');
    assert.deepEqual(await refusal(second.complete({ IfNoneMatch: '*' })), [412, 'PreconditionFailed', 'PreconditionFailed', 'If-None-Match']);
    assert.deepEqual(await refusal(second.complete({ IfMatch: `"${md5hex('stale')}"` })), [412, 'PreconditionFailed', 'PreconditionFailed', 'If-Match']);
    assert.equal((await bodyOf(client, Bucket, 'mp/state')).toString(), 'first');
    assert.equal((await head('mp/state')).ETag, done.ETag);
    const parts = await client.send(new ListPartsCommand({ Bucket, Key: 'mp/state', UploadId: second.UploadId }));
    assert.equal(parts.Parts?.length, 1, 'the refused upload can still be completed or aborted');
    const replaced = await second.complete({ IfMatch: done.ETag });
    assert.equal(replaced.ETag, second.etag);
    assert.equal((await bodyOf(client, Bucket, 'mp/state')).toString(), 'second');
    assert.equal((await head('mp/state')).ETag, second.etag);
    const third = await upload('mp/missing', 'third');
    const missing = await rejection(third.complete({ IfMatch: replaced.ETag }));
    assert.deepEqual([missing.$metadata?.httpStatusCode, missing.name], [404, 'NoSuchKey']);
    assert.deepEqual(
      s3.requests({ op: 'CompleteMultipartUpload', keyPrefix: 'mp/state' }).map((r) => [r.status, r.headers['if-match'] ?? r.headers['if-none-match']]),
      [
        [200, '*'],
        [412, '*'],
        [412, `"${md5hex('stale')}"`],
        [200, done.ETag],
      ],
    );
  });

  test('If-None-Match other than *, If-Match: * and both at once are 501 NotImplemented and write nothing; CopyObject takes the conditions for its destination', async () => {
    const base = await put('other/k', 'base');
    const notImplemented = async (p: Promise<unknown>) => {
      const e = await rejection(p);
      return [e.$metadata?.httpStatusCode, e.name, e.message, e['Header'], e['additionalMessage']];
    };
    const message = 'A header you provided implies functionality that is not implemented';
    assert.deepEqual(await notImplemented(put('other/k', 'x', { IfNoneMatch: base.ETag })), [
      501,
      'NotImplemented',
      message,
      'If-None-Match',
      "We don't accept the provided value of If-None-Match header for this API",
    ]);
    assert.deepEqual(await notImplemented(put('other/k', 'x', { IfMatch: '*' })), [
      501,
      'NotImplemented',
      message,
      'If-Match',
      "We don't accept the provided value of If-Match header for this API",
    ]);
    assert.deepEqual(await notImplemented(put('other/k', 'x', { IfMatch: base.ETag, IfNoneMatch: '*' })), [
      501,
      'NotImplemented',
      message,
      'If-Match,If-None-Match',
      'Multiple conditional request headers present in the request',
    ]);
    const mp = await upload('other/k', 'multipart');
    assert.deepEqual(await notImplemented(mp.complete({ IfNoneMatch: 'something' })), [
      501,
      'NotImplemented',
      message,
      'If-None-Match',
      "We don't accept the provided value of If-None-Match header for this API",
    ]);
    assert.equal((await head('other/k')).ETag, base.ETag);
    // CopyObject: the destination's conditions (CopyObject API reference), like PutObject's.
    const copy = (Key: string, cond: { IfMatch?: string; IfNoneMatch?: string }) =>
      client.send(new CopyObjectCommand({ Bucket, Key, CopySource: `${Bucket}/other/k`, ...cond }));
    await copy('other/copy', { IfNoneMatch: '*' });
    assert.deepEqual(await refusal(copy('other/copy', { IfNoneMatch: '*' })), [412, 'PreconditionFailed', 'PreconditionFailed', 'If-None-Match']);
    await put('other/copy', 'changed');
    assert.deepEqual(await refusal(copy('other/copy', { IfMatch: base.ETag })), [412, 'PreconditionFailed', 'PreconditionFailed', 'If-Match']);
    await copy('other/copy', { IfMatch: `"${md5hex('changed')}"` });
    assert.equal((await bodyOf(client, Bucket, 'other/copy')).toString(), 'base');
  });

  test('in a versioned bucket the conditions apply to the current version; a delete marker counts as no object', async () => {
    const B = 'cond-versioned';
    await client.send(new PutBucketVersioningCommand({ Bucket: B, VersioningConfiguration: { Status: 'Enabled' } }));
    const vput = (Body: string, cond: { IfMatch?: string; IfNoneMatch?: string }) => client.send(new PutObjectCommand({ Bucket: B, Key: 'v', Body, ...cond }));
    const v1 = await vput('one', { IfNoneMatch: '*' });
    assert.ok(v1.VersionId);
    assert.deepEqual(await refusal(vput('two', { IfNoneMatch: '*' })), [412, 'PreconditionFailed', 'PreconditionFailed', 'If-None-Match']);
    const v2 = await vput('two', { IfMatch: v1.ETag });
    assert.notEqual(v2.VersionId, v1.VersionId);
    assert.deepEqual(
      await refusal(vput('three', { IfMatch: v1.ETag })),
      [412, 'PreconditionFailed', 'PreconditionFailed', 'If-Match'],
      'a noncurrent version does not count',
    );
    const marker = await client.send(new DeleteObjectCommand({ Bucket: B, Key: 'v' }));
    assert.equal(marker.DeleteMarker, true);
    const gone = await rejection(vput('three', { IfMatch: v2.ETag }));
    assert.deepEqual([gone.$metadata?.httpStatusCode, gone.name], [404, 'NoSuchKey']);
    const v3 = await vput('three', { IfNoneMatch: '*' });
    assert.equal((await bodyOf(client, B, 'v')).toString(), 'three');
    const versions = await client.send(new ListObjectVersionsCommand({ Bucket: B, Prefix: 'v' }));
    assert.deepEqual(
      versions.Versions!.map((v) => [v.VersionId, v.IsLatest]),
      [
        [v3.VersionId, true],
        [v2.VersionId, false],
        [v1.VersionId, false],
      ],
    );
    assert.deepEqual(
      versions.DeleteMarkers!.map((m) => m.VersionId),
      [marker.VersionId],
    );
  });

  test('two concurrent conditional writes with the same precondition: exactly one wins, 20 times over (If-None-Match: *, If-Match, and with a plain write racing)', async () => {
    const statusOf = (r: PromiseSettledResult<{ ETag?: string }>) => (r.status === 'fulfilled' ? 200 : (r.reason as S3Err).$metadata?.httpStatusCode);
    for (let round = 0; round < 20; round++) {
      const Key = `race/${round}`;
      const created = await Promise.allSettled(['a', 'b'].map((w) => put(Key, `created by ${w}`, { IfNoneMatch: '*' })));
      assert.deepEqual(created.map(statusOf).sort(), [200, 412], `round ${round}: If-None-Match`);
      const creator = created[0]!.status === 'fulfilled' ? 'a' : 'b';
      assert.equal((await bodyOf(client, Bucket, Key)).toString(), `created by ${creator}`);
      const base = (await head(Key)).ETag!;
      const updated = await Promise.allSettled(['a', 'b'].map((w) => put(Key, `updated by ${w}`, { IfMatch: base })));
      assert.deepEqual(updated.map(statusOf).sort(), [200, 412], `round ${round}: If-Match`);
      const winner = updated.findIndex((r) => r.status === 'fulfilled');
      const won = updated[winner] as PromiseFulfilledResult<{ ETag?: string }>;
      assert.equal((await bodyOf(client, Bucket, Key)).toString(), `updated by ${'ab'[winner]}`);
      assert.equal((await head(Key)).ETag, won.value.ETag);
      // A plain write racing two conditional ones: it may land first (then both are refused) or after the
      // winner, never between a conditional write's check and its write, so at most one of them wins.
      const current = (await head(Key)).ETag!;
      const mixed = await Promise.allSettled([
        put(Key, 'conditional a', { IfMatch: current }),
        put(Key, 'plain'),
        put(Key, 'conditional b', { IfMatch: current }),
      ]);
      assert.equal(statusOf(mixed[1]), 200);
      assert.ok([mixed[0], mixed[2]].filter((r) => r.status === 'fulfilled').length <= 1, `round ${round}: at most one conditional write wins`);
      assert.ok(['conditional a', 'plain', 'conditional b'].includes((await bodyOf(client, Bucket, Key)).toString()));
    }
  });

  test('a write in flight holds off a conditional write to the same key and the reverse, so nothing lands between its check and its write', async () => {
    const Key = 'slow/state';
    const base = await put(Key, 'base');
    const half = 32 * 1024;
    const recorded = (since: number) => s3.requests({ op: 'PutObject', keyPrefix: Key, since });
    // A conditional write streams its body; a plain write sent meanwhile waits for it, then lands on top.
    let mark = s3.requests().at(-1)!.seq;
    const slowConditional = new Readable({ read() {} });
    slowConditional.push(Buffer.alloc(half, 'c'));
    const conditional = relaxed.send(new PutObjectCommand({ Bucket, Key, Body: slowConditional, ContentLength: 2 * half, IfMatch: base.ETag }));
    await until('the conditional write streams', () => (recorded(mark)[0]?.bodyBytes ?? 0) > 0);
    const plain = put(Key, 'plain');
    await until('the plain write arrived', () => recorded(mark).length === 2);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(recorded(mark)[1]!.status, null, 'the plain write waits for the conditional one');
    slowConditional.push(Buffer.alloc(half, 'c'));
    slowConditional.push(null);
    assert.equal((await conditional).ETag, `"${md5hex(Buffer.alloc(2 * half, 'c'))}"`);
    const landed = await plain;
    assert.equal((await bodyOf(client, Bucket, Key)).toString(), 'plain');
    // A plain write streams; a conditional write on the ETag before it waits, then finds it changed.
    mark = s3.requests().at(-1)!.seq;
    const slowPlain = new Readable({ read() {} });
    slowPlain.push(Buffer.alloc(half, 'p'));
    const streaming = relaxed.send(new PutObjectCommand({ Bucket, Key, Body: slowPlain, ContentLength: 2 * half }));
    await until('the plain write streams', () => (recorded(mark)[0]?.bodyBytes ?? 0) > 0);
    const late = put(Key, 'late', { IfMatch: landed.ETag });
    await until('the conditional write arrived', () => recorded(mark).length === 2);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(recorded(mark)[1]!.status, null, 'the conditional write waits for the write in flight');
    slowPlain.push(Buffer.alloc(half, 'p'));
    slowPlain.push(null);
    await streaming;
    assert.deepEqual(await refusal(late), [412, 'PreconditionFailed', 'PreconditionFailed', 'If-Match']);
    assert.ok((await bodyOf(client, Bucket, Key)).equals(Buffer.alloc(2 * half, 'p')));
  });

  test('the recording shows If-Match / If-None-Match, and SigV4 covers them: a header changed after signing is SignatureDoesNotMatch', async () => {
    const spy = s3ClientFor(s3.url, { maxAttempts: 1 });
    const signed: string[] = [];
    let tamper = false;
    spy.middlewareStack.add(
      (next) => async (args) => {
        const headers = (args.request as { headers: Record<string, string> }).headers;
        signed.push(/SignedHeaders=([^,]+)/.exec(headers['authorization'] ?? '')?.[1] ?? '');
        const ifMatch = Object.keys(headers).find((h) => h.toLowerCase() === 'if-match');
        if (tamper && ifMatch) headers[ifMatch] = '"00000000000000000000000000000000"';
        return next(args);
      },
      { step: 'deserialize', name: 'conditionalHeaderSpy' },
    );
    const created = await spy.send(new PutObjectCommand({ Bucket, Key: 'signed/k', Body: 'signed', IfNoneMatch: '*' }));
    await spy.send(new PutObjectCommand({ Bucket, Key: 'signed/k', Body: 'signed again', IfMatch: created.ETag }));
    assert.ok(signed[0]!.split(';').includes('if-none-match'), signed[0]);
    assert.ok(signed[1]!.split(';').includes('if-match'), signed[1]);
    tamper = true;
    const tampered = await rejection(spy.send(new PutObjectCommand({ Bucket, Key: 'signed/k', Body: 'tampered', IfMatch: created.ETag })));
    assert.deepEqual([tampered.$metadata?.httpStatusCode, tampered.name], [403, 'SignatureDoesNotMatch']);
    assert.equal((await bodyOf(client, Bucket, 'signed/k')).toString(), 'signed again');
    assert.deepEqual(
      s3.requests({ op: 'PutObject', keyPrefix: 'signed/k' }).map((r) => [r.status, r.headers['if-none-match'], r.headers['if-match']]),
      [
        [200, '*', undefined],
        [200, undefined, created.ETag],
        [403, undefined, '"00000000000000000000000000000000"'],
      ],
    );
    spy.destroy();
  });
});

describe('credentials and permissions', () => {
  test('only the configured access keys are accepted, with checked signatures; denyOps and per-key denyOps refuse', async () => {
    await withServer(
      {
        buckets: ['creds'],
        accessKeys: [
          { accessKeyId: 'AKIAARCHIVE', secretAccessKey: 'archive-secret' },
          { accessKeyId: 'AKIAREADER', secretAccessKey: 'reader-secret', denyOps: ['PutObject', 'DeleteObject'] },
        ],
        denyOps: ['DeleteBucket'],
      },
      async (s3) => {
        const writer = s3ClientFor(s3.url, { maxAttempts: 1, accessKeyId: 'AKIAARCHIVE', secretAccessKey: 'archive-secret' });
        await writer.send(new PutObjectCommand({ Bucket: 'creds', Key: 'k', Body: 'x' }));
        const unknown = await rejection(s3ClientFor(s3.url, { maxAttempts: 1 }).send(new HeadObjectCommand({ Bucket: 'creds', Key: 'k' })));
        assert.equal(unknown.$metadata?.httpStatusCode, 403);
        const unknownGet = await rejection(s3ClientFor(s3.url, { maxAttempts: 1 }).send(new GetObjectCommand({ Bucket: 'creds', Key: 'k' })));
        assert.equal(unknownGet.name, 'InvalidAccessKeyId');
        const wrongSecret = await rejection(
          s3ClientFor(s3.url, { maxAttempts: 1, accessKeyId: 'AKIAARCHIVE', secretAccessKey: 'nope' }).send(
            new GetObjectCommand({ Bucket: 'creds', Key: 'k' }),
          ),
        );
        assert.equal(wrongSecret.name, 'SignatureDoesNotMatch');
        const reader = s3ClientFor(s3.url, { maxAttempts: 1, accessKeyId: 'AKIAREADER', secretAccessKey: 'reader-secret' });
        assert.equal((await bodyOf(reader, 'creds', 'k')).toString(), 'x');
        assert.equal((await rejection(reader.send(new PutObjectCommand({ Bucket: 'creds', Key: 'k2', Body: 'x' })))).name, 'AccessDenied');
        const region = await rejection(
          s3ClientFor(s3.url, { maxAttempts: 1, accessKeyId: 'AKIAARCHIVE', secretAccessKey: 'archive-secret', region: 'eu-west-1' }).send(
            new GetObjectCommand({ Bucket: 'creds', Key: 'k' }),
          ),
        );
        assert.equal(region.name, 'AuthorizationHeaderMalformed');
        const recorded = s3.requests({ op: 'PutObject' });
        assert.deepEqual(
          recorded.map((r) => [r.accessKeyId, r.status, r.handledBy]),
          [
            ['AKIAARCHIVE', 200, 's3rver'],
            ['AKIAREADER', 403, 'proxy'],
          ],
        );
        writer.destroy();
        reader.destroy();
      },
    );
  });

  test('presigned GET URLs are verified (signature and expiry)', async () => {
    await withServer({ buckets: ['pre'] }, async (s3) => {
      const client = s3ClientFor(s3.url, { maxAttempts: 1 });
      await client.send(new PutObjectCommand({ Bucket: 'pre', Key: 'a b.txt', Body: 'presigned' }));
      type Data = string | ArrayBuffer | ArrayBufferView;
      const bytes = (d: Data) =>
        typeof d === 'string' ? Buffer.from(d) : ArrayBuffer.isView(d) ? Buffer.from(d.buffer, d.byteOffset, d.byteLength) : Buffer.from(d);
      class Sha256 {
        private readonly h: crypto.Hash | crypto.Hmac;
        constructor(secret?: Data) {
          this.h = secret ? crypto.createHmac('sha256', bytes(secret)) : crypto.createHash('sha256');
        }
        update(d: Data) {
          this.h.update(bytes(d));
        }
        async digest() {
          return new Uint8Array(this.h.digest());
        }
      }
      const signer = new SignatureV4({
        credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
        region: 'us-east-1',
        service: 's3',
        sha256: Sha256,
        uriEscapePath: false,
      });
      const { port } = new URL(s3.url);
      const signed = await signer.presign(
        {
          method: 'GET',
          protocol: 'http:',
          hostname: '127.0.0.1',
          port: Number(port),
          path: '/pre/a%20b.txt',
          query: {},
          headers: { host: `127.0.0.1:${port}`, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' },
        },
        { expiresIn: 60 },
      );
      const qs = new URLSearchParams(signed.query as Record<string, string>).toString();
      const ok = await raw(s3.url, 'GET', `/pre/a%20b.txt?${qs}`);
      assert.equal(ok.status, 200);
      assert.equal(ok.text, 'presigned');
      const tampered = await raw(s3.url, 'GET', `/pre/a%20b.txt?${qs.replace(/X-Amz-Expires=\d+/, 'X-Amz-Expires=61')}`);
      assert.equal(tampered.status, 403);
      assert.match(tampered.text, /<Code>SignatureDoesNotMatch<\/Code>/);
      client.destroy();
    });
  });
});

describe('as a process (client.ts)', () => {
  test('prints its URLs, records headers of a PutObject with storage class, lock mode and SSE, and stops', async () => {
    const s3 = await spawnS3Server({ buckets: ['rec'], objectLockBuckets: ['rec-worm'] });
    try {
      const r = await requestJson(s3.url, 'GET', '/_test/faults');
      assert.deepEqual(r.body, { rules: [] });
      const client = s3ClientFor(s3.url, { maxAttempts: 1 });
      const until = tomorrow();
      await client.send(
        new PutObjectCommand({
          Bucket: 'rec-worm',
          Key: 'audit/2026/01.parquet',
          Body: 'parquet bytes',
          StorageClass: 'GLACIER_IR',
          ObjectLockMode: 'COMPLIANCE',
          ObjectLockRetainUntilDate: until,
          ServerSideEncryption: 'aws:kms',
          SSEKMSKeyId: 'archive-key',
          ContentType: 'application/vnd.apache.parquet',
        }),
      );
      const [rec] = await s3.requests({ op: 'PutObject' });
      assert.ok(rec);
      assert.equal(rec.bucket, 'rec-worm');
      assert.equal(rec.key, 'audit/2026/01.parquet');
      assert.equal(rec.status, 200);
      assert.equal(rec.contentType, 'application/vnd.apache.parquet');
      assert.equal(rec.contentLength, 13);
      assert.equal(rec.bodyBytes, 13);
      assert.equal(rec.headers['x-amz-storage-class'], 'GLACIER_IR');
      assert.equal(rec.headers['x-amz-object-lock-mode'], 'COMPLIANCE');
      assert.equal(rec.headers['x-amz-object-lock-retain-until-date'], until.toISOString());
      assert.equal(rec.headers['x-amz-server-side-encryption'], 'aws:kms');
      assert.equal(rec.headers['x-amz-server-side-encryption-aws-kms-key-id'], 'archive-key');
      assert.equal(rec.headers['x-amz-checksum-crc32'], s3Checksum('CRC32', Buffer.from('parquet bytes')));
      const locks = await s3.objectLocks();
      assert.deepEqual(
        locks.map((l) => [l.bucket, l.key, l.mode]),
        [['rec-worm', 'audit/2026/01.parquet', 'COMPLIANCE']],
      );
      const objects = await s3.objects();
      assert.equal(objects[0]!.storageClass, 'GLACIER_IR');
      await s3.faults([{ match: { op: 'HeadObject' }, action: { type: 'status', status: 500 } }]);
      assert.equal((await s3.faultState()).rules.length, 1);
      assert.equal((await requestJson(s3.url, 'GET', '/_test/requests?clear=1')).status, 200);
      assert.deepEqual(await s3.requests(), []);
      await s3.reset({ data: true });
      assert.deepEqual((await s3.faultState()).rules, []);
      const list = await client.send(new ListObjectsV2Command({ Bucket: 'rec-worm' }));
      assert.equal(list.KeyCount, 0, 'reset with data empties the buckets and keeps them');
      client.destroy();
      assert.ok(existsSync(s3.dir));
    } finally {
      await s3.stop();
    }
    assert.equal(existsSync(s3.dir), false, 'the data directory it created is removed');
  });

  test('bad options exit with one line naming the option', async () => {
    const err = await rejection(spawnS3Server({ denyOps: ['PutObjekt'] }));
    assert.match(err.message, /exited before listening \(2\): s3-server: denyOps: unknown operation PutObjekt/);
    await assert.rejects(startS3Server({ faults: [{ action: { type: 'nope' } } as never] }), /type among/);
  });
});

describe('request bodies stream through in bounded memory', () => {
  test('a 64 MiB upload does not grow the heap by its size', async () => {
    await withServer({ buckets: ['mem'] }, async (s3) => {
      const relaxed = s3ClientFor(s3.url, { maxAttempts: 1, requestChecksumCalculation: 'WHEN_REQUIRED' });
      const size = 64 * MIB;
      const block = Buffer.alloc(MIB, 'm');
      let sent = 0;
      const body = new Readable({
        read() {
          if (sent >= size) {
            this.push(null);
            return;
          }
          sent += block.length;
          this.push(block);
        },
      });
      global.gc?.();
      const before = process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
      let peak = 0;
      const timer = setInterval(() => {
        const m = process.memoryUsage();
        peak = Math.max(peak, m.heapUsed + m.arrayBuffers - before);
      }, 20);
      await relaxed.send(new PutObjectCommand({ Bucket: 'mem', Key: 'big', Body: body, ContentLength: size }));
      clearInterval(timer);
      const head = await relaxed.send(new HeadObjectCommand({ Bucket: 'mem', Key: 'big' }));
      assert.equal(head.ContentLength, size);
      assert.ok(peak < 48 * MIB, `memory grew by ${(peak / MIB).toFixed(1)} MiB`);
      relaxed.destroy();
    });
  });
});
