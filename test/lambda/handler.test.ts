import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { GetObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { createBucket, s3ClientFor, spawnS3Server, type SpawnedS3Server } from '../s3-server/client.js';
import { spawnRdsServer, TEST_CREDENTIALS, type SpawnedRdsServer } from '../rds-server/client.js';
import { entriesOf, parseParts, type Entry } from '../helpers/archive.js';
import { csvOf, CsvlogGenerator, Rng } from '../helpers/csvlog-gen.js';
import { queryDb, ROOT, scratchDir } from '../helpers/ingest-cli.js';
import { AWS_CALLS } from '../../src/lambda/permissions.js';
import { templatePolicy } from './template.js';

/**
 * The Lambda handler (dist/lambda/index.js) invoked as the Lambda runtime would, in a child process with a
 * Lambda-shaped event and context (test/lambda/invoke.mjs), against the RDS and S3 test servers. Each
 * "container" is a TMPDIR of its own: a new one has no local state and fetches it from S3. The config comes from
 * the bundle directory (auditship.yaml next to LAMBDA_TASK_ROOT); the DuckDB file is relative, so under /tmp.
 * Covered: a first run; a second in a new container (state fetched, only new files shipped); a run cut short
 * by the time margin and its continuation; two overlapping invocations (one writes the state back, the other
 * stops with one line, and nothing is archived twice); SIGKILL at random points, then every file archived
 * exactly once, no multipart upload left open, the state consistent.
 */
const { dir, cleanup } = scratchDir('lambda-handler-');
const KEY = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
const INSTANCE = 'lam1';
const HANDLER = join(ROOT, 'dist', 'lambda', 'index.js');
const INVOKE = join(ROOT, 'test', 'lambda', 'invoke.mjs');
let s3: SpawnedS3Server;
let rds: SpawnedRdsServer;
const children = new Set<ChildProcess>();
const task = join(dir, 'task');
const gen = new CsvlogGenerator({ seed: 31, sessionBase: 3_100_000 });
const names: string[] = [];
let hour = 0;
let audit = 0;

before(async () => {
  s3 = await spawnS3Server({});
  rds = await spawnRdsServer({ instances: [INSTANCE] });
  await createBucket(s3.url, 'lam-archive');
  await createBucket(s3.url, 'lam-state');
  mkdirSync(task, { recursive: true });
  const s3Keys = { endpoint: s3.url, force_path_style: true, access_key_id: KEY.accessKeyId, secret_access_key: KEY.secretAccessKey };
  writeFileSync(
    join(task, 'auditship.yaml'),
    [
      'pipelines:',
      '  rds:',
      `    source: ${JSON.stringify({ type: 'rds_logs', instance: INSTANCE, region: 'us-east-1', endpoint: rds.url })}`,
      '    sinks:',
      `      - ${JSON.stringify({ type: 'archive', bucket: 'lam-archive', ...s3Keys })}`,
      `      - { type: duckdb, path: state/auditship.duckdb }`,
      `    state: ${JSON.stringify({ bucket: 'lam-state', key: 'prod/auditship.duckdb', ...s3Keys })}`,
      '',
    ].join('\n'),
  );
  // The file RDS is writing now: never shipped.
  await rds.putFile(INSTANCE, 'error/postgresql.log.2024-05-02-23.csv', '', { lastWritten: Date.now() + 3600e3 });
});
after(async () => {
  for (const c of children) c.kill('SIGKILL');
  await s3?.stop();
  await rds?.stop();
  cleanup();
});

/** Adds completed log files to the instance. */
async function addFiles(n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const recs = gen.records(1500);
    audit += recs.filter((r) => r.audit).length;
    const name = `error/postgresql.log.2024-05-01-${String(hour).padStart(2, '0')}.csv`;
    names.push(name);
    await rds.putFile(INSTANCE, name, csvOf(recs), { lastWritten: Date.parse('2024-05-01T00:00:00Z') + hour * 3600e3 });
    hour++;
  }
}

interface Invocation {
  code: number | null;
  signal: NodeJS.Signals | null;
  result?: { ok: boolean; remaining: number; pipelines: { pipeline: string; ok: boolean; filesRead?: number; remaining?: number; error?: string }[] };
  error?: string;
  stdout: string;
  stderr: string;
}

function invoke(container: string, opts: { timeoutMs?: number; marginMs?: number; killAfterMs?: number } = {}): Promise<Invocation> {
  mkdirSync(container, { recursive: true });
  const child = spawn(process.execPath, [INVOKE, HANDLER, '--timeout-ms', String(opts.timeoutMs ?? 900_000)], {
    cwd: task,
    env: {
      ...process.env,
      LAMBDA_TASK_ROOT: task,
      TMPDIR: container,
      AUDITSHIP_TIME_MARGIN_MS: String(opts.marginMs ?? 60_000),
      AWS_ACCESS_KEY_ID: TEST_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: TEST_CREDENTIALS.secretAccessKey,
      AWS_EC2_METADATA_DISABLED: 'true',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const timer = opts.killAfterMs !== undefined ? setTimeout(() => child.kill('SIGKILL'), opts.killAfterMs) : null;
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      children.delete(child);
      const last = stdout.trim().split('\n').at(-1) ?? '';
      let parsed: { result?: Invocation['result']; error?: string } = {};
      try {
        parsed = JSON.parse(last) as typeof parsed;
      } catch {
        /* killed, or no outcome line */
      }
      resolve({ code, signal, stdout, stderr, ...parsed });
    });
  });
}

async function listAll(bucket: string): Promise<Map<string, Buffer>> {
  const c = s3ClientFor(s3.url, KEY);
  const out = new Map<string, Buffer>();
  let token: string | undefined;
  do {
    const r = await c.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
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

function manifest(all: Map<string, Buffer>): Entry[] {
  return entriesOf(parseParts([...all].filter(([k]) => k.startsWith('_manifest/')).map(([key, body]) => ({ key, body }))));
}

/** Every file added so far is in the archive exactly once, nothing else is; the state in S3 agrees. */
async function assertArchivedOnce(container: string, what: string): Promise<void> {
  const all = await listAll('lam-archive');
  const entries = manifest(all);
  assert.deepEqual(entries.map((e) => e.source.name).sort(), [...names].sort(), `${what}: each file once in the manifest`);
  assert.deepEqual(
    [...all.keys()].filter((k) => !k.startsWith('_manifest/')).sort(),
    entries.map((e) => e.key).sort(),
    `${what}: no object outside the manifest`,
  );
  assert.equal(await openUploads('lam-archive'), 0, `${what}: no multipart upload left open`);
  // The state in S3 (fetched by a run in a new container, which then has nothing to do) knows every file.
  const r = await invoke(container);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.equal(r.result!.pipelines[0]!.filesRead, 0, `${what}: the state in S3 has every file shipped`);
  const db = join(container, 'state', 'auditship.duckdb');
  const shipped = await queryDb(db, 'SELECT count(*) AS n FROM rds_log_files');
  assert.equal(Number(shipped[0]!['n']), names.length);
  const rows = await queryDb(db, 'SELECT count(*) AS n, count(DISTINCT (session_id, session_line_num)) AS d FROM audit_logs');
  assert.equal(Number(rows[0]!['n']), audit, `${what}: every event stored once`);
  assert.equal(rows[0]!['n'], rows[0]!['d']);
}

let containers = 0;
const container = () => join(dir, `container-${++containers}`);

describe('the Lambda handler against the RDS and S3 test servers', { concurrency: false }, () => {
  test('a first run ships every completed file and writes the state to S3; a new container continues from it', async () => {
    await addFiles(4);
    const first = await invoke(container());
    assert.equal(first.code, 0, first.stdout + first.stderr);
    assert.equal(first.result!.ok, true);
    assert.equal(first.result!.pipelines[0]!.filesRead, 4);
    assert.equal(first.result!.remaining, 0);
    const puts = await s3.requests({ op: 'PutObject', bucket: 'lam-state' });
    assert.equal(puts.length, 1);
    assert.equal(puts[0]!.headers['if-none-match'], '*', 'the first state is written only where there is none');
    // Logs are JSON lines with the request id, and no statement text.
    const lines = first.stdout.trim().split('\n').slice(0, -1);
    assert.ok(lines.length > 3);
    for (const l of lines) assert.ok((JSON.parse(l) as { requestId?: string }).requestId, l);
    await addFiles(2);
    const second = await invoke(container());
    assert.equal(second.code, 0, second.stdout + second.stderr);
    assert.equal(second.result!.pipelines[0]!.filesRead, 2, 'only the new files');
    const conditional = (await s3.requests({ op: 'PutObject', bucket: 'lam-state' })).at(-1)!;
    assert.match(String(conditional.headers['if-match']), /^"?[0-9a-f-]+"?$/, 'written back If-Match the ETag fetched');
    await assertArchivedOnce(container(), 'after two runs');
  });

  test('a warm container whose state is current does not download it again', async () => {
    const warm = container();
    assert.equal((await invoke(warm)).code, 0);
    await s3.clearRequests();
    const again = await invoke(warm);
    assert.equal(again.code, 0, again.stdout + again.stderr);
    const gets = await s3.requests({ op: 'GetObject', bucket: 'lam-state' });
    assert.equal(gets.length, 1);
    assert.equal(gets[0]!.status, 304, 'If-None-Match on the ETag it holds: not modified');
    // Nothing new was stored: the file is as fetched, so it is not written back either.
    assert.equal((await s3.requests({ op: 'PutObject', bucket: 'lam-state' })).length, 0, 'no write-back of an unchanged state');
    assert.match(again.stdout, /State unchanged: not written back/);
  });

  test('a run cut short by the time margin commits what it shipped and reports the rest; the next continues', async () => {
    await addFiles(5);
    // Each download takes about 2 s: with 6 s before the margin (start-up and the state's fetch included, on a
    // loaded machine too), the run starts one to three of the five files.
    await rds.faults({ kind: 'rateLimit', action: 'download', bytesPerSecond: 250_000 });
    let cut: Invocation;
    try {
      cut = await invoke(container(), { timeoutMs: 66_000, marginMs: 60_000 });
    } finally {
      await rds.clearFaults();
    }
    assert.equal(cut.code, 0, cut.stdout + cut.stderr);
    const p = cut.result!.pipelines[0]!;
    assert.ok(p.filesRead! >= 1 && p.filesRead! < 5, `shipped ${p.filesRead}`);
    assert.equal(cut.result!.remaining, 5 - p.filesRead!);
    assert.match(cut.stdout, /Not starting another file: the time left is short/);
    const next = await invoke(container());
    assert.equal(next.code, 0, next.stdout + next.stderr);
    assert.equal(next.result!.pipelines[0]!.filesRead, 5 - p.filesRead!);
    assert.equal(next.result!.remaining, 0);
    await assertArchivedOnce(container(), 'after a run cut short');
  });

  test('two overlapping invocations: one writes the state back, the other stops with one line; nothing twice', async () => {
    await addFiles(3);
    // Slow downloads: both fetch the same state before either writes it back.
    await rds.faults({ kind: 'rateLimit', action: 'download', bytesPerSecond: 400_000 });
    let a: Invocation, b: Invocation;
    try {
      [a, b] = await Promise.all([invoke(container()), invoke(container())]);
    } finally {
      await rds.clearFaults();
    }
    const outcomes = [a, b].map((r) => r.code).sort();
    assert.deepEqual(outcomes, [0, 1], a.stdout + b.stdout);
    const loser = a.code === 1 ? a : b;
    assert.match(loser.error!, /rds \(the state s3:\/\/lam-state\/prod\/auditship\.duckdb was moved by another run since this one fetched it/);
    await assertArchivedOnce(container(), 'after overlapping runs');
  });

  test('SIGKILL at random points across containers, then every file is archived exactly once, no upload open', async () => {
    await addFiles(6);
    await rds.faults({ kind: 'rateLimit', action: 'download', bytesPerSecond: 1_500_000 });
    const rng = new Rng(17);
    const warm = container();
    let killed = 0;
    try {
      for (let i = 0; i < 8; i++) {
        // Half in one warm container (its local copy is ahead of S3 after a kill), half in new ones.
        const r = await invoke(i % 2 === 0 ? warm : container(), { killAfterMs: 300 + rng.int(0, 2500) });
        if (r.signal === 'SIGKILL') killed++;
        else assert.equal(r.code, 0, r.stdout + r.stderr);
      }
    } finally {
      await rds.clearFaults();
    }
    assert.ok(killed >= 4, `kills landed: ${killed}`);
    const final = await invoke(container());
    assert.equal(final.code, 0, final.stdout + final.stderr);
    await assertArchivedOnce(container(), 'after the kills');
  });

  test("every request the test servers saw is one the template's policy grants", async () => {
    const { statements, conditional } = templatePolicy();
    const granted = new Set([...statements, ...conditional].flatMap((st) => st.Action));
    const s3Ops = new Set<string>((await s3.requests({})).map((r) => r.op));
    const rdsActions = new Set((await rds.stats()).recent.map((r) => (r.action === 'download' ? 'downloadCompleteLogFile' : r.action)));
    assert.ok(s3Ops.has('PutObject') && s3Ops.has('GetObject') && rdsActions.has('DescribeDBLogFiles'), [...s3Ops, ...rdsActions].join(' '));
    for (const call of [...s3Ops, ...rdsActions]) {
      const actions = AWS_CALLS[call];
      assert.ok(actions, `${call} is not in src/lambda/permissions.ts`);
      for (const a of actions) assert.ok(granted.has(a), `${call} needs ${a}, which the template does not grant`);
    }
  });
});
