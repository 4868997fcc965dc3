import type { OutboxSourceConfig } from './index.js';
import { SQL_SCHEMES, type ConnectorSpec, type ObjectSpec, type Options } from '../../core/config-spec.js';

/**
 * The config keys of the sql_outbox and django_auditlog sources (one reader, two table layouts).
 * Validation, docs and the example config come from it (npm run gen:config); the decoded, typed section is the type below.
 */
/** Keys sql_outbox and django_auditlog share. */
const APP_TABLE_COMMON = {
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
} as const satisfies ObjectSpec;

export const SQL_OUTBOX_SOURCE = {
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
} as const satisfies ConnectorSpec;

export const DJANGO_AUDITLOG_SOURCE = {
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
} as const satisfies ConnectorSpec;

export type SqlOutboxConfig = Options<typeof SQL_OUTBOX_SOURCE>;
export type DjangoAuditlogConfig = Options<typeof DJANGO_AUDITLOG_SOURCE>;
/** Either app-table source (the keys they share, and each one's own as optional). */
export type AppTableConfig = SqlOutboxConfig | DjangoAuditlogConfig;

/** The reader's settings from a decoded section; `pipeline` names the source when source_name is not set. */
export function outboxSourceConfig(s: AppTableConfig, pipeline: string): OutboxSourceConfig & { sourceName: string } {
  // The keys of one layout only; the other's reader ignores them (their defaults keep the old values).
  const outbox = s.type === 'sql_outbox' ? s : undefined;
  const django = s.type === 'django_auditlog' ? s : undefined;
  const sql = SQL_OUTBOX_SOURCE.fields;
  return {
    kind: s.type,
    url: s.url,
    table: s.table,
    idColumn: outbox?.id_column ?? sql.id_column.default,
    sentColumn: outbox?.sent_column ?? sql.sent_column.default,
    messageColumn: outbox?.message_column ?? sql.message_column.default,
    createdAtColumn: outbox?.created_at_column ?? sql.created_at_column.default,
    timePath: outbox?.time_path ?? '',
    naiveTimeZone: s.naive_time_zone,
    select: outbox?.select || null,
    markSent: outbox?.mark_sent || null,
    purgeSql: outbox?.purge || null,
    userTable: django?.user_table ?? DJANGO_AUDITLOG_SOURCE.fields.user_table.default,
    origin: django?.origin ?? '',
    environment: django?.environment ?? '',
    sourceName: s.source_name ?? pipeline,
  };
}
