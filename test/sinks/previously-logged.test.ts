import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { AuditQueries, duckdbRunner } from '../../src/query/index.js';
import { openDatabase } from '../../src/sinks/duckdb/database.js';
import { csvText, pgLogTime, pgauditField } from '../helpers/csvlog-gen.js';
import { assertLedgerVerifies, ingestOk, queryDb, scratchDir, withDb } from '../helpers/ingest-cli.js';

/**
 * With `pgaudit.log_statement_once`, the entries after the first of a statement carry `<previously logged>`.
 * When the file with the first entry is ingested after the file with the markers (files given one at a
 * time, out of order), a later run completes the stored markers — and it finds them through
 * `pending_markers`, which is empty again once nothing is left to complete (and which a database of an
 * earlier version gets, filled, on its next run).
 */

const { dir, cleanup } = scratchDir('markers');

/** Lines of the events a free-text search finds (through the store's text index). */
async function searchLines(path: string, text: string): Promise<number[]> {
  const store = await openDatabase(path, { readOnly: true });
  try {
    const run = duckdbRunner(store.connection);
    const [meta] = await run.all(`SELECT value FROM auditship_meta WHERE key = 'text_index'`);
    assert.equal(meta?.['value'], 'complete');
    const page = await new AuditQueries(run).listEvents({ text }, { limit: 100 });
    return page.rows.map((r) => r.session_line_num).sort((a, b) => a - b);
  } finally {
    await store.close();
  }
}
after(cleanup);

const SESSION = '6632294e.249a71';
const T0 = Date.UTC(2024, 4, 1, 12, 0, 0);

/** One PostgreSQL 15 csvlog record (26 columns) carrying a pgaudit entry. */
function record(line: number, audit: string[]): string {
  const message = 'AUDIT: ' + audit.join(',');
  return (
    [
      pgLogTime(T0 + line * 1000),
      csvText('alice'),
      csvText('app'),
      '2398833',
      csvText('10.0.0.1:5000'),
      SESSION,
      String(line),
      csvText('SELECT'),
      pgLogTime(Date.UTC(2024, 4, 1, 11, 0, 0), false),
      '3/17',
      '0',
      'LOG',
      '00000',
      csvText(message),
      '',
      '',
      '',
      '',
      '',
      '',
      '',
      '',
      csvText('psql'),
      csvText('client backend'),
      '',
      '0',
    ].join(',') + '\n'
  );
}

test('markers stored before their first entry are completed by the run that brings it', async () => {
  const statement = 'SELECT a, b FROM t JOIN u USING (id)';
  const first = join(dir, 'first');
  const later = join(dir, 'later');
  mkdirSync(first);
  mkdirSync(later);
  writeFileSync(
    join(first, 'postgresql-2024-05-01_120000.csv'),
    record(1, ['SESSION', '1', '1', 'READ', 'SELECT', 'TABLE', 'public.t', pgauditField(statement), '<none>']),
  );
  writeFileSync(
    join(later, 'postgresql-2024-05-01_130000.csv'),
    record(2, ['SESSION', '1', '1', 'READ', 'SELECT', 'TABLE', 'public.u', '<previously logged>', '<previously logged>']) +
      record(3, ['SESSION', '2', '1', 'READ', 'SELECT', 'TABLE', 'public.v', '<previously logged>', '<previously logged>']),
  );
  const db = join(dir, 'a.duckdb');

  assert.equal((await ingestOk(db, [later], ['--ledger'])).stored, 2);
  const pendingSql = 'SELECT server, session_id FROM pending_markers ORDER BY ALL';
  const eventsSql = 'SELECT session_line_num::INTEGER AS n, statement, statement_filled FROM audit_logs ORDER BY n';
  assert.deepEqual(await queryDb(db, pendingSql), [{ server: 'default', session_id: SESSION }]);
  assert.deepEqual(await queryDb(db, eventsSql), [
    { n: 2, statement: '<previously logged>', statement_filled: false },
    { n: 3, statement: '<previously logged>', statement_filled: false },
  ]);

  // A database of an earlier auditship version has no pending_markers: the next run lists them from the table.
  await withDb(db, (q) => q('DROP TABLE pending_markers'), false);
  assert.equal((await ingestOk(db, [first], ['--ledger'])).stored, 1);
  assert.deepEqual(await queryDb(db, eventsSql), [
    { n: 1, statement, statement_filled: false },
    { n: 2, statement, statement_filled: true },
    // Statement 2's first entry was never logged: it stays a marker, and its session stays pending.
    { n: 3, statement: '<previously logged>', statement_filled: false },
  ]);
  assert.deepEqual(await queryDb(db, pendingSql), [{ server: 'default', session_id: SESSION }]);
  // Free text finds the filled entry too: its statement came after its batch's text index block was written.
  assert.deepEqual(await searchLines(db, 'join U using'), [1, 2]);

  // The first entry of statement 2 arrives: nothing is pending any more.
  const last = join(dir, 'last');
  mkdirSync(last);
  writeFileSync(join(last, 'postgresql-2024-05-01_140000.csv'), record(0, ['SESSION', '2', '1', 'READ', 'SELECT', 'TABLE', 'public.v', 'SELECT 2', '<none>']));
  assert.equal((await ingestOk(db, [last], ['--ledger'])).stored, 1);
  assert.deepEqual(
    (await queryDb(db, eventsSql)).map((r) => r['statement']),
    ['SELECT 2', statement, statement, 'SELECT 2'],
  );
  assert.deepEqual(await queryDb(db, pendingSql), []);
  assert.deepEqual(await searchLines(db, 'select 2'), [0, 3]);
  // Statements copied over markers after their batches were committed: the ledger hashed the markers, and verifies.
  const ledger = await assertLedgerVerifies(db, 'after the markers were filled');
  assert.equal(ledger.streams[0]!.rows, 4);
});
