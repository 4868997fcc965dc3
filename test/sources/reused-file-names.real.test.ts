import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { after, describe, test } from 'node:test';
import { ingestOk, queryDb, scratchDir } from '../helpers/ingest-cli.js';
import { startPgCluster, type PgCluster } from '../helpers/pg-cluster.js';

/**
 * PostgreSQL reuses log file names: with a repeating `log_filename` (postgresql-%a.csv, -%H.csv) it opens a
 * name that exists in append mode — always with `log_truncate_on_rotation = off`, and on a restart or a
 * size-based rotation even with it on. A file auditship read to its end may therefore grow again, days later,
 * under the same name and first line: what was appended must be stored, once. With truncation on, a
 * time-based rotation empties the file and writes it anew: a new file to auditship.
 */
const { dir, cleanup } = scratchDir('auditship-reused-names-');
const clusters: PgCluster[] = [];
after(async () => {
  for (const c of clusters) await c.stop();
  cleanup();
});

/** Audited INSERTs (one pgaudit WRITE entry each). */
async function writes(cluster: PgCluster, n: number, tag: string): Promise<void> {
  const c = await cluster.client();
  try {
    for (let i = 0; i < n; i++) await c.query(`INSERT INTO t VALUES ($1, $2)`, [i, tag]);
  } finally {
    await c.end();
  }
}

/** Sets log_filename (not audited); a changed name makes PostgreSQL rotate to it (append mode, not time-based). */
async function setLogFilename(cluster: PgCluster, name: string): Promise<void> {
  const c = await cluster.client();
  try {
    await c.query(`SET pgaudit.log = 'none'`);
    await c.query(`ALTER SYSTEM SET log_filename = '${name}'`);
    await c.query('SELECT pg_reload_conf()');
  } finally {
    await c.end();
  }
}

async function switchTo(cluster: PgCluster, name: string): Promise<void> {
  await setLogFilename(cluster, name);
  const file = `${name.replace(/\.log$/, '')}.csv`;
  const deadline = Date.now() + 10_000;
  while (!cluster.currentLogFiles()['csvlog']?.endsWith(file)) {
    if (Date.now() > deadline) throw new Error(`PostgreSQL did not switch to ${file}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const stored = async (db: string, tag: string) =>
  Number(
    (
      await queryDb(db, `SELECT count(*)::INTEGER AS n FROM audit_logs WHERE command = 'INSERT' AND object_name = 'public.t' AND parameter LIKE '%${tag}%'`)
    )[0]!['n'],
  );

describe('log file names PostgreSQL reuses', () => {
  test('a finished file PostgreSQL appends to again (log_truncate_on_rotation off): the appended events are stored, once', { timeout: 120_000 }, async () => {
    const cluster = await startPgCluster({ logDestination: 'csvlog', settings: { log_filename: 'postgresql-a.log', log_truncate_on_rotation: 'off' } });
    clusters.push(cluster);
    await cluster.exec('CREATE TABLE t (i int, tag text)');
    await writes(cluster, 40, 'first-a');
    await switchTo(cluster, 'postgresql-b.log');
    await writes(cluster, 30, 'then-b');
    await cluster.flushLogs();
    const db = join(dir, 'append.duckdb');
    await ingestOk(db, [cluster.logDir]);
    assert.equal(await stored(db, 'first-a'), 40);
    assert.equal(await stored(db, 'then-b'), 30);

    // Back to the first name: PostgreSQL opens postgresql-a.csv again and appends; b is now the finished file.
    await switchTo(cluster, 'postgresql-a.log');
    await writes(cluster, 25, 'again-a');
    await cluster.flushLogs();
    assert.ok(
      cluster
        .logFiles()
        .map((f) => basename(f))
        .includes('postgresql-a.csv'),
    );
    const again = await ingestOk(db, [cluster.logDir]);
    assert.equal(await stored(db, 'again-a'), 25, 'the events appended to a finished file are stored');
    assert.equal(again.duplicates, 0);
    // Once more, with both files finished and grown? Nothing new: nothing stored.
    assert.equal((await ingestOk(db, [cluster.logDir])).stored, 0);
    // The store holds exactly what a new store of the same files holds.
    const fresh = join(dir, 'append-fresh.duckdb');
    await ingestOk(fresh, [cluster.logDir]);
    const count = (d: string) => queryDb(d, `SELECT count(*)::INTEGER AS n, count(DISTINCT (session_id, session_line_num))::INTEGER AS k FROM audit_logs`);
    assert.deepEqual(await count(db), await count(fresh));
  });

  test(
    'a file emptied and written anew by a time-based rotation (log_truncate_on_rotation on) is a new file: nothing lost, nothing twice',
    { timeout: 240_000 },
    async () => {
      // PostgreSQL empties an existing file only when a time-based rotation opens it and it is not the file just
      // closed. With postgresql-%S.log and rotations at minute boundaries every such rotation opens postgresql-00.csv.
      const cluster = await startPgCluster({
        logDestination: 'csvlog',
        settings: { log_filename: 'postgresql-%S.log', log_truncate_on_rotation: 'on', log_rotation_age: '1min' },
      });
      clusters.push(cluster);
      await cluster.exec('CREATE TABLE t (i int, tag text)');
      const file00 = join(cluster.logDir, 'postgresql-00.csv');
      const until = async (what: string, ok: () => boolean) => {
        const deadline = Date.now() + 75_000;
        while (!ok()) {
          if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
          await new Promise((r) => setTimeout(r, 250));
        }
      };
      const size = () => {
        try {
          return statSync(file00).size;
        } catch {
          return -1;
        }
      };
      const db = join(dir, 'truncate.duckdb');
      await until('a time-based rotation to postgresql-00.csv', () => cluster.currentLogFiles()['csvlog']?.endsWith('postgresql-00.csv') === true);
      await writes(cluster, 20, 'minute-one');
      // Away to another name (its own file), and back to the pattern: the next boundary opens postgresql-00.csv
      // again, now not the file just closed, and empties it.
      await switchTo(cluster, 'postgresql-b.log');
      await writes(cluster, 5, 'on-b');
      await cluster.flushLogs();
      await ingestOk(db, [cluster.logDir]);
      assert.equal(await stored(db, 'minute-one'), 20);
      const full = size();
      // Back to the pattern. A reload switches at once (no truncation: not a time-based rotation) to
      // postgresql-<second>.csv; should that be postgresql-00.csv, it is the file the next boundary reopens, which
      // PostgreSQL then does not empty. So the switch is made away from second 00, and made again if it landed there.
      for (;;) {
        while (new Date().getSeconds() < 3 || new Date().getSeconds() > 50) await new Promise((r) => setTimeout(r, 200));
        await setLogFilename(cluster, 'postgresql-%S.log');
        await until('the switch back to postgresql-%S', () => cluster.currentLogFiles()['csvlog']?.endsWith('postgresql-b.csv') === false);
        if (cluster.currentLogFiles()['csvlog']?.endsWith('postgresql-00.csv') !== true) break;
        await switchTo(cluster, 'postgresql-b.log');
      }
      await until(`postgresql-00.csv to be emptied by the next time-based rotation (now writing ${cluster.currentLogFiles()['csvlog']})`, () => size() < full);
      await writes(cluster, 15, 'minute-two');
      await cluster.flushLogs();
      const second = await ingestOk(db, [cluster.logDir]);
      assert.equal(await stored(db, 'minute-two'), 15);
      assert.equal(await stored(db, 'minute-one'), 20, 'what was stored before stays');
      assert.equal(await stored(db, 'on-b'), 5);
      assert.equal(second.duplicates, 0);
    },
  );
});
