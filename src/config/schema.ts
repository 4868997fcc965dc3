/**
 * The config sections that belong to no connector: the top-level keys, `ui` and `metrics`. Each source's and
 * sink's keys are declared in its own folder (config.ts) and reach validation, the docs and the example config
 * through the registry (src/connectors.ts); the vocabulary of a key's spec is core/config-spec.ts.
 */
import type { ObjectSpec } from '../core/config-spec.js';

export type { ConnectorSpec, FieldSpec, FieldType, ObjectSpec } from '../core/config-spec.js';

/** The top-level `ui` section: the web UI that `run --follow` serves besides its unix socket. */
export const UI_SECTION = {
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
  saved_searches: {
    type: 'string_or_list',
    example: 'Failed statements on salary=outcome=error&q=salary',
    description:
      "Searches everyone who opens the UI finds in its Saved list: NAME=FILTER, the filter in the terms of the page's URL (range, from, to, server, user, database, class, command, object, outcome, q). A link ending in #search=NAME opens one; searches saved in the page itself are kept by the browser.",
  },
} as const satisfies ObjectSpec;

/** The top-level `metrics` section: Prometheus metrics of `run --follow`. */
export const METRICS_SECTION = {
  listen: {
    type: 'string',
    example: '127.0.0.1:9464',
    description:
      "While `auditship run --follow` runs, serve Prometheus metrics at http://HOST:PORT/metrics (text format 0.0.4; per pipeline: events read, stored, duplicates, quarantined, dead letters, bytes, batches, commits, retries, errors by kind, lag, checkpoint age, sink write and commit latency; process memory and CPU). No authentication: the metrics hold counts, durations, pipeline names and kinds, never audit data, so a non-loopback address (0.0.0.0:9464, for a Prometheus on another host) is allowed — firewall it as you see fit. The UI's TCP listener (ui.listen) serves /metrics too, behind its authentication. The --metrics flag overrides it.",
  },
} as const satisfies ObjectSpec;

/** The top-level `redaction` section: the policy that masks secrets before any sink (src/redact). */
export const REDACTION_SECTION = {
  enabled: {
    type: 'boolean',
    default: true,
    description:
      "Mask secrets in pgaudit statements and parameters and in the server's error texts before any sink stores or forwards them: passwords of CREATE/ALTER ROLE/USER (pgaudit masks only its own records of statements that succeeded), password options of user mappings and foreign servers, password= in connection strings and postgres:// URLs, the keys of pgcrypto's functions (and a parameter used as one). A secret becomes <redacted:RULE>, naming the rule; the rest of the statement stays. The archive's files form stores the raw log files as they are: see the README.",
  },
  raw_logs_may_leave_host: {
    type: 'boolean',
    default: true,
    description:
      "The archive sink's files form uploads the log files as the server wrote them, secrets and all (redaction applies to events, not to a copy of the file). false: a pipeline that would upload raw log files to a bucket is a config error (a local directory archive is allowed; the ndjson and parquet forms are redacted).",
  },
  patterns: {
    type: 'string_or_list',
    example: 'ssn=\\b\\d{3}-\\d{2}-\\d{4}\\b',
    description:
      "Your own rules for pgaudit events, NAME=REGEX (a JavaScript regular expression; NAME in lower case letters, digits and _): every match in a statement, a parameter, a kept raw message and the server's error texts becomes <redacted:NAME>. With patterns, every statement is read as text (the fast path that skips statements without quotes is off): measure the cost with npm run bench.",
  },
  columns: {
    type: 'string_or_list',
    example: 'public.users.password_hash',
    description:
      "pg_audit_table: SCHEMA.TABLE.COLUMN of an audited table, masked (<redacted:column>) or, with :drop, left out of row_data and changed_fields — in PostgreSQL's own query, so the value never leaves the database. row_data must be jsonb, json or hstore.",
  },
  json_paths: {
    type: 'string_or_list',
    example: 'changes.password',
    description:
      'sql_outbox and django_auditlog: a dotted path into the message (* for any key or array element of one level), masked (<redacted:json_path>) or, with :drop, left out, before any sink. A message that is not JSON is quarantined as it is.',
  },
} as const satisfies ObjectSpec;

/**
 * A pipeline's `state` section: its DuckDB file kept in an S3 bucket between runs, for hosts without a disk
 * that outlives a run (AWS Lambda, a container): src/jobs/remote-state.ts.
 */
export const STATE_SECTION = {
  bucket: { type: 'string', required: true, example: 'acme-auditship-state', description: 'The S3 bucket that keeps the state file.' },
  key: {
    type: 'string',
    required: true,
    example: 'prod/auditship.duckdb',
    description:
      "The state file's key. Fetched before the pipeline runs (unless the local copy is that version already) and written back when it ends, conditionally (If-Match on the ETag fetched, If-None-Match: * for the first): of two overlapping runs only one moves the state; the other stops with one line, and what it shipped is recognised by the next run.",
  },
  region: { type: 'string', example: 'eu-central-1', description: "The bucket's region; default $AWS_REGION, else us-east-1." },
  endpoint: { type: 'string', example: 'http://127.0.0.1:9000', description: 'An S3-compatible endpoint; default: AWS S3 of the region.' },
  force_path_style: { type: 'boolean', default: false, description: 'Path-style addressing (MinIO and most S3-compatible stores).' },
  sse: {
    type: 'enum',
    values: ['none', 'AES256', 'aws:kms'],
    default: 'none',
    description: 'Server-side encryption of the state file (it holds the stored events when the DuckDB sink stores them).',
  },
  sse_kms_key_id: { type: 'string', example: 'arn:aws:kms:eu-central-1:111122223333:key/...', description: 'With sse: aws:kms, the KMS key.' },
  access_key_id: { type: 'string', example: '${AWS_ACCESS_KEY_ID}', description: 'Static credentials; by default the standard AWS chain (environment, role).' },
  secret_access_key: { type: 'string', example: '${AWS_SECRET_ACCESS_KEY}', description: 'With access_key_id (never logged).' },
  session_token: { type: 'string', example: '${AWS_SESSION_TOKEN}', description: 'With temporary access keys.' },
  max_retries: { type: 'integer', default: 8, minimum: 0, description: 'Retries of a request (5xx, throttling, connection errors) with backoff.' },
  timeout_ms: { type: 'integer', default: 120000, minimum: 1000, description: 'A request that makes no progress for this long is retried.' },
} as const satisfies ObjectSpec;

/**
 * The top-level `alerts` section: destinations (their keys are the transports': src/alerts/deliver/config.ts), rules
 * and delivery. Declared with the rest of alerts in src/alerts/config.ts and decoded there (config/load.ts calls it).
 */
export { ALERT_DELIVERY_FIELDS, ALERT_RULE_FIELDS } from '../alerts/config.js';

/** Keys of a pipeline. */
export const PIPELINE_KEYS = ['source', 'sinks', 'state'] as const;
export const TOP_LEVEL_KEYS = ['pipelines', 'ui', 'metrics', 'redaction', 'alerts'] as const;
