/**
 * The RDS test server against the documented (and the reported) behaviour of Amazon RDS, driven by the
 * real @aws-sdk/client-rds client and signed by the real @smithy/signature-v4 signer. It is test
 * infrastructure for the rds_logs source: when it is wrong, those tests prove nothing.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';
import {
  RDSClient,
  DescribeDBLogFilesCommand,
  DownloadDBLogFilePortionCommand,
  paginateDescribeDBLogFiles,
  type DescribeDBLogFilesCommandInput,
  type DownloadDBLogFilePortionCommandOutput,
} from '@aws-sdk/client-rds';
import { SignatureV4 } from '@smithy/signature-v4';
import { startRdsServer, TEST_CREDENTIALS, TRUNCATION_NOTICE, type RdsCredential, type RdsServerHandle, type RdsServerOptions } from './server.js';
import { spawnRdsServer } from './client.js';

// The SDK's "releases after January 2027 need Node 22" notice is real but only noise here.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

const REGION = 'us-east-1';
const MB = 1_048_576;
const PERM: RdsCredential = TEST_CREDENTIALS;
const TEMP: RdsCredential = {
  accessKeyId: 'ASIAQEXAMPLETEMP0001',
  secretAccessKey: 'tEmP/secret+Key/EXAMPLE0123456789abcdef',
  sessionToken: 'IQoJb3JpZ2luX2VjEXAMPLE//////////wEaCXVzLWVhc3QtMSJGMEQCIH+test/token==',
};
const CREDS = [PERM, TEMP];
const LOG = 'error/postgresql.log.2024-05-01-10';

/** A SHA-256 (and HMAC-SHA-256) hash in the shape @smithy/signature-v4 wants, on node:crypto. */
class Sha256 {
  private readonly h: Hash | Hmac;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.h = secret === undefined ? createHash('sha256') : createHmac('sha256', toBuffer(secret));
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.h.update(toBuffer(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.h.digest());
  }
}

function toBuffer(d: string | ArrayBuffer | ArrayBufferView): Buffer {
  if (typeof d === 'string') return Buffer.from(d, 'utf8');
  if (ArrayBuffer.isView(d)) return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
  return Buffer.from(d);
}

const signerFor = (credentials: RdsCredential, region = REGION) => new SignatureV4({ service: 'rds', region, credentials, sha256: Sha256 });

function sdk(url: string, credentials: RdsCredential, extra: Partial<ConstructorParameters<typeof RDSClient>[0]> = {}): RDSClient {
  return new RDSClient({ endpoint: url, region: REGION, credentials, maxAttempts: 1, ...extra });
}

async function withServer(opts: RdsServerOptions, fn: (rds: RdsServerHandle) => Promise<void>): Promise<void> {
  const rds = await startRdsServer({ credentials: CREDS, ...opts });
  try {
    await fn(rds);
  } finally {
    await rds.close();
  }
}

/** `count` log lines of exactly `width` bytes (newline included), numbered so every line differs. */
function lines(count: number, width = 120, from = 0): string {
  const out: string[] = [];
  for (let i = from; i < from + count; i++) {
    const head = `2024-05-01 10:00:00.000 UTC:10.0.0.1(5432):app@db:[4242]:LOG:  AUDIT: SESSION,${i},1,READ,SELECT,,,SELECT ${i}`;
    out.push(`${head.padEnd(width - 1, ' ').slice(0, width - 1)}\n`);
  }
  return out.join('');
}

async function rejects(p: Promise<unknown>): Promise<any> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  assert.fail('expected the call to fail');
}

/** RFC 3986 encoding, for building the wire query of a presigned request. */
const enc = (s: string) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  error?: NodeJS.ErrnoException;
}

/** Sends a request built for @smithy/signature-v4; resolves even when the connection breaks mid-body. */
function send(
  url: string,
  req: { method: string; path: string; query?: Record<string, string | string[] | null>; headers: Record<string, string>; body?: string },
): Promise<RawResponse> {
  const u = new URL(url);
  const q = Object.entries(req.query ?? {})
    .map(([k, v]) => `${enc(k)}=${enc(String(v))}`)
    .join('&');
  return new Promise((resolve, reject) => {
    let response: http.IncomingMessage | undefined;
    const chunks: Buffer[] = [];
    let settled = false;
    const done = (error?: NodeJS.ErrnoException) => {
      if (settled) return;
      settled = true;
      resolve({ status: response!.statusCode ?? 0, headers: response!.headers, body: Buffer.concat(chunks), ...(error ? { error } : {}) });
    };
    const r = http.request(
      { host: u.hostname, port: u.port, method: req.method, path: q ? `${req.path}?${q}` : req.path, headers: req.headers, agent: false },
      (res) => {
        response = res;
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => done());
        res.on('error', (e) => done(e));
        res.on('aborted', () => done(Object.assign(new Error('aborted'), { code: 'ECONNRESET' })));
      },
    );
    // A break before the response is a failed request; after it, a broken body.
    r.on('error', (e) => (response ? done(e) : reject(e)));
    r.end(req.body);
  });
}

interface RestOptions {
  presign?: boolean;
  expiresIn?: number;
  signingDate?: Date;
  version?: 'v13' | 'v19';
  encodeName?: boolean;
  region?: string;
}

/** GET /v13/downloadCompleteLogFile/<instance>/<file>, signed (or presigned) by the AWS SDK signer. */
async function restDownload(url: string, instance: string, file: string, creds: RdsCredential, o: RestOptions = {}): Promise<RawResponse> {
  const u = new URL(url);
  const request = {
    method: 'GET',
    protocol: 'http:',
    hostname: u.hostname,
    port: Number(u.port),
    path: `/${o.version ?? 'v13'}/downloadCompleteLogFile/${instance}/${o.encodeName ? encodeURIComponent(file) : file}`,
    query: {} as Record<string, string>,
    headers: { host: u.host } as Record<string, string>,
  };
  const signer = signerFor(creds, o.region);
  const signed = o.presign
    ? await signer.presign(request, { expiresIn: o.expiresIn ?? 300, ...(o.signingDate ? { signingDate: o.signingDate } : {}) })
    : await signer.sign(request, o.signingDate ? { signingDate: o.signingDate } : {});
  return send(url, { method: 'GET', path: signed.path, query: signed.query, headers: signed.headers });
}

/** A Query API request signed by the SDK signer, for checking the raw XML (and for tampering). */
async function queryRaw(
  url: string,
  creds: RdsCredential,
  params: Record<string, string>,
  o: { get?: boolean; tamper?: (body: string) => string } = {},
): Promise<RawResponse> {
  const u = new URL(url);
  const form = new URLSearchParams({ Version: '2014-10-31', ...params }).toString();
  const base = { protocol: 'http:', hostname: u.hostname, port: Number(u.port), path: '/' };
  if (o.get) {
    const signed = await signerFor(creds).presign(
      { ...base, method: 'GET', query: { Version: '2014-10-31', ...params }, headers: { host: u.host } },
      { expiresIn: 300 },
    );
    return send(url, { method: 'GET', path: '/', query: signed.query, headers: signed.headers });
  }
  const signed = await signerFor(creds).sign({
    ...base,
    method: 'POST',
    query: {},
    headers: { host: u.host, 'content-type': 'application/x-www-form-urlencoded', 'content-length': String(Buffer.byteLength(form)) },
    body: form,
  });
  const body = o.tamper ? o.tamper(form) : form;
  return send(url, { method: 'POST', path: '/', headers: signed.headers, body });
}

const xmlCode = (xml: string) => /<Code>([^<]*)<\/Code>/.exec(xml)?.[1];
const xmlMessage = (xml: string) => /<Message>([^<]*)<\/Message>/.exec(xml)?.[1];

/** Reads a file with DownloadDBLogFilePortion from Marker "0" until AdditionalDataPending is false. */
async function readPortions(c: RDSClient, instance: string, file: string, numberOfLines?: number) {
  let marker = '0';
  const pages: DownloadDBLogFilePortionCommandOutput[] = [];
  for (;;) {
    const r = await c.send(
      new DownloadDBLogFilePortionCommand({
        DBInstanceIdentifier: instance,
        LogFileName: file,
        Marker: marker,
        ...(numberOfLines ? { NumberOfLines: numberOfLines } : {}),
      }),
    );
    pages.push(r);
    marker = r.Marker!;
    if (!r.AdditionalDataPending) break;
  }
  return { data: pages.map((p) => p.LogFileData ?? '').join(''), pages };
}

// ---------------------------------------------------------------------------------------------------

describe('DescribeDBLogFiles', () => {
  test('lists LogFileName, LastWritten (ms epoch) and Size in bytes, in the 2014-10-31 XML shape', async () => {
    await withServer({ instances: ['db1'] }, async (rds) => {
      rds.putFile('db1', LOG, 'x'.repeat(100) + '\n', { lastWritten: 1714557600123 });
      rds.putFile('db1', 'error/postgres.log', 'boot\n', { lastWritten: 1714550000000 });
      const c = sdk(rds.url, PERM);
      const r = await c.send(new DescribeDBLogFilesCommand({ DBInstanceIdentifier: 'db1' }));
      assert.deepEqual(r.DescribeDBLogFiles, [
        { LogFileName: 'error/postgres.log', LastWritten: 1714550000000, Size: 5 },
        { LogFileName: LOG, LastWritten: 1714557600123, Size: 101 },
      ]);
      assert.equal(r.Marker, undefined);
      assert.match(r.$metadata.requestId!, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);

      const raw = await queryRaw(rds.url, PERM, { Action: 'DescribeDBLogFiles', DBInstanceIdentifier: 'db1' });
      const xml = raw.body.toString('utf8');
      assert.equal(raw.status, 200);
      assert.equal(raw.headers['content-type'], 'text/xml');
      assert.ok(raw.headers.date, 'a Date header (the SDK corrects its clock from it)');
      assert.match(
        xml,
        /^<DescribeDBLogFilesResponse xmlns="http:\/\/rds\.amazonaws\.com\/doc\/2014-10-31\/">\n  <DescribeDBLogFilesResult>\n    <DescribeDBLogFiles>\n      <DescribeDBLogFilesDetails>\n        <LastWritten>1714550000000<\/LastWritten>\n        <LogFileName>error\/postgres\.log<\/LogFileName>\n        <Size>5<\/Size>\n      <\/DescribeDBLogFilesDetails>/,
      );
      const rid = /<ResponseMetadata>\n    <RequestId>([^<]+)<\/RequestId>\n  <\/ResponseMetadata>\n<\/DescribeDBLogFilesResponse>\n$/.exec(xml)?.[1];
      assert.equal(rid, raw.headers['x-amzn-requestid']);
      c.destroy();
    });
  });

  test('paginates with Marker; shuffleListing gives each listing its own order, consistent across its pages', async () => {
    await withServer({ instances: ['db1'], shuffleListing: true }, async (rds) => {
      const names = Array.from(
        { length: 45 },
        (_, i) => `error/postgresql.log.2024-05-${String(1 + Math.floor(i / 24)).padStart(2, '0')}-${String(i % 24).padStart(2, '0')}`,
      );
      for (const n of names) rds.putFile('db1', n, 'line\n');
      const c = sdk(rds.url, PERM);
      const listing = async () => {
        const seen: string[] = [];
        let pages = 0;
        for await (const page of paginateDescribeDBLogFiles({ client: c, pageSize: 20 }, { DBInstanceIdentifier: 'db1' })) {
          pages++;
          assert.ok((page.DescribeDBLogFiles ?? []).length <= 20);
          seen.push(...(page.DescribeDBLogFiles ?? []).map((f) => f.LogFileName!));
        }
        return { seen, pages };
      };
      const a = await listing();
      const b = await listing();
      assert.equal(a.pages, 3);
      assert.deepEqual([...a.seen].sort(), [...names].sort(), 'every file exactly once');
      assert.deepEqual([...b.seen].sort(), [...names].sort());
      assert.notDeepEqual(a.seen, [...names].sort(), 'not in name order');
      assert.notDeepEqual(a.seen, b.seen, 'two listings differ in order');
      c.destroy();
    });
  });

  test('MaxRecords: 1000 per page when absent; outside 20..1000 is InvalidParameterValue', async () => {
    await withServer({ instances: ['db1'] }, async (rds) => {
      for (let i = 0; i < 1005; i++) rds.putFile('db1', `error/f${String(i).padStart(4, '0')}`, '');
      const c = sdk(rds.url, PERM);
      const first = await c.send(new DescribeDBLogFilesCommand({ DBInstanceIdentifier: 'db1' }));
      assert.equal(first.DescribeDBLogFiles!.length, 1000);
      assert.ok(first.Marker);
      const rest = await c.send(new DescribeDBLogFilesCommand({ DBInstanceIdentifier: 'db1', Marker: first.Marker }));
      assert.equal(rest.DescribeDBLogFiles!.length, 5);
      assert.equal(rest.Marker, undefined);
      for (const bad of [19, 1001]) {
        const e = await rejects(c.send(new DescribeDBLogFilesCommand({ DBInstanceIdentifier: 'db1', MaxRecords: bad })));
        assert.equal(e.name, 'InvalidParameterValue');
        assert.equal(e.$metadata.httpStatusCode, 400);
        assert.equal(e.message, `Invalid value ${bad} for MaxRecords. Must be between 20 and 1000`);
      }
      const e = await rejects(c.send(new DescribeDBLogFilesCommand({ DBInstanceIdentifier: 'db1', Marker: 'not-a-marker' })));
      assert.equal(e.name, 'InvalidParameterValue');
      c.destroy();
    });
  });

  test('FilenameContains, FileLastWritten (written since) and FileSize (larger than, on the reported size)', async () => {
    await withServer({ instances: ['db1'] }, async (rds) => {
      rds.putFile('db1', 'error/postgresql.log.2024-05-01-09', 'a'.repeat(10), { lastWritten: 1000 });
      rds.putFile('db1', 'error/postgresql.log.2024-05-01-10', 'a'.repeat(20), { lastWritten: 2000 });
      rds.putFile('db1', 'error/postgresql.log.2024-05-01-10.csv', 'a'.repeat(30), { lastWritten: 3000, reportedSizeDelta: 500 });
      const c = sdk(rds.url, PERM);
      const names = async (input: Omit<DescribeDBLogFilesCommandInput, 'DBInstanceIdentifier'>) =>
        ((await c.send(new DescribeDBLogFilesCommand({ DBInstanceIdentifier: 'db1', ...input }))).DescribeDBLogFiles ?? []).map((f) => f.LogFileName);
      assert.deepEqual(await names({ FilenameContains: '.csv' }), ['error/postgresql.log.2024-05-01-10.csv']);
      assert.deepEqual(await names({ FileLastWritten: 2000 }), ['error/postgresql.log.2024-05-01-10', 'error/postgresql.log.2024-05-01-10.csv']);
      assert.deepEqual(await names({ FileSize: 20 }), ['error/postgresql.log.2024-05-01-10.csv']);
      assert.deepEqual(await names({ FileSize: 10, FilenameContains: '-10' }), [
        'error/postgresql.log.2024-05-01-10',
        'error/postgresql.log.2024-05-01-10.csv',
      ]);
      const skewed = (await c.send(new DescribeDBLogFilesCommand({ DBInstanceIdentifier: 'db1', FilenameContains: '.csv' }))).DescribeDBLogFiles![0]!;
      assert.equal(skewed.Size, 530, 'the reported size, not the real 30 bytes');
      c.destroy();
    });
  });

  test('an unknown instance is DBInstanceNotFound (404); identifiers are case-insensitive', async () => {
    await withServer({ instances: ['db1'] }, async (rds) => {
      const c = sdk(rds.url, PERM);
      const e = await rejects(c.send(new DescribeDBLogFilesCommand({ DBInstanceIdentifier: 'nope' })));
      assert.equal(e.name, 'DBInstanceNotFoundFault');
      assert.equal(e.Code, 'DBInstanceNotFound');
      assert.equal(e.message, 'DBInstance nope not found.');
      assert.equal(e.$metadata.httpStatusCode, 404);
      assert.equal(e.$fault, 'client');
      const r = await c.send(new DescribeDBLogFilesCommand({ DBInstanceIdentifier: 'DB1' }));
      assert.deepEqual(r.DescribeDBLogFiles ?? [], []);
      c.destroy();
    });
  });

  test('the Query API also works as a GET with a presigned query string', async () => {
    await withServer({ instances: ['db1'] }, async (rds) => {
      rds.putFile('db1', LOG, 'hello\n');
      const r = await queryRaw(rds.url, TEMP, { Action: 'DescribeDBLogFiles', DBInstanceIdentifier: 'db1' }, { get: true });
      assert.equal(r.status, 200, r.body.toString());
      assert.match(r.body.toString(), /<LogFileName>error\/postgresql\.log\.2024-05-01-10<\/LogFileName>/);
      assert.equal(rds.stats().recent.at(-1)!.presigned, true);
    });
  });
});

// ---------------------------------------------------------------------------------------------------

describe('DownloadDBLogFilePortion', () => {
  test('Marker "0" and the returned markers read a multi-MB file line-exactly', async () => {
    await withServer({ instances: ['db1'] }, async (rds) => {
      const content = lines(36_000, 120); // 4.3 MB
      rds.putFile('db1', LOG, content);
      const c = sdk(rds.url, PERM);
      const { data, pages } = await readPortions(c, 'db1', LOG, 4000);
      assert.equal(data.length, content.length);
      assert.ok(data === content, 'byte-for-byte the file');
      assert.equal(pages.length, 9);
      let offset = 0;
      for (const p of pages) {
        offset += Buffer.byteLength(p.LogFileData!);
        assert.equal(p.Marker, `10:${offset}`, "markers look like RDS's <n>:<byte offset>");
      }
      assert.equal(pages.at(-1)!.AdditionalDataPending, false);
      c.destroy();
    });
  });

  test('over 1 MB the line at the limit is cut, the truncation notice injected, and the rest of that line skipped', async () => {
    await withServer({ instances: ['db1'] }, async (rds) => {
      const content = lines(15_000, 200); // 3 MB; 10,000 lines would be 2 MB
      rds.putFile('db1', LOG, content);
      const buf = Buffer.from(content);
      const c = sdk(rds.url, PERM);
      const first = await c.send(new DownloadDBLogFilePortionCommand({ DBInstanceIdentifier: 'db1', LogFileName: LOG, Marker: '0' }));
      const data = first.LogFileData!;
      assert.ok(data.endsWith(TRUNCATION_NOTICE));
      assert.equal(TRUNCATION_NOTICE, '\n [Your log message was truncated]\n');
      const kept = data.slice(0, -TRUNCATION_NOTICE.length);
      assert.equal(Buffer.byteLength(kept), MB, 'exactly 1 MB of file data');
      assert.ok(buf.subarray(0, MB).toString() === kept);
      const cutLineEnd = Math.ceil(MB / 200) * 200; // the cut line's end
      assert.equal(first.Marker, `10:${cutLineEnd}`, 'the marker points past the whole cut line');
      assert.equal(first.AdditionalDataPending, true);
      assert.equal(rds.stats().truncatedPortions, 1);

      // A client that trusts the data loses the cut line's tail: the next portion starts at the next line.
      const next = await c.send(new DownloadDBLogFilePortionCommand({ DBInstanceIdentifier: 'db1', LogFileName: LOG, Marker: first.Marker }));
      assert.ok(next.LogFileData!.startsWith(buf.subarray(cutLineEnd, cutLineEnd + 200).toString()));

      // Fewer lines per call (rds-pgbadger PR #10) avoids the cut: the same start, no notice, whole lines.
      const fewer = await c.send(new DownloadDBLogFilePortionCommand({ DBInstanceIdentifier: 'db1', LogFileName: LOG, Marker: '0', NumberOfLines: 5000 }));
      assert.ok(!fewer.LogFileData!.includes('[Your log message was truncated]'));
      assert.equal(fewer.LogFileData, buf.subarray(0, 5000 * 200).toString());
      const whole = await readPortions(c, 'db1', LOG, 5000);
      assert.ok(whole.data === content);
      c.destroy();
    });
  });

  test('a line longer than 1 MB is truncated even with NumberOfLines=1, and the marker skips it', async () => {
    await withServer({ instances: ['db1'] }, async (rds) => {
      const long = `2024-05-01 10:00:00 UTC::@:[1]:LOG:  AUDIT: SESSION,1,1,WRITE,INSERT,,,INSERT ${'é'.repeat(700_000)}\n`;
      const content = `first\n${long}after\n`;
      rds.putFile('db1', LOG, content);
      const c = sdk(rds.url, PERM);
      const a = await c.send(new DownloadDBLogFilePortionCommand({ DBInstanceIdentifier: 'db1', LogFileName: LOG, Marker: '0', NumberOfLines: 1 }));
      assert.equal(a.LogFileData, 'first\n');
      const b = await c.send(new DownloadDBLogFilePortionCommand({ DBInstanceIdentifier: 'db1', LogFileName: LOG, Marker: a.Marker, NumberOfLines: 1 }));
      assert.ok(b.LogFileData!.endsWith(TRUNCATION_NOTICE));
      const kept = b.LogFileData!.slice(0, -TRUNCATION_NOTICE.length);
      assert.ok(Buffer.byteLength(kept) <= MB && Buffer.byteLength(kept) >= MB - 1, 'cut at 1 MB, on a character boundary');
      assert.ok(long.startsWith(kept));
      assert.equal(b.Marker, `10:${6 + Buffer.byteLength(long)}`);
      const c3 = await c.send(new DownloadDBLogFilePortionCommand({ DBInstanceIdentifier: 'db1', LogFileName: LOG, Marker: b.Marker, NumberOfLines: 1 }));
      assert.equal(c3.LogFileData, 'after\n');
      assert.equal(c3.AdditionalDataPending, false);
      c.destroy();
    });
  });

  test('without a Marker it returns the last 10,000 lines (or the last NumberOfLines), then tails from the returned marker', async () => {
    await withServer({ instances: ['db1'] }, async (rds) => {
      const content = lines(12_345, 80);
      rds.putFile('db1', LOG, content);
      const c = sdk(rds.url, PERM);
      const tail = await c.send(new DownloadDBLogFilePortionCommand({ DBInstanceIdentifier: 'db1', LogFileName: LOG }));
      assert.equal(tail.LogFileData, lines(10_000, 80, 2345));
      assert.equal(tail.AdditionalDataPending, false);
      assert.equal(tail.Marker, `10:${content.length}`);
      const five = await c.send(new DownloadDBLogFilePortionCommand({ DBInstanceIdentifier: 'db1', LogFileName: LOG, NumberOfLines: 5 }));
      assert.equal(five.LogFileData, lines(5, 80, 12_340));
      const capped = await c.send(new DownloadDBLogFilePortionCommand({ DBInstanceIdentifier: 'db1', LogFileName: LOG, Marker: '0', NumberOfLines: 20_000 }));
      assert.equal(capped.LogFileData, lines(10_000, 80), 'NumberOfLines caps at 10,000');

      // The file grows: the marker from the tail read returns just the new data, a half-written line included.
      rds.appendFile('db1', LOG, 'new line 1\nnew line 2 (half');
      const more = await c.send(new DownloadDBLogFilePortionCommand({ DBInstanceIdentifier: 'db1', LogFileName: LOG, Marker: tail.Marker }));
      assert.equal(more.LogFileData, 'new line 1\nnew line 2 (half');
      rds.appendFile('db1', LOG, ' written)\n');
      const rest = await c.send(new DownloadDBLogFilePortionCommand({ DBInstanceIdentifier: 'db1', LogFileName: LOG, Marker: more.Marker }));
      assert.equal(rest.LogFileData, ' written)\n');
      const idle = await c.send(new DownloadDBLogFilePortionCommand({ DBInstanceIdentifier: 'db1', LogFileName: LOG, Marker: rest.Marker }));
      assert.equal(idle.LogFileData ?? '', '');
      assert.equal(idle.Marker, rest.Marker);
      assert.equal(idle.AdditionalDataPending, false);
      c.destroy();
    });
  });

  test('errors: unknown file, deleted file, bad NumberOfLines, binary data; XML-special text survives', async () => {
    await withServer({ instances: ['db1'] }, async (rds) => {
      const c = sdk(rds.url, PERM);
      let e = await rejects(c.send(new DownloadDBLogFilePortionCommand({ DBInstanceIdentifier: 'db1', LogFileName: 'error/nope', Marker: '0' })));
      assert.equal(e.name, 'DBLogFileNotFoundFault');
      assert.equal(e.message, 'DBLog File: error/nope, is not found on the DB instance');
      assert.equal(e.$metadata.httpStatusCode, 404);
      e = await rejects(c.send(new DownloadDBLogFilePortionCommand({ DBInstanceIdentifier: 'gone', LogFileName: LOG })));
      assert.equal(e.name, 'DBInstanceNotFoundFault');

      rds.putFile('db1', LOG, 'x\n');
      rds.deleteFile('db1', LOG); // retention removed it
      e = await rejects(c.send(new DownloadDBLogFilePortionCommand({ DBInstanceIdentifier: 'db1', LogFileName: LOG, Marker: '0' })));
      assert.equal(e.name, 'DBLogFileNotFoundFault');

      rds.putFile('db1', LOG, 'x\n');
      e = await rejects(c.send(new DownloadDBLogFilePortionCommand({ DBInstanceIdentifier: 'db1', LogFileName: LOG, Marker: '0', NumberOfLines: 0 })));
      assert.equal(e.name, 'InvalidParameterValue');

      rds.putFile('db1', 'slowquery/bin.log', Buffer.from('ok\n\u0001\u0002 bytes\n'));
      e = await rejects(c.send(new DownloadDBLogFilePortionCommand({ DBInstanceIdentifier: 'db1', LogFileName: 'slowquery/bin.log', Marker: '0' })));
      assert.equal(e.name, 'InvalidParameterValue');
      assert.equal(e.message, 'This file contains binary data and should be downloaded instead of viewed.');
      assert.equal(e.$metadata.httpStatusCode, 400);

      const special = 'SELECT \'<a & b>\' AS "x";\r\n\tnext ]]> line ü\n';
      rds.putFile('db1', LOG, special);
      const r = await c.send(new DownloadDBLogFilePortionCommand({ DBInstanceIdentifier: 'db1', LogFileName: LOG, Marker: '0' }));
      assert.equal(r.LogFileData, special);
      c.destroy();
    });
  });
});

// ---------------------------------------------------------------------------------------------------

describe('REST downloadCompleteLogFile', () => {
  test('streams the whole file untruncated (chunked), header-signed by the SDK signer; raw or %2F file names; v13 and v19', async () => {
    await withServer({ instances: ['db1'] }, async (rds) => {
      const content = lines(170_000, 120); // 20 MB, far over the portion limit
      rds.putFile('db1', LOG, content);
      const r = await restDownload(rds.url, 'db1', LOG, PERM);
      assert.equal(r.status, 200, r.body.toString().slice(0, 500));
      assert.equal(r.headers['transfer-encoding'], 'chunked');
      assert.equal(r.body.length, Buffer.byteLength(content));
      assert.ok(r.body.equals(Buffer.from(content)));
      assert.ok(!r.body.includes('[Your log message was truncated]'));

      rds.putFile('db1', 'audit/a b:c+d.log', 'spaces and colons\n');
      const odd = await restDownload(rds.url, 'db1', 'audit/a b:c+d.log', PERM, { encodeName: true });
      assert.equal(odd.status, 200, odd.body.toString());
      assert.equal(odd.body.toString(), 'spaces and colons\n');
      const encoded = await restDownload(rds.url, 'db1', LOG, PERM, { encodeName: true, version: 'v19' });
      assert.equal(encoded.status, 200);
      assert.equal(encoded.body.length, Buffer.byteLength(content));
      assert.equal(rds.stats().bytesServed.download, 2 * Buffer.byteLength(content) + 18);
    });
  });

  test('temporary credentials need the session token inside the signature, header or presigned', async () => {
    await withServer({ instances: ['db1'] }, async (rds) => {
      rds.putFile('db1', LOG, 'audit line\n');
      const signedToken = await restDownload(rds.url, 'db1', LOG, TEMP);
      assert.equal(signedToken.status, 200, signedToken.body.toString());
      assert.equal(rds.stats().recent.at(-1)!.sessionToken, 'signed');
      const presigned = await restDownload(rds.url, 'db1', LOG, TEMP, { presign: true });
      assert.equal(presigned.status, 200, presigned.body.toString());
      assert.equal(presigned.body.toString(), 'audit line\n');
      const presignedPerm = await restDownload(rds.url, 'db1', LOG, PERM, { presign: true });
      assert.equal(presignedPerm.status, 200);

      // Presigned with role credentials but without the token (joer14/pg-audit-lambda): refused, 403.
      const noToken = await restDownload(rds.url, 'db1', LOG, { accessKeyId: TEMP.accessKeyId, secretAccessKey: TEMP.secretAccessKey }, { presign: true });
      assert.equal(noToken.status, 403);
      assert.equal(xmlCode(noToken.body.toString()), 'InvalidClientTokenId');
      assert.equal(xmlMessage(noToken.body.toString()), 'The security token included in the request is invalid.');

      // The token sent as a header but left out of SignedHeaders is not enough either.
      const u = new URL(rds.url);
      const req = {
        method: 'GET',
        protocol: 'http:',
        hostname: u.hostname,
        port: Number(u.port),
        path: `/v13/downloadCompleteLogFile/db1/${LOG}`,
        query: {},
        headers: { host: u.host },
      };
      const signed = await signerFor({ accessKeyId: TEMP.accessKeyId, secretAccessKey: TEMP.secretAccessKey }).sign(req);
      const unsigned = await send(rds.url, { method: 'GET', path: signed.path, headers: { ...signed.headers, 'x-amz-security-token': TEMP.sessionToken! } });
      assert.equal(unsigned.status, 403);
      assert.equal(xmlCode(unsigned.body.toString()), 'InvalidClientTokenId');
      assert.equal(rds.stats().recent.at(-1)!.sessionToken, 'unsigned');
    });
  });

  test('not found is 404 with the Query-API XML error; the listed Size can exceed what downloads', async () => {
    await withServer({ instances: ['db1'] }, async (rds) => {
      rds.putFile('db1', LOG, 'twelve bytes', { reportedSizeDelta: 241 });
      let r = await restDownload(rds.url, 'db1', 'error/nope', PERM);
      assert.equal(r.status, 404);
      assert.match(
        r.body.toString(),
        /^<ErrorResponse xmlns="http:\/\/rds\.amazonaws\.com\/doc\/2014-10-31\/">\n  <Error>\n    <Type>Sender<\/Type>\n    <Code>DBLogFileNotFoundFault<\/Code>/,
      );
      r = await restDownload(rds.url, 'other', LOG, PERM);
      assert.equal(r.status, 404);
      assert.equal(xmlCode(r.body.toString()), 'DBInstanceNotFound');

      const c = sdk(rds.url, PERM);
      const listed = (await c.send(new DescribeDBLogFilesCommand({ DBInstanceIdentifier: 'db1' }))).DescribeDBLogFiles![0]!;
      const got = await restDownload(rds.url, 'db1', LOG, PERM);
      assert.equal(listed.Size, 253);
      assert.equal(got.body.length, 12, 'shorter than the listed size (aws-cli #1504/#2008)');
      c.destroy();
    });
  });
});

// ---------------------------------------------------------------------------------------------------

describe('authentication', () => {
  test("the SDK's own signing is accepted, with permanent and with temporary credentials", async () => {
    await withServer({ instances: ['db1'] }, async (rds) => {
      for (const creds of [PERM, TEMP]) {
        const c = sdk(rds.url, creds);
        await c.send(new DescribeDBLogFilesCommand({ DBInstanceIdentifier: 'db1', FilenameContains: 'a b&c=d/é' }));
        c.destroy();
      }
      const recent = rds.stats().recent;
      assert.deepEqual(
        recent.map((r) => [r.accessKeyId, r.sessionToken, r.outcome]),
        [
          [PERM.accessKeyId, 'none', 'ok'],
          [TEMP.accessKeyId, 'signed', 'ok'],
        ],
      );
    });
  });

  test("refusals carry AWS's codes and messages", async () => {
    await withServer(
      { instances: ['db1'], credentials: [...CREDS, { accessKeyId: 'ASIAEXPIREDEXAMPLE01', secretAccessKey: 'x', sessionToken: 'old', expired: true }] },
      async (rds) => {
        const refusal = async (creds: RdsCredential, extra = {}) => {
          const c = sdk(rds.url, creds, extra);
          const e = await rejects(c.send(new DescribeDBLogFilesCommand({ DBInstanceIdentifier: 'db1' })));
          c.destroy();
          return e;
        };
        let e = await refusal({ accessKeyId: 'AKIAUNKNOWNKEY000000', secretAccessKey: PERM.secretAccessKey });
        assert.equal(e.name, 'InvalidClientTokenId');
        assert.equal(e.message, 'The security token included in the request is invalid.');
        assert.equal(e.$metadata.httpStatusCode, 403);

        e = await refusal({ accessKeyId: PERM.accessKeyId, secretAccessKey: 'wrong' });
        assert.equal(e.name, 'SignatureDoesNotMatch');
        assert.equal(e.$metadata.httpStatusCode, 403);
        assert.ok(
          e.message.startsWith(
            'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.',
          ),
        );
        assert.match(e.message, /The Canonical String for this request should have been\n'POST\n\/\n\n/);

        e = await refusal({ accessKeyId: TEMP.accessKeyId, secretAccessKey: TEMP.secretAccessKey }); // role key, token left out
        assert.equal(e.name, 'InvalidClientTokenId');
        e = await refusal({ ...TEMP, sessionToken: 'some-other-token' });
        assert.equal(e.name, 'InvalidClientTokenId');
        e = await refusal({ ...PERM, sessionToken: 'token-on-a-permanent-key' });
        assert.equal(e.name, 'InvalidClientTokenId');
        e = await refusal({ accessKeyId: 'ASIAEXPIREDEXAMPLE01', secretAccessKey: 'x', sessionToken: 'old' });
        assert.equal(e.name, 'ExpiredToken');
        assert.equal(e.message, 'The security token included in the request is expired');

        e = await refusal(PERM, { region: 'eu-west-1' });
        assert.equal(e.name, 'SignatureDoesNotMatch');
        assert.equal(e.message, "Credential should be scoped to a valid region, not 'eu-west-1'. ");

        e = await refusal(PERM, { systemClockOffset: -20 * 60_000 });
        assert.equal(e.name, 'SignatureDoesNotMatch');
        assert.match(e.message, /^Signature expired: \d{8}T\d{6}Z is now earlier than \d{8}T\d{6}Z \(\d{8}T\d{6}Z - 15 min\.\)$/);
        e = await refusal(PERM, { systemClockOffset: 20 * 60_000 });
        assert.match(e.message, /^Signature not yet current: \d{8}T\d{6}Z is still later than \d{8}T\d{6}Z \(\d{8}T\d{6}Z \+ 15 min\.\)$/);

        const outcomes = rds.stats().errors;
        assert.equal(outcomes.InvalidClientTokenId, 4);
        assert.equal(outcomes.SignatureDoesNotMatch, 4);
        assert.equal(outcomes.ExpiredToken, 1);
      },
    );
  });

  test("the SDK corrects a skewed clock from the refusal's Date header, as it does against AWS", async () => {
    await withServer({ instances: ['db1'] }, async (rds) => {
      const c = sdk(rds.url, PERM, { systemClockOffset: -30 * 60_000 });
      const e = await rejects(c.send(new DescribeDBLogFilesCommand({ DBInstanceIdentifier: 'db1' })));
      assert.equal(e.name, 'SignatureDoesNotMatch');
      assert.ok(Math.abs(c.config.systemClockOffset) < 5000, 'offset taken from the Date header');
      await c.send(new DescribeDBLogFilesCommand({ DBInstanceIdentifier: 'db1' }));
      assert.deepEqual(
        rds.stats().recent.map((x) => x.outcome),
        ['SignatureDoesNotMatch', 'ok'],
      );
      c.destroy();
    });
  });

  test('unsigned, tampered and stale requests are refused on both APIs', async () => {
    await withServer({ instances: ['db1'] }, async (rds) => {
      rds.putFile('db1', LOG, 'x\n');
      const unsigned = await send(rds.url, {
        method: 'POST',
        path: '/',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: 'Action=DescribeDBLogFiles&Version=2014-10-31&DBInstanceIdentifier=db1',
      });
      assert.equal(unsigned.status, 403);
      assert.equal(xmlCode(unsigned.body.toString()), 'MissingAuthenticationToken');
      assert.equal(xmlMessage(unsigned.body.toString()), 'Request is missing Authentication Token');

      // The body is part of the signature: same length, other instance.
      const tampered = await queryRaw(rds.url, PERM, { Action: 'DescribeDBLogFiles', DBInstanceIdentifier: 'db1' }, { tamper: (b) => b.replace('db1', 'db2') });
      assert.equal(tampered.status, 403);
      assert.equal(xmlCode(tampered.body.toString()), 'SignatureDoesNotMatch');

      const restUnsigned = await send(rds.url, { method: 'GET', path: `/v13/downloadCompleteLogFile/db1/${LOG}`, headers: {} });
      assert.equal(restUnsigned.status, 403);
      assert.equal(xmlCode(restUnsigned.body.toString()), 'MissingAuthenticationToken');
      const badSecret = await restDownload(rds.url, 'db1', LOG, { accessKeyId: PERM.accessKeyId, secretAccessKey: 'nope' });
      assert.equal(badSecret.status, 403);
      assert.equal(xmlCode(badSecret.body.toString()), 'SignatureDoesNotMatch');
      const stale = await restDownload(rds.url, 'db1', LOG, PERM, { signingDate: new Date(Date.now() - 16 * 60_000) });
      assert.equal(stale.status, 403);
      assert.match(xmlMessage(stale.body.toString())!, /^Signature expired: /);
      const wrongRegion = await restDownload(rds.url, 'db1', LOG, PERM, { region: 'us-west-2' });
      assert.equal(wrongRegion.status, 403);

      // Presigned: valid for X-Amz-Expires after X-Amz-Date, then refused.
      const old = new Date(Date.now() - 2 * 3600_000);
      const longLived = await restDownload(rds.url, 'db1', LOG, PERM, { presign: true, signingDate: old, expiresIn: 3 * 3600 });
      assert.equal(longLived.status, 200);
      const expired = await restDownload(rds.url, 'db1', LOG, PERM, { presign: true, signingDate: old, expiresIn: 60 });
      assert.equal(expired.status, 403);
      assert.equal(xmlCode(expired.body.toString()), 'AccessDenied');
      assert.equal(xmlMessage(expired.body.toString()), 'Request has expired');
    });
  });
});

// ---------------------------------------------------------------------------------------------------

describe('deny', () => {
  test('each denied IAM action is 403 AccessDenied naming principal, action and DB ARN; the others still work', async () => {
    await withServer({ instances: ['db1'], region: 'eu-central-1', accountId: '111122223333', deny: ['rds:DownloadCompleteDBLogFile'] }, async (rds) => {
      rds.putFile('db1', LOG, 'x\n');
      const c = new RDSClient({ endpoint: rds.url, region: 'eu-central-1', credentials: PERM, maxAttempts: 1 });
      const rest = await restDownload(rds.url, 'db1', LOG, PERM, { region: 'eu-central-1' });
      assert.equal(rest.status, 403);
      assert.equal(xmlCode(rest.body.toString()), 'AccessDenied');
      assert.equal(
        xmlMessage(rest.body.toString()),
        'User: arn:aws:iam::111122223333:user/auditship-test is not authorized to perform: rds:DownloadCompleteDBLogFile on resource: arn:aws:rds:eu-central-1:111122223333:db:db1 because no identity-based policy allows the rds:DownloadCompleteDBLogFile action',
      );
      await c.send(new DescribeDBLogFilesCommand({ DBInstanceIdentifier: 'db1' }));
      await c.send(new DownloadDBLogFilePortionCommand({ DBInstanceIdentifier: 'db1', LogFileName: LOG, Marker: '0' }));

      rds.configure({ deny: ['rds:DescribeDBLogFiles', 'rds:DownloadDBLogFilePortion'] });
      let e = await rejects(c.send(new DescribeDBLogFilesCommand({ DBInstanceIdentifier: 'DB1' })));
      assert.equal(e.name, 'AccessDenied');
      assert.equal(e.$metadata.httpStatusCode, 403);
      assert.equal(
        e.message,
        'User: arn:aws:iam::111122223333:user/auditship-test is not authorized to perform: rds:DescribeDBLogFiles on resource: arn:aws:rds:eu-central-1:111122223333:db:db1 because no identity-based policy allows the rds:DescribeDBLogFiles action',
      );
      const t = new RDSClient({ endpoint: rds.url, region: 'eu-central-1', credentials: TEMP, maxAttempts: 1 });
      e = await rejects(t.send(new DownloadDBLogFilePortionCommand({ DBInstanceIdentifier: 'db1', LogFileName: LOG })));
      assert.equal(e.name, 'AccessDenied');
      assert.match(
        e.message,
        /^User: arn:aws:sts::111122223333:assumed-role\/auditship-test\/session is not authorized to perform: rds:DownloadDBLogFilePortion on resource: arn:aws:rds:eu-central-1:111122223333:db:db1 /,
      );
      assert.equal((await restDownload(rds.url, 'db1', LOG, PERM, { region: 'eu-central-1' })).status, 200);
      assert.equal(rds.stats().errors.AccessDenied, 3);
      c.destroy();
      t.destroy();
    });
  });
});

// ---------------------------------------------------------------------------------------------------

describe('faults', () => {
  test('throttling (400 Throttling "Rate exceeded") and 500 InternalFailure, limited to an action and a count', async () => {
    await withServer({ instances: ['db1'] }, async (rds) => {
      rds.putFile('db1', LOG, 'x\n');
      const c = sdk(rds.url, PERM);
      rds.faults({ kind: 'throttle', action: 'DescribeDBLogFiles', count: 1 });
      await c.send(new DownloadDBLogFilePortionCommand({ DBInstanceIdentifier: 'db1', LogFileName: LOG, Marker: '0' })); // other action: untouched
      let e = await rejects(c.send(new DescribeDBLogFilesCommand({ DBInstanceIdentifier: 'db1' })));
      assert.equal(e.name, 'Throttling');
      assert.equal(e.message, 'Rate exceeded');
      assert.equal(e.$metadata.httpStatusCode, 400);
      await c.send(new DescribeDBLogFilesCommand({ DBInstanceIdentifier: 'db1' })); // count used up

      rds.faults({ kind: 'internalError', action: 'DownloadDBLogFilePortion', count: 1 });
      e = await rejects(c.send(new DownloadDBLogFilePortionCommand({ DBInstanceIdentifier: 'db1', LogFileName: LOG })));
      assert.equal(e.name, 'InternalFailure');
      assert.equal(e.$metadata.httpStatusCode, 500);
      assert.equal(e.$fault, 'server');

      // With its standard retries the SDK rides over two throttles.
      rds.faults({ kind: 'throttle', count: 2 });
      const retrying = sdk(rds.url, PERM, { maxAttempts: 3 });
      const r = await retrying.send(new DescribeDBLogFilesCommand({ DBInstanceIdentifier: 'db1' }));
      assert.equal(r.$metadata.attempts, 3);
      const s = rds.stats();
      assert.equal(s.faultsInjected.throttle, 3);
      assert.equal(s.faultsInjected.internalError, 1);
      assert.deepEqual(s.faults.rules, []);
      c.destroy();
      retrying.destroy();
    });
  });

  test('connection reset without a response, and slow answers', async () => {
    await withServer({ instances: ['db1'] }, async (rds) => {
      rds.putFile('db1', LOG, 'x\n');
      const c = sdk(rds.url, PERM);
      rds.faults({ kind: 'reset', action: 'DescribeDBLogFiles', count: 1 });
      const e = await rejects(c.send(new DescribeDBLogFilesCommand({ DBInstanceIdentifier: 'db1' })));
      assert.match(String(e.code ?? e.name), /ECONNRESET|socket hang up/i);
      assert.equal(rds.stats().recent.at(-1)!.status, 0);

      rds.faults({ kind: 'delay', delayMs: 300, file: LOG });
      const t0 = Date.now();
      await c.send(new DownloadDBLogFilePortionCommand({ DBInstanceIdentifier: 'db1', LogFileName: LOG, Marker: '0' }));
      assert.ok(Date.now() - t0 >= 290);
      await c.send(new DescribeDBLogFilesCommand({ DBInstanceIdentifier: 'db1' })); // no LogFileName: not delayed
      assert.deepEqual(
        rds
          .stats()
          .recent.slice(-2)
          .map((r) => r.faults ?? []),
        [['delay'], []],
      );
      rds.clearFaults();
      const r = await restDownload(rds.url, 'db1', LOG, PERM);
      assert.equal(r.status, 200);
      rds.faults({ kind: 'reset', action: 'download' });
      await assert.rejects(restDownload(rds.url, 'db1', LOG, PERM), /ECONNRESET|socket hang up/);
      c.destroy();
    });
  });

  test('REST body: reset after N bytes, rate limit, and a file that grows while it is downloaded', async () => {
    await withServer({ instances: ['db1'] }, async (rds) => {
      const content = lines(8000, 125); // 1,000,000 bytes
      rds.putFile('db1', LOG, content, { lastWritten: 1000 });
      rds.faults({ kind: 'bodyReset', afterBytes: 100_000, count: 1 });
      const cut = await restDownload(rds.url, 'db1', LOG, PERM);
      assert.equal(cut.status, 200, 'headers arrive, then the body breaks');
      assert.ok(cut.error, 'the client sees the connection break');
      assert.equal(cut.body.length, 100_000);
      assert.ok(cut.body.equals(Buffer.from(content).subarray(0, 100_000)));

      rds.faults({ kind: 'rateLimit', bytesPerSecond: 2_000_000, count: 1 });
      const t0 = Date.now();
      const slow = await restDownload(rds.url, 'db1', LOG, PERM);
      assert.ok(Date.now() - t0 >= 450, `took ${Date.now() - t0} ms`);
      assert.equal(slow.body.length, 1_000_000);

      rds.faults({ kind: 'appendMidDownload', appendBytes: 5000, count: 1 });
      const grown = await restDownload(rds.url, 'db1', LOG, PERM);
      assert.equal(grown.body.length, 1_005_000, 'the appended bytes arrive in the same stream');
      assert.ok(grown.body.subarray(0, 1_000_000).equals(Buffer.from(content)));
      const info = rds.listFiles('db1')[0]!;
      assert.equal(info.size, 1_005_000);
      assert.ok(info.lastWritten > 1000, 'LastWritten bumped');
      assert.deepEqual(rds.stats().faultsInjected, { bodyReset: 1, rateLimit: 1, appendMidDownload: 1 });
    });
  });
});

// ---------------------------------------------------------------------------------------------------

describe('stats and control', () => {
  test('counts per action, bytes served and recent requests; reset restores the start-up files', async () => {
    await withServer({ instances: [{ id: 'db1', files: [{ name: LOG, content: 'one\ntwo\n', lastWritten: 5 }] }] }, async (rds) => {
      const c = sdk(rds.url, TEMP);
      await c.send(new DescribeDBLogFilesCommand({ DBInstanceIdentifier: 'db1' }));
      await c.send(new DownloadDBLogFilePortionCommand({ DBInstanceIdentifier: 'db1', LogFileName: LOG, Marker: '0', NumberOfLines: 1 }));
      await restDownload(rds.url, 'db1', LOG, PERM);
      await rejects(c.send(new DescribeDBLogFilesCommand({ DBInstanceIdentifier: 'missing' })));
      const s = rds.stats();
      assert.deepEqual(s.requests, { DescribeDBLogFiles: 2, DownloadDBLogFilePortion: 1, download: 1, other: 0 });
      assert.deepEqual(s.bytesServed, { portion: 4, download: 8 });
      assert.deepEqual(s.statuses, { 200: 3, 404: 1 });
      assert.deepEqual(s.errors, { DBInstanceNotFound: 1 });
      assert.deepEqual(
        s.recent.map((r) => [r.action, r.file ?? null, r.sessionToken, r.outcome]),
        [
          ['DescribeDBLogFiles', null, 'signed', 'ok'],
          ['DownloadDBLogFilePortion', LOG, 'signed', 'ok'],
          ['download', LOG, 'none', 'ok'],
          ['DescribeDBLogFiles', null, 'signed', 'DBInstanceNotFound'],
        ],
      );
      assert.deepEqual(s.recent[1]!.params, { Marker: '0', NumberOfLines: '1' });

      rds.appendFile('db1', LOG, 'three\n');
      rds.putFile('db1', 'error/other', 'z');
      rds.faults({ kind: 'throttle' });
      rds.reset();
      assert.deepEqual(
        rds.listFiles('db1').map((f) => [f.name, f.size, f.lastWritten]),
        [[LOG, 8, 5]],
      );
      assert.equal(rds.stats().requests.DescribeDBLogFiles, 0);
      assert.deepEqual(rds.stats().faults.rules, []);
      assert.throws(() => rds.putFile('nope', 'f', 'x'), /no DB instance nope/);
      assert.throws(() => rds.faults({ kind: 'bodyReset', action: 'DescribeDBLogFiles', afterBytes: 1 }), /REST download only/);
      c.destroy();
    });
  });
});

describe('as a process (client.ts)', () => {
  test('spawnRdsServer: files, faults and stats through the control API; the SDK against it; stop', async () => {
    const rds = await spawnRdsServer({ credentials: CREDS, instances: ['db1'], shuffleListing: true });
    try {
      const big = Buffer.from(lines(20_000, 100)); // 2 MB, sent raw
      let info = await rds.putFile('db1', LOG, big, { lastWritten: 1714557600000 });
      assert.deepEqual(info, { instance: 'db1', name: LOG, size: big.length, reportedSize: big.length, lastWritten: 1714557600000 });
      info = await rds.appendFile('db1', LOG, 'tail line\n');
      assert.equal(info.size, big.length + 10);
      assert.ok(info.lastWritten > 1714557600000);
      await rds.putFile('db1', 'error/skewed', 'abc', { reportedSizeDelta: 7 });
      await rds.createInstance('db2');
      assert.deepEqual((await rds.listFiles('db1')).map((f) => [f.name, f.reportedSize]).sort(), [
        [LOG, big.length + 10],
        ['error/skewed', 10],
      ]);
      assert.ok((await rds.readFile('db1', LOG)).subarray(0, big.length).equals(big));
      // The JSON forms of the same commands (content as UTF-8 or base64).
      await rds.control({ op: 'putFile', instance: 'db2', name: 'error/b64', base64: Buffer.from([0x68, 0x69, 0x0a]).toString('base64'), lastWritten: 7 });
      await rds.control({ op: 'appendFile', instance: 'db2', name: 'error/b64', content: 'ü\n' });
      assert.equal((await rds.readFile('db2', 'error/b64')).toString(), 'hi\nü\n');
      await rds.deleteFile('db2', 'error/b64');

      const c = sdk(rds.url, TEMP);
      const list = await c.send(new DescribeDBLogFilesCommand({ DBInstanceIdentifier: 'db1' }));
      assert.equal(list.DescribeDBLogFiles!.length, 2);
      await rds.faults({ kind: 'throttle', action: 'DownloadDBLogFilePortion', count: 1 });
      const e = await rejects(c.send(new DownloadDBLogFilePortionCommand({ DBInstanceIdentifier: 'db1', LogFileName: LOG, Marker: '0' })));
      assert.equal(e.name, 'Throttling');
      const { data } = await readPortions(c, 'db1', LOG, 8000);
      assert.equal(data, big.toString() + 'tail line\n');

      await rds.configure({ deny: ['rds:DescribeDBLogFiles'] });
      assert.equal((await rejects(c.send(new DescribeDBLogFilesCommand({ DBInstanceIdentifier: 'db1' })))).name, 'AccessDenied');
      await rds.deleteFile('db1', 'error/skewed');
      assert.equal((await rds.listFiles('db1')).length, 1);

      const s = await rds.stats();
      assert.equal(s.faultsInjected.throttle, 1);
      assert.equal(s.errors.AccessDenied, 1);
      assert.ok(s.requests.DownloadDBLogFilePortion >= 4);
      assert.deepEqual(s.instances, { db1: 1, db2: 0 });
      await rds.reset();
      assert.deepEqual((await rds.stats()).instances, { db1: 0 });
      await assert.rejects(rds.putFile('nope', 'f', 'x'), /404/);
      c.destroy();
    } finally {
      await rds.stop();
    }
    assert.throws(() => process.kill(rds.pid, 0), /ESRCH/);
  });
});
