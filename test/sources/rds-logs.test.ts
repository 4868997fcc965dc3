import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { spawnRdsServer, TEST_CREDENTIALS, type SpawnedRdsServer } from '../rds-server/client.js';
import { decode, entriesOf, localManifest, sha256 } from '../helpers/archive.js';
import { csvOf, CsvlogGenerator } from '../helpers/csvlog-gen.js';
import { readFileSync as readStatus } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { hasStackTrace, queryDb, runCli, scratchDir, spawnCli } from '../helpers/ingest-cli.js';

/**
 * Source rds_logs against the RDS test server (test/rds-server, its own process; no AWS here): completed
 * files found by listing (every page, any order), the live ones skipped, each file downloaded (REST, SigV4
 * with the session token; or portions, with the 1 MB truncation), checked, parsed into DuckDB and archived
 * whole, exactly once, through throttling, 500s, resets, cut downloads and files that grow while they are
 * downloaded; credential and permission problems as one line.
 */
const { dir, cleanup } = scratchDir('rds-logs');
const ROLE = { accessKeyId: 'ASIAEXAMPLEROLEKEY01', secretAccessKey: 'role/secret/EXAMPLEKEY', sessionToken: 'FwoGZXIvYXdzEXAMPLETOKEN//////////wEaDG' };
const ENV = {
  AWS_ACCESS_KEY_ID: TEST_CREDENTIALS.accessKeyId,
  AWS_SECRET_ACCESS_KEY: TEST_CREDENTIALS.secretAccessKey,
  AWS_SESSION_TOKEN: '',
  AWS_EC2_METADATA_DISABLED: 'true',
  AWS_REGION: 'us-east-1',
};
let seq = 0;
let rds: SpawnedRdsServer;
const H = 3600_000;

before(async () => {
  rds = await spawnRdsServer({ credentials: [TEST_CREDENTIALS, ROLE], instances: ['db1'], shuffleListing: true, describeDefaultMaxRecords: 20 });
});
after(async () => {
  await rds?.stop();
  cleanup();
});

function setup(source: Record<string, unknown> = {}, archive: Record<string, unknown> | null = {}) {
  const base = join(dir, `t${seq++}`);
  mkdirSync(base, { recursive: true });
  const db = join(base, 'a.duckdb');
  const arch = join(base, 'archive');
  const lines = ['pipelines:', '  rds:', `    source: ${JSON.stringify({ type: 'rds_logs', instance: 'db1', endpoint: rds.url, ...source })}`, '    sinks:'];
  if (archive) lines.push(`      - ${JSON.stringify({ type: 'archive', directory: arch, ...archive })}`);
  lines.push(`      - ${JSON.stringify({ type: 'duckdb', path: db })}`);
  const config = join(base, 'c.yaml');
  writeFileSync(config, lines.join('\n') + '\n');
  return { config, db, arch };
}

interface Summary {
  events: number;
  stored: number;
  filesRead: number;
  filesSkipped: number;
  errors: { file: string; message: string }[];
  ok: boolean;
}

async function run(config: string, env: Record<string, string> = ENV, code = 0): Promise<{ summary: Summary | null; stderr: string; stdout: string }> {
  const r = await runCli(['run', '--config', config, '--json'], { env });
  assert.equal(r.code, code, `exit ${r.code}: ${r.stderr.slice(-3000)}`);
  const last = r.stdout.trim().split('\n').pop() ?? '';
  const summary = last.startsWith('{') ? (JSON.parse(last) as { pipelines: Summary[] }).pipelines[0]! : null;
  return { summary, stderr: r.stderr, stdout: r.stdout };
}

/** A fresh instance with csvlog + stderr files for the hours given (the last hour is live). */
async function instanceWith(id: string, hours: number, eventsPerFile: number, seed: number) {
  await rds.createInstance(id).catch(() => {});
  const gen = new CsvlogGenerator({ seed, sessionBase: seed * 100_000 });
  const now = Date.now();
  const files: { name: string; content: string; lastWritten: number; audit: number }[] = [];
  for (let h = 0; h < hours; h++) {
    const recs = gen.records(eventsPerFile);
    const stamp = `2024-05-01-${String(10 + h).padStart(2, '0')}`;
    const lastWritten = now - (hours - h) * H + 60_000 * (h === hours - 1 ? 59 : 0);
    files.push({ name: `error/postgresql.log.${stamp}.csv`, content: csvOf(recs), lastWritten, audit: recs.filter((r) => r.audit).length });
    files.push({
      name: `error/postgresql.log.${stamp}`,
      content: `2024-05-01 ${10 + h}:00:00 UTC::@:[1]:LOG:  checkpoint starting: time\n`,
      lastWritten,
      audit: 0,
    });
  }
  for (const f of files) await rds.putFile(id, f.name, f.content, { lastWritten: f.lastWritten });
  return files;
}

describe('rds_logs source (RDS test server)', () => {
  test('ships every completed file once (paged and shuffled listing), skips the live csvlog and stderr files, parses csvlog into DuckDB and archives every file byte for byte', async () => {
    const files = await instanceWith('db1', 12, 30, 1); // 24 files: two pages of 20
    const s = setup();
    const r1 = await run(s.config);
    const shipped = files.slice(0, -2);
    assert.equal(r1.summary!.filesRead, shipped.length);
    assert.equal(
      r1.summary!.stored,
      shipped.reduce((n, f) => n + f.audit, 0),
    );
    const entries = entriesOf(localManifest(s.arch));
    assert.deepEqual(entries.map((e) => e.source.name).sort(), shipped.map((f) => f.name).sort());
    for (const e of entries) {
      const f = files.find((x) => x.name === e.source.name)!;
      assert.ok(decode(readFileSync(join(s.arch, e.key)), 'gzip').equals(Buffer.from(f.content)), e.key);
      assert.equal(e.content_sha256, sha256(f.content));
      assert.equal(e.source.kind, 'rds_logs');
      assert.equal(e.source.location, `rds:us-east-1/db1/${f.name}`);
      assert.deepEqual(e.download, { method: 'complete' });
      if (f.name.endsWith('.csv')) assert.equal(e.events, f.audit);
    }
    const stats1 = await rds.stats();
    const downloads = stats1.requests.download;

    // Nothing new: nothing downloaded.
    const r2 = await run(s.config);
    assert.equal(r2.summary!.filesRead, 0);
    assert.equal((await rds.stats()).requests.download, downloads);

    // A new hour begins: the live files of the last hour are finished now and shipped; the new ones wait.
    const last = files.slice(-2);
    await rds.appendFile('db1', last[0]!.name, csvOf(new CsvlogGenerator({ seed: 99, sessionBase: 9_900_000 }).records(5)), {
      lastWritten: Date.now() - 30 * 60_000,
    });
    await rds.putFile('db1', 'error/postgresql.log.2024-05-01-22.csv', '', { lastWritten: Date.now() });
    await rds.putFile('db1', 'error/postgresql.log.2024-05-01-22', '', { lastWritten: Date.now() });
    const r3 = await run(s.config);
    assert.equal(r3.summary!.filesRead, 2);
    assert.equal(r3.summary!.stored, last[0]!.audit + 5);
    const rows = await queryDb(s.db, `SELECT count(*) AS n, count(DISTINCT (session_id, session_line_num)) AS d FROM audit_logs`);
    assert.equal(Number(rows[0]!['n']), files.reduce((n, f) => n + f.audit, 0) + 5);
    assert.equal(rows[0]!['n'], rows[0]!['d']);
    assert.equal(entriesOf(localManifest(s.arch)).length, files.length);
    const v = await runCli(['verify-archive', '--directory', s.arch, '--deep']);
    assert.equal(v.code, 0, v.stdout + v.stderr);
    const paths = await queryDb(s.db, `SELECT DISTINCT path FROM ingest_files ORDER BY 1 LIMIT 1`);
    assert.match(String(paths[0]!['path']), /^rds:us-east-1\/db1\/error\/postgresql\.log\.2024-05-01-10\.csv$/);
  });

  test('role credentials: the REST download is signed with the session token', async () => {
    await instanceWith('db2', 2, 10, 2);
    const s = setup({ instance: 'db2' });
    await run(s.config, { ...ENV, AWS_ACCESS_KEY_ID: ROLE.accessKeyId, AWS_SECRET_ACCESS_KEY: ROLE.secretAccessKey, AWS_SESSION_TOKEN: ROLE.sessionToken });
    const recent = (await rds.stats()).recent.filter((x) => x.instance === 'db2');
    assert.ok(recent.some((x) => x.action === 'download'));
    assert.ok(
      recent.every((x) => x.sessionToken === 'signed' && x.outcome === 'ok'),
      JSON.stringify(recent.map((x) => [x.action, x.sessionToken, x.outcome])),
    );
    assert.equal(entriesOf(localManifest(s.arch)).length, 2);
  });

  test('portions: a portion cut at 1 MB is asked again with fewer lines (the copy is exact); a line longer than a portion is kept truncated, counted in the manifest, and its record quarantined', async () => {
    await rds.createInstance('db3').catch(() => {});
    const gen = new CsvlogGenerator({ seed: 3, sessionBase: 300_000 });
    // RDS refuses to page through text with control characters ("binary data"): leave those records out.
    const text = (n: number) => csvOf(gen.records(n).filter((r) => !/[\x00-\x08\x0b\x0c\x0e-\x1f]/.test(r.csv)));
    // ~1.4 MB of ordinary records: the first 10,000-line portion is cut at 1 MB.
    const plain = text(4000);
    // One line longer than a portion can carry (no newline in it).
    const huge = gen.withStatement(gen.records(1).pop()!, `SELECT '${'x'.repeat(1_200_000)}'`);
    const withHuge = text(20) + huge.csv + text(20);
    const now = Date.now();
    await rds.putFile('db3', 'error/postgresql.log.2024-05-01-10.csv', plain, { lastWritten: now - 3 * H });
    await rds.putFile('db3', 'error/postgresql.log.2024-05-01-11.csv', withHuge, { lastWritten: now - 2 * H });
    await rds.putFile('db3', 'error/postgresql.log.2024-05-01-12.csv', '', { lastWritten: now });
    const s = setup({ instance: 'db3', download: 'portion' });
    const r = await run(s.config);
    const st = await rds.stats();
    assert.ok(st.truncatedPortions >= 2, JSON.stringify({ t: st.truncatedPortions, req: st.requests, len: [plain.length, withHuge.length] }));
    const entries = entriesOf(localManifest(s.arch));
    const e10 = entries.find((e) => e.source.name.endsWith('-10.csv'))!;
    assert.equal(e10.content_sha256, sha256(plain), 'the cut portion was fetched again: the copy is exact');
    assert.deepEqual(e10.download, { method: 'portion' });
    const e11 = entries.find((e) => e.source.name.endsWith('-11.csv'))!;
    assert.deepEqual(e11.download, { method: 'portion', truncated_lines: 1 });
    assert.notEqual(e11.content_sha256, sha256(withHuge));
    assert.ok(r.summary!.ok);
    const q = await queryDb(s.db, `SELECT count(*) AS n FROM quarantine`);
    assert.ok(Number(q[0]!['n']) >= 1, 'the truncated record is quarantined, not dropped');
    const stored = await queryDb(s.db, `SELECT count(*) AS n FROM audit_logs`);
    const audit = (t: string) => (t.match(/AUDIT: /g) ?? []).length;
    assert.equal(Number(stored[0]!['n']), audit(plain) + audit(withHuge) - 1);
    assert.match(r.stderr, /longer than the 1 MB a portion can carry/);
  });

  test('a file with control characters cannot be paged through: one clear line naming the whole-file download', async () => {
    await rds.createInstance('db8').catch(() => {});
    const now = Date.now();
    await rds.putFile('db8', 'error/postgresql.log.2024-05-01-10', 'tab\there \x01 bell\n', { lastWritten: now - 3 * H });
    await rds.putFile('db8', 'error/postgresql.log.2024-05-01-11', '', { lastWritten: now });
    const s = setup({ instance: 'db8', download: 'portion' });
    const r = await run(s.config, ENV, 1);
    assert.match(r.stderr, /RDS will not page through error\/postgresql\.log\.2024-05-01-10 .*download: complete or auto/);
    assert.ok(!hasStackTrace(r.stderr));
  });

  test('download: auto falls back to portions when the whole-file download is denied', async () => {
    await instanceWith('db4', 2, 10, 4);
    await rds.configure({ deny: ['rds:DownloadCompleteDBLogFile'] });
    try {
      const s = setup({ instance: 'db4' });
      const r = await run(s.config);
      assert.match(r.stderr, /whole-file download is refused .* by portions/);
      const entries = entriesOf(localManifest(s.arch));
      assert.equal(entries.length, 2);
      assert.ok(entries.every((e) => e.download?.method === 'portion'));
    } finally {
      await rds.configure({ deny: [] });
    }
  });

  test('throttling, 500s, resets, a cut and a slow download: every file exactly once', async () => {
    const files = await instanceWith('db5', 4, 200, 5);
    await rds.faults([
      { kind: 'throttle', action: 'DescribeDBLogFiles', count: 2 },
      { kind: 'internalError', action: 'download', count: 2 },
      { kind: 'reset', action: 'download', count: 1 },
      { kind: 'bodyReset', action: 'download', afterBytes: 5000, count: 2 },
      { kind: 'delay', action: 'download', delayMs: 300, count: 2 },
    ]);
    try {
      const s = setup({ instance: 'db5' });
      const r = await run(s.config);
      assert.equal(r.summary!.filesRead, files.length - 2);
      const entries = entriesOf(localManifest(s.arch));
      assert.equal(entries.length, files.length - 2);
      for (const e of entries) assert.equal(e.content_sha256, sha256(files.find((f) => f.name === e.source.name)!.content));
      const n = await queryDb(s.db, `SELECT count(*) AS n FROM audit_logs`);
      assert.equal(
        Number(n[0]!['n']),
        files.slice(0, -2).reduce((k, f) => k + f.audit, 0),
      );
      assert.match(r.stderr, /download failed; retrying/);
    } finally {
      await rds.clearFaults();
    }
  });

  test('a file that grows while it is downloaded is downloaded again; the copy is the grown file', async () => {
    const files = await instanceWith('db6', 2, 100, 6);
    await rds.faults({
      kind: 'appendMidDownload',
      action: 'download',
      file: files[0]!.name,
      appendData: csvOf(new CsvlogGenerator({ seed: 66, sessionBase: 6_600_000 }).records(3)),
      count: 1,
    });
    try {
      const s = setup({ instance: 'db6' });
      const r = await run(s.config);
      assert.match(r.stderr, /changed while it was downloaded/);
      const now = await rds.readFile('db6', files[0]!.name);
      const e = entriesOf(localManifest(s.arch)).find((x) => x.source.name === files[0]!.name)!;
      assert.equal(e.content_sha256, sha256(now));
      assert.equal(e.events, files[0]!.audit + 3);
    } finally {
      await rds.clearFaults();
    }
  });

  test('run --follow: files that finish while the daemon runs are shipped; SIGTERM stops it cleanly', async () => {
    const files = await instanceWith('db9', 2, 20, 9);
    const s = setup({ instance: 'db9', poll_interval_ms: 1000 });
    const daemon = spawnCli(['run', '--config', s.config, '--follow'], { env: ENV });
    const state = () => {
      try {
        return (JSON.parse(readStatus(`${s.db}.status.json`, 'utf8')) as { pipelines: Record<string, unknown>[] }).pipelines[0] ?? {};
      } catch {
        return {};
      }
    };
    const until = async (what: string, ok: () => boolean) => {
      for (let i = 0; i < 300 && !ok(); i++) await sleep(100);
      assert.ok(ok(), `timed out waiting for ${what}: ${JSON.stringify(state())}`);
    };
    try {
      await until('the first pass', () => state()['state'] === 'following' && Number(state()['stored']) === files[0]!.audit);
      // A new hour: the live files are finished now.
      await rds.putFile('db9', 'error/postgresql.log.2024-05-01-12.csv', '', { lastWritten: Date.now() });
      await rds.putFile('db9', 'error/postgresql.log.2024-05-01-12', '', { lastWritten: Date.now() });
      await until('the finished files', () => Number(state()['stored']) === files[0]!.audit + files[2]!.audit);
    } finally {
      daemon.kill('SIGTERM');
    }
    const r = await daemon.result;
    assert.equal(r.code, 0, r.stderr.slice(-2000));
    assert.equal(entriesOf(localManifest(s.arch)).length, 4);
  });

  test('credential, permission and instance problems are one line, exit 1', async () => {
    await instanceWith('db7', 2, 5, 7);
    const s = setup({ instance: 'db7' });
    const cases: [Record<string, string>, RegExp, Record<string, unknown>?][] = [
      [{ ...ENV, AWS_SECRET_ACCESS_KEY: 'wrong' }, /the secret key does not match the access key \(SignatureDoesNotMatch/],
      [{ ...ENV, AWS_ACCESS_KEY_ID: 'AKIAUNKNOWNKEY000000' }, /RDS does not accept the access key or its session token \(InvalidClientTokenId/],
      [{ ...ENV, AWS_ACCESS_KEY_ID: ROLE.accessKeyId, AWS_SECRET_ACCESS_KEY: ROLE.secretAccessKey }, /InvalidClientTokenId/],
      [
        {
          ...ENV,
          AWS_ACCESS_KEY_ID: '',
          AWS_SECRET_ACCESS_KEY: '',
          AWS_PROFILE: 'none',
          AWS_CONFIG_FILE: join(dir, 'none'),
          AWS_SHARED_CREDENTIALS_FILE: join(dir, 'none'),
        },
        /no AWS credentials/,
      ],
    ];
    for (const [env, want] of cases) {
      const r = await run(s.config, env, 1);
      assert.match(r.stderr, want);
      assert.ok(!hasStackTrace(r.stderr), r.stderr);
      assert.ok(!r.stderr.includes(ENV.AWS_SECRET_ACCESS_KEY) && !r.stderr.includes(ROLE.secretAccessKey), 'no secret in the output');
    }
    const missing = setup({ instance: 'nope' });
    const r = await run(missing.config, ENV, 1);
    assert.match(r.stderr, /there is no DB instance nope in us-east-1/);
    await rds.configure({ deny: ['rds:DescribeDBLogFiles'] });
    try {
      const d = await run(s.config, ENV, 1);
      assert.match(d.stderr, /access denied: rds:DescribeDBLogFiles on db7 \(AccessDenied\); grant rds:DescribeDBLogFiles/);
    } finally {
      await rds.configure({ deny: [] });
    }
  });

  test('two pipelines of one instance in one DuckDB file each ship every file to their own archive; a store whose shipped-file marks have no pipeline yet goes on where it was', async () => {
    const files = await instanceWith('db9', 4, 20, 9);
    const shipped = files.slice(0, -2);
    const base = join(dir, 'two');
    mkdirSync(base, { recursive: true });
    const db = join(base, 'a.duckdb');
    const config = join(base, 'c.yaml');
    const lines = ['pipelines:'];
    for (const name of ['search', 'retention']) {
      lines.push(
        `  ${name}:`,
        `    source: ${JSON.stringify({ type: 'rds_logs', instance: 'db9', endpoint: rds.url })}`,
        '    sinks:',
        `      - ${JSON.stringify({ type: 'archive', directory: join(base, name) })}`,
        `      - ${JSON.stringify({ type: 'duckdb', path: db })}`,
      );
    }
    writeFileSync(config, lines.join('\n') + '\n');
    const r = await runCli(['run', '--config', config, '--json'], { env: ENV });
    assert.equal(r.code, 0, r.stderr.slice(-3000));
    const summaries = (JSON.parse(r.stdout.trim().split('\n').pop()!) as { pipelines: Summary[] }).pipelines;
    assert.deepEqual(
      summaries.map((x) => x.filesRead),
      [shipped.length, shipped.length],
      'each pipeline shipped every file',
    );
    for (const name of ['search', 'retention']) {
      assert.deepEqual(
        entriesOf(localManifest(join(base, name)))
          .map((e) => e.source.name)
          .sort(),
        shipped.map((f) => f.name).sort(),
        `archive of ${name}`,
      );
    }
    const rows = await queryDb(db, `SELECT count(*)::INTEGER AS n, count(DISTINCT (session_id, session_line_num))::INTEGER AS d FROM audit_logs`);
    assert.deepEqual(rows[0], { n: shipped.reduce((n, f) => n + f.audit, 0), d: shipped.reduce((n, f) => n + f.audit, 0) });

    // The table as the version before wrote it (no pipeline), for a store of one pipeline: it goes on where it was.
    const one = setup({ instance: 'db9' });
    assert.equal((await run(one.config)).summary!.filesRead, shipped.length);
    await withWritableDb(one.db, async (q) => {
      await q(`CREATE TABLE old AS SELECT * EXCLUDE (pipeline) FROM rds_log_files`);
      await q('DROP TABLE rds_log_files');
      await q('ALTER TABLE old RENAME TO rds_log_files');
    });
    const again = await run(one.config);
    assert.equal(again.summary!.filesRead, 0, 'nothing shipped again');
    const marks = await queryDb(one.db, `SELECT pipeline, count(*)::INTEGER AS n FROM rds_log_files GROUP BY ALL`);
    assert.deepEqual(marks, [{ pipeline: 'rds', n: shipped.length }]);
  });
});

async function withWritableDb(path: string, fn: (q: (sql: string) => Promise<void>) => Promise<void>): Promise<void> {
  const { DuckDBInstance } = await import('@duckdb/node-api');
  const instance = await DuckDBInstance.create(path);
  const conn = await instance.connect();
  try {
    await fn(async (sql) => {
      await conn.run(sql);
    });
  } finally {
    conn.closeSync();
    instance.closeSync();
  }
}
