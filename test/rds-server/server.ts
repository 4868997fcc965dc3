/**
 * An in-memory stand-in for the part of the Amazon RDS API that the `rds_logs` source uses:
 * the Query API actions DescribeDBLogFiles and DownloadDBLogFilePortion (XML in the
 * 2014-10-31 namespace, Query-API errors), the REST whole-file download
 * `GET /v13|v19/downloadCompleteLogFile/<instance>/<file>`, SigV4 verification of both (header and
 * presigned, permanent and temporary credentials) with an implementation of its own on node:crypto,
 * IAM-style denials — plus a fault-injection, file and statistics API under `/_test/…` that is not
 * part of RDS. See README.md beside it for what is faithful and what is not.
 *
 * In process:   const rds = await startRdsServer({ instances: ['db1'] }); … await rds.close();
 * As a process: node --import tsx test/rds-server/server.ts --port 0 --options '<json>'
 *               prints one line {"url":"http://127.0.0.1:PORT"} on stdout once listening.
 *
 * Only node: built-ins. Files live in memory.
 */
import http from 'node:http';
import { createHash, createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import type { AddressInfo, Socket } from 'node:net';
import { fileURLToPath } from 'node:url';

// ---------------------------------------------------------------------------------------------------
// Options, faults, stats
// ---------------------------------------------------------------------------------------------------

/** An access key the server accepts. */
export interface RdsCredential {
  accessKeyId: string;
  secretAccessKey: string;
  /**
   * Makes it a temporary (STS) credential: every request must carry this token as a signed
   * `X-Amz-Security-Token` (header or presigned query parameter).
   */
  sessionToken?: string;
  /** A temporary credential past its expiry: every request is refused with `ExpiredToken`. */
  expired?: boolean;
  /**
   * The principal named in AccessDenied messages. Default `arn:aws:iam::<account>:user/auditship-test`,
   * or `arn:aws:sts::<account>:assumed-role/auditship-test/session` for a temporary credential.
   */
  arn?: string;
}

/** The IAM actions the server knows; listed in `deny`, they are answered 403 AccessDenied. */
export type IamAction = 'rds:DescribeDBLogFiles' | 'rds:DownloadDBLogFilePortion' | 'rds:DownloadCompleteDBLogFile';

/** What a fault can be limited to: a Query API action, or `download` for the REST endpoint. */
export type FaultAction = 'DescribeDBLogFiles' | 'DownloadDBLogFilePortion' | 'download';

/** A file to create at start-up (and again on reset). */
export interface RdsFileInit {
  name: string;
  /** UTF-8 content. */
  content?: string;
  /** Binary content as base64 (wins over `content`). */
  base64?: string;
  /** LastWritten in ms since the epoch; default: now. */
  lastWritten?: number;
  /** Added to the real length in DescribeDBLogFiles' `Size` (aws-cli #1504/#2008: downloads shorter than the listed size). */
  reportedSizeDelta?: number;
}

export interface RdsInstanceInit {
  id: string;
  files?: RdsFileInit[];
}

export interface RdsServerOptions {
  port?: number;
  host?: string;
  /** The region requests must be signed for (credential scope `<date>/<region>/rds/aws4_request`). Default us-east-1. */
  region?: string;
  /** Used in ARNs. Default 123456789012. */
  accountId?: string;
  /** Accepted access keys. Default: one permanent key, {@link TEST_CREDENTIALS}. */
  credentials?: RdsCredential[];
  /** IAM actions every principal is denied (403 AccessDenied). */
  deny?: IamAction[];
  /** DescribeDBLogFiles returns the files in a random order (AWS does not promise one). Default false: by name. */
  shuffleListing?: boolean;
  /** DB instances that exist from the start, with their files. */
  instances?: Array<string | RdsInstanceInit>;
  /** DescribeDBLogFiles page size when MaxRecords is not given. Default 1000 (observed, honeycombio/rdslogs #7). */
  describeDefaultMaxRecords?: number;
  /** Accepted MaxRecords range; outside it: 400 InvalidParameterValue. Default [20, 1000]. */
  describeMaxRecordsRange?: [number, number];
  /** DownloadDBLogFilePortion byte limit per call. Default 1,048,576 (1 MB); lower it only to make a test cheaper. */
  portionMaxBytes?: number;
  /** Allowed difference between X-Amz-Date and the server clock. Default 15 minutes. */
  maxClockSkewMs?: number;
  /** How many requests `stats().recent` keeps. Default 500. */
  recentLimit?: number;
}

/** The credential used when the options list none. */
export const TEST_CREDENTIALS: RdsCredential = {
  accessKeyId: 'AKIAIOSFODNN7EXAMPLE',
  secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
};

export type FaultKind =
  /** 400 Throttling "Rate exceeded". */
  | 'throttle'
  /** 500 InternalFailure. */
  | 'internalError'
  /** The socket is reset (RST) after the request was read, with no response. */
  | 'reset'
  /** The answer is sent `delayMs` later (combines with the other kinds). */
  | 'delay'
  /** REST only: the body is cut by a socket reset after `afterBytes` bytes. */
  | 'bodyReset'
  /** REST only: the body is sent at `bytesPerSecond`. */
  | 'rateLimit'
  /** REST only: once half of the file has been sent, `appendBytes` (or `appendData`) is appended to it and LastWritten bumped. */
  | 'appendMidDownload';

export interface FaultRule {
  kind: FaultKind;
  /** Only requests for this action; default: any action the kind applies to. */
  action?: FaultAction;
  /** Only requests for this file name. */
  file?: string;
  /** The next N matching requests; default: every matching request until cleared. */
  count?: number;
  delayMs?: number;
  afterBytes?: number;
  bytesPerSecond?: number;
  appendBytes?: number;
  appendData?: string;
}

export interface ActiveFault extends FaultRule {
  id: number;
  /** Matching requests still to be hit; null = unlimited. */
  remaining: number | null;
  hits: number;
}

export interface FaultState {
  rules: ActiveFault[];
}

/** One request as the server saw it (control requests are not recorded). */
export interface RdsRequestRecord {
  at: number;
  method: string;
  /** DescribeDBLogFiles, DownloadDBLogFilePortion, download, or the unknown Action name. */
  action: string;
  instance?: string;
  file?: string;
  /** Action parameters (Marker, NumberOfLines, MaxRecords, filters). */
  params?: Record<string, string>;
  accessKeyId?: string;
  presigned: boolean;
  /** Whether a session token came with the request, and whether it was covered by the signature. */
  sessionToken: 'none' | 'signed' | 'unsigned';
  /** 'ok' or the error code the request was refused with (auth, deny or the action's own). */
  outcome: string;
  /** HTTP status; 0 when the socket was reset without an answer. */
  status: number;
  faults?: FaultKind[];
  /** Log bytes served (LogFileData without the truncation notice, or the REST body). */
  bytes?: number;
  truncated?: boolean;
}

export interface RdsStats {
  requests: Record<'DescribeDBLogFiles' | 'DownloadDBLogFilePortion' | 'download' | 'other', number>;
  /** Responses by HTTP status ("0" = reset). */
  statuses: Record<string, number>;
  /** Refusals by error code: authentication failures, AccessDenied, and the actions' own errors. */
  errors: Record<string, number>;
  faultsInjected: Partial<Record<FaultKind, number>>;
  bytesServed: { portion: number; download: number };
  truncatedPortions: number;
  /** Most recent last. */
  recent: RdsRequestRecord[];
  /** Number of files per instance. */
  instances: Record<string, number>;
  faults: FaultState;
  memory: { rssMB: number; heapUsedMB: number };
}

export interface RdsFileInfo {
  instance: string;
  name: string;
  /** The real length in bytes. */
  size: number;
  /** What DescribeDBLogFiles reports. */
  reportedSize: number;
  lastWritten: number;
}

export interface RdsConfigUpdate {
  deny?: IamAction[];
  shuffleListing?: boolean;
  credentials?: RdsCredential[];
}

export type ControlCommand =
  | { op: 'stats' }
  | { op: 'reset' }
  | { op: 'faults'; add?: FaultRule[]; clear?: boolean }
  | ({ op: 'configure' } & RdsConfigUpdate)
  | { op: 'createInstance'; id: string }
  | ({ op: 'putFile'; instance: string } & RdsFileInit)
  | { op: 'appendFile'; instance: string; name: string; content?: string; base64?: string; lastWritten?: number }
  | { op: 'deleteFile'; instance: string; name: string }
  | { op: 'listFiles'; instance: string };

export interface RdsServerHandle {
  url: string;
  port: number;
  region: string;
  stats(): RdsStats;
  /** Adds fault rules. */
  faults(f: FaultRule | FaultRule[]): FaultState;
  clearFaults(): void;
  configure(c: RdsConfigUpdate): void;
  /** Back to the start-up instances and files; clears faults and counters, restores options. */
  reset(): void;
  createInstance(id: string): void;
  putFile(instance: string, name: string, content: string | Buffer, opts?: { lastWritten?: number; reportedSizeDelta?: number }): RdsFileInfo;
  appendFile(instance: string, name: string, content: string | Buffer, opts?: { lastWritten?: number }): RdsFileInfo;
  deleteFile(instance: string, name: string): void;
  listFiles(instance: string): RdsFileInfo[];
  /** A copy of the file's current bytes. */
  readFile(instance: string, name: string): Buffer;
  /** The same commands as the /_test API. */
  control(cmd: ControlCommand): Promise<unknown>;
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------------
// Constants and small helpers
// ---------------------------------------------------------------------------------------------------

const XMLNS = 'http://rds.amazonaws.com/doc/2014-10-31/';
const MB = 1_048_576;
const MAX_LINES = 10_000;
/** What RDS puts into LogFileData where it cut a line at the 1 MB limit (aws-cli #3079, aws-sdk-js #1463). */
export const TRUNCATION_NOTICE = '\n [Your log message was truncated]\n';
const UNSIGNED_HASH = createHash('sha256').update('').digest('hex');
const REST_PATH = /^\/(v13|v19)\/downloadCompleteLogFile\/([^/]+)\/(.+)$/;

class ControlError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function xmlText(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/\r/g, '&#13;');
}

const sha256Hex = (data: string | Buffer): string => createHash('sha256').update(data).digest('hex');
const hmac = (key: Buffer | string, data: string): Buffer => createHmac('sha256', key).update(data, 'utf8').digest();

/** `YYYYMMDDTHHMMSSZ` */
function amzDate(ms: number): string {
  return new Date(ms)
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');
}

function parseAmzDate(s: string): number | null {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s);
  if (!m) return null;
  const t = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
  return Number.isNaN(t) ? null : t;
}

/** RFC 3986 encoding as SigV4 wants it: everything but A-Z a-z 0-9 - _ . ~ as %XY (upper case). */
function uriEncode(s: string): string {
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) {
    const c = String.fromCharCode(b);
    out += /[A-Za-z0-9\-_.~]/.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** Percent-decoding that leaves a malformed escape as it is. '+' stays '+'. */
function pctDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** Query string pairs in wire order, percent-decoded. */
function parseQueryPairs(raw: string): Array<[string, string]> {
  if (!raw) return [];
  return raw
    .split('&')
    .filter((p) => p.length > 0)
    .map((p) => {
      const eq = p.indexOf('=');
      return eq < 0 ? [pctDecode(p), ''] : [pctDecode(p.slice(0, eq)), pctDecode(p.slice(eq + 1))];
    });
}

/** application/x-www-form-urlencoded: '+' is a space. */
function parseForm(raw: string): Array<[string, string]> {
  return [...new URLSearchParams(raw).entries()];
}

/** Values of one header in the order they came, from the raw header list. */
function headerValues(rawHeaders: string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() === name) out.push(rawHeaders[i + 1]!);
  }
  return out;
}

function firstHeader(rawHeaders: string[], name: string): string | undefined {
  return headerValues(rawHeaders, name)[0];
}

/** Reads an identifier the way RDS does: case-insensitively (identifiers are stored in lower case). */
const normId = (id: string): string => id.toLowerCase();

function hourOf(name: string): number {
  const m = /-(\d{2})(?:\.(?:csv|json))?$/.exec(name);
  return m ? Number(m[1]) : 0;
}

/** True when the bytes are not text RDS will put into XML: invalid UTF-8, or C0 controls other than tab/LF/CR. */
function looksBinary(buf: Buffer): boolean {
  for (let i = 0; i < buf.length; i++) {
    const b = buf[i]!;
    if (b < 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d) return true;
  }
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(buf);
    return false;
  } catch {
    return true;
  }
}

// ---------------------------------------------------------------------------------------------------
// Log files
// ---------------------------------------------------------------------------------------------------

/** An append-only byte buffer with amortised O(1) appends; `bytes()` is a view of the current content. */
class LogFile {
  private buf: Buffer;
  size = 0;
  constructor(
    readonly name: string,
    content: Buffer,
    public lastWritten: number,
    public reportedSizeDelta: number,
  ) {
    this.buf = Buffer.allocUnsafe(Math.max(1024, content.length));
    content.copy(this.buf, 0);
    this.size = content.length;
  }

  bytes(): Buffer {
    return this.buf.subarray(0, this.size);
  }

  append(data: Buffer, lastWritten?: number): void {
    if (this.size + data.length > this.buf.length) {
      const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.size + data.length));
      this.buf.copy(next, 0, 0, this.size);
      this.buf = next;
    }
    data.copy(this.buf, this.size);
    this.size += data.length;
    // LastWritten always moves forward, even for two writes within one millisecond.
    this.lastWritten = lastWritten ?? Math.max(Date.now(), this.lastWritten + 1);
  }

  get reportedSize(): number {
    return Math.max(0, this.size + this.reportedSizeDelta);
  }
}

interface Instance {
  id: string;
  files: Map<string, LogFile>;
}

// ---------------------------------------------------------------------------------------------------
// SigV4 verification (independent of @smithy/signature-v4 on purpose: it is the thing under test)
// ---------------------------------------------------------------------------------------------------

interface AuthRefusal {
  ok: false;
  status: number;
  code: string;
  message: string;
  accessKeyId?: string;
  presigned: boolean;
  sessionToken: RdsRequestRecord['sessionToken'];
}

interface AuthSuccess {
  ok: true;
  credential: RdsCredential;
  presigned: boolean;
  sessionToken: RdsRequestRecord['sessionToken'];
}

interface SignedRequest {
  method: string;
  rawPath: string;
  rawQuery: string;
  rawHeaders: string[];
  body: Buffer;
}

const SIGNATURE_MISMATCH =
  'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.';

/** The canonical URI for a non-S3 service: normalised, then every segment URI-encoded again (double encoding). */
function canonicalUri(rawPath: string): string {
  const segments: string[] = [];
  for (const seg of rawPath.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') segments.pop();
    else segments.push(seg);
  }
  if (segments.length === 0) return '/';
  const trailing = rawPath.endsWith('/') ? '/' : '';
  return `/${segments.map(uriEncode).join('/')}${trailing}`;
}

function canonicalQuery(pairs: Array<[string, string]>): string {
  return pairs
    .map(([k, v]) => [uriEncode(k), uriEncode(v)] as const)
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
}

function canonicalHeaderValue(values: string[]): string {
  return values.map((v) => v.trim().replace(/\s+/g, ' ')).join(',');
}

function signingKey(secret: string, date: string, region: string, service: string): Buffer {
  return hmac(hmac(hmac(hmac(`AWS4${secret}`, date), region), service), 'aws4_request');
}

function verifySigV4(
  req: SignedRequest,
  lookup: (accessKeyId: string) => RdsCredential | undefined,
  region: string,
  maxSkewMs: number,
  now: number,
): AuthSuccess | AuthRefusal {
  const queryPairs = parseQueryPairs(req.rawQuery);
  const q = new Map(queryPairs);
  const authz = firstHeader(req.rawHeaders, 'authorization');
  const presigned = !authz && (q.has('X-Amz-Algorithm') || q.has('X-Amz-Signature') || q.has('X-Amz-Credential'));
  let tokenState: RdsRequestRecord['sessionToken'] = 'none';
  const refuse = (status: number, code: string, message: string, accessKeyId?: string): AuthRefusal => ({
    ok: false,
    status,
    code,
    message,
    presigned,
    sessionToken: tokenState,
    ...(accessKeyId ? { accessKeyId } : {}),
  });

  let credentialStr: string;
  let signedHeadersStr: string;
  let signature: string;
  let dateStr: string | undefined;
  let token: string | undefined;
  let expiresSec: number | undefined;

  if (authz) {
    const space = authz.indexOf(' ');
    const algorithm = space < 0 ? authz : authz.slice(0, space);
    if (algorithm !== 'AWS4-HMAC-SHA256') return refuse(400, 'IncompleteSignature', `Unsupported AWS 'algorithm': '${algorithm}'`);
    const parts = new Map<string, string>();
    for (const p of authz.slice(space + 1).split(',')) {
      const eq = p.indexOf('=');
      if (eq > 0) parts.set(p.slice(0, eq).trim(), p.slice(eq + 1).trim());
    }
    dateStr = firstHeader(req.rawHeaders, 'x-amz-date');
    if (dateStr === undefined) {
      const date = firstHeader(req.rawHeaders, 'date');
      const t = date ? Date.parse(date) : NaN;
      if (!Number.isNaN(t)) dateStr = amzDate(t);
    }
    const missing: string[] = [];
    for (const k of ['Credential', 'Signature', 'SignedHeaders']) if (!parts.get(k)) missing.push(`Authorization header requires '${k}' parameter.`);
    if (dateStr === undefined) missing.push("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.");
    if (missing.length > 0) return refuse(400, 'IncompleteSignature', `${missing.join(' ')} Authorization=${authz}`);
    credentialStr = parts.get('Credential')!;
    signedHeadersStr = parts.get('SignedHeaders')!;
    signature = parts.get('Signature')!;
    const tokens = headerValues(req.rawHeaders, 'x-amz-security-token');
    token = tokens[0];
    if (token !== undefined) tokenState = signedHeadersStr.split(';').includes('x-amz-security-token') ? 'signed' : 'unsigned';
  } else if (presigned) {
    const need = ['X-Amz-Algorithm', 'X-Amz-Credential', 'X-Amz-Signature', 'X-Amz-SignedHeaders', 'X-Amz-Date'];
    if (need.some((k) => !q.get(k))) {
      return refuse(
        400,
        'IncompleteSignature',
        "AWS query-string parameters must include 'X-Amz-Algorithm', 'X-Amz-Credential', 'X-Amz-Signature', 'X-Amz-SignedHeaders', 'X-Amz-Date'. Re-examine the query-string parameters.",
      );
    }
    if (q.get('X-Amz-Algorithm') !== 'AWS4-HMAC-SHA256')
      return refuse(400, 'IncompleteSignature', `Unsupported AWS 'algorithm': '${q.get('X-Amz-Algorithm')}'`);
    credentialStr = q.get('X-Amz-Credential')!;
    signedHeadersStr = q.get('X-Amz-SignedHeaders')!;
    signature = q.get('X-Amz-Signature')!;
    dateStr = q.get('X-Amz-Date')!;
    token = q.get('X-Amz-Security-Token');
    if (token !== undefined) tokenState = 'signed';
    const exp = q.get('X-Amz-Expires');
    if (exp !== undefined) {
      expiresSec = Number(exp);
      if (!/^\d+$/.test(exp) || expiresSec < 1) return refuse(400, 'IncompleteSignature', 'X-Amz-Expires must be a positive integer');
      if (expiresSec > 604800) return refuse(400, 'IncompleteSignature', 'X-Amz-Expires must be less than a week (in seconds) that is 604800');
    }
  } else {
    return refuse(403, 'MissingAuthenticationToken', 'Request is missing Authentication Token');
  }

  const scope = credentialStr.split('/');
  const accessKeyId = scope[0] ?? '';
  if (scope.length !== 5)
    return refuse(
      400,
      'IncompleteSignature',
      `Credential should be of the form <access key>/<date>/<region>/rds/aws4_request, got '${credentialStr}'. `,
      accessKeyId,
    );
  const [, scopeDate, scopeRegion, scopeService, terminator] = scope as [string, string, string, string, string];
  const credential = lookup(accessKeyId);
  if (!credential) return refuse(403, 'InvalidClientTokenId', 'The security token included in the request is invalid.', accessKeyId);

  const requestTime = parseAmzDate(dateStr!);
  if (requestTime === null)
    return refuse(
      400,
      'IncompleteSignature',
      `Date must be in ISO-8601 'basic format'. Got '${dateStr}'. See http://en.wikipedia.org/wiki/ISO_8601`,
      accessKeyId,
    );
  if (scopeDate !== dateStr!.slice(0, 8)) {
    return refuse(
      403,
      'SignatureDoesNotMatch',
      `Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '${scopeDate}' != '${dateStr!.slice(0, 8)}', from '${dateStr}'.`,
      accessKeyId,
    );
  }
  if (scopeRegion !== region) return refuse(403, 'SignatureDoesNotMatch', `Credential should be scoped to a valid region, not '${scopeRegion}'. `, accessKeyId);
  if (scopeService !== 'rds') return refuse(403, 'SignatureDoesNotMatch', "Credential should be scoped to correct service: 'rds'. ", accessKeyId);
  if (terminator !== 'aws4_request')
    return refuse(403, 'SignatureDoesNotMatch', `Credential should be scoped with a valid terminator: 'aws4_request', not '${terminator}'. `, accessKeyId);

  if (requestTime - now > maxSkewMs) {
    return refuse(
      403,
      'SignatureDoesNotMatch',
      `Signature not yet current: ${dateStr} is still later than ${amzDate(now + maxSkewMs)} (${amzDate(now)} + ${Math.round(maxSkewMs / 60000)} min.)`,
      accessKeyId,
    );
  }
  if (presigned && expiresSec !== undefined) {
    if (now > requestTime + expiresSec * 1000) return refuse(403, 'AccessDenied', 'Request has expired', accessKeyId);
  } else if (now - requestTime > maxSkewMs) {
    return refuse(
      403,
      'SignatureDoesNotMatch',
      `Signature expired: ${dateStr} is now earlier than ${amzDate(now - maxSkewMs)} (${amzDate(now)} - ${Math.round(maxSkewMs / 60000)} min.)`,
      accessKeyId,
    );
  }

  // Role credentials need the token, and the REST endpoint needs it inside the signature (joer14/pg-audit-lambda).
  if (credential.sessionToken !== undefined) {
    if (token === undefined || tokenState !== 'signed' || token !== credential.sessionToken) {
      return refuse(403, 'InvalidClientTokenId', 'The security token included in the request is invalid.', accessKeyId);
    }
  } else if (token !== undefined) {
    return refuse(403, 'InvalidClientTokenId', 'The security token included in the request is invalid.', accessKeyId);
  }
  if (credential.expired) return refuse(403, 'ExpiredToken', 'The security token included in the request is expired', accessKeyId);

  const signedHeaders = signedHeadersStr.split(';');
  if (!signedHeaders.includes('host')) {
    return refuse(403, 'SignatureDoesNotMatch', "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.", accessKeyId);
  }
  const canonicalHeaders = signedHeaders.map((h) => `${h}:${canonicalHeaderValue(headerValues(req.rawHeaders, h))}\n`).join('');
  const queryForSigning = presigned ? queryPairs.filter(([k]) => k !== 'X-Amz-Signature') : queryPairs;
  const payloadHash = req.body.length === 0 ? UNSIGNED_HASH : sha256Hex(req.body);
  const canonicalRequest = [req.method, canonicalUri(req.rawPath), canonicalQuery(queryForSigning), canonicalHeaders, signedHeadersStr, payloadHash].join('\n');
  const credentialScope = `${scopeDate}/${scopeRegion}/${scopeService}/${terminator}`;
  const stringToSign = ['AWS4-HMAC-SHA256', dateStr, credentialScope, sha256Hex(canonicalRequest)].join('\n');
  const expected = createHmac('sha256', signingKey(credential.secretAccessKey, scopeDate, scopeRegion, scopeService))
    .update(stringToSign, 'utf8')
    .digest('hex');
  const given = Buffer.from(signature, 'utf8');
  if (given.length !== expected.length || !timingSafeEqual(given, Buffer.from(expected, 'utf8'))) {
    // Query-API services spell out what they expected, which is what makes a signing bug findable.
    return refuse(
      403,
      'SignatureDoesNotMatch',
      `${SIGNATURE_MISMATCH}\n\nThe Canonical String for this request should have been\n'${canonicalRequest}'\n\nThe String-to-Sign should have been\n'${stringToSign}'\n`,
      accessKeyId,
    );
  }
  return { ok: true, credential, presigned, sessionToken: tokenState };
}

// ---------------------------------------------------------------------------------------------------
// The emulator
// ---------------------------------------------------------------------------------------------------

interface QueryError {
  status: number;
  type: 'Sender' | 'Receiver';
  code: string;
  message: string;
}

const qerr = (status: number, code: string, message: string, type: 'Sender' | 'Receiver' = status >= 500 ? 'Receiver' : 'Sender'): QueryError => ({
  status,
  type,
  code,
  message,
});

class RdsEmulator {
  readonly region: string;
  readonly accountId: string;
  private credentials: RdsCredential[] = [];
  private deny = new Set<IamAction>();
  private shuffleListing = false;
  private instances = new Map<string, Instance>();
  private rules: ActiveFault[] = [];
  private nextFaultId = 1;
  private counters = this.freshCounters();
  private recent: RdsRequestRecord[] = [];
  private readonly maxSkewMs: number;
  private readonly portionMaxBytes: number;
  private readonly defaultMaxRecords: number;
  private readonly maxRecordsRange: [number, number];
  private readonly recentLimit: number;

  constructor(private readonly options: RdsServerOptions) {
    this.region = options.region ?? 'us-east-1';
    this.accountId = options.accountId ?? '123456789012';
    this.maxSkewMs = options.maxClockSkewMs ?? 15 * 60_000;
    this.portionMaxBytes = options.portionMaxBytes ?? MB;
    this.defaultMaxRecords = options.describeDefaultMaxRecords ?? 1000;
    this.maxRecordsRange = options.describeMaxRecordsRange ?? [20, 1000];
    this.recentLimit = options.recentLimit ?? 500;
    this.reset();
  }

  private freshCounters() {
    return {
      requests: { DescribeDBLogFiles: 0, DownloadDBLogFilePortion: 0, download: 0, other: 0 },
      statuses: {} as Record<string, number>,
      errors: {} as Record<string, number>,
      faultsInjected: {} as Partial<Record<FaultKind, number>>,
      bytesServed: { portion: 0, download: 0 },
      truncatedPortions: 0,
    };
  }

  // --- state -----------------------------------------------------------------------------------------

  reset(): void {
    this.credentials = (this.options.credentials ?? [TEST_CREDENTIALS]).map((c) => ({ ...c }));
    this.deny = new Set(this.options.deny ?? []);
    this.shuffleListing = this.options.shuffleListing ?? false;
    this.instances.clear();
    for (const i of this.options.instances ?? []) {
      const init = typeof i === 'string' ? { id: i } : i;
      this.createInstance(init.id);
      for (const f of init.files ?? []) {
        this.putFile(init.id, f.name, f.base64 !== undefined ? Buffer.from(f.base64, 'base64') : Buffer.from(f.content ?? '', 'utf8'), f);
      }
    }
    this.rules = [];
    this.counters = this.freshCounters();
    this.recent = [];
  }

  configure(c: RdsConfigUpdate): void {
    if (c.deny !== undefined) this.deny = new Set(c.deny);
    if (c.shuffleListing !== undefined) this.shuffleListing = c.shuffleListing;
    if (c.credentials !== undefined) this.credentials = c.credentials.map((x) => ({ ...x }));
  }

  createInstance(id: string): void {
    if (!/^[A-Za-z][A-Za-z0-9-]{0,62}$/.test(id)) throw new ControlError(400, `not a DB instance identifier: ${id}`);
    const key = normId(id);
    if (!this.instances.has(key)) this.instances.set(key, { id: key, files: new Map() });
  }

  private instanceOrThrow(id: string): Instance {
    const inst = this.instances.get(normId(id));
    if (!inst) throw new ControlError(404, `no DB instance ${id}; create it first (createInstance or options.instances)`);
    return inst;
  }

  putFile(instance: string, name: string, content: Buffer, opts: { lastWritten?: number; reportedSizeDelta?: number } = {}): RdsFileInfo {
    const inst = this.instanceOrThrow(instance);
    if (!name) throw new ControlError(400, 'a file needs a name');
    const file = new LogFile(name, content, opts.lastWritten ?? Date.now(), opts.reportedSizeDelta ?? 0);
    inst.files.set(name, file);
    return this.info(inst, file);
  }

  appendFile(instance: string, name: string, content: Buffer, opts: { lastWritten?: number } = {}): RdsFileInfo {
    const inst = this.instanceOrThrow(instance);
    const file = inst.files.get(name);
    if (!file) throw new ControlError(404, `no file ${name} on ${inst.id}; put it first`);
    file.append(content, opts.lastWritten);
    return this.info(inst, file);
  }

  deleteFile(instance: string, name: string): void {
    const inst = this.instanceOrThrow(instance);
    if (!inst.files.delete(name)) throw new ControlError(404, `no file ${name} on ${inst.id}`);
  }

  listFiles(instance: string): RdsFileInfo[] {
    const inst = this.instanceOrThrow(instance);
    return [...inst.files.values()].map((f) => this.info(inst, f));
  }

  readFile(instance: string, name: string): Buffer {
    const f = this.instanceOrThrow(instance).files.get(name);
    if (!f) throw new ControlError(404, `no file ${name} on ${normId(instance)}`);
    return Buffer.from(f.bytes());
  }

  private info(inst: Instance, f: LogFile): RdsFileInfo {
    return { instance: inst.id, name: f.name, size: f.size, reportedSize: f.reportedSize, lastWritten: f.lastWritten };
  }

  addFaults(f: FaultRule | FaultRule[]): FaultState {
    const list = Array.isArray(f) ? f : [f];
    for (const r of list) {
      const kinds: FaultKind[] = ['throttle', 'internalError', 'reset', 'delay', 'bodyReset', 'rateLimit', 'appendMidDownload'];
      if (!kinds.includes(r.kind)) throw new ControlError(400, `unknown fault kind ${String(r.kind)}; one of ${kinds.join(', ')}`);
      if (r.action !== undefined && !['DescribeDBLogFiles', 'DownloadDBLogFilePortion', 'download'].includes(r.action)) {
        throw new ControlError(400, `unknown fault action ${String(r.action)}; one of DescribeDBLogFiles, DownloadDBLogFilePortion, download`);
      }
      const restOnly = r.kind === 'bodyReset' || r.kind === 'rateLimit' || r.kind === 'appendMidDownload';
      if (restOnly && r.action !== undefined && r.action !== 'download') throw new ControlError(400, `fault ${r.kind} applies to the REST download only`);
      if (r.kind === 'delay' && !(Number(r.delayMs) >= 0)) throw new ControlError(400, 'delay needs delayMs');
      if (r.kind === 'bodyReset' && !(Number(r.afterBytes) >= 0)) throw new ControlError(400, 'bodyReset needs afterBytes');
      if (r.kind === 'rateLimit' && !(Number(r.bytesPerSecond) > 0)) throw new ControlError(400, 'rateLimit needs bytesPerSecond');
      if (r.kind === 'appendMidDownload' && r.appendData === undefined && !(Number(r.appendBytes) > 0))
        throw new ControlError(400, 'appendMidDownload needs appendBytes or appendData');
      this.rules.push({ ...r, ...(restOnly ? { action: 'download' as const } : {}), id: this.nextFaultId++, remaining: r.count ?? null, hits: 0 });
    }
    return this.faultState();
  }

  clearFaults(): void {
    this.rules = [];
  }

  faultState(): FaultState {
    return { rules: this.rules.map((r) => ({ ...r })) };
  }

  /** Takes the rules that match this request, counting one hit each and dropping exhausted ones. */
  private takeFaults(action: FaultAction, file: string | undefined): ActiveFault[] {
    const hit: ActiveFault[] = [];
    for (const r of this.rules) {
      if (r.action !== undefined && r.action !== action) continue;
      if (r.file !== undefined && r.file !== file) continue;
      if (r.remaining !== null && r.remaining <= 0) continue;
      if (r.remaining !== null) r.remaining--;
      r.hits++;
      hit.push(r);
      this.counters.faultsInjected[r.kind] = (this.counters.faultsInjected[r.kind] ?? 0) + 1;
    }
    this.rules = this.rules.filter((r) => r.remaining === null || r.remaining > 0);
    return hit;
  }

  stats(): RdsStats {
    const mem = process.memoryUsage();
    const instances: Record<string, number> = {};
    for (const [id, inst] of this.instances) instances[id] = inst.files.size;
    return {
      requests: { ...this.counters.requests },
      statuses: { ...this.counters.statuses },
      errors: { ...this.counters.errors },
      faultsInjected: { ...this.counters.faultsInjected },
      bytesServed: { ...this.counters.bytesServed },
      truncatedPortions: this.counters.truncatedPortions,
      recent: this.recent.map((r) => ({ ...r })),
      instances,
      faults: this.faultState(),
      memory: { rssMB: Math.round(mem.rss / MB), heapUsedMB: Math.round(mem.heapUsed / MB) },
    };
  }

  private record(r: RdsRequestRecord): void {
    const key = r.action === 'DescribeDBLogFiles' || r.action === 'DownloadDBLogFilePortion' || r.action === 'download' ? r.action : 'other';
    this.counters.requests[key]++;
    this.counters.statuses[String(r.status)] = (this.counters.statuses[String(r.status)] ?? 0) + 1;
    if (r.outcome !== 'ok') this.counters.errors[r.outcome] = (this.counters.errors[r.outcome] ?? 0) + 1;
    if (r.truncated) this.counters.truncatedPortions++;
    this.recent.push(r);
    if (this.recent.length > this.recentLimit) this.recent.splice(0, this.recent.length - this.recentLimit);
  }

  // --- HTTP entry ------------------------------------------------------------------------------------

  async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const rawUrl = req.url ?? '/';
    const qi = rawUrl.indexOf('?');
    const rawPath = qi < 0 ? rawUrl : rawUrl.slice(0, qi);
    const rawQuery = qi < 0 ? '' : rawUrl.slice(qi + 1);
    if (rawPath.startsWith('/_test/')) return this.handleControl(req, res, rawPath, rawQuery);
    const body = await readBody(req);
    const signed: SignedRequest = { method: req.method ?? 'GET', rawPath, rawQuery, rawHeaders: req.rawHeaders, body };
    const rest = REST_PATH.exec(rawPath);
    if (rest) return this.handleDownload(req, res, signed, pctDecode(rest[2]!), pctDecode(rest[3]!));
    if (rawPath === '/') return this.handleQuery(req, res, signed);
    res.writeHead(404, { 'content-type': 'text/xml', 'x-amzn-RequestId': randomUUID() });
    res.end(errorXml(qerr(404, 'UnknownOperationException', `No such resource: ${rawPath}`), randomUUID()));
  }

  private authenticate(signed: SignedRequest): AuthSuccess | AuthRefusal {
    return verifySigV4(signed, (id) => this.credentials.find((c) => c.accessKeyId === id), this.region, this.maxSkewMs, Date.now());
  }

  private principalArn(c: RdsCredential): string {
    if (c.arn) return c.arn;
    return c.sessionToken !== undefined
      ? `arn:aws:sts::${this.accountId}:assumed-role/auditship-test/session`
      : `arn:aws:iam::${this.accountId}:user/auditship-test`;
  }

  private denial(c: RdsCredential, iamAction: IamAction, instance: string): QueryError | null {
    if (!this.deny.has(iamAction)) return null;
    const resource = `arn:aws:rds:${this.region}:${this.accountId}:db:${normId(instance)}`;
    return qerr(
      403,
      'AccessDenied',
      `User: ${this.principalArn(c)} is not authorized to perform: ${iamAction} on resource: ${resource} because no identity-based policy allows the ${iamAction} action`,
    );
  }

  // --- Query API -------------------------------------------------------------------------------------

  private async handleQuery(req: http.IncomingMessage, res: http.ServerResponse, signed: SignedRequest): Promise<void> {
    const requestId = randomUUID();
    const params = new Map<string, string>();
    for (const [k, v] of parseForm(signed.rawQuery)) if (!k.startsWith('X-Amz-')) params.set(k, v);
    const ctype = firstHeader(signed.rawHeaders, 'content-type') ?? '';
    if (signed.method === 'POST' && signed.body.length > 0 && /application\/x-www-form-urlencoded/i.test(ctype)) {
      for (const [k, v] of parseForm(signed.body.toString('utf8'))) params.set(k, v);
    }
    const action = params.get('Action') ?? '';
    const instance = params.get('DBInstanceIdentifier');
    const file = params.get('LogFileName');
    const recParams: Record<string, string> = {};
    for (const k of ['Marker', 'NumberOfLines', 'MaxRecords', 'FilenameContains', 'FileLastWritten', 'FileSize']) {
      const v = params.get(k);
      if (v !== undefined) recParams[k] = v;
    }
    const rec: RdsRequestRecord = {
      at: Date.now(),
      method: signed.method,
      action: action || '(none)',
      presigned: false,
      sessionToken: 'none',
      outcome: 'ok',
      status: 200,
      ...(instance !== undefined ? { instance } : {}),
      ...(file !== undefined ? { file } : {}),
      ...(Object.keys(recParams).length ? { params: recParams } : {}),
    };
    const answer = (status: number, xml: string) => {
      rec.status = status;
      this.record(rec);
      if (res.destroyed) return;
      res.writeHead(status, { 'content-type': 'text/xml', 'x-amzn-RequestId': requestId, 'content-length': Buffer.byteLength(xml) });
      res.end(xml);
    };
    const fail = (e: QueryError) => {
      rec.outcome = e.code;
      answer(e.status, errorXml(e, requestId));
    };

    const auth = this.authenticate(signed);
    rec.presigned = auth.presigned;
    rec.sessionToken = auth.sessionToken;
    if (auth.ok) rec.accessKeyId = auth.credential.accessKeyId;
    else if (auth.accessKeyId) rec.accessKeyId = auth.accessKeyId;
    if (!auth.ok) return fail(qerr(auth.status, auth.code, auth.message));

    if (!action) return fail(qerr(400, 'MissingAction', 'The request must contain the parameter Action.'));
    if (action !== 'DescribeDBLogFiles' && action !== 'DownloadDBLogFilePortion') {
      return fail(qerr(400, 'InvalidAction', `The action ${action} is not valid for this web service.`));
    }
    if (!instance) return fail(qerr(400, 'MissingParameter', 'The request must contain the parameter DBInstanceIdentifier'));
    const denied = this.denial(auth.credential, `rds:${action}`, instance);
    if (denied) return fail(denied);

    const faults = this.takeFaults(action, file);
    if (faults.length) rec.faults = faults.map((f) => f.kind);
    const delay = faults.filter((f) => f.kind === 'delay').reduce((s, f) => s + (f.delayMs ?? 0), 0);
    if (delay > 0) await sleep(delay);
    if (faults.some((f) => f.kind === 'reset')) {
      rec.status = 0;
      rec.outcome = 'reset';
      this.record(rec);
      req.socket.resetAndDestroy();
      return;
    }
    if (faults.some((f) => f.kind === 'internalError')) {
      return fail(qerr(500, 'InternalFailure', 'The request processing has failed because of an unknown error, exception or failure.', 'Receiver'));
    }
    if (faults.some((f) => f.kind === 'throttle')) return fail(qerr(400, 'Throttling', 'Rate exceeded'));

    const inst = this.instances.get(normId(instance));
    if (!inst) return fail(qerr(404, 'DBInstanceNotFound', `DBInstance ${instance} not found.`));
    try {
      if (action === 'DescribeDBLogFiles') answer(200, this.describe(inst, params, requestId));
      else answer(200, this.portion(inst, params, requestId, rec));
    } catch (e) {
      if (isQueryError(e)) return fail(e);
      throw e;
    }
  }

  private describe(inst: Instance, params: Map<string, string>, requestId: string): string {
    const intParam = (name: string): number | undefined => {
      const v = params.get(name);
      if (v === undefined) return undefined;
      if (!/^-?\d+$/.test(v)) throw qerr(400, 'InvalidParameterValue', `Invalid value ${v} for ${name}`);
      return Number(v);
    };
    const maxRecords = intParam('MaxRecords');
    const [lo, hi] = this.maxRecordsRange;
    if (maxRecords !== undefined && (maxRecords < lo || maxRecords > hi)) {
      throw qerr(400, 'InvalidParameterValue', `Invalid value ${maxRecords} for MaxRecords. Must be between ${lo} and ${hi}`);
    }
    const pageSize = maxRecords ?? this.defaultMaxRecords;
    const contains = params.get('FilenameContains');
    const since = intParam('FileLastWritten');
    const largerThan = intParam('FileSize');
    let offset = 0;
    let seed: string | null = this.shuffleListing ? randomBytes(8).toString('hex') : null;
    const markerParam = params.get('Marker');
    if (markerParam) {
      const m = decodeListMarker(markerParam);
      if (!m) throw qerr(400, 'InvalidParameterValue', `Invalid marker: ${markerParam}`);
      offset = m.offset;
      seed = m.seed;
    }
    let files = [...inst.files.values()].filter(
      (f) =>
        (contains === undefined || f.name.includes(contains)) &&
        (since === undefined || f.lastWritten >= since) &&
        (largerThan === undefined || f.reportedSize > largerThan),
    );
    if (seed === null) {
      files.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    } else {
      // A seeded order keeps one listing consistent across its pages while differing between listings.
      const rank = (f: LogFile) => sha256Hex(`${seed}\0${f.name}`);
      files = files
        .map((f) => ({ f, r: rank(f) }))
        .sort((a, b) => (a.r < b.r ? -1 : 1))
        .map((x) => x.f);
    }
    const page = files.slice(offset, offset + pageSize);
    const more = offset + pageSize < files.length;
    const items = page
      .map(
        (f) =>
          `      <DescribeDBLogFilesDetails>\n        <LastWritten>${f.lastWritten}</LastWritten>\n        <LogFileName>${xmlText(f.name)}</LogFileName>\n        <Size>${f.reportedSize}</Size>\n      </DescribeDBLogFilesDetails>\n`,
      )
      .join('');
    const list = page.length ? `    <DescribeDBLogFiles>\n${items}    </DescribeDBLogFiles>\n` : '    <DescribeDBLogFiles/>\n';
    const marker = more ? `    <Marker>${encodeListMarker(offset + pageSize, seed)}</Marker>\n` : '';
    return resultXml('DescribeDBLogFiles', `${list}${marker}`, requestId);
  }

  /**
   * DownloadDBLogFilePortion as RDS behaves: Marker "0" is the start; no Marker means "the last
   * NumberOfLines lines"; NumberOfLines defaults to and caps at 10,000; at most 1 MB of file data, and a
   * line that crosses the limit is cut there, followed by the truncation notice, while the returned
   * marker points past the whole cut line — the rest of that line is never served.
   */
  private portion(inst: Instance, params: Map<string, string>, requestId: string, rec: RdsRequestRecord): string {
    const name = params.get('LogFileName');
    if (!name) throw qerr(400, 'MissingParameter', 'The request must contain the parameter LogFileName');
    const file = inst.files.get(name);
    if (!file) throw qerr(404, 'DBLogFileNotFoundFault', `DBLog File: ${name}, is not found on the DB instance`);
    const nolParam = params.get('NumberOfLines');
    let lines = MAX_LINES;
    if (nolParam !== undefined) {
      if (!/^-?\d+$/.test(nolParam)) throw qerr(400, 'InvalidParameterValue', `Invalid value ${nolParam} for NumberOfLines`);
      const n = Number(nolParam);
      if (n < 1) throw qerr(400, 'InvalidParameterValue', `Invalid value ${n} for NumberOfLines. Must be greater than 0`);
      lines = Math.min(n, MAX_LINES);
    }
    const data = file.bytes();
    const markerParam = params.get('Marker');
    let start: number;
    if (markerParam === undefined || markerParam === '') {
      start = tailStart(data, lines);
    } else if (markerParam === '0') {
      start = 0;
    } else {
      const m = /^(\d+):(\d+)$/.exec(markerParam);
      if (!m) throw qerr(400, 'InvalidParameterValue', `Invalid marker: ${markerParam}`);
      start = Math.min(Number(m[2]), data.length);
    }

    const pieces: Buffer[] = [];
    let used = 0;
    let pos = start;
    let count = 0;
    let truncated = false;
    while (count < lines && pos < data.length) {
      const nl = data.indexOf(0x0a, pos);
      const end = nl < 0 ? data.length : nl + 1;
      const len = end - pos;
      if (used + len > this.portionMaxBytes) {
        const room = this.portionMaxBytes - used;
        if (room === 0) break; // the limit fell exactly on a line end: nothing is cut
        let cut = pos + room;
        while (cut > pos && (data[cut]! & 0xc0) === 0x80) cut--; // never split a UTF-8 sequence
        pieces.push(data.subarray(pos, cut));
        used += cut - pos;
        pos = end;
        count++;
        truncated = true;
        break;
      }
      pieces.push(data.subarray(pos, end));
      used += len;
      pos = end;
      count++;
    }
    const chunk = Buffer.concat(pieces);
    if (looksBinary(chunk)) {
      throw qerr(400, 'InvalidParameterValue', 'This file contains binary data and should be downloaded instead of viewed.');
    }
    this.counters.bytesServed.portion += chunk.length;
    rec.bytes = chunk.length;
    if (truncated) rec.truncated = true;
    const text = chunk.toString('utf8') + (truncated ? TRUNCATION_NOTICE : '');
    const pending = pos < data.length;
    const marker = `${hourOf(file.name)}:${pos}`;
    return resultXml(
      'DownloadDBLogFilePortion',
      `    <AdditionalDataPending>${pending}</AdditionalDataPending>\n    <Marker>${marker}</Marker>\n    <LogFileData>${xmlText(text)}</LogFileData>\n`,
      requestId,
    );
  }

  // --- REST download ---------------------------------------------------------------------------------

  private async handleDownload(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    signed: SignedRequest,
    instanceId: string,
    fileName: string,
  ): Promise<void> {
    const requestId = randomUUID();
    const rec: RdsRequestRecord = {
      at: Date.now(),
      method: signed.method,
      action: 'download',
      instance: instanceId,
      file: fileName,
      presigned: false,
      sessionToken: 'none',
      outcome: 'ok',
      status: 200,
    };
    const fail = (e: QueryError) => {
      rec.outcome = e.code;
      rec.status = e.status;
      this.record(rec);
      if (res.destroyed) return;
      const xml = errorXml(e, requestId);
      res.writeHead(e.status, { 'content-type': 'text/xml', 'x-amzn-RequestId': requestId, 'content-length': Buffer.byteLength(xml) });
      res.end(xml);
    };
    const auth = this.authenticate(signed);
    rec.presigned = auth.presigned;
    rec.sessionToken = auth.sessionToken;
    if (auth.ok) rec.accessKeyId = auth.credential.accessKeyId;
    else if (auth.accessKeyId) rec.accessKeyId = auth.accessKeyId;
    if (!auth.ok) return fail(qerr(auth.status, auth.code, auth.message));
    if (signed.method !== 'GET') return fail(qerr(405, 'MethodNotAllowed', `The method ${signed.method} is not allowed for this resource.`));
    const denied = this.denial(auth.credential, 'rds:DownloadCompleteDBLogFile', instanceId);
    if (denied) return fail(denied);

    const faults = this.takeFaults('download', fileName);
    if (faults.length) rec.faults = faults.map((f) => f.kind);
    const delay = faults.filter((f) => f.kind === 'delay').reduce((s, f) => s + (f.delayMs ?? 0), 0);
    if (delay > 0) await sleep(delay);
    if (faults.some((f) => f.kind === 'reset')) {
      rec.status = 0;
      rec.outcome = 'reset';
      this.record(rec);
      req.socket.resetAndDestroy();
      return;
    }
    if (faults.some((f) => f.kind === 'internalError')) {
      return fail(qerr(500, 'InternalFailure', 'The request processing has failed because of an unknown error, exception or failure.', 'Receiver'));
    }
    if (faults.some((f) => f.kind === 'throttle')) return fail(qerr(400, 'Throttling', 'Rate exceeded'));

    const inst = this.instances.get(normId(instanceId));
    if (!inst) return fail(qerr(404, 'DBInstanceNotFound', `DBInstance ${instanceId} not found.`));
    const file = inst.files.get(fileName);
    if (!file) return fail(qerr(404, 'DBLogFileNotFoundFault', `DBLog File: ${fileName}, is not found on the DB instance`));

    const bodyReset = faults.find((f) => f.kind === 'bodyReset');
    const rate = faults.find((f) => f.kind === 'rateLimit');
    const appendMid = faults.find((f) => f.kind === 'appendMidDownload');
    const halfway = Math.floor(file.size / 2);
    let appended = false;

    // Streamed like a file being read: whatever is in the file when the reader gets there is sent, so
    // bytes appended during the download arrive too. The file object is held, so a delete (retention)
    // during the download does not cut it.
    res.writeHead(200, { 'content-type': 'text/plain; charset=UTF-8', 'x-amzn-RequestId': requestId });
    res.flushHeaders();
    let sent = 0;
    const chunkSize = rate ? Math.max(1, Math.min(64 * 1024, Math.floor(rate.bytesPerSecond! / 20))) : 64 * 1024;
    const startedAt = Date.now();
    let aborted = false;
    res.on('close', () => {
      if (!res.writableFinished) aborted = true;
    });
    while (!aborted) {
      if (appendMid && !appended && sent >= halfway) {
        appended = true;
        file.append(appendMid.appendData !== undefined ? Buffer.from(appendMid.appendData, 'utf8') : fillerLines(appendMid.appendBytes!));
      }
      const data = file.bytes();
      if (sent >= data.length) break;
      let n = Math.min(chunkSize, data.length - sent);
      if (appendMid && !appended && sent < halfway) n = Math.min(n, Math.max(1, halfway - sent));
      if (bodyReset && sent + n >= bodyReset.afterBytes!) n = bodyReset.afterBytes! - sent;
      if (n > 0) {
        const ok = res.write(Buffer.from(data.subarray(sent, sent + n)));
        sent += n;
        this.counters.bytesServed.download += n;
        if (!ok)
          await new Promise<void>((resolve) => {
            res.once('drain', resolve);
            res.once('close', resolve);
          });
      }
      if (bodyReset && sent >= bodyReset.afterBytes!) {
        rec.bytes = sent;
        rec.outcome = 'bodyReset';
        this.record(rec);
        // Let the bytes written so far reach the client before the RST, which would otherwise discard
        // data still unread in its receive buffer; then cut the connection under the body.
        await new Promise<void>((resolve) => (res.socket ? res.socket.write('', () => resolve()) : resolve()));
        await sleep(25);
        req.socket.resetAndDestroy();
        return;
      }
      if (rate) {
        const due = startedAt + (sent / rate.bytesPerSecond!) * 1000;
        const wait = due - Date.now();
        if (wait > 0) await sleep(wait);
      }
    }
    rec.bytes = sent;
    if (aborted) rec.outcome = 'clientAborted';
    this.record(rec);
    if (!aborted) res.end();
  }

  // --- control API -----------------------------------------------------------------------------------

  private async handleControl(req: http.IncomingMessage, res: http.ServerResponse, rawPath: string, rawQuery: string): Promise<void> {
    const send = (status: number, body: unknown) => {
      const text = JSON.stringify(body ?? {});
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    try {
      const body = await readBody(req);
      const query = new URLSearchParams(rawQuery);
      const num = (k: string): number | undefined => (query.get(k) === null ? undefined : Number(query.get(k)));
      // Raw-body file routes, for large or binary content: PUT /_test/files/<instance>/<name>, POST …?append
      const fm = /^\/_test\/files\/([^/]+)\/(.+)$/.exec(rawPath);
      if (fm && (req.method === 'PUT' || req.method === 'POST')) {
        const inst = pctDecode(fm[1]!);
        const name = pctDecode(fm[2]!);
        if (req.method === 'POST' && query.has('append')) {
          return send(200, this.appendFile(inst, name, body, { ...(num('lastWritten') !== undefined ? { lastWritten: num('lastWritten')! } : {}) }));
        }
        return send(
          200,
          this.putFile(inst, name, body, {
            ...(num('lastWritten') !== undefined ? { lastWritten: num('lastWritten')! } : {}),
            ...(num('reportedSizeDelta') !== undefined ? { reportedSizeDelta: num('reportedSizeDelta')! } : {}),
          }),
        );
      }
      if (fm && req.method === 'GET') {
        const data = this.readFile(pctDecode(fm[1]!), pctDecode(fm[2]!));
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': data.length });
        res.end(data);
        return;
      }
      const op = rawPath.slice('/_test/'.length);
      if (req.method === 'GET' && (op === 'stats' || op === 'faults')) return send(200, await this.control({ op }));
      if (req.method !== 'POST') throw new ControlError(405, `use POST /_test/<op> (or GET /_test/stats, /_test/faults)`);
      const json = body.length ? (JSON.parse(body.toString('utf8')) as Record<string, unknown>) : {};
      return send(200, await this.control({ ...json, op } as ControlCommand));
    } catch (e) {
      const status = e instanceof ControlError ? e.status : e instanceof SyntaxError ? 400 : 500;
      send(status, { error: (e as Error).message });
    }
  }

  async control(cmd: ControlCommand): Promise<unknown> {
    const content = (c: { content?: string; base64?: string }): Buffer =>
      c.base64 !== undefined ? Buffer.from(c.base64, 'base64') : Buffer.from(c.content ?? '', 'utf8');
    switch (cmd.op) {
      case 'stats':
        return this.stats();
      case 'reset':
        this.reset();
        return {};
      case 'faults':
        if (cmd.clear) this.clearFaults();
        if (cmd.add) this.addFaults(cmd.add);
        return this.faultState();
      case 'configure':
        this.configure(cmd);
        return {};
      case 'createInstance':
        this.createInstance(cmd.id);
        return {};
      case 'putFile':
        return this.putFile(cmd.instance, cmd.name, content(cmd), cmd);
      case 'appendFile':
        return this.appendFile(cmd.instance, cmd.name, content(cmd), cmd.lastWritten !== undefined ? { lastWritten: cmd.lastWritten } : {});
      case 'deleteFile':
        this.deleteFile(cmd.instance, cmd.name);
        return {};
      case 'listFiles':
        return this.listFiles(cmd.instance);
      default:
        throw new ControlError(404, `unknown control op ${(cmd as { op: string }).op}`);
    }
  }
}

function isQueryError(e: unknown): e is QueryError {
  return typeof e === 'object' && e !== null && 'code' in e && 'status' in e && 'type' in e && !(e instanceof Error);
}

/** Byte offset of the first of the last `lines` lines (an unterminated last line counts as a line). */
function tailStart(data: Buffer, lines: number): number {
  let end = data.length;
  if (end > 0 && data[end - 1] === 0x0a) end--; // the newline that ends the last line
  let pos = end;
  for (let i = 0; i < lines; i++) {
    if (pos <= 0) return 0;
    const nl = data.lastIndexOf(0x0a, pos - 1);
    if (nl < 0) return 0;
    pos = nl;
    if (i === lines - 1) return nl + 1;
  }
  return 0;
}

function fillerLines(bytes: number): Buffer {
  const out = Buffer.alloc(bytes, 0x78); // 'x'
  for (let i = 99; i < bytes; i += 100) out[i] = 0x0a;
  if (bytes > 0) out[bytes - 1] = 0x0a;
  return out;
}

function encodeListMarker(offset: number, seed: string | null): string {
  return Buffer.from(JSON.stringify({ o: offset, s: seed })).toString('base64url');
}

function decodeListMarker(m: string): { offset: number; seed: string | null } | null {
  try {
    const v = JSON.parse(Buffer.from(m, 'base64url').toString('utf8')) as { o?: unknown; s?: unknown };
    if (typeof v.o !== 'number' || !Number.isInteger(v.o) || v.o < 0) return null;
    if (v.s !== null && typeof v.s !== 'string') return null;
    return { offset: v.o, seed: v.s };
  } catch {
    return null;
  }
}

function resultXml(action: string, inner: string, requestId: string): string {
  return `<${action}Response xmlns="${XMLNS}">\n  <${action}Result>\n${inner}  </${action}Result>\n  <ResponseMetadata>\n    <RequestId>${requestId}</RequestId>\n  </ResponseMetadata>\n</${action}Response>\n`;
}

function errorXml(e: QueryError, requestId: string): string {
  return `<ErrorResponse xmlns="${XMLNS}">\n  <Error>\n    <Type>${e.type}</Type>\n    <Code>${e.code}</Code>\n    <Message>${xmlText(e.message)}</Message>\n  </Error>\n  <RequestId>${requestId}</RequestId>\n</ErrorResponse>\n`;
}

function readBody(req: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------------------
// Start
// ---------------------------------------------------------------------------------------------------

export async function startRdsServer(options: RdsServerOptions = {}): Promise<RdsServerHandle> {
  const emu = new RdsEmulator(options);
  const server = http.createServer({ requestTimeout: 0, headersTimeout: 60_000 });
  server.on('request', (req, res) => {
    emu.handle(req, res).catch((e: unknown) => {
      process.stderr.write(`rds-server: ${(e as Error).stack ?? String(e)}\n`);
      if (!res.headersSent) {
        res.statusCode = 500;
        res.end();
      } else res.destroy();
    });
  });
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
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  const toBuf = (c: string | Buffer) => (typeof c === 'string' ? Buffer.from(c, 'utf8') : c);
  return {
    url: `http://${host}:${addr.port}`,
    port: addr.port,
    region: emu.region,
    stats: () => emu.stats(),
    faults: (f) => emu.addFaults(f),
    clearFaults: () => emu.clearFaults(),
    configure: (c) => emu.configure(c),
    reset: () => emu.reset(),
    createInstance: (id) => emu.createInstance(id),
    putFile: (i, n, c, o) => emu.putFile(i, n, toBuf(c), o),
    appendFile: (i, n, c, o) => emu.appendFile(i, n, toBuf(c), o),
    deleteFile: (i, n) => emu.deleteFile(i, n),
    listFiles: (i) => emu.listFiles(i),
    readFile: (i, n) => emu.readFile(i, n),
    control: (cmd) => emu.control(cmd),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

// ---------------------------------------------------------------------------------------------------
// CLI
// ---------------------------------------------------------------------------------------------------

function parseArgs(argv: string[]): RdsServerOptions {
  const o: RdsServerOptions = {};
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
      case '--region':
        o.region = next();
        break;
      case '--options':
        Object.assign(o, JSON.parse(next()) as RdsServerOptions);
        break;
      default:
        throw new Error(`unknown argument ${a}`);
    }
  }
  return o;
}

const isMain = process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1];
if (isMain) {
  let opts: RdsServerOptions;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`rds-server: ${(e as Error).message}\n`);
    process.exit(2);
  }
  const handle = await startRdsServer(opts);
  process.stdout.write(`${JSON.stringify({ url: handle.url })}\n`);
  const stop = () => {
    void handle.close().then(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
