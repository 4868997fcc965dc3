/**
 * The correlation of an archived source range (forms parquet and ndjson), as datasets of their own next to the
 * events, with the columns of the DuckDB store's tables of the same name:
 *  - `sessions`: one row per session a range has a connection or disconnection record of — the session as the
 *    store knows it once that range is read (merged with what earlier ranges and runs knew, as the store merges
 *    it), with `last_seen`, the time of its latest record. A session that ends in a later range (a later file
 *    or run) gets a newer row there: the row with the greatest last_seen per (server, session_id) is the
 *    session; older rows are what was known before. Rows are never changed or removed.
 *  - `logon_failures`: one row per FATAL authentication record.
 *  - `statement_errors`: one row per ERROR/FATAL record of a session, with the `statement_id` of the audited
 *    statement it ended (NULL: none, e.g. a syntax error). Every outcome is here: join the events on
 *    (server, session_id, statement_id).
 * The events also carry `sqlstate` and `error_message` when the error was read before they were written out:
 * NDJSON writes each batch as it comes (the error in the same batch), Parquet at each commit (in the same commit).
 * Each object belongs to its source range like the events' objects: committed with its checkpoint, once.
 */
import { jsonString } from '../../core/json.js';
import type { SessionRecord } from '../../parse/index.js';
import type { StoredSession } from '../../model/sessions.js';
import { msToTimestamptz } from '../../duckdb/sql.js';
import type { StageType } from '../../duckdb/stage.js';
import type { CorrelationDataset } from './layout.js';

type Kind = 'text' | 'int' | 'time';

/** Columns of each dataset (server comes first in NDJSON; in Parquet it is the partition directory). */
export const CORRELATION_COLUMNS: Record<CorrelationDataset, [string, Kind][]> = {
  sessions: [
    ['session_id', 'text'],
    ['process_id', 'int'],
    ['user_name', 'text'],
    ['database_name', 'text'],
    ['client_addr', 'text'],
    ['client_port', 'int'],
    ['application_name', 'text'],
    ['backend_type', 'text'],
    ['session_start', 'time'],
    ['connected_at', 'time'],
    ['disconnected_at', 'time'],
    ['duration_ms', 'int'],
    ['last_seen', 'time'],
  ],
  logon_failures: [
    ['session_id', 'text'],
    ['session_line_num', 'int'],
    ['log_time', 'time'],
    ['user_name', 'text'],
    ['database_name', 'text'],
    ['client_addr', 'text'],
    ['client_port', 'int'],
    ['sqlstate', 'text'],
    ['reason', 'text'],
    ['detail', 'text'],
  ],
  statement_errors: [
    ['session_id', 'text'],
    ['session_line_num', 'int'],
    ['log_time', 'time'],
    ['user_name', 'text'],
    ['database_name', 'text'],
    ['virtual_transaction_id', 'text'],
    ['transaction_id', 'int'],
    ['severity', 'text'],
    ['sqlstate', 'text'],
    ['message', 'text'],
    ['statement_id', 'int'],
  ],
};

/** A row of a dataset: its values in CORRELATION_COLUMNS order (times in epoch ms), and the time that dates it. */
export interface CorrelationRow {
  dateMs: number;
  values: (string | number | null)[];
}

export function logonFailureRow(r: SessionRecord): CorrelationRow {
  return {
    dateMs: r.log_time_ms,
    values: [r.session_id, r.session_line_num, r.log_time_ms, r.user_name, r.database_name, r.client_addr, r.client_port, r.sqlstate, r.message, r.detail],
  };
}

export function statementErrorRow(r: SessionRecord, statementId: number | null): CorrelationRow {
  return {
    dateMs: r.log_time_ms,
    values: [
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
    ],
  };
}

/**
 * A session record merged into what is known of its session, as the DuckDB store merges it: who and from where
 * as first known, the connection time from the connection record, end and duration from the disconnection.
 */
export function mergeSession(known: StoredSession | undefined, r: SessionRecord): StoredSession {
  const s: StoredSession = known
    ? { ...known }
    : {
        process_id: null,
        user_name: null,
        database_name: null,
        client_addr: null,
        client_port: null,
        application_name: null,
        backend_type: null,
        session_start_ms: null,
        connected_at_ms: null,
        disconnected_at_ms: null,
        duration_ms: null,
      };
  s.process_id ??= r.process_id;
  s.user_name ??= r.user_name;
  s.database_name ??= r.database_name;
  s.client_addr ??= r.client_addr;
  s.client_port ??= r.client_port;
  s.application_name ??= r.application_name;
  s.backend_type ??= r.backend_type;
  s.session_start_ms ??= r.session_start_ms;
  if (r.kind === 'connect') s.connected_at_ms = r.log_time_ms;
  else {
    s.disconnected_at_ms = r.log_time_ms;
    s.duration_ms = r.duration_ms;
  }
  return s;
}

export function sessionRow(sessionId: string, s: StoredSession): CorrelationRow {
  const times = [s.connected_at_ms, s.disconnected_at_ms].filter((t): t is number => t !== null);
  const lastSeen = times.length ? Math.max(...times) : null;
  return {
    dateMs: s.session_start_ms ?? s.connected_at_ms ?? s.disconnected_at_ms ?? 0,
    values: [
      sessionId,
      s.process_id,
      s.user_name,
      s.database_name,
      s.client_addr,
      s.client_port,
      s.application_name,
      s.backend_type,
      s.session_start_ms,
      s.connected_at_ms,
      s.disconnected_at_ms,
      s.duration_ms,
      lastSeen,
    ],
  };
}

/** One row as an NDJSON line (absent values left out, as in the events' lines). */
export function correlationLine(dataset: CorrelationDataset, serverJson: string, row: CorrelationRow): string {
  let s = `{"server":${serverJson}`;
  CORRELATION_COLUMNS[dataset].forEach(([name, kind], i) => {
    const v = row.values[i];
    if (v === null || v === undefined) return;
    s +=
      kind === 'time'
        ? `,"${name}":"${new Date(Number(v)).toISOString()}"`
        : kind === 'int'
          ? `,"${name}":${Number(v)}`
          : `,"${name}":${jsonString(String(v))}`;
  });
  return `${s}}\n`;
}

/** Stage columns of a dataset (times as epoch ms). */
export function stageColumns(dataset: CorrelationDataset): [string, StageType][] {
  return CORRELATION_COLUMNS[dataset].map(([name, kind]) => [name, kind === 'text' ? 'VARCHAR' : 'BIGINT']);
}

/** The Parquet columns from a stage relation of the dataset. */
export function parquetColumns(dataset: CorrelationDataset): string {
  return CORRELATION_COLUMNS[dataset].map(([name, kind]) => (kind === 'time' ? `${msToTimestamptz(name)} AS ${name}` : name)).join(', ');
}
