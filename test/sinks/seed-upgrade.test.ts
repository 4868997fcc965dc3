import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { after, describe, test } from 'node:test';
import { CsvlogGenerator, auditOnly, csvOf, digestOf, digestSql, type GenRecord } from '../helpers/csvlog-gen.js';
import { ROOT, ingestOk, queryCli, queryDb, scratchDir, spawnCli, withDb, type Query } from '../helpers/ingest-cli.js';
import { readCsvlog } from '../helpers/raw-logs.js';

/**
 * A database written by the pg_audit_to_duckdb seed script (/work/shared/seeds/000_*.txt: sequence
 * log_path_id_seq, tables log_paths, log_summary, audit_logs with the seed's columns, unique index
 * ux_audit_unique) is upgraded in place by `auditship ingest`: the seed's rows are kept with their pgaudit
 * fields parsed from `message` and server = default, the same events are not stored twice, new files are
 * added, and log_paths/log_summary are still kept up to date.
 */

const cleanups: (() => void)[] = [];
after(() => {
  for (const c of cleanups) c();
});

/** The seed's schema, verbatim from its README. */
const SEED_SCHEMA = `
CREATE SEQUENCE IF NOT EXISTS log_path_id_seq START 1;
CREATE TABLE IF NOT EXISTS log_paths (
  id   INTEGER PRIMARY KEY NOT NULL DEFAULT nextval('log_path_id_seq'),
  path VARCHAR UNIQUE
);
CREATE TABLE IF NOT EXISTS log_summary (
  log_path_id INTEGER,
  file_name   VARCHAR,
  last_mtime  DOUBLE,
  last_size   BIGINT,
  PRIMARY KEY (log_path_id, file_name),
  FOREIGN KEY (log_path_id) REFERENCES log_paths(id)
);
CREATE TABLE IF NOT EXISTS audit_logs (
  log_time         TIMESTAMP,
  user_name        VARCHAR,
  database_name    VARCHAR,
  client_addr      VARCHAR,
  message          VARCHAR,
  application_name VARCHAR,
  session_id       VARCHAR,
  session_line_num INT,
  log_path_id      INTEGER,
  file_name        VARCHAR,
  FOREIGN KEY (log_path_id) REFERENCES log_paths(id)
);
CREATE UNIQUE INDEX IF NOT EXISTS ux_audit_unique
ON audit_logs (log_path_id, session_id, session_line_num);
`;

const CSVLOG_COLUMNS = [
  'log_time',
  'user_name',
  'database_name',
  'process_id',
  'connection_from',
  'session_id',
  'session_line_num',
  'command_tag',
  'session_start_time',
  'virtual_transaction_id',
  'transaction_id',
  'error_severity',
  'sql_state_code',
  'message',
  'detail',
  'hint',
  'internal_query',
  'internal_query_pos',
  'context',
  'query',
  'query_pos',
  'location',
  'application_name',
  'backend_type',
  'leader_pid',
  'query_id',
];

const lit = (s: string) => `'${s.replaceAll("'", "''")}'`;

/**
 * What the seed does for one file: register its directory, read it with DuckDB's CSV reader, keep the
 * `AUDIT:%` messages, insert those not present (ANTI JOIN on the unique key), remember (mtime, size).
 */
async function seedIngest(q: Query, file: string): Promise<void> {
  const dir = dirname(file);
  await q(`INSERT INTO log_paths (path) SELECT ${lit(dir)} WHERE NOT EXISTS (SELECT 1 FROM log_paths WHERE path = ${lit(dir)})`);
  const [{ id }] = (await q(`SELECT id FROM log_paths WHERE path = ${lit(dir)}`)) as [{ id: number }];
  const columns = `{${CSVLOG_COLUMNS.map((c) => `'${c}': 'VARCHAR'`).join(', ')}}`;
  await q(`
    INSERT INTO audit_logs
    SELECT strptime(left(c.log_time, 23), '%Y-%m-%d %H:%M:%S.%g') AS log_time, c.user_name, c.database_name,
           c.connection_from AS client_addr, c.message, c.application_name, c.session_id,
           CAST(c.session_line_num AS INT), ${id}, ${lit(basename(file))}
    FROM read_csv(${lit(file)}, header = false, quote = '"', escape = '"', columns = ${columns}, parallel = false) AS c
    ANTI JOIN audit_logs AS a
      ON a.log_path_id = ${id} AND a.session_id = c.session_id AND a.session_line_num = CAST(c.session_line_num AS INT)
    WHERE c.message LIKE 'AUDIT:%'`);
  const st = statSync(file);
  await q(`INSERT OR REPLACE INTO log_summary VALUES (${id}, ${lit(basename(file))}, ${st.mtimeMs / 1000}, ${st.size})`);
}

const FIELDS = `session_id, session_line_num, epoch_ms(log_time) AS t, user_name, database_name, application_name, message,
  audit_type, statement_id, substatement_id, class, command, object_type, object_name, md5(statement) AS statement,
  md5(parameter) AS parameter, rows, server`;
const ORDER = 'ORDER BY session_id, session_line_num';

interface SeedSetup {
  dir: string;
  db: string;
  dirA: string;
  dirB: string;
  copy: string;
  recs: GenRecord[][];
  realEvents: number;
  realSeeded: number;
  seededSynthetic: number;
  seedPaths: Record<string, unknown>[];
}

/** Log files, and a database the seed wrote from some of them. */
async function buildSeed(name: string): Promise<SeedSetup> {
  const s = scratchDir(name);
  cleanups.push(s.cleanup);
  const dir = s.dir;
  const base = Math.floor(Date.now() / 1000) - 86_400;
  const write = (path: string, content: string, minute: number) => {
    writeFileSync(path, content);
    utimesSync(path, base + minute * 60, base + minute * 60);
    return path;
  };

  // Synthetic logs: a1, a2 read by the seed; a3 was the newest (skipped by the seed); a4 arrives later.
  const dirA = join(dir, 'synthetic');
  mkdirSync(dirA);
  const gen = new CsvlogGenerator({ seed: 5150, sessionBase: 5_000_000 });
  const recs: GenRecord[][] = [gen.records(3000), gen.records(3000), gen.records(3000), gen.records(3000)];
  const fa = recs.slice(0, 3).map((r, i) => write(join(dirA, `postgresql-2024-05-01_1${i}0000.csv`), csvOf(r), i));
  // The seed also read a copy of a1 through another directory: its unique index (per log_path_id) let
  // the same events in twice.
  const dirCopy = join(dir, 'copy');
  mkdirSync(dirCopy);
  const copy = join(dirCopy, basename(fa[0]!));
  copyFileSync(fa[0]!, copy);

  // Real logs: the plain csvlog read by the seed in single-file mode; the gzipped one it cannot read.
  const dirB = join(dir, 'real');
  mkdirSync(dirB);
  const examples = join(ROOT, 'examples', 'pgaudit-logs');
  const realPlain = join(dirB, 'postgresql-2026-11-22_031157.csv');
  const realGz = join(dirB, 'postgresql-2026-11-22_031156.csv.gz');
  copyFileSync(join(examples, basename(realPlain)), realPlain);
  copyFileSync(join(examples, basename(realGz)), realGz);
  utimesSync(realGz, base, base);
  utimesSync(realPlain, base + 60, base + 60);
  const realEvents = readCsvlog([realGz, realPlain]).filter((r) => r.audit).length;
  const realSeeded = readCsvlog([realPlain]).filter((r) => r.audit).length;

  const db = join(dir, 'pgsql.duckdb');
  const seeded = await withDb(
    db,
    async (q) => {
      await q(SEED_SCHEMA);
      for (const f of [fa[0]!, fa[1]!, copy, realPlain]) await seedIngest(q, f);
      return Number((await q('SELECT count(*) AS n FROM audit_logs'))[0]!['n']);
    },
    false,
  );
  const seededSynthetic = auditOnly([...recs[0]!, ...recs[1]!]).length;
  assert.equal(seeded, seededSynthetic + auditOnly(recs[0]!).length + realSeeded, 'the seed emulation stored what the seed would');
  const seedPaths = await withDb(db, (q) => q('SELECT id, path FROM log_paths ORDER BY id'));

  write(join(dirA, 'postgresql-2024-05-01_130000.csv'), csvOf(recs[3]!), 3);

  return { dir, db, dirA, dirB, copy, recs, realEvents, realSeeded, seededSynthetic, seedPaths };
}

describe('upgrading a pg_audit_to_duckdb database in place', () => {
  test('seed rows are kept and parsed, the same events are not duplicated, new files are added', { timeout: 120_000 }, async () => {
    const { dir, db, dirA, dirB, copy, recs, realEvents, realSeeded, seededSynthetic, seedPaths } = await buildSeed('seed');
    // The upgrade, by an ordinary ingest of the same directories.
    const run = await ingestOk(db, [dirA, dirB]);
    const allSynthetic = recs.flat();
    const newEvents = auditOnly([...recs[2]!, ...recs[3]!]).length + (realEvents - realSeeded);
    assert.equal(run.stored, newEvents, 'only events the seed had not stored are new');
    assert.equal(run.duplicates, seededSynthetic + realSeeded, "the seed's events are recognised");

    // Every event once (the seed's double of a1 deduplicated), synthetic statements intact.
    assert.equal(Number((await queryCli(db, 'SELECT count(*) - count(DISTINCT (session_id, session_line_num)) AS d FROM audit_logs'))[0]!['d']), 0);
    assert.equal(Number((await queryCli(db, 'SELECT count(*) AS n FROM audit_logs'))[0]!['n']), auditOnly(allSynthetic).length + realEvents);
    const [got] = await queryCli(db, digestSql(`session_id IN (SELECT DISTINCT session_id FROM audit_logs WHERE file_name LIKE 'postgresql-2024-%')`));
    assert.deepEqual({ count: Number(got!['count']), statementBytes: Number(got!['statement_bytes']), md5: got!['md5'] }, digestOf(allSynthetic));

    // The seed's rows now look like rows auditship wrote itself (same fields parsed from the message).
    const fresh = join(dir, 'fresh.duckdb');
    await ingestOk(fresh, [dirA, dirB]);
    // (Read in-process: `auditship query` output through a pipe is cut at 64 KiB — reported separately.)
    const upgradedRows = await queryDb(db, `SELECT ${FIELDS} FROM audit_logs ${ORDER}`);
    const freshRows = await queryDb(fresh, `SELECT ${FIELDS} FROM audit_logs ${ORDER}`);
    assert.equal(upgradedRows.length, freshRows.length);
    for (let i = 0; i < freshRows.length; i++) {
      assert.deepEqual(upgradedRows[i], freshRows[i], `row ${i} (${freshRows[i]!['session_id']}, ${freshRows[i]!['session_line_num']})`);
    }
    const types = await queryCli(db, `SELECT data_type FROM information_schema.columns WHERE table_name = 'audit_logs' AND column_name = 'log_time'`);
    assert.equal(types[0]!['data_type'], 'TIMESTAMP WITH TIME ZONE');

    // log_paths: the seed's ids kept, no second row for a directory; new rows carry the seed's id.
    const paths = await queryCli(db, 'SELECT id, path FROM log_paths ORDER BY id');
    for (const p of seedPaths)
      assert.ok(
        paths.some((r) => Number(r['id']) === Number(p['id']) && r['path'] === p['path']),
        `log_paths keeps ${p['path']}`,
      );
    assert.equal(new Set(paths.map((r) => r['path'])).size, paths.length, 'one row per directory');
    const idA = Number(seedPaths.find((p) => p['path'] === dirA)!['id']);
    const newRows = await queryCli(
      db,
      `SELECT DISTINCT log_path_id FROM audit_logs WHERE file_name IN ('postgresql-2024-05-01_120000.csv', 'postgresql-2024-05-01_130000.csv')`,
    );
    assert.deepEqual(
      newRows.map((r) => Number(r['log_path_id'])),
      [idA],
    );

    // log_summary: the new files are summarised with their size; the seed's rows are still there.
    const summary = await queryCli(db, 'SELECT log_path_id, file_name, last_size FROM log_summary ORDER BY log_path_id, file_name');
    for (const f of ['postgresql-2024-05-01_120000.csv', 'postgresql-2024-05-01_130000.csv']) {
      const row = summary.find((r) => Number(r['log_path_id']) === idA && r['file_name'] === f);
      assert.ok(row, `log_summary has ${f}`);
      assert.equal(Number(row['last_size']), statSync(join(dirA, f)).size);
    }
    assert.ok(
      summary.some((r) => r['file_name'] === basename(copy)),
      "the seed's summary rows are kept",
    );

    // And from now on it is an auditship database: a rerun reads nothing, stores nothing.
    const again = await ingestOk(db, [dirA, dirB]);
    assert.deepEqual({ stored: again.stored, events: again.events }, { stored: 0, events: 0 });
  });

  test(
    'a SIGKILL during the upgrade leaves the seed database or the upgraded one, never a mix',
    {
      timeout: 120_000,
    },
    async (t) => {
      const { dir, db, dirA, dirB, recs, realEvents, seededSynthetic, realSeeded } = await buildSeed('seed-kill');
      const pristine = readFileSync(db);
      const seedRows = await withDb(db, async (q) => Number((await q('SELECT count(*) AS n FROM audit_logs'))[0]!['n']));
      const expected = auditOnly(recs.flat()).length + realEvents;
      const probe = join(dir, 'probe.duckdb');
      writeFileSync(probe, pristine);
      let t0 = Date.now();
      await ingestOk(probe, [dirA, dirB]);
      const fullMs = Date.now() - t0;
      const log: string[] = [];
      for (let i = 0; i < 8; i++) {
        const target = join(dir, `kill-${i}.duckdb`);
        writeFileSync(target, pristine);
        const delay = Math.round(fullMs * (0.2 + 0.1 * i));
        const child = spawnCli(['ingest', '--db', target, '--quiet', dirA, dirB]);
        const timer = setTimeout(() => child.kill('SIGKILL'), delay);
        t0 = Date.now();
        const r = await child.result;
        clearTimeout(timer);
        assert.ok(r.signal === 'SIGKILL' || r.code === 0, `run ${i}: ${r.stderr}`);
        const state = await withDb(target, async (q) => {
          const cols = await q(`SELECT count(*) AS n FROM information_schema.columns WHERE table_name = 'audit_logs' AND column_name = 'server'`);
          const [c] = await q('SELECT count(*) AS n, count(DISTINCT (session_id, session_line_num)) AS k FROM audit_logs');
          return { upgraded: Number(cols[0]!['n']) === 1, rows: Number(c!['n']), keys: Number(c!['k']) };
        });
        log.push(`run ${i}: delay ${delay} ms, ${r.signal ?? `exit ${r.code}`}, ${JSON.stringify(state)}`);
        if (state.upgraded) {
          assert.equal(state.rows, state.keys, `run ${i}: upgraded, no duplicates`);
          assert.ok(state.keys >= seededSynthetic + realSeeded, `run ${i}: upgraded but seed rows are missing`);
        } else {
          assert.equal(state.rows, seedRows, `run ${i}: not upgraded, and the seed's rows untouched`);
        }
        await ingestOk(target, [dirA, dirB]);
        const [after] = await queryCli(target, 'SELECT count(*) AS n, count(DISTINCT (session_id, session_line_num)) AS k FROM audit_logs');
        assert.deepEqual([Number(after!['n']), Number(after!['k'])], [expected, expected], `run ${i}: after a full run`);
      }
      t.diagnostic(`full run ${fullMs} ms\n${log.join('\n')}`);
    },
  );
});
