/**
 * The one config schema: every key with its type, default and description. Validation, the annotated
 * `auditship.example.yaml` and docs/configuration.md are all generated from these definitions
 * (`npm run gen:config`; a test fails when the generated files are stale).
 */
export type FieldType = 'string' | 'integer' | 'boolean' | 'enum' | 'string_or_list' | 'size' | 'url';

export interface FieldSpec {
  type: FieldType;
  description: string;
  default?: string | number | boolean | string[];
  required?: boolean;
  /** Allowed values for `enum`. */
  values?: readonly string[];
  /** Allowed URL schemes for `url` (without `://`), e.g. postgres, postgresql. */
  schemes?: readonly string[];
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

/** The URL schemes of PostgreSQL connections (what `pg` and libpq read). */
const PG_SCHEMES = ['postgres', 'postgresql'] as const;
/** PostgreSQL or MariaDB/MySQL (src/sources/sql/client.ts dialectOf). */
const SQL_SCHEMES = [...PG_SCHEMES, 'mysql', 'mariadb'] as const;

export const PG_LOGS_SOURCE: ConnectorSpec = {
  kind: 'pg_logs',
  description: 'PostgreSQL csvlog/jsonlog files with pgaudit records (plain, .gz or .zst), read from per-file checkpoints.',
  fields: {
    path: {
      type: 'string_or_list',
      required: true,
      example: '/var/lib/postgresql/15/main/log',
      description: "The server's log_directory (or a log file); a list reads several. Not recursive.",
    },
    server: {
      type: 'string',
      default: 'default',
      description: "Name of the PostgreSQL server these logs come from; part of every event's identity (server, session_id, session_line_num).",
    },
    file_glob: {
      type: 'string',
      default: '*.{csv,json}{,.gz,.zst}',
      description: 'Which file names in a directory are log files (*, ?, [..] and {a,b}).',
    },
    prefer_format: {
      type: 'enum',
      values: ['jsonlog', 'csvlog'],
      default: 'jsonlog',
      description: 'When the server writes both csvlog and jsonlog, the format to read (the other file of each pair is skipped).',
    },
    skip_active: {
      type: 'boolean',
      default: false,
      description: 'Skip the file the server is writing now. By default it is read up to its last complete record.',
    },
    log_timezone: {
      type: 'string',
      example: 'Europe/Berlin',
      description:
        "The server's log_timezone as an IANA name (SHOW log_timezone). Needed when log times carry an ambiguous abbreviation such as IST or CST; without it such a file fails rather than get a wrong time.",
    },
    max_record_bytes: {
      type: 'size',
      default: '256MB',
      description: 'A record still incomplete past this size is quarantined instead of waited for.',
    },
    batch_bytes: {
      type: 'size',
      default: '16MB',
      description: 'Log content parsed per batch (memory per batch is a few times this); at most 2MB in pipelines with an elasticsearch sink.',
    },
    poll_interval_ms: {
      type: 'integer',
      default: 5000,
      minimum: 100,
      description:
        'run --follow: how often the log directory is looked at for new records at the latest (the safety net: fs.watch reports new bytes sooner, but its events can be lost).',
    },
  },
};

export const PG_AUDIT_TABLE_SOURCE: ConnectorSpec = {
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
};

export const RDS_LOGS_SOURCE: ConnectorSpec = {
  kind: 'rds_logs',
  description:
    "An RDS or Aurora PostgreSQL instance's log files: listed with DescribeDBLogFiles, completed files downloaded whole (REST downloadCompleteLogFile, or DownloadDBLogFilePortion), checkpointed by name, size and last write; csvlog files are parsed like pg_logs, every file can go to an archive sink.",
  fields: {
    instance: {
      type: 'string',
      required: true,
      example: 'prod-db-1',
      description: 'The DB instance identifier (for Aurora: each instance of the cluster is its own pipeline).',
    },
    region: { type: 'string', example: 'eu-central-1', description: "The instance's region; default $AWS_REGION, else us-east-1." },
    server: { type: 'string', description: "Name of the server in the events' identity and in the archive; default: the instance identifier." },
    endpoint: {
      type: 'string',
      example: 'https://rds.eu-central-1.amazonaws.com',
      description: "The RDS API endpoint (a VPC endpoint; default: the region's).",
    },
    download: {
      type: 'enum',
      values: ['auto', 'complete', 'portion'],
      default: 'auto',
      description:
        'complete: the whole-file REST download (needs rds:DownloadCompleteDBLogFile); portion: DownloadDBLogFilePortion pages (1 MB each; a longer line arrives truncated, noted in the manifest); auto: complete, and portion when the REST download is refused.',
    },
    file_glob: {
      type: 'string',
      default: '*',
      example: 'error/postgresql.log.*',
      description: 'Which log files (LogFileName, e.g. error/postgresql.log.2024-05-01-10.csv) are shipped; csvlog files (.csv) are parsed, all are archived.',
    },
    idle_complete_minutes: {
      type: 'integer',
      default: 120,
      minimum: 0,
      description:
        'The newest file of each kind is the one being written and is skipped, unless it has not been written for this long (then it is shipped; should it grow later, the new part is parsed and the archive gets a new version). 0: never.',
    },
    log_timezone: { type: 'string', default: 'UTC', description: "The instance's log_timezone (RDS default UTC)." },
    max_record_bytes: { type: 'size', default: '256MB', description: 'A record still incomplete past this size is quarantined.' },
    batch_bytes: { type: 'size', default: '4MB', description: 'Log content parsed per batch.' },
    poll_interval_ms: { type: 'integer', default: 300000, minimum: 1000, description: "run --follow: how often the instance's log files are listed." },
    max_retries: {
      type: 'integer',
      default: 8,
      minimum: 0,
      description: 'Retries of an API call or download (throttling, 5xx, connection errors) with backoff.',
    },
    timeout_ms: { type: 'integer', default: 120000, minimum: 1000, description: 'A request or download that makes no progress for this long is retried.' },
    access_key_id: {
      type: 'string',
      example: '${AWS_ACCESS_KEY_ID}',
      description:
        'Static credentials; by default the standard AWS chain (environment incl. AWS_SESSION_TOKEN, AWS_PROFILE, SSO, web identity, instance or task role).',
    },
    secret_access_key: { type: 'string', example: '${AWS_SECRET_ACCESS_KEY}', description: 'With access_key_id (never logged).' },
    session_token: { type: 'string', example: '${AWS_SESSION_TOKEN}', description: 'With temporary access keys.' },
  },
};

/** Keys sql_outbox and django_auditlog share. */
const APP_TABLE_COMMON: ObjectSpec = {
  source_name: {
    type: 'string',
    example: 'billing-app',
    description:
      "Name of the application these rows come from; with the table, row id and a fingerprint of the content it is every event's identity. Default: the pipeline's name.",
  },
  naive_time_zone: {
    type: 'string',
    default: 'UTC',
    description:
      'IANA zone of times written without an offset (MySQL DATETIME, timestamp without time zone, a message time like 2024-05-01T12:00:00). All times are stored in UTC.',
  },
  chunk_size: {
    type: 'integer',
    default: 500,
    minimum: 1,
    description: 'Rows claimed, stored and marked sent per step (one source transaction and one sink transaction each; rows stay locked only for their chunk).',
  },
  batch_size: {
    type: 'integer',
    default: 5000,
    minimum: 0,
    description: 'Most rows shipped per run (0 = no limit). Quarantined rows seen before do not count.',
  },
  retain_days: {
    type: 'integer',
    default: 30,
    minimum: 0,
    description: '`auditship purge` deletes rows marked sent whose time is older than this; never a row without the sent mark.',
  },
  purge_interval_hours: {
    type: 'integer',
    default: 0,
    minimum: 0,
    description: 'Also purge from `run` (and `run --follow`) when the last purge is older than this; 0 = only `auditship purge`.',
  },
  purge_chunk_rows: { type: 'integer', default: 1000, minimum: 1, description: 'Rows deleted per statement by a purge.' },
  poll_interval_ms: { type: 'integer', default: 5000, minimum: 100, description: 'run --follow: how often the table is looked at for unsent rows.' },
};

export const SQL_OUTBOX_SOURCE: ConnectorSpec = {
  kind: 'sql_outbox',
  description:
    'An outbox table of application audit messages (id, is_sent, message JSON, created_at) in PostgreSQL or MariaDB/MySQL; unsent rows are shipped and then marked sent. With select + mark_sent, any table.',
  fields: {
    url: {
      type: 'url',
      schemes: SQL_SCHEMES,
      required: true,
      example: 'mysql://auditship:${DB_PASSWORD}@db.example.com:3306/app',
      description: 'postgres://... or mysql://... (mariadb://...) URL. The user needs SELECT and UPDATE on the table (DELETE for purge).',
    },
    table: { type: 'string', default: 'audit_logs', description: 'The outbox table (schema.table where needed).' },
    id_column: { type: 'string', default: 'id', description: 'Unique row id (read in ascending order).' },
    sent_column: { type: 'string', default: 'is_sent', description: 'Boolean: false or NULL = not shipped yet; set true once every sink committed the row.' },
    message_column: { type: 'string', default: 'message', description: 'The JSON message (json, jsonb or text).' },
    created_at_column: {
      type: 'string',
      default: 'created_at',
      description: "When the row was written: the event time when the message has none, and the purge's age.",
    },
    time_path: {
      type: 'string',
      default: 'audit_event.date_time',
      description:
        "Where the event time is inside the message (structured-log-transfer's DATE_TIME_PARENT_FIELD.DATE_TIME_FIELD); ISO 8601 text or epoch seconds/milliseconds. Missing: created_at is used. Empty: always created_at.",
    },
    select: {
      type: 'string',
      example: 'SELECT id, payload AS message, created AS created_at FROM events WHERE shipped IS NULL',
      description:
        'A generic mapping instead of the outbox columns: SQL returning the unsent rows as id, message (JSON text) and optionally created_at. Needs mark_sent; rows are claimed by a named lock for the run.',
    },
    mark_sent: {
      type: 'string',
      example: 'UPDATE events SET shipped = now() WHERE id IN (:ids)',
      description: 'With select: marks shipped rows; :ids becomes the list of ids.',
    },
    purge: {
      type: 'string',
      example: 'DELETE FROM events WHERE shipped < :cutoff LIMIT :limit',
      description: 'With select: deletes shipped rows older than :cutoff, at most :limit per statement. Without it such a source cannot be purged.',
    },
    ...APP_TABLE_COMMON,
  },
};

export const DJANGO_AUDITLOG_SOURCE: ConnectorSpec = {
  kind: 'django_auditlog',
  description:
    "django-auditlog's LogEntry table in PostgreSQL or MariaDB/MySQL, as the message structured-log-transfer sends (@timestamp, audit_event.actor/date_time/operation/origin/target/environment/message); additional_data.is_sent marks shipped entries.",
  fields: {
    url: {
      type: 'url',
      schemes: SQL_SCHEMES,
      required: true,
      example: 'postgres://auditship:${PGPASSWORD}@db.example.com:5432/app',
      description:
        'postgres://... or mysql://... (mariadb://...) URL of the Django database. The user needs SELECT and UPDATE on the log entry table, SELECT on the user table (DELETE for purge).',
    },
    table: { type: 'string', default: 'auditlog_logentry', description: 'The LogEntry table.' },
    user_table: {
      type: 'string',
      default: 'auth_user',
      description: 'Table of the user model (a custom AUTH_USER_MODEL has its own); actor = full name, else email, else "unknown".',
    },
    origin: { type: 'string', default: '', description: 'audit_event.origin of every message (AUDIT_LOG_ORIGIN).' },
    environment: { type: 'string', default: '', description: 'audit_event.environment of every message (AUDIT_LOG_ENVIRONMENT).' },
    ...APP_TABLE_COMMON,
  },
};

export const ELASTICSEARCH_SINK: ConnectorSpec = {
  kind: 'elasticsearch',
  description:
    'Elasticsearch 8.x/9.x or OpenSearch 2.x/3.x: bulk create with deterministic ids into indices named from the event time, an index template with explicit ECS mappings, retries with backoff; documents refused for good go to es_dead_letters. A duckdb sink after it keeps the checkpoints.',
  fields: {
    url: {
      type: 'url',
      schemes: ['http', 'https'],
      required: true,
      example: 'https://es.example.com:9200',
      description: 'The cluster endpoint (http:// or https://).',
    },
    flavor: {
      type: 'enum',
      values: ['auto', 'elasticsearch', 'opensearch'],
      default: 'auto',
      description: 'What the cluster is; auto reads it from GET / (product header, version.distribution). Set it to fail fast when the URL points elsewhere.',
    },
    username: { type: 'string', example: 'auditship', description: 'Basic auth user.' },
    password: { type: 'string', example: '${ES_PASSWORD}', description: 'Basic auth password (take it from the environment; it is never logged).' },
    api_key: {
      type: 'string',
      example: '${ES_API_KEY}',
      description: 'API key (the base64 "id:key" form Elasticsearch returns as `encoded`); sent as Authorization: ApiKey.',
    },
    bearer_token: { type: 'string', example: '${ES_TOKEN}', description: 'A bearer token (Authorization: Bearer).' },
    ca_file: { type: 'string', example: '/etc/auditship/es-ca.pem', description: 'PEM file of the CA that signed the cluster certificate.' },
    insecure: { type: 'boolean', default: false, description: 'Accept any TLS certificate (test clusters only).' },
    index_prefix: {
      type: 'string',
      default: 'auditship',
      description:
        'Indices are <index_prefix>-pgaudit-<event date> (pg_logs, rds_logs; with them <index_prefix>-sessions-<session start date> and <index_prefix>-logon-failures-<date>, and the outcome of failed statements on their events), <index_prefix>-rows-<event date> (pg_audit_table) or <index_prefix>-app-<source name>-<event date> (sql_outbox, django_auditlog); a template covers each family.',
    },
    index_period: { type: 'enum', values: ['daily', 'monthly'], default: 'daily', description: 'One index per day or per month of event time (UTC).' },
    manage_template: {
      type: 'boolean',
      default: true,
      description: 'Put the index template at start (needs manage_index_templates); false if you install it yourself.',
    },
    flush_bytes: { type: 'size', default: '2MB', description: 'Bulk request size bound (memory is about concurrency + 2 of them).' },
    max_content_length: {
      type: 'size',
      default: '100MiB',
      minimum: 65536,
      description:
        "The cluster's http.max_content_length (default 100mb in Elasticsearch and OpenSearch, which is 100MiB), or the lower body limit of a proxy in front of it: a document larger than this is dead-lettered before sending (es_dead_letters, reason document_too_large), and bulk requests stay below it even when flush_bytes is larger. A request refused as too large (413) anyway is split in halves; a single document refused so is dead-lettered.",
    },
    flush_docs: { type: 'integer', default: 5000, minimum: 1, description: 'Bulk request document bound.' },
    concurrency: { type: 'integer', default: 2, minimum: 1, description: 'Bulk requests in flight.' },
    max_retries: {
      type: 'integer',
      default: 8,
      minimum: 0,
      description: 'Retries of a request (429, 5xx, connection errors; exponential backoff with jitter) before the run fails and rolls back.',
    },
    timeout_ms: { type: 'integer', default: 60000, minimum: 100, description: 'Per-request timeout.' },
  },
};

export const ARCHIVE_SINK: ConnectorSpec = {
  kind: 'archive',
  description:
    'Keeps audit logs for cheap, verifiable retention in a local directory or an S3-compatible bucket (storage class incl. Glacier, server-side encryption, Object Lock): the completed log files compressed (form files), the parsed events as NDJSON.gz (ndjson) or as Parquet partitioned server=/date= (parquet). A SHA-256 per object and a manifest; `auditship verify-archive` checks them. pg_logs and rds_logs pipelines.',
  fields: {
    form: {
      type: 'enum',
      values: ['files', 'ndjson', 'parquet'],
      default: 'files',
      description:
        'files: each completed log file whole, compressed (already compressed files as they are); ndjson: the parsed pgaudit events as gzipped JSON lines; parquet: the parsed events as Parquet (zstd) for DuckDB, Trino, Athena and Spark. ndjson and parquet also write the sessions, logon failures and statement errors of the same log ranges (datasets sessions, logon-failures, statement-errors).',
    },
    directory: { type: 'string', example: '/srv/audit-archive', description: 'A local directory to archive to (instead of bucket).' },
    bucket: { type: 'string', example: 'acme-audit-archive', description: 'The S3 bucket (instead of directory).' },
    prefix: {
      type: 'string',
      default: '',
      example: 'postgres/',
      description: 'Key prefix inside the bucket; the layout under it is logs/, pgaudit/, pgaudit-ndjson/ and _manifest/ (see the README).',
    },
    endpoint: {
      type: 'string',
      example: 'https://s3.eu-central-1.amazonaws.com',
      description: 'An S3-compatible endpoint (MinIO, Ceph, R2, a VPC endpoint); default: AWS S3 of the region.',
    },
    region: { type: 'string', example: 'eu-central-1', description: "The bucket's region; default $AWS_REGION, else us-east-1." },
    force_path_style: {
      type: 'boolean',
      default: false,
      description: 'Path-style addressing (endpoint/bucket/key), which MinIO and most S3-compatible stores need.',
    },
    storage_class: {
      type: 'enum',
      values: ['STANDARD', 'STANDARD_IA', 'GLACIER_IR', 'GLACIER', 'DEEP_ARCHIVE'],
      default: 'STANDARD',
      description:
        'Storage class of the archived objects (the manifest stays STANDARD). GLACIER and DEEP_ARCHIVE objects cannot be read until restored and have 90/180-day minimums: verify-archive checks them by HEAD.',
    },
    sse: {
      type: 'enum',
      values: ['none', 'AES256', 'aws:kms'],
      default: 'none',
      description: 'Server-side encryption: AES256 (SSE-S3) or aws:kms (SSE-KMS); none leaves it to the bucket default.',
    },
    sse_kms_key_id: {
      type: 'string',
      example: 'arn:aws:kms:eu-central-1:111122223333:key/...',
      description: 'With sse: aws:kms, the KMS key (default: the AWS managed key).',
    },
    object_lock_mode: {
      type: 'enum',
      values: ['none', 'GOVERNANCE', 'COMPLIANCE'],
      default: 'none',
      description:
        'Object Lock retention for every object (WORM; the bucket must have Object Lock enabled). COMPLIANCE cannot be shortened or removed by anyone.',
    },
    object_lock_days: { type: 'integer', minimum: 1, example: 2555, description: 'With object_lock_mode: days each object is retained from its upload.' },
    compression: {
      type: 'enum',
      values: ['gzip', 'zstd'],
      default: 'gzip',
      description:
        'Form files: how plain log files are compressed: .gz (independent 2 MB members compressed in parallel; gunzip reads them as one file) or .zst (4 MB frames).',
    },
    compression_level: { type: 'integer', minimum: 1, example: 6, description: 'gzip 1-9 (default 6), zstd 1-19 (default 3).' },
    parquet_memory_limit: {
      type: 'size',
      default: '1GB',
      description:
        'Form parquet: the most memory DuckDB may take to write a range holding very large statements (96MB otherwise; a range with records over 1 MB gets about 4 × its largest record + 2 × their total). A record that still cannot be written to Parquet is archived beside it as NDJSON.gz (pgaudit-rejects/), listed in the manifest with the reason, and counted in `auditship status`: nothing stalls the archive.',
    },
    file_concurrency: {
      type: 'integer',
      default: 1,
      minimum: 1,
      description:
        'Form files: log files archived at the same time. One file already uses every core (gzip is compressed in parallel blocks); more mainly costs memory.',
    },
    part_size: {
      type: 'size',
      default: '16MB',
      description:
        'Multipart upload part size. S3 allows 10,000 parts: a log file larger than 10,000 × part_size gets larger parts. Memory is about (upload_concurrency + 1) × part_size per object being written.',
    },
    upload_concurrency: { type: 'integer', default: 2, minimum: 1, description: 'Parts of one object uploaded at the same time.' },
    max_retries: {
      type: 'integer',
      default: 8,
      minimum: 0,
      description: 'Retries of a request (5xx, throttling, connection errors, timeouts) with exponential backoff before the run fails.',
    },
    timeout_ms: { type: 'integer', default: 120000, minimum: 1000, description: 'A request that makes no progress for this long is retried.' },
    request_checksum_calculation: {
      type: 'enum',
      values: ['when_supported', 'when_required'],
      default: 'when_supported',
      description:
        "The AWS SDK's extra CRC checksums; when_required for stores that refuse them (Cloudflare R2, older MinIO). Every part carries Content-MD5 either way.",
    },
    access_key_id: {
      type: 'string',
      example: '${AWS_ACCESS_KEY_ID}',
      description:
        'Static credentials; by default the standard AWS chain is used (environment incl. AWS_SESSION_TOKEN, AWS_PROFILE, SSO, web identity, instance or task role).',
    },
    secret_access_key: { type: 'string', example: '${AWS_SECRET_ACCESS_KEY}', description: 'With access_key_id (never logged).' },
    session_token: { type: 'string', example: '${AWS_SESSION_TOKEN}', description: 'With temporary access keys.' },
  },
};

export const DUCKDB_SINK: ConnectorSpec = {
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
    commit_events: {
      type: 'integer',
      default: 250000,
      minimum: 1,
      description: 'Commit at least every this many events (and at the end of each file). Larger is faster; a kill loses no data either way.',
    },
  },
};

export const SOURCES: Record<string, ConnectorSpec> = {
  pg_logs: PG_LOGS_SOURCE,
  rds_logs: RDS_LOGS_SOURCE,
  pg_audit_table: PG_AUDIT_TABLE_SOURCE,
  sql_outbox: SQL_OUTBOX_SOURCE,
  django_auditlog: DJANGO_AUDITLOG_SOURCE,
};
export const SINKS: Record<string, ConnectorSpec> = { duckdb: DUCKDB_SINK, elasticsearch: ELASTICSEARCH_SINK, archive: ARCHIVE_SINK };

/** The top-level `ui` section: the web UI that `run --follow` serves besides its unix socket. */
export const UI_SECTION: ObjectSpec = {
  listen: {
    type: 'string',
    example: '127.0.0.1:8080',
    description:
      'While `auditship run --follow` runs, also serve the read-only web UI on this HOST:PORT (it is always served on a unix socket next to each DuckDB file, mode 0600, which `auditship ui` and `auditship report` use while the daemon holds the file). A non-loopback address needs token or basic_auth. The --ui flag overrides it.',
  },
  token: {
    type: 'string',
    example: '${AUDITSHIP_UI_TOKEN}',
    description:
      'A shared secret of at least 16 characters: send `Authorization: Bearer TOKEN`, or open the UI once with ?token=TOKEN (an HttpOnly cookie keeps it). Read it from the environment, as in the example.',
  },
  basic_auth: {
    type: 'string',
    example: 'auditor:${AUDITSHIP_UI_PASSWORD}',
    description: 'USER:PASSWORD for HTTP Basic authentication of the UI (use it behind TLS: a reverse proxy).',
  },
};

/** The top-level `metrics` section: Prometheus metrics of `run --follow`. */
export const METRICS_SECTION: ObjectSpec = {
  listen: {
    type: 'string',
    example: '127.0.0.1:9464',
    description:
      "While `auditship run --follow` runs, serve Prometheus metrics at http://HOST:PORT/metrics (text format 0.0.4; per pipeline: events read, stored, duplicates, quarantined, dead letters, bytes, batches, commits, retries, errors by kind, lag, checkpoint age, sink write and commit latency; process memory and CPU). No authentication: the metrics hold counts, durations, pipeline names and kinds, never audit data, so a non-loopback address (0.0.0.0:9464, for a Prometheus on another host) is allowed — firewall it as you see fit. The UI's TCP listener (ui.listen) serves /metrics too, behind its authentication. The --metrics flag overrides it.",
  },
};

/** Keys of a pipeline. */
export const PIPELINE_KEYS = ['source', 'sinks'] as const;
export const TOP_LEVEL_KEYS = ['pipelines', 'ui', 'metrics'] as const;
