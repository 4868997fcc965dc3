import type { DuckDBConnection } from '@duckdb/node-api';
import type { QueryRunner } from './queries.js';

/** A QueryRunner over a DuckDB connection (statements run one at a time on it). */
export function duckdbRunner(conn: DuckDBConnection): QueryRunner {
  let chain: Promise<unknown> = Promise.resolve();
  return {
    all(sql, params = []) {
      // One connection runs one statement at a time: queue them.
      const run = chain.then(async () => (await conn.runAndReadAll(sql, params)).getRowObjectsJson() as Record<string, unknown>[]);
      chain = run.catch(() => {});
      return run;
    },
  };
}
