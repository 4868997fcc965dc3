import { type ConnectorSpec, type Options } from '../../core/config-spec.js';

/**
 * The config keys of an archive sink.
 * Validation, docs and the example config come from it (npm run gen:config); the decoded, typed section is the type below.
 */
export const ARCHIVE_SINK = {
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
} as const satisfies ConnectorSpec;

export type ArchiveConfig = Options<typeof ARCHIVE_SINK>;
