/**
 * The S3 test server for the `archive` sink: a real S3-protocol server (s3rver 3.7.1, from npm, on an
 * ephemeral 127.0.0.1 port, its data in a directory) behind a streaming proxy on node:http. Clients use the
 * proxy's URL with path-style addressing. The proxy
 *
 *  - records every request (operation, bucket, key, x-amz-* and conditional headers, body bytes, status) — GET /_test/requests;
 *  - injects faults from rules (connection reset mid-upload, reset after the request was applied, a cut
 *    response body, 5xx/4xx answers, delays, throttled bodies) — POST /_test/faults;
 *  - adds the AWS behaviour s3rver lacks or gets wrong: SigV4 verification and access keys, denied operations,
 *    aws-chunked request bodies, Content-MD5 / x-amz-checksum-* / x-amz-content-sha256 verification,
 *    multipart ETags and part checks, AbortMultipartUpload / ListMultipartUploads / ListParts, a correct
 *    ListObjects(V2), cold storage classes (InvalidObjectState, RestoreObject), server-side encryption
 *    headers, versioning with delete markers, Object Lock (retention, legal hold, WORM deletes), and conditional
 *    writes (If-None-Match: * / If-Match on PutObject, CopyObject and CompleteMultipartUpload, atomic per key).
 *
 * README.md beside this file lists what is emulated, the AWS documentation it follows, and the s3rver gaps.
 *
 * In process:   const s3 = await startS3Server({ buckets: ['archive'] }); … await s3.close();
 * As a process: node --import tsx test/s3-server/server.ts --port 0 --dir <data dir> --options '<json>' [--exit-on-stdin-close]
 *               prints one line {"url":"http://127.0.0.1:PORT","directUrl":"http://127.0.0.1:PORT2"} once listening.
 *
 * Bodies are streamed both ways (one chunk is held back while a request body's digests are checked), so a
 * 1 GB upload goes through in bounded memory.
 */
import http from 'node:http';
import crypto from 'node:crypto';
import zlib from 'node:zlib';
import { createRequire } from 'node:module';
import { createWriteStream, existsSync, mkdtempSync } from 'node:fs';
import { mkdir, open, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Readable, Transform, Writable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import type { AddressInfo, Socket } from 'node:net';

// ---------------------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------------------

export type ObjectLockMode = 'GOVERNANCE' | 'COMPLIANCE';

/** A bucket created with Object Lock (and therefore versioning) enabled. */
export interface ObjectLockBucketOptions {
  name: string;
  /** The bucket's default retention, applied to every new object version without lock headers. */
  defaultRetention?: { mode: ObjectLockMode; days?: number; years?: number };
}

export interface S3AccessKey {
  accessKeyId: string;
  secretAccessKey: string;
  /** Operations this key may not call (403 AccessDenied), in addition to the server-wide `denyOps`. */
  denyOps?: string[];
}

export interface S3ServerOptions {
  /** Port of the proxy (the URL clients use); 0 (default) picks a free one. */
  port?: number;
  /** Always 127.0.0.1 unless set. */
  host?: string;
  /** s3rver's data directory. Default: a new temporary directory, removed on close. */
  dir?: string;
  /** Buckets created at start (kept when they exist). */
  buckets?: string[];
  /** Buckets created at start with Object Lock and versioning enabled. */
  objectLockBuckets?: Array<string | ObjectLockBucketOptions>;
  /** The keys the server accepts (SigV4). Default: s3rver's own S3RVER / S3RVER. */
  accessKeys?: S3AccessKey[];
  /** Operations (PutObject, DeleteObject, …) refused with 403 AccessDenied for every key. */
  denyOps?: string[];
  /** The region in credential scopes (default us-east-1); another one gets AuthorizationHeaderMalformed. */
  region?: string;
  /** Check SigV4 signatures (header and presigned). Default true. */
  verifySignatures?: boolean;
  /** Accept unsigned requests (AWS refuses them for private buckets). Default false. */
  allowAnonymous?: boolean;
  /** Smallest part (but the last) CompleteMultipartUpload accepts; AWS: 5 MiB (the default). */
  minPartSizeBytes?: number;
  /** How many requests GET /_test/requests keeps (the most recent). Default 20,000. */
  maxRecordedRequests?: number;
  /** Fault rules active from the start. */
  faults?: FaultRule[];
}

/** The S3 operations the proxy recognises (from method, query and headers). */
export const S3_OPERATIONS = [
  'ListBuckets',
  'CreateBucket',
  'DeleteBucket',
  'HeadBucket',
  'ListObjects',
  'ListObjectsV2',
  'ListObjectVersions',
  'ListMultipartUploads',
  'GetBucketLocation',
  'GetBucketVersioning',
  'PutBucketVersioning',
  'GetObjectLockConfiguration',
  'PutObjectLockConfiguration',
  'GetBucketEncryption',
  'PutBucketEncryption',
  'DeleteBucketEncryption',
  'GetBucketLifecycleConfiguration',
  'PutBucketLifecycleConfiguration',
  'DeleteBucketLifecycle',
  'GetBucketPolicy',
  'PutBucketPolicy',
  'DeleteBucketPolicy',
  'GetBucketCors',
  'PutBucketCors',
  'DeleteBucketCors',
  'GetBucketTagging',
  'PutBucketTagging',
  'DeleteBucketTagging',
  'GetBucketAcl',
  'PutBucketAcl',
  'GetBucketWebsite',
  'PutBucketWebsite',
  'DeleteBucketWebsite',
  'GetBucketNotificationConfiguration',
  'PutBucketNotificationConfiguration',
  'GetBucketLogging',
  'PutBucketLogging',
  'GetBucketReplication',
  'PutBucketReplication',
  'DeleteBucketReplication',
  'GetPublicAccessBlock',
  'PutPublicAccessBlock',
  'DeletePublicAccessBlock',
  'GetBucketOwnershipControls',
  'PutBucketOwnershipControls',
  'DeleteBucketOwnershipControls',
  'GetBucketPolicyStatus',
  'GetBucketAccelerateConfiguration',
  'PutBucketAccelerateConfiguration',
  'GetBucketRequestPayment',
  'PutBucketRequestPayment',
  'DeleteObjects',
  'PostObject',
  'PutObject',
  'CopyObject',
  'GetObject',
  'HeadObject',
  'DeleteObject',
  'CreateMultipartUpload',
  'UploadPart',
  'UploadPartCopy',
  'CompleteMultipartUpload',
  'AbortMultipartUpload',
  'ListParts',
  'GetObjectAttributes',
  'GetObjectAcl',
  'PutObjectAcl',
  'GetObjectTagging',
  'PutObjectTagging',
  'DeleteObjectTagging',
  'GetObjectRetention',
  'PutObjectRetention',
  'GetObjectLegalHold',
  'PutObjectLegalHold',
  'RestoreObject',
  'SelectObjectContent',
  'GetObjectTorrent',
  'Unknown',
] as const;
export type S3Operation = (typeof S3_OPERATIONS)[number];

/** One request as the proxy saw it. */
export interface RecordedRequest {
  seq: number;
  /** ISO time the request arrived. */
  time: string;
  method: string;
  /** The raw (URL-encoded) path. */
  path: string;
  query: Record<string, string>;
  op: S3Operation;
  bucket: string | null;
  key: string | null;
  /** Every x-amz-* request header and the conditional ones (If-Match, If-None-Match, If-(Un)Modified-Since); lower-case names. */
  headers: Record<string, string>;
  contentMd5: string | null;
  /** The Content-Length header (bytes on the wire), when sent. */
  contentLength: number | null;
  contentType: string | null;
  accessKeyId: string | null;
  /** Request body bytes the proxy read (on the wire, before aws-chunked decoding). */
  bodyBytes: number;
  /** Response status, set when the status line was written; null while pending or when no answer was sent. */
  status: number | null;
  /** The S3 error code answered, when there was one the proxy knows (its own answers). */
  errorCode: string | null;
  /** The fault actions applied (`delay`, `status`, `reset_after_bytes`, …). */
  faults: string[];
  /** `proxy` when the proxy answered itself (emulation, fault, refusal), `s3rver` when forwarded. */
  handledBy: 'proxy' | 's3rver' | null;
  /** True once the exchange is over (answered, reset or abandoned by the client). */
  done: boolean;
  /** The client went away before the answer was complete. */
  clientAborted: boolean;
  /** Response body bytes written. */
  responseBytes: number;
  durationMs: number | null;
}

export interface RequestQuery {
  op?: string;
  method?: string;
  bucket?: string;
  keyPrefix?: string;
  /** Only requests with seq > since. */
  since?: number;
  /** Empty the recording after reading it. */
  clear?: boolean;
}

export interface FaultMatch {
  op?: S3Operation | S3Operation[];
  method?: string;
  bucket?: string;
  keyPrefix?: string;
}

export type FaultAction =
  /** Read N request body bytes, then reset the client connection (RST) without answering. Nothing is forwarded. */
  | { type: 'reset_after_bytes'; bytes: number }
  /** Forward the request (s3rver applies it), then reset the client connection before any response byte. */
  | { type: 'reset_before_response' }
  /** Forward, send the status line, headers and N body bytes, then reset (only cuts bodies longer than N). */
  | { type: 'reset_after_response_bytes'; bytes: number }
  /** Answer this status with an S3 XML error body, without forwarding. Code/message default by status. */
  | { type: 'status'; status: number; code?: string; message?: string; headers?: Record<string, string> }
  /** Wait this long before forwarding (the request body stays unread meanwhile). */
  | { type: 'delay'; ms: number }
  /** Throttle the response body to this rate. */
  | { type: 'slow_body'; bytesPerSecond: number };

export interface FaultRule {
  match?: FaultMatch;
  action: FaultAction;
  /** How many matching requests the rule applies to (default 1); 'always' for every one. */
  times?: number | 'always';
  /** Matching requests to let through untouched before the rule starts applying (default 0). */
  after?: number;
}

export interface FaultRuleState extends FaultRule {
  id: number;
  /** Matching requests seen. */
  matched: number;
  /** Times the action was applied. */
  fired: number;
  remaining: number | 'always';
}

export interface FaultState {
  rules: FaultRuleState[];
}

export interface ObjectLockEntry {
  bucket: string;
  key: string;
  versionId: string;
  mode: ObjectLockMode | null;
  retainUntil: string | null;
  legalHold: 'ON' | 'OFF' | null;
  /** The version is the latest (not hidden by a delete marker or a newer version). */
  isLatest: boolean;
  /** Its bytes are still stored (the test server keeps only the newest data version's bytes). */
  hasBytes: boolean;
}

export interface ServerSideEncryption {
  algorithm: 'AES256' | 'aws:kms' | 'aws:kms:dsse';
  kmsKeyId: string | null;
  bucketKeyEnabled: boolean;
  /** True when the client asked for it; false when it is the bucket default (SSE-S3). */
  requested: boolean;
}

/** What the proxy remembers about a stored object (GET /_test/objects). */
export interface ObjectStateEntry {
  bucket: string;
  key: string;
  versionId: string | null;
  sse: ServerSideEncryption;
  checksum: { algorithm: ChecksumAlgorithm; value: string; type: 'FULL_OBJECT' | 'COMPOSITE' } | null;
  storageClass: string;
  restoredUntil: string | null;
}

/** What the proxy emulates per bucket (GET /_test/buckets). */
export interface BucketStateEntry {
  name: string;
  objectLock: boolean;
  versioning: 'Enabled' | 'Suspended' | null;
  defaultRetention: { mode: ObjectLockMode; days?: number; years?: number } | null;
  encryption: { algorithm: ServerSideEncryption['algorithm']; kmsKeyId: string | null; bucketKeyEnabled: boolean } | null;
  /** The lifecycle configuration XML last put (stored; lifecycle rules are not applied). */
  lifecycle: string | null;
}

export interface S3ServerHandle {
  /** The proxy: what clients use. */
  url: string;
  /** s3rver itself, with none of the proxy's emulation or recording. */
  directUrl: string;
  dir: string;
  port: number;
  requests(q?: RequestQuery): RecordedRequest[];
  clearRequests(): void;
  /** Adds rules; returns the fault state. */
  faults(rules: FaultRule[]): FaultState;
  faultState(): FaultState;
  clearFaults(): void;
  /** Clears fault rules and recordings; with data, also every bucket, object and emulated state. */
  reset(opts?: { data?: boolean }): Promise<void>;
  objectLocks(): ObjectLockEntry[];
  objects(): Promise<ObjectStateEntry[]>;
  buckets(): Promise<BucketStateEntry[]>;
  close(): Promise<void>;
}

export type ChecksumAlgorithm = 'CRC32' | 'CRC32C' | 'CRC64NVME' | 'SHA1' | 'SHA256';

// ---------------------------------------------------------------------------------------------------
// Constants
// ---------------------------------------------------------------------------------------------------

const S3_XMLNS = 'http://s3.amazonaws.com/doc/2006-03-01/';
const ACCOUNT_ID = '123456789000';
const OWNER = { id: '123456789000', displayName: 'S3rver' };
const DEFAULT_KEY = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
const MIB = 1024 * 1024;
/** Archived storage classes: GetObject answers InvalidObjectState until restored (GetObject API reference). */
const COLD_STORAGE_CLASSES = new Set(['GLACIER', 'DEEP_ARCHIVE']);
/** The StorageClass values PutObject accepts (PutObject API reference), some of which s3rver 3.7.1 refuses. */
const STORAGE_CLASSES = [
  'STANDARD',
  'REDUCED_REDUNDANCY',
  'STANDARD_IA',
  'ONEZONE_IA',
  'INTELLIGENT_TIERING',
  'GLACIER',
  'DEEP_ARCHIVE',
  'OUTPOSTS',
  'GLACIER_IR',
  'SNOW',
  'EXPRESS_ONEZONE',
];
const SSE_ALGORITHMS = new Set(['AES256', 'aws:kms', 'aws:kms:dsse']);
/** The AWS managed key (aws/s3) that SSE-KMS without a key id uses; a fixed made-up id here. */
const AWS_MANAGED_KMS_KEY_ID = '5e4a1c0b-0000-4000-8000-a11ce5000001';
const CHECKSUM_ALGORITHMS: ChecksumAlgorithm[] = ['CRC32', 'CRC32C', 'CRC64NVME', 'SHA1', 'SHA256'];
const CHECKSUM_BYTES: Record<ChecksumAlgorithm, number> = { CRC32: 4, CRC32C: 4, CRC64NVME: 8, SHA1: 20, SHA256: 32 };
const STREAMING_PAYLOADS = new Set([
  'STREAMING-UNSIGNED-PAYLOAD-TRAILER',
  'STREAMING-AWS4-HMAC-SHA256-PAYLOAD',
  'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER',
  'STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD',
  'STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER',
]);
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'expect']);
const S3RVER_OBJECT_SUFFIX = '._S3rver_object';
const S3RVER_UPLOADS_DIR = '._S3rver_uploads';

/** Default code and message per status for `status` faults (S3 ErrorResponses reference). */
const STATUS_ERRORS: Record<number, [string, string]> = {
  400: ['BadRequest', 'Bad Request'],
  403: ['AccessDenied', 'Access Denied'],
  404: ['NoSuchKey', 'The specified key does not exist.'],
  409: ['OperationAborted', 'A conflicting conditional operation is currently in progress against this resource. Please try again.'],
  412: ['PreconditionFailed', 'At least one of the pre-conditions you specified did not hold'],
  500: ['InternalError', 'We encountered an internal error. Please try again.'],
  501: ['NotImplemented', 'A header you provided implies functionality that is not implemented'],
  503: ['SlowDown', 'Please reduce your request rate.'],
};

// ---------------------------------------------------------------------------------------------------
// Errors and XML
// ---------------------------------------------------------------------------------------------------

/** An S3 error answer: status, code, message and the extra elements AWS puts in the <Error> body. */
class S3Fail extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly detail: Record<string, string | number> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

const fail = (status: number, code: string, message: string, detail: Record<string, string | number> = {}, headers: Record<string, string> = {}): S3Fail =>
  new S3Fail(status, code, message, detail, headers);

const ERR = {
  accessDenied: () => fail(403, 'AccessDenied', 'Access Denied'),
  noSuchBucket: (bucket: string) => fail(404, 'NoSuchBucket', 'The specified bucket does not exist', { BucketName: bucket }),
  noSuchKey: (key: string, headers: Record<string, string> = {}) => fail(404, 'NoSuchKey', 'The specified key does not exist.', { Key: key }, headers),
  noSuchUpload: (uploadId: string) =>
    fail(404, 'NoSuchUpload', 'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.', {
      UploadId: uploadId,
    }),
  malformedXml: () => fail(400, 'MalformedXML', 'The XML you provided was not well-formed or did not validate against our published schema'),
  lockMissing: (spaces: boolean) =>
    fail(400, 'InvalidRequest', spaces ? 'Bucket is missing Object Lock Configuration' : 'Bucket is missing ObjectLockConfiguration'),
  /** A write precondition that did not hold; `condition` names the header (`If-Match` or `If-None-Match`). */
  preconditionFailed: (condition: string) =>
    fail(412, 'PreconditionFailed', 'At least one of the pre-conditions you specified did not hold', { Condition: condition }),
  /** A conditional header (or value) S3 does not take on writes. */
  conditionalNotImplemented: (header: string, additionalMessage: string) =>
    fail(501, 'NotImplemented', 'A header you provided implies functionality that is not implemented', { Header: header, additionalMessage }),
};

function xmlEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

function xmlUnescape(s: string): string {
  return s.replace(/&(#x[0-9a-fA-F]+|#\d+|amp|lt|gt|quot|apos);/g, (_m, e: string) => {
    if (e[0] === '#') return String.fromCodePoint(e[1] === 'x' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10));
    return ({ amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" } as Record<string, string>)[e] ?? '';
  });
}

/** `<name>value</name>`; nothing when value is null/undefined. */
function el(name: string, value: string | number | boolean | null | undefined): string {
  if (value === null || value === undefined) return '';
  return `<${name}>${xmlEscape(String(value))}</${name}>`;
}

function xmlDocument(root: string, inner: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<${root} xmlns="${S3_XMLNS}">${inner}</${root}>`;
}

function errorXml(code: string, message: string, detail: Record<string, string | number>, requestId: string, hostId: string): string {
  const extra = Object.entries(detail)
    .map(([k, v]) => el(k, v))
    .join('');
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Error>${el('Code', code)}${el('Message', message)}${extra}${el('RequestId', requestId)}${el('HostId', hostId)}</Error>`;
}

/** The text of every <tag>…</tag> in xml (no nesting of the same tag), unescaped. */
function xmlTexts(xml: string, tag: string): string[] {
  const out: string[] = [];
  const re = new RegExp(`<${tag}(?:\\s[^>]*)?>([\\s\\S]*?)</${tag}>|<${tag}(?:\\s[^>]*)?/>`, 'g');
  for (let m = re.exec(xml); m; m = re.exec(xml)) out.push(m[1] === undefined ? '' : m[1]);
  return out;
}

function xmlText(xml: string, tag: string): string | undefined {
  const t = xmlTexts(xml, tag)[0];
  return t === undefined ? undefined : xmlUnescape(t.trim());
}

/** Checks that the body is one XML element named root (a loose well-formedness check). */
function xmlRoot(xml: string, root: string): string {
  const body = xml.replace(/^\uFEFF?\s*(<\?xml[^>]*\?>)?\s*/, '');
  const inner = xmlTexts(body, root)[0];
  if (inner === undefined || !body.startsWith(`<${root}`)) throw ERR.malformedXml();
  return inner;
}

// ---------------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------------

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function requestIds(): { requestId: string; hostId: string } {
  return { requestId: crypto.randomBytes(8).toString('hex').toUpperCase(), hostId: crypto.randomBytes(48).toString('base64') };
}

function newVersionId(): string {
  return crypto.randomBytes(24).toString('base64url');
}

/** RFC 3986 encoding, as SigV4 canonicalisation requires. */
function uriEncode(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** ISO 8601 date-time as S3 accepts it for retain-until dates (with a time zone or UTC by default). */
function parseIsoDate(s: string): Date | null {
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?$/.test(s)) return null;
  const normalized = /(Z|[+-]\d{2}:?\d{2})$/.test(s) ? s : `${s}Z`;
  const d = new Date(normalized.replace(/(\.\d{3})\d+/, '$1'));
  return Number.isNaN(d.getTime()) ? null : d;
}

function headerValue(req: http.IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(',') : v;
}

function resetSocket(socket: Socket | null | undefined): void {
  if (!socket || socket.destroyed) return;
  if (typeof socket.resetAndDestroy === 'function') socket.resetAndDestroy();
  else socket.destroy();
}

function utf8Compare(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

// ---------------------------------------------------------------------------------------------------
// Checksums (CRC32, CRC32C, CRC64NVME, SHA1, SHA256 as S3 defines them; base64 of the big-endian value)
// ---------------------------------------------------------------------------------------------------

function crc32Table(poly: number): Uint32Array {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ poly : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
}
const CRC32_TABLE = crc32Table(0xedb88320);
const CRC32C_TABLE = crc32Table(0x82f63b78);

/** CRC64/NVME (reflected polynomial 0x9A6C9329AC4BC9B5), as a pair of 32-bit halves for speed. */
const CRC64_TABLE_HI = new Uint32Array(256);
const CRC64_TABLE_LO = new Uint32Array(256);
{
  const polyHi = 0x9a6c9329;
  const polyLo = 0xac4bc9b5;
  for (let i = 0; i < 256; i++) {
    let hi = 0;
    let lo = i;
    for (let k = 0; k < 8; k++) {
      const lsb = lo & 1;
      lo = ((lo >>> 1) | ((hi & 1) << 31)) >>> 0;
      hi = hi >>> 1;
      if (lsb) {
        hi = (hi ^ polyHi) >>> 0;
        lo = (lo ^ polyLo) >>> 0;
      }
    }
    CRC64_TABLE_HI[i] = hi;
    CRC64_TABLE_LO[i] = lo;
  }
}

interface Digest {
  update(b: Buffer): void;
  digest(): Buffer;
}

class Crc32Digest implements Digest {
  private crc = 0;
  constructor(private readonly table: Uint32Array | null) {}
  update(b: Buffer): void {
    if (this.table === null && typeof zlib.crc32 === 'function') {
      this.crc = zlib.crc32(b, this.crc);
      return;
    }
    const t = this.table ?? CRC32_TABLE;
    let c = ~this.crc >>> 0;
    for (let i = 0; i < b.length; i++) c = (t[(c ^ b[i]!) & 0xff]! ^ (c >>> 8)) >>> 0;
    this.crc = ~c >>> 0;
  }
  digest(): Buffer {
    const out = Buffer.alloc(4);
    out.writeUInt32BE(this.crc >>> 0);
    return out;
  }
}

class Crc64NvmeDigest implements Digest {
  private hi = 0xffffffff;
  private lo = 0xffffffff;
  update(b: Buffer): void {
    let hi = this.hi;
    let lo = this.lo;
    for (let i = 0; i < b.length; i++) {
      const idx = (lo ^ b[i]!) & 0xff;
      const nlo = ((lo >>> 8) | ((hi & 0xff) << 24)) >>> 0;
      const nhi = hi >>> 8;
      lo = (nlo ^ CRC64_TABLE_LO[idx]!) >>> 0;
      hi = (nhi ^ CRC64_TABLE_HI[idx]!) >>> 0;
    }
    this.hi = hi;
    this.lo = lo;
  }
  digest(): Buffer {
    const out = Buffer.alloc(8);
    out.writeUInt32BE(~this.hi >>> 0, 0);
    out.writeUInt32BE(~this.lo >>> 0, 4);
    return out;
  }
}

function newDigest(alg: ChecksumAlgorithm | 'MD5'): Digest {
  switch (alg) {
    case 'CRC32':
      return new Crc32Digest(null);
    case 'CRC32C':
      return new Crc32Digest(CRC32C_TABLE);
    case 'CRC64NVME':
      return new Crc64NvmeDigest();
    case 'SHA1':
      return crypto.createHash('sha1');
    case 'SHA256':
      return crypto.createHash('sha256');
    case 'MD5':
      return crypto.createHash('md5');
  }
}

/** The checksum of a buffer, base64 (exported for tests that want to compute expected values). */
export function s3Checksum(alg: ChecksumAlgorithm, data: Buffer): string {
  const d = newDigest(alg);
  d.update(data);
  return d.digest().toString('base64');
}

function checksumHeader(alg: ChecksumAlgorithm): string {
  return `x-amz-checksum-${alg.toLowerCase()}`;
}

function checksumAlgorithmOf(header: string): ChecksumAlgorithm | undefined {
  const m = /^x-amz-checksum-([a-z0-9]+)$/.exec(header.toLowerCase());
  return m ? CHECKSUM_ALGORITHMS.find((a) => a.toLowerCase() === m[1]) : undefined;
}

// ---------------------------------------------------------------------------------------------------
// Request classification
// ---------------------------------------------------------------------------------------------------

interface RequestInfo {
  method: string;
  rawPath: string;
  rawQuery: string;
  /** Decoded query (last value wins). */
  query: Record<string, string>;
  bucket: string | null;
  key: string | null;
  op: S3Operation;
}

const BUCKET_SUBRESOURCES: Record<string, Partial<Record<string, S3Operation>>> = {
  GET: {
    uploads: 'ListMultipartUploads',
    versions: 'ListObjectVersions',
    location: 'GetBucketLocation',
    versioning: 'GetBucketVersioning',
    'object-lock': 'GetObjectLockConfiguration',
    encryption: 'GetBucketEncryption',
    lifecycle: 'GetBucketLifecycleConfiguration',
    policy: 'GetBucketPolicy',
    policyStatus: 'GetBucketPolicyStatus',
    cors: 'GetBucketCors',
    tagging: 'GetBucketTagging',
    acl: 'GetBucketAcl',
    website: 'GetBucketWebsite',
    notification: 'GetBucketNotificationConfiguration',
    logging: 'GetBucketLogging',
    replication: 'GetBucketReplication',
    publicAccessBlock: 'GetPublicAccessBlock',
    ownershipControls: 'GetBucketOwnershipControls',
    accelerate: 'GetBucketAccelerateConfiguration',
    requestPayment: 'GetBucketRequestPayment',
  },
  PUT: {
    versioning: 'PutBucketVersioning',
    'object-lock': 'PutObjectLockConfiguration',
    encryption: 'PutBucketEncryption',
    lifecycle: 'PutBucketLifecycleConfiguration',
    policy: 'PutBucketPolicy',
    cors: 'PutBucketCors',
    tagging: 'PutBucketTagging',
    acl: 'PutBucketAcl',
    website: 'PutBucketWebsite',
    notification: 'PutBucketNotificationConfiguration',
    logging: 'PutBucketLogging',
    replication: 'PutBucketReplication',
    publicAccessBlock: 'PutPublicAccessBlock',
    ownershipControls: 'PutBucketOwnershipControls',
    accelerate: 'PutBucketAccelerateConfiguration',
    requestPayment: 'PutBucketRequestPayment',
  },
  DELETE: {
    encryption: 'DeleteBucketEncryption',
    lifecycle: 'DeleteBucketLifecycle',
    policy: 'DeleteBucketPolicy',
    cors: 'DeleteBucketCors',
    tagging: 'DeleteBucketTagging',
    website: 'DeleteBucketWebsite',
    replication: 'DeleteBucketReplication',
    publicAccessBlock: 'DeletePublicAccessBlock',
    ownershipControls: 'DeleteBucketOwnershipControls',
  },
};

const OBJECT_SUBRESOURCES: Record<string, Partial<Record<string, S3Operation>>> = {
  GET: {
    uploadId: 'ListParts',
    retention: 'GetObjectRetention',
    'legal-hold': 'GetObjectLegalHold',
    tagging: 'GetObjectTagging',
    acl: 'GetObjectAcl',
    attributes: 'GetObjectAttributes',
    torrent: 'GetObjectTorrent',
  },
  PUT: { retention: 'PutObjectRetention', 'legal-hold': 'PutObjectLegalHold', tagging: 'PutObjectTagging', acl: 'PutObjectAcl' },
  POST: { uploads: 'CreateMultipartUpload', uploadId: 'CompleteMultipartUpload', restore: 'RestoreObject', select: 'SelectObjectContent' },
  DELETE: { uploadId: 'AbortMultipartUpload', tagging: 'DeleteObjectTagging' },
};

function parseQuery(raw: string): { pairs: Array<[string, string]>; map: Record<string, string> } {
  const pairs: Array<[string, string]> = [];
  const map: Record<string, string> = {};
  for (const part of raw.split('&')) {
    if (!part) continue;
    const eq = part.indexOf('=');
    const k = safeDecode(eq < 0 ? part : part.slice(0, eq));
    const v = safeDecode(eq < 0 ? '' : part.slice(eq + 1));
    pairs.push([k, v]);
    map[k] = v;
  }
  return { pairs, map };
}

/** Names the S3 operation from method, path-style URL, query and headers. */
export function classifyRequest(method: string, url: string, headers: http.IncomingHttpHeaders): RequestInfo {
  const q = url.indexOf('?');
  const rawPath = q < 0 ? url : url.slice(0, q);
  const rawQuery = q < 0 ? '' : url.slice(q + 1);
  const { map: query } = parseQuery(rawQuery);
  const segments = rawPath.replace(/^\//, '');
  const slash = segments.indexOf('/');
  const bucket = segments === '' ? null : safeDecode(slash < 0 ? segments : segments.slice(0, slash));
  const keyRaw = slash < 0 ? '' : segments.slice(slash + 1);
  const key = keyRaw === '' ? null : safeDecode(keyRaw);
  const m = method.toUpperCase();
  const has = (name: string) => Object.prototype.hasOwnProperty.call(query, name);
  const copySource = headers['x-amz-copy-source'] !== undefined;
  let op: S3Operation = 'Unknown';
  if (bucket === null) {
    if (m === 'GET') op = 'ListBuckets';
  } else if (key === null) {
    const sub = Object.entries(BUCKET_SUBRESOURCES[m] ?? {}).find(([name]) => has(name));
    if (sub) op = sub[1]!;
    else if (m === 'GET') op = query['list-type'] === '2' ? 'ListObjectsV2' : 'ListObjects';
    else if (m === 'PUT') op = 'CreateBucket';
    else if (m === 'DELETE') op = 'DeleteBucket';
    else if (m === 'HEAD') op = 'HeadBucket';
    else if (m === 'POST') op = has('delete') ? 'DeleteObjects' : 'PostObject';
  } else if (m === 'PUT' && has('partNumber') && has('uploadId')) {
    op = copySource ? 'UploadPartCopy' : 'UploadPart';
  } else {
    const sub = Object.entries(OBJECT_SUBRESOURCES[m] ?? {}).find(([name]) => has(name));
    if (sub) op = sub[1]!;
    else if (m === 'GET') op = 'GetObject';
    else if (m === 'HEAD') op = 'HeadObject';
    else if (m === 'PUT') op = copySource ? 'CopyObject' : 'PutObject';
    else if (m === 'DELETE') op = 'DeleteObject';
  }
  return { method: m, rawPath, rawQuery, query, bucket, key, op };
}

// ---------------------------------------------------------------------------------------------------
// Recording
// ---------------------------------------------------------------------------------------------------

/** Request headers recorded besides x-amz-*: the conditional ones (conditional writes and reads). */
const RECORDED_CONDITIONAL_HEADERS = new Set(['if-match', 'if-none-match', 'if-modified-since', 'if-unmodified-since']);

class Recorder {
  private list: RecordedRequest[] = [];
  private seq = 0;
  constructor(private readonly max: number) {}

  start(req: http.IncomingMessage, info: RequestInfo): RecordedRequest {
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if ((name.startsWith('x-amz-') || RECORDED_CONDITIONAL_HEADERS.has(name)) && value !== undefined)
        headers[name] = Array.isArray(value) ? value.join(',') : value;
    }
    const cl = headerValue(req, 'content-length');
    const rec: RecordedRequest = {
      seq: ++this.seq,
      time: new Date().toISOString(),
      method: info.method,
      path: info.rawPath,
      query: info.query,
      op: info.op,
      bucket: info.bucket,
      key: info.key,
      headers,
      contentMd5: headerValue(req, 'content-md5') ?? null,
      contentLength: cl === undefined ? null : Number(cl),
      contentType: headerValue(req, 'content-type') ?? null,
      accessKeyId: null,
      bodyBytes: 0,
      status: null,
      errorCode: null,
      faults: [],
      handledBy: null,
      done: false,
      clientAborted: false,
      responseBytes: 0,
      durationMs: null,
    };
    this.list.push(rec);
    if (this.list.length > this.max) this.list.splice(0, this.list.length - this.max);
    return rec;
  }

  query(q: RequestQuery = {}): RecordedRequest[] {
    const out = this.list.filter(
      (r) =>
        (q.op === undefined || r.op === q.op) &&
        (q.method === undefined || r.method === q.method.toUpperCase()) &&
        (q.bucket === undefined || r.bucket === q.bucket) &&
        (q.keyPrefix === undefined || (r.key ?? '').startsWith(q.keyPrefix)) &&
        (q.since === undefined || r.seq > q.since),
    );
    if (q.clear) this.clear();
    return out.map((r) => ({ ...r, headers: { ...r.headers }, query: { ...r.query }, faults: [...r.faults] }));
  }

  clear(): void {
    this.list = [];
  }
}

// ---------------------------------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------------------------------

const FAULT_TYPES = new Set(['reset_after_bytes', 'reset_before_response', 'reset_after_response_bytes', 'status', 'delay', 'slow_body']);

function validateRule(r: FaultRule): void {
  if (!r || typeof r !== 'object' || !r.action || !FAULT_TYPES.has(r.action.type)) {
    throw new Error(`a fault rule needs an action with a type among ${[...FAULT_TYPES].join(', ')}; got ${JSON.stringify(r)}`);
  }
  const a = r.action;
  const nonNegative = (n: unknown, what: string) => {
    if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) throw new Error(`${a.type} needs ${what} as a number ≥ 0; got ${JSON.stringify(r)}`);
  };
  if (a.type === 'reset_after_bytes' || a.type === 'reset_after_response_bytes') nonNegative(a.bytes, 'bytes');
  if (a.type === 'delay') nonNegative(a.ms, 'ms');
  if (a.type === 'slow_body') {
    nonNegative(a.bytesPerSecond, 'bytesPerSecond');
    if (a.bytesPerSecond === 0) throw new Error('slow_body needs bytesPerSecond > 0');
  }
  if (a.type === 'status' && (typeof a.status !== 'number' || a.status < 100 || a.status > 599))
    throw new Error(`status needs an HTTP status; got ${JSON.stringify(r)}`);
  if (r.times !== undefined && r.times !== 'always' && (typeof r.times !== 'number' || r.times < 0))
    throw new Error(`times must be a number ≥ 0 or 'always'; got ${JSON.stringify(r)}`);
  if (r.after !== undefined && (typeof r.after !== 'number' || r.after < 0)) throw new Error(`after must be a number ≥ 0; got ${JSON.stringify(r)}`);
}

class Faults {
  private rules: FaultRuleState[] = [];
  private nextId = 1;

  add(rules: FaultRule[]): void {
    for (const r of rules) validateRule(r);
    for (const r of rules) {
      const times = r.times ?? 1;
      this.rules.push({ ...r, id: this.nextId++, matched: 0, fired: 0, remaining: times });
    }
  }

  clear(): void {
    this.rules = [];
  }

  state(): FaultState {
    return { rules: this.rules.map((r) => ({ ...r, match: r.match ? { ...r.match } : undefined, action: { ...r.action } })) };
  }

  /** The actions due for this request; counts matches and firings. */
  take(info: RequestInfo): FaultAction[] {
    const due: FaultAction[] = [];
    for (const r of this.rules) {
      if (!matches(r.match, info)) continue;
      r.matched++;
      if (r.matched <= (r.after ?? 0)) continue;
      if (r.remaining !== 'always' && r.remaining <= 0) continue;
      r.fired++;
      if (r.remaining !== 'always') r.remaining--;
      due.push(r.action);
    }
    return due;
  }
}

function matches(m: FaultMatch | undefined, info: RequestInfo): boolean {
  if (!m) return true;
  if (m.op !== undefined && !(Array.isArray(m.op) ? m.op.includes(info.op) : m.op === info.op)) return false;
  if (m.method !== undefined && m.method.toUpperCase() !== info.method) return false;
  if (m.bucket !== undefined && m.bucket !== info.bucket) return false;
  if (m.keyPrefix !== undefined && !(info.key ?? '').startsWith(m.keyPrefix)) return false;
  return true;
}

// ---------------------------------------------------------------------------------------------------
// SigV4 verification
// ---------------------------------------------------------------------------------------------------

interface AuthResult {
  accessKeyId: string | null;
}

function hmac(key: Buffer | string, data: string): Buffer {
  return crypto.createHmac('sha256', key).update(data, 'utf8').digest();
}

function sha256Hex(data: string): string {
  return crypto.createHash('sha256').update(data, 'utf8').digest('hex');
}

class Authenticator {
  private readonly keys = new Map<string, S3AccessKey>();
  constructor(
    keys: S3AccessKey[],
    private readonly region: string,
    private readonly verify: boolean,
    private readonly allowAnonymous: boolean,
  ) {
    for (const k of keys) this.keys.set(k.accessKeyId, k);
  }

  key(id: string | null): S3AccessKey | undefined {
    return id === null ? undefined : this.keys.get(id);
  }

  authenticate(req: http.IncomingMessage, info: RequestInfo): AuthResult {
    const authorization = headerValue(req, 'authorization');
    const presigned = info.query['X-Amz-Algorithm'] !== undefined || info.query['X-Amz-Credential'] !== undefined;
    if (authorization === undefined && !presigned) {
      if (info.query['Signature'] !== undefined || info.query['AWSAccessKeyId'] !== undefined) throw this.v2NotSupported();
      if (this.allowAnonymous) return { accessKeyId: null };
      throw ERR.accessDenied();
    }
    if (authorization !== undefined && presigned) {
      throw fail(
        400,
        'InvalidArgument',
        'Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified',
        { ArgumentName: 'Authorization', ArgumentValue: authorization },
      );
    }
    return authorization !== undefined ? this.headerAuth(req, info, authorization) : this.queryAuth(req, info);
  }

  private v2NotSupported(): S3Fail {
    return fail(400, 'InvalidRequest', 'The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.');
  }

  private headerAuth(req: http.IncomingMessage, info: RequestInfo, authorization: string): AuthResult {
    if (/^AWS /.test(authorization)) throw this.v2NotSupported();
    const m = /^AWS4-HMAC-SHA256\s+(.*)$/s.exec(authorization);
    if (!m) throw fail(400, 'InvalidArgument', 'Unsupported Authorization Type', { ArgumentName: 'Authorization', ArgumentValue: authorization });
    const parts = new Map<string, string>();
    for (const piece of m[1]!.split(',')) {
      const eq = piece.indexOf('=');
      if (eq > 0) parts.set(piece.slice(0, eq).trim(), piece.slice(eq + 1).trim());
    }
    const credential = parts.get('Credential');
    const signedHeaders = parts.get('SignedHeaders');
    const signature = parts.get('Signature');
    if (!credential || !signedHeaders || !signature) {
      throw fail(
        400,
        'AuthorizationHeaderMalformed',
        'The authorization header is malformed; the authorization header requires three components: Credential, SignedHeaders, and Signature.',
      );
    }
    const amzDate = headerValue(req, 'x-amz-date') ?? '';
    const payloadHash = headerValue(req, 'x-amz-content-sha256');
    if (payloadHash === undefined) throw fail(400, 'InvalidRequest', 'Missing required header for this request: x-amz-content-sha256');
    return this.check(req, info, credential, signedHeaders, signature, amzDate, payloadHash, false);
  }

  private queryAuth(req: http.IncomingMessage, info: RequestInfo): AuthResult {
    const q = info.query;
    if (q['X-Amz-Algorithm'] !== 'AWS4-HMAC-SHA256') {
      throw fail(400, 'AuthorizationQueryParametersError', 'X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"');
    }
    const credential = q['X-Amz-Credential'];
    const signedHeaders = q['X-Amz-SignedHeaders'];
    const signature = q['X-Amz-Signature'];
    const amzDate = q['X-Amz-Date'];
    const expires = q['X-Amz-Expires'];
    if (!credential || !signedHeaders || !signature || !amzDate || expires === undefined) {
      throw fail(
        400,
        'AuthorizationQueryParametersError',
        'Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.',
      );
    }
    const result = this.check(req, info, credential, signedHeaders, signature, amzDate, q['X-Amz-Content-Sha256'] ?? 'UNSIGNED-PAYLOAD', true);
    const start = parseAmzDate(amzDate);
    const seconds = Number(expires);
    if (start === null) throw fail(400, 'AuthorizationQueryParametersError', "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"");
    if (!Number.isInteger(seconds) || seconds < 0) throw fail(400, 'AuthorizationQueryParametersError', 'X-Amz-Expires must be non-negative');
    if (seconds > 604800)
      throw fail(
        400,
        'AuthorizationQueryParametersError',
        'X-Amz-Expires must be less than a week (in seconds); that is, the given X-Amz-Expires must be less than 604800 seconds',
      );
    const end = new Date(start.getTime() + seconds * 1000);
    if (Date.now() > end.getTime()) {
      throw fail(403, 'AccessDenied', 'Request has expired', {
        'X-Amz-Expires': seconds,
        Expires: end.toISOString().replace(/\.\d+/, ''),
        ServerTime: new Date().toISOString().replace(/\.\d+/, ''),
      });
    }
    return result;
  }

  private check(
    req: http.IncomingMessage,
    info: RequestInfo,
    credential: string,
    signedHeaders: string,
    signature: string,
    amzDate: string,
    payloadHash: string,
    presigned: boolean,
  ): AuthResult {
    const scope = credential.split('/');
    const accessKeyId = scope[0] ?? '';
    const key = this.keys.get(accessKeyId);
    if (!key) throw fail(403, 'InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist in our records.', { AWSAccessKeyId: accessKeyId });
    if (scope.length !== 5 || scope[4] !== 'aws4_request') {
      throw fail(
        400,
        presigned ? 'AuthorizationQueryParametersError' : 'AuthorizationHeaderMalformed',
        `The authorization header is malformed; the Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".`,
      );
    }
    const [, date, region, service] = scope as [string, string, string, string, string];
    if (region !== this.region) {
      throw fail(
        400,
        presigned ? 'AuthorizationQueryParametersError' : 'AuthorizationHeaderMalformed',
        `The authorization header is malformed; the region '${region}' is wrong; expecting '${this.region}'`,
        { Region: this.region },
      );
    }
    if (service !== 's3') throw fail(403, 'SignatureDoesNotMatch', "Credential should be scoped to correct service: 's3'. ");
    if (!this.verify) return { accessKeyId };
    if (!amzDate.startsWith(date))
      throw fail(403, 'SignatureDoesNotMatch', 'Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP');
    const names = signedHeaders.split(';');
    if (!names.includes('host'))
      throw fail(403, 'AccessDenied', 'There were headers present in the request which were not signed', { HeadersNotSigned: 'host' });
    const canonical = canonicalRequest(req, info, names, payloadHash, presigned);
    const stringToSign = ['AWS4-HMAC-SHA256', amzDate, `${date}/${region}/${service}/aws4_request`, sha256Hex(canonical)].join('\n');
    const signingKey = hmac(hmac(hmac(hmac(`AWS4${key.secretAccessKey}`, date), region), service), 'aws4_request');
    const expected = crypto.createHmac('sha256', signingKey).update(stringToSign, 'utf8').digest('hex');
    if (expected !== signature.toLowerCase()) {
      throw fail(
        403,
        'SignatureDoesNotMatch',
        'The request signature we calculated does not match the signature you provided. Check your key and signing method.',
        {
          AWSAccessKeyId: accessKeyId,
          StringToSign: stringToSign,
          SignatureProvided: signature,
          CanonicalRequest: canonical,
        },
      );
    }
    return { accessKeyId };
  }
}

function parseAmzDate(s: string): Date | null {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s);
  if (!m) return null;
  return new Date(Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!));
}

/** The SigV4 canonical request (S3 flavour: the path as sent, no double encoding, no normalisation). */
function canonicalRequest(req: http.IncomingMessage, info: RequestInfo, signedHeaders: string[], payloadHash: string, presigned: boolean): string {
  const { pairs } = parseQuery(info.rawQuery);
  const query = pairs
    .filter(([k]) => !(presigned && k === 'X-Amz-Signature'))
    .map(([k, v]) => [uriEncode(k), uriEncode(v)] as const)
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
  const values = new Map<string, string[]>();
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i]!.toLowerCase();
    const list = values.get(name) ?? [];
    list.push(req.rawHeaders[i + 1]!.trim().replace(/\s+/g, ' '));
    values.set(name, list);
  }
  const headers = signedHeaders.map((h) => `${h}:${(values.get(h) ?? []).join(',')}\n`).join('');
  return [info.method, info.rawPath || '/', query, headers, signedHeaders.join(';'), payloadHash].join('\n');
}

// ---------------------------------------------------------------------------------------------------
// Request body streams: counting, aws-chunked decoding, digest checks that hold back the last chunk
// ---------------------------------------------------------------------------------------------------

class CountingStream extends Transform {
  constructor(private readonly onBytes: (n: number) => void) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.onBytes(chunk.length);
    cb(null, chunk);
  }
}

/**
 * Decodes an aws-chunked body: `hex-size[;chunk-signature=…]\r\n data \r\n … 0[;…]\r\n [trailer: value\r\n]* \r\n`
 * (SigV4 streaming, "Using trailing checksums"). Chunk signatures are not verified.
 */
class AwsChunkedDecoder extends Transform {
  readonly trailers = new Map<string, string>();
  private state: 'size' | 'data' | 'data-crlf' | 'trailers' | 'done' = 'size';
  private line = '';
  private remaining = 0;
  private crlf = '';
  decoded = 0;

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      let i = 0;
      while (i < chunk.length) {
        if (this.state === 'data') {
          const n = Math.min(this.remaining, chunk.length - i);
          this.push(chunk.subarray(i, i + n));
          this.decoded += n;
          this.remaining -= n;
          i += n;
          if (this.remaining === 0) this.state = 'data-crlf';
        } else if (this.state === 'data-crlf') {
          this.crlf += String.fromCharCode(chunk[i++]!);
          if (this.crlf.length === 2) {
            if (this.crlf !== '\r\n') throw this.malformed();
            this.crlf = '';
            this.state = 'size';
          }
        } else if (this.state === 'done') {
          i = chunk.length;
        } else {
          const c = chunk[i++]!;
          if (c === 0x0a) {
            const line = this.line.replace(/\r$/, '');
            this.line = '';
            this.onLine(line);
          } else {
            this.line += String.fromCharCode(c);
            if (this.line.length > 8192) throw this.malformed();
          }
        }
      }
      cb();
    } catch (e) {
      cb(e as Error);
    }
  }

  private onLine(line: string): void {
    if (this.state === 'size') {
      const size = line.split(';')[0]!.trim();
      if (!/^[0-9a-fA-F]+$/.test(size)) throw fail(400, 'InvalidChunkSizeError', 'Only the last chunk is allowed to have a size less than 8192 bytes');
      this.remaining = parseInt(size, 16);
      this.state = this.remaining === 0 ? 'trailers' : 'data';
    } else if (this.state === 'trailers') {
      if (line === '') {
        this.state = 'done';
        return;
      }
      const colon = line.indexOf(':');
      if (colon <= 0)
        throw fail(400, 'MalformedTrailerError', 'The request contained trailing data that was not well-formed or did not conform to our published schema.');
      this.trailers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
    }
  }

  private malformed(): S3Fail {
    return fail(400, 'IncompleteBody', 'The request body terminated unexpectedly');
  }

  override _flush(cb: TransformCallback): void {
    if (this.state === 'trailers' && this.line === '') this.state = 'done';
    if (this.state !== 'done') {
      cb(this.malformed());
      return;
    }
    cb();
  }
}

interface BodyPlan {
  chunked: AwsChunkedDecoder | null;
  /** Bytes the upstream request will carry (decoded), when known. */
  length: number | null;
  md5: string | null;
  sha256: string | null;
  checksum: { algorithm: ChecksumAlgorithm; value: string | null; trailer: boolean } | null;
}

interface BodyDigests {
  md5Hex: string | null;
  checksum: { algorithm: ChecksumAlgorithm; value: string } | null;
  bytes: number;
}

/** Hashes the (decoded) body and holds back its last chunk until the digests have been checked at the end. */
class DigestGate extends Transform {
  private held: Buffer | null = null;
  private readonly md5: Digest | null;
  private readonly sha256: Digest | null;
  private readonly sum: Digest | null;
  private bytes = 0;
  result: BodyDigests | null = null;

  constructor(private readonly plan: BodyPlan) {
    super();
    this.md5 = plan.md5 !== null ? newDigest('MD5') : null;
    this.sha256 = plan.sha256 !== null ? newDigest('SHA256') : null;
    this.sum = plan.checksum ? newDigest(plan.checksum.algorithm) : null;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.md5?.update(chunk);
    this.sha256?.update(chunk);
    this.sum?.update(chunk);
    this.bytes += chunk.length;
    const previous = this.held;
    this.held = chunk;
    cb(null, previous ?? undefined);
  }

  override _flush(cb: TransformCallback): void {
    try {
      this.result = verifyDigests(this.plan, this.md5, this.sha256, this.sum, this.bytes);
      cb(null, this.held ?? undefined);
    } catch (e) {
      cb(e as Error);
    }
  }
}

function verifyDigests(plan: BodyPlan, md5: Digest | null, sha256: Digest | null, sum: Digest | null, bytes: number): BodyDigests {
  if (plan.length !== null && bytes !== plan.length) {
    throw fail(400, 'IncompleteBody', 'You did not provide the number of bytes specified by the Content-Length HTTP header');
  }
  let md5Hex: string | null = null;
  if (md5 && plan.md5 !== null) {
    const got = md5.digest();
    md5Hex = got.toString('hex');
    if (got.toString('base64') !== plan.md5) {
      throw fail(400, 'BadDigest', 'The Content-MD5 you specified did not match what we received.', {
        ExpectedDigest: plan.md5,
        CalculatedDigest: got.toString('base64'),
      });
    }
  }
  if (sha256 && plan.sha256 !== null) {
    const got = sha256.digest().toString('hex');
    if (got !== plan.sha256.toLowerCase()) {
      throw fail(400, 'XAmzContentSHA256Mismatch', "The provided 'x-amz-content-sha256' header does not match what was computed.", {
        ClientComputedContentSHA256: plan.sha256,
        S3ComputedContentSHA256: got,
      });
    }
  }
  let checksum: BodyDigests['checksum'] = null;
  if (sum && plan.checksum) {
    const { algorithm } = plan.checksum;
    const expected = plan.checksum.trailer ? plan.chunked?.trailers.get(checksumHeader(algorithm)) : plan.checksum.value;
    if (expected === undefined || expected === null) {
      throw fail(400, 'MalformedTrailerError', 'The request contained trailing data that was not well-formed or did not conform to our published schema.');
    }
    const got = sum.digest().toString('base64');
    if (got !== expected) throw fail(400, 'BadDigest', `The ${algorithm} you specified did not match the calculated checksum.`);
    checksum = { algorithm, value: got };
  }
  return { md5Hex, checksum, bytes };
}

/** Validates the integrity headers of a request with a body and says how to stream and check it. */
function planBody(req: http.IncomingMessage): BodyPlan {
  const contentSha = headerValue(req, 'x-amz-content-sha256');
  const encoding = (headerValue(req, 'content-encoding') ?? '').split(',').map((s) => s.trim().toLowerCase());
  const chunked = (contentSha !== undefined && STREAMING_PAYLOADS.has(contentSha)) || encoding.includes('aws-chunked');
  let length: number | null = null;
  if (chunked) {
    const decoded = headerValue(req, 'x-amz-decoded-content-length');
    if (decoded === undefined || !/^\d+$/.test(decoded)) throw fail(411, 'MissingContentLength', 'You must provide the Content-Length HTTP header.');
    length = Number(decoded);
  } else {
    const cl = headerValue(req, 'content-length');
    if (cl !== undefined && /^\d+$/.test(cl)) length = Number(cl);
  }
  const md5 = headerValue(req, 'content-md5') ?? null;
  if (md5 !== null && (!/^[A-Za-z0-9+/]+={0,2}$/.test(md5) || Buffer.from(md5, 'base64').length !== 16)) {
    throw fail(400, 'InvalidDigest', 'The Content-MD5 you specified was invalid.', { 'Content-MD5': md5 });
  }
  const sha256 = contentSha !== undefined && /^[0-9a-fA-F]{64}$/.test(contentSha) ? contentSha : null;
  const headerSums = Object.keys(req.headers)
    .map((h) => [h, checksumAlgorithmOf(h)] as const)
    .filter(([, a]) => a !== undefined) as Array<[string, ChecksumAlgorithm]>;
  const trailerNames = (headerValue(req, 'x-amz-trailer') ?? '')
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);
  const trailerSums = trailerNames.map((t) => checksumAlgorithmOf(t)).filter((a): a is ChecksumAlgorithm => a !== undefined);
  if (headerSums.length + trailerSums.length > 1) {
    throw fail(400, 'InvalidRequest', 'Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.');
  }
  let checksum: BodyPlan['checksum'] = null;
  if (headerSums.length === 1) {
    const [name, algorithm] = headerSums[0]!;
    const value = headerValue(req, name)!;
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(value) || Buffer.from(value, 'base64').length !== CHECKSUM_BYTES[algorithm]) {
      throw fail(400, 'InvalidRequest', `Value for ${name} header is invalid.`);
    }
    checksum = { algorithm, value, trailer: false };
  } else if (trailerSums.length === 1) {
    if (!chunked) throw fail(400, 'InvalidRequest', 'The value specified in the x-amz-trailer header is not supported');
    checksum = { algorithm: trailerSums[0]!, value: null, trailer: true };
  }
  const sdkAlgorithm = headerValue(req, 'x-amz-sdk-checksum-algorithm');
  if (sdkAlgorithm !== undefined && checksum === null) {
    throw fail(400, 'InvalidRequest', 'x-amz-sdk-checksum-algorithm specified, but no corresponding x-amz-checksum-* or x-amz-trailer headers were found.');
  }
  if (sdkAlgorithm !== undefined && checksum !== null && sdkAlgorithm.toUpperCase() !== checksum.algorithm) {
    throw fail(400, 'InvalidRequest', `Value for x-amz-sdk-checksum-algorithm header is invalid.`);
  }
  return { chunked: chunked ? new AwsChunkedDecoder() : null, length, md5, sha256, checksum };
}

function hasIntegrityHeader(req: http.IncomingMessage): boolean {
  if (headerValue(req, 'content-md5') !== undefined) return true;
  if (Object.keys(req.headers).some((h) => checksumAlgorithmOf(h) !== undefined)) return true;
  return (headerValue(req, 'x-amz-trailer') ?? '')
    .toLowerCase()
    .split(',')
    .some((t) => checksumAlgorithmOf(t.trim()) !== undefined);
}

// ---------------------------------------------------------------------------------------------------
// s3rver, typed as the small part of it this file uses
// ---------------------------------------------------------------------------------------------------

interface S3rverObject {
  bucket: string;
  key: string;
  content: Readable | Buffer | null;
  metadata: Record<string, string>;
}

interface S3rverStore {
  rootDirectory: string;
  getBucketPath(bucket: string): string;
  getResourcePath(bucket: string, key: string | undefined, resource: string): string;
  getBucket(bucket: string): Promise<{ name: string; creationDate: Date } | null>;
  putBucket(bucket: string): Promise<unknown>;
  getMetadata(bucket: string, key: string): Promise<Record<string, string | number>>;
  putMetadata(bucket: string, key: string, metadata: Record<string, string>, md5?: string): Promise<void>;
  putObject(object: S3rverObject): Promise<{ md5: string; size: number }>;
  putPart(bucket: string, uploadId: string, partNumber: string | number, content: Readable): Promise<{ md5: string; size: number }>;
  putObjectMultipart(bucket: string, uploadId: string, parts: Array<{ number: number; etag: string }>): Promise<{ md5: string; size: number }>;
  existsObject(bucket: string, key: string): Promise<boolean>;
  deleteObject(bucket: string, key: string): Promise<void>;
  reset(): void;
}

interface S3rverInstance {
  store: S3rverStore;
  httpServer?: http.Server;
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
}

interface S3rverModules {
  S3rver: new (options: Record<string, unknown>) => S3rverInstance;
  S3Object: {
    new (bucket: string, key: string, content: Readable | Buffer | null, metadata: Record<string, unknown>): S3rverObject;
    STORAGE_CLASSES: string[];
  };
  S3Error: new (code: string, message: string, detail?: Record<string, unknown>) => Error;
  accounts: { DUMMY_ACCOUNT: { createKeyPair(id: string, secret: string): void } };
}

function loadS3rver(): S3rverModules {
  const require = createRequire(import.meta.url);
  return {
    S3rver: require('s3rver') as S3rverModules['S3rver'],
    S3Object: require('s3rver/lib/models/object.js') as S3rverModules['S3Object'],
    S3Error: require('s3rver/lib/models/error.js') as S3rverModules['S3Error'],
    accounts: require('s3rver/lib/models/account.js') as S3rverModules['accounts'],
  };
}

function uploadDir(store: S3rverStore, bucket: string, uploadId: string): string {
  return join(store.getResourcePath(bucket, undefined, 'uploads'), uploadId);
}

async function readUpload(
  store: S3rverStore,
  bucket: string,
  uploadId: string,
): Promise<{ key: string; headers: Record<string, string>; initiated: Date } | null> {
  if (!/^[A-Za-z0-9_-]+$/.test(uploadId)) return null;
  const dir = uploadDir(store, bucket, uploadId);
  try {
    const [key, meta, st] = await Promise.all([readFile(join(dir, 'key'), 'utf8'), readFile(join(dir, 'metadata'), 'utf8'), stat(dir)]);
    return { key, headers: JSON.parse(meta) as Record<string, string>, initiated: st.mtime };
  } catch {
    return null;
  }
}

/**
 * Makes s3rver's filesystem store behave like S3 where it matters to a client that can fail mid-upload:
 * objects and parts are written to a temporary file and renamed into place only when the body arrived
 * complete (s3rver writes in place, so a reset PUT leaves a truncated object); UploadPart needs an
 * existing upload; CompleteMultipartUpload checks the parts (InvalidPartOrder, InvalidPart,
 * EntityTooSmall) and gives the multipart ETag (MD5 of the part MD5s, "-N").
 */
function patchStore(mods: S3rverModules, store: S3rverStore, minPartSize: number): void {
  const writeAtomically = async (target: string, source: Readable | Buffer): Promise<{ md5: string; size: number }> => {
    await mkdir(dirname(target), { recursive: true });
    const tmp = `${target}.${crypto.randomBytes(6).toString('hex')}.tmp`;
    const md5 = crypto.createHash('md5');
    let size = 0;
    try {
      await pipeline(
        Buffer.isBuffer(source) ? Readable.from([source]) : source,
        new Transform({
          transform(chunk: Buffer, _e, cb) {
            md5.update(chunk);
            size += chunk.length;
            cb(null, chunk);
          },
        }),
        createWriteStream(tmp),
      );
      await rename(tmp, target);
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
    return { md5: md5.digest('hex'), size };
  };

  store.putObject = async (object) => {
    const target = store.getResourcePath(object.bucket, object.key, 'object');
    const { md5, size } = await writeAtomically(target, object.content ?? Buffer.alloc(0));
    await store.putMetadata(object.bucket, object.key, object.metadata, md5);
    return { md5, size };
  };

  store.putPart = async (bucket, uploadId, partNumber, content) => {
    const dir = uploadDir(store, bucket, uploadId);
    if (!existsSync(join(dir, 'key'))) throw new mods.S3Error('NoSuchUpload', ERR.noSuchUpload(uploadId).message, { UploadId: uploadId });
    const partPath = join(dir, String(partNumber));
    const result = await writeAtomically(partPath, content);
    await writeFile(`${partPath}.md5`, result.md5);
    return result;
  };

  store.putObjectMultipart = async (bucket, uploadId, parts) => {
    const upload = await readUpload(store, bucket, uploadId);
    if (!upload) throw new mods.S3Error('NoSuchUpload', ERR.noSuchUpload(uploadId).message, { UploadId: uploadId });
    const dir = uploadDir(store, bucket, uploadId);
    const infos: Array<{ number: number; md5: string; size: number }> = [];
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!;
      if (i > 0 && p.number <= parts[i - 1]!.number) {
        throw new mods.S3Error('InvalidPartOrder', 'The list of parts was not in ascending order. The parts list must be specified in order by part number.');
      }
      const md5 = await readFile(join(dir, `${p.number}.md5`), 'utf8').catch(() => null);
      const st = await stat(join(dir, String(p.number))).catch(() => null);
      if (md5 === null || st === null || md5.toLowerCase() !== p.etag.toLowerCase()) {
        throw new mods.S3Error(
          'InvalidPart',
          "One or more of the specified parts could not be found.  The part may not have been uploaded, or the specified entity tag may not match the part's entity tag.",
          { UploadId: uploadId, PartNumber: p.number, ETag: p.etag },
        );
      }
      infos.push({ number: p.number, md5, size: st.size });
    }
    infos.forEach((p, i) => {
      if (i < infos.length - 1 && p.size < minPartSize) {
        throw new mods.S3Error('EntityTooSmall', 'Your proposed upload is smaller than the minimum allowed object size.', {
          ProposedSize: p.size,
          MinSizeAllowed: minPartSize,
          PartNumber: p.number,
          ETag: p.md5,
        });
      }
    });
    const composite = `${crypto
      .createHash('md5')
      .update(Buffer.concat(infos.map((p) => Buffer.from(p.md5, 'hex'))))
      .digest('hex')}-${infos.length}`;
    // The object is the parts end to end; no whole-object MD5 is needed (the ETag is the composite one).
    const object = new mods.S3Object(bucket, upload.key, null, upload.headers);
    const target = store.getResourcePath(bucket, upload.key, 'object');
    await mkdir(dirname(target), { recursive: true });
    const tmp = `${target}.${crypto.randomBytes(6).toString('hex')}.tmp`;
    const out = await open(tmp, 'w');
    const buffer = Buffer.allocUnsafe(8 * MIB);
    let size = 0;
    try {
      for (const p of infos) {
        const part = await open(join(dir, String(p.number)), 'r');
        try {
          for (;;) {
            const { bytesRead } = await part.read(buffer, 0, buffer.length, null);
            if (bytesRead === 0) break;
            await out.write(buffer, 0, bytesRead);
            size += bytesRead;
          }
        } finally {
          await part.close();
        }
      }
      await out.close();
      await rename(tmp, target);
    } catch (e) {
      await out.close().catch(() => undefined);
      await rm(tmp, { force: true });
      throw e;
    }
    await store.putMetadata(bucket, upload.key, object.metadata, composite);
    await rm(dir, { recursive: true, force: true });
    return { md5: composite, size };
  };
}

// ---------------------------------------------------------------------------------------------------
// Emulated state: buckets (versioning, Object Lock, default encryption), objects, versions
// ---------------------------------------------------------------------------------------------------

interface BucketState {
  objectLock: boolean;
  versioning: 'Enabled' | 'Suspended' | null;
  defaultRetention: { mode: ObjectLockMode; days?: number; years?: number } | null;
  encryption: { algorithm: ServerSideEncryption['algorithm']; kmsKeyId: string | null; bucketKeyEnabled: boolean } | null;
  /** The LifecycleConfiguration XML as the client sent it (stored, not applied). */
  lifecycle: string | null;
}

interface ObjectMeta {
  sse: ServerSideEncryption;
  checksum: ObjectStateEntry['checksum'];
  versionId: string | null;
  restoredUntil: Date | null;
}

interface VersionEntry {
  versionId: string;
  deleteMarker: boolean;
  hasBytes: boolean;
  lastModified: Date;
  etag: string | null;
  size: number | null;
  storageClass: string;
  lock: { mode: ObjectLockMode; retainUntil: Date } | null;
  legalHold: 'ON' | 'OFF' | null;
}

const objKey = (bucket: string, key: string) => `${bucket}\u0000${key}`;
const splitObjKey = (k: string): [string, string] => {
  const i = k.indexOf('\u0000');
  return [k.slice(0, i), k.slice(i + 1)];
};

class EmulatedState {
  readonly buckets = new Map<string, BucketState>();
  readonly objects = new Map<string, ObjectMeta>();
  readonly versions = new Map<string, VersionEntry[]>();

  bucket(name: string): BucketState {
    let b = this.buckets.get(name);
    if (!b) {
      b = { objectLock: false, versioning: null, defaultRetention: null, encryption: null, lifecycle: null };
      this.buckets.set(name, b);
    }
    return b;
  }

  versioned(bucket: string): boolean {
    return this.bucket(bucket).versioning === 'Enabled';
  }

  history(bucket: string, key: string): VersionEntry[] {
    return this.versions.get(objKey(bucket, key)) ?? [];
  }

  latest(bucket: string, key: string): VersionEntry | undefined {
    const h = this.history(bucket, key);
    return h[h.length - 1];
  }

  dropBucket(name: string): void {
    this.buckets.delete(name);
    for (const map of [this.objects, this.versions] as Array<Map<string, unknown>>) {
      for (const k of map.keys()) if (splitObjKey(k)[0] === name) map.delete(k);
    }
  }

  clear(): void {
    this.buckets.clear();
    this.objects.clear();
    this.versions.clear();
  }
}

/** True when deleting this version (or overwriting its retention) is refused for this request. */
function deletionRefused(v: VersionEntry, bypassGovernance: boolean, now = Date.now()): boolean {
  if (v.deleteMarker) return false;
  if (v.legalHold === 'ON') return true;
  if (v.lock === null || v.lock.retainUntil.getTime() <= now) return false;
  return v.lock.mode === 'COMPLIANCE' || !bypassGovernance;
}

function kmsArn(region: string, id: string | null): string {
  const keyId = id ?? AWS_MANAGED_KMS_KEY_ID;
  return keyId.startsWith('arn:') ? keyId : `arn:aws:kms:${region}:${ACCOUNT_ID}:key/${keyId}`;
}

// ---------------------------------------------------------------------------------------------------
// Conditional writes: If-Match / If-None-Match on PutObject, CopyObject and CompleteMultipartUpload
// ---------------------------------------------------------------------------------------------------

/** The precondition of a write: `If-None-Match: *` (no object at the key) or `If-Match: <etag>` (the current one). */
type WritePrecondition = { ifNoneMatch: true } | { ifNoneMatch: false; ifMatch: string };

/**
 * Reads and validates the conditional headers of a write as S3 does (PutObject / CompleteMultipartUpload
 * API references: If-None-Match "Expects the '*' (asterisk) character", If-Match "Expects the ETag value as
 * a string"). Anything else is 501 NotImplemented with the `Header` and `additionalMessage` AWS sends
 * (aws/aws-sdk-ruby #3144 for an ETag in If-None-Match; the exact elements as LocalStack's AWS-validated S3
 * provider answers them): both headers at once, If-None-Match other than `*`, If-Match `*` (accepted by
 * DeleteObject only). An empty header counts as absent. Null when the write is unconditional.
 */
function writePrecondition(ctx: Exchange): WritePrecondition | null {
  const ifMatch = ctx.header('if-match')?.trim() || undefined;
  const ifNoneMatch = ctx.header('if-none-match')?.trim() || undefined;
  if (ifMatch === undefined && ifNoneMatch === undefined) return null;
  if (ifMatch !== undefined && ifNoneMatch !== undefined) {
    throw ERR.conditionalNotImplemented('If-Match,If-None-Match', 'Multiple conditional request headers present in the request');
  }
  if (ifNoneMatch !== undefined) {
    if (ifNoneMatch !== '*') throw ERR.conditionalNotImplemented('If-None-Match', "We don't accept the provided value of If-None-Match header for this API");
    return { ifNoneMatch: true };
  }
  if (ifMatch === '*') {
    // LocalStack's snapshot of AWS names If-None-Match here for CompleteMultipartUpload (sic), If-Match for PutObject.
    const header = ctx.info.op === 'CompleteMultipartUpload' ? 'If-None-Match' : 'If-Match';
    throw ERR.conditionalNotImplemented(header, `We don't accept the provided value of ${header} header for this API`);
  }
  return { ifNoneMatch: false, ifMatch: ifMatch! };
}

/** An ETag without its double quotes: S3 compares `"abc"` and `abc` as the same ETag (an unquoted one is what the AWS CLI examples send). */
function bareEtag(etag: string): string {
  const t = etag.trim();
  return t.length >= 2 && t.startsWith('"') && t.endsWith('"') ? t.slice(1, -1) : t;
}

/**
 * Per-key reader/writer locks that make a conditional write's check and its write one step: a conditional
 * write holds its key exclusively from the check until s3rver has stored the object and the proxy has
 * recorded it; every other write to the key (PutObject, CopyObject, CompleteMultipartUpload, DeleteObject,
 * DeleteObjects) holds it shared, so plain writes still overlap one another but none lands between a
 * conditional write's check and its commit. Waiters are served in arrival order (neither kind starves).
 */
class KeyLocks {
  private readonly keys = new Map<string, { shared: number; exclusive: boolean; queue: Array<{ exclusive: boolean; grant: () => void }> }>();

  /** Resolves once held; the function releases (idempotent). */
  async acquire(key: string, exclusive: boolean): Promise<() => void> {
    let s = this.keys.get(key);
    if (!s) {
      s = { shared: 0, exclusive: false, queue: [] };
      this.keys.set(key, s);
    }
    if (s.queue.length === 0 && !s.exclusive && (!exclusive || s.shared === 0)) {
      if (exclusive) s.exclusive = true;
      else s.shared++;
    } else {
      const state = s;
      await new Promise<void>((grant) => state.queue.push({ exclusive, grant }));
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.release(key, exclusive);
    };
  }

  private release(key: string, exclusive: boolean): void {
    const s = this.keys.get(key)!;
    if (exclusive) s.exclusive = false;
    else s.shared--;
    while (s.queue.length > 0 && !s.exclusive) {
      const next = s.queue[0]!;
      if (next.exclusive && s.shared > 0) break;
      s.queue.shift();
      if (next.exclusive) s.exclusive = true;
      else s.shared++;
      next.grant();
    }
    if (!s.exclusive && s.shared === 0 && s.queue.length === 0) this.keys.delete(key);
  }
}

// ---------------------------------------------------------------------------------------------------
// One request/response exchange
// ---------------------------------------------------------------------------------------------------

interface ResponseShaping {
  resetBeforeResponse: boolean;
  cutAfter: number | null;
  bytesPerSecond: number | null;
}

class Exchange {
  readonly ids = requestIds();
  readonly started = Date.now();
  responded = false;
  /** Digests of the request body, once it was read whole and checked. */
  digests: BodyDigests | null = null;
  private continued = false;
  private drained = false;
  private resetByProxy = false;
  shaping: ResponseShaping = { resetBeforeResponse: false, cutAfter: null, bytesPerSecond: null };

  constructor(
    readonly req: http.IncomingMessage,
    readonly res: http.ServerResponse,
    readonly info: RequestInfo,
    readonly rec: RecordedRequest,
    readonly expectContinue: boolean,
  ) {
    res.on('close', () => {
      if (!res.writableFinished && !this.resetByProxy) rec.clientAborted = true;
      this.finish();
    });
  }

  header(name: string): string | undefined {
    return headerValue(this.req, name);
  }

  clientGone(): boolean {
    return this.res.destroyed || this.req.socket.destroyed;
  }

  /** Call before reading the request body: sends 100 Continue when the client waits for it. */
  startBody(): void {
    if (this.expectContinue && !this.continued && !this.res.headersSent) {
      this.continued = true;
      this.res.writeContinue();
    }
  }

  /**
   * The request body, counted. The request is piped in rather than put in a pipeline, so that a failed check
   * mid-body does not destroy the client's socket (the error is still answered); a client that goes away
   * mid-body still errors the chain.
   */
  body(): CountingStream {
    const counted = new CountingStream((n) => {
      this.rec.bodyBytes += n;
    });
    const { req } = this;
    const gone = () => {
      if (!req.complete) counted.destroy(new Error('the client went away before sending the whole body'));
    };
    req.once('close', gone);
    req.on('error', () => undefined);
    req.pipe(counted);
    this.drained = true;
    return counted;
  }

  /** After a failed body check: stops feeding the chain and reads the rest of the body away. */
  discardRest(chain: CountingStream): void {
    this.req.unpipe(chain);
    this.req.on('data', (c: Buffer) => {
      this.rec.bodyBytes += c.length;
    });
    this.req.resume();
  }

  /** Reads and discards the body (counting it), for answers given without forwarding. */
  drain(): void {
    if (this.drained || (this.expectContinue && !this.continued)) return;
    this.drained = true;
    this.req.on('data', (c: Buffer) => {
      this.rec.bodyBytes += c.length;
    });
    this.req.resume();
  }

  finish(): void {
    if (this.rec.done) return;
    this.rec.done = true;
    this.rec.durationMs = Date.now() - this.started;
  }

  /** Resets the client connection (RST): nothing pending is delivered. */
  reset(): void {
    this.responded = true;
    this.resetByProxy = true;
    this.rec.handledBy ??= 'proxy';
    resetSocket(this.req.socket);
    this.finish();
  }

  /** Closes the client connection after what was written has been sent (a cut response). */
  cut(): void {
    this.resetByProxy = true;
    const socket = this.req.socket;
    socket.destroySoon();
    setTimeout(() => socket.destroy(), 1000).unref();
    this.finish();
  }

  sendError(e: S3Fail): void {
    this.rec.errorCode = e.code;
    const body = this.info.method === 'HEAD' ? null : Buffer.from(errorXml(e.code, e.message, e.detail, this.ids.requestId, this.ids.hostId));
    this.send(e.status, { 'content-type': 'application/xml', ...e.headers }, body);
  }

  sendXml(status: number, xml: string, headers: Record<string, string> = {}): void {
    this.send(status, { 'content-type': 'application/xml', ...headers }, Buffer.from(xml));
  }

  /** Writes a response the proxy made itself. */
  send(status: number, headers: Record<string, string>, body: Buffer | null): void {
    this.rec.handledBy = 'proxy';
    if (body === null) {
      if (this.writeHead(status, { ...headers, 'content-length': headers['content-length'] ?? '0' })) this.res.end();
      return;
    }
    void this.stream(status, { ...headers, 'content-length': String(body.length) }, Readable.from([body]));
  }

  private writeHead(status: number, headers: Record<string, string | string[]>): boolean {
    if (this.responded || this.res.headersSent || this.clientGone()) {
      this.responded = true;
      return false;
    }
    this.responded = true;
    if (this.shaping.resetBeforeResponse) {
      this.rec.faults.push('reset_before_response');
      this.reset();
      return false;
    }
    if (this.expectContinue && !this.continued) this.res.shouldKeepAlive = false;
    this.rec.status = status;
    this.res.writeHead(status, {
      ...headers,
      'x-amz-request-id': this.ids.requestId,
      'x-amz-id-2': this.ids.hostId,
      server: 'AmazonS3',
    });
    return true;
  }

  /** Writes status and headers, then pumps the body with any fault shaping (throttle, cut). */
  async stream(status: number, headers: Record<string, string | string[]>, body: Readable | null): Promise<void> {
    if (!this.writeHead(status, headers)) {
      body?.destroy();
      return;
    }
    if (body === null || this.info.method === 'HEAD') {
      body?.destroy();
      this.res.end();
      return;
    }
    const { cutAfter, bytesPerSecond } = this.shaping;
    const res = this.res;
    const write = (chunk: Buffer) =>
      new Promise<void>((resolve) => {
        if (res.destroyed) {
          resolve();
          return;
        }
        this.rec.responseBytes += chunk.length;
        if (res.write(chunk)) {
          resolve();
          return;
        }
        const go = () => {
          res.off('drain', go);
          res.off('close', go);
          resolve();
        };
        res.on('drain', go);
        res.on('close', go);
      });
    try {
      for await (const c of body) {
        let chunk = c as Buffer;
        if (res.destroyed) break;
        if (cutAfter !== null && this.rec.responseBytes + chunk.length > cutAfter) {
          chunk = chunk.subarray(0, cutAfter - this.rec.responseBytes);
          if (chunk.length) await write(chunk);
          else res.flushHeaders();
          this.rec.faults.push('reset_after_response_bytes');
          body.destroy();
          this.cut();
          return;
        }
        if (bytesPerSecond !== null) {
          const slice = Math.max(1, Math.floor(bytesPerSecond / 20));
          for (let i = 0; i < chunk.length && !res.destroyed; i += slice) {
            const piece = chunk.subarray(i, i + slice);
            await write(piece);
            await sleep((piece.length * 1000) / bytesPerSecond);
          }
        } else {
          await write(chunk);
        }
      }
      if (!res.destroyed) res.end();
    } catch {
      resetSocket(this.req.socket);
    } finally {
      if (!body.readableEnded) body.destroy();
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// The proxy
// ---------------------------------------------------------------------------------------------------

interface Upstream {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: http.IncomingMessage;
}

class S3Proxy {
  readonly state = new EmulatedState();
  readonly recorder: Recorder;
  readonly faults = new Faults();
  readonly locks = new KeyLocks();
  readonly auth: Authenticator;
  readonly region: string;
  private readonly denyOps: Set<string>;
  private readonly lockBuckets: ObjectLockBucketOptions[];

  constructor(
    readonly options: S3ServerOptions,
    readonly store: S3rverStore,
    readonly upstreamPort: number,
  ) {
    this.region = options.region ?? 'us-east-1';
    this.recorder = new Recorder(options.maxRecordedRequests ?? 20_000);
    this.auth = new Authenticator(options.accessKeys ?? [DEFAULT_KEY], this.region, options.verifySignatures ?? true, options.allowAnonymous ?? false);
    this.denyOps = new Set(options.denyOps ?? []);
    this.lockBuckets = (options.objectLockBuckets ?? []).map((b) => (typeof b === 'string' ? { name: b } : b));
    if (options.faults) this.faults.add(options.faults);
    this.configureBuckets();
  }

  configureBuckets(): void {
    for (const b of this.lockBuckets) {
      const s = this.state.bucket(b.name);
      s.objectLock = true;
      s.versioning = 'Enabled';
      s.defaultRetention = b.defaultRetention ?? null;
    }
  }

  async createConfiguredBuckets(): Promise<void> {
    for (const name of [...(this.options.buckets ?? []), ...this.lockBuckets.map((b) => b.name)]) await this.store.putBucket(name);
  }

  // -- entry point --------------------------------------------------------------------------------

  async handle(req: http.IncomingMessage, res: http.ServerResponse, expectContinue: boolean): Promise<void> {
    const info = classifyRequest(req.method ?? 'GET', req.url ?? '/', req.headers);
    if (info.rawPath.startsWith('/_test/') || info.rawPath === '/_test') {
      if (expectContinue) res.writeContinue();
      await this.control(req, res, info);
      return;
    }
    const rec = this.recorder.start(req, info);
    const ctx = new Exchange(req, res, info, rec, expectContinue);
    try {
      await this.serve(ctx);
    } catch (e) {
      if (ctx.responded) {
        if (!res.writableEnded) resetSocket(req.socket);
        return;
      }
      const err =
        e instanceof S3Fail ? e : fail(500, 'InternalError', `We encountered an internal error. Please try again. (test server: ${(e as Error).message})`);
      ctx.drain();
      ctx.sendError(err);
    }
  }

  private async serve(ctx: Exchange): Promise<void> {
    const { info } = ctx;
    // Faults come first: they stand for the network and the service front end.
    const actions = this.faults.take(info);
    const delay = actions.filter((a): a is Extract<FaultAction, { type: 'delay' }> => a.type === 'delay').reduce((s, a) => s + a.ms, 0);
    if (delay > 0) {
      ctx.rec.faults.push('delay');
      await sleep(delay);
      if (ctx.clientGone()) {
        ctx.rec.clientAborted = true;
        ctx.finish();
        return;
      }
    }
    const terminal = actions.find((a) => a.type === 'reset_after_bytes' || a.type === 'status');
    if (terminal?.type === 'reset_after_bytes') {
      await this.resetAfterBytes(ctx, terminal.bytes);
      return;
    }
    if (terminal?.type === 'status') {
      ctx.rec.faults.push('status');
      const [code, message] = STATUS_ERRORS[terminal.status] ?? ['InternalError', 'We encountered an internal error. Please try again.'];
      ctx.drain();
      ctx.sendError(fail(terminal.status, terminal.code ?? code, terminal.message ?? message, {}, terminal.headers ?? {}));
      return;
    }
    for (const a of actions) {
      if (a.type === 'reset_before_response') ctx.shaping.resetBeforeResponse = true;
      if (a.type === 'reset_after_response_bytes') ctx.shaping.cutAfter = a.bytes;
      if (a.type === 'slow_body') {
        ctx.shaping.bytesPerSecond = a.bytesPerSecond;
        ctx.rec.faults.push('slow_body');
      }
    }

    const { accessKeyId } = this.auth.authenticate(ctx.req, info);
    ctx.rec.accessKeyId = accessKeyId;
    const keyDeny = this.auth.key(accessKeyId)?.denyOps ?? [];
    if (this.denyOps.has(info.op) || keyDeny.includes(info.op)) throw ERR.accessDenied();

    await this.route(ctx);
  }

  private async resetAfterBytes(ctx: Exchange, n: number): Promise<void> {
    ctx.rec.faults.push('reset_after_bytes');
    ctx.startBody();
    const { req } = ctx;
    await new Promise<void>((resolve) => {
      const done = () => {
        req.off('data', onData);
        req.off('end', done);
        req.off('close', done);
        resolve();
      };
      const onData = (c: Buffer) => {
        ctx.rec.bodyBytes += c.length;
        if (ctx.rec.bodyBytes >= n) done();
      };
      if (n === 0) {
        resolve();
        return;
      }
      req.on('data', onData);
      req.once('end', done);
      req.once('close', done);
    });
    ctx.reset();
  }

  // -- routing ------------------------------------------------------------------------------------

  private async route(ctx: Exchange): Promise<void> {
    switch (ctx.info.op) {
      case 'PutObject':
        return this.putObject(ctx);
      case 'UploadPart':
        return this.uploadPart(ctx);
      case 'CreateMultipartUpload':
        return this.createMultipartUpload(ctx);
      case 'CompleteMultipartUpload':
        return this.completeMultipartUpload(ctx);
      case 'AbortMultipartUpload':
        return this.abortMultipartUpload(ctx);
      case 'ListMultipartUploads':
        return this.listMultipartUploads(ctx);
      case 'ListParts':
        return this.listParts(ctx);
      case 'GetObject':
      case 'HeadObject':
        return this.getObject(ctx);
      case 'CopyObject':
        return this.copyObject(ctx);
      case 'DeleteObject':
        return this.deleteObject(ctx);
      case 'DeleteObjects':
        return this.deleteObjects(ctx);
      case 'ListObjects':
      case 'ListObjectsV2':
        return this.listObjects(ctx);
      case 'ListObjectVersions':
        return this.listObjectVersions(ctx);
      case 'CreateBucket':
        return this.createBucket(ctx);
      case 'DeleteBucket':
        return this.deleteBucket(ctx);
      case 'GetBucketVersioning':
        return this.getBucketVersioning(ctx);
      case 'PutBucketVersioning':
        return this.putBucketVersioning(ctx);
      case 'GetObjectLockConfiguration':
        return this.getObjectLockConfiguration(ctx);
      case 'PutObjectLockConfiguration':
        return this.putObjectLockConfiguration(ctx);
      case 'GetObjectRetention':
      case 'GetObjectLegalHold':
        return this.getObjectLockInfo(ctx);
      case 'PutObjectRetention':
        return this.putObjectRetention(ctx);
      case 'PutObjectLegalHold':
        return this.putObjectLegalHold(ctx);
      case 'GetBucketEncryption':
      case 'PutBucketEncryption':
      case 'DeleteBucketEncryption':
        return this.bucketEncryption(ctx);
      case 'RestoreObject':
        return this.restoreObject(ctx);
      case 'GetBucketLifecycleConfiguration':
      case 'PutBucketLifecycleConfiguration':
      case 'DeleteBucketLifecycle':
        return this.bucketLifecycle(ctx);
      case 'GetObjectAttributes':
        throw fail(
          501,
          'NotImplemented',
          'A parameter you provided implies functionality that is not implemented (GetObjectAttributes is not emulated by the test server)',
        );
      case 'UploadPartCopy':
        throw fail(
          501,
          'NotImplemented',
          'A header you provided implies functionality that is not implemented (UploadPartCopy is not emulated by the test server)',
        );
      default: {
        const up = await this.forward(
          ctx,
          ctx.req.headers['content-length'] !== undefined || ctx.req.headers['transfer-encoding'] !== undefined ? 'stream' : 'none',
        );
        if (up) await this.relay(ctx, up);
      }
    }
  }

  // -- forwarding ---------------------------------------------------------------------------------

  /**
   * Sends the request to s3rver with the Host header as the client sent it. `stream` pipes the body through
   * aws-chunked decoding and digest checks (the last chunk is held back until they pass, so a failed check
   * aborts the upstream request and s3rver stores nothing); a Buffer is sent as is.
   */
  private forward(ctx: Exchange, body: 'none' | 'stream' | Buffer, plan?: BodyPlan, headerOverrides: Record<string, string> = {}): Promise<Upstream | null> {
    const { req, info } = ctx;
    const headers: http.OutgoingHttpHeaders = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (!HOP_BY_HOP.has(name) && value !== undefined) headers[name] = value;
    }
    Object.assign(headers, headerOverrides);
    const p = body === 'stream' ? (plan ?? planBody(req)) : undefined;
    if (p?.chunked) {
      const encodings = (headerValue(req, 'content-encoding') ?? '')
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s && s.toLowerCase() !== 'aws-chunked');
      if (encodings.length) headers['content-encoding'] = encodings.join(',');
      else delete headers['content-encoding'];
      delete headers['x-amz-decoded-content-length'];
      delete headers['x-amz-trailer'];
      headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
    }
    if (Buffer.isBuffer(body)) headers['content-length'] = String(body.length);
    else if (p && p.length !== null) headers['content-length'] = String(p.length);
    else if (body === 'none') headers['content-length'] = '0';
    else {
      delete headers['content-length'];
      headers['transfer-encoding'] = 'chunked';
    }

    return new Promise((resolve) => {
      let settled = false;
      let bodyError: S3Fail | null = null;
      const settle = (v: Upstream | null) => {
        if (!settled) {
          settled = true;
          resolve(v);
        }
      };
      const up = http.request({
        host: '127.0.0.1',
        port: this.upstreamPort,
        method: info.method,
        path: req.url,
        headers,
        agent: false,
      });
      let gate: DigestGate | null = null;
      // The gate has its result before it releases the last chunk, so before s3rver can answer.
      up.on('response', (r) => {
        if (gate) ctx.digests = gate.result;
        settle({ status: r.statusCode ?? 500, headers: r.headers, body: r });
      });
      up.on('error', (err) => {
        if (err instanceof S3Fail) bodyError = err;
        if (settled) return;
        if (bodyError) {
          ctx.sendError(bodyError);
          settle(null);
          return;
        }
        if (ctx.clientGone()) {
          ctx.rec.clientAborted = true;
          ctx.finish();
          settle(null);
          return;
        }
        ctx.sendError(fail(500, 'InternalError', `We encountered an internal error. Please try again. (test server: s3rver did not answer: ${err.message})`));
        settle(null);
      });
      if (body === 'none' || Buffer.isBuffer(body)) {
        if (body !== 'none') ctx.startBody();
        up.end(body === 'none' ? undefined : body);
        return;
      }
      ctx.startBody();
      gate = new DigestGate(p!);
      const source = ctx.body();
      const stages: Transform[] = [...(p!.chunked ? [p!.chunked] : []), gate];
      pipeline([source, ...stages, up]).then(
        () => undefined,
        (err: unknown) => {
          if (err instanceof S3Fail) {
            bodyError = err;
            ctx.discardRest(source);
            if (!settled && !ctx.responded) {
              ctx.sendError(err);
              settle(null);
            }
          }
          up.destroy();
        },
      );
    });
  }

  /** Reads a small request body whole, with the same decoding and checks. */
  private async readBody(ctx: Exchange, limit = 4 * MIB): Promise<{ body: Buffer; digests: BodyDigests }> {
    const plan = planBody(ctx.req);
    ctx.startBody();
    const gate = new DigestGate(plan);
    const chunks: Buffer[] = [];
    let size = 0;
    const source = ctx.body();
    const stages: Transform[] = [...(plan.chunked ? [plan.chunked] : []), gate];
    const sink = new Writable({
      write(c: Buffer, _e, cb) {
        size += c.length;
        if (size > limit) {
          cb(fail(400, 'MaxMessageLengthExceeded', 'Your request was too big.'));
          return;
        }
        chunks.push(c);
        cb();
      },
    });
    try {
      await pipeline([source, ...stages, sink]);
    } catch (e) {
      ctx.discardRest(source);
      throw e;
    }
    return { body: Buffer.concat(chunks), digests: gate.result! };
  }

  /** Relays s3rver's response, with extra headers and without hop-by-hop ones. */
  private async relay(ctx: Exchange, up: Upstream, extra: Record<string, string> = {}, drop: string[] = []): Promise<void> {
    const headers: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(up.headers)) {
      if (value === undefined || HOP_BY_HOP.has(name) || drop.includes(name)) continue;
      headers[name] = value;
    }
    Object.assign(headers, extra);
    ctx.rec.handledBy = 's3rver';
    await ctx.stream(up.status, headers, up.body);
  }

  private async bucketExists(bucket: string): Promise<void> {
    if (!(await this.store.getBucket(bucket))) throw ERR.noSuchBucket(bucket);
  }

  // -- object writes ------------------------------------------------------------------------------

  /** Storage class, SSE and Object Lock headers of a write (PutObject, CreateMultipartUpload, CopyObject). */
  private checkWriteHeaders(
    ctx: Exchange,
    bucket: string,
  ): { sse: ServerSideEncryption; lock: VersionEntry['lock']; legalHold: VersionEntry['legalHold']; lockParams: boolean } {
    const h = (name: string) => ctx.header(name);
    const storageClass = h('x-amz-storage-class');
    if (storageClass !== undefined && !STORAGE_CLASSES.includes(storageClass)) {
      throw fail(400, 'InvalidStorageClass', 'The storage class you specified is not valid', { StorageClassRequested: storageClass });
    }
    const sse = this.checkSse(ctx, bucket);
    const mode = h('x-amz-object-lock-mode');
    const until = h('x-amz-object-lock-retain-until-date');
    const hold = h('x-amz-object-lock-legal-hold');
    const b = this.state.bucket(bucket);
    let lock: VersionEntry['lock'] = null;
    let legalHold: VersionEntry['legalHold'] = null;
    const explicit = mode !== undefined || until !== undefined || hold !== undefined;
    if (explicit && !b.objectLock) throw ERR.lockMissing(false);
    if ((mode === undefined) !== (until === undefined)) {
      throw fail(400, 'InvalidArgument', 'x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be supplied');
    }
    if (mode !== undefined && until !== undefined) {
      if (mode !== 'GOVERNANCE' && mode !== 'COMPLIANCE') {
        throw fail(400, 'InvalidArgument', 'Unknown wormMode directive.', { ArgumentName: 'x-amz-object-lock-mode', ArgumentValue: mode });
      }
      const date = parseIsoDate(until);
      if (date === null) {
        throw fail(400, 'InvalidArgument', 'The retain until date must be provided in ISO 8601 format', {
          ArgumentName: 'x-amz-object-lock-retain-until-date',
          ArgumentValue: until,
        });
      }
      if (date.getTime() <= Date.now()) {
        throw fail(400, 'InvalidArgument', 'The retain until date must be in the future!', {
          ArgumentName: 'x-amz-object-lock-retain-until-date',
          ArgumentValue: until,
        });
      }
      lock = { mode, retainUntil: date };
    }
    if (hold !== undefined) {
      if (hold !== 'ON' && hold !== 'OFF') {
        throw fail(400, 'InvalidArgument', "Legal Hold must be either of 'ON' or 'OFF'", { ArgumentName: 'x-amz-object-lock-legal-hold', ArgumentValue: hold });
      }
      legalHold = hold;
    }
    if (lock === null && b.objectLock && b.defaultRetention) {
      const d = b.defaultRetention;
      const until2 = new Date();
      if (d.days) until2.setUTCDate(until2.getUTCDate() + d.days);
      if (d.years) until2.setUTCFullYear(until2.getUTCFullYear() + d.years);
      lock = { mode: d.mode, retainUntil: until2 };
    }
    return { sse, lock, legalHold, lockParams: explicit || (b.objectLock && b.defaultRetention !== null) };
  }

  private checkSse(ctx: Exchange, bucket: string): ServerSideEncryption {
    const h = (name: string) => ctx.header(name);
    const alg = h('x-amz-server-side-encryption');
    const keyId = h('x-amz-server-side-encryption-aws-kms-key-id');
    const customer = h('x-amz-server-side-encryption-customer-algorithm');
    if (customer !== undefined) {
      if (alg !== undefined)
        throw fail(400, 'InvalidArgument', 'Server Side Encryption with Customer provided key is incompatible with the encryption method specified', {
          ArgumentName: 'x-amz-server-side-encryption',
          ArgumentValue: alg,
        });
      throw fail(400, 'InvalidRequest', 'Requests specifying Server Side Encryption with Customer provided keys must be made over a secure connection.');
    }
    if (alg !== undefined && !SSE_ALGORITHMS.has(alg)) {
      throw fail(400, 'InvalidArgument', 'The encryption method specified is not supported', {
        ArgumentName: 'x-amz-server-side-encryption',
        ArgumentValue: alg,
      });
    }
    if (keyId !== undefined && alg !== 'aws:kms' && alg !== 'aws:kms:dsse') {
      throw fail(400, 'InvalidArgument', 'Server Side Encryption with AWS KMS managed key requires HTTP header x-amz-server-side-encryption : aws:kms', {
        ArgumentName: 'x-amz-server-side-encryption',
        ArgumentValue: 'null',
      });
    }
    const bucketKey = h('x-amz-server-side-encryption-bucket-key-enabled');
    if (alg !== undefined) {
      const a = alg as ServerSideEncryption['algorithm'];
      return { algorithm: a, kmsKeyId: a === 'AES256' ? null : kmsArn(this.region, keyId ?? null), bucketKeyEnabled: bucketKey === 'true', requested: true };
    }
    return this.defaultSse(bucket);
  }

  /** The bucket's default encryption; SSE-S3 when none is configured (every new object since January 2023). */
  private defaultSse(bucket: string): ServerSideEncryption {
    const def = this.state.bucket(bucket).encryption;
    if (def)
      return {
        algorithm: def.algorithm,
        kmsKeyId: def.algorithm === 'AES256' ? null : kmsArn(this.region, def.kmsKeyId),
        bucketKeyEnabled: def.bucketKeyEnabled,
        requested: false,
      };
    return { algorithm: 'AES256', kmsKeyId: null, bucketKeyEnabled: false, requested: false };
  }

  private sseHeaders(sse: ServerSideEncryption): Record<string, string> {
    const out: Record<string, string> = { 'x-amz-server-side-encryption': sse.algorithm };
    if (sse.kmsKeyId !== null) out['x-amz-server-side-encryption-aws-kms-key-id'] = sse.kmsKeyId;
    if (sse.bucketKeyEnabled) out['x-amz-server-side-encryption-bucket-key-enabled'] = 'true';
    return out;
  }

  /**
   * With SSE-KMS the ETag is not the MD5 of the data (PutObject / Object API reference: only plaintext and
   * SSE-S3 objects have MD5 ETags). Writes an opaque one where s3rver keeps the ETag, so HEAD, GET, listings
   * and CompleteMultipartUpload's part check all see the same value.
   */
  private async opaqueEtag(md5File: string, suffix = ''): Promise<string> {
    const etag = crypto.createHash('md5').update(crypto.randomBytes(16)).digest('hex') + suffix;
    await writeFile(md5File, etag);
    return JSON.stringify(etag);
  }

  /** After a successful write of bucket/key: remembers SSE, checksum, lock and the new version. */
  private async recordWrite(
    bucket: string,
    key: string,
    w: { sse: ServerSideEncryption; lock: VersionEntry['lock']; legalHold: VersionEntry['legalHold']; checksum: ObjectMeta['checksum'] },
  ): Promise<string | null> {
    const k = objKey(bucket, key);
    let versionId: string | null = null;
    if (this.state.versioned(bucket)) {
      versionId = newVersionId();
      const meta = await this.store.getMetadata(bucket, key).catch(() => null);
      const history = this.state.history(bucket, key).map((v) => ({ ...v, hasBytes: false }));
      history.push({
        versionId,
        deleteMarker: false,
        hasBytes: true,
        lastModified: new Date(),
        etag: meta ? String(meta['etag']) : null,
        size: meta ? Number(meta['content-length']) : null,
        storageClass: meta ? String(meta['x-amz-storage-class'] ?? 'STANDARD') : 'STANDARD',
        lock: w.lock,
        legalHold: w.legalHold,
      });
      this.state.versions.set(k, history);
    }
    this.state.objects.set(k, { sse: w.sse, checksum: w.checksum, versionId, restoredUntil: null });
    return versionId;
  }

  private async putObject(ctx: Exchange): Promise<void> {
    const { bucket, key } = ctx.info as { bucket: string; key: string };
    await this.bucketExists(bucket);
    const w = this.checkWriteHeaders(ctx, bucket);
    const precondition = writePrecondition(ctx);
    if (w.lockParams && !hasIntegrityHeader(ctx.req)) {
      throw fail(400, 'InvalidRequest', 'Content-MD5 OR x-amz-checksum- HTTP header is required for Put Object requests with Object Lock parameters');
    }
    const plan = planBody(ctx.req);
    const release = await this.locks.acquire(objKey(bucket, key), precondition !== null);
    try {
      if (!(await this.checkPrecondition(ctx, bucket, key, precondition))) return;
      const up = await this.forwardChecked(ctx, plan);
      if (!up) return;
      if (up.status !== 200) {
        release();
        await this.relay(ctx, up);
        return;
      }
      const digests = ctx.digests;
      const checksum = digests?.checksum ? { ...digests.checksum, type: 'FULL_OBJECT' as const } : null;
      const extra: Record<string, string> = this.sseHeaders(w.sse);
      if (w.sse.algorithm !== 'AES256') extra['etag'] = await this.opaqueEtag(this.store.getResourcePath(bucket, key, 'object.md5'));
      const versionId = await this.recordWrite(bucket, key, { sse: w.sse, lock: w.lock, legalHold: w.legalHold, checksum });
      release();
      if (versionId) extra['x-amz-version-id'] = versionId;
      if (checksum) {
        extra[checksumHeader(checksum.algorithm)] = checksum.value;
        extra['x-amz-checksum-type'] = 'FULL_OBJECT';
      }
      await this.relay(ctx, up, extra);
    } finally {
      release();
    }
  }

  /**
   * Under the key's lock: checks a write precondition against the key's current object (conditional writes
   * user guide: If-None-Match and If-Match apply to the current version; no object, or a delete marker as
   * the current version, is "no object"). If-None-Match: * on an object → 412 PreconditionFailed; If-Match
   * on no object → 404 NoSuchKey, on another ETag → 412. False when the client went away meanwhile (nothing
   * is to be written or answered).
   */
  private async checkPrecondition(ctx: Exchange, bucket: string, key: string, precondition: WritePrecondition | null): Promise<boolean> {
    if (precondition !== null) {
      const current = await this.currentEtag(bucket, key);
      if (precondition.ifNoneMatch) {
        if (current !== null) throw ERR.preconditionFailed('If-None-Match');
      } else {
        if (current === null) throw ERR.noSuchKey(key);
        if (bareEtag(current) !== bareEtag(precondition.ifMatch)) throw ERR.preconditionFailed('If-Match');
      }
    }
    if (ctx.clientGone()) {
      ctx.rec.clientAborted = true;
      ctx.finish();
      return false;
    }
    return true;
  }

  /** The current object's ETag (quoted, as s3rver keeps it), or null when there is none or the current version is a delete marker. */
  private async currentEtag(bucket: string, key: string): Promise<string | null> {
    if (this.state.latest(bucket, key)?.deleteMarker) return null;
    const meta = await this.store.getMetadata(bucket, key).catch(() => null);
    return meta ? String(meta['etag']) : null;
  }

  /**
   * Forwards a write whose body is checked. An empty body is read and checked before forwarding (there is no
   * last chunk to hold back); other bodies stream.
   */
  private async forwardChecked(ctx: Exchange, plan: BodyPlan): Promise<Upstream | null> {
    if (plan.length === 0) {
      const { body, digests } = await this.readBody(ctx);
      ctx.digests = digests;
      return this.forward(ctx, body);
    }
    return this.forward(ctx, 'stream', plan);
  }

  private async uploadPart(ctx: Exchange): Promise<void> {
    const { bucket, key, query } = ctx.info as RequestInfo & { bucket: string; key: string };
    await this.bucketExists(bucket);
    const partNumber = query['partNumber'] ?? '';
    if (!/^\d+$/.test(partNumber) || Number(partNumber) < 1 || Number(partNumber) > 10000) {
      throw fail(400, 'InvalidArgument', 'Part number must be an integer between 1 and 10000, inclusive', {
        ArgumentName: 'partNumber',
        ArgumentValue: partNumber,
      });
    }
    const uploadId = query['uploadId'] ?? '';
    const upload = await readUpload(this.store, bucket, uploadId);
    if (!upload || upload.key !== key) throw ERR.noSuchUpload(uploadId);
    const lockUpload =
      ['x-amz-object-lock-mode', 'x-amz-object-lock-retain-until-date', 'x-amz-object-lock-legal-hold'].some((h) => upload.headers[h] !== undefined) ||
      (this.state.bucket(bucket).objectLock && this.state.bucket(bucket).defaultRetention !== null);
    if (lockUpload && !hasIntegrityHeader(ctx.req)) {
      throw fail(400, 'InvalidRequest', 'Content-MD5 OR x-amz-checksum- HTTP header is required for Put Part requests with Object Lock parameters');
    }
    const plan = planBody(ctx.req);
    const up = await this.forwardChecked(ctx, plan);
    if (!up) return;
    if (up.status !== 200) {
      await this.relay(ctx, up);
      return;
    }
    const digests = ctx.digests;
    const sse = this.sseOfUpload(bucket, upload.headers);
    const extra = this.sseHeaders(sse);
    if (sse.algorithm !== 'AES256') extra['etag'] = await this.opaqueEtag(join(uploadDir(this.store, bucket, uploadId), `${partNumber}.md5`));
    if (digests?.checksum) extra[checksumHeader(digests.checksum.algorithm)] = digests.checksum.value;
    await this.relay(ctx, up, extra);
  }

  private sseOfUpload(bucket: string, headers: Record<string, string>): ServerSideEncryption {
    const alg = headers['x-amz-server-side-encryption'];
    if (alg !== undefined && SSE_ALGORITHMS.has(alg)) {
      const a = alg as ServerSideEncryption['algorithm'];
      return {
        algorithm: a,
        kmsKeyId: a === 'AES256' ? null : kmsArn(this.region, headers['x-amz-server-side-encryption-aws-kms-key-id'] ?? null),
        bucketKeyEnabled: headers['x-amz-server-side-encryption-bucket-key-enabled'] === 'true',
        requested: true,
      };
    }
    return this.defaultSse(bucket);
  }

  private async createMultipartUpload(ctx: Exchange): Promise<void> {
    const bucket = ctx.info.bucket!;
    await this.bucketExists(bucket);
    const w = this.checkWriteHeaders(ctx, bucket);
    const up = await this.forward(ctx, 'none');
    if (!up) return;
    await this.relay(ctx, up, up.status === 200 ? this.sseHeaders(w.sse) : {});
  }

  private async completeMultipartUpload(ctx: Exchange): Promise<void> {
    const { bucket, key, query } = ctx.info as RequestInfo & { bucket: string; key: string };
    await this.bucketExists(bucket);
    const uploadId = query['uploadId'] ?? '';
    const upload = await readUpload(this.store, bucket, uploadId);
    if (!upload || upload.key !== key) throw ERR.noSuchUpload(uploadId);
    const precondition = writePrecondition(ctx);
    const { body } = await this.readBody(ctx);
    const release = await this.locks.acquire(objKey(bucket, key), precondition !== null);
    try {
      if (!(await this.checkPrecondition(ctx, bucket, key, precondition))) return;
      const up = await this.forward(ctx, body);
      if (!up) return;
      if (up.status !== 200) {
        release();
        await this.relay(ctx, up);
        return;
      }
      await this.completedUpload(ctx, up, upload.headers, release);
    } finally {
      release();
    }
  }

  /** After s3rver completed an upload: records SSE, lock and version, releases the key, then answers. */
  private async completedUpload(ctx: Exchange, up: Upstream, h: Record<string, string>, release: () => void): Promise<void> {
    const { bucket, key } = ctx.info as RequestInfo & { bucket: string; key: string };
    const sse = this.sseOfUpload(bucket, h);
    const mode = h['x-amz-object-lock-mode'];
    const until = h['x-amz-object-lock-retain-until-date'] ? parseIsoDate(h['x-amz-object-lock-retain-until-date']) : null;
    let lock: VersionEntry['lock'] = (mode === 'GOVERNANCE' || mode === 'COMPLIANCE') && until ? { mode, retainUntil: until } : null;
    const b = this.state.bucket(bucket);
    if (lock === null && b.objectLock && b.defaultRetention) {
      const retainUntil = new Date();
      if (b.defaultRetention.days) retainUntil.setUTCDate(retainUntil.getUTCDate() + b.defaultRetention.days);
      if (b.defaultRetention.years) retainUntil.setUTCFullYear(retainUntil.getUTCFullYear() + b.defaultRetention.years);
      lock = { mode: b.defaultRetention.mode, retainUntil };
    }
    const hold = h['x-amz-object-lock-legal-hold'];
    const versionId = await this.recordWrite(bucket, key, { sse, lock, legalHold: hold === 'ON' || hold === 'OFF' ? hold : null, checksum: null });
    release();
    const extra = this.sseHeaders(sse);
    if (versionId) extra['x-amz-version-id'] = versionId;
    await this.relay(ctx, up, extra);
  }

  private async abortMultipartUpload(ctx: Exchange): Promise<void> {
    const { bucket, key, query } = ctx.info as RequestInfo & { bucket: string; key: string };
    await this.bucketExists(bucket);
    const uploadId = query['uploadId'] ?? '';
    const upload = await readUpload(this.store, bucket, uploadId);
    if (!upload || upload.key !== key) throw ERR.noSuchUpload(uploadId);
    await rm(uploadDir(this.store, bucket, uploadId), { recursive: true, force: true });
    ctx.drain();
    ctx.send(204, {}, null);
  }

  private async listUploads(bucket: string): Promise<Array<{ uploadId: string; key: string; headers: Record<string, string>; initiated: Date }>> {
    const dir = this.store.getResourcePath(bucket, undefined, 'uploads');
    const ids = await readdir(dir).catch(() => [] as string[]);
    const out: Array<{ uploadId: string; key: string; headers: Record<string, string>; initiated: Date }> = [];
    for (const uploadId of ids) {
      const u = await readUpload(this.store, bucket, uploadId);
      if (u) out.push({ uploadId, ...u });
    }
    return out.sort((a, b) => utf8Compare(a.key, b.key) || a.initiated.getTime() - b.initiated.getTime());
  }

  private async listMultipartUploads(ctx: Exchange): Promise<void> {
    const bucket = ctx.info.bucket!;
    await this.bucketExists(bucket);
    const q = ctx.info.query;
    const prefix = q['prefix'] ?? '';
    const maxUploads = this.intParam(q['max-uploads'], 1000, 'max-uploads');
    const keyMarker = q['key-marker'] ?? '';
    const idMarker = q['upload-id-marker'] ?? '';
    let uploads = (await this.listUploads(bucket)).filter((u) => u.key.startsWith(prefix));
    if (keyMarker) {
      const markerIndex = idMarker ? uploads.findIndex((u) => u.key === keyMarker && u.uploadId === idMarker) : -1;
      uploads = uploads.filter((u, i) => utf8Compare(u.key, keyMarker) > 0 || (markerIndex >= 0 && u.key === keyMarker && i > markerIndex));
    }
    const page = uploads.slice(0, Math.min(maxUploads, 1000));
    const truncated = uploads.length > page.length;
    const last = page[page.length - 1];
    const owner = `<ID>${OWNER.id}</ID><DisplayName>${OWNER.displayName}</DisplayName>`;
    const inner =
      el('Bucket', bucket) +
      el('KeyMarker', keyMarker) +
      el('UploadIdMarker', idMarker) +
      (truncated && last ? el('NextKeyMarker', last.key) + el('NextUploadIdMarker', last.uploadId) : '') +
      el('Prefix', prefix) +
      el('MaxUploads', maxUploads) +
      el('IsTruncated', truncated) +
      page
        .map(
          (u) =>
            `<Upload>${el('Key', u.key)}${el('UploadId', u.uploadId)}<Initiator>${owner}</Initiator><Owner>${owner}</Owner>` +
            `${el('StorageClass', u.headers['x-amz-storage-class'] ?? 'STANDARD')}${el('Initiated', u.initiated.toISOString())}</Upload>`,
        )
        .join('');
    ctx.sendXml(200, xmlDocument('ListMultipartUploadsResult', inner));
  }

  private async listParts(ctx: Exchange): Promise<void> {
    const { bucket, key, query } = ctx.info as RequestInfo & { bucket: string; key: string };
    await this.bucketExists(bucket);
    const uploadId = query['uploadId'] ?? '';
    const upload = await readUpload(this.store, bucket, uploadId);
    if (!upload || upload.key !== key) throw ERR.noSuchUpload(uploadId);
    const maxParts = this.intParam(query['max-parts'], 1000, 'max-parts');
    const marker = Number(query['part-number-marker'] ?? 0);
    const dir = uploadDir(this.store, bucket, uploadId);
    const numbers = (await readdir(dir))
      .filter((f) => /^\d+$/.test(f))
      .map(Number)
      .filter((n) => n > marker)
      .sort((a, b) => a - b);
    const page = numbers.slice(0, Math.min(maxParts, 1000));
    const parts: string[] = [];
    for (const n of page) {
      const [md5, st] = await Promise.all([readFile(join(dir, `${n}.md5`), 'utf8').catch(() => ''), stat(join(dir, String(n)))]);
      parts.push(`<Part>${el('PartNumber', n)}${el('LastModified', st.mtime.toISOString())}${el('ETag', `"${md5}"`)}${el('Size', st.size)}</Part>`);
    }
    const truncated = numbers.length > page.length;
    const owner = `<ID>${OWNER.id}</ID><DisplayName>${OWNER.displayName}</DisplayName>`;
    const inner =
      el('Bucket', bucket) +
      el('Key', key) +
      el('UploadId', uploadId) +
      el('PartNumberMarker', marker) +
      (truncated ? el('NextPartNumberMarker', page[page.length - 1]) : '') +
      el('MaxParts', maxParts) +
      el('IsTruncated', truncated) +
      parts.join('') +
      `<Initiator>${owner}</Initiator><Owner>${owner}</Owner>` +
      el('StorageClass', upload.headers['x-amz-storage-class'] ?? 'STANDARD');
    ctx.sendXml(200, xmlDocument('ListPartsResult', inner));
  }

  private async copyObject(ctx: Exchange): Promise<void> {
    const { bucket, key } = ctx.info as { bucket: string; key: string };
    await this.bucketExists(bucket);
    const w = this.checkWriteHeaders(ctx, bucket);
    // x-amz-copy-source is URL-encoded (CopyObject API reference); s3rver decodes it with decodeURI, which
    // leaves %2F, %2B, %3D… encoded. Send it in a form decodeURI turns back into bucket/key. A versionId
    // is dropped: s3rver holds one version per key.
    const source = ctx.header('x-amz-copy-source') ?? '';
    const decoded = safeDecode(source.split('?')[0]!.replace(/^\//, ''));
    // If-Match / If-None-Match name the destination (CopyObject API reference), as on PutObject.
    const precondition = writePrecondition(ctx);
    const release = await this.locks.acquire(objKey(bucket, key), precondition !== null);
    try {
      if (!(await this.checkPrecondition(ctx, bucket, key, precondition))) return;
      const up = await this.forward(ctx, 'none', undefined, { 'x-amz-copy-source': encodeURI(decoded) });
      if (!up) return;
      if (up.status !== 200) {
        release();
        await this.relay(ctx, up);
        return;
      }
      const versionId = await this.recordWrite(bucket, key, { sse: w.sse, lock: w.lock, legalHold: w.legalHold, checksum: null });
      release();
      const extra = this.sseHeaders(w.sse);
      if (versionId) extra['x-amz-version-id'] = versionId;
      await this.relay(ctx, up, extra);
    } finally {
      release();
    }
  }

  // -- object reads -------------------------------------------------------------------------------

  private async getObject(ctx: Exchange): Promise<void> {
    const { bucket, key, query } = ctx.info as RequestInfo & { bucket: string; key: string };
    if (ctx.header('x-amz-server-side-encryption') !== undefined) {
      throw fail(400, 'InvalidArgument', 'The encryption parameters are not applicable to this object.', { ArgumentName: 'x-amz-server-side-encryption' });
    }
    await this.bucketExists(bucket);
    const versioned = this.state.versions.has(objKey(bucket, key)) || this.state.versioned(bucket);
    let version: VersionEntry | undefined;
    if (versioned) {
      const history = this.state.history(bucket, key);
      const wanted = query['versionId'];
      if (wanted !== undefined) {
        version = history.find((v) => v.versionId === wanted);
        if (!version) throw fail(404, 'NoSuchVersion', 'The specified version does not exist.', { Key: key, VersionId: wanted });
        if (version.deleteMarker) {
          throw fail(
            405,
            'MethodNotAllowed',
            'The specified method is not allowed against this resource.',
            { Method: ctx.info.method, ResourceType: 'DeleteMarker' },
            { 'x-amz-delete-marker': 'true', 'x-amz-version-id': version.versionId, 'last-modified': version.lastModified.toUTCString() },
          );
        }
        if (!version.hasBytes) {
          throw fail(501, 'NotImplemented', 'The test server keeps the bytes of the newest object version only; this older version has none.');
        }
      } else {
        version = history[history.length - 1];
        if (version?.deleteMarker) throw ERR.noSuchKey(key, { 'x-amz-delete-marker': 'true', 'x-amz-version-id': version.versionId });
      }
    }
    const up = await this.forward(ctx, 'none');
    if (!up) return;
    if (up.status !== 200 && up.status !== 206) {
      await this.relay(ctx, up);
      return;
    }
    const meta = this.state.objects.get(objKey(bucket, key));
    const storageClass = String(up.headers['x-amz-storage-class'] ?? 'STANDARD');
    const restored = meta?.restoredUntil && meta.restoredUntil.getTime() > Date.now() ? meta.restoredUntil : null;
    if (ctx.info.op === 'GetObject' && COLD_STORAGE_CLASSES.has(storageClass) && !restored) {
      up.body.destroy();
      throw fail(403, 'InvalidObjectState', "The operation is not valid for the object's storage class", { StorageClass: storageClass });
    }
    const extra: Record<string, string> = this.sseHeaders(meta?.sse ?? this.defaultSse(bucket));
    if (version) {
      extra['x-amz-version-id'] = version.versionId;
      if (version.lock) {
        extra['x-amz-object-lock-mode'] = version.lock.mode;
        extra['x-amz-object-lock-retain-until-date'] = version.lock.retainUntil.toISOString();
      }
      if (version.legalHold) extra['x-amz-object-lock-legal-hold'] = version.legalHold;
    }
    if (COLD_STORAGE_CLASSES.has(storageClass) && meta?.restoredUntil) {
      extra['x-amz-restore'] = `ongoing-request="false", expiry-date="${meta.restoredUntil.toUTCString()}"`;
    }
    const ranged = up.status === 206 || ctx.header('range') !== undefined || query['partNumber'] !== undefined;
    if (meta?.checksum && ctx.header('x-amz-checksum-mode') === 'ENABLED' && !ranged) {
      extra[checksumHeader(meta.checksum.algorithm)] = meta.checksum.value;
      extra['x-amz-checksum-type'] = meta.checksum.type;
    }
    // AWS sends x-amz-storage-class for every class but STANDARD (HeadObject API reference).
    await this.relay(ctx, up, extra, storageClass === 'STANDARD' ? ['x-amz-storage-class'] : []);
  }

  private async restoreObject(ctx: Exchange): Promise<void> {
    const { bucket, key } = ctx.info as { bucket: string; key: string };
    await this.bucketExists(bucket);
    const { body } = await this.readBody(ctx);
    const metaOnDisk = await this.store.getMetadata(bucket, key).catch(() => null);
    if (!metaOnDisk) throw ERR.noSuchKey(key);
    const storageClass = String(metaOnDisk['x-amz-storage-class'] ?? 'STANDARD');
    if (!COLD_STORAGE_CLASSES.has(storageClass)) throw fail(403, 'InvalidObjectState', "Restore is not allowed for the object's current storage class");
    const inner = xmlRoot(body.toString('utf8'), 'RestoreRequest');
    const days = Number(xmlText(inner, 'Days') ?? '1');
    if (!Number.isInteger(days) || days < 1) throw ERR.malformedXml();
    const k = objKey(bucket, key);
    const meta = this.state.objects.get(k) ?? { sse: this.defaultSse(bucket), checksum: null, versionId: null, restoredUntil: null };
    const already = meta.restoredUntil !== null && meta.restoredUntil.getTime() > Date.now();
    const until = new Date();
    until.setUTCDate(until.getUTCDate() + days);
    until.setUTCHours(0, 0, 0, 0);
    meta.restoredUntil = until;
    this.state.objects.set(k, meta);
    ctx.send(already ? 200 : 202, {}, null);
  }

  // -- deletes ------------------------------------------------------------------------------------

  /** Deletes one key (or version) as S3 does in a versioned or unversioned bucket. */
  private async deleteOne(
    bucket: string,
    key: string,
    versionId: string | undefined,
    bypass: boolean,
  ): Promise<{ versionId?: string; deleteMarker?: boolean }> {
    const k = objKey(bucket, key);
    if (!this.state.versioned(bucket) && !this.state.versions.has(k)) {
      if (versionId !== undefined && versionId !== 'null') return {};
      await this.store.deleteObject(bucket, key);
      this.state.objects.delete(k);
      return {};
    }
    const history = this.state.history(bucket, key);
    if (versionId === undefined) {
      if (!this.state.versioned(bucket)) {
        await this.store.deleteObject(bucket, key);
        this.state.objects.delete(k);
        this.state.versions.delete(k);
        return {};
      }
      const marker: VersionEntry = {
        versionId: newVersionId(),
        deleteMarker: true,
        hasBytes: false,
        lastModified: new Date(),
        etag: null,
        size: null,
        storageClass: 'STANDARD',
        lock: null,
        legalHold: null,
      };
      this.state.versions.set(k, [...history, marker]);
      return { versionId: marker.versionId, deleteMarker: true };
    }
    const index = history.findIndex((v) => v.versionId === versionId);
    if (index < 0) return { versionId };
    const entry = history[index]!;
    if (deletionRefused(entry, bypass)) throw ERR.accessDenied();
    const rest = history.filter((_v, i) => i !== index);
    if (entry.hasBytes) {
      await this.store.deleteObject(bucket, key);
      this.state.objects.delete(k);
    }
    if (rest.length) this.state.versions.set(k, rest);
    else this.state.versions.delete(k);
    return { versionId, deleteMarker: entry.deleteMarker };
  }

  private async deleteObject(ctx: Exchange): Promise<void> {
    const { bucket, key, query } = ctx.info as RequestInfo & { bucket: string; key: string };
    await this.bucketExists(bucket);
    const k = objKey(bucket, key);
    const release = await this.locks.acquire(k, false);
    try {
      if (!this.state.versioned(bucket) && !this.state.versions.has(k) && query['versionId'] === undefined) {
        const up = await this.forward(ctx, 'none');
        if (!up) return;
        if (up.status === 204) this.state.objects.delete(k);
        release();
        await this.relay(ctx, up);
        return;
      }
      await this.deleteAndAnswer(ctx, release);
    } finally {
      release();
    }
  }

  /** DeleteObject that the proxy answers (versioned, or with a versionId): deletes, releases the key, answers 204. */
  private async deleteAndAnswer(ctx: Exchange, release: () => void): Promise<void> {
    const { bucket, key, query } = ctx.info as RequestInfo & { bucket: string; key: string };
    const r = await this.deleteOne(bucket, key, query['versionId'], ctx.header('x-amz-bypass-governance-retention') === 'true');
    release();
    const headers: Record<string, string> = {};
    if (r.versionId) headers['x-amz-version-id'] = r.versionId;
    if (r.deleteMarker) headers['x-amz-delete-marker'] = 'true';
    ctx.send(204, headers, null);
  }

  private async deleteObjects(ctx: Exchange): Promise<void> {
    const bucket = ctx.info.bucket!;
    await this.bucketExists(bucket);
    if (!hasIntegrityHeader(ctx.req)) throw fail(400, 'InvalidRequest', 'Missing required header for this request: Content-MD5');
    const { body } = await this.readBody(ctx);
    const inner = xmlRoot(body.toString('utf8'), 'Delete');
    const quiet = xmlText(inner, 'Quiet') === 'true';
    const objects = xmlTexts(inner, 'Object').map((o) => ({ key: xmlText(o, 'Key'), versionId: xmlText(o, 'VersionId') }));
    if (objects.length === 0 || objects.length > 1000 || objects.some((o) => o.key === undefined)) throw ERR.malformedXml();
    const bypass = ctx.header('x-amz-bypass-governance-retention') === 'true';
    const parts: string[] = [];
    for (const o of objects) {
      const release = await this.locks.acquire(objKey(bucket, o.key!), false);
      try {
        const r = await this.deleteOne(bucket, o.key!, o.versionId, bypass);
        if (!quiet) {
          parts.push(
            `<Deleted>${el('Key', o.key)}${el('VersionId', o.versionId)}` +
              (r.deleteMarker ? el('DeleteMarker', true) + el('DeleteMarkerVersionId', r.versionId) : '') +
              '</Deleted>',
          );
        }
      } catch (e) {
        const err = e instanceof S3Fail ? e : fail(500, 'InternalError', 'We encountered an internal error. Please try again.');
        parts.push(`<Error>${el('Key', o.key)}${el('VersionId', o.versionId)}${el('Code', err.code)}${el('Message', err.message)}</Error>`);
      } finally {
        release();
      }
    }
    ctx.sendXml(200, xmlDocument('DeleteResult', parts.join('')));
  }

  // -- listings -----------------------------------------------------------------------------------

  /** Every key in the bucket (from s3rver's files), in UTF-8 binary order as S3 lists them. */
  private async allKeys(bucket: string, prefix: string): Promise<string[]> {
    const root = this.store.getBucketPath(bucket);
    const keys: string[] = [];
    const walk = async (dir: string, rel: string): Promise<void> => {
      const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
      for (const e of entries) {
        if (rel === '' && e.name === S3RVER_UPLOADS_DIR) continue;
        if (e.isDirectory()) {
          const sub = `${rel}${e.name}/`;
          if (sub.startsWith(prefix) || prefix.startsWith(sub)) await walk(join(dir, e.name), sub);
        } else if (e.name.endsWith(S3RVER_OBJECT_SUFFIX)) {
          const key = rel + e.name.slice(0, -S3RVER_OBJECT_SUFFIX.length);
          if (key.startsWith(prefix)) keys.push(key);
        }
      }
    };
    await walk(root, '');
    return keys.filter((k) => this.state.latest(bucket, k)?.deleteMarker !== true).sort(utf8Compare);
  }

  private intParam(v: string | undefined, def: number, name: string): number {
    if (v === undefined) return def;
    if (!/^-?\d+$/.test(v))
      throw fail(400, 'InvalidArgument', `Provided ${name} not an integer or within integer range`, { ArgumentName: name, ArgumentValue: v });
    const n = Number(v);
    if (n < 0 || n > 2147483647)
      throw fail(400, 'InvalidArgument', `Argument ${name} must be an integer between 0 and 2147483647`, { ArgumentName: name, ArgumentValue: v });
    return n;
  }

  private async listObjects(ctx: Exchange): Promise<void> {
    const bucket = ctx.info.bucket!;
    await this.bucketExists(bucket);
    const q = ctx.info.query;
    const v2 = ctx.info.op === 'ListObjectsV2';
    const prefix = q['prefix'] ?? '';
    const delimiter = q['delimiter'] ?? '';
    const maxKeys = this.intParam(q['max-keys'], 1000, 'max-keys');
    const urlEncode = q['encoding-type'] === 'url';
    if (q['encoding-type'] !== undefined && !urlEncode)
      throw fail(400, 'InvalidArgument', 'Invalid Encoding Method specified in Request', { ArgumentName: 'encoding-type', ArgumentValue: q['encoding-type'] });
    let marker = '';
    if (v2) {
      if (q['marker'] !== undefined) throw fail(400, 'InvalidArgument', 'Marker unsupported with REST.GET.BUCKET in list-type=2', { ArgumentName: 'marker' });
      const token = q['continuation-token'];
      if (token !== undefined) {
        const decoded = decodeContinuationToken(token, bucket);
        if (decoded === null) throw fail(400, 'InvalidArgument', 'The continuation token provided is incorrect', { ArgumentName: 'continuation-token' });
        marker = decoded;
      } else {
        marker = q['start-after'] ?? '';
      }
    } else {
      marker = q['marker'] ?? '';
    }
    const keys = await this.allKeys(bucket, prefix);
    const limit = Math.min(maxKeys, 1000);
    const contents: string[] = [];
    const prefixes: string[] = [];
    let count = 0;
    let last = '';
    let truncated = false;
    for (const key of keys) {
      if (marker && utf8Compare(key, marker) <= 0) continue;
      let item = key;
      let isPrefix = false;
      if (delimiter) {
        const i = key.indexOf(delimiter, prefix.length);
        if (i >= 0) {
          item = key.slice(0, i + delimiter.length);
          isPrefix = true;
        }
      }
      if (isPrefix && (item === last || (marker && utf8Compare(item, marker) <= 0))) continue;
      if (count >= limit) {
        truncated = true;
        break;
      }
      count++;
      last = item;
      if (isPrefix) prefixes.push(item);
      else contents.push(key);
    }
    if (limit === 0) truncated = false;
    // encoding-type=url as AWS answers it: space as '+', '/' kept, the rest percent-encoded UTF-8.
    const enc = (s: string) => (urlEncode ? encodeURIComponent(s).replace(/%20/g, '+').replace(/%2F/g, '/') : s);
    const fetchOwner = v2 ? q['fetch-owner'] === 'true' : true;
    const entries: string[] = [];
    for (const key of contents) {
      const meta = await this.store.getMetadata(bucket, key).catch(() => null);
      if (!meta) continue;
      const sum = this.state.objects.get(objKey(bucket, key))?.checksum;
      entries.push(
        `<Contents>${el('Key', enc(key))}${el('LastModified', new Date(String(meta['last-modified'])).toISOString())}` +
          `${el('ETag', String(meta['etag']))}${sum ? el('ChecksumAlgorithm', sum.algorithm) + el('ChecksumType', sum.type) : ''}${el('Size', Number(meta['content-length']))}` +
          `${fetchOwner ? `<Owner><ID>${OWNER.id}</ID><DisplayName>${OWNER.displayName}</DisplayName></Owner>` : ''}` +
          `${el('StorageClass', String(meta['x-amz-storage-class'] ?? 'STANDARD'))}</Contents>`,
      );
    }
    let inner = el('Name', bucket) + el('Prefix', enc(prefix)) + (delimiter ? el('Delimiter', enc(delimiter)) : '') + el('MaxKeys', maxKeys);
    if (v2) {
      inner += el('KeyCount', count);
      if (q['continuation-token'] !== undefined) inner += el('ContinuationToken', q['continuation-token']);
      if (truncated) inner += el('NextContinuationToken', encodeContinuationToken(last, bucket));
      if (q['start-after'] !== undefined) inner += el('StartAfter', enc(q['start-after']));
    } else {
      inner += el('Marker', enc(marker));
      if (truncated && delimiter) inner += el('NextMarker', enc(last));
    }
    if (urlEncode) inner += el('EncodingType', 'url');
    inner += el('IsTruncated', truncated) + entries.join('') + prefixes.map((p) => `<CommonPrefixes>${el('Prefix', enc(p))}</CommonPrefixes>`).join('');
    ctx.sendXml(200, xmlDocument('ListBucketResult', inner));
  }

  private async listObjectVersions(ctx: Exchange): Promise<void> {
    const bucket = ctx.info.bucket!;
    await this.bucketExists(bucket);
    const q = ctx.info.query;
    const prefix = q['prefix'] ?? '';
    const maxKeys = Math.min(this.intParam(q['max-keys'], 1000, 'max-keys'), 1000);
    const keyMarker = q['key-marker'] ?? '';
    const owner = `<Owner><ID>${OWNER.id}</ID><DisplayName>${OWNER.displayName}</DisplayName></Owner>`;
    const names = new Set<string>();
    for (const k of this.state.versions.keys()) {
      const [b, key] = splitObjKey(k);
      if (b === bucket && key.startsWith(prefix)) names.add(key);
    }
    for (const key of await this.allKeys(bucket, prefix)) names.add(key);
    const items: string[] = [];
    let truncated = false;
    let nextKey = '';
    for (const key of [...names].sort(utf8Compare)) {
      if (keyMarker && utf8Compare(key, keyMarker) <= 0) continue;
      const history = this.state.history(bucket, key);
      const entries: string[] = [];
      if (history.length === 0) {
        const meta = await this.store.getMetadata(bucket, key).catch(() => null);
        if (meta) {
          entries.push(
            `<Version>${el('Key', key)}${el('VersionId', 'null')}${el('IsLatest', true)}${el('LastModified', new Date(String(meta['last-modified'])).toISOString())}` +
              `${el('ETag', String(meta['etag']))}${el('Size', Number(meta['content-length']))}${el('StorageClass', String(meta['x-amz-storage-class'] ?? 'STANDARD'))}${owner}</Version>`,
          );
        }
      } else {
        [...history].reverse().forEach((v, i) => {
          if (v.deleteMarker) {
            entries.push(
              `<DeleteMarker>${el('Key', key)}${el('VersionId', v.versionId)}${el('IsLatest', i === 0)}${el('LastModified', v.lastModified.toISOString())}${owner}</DeleteMarker>`,
            );
          } else {
            entries.push(
              `<Version>${el('Key', key)}${el('VersionId', v.versionId)}${el('IsLatest', i === 0)}${el('LastModified', v.lastModified.toISOString())}` +
                `${el('ETag', v.etag)}${el('Size', v.size)}${el('StorageClass', v.storageClass)}${owner}</Version>`,
            );
          }
        });
      }
      if (items.length + entries.length > maxKeys && items.length > 0) {
        truncated = true;
        break;
      }
      items.push(...entries);
      nextKey = key;
    }
    const inner =
      el('Name', bucket) +
      el('Prefix', prefix) +
      el('KeyMarker', keyMarker) +
      el('VersionIdMarker', q['version-id-marker'] ?? '') +
      (truncated ? el('NextKeyMarker', nextKey) : '') +
      el('MaxKeys', maxKeys) +
      el('IsTruncated', truncated) +
      items.join('');
    ctx.sendXml(200, xmlDocument('ListVersionsResult', inner));
  }

  // -- buckets ------------------------------------------------------------------------------------

  private async createBucket(ctx: Exchange): Promise<void> {
    const bucket = ctx.info.bucket!;
    const lock = ctx.header('x-amz-bucket-object-lock-enabled') === 'true';
    if (await this.store.getBucket(bucket)) {
      ctx.drain();
      // us-east-1 answers 200 to the owner re-creating a bucket; other regions BucketAlreadyOwnedByYou (CreateBucket API reference).
      if (this.region === 'us-east-1') {
        ctx.send(200, { location: `/${bucket}` }, null);
        return;
      }
      throw fail(409, 'BucketAlreadyOwnedByYou', 'Your previous request to create the named bucket succeeded and you already own it.', { BucketName: bucket });
    }
    const up = await this.forward(
      ctx,
      ctx.req.headers['content-length'] !== undefined || ctx.req.headers['transfer-encoding'] !== undefined ? 'stream' : 'none',
    );
    if (!up) return;
    if (up.status === 200) {
      this.state.dropBucket(bucket);
      if (lock) {
        const b = this.state.bucket(bucket);
        b.objectLock = true;
        b.versioning = 'Enabled';
      }
    }
    await this.relay(ctx, up);
  }

  private async deleteBucket(ctx: Exchange): Promise<void> {
    const bucket = ctx.info.bucket!;
    await this.bucketExists(bucket);
    const up = await this.forward(ctx, 'none');
    if (!up) return;
    if (up.status === 204) this.state.dropBucket(bucket);
    await this.relay(ctx, up);
  }

  private async getBucketVersioning(ctx: Exchange): Promise<void> {
    const bucket = ctx.info.bucket!;
    await this.bucketExists(bucket);
    const v = this.state.bucket(bucket).versioning;
    ctx.drain();
    ctx.sendXml(200, xmlDocument('VersioningConfiguration', v ? el('Status', v) : ''));
  }

  private async putBucketVersioning(ctx: Exchange): Promise<void> {
    const bucket = ctx.info.bucket!;
    await this.bucketExists(bucket);
    const { body } = await this.readBody(ctx);
    const inner = xmlRoot(body.toString('utf8'), 'VersioningConfiguration');
    const status = xmlText(inner, 'Status');
    if (status !== undefined && status !== 'Enabled' && status !== 'Suspended') throw ERR.malformedXml();
    const b = this.state.bucket(bucket);
    if (b.objectLock && status === 'Suspended') {
      throw fail(409, 'InvalidBucketState', 'An Object Lock configuration is present on this bucket, so the versioning state cannot be changed.');
    }
    if (status) b.versioning = status;
    ctx.send(200, {}, null);
  }

  private async getObjectLockConfiguration(ctx: Exchange): Promise<void> {
    const bucket = ctx.info.bucket!;
    await this.bucketExists(bucket);
    const b = this.state.bucket(bucket);
    ctx.drain();
    if (!b.objectLock)
      throw fail(404, 'ObjectLockConfigurationNotFoundError', 'Object Lock configuration does not exist for this bucket', { BucketName: bucket });
    const d = b.defaultRetention;
    const rule = d ? `<Rule><DefaultRetention>${el('Mode', d.mode)}${el('Days', d.days)}${el('Years', d.years)}</DefaultRetention></Rule>` : '';
    ctx.sendXml(200, xmlDocument('ObjectLockConfiguration', el('ObjectLockEnabled', 'Enabled') + rule));
  }

  private async putObjectLockConfiguration(ctx: Exchange): Promise<void> {
    const bucket = ctx.info.bucket!;
    await this.bucketExists(bucket);
    const { body } = await this.readBody(ctx);
    const inner = xmlRoot(body.toString('utf8'), 'ObjectLockConfiguration');
    if (xmlText(inner, 'ObjectLockEnabled') !== 'Enabled') throw ERR.malformedXml();
    const b = this.state.bucket(bucket);
    if (!b.objectLock && b.versioning !== 'Enabled') {
      throw fail(409, 'InvalidBucketState', "Versioning must be 'Enabled' on the bucket to apply a Object Lock configuration");
    }
    let retention: BucketState['defaultRetention'] = null;
    const rule = xmlTexts(inner, 'DefaultRetention')[0];
    if (rule !== undefined) {
      const mode = xmlText(rule, 'Mode');
      const days = xmlText(rule, 'Days');
      const years = xmlText(rule, 'Years');
      if ((mode !== 'GOVERNANCE' && mode !== 'COMPLIANCE') || (days === undefined) === (years === undefined)) throw ERR.malformedXml();
      const n = Number(days ?? years);
      if (!Number.isInteger(n) || n <= 0) {
        throw fail(400, 'InvalidArgument', 'Default retention period must be a positive integer value.', {
          ArgumentName: days !== undefined ? 'Days' : 'Years',
        });
      }
      retention = days !== undefined ? { mode, days: n } : { mode, years: n };
    }
    b.objectLock = true;
    b.versioning = 'Enabled';
    b.defaultRetention = retention;
    ctx.send(200, {}, null);
  }

  /** The version a retention / legal hold request is about. */
  private lockTarget(ctx: Exchange): { bucket: string; key: string; version: VersionEntry } {
    const { bucket, key, query } = ctx.info as RequestInfo & { bucket: string; key: string };
    if (!this.state.bucket(bucket).objectLock) throw ERR.lockMissing(true);
    const history = this.state.history(bucket, key);
    const wanted = query['versionId'];
    const version = wanted !== undefined ? history.find((v) => v.versionId === wanted) : history[history.length - 1];
    if (!version) {
      if (wanted !== undefined) throw fail(404, 'NoSuchVersion', 'The specified version does not exist.', { Key: key, VersionId: wanted });
      throw ERR.noSuchKey(key);
    }
    if (version.deleteMarker)
      throw fail(405, 'MethodNotAllowed', 'The specified method is not allowed against this resource.', {
        Method: ctx.info.method,
        ResourceType: 'DeleteMarker',
      });
    return { bucket, key, version };
  }

  private async getObjectLockInfo(ctx: Exchange): Promise<void> {
    await this.bucketExists(ctx.info.bucket!);
    ctx.drain();
    const { version } = this.lockTarget(ctx);
    if (ctx.info.op === 'GetObjectRetention') {
      if (!version.lock) throw fail(404, 'NoSuchObjectLockConfiguration', 'The specified object does not have a ObjectLock configuration');
      ctx.sendXml(200, xmlDocument('Retention', el('Mode', version.lock.mode) + el('RetainUntilDate', version.lock.retainUntil.toISOString())));
    } else {
      if (!version.legalHold) throw fail(404, 'NoSuchObjectLockConfiguration', 'The specified object does not have a ObjectLock configuration');
      ctx.sendXml(200, xmlDocument('LegalHold', el('Status', version.legalHold)));
    }
  }

  private async putObjectRetention(ctx: Exchange): Promise<void> {
    await this.bucketExists(ctx.info.bucket!);
    const { body } = await this.readBody(ctx);
    const { version } = this.lockTarget(ctx);
    const inner = xmlRoot(body.toString('utf8'), 'Retention');
    const mode = xmlText(inner, 'Mode');
    const untilText = xmlText(inner, 'RetainUntilDate');
    let next: VersionEntry['lock'] = null;
    if (mode !== undefined || untilText !== undefined) {
      if ((mode !== 'GOVERNANCE' && mode !== 'COMPLIANCE') || untilText === undefined) throw ERR.malformedXml();
      const until = parseIsoDate(untilText);
      if (until === null) throw ERR.malformedXml();
      if (until.getTime() <= Date.now())
        throw fail(400, 'InvalidArgument', 'The retain until date must be in the future!', { ArgumentName: 'RetainUntilDate', ArgumentValue: untilText });
      next = { mode, retainUntil: until };
    }
    const current = version.lock;
    if (current && current.retainUntil.getTime() > Date.now()) {
      const weakens =
        next === null || next.retainUntil.getTime() < current.retainUntil.getTime() || (current.mode === 'COMPLIANCE' && next.mode !== 'COMPLIANCE');
      const bypass = ctx.header('x-amz-bypass-governance-retention') === 'true';
      if (weakens && (current.mode === 'COMPLIANCE' || !bypass)) throw ERR.accessDenied();
    }
    version.lock = next;
    ctx.send(200, {}, null);
  }

  private async putObjectLegalHold(ctx: Exchange): Promise<void> {
    await this.bucketExists(ctx.info.bucket!);
    const { body } = await this.readBody(ctx);
    const { version } = this.lockTarget(ctx);
    const status = xmlText(xmlRoot(body.toString('utf8'), 'LegalHold'), 'Status');
    if (status !== 'ON' && status !== 'OFF') throw ERR.malformedXml();
    version.legalHold = status;
    ctx.send(200, {}, null);
  }

  private async bucketEncryption(ctx: Exchange): Promise<void> {
    const bucket = ctx.info.bucket!;
    await this.bucketExists(bucket);
    const b = this.state.bucket(bucket);
    if (ctx.info.op === 'DeleteBucketEncryption') {
      ctx.drain();
      b.encryption = null;
      ctx.send(204, {}, null);
      return;
    }
    if (ctx.info.op === 'PutBucketEncryption') {
      const { body } = await this.readBody(ctx);
      const inner = xmlRoot(body.toString('utf8'), 'ServerSideEncryptionConfiguration');
      const alg = xmlText(inner, 'SSEAlgorithm');
      if (alg === undefined || !SSE_ALGORITHMS.has(alg)) throw ERR.malformedXml();
      b.encryption = {
        algorithm: alg as ServerSideEncryption['algorithm'],
        kmsKeyId: xmlText(inner, 'KMSMasterKeyID') ?? null,
        bucketKeyEnabled: xmlText(inner, 'BucketKeyEnabled') === 'true',
      };
      ctx.send(200, {}, null);
      return;
    }
    ctx.drain();
    const e = b.encryption ?? { algorithm: 'AES256', kmsKeyId: null, bucketKeyEnabled: false };
    ctx.sendXml(
      200,
      xmlDocument(
        'ServerSideEncryptionConfiguration',
        `<Rule><ApplyServerSideEncryptionByDefault>${el('SSEAlgorithm', e.algorithm)}${el('KMSMasterKeyID', e.kmsKeyId)}</ApplyServerSideEncryptionByDefault>${el('BucketKeyEnabled', e.bucketKeyEnabled)}</Rule>`,
      ),
    );
  }

  /** Lifecycle configurations are validated loosely and stored as sent; no rule is ever applied. */
  private async bucketLifecycle(ctx: Exchange): Promise<void> {
    const bucket = ctx.info.bucket!;
    await this.bucketExists(bucket);
    const b = this.state.bucket(bucket);
    if (ctx.info.op === 'DeleteBucketLifecycle') {
      ctx.drain();
      b.lifecycle = null;
      ctx.send(204, {}, null);
      return;
    }
    if (ctx.info.op === 'PutBucketLifecycleConfiguration') {
      if (!hasIntegrityHeader(ctx.req)) throw fail(400, 'InvalidRequest', 'Missing required header for this request: Content-MD5');
      const { body } = await this.readBody(ctx);
      const xml = body.toString('utf8');
      const rules = xmlTexts(xmlRoot(xml, 'LifecycleConfiguration'), 'Rule');
      if (rules.length === 0 || rules.length > 1000 || rules.some((r) => !['Enabled', 'Disabled'].includes(xmlText(r, 'Status') ?? '')))
        throw ERR.malformedXml();
      b.lifecycle = xml.replace(/^\uFEFF?\s*(<\?xml[^>]*\?>)?\s*/, '');
      ctx.send(200, {}, null);
      return;
    }
    ctx.drain();
    if (b.lifecycle === null) throw fail(404, 'NoSuchLifecycleConfiguration', 'The lifecycle configuration does not exist', { BucketName: bucket });
    ctx.sendXml(200, `<?xml version="1.0" encoding="UTF-8"?>\n${b.lifecycle}`);
  }

  // -- /_test -------------------------------------------------------------------------------------

  async bucketStates(): Promise<BucketStateEntry[]> {
    const names = new Set<string>(this.state.buckets.keys());
    for (const e of await readdir(this.store.rootDirectory, { withFileTypes: true }).catch(() => [])) if (e.isDirectory()) names.add(e.name);
    const out: BucketStateEntry[] = [];
    for (const name of [...names].sort()) {
      if (!(await this.store.getBucket(name))) continue;
      const b = this.state.bucket(name);
      out.push({
        name,
        objectLock: b.objectLock,
        versioning: b.versioning,
        defaultRetention: b.defaultRetention,
        encryption: b.encryption,
        lifecycle: b.lifecycle,
      });
    }
    return out;
  }

  objectLocks(): ObjectLockEntry[] {
    const out: ObjectLockEntry[] = [];
    for (const [k, history] of this.state.versions) {
      const [bucket, key] = splitObjKey(k);
      history.forEach((v, i) => {
        if (v.deleteMarker || (!v.lock && !v.legalHold)) return;
        out.push({
          bucket,
          key,
          versionId: v.versionId,
          mode: v.lock?.mode ?? null,
          retainUntil: v.lock?.retainUntil.toISOString() ?? null,
          legalHold: v.legalHold,
          isLatest: i === history.length - 1,
          hasBytes: v.hasBytes,
        });
      });
    }
    return out;
  }

  async objectStates(): Promise<ObjectStateEntry[]> {
    const out: ObjectStateEntry[] = [];
    for (const [k, m] of this.state.objects) {
      const [bucket, key] = splitObjKey(k);
      const meta = await this.store.getMetadata(bucket, key).catch(() => null);
      out.push({
        bucket,
        key,
        versionId: m.versionId,
        sse: m.sse,
        checksum: m.checksum,
        storageClass: meta ? String(meta['x-amz-storage-class'] ?? 'STANDARD') : 'STANDARD',
        restoredUntil: m.restoredUntil?.toISOString() ?? null,
      });
    }
    return out;
  }

  async resetAll(data: boolean): Promise<void> {
    this.faults.clear();
    this.recorder.clear();
    if (data) {
      this.store.reset();
      this.state.clear();
      this.configureBuckets();
      await this.createConfiguredBuckets();
    }
  }

  private async control(req: http.IncomingMessage, res: http.ServerResponse, info: RequestInfo): Promise<void> {
    const reply = (status: number, body: unknown) => {
      const data = Buffer.from(JSON.stringify(body));
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': data.length });
      res.end(data);
    };
    const readJson = async (): Promise<unknown> => {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const text = Buffer.concat(chunks).toString('utf8').trim();
      return text ? JSON.parse(text) : undefined;
    };
    try {
      const path = info.rawPath;
      const q = info.query;
      if (path === '/_test/requests' && info.method === 'GET') {
        const flag = (v: string | undefined) => v === '1' || v === 'true';
        reply(
          200,
          this.recorder.query({
            op: q['op'],
            method: q['method'],
            bucket: q['bucket'],
            keyPrefix: q['keyPrefix'],
            since: q['since'] !== undefined ? Number(q['since']) : undefined,
            clear: flag(q['clear']),
          }),
        );
      } else if (path === '/_test/requests' && info.method === 'DELETE') {
        this.recorder.clear();
        reply(200, { ok: true });
      } else if (path === '/_test/faults' && info.method === 'GET') {
        reply(200, this.faults.state());
      } else if (path === '/_test/faults' && info.method === 'POST') {
        const body = await readJson();
        const rules = Array.isArray(body) ? body : (body as { rules?: unknown })?.rules;
        if (!Array.isArray(rules)) {
          reply(400, { error: 'POST /_test/faults takes a JSON array of rules (or {"rules": [...]})' });
          return;
        }
        this.faults.add(rules as FaultRule[]);
        reply(200, this.faults.state());
      } else if (path === '/_test/faults' && info.method === 'DELETE') {
        this.faults.clear();
        reply(200, this.faults.state());
      } else if (path === '/_test/reset' && info.method === 'POST') {
        const body = (await readJson()) as { data?: boolean } | undefined;
        await this.resetAll(body?.data === true || q['data'] === '1');
        reply(200, { ok: true });
      } else if (path === '/_test/object-locks' && info.method === 'GET') {
        reply(200, this.objectLocks());
      } else if (path === '/_test/objects' && info.method === 'GET') {
        reply(200, await this.objectStates());
      } else if (path === '/_test/buckets' && info.method === 'GET') {
        reply(200, await this.bucketStates());
      } else {
        reply(404, { error: `no test route ${info.method} ${path}; see test/s3-server/README.md` });
      }
    } catch (e) {
      reply(400, { error: (e as Error).message });
    }
  }
}

function encodeContinuationToken(last: string, bucket: string): string {
  return Buffer.from(JSON.stringify({ b: bucket, k: last })).toString('base64url');
}

function decodeContinuationToken(token: string, bucket: string): string | null {
  try {
    const v = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as { b?: unknown; k?: unknown };
    return v.b === bucket && typeof v.k === 'string' ? v.k : null;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------------
// Start
// ---------------------------------------------------------------------------------------------------

/** Throws a sentence naming the option and the fix; called before anything starts. */
function validateOptions(o: S3ServerOptions): void {
  for (const r of o.faults ?? []) validateRule(r);
  for (const b of o.objectLockBuckets ?? []) {
    const d = typeof b === 'string' ? undefined : b.defaultRetention;
    if (d && ((d.mode !== 'GOVERNANCE' && d.mode !== 'COMPLIANCE') || (d.days === undefined) === (d.years === undefined) || !((d.days ?? d.years ?? 0) > 0))) {
      throw new Error(`objectLockBuckets: defaultRetention needs mode GOVERNANCE or COMPLIANCE and exactly one of days or years > 0; got ${JSON.stringify(b)}`);
    }
  }
  for (const k of o.accessKeys ?? []) {
    if (!k.accessKeyId || !k.secretAccessKey) throw new Error(`accessKeys: each key needs accessKeyId and secretAccessKey; got ${JSON.stringify(k)}`);
  }
  for (const op of [...(o.denyOps ?? []), ...(o.accessKeys ?? []).flatMap((k) => k.denyOps ?? [])]) {
    if (!(S3_OPERATIONS as readonly string[]).includes(op))
      throw new Error(`denyOps: unknown operation ${op}; use one of the names in S3_OPERATIONS (PutObject, GetObject, …)`);
  }
}

export async function startS3Server(options: S3ServerOptions = {}): Promise<S3ServerHandle> {
  validateOptions(options);
  const host = options.host ?? '127.0.0.1';
  const ownDir = options.dir === undefined;
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'auditship-s3-'));
  await mkdir(dir, { recursive: true });
  const mods = loadS3rver();
  for (const c of STORAGE_CLASSES) if (!mods.S3Object.STORAGE_CLASSES.includes(c)) mods.S3Object.STORAGE_CLASSES.push(c);
  for (const k of options.accessKeys ?? []) mods.accounts.DUMMY_ACCOUNT.createKeyPair(k.accessKeyId, k.secretAccessKey);

  const s3rver = new mods.S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: dir, vhostBuckets: false, resetOnClose: false });
  patchStore(mods, s3rver.store, options.minPartSizeBytes ?? 5 * MIB);
  const upstream = await s3rver.run();
  s3rver.httpServer!.requestTimeout = 0;

  const proxy = new S3Proxy(options, s3rver.store, upstream.port);
  await proxy.createConfiguredBuckets();

  const server = http.createServer({ requestTimeout: 0, headersTimeout: 60_000, keepAliveTimeout: 60_000 } as http.ServerOptions);
  server.keepAliveTimeout = 60_000;
  const onRequest = (expectContinue: boolean) => (req: http.IncomingMessage, res: http.ServerResponse) => {
    proxy.handle(req, res, expectContinue).catch(() => {
      resetSocket(req.socket);
    });
  };
  server.on('request', onRequest(false));
  server.on('checkContinue', onRequest(true));
  server.on('clientError', (_err, socket) => {
    socket.destroy();
  });
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  let closed = false;
  return {
    url: `http://${host}:${addr.port}`,
    directUrl: `http://127.0.0.1:${upstream.port}`,
    dir,
    port: addr.port,
    requests: (q) => proxy.recorder.query(q),
    clearRequests: () => proxy.recorder.clear(),
    faults: (rules) => {
      proxy.faults.add(rules);
      return proxy.faults.state();
    },
    faultState: () => proxy.faults.state(),
    clearFaults: () => proxy.faults.clear(),
    reset: (opts) => proxy.resetAll(opts?.data === true),
    objectLocks: () => proxy.objectLocks(),
    objects: () => proxy.objectStates(),
    buckets: () => proxy.bucketStates(),
    close: async () => {
      if (closed) return;
      closed = true;
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await s3rver.close().catch(() => undefined);
      if (ownDir) await rm(dir, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------------------------------------------
// CLI
// ---------------------------------------------------------------------------------------------------

function parseArgs(argv: string[]): S3ServerOptions & { exitOnStdinClose?: boolean } {
  const o: S3ServerOptions & { exitOnStdinClose?: boolean } = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    switch (a) {
      case '--port':
        o.port = Number(next());
        break;
      case '--host':
        o.host = next();
        break;
      case '--dir':
        o.dir = next();
        break;
      case '--options':
        Object.assign(o, JSON.parse(next()) as S3ServerOptions);
        break;
      case '--exit-on-stdin-close':
        o.exitOnStdinClose = true;
        break;
      default:
        throw new Error(`unknown argument ${a} (use --port, --host, --dir, --options '<json>', --exit-on-stdin-close)`);
    }
  }
  return o;
}

const isMain = process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1];
if (isMain) {
  let opts: S3ServerOptions & { exitOnStdinClose?: boolean };
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`s3-server: ${(e as Error).message}\n`);
    process.exit(2);
  }
  let handle: S3ServerHandle;
  try {
    handle = await startS3Server(opts);
  } catch (e) {
    process.stderr.write(`s3-server: ${(e as Error).message}\n`);
    process.exit(2);
  }
  process.stdout.write(`${JSON.stringify({ url: handle.url, directUrl: handle.directUrl })}\n`);
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    void handle.close().then(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  if (opts.exitOnStdinClose) {
    // The spawning process holds our stdin open; when it dies, so do we (no orphaned servers).
    process.stdin.on('end', stop).on('close', stop).resume();
  }
}
