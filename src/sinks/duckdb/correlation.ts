/**
 * Correlation in the DuckDB store: what the source's session tracker (parse/session-tracker.ts) found in a
 * commit's batches becomes `sessions`, `logon_failures` and `statement_errors`, each statement an error ended
 * gets the error's sqlstate and message on its rows, and the last statement of every open session is kept
 * in `correlation_sessions` for errors of later runs — all in the commit's transaction, so a kill stores
 * all of it or none, with the checkpoint.
 *
 * Nothing here reads stored events: the tracker matched each error to its statement while parsing. The one
 * statement that touches event_rows is the outcome UPDATE, limited to the matched statements' time range.
 * A statement that succeeded inside a transaction that was rolled back later still reads 'success': the log
 * does not say whether a savepoint kept it.
 */
import { writeFileSync } from 'node:fs';
import { unlink } from 'node:fs/promises';
import type { DuckDBConnection } from '@duckdb/node-api';
import type { CorrelationBatch, SessionRecord, StatementOutcome, StatementState } from '../../parse/index.js';
import { msToTimestamptz, sqlString, timedRead, timedRun } from './database.js';
import { stageRows, type StageType, type StageValue } from './stage.js';

const ts = msToTimestamptz;

const SESSION_COLUMNS: [string, StageType][] = [
  ['kind', 'VARCHAR'], ['session_id', 'VARCHAR'], ['process_id', 'INTEGER'], ['user_name', 'VARCHAR'], ['database_name', 'VARCHAR'],
  ['client_addr', 'VARCHAR'], ['client_port', 'INTEGER'], ['application_name', 'VARCHAR'], ['backend_type', 'VARCHAR'],
  ['session_start_ms', 'BIGINT'], ['log_time_ms', 'BIGINT'], ['duration_ms', 'BIGINT'],
];
const FAILURE_COLUMNS: [string, StageType][] = [
  ['session_id', 'VARCHAR'], ['session_line_num', 'BIGINT'], ['log_time_ms', 'BIGINT'], ['user_name', 'VARCHAR'], ['database_name', 'VARCHAR'],
  ['client_addr', 'VARCHAR'], ['client_port', 'INTEGER'], ['sqlstate', 'VARCHAR'], ['message', 'VARCHAR'], ['detail', 'VARCHAR'],
];
const ERROR_COLUMNS: [string, StageType][] = [
  ['session_id', 'VARCHAR'], ['session_line_num', 'BIGINT'], ['log_time_ms', 'BIGINT'], ['user_name', 'VARCHAR'], ['database_name', 'VARCHAR'],
  ['vxid', 'VARCHAR'], ['transaction_id', 'BIGINT'], ['severity', 'VARCHAR'], ['sqlstate', 'VARCHAR'], ['message', 'VARCHAR'], ['statement_id', 'BIGINT'],
];
const OUTCOME_COLUMNS: [string, StageType][] = [
  ['session_id', 'VARCHAR'], ['statement_id', 'BIGINT'], ['sqlstate', 'VARCHAR'], ['message', 'VARCHAR'],
];
const STATE_COLUMNS: [string, StageType][] = [
  ['session_id', 'VARCHAR'], ['statement_id', 'BIGINT'], ['vxid', 'VARCHAR'], ['last_line', 'BIGINT'], ['statement_hash', 'BIGINT'],
  ['marker', 'BOOLEAN'], ['first_time_ms', 'BIGINT'],
];

/** What the batches since the last commit add to correlation, merged. */
export class PendingCorrelation {
  /** Per session: its first connect and first disconnect record (by line). */
  private sessions = new Map<string, { connect?: SessionRecord; disconnect?: SessionRecord }>();
  private failures: SessionRecord[] = [];
  private errors: { record: SessionRecord; statementId: number | null }[] = [];
  /** Per statement: the first error that ended it. */
  private outcomes = new Map<string, StatementOutcome>();
  private state = new Map<string, StatementState>();
  private ended = new Set<string>();

  get empty(): boolean {
    return this.sessions.size === 0 && this.failures.length === 0 && this.errors.length === 0 && this.state.size === 0 && this.ended.size === 0;
  }

  add(b: CorrelationBatch): void {
    for (const r of b.sessions) {
      let s = this.sessions.get(r.session_id);
      if (!s) { s = {}; this.sessions.set(r.session_id, s); }
      const k = r.kind === 'connect' ? 'connect' : 'disconnect';
      const had = s[k];
      if (!had || r.session_line_num < had.session_line_num) s[k] = r;
    }
    this.failures.push(...b.logonFailures);
    this.errors.push(...b.errors);
    for (const o of b.outcomes) {
      const key = `${o.session_id}\0${o.statement_id}`;
      const had = this.outcomes.get(key);
      if (!had || o.line < had.line) this.outcomes.set(key, o);
    }
    for (const s of b.state) { this.state.set(s.session_id, s); this.ended.delete(s.session_id); }
    for (const id of b.ended) { this.ended.add(id); this.state.delete(id); }
  }

  clear(): void {
    this.sessions = new Map();
    this.failures = [];
    this.errors = [];
    this.outcomes = new Map();
    this.state = new Map();
    this.ended = new Set();
  }

  /** Stores everything in the caller's transaction; `stage` names a stage file for each table. */
  async store(conn: DuckDBConnection, server: string, stage: (name: string) => string): Promise<void> {
    const sv = sqlString(server);
    const files: string[] = [];
    const relation = (name: string, columns: [string, StageType][], rows: StageValue[][]) => {
      const file = stage(name);
      const { text, sql } = stageRows(file, columns, rows);
      writeFileSync(file, text);
      files.push(file);
      return sql;
    };
    try {
      if (this.sessions.size > 0) {
        const rows: StageValue[][] = [];
        for (const s of this.sessions.values()) {
          for (const r of [s.connect, s.disconnect]) {
            if (!r) continue;
            rows.push([r.kind, r.session_id, r.process_id, r.user_name, r.database_name, r.client_addr, r.client_port, r.application_name,
              r.backend_type, r.session_start_ms, r.log_time_ms, r.duration_ms]);
          }
        }
        const rel = relation('sessions', SESSION_COLUMNS, rows);
        // The connect record fills who and from where; the disconnect record the end. Either may come first into
        // the table (a file that starts mid-session), so both are upserts that keep what is known.
        const keep = (c: string) => `${c} = coalesce(sessions.${c}, excluded.${c})`;
        for (const kind of ['connect', 'disconnect']) {
          await timedRun(conn, `correlation: ${kind} records → sessions`, `INSERT INTO sessions
            SELECT ${sv}, session_id, process_id, user_name, database_name, client_addr, client_port, application_name, backend_type,
                   ${ts('session_start_ms')}, ${kind === 'connect' ? ts('log_time_ms') : 'NULL::TIMESTAMPTZ'},
                   ${kind === 'disconnect' ? ts('log_time_ms') : 'NULL::TIMESTAMPTZ'}, ${kind === 'disconnect' ? 'duration_ms' : 'NULL::BIGINT'}
            FROM ${rel} WHERE kind = '${kind}'
            ON CONFLICT (server, session_id) DO UPDATE SET
              ${['process_id', 'user_name', 'database_name', 'client_addr', 'client_port', 'application_name', 'backend_type', 'session_start'].map(keep).join(', ')},
              ${kind === 'connect' ? 'connected_at = excluded.connected_at' : 'disconnected_at = excluded.disconnected_at, duration_ms = excluded.duration_ms'}`);
        }
      }
      if (this.failures.length > 0) {
        const rel = relation('failures', FAILURE_COLUMNS, this.failures.map((r) => [r.session_id, r.session_line_num, r.log_time_ms, r.user_name,
          r.database_name, r.client_addr, r.client_port, r.sqlstate, r.message, r.detail]));
        await timedRun(conn, 'correlation: logon_failures', `INSERT OR IGNORE INTO logon_failures
          SELECT ${sv}, session_id, session_line_num, ${ts('log_time_ms')}, user_name, database_name, client_addr, client_port, sqlstate, message, detail
          FROM ${rel}`);
      }
      if (this.errors.length > 0) {
        const rel = relation('errors', ERROR_COLUMNS, this.errors.map(({ record: r, statementId }) => [r.session_id, r.session_line_num,
          r.log_time_ms, r.user_name, r.database_name, r.virtual_transaction_id, r.transaction_id, r.severity, r.sqlstate, r.message, statementId]));
        await timedRun(conn, 'correlation: statement_errors', `INSERT OR IGNORE INTO statement_errors
          SELECT ${sv}, session_id, session_line_num, ${ts('log_time_ms')}, user_name, database_name, vxid, transaction_id, severity, sqlstate,
                 message, statement_id
          FROM ${rel}`);
      }
      if (this.outcomes.size > 0) {
        const outcomes = [...this.outcomes.values()];
        const lo = Math.min(...outcomes.map((o) => o.from_ms));
        const hi = Math.max(...outcomes.map((o) => o.to_ms));
        const rel = relation('outcomes', OUTCOME_COLUMNS, outcomes.map((o) => [o.session_id, o.statement_id, o.sqlstate, o.message]));
        // The statement's rows lie between its first row and the error: only those row groups are read.
        await timedRun(conn, 'correlation: outcome onto event_rows', `UPDATE event_rows AS e SET sqlstate = o.sqlstate, error_message = o.message
          FROM ${rel} AS o, event_contexts AS c
          WHERE e.log_time BETWEEN ${ts(String(lo))} AND ${ts(String(hi))} AND c.context_id = e.context_id AND c.server = ${sv}
            AND c.session_id = o.session_id AND e.statement_id = o.statement_id AND e.sqlstate IS NULL`);
      }
      if (this.ended.size > 0) {
        const rel = relation('ended', [['session_id', 'VARCHAR']], [...this.ended].map((id) => [id]));
        await timedRun(conn, 'correlation: forget ended sessions', `DELETE FROM correlation_sessions WHERE server = ${sv} AND session_id IN (SELECT session_id FROM ${rel})`);
      }
      if (this.state.size > 0) {
        const rel = relation('state', STATE_COLUMNS, [...this.state.values()].map((s) => [s.session_id, s.statement_id, s.vxid, s.last_line,
          s.statement_hash, s.marker, s.first_time_ms]));
        // A file read again (reaching back in time) never moves a session's state backwards.
        await timedRun(conn, 'correlation: last statement per session', `INSERT INTO correlation_sessions
          SELECT ${sv}, session_id, statement_id, vxid, last_line, statement_hash, marker, ${ts('first_time_ms')} FROM ${rel}
          ON CONFLICT (server, session_id) DO UPDATE SET statement_id = excluded.statement_id, vxid = excluded.vxid, last_line = excluded.last_line,
            statement_hash = excluded.statement_hash, marker = excluded.marker, first_time = excluded.first_time
          WHERE excluded.last_line > correlation_sessions.last_line`);
        // A session without a disconnection record (log_disconnections off, a crash) is forgotten after a week of
        // log time: no statement fails that long after it was logged.
        await timedRun(conn, 'correlation: forget idle sessions', `DELETE FROM correlation_sessions WHERE server = ${sv}
          AND first_time < (SELECT max(first_time) FROM correlation_sessions WHERE server = ${sv}) - INTERVAL 7 DAY`);
      }
    } finally {
      for (const f of files) await unlink(f).catch(() => {});
    }
    this.clear();
  }
}

/** The last statement of each session open at the last commit (a tracker's start state). */
export async function loadSessionStates(conn: DuckDBConnection, server: string): Promise<StatementState[]> {
  const r = await timedRead(conn, 'correlation: load session state', `SELECT session_id, statement_id, vxid, last_line,
    statement_hash, marker, epoch_ms(first_time) FROM correlation_sessions WHERE server = ${sqlString(server)}`);
  return r.getRows().map((row) => ({
    session_id: String(row[0]), statement_id: Number(row[1] ?? -1), vxid: row[2] === null ? null : String(row[2]),
    last_line: Number(row[3] ?? -1), statement_hash: Number(row[4] ?? 0), marker: Boolean(row[5]), first_time_ms: Number(row[6] ?? 0),
  }));
}
