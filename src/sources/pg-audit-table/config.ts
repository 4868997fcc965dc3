import { PG_SCHEMES, type ConnectorSpec, type Options } from '../../core/config-spec.js';
import type { ColumnRule } from '../../redact/index.js';
import type { PgAuditTableOptions } from './source.js';

/**
 * The config keys of a pg_audit_table source.
 * Validation, docs and the example config come from it (npm run gen:config); the decoded, typed section is the type below.
 */
export const PG_AUDIT_TABLE_SOURCE = {
  kind: 'pg_audit_table',
  description:
    'A trigger-fed audit table in PostgreSQL (auditship pg install, or an audit-trigger 91plus table), read in commit-safe order; NOTIFY wakes it, polling is the safety net.',
  fields: {
    url: {
      type: 'url',
      schemes: PG_SCHEMES,
      required: true,
      example: 'postgres://auditship:${PGPASSWORD}@db.example.com:5432/app',
      description:
        'PostgreSQL connection URL. The role needs SELECT on the audit table (DELETE too for delete_after_ship) and should run with pgaudit.log = none.',
    },
    table: {
      type: 'string',
      default: 'auditship.logged_actions',
      description:
        "The audit table: auditship's own (auditship pg install), an audit-trigger 91plus audit.logged_actions (hstore row data) or a variant of it.",
    },
    server: {
      type: 'string',
      default: 'default',
      description: "Name of the PostgreSQL server; with the table and event_id it is each row change's identity.",
    },
    cursor: {
      type: 'enum',
      values: ['auto', 'xid8', 'txid', 'lag_window'],
      default: 'auto',
      description:
        'How reading keeps its place. auto: xid8 when the table has an xid8 column, txid with a bigint transaction_id (91plus), else lag_window, which can miss a transaction that commits more than lag_window_ms after taking its id (a warning says so at start).',
    },
    lag_window_ms: {
      type: 'integer',
      default: 600000,
      minimum: 0,
      description: 'lag_window cursor only: how long an event id missing below the highest one seen is waited for.',
    },
    batch_rows: { type: 'integer', default: 40000, minimum: 1, description: 'Most rows read per batch.' },
    commit_rows: {
      type: 'integer',
      default: 250000,
      minimum: 1,
      description:
        'While catching up a backlog, batches are committed together up to this many rows, rounded down to whole DuckDB row groups of 122,880 rows (full row groups are written straight to the file; partly filled ones are recompressed at the next checkpoint). A caught-up reader commits every batch.',
    },
    batch_bytes: {
      type: 'size',
      default: '16MB',
      description: 'Rows are read until a batch holds about this much text (a 1 MB row still makes a batch of its own).',
    },
    batch_latency_ms: {
      type: 'integer',
      default: 100,
      minimum: 0,
      description:
        'Follow mode: after a wake-up, wait this long so that a burst of small transactions makes one batch. Bounds the delay a row gets on top of its commit.',
    },
    poll_interval_ms: {
      type: 'integer',
      default: 1000,
      minimum: 10,
      description: 'Follow mode: read even without a notification this often (notifications are lost while disconnected).',
    },
    delete_after_ship: {
      type: 'boolean',
      default: false,
      description:
        'Delete rows from the audit table once every sink has committed them — only rows at or below the stored cursor, never beyond it. Needs an xid8 or txid cursor.',
    },
    delete_chunk_rows: { type: 'integer', default: 10000, minimum: 1, description: 'Rows deleted per statement by delete_after_ship.' },
  },
} as const satisfies ConnectorSpec;

export type PgAuditTableConfig = Options<typeof PG_AUDIT_TABLE_SOURCE>;

/** The reader's settings from a decoded section (the job and `auditship check` open the source alike). */
export function tableSourceOptions(c: PgAuditTableConfig, columns: ColumnRule[] = []): PgAuditTableOptions {
  return {
    columns,
    url: c.url,
    table: c.table,
    server: c.server,
    cursor: c.cursor,
    batchRows: c.batch_rows,
    batchBytes: c.batch_bytes,
    lagWindowMs: c.lag_window_ms,
    deleteChunkRows: c.delete_chunk_rows,
  };
}
