import type { DuckDBConnection } from '@duckdb/node-api';
import { sqlString } from './database.js';

/**
 * `rds_log_files`: the rds_logs source's checkpoint — per server, instance and log file name, the size and
 * last write (as DescribeDBLogFiles reported them) of the version that was shipped: parsed to its end into
 * the pipeline's sinks and archived. A file listed with another size or last write is shipped again (its
 * events continue from their own checkpoint; an archive of whole files gets a new version).
 */
export const RDS_FILES_DDL = `
CREATE TABLE IF NOT EXISTS rds_log_files (
  server VARCHAR NOT NULL, instance VARCHAR NOT NULL, log_file_name VARCHAR NOT NULL, size BIGINT, last_written_ms BIGINT,
  fingerprint VARCHAR, downloaded_bytes BIGINT, method VARCHAR, truncated_lines INTEGER, shipped_at TIMESTAMPTZ,
  PRIMARY KEY (server, instance, log_file_name));
`;

export interface ShippedRdsFile { size: number; lastWritten: number }

export async function shippedRdsFiles(conn: DuckDBConnection, server: string, instance: string): Promise<Map<string, ShippedRdsFile>> {
  const r = await conn.runAndReadAll(`SELECT log_file_name, size, last_written_ms FROM rds_log_files WHERE server = ${sqlString(server)} AND instance = ${sqlString(instance)}`);
  return new Map(r.getRows().map((row) => [String(row[0]), { size: Number(row[1]), lastWritten: Number(row[2]) }]));
}

export async function markRdsFileShipped(conn: DuckDBConnection, f: { server: string; instance: string; name: string; size: number; lastWritten: number; fingerprint: string | null; downloadedBytes: number; method: string; truncatedLines: number }): Promise<void> {
  await conn.run(`INSERT OR REPLACE INTO rds_log_files VALUES (${sqlString(f.server)}, ${sqlString(f.instance)}, ${sqlString(f.name)}, ${f.size}, ${f.lastWritten},
    ${f.fingerprint === null ? 'NULL' : sqlString(f.fingerprint)}, ${f.downloadedBytes}, ${sqlString(f.method)}, ${f.truncatedLines}, now())`);
}
