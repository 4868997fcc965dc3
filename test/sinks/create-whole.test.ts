import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { CsvlogGenerator, csvOf } from '../helpers/csvlog-gen.js';
import { ingestOk, scratchDir } from '../helpers/ingest-cli.js';

/**
 * A new store appears whole: DuckDB writes its headers under another name, linked into place once written
 * (sinks/duckdb/database.ts createWhole). What a run killed meanwhile left under that name is removed by the
 * next run; the store itself never exists half-written. (The SIGKILL tests kill runs around creation too.)
 */
const { dir, cleanup } = scratchDir('create-whole-');
after(cleanup);

test('a store is created under another name and linked into place; leftovers of a killed creation are removed', async () => {
  const logs = join(dir, 'logs');
  mkdirSync(logs);
  writeFileSync(join(logs, 'postgresql-2024-05-01_120000.csv'), csvOf(new CsvlogGenerator({ seed: 5 }).records(200)));
  const db = join(dir, 'db', 'store.duckdb');
  mkdirSync(join(dir, 'db'));
  // What a run killed while creating would leave: half a header under the other name (its pid is gone).
  writeFileSync(`${db}.creating-2147483646-0a0b0c0d`, Buffer.alloc(4096, 7));
  const s = await ingestOk(db, [logs]);
  assert.equal(s.stored, 200);
  assert.deepEqual(
    readdirSync(join(dir, 'db')).filter((f) => f.includes('.creating-')),
    [],
    'nothing left under the other name',
  );
});
