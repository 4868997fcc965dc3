import type { SourceDeclaration } from '../../core/declaration.js';
import { DJANGO_AUDITLOG_SOURCE, SQL_OUTBOX_SOURCE } from './config.js';

/**
 * Sources `sql_outbox` and `django_auditlog`: application events in a PostgreSQL or MariaDB/MySQL table, shipped
 * when unsent and marked sent (index.ts; mappings.ts knows the two layouts). Their events are small: DuckDB
 * runs well in half the memory.
 */
export const sqlOutbox: SourceDeclaration<typeof SQL_OUTBOX_SOURCE> = {
  role: 'source',
  spec: SQL_OUTBOX_SOURCE,
  events: 'app_events',
  memoryMB: 48,
  purges: true,
  server: () => 'default',
  check: async (pipeline, o) => [await (await import('./check.js')).checkAppTable(pipeline, o)],
};

export const djangoAuditlog: SourceDeclaration<typeof DJANGO_AUDITLOG_SOURCE> = {
  role: 'source',
  spec: DJANGO_AUDITLOG_SOURCE,
  events: 'app_events',
  memoryMB: 48,
  purges: true,
  server: () => 'default',
  check: async (pipeline, o) => [await (await import('./check.js')).checkAppTable(pipeline, o)],
};
