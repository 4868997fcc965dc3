import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { writeLogs } from '../helpers/archive.js';
import { ingestOk, queryDb, runCli, scratchDir } from '../helpers/ingest-cli.js';
import { generateWorkload } from '../ui/workload.js';

/**
 * Correlation (sessions, logon failures, statement outcomes) reaches every sink: the DuckDB store keeps it also
 * when it does not keep the events (store_events: false).
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
    writeFileSync(config, ['pipelines:', '  logs:', `    source: { type: pg_logs, path: ${JSON.stringify(logs)}, server: db1 }`, '    sinks:',
      `      - ${JSON.stringify({ type: 'archive', directory: join(dir, 'no-events-archive'), form: 'ndjson' })}`,
      `      - ${JSON.stringify({ type: 'duckdb', path: db, store_events: false })}`, ''].join('\n'));
    const r = await runCli(['run', '--config', config, '--json']);
    assert.equal(r.code, 0, r.stderr.slice(-3000));
    assert.equal((await queryDb(db, 'SELECT count(*)::INTEGER AS n FROM audit_logs'))[0]!['n'], 0, 'no events stored');
    assert.deepEqual((await queryDb(db, CORRELATION))[0], want);
  });
});
