import type { SourceDeclaration } from '../../core/declaration.js';
import { PG_AUDIT_TABLE_SOURCE } from './config.js';

/** Source `pg_audit_table`: a trigger-fed audit table read in commit-safe order (source.ts). */
export const pgAuditTable: SourceDeclaration<typeof PG_AUDIT_TABLE_SOURCE> = {
  role: 'source',
  spec: PG_AUDIT_TABLE_SOURCE,
  events: 'row_changes',
  memoryMB: 96,
  server: (o) => o.server,
  check: async (pipeline, o) => [await (await import('./check.js')).checkPgAuditTable(pipeline, o)],
};
