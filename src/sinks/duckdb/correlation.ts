/**
 * Correlation in the DuckDB store: what the source's session tracker (parse/session-tracker.ts) found in a
 * commit's batches becomes `sessions`, `logon_failures` and `statement_errors` (also with store_events: false),
 * each statement an error ended gets the error's sqlstate and message on its rows, and the last statement of
 * every open session is kept in `correlation_sessions` (per pipeline) for errors of later runs — all in the
 * commit's transaction, so a kill stores all of it or none, with the checkpoint.
 *
 * Nothing here reads stored events: the tracker matched each error to its statement while parsing. The one
 * statement that touches event_rows is the outcome UPDATE, limited to the matched statements' time range.
 * A statement that succeeded inside a transaction that was rolled back later still reads 'success': the log
 * does not say whether a savepoint kept it.
 */
import { appendFileSync } from 'node:fs';
import { unlink } from 'node:fs/promises';
import type { DuckDBConnection } from '@duckdb/node-api';
import type { CorrelationBatch, StatementState } from '../../parse/index.js';
import type { StoredSession } from '../../model/sessions.js';

export type { StoredSession } from '../../model/sessions.js';
import { timedRead, timedRun } from './database.js';
import { msToTimestamptz, sqlString } from '../../duckdb/sql.js';
import { stageRows, type StageType, type StageValue } from '../../duckdb/stage.js';

const ts = msToTimestamptz;

const SESSION_COLUMNS: [string, StageType][] = [
  ['kind', 'VARCHAR'],
  ['session_id', 'VARCHAR'],
  ['session_line_num', 'BIGINT'],
  ['process_id', 'INTEGER'],
  ['user_name', 'VARCHAR'],
  ['database_name', 'VARCHAR'],
  ['client_addr', 'VARCHAR'],
  ['client_port', 'INTEGER'],
  ['application_name', 'VARCHAR'],
  ['backend_type', 'VARCHAR'],
  ['session_start_ms', 'BIGINT'],
  ['log_time_ms', 'BIGINT'],
  ['duration_ms', 'BIGINT'],
];
const FAILURE_COLUMNS: [string, StageType][] = [
  ['session_id', 'VARCHAR'],
  ['session_line_num', 'BIGINT'],
  ['log_time_ms', 'BIGINT'],
  ['user_name', 'VARCHAR'],
  ['database_name', 'VARCHAR'],
  ['client_addr', 'VARCHAR'],
  ['client_port', 'INTEGER'],
  ['sqlstate', 'VARCHAR'],
  ['message', 'VARCHAR'],
  ['detail', 'VARCHAR'],
];
const ERROR_COLUMNS: [string, StageType][] = [
  ['session_id', 'VARCHAR'],
  ['session_line_num', 'BIGINT'],
  ['log_time_ms', 'BIGINT'],
  ['user_name', 'VARCHAR'],
  ['database_name', 'VARCHAR'],
  ['vxid', 'VARCHAR'],
  ['transaction_id', 'BIGINT'],
  ['severity', 'VARCHAR'],
  ['sqlstate', 'VARCHAR'],
  ['message', 'VARCHAR'],
  ['statement_id', 'BIGINT'],
];
const OUTCOME_COLUMNS: [string, StageType][] = [
  ['session_id', 'VARCHAR'],
  ['statement_id', 'BIGINT'],
  ['line', 'BIGINT'],
  ['sqlstate', 'VARCHAR'],
  ['message', 'VARCHAR'],
];
const STATE_COLUMNS: [string, StageType][] = [
  ['seq', 'BIGINT'],
  ['session_id', 'VARCHAR'],
  ['statement_id', 'BIGINT'],
  ['vxid', 'VARCHAR'],
  ['last_line', 'BIGINT'],
  ['statement_hash', 'BIGINT'],
  ['marker', 'BOOLEAN'],
  ['first_time_ms', 'BIGINT'],
  ['first_line', 'BIGINT'],
  ['last_time_ms', 'BIGINT'],
];
const ENDED_COLUMNS: [string, StageType][] = [['session_id', 'VARCHAR']];

/** One stage file of a table, appended to batch by batch until the commit. */
interface Staged {
  file: string;
  sql: string;
  maxLine: number;
}

/**
 * What the batches since the last commit add to correlation: written to stage files as each batch comes (so
 * the records do not stay alive in memory until the commit), merged in SQL at the commit: the first
 * connection and disconnection record of each session, the first error that ended each statement, the
 * latest state of each open session.
 */
export class PendingCorrelation {
  private staged = new Map<string, Staged>();
  private seq = 0;
  private outcomeFromMs = Infinity;
  private outcomeToMs = -Infinity;

  constructor(private readonly stageFile: (name: string) => string) {}

  get empty(): boolean {
    return this.staged.size === 0;
  }

  private append(name: string, columns: [string, StageType][], rows: StageValue[][]): void {
    if (rows.length === 0) return;
    const st = this.staged.get(name);
    const file = st?.file ?? this.stageFile(name);
    // The SQL's line limit covers the longest line of every batch appended so far.
    const { text, sql, maxLine } = stageRows(file, columns, rows, st?.maxLine ?? 0);
    appendFileSync(file, text);
    this.staged.set(name, { file, sql, maxLine });
  }

  add(b: CorrelationBatch): void {
    const seq = this.seq++;
    this.append(
      'sessions',
      SESSION_COLUMNS,
      b.sessions.map((r) => [
        r.kind,
        r.session_id,
        r.session_line_num,
        r.process_id,
        r.user_name,
        r.database_name,
        r.client_addr,
        r.client_port,
        r.application_name,
        r.backend_type,
        r.session_start_ms,
        r.log_time_ms,
        r.duration_ms,
      ]),
    );
    this.append(
      'failures',
      FAILURE_COLUMNS,
      b.logonFailures.map((r) => [
        r.session_id,
        r.session_line_num,
        r.log_time_ms,
        r.user_name,
        r.database_name,
        r.client_addr,
        r.client_port,
        r.sqlstate,
        r.message,
        r.detail,
      ]),
    );
    this.append(
      'errors',
      ERROR_COLUMNS,
      b.errors.map(({ record: r, statementId }) => [
        r.session_id,
        r.session_line_num,
        r.log_time_ms,
        r.user_name,
        r.database_name,
        r.virtual_transaction_id,
        r.transaction_id,
        r.severity,
        r.sqlstate,
        r.message,
        statementId,
      ]),
    );
    this.append(
      'outcomes',
      OUTCOME_COLUMNS,
      b.outcomes.map((o) => [o.session_id, o.statement_id, o.line, o.sqlstate, o.message]),
    );
    for (const o of b.outcomes) {
      if (o.from_ms < this.outcomeFromMs) this.outcomeFromMs = o.from_ms;
      if (o.to_ms > this.outcomeToMs) this.outcomeToMs = o.to_ms;
    }
    this.append(
      'state',
      STATE_COLUMNS,
      b.state.map((s) => [seq, s.session_id, s.statement_id, s.vxid, s.last_line, s.statement_hash, s.marker, s.first_time_ms, s.first_line, s.last_time_ms]),
    );
    this.append(
      'ended',
      ENDED_COLUMNS,
      b.ended.map((id) => [id]),
    );
  }

  /** Forgets what was staged (a rollback). */
  async clear(): Promise<void> {
    const files = [...this.staged.values()].map((s) => s.file);
    this.staged = new Map();
    this.outcomeFromMs = Infinity;
    this.outcomeToMs = -Infinity;
    for (const f of files) await unlink(f).catch(() => {});
  }

  /**
   * Stores everything in the caller's transaction: the server's correlation tables, and the pipeline's state of
   * open sessions. `outcomes`: the events are stored here, so their rows get the outcome.
   */
  async store(conn: DuckDBConnection, pipeline: string, server: string, outcomes: boolean): Promise<void> {
    const sv = sqlString(server);
    const pl = sqlString(pipeline);
    const rel = (name: string) => this.staged.get(name)?.sql;
    try {
      const sessions = rel('sessions');
      if (sessions) {
        // The connect record fills who and from where; the disconnect record the end. Either may come first into
        // the table (a file that starts mid-session), so both are upserts that keep what is known.
        const keep = (c: string) => `${c} = coalesce(sessions.${c}, excluded.${c})`;
        for (const kind of ['connect', 'disconnect']) {
          await timedRun(
            conn,
            `correlation: ${kind} records → sessions`,
            `INSERT INTO sessions
            SELECT ${sv}, session_id, process_id, user_name, database_name, client_addr, client_port, application_name, backend_type,
                   ${ts('session_start_ms')}, ${kind === 'connect' ? ts('log_time_ms') : 'NULL::TIMESTAMPTZ'},
                   ${kind === 'disconnect' ? ts('log_time_ms') : 'NULL::TIMESTAMPTZ'}, ${kind === 'disconnect' ? 'duration_ms' : 'NULL::BIGINT'}
            FROM ${sessions} WHERE kind = '${kind}'
            QUALIFY row_number() OVER (PARTITION BY session_id ORDER BY session_line_num) = 1
            ON CONFLICT (server, session_id) DO UPDATE SET
              ${['process_id', 'user_name', 'database_name', 'client_addr', 'client_port', 'application_name', 'backend_type', 'session_start'].map(keep).join(', ')},
              ${kind === 'connect' ? 'connected_at = excluded.connected_at' : 'disconnected_at = excluded.disconnected_at, duration_ms = excluded.duration_ms'}`,
          );
        }
      }
      const failures = rel('failures');
      if (failures) {
        await timedRun(
          conn,
          'correlation: logon_failures',
          `INSERT OR IGNORE INTO logon_failures
          SELECT ${sv}, session_id, session_line_num, ${ts('log_time_ms')}, user_name, database_name, client_addr, client_port, sqlstate, message, detail
          FROM ${failures}`,
        );
      }
      const errors = rel('errors');
      if (errors) {
        await timedRun(
          conn,
          'correlation: statement_errors',
          `INSERT OR IGNORE INTO statement_errors
          SELECT ${sv}, session_id, session_line_num, ${ts('log_time_ms')}, user_name, database_name, vxid, transaction_id, severity, sqlstate,
                 message, statement_id
          FROM ${errors}`,
        );
      }
      const outcomeRows = outcomes ? rel('outcomes') : undefined;
      if (outcomeRows) {
        // The statement's rows lie between its first row and the error: only those row groups are read.
        await timedRun(
          conn,
          'correlation: outcome onto event_rows',
          `UPDATE event_rows AS e SET sqlstate = o.sqlstate, error_message = o.message
          FROM (SELECT * FROM ${outcomeRows} QUALIFY row_number() OVER (PARTITION BY session_id, statement_id ORDER BY line) = 1) AS o, event_contexts AS c
          WHERE e.log_time BETWEEN ${ts(String(this.outcomeFromMs))} AND ${ts(String(this.outcomeToMs))} AND c.context_id = e.context_id
            AND c.server = ${sv} AND c.session_id = o.session_id AND e.statement_id = o.statement_id AND e.sqlstate IS NULL`,
        );
      }
      const ended = rel('ended');
      if (ended) {
        await timedRun(
          conn,
          'correlation: forget ended sessions',
          `DELETE FROM correlation_sessions WHERE pipeline = ${pl} AND server = ${sv} AND session_id IN (SELECT session_id FROM ${ended})`,
        );
      }
      const state = rel('state');
      if (state) {
        // The latest state of each session that did not end; a file read again (reaching back in time) never
        // moves a session's state backwards.
        await timedRun(
          conn,
          'correlation: last statement per session',
          `INSERT INTO correlation_sessions
          SELECT ${pl}, ${sv}, session_id, statement_id, vxid, last_line, statement_hash, marker, ${ts('first_time_ms')}, first_line, ${ts('last_time_ms')}
          FROM ${state}
          WHERE ${ended ? `session_id NOT IN (SELECT session_id FROM ${ended})` : 'true'}
          QUALIFY row_number() OVER (PARTITION BY session_id ORDER BY seq DESC) = 1
          ON CONFLICT (pipeline, server, session_id) DO UPDATE SET statement_id = excluded.statement_id, vxid = excluded.vxid, last_line = excluded.last_line,
            statement_hash = excluded.statement_hash, marker = excluded.marker, first_time = excluded.first_time, first_line = excluded.first_line,
            last_time = excluded.last_time
          WHERE excluded.last_line > correlation_sessions.last_line`,
        );
        // A session without a disconnection record (log_disconnections off, a crash) is forgotten after a week of
        // log time: no statement fails that long after it was logged.
        await timedRun(
          conn,
          'correlation: forget idle sessions',
          `DELETE FROM correlation_sessions WHERE pipeline = ${pl} AND server = ${sv}
          AND first_time < (SELECT max(first_time) FROM correlation_sessions WHERE pipeline = ${pl} AND server = ${sv}) - INTERVAL 7 DAY`,
        );
      }
    } finally {
      await this.clear();
    }
  }
}

/** The committed rows of `sessions` of these sessions of the server. */
export async function loadStoredSessions(conn: DuckDBConnection, server: string, ids: readonly string[]): Promise<Map<string, StoredSession>> {
  const out = new Map<string, StoredSession>();
  const n = (v: unknown) => (v === null || v === undefined ? null : Number(v));
  const t = (v: unknown) => (v === null || v === undefined ? null : String(v));
  for (let i = 0; i < ids.length; i += 1000) {
    const chunk = ids.slice(i, i + 1000);
    const r = await timedRead(
      conn,
      'correlation: stored sessions',
      `SELECT session_id, process_id, user_name, database_name, client_addr, client_port,
        application_name, backend_type, epoch_ms(session_start), epoch_ms(connected_at), epoch_ms(disconnected_at), duration_ms
      FROM sessions WHERE server = ${sqlString(server)} AND session_id IN (${chunk.map(sqlString).join(', ')})`,
    );
    for (const row of r.getRows()) {
      out.set(String(row[0]), {
        process_id: n(row[1]),
        user_name: t(row[2]),
        database_name: t(row[3]),
        client_addr: t(row[4]),
        client_port: n(row[5]),
        application_name: t(row[6]),
        backend_type: t(row[7]),
        session_start_ms: n(row[8]),
        connected_at_ms: n(row[9]),
        disconnected_at_ms: n(row[10]),
        duration_ms: n(row[11]),
      });
    }
  }
  return out;
}

/**
 * The last statement of each session open at the pipeline's last commit (a tracker's start state). State of a
 * version 3 store has no first line and last time: the last line and first time stand in.
 */
export async function loadSessionStates(conn: DuckDBConnection, pipeline: string, server: string): Promise<StatementState[]> {
  const r = await timedRead(
    conn,
    'correlation: load session state',
    `SELECT session_id, statement_id, vxid, last_line,
    statement_hash, marker, epoch_ms(first_time), first_line, epoch_ms(last_time) FROM correlation_sessions
    WHERE pipeline = ${sqlString(pipeline)} AND server = ${sqlString(server)}`,
  );
  return r.getRows().map((row) => {
    const lastLine = Number(row[3] ?? -1);
    const firstMs = Number(row[6] ?? 0);
    return {
      session_id: String(row[0]),
      statement_id: Number(row[1] ?? -1),
      vxid: row[2] === null ? null : String(row[2]),
      last_line: lastLine,
      statement_hash: Number(row[4] ?? 0),
      marker: Boolean(row[5]),
      first_time_ms: firstMs,
      first_line: row[7] === null ? lastLine : Number(row[7]),
      last_time_ms: row[8] === null ? firstMs : Number(row[8]),
    };
  });
}
