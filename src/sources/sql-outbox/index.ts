import { ConnectorError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { openSqlClient, type SqlClient } from '../sql/client.js';
import { EventTimeParser } from './event-time.js';
import { DjangoMapping, OutboxMapping, QueryMapping, hasUniqueIndex, isJsonColumn, tableColumns, type TableMapping } from './mappings.js';

/**
 * Application audit tables in PostgreSQL or MariaDB/MySQL, shipped exactly once:
 *  - source `sql_outbox`: an outbox table (`id, is_sent, message, created_at`, names configurable) or, with
 *    `select` + `mark_sent`, any table described in SQL;
 *  - source `django_auditlog`: django-auditlog's LogEntry, turned into structured-log-transfer's message.
 *
 * A chunk of unsent rows is claimed in a source transaction (FOR UPDATE SKIP LOCKED, so two shippers never
 * take the same row; a named lock for the run where rows cannot be claimed), stored by the sink and
 * committed there, and only then marked sent and the source transaction committed. A kill between the two
 * commits leaves the rows unsent: they are read again and the sink recognises them (its identity is source
 * name + table + id + a fingerprint of the content, so a new row that reuses an id is not taken for one
 * already sent). Rows that cannot be shipped are quarantined in the sink, stay unsent, and are skipped.
 */
export { EventTimeParser } from './event-time.js';
export type { Converted, TableMapping } from './mappings.js';

export interface OutboxSourceConfig {
  kind: 'sql_outbox' | 'django_auditlog';
  url: string;
  table: string;
  idColumn: string;
  sentColumn: string;
  messageColumn: string;
  createdAtColumn: string;
  timePath: string;
  naiveTimeZone: string;
  select: string | null;
  markSent: string | null;
  purgeSql: string | null;
  userTable: string;
  origin: string;
  environment: string;
}

export interface OutboxSource {
  client: SqlClient;
  mapping: TableMapping;
  /** 'rows': FOR UPDATE SKIP LOCKED; 'named_lock': one shipper per table at a time. */
  locking: 'rows' | 'named_lock';
  lockName: string;
  /** `n` more connections to the same server (opened on first use, kept): the reader claims on one while marking on others. */
  spares(n: number): Promise<SqlClient[]>;
  close(): Promise<void>;
}

/** Connects and inspects the table; one clear line when it is missing or unusable. */
export async function openOutboxSource(cfg: OutboxSourceConfig, log: Logger, pipeline: string): Promise<OutboxSource> {
  const client = await openSqlClient(cfg.url, cfg.kind);
  try {
    const times = new EventTimeParser(cfg.naiveTimeZone);
    const timePath = cfg.timePath ? cfg.timePath.split('.') : [];
    let mapping: TableMapping;
    if (cfg.kind === 'django_auditlog') {
      const types = await tableColumns(client, cfg.table, cfg.kind);
      const userTypes = await tableColumns(client, cfg.userTable, cfg.kind).catch((err: unknown) => {
        if (err instanceof ConnectorError && err.code === 'table_not_found') {
          throw new ConnectorError(
            cfg.kind,
            'table_not_found',
            `user table ${cfg.userTable} does not exist in ${client.where}; set user_table to the table of your user model`,
            false,
          );
        }
        throw err;
      });
      mapping = new DjangoMapping(
        { table: cfg.table, userTable: cfg.userTable, origin: cfg.origin, environment: cfg.environment },
        types,
        userTypes,
        times,
        client,
      );
    } else if (cfg.select) {
      if (!cfg.markSent) throw new ConnectorError(cfg.kind, 'bad_config', 'select needs mark_sent (an UPDATE naming the shipped rows as :ids)', false);
      mapping = new QueryMapping(cfg.table, { select: cfg.select, markSent: cfg.markSent, purge: cfg.purgeSql }, timePath, times);
    } else {
      const types = await tableColumns(client, cfg.table, cfg.kind);
      for (const [key, col] of [
        ['id_column', cfg.idColumn],
        ['sent_column', cfg.sentColumn],
        ['message_column', cfg.messageColumn],
      ] as const) {
        if (!types.has(col.toLowerCase())) {
          throw new ConnectorError(
            cfg.kind,
            'column_not_found',
            `${cfg.table} has no column ${col} (${key}); its columns are ${[...types.keys()].join(', ')}`,
            false,
          );
        }
      }
      if (!types.has(cfg.createdAtColumn.toLowerCase()))
        log.warn('The outbox table has no created_at column: event times come from the message only.', {
          pipeline,
          table: cfg.table,
          created_at_column: cfg.createdAtColumn,
        });
      if (!(await hasUniqueIndex(client, cfg.table, cfg.idColumn))) {
        log.warn('The id column has no unique index: rows sharing an id are marked sent together. Add a primary key.', {
          pipeline,
          table: cfg.table,
          id_column: cfg.idColumn,
        });
      }
      const trusted = await isJsonColumn(client, cfg.table, cfg.messageColumn, types.get(cfg.messageColumn.toLowerCase()));
      mapping = new OutboxMapping(
        cfg.table,
        { id: cfg.idColumn, sent: cfg.sentColumn, message: cfg.messageColumn, createdAt: cfg.createdAtColumn },
        types,
        timePath,
        times,
        client,
        trusted,
      );
    }
    const locking = mapping.rowLocks && client.skipLocked ? 'rows' : 'named_lock';
    if (mapping.rowLocks && !client.skipLocked) {
      log.warn('The server has no FOR UPDATE SKIP LOCKED (MySQL 8.0+, MariaDB 10.6+): one shipper per table at a time, by a named lock.', {
        pipeline,
        server: client.version,
      });
    }
    const spares: SqlClient[] = [];
    return {
      client,
      mapping,
      locking,
      lockName: `auditship:${cfg.table}`,
      async spares(n) {
        while (spares.length < n) spares.push(await openSqlClient(cfg.url, cfg.kind));
        return spares.slice(0, n);
      },
      async close() {
        await client.close();
        for (const s of spares.splice(0)) await s.close();
      },
    };
  } catch (err) {
    await client.close();
    throw err;
  }
}
