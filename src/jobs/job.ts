import type { PipelineConfig } from '../config/load.js';
import type { Logger } from '../core/log.js';
import type { PipelineMeter } from '../core/meter.js';
import type { Progress } from '../core/progress.js';
import type { Database } from '../sinks/duckdb/database.js';
import type { PipelineStatus } from '../state/daemon-status.js';
import type { PipelineSummary } from './summary.js';

export type { PipelineSummary } from './summary.js';

/**
 * What the commands know of a job: the code that runs one source type's pipeline, once (`run`) or until the
 * signal aborts (`run --follow`). jobs/index.ts maps each source type to its job.
 */
export interface OnceContext {
  log: Logger;
  progress: Progress;
  signal: AbortSignal;
  /** True when no new unit of work (a log file) should be started: the time left is short (src/lambda). */
  stopStarting?: () => boolean;
}

export interface FollowContext {
  log: Logger;
  signal: AbortSignal;
  /** The DuckDB file, opened once by the daemon and shared by its pipelines. */
  db: Database;
  meter: PipelineMeter;
  /** Reports the pipeline's state (the status file, `auditship status`, the metrics). */
  set(status: PipelineStatus): void;
  /** Runs a pass in the turn of the pipeline's server and store (log pipelines of one server take turns). */
  turn<T>(pass: () => Promise<T>): Promise<T>;
}

export interface Job {
  once(pipeline: PipelineConfig, ctx: OnceContext): Promise<PipelineSummary>;
  /** Resolves when the signal stopped it; throws when the pipeline cannot go on. */
  follow(pipeline: PipelineConfig, ctx: FollowContext): Promise<void>;
  /** `auditship purge`: deletes what was shipped long ago at the source (sources that declare `purges`). */
  purge?(pipeline: PipelineConfig, log: Logger): Promise<{ purged: number; retainDays: number; table: string }>;
}
