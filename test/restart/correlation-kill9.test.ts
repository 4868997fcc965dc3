import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { generateCsvlog } from '../../bench/generate.js';
import { spawnEsServer } from '../es-server/client.js';
import { ALL_DATASETS } from '../../src/sinks/archive/layout.js';
import { entriesOf, listDir, localManifest } from '../helpers/archive.js';
import {
  archivedFailure,
  archivedSession,
  esDocs,
  esFailure,
  esOutcomes,
  esSession,
  readNdjson,
  readParquet,
  storeCorrelation,
  type Doc,
} from '../helpers/correlation.js';
import { Rng } from '../helpers/csvlog-gen.js';
import { ingestOk, queryDb, runCli, scratchDir, spawnCli } from '../helpers/ingest-cli.js';

/**
 * Correlation under SIGKILL: sessions, logon failures, statement errors and the outcome on audit rows
 * commit with the batch they came in, so an ingest killed at random moments and then run to completion
 * ends with exactly what one clean run stores — no session, failure or error lost or counted twice. The same
 * for the other sinks of a run: Elasticsearch (sessions, logon failures, outcomes on the events) and the
 * NDJSON and Parquet archives (sessions, logon failures, statement errors) end with what the store holds,
 * each failure and error once.
 */
const { dir, cleanup } = scratchDir('auditship-corr-kill-');
after(cleanup);

const DIGEST = `
  SELECT (SELECT count(*) FROM sessions)::INTEGER AS sessions,
         (SELECT md5(string_agg(concat_ws('|', session_id, user_name, application_name, connected_at, disconnected_at, duration_ms), ',' ORDER BY session_id)) FROM sessions) AS sessions_md5,
         (SELECT count(*) FROM logon_failures)::INTEGER AS failures,
         (SELECT md5(string_agg(concat_ws('|', session_id, session_line_num, user_name, reason), ',' ORDER BY session_id, session_line_num)) FROM logon_failures) AS failures_md5,
         (SELECT count(*) FROM statement_errors)::INTEGER AS errors,
         (SELECT md5(string_agg(concat_ws('|', session_id, session_line_num, sqlstate, statement_id), ',' ORDER BY session_id, session_line_num)) FROM statement_errors) AS errors_md5,
         (SELECT count(*) FROM audit_logs WHERE outcome = 'error')::INTEGER AS failed_rows,
         (SELECT md5(string_agg(concat_ws('|', session_id, session_line_num, sqlstate), ',' ORDER BY session_id, session_line_num)) FROM audit_logs WHERE outcome = 'error') AS failed_md5,
         (SELECT count(*) FROM audit_logs)::INTEGER AS events`;

test('kill -9 during ingestion: sessions, failures, errors and outcomes end exactly as one clean run', { timeout: 240_000 }, async () => {
  await generateCsvlog(join(dir, 'logs'), { events: 60_000, seed: 9, fileBytes: 3 << 20 });
  const clean = join(dir, 'clean.duckdb');
  await ingestOk(clean, [join(dir, 'logs')]);
  const want = (await queryDb(clean, DIGEST))[0]!;
  assert.ok(
    Number(want['sessions']) > 50 && Number(want['failures']) > 0 && Number(want['errors']) > 0 && Number(want['failed_rows']) > 0,
    JSON.stringify(want),
  );

  const db = join(dir, 'killed.duckdb');
  const rng = new Rng(77);
  let kills = 0;
  for (let round = 0; round < 30 && kills < 6; round++) {
    const child = spawnCli(['ingest', '--db', db, '--quiet', join(dir, 'logs')]);
    const timer = setTimeout(() => child.kill('SIGKILL'), rng.int(150, 1500));
    const r = await child.result;
    clearTimeout(timer);
    if (r.signal === 'SIGKILL') kills++;
    else {
      assert.equal(r.code, 0, r.stderr);
      break;
    }
  }
  assert.ok(kills >= 3, `killed ${kills} times`);
  await ingestOk(db, [join(dir, 'logs')]);
  assert.deepEqual((await queryDb(db, DIGEST))[0], want);
});

test(
  'kill -9 during a run into Elasticsearch and archives: their sessions, logon failures and outcomes end as the store has them, none twice',
  { timeout: 300_000 },
  async () => {
    const logs = join(dir, 'logs-sinks');
    await generateCsvlog(logs, { events: 30_000, seed: 13, fileBytes: 2 << 20 });
    const clean = join(dir, 'sinks-clean.duckdb');
    await ingestOk(clean, [logs]);
    const want = (await queryDb(clean, DIGEST))[0]!;
    const es = await spawnEsServer({ flavor: 'elasticsearch' });
    try {
      const db = join(dir, 'sinks.duckdb');
      const nd = join(dir, 'sinks-ndjson');
      const pq = join(dir, 'sinks-parquet');
      const config = join(dir, 'sinks.yaml');
      writeFileSync(
        config,
        [
          'pipelines:',
          '  logs:',
          `    source: { type: pg_logs, path: ${JSON.stringify(logs)} }`,
          '    sinks:',
          `      - ${JSON.stringify({ type: 'elasticsearch', url: es.url, flush_docs: 500 })}`,
          `      - ${JSON.stringify({ type: 'archive', directory: nd, form: 'ndjson' })}`,
          `      - ${JSON.stringify({ type: 'archive', directory: pq, form: 'parquet' })}`,
          `      - ${JSON.stringify({ type: 'duckdb', path: db, commit_events: 4000 })}`,
          '',
        ].join('\n'),
      );
      const rng = new Rng(78);
      let kills = 0;
      let aim = 2500;
      for (let round = 0; round < 30 && kills < 6; round++) {
        const child = spawnCli(['run', '--config', config, '--quiet']);
        const timer = setTimeout(() => child.kill('SIGKILL'), rng.int(300, aim));
        const r = await child.result;
        clearTimeout(timer);
        if (r.signal === 'SIGKILL') kills++;
        else {
          assert.equal(r.code, 0, r.stderr.slice(-3000));
          aim = Math.max(600, Math.floor(aim * 0.6)); // it finished first: aim earlier next time (a new state)
          break;
        }
      }
      assert.ok(kills >= 3, `killed ${kills} times`);
      const final = await runCli(['run', '--config', config, '--quiet']);
      assert.equal(final.code, 0, final.stderr.slice(-3000));

      assert.deepEqual((await queryDb(db, DIGEST))[0], want, 'the store as one clean run');
      const store = await storeCorrelation(db);
      assert.ok(store.sessions.length > 20 && store.failures.length > 0 && store.failed.length > 0);
      // Elasticsearch: one document per session and failed login, the outcome on exactly the failed events.
      assert.deepEqual((await esDocs(es.url, 'auditship-sessions-*')).map(esSession).sort(), store.sessions);
      assert.deepEqual((await esDocs(es.url, 'auditship-logon-failures-*')).map(esFailure).sort(), store.failures);
      assert.deepEqual((await esOutcomes(es.url)).sort(), store.failed);
      // Archives: nothing outside the manifest; failures and errors once; the newest row of each session is the session.
      for (const [archive, read] of [
        [nd, readNdjson],
        [pq, readParquet],
      ] as const) {
        const listed = new Set(entriesOf(localManifest(archive)).map((e) => e.key));
        assert.deepEqual(
          listDir(archive).filter((k) => ALL_DATASETS.some((d) => k.startsWith(`${d}/`)) && !listed.has(k)),
          [],
          `${archive}: no object outside the manifest`,
        );
        assert.deepEqual((await read(archive, 'logon_failures')).map(archivedFailure).sort(), store.failures, `${archive}: logon failures`);
        const errors = await read(archive, 'statement_errors');
        assert.deepEqual(
          errors.map((r) => `${r['session_id']}/${r['session_line_num']}/${r['sqlstate']}/${r['statement_id'] ?? ''}`).sort(),
          store.errors,
          `${archive}: statement errors`,
        );
        const latest = new Map<string, Doc>();
        for (const r of await read(archive, 'sessions')) {
          const cur = latest.get(String(r['session_id']));
          if (!cur || String(r['last_seen']) > String(cur['last_seen'])) latest.set(String(r['session_id']), r);
        }
        assert.deepEqual([...latest.values()].map(archivedSession).sort(), store.sessions, `${archive}: sessions`);
        const events = await read(archive, 'events');
        assert.equal(new Set(events.map((e) => `${e['session_id']}/${e['session_line_num']}`)).size, events.length, `${archive}: no event twice`);
        assert.equal(events.length, Number(want['events']), `${archive}: every event`);
      }
    } finally {
      await es.stop();
    }
  },
);
