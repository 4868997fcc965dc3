/**
 * The embedded DuckDB engine as every part of auditship uses it — the DuckDB sink (the store), the archive's
 * Parquet writer, the state store and the readers (ui, status, query, report):
 *  - duckdb.ts: the @duckdb/node-api binding, loaded once (fast start);
 *  - sql.ts: SQL literals and exact epoch → TIMESTAMPTZ conversions;
 *  - stage.ts: the one staging format (a CSV dialect) rows travel in to DuckDB's CSV reader;
 *  - packed-sql.ts: pgaudit events packed by the parser (parse/packed.ts), read from stage files.
 * This layer knows no source and no sink.
 */
export * from './duckdb.js';
export * from './sql.js';
export * from './stage.js';
export * from './packed-sql.js';
