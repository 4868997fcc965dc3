import type { Config } from '../config/load.js';
import { sinkDeclaration, sourceDeclaration } from '../connectors.js';
import type { CheckResult } from '../core/check.js';

/**
 * Light, read-only checks of each pipeline's source and sinks: can auditship reach and use them? One
 * CheckResult per path, table, database, cluster or bucket. Each connector's check is its own (check.ts in its
 * folder, named by its declaration) and reaches it through the same code the pipelines use (its connect or open
 * step, its healthcheck); nothing is written: a DuckDB file is opened read-only, a directory that does not exist
 * yet is not created.
 */

/** The checks of every pipeline, source first then each sink, yielded as each finishes. */
export async function* pipelineChecks(config: Config): AsyncGenerator<CheckResult> {
  for (const p of config.pipelines) {
    for (const r of await sourceDeclaration(p.source.type).check(p.name, p.source as never)) yield r;
    for (const [i, sink] of p.sinks.entries()) yield await sinkDeclaration(sink.type).check(p.name, sink as never, i);
  }
}

/**
 * The PostgreSQL server a config points `check` at, when it names one: none when a pg_logs pipeline reads
 * log files (that server is this machine's), else the first postgres:// URL of a table source.
 */
export function configServerUrl(config: Config): string | undefined {
  if (config.pipelines.some((p) => p.source.type === 'pg_logs')) return undefined;
  return config.pipelines
    .map((p) => ('url' in p.source ? p.source.url : undefined))
    .find((u): u is string => typeof u === 'string' && /^postgres(ql)?:\/\//i.test(u));
}
