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
  /** Session application names (application_name), exact. */
  application?: string[];
  /** Client addresses (client_addr), exact. */
  client?: string[];
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

// ---- Sorting, row changes and application events (src/query/event-list.ts, row-changes.ts, app-events.ts) ----

/** The order of a listing: a whitelisted column (`time` by default) and its direction (newest first by default). */
export interface SortSpec {
  by: string;
  dir: 'asc' | 'desc';
}

/** Options of a page of a listing. */
export interface PageOptions {
  limit?: number;
  /** The `next` of the previous page (of the same sort). */
  after?: string | null;
  sort?: Partial<SortSpec>;
}

/** The most frequent values of each field over a filter's events (the event list's sidebar). */
export type TopValues = Record<string, TopEntry[]>;

/** Which row changes a query covers (lists: OR within, AND across; absent = no condition). */
export interface ChangeFilter {
  from?: number;
  to?: number;
  server?: string[];
  schema?: string[];
  /** Table names, bare (`orders`) or qualified (`public.orders`). */
  table?: string[];
  /** INSERT, UPDATE, DELETE, TRUNCATE. */
  action?: string[];
  /** The session user who made the change. */
  user?: string[];
  /** Case-insensitive substring of the row data or the changed fields (their JSON text). */
  text?: string;
}

/** One row of the row-changes table. */
export interface ChangeRow {
  /** Opaque: pass to getChange. */
  id: string;
  /** action_tstamp_clk: when the row changed. */
  time: string;
  server: string;
  source_table: string;
  event_id: string;
  schema_name: string | null;
  table_name: string | null;
  action: string | null;
  user_name: string | null;
  application_name: string | null;
  client_addr: string | null;
  statement_only: boolean | null;
  /** Names of the changed fields (UPDATE), else null. */
  changed: string[] | null;
  /** The start of the changed fields' (UPDATE) or the row's JSON. */
  preview: string | null;
}

export interface ChangePage {
  rows: ChangeRow[];
  next: string | null;
}

/** One field of a change: added (INSERT, or a field new to the row), removed (DELETE), changed or unchanged. */
export interface FieldDiff {
  field: string;
  kind: 'added' | 'removed' | 'changed' | 'unchanged';
  before?: unknown;
  after?: unknown;
}

/** Everything stored about one row change, and its diff. */
export interface ChangeDetail extends Omit<ChangeRow, 'preview'> {
  txid: string | null;
  relid: string | null;
  client_port: number | null;
  tstamp_tx: string | null;
  tstamp_stm: string | null;
  client_query: string | null;
  shipped_at: string | null;
  /** The row as stored (the old row for UPDATE and DELETE), parsed; the text when it is not JSON. */
  row_data: unknown;
  changed_fields: unknown;
  diff: FieldDiff[];
}

/** Which application events a query covers. */
export interface AppEventFilter {
  from?: number;
  to?: number;
  /** Source names (the pipeline's, by default). */
  source?: string[];
  /** Source tables. */
  table?: string[];
  /** audit_event.actor (or actor, user) of the message. */
  actor?: string[];
  /** audit_event.operation (or operation, action) of the message. */
  operation?: string[];
  /** Case-insensitive substring of the message's JSON text. */
  text?: string;
}

export interface AppEventRow {
  id: string;
  time: string;
  source_name: string;
  source_table: string;
  row_id: string;
  actor: string | null;
  operation: string | null;
  target: string | null;
  /** The start of audit_event.message, else of the message's JSON. */
  preview: string | null;
}

export interface AppEventPage {
  rows: AppEventRow[];
  next: string | null;
}

export interface AppEventDetail extends Omit<AppEventRow, 'preview'> {
  created_at: string | null;
  shipped_at: string | null;
  fingerprint: string;
  /** The message, parsed. */
  message: unknown;
}

/** What the store holds of the other sources: null when their table is absent; `rows` 0 when empty. */
export interface SourcesSummary {
  row_changes: {
    rows: number;
    min_time: string | null;
    max_time: string | null;
    servers: string[];
    schemas: string[];
    tables: string[];
    actions: string[];
    users: string[];
  } | null;
  app_events: {
    rows: number;
    min_time: string | null;
    max_time: string | null;
    sources: string[];
    tables: string[];
    actors: string[];
    operations: string[];
  } | null;
}
