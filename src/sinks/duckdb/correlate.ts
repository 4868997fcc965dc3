import type { DuckDBConnection } from '@duckdb/node-api';
import type { SessionRecord } from '../../parse/index.js';
import { sqlString } from './database.js';

/**
 * Correlation in the DuckDB store: the server's own records of a batch (parse/session-log.ts) become
 * `sessions`, `logon_failures` and `statement_errors`, and each error is tied to the audited statement it
 * ended — in the caller's transaction, after the batch's audit rows, so that the error of a statement in
 * the same batch finds it and a kill commits all of it or none.
 *
 * Matching an error to its statement: the error belongs to the last audited statement (highest
 * statement_id) of the same session and virtual transaction logged before it, provided that statement's
 * text is the text the server logged with the error (log_min_error_statement) — a syntax error after a
 * successful statement of the same transaction is then not pinned on it. Every row of that statement
 * (its substatements, its OBJECT entries) gets the error's sqlstate and message; audit_logs.outcome reads
 * 'error' for them and 'success' for all others. A statement that succeeded inside a transaction that was
 * rolled back later still reads 'success': the log does not say whether a savepoint kept it.
 */

const STAGE_COLUMNS: [keyof SessionRecord, string][] = [
  ['kind', 'VARCHAR'], ['log_time_ms', 'BIGINT'], ['user_name', 'VARCHAR'], ['database_name', 'VARCHAR'],
  ['process_id', 'INTEGER'], ['client_addr', 'VARCHAR'], ['client_port', 'INTEGER'], ['session_id', 'VARCHAR'],
  ['session_line_num', 'BIGINT'], ['session_start_ms', 'BIGINT'], ['virtual_transaction_id', 'VARCHAR'],
  ['transaction_id', 'BIGINT'], ['severity', 'VARCHAR'], ['sqlstate', 'VARCHAR'], ['message', 'VARCHAR'],
  ['detail', 'VARCHAR'], ['application_name', 'VARCHAR'], ['backend_type', 'VARCHAR'], ['query', 'VARCHAR'],
  ['duration_ms', 'BIGINT'],
];

const ts = (ms: string) => `make_timestamp(${ms} * 1000)::TIMESTAMPTZ`;

/** Counts of what one batch added. */
export interface CorrelationReport { sessions: number; logonFailures: number; errors: number; matched: number }

export async function storeSessionRecords(conn: DuckDBConnection, server: string, records: SessionRecord[]): Promise<CorrelationReport> {
  const report: CorrelationReport = { sessions: 0, logonFailures: 0, errors: 0, matched: 0 };
  if (records.length === 0) return report;
  await conn.run(`CREATE TEMP TABLE IF NOT EXISTS stage_session (${STAGE_COLUMNS.map(([n, t]) => `${n} ${t}`).join(', ')})`);
  await conn.run('DELETE FROM temp.stage_session');
  const appender = await conn.createAppender('stage_session', 'main', 'temp');
  for (const r of records) {
    for (const [name] of STAGE_COLUMNS) {
      const v = r[name];
      if (v === null || v === undefined) appender.appendNull();
      else appender.appendVarchar(String(v));
    }
    appender.endRow();
  }
  appender.closeSync();
  const sv = sqlString(server);

  // Sessions: the connect record fills who and from where; the disconnect record the end. Either may come
  // first into the table (a file that starts mid-session), so both are upserts that keep what is known.
  const sessionRows = (kind: string) => `
    SELECT ${sv} AS server, session_id, process_id, user_name, database_name, client_addr, client_port, application_name,
           backend_type, ${ts('session_start_ms')} AS session_start,
           ${kind === 'connect' ? ts('log_time_ms') : 'NULL::TIMESTAMPTZ'} AS connected_at,
           ${kind === 'disconnect' ? ts('log_time_ms') : 'NULL::TIMESTAMPTZ'} AS disconnected_at,
           ${kind === 'disconnect' ? 'duration_ms' : 'NULL::BIGINT'} AS duration_ms
    FROM temp.stage_session WHERE kind = '${kind}'
    QUALIFY row_number() OVER (PARTITION BY session_id ORDER BY session_line_num) = 1`;
  const keep = (c: string) => `${c} = coalesce(sessions.${c}, excluded.${c})`;
  for (const kind of ['connect', 'disconnect']) {
    const r = await conn.run(`INSERT INTO sessions ${sessionRows(kind)}
      ON CONFLICT (server, session_id) DO UPDATE SET
        ${['process_id', 'user_name', 'database_name', 'client_addr', 'client_port', 'application_name', 'backend_type', 'session_start'].map(keep).join(', ')},
        ${kind === 'connect' ? 'connected_at = excluded.connected_at' : 'disconnected_at = excluded.disconnected_at, duration_ms = excluded.duration_ms'}`);
    report.sessions += Number(r.rowsChanged);
  }

  const failures = await conn.run(`INSERT OR IGNORE INTO logon_failures
    SELECT ${sv}, session_id, session_line_num, ${ts('log_time_ms')}, user_name, database_name, client_addr, client_port,
           sqlstate, message, detail
    FROM temp.stage_session WHERE kind = 'logon_failure'`);
  report.logonFailures = Number(failures.rowsChanged);

  const bounds = await conn.runAndReadAll(`SELECT min(coalesce(session_start_ms, log_time_ms - 86400000)), max(log_time_ms), count(*)
    FROM temp.stage_session WHERE kind = 'error'`);
  const [minMs, maxMs, errorCount] = bounds.getRows()[0]!;
  if (Number(errorCount) === 0) return report;
  // The audited statement each error ended; the time bounds let DuckDB skip row groups of older data.
  const within = `a.server = ${sv} AND a.log_time BETWEEN ${ts(String(minMs))} AND ${ts(String(maxMs))}`;
  await conn.run(`CREATE OR REPLACE TEMP TABLE stage_error_match AS
    WITH e AS (SELECT * FROM temp.stage_session WHERE kind = 'error' AND virtual_transaction_id IS NOT NULL),
    last_statement AS (
      SELECT e.session_id, e.session_line_num, max(a.statement_id) AS statement_id
      FROM e JOIN audit_events AS a
        ON ${within} AND a.session_id = e.session_id AND a.virtual_transaction_id = e.virtual_transaction_id
       AND a.session_line_num < e.session_line_num
      GROUP BY ALL)
    SELECT l.session_id, l.session_line_num, l.statement_id
    FROM last_statement AS l JOIN e USING (session_id, session_line_num)
    WHERE e.query IS NULL OR EXISTS (
      SELECT 1 FROM audit_events AS a
      WHERE ${within} AND a.session_id = l.session_id AND a.statement_id = l.statement_id AND a.statement = e.query)`);
  const errors = await conn.run(`INSERT OR IGNORE INTO statement_errors
    SELECT ${sv}, e.session_id, e.session_line_num, ${ts('e.log_time_ms')}, e.user_name, e.database_name, e.virtual_transaction_id,
           e.transaction_id, e.severity, e.sqlstate, e.message, m.statement_id
    FROM temp.stage_session AS e LEFT JOIN temp.stage_error_match AS m USING (session_id, session_line_num)
    WHERE e.kind = 'error'`);
  report.errors = Number(errors.rowsChanged);
  const matched = await conn.run(`UPDATE audit_events AS a SET sqlstate = m.sqlstate, error_message = m.message
    FROM (SELECT e.session_id, m.statement_id, arg_min(e.sqlstate, e.session_line_num) AS sqlstate,
                 arg_min(e.message, e.session_line_num) AS message
          FROM temp.stage_error_match AS m JOIN temp.stage_session AS e USING (session_id, session_line_num)
          GROUP BY ALL) AS m
    WHERE ${within} AND a.session_id = m.session_id AND a.statement_id = m.statement_id AND a.sqlstate IS NULL`);
  report.matched = Number(matched.rowsChanged);
  return report;
}
