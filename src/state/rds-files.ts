import type { DuckDBConnection } from '@duckdb/node-api';
import { sqlString } from '../duckdb/sql.js';

/**
 * `rds_log_files`: the rds_logs source's checkpoint — per pipeline, server, instance and log file name, the size
 * and last write (as DescribeDBLogFiles reported them) of the version that was shipped: parsed to its end into
 * the pipeline's sinks and archived. A file listed with another size or last write is shipped again (its
 * events continue from their own checkpoint; an archive of whole files gets a new version). Per pipeline, like
 * `ingest_files`: two pipelines of one instance each ship every file to their own sinks.
 */
const CREATE = `
CREATE TABLE IF NOT EXISTS rds_log_files (
  pipeline VARCHAR NOT NULL, server VARCHAR NOT NULL, instance VARCHAR NOT NULL, log_file_name VARCHAR NOT NULL, size BIGINT, last_written_ms BIGINT,
  fingerprint VARCHAR, downloaded_bytes BIGINT, method VARCHAR, truncated_lines INTEGER, shipped_at TIMESTAMPTZ,
  PRIMARY KEY (pipeline, server, instance, log_file_name));
`;

/**
 * Creates the table, or gives one of an earlier version (no pipeline) its pipeline column: every row kept, with
 * pipeline '' until the first pipeline of its server and instance takes it over (takeOverRdsFiles).
 */
export async function ensureRdsFiles(conn: DuckDBConnection): Promise<void> {
  const cols = (
    await conn.runAndReadAll(`SELECT column_name FROM information_schema.columns
    WHERE table_catalog = current_database() AND table_schema = 'main' AND table_name = 'rds_log_files'`)
  )
    .getRows()
    .map((r) => String(r[0]));
  if (cols.length === 0 || cols.includes('pipeline')) {
    await conn.run(CREATE);
    return;
  }
  await conn.run('BEGIN TRANSACTION');
  try {
    await conn.run('ALTER TABLE rds_log_files RENAME TO rds_log_files_unkeyed');
    await conn.run(CREATE);
    await conn.run(`INSERT INTO rds_log_files BY NAME SELECT '' AS pipeline, * FROM rds_log_files_unkeyed`);
    await conn.run('DROP TABLE rds_log_files_unkeyed');
    await conn.run('COMMIT');
  } catch (err) {
    await conn.run('ROLLBACK').catch(() => {});
    throw err;
  }
}

/** The rows of an earlier version for this server and instance become this pipeline's, if it has none yet. */
export async function takeOverRdsFiles(conn: DuckDBConnection, pipeline: string, server: string, instance: string): Promise<number> {
  const where = `server = ${sqlString(server)} AND instance = ${sqlString(instance)}`;
  const r = await conn.runAndReadAll(`SELECT (SELECT count(*) FROM rds_log_files WHERE pipeline = '' AND ${where}),
    (SELECT count(*) FROM rds_log_files WHERE pipeline = ${sqlString(pipeline)} AND ${where})`);
  const [unowned, own] = r.getRows()[0]!.map(Number) as [number, number];
  if (unowned === 0 || own > 0) return 0;
  await conn.run(`UPDATE rds_log_files SET pipeline = ${sqlString(pipeline)} WHERE pipeline = '' AND ${where}`);
  return unowned;
}

export interface ShippedRdsFile {
  size: number;
  lastWritten: number;
}

export async function shippedRdsFiles(conn: DuckDBConnection, pipeline: string, server: string, instance: string): Promise<Map<string, ShippedRdsFile>> {
  const r = await conn.runAndReadAll(`SELECT log_file_name, size, last_written_ms FROM rds_log_files
    WHERE pipeline = ${sqlString(pipeline)} AND server = ${sqlString(server)} AND instance = ${sqlString(instance)}`);
  return new Map(r.getRows().map((row) => [String(row[0]), { size: Number(row[1]), lastWritten: Number(row[2]) }]));
}

export async function markRdsFileShipped(
  conn: DuckDBConnection,
  f: {
    pipeline: string;
    server: string;
    instance: string;
    name: string;
    size: number;
    lastWritten: number;
    fingerprint: string | null;
    downloadedBytes: number;
    method: string;
    truncatedLines: number;
  },
): Promise<void> {
  await conn.run(`INSERT OR REPLACE INTO rds_log_files VALUES (${sqlString(f.pipeline)}, ${sqlString(f.server)}, ${sqlString(f.instance)}, ${sqlString(f.name)}, ${f.size}, ${f.lastWritten},
    ${f.fingerprint === null ? 'NULL' : sqlString(f.fingerprint)}, ${f.downloadedBytes}, ${sqlString(f.method)}, ${f.truncatedLines}, now())`);
}
