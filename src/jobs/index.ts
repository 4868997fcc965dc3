import type { SourceType } from '../connectors.js';
import type { Job } from './job.js';

/**
 * The jobs layer: what runs a pipeline, assembling a source (src/sources) and its sinks (src/sinks).
 *  - job.ts: the contract every job meets (once, follow) and the one summary type;
 *  - runner.ts: the follow loop of pipelines that run in passes (open once, pass, back off, reopen);
 *  - core/pipeline.ts: the batch loop of log pipelines (read → sinks → commit with the checkpoint);
 *  - ingest.ts (pg_logs), rds.ts (rds_logs), table.ts (pg_audit_table), outbox.ts (sql_outbox, django_auditlog):
 *    what is their own; follow.ts: the daemon (`run --follow`) around them.
 *
 * JOBS maps each source type of the registry (src/connectors.ts) to its job, loaded when a pipeline needs it: a
 * run carries only the drivers and SDKs it uses. A source type missing here does not compile.
 */
export const JOBS: { readonly [K in SourceType]: () => Promise<Job> } = {
  pg_logs: async () => (await import('./ingest.js')).logsJob,
  rds_logs: async () => (await import('./rds.js')).rdsJob,
  pg_audit_table: async () => (await import('./table.js')).tableJob,
  sql_outbox: async () => (await import('./outbox.js')).outboxJob,
  django_auditlog: async () => (await import('./outbox.js')).outboxJob,
};

export type { FollowContext, Job, OnceContext, PipelineSummary } from './job.js';
