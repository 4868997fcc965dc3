/**
 * `auditship query` on a store auditship wrote (the example logs): it runs read statements only — nothing it
 * is given writes a file, attaches, installs or changes a setting, and a refusal runs none of the SQL — and
 * its JSON gives counts and sums as numbers a JSON reader takes exactly.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { hasStackTrace, ingestOk, lines, queryDb, ROOT, runCli, scratchDir, spawnCli } from '../helpers/ingest-cli.js';

const { dir, cleanup } = scratchDir('query-cli');
const db = join(dir, 'store.duckdb');
/** Where refused statements would write; must stay empty. */
const out = join(dir, 'out');
let events = 0;

before(async () => {
  mkdirSync(out);
  await ingestOk(db, [join(ROOT, 'examples', 'pgaudit-logs')]);
  events = Number((await queryDb(db, 'SELECT count(*) AS n FROM audit_logs'))[0]!['n']);
  assert.ok(events > 0, 'the example logs hold audit events');
});
after(cleanup);

const query = (sql: string, format = 'json') => runCli(['query', '--db', db, '--format', format, sql]);

describe('auditship query runs read statements only', () => {
  const refusedSql: [string, RegExp][] = [
    [`COPY (SELECT * FROM audit_logs) TO '${out}/copy.csv'`, /COPY is not a read statement/],
    [`SELECT 1; COPY (SELECT 1) TO '${out}/second.csv'`, /one of the statements is not a read/],
    [`EXPLAIN ANALYZE COPY (SELECT 1) TO '${out}/explained.csv'`, /EXPLAIN of a statement that is not a read/],
    [`EXPORT DATABASE '${out}/export'`, /EXPORT is not a read statement/],
    [`ATTACH '${out}/attached.duckdb' AS other`, /ATTACH is not a read statement/],
    ['INSTALL httpfs', /INSTALL is not a read statement/],
    ['LOAD parquet', /LOAD is not a read statement/],
    ["SET memory_limit = '10GB'", /SET is not a read statement/],
    ['PRAGMA version', /PRAGMA is not a read statement/],
    ['CALL pragma_version()', /CALL is not a read statement/],
    ['CHECKPOINT', /CHECKPOINT is not a read statement/],
    ['/* a comment, then */\nDELETE FROM audit_logs', /DELETE is not a read statement/],
  ];
  for (const [sql, reason] of refusedSql) {
    test(`refused, exit 2, one line, nothing written: ${sql.split('\n').at(-1)!.replace(out, 'OUT')}`, async () => {
      const r = await query(sql);
      assert.equal(r.code, 2, r.stdout + r.stderr);
      assert.equal(r.stdout, '');
      assert.ok(!hasStackTrace(r.stderr), r.stderr);
      const l = lines(r.stderr);
      assert.equal(l.length, 1, r.stderr);
      assert.match(l[0]!, reason);
      assert.match(l[0]!, /only SELECT, WITH, VALUES, FROM, TABLE, DESCRIBE, SHOW, SUMMARIZE and EXPLAIN of those run \(nothing was run\)$/);
      assert.deepEqual(readdirSync(out), [], 'no file or directory written');
    });
  }

  test('the store is unchanged after the refusals', async () => {
    assert.equal(Number((await queryDb(db, 'SELECT count(*) AS n FROM audit_logs'))[0]!['n']), events);
    assert.ok(!existsSync(join(out, 'copy.csv')));
  });

  test('reads run: SELECT, WITH, VALUES, FROM, TABLE, DESCRIBE, SHOW TABLES, SUMMARIZE, EXPLAIN [ANALYZE]', async () => {
    const json = async (sql: string) => {
      const r = await query(sql);
      assert.equal(r.code, 0, `${sql}: ${r.stderr}`);
      return JSON.parse(r.stdout) as Record<string, unknown>[];
    };
    assert.equal(Number((await json('SELECT count(*) AS n FROM audit_logs'))[0]!['n']), events);
    assert.equal(Number((await json('WITH c AS (SELECT count(*) AS n FROM audit_logs) SELECT n FROM c'))[0]!['n']), events);
    assert.deepEqual(await json("VALUES (1, 'a')"), [{ col0: 1, col1: 'a' }]);
    assert.equal((await json('FROM audit_logs SELECT session_id LIMIT 2')).length, 2);
    assert.equal((await json('TABLE audit_logs')).length, events);
    assert.ok((await json('DESCRIBE audit_logs')).some((c) => c['column_name'] === 'statement'));
    assert.ok((await json('SHOW TABLES')).some((t) => t['name'] === 'audit_logs'));
    assert.ok((await json('SUMMARIZE audit_logs')).some((c) => c['column_name'] === 'log_time'));
    assert.match(String((await json('EXPLAIN SELECT count(*) FROM audit_logs'))[0]!['explain_value']), /UNGROUPED_AGGREGATE|SIMPLE_AGGREGATE|AGGREGATE/);
    assert.equal((await json('EXPLAIN ANALYZE SELECT count(*) FROM audit_logs'))[0]!['explain_key'], 'analyzed_plan');
    const table = await query('SELECT count(*) AS n FROM audit_logs', 'table');
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, new RegExp(`\\b${events}\\b`));
  });

  test('a syntax error is still one line, exit 1; nothing but comments is a usage error', async () => {
    const r = await query('SELEC 1');
    assert.equal(r.code, 1);
    assert.deepEqual(lines(r.stderr), ['auditship: query failed: Parser Error: syntax error at or near "SELEC"']);
    const empty = await query('/* nothing */');
    assert.equal(empty.code, 2);
    assert.deepEqual(lines(empty.stderr), ['auditship: no SQL statement given (only comments or blanks)']);
  });

  test('several statements, even all reads, are a usage error: nothing runs', async () => {
    const r = await query(`SELECT 1 AS a; SELECT count(*) FROM read_csv('${out}/none.csv')`);
    assert.equal(r.code, 2);
    assert.equal(r.stdout, '');
    assert.deepEqual(lines(r.stderr), ['auditship: give one statement (2 given)']);
  });

  test('while run --follow writes the store, query goes through it: the same refusals there, and reads answer', async () => {
    const held = join(dir, 'held.duckdb');
    const config = join(dir, 'follow.yaml');
    writeFileSync(
      config,
      `pipelines:\n  main:\n    source: { type: pg_logs, path: "${join(ROOT, 'examples', 'pgaudit-logs')}", poll_interval_ms: 100 }\n    sinks: [ { type: duckdb, path: "${held}" } ]\n`,
    );
    const daemon = spawnCli(['run', '--follow', '--config', config]);
    try {
      const deadline = Date.now() + 60_000;
      for (;;) {
        assert.ok(daemon.exitCode === null && Date.now() < deadline, 'run --follow serves reads');
        const r = await runCli(['query', '--db', held, '--format', 'csv', 'SELECT count(*) AS n FROM audit_logs']);
        if (r.code === 0 && r.stdout.trim().split('\n')[1] === String(events)) break;
        await sleep(100);
      }
      assert.ok(existsSync(`${held}.read.sock`), 'the writer holds the file and answers reads');
      for (const [sql, reason] of refusedSql.slice(0, 5)) {
        const r = await runCli(['query', '--db', held, sql.replaceAll(out, join(out, 'held'))]);
        assert.equal(r.code, 2, `${sql}: ${r.stderr}`);
        assert.match(lines(r.stderr)[0]!, reason);
      }
      assert.deepEqual(readdirSync(out), [], 'no file or directory written by the writer');
      const json = await runCli([
        'query',
        '--db',
        held,
        '--format',
        'json',
        'SELECT count(*) AS n, 9007199254740993::BIGINT AS big, 2.50::DECIMAL(4,2) AS d FROM audit_logs',
      ]);
      assert.equal(json.code, 0, json.stderr);
      assert.deepEqual(JSON.parse(json.stdout), [{ n: events, big: '9007199254740993', d: 2.5 }], 'JSON numbers through the writer too');
    } finally {
      daemon.kill('SIGTERM');
      await daemon.result;
    }
  });
});

describe('auditship query --format json', () => {
  test('integers are JSON numbers while exact (|n| ≤ 2^53 − 1), else strings; decimals up to 15 digits are numbers', async () => {
    const r = await query(`
      SELECT count(*) AS events, sum(session_line_num) AS line_sum,
             9007199254740991::BIGINT AS max_exact, -9007199254740991::BIGINT AS min_exact,
             9007199254740993::BIGINT AS beyond, (9007199254740993::BIGINT * 3)::HUGEINT AS huge,
             18446744073709551615::UBIGINT AS ubig,
             1234.50::DECIMAL(10,2) AS price, -0.005::DECIMAL(5,3) AS tiny, 12345678901234.56::DECIMAL(18,2) AS wide,
             [1::BIGINT, 9007199254740993::BIGINT, NULL] AS list, {'n': 7::BIGINT} AS struct, NULL::BIGINT AS nothing,
             TIMESTAMP '2024-05-01 12:00:00' AS ts, 0.25::DOUBLE AS dbl
      FROM audit_logs`);
    assert.equal(r.code, 0, r.stderr);
    const [row] = JSON.parse(r.stdout) as Record<string, unknown>[];
    const [expected] = await queryDb(db, 'SELECT count(*)::VARCHAR AS events, sum(session_line_num)::VARCHAR AS line_sum FROM audit_logs');
    assert.deepEqual(row, {
      events,
      line_sum: Number(expected!['line_sum']),
      max_exact: 9007199254740991,
      min_exact: -9007199254740991,
      beyond: '9007199254740993',
      huge: '27021597764222979',
      ubig: '18446744073709551615',
      price: 1234.5,
      tiny: -0.005,
      wide: '12345678901234.56',
      list: [1, '9007199254740993', null],
      struct: { n: 7 },
      nothing: null,
      ts: '2024-05-01 12:00:00',
      dbl: 0.25,
    });
    assert.equal(typeof row['line_sum'], 'number', 'sum() of a BIGINT column (HUGEINT) is a number');
    assert.equal(String(events), expected!['events']);
  });

  test('--help says how JSON prints numbers', async () => {
    const r = await runCli(['query', '--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout.replace(/\s+/g, ' '), /integers \(count\(\*\), sum\(\)\) are JSON numbers while exact \(\|n\| ≤ 2\^53 − 1\) and strings beyond/);
  });
});
