import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { GetObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { createBucket, s3ClientFor, spawnS3Server, type SpawnedS3Server } from '../s3-server/client.js';
import { spawnRdsServer, TEST_CREDENTIALS, type SpawnedRdsServer } from '../rds-server/client.js';
import { decode, duck, entriesOf, parseParts, writeLogs, type Entry } from '../helpers/archive.js';
import { csvOf, CsvlogGenerator, Rng } from '../helpers/csvlog-gen.js';
import { queryDb, runCli, scratchDir, spawnCli, type CliChild } from '../helpers/ingest-cli.js';

/**
 * Exactly once in the archive under SIGKILL: `auditship run` is killed at random moments while it uploads
 * (uploads are slowed by the S3 test server so that kills land in the middle of multipart uploads), then run
 * to completion. At the end every log file is in the manifest exactly once, the bucket holds exactly the
 * objects the manifest names (what a killed run left was removed by the next), no multipart upload is left
 * open, every object matches its checksum; for the Parquet form every event is in the archive exactly once;
 * for rds_logs every file downloaded, parsed and archived once.
 */
const { dir, cleanup } = scratchDir('archive-kill9');
const KEY = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
const children = new Set<CliChild>();
let s3: SpawnedS3Server;
let rds: SpawnedRdsServer;

before(async () => {
  s3 = await spawnS3Server({});
  rds = await spawnRdsServer({ instances: ['kill1'] });
});
after(async () => {
  for (const c of children) c.kill('SIGKILL');
  await s3?.stop();
  await rds?.stop();
  cleanup();
});

async function listAll(bucket: string, prefix = ''): Promise<Map<string, Buffer>> {
  const c = s3ClientFor(s3.url, KEY);
  const out = new Map<string, Buffer>();
  let token: string | undefined;
  do {
    const r = await c.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
    for (const o of r.Contents ?? [])
      out.set(o.Key!, Buffer.from(await (await c.send(new GetObjectCommand({ Bucket: bucket, Key: o.Key! }))).Body!.transformToByteArray()));
    token = r.IsTruncated ? r.NextContinuationToken : undefined;
  } while (token);
  c.destroy();
  return out;
}

async function openUploads(bucket: string): Promise<number> {
  const c = s3ClientFor(s3.url, KEY);
  const r = await c.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
  c.destroy();
  return r.Uploads?.length ?? 0;
}

/** Runs the config, SIGKILLs it after `delayMs` unless it ended first; a run that ends on its own must succeed. */
async function runAndKill(config: string, delayMs: number, env: Record<string, string> = {}): Promise<boolean> {
  const child = spawnCli(['run', '--config', config, '--json', '--quiet'], { env });
  children.add(child);
  let killed = false;
  const timer = setTimeout(() => {
    killed = child.kill('SIGKILL');
  }, delayMs);
  const r = await child.result;
  clearTimeout(timer);
  children.delete(child);
  if (r.signal !== 'SIGKILL' && r.code !== 0) throw new Error(`run exited ${r.code}: ${r.stderr.slice(-3000)}`);
  return killed && r.signal === 'SIGKILL';
}

/** Kills runs at random points until `kills` kills landed, then runs to completion. */
async function killLoop(config: string, kills: number, seed: number, env: Record<string, string> = {}): Promise<number> {
  const rng = new Rng(seed);
  let landed = 0;
  let aim = 1500;
  for (let attempt = 0; attempt < kills * 4 && landed < kills; attempt++) {
    const delay = 150 + rng.int(0, aim);
    if (await runAndKill(config, delay, env)) landed++;
    else aim = Math.max(300, Math.floor(aim * 0.6)); // the run finished first: aim earlier
  }
  const final = await runCli(['run', '--config', config, '--json'], { env });
  assert.equal(final.code, 0, final.stderr.slice(-3000));
  return landed;
}

function manifest(all: Map<string, Buffer>): Entry[] {
  return entriesOf(parseParts([...all].filter(([k]) => k.startsWith('_manifest/')).map(([key, body]) => ({ key, body }))));
}

describe('archive under SIGKILL (S3 test server)', () => {
  test('files form: killed mid-upload again and again, then every file is archived exactly once, nothing else is left', async () => {
    const bucket = 'kill-files';
    await createBucket(s3.url, bucket);
    const logs = join(dir, 'logs-files');
    mkdirSync(logs, { recursive: true });
    const gen = new CsvlogGenerator({ seed: 11 });
    const contents = new Map<string, Buffer>();
    const files = [];
    for (let i = 0; i < 8; i++) {
      const body = Buffer.concat([Buffer.from(csvOf(gen.records(1))), Buffer.from(randomBytes(4_500_000 + i * 300_000).toString('base64') + '\n')]);
      const name = `postgresql-2024-05-01_${String(i).padStart(2, '0')}0000.csv`;
      contents.set(name, body);
      files.push({ name, text: body, agoS: 1000 - i });
    }
    files.push({ name: 'postgresql-2024-05-01_990000.csv', text: csvOf(gen.records(1)), agoS: 1 });
    writeLogs(logs, files);
    const db = join(dir, 'files.duckdb');
    const config = join(dir, 'files.yaml');
    writeFileSync(
      config,
      [
        'pipelines:',
        '  logs:',
        `    source: { type: pg_logs, path: ${JSON.stringify(logs)}, server: db1 }`,
        '    sinks:',
        `      - ${JSON.stringify({ type: 'archive', bucket, endpoint: s3.url, force_path_style: true, access_key_id: KEY.accessKeyId, secret_access_key: KEY.secretAccessKey, part_size: '5MiB' })}`,
        `      - { type: duckdb, path: ${JSON.stringify(db)}, store_events: false }`,
        '',
      ].join('\n'),
    );
    await s3.faults([{ match: { op: ['UploadPart', 'PutObject', 'CompleteMultipartUpload'], bucket }, action: { type: 'delay', ms: 120 }, times: 'always' }]);
    let landed: number;
    try {
      landed = await killLoop(config, 8, 3);
    } finally {
      await s3.clearFaults();
    }
    assert.ok(landed >= 6, `kills landed: ${landed}`);
    const all = await listAll(bucket);
    const entries = manifest(all);
    assert.deepEqual(entries.map((e) => e.source.name).sort(), [...contents.keys()].sort(), 'each file exactly once in the manifest');
    assert.deepEqual([...all.keys()].filter((k) => !k.startsWith('_manifest/')).sort(), entries.map((e) => e.key).sort(), 'no object outside the manifest');
    for (const e of entries) assert.ok(decode(all.get(e.key)!, 'gzip').equals(contents.get(e.source.name)!), e.key);
    assert.equal(await openUploads(bucket), 0, 'no multipart upload left open');
    assert.equal(Number((await queryDb(db, 'SELECT count(*) AS n FROM archive_pending'))[0]!['n']), 0);
    const v = await runCli(['verify-archive', '--config', config, '--deep']);
    assert.equal(v.code, 0, v.stdout + v.stderr);
  });

  test('parquet form: killed at random points, then every event is in the archive exactly once', async () => {
    const bucket = 'kill-parquet';
    await createBucket(s3.url, bucket);
    const logs = join(dir, 'logs-parquet');
    mkdirSync(logs, { recursive: true });
    const gen = new CsvlogGenerator({ seed: 12 });
    let audit = 0;
    const files = [];
    for (let i = 0; i < 6; i++) {
      const recs = gen.records(6000);
      audit += recs.filter((r) => r.audit).length;
      files.push({ name: `postgresql-2024-05-0${i + 1}_000000.csv`, text: csvOf(recs), agoS: 1000 - i });
    }
    writeLogs(logs, files);
    const db = join(dir, 'parquet.duckdb');
    const config = join(dir, 'parquet.yaml');
    writeFileSync(
      config,
      [
        'pipelines:',
        '  logs:',
        `    source: { type: pg_logs, path: ${JSON.stringify(logs)}, server: db1 }`,
        '    sinks:',
        `      - ${JSON.stringify({ type: 'archive', form: 'parquet', bucket, endpoint: s3.url, force_path_style: true, access_key_id: KEY.accessKeyId, secret_access_key: KEY.secretAccessKey })}`,
        `      - { type: duckdb, path: ${JSON.stringify(db)} }`,
        '',
      ].join('\n'),
    );
    await s3.faults([{ match: { op: ['PutObject', 'UploadPart'], bucket }, action: { type: 'delay', ms: 200 }, times: 'always' }]);
    let landed: number;
    try {
      landed = await killLoop(config, 6, 4);
    } finally {
      await s3.clearFaults();
    }
    assert.ok(landed >= 4, `kills landed: ${landed}`);
    const all = await listAll(bucket);
    const entries = manifest(all);
    const local = join(dir, 'parquet-out');
    for (const [k, body] of all)
      if (k.endsWith('.parquet')) {
        mkdirSync(join(local, ...k.split('/').slice(0, -1)), { recursive: true });
        writeFileSync(join(local, k), body);
      }
    assert.deepEqual([...all.keys()].filter((k) => k.endsWith('.parquet')).sort(), entries.map((e) => e.key).sort(), 'no Parquet object outside the manifest');
    const rows = await duck(
      `SELECT count(*) AS n, count(DISTINCT (session_id, session_line_num)) AS d FROM read_parquet('${local}/pgaudit/**/*.parquet', hive_partitioning = true)`,
    );
    assert.equal(Number(rows[0]!['n']), audit, 'every event archived');
    assert.equal(rows[0]!['n'], rows[0]!['d'], 'no event twice');
    assert.equal(
      entries.reduce((n, e) => n + e.events!, 0),
      audit,
    );
    const stored = await queryDb(db, 'SELECT count(*) AS n FROM audit_logs');
    assert.equal(Number(stored[0]!['n']), audit);
  });

  test('rds_logs: killed while downloading and archiving, then every file shipped once — events and archive', async () => {
    const bucket = 'kill-rds';
    await createBucket(s3.url, bucket);
    const gen = new CsvlogGenerator({ seed: 13, sessionBase: 1_300_000 });
    const now = Date.now();
    let audit = 0;
    const names: string[] = [];
    for (let h = 0; h < 8; h++) {
      const recs = gen.records(3000);
      audit += recs.filter((r) => r.audit).length;
      const name = `error/postgresql.log.2024-05-01-${String(10 + h).padStart(2, '0')}.csv`;
      names.push(name);
      await rds.putFile('kill1', name, csvOf(recs), { lastWritten: now - (10 - h) * 3600e3 });
    }
    await rds.putFile('kill1', 'error/postgresql.log.2024-05-01-22.csv', '', { lastWritten: now });
    await rds.faults({ kind: 'rateLimit', action: 'download', bytesPerSecond: 2_000_000 });
    const db = join(dir, 'rds.duckdb');
    const config = join(dir, 'rds.yaml');
    writeFileSync(
      config,
      [
        'pipelines:',
        '  rds:',
        `    source: ${JSON.stringify({ type: 'rds_logs', instance: 'kill1', region: 'us-east-1', endpoint: rds.url })}`,
        '    sinks:',
        `      - ${JSON.stringify({ type: 'archive', bucket, endpoint: s3.url, force_path_style: true, access_key_id: KEY.accessKeyId, secret_access_key: KEY.secretAccessKey })}`,
        `      - { type: duckdb, path: ${JSON.stringify(db)} }`,
        '',
      ].join('\n'),
    );
    const env = { AWS_ACCESS_KEY_ID: TEST_CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: TEST_CREDENTIALS.secretAccessKey, AWS_EC2_METADATA_DISABLED: 'true' };
    let landed: number;
    try {
      landed = await killLoop(config, 6, 5, env);
    } finally {
      await rds.clearFaults();
    }
    assert.ok(landed >= 4, `kills landed: ${landed}`);
    const all = await listAll(bucket);
    const entries = manifest(all);
    assert.deepEqual(entries.map((e) => e.source.name).sort(), [...names].sort(), 'each RDS file once in the manifest');
    assert.deepEqual([...all.keys()].filter((k) => !k.startsWith('_manifest/')).sort(), entries.map((e) => e.key).sort());
    const rows = await queryDb(db, 'SELECT count(*) AS n, count(DISTINCT (session_id, session_line_num)) AS d FROM audit_logs');
    assert.equal(Number(rows[0]!['n']), audit);
    assert.equal(rows[0]!['n'], rows[0]!['d']);
    const shipped = await queryDb(db, 'SELECT count(*) AS n FROM rds_log_files');
    assert.equal(Number(shipped[0]!['n']), names.length);
  });
});
