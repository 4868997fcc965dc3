import { type ConnectorSpec, type Options } from '../../core/config-spec.js';

/**
 * The config keys of a pg_logs source.
 * Validation, docs and the example config come from it (npm run gen:config); the decoded, typed section is the type below.
 */
export const PG_LOGS_SOURCE = {
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
} as const satisfies ConnectorSpec;

export type PgLogsConfig = Options<typeof PG_LOGS_SOURCE>;
