import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { GetObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { createBucket, s3ClientFor, spawnS3Server, type SpawnedS3Server } from '../s3-server/client.js';
import { decode, duck, parseParts, entriesOf, sha256, writeLogs, type Entry } from '../helpers/archive.js';
import { csvOf, CsvlogGenerator } from '../helpers/csvlog-gen.js';
import { hasStackTrace, ROOT, runCli, scratchDir } from '../helpers/ingest-cli.js';

/**
 * The archive sink into a bucket of the S3 test server (s3rver behind a proxy that checks signatures and
 * Content-MD5, records requests and emulates what s3rver lacks; test/s3-server): the objects and the manifest
 * read back through the S3 API; storage class, SSE and Object Lock checked at the request level (s3rver
 * keeps none of them); resets mid-upload, 500s, 503s and slow answers survived with every file once;
 * cold classes verified by HEAD; credential and permission problems as one line.
 */
const { dir, cleanup } = scratchDir('archive-s3');
const KEY = { accessKeyId: 'AKIAAUDITSHIPTEST001', secretAccessKey: 'test/secret/KEY/for/archive/s3' };
const CREDS = { access_key_id: KEY.accessKeyId, secret_access_key: KEY.secretAccessKey };
let s3: SpawnedS3Server;
let seq = 0;

before(async () => {
  s3 = await spawnS3Server({ accessKeys: [KEY, { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' }], objectLockBuckets: ['worm-archive'] });
});
after(async () => {
  await s3?.stop();
  cleanup();
});

const client = () => s3ClientFor(s3.url, KEY);

async function bucket(name: string): Promise<string> {
  await createBucket(s3.url, name, { client: KEY });
  return name;
}

/** Every object of a bucket (key → bytes). */
async function objects(b: string, prefix = ''): Promise<Map<string, Buffer>> {
  const c = client();
  const out = new Map<string, Buffer>();
  let token: string | undefined;
  do {
    const r = await c.send(new ListObjectsV2Command({ Bucket: b, Prefix: prefix, ContinuationToken: token }));
    for (const o of r.Contents ?? []) {
      const g = await c.send(new GetObjectCommand({ Bucket: b, Key: o.Key! })).catch(() => null);
      if (g) out.set(o.Key!, Buffer.from(await g.Body!.transformToByteArray()));
    }
    token = r.IsTruncated ? r.NextContinuationToken : undefined;
  } while (token);
  c.destroy();
  return out;
}

async function manifestOf(b: string, prefix = ''): Promise<Entry[]> {
  const all = await objects(b, `${prefix}_manifest/`);
  return entriesOf(parseParts([...all].map(([key, body]) => ({ key: key.slice(prefix.length), body }))));
}

function setup(sink: Record<string, unknown>, logs: string, opts: { storeEvents?: boolean } = {}) {
  const base = join(dir, `t${seq++}`);
  mkdirSync(base, { recursive: true });
  const db = join(base, 'a.duckdb');
  const config = join(base, 'c.yaml');
  writeFileSync(
    config,
    [
      'pipelines:',
      '  logs:',
      `    source: { type: pg_logs, path: ${JSON.stringify(logs)}, server: db1 }`,
      '    sinks:',
      `      - ${JSON.stringify({ type: 'archive', endpoint: s3.url, force_path_style: true, region: 'us-east-1', ...CREDS, ...sink })}`,
      `      - ${JSON.stringify({ type: 'duckdb', path: db, ...(opts.storeEvents === false ? { store_events: false } : {}) })}`,
      '',
    ].join('\n'),
  );
  return { config, db, base };
}

async function runOk(config: string): Promise<{ stdout: string; stderr: string }> {
  const r = await runCli(['run', '--config', config, '--json']);
  assert.equal(r.code, 0, `run failed: ${r.stderr.slice(-3000)}`);
  return r;
}

/** Log files whose content barely compresses (so that objects take several 5 MiB parts): a csvlog first line, then noise. */
function bulkyLogs(name: string, files: number, mb: number): { dir: string; contents: Map<string, Buffer> } {
  const d = join(dir, name);
  mkdirSync(d, { recursive: true });
  const gen = new CsvlogGenerator({ seed: files * 31 + mb });
  const contents = new Map<string, Buffer>();
  const list = [];
  for (let i = 0; i < files; i++) {
    const body = Buffer.concat([Buffer.from(csvOf(gen.records(1))), Buffer.from(randomBytes(Math.round(mb * 1e6 * 0.75)).toString('base64') + '\n')]);
    const fname = `postgresql-2024-05-0${1 + (i % 9)}_${String(i).padStart(2, '0')}0000.csv`;
    contents.set(fname, body);
    list.push({ name: fname, text: body, agoS: 1000 - i });
  }
  list.push({ name: 'postgresql-2024-05-09_990000.csv', text: csvOf(gen.records(1)), agoS: 1 }); // the active file
  writeLogs(d, list);
  return { dir: d, contents };
}

describe('archive sink, S3 (test server)', () => {
  test('real pgaudit logs as files, Parquet and NDJSON through the S3 API: checksums, the manifest, verify-archive, and DuckDB reading the Parquet', async () => {
    const b = await bucket('archive-forms');
    const logs = join(ROOT, 'examples', 'pgaudit-logs');
    const s = setup({ bucket: b, prefix: 'pg/', form: 'files' }, logs);
    const p = setup({ bucket: b, prefix: 'pg/', form: 'parquet' }, logs);
    const n = setup({ bucket: b, prefix: 'nd/', form: 'ndjson' }, logs);
    await runOk(s.config);
    await runOk(p.config);
    await runOk(n.config);
    const nd = await manifestOf(b, 'nd/');
    const ndAll = await objects(b, 'nd/');
    const lines = nd
      .filter((e) => !e.dataset)
      .flatMap((e) =>
        decode(ndAll.get(`nd/${e.key}`)!, 'gzip')
          .toString('utf8')
          .split('\n')
          .filter(Boolean),
      );
    assert.equal(lines.length, 121);
    const all = await objects(b, 'pg/');
    const entries = await manifestOf(b, 'pg/');
    assert.ok(entries.length >= 3);
    for (const e of entries) {
      const body = all.get(`pg/${e.key}`);
      assert.ok(body, `${e.key} is in the bucket`);
      assert.equal(sha256(body), e.sha256);
      assert.equal(body.length, e.size);
    }
    const file = entries.find((e) => e.form === 'files')!;
    assert.ok(decode(all.get(`pg/${file.key}`)!, 'gzip').equals(readFileSync(join(logs, 'postgresql-2026-11-22_031156.json'))));
    // DuckDB reading what the bucket holds, partitions from the keys (copied out: no httpfs here).
    const local = join(dir, 'parquet-copy');
    for (const [k, body] of all)
      if (k.endsWith('.parquet')) {
        mkdirSync(join(local, ...k.split('/').slice(0, -1)), { recursive: true });
        writeFileSync(join(local, k), body);
      }
    const rows = await duck(`SELECT server, count(*) AS n FROM read_parquet('${local}/pg/pgaudit/**/*.parquet', hive_partitioning = true) GROUP BY ALL`);
    assert.deepEqual(rows, [{ server: 'db1', n: '121' }]);
    const v = await runCli(['verify-archive', '--config', s.config]);
    assert.equal(v.code, 0, v.stdout + v.stderr);
    assert.match(v.stdout, /✔ s3:\/\/archive-forms\/pg\/: \d+ of \d+ objects intact/);
  });

  test('storage class, SSE-KMS and Object Lock are sent with every object, and every part carries Content-MD5 (checked at the request level: s3rver keeps none of them)', async () => {
    const { dir: logs } = bulkyLogs('bulky-lock', 2, 12);
    const s = setup(
      {
        bucket: 'worm-archive',
        form: 'files',
        storage_class: 'GLACIER_IR',
        sse: 'aws:kms',
        sse_kms_key_id: 'arn:aws:kms:us-east-1:111122223333:key/test',
        object_lock_mode: 'COMPLIANCE',
        object_lock_days: 30,
        part_size: '5MiB',
      },
      logs,
      { storeEvents: false },
    );
    await s3.clearRequests();
    const started = Date.now();
    await runOk(s.config);
    const reqs = await s3.requests({ bucket: 'worm-archive' });
    const creates = reqs.filter((r) => r.op === 'CreateMultipartUpload' || r.op === 'PutObject');
    const dataObjects = creates.filter((r) => r.key!.startsWith('logs/'));
    assert.equal(dataObjects.length, 2);
    assert.ok(
      reqs.some((r) => r.op === 'UploadPart'),
      'the files went up in parts',
    );
    for (const r of dataObjects) {
      assert.equal(r.headers['x-amz-storage-class'], 'GLACIER_IR');
      assert.equal(r.headers['x-amz-server-side-encryption'], 'aws:kms');
      assert.equal(r.headers['x-amz-server-side-encryption-aws-kms-key-id'], 'arn:aws:kms:us-east-1:111122223333:key/test');
      assert.equal(r.headers['x-amz-object-lock-mode'], 'COMPLIANCE');
      const until = Date.parse(r.headers['x-amz-object-lock-retain-until-date']!);
      assert.ok(Math.abs(until - (started + 30 * 86400e3)) < 120e3, 'retained 30 days from the upload');
    }
    const manifestPuts = creates.filter((r) => r.key!.startsWith('_manifest/'));
    assert.ok(manifestPuts.length >= 1 && manifestPuts.every((r) => r.headers['x-amz-storage-class'] === undefined), 'the manifest stays STANDARD');
    for (const r of reqs.filter((x) => x.op === 'UploadPart' || x.op === 'PutObject')) assert.ok(r.contentMd5, `${r.op} ${r.key} has Content-MD5`);
    const locks = await s3.objectLocks();
    assert.ok(locks.filter((l) => l.key.startsWith('logs/') && l.mode === 'COMPLIANCE').length >= 2);
    const entries = await manifestOf('worm-archive');
    assert.ok(entries.every((e) => e.object_lock?.mode === 'COMPLIANCE' && e.sse === 'aws:kms'));
    const v = await runCli(['verify-archive', '--config', s.config]);
    assert.equal(v.code, 0, v.stdout + v.stderr);
  });

  test('a connection reset mid-upload, 500s, 503s and slow answers: every file archived once, intact, no upload left unfinished', async () => {
    const b = await bucket('archive-faults');
    const { dir: logs, contents } = bulkyLogs('bulky-faults', 3, 14);
    const s = setup({ bucket: b, form: 'files', part_size: '5MiB', max_retries: 6, timeout_ms: 5000 }, logs, { storeEvents: false });
    await s3.faults([
      { match: { op: 'UploadPart', bucket: b }, action: { type: 'reset_after_bytes', bytes: 1_000_000 }, times: 2 },
      { match: { op: 'UploadPart', bucket: b }, action: { type: 'status', status: 500, code: 'InternalError' }, times: 2, after: 1 },
      { match: { op: 'CompleteMultipartUpload', bucket: b }, action: { type: 'status', status: 503, code: 'SlowDown' }, times: 1 },
      { match: { op: 'UploadPart', bucket: b }, action: { type: 'delay', ms: 1500 }, times: 2, after: 3 },
      { match: { op: 'PutObject', bucket: b }, action: { type: 'reset_before_response' }, times: 1 },
    ]);
    try {
      await runOk(s.config);
      const state = await s3.faultState();
      assert.ok(
        state.rules.every((r) => r.fired >= 1),
        `every fault fired: ${JSON.stringify(state.rules.map((r) => r.fired))}`,
      );
    } finally {
      await s3.clearFaults();
    }
    const entries = await manifestOf(b);
    const files = entries.filter((e) => e.form === 'files');
    assert.deepEqual(files.map((e) => e.source.name).sort(), [...contents.keys()].sort());
    const all = await objects(b, 'logs/');
    assert.deepEqual([...all.keys()].sort(), files.map((e) => e.key).sort(), 'no other objects');
    for (const e of files) assert.ok(decode(all.get(e.key)!, 'gzip').equals(contents.get(e.source.name)!));
    const c = client();
    const ups = await c.send(new ListMultipartUploadsCommand({ Bucket: b }));
    c.destroy();
    assert.equal(ups.Uploads?.length ?? 0, 0, 'aborted uploads do not linger');
  });

  test('GLACIER objects are verified by HEAD and the stored ETag; a replaced one is found', async () => {
    const b = await bucket('archive-cold');
    const { dir: logs } = bulkyLogs('bulky-cold', 2, 1);
    const s = setup({ bucket: b, form: 'files', storage_class: 'GLACIER' }, logs, { storeEvents: false });
    await runOk(s.config);
    const v = await runCli(['verify-archive', '--config', s.config, '--json']);
    assert.equal(v.code, 0, v.stdout + v.stderr);
    const report = (JSON.parse(v.stdout) as { archives: { verifiedByHead: number; verifiedByHash: number }[] }).archives[0]!;
    assert.equal(report.verifiedByHead, 2);
    assert.equal(report.verifiedByHash, 0);
    const [e] = await manifestOf(b);
    // Replaced with other bytes of the same size: only the ETag can tell.
    const c = client();
    const size = e!.size;
    await c.send(new PutObjectCommand({ Bucket: b, Key: e!.key, Body: Buffer.alloc(size, 1), StorageClass: 'GLACIER' }));
    c.destroy();
    const bad = await runCli(['verify-archive', '--config', s.config]);
    assert.equal(bad.code, 1);
    assert.match(bad.stdout, new RegExp(`✘ corrupt: ${e!.key.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: ETag .* the manifest says`));
  });

  test('credentials, permissions and a missing bucket: one line each, exit 1, no secret printed', async () => {
    const { dir: logs } = bulkyLogs('bulky-errors', 1, 1);
    const b = await bucket('archive-errors');
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ bucket: b, access_key_id: 'AKIAUNKNOWN000000000', secret_access_key: 'x' }, /does not know the access key \(InvalidAccessKeyId/],
      [{ bucket: b, secret_access_key: 'wrong-secret' }, /the secret key does not match the access key \(SignatureDoesNotMatch/],
      [{ bucket: 'no-such-bucket-here' }, /bucket no-such-bucket-here does not exist at http:\/\/127\.0\.0\.1:\d+; create it/],
    ];
    for (const [sink, want] of cases) {
      const s = setup({ form: 'files', max_retries: 1, ...sink }, logs, { storeEvents: false });
      const r = await runCli(['run', '--config', s.config]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, want);
      assert.ok(!hasStackTrace(r.stderr), r.stderr);
      assert.ok(!r.stderr.includes(KEY.secretAccessKey) && !r.stderr.includes('wrong-secret'));
    }
    await s3.faults([
      {
        match: { op: ['PutObject', 'CreateMultipartUpload'], bucket: b },
        action: { type: 'status', status: 403, code: 'AccessDenied', message: 'Access Denied' },
        times: 'always',
      },
    ]);
    try {
      const s = setup({ bucket: b, form: 'files' }, logs, { storeEvents: false });
      const r = await runCli(['run', '--config', s.config]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /access denied: (PutObject|CreateMultipartUpload) on s3:\/\/archive-errors\/logs\/.* grant s3:PutObject/);
    } finally {
      await s3.clearFaults();
    }
  });
});
