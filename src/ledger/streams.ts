import { sqlString } from '../duckdb/sql.js';

/**
 * The ledger's streams: one per source of rows in the store — a PostgreSQL server's pgaudit events, an audit
 * table's row changes, an outbox's application events. A stream names its rows (a FROM … WHERE over the
 * store's tables), their identity (the order in which a batch is hashed), their canonical encoding, and the
 * dimension rows a batch inserts with them (pgaudit: sessions' contexts and events' kinds, which rows
 * reference by id).
 *
 * Canonical encoding, version 1 — every encoding is self-delimiting, so a batch's encodings concatenated in
 * identity order can be hashed as one stream of bytes:
 *  - pgaudit events: the packed row (parse/packed.ts) as the parser hands it to the store: the event_rows
 *    values in EVENT_ROW_COLUMNS order separated by US (0x1F), text between GS (0x1D) with a GS inside
 *    doubled, NULL empty, numbers in decimal, the time in epoch milliseconds, LF at the end. Because it is
 *    the packed form, the store hashes a batch in JavaScript from the bytes it loads (ledger/packed-digest.ts)
 *    while DuckDB inserts them; `verify` builds the same bytes from the stored rows in SQL.
 *  - dimension rows: the values as text in a JSON array (NULL as null, timestamps as epoch microseconds) and
 *    LF; row changes and application events: the SHA-256 (hex) of that — hashed in SQL at write and verify.
 *
 * What is not hashed, and why: the outcome columns of pgaudit events (`sqlstate`, `error_message`) are filled
 * in later by correlation, when the ERROR record of a statement arrives (maybe in a later batch or file);
 * rows whose statement was copied over a `<previously logged>` marker (`statement_filled`) are hashed with
 * the marker they were stored with. Both are derived from other stored records, which are hashed.
 */
export const ENCODING = 1;

export type StreamKind = 'pgaudit' | 'row_changes' | 'app_events';

/** Rows another table holds for a batch (inserted with it, carrying its `ledger_seq`). */
export interface Dimension {
  /** FROM … WHERE of the stream's rows of that table; alias `d`. */
  from: string;
  /** Identity order. */
  key: string;
  encoding: string;
}

export interface Stream {
  /** The stream's name in the ledger: `pgaudit:SERVER`, `row_changes:SERVER/TABLE`, `app_events:SOURCE/TABLE`. */
  name: string;
  kind: StreamKind;
  /** The server (pgaudit, row_changes) or source name (app_events). */
  source: string;
  /** The audit or outbox table; null for pgaudit. */
  sourceTable: string | null;
  /** The table whose rows carry `ledger_seq`. */
  table: string;
  /** FROM … WHERE selecting the stream's rows; the table's alias is `e`. */
  from: string;
  /**
   * The order in which a batch is hashed: three BIGINT keys and two VARCHAR keys (NULL where a kind has none),
   * then the encoding itself. pgaudit: the time, then the identity (context, line) — the order of a log file,
   * so that the store usually hashes a batch as it loaded it, without reordering (packed-digest.ts).
   */
  keys: [string, string, string, string, string];
  /** The canonical encoding of a row (SQL, VARCHAR, self-delimiting). */
  encoding: string;
  dimensions: Dimension[];
}

const US = 'chr(31)';
const GS = 'chr(29)';
const LF = 'chr(10)';

/** The canonical encoding of a row as a JSON array of its values' text, and LF. */
function jsonEncoding(values: string[]): string {
  return `to_json([${values.map((v) => `CAST(${v} AS VARCHAR)`).join(', ')}])::VARCHAR || ${LF}`;
}

/**
 * For rows hashed in SQL at write time (row changes, application events): the SHA-256 (hex) of the JSON
 * encoding — fixed length, so a batch's ordered aggregate holds 64 bytes a row, not the rows themselves
 * (a 250,000-row batch of JSON rows would not fit the sink's memory limit).
 */
function hashedJsonEncoding(values: string[]): string {
  return `sha256(${jsonEncoding(values)})`;
}

const us = (x: string) => `epoch_us(${x})`;

/** A packed text value: GS, the text with GS doubled, GS; NULL empty. */
const text = (x: string) => `CASE WHEN ${x} IS NULL THEN '' ELSE ${GS} || replace(${x}, ${GS}, ${GS} || ${GS}) || ${GS} END`;
const num = (x: string) => `coalesce(CAST(${x} AS VARCHAR), '')`;

/** pgaudit events of a server as packed rows (see above; parse/packed.ts EVENT_ROW_COLUMNS). */
function packedEncoding(): string {
  const marker = `'<previously logged>'`;
  const fields = [
    num('epoch_ms(e.log_time)'),
    num('e.context_id'),
    num('e.kind_id'),
    num('e.session_line_num'),
    text('e.virtual_transaction_id'),
    num('e.transaction_id'),
    num('e.query_id'),
    num('e.statement_id'),
    num('e.substatement_id'),
    text('e.object_name'),
    text(`CASE WHEN e.statement_filled THEN ${marker} ELSE e.statement END`),
    text(`CASE WHEN e.statement_filled THEN ${marker} ELSE e.parameter END`),
    num('e.rows'),
    text('e.raw_message'),
  ];
  return `concat(${fields.join(`, ${US}, `)}, ${LF})`;
}

/** pgaudit events of a server: event_rows, with the contexts and kinds their batches inserted. */
export function pgauditStream(server: string): Stream {
  const name = `pgaudit:${server}`;
  return {
    name,
    kind: 'pgaudit',
    source: server,
    sourceTable: null,
    table: 'event_rows',
    from: `event_rows AS e WHERE e.context_id IN (SELECT context_id FROM event_contexts WHERE server = ${sqlString(server)})`,
    keys: ['epoch_ms(e.log_time)', 'e.context_id', 'e.session_line_num', 'NULL::VARCHAR', 'NULL::VARCHAR'],
    encoding: packedEncoding(),
    dimensions: [
      {
        from: `event_contexts AS d WHERE d.server = ${sqlString(server)}`,
        key: 'd.context_id',
        encoding: jsonEncoding([
          'd.context_id',
          'd.server',
          'd.session_id',
          'd.user_name',
          'd.database_name',
          'd.client_addr',
          'd.client_port',
          'd.application_name',
          'd.backend_type',
          us('d.session_start'),
          'd.process_id',
          'd.leader_pid',
          'd.log_path_id',
          'd.file_name',
        ]),
      },
      {
        // Kinds are shared by the servers of a store: each is the stream's whose batch inserted it.
        from: `event_kinds AS d WHERE d.ledger_stream = ${sqlString(name)}`,
        key: 'd.kind_id',
        encoding: jsonEncoding(['d.kind_id', 'd.audit_type', 'd.class', 'd.command', 'd.object_type', 'd.command_tag', 'd.error_severity']),
      },
    ],
  };
}

/** Row changes of one audit table of a server. */
export function rowChangesStream(server: string, sourceTable: string): Stream {
  return {
    name: `row_changes:${server}/${sourceTable}`,
    kind: 'row_changes',
    source: server,
    sourceTable,
    table: 'row_changes',
    from: `row_changes AS e WHERE e.server = ${sqlString(server)} AND e.source_table = ${sqlString(sourceTable)}`,
    keys: ['e.event_id', 'NULL::BIGINT', 'NULL::BIGINT', 'NULL::VARCHAR', 'NULL::VARCHAR'],
    encoding: hashedJsonEncoding([
      'e.server',
      'e.source_table',
      'e.event_id',
      'e.txid',
      'e.schema_name',
      'e.table_name',
      'e.relid',
      'e.action',
      'e.row_data',
      'e.changed_fields',
      'e.statement_only',
      'e.session_user_name',
      'e.application_name',
      'e.client_addr',
      'e.client_port',
      us('e.action_tstamp_tx'),
      us('e.action_tstamp_stm'),
      us('e.action_tstamp_clk'),
      'e.client_query',
      us('e.shipped_at'),
    ]),
    dimensions: [],
  };
}

/** Application events of one outbox (or django-auditlog) table. */
export function appEventsStream(source: string, sourceTable: string): Stream {
  return {
    name: `app_events:${source}/${sourceTable}`,
    kind: 'app_events',
    source,
    sourceTable,
    table: 'app_events',
    from: `app_events AS e WHERE e.source_name = ${sqlString(source)} AND e.source_table = ${sqlString(sourceTable)}`,
    keys: ['NULL::BIGINT', 'NULL::BIGINT', 'NULL::BIGINT', 'e.row_id', 'e.fingerprint'],
    encoding: hashedJsonEncoding([
      'e.source_name',
      'e.source_table',
      'e.row_id',
      'e.row_num',
      'e.fingerprint',
      us('e.event_time'),
      us('e.created_at'),
      'e.message',
      us('e.shipped_at'),
    ]),
    dimensions: [],
  };
}

/** The stream of a ledger entry's kind, source and table, or null for a kind this build does not know. */
export function streamOf(kind: string, source: string, sourceTable: string | null): Stream | null {
  if (kind === 'pgaudit') return pgauditStream(source);
  if (kind === 'row_changes' && sourceTable !== null) return rowChangesStream(source, sourceTable);
  if (kind === 'app_events' && sourceTable !== null) return appEventsStream(source, sourceTable);
  return null;
}
