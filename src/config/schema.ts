/**
 * The one config schema: every key with its type, default and description. Validation, the annotated
 * `auditship.example.yaml` and docs/configuration.md are all generated from these definitions
 * (`npm run gen:config`; a test fails when the generated files are stale).
 */
export type FieldType = 'string' | 'integer' | 'boolean' | 'enum' | 'string_or_list' | 'size';

export interface FieldSpec {
  type: FieldType;
  description: string;
  default?: string | number | boolean | string[];
  required?: boolean;
  /** Allowed values for `enum`. */
  values?: readonly string[];
  /** Shown in the example config instead of the default. */
  example?: string | number | boolean;
  minimum?: number;
}

export type ObjectSpec = Record<string, FieldSpec>;

export interface ConnectorSpec {
  kind: string;
  description: string;
  fields: ObjectSpec;
}

export const PG_LOGS_SOURCE: ConnectorSpec = {
  kind: 'pg_logs',
  description: 'PostgreSQL csvlog/jsonlog files with pgaudit records (plain, .gz or .zst), read from per-file checkpoints.',
  fields: {
    path: {
      type: 'string_or_list', required: true, example: '/var/lib/postgresql/15/main/log',
      description: "The server's log_directory (or a log file); a list reads several. Not recursive.",
    },
    server: {
      type: 'string', default: 'default',
      description: 'Name of the PostgreSQL server these logs come from; part of every event\'s identity (server, session_id, session_line_num).',
    },
    file_glob: {
      type: 'string', default: '*.{csv,json}{,.gz,.zst}',
      description: 'Which file names in a directory are log files (*, ?, [..] and {a,b}).',
    },
    prefer_format: {
      type: 'enum', values: ['jsonlog', 'csvlog'], default: 'jsonlog',
      description: 'When the server writes both csvlog and jsonlog, the format to read (the other file of each pair is skipped).',
    },
    skip_active: {
      type: 'boolean', default: false,
      description: 'Skip the file the server is writing now. By default it is read up to its last complete record.',
    },
    log_timezone: {
      type: 'string', example: 'Europe/Berlin',
      description: "The server's log_timezone as an IANA name (SHOW log_timezone). Needed when log times carry an ambiguous abbreviation such as IST or CST; without it such a file fails rather than get a wrong time.",
    },
    max_record_bytes: {
      type: 'size', default: '256MB',
      description: 'A record still incomplete past this size is quarantined instead of waited for.',
    },
    batch_bytes: {
      type: 'size', default: '4MB',
      description: 'Log content parsed per batch (memory per batch is a few times this).',
    },
  },
};

export const DUCKDB_SINK: ConnectorSpec = {
  kind: 'duckdb',
  description: 'An embedded DuckDB database file: tables audit_logs, quarantine, ingest_files (and the seed\'s log_paths, log_summary).',
  fields: {
    path: { type: 'string', default: './auditship.duckdb', description: 'The database file. Keep it on a local disk (DuckDB locks it).' },
    store_message: {
      type: 'boolean', default: false,
      description: "Store each raw pgaudit message (raw_message). Without it, audit_logs.message is rebuilt from the parsed fields, exactly as pgaudit wrote it, so every statement is stored once.",
    },
    memory_limit: { type: 'string', default: '96MB', description: "DuckDB's memory_limit while loading (queries use their own, larger limit). Loading needs little; a very long record raises it for a moment." },
    threads: {
      type: 'integer', default: 1, minimum: 1,
      description: 'DuckDB worker threads. One leaves the other core to parsing; more helps large queries, not ingestion.',
    },
    commit_events: {
      type: 'integer', default: 250000, minimum: 1,
      description: 'Commit at least every this many events (and at the end of each file). Larger is faster; a kill loses no data either way.',
    },
  },
};

export const SOURCES: Record<string, ConnectorSpec> = { pg_logs: PG_LOGS_SOURCE };
export const SINKS: Record<string, ConnectorSpec> = { duckdb: DUCKDB_SINK };

/** Keys of a pipeline. */
export const PIPELINE_KEYS = ['source', 'sinks'] as const;
export const TOP_LEVEL_KEYS = ['pipelines'] as const;
