import { type ConnectorSpec, type Options } from '../../core/config-spec.js';
import type { RdsApiOptions } from './api.js';

/**
 * The config keys of an rds_logs source.
 * Validation, docs and the example config come from it (npm run gen:config); the decoded, typed section is the type below.
 */
export const RDS_LOGS_SOURCE = {
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
} as const satisfies ConnectorSpec;

export type RdsLogsConfig = Options<typeof RDS_LOGS_SOURCE>;

/** The instance, region, endpoint and credentials of the RDS API from a decoded section (job and check alike). */
export function rdsApiTarget(c: RdsLogsConfig): Pick<RdsApiOptions, 'instance' | 'region' | 'endpoint' | 'credentials'> {
  const { access_key_id: accessKeyId, secret_access_key: secretAccessKey, session_token: sessionToken } = c;
  return {
    instance: c.instance,
    region: c.region ?? process.env['AWS_REGION'] ?? process.env['AWS_DEFAULT_REGION'] ?? 'us-east-1',
    ...(c.endpoint ? { endpoint: c.endpoint } : {}),
    ...(accessKeyId && secretAccessKey ? { credentials: { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) } } : {}),
  };
}
