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
export { EventListQueries, EVENT_SORTS, TOP_VALUE_FIELDS, type EventExportRow } from './event-list.js';
export { RowChangeQueries, CHANGE_SORTS, CHANGE_GROUPS, diffOf, type ChangeExportRow } from './row-changes.js';
export { AppEventQueries, APP_SORTS, type AppEventExportRow } from './app-events.js';
export { MAX_PAGE } from './paging.js';
export { storeQueries, type StoreQueries } from './store.js';
export { parseChangeFilter, parseAppEventFilter, CHANGE_FILTER_KEYS, APP_FILTER_KEYS } from './source-filter.js';
