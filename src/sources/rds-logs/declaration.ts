import type { SourceDeclaration } from '../../core/declaration.js';
import { RDS_LOGS_SOURCE } from './config.js';

/** Source `rds_logs`: an RDS or Aurora instance's log files, downloaded through the RDS API (index.ts). */
export const rdsLogs: SourceDeclaration<typeof RDS_LOGS_SOURCE> = {
  role: 'source',
  spec: RDS_LOGS_SOURCE,
  events: 'pgaudit',
  memoryMB: 96,
  server: (o) => o.server ?? o.instance,
  check: async (pipeline, o) => [await (await import('./check.js')).checkRdsLogs(pipeline, o)],
  problems: (o, at) =>
    (o.access_key_id === undefined) !== (o.secret_access_key === undefined) ? [`${at}: access_key_id and secret_access_key go together`] : [],
  // The files shipped so far (name, size, last write), beside the events.
  tables: async (connection) => (await import('../../state/rds-files.js')).ensureRdsFiles(connection),
};
