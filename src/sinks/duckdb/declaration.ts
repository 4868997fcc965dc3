import type { SinkDeclaration } from '../../core/declaration.js';
import { DUCKDB_SINK } from './config.js';

/**
 * Sink `duckdb`: the embedded store, last in every pipeline (it keeps the checkpoints in the same transaction as
 * the events). Its tables follow the kind of events the pipeline's source makes.
 */
export const duckdb: SinkDeclaration<typeof DUCKDB_SINK> = {
  role: 'sink',
  spec: DUCKDB_SINK,
  accepts: ['pgaudit', 'row_changes', 'app_events'],
  problems: (sink, at) => (sink.ledger_anchor !== undefined && !sink.ledger ? [`${at}.ledger_anchor: anchors the ledger's heads; set ledger: true`] : []),
  check: async (pipeline, o, i) => (await import('./check.js')).checkDuckdb(pipeline, o, i),
  async tables(connection, facts) {
    switch (facts.events) {
      case 'pgaudit':
        await (await import('./schema.js')).ensureSchema(connection, facts.server);
        return;
      case 'row_changes':
        await connection.run((await import('./row-changes.js')).ROW_CHANGES_DDL);
        return;
      case 'app_events':
        await connection.run((await import('./app-events.js')).APP_EVENTS_DDL);
        return;
    }
  },
};
