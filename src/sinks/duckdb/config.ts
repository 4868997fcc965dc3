import { type ConnectorSpec, type Options } from '../../core/config-spec.js';

/**
 * The config keys of the duckdb sink.
 * Validation, docs and the example config come from it (npm run gen:config); the decoded, typed section is the type below.
 */
export const DUCKDB_SINK = {
  kind: 'duckdb',
  description:
    "An embedded DuckDB database file: audit_logs, quarantine, ingest_files (and the seed's log_paths, log_summary) for pg_logs; row_changes, row_quarantine, table_cursors for pg_audit_table; app_events, app_quarantine, app_sources for sql_outbox and django_auditlog.",
  fields: {
    path: { type: 'string', default: './auditship.duckdb', description: 'The database file. Keep it on a local disk (DuckDB locks it).' },
    store_message: {
      type: 'boolean',
      default: false,
      description:
        'Store each raw pgaudit message (raw_message). Without it, audit_logs.message is rebuilt from the parsed fields, exactly as pgaudit wrote it, so every statement is stored once.',
    },
    memory_limit: {
      type: 'string',
      example: '96MB',
      description:
        "DuckDB's memory_limit while loading (queries use their own, larger limit). Default 96MB; 48MB for sql_outbox and django_auditlog, whose small commits need less. Loading needs little; a very long record raises it for a moment.",
    },
    threads: {
      type: 'integer',
      default: 1,
      minimum: 1,
      description: 'DuckDB worker threads. One leaves the other core to parsing; more helps large queries, not ingestion.',
    },
    store_events: {
      type: 'boolean',
      default: true,
      description:
        'false: keep the checkpoints, the correlation (sessions, logon_failures, statement_errors), the quarantine and the dead letters here, not the events — they live in the search or archive sink before this one (pg_logs and rds_logs pipelines).',
    },
    ledger: {
      type: 'boolean',
      default: false,
      description:
        'Append a hash-chained ledger entry with each stored batch, in its transaction, so that `auditship verify` catches rows changed, deleted or added after the fact. Off by default for now: it costs about 7 % of pg_logs ingest time and a third of audit-table ingest time (README, The ledger).',
    },
    ledger_anchor: {
      type: 'string',
      example: 's3://audit-anchors/prod',
      description:
        "With ledger: write the ledger's heads here after a commit, at most every ledger_anchor_every_s, and when the run ends — a directory, or s3://bucket/prefix (region and endpoint from AWS_REGION and AWS_ENDPOINT_URL_S3, path-style addressing with an endpoint; credentials from the AWS environment). One small JSON object per anchor under ledger-anchors/; with the bucket's default Object Lock retention none can be changed. auditship verify --anchor checks the store against them.",
    },
    ledger_anchor_every_s: {
      type: 'integer',
      default: 3600,
      minimum: 1,
      description: 'Seconds between two anchors of a process that keeps running (run --follow).',
    },
    commit_events: {
      type: 'integer',
      default: 250000,
      minimum: 1,
      description: 'Commit at least every this many events (and at the end of each file). Larger is faster; a kill loses no data either way.',
    },
  },
} as const satisfies ConnectorSpec;

export type DuckdbConfig = Options<typeof DUCKDB_SINK>;
