import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { generateCsvlog } from '../../bench/generate.js';
import { Rng } from '../helpers/csvlog-gen.js';
import { ingestOk, queryDb, scratchDir, spawnCli } from '../helpers/ingest-cli.js';

/**
 * Correlation under SIGKILL: sessions, logon failures, statement errors and the outcome on audit rows
 * commit with the batch they came in, so an ingest killed at random moments and then run to completion
 * ends with exactly what one clean run stores — no session, failure or error lost or counted twice.
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
  assert.ok(Number(want['sessions']) > 50 && Number(want['failures']) > 0 && Number(want['errors']) > 0 && Number(want['failed_rows']) > 0, JSON.stringify(want));

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
