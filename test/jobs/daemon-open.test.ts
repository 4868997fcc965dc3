import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { spawnEsServer, type EsStats, type SpawnedEsServer } from '../es-server/client.js';
import { s3ClientFor, spawnS3Server, type SpawnedS3Server } from '../s3-server/client.js';
import type { RecordedRequest } from '../s3-server/server.js';
import { entriesOf, parseParts } from '../helpers/archive.js';
import { CsvlogGenerator, auditOnly, csvOf, type GenRecord } from '../helpers/csvlog-gen.js';
import { queryDb, scratchDir, spawnCli, type CliChild } from '../helpers/ingest-cli.js';

/**
 * `auditship run --follow` keeps its pipeline open: a pg_logs pipeline into Elasticsearch, a Parquet archive in a
 * bucket and DuckDB, polling every second, asks neither the cluster nor the bucket anything during an idle minute
 * (no template PUT, privilege check, cluster info, HeadBucket, manifest part — no request at all); the open
 * pipeline then ships what is appended, exactly once. When the cluster refuses bulk requests until the pass
 * fails, the daemon closes the pipeline, opens it again (one more cluster check, templates, privileges,
 * HeadBucket) and ships the events of the failed pass, none lost, none twice.
 *
 * IDLE_MS (env AUDITSHIP_IDLE_MS, default 60 s) is the idle stretch; the figures are printed as diagnostics
 * (run with AUDITSHIP_BIN=<other build>/bin/auditship.js to get them for another build).
 */
const IDLE_MS = Number(process.env['AUDITSHIP_IDLE_MS'] ?? 60_000);
const { dir, cleanup } = scratchDir('daemon-open');
const KEY = { accessKeyId: 'AKIAAUDITSHIPDAEMON1', secretAccessKey: 'daemon/secret/KEY/for/s3' };
const USER = { username: 'shipper', password: 'daemon-test-password' };
let es: SpawnedEsServer | undefined;
let s3: SpawnedS3Server | undefined;
let daemon: CliChild | undefined;
after(async () => {
  daemon?.kill('SIGKILL');
  await es?.stop();
  await s3?.stop();
  cleanup();
});

/** utime + stime of a process, in seconds (Linux). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8')
    .replace(/^.*\) /, '')
    .split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Resident memory of a process, MB (Linux). */
function rssMb(pid: number): number {
  return Math.round(Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024);
}

function count(reqs: RecordedRequest[], pred: (r: RecordedRequest) => boolean): number {
  return reqs.filter(pred).length;
}

test(
  'run --follow: an idle minute asks nothing of Elasticsearch or S3; appended events arrive once; a failing cluster is reopened without loss',
  { timeout: IDLE_MS + 180_000 },
  async (t) => {
    es = await spawnEsServer({ flavor: 'elasticsearch', auth: { users: [USER] } });
    s3 = await spawnS3Server({ accessKeys: [KEY], buckets: ['daemon'] });
    const logs = join(dir, 'logs');
    mkdirSync(logs);
    const now = Date.now() / 1000;
    const gen = new CsvlogGenerator({ seed: 1616, sessionBase: 1_616_000, startMs: Date.UTC(2026, 2, 1, 8) });
    const f1 = join(logs, 'postgresql-2026-03-01_080000.csv');
    const f2 = join(logs, 'postgresql-2026-03-01_090000.csv');
    const all: GenRecord[] = [];
    const write = (path: string, recs: GenRecord[], agoS: number, append = false) => {
      if (append) appendFileSync(path, csvOf(recs));
      else writeFileSync(path, csvOf(recs));
      utimesSync(path, now - agoS, now - agoS);
      all.push(...recs);
    };
    write(f1, gen.records(3000), 600);
    write(f2, gen.records(1500), 300);
    const db = join(dir, 'daemon.duckdb');
    const config = join(dir, 'daemon.yaml');
    writeFileSync(
      config,
      [
        'pipelines:',
        '  logs:',
        `    source: { type: pg_logs, path: ${JSON.stringify(logs)}, server: db1, poll_interval_ms: 1000 }`,
        '    sinks:',
        `      - ${JSON.stringify({ type: 'elasticsearch', url: es.url, ...USER, max_retries: 1 })}`,
        `      - ${JSON.stringify({ type: 'archive', endpoint: s3.url, bucket: 'daemon', force_path_style: true, region: 'us-east-1', access_key_id: KEY.accessKeyId, secret_access_key: KEY.secretAccessKey, form: 'parquet' })}`,
        `      - ${JSON.stringify({ type: 'duckdb', path: db })}`,
        '',
      ].join('\n'),
    );
    daemon = spawnCli(['run', '--config', config, '--follow']);
    let stderr = '';
    daemon.stderr!.on('data', (d: string) => {
      stderr += d;
    });

    const status = (): Record<string, unknown> => {
      try {
        return (JSON.parse(readFileSync(`${db}.status.json`, 'utf8')) as { pipelines: Record<string, unknown>[] }).pipelines[0] ?? {};
      } catch {
        return {};
      }
    };
    const esEvents = async () =>
      Object.entries((await es!.stats()).indices)
        .filter(([name]) => name.startsWith('auditship-pgaudit-'))
        .reduce((n, [, c]) => n + c, 0);
    const until = async (what: string, ok: () => Promise<boolean> | boolean, ms = 60_000) => {
      const deadline = Date.now() + ms;
      while (!(await ok())) {
        assert.ok(Date.now() < deadline && daemon!.exitCode === null, `timed out waiting for ${what}: ${JSON.stringify(status())}\n${stderr.slice(-3000)}`);
        await sleep(100);
      }
    };
    const shipped = (n: number) =>
      until(`${n} events shipped`, async () => Number(status()['stored']) === n && status()['state'] === 'following' && (await esEvents()) === n);
    /** Parquet archive: events per manifest entry (committed and published), and the request log. */
    const archivedEvents = async () => {
      const c = s3ClientFor(s3!.url, KEY);
      try {
        const listed = await c.send(new ListObjectsV2Command({ Bucket: 'daemon', Prefix: '_manifest/' }));
        const parts = [];
        for (const o of listed.Contents ?? []) {
          const g = await c.send(new GetObjectCommand({ Bucket: 'daemon', Key: o.Key! }));
          parts.push({ key: o.Key!, body: Buffer.from(await g.Body!.transformToByteArray()) });
        }
        return entriesOf(parseParts(parts))
          .filter((e) => e.form === 'parquet' && !e.dataset)
          .reduce((n, e) => n + (e.events ?? 0), 0);
      } finally {
        c.destroy();
      }
    };

    // 1. The first pass ships both files.
    await shipped(auditOnly(all).length);
    await sleep(2500); // the passes after it find nothing new
    const es0: EsStats = await es.stats();
    const s3seq = Math.max(0, ...(await s3.requests()).map((r) => r.seq));
    const cpu0 = cpuSeconds(daemon.pid!);

    // 2. An idle minute: one pass a second, nothing asked of the cluster or the bucket.
    await sleep(IDLE_MS);
    const cpu1 = cpuSeconds(daemon.pid!);
    const es1 = await es.stats();
    const idle = await s3.requests({ since: s3seq });
    const lastRun = Date.parse(String(status()['lastRunAt']));
    const figures = {
      idleSeconds: IDLE_MS / 1000,
      daemonCpuSeconds: Math.round((cpu1 - cpu0) * 100) / 100,
      daemonRssMb: rssMb(daemon.pid!),
      es: {
        requests: es1.requests - es0.requests,
        rootInfo: es1.rootInfo - es0.rootInfo,
        templatePuts: es1.templatePuts - es0.templatePuts,
        mappingPuts: es1.mappingPuts - es0.mappingPuts,
        privilegeChecks: es1.privilegeChecks - es0.privilegeChecks,
        bulk: es1.bulkRequests - es0.bulkRequests,
      },
      s3: {
        requests: idle.length,
        headBucket: count(idle, (r) => r.op === 'HeadBucket'),
        manifestPuts: count(idle, (r) => r.op === 'PutObject' && (r.key ?? '').startsWith('_manifest/')),
        puts: count(idle, (r) => r.op === 'PutObject'),
      },
    };
    t.diagnostic(`idle ${JSON.stringify(figures)}`);
    assert.ok(Date.now() - lastRun < 5000, `the daemon kept polling (last pass ${Date.now() - lastRun} ms ago)`);
    assert.deepEqual(
      figures.es,
      { requests: 0, rootInfo: 0, templatePuts: 0, mappingPuts: 0, privilegeChecks: 0, bulk: 0 },
      'no request to Elasticsearch while idle',
    );
    assert.deepEqual(figures.s3, { requests: 0, headBucket: 0, manifestPuts: 0, puts: 0 }, 'no request to S3 while idle');

    // 3. New events after the idle minute: the active file grows and a new file starts; the open pipeline ships them once.
    write(f2, gen.records(700), 120, true);
    const f3 = join(logs, 'postgresql-2026-03-01_100000.csv');
    write(f3, gen.records(900), 1);
    await shipped(auditOnly(all).length);
    await until('the archive', async () => (await archivedEvents()) === auditOnly(all).length);
    const es2 = await es.stats();
    assert.deepEqual(
      [es2.rootInfo - es0.rootInfo, es2.templatePuts - es0.templatePuts, es2.privilegeChecks - es0.privilegeChecks],
      [0, 0, 0],
      'shipped through the open sinks',
    );
    assert.equal(
      count(await s3.requests({ since: s3seq }), (r) => r.op === 'HeadBucket'),
      0,
    );

    // 4. The cluster refuses bulk requests until a pass fails: the pipeline is reopened, and the events of the
    // failed pass arrive once.
    const s3seq2 = Math.max(0, ...(await s3.requests()).map((r) => r.seq));
    await es.faults({ bulk503: 2 });
    write(f3, gen.records(400), 0, true);
    await shipped(auditOnly(all).length);
    await until('the archive', async () => (await archivedEvents()) === auditOnly(all).length);
    const es3 = await es.stats();
    const reopened = {
      rootInfo: es3.rootInfo - es2.rootInfo,
      templatePuts: es3.templatePuts - es2.templatePuts,
      privilegeChecks: es3.privilegeChecks - es2.privilegeChecks,
      rejected503: es3.rejected503 - es2.rejected503,
    };
    t.diagnostic(`reopen ${JSON.stringify(reopened)}`);
    assert.deepEqual(
      reopened,
      { rootInfo: 1, templatePuts: 3, privilegeChecks: 1, rejected503: 2 },
      'one reopen: cluster info, three templates, one privilege check',
    );
    assert.equal(
      count(await s3.requests({ since: s3seq2 }), (r) => r.op === 'HeadBucket'),
      1,
      'the archive reopened too',
    );
    assert.equal((stderr.match(/Pipeline run failed; retrying\./g) ?? []).length, 1, stderr.slice(-3000));
    assert.equal((stderr.match(/Elasticsearch sink ready\./g) ?? []).length, 2, 'opened at start and once after the failure');

    daemon.kill('SIGTERM');
    const r = await daemon.result;
    assert.equal(r.code, 0, r.stderr.slice(-3000));
    const total = auditOnly(all).length;
    const [row] = await queryDb(db, `SELECT count(*)::INTEGER AS n, count(DISTINCT (session_id, session_line_num))::INTEGER AS d FROM audit_logs`);
    assert.deepEqual(row, { n: total, d: total }, 'DuckDB: every event once');
    assert.equal(await esEvents(), total, 'Elasticsearch: every event once');
    assert.equal(await archivedEvents(), total, 'the Parquet archive: every event once');
  },
);
