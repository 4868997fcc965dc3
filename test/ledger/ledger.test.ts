import assert from 'node:assert/strict';
import { copyFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DuckDBInstance } from '@duckdb/node-api';
import { generateCsvlog } from '../../bench/generate.js';
import { batchDigest, chainDigest, dimensionDigests, encodedRows, EMPTY_DIGEST, rowsDigests } from '../../src/ledger/ledger.js';
import { pgauditStream } from '../../src/ledger/streams.js';
import { assertLedgerVerifies, ingestOk, runCli, scratchDir } from '../helpers/ingest-cli.js';

/**
 * The store's ledger against tampering: each way of editing the DuckDB file after the fact is caught by
 * `auditship verify`, naming the batch; what the store alone cannot show (rows and ledger rewritten together,
 * or both cut short) is caught by an anchor written before.
 */
const { dir, cleanup } = scratchDir('ledger-');
after(cleanup);
const logs = join(dir, 'logs');
const db = join(dir, 'store.duckdb');
const anchors = join(dir, 'anchors');

async function withStore<T>(path: string, fn: (run: (sql: string) => Promise<unknown[][]>) => Promise<T>): Promise<T> {
  const inst = await DuckDBInstance.create(path);
  const conn = await inst.connect();
  try {
    return await fn(async (sql) => (await conn.runAndReadAll(sql)).getRows());
  } finally {
    conn.closeSync();
    inst.closeSync();
  }
}

/** A copy of the verified store with `sql` applied (as someone with write access to the file would). */
async function tampered(name: string, ...sql: string[]): Promise<string> {
  const path = join(dir, `${name}.duckdb`);
  copyFileSync(db, path);
  await withStore(path, async (run) => {
    for (const s of sql) await run(s);
  });
  return path;
}

async function verify(
  path: string,
  ...extra: string[]
): Promise<{
  code: number | null;
  out: string;
  report: { ok: boolean; streams: { problem: string | null; batch: number | null }[]; anchors: { problem: string | null } };
}> {
  const r = await runCli(['verify', '--db', path, '--json', ...extra]);
  return { code: r.code, out: r.stdout + r.stderr, report: JSON.parse(r.stdout.trim().split('\n').at(-1)!) };
}

describe('the ledger', { concurrency: false }, () => {
  let batches = 0;
  before(async () => {
    await generateCsvlog(logs, { events: 12_000, fileBytes: 700_000, seed: 17 });
    await ingestOk(db, [logs], ['--ledger']);
    const report = await assertLedgerVerifies(db, 'the store as written');
    batches = report.streams[0]!.entries;
    assert.ok(batches >= 4, `${batches} batches`);
    assert.equal(report.streams[0]!.rows, 12_000);
    // An anchor of the heads, as a schedule would write it.
    const r = await runCli(['verify', '--db', db, '--anchor', anchors, '--write-anchor']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readdirSync(join(anchors, 'ledger-anchors')).length, 1);
  });

  const cases: [string, string[], RegExp, number | null][] = [
    [
      'UPDATE of a statement',
      [`UPDATE event_rows SET statement = 'SELECT 1' WHERE rowid = (SELECT min(rowid) FROM event_rows WHERE ledger_seq = 3)`],
      /batch 3: its rows do not hash .*changed/,
      3,
    ],
    [
      'DELETE of one row',
      [`DELETE FROM event_rows WHERE rowid = (SELECT max(rowid) FROM event_rows WHERE ledger_seq = 2)`],
      /batch 2: the ledger lists \d+ row\(s\), the store holds \d+ \(row\(s\) deleted\)/,
      2,
    ],
    [
      'INSERT of a forged row into a batch',
      [`INSERT INTO event_rows SELECT * REPLACE (session_line_num + 100000000 AS session_line_num) FROM event_rows WHERE ledger_seq = 4 LIMIT 1`],
      /batch 4: .*\(row\(s\) added\)/,
      4,
    ],
    [
      'INSERT of a forged row without a batch number',
      [`INSERT INTO event_rows SELECT * REPLACE (NULL AS ledger_seq, session_line_num + 100000000 AS session_line_num) FROM event_rows LIMIT 1`],
      /without a batch number/,
      0,
    ],
    [
      'a changed user of a session (a dimension row)',
      [`UPDATE event_contexts SET user_name = 'nobody' WHERE context_id = (SELECT context_id FROM event_rows WHERE ledger_seq = 2 LIMIT 1)`],
      /batch [12]: its rows do not hash/,
      null,
    ],
    ['a truncated ledger', [`DELETE FROM ledger WHERE seq = (SELECT max(seq) FROM ledger)`], /after the ledger's last batch/, null],
    ['an edited ledger entry', [`UPDATE ledger SET rows = rows - 1 WHERE seq = 2`], /batch 2: its entry does not follow from the one before/, 2],
    ['a ledger entry removed from the middle', [`DELETE FROM ledger WHERE seq = 3`], /batch 3 is missing from the ledger/, 3],
  ];
  for (const [name, sql, problem, batch] of cases) {
    test(`${name} is caught, the batch named`, async () => {
      const path = await tampered(name.replace(/\W+/g, '-'), ...sql);
      const r = await verify(path);
      assert.equal(r.code, 1, r.out);
      const s = r.report.streams[0]!;
      assert.match(s.problem ?? '', problem);
      if (batch !== null) assert.equal(s.batch, batch);
      // The text form names it too, on one line.
      const text = await runCli(['verify', '--db', path]);
      assert.equal(text.code, 1);
      assert.match(text.stdout, /✘ pgaudit:default: batch|✘ pgaudit:default: .*row/);
    });
  }

  test('rows and ledger rewritten together verify alone, and are caught by the anchor', async () => {
    const path = await tampered('rewrite', `DELETE FROM event_rows WHERE rowid = (SELECT max(rowid) FROM event_rows WHERE ledger_seq = 2)`);
    // The attacker knows the algorithm: every entry from batch 2 on is recomputed over the rows as they are now.
    const stream = pgauditStream('default');
    await withStore(path, async (run) => {
      const entries = await run(`SELECT seq, rows, removed, encoding, epoch_us(committed_at), digest FROM ledger ORDER BY seq`);
      let previous = '';
      for (const e of entries) {
        const seq = Number(e[0]);
        if (seq >= 2) {
          const [d] = await run(rowsDigests(encodedRows(stream, `e.ledger_seq = ${seq}`)));
          const dims: string[] = [];
          for (const dim of stream.dimensions) dims.push(String((await run(dimensionDigests(dim, `d.ledger_seq = ${seq}`)))[0]?.[1] ?? EMPTY_DIGEST));
          const fields = {
            stream: stream.name,
            seq,
            encoding: Number(e[3]),
            rows: Number(d![1]),
            removed: Number(e[2]),
            batchDigest: batchDigest(String(d![2]), dims),
            committedUs: BigInt(String(e[4])),
          };
          const digest = chainDigest(previous, fields);
          await run(`UPDATE ledger SET rows = ${fields.rows}, batch_digest = '${fields.batchDigest}', digest = '${digest}' WHERE seq = ${seq}`);
          previous = digest;
        } else previous = String(e[5]);
      }
    });
    const alone = await verify(path);
    assert.equal(alone.code, 0, 'consistent with itself: only an anchor can tell');
    const anchored = await verify(path, '--anchor', anchors);
    assert.equal(anchored.code, 1, anchored.out);
    assert.match(anchored.report.anchors.problem ?? '', /has another digest in the ledger \(rows and ledger were rewritten\)/);
  });

  test('rows and ledger cut short together are caught by the anchor', async () => {
    const path = await tampered(
      'cut',
      `DELETE FROM event_rows WHERE ledger_seq = (SELECT max(seq) FROM ledger)`,
      // The sessions and kinds the batch inserted carry its number: left behind, they give it away.
      `DELETE FROM event_contexts WHERE ledger_seq = (SELECT max(seq) FROM ledger)`,
      `DELETE FROM event_kinds WHERE ledger_seq = (SELECT max(seq) FROM ledger)`,
      `DELETE FROM ledger WHERE seq = (SELECT max(seq) FROM ledger)`,
    );
    assert.equal((await verify(path)).code, 0);
    const anchored = await verify(path, '--anchor', anchors);
    assert.equal(anchored.code, 1);
    assert.match(anchored.report.anchors.problem ?? '', /is not in the ledger \(the ledger was cut short or replaced\)/);
  });

  test('the untouched store agrees with its anchor; ingest --force keeps the chain verifiable', async () => {
    const ok = await verify(db, '--anchor', anchors);
    assert.equal(ok.code, 0, ok.out);
    // --force reads every file again and replaces the stored rows: the removed rows' hashes stay on the ledger.
    const path = join(dir, 'force.duckdb');
    copyFileSync(db, path);
    const again = await ingestOk(path, [logs], ['--force', '--ledger']);
    assert.equal(again.stored, 12_000);
    const report = await assertLedgerVerifies(path, 'after --force');
    assert.equal(report.streams[0]!.entries, batches * 2);
    const anchored = await verify(path, '--anchor', anchors);
    assert.equal(anchored.code, 0, 'the anchored heads are still in the ledger');
    // A row removed by --force cannot be brought back unnoticed, nor can a removal record be dropped.
    copyFileSync(path, join(dir, 'force2.duckdb'));
    await withStore(join(dir, 'force2.duckdb'), (run) => run(`DELETE FROM ledger_removed WHERE rowid = (SELECT min(rowid) FROM ledger_removed)`));
    const dropped = await verify(join(dir, 'force2.duckdb'));
    assert.equal(dropped.code, 1);
    assert.match(dropped.report.streams[0]!.problem ?? '', /row\(s\) deleted/);
  });
});
