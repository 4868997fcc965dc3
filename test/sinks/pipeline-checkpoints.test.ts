import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { setTimeout as sleep } from 'node:timers/promises';
import { SCHEMA_VERSION } from '../../src/sinks/duckdb/schema.js';
import { decode, entriesOf, localManifest, writeLogs } from '../helpers/archive.js';
import { ROOT, ingestOk, queryDb, runCli, scratchDir, spawnCli } from '../helpers/ingest-cli.js';
import { generateWorkload } from '../ui/workload.js';

/**
 * Checkpoints are kept per pipeline: two pipelines that read one server's log directory into one DuckDB file
 * each deliver every file to their own sinks (before, they shared the checkpoints, and the second pipeline's
 * sinks never got a file the first had read), while the DuckDB tables hold each event once. A store of schema
 * version 3 (test/fixtures/store-v3) is upgraded in place: its checkpoints survive and are taken over by the first
 * pipeline that opens it; a pipeline of another name reads the files for its own sinks without duplicating
 * anything in DuckDB.
 */
const { dir, cleanup } = scratchDir('pipeline-checkpoints');
after(cleanup);
let seq = 0;

/** Log files of a generated workload (known sessions, errors, failed logins), the newest one active. */
function workloadLogs(logs: string, parts: { name: string; sessions: number; sessionBase: number; startMs: number; agoS: number }[]): number {
  mkdirSync(logs, { recursive: true });
  let audit = 0;
  writeLogs(
    logs,
    parts.map((p) => {
      const w = generateWorkload({ seed: p.sessionBase + 3, sessions: p.sessions, sessionBase: p.sessionBase, startMs: p.startMs, spanMs: 3 * 3600e3 });
      audit += w.counts.audit;
      return { name: p.name, text: w.csv, agoS: p.agoS };
    }),
  );
  return audit;
}

/** A config of pipelines named as given, all reading `logs` as server db1 into `db`, each with an NDJSON archive of its own. */
function twoPipelines(logs: string, db: string, names: string[], extra = ''): { config: string; archives: Record<string, string> } {
  const n = seq++;
  const archives: Record<string, string> = {};
  const lines = ['pipelines:'];
  for (const name of names) {
    archives[name] = join(dir, `archive-${n}-${name}`);
    lines.push(
      `  ${name}:`,
      `    source: { type: pg_logs, path: ${JSON.stringify(logs)}, server: db1${extra} }`,
      '    sinks:',
      `      - ${JSON.stringify({ type: 'archive', directory: archives[name], form: 'ndjson' })}`,
      `      - ${JSON.stringify({ type: 'duckdb', path: db })}`,
    );
  }
  const config = join(dir, `c${n}.yaml`);
  writeFileSync(config, lines.join('\n') + '\n');
  return { config, archives };
}

/** Identities (session_id/line) of the events in a local NDJSON archive, one per archived line. */
function archivedEvents(archive: string): string[] {
  return entriesOf(localManifest(archive))
    .filter((e) => e.form === 'ndjson' && e.key.startsWith('pgaudit-ndjson/'))
    .flatMap((e) =>
      decode(readFileSync(join(archive, e.key)), 'gzip')
        .toString('utf8')
        .split('\n')
        .filter(Boolean),
    )
    .map((l) => {
      const r = JSON.parse(l) as Record<string, unknown>;
      return `${String(r['session_id'])}/${String(r['session_line_num'])}`;
    });
}

async function storedEvents(db: string): Promise<{ rows: number; distinct: number; ids: string[] }> {
  const ids = (await queryDb(db, `SELECT session_id || '/' || session_line_num AS id FROM audit_logs ORDER BY session_id, session_line_num`)).map((r) =>
    String(r['id']),
  );
  return { rows: ids.length, distinct: new Set(ids).size, ids };
}

async function runOk(config: string): Promise<Record<string, unknown>[]> {
  const r = await runCli(['run', '--config', config, '--json']);
  assert.equal(r.code, 0, `run failed: ${r.stderr.slice(-3000)}`);
  return (JSON.parse(r.stdout.trim().split('\n').pop()!) as { pipelines: Record<string, unknown>[] }).pipelines;
}

const T0 = Date.UTC(2026, 2, 1, 8, 0, 0);

describe('checkpoints per pipeline', () => {
  test('two pipelines of one server and log directory in one DuckDB file: each archive gets every event once, DuckDB holds each once', async () => {
    const logs = join(dir, 'logs-two');
    let audit = workloadLogs(logs, [
      { name: 'postgresql-2026-03-01_080000.csv', sessions: 60, sessionBase: 0, startMs: T0, agoS: 600 },
      { name: 'postgresql-2026-03-01_110000.csv', sessions: 60, sessionBase: 1000, startMs: T0 + 3 * 3600e3, agoS: 300 },
    ]);
    const db = join(dir, 'two.duckdb');
    const { config, archives } = twoPipelines(logs, db, ['search', 'retention']);
    const first = await runOk(config);
    assert.deepEqual(
      first.map((p) => [p['pipeline'], p['events']]),
      [
        ['search', audit],
        ['retention', audit],
      ],
      'each pipeline read every file',
    );
    assert.deepEqual(
      first.map((p) => p['stored']),
      [audit, 0],
      'the second pipeline stored nothing twice',
    );

    // A new file, and the previous active one now finished: both pipelines go on from their own checkpoints.
    audit += workloadLogs(logs, [{ name: 'postgresql-2026-03-01_140000.csv', sessions: 40, sessionBase: 2000, startMs: T0 + 6 * 3600e3, agoS: 10 }]);
    const second = await runOk(config);
    assert.deepEqual(
      second.map((p) => p['stored']),
      [audit - Number(first[0]!['stored']), 0],
    );

    const stored = await storedEvents(db);
    assert.equal(stored.rows, audit);
    assert.equal(stored.distinct, audit, 'no event twice in DuckDB');
    for (const name of ['search', 'retention']) {
      const got = archivedEvents(archives[name]!);
      assert.equal(got.length, audit, `${name}: every event archived once`);
      assert.deepEqual([...got].sort(), [...stored.ids].sort(), `${name}: exactly the stored events`);
    }
    const files = await queryDb(
      db,
      `SELECT pipeline, count(*)::INTEGER AS files, sum(events)::INTEGER AS events FROM ingest_files GROUP BY ALL ORDER BY pipeline`,
    );
    assert.deepEqual(files, [
      { pipeline: 'retention', files: 3, events: audit },
      { pipeline: 'search', files: 3, events: audit },
    ]);

    // auditship status shows each pipeline's files.
    const st = await runCli(['status', '--db', db]);
    assert.equal(st.code, 0, st.stderr);
    assert.match(
      st.stdout,
      /server db1, pipeline retention\n[^]*postgresql-2026-03-01_140000\.csv[^]*server db1, pipeline search\n[^]*postgresql-2026-03-01_140000\.csv/,
    );
    const json = JSON.parse((await runCli(['status', '--db', db, '--json'])).stdout) as { files: { pipeline: string; file_name: string; events: string }[] };
    assert.deepEqual(
      json.files
        .filter((f) => f.pipeline === 'search')
        .map((f) => f.file_name)
        .sort(),
      json.files
        .filter((f) => f.pipeline === 'retention')
        .map((f) => f.file_name)
        .sort(),
    );
  });

  test('run --follow: the two pipelines run side by side, and still no event is stored twice', { timeout: 120_000 }, async () => {
    const logs = join(dir, 'logs-follow');
    let audit = workloadLogs(logs, [{ name: 'postgresql-2026-03-02_080000.csv', sessions: 80, sessionBase: 5000, startMs: T0 + 86400e3, agoS: 60 }]);
    const db = join(dir, 'follow.duckdb');
    const { config, archives } = twoPipelines(logs, db, ['a', 'b'], ', poll_interval_ms: 200');
    const daemon = spawnCli(['run', '--config', config, '--follow', '--quiet']);
    const archivedBoth = () => {
      try {
        return Math.min(archivedEvents(archives['a']!).length, archivedEvents(archives['b']!).length);
      } catch {
        return 0;
      }
    };
    const until = async (n: number) => {
      for (let i = 0; i < 300 && archivedBoth() < n; i++) await sleep(100);
      assert.equal(archivedBoth(), n, 'both archives caught up');
    };
    try {
      await until(audit);
      audit += workloadLogs(logs, [{ name: 'postgresql-2026-03-02_120000.csv', sessions: 40, sessionBase: 6000, startMs: T0 + 86400e3 + 4 * 3600e3, agoS: 1 }]);
      await until(audit);
    } finally {
      daemon.kill('SIGTERM');
    }
    const r = await daemon.result;
    assert.equal(r.code, 0, r.stderr.slice(-3000));
    const stored = await storedEvents(db);
    assert.deepEqual([stored.rows, stored.distinct], [audit, audit], 'each event stored once although both pipelines store events');
    for (const name of ['a', 'b']) assert.deepEqual([...archivedEvents(archives[name]!)].sort(), [...stored.ids].sort(), `archive of ${name}`);
  });
});

/**
 * test/fixtures/store-v3: a store written by auditship at commit fc6ad6e (schema version 3, checkpoints keyed by
 * server and fingerprint) from the first two log files of test/fixtures/store-v2.
 */
describe('a schema version 3 store is upgraded in place', () => {
  const FIXTURES = join(ROOT, 'test', 'fixtures');
  const logs = join(dir, 'v3-logs');
  const names = ['postgresql-2024-05-01_120000.csv', 'postgresql-2024-05-01_120001.csv', 'postgresql-2024-05-01_120002.csv'];
  mkdirSync(logs, { recursive: true });
  for (const f of names) writeFileSync(join(logs, f), gunzipSync(readFileSync(join(FIXTURES, 'store-v2', `${f}.gz`))));
  const copyOfFixture = (name: string) => {
    const path = join(dir, name);
    writeFileSync(path, gunzipSync(readFileSync(join(FIXTURES, 'store-v3', 'auditship-fc6ad6e.duckdb.gz'))));
    return path;
  };
  const DIGEST = `SELECT (SELECT count(*)::INTEGER FROM audit_logs) AS events,
      (SELECT count(DISTINCT (session_id, session_line_num))::INTEGER FROM audit_logs) AS identities,
      (SELECT md5(string_agg(concat_ws('|', session_id, session_line_num, statement, outcome, sqlstate), ',' ORDER BY session_id, session_line_num)) FROM audit_logs) AS rows_,
      (SELECT md5(string_agg(concat_ws('|', session_id, user_name, connected_at, disconnected_at, duration_ms), ',' ORDER BY session_id)) FROM sessions) AS sessions,
      (SELECT md5(string_agg(concat_ws('|', session_id, session_line_num, reason), ',' ORDER BY session_id, session_line_num)) FROM logon_failures) AS failures,
      (SELECT md5(string_agg(concat_ws('|', session_id, session_line_num, sqlstate, statement_id), ',' ORDER BY session_id, session_line_num)) FROM statement_errors) AS errors`;
  let fresh: Record<string, unknown>;

  test('the fixture is what that version wrote', async () => {
    const old = copyOfFixture('fixture.duckdb');
    const [facts] = await queryDb(
      old,
      `SELECT (SELECT value FROM auditship_meta WHERE key = 'schema_version') AS version,
      (SELECT count(*)::INTEGER FROM audit_logs) AS events, (SELECT count(*)::INTEGER FROM correlation_sessions) AS open_sessions,
      (SELECT list(file_name ORDER BY file_name) FROM ingest_files) AS files,
      (SELECT count(*)::INTEGER FROM information_schema.columns WHERE table_name = 'ingest_files' AND column_name = 'pipeline') AS pipeline_column`,
    );
    assert.deepEqual(facts, { version: '3', events: 5802, open_sessions: 63, files: names.slice(0, 2), pipeline_column: 0 });
    const newStore = join(dir, 'fresh.duckdb');
    assert.equal((await ingestOk(newStore, [logs])).stored, 5802 + 198);
    fresh = (await queryDb(newStore, DIGEST))[0]!;
  });

  test('the next ingest takes the checkpoints over: nothing read again, the third file read, the store equals a new one', async () => {
    const old = copyOfFixture('ingest.duckdb');
    const s = await ingestOk(old, [logs]);
    assert.deepEqual([s.events, s.stored, s.duplicates], [198, 198, 0], 'only the file the old version had not read');
    assert.deepEqual((await queryDb(old, DIGEST))[0], fresh);
    const [state] = await queryDb(
      old,
      `SELECT (SELECT value FROM auditship_meta WHERE key = 'schema_version') AS version,
      (SELECT list(DISTINCT pipeline) FROM ingest_files) AS file_pipelines, (SELECT count(*)::INTEGER FROM ingest_files) AS files,
      (SELECT list(DISTINCT pipeline) FROM correlation_sessions) AS state_pipelines`,
    );
    assert.deepEqual(state, { version: String(SCHEMA_VERSION), file_pipelines: ['ingest'], files: 3, state_pipelines: ['ingest'] });
    // And again: nothing new.
    assert.deepEqual([(await ingestOk(old, [logs])).events], [0]);
  });

  test('a run pipeline is the first to open it: it takes the checkpoints over; a pipeline of another name then archives every event, DuckDB stores none twice', async () => {
    const old = copyOfFixture('run.duckdb');
    const { config, archives } = twoPipelines(logs, old, ['main'], '');
    // server: db1 in the config, default in the fixture: a pipeline of server default.
    writeFileSync(config, readFileSync(config, 'utf8').replace('server: db1', 'server: default'));
    const [main] = await runOk(config);
    assert.deepEqual([main!['events'], main!['stored']], [198, 198], 'main went on where the store was');
    assert.equal(archivedEvents(archives['main']!).length, 198);
    assert.deepEqual((await queryDb(old, DIGEST))[0], fresh);

    const other = twoPipelines(logs, old, ['other'], '');
    writeFileSync(other.config, readFileSync(other.config, 'utf8').replace('server: db1', 'server: default'));
    const [o] = await runOk(other.config);
    assert.deepEqual([o!['events'], o!['stored'], o!['duplicates']], [5802 + 198, 0, 5802 + 198], 'read from the start, stored nothing twice');
    const ids = archivedEvents(other.archives['other']!);
    assert.equal(ids.length, 5802 + 198);
    assert.equal(new Set(ids).size, ids.length);
    assert.deepEqual((await queryDb(old, DIGEST))[0], fresh, 'DuckDB unchanged');
  });
});
