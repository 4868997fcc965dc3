import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { CsvlogGenerator, csvOf, jsonOf, type GenRecord } from '../helpers/csvlog-gen.js';
import { assertLedgerVerifies, ingestOk, queryDb, scratchDir } from '../helpers/ingest-cli.js';

/**
 * The store hashes a pgaudit batch in JavaScript from the bytes it loads, and `verify` hashes the stored rows in
 * SQL: both must give the same digest for every kind of row — packed rows, records that travel as objects (a
 * GS character in the statement, a statement over 1 MB), one identity twice in a batch, messages stored or
 * not, csvlog and jsonlog. Any difference makes verify fail on an untouched store.
 */
const { dir, cleanup } = scratchDir('ledger-digest-');
after(cleanup);

function records(seed: number): GenRecord[] {
  const gen = new CsvlogGenerator({ seed, multilineShare: 0.3 });
  const recs = gen.records(3000);
  const audit = recs.filter((r) => r.audit);
  recs.push(gen.withStatement(audit[10]!, `SELECT 'a\x1db' /* a group separator in the text */`));
  recs.push(gen.huge(1_500_000));
  recs.push(audit[20]!); // the same identity again, later in the same file
  return recs;
}

for (const format of ['csvlog', 'jsonlog'] as const) {
  for (const storeMessage of [false, true]) {
    test(`${format}, messages ${storeMessage ? 'stored' : 'not stored'}: the digests of ingest and verify agree`, async () => {
      const logs = join(dir, `${format}-${storeMessage}`);
      mkdirSync(logs, { recursive: true });
      const recs = records(storeMessage ? 7 : 8);
      writeFileSync(join(logs, `postgresql-2024-05-01_120000.${format === 'csvlog' ? 'csv' : 'json'}`), format === 'csvlog' ? csvOf(recs) : jsonOf(recs));
      const db = join(logs, 'store.duckdb');
      const run = await ingestOk(db, [logs], ['--ledger', ...(storeMessage ? ['--store-message'] : [])]);
      assert.ok(run.stored >= 3002, `${run.stored} stored`);
      const report = await assertLedgerVerifies(db, `${format}, store_message ${storeMessage}`);
      assert.equal(report.streams[0]!.rows, run.stored);
      // The odd rows are there: the group separator and the long statement (objects), the repeated identity.
      const [odd] = await queryDb(
        db,
        `SELECT count(*) FILTER (WHERE contains(statement, chr(29))) AS gs, count(*) FILTER (WHERE length(statement) > 1000000) AS long FROM audit_logs`,
      );
      assert.deepEqual([Number(odd!['gs']), Number(odd!['long'])], [1, 1]);
    });
  }
}
