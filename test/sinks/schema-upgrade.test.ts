import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { generateCsvlog } from '../../bench/generate.js';
import { SCHEMA_VERSION } from '../../src/sinks/duckdb/schema.js';
import { ingestOk, queryDb, scratchDir, withDb } from '../helpers/ingest-cli.js';

/**
 * A database of schema version 1 (before correlation: no sessions, logon_failures, statement_errors, no
 * sqlstate/error_message columns, a view without outcome; one flat audit_events table) is upgraded in place
 * by the next ingest: its rows stay, read as successes, and new files are correlated. (Checked by hand against
 * the real version 1 build too; here version 1 is recreated from a current database by undoing what versions
 * 2 and 3 changed. The upgrade of a real version 2 store is store-upgrade.test.ts.)
 */
const { dir, cleanup } = scratchDir('auditship-upgrade-');
after(cleanup);

test('schema version 1 → current: new tables and columns, old rows kept, new files correlated', async () => {
  await generateCsvlog(join(dir, 'logs'), { events: 20_000, seed: 3, fileBytes: 2 << 20 });
  const files = readdirSync(join(dir, 'logs')).sort();
  assert.ok(files.length >= 3);
  mkdirSync(join(dir, 'a'));
  mkdirSync(join(dir, 'b'));
  for (const [i, f] of files.entries()) renameSync(join(dir, 'logs', f), join(dir, i < 2 ? 'a' : 'b', f));
  const db = join(dir, 'x.duckdb');
  const first = await ingestOk(db, [join(dir, 'a')]);
  await withDb(
    db,
    async (q) => {
      await q(`CREATE TABLE flat AS SELECT * EXCLUDE (sqlstate, error_message) FROM audit_events;
      DROP VIEW audit_logs; DROP VIEW audit_events; DROP TABLE event_rows; DROP TABLE event_contexts; DROP TABLE event_kinds;
      ALTER TABLE flat RENAME TO audit_events;
      DROP TABLE sessions; DROP TABLE logon_failures; DROP TABLE statement_errors; DROP TABLE correlation_sessions;
      CREATE OR REPLACE VIEW audit_logs AS SELECT log_time, user_name, statement FROM audit_events;
      UPDATE auditship_meta SET value = 'version-1-view' WHERE key = 'audit_logs_view';
      UPDATE auditship_meta SET value = '1' WHERE key = 'schema_version'`);
    },
    false,
  );
  const second = await ingestOk(db, [join(dir, 'a'), join(dir, 'b')]);
  assert.equal(second.stored, 20_000 - first.stored, 'only the new files are read');
  const [r] = await queryDb(
    db,
    `SELECT count(*)::INTEGER AS n, count(*) FILTER (WHERE outcome = 'error')::INTEGER AS errors,
      (SELECT value FROM auditship_meta WHERE key = 'schema_version') AS version,
      (SELECT count(*)::INTEGER FROM statement_errors WHERE statement_id IS NOT NULL) AS matched,
      (SELECT count(*)::INTEGER FROM sessions) AS sessions
    FROM audit_logs`,
  );
  assert.equal(r!['n'], 20_000);
  assert.equal(r!['version'], String(SCHEMA_VERSION));
  assert.ok(
    Number(r!['matched']) > 0 && Number(r!['errors']) >= Number(r!['matched']),
    `errors of the new files are matched (${r!['errors']} / ${r!['matched']})`,
  );
  assert.ok(Number(r!['sessions']) > 0);
});
