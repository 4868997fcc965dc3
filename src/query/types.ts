/**
 * The shapes of the audit queries (src/query): what the UI's JSON API, `auditship report` and the UI
 * benchmark exchange. Times travel as epoch milliseconds (UTC) in filters and as ISO-8601 strings in rows.
 */

/** Which events a query covers. Every list is OR within itself, AND across keys; absent = no condition. */
export interface EventFilter {
  /** Inclusive lower bound, epoch ms. */
  from?: number;
  /** Exclusive upper bound, epoch ms. */
  to?: number;
  server?: string[];
  user?: string[];
  database?: string[];
  /** pgaudit classes: READ, WRITE, DDL, ROLE, FUNCTION, MISC, MISC_SET. */
  class?: string[];
  /** pgaudit commands: SELECT, INSERT, CREATE TABLE, GRANT, ... */
  command?: string[];
  /** Object name, case-insensitive substring (e.g. `public.accounts` or `accounts`). */
  object?: string;
  outcome?: 'success' | 'error';
  /** Case-insensitive substring of the statement text. */
  text?: string;
}

/** One row of the result table (the statement shortened to STATEMENT_PREVIEW characters). */
export interface EventRow {
  /** Opaque event id: pass to getEvent. */
  id: string;
  log_time: string;
  server: string;
  session_id: string;
  session_line_num: number;
  user_name: string | null;
  database_name: string | null;
  client_addr: string | null;
  application_name: string | null;
  audit_type: string | null;
  class: string | null;
  command: string | null;
  object_type: string | null;
  object_name: string | null;
  outcome: 'success' | 'error';
  sqlstate: string | null;
  statement_preview: string | null;
}

export interface EventPage {
  rows: EventRow[];
  /** Cursor for the next (older) page, or null at the end. Pass as `after`. */
  next: string | null;
}

/** Everything stored about one event. */
export interface EventDetail extends Omit<EventRow, 'statement_preview'> {
  statement: string | null;
  parameter: string | null;
  rows: number | null;
  statement_id: number | null;
  substatement_id: number | null;
  virtual_transaction_id: string | null;
  transaction_id: number | null;
  process_id: number | null;
  client_port: number | null;
  backend_type: string | null;
  file_name: string | null;
  error_message: string | null;
}

/** A session from its connection authorized / disconnection records. */
export interface SessionInfo {
  server: string;
  session_id: string;
  process_id: number | null;
  user_name: string | null;
  database_name: string | null;
  client_addr: string | null;
  client_port: number | null;
  application_name: string | null;
  session_start: string | null;
  connected_at: string | null;
  disconnected_at: string | null;
  duration_ms: number | null;
}

/** One step of a session's timeline. */
export interface TimelineItem {
  log_time: string;
  session_line_num: number;
  kind: 'connect' | 'audit' | 'error' | 'disconnect';
  /** For audit items: the event id (getEvent), class, command, object; for errors: sqlstate. */
  id?: string;
  class?: string | null;
  command?: string | null;
  object_name?: string | null;
  outcome?: 'success' | 'error';
  sqlstate?: string | null;
  /** A short label without statement text (e.g. "SELECT public.accounts", "ERROR 22012"). */
  label: string;
}

export interface EventWithSession {
  event: EventDetail;
  session: SessionInfo | null;
  /** The session's timeline around the event (at most TIMELINE_LIMIT items; `truncated` says when more). */
  timeline: TimelineItem[];
  truncated: boolean;
}

/** Distinct values for the filter controls, and the stored time range. */
export interface Facets {
  servers: string[];
  users: string[];
  databases: string[];
  classes: string[];
  commands: string[];
  /** ISO times of the oldest and newest event, null when empty. */
  min_time: string | null;
  max_time: string | null;
  events: number;
}

/** Events per time bucket and class. */
export interface TimeSeries {
  bucket_ms: number;
  /** Buckets in time order; `t` is the bucket start (epoch ms). */
  points: { t: number; class: string; n: number }[];
}

export interface TopEntry {
  key: string;
  n: number;
}

export interface LogonFailureSummary {
  total: number;
  bucket_ms: number;
  points: { t: number; n: number }[];
  top: { user_name: string | null; client_addr: string | null; reason: string; n: number }[];
}
