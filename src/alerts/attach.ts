import type { PipelineConfig } from '../config/load.js';
import type { Database } from '../sinks/duckdb/database.js';
import { AlertEvaluator } from './evaluate.js';
import type { AlertSource } from './rules.js';

/**
 * Gives a pipeline's DuckDB sink its alert rules: the sink runs them in each commit's transaction (beforeCommit).
 * Nothing happens for a pipeline no rule reads.
 */
export async function attachAlerts(
  db: Pick<Database, 'instance'>,
  pipeline: PipelineConfig,
  sink: { beforeCommit: AlertEvaluator['beforeCommit'] | null },
  sources: AlertSource[],
): Promise<void> {
  const evaluator = await AlertEvaluator.attach(db, pipeline.name, pipeline.alerts, sources);
  if (evaluator) sink.beforeCommit = (conn) => evaluator.beforeCommit(conn);
}
