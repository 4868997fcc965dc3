import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { auditOnly, CsvlogGenerator, csvOf, digestOf, digestSql, type GenRecord } from '../helpers/csvlog-gen.js';
import { ingestOk, runCli, withDb } from '../helpers/ingest-cli.js';

/**
 * A full disk under the database: the run ends with one line naming the database and the fix, exit 1,
 * and nothing half-committed — what was committed matches its checkpoints, and a later run on a disk with
 * room stores every event exactly once. The small disk is a tmpfs mounted for the test (needs root).
 */
describe('a full disk', () => {
  const base = mkdtempSync(join(tmpdir(), 'auditship-diskfull-'));
  const small = join(base, 'small');
  let mounted = false;

  before(() => {
    mkdirSync(small);
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', small], { stdio: 'ignore' });
      mounted = true;
    } catch {
      mounted = false;
    }
  });
  after(() => {
    if (mounted) execFileSync('umount', [small], { stdio: 'ignore' });
    rmSync(base, { recursive: true, force: true });
  });

  test('ends the run with one clear line, commits nothing half-done, and the next run completes', async (t) => {
    if (!mounted) {
      t.skip('cannot mount a small tmpfs here (needs root): the full-disk path is not exercised');
      return;
    }
    const logs = join(base, 'log');
    mkdirSync(logs);
    const gen = new CsvlogGenerator({ seed: 31 });
    const all: GenRecord[] = [];
    for (let i = 0; i < 3; i++) {
      const recs = gen.records(12_000);
      all.push(...recs);
      writeFileSync(join(logs, `postgresql-2024-05-01_1${i}0000.csv`), csvOf(recs));
    }
    const db = join(small, 'audit.duckdb');
    const r = await runCli(['ingest', '--db', db, '--quiet', logs]);
    assert.equal(r.code, 1, `exit code; stderr: ${r.stderr}`);
    const lines = r.stderr
      .trim()
      .split('\n')
      .filter((l) => l.startsWith('auditship:') || l.includes('no space'));
    assert.ok(
      lines.some((l) => /no space left/.test(l) && l.includes(small)),
      `one line naming the disk: ${r.stderr}`,
    );
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');

    // Move what there is to a disk with room: committed rows match their checkpoints, the rest follows.
    const big = join(base, 'big');
    mkdirSync(big);
    for (const f of readdirSync(small)) if (f.startsWith('audit.duckdb') && !f.endsWith('.stage')) copyFileSync(join(small, f), join(big, f));
    const moved = join(big, 'audit.duckdb');
    if (existsSync(moved)) {
      const [stored, claimed] = await withDb(moved, async (q) => [
        Number((await q('SELECT count(*) AS n FROM audit_logs'))[0]!['n']),
        Number((await q('SELECT coalesce(sum(events), 0) AS n FROM ingest_files'))[0]!['n']),
      ]);
      assert.equal(stored, claimed, 'rows stored = events the checkpoints claim');
    }
    await ingestOk(moved, [logs]);
    const want = digestOf(auditOnly(all));
    const got = await withDb(moved, async (q) => (await q(digestSql()))[0]!);
    assert.deepEqual({ count: Number(got['count']), statementBytes: Number(got['statement_bytes']), md5: got['md5'] }, want);
  });
});
