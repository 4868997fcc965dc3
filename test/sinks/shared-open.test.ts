import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { quietLogger } from '../../src/core/log.js';
import { openDatabase } from '../../src/sinks/duckdb/database.js';
import { AppEventsSink } from '../../src/sinks/duckdb/app-events.js';
import { RowChangesSink } from '../../src/sinks/duckdb/row-changes.js';
import { DuckDbSink } from '../../src/sinks/duckdb/sink.js';
import { scratchDir } from '../helpers/ingest-cli.js';

/**
 * The daemon opens the sinks of all its pipelines on one shared database at once. Each creates its tables
 * (and the ledger's, which they share): two CREATEs of one table in the same moment failed with DuckDB's
 * "Catalog write-write conflict" (a CI run of follow.test.ts). Schema work goes one sink at a time.
 */
const { dir, cleanup } = scratchDir('shared-open-');
after(cleanup);

test('sinks of every kind opened together on a new shared database all open', async () => {
  const log = quietLogger();
  for (let round = 0; round < 5; round++) {
    const db = await openDatabase(join(dir, `store-${round}.duckdb`));
    try {
      const sinks = await Promise.all([
        RowChangesSink.open(db, log, false, true),
        RowChangesSink.open(db, log, false, true),
        AppEventsSink.open(db, log, false, true),
        AppEventsSink.open(db, log, false, true),
        DuckDbSink.open({ path: db.path, database: db, server: 'a', pipeline: 'a', storeMessage: false, ledger: true }, log),
        DuckDbSink.open({ path: db.path, database: db, server: 'b', pipeline: 'b', storeMessage: false, ledger: true }, log),
      ]);
      const tables = (await db.connection.runAndReadAll(`SELECT table_name FROM duckdb_tables() ORDER BY 1`)).getRows().map((r) => String(r[0]));
      for (const t of ['row_changes', 'app_events', 'event_rows', 'ledger', 'ledger_removed', 'ledger_anchored', 'es_dead_letters']) {
        assert.ok(tables.includes(t), `${t} exists`);
      }
      for (const s of sinks) await s.close();
    } finally {
      await db.close();
    }
  }
});
