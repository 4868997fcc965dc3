import { type ConnectorSpec, type Options } from '../../core/config-spec.js';

/**
 * The config keys of an elasticsearch sink.
 * Validation, docs and the example config come from it (npm run gen:config); the decoded, typed section is the type below.
 */
export const ELASTICSEARCH_SINK = {
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
} as const satisfies ConnectorSpec;

export type ElasticsearchConfig = Options<typeof ELASTICSEARCH_SINK>;
