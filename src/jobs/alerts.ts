import { resolve } from 'node:path';
import { AlertEvaluator } from '../alerts/evaluate.js';
import type { AlertsConfig } from '../alerts/config.js';
import { AlertDelivery, type DeliveryCounts } from '../alerts/delivery.js';
import type { AlertSource } from '../alerts/rules.js';
import type { PipelineConfig } from '../config/load.js';
import { databaseSettings, duckdbSinkOf } from '../connectors.js';
import type { Logger } from '../core/log.js';
import { openDatabase, type Database } from '../sinks/duckdb/database.js';

/**
 * Alert rules (src/alerts) in the jobs: the rules of a pipeline given to its DuckDB sink, and the delivery of
 * what they fired, by the process that holds each DuckDB file.
 */

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

/**
 * Where the outbox of alerts is delivered from: the process that holds each DuckDB file. The daemon runs one
 * worker per file for as long as it runs; a one-shot `run` delivers after its pipelines, for at most
 * run_deadline_ms per file.
 */

/** The DuckDB files of pipelines with alert rules, with the config's alerts section. */
function alertStores(pipelines: PipelineConfig[]): Map<string, { config: AlertsConfig; pipelines: PipelineConfig[] }> {
  const out = new Map<string, { config: AlertsConfig; pipelines: PipelineConfig[] }>();
  for (const p of pipelines) {
    if (!p.alerts) continue;
    const path = resolve(duckdbSinkOf(p.sinks).path);
    const at = out.get(path) ?? { config: p.alerts.config, pipelines: [] };
    at.pipelines.push(p);
    out.set(path, at);
  }
  return out;
}

/** `run --follow`: a delivery worker on each database the daemon holds that has pipelines with rules. */
export async function startDeliveryWorkers(dbs: Map<string, Database>, pipelines: PipelineConfig[], log: Logger): Promise<AlertDelivery[]> {
  const workers: AlertDelivery[] = [];
  for (const [path, { config }] of alertStores(pipelines)) {
    const db = dbs.get(path);
    if (!db) continue;
    const w = await AlertDelivery.open(db, config, log);
    w.start();
    workers.push(w);
  }
  return workers;
}

/** A one-shot `run`: delivers what is due in each store with rules, then lets go of it. */
export async function deliverAfterRun(pipelines: PipelineConfig[], log: Logger): Promise<DeliveryCounts> {
  const total: DeliveryCounts = { delivered: 0, retried: 0, dead: 0 };
  for (const [path, { config, pipelines: mine }] of alertStores(pipelines)) {
    const db = await openDatabase(path, databaseSettings(mine));
    try {
      const w = await AlertDelivery.open(db, config, log);
      try {
        const c = await w.drain(config.delivery.run_deadline_ms);
        total.delivered += c.delivered;
        total.retried += c.retried;
        total.dead += c.dead;
      } finally {
        await w.stop();
      }
    } finally {
      await db.close();
    }
  }
  return total;
}
