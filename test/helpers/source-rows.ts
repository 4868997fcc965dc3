/**
 * Row changes and application events written into a DuckDB store by the real sinks (RowChangesSink,
 * AppEventsSink), as the pg_audit_table and sql_outbox/django_auditlog jobs write them: for the query, API
 * and browser tests of the UI's other sources. Values hold commas, quotes, newlines and markup on purpose.
 */
import { quietLogger } from '../../src/core/log.js';
import { ROW_COLUMNS, type RawRow } from '../../src/model/table-rows.js';
import { AppEventsSink, type AppEvent } from '../../src/sinks/duckdb/app-events.js';
import { openDatabase } from '../../src/sinks/duckdb/database.js';
import { RowChangesSink } from '../../src/sinks/duckdb/row-changes.js';
import { Rng } from './prng.js';

export const CHANGE_TABLES = ['orders', 'customers', 'invoices'] as const;
export const CHANGE_USERS = ['alice', 'bob', 'app_rw'] as const;
export const APP_ACTORS = ['Ada Lovelace', 'Grace Hopper', 'ops@example.com'] as const;
export const APP_OPERATIONS = ['create', 'update', 'delete', 'access'] as const;

export interface SourceRowsOptions {
  changes?: number;
  appEvents?: number;
  /** Epoch ms of the first row; rows follow each other by `gapMs` (default 1000). */
  startMs?: number;
  gapMs?: number;
  seed?: number;
  server?: string;
}

/** Writes the rows into the store at `path` (created when missing) and closes it. */
export async function writeSourceRows(path: string, opts: SourceRowsOptions = {}): Promise<{ changes: number; appEvents: number }> {
  const r = new Rng(opts.seed ?? 11);
  const start = opts.startMs ?? Date.UTC(2026, 2, 1);
  const gap = opts.gapMs ?? 1000;
  const log = quietLogger();
  const db = await openDatabase(path);
  try {
    const nChanges = opts.changes ?? 0;
    if (nChanges > 0) {
      const sink = await RowChangesSink.open(db, log);
      const server = opts.server ?? 'db1';
      const rows: RawRow[] = [];
      for (let i = 1; i <= nChanges; i++) {
        const action = (['I', 'U', 'U', 'D'] as const)[r.int(0, 3)]!;
        const table = CHANGE_TABLES[i % CHANGE_TABLES.length]!;
        const row = { id: i, name: `name ${i}, "quoted"\nsecond line`, amount: r.int(1, 1000), note: i % 5 === 0 ? '<b>bold</b>' : null };
        const changed = action === 'U' ? { amount: row.amount + 1, status: i % 2 ? 'paid' : 'open' } : null;
        // Two rows in the same microsecond now and then: the listing orders them by identity.
        const us = (start + Math.floor((i - (i % 7 === 0 ? 1 : 0)) * gap)) * 1000;
        const v: Record<(typeof ROW_COLUMNS)[number], string | null> = {
          event_id: String(i),
          txid: String(1000 + i),
          schema_name: i % 10 === 0 ? 'billing' : 'public',
          table_name: table,
          relid: String(16000 + CHANGE_TABLES.indexOf(table)),
          action,
          row_data: JSON.stringify(row),
          changed_fields: changed ? JSON.stringify(changed) : null,
          statement_only: 'f',
          session_user_name: CHANGE_USERS[i % CHANGE_USERS.length]!,
          application_name: i % 2 ? 'billing-app' : 'psql',
          client_addr: `10.0.0.${i % 4}`,
          client_port: '5432',
          action_tstamp_tx_us: String(us),
          action_tstamp_stm_us: String(us),
          action_tstamp_clk_us: String(us),
          client_query: `UPDATE ${table} SET amount = amount + 1 WHERE id = ${i}`,
        };
        rows.push(ROW_COLUMNS.map((c) => v[c]));
      }
      const cursor = { identity: 'test:1', mode: 'xid8' as const, txid: String(1000 + nChanges), eventId: String(nChanges) };
      await sink.begin();
      await sink.append(server, 'auditship.logged_actions', { rows, bytes: 0, cursor, expiredGaps: 0 }, true);
      await sink.commit(server, 'auditship.logged_actions', cursor);
      await sink.close();
    }
    const nApp = opts.appEvents ?? 0;
    if (nApp > 0) {
      const sink = await AppEventsSink.open(db, log);
      for (const [source, table, share] of [
        ['shop-auditlog', 'auditlog_logentry', 2],
        ['billing-outbox', 'audit_logs', 1],
      ] as const) {
        const events: AppEvent[] = [];
        for (let i = 1; i <= nApp; i++) {
          if ((i % 3 === 0 ? 1 : 2) !== share) continue;
          const us = (start + i * gap + 500) * 1000;
          const when = new Date(us / 1000).toISOString();
          const message = JSON.stringify({
            '@timestamp': when,
            audit_event: {
              actor: APP_ACTORS[i % APP_ACTORS.length],
              date_time: when,
              operation: APP_OPERATIONS[i % APP_OPERATIONS.length],
              origin: source,
              target: `Order #${i % 50}`,
              environment: 'production',
              message: `{"total": ["${i}", "${i + 1}"], "comment": "a, \\"b\\"\\nc"}`,
            },
          });
          events.push({ id: String(i), message, created: us, eventTime: us });
        }
        await sink.begin();
        await sink.append(source, table, sink.stage(events), []);
        await sink.commit(source, table, source === 'shop-auditlog' ? 'django_auditlog' : 'sql_outbox', {
          shipped: events.length,
          quarantined: 0,
          lastEventTime: events.at(-1)?.eventTime ?? null,
        });
      }
      await sink.close();
    }
    return { changes: nChanges, appEvents: nApp };
  } finally {
    await db.close();
  }
}
