import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { spawnEsServer, requestJson, type SpawnedEsServer } from '../es-server/client.js';
import { writeLogs } from '../helpers/archive.js';
import {
  esDocs,
  esOutcomes,
  readNdjson,
  readParquet,
  storeCorrelation,
  archivedFailure,
  archivedSession,
  esFailure,
  esSession,
} from '../helpers/correlation.js';
import { ingestOk, queryDb, runCli, scratchDir } from '../helpers/ingest-cli.js';
import { pgauditTemplate } from '../../src/sinks/elasticsearch/documents.js';
import { generateWorkload } from '../ui/workload.js';

/**
 * Correlation (sessions, logon failures, statement outcomes) reaches every sink: the DuckDB store keeps it also
 * when it does not keep the events (store_events: false); Elasticsearch gets sessions and logon failures in
 * indices of their own and the outcome on the event documents; the NDJSON and Parquet archives get sessions,
 * logon failures and statement errors as datasets of their own. A session that ends, and a statement that
 * fails, in a later file and run are completed there: the search documents are updated, the archive gets a
 * newer session row and the statement's error row. Everything is checked against the DuckDB store of the same
 * pipeline, for a generated workload of known sessions, errors and failed logins.
 */
const { dir, cleanup } = scratchDir('correlation-sinks');
after(cleanup);

const T0 = Date.UTC(2026, 2, 1, 8, 0, 0);

/** Two log files of a generated workload (sessions, failed statements, failed logins); the second is active. */
function workload(name: string): { logs: string; counts: { audit: number; sessions: number; errors: number; logonFailures: number } } {
  const logs = join(dir, name);
  mkdirSync(logs, { recursive: true });
  const a = generateWorkload({ seed: 21, sessions: 120, sessionBase: 0, startMs: T0, spanMs: 4 * 3600e3 });
  const b = generateWorkload({ seed: 22, sessions: 80, sessionBase: 1000, startMs: T0 + 5 * 3600e3, spanMs: 4 * 3600e3 });
  writeLogs(logs, [
    { name: 'postgresql-2026-03-01_080000.csv', text: a.csv, agoS: 600 },
    { name: 'postgresql-2026-03-01_130000.csv', text: b.csv, agoS: 60 },
  ]);
  const sum = (k: 'audit' | 'sessions' | 'errors' | 'logonFailures') => a.counts[k] + b.counts[k];
  return { logs, counts: { audit: sum('audit'), sessions: sum('sessions'), errors: sum('errors'), logonFailures: sum('logonFailures') } };
}

const CORRELATION = `SELECT
  (SELECT list(concat_ws('|', session_id, user_name, database_name, client_addr, application_name, connected_at, disconnected_at, duration_ms) ORDER BY session_id) FROM sessions) AS sessions,
  (SELECT list(concat_ws('|', session_id, session_line_num, log_time, user_name, client_addr, sqlstate, reason) ORDER BY session_id, session_line_num) FROM logon_failures) AS failures,
  (SELECT list(concat_ws('|', session_id, session_line_num, sqlstate, message, statement_id) ORDER BY session_id, session_line_num) FROM statement_errors) AS errors`;

describe('correlation in every sink', () => {
  test('store_events: false keeps sessions, logon failures and statement errors in DuckDB, as a store of the events would', async () => {
    const { logs, counts } = workload('logs-no-events');
    const full = join(dir, 'full.duckdb');
    await ingestOk(full, [logs], ['--server', 'db1']);
    const want = (await queryDb(full, CORRELATION))[0]!;
    assert.equal((want['sessions'] as unknown[]).length, counts.sessions);
    assert.equal((want['failures'] as unknown[]).length, counts.logonFailures);
    assert.equal((want['errors'] as unknown[]).length, counts.errors);

    const db = join(dir, 'no-events.duckdb');
    const config = join(dir, 'no-events.yaml');
    writeFileSync(
      config,
      [
        'pipelines:',
        '  logs:',
        `    source: { type: pg_logs, path: ${JSON.stringify(logs)}, server: db1 }`,
        '    sinks:',
        `      - ${JSON.stringify({ type: 'archive', directory: join(dir, 'no-events-archive'), form: 'ndjson' })}`,
        `      - ${JSON.stringify({ type: 'duckdb', path: db, store_events: false })}`,
        '',
      ].join('\n'),
    );
    const r = await runCli(['run', '--config', config, '--json']);
    assert.equal(r.code, 0, r.stderr.slice(-3000));
    assert.equal((await queryDb(db, 'SELECT count(*)::INTEGER AS n FROM audit_logs'))[0]!['n'], 0, 'no events stored');
    assert.deepEqual((await queryDb(db, CORRELATION))[0], want);
  });

  describe('Elasticsearch and the archives', () => {
    let es: SpawnedEsServer;
    before(async () => {
      es = await spawnEsServer({ flavor: 'elasticsearch' });
    });
    after(async () => {
      await es?.stop();
    });

    test('sessions, logon failures and outcomes as the DuckDB store has them; completed by a later file and run; exactly once', async () => {
      // One workload cut in two files right before an ERROR: the failed statement's audit entry ends the first
      // file, its error starts the second, which arrives for the second run — and so does the end of its session.
      const w = generateWorkload({ seed: 31, sessions: 150, startMs: T0, spanMs: 6 * 3600e3 });
      const lines = w.csv.split('\n').filter(Boolean);
      const cut = lines.findIndex((l, i) => i > lines.length / 2 && l.split(',')[11] === 'ERROR');
      const splitSession = lines[cut]!.split(',')[5]!;
      const splitEvent = `${splitSession}/${lines[cut - 1]!.split(',')[6]}/`; // the failed statement's entry, before the ERROR
      const logs = join(dir, 'logs-sinks');
      mkdirSync(logs, { recursive: true });
      writeLogs(logs, [{ name: 'postgresql-2026-03-01_080000.csv', text: lines.slice(0, cut).join('\n') + '\n', agoS: 600 }]);
      const db = join(dir, 'sinks.duckdb');
      const nd = join(dir, 'sinks-ndjson');
      const pq = join(dir, 'sinks-parquet');
      const config = join(dir, 'sinks.yaml');
      const writeConfig = (path: string, duckdb: string) =>
        writeFileSync(
          path,
          [
            'pipelines:',
            '  logs:',
            `    source: { type: pg_logs, path: ${JSON.stringify(logs)}, server: db1 }`,
            '    sinks:',
            `      - ${JSON.stringify({ type: 'elasticsearch', url: es.url, flush_docs: 100 })}`,
            `      - ${JSON.stringify({ type: 'archive', directory: nd, form: 'ndjson' })}`,
            `      - ${JSON.stringify({ type: 'archive', directory: pq, form: 'parquet' })}`,
            `      - ${JSON.stringify({ type: 'duckdb', path: duckdb })}`,
            '',
          ].join('\n'),
        );
      writeConfig(config, db);
      const run = async (c: string) => {
        const r = await runCli(['run', '--config', c, '--json']);
        assert.equal(r.code, 0, r.stderr.slice(-3000));
        return (
          JSON.parse(r.stdout.trim().split('\n').pop()!) as {
            pipelines: { search: { created: number; duplicates: number; correlated: number; deadLettered: number }[] }[];
          }
        ).pipelines[0]!;
      };

      await run(config);
      const splitDoc = async () =>
        (await esDocs(es.url, 'auditship-sessions-*')).find((d) => (d.postgresql as { log: { session_id: string } }).log.session_id === splitSession);
      const before1 = await splitDoc();
      assert.ok(before1, 'the session is in the search index after the first run');
      assert.equal((before1.postgresql as { session: Record<string, unknown> }).session['disconnected_at'], undefined, 'its end is not known yet');
      assert.equal((await esOutcomes(es.url)).length, errorLines(lines.slice(0, cut)), 'outcomes of the first file only');

      writeLogs(logs, [{ name: 'postgresql-2026-03-01_140000.csv', text: lines.slice(cut).join('\n') + '\n', agoS: 60 }]);
      const second = await run(config);
      assert.equal(second.search[0]!.deadLettered, 0);

      // DuckDB has every session, failure and outcome (the reference).
      const want = await storeCorrelation(db);
      assert.equal(want.sessions.length, w.counts.sessions);
      assert.equal(want.failures.length, w.counts.logonFailures);
      assert.equal(want.failed.length, w.counts.errors);
      assert.ok(
        want.failed.some((f) => f.startsWith(splitEvent)),
        'the statement whose error came in the second file failed',
      );

      // Elasticsearch: one document per session, per failed login; the outcome on the events of failed statements.
      const checkEs = async () => {
        assert.deepEqual((await esDocs(es.url, 'auditship-sessions-*')).map(esSession).sort(), want.sessions);
        assert.deepEqual((await esDocs(es.url, 'auditship-logon-failures-*')).map(esFailure).sort(), want.failures);
        assert.deepEqual((await esOutcomes(es.url)).sort(), want.failed);
        assert.equal((await esDocs(es.url, 'auditship-pgaudit-*')).length, w.counts.audit);
      };
      await checkEs();
      const splitAfter = await splitDoc();
      assert.ok((splitAfter!.postgresql as { session: Record<string, unknown> }).session['disconnected_at'], 'the session document got its end');

      // A fresh state (a new machine): everything is sent again, and nothing changes or doubles.
      const again = join(dir, 'sinks-again.yaml');
      writeConfig(again, join(dir, 'sinks-again.duckdb'));
      writeFileSync(
        again,
        readFileSync(again, 'utf8')
          .replace(JSON.stringify(nd), JSON.stringify(join(dir, 'again-nd')))
          .replace(JSON.stringify(pq), JSON.stringify(join(dir, 'again-pq'))),
      );
      const resent = await run(again);
      assert.deepEqual([resent.search[0]!.created, resent.search[0]!.duplicates], [0, w.counts.audit]);
      await checkEs();

      // The archives, both forms: failures and errors exactly once; the newest row of each session is the
      // session; the split session has an older row without its end.
      for (const [archive, read] of [
        [nd, readNdjson],
        [pq, readParquet],
      ] as const) {
        const sessions = await read(archive, 'sessions');
        const latest = new Map<string, Record<string, unknown>>();
        for (const r of sessions) {
          const cur = latest.get(String(r['session_id']));
          if (!cur || String(r['last_seen']) > String(cur['last_seen'])) latest.set(String(r['session_id']), r);
        }
        assert.deepEqual([...latest.values()].map(archivedSession).sort(), want.sessions, `${archive}: sessions`);
        const splitRows = sessions.filter((r) => r['session_id'] === splitSession);
        assert.deepEqual(
          splitRows.map((r) => r['disconnected_at'] === null || r['disconnected_at'] === undefined).sort(),
          [false, true],
          `${archive}: an older and a newer row of the split session`,
        );
        assert.deepEqual((await read(archive, 'logon_failures')).map(archivedFailure).sort(), want.failures, `${archive}: logon failures`);
        const errors = await read(archive, 'statement_errors');
        assert.deepEqual(
          errors.map((r) => `${r['session_id']}/${r['session_line_num']}/${r['sqlstate']}/${r['statement_id'] ?? ''}`).sort(),
          want.errors,
          `${archive}: statement errors`,
        );
        // Outcomes: joined from statement_errors, every failed event; on the events themselves, those whose
        // error was read before they were written — all but the split statement's.
        const events = await read(archive, 'events');
        const byStatement = new Map(
          errors.filter((e) => e['statement_id'] !== null && e['statement_id'] !== undefined).map((e) => [`${e['session_id']}/${e['statement_id']}`, e]),
        );
        const joined = events
          .filter((e) => byStatement.has(`${e['session_id']}/${e['statement_id']}`))
          .map((e) => `${e['session_id']}/${e['session_line_num']}/${byStatement.get(`${e['session_id']}/${e['statement_id']}`)!['sqlstate']}`)
          .sort();
        assert.deepEqual(joined, want.failed, `${archive}: events joined with statement_errors`);
        const onEvents = events
          .filter((e) => e['sqlstate'] !== null && e['sqlstate'] !== undefined)
          .map((e) => `${e['session_id']}/${e['session_line_num']}/${e['sqlstate']}`)
          .sort();
        assert.deepEqual(
          onEvents,
          want.failed.filter((f) => !f.startsWith(splitEvent)),
          `${archive}: outcomes on the events`,
        );
      }
    });

    test('an index made by an earlier template (no outcome fields, strict) gets them at start: the outcomes of its events are written, none refused', async () => {
      await es.reset();
      const w = generateWorkload({ seed: 41, sessions: 40, startMs: T0, spanMs: 3600e3 });
      const logs = join(dir, 'logs-old-index');
      mkdirSync(logs, { recursive: true });
      writeLogs(logs, [{ name: 'postgresql-2026-03-01_080000.csv', text: w.csv, agoS: 60 }]);
      const old = pgauditTemplate({ prefix: 'auditship-pgaudit', period: 'daily' }).body as {
        template: { mappings: { properties: Record<string, { properties?: Record<string, unknown> }> } };
      };
      const mappings = structuredClone(old.template.mappings);
      delete mappings.properties['error'];
      delete mappings.properties['event']!.properties!['outcome'];
      const created = await requestJson(es.url, 'PUT', '/auditship-pgaudit-2026.03.01', { settings: { number_of_shards: 1 }, mappings });
      assert.equal(created.status, 200, JSON.stringify(created.body));
      const db = join(dir, 'old-index.duckdb');
      const config = join(dir, 'old-index.yaml');
      writeFileSync(
        config,
        [
          'pipelines:',
          '  logs:',
          `    source: { type: pg_logs, path: ${JSON.stringify(logs)}, server: db1 }`,
          '    sinks:',
          `      - ${JSON.stringify({ type: 'elasticsearch', url: es.url })}`,
          `      - ${JSON.stringify({ type: 'duckdb', path: db })}`,
          '',
        ].join('\n'),
      );
      const r = await runCli(['run', '--config', config, '--json']);
      assert.equal(r.code, 0, r.stderr.slice(-3000));
      const search = (JSON.parse(r.stdout.trim().split('\n').pop()!) as { pipelines: { search: { deadLettered: number }[] }[] }).pipelines[0]!.search[0]!;
      assert.equal(search.deadLettered, 0);
      assert.ok(w.counts.errors > 0);
      assert.deepEqual((await esOutcomes(es.url)).sort(), (await storeCorrelation(db)).failed);
    });
  });
});

/** ERROR records among csvlog lines (each follows the audit entry of the statement it failed). */
function errorLines(lines: string[]): number {
  return lines.filter((l) => l.split(',')[11] === 'ERROR').length;
}
