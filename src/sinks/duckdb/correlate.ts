import type { DuckDBConnection } from '@duckdb/node-api';
import type { SessionRecord } from '../../parse/index.js';
import { profile } from '../../core/profile.js';
import { sqlString, timedRun } from './database.js';

/**
 * Correlation in the DuckDB store: the server's own records of a batch (parse/session-log.ts) become
 * `sessions`, `logon_failures` and `statement_errors`, and each error is tied to the audited statement it
 * ended — in the caller's transaction, after the batch's audit rows, so that the error of a statement in
 * the same batch finds it and a kill commits all of it or none.
 *
 * Matching an error to its statement: the error belongs to the last audited statement of its session
 * logged before it, provided that statement ran in the error's virtual transaction and its text is the
 * text the server logged with the error (log_min_error_statement) — a syntax error after a successful
 * statement of the same transaction is then not pinned on it. The session's last statement of earlier
 * batches is kept in correlation_sessions (until its disconnection), so a statement that fails minutes
 * or hours after it started is still found without scanning the store. Every row of that statement
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

/** The batch's audit rows as stored: their time range (epoch ms), or null when it had none. */
export type BatchRange = { minMs: number; maxMs: number } | null;

/**
 * Correlates one batch, in the caller's transaction, after its audit rows were inserted: stores its session
 * records and matches its errors, then remembers the last statement of each session in the batch.
 */
export async function correlateBatch(conn: DuckDBConnection, server: string, records: SessionRecord[], batch: BatchRange): Promise<CorrelationReport> {
  const report = await storeSessionRecords(conn, server, records, batch);
  if (batch) await trackLastStatements(conn, sqlString(server), batch);
  return report;
}

async function storeSessionRecords(conn: DuckDBConnection, server: string, records: SessionRecord[], batch: BatchRange): Promise<CorrelationReport> {
  const report: CorrelationReport = { sessions: 0, logonFailures: 0, errors: 0, matched: 0 };
  if (records.length === 0) return report;
  const t0 = performance.now();
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
  profile.add('correlation: stage session records', 'duckdb', performance.now() - t0);
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
    const r = await timedRun(conn, `correlation: ${kind} records → sessions`, `INSERT INTO sessions ${sessionRows(kind)}
      ON CONFLICT (server, session_id) DO UPDATE SET
        ${['process_id', 'user_name', 'database_name', 'client_addr', 'client_port', 'application_name', 'backend_type', 'session_start'].map(keep).join(', ')},
        ${kind === 'connect' ? 'connected_at = excluded.connected_at' : 'disconnected_at = excluded.disconnected_at, duration_ms = excluded.duration_ms'}`);
    report.sessions += Number(r.rowsChanged);
  }

  const failures = await timedRun(conn, 'correlation: logon_failures', `INSERT OR IGNORE INTO logon_failures
    SELECT ${sv}, session_id, session_line_num, ${ts('log_time_ms')}, user_name, database_name, client_addr, client_port,
           sqlstate, message, detail
    FROM temp.stage_session WHERE kind = 'logon_failure'`);
  report.logonFailures = Number(failures.rowsChanged);

  const [errorCount] = (await profile.time('correlation: count errors', 'duckdb', () => conn.runAndReadAll(`SELECT count(*) FROM temp.stage_session WHERE kind = 'error'`))).getRows()[0]!;
  if (Number(errorCount) > 0) {
    const m = await matchErrors(conn, sv, batch);
    report.errors = m.errors;
    report.matched = m.matched;
  }
  // Sessions that ended need no statement state any more.
  await timedRun(conn, 'correlation: forget ended sessions', `DELETE FROM correlation_sessions WHERE server = ${sv} AND session_id IN (SELECT session_id FROM temp.stage_session WHERE kind = 'disconnect')`);
  return report;
}

/** The batch's own audit rows: its time range of this server (row groups of older data are skipped). */
function batchRows(sv: string, batch: { minMs: number; maxMs: number }): string {
  return `SELECT session_id, session_line_num AS line, statement_id, virtual_transaction_id AS vxid, statement, log_time
    FROM audit_events WHERE server = ${sv} AND log_time BETWEEN ${ts(String(batch.minMs))} AND ${ts(String(batch.maxMs))}`;
}

/** pgaudit's `<previously logged>`: a statement whose text was logged earlier can match any error text. */
const MARKER_MD5 = `md5('<previously logged>')`;

/**
 * Ties each error of the batch to the statement it ended: among the session's statements logged before the
 * error — in this batch's rows, or the session's last statement of earlier batches (correlation_sessions) —
 * the last one; it matches when its virtual transaction is the error's and its text (its first row's: the
 * top-level statement) is the text logged with the error. Reads only the batch's rows and one state row
 * per session, however large the store.
 */
async function matchErrors(conn: DuckDBConnection, sv: string, batch: BatchRange): Promise<{ errors: number; matched: number }> {
  const fromBatch = batch ? `
    b AS (${batchRows(sv, batch)} AND session_id IN (SELECT session_id FROM e)),
    bs AS (SELECT session_id, statement_id, max(line) AS last_line, arg_min(vxid, line) AS vxid, md5(arg_min(statement, line)) AS md5,
                  min(log_time) AS first_time
           FROM b GROUP BY ALL),
    merged AS (
      SELECT bs.session_id, bs.statement_id, bs.last_line,
             CASE WHEN st.statement_id = bs.statement_id THEN st.vxid ELSE bs.vxid END AS vxid,
             CASE WHEN st.statement_id = bs.statement_id THEN st.statement_md5 ELSE bs.md5 END AS md5,
             CASE WHEN st.statement_id = bs.statement_id THEN st.first_time ELSE bs.first_time END AS first_time
      FROM bs LEFT JOIN st USING (session_id)),` : '\n    merged AS (SELECT session_id, statement_id, last_line, vxid, statement_md5 AS md5, first_time FROM st WHERE false),';
  await timedRun(conn, 'correlation: match errors to statements', `CREATE OR REPLACE TEMP TABLE stage_error_match AS
    WITH e AS (SELECT * FROM temp.stage_session WHERE kind = 'error' AND virtual_transaction_id IS NOT NULL),
    st AS (SELECT session_id, statement_id, last_line, vxid, statement_md5, first_time FROM correlation_sessions
           WHERE server = ${sv} AND session_id IN (SELECT session_id FROM e)),${fromBatch}
    cand AS (SELECT session_id, statement_id, last_line, vxid, md5, first_time FROM merged
             UNION ALL SELECT session_id, statement_id, last_line, vxid, statement_md5, first_time FROM st),
    pick AS (
      SELECT e.session_id, e.session_line_num, arg_max(c.statement_id, c.last_line) AS statement_id, arg_max(c.vxid, c.last_line) AS vxid,
             arg_max(c.md5, c.last_line) AS md5, arg_max(c.first_time, c.last_line) AS first_time
      FROM e JOIN cand AS c ON c.session_id = e.session_id AND c.last_line < e.session_line_num
      GROUP BY ALL)
    SELECT p.session_id, p.session_line_num, p.statement_id, p.first_time
    FROM pick AS p JOIN e USING (session_id, session_line_num)
    WHERE p.vxid = e.virtual_transaction_id AND (e.query IS NULL OR md5(e.query) = p.md5 OR p.md5 = ${MARKER_MD5})`);
  const errors = await timedRun(conn, 'correlation: statement_errors', `INSERT OR IGNORE INTO statement_errors
    SELECT ${sv}, e.session_id, e.session_line_num, ${ts('e.log_time_ms')}, e.user_name, e.database_name, e.virtual_transaction_id,
           e.transaction_id, e.severity, e.sqlstate, e.message, m.statement_id
    FROM temp.stage_session AS e LEFT JOIN temp.stage_error_match AS m USING (session_id, session_line_num)
    WHERE e.kind = 'error'`);
  const [lo, hi, n] = (await profile.time('correlation: matched range', 'duckdb', () => conn.runAndReadAll(`SELECT epoch_ms(min(m.first_time)), max(e.log_time_ms), count(*)
    FROM temp.stage_error_match AS m JOIN temp.stage_session AS e USING (session_id, session_line_num)`))).getRows()[0]!;
  if (Number(n) === 0) return { errors: Number(errors.rowsChanged), matched: 0 };
  // The statement's rows lie between its first row and the error: only those row groups are read.
  const matched = await timedRun(conn, 'correlation: outcome onto audit_events', `UPDATE audit_events AS a SET sqlstate = m.sqlstate, error_message = m.message
    FROM (SELECT e.session_id, m.statement_id, arg_min(e.sqlstate, e.session_line_num) AS sqlstate,
                 arg_min(e.message, e.session_line_num) AS message
          FROM temp.stage_error_match AS m JOIN temp.stage_session AS e USING (session_id, session_line_num)
          GROUP BY ALL) AS m
    WHERE a.server = ${sv} AND a.log_time BETWEEN ${ts(String(lo))} AND ${ts(String(hi))}
      AND a.session_id = m.session_id AND a.statement_id = m.statement_id AND a.sqlstate IS NULL`);
  return { errors: Number(errors.rowsChanged), matched: Number(matched.rowsChanged) };
}

/**
 * Remembers, per session, the last statement of the batch (id, virtual transaction, last line, hash of its
 * top-level text, first time), for errors of later batches. A batch reaching back in time (a file read
 * again) never moves a session's state backwards.
 */
async function trackLastStatements(conn: DuckDBConnection, sv: string, batch: { minMs: number; maxMs: number }): Promise<void> {
  await timedRun(conn, 'correlation: last statement per session', `INSERT OR REPLACE INTO correlation_sessions
    WITH b AS (${batchRows(sv, batch)}),
    last AS (SELECT session_id, arg_max(statement_id, line) AS statement_id, max(line) AS last_line FROM b GROUP BY session_id),
    firsts AS (SELECT b.session_id, b.statement_id, md5(arg_min(b.statement, b.line)) AS md5, min(b.log_time) AS first_time,
                      arg_min(b.vxid, b.line) AS vxid
               FROM b JOIN last USING (session_id, statement_id) GROUP BY ALL)
    SELECT ${sv}, f.session_id, f.statement_id, CASE WHEN st.statement_id = f.statement_id THEN st.vxid ELSE f.vxid END, l.last_line,
           CASE WHEN st.statement_id = f.statement_id THEN st.statement_md5 ELSE f.md5 END,
           CASE WHEN st.statement_id = f.statement_id THEN st.first_time ELSE f.first_time END
    FROM firsts AS f JOIN last AS l USING (session_id)
    LEFT JOIN correlation_sessions AS st ON st.server = ${sv} AND st.session_id = f.session_id
    WHERE st.last_line IS NULL OR l.last_line > st.last_line`);
}
