import type { SourceDeclaration } from '../../core/declaration.js';
import { PG_LOGS_SOURCE } from './config.js';

/** Source `pg_logs`: a PostgreSQL server's csvlog/jsonlog files with pgaudit records (source.ts reads them). */
export const pgLogs: SourceDeclaration<typeof PG_LOGS_SOURCE> = {
  role: 'source',
  spec: PG_LOGS_SOURCE,
  events: 'pgaudit',
  memoryMB: 96,
  server: (o) => o.server,
  check: async (pipeline, o) => (await import('./check.js')).checkPgLogs(pipeline, o),
};
