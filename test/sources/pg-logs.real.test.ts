import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { auditship, queryJson, tempDir } from '../helpers/cli.js';
import { withDb } from '../helpers/ingest-cli.js';
import { startPgCluster, type PgCluster } from '../helpers/pg-cluster.js';
import { runWorkload, timezoneSample, type ExpectedEvent } from '../helpers/workload.js';

/**
 * The main job against what PostgreSQL 15 + pgaudit really wrote: every parsed field of every audit
 * record compared with what the workload executed, from csvlog (one file gzipped, a rotation in the
 * middle) and from jsonlog, including a 10 MB statement, unicode, quotes/commas/newlines in identifiers
 * and parameters, DO blocks, roles, log_rows, object auditing and log_statement_once.
 */
interface Row {
  application_name: string | null;
  database_name: string | null;
  session_id: string;
  session_line_num: string;
  audit_type: string;
  statement_id: string;
  substatement_id: string;
  class: string;
  command: string | null;
  object_type: string | null;
  object_name: string | null;
  statement: string | null;
  statement_md5: string;
  statement_length: string;
  parameter: string | null;
  rows: string | null;
  statement_filled: boolean;
  log_time_ms: string;
  message_ok: boolean;
}

const SELECT_ROWS = `
  SELECT application_name, database_name, session_id, session_line_num::VARCHAR AS session_line_num, audit_type,
         statement_id::VARCHAR AS statement_id, substatement_id::VARCHAR AS substatement_id, class, command, object_type,
         object_name, CASE WHEN length(statement) < 100000 THEN statement END AS statement, md5(statement) AS statement_md5,
         strlen(statement)::VARCHAR AS statement_length, parameter, rows::VARCHAR AS rows, statement_filled,
         epoch_ms(log_time)::VARCHAR AS log_time_ms, starts_with(message, 'AUDIT: ') AS message_ok
  FROM audit_logs ORDER BY log_time, session_id, session_line_num`;

const md5 = (s: string) => createHash('md5').update(s, 'utf8').digest('hex');

function compare(expected: ExpectedEvent[], rows: Row[]): string[] {
  const problems: string[] = [];
  const apps = [...new Set(expected.map((e) => e.sessionApplicationName))];
  for (const app of apps) {
    const want = expected.filter((e) => e.sessionApplicationName === app);
    const got = rows
      .filter((r) => r.application_name === app)
      .sort((a, b) => a.session_id.localeCompare(b.session_id) || Number(a.session_line_num) - Number(b.session_line_num));
    if (want.length !== got.length) problems.push(`${app}: ${got.length} rows, expected ${want.length}`);
    for (let i = 0; i < Math.min(want.length, got.length); i++) {
      const e = want[i]!,
        r = got[i]!;
      const check = (field: string, actual: unknown, wanted: unknown) => {
        if (actual !== wanted)
          problems.push(`${app}#${i} ${field}: got ${JSON.stringify(actual)?.slice(0, 120)}, expected ${JSON.stringify(wanted)?.slice(0, 120)}`);
      };
      check('database_name', r.database_name, e.database);
      check('audit_type', r.audit_type, e.auditType);
      check('statement_id', Number(r.statement_id), e.statementId);
      check('substatement_id', Number(r.substatement_id), e.substatementId);
      check('class', r.class, e.class);
      check('command', r.command, e.command);
      check('object_type', r.object_type, e.objectType);
      check('object_name', r.object_name, e.objectName);
      check('statement_md5', r.statement_md5, md5(e.statement));
      check('statement_bytes', Number(r.statement_length), Buffer.byteLength(e.statement));
      if (e.statement.length < 100000) check('statement', r.statement, e.statement);
      check('parameter', r.parameter, e.parameter);
      check('rows', r.rows === null ? null : Number(r.rows), e.rows);
      check('statement_filled', r.statement_filled, e.statementOnce);
      check('message_ok', r.message_ok, true);
    }
  }
  return problems;
}

describe('pg_logs → DuckDB on logs PostgreSQL 15 + pgaudit wrote', () => {
  let cluster: PgCluster;
  let expected: ExpectedEvent[];
  const tmp = tempDir();

  before(async () => {
    cluster = await startPgCluster();
    expected = await runWorkload(cluster);
    await cluster.stop({ keepFiles: true });
  });
  after(async () => {
    tmp.cleanup();
    await cluster?.stop();
  });

  for (const format of ['csvlog', 'jsonlog'] as const) {
    test(`${format}: every field of every audit record is parsed exactly`, async () => {
      const db = `${tmp.dir}/${format}.duckdb`;
      const r = await auditship(['ingest', '--db', db, '--prefer-format', format, '--json', cluster.logDir]);
      assert.equal(r.code, 0, r.stderr);
      const summary = JSON.parse(r.stdout) as { quarantined: number; stored: number };
      assert.equal(summary.quarantined, 0);
      const rows = await queryJson<Row>(db, SELECT_ROWS);
      assert.deepEqual(compare(expected, rows), []);
      // The only audit record outside the workload is CREATE EXTENSION pgaudit at cluster start.
      assert.equal(rows.length, expected.length + 1);
      const formats = await queryJson<{ format: string; compression: string }>(db, 'SELECT DISTINCT format, compression FROM ingest_files ORDER BY ALL');
      assert.deepEqual(
        formats.map((f) => f.format),
        [format, ...(format === 'csvlog' ? [format] : [])],
      );
      if (format === 'csvlog')
        assert.ok(
          formats.some((f) => f.compression === 'gzip'),
          'the gzipped rotated file was read',
        );
    });
  }

  test('audit_logs.message, rebuilt from the parsed fields, is exactly the message pgaudit wrote', async () => {
    const raw = `${tmp.dir}/raw.duckdb`;
    const rebuilt = `${tmp.dir}/rebuilt.duckdb`;
    assert.equal((await auditship(['ingest', '--db', raw, '--store-message', '--quiet', cluster.logDir])).code, 0);
    assert.equal((await auditship(['ingest', '--db', rebuilt, '--quiet', cluster.logDir])).code, 0);
    // Compared here, in DuckDB: `auditship query` runs read statements only, and ATTACH is not one.
    const [r] = (await withDb(rebuilt, (q) =>
      q(`
      ATTACH '${raw}' AS raw (READ_ONLY);
      SELECT count(*)::VARCHAR AS n, count(*) FILTER (WHERE a.message IS DISTINCT FROM b.message)::VARCHAR AS differ,
             count(b.raw_message)::VARCHAR AS raw
      FROM audit_logs a JOIN raw.audit_logs b USING (session_id, session_line_num)`),
    )) as { n: string; differ: string; raw: string }[];
    assert.equal(r!.n, String(expected.length + 1));
    assert.equal(r!.raw, r!.n, 'the raw database kept every raw message');
    assert.equal(r!.differ, '0');
  });

  test('csvlog and jsonlog of the same server store each event once, with identical fields', async () => {
    const db = `${tmp.dir}/both.duckdb`;
    const a = await auditship(['ingest', '--db', db, '--prefer-format', 'csvlog', '--json', cluster.logDir]);
    assert.equal(a.code, 0, a.stderr);
    const b = await auditship(['ingest', '--db', db, '--prefer-format', 'jsonlog', '--json', cluster.logDir]);
    assert.equal(b.code, 0, b.stderr);
    const second = JSON.parse(b.stdout) as { stored: number; duplicates: number; events: number };
    assert.equal(second.stored, 0);
    assert.equal(second.duplicates, second.events);
    const [c] = await queryJson<{ n: string; d: string }>(
      db,
      'SELECT count(*)::VARCHAR AS n, count(DISTINCT (session_id, session_line_num))::VARCHAR AS d FROM audit_logs',
    );
    assert.equal(c!.n, String(expected.length + 1));
    assert.equal(c!.d, c!.n);
  });
});

describe('log_time is a correct TIMESTAMPTZ whatever log_timezone is', () => {
  const tmp = tempDir();
  after(() => tmp.cleanup());

  const cases = [
    { zone: 'Europe/Berlin', needsZone: false },
    { zone: 'America/Sao_Paulo', needsZone: false },
    { zone: 'Asia/Kolkata', needsZone: true },
  ];
  for (const c of cases) {
    test(`${c.zone}${c.needsZone ? ' (ambiguous abbreviation: needs log_timezone)' : ''}`, async () => {
      const cluster = await startPgCluster({ logTimezone: c.zone, logDestination: 'csvlog' });
      try {
        const samples = await timezoneSample(cluster);
        const db = `${tmp.dir}/${c.zone.replace('/', '_')}.duckdb`;
        if (c.needsZone) {
          const fail = await auditship(['ingest', '--db', db, cluster.logDir]);
          assert.equal(fail.code, 1);
          assert.match(fail.stderr, /log_timezone/);
          assert.doesNotMatch(fail.stderr, /\n\s+at /, 'no stack trace');
          const [n] = await queryJson<{ n: string }>(db, 'SELECT count(*)::VARCHAR AS n FROM audit_logs');
          assert.equal(n!.n, '0', 'nothing of the failed file is committed');
        }
        const ok = await auditship(['ingest', '--db', db, ...(c.needsZone ? ['--log-timezone', c.zone] : []), cluster.logDir]);
        assert.equal(ok.code, 0, ok.stderr);
        for (const s of samples) {
          const [row] = await queryJson<{ t: string }>(
            db,
            `SELECT epoch_ms(log_time)::VARCHAR AS t FROM audit_logs WHERE statement = '${s.statement.replaceAll("'", "''")}'`,
          );
          assert.ok(row, `record for ${s.statement}`);
          assert.ok(Math.abs(Number(row.t) - s.serverEpochMs) < 2000, `log_time ${row.t} vs server clock ${s.serverEpochMs}`);
        }
      } finally {
        await cluster.stop();
      }
    });
  }
});
