/**
 * Audit queries: the questions the UI, `auditship report` and the UI benchmark ask of the DuckDB store
 * (audit_logs, sessions, logon_failures, statement_errors). Every query is fixed SQL with bound
 * parameters — nothing a user sends becomes SQL text — so a caller holding a read-only connection can
 * expose them as they are.
 */
export type * from './types.js';
export { AuditQueries, QueryInputError, type QueryRunner, STATEMENT_PREVIEW, TIMELINE_LIMIT } from './queries.js';
export { filterToParams, parseFilter, parseTime, type FilterParams } from './filter.js';
export { duckdbRunner } from './runner.js';
export { assertReadOnlySql, READ_STATEMENTS, ReadOnlySqlError } from './read-only.js';
