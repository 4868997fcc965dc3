import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { SCHEMA_VERSION } from '../../src/sinks/duckdb/schema.js';
import { ROOT, assertLedgerVerifies, ingestOk, queryDb, scratchDir } from '../helpers/ingest-cli.js';

/**
 * A store written by release 0.1.0 (schema version 2: one flat audit_events table; test/fixtures/store-v2) is
 * upgraded in place to the star of version 3 by the next ingest, which goes on with the file that release had
 * not read. Everything a user sees afterwards — every column of audit_logs, sessions, failed logins, statement
 * errors and outcomes — is what a new store holds after reading the same three files, and the rows of the
 * old store are the ones that release wrote (their digest as recorded when the fixture was made).
 */
const FIXTURE = join(ROOT, 'test', 'fixtures', 'store-v2');
const { dir, cleanup } = scratchDir('auditship-store-v2-');
after(cleanup);

/** Every audit_logs column but log_path_id (the directory's id differs between the two stores). */
const AUDIT_LOGS_COLUMNS = [
  'log_time',
  'user_name',
  'database_name',
  'client_addr',
  'message',
  'application_name',
  'session_id',
  'session_line_num',
  'file_name',
  'server',
  'client_port',
  'process_id',
  'virtual_transaction_id',
  'transaction_id',
  'command_tag',
  'session_start',
  'error_severity',
  'backend_type',
  'leader_pid',
  'query_id',
  'audit_type',
  'statement_id',
  'substatement_id',
  'class',
  'command',
  'object_type',
  'object_name',
  'statement',
  'parameter',
  'rows',
  'statement_filled',
  'raw_message',
  'outcome',
  'sqlstate',
  'error_message',
];
const rowsDigest = (
  where = 'true',
) => `SELECT {n: count(*)::INTEGER, md5: md5(string_agg(concat_ws('|', ${AUDIT_LOGS_COLUMNS.map((c) => `${c}::VARCHAR`).join(', ')}), '\n'
  ORDER BY session_id, session_line_num))} FROM audit_logs WHERE ${where}`;
const DIGEST = `
  SELECT (${rowsDigest()}) AS rows_,
         (SELECT md5(string_agg(concat_ws('|', session_id, process_id, user_name, database_name, client_addr, client_port, application_name,
                 backend_type, session_start, connected_at, disconnected_at, duration_ms), ',' ORDER BY session_id)) FROM sessions) AS sessions,
         (SELECT md5(string_agg(concat_ws('|', session_id, session_line_num, log_time, user_name, reason, sqlstate), ',' ORDER BY session_id, session_line_num)) FROM logon_failures) AS failures,
         (SELECT md5(string_agg(concat_ws('|', session_id, session_line_num, sqlstate, message, statement_id), ',' ORDER BY session_id, session_line_num)) FROM statement_errors) AS errors`;

test('a store of release 0.1.0 (schema version 2) is upgraded in place and goes on as a new store would', async () => {
  const logs = join(dir, 'logs');
  mkdirSync(logs);
  const files = readdirSync(FIXTURE)
    .filter((f) => f.endsWith('.csv.gz'))
    .sort();
  assert.equal(files.length, 3);
  for (const f of files) writeFileSync(join(logs, f.replace(/\.gz$/, '')), gunzipSync(readFileSync(join(FIXTURE, f))));
  const old = join(dir, 'old.duckdb');
  writeFileSync(old, gunzipSync(readFileSync(join(FIXTURE, 'auditship-0.1.0.duckdb.gz'))));

  // The fixture as release 0.1.0 left it (facts recorded in its README).
  const [before] = await queryDb(
    old,
    `SELECT (SELECT value FROM auditship_meta WHERE key = 'schema_version') AS version,
      (SELECT table_type FROM information_schema.tables WHERE table_name = 'audit_events') AS events_type, (${rowsDigest()}) AS digest,
      (SELECT count(*)::INTEGER FROM audit_logs WHERE outcome = 'error') AS errors`,
  );
  assert.equal(before!['version'], '2');
  assert.equal(before!['events_type'], 'BASE TABLE');
  assert.deepEqual(before!['digest'], { n: 5802, md5: '2c98e43a4de5454de5107865de57a042' });
  assert.equal(before!['errors'], 9);

  // The upgrade alone: the two files the release read are not read again.
  const first = await ingestOk(
    old,
    files.slice(0, 2).map((f) => join(logs, f.replace(/\.gz$/, ''))),
  );
  assert.equal(first.stored, 0);
  const [after] = await queryDb(
    old,
    `SELECT (SELECT value FROM auditship_meta WHERE key = 'schema_version') AS version,
      (SELECT table_type FROM information_schema.tables WHERE table_name = 'audit_events') AS events_type,
      (${rowsDigest()}) AS old_rows,
      (SELECT count(*)::INTEGER FROM audit_logs) - (SELECT count(DISTINCT (session_id, session_line_num))::INTEGER FROM audit_logs) AS duplicates,
      (SELECT count(*)::INTEGER FROM correlation_sessions AS c JOIN sessions AS s USING (server, session_id) WHERE s.disconnected_at IS NOT NULL) AS ended_in_state`,
  );
  assert.equal(after!['version'], String(SCHEMA_VERSION));
  assert.equal(after!['events_type'], 'VIEW');
  assert.deepEqual(after!['old_rows'], { n: 5802, md5: '2c98e43a4de5454de5107865de57a042' }, 'the old rows read as the release wrote them');
  assert.equal(after!['duplicates'], 0);
  assert.equal(after!['ended_in_state'], 0, 'sessions that ended keep no correlation state');

  // Then the file the release had not read.
  const upgraded = await ingestOk(old, [logs], ['--ledger']);
  assert.ok(upgraded.stored > 0);

  const fresh = join(dir, 'fresh.duckdb');
  const all = await ingestOk(fresh, [logs]);
  assert.equal(all.stored, 5802 + upgraded.stored);
  const [want] = await queryDb(fresh, DIGEST);
  const [got] = await queryDb(old, DIGEST);
  assert.deepEqual(got, want, 'audit_logs, sessions, failed logins and statement errors equal a new store of the same files');

  // The rows of the release became the ledger's entry 0 at the first write after the upgrade; all verify.
  const ledger = await assertLedgerVerifies(old, 'the upgraded store');
  assert.equal(ledger.streams.length, 1);
  assert.equal(ledger.streams[0]!.rows, 5802 + upgraded.stored, 'the ledger covers the old rows and the new');
  const [zero] = await queryDb(old, 'SELECT rows FROM ledger WHERE seq = 0');
  assert.equal(Number(zero!['rows']), 5802, "entry 0 holds the release's rows");
});
