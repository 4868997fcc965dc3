/**
 * Rows of a trigger audit table as they travel from the pg_audit_table source to the sinks: the columns read
 * (in ROW_COLUMNS order), a batch (rows in memory, or staged by COPY into a file), and the cursor that is
 * committed with them.
 */

/** How reading an audit table stays in commit order (sources/pg-audit-table/layout.ts). */
export type CursorMode = 'xid8' | 'txid' | 'lag_window';

export const ROW_COLUMNS = [
  'event_id',
  'txid',
  'schema_name',
  'table_name',
  'relid',
  'action',
  'row_data',
  'changed_fields',
  'statement_only',
  'session_user_name',
  'application_name',
  'client_addr',
  'client_port',
  'action_tstamp_tx_us',
  'action_tstamp_stm_us',
  'action_tstamp_clk_us',
  'client_query',
] as const;

export type RowColumn = (typeof ROW_COLUMNS)[number];

/** Where reading resumes; stored by the state-owning sink together with the rows (as JSON). */
export interface TableCursor {
  /** `<system identifier>:<table oid>`: a restored or recreated table gets a new one. */
  identity: string;
  mode: CursorMode;
  /** Last shipped (transaction, event id), decimal strings; '0' before the first row. */
  txid: string;
  eventId: string;
  /** lag_window mode: ids below eventId not seen yet, with the time (epoch ms) they were first missed. */
  gaps?: [string, number][];
}

/** One audit row as read, every column as text (or null), in ROW_COLUMNS order. */
export type RawRow = (string | null)[];

/**
 * A batch PostgreSQL wrote straight into a stage file with COPY (the fast path: no row passes through
 * JavaScript). Columns in ROW_COLUMNS order, in the stage dialect (US delimiter, GS quote, GS doubled).
 */
export interface StagedRows {
  file: string;
  /** Rows in the file. */
  rows: number;
  fileBytes: number;
  /** Longest run of bytes between two newlines: the longest record unless a value holds a newline. */
  longestLine: number;
  minEventId: string;
  maxEventId: string;
  lastClockUs: string | null;
}

export interface TableBatch {
  /** Set on the COPY path; `rows` then holds only the rows that cannot be stored (for quarantine). */
  staged?: StagedRows;
  rows: RawRow[];
  /** Approximate size of the rows' text. */
  bytes: number;
  /** The cursor once these rows are stored. */
  cursor: TableCursor;
  /** Event ids given up on in lag_window mode during this read. */
  expiredGaps: number;
}

/** Column index of each ROW_COLUMNS name in a RawRow. */
export const ROW_INDEX = Object.fromEntries(ROW_COLUMNS.map((c, i) => [c, i])) as Record<RowColumn, number>;
