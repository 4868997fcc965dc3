import assert from 'node:assert/strict';
import { copyFileSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DuckDBInstance } from '@duckdb/node-api';
import { generateCsvlog } from '../../bench/generate.js';
import { spawnS3Server, type SpawnedS3Server } from '../s3-server/client.js';
import { queryDb, runCli, scratchDir } from '../helpers/ingest-cli.js';

/**
 * Anchors written by the pipeline itself (the DuckDB sink's ledger_anchor): to a directory, and to an
 * S3-compatible bucket whose default Object Lock retention keeps each anchor unchangeable. `verify --anchor`
 * reads them back and catches a store rewritten consistently after they were written.
 */
const { dir, cleanup } = scratchDir('ledger-anchors-');
const KEY = { accessKeyId: 'AKIAAUDITSHIPANCHOR1', secretAccessKey: 'anchor/secret/KEY' };
let s3: SpawnedS3Server;
const logs = join(dir, 'logs');

before(async () => {
  s3 = await spawnS3Server({ accessKeys: [KEY], objectLockBuckets: [{ name: 'worm', defaultRetention: { mode: 'COMPLIANCE', days: 1 } }] });
  await generateCsvlog(logs, { events: 4000, fileBytes: 400_000, seed: 3 });
});
after(async () => {
  await s3?.stop();
  cleanup();
});

function config(name: string, anchor: string, extra: string[] = []): string {
  const file = join(dir, `${name}.yaml`);
  const db = join(dir, `${name}.duckdb`);
  writeFileSync(
    file,
    [
      'pipelines:',
      '  main:',
      '    source:',
      '      type: pg_logs',
      `      path: ${JSON.stringify(logs)}`,
      '    sinks:',
      '      - type: duckdb',
      `        path: ${JSON.stringify(db)}`,
      ...extra,
      `        ledger_anchor: ${JSON.stringify(anchor)}`,
      '',
    ].join('\n'),
  );
  return file;
}

/** Deletes a row and rewrites the ledger from there as an attacker who knows the algorithm would: see ledger.test.ts. */
async function removeRowsAndLedgerTail(db: string): Promise<void> {
  const inst = await DuckDBInstance.create(db);
  const c = await inst.connect();
  await c.run(`DELETE FROM event_rows WHERE ledger_seq = (SELECT max(seq) FROM ledger)`);
  await c.run(`DELETE FROM event_contexts WHERE ledger_seq = (SELECT max(seq) FROM ledger)`);
  await c.run(`DELETE FROM event_kinds WHERE ledger_seq = (SELECT max(seq) FROM ledger)`);
  await c.run(`DELETE FROM ledger WHERE seq = (SELECT max(seq) FROM ledger)`);
  c.closeSync();
  inst.closeSync();
}

describe('ledger anchors', { concurrency: false }, () => {
  test('ledger_anchor without ledger: true is a configuration error', async () => {
    const r = await runCli(['run', '--config', config('noledger', join(dir, 'a0'))]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /ledger_anchor: anchors the ledger's heads; set ledger: true/);
  });

  test('a run anchors its heads in a directory; verify --anchor catches the store cut short after it', async () => {
    const anchors = join(dir, 'anchors-dir');
    const cfg = config('dir', anchors, ['        ledger: true']);
    const r = await runCli(['run', '--config', cfg, '--quiet']);
    assert.equal(r.code, 0, r.stderr);
    // After the first commit (none was written before) and when the run ended (the heads had moved since).
    const written = readdirSync(join(anchors, 'ledger-anchors')).sort();
    assert.ok(written.length >= 1 && written.length <= 2, written.join(' '));
    const last = JSON.parse(readFileSync(join(anchors, 'ledger-anchors', written.at(-1)!), 'utf8')) as { heads: { stream: string; seq: number }[] };
    const [head] = await queryDb(join(dir, 'dir.duckdb'), 'SELECT max(seq) AS seq FROM ledger');
    assert.deepEqual(
      last.heads.map((h) => [h.stream, h.seq]),
      [['pgaudit:default', Number(head!['seq'])]],
      'the last anchor holds the final head',
    );
    // A run that stores nothing writes no new anchor (the heads did not move).
    assert.equal((await runCli(['run', '--config', cfg, '--quiet'])).code, 0);
    assert.equal(readdirSync(join(anchors, 'ledger-anchors')).length, written.length);
    const db = join(dir, 'dir.duckdb');
    assert.equal((await runCli(['verify', '--db', db, '--anchor', anchors])).code, 0);
    const cut = join(dir, 'dir-cut.duckdb');
    copyFileSync(db, cut);
    await removeRowsAndLedgerTail(cut);
    assert.equal((await runCli(['verify', '--db', cut])).code, 0, 'consistent with itself');
    const v = await runCli(['verify', '--db', cut, '--anchor', anchors]);
    assert.equal(v.code, 1);
    assert.match(v.stdout, /✘ anchor of .*: pgaudit:default batch \d+ is not in the ledger/);
  });

  test('anchors in an Object Lock bucket are retained; verify reads them from S3', async () => {
    const env = { AWS_ENDPOINT_URL_S3: s3.url, AWS_ACCESS_KEY_ID: KEY.accessKeyId, AWS_SECRET_ACCESS_KEY: KEY.secretAccessKey, AWS_REGION: 'us-east-1' };
    const cfg = config('s3', 's3://worm/prod', ['        ledger: true']);
    const r = await runCli(['run', '--config', cfg, '--quiet'], { env: { ...process.env, ...env } });
    assert.equal(r.code, 0, r.stderr);
    const locks = (await s3.objectLocks()).filter((l) => l.key.startsWith('prod/ledger-anchors/'));
    assert.ok(locks.length >= 1);
    assert.ok(
      locks.every((l) => l.mode === 'COMPLIANCE'),
      'kept unchangeable by the bucket',
    );
    const db = join(dir, 's3.duckdb');
    const args = ['verify', '--db', db, '--anchor', 's3://worm/prod', '--endpoint', s3.url, '--force-path-style'];
    const ok = await runCli(args, { env: { ...process.env, ...env } });
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.match(ok.stdout, new RegExp(`${locks.length} anchor\\(s\\) at s3://worm/prod/ agree with the ledger`));
    await removeRowsAndLedgerTail(db);
    const bad = await runCli(args, { env: { ...process.env, ...env } });
    assert.equal(bad.code, 1);
  });

  test('an archive sink anchors too: its manifest parts carry the heads; verify --anchor <archive> reads them', async () => {
    const archive = join(dir, 'archive-anchor');
    const file = join(dir, 'manifest.yaml');
    const db = join(dir, 'manifest.duckdb');
    writeFileSync(
      file,
      [
        'pipelines:',
        '  main:',
        '    source:',
        '      type: pg_logs',
        `      path: ${JSON.stringify(logs)}`,
        '    sinks:',
        '      - type: archive',
        '        form: ndjson',
        `        directory: ${JSON.stringify(archive)}`,
        '      - type: duckdb',
        `        path: ${JSON.stringify(db)}`,
        '        ledger: true',
        '',
      ].join('\n'),
    );
    const r = await runCli(['run', '--config', file, '--quiet']);
    assert.equal(r.code, 0, r.stderr);
    const partsDir = join(archive, '_manifest', 'server=default');
    const parts = readdirSync(partsDir).filter((f) => f.endsWith('.jsonl'));
    assert.ok(parts.length >= 1, 'a manifest part was published');
    const header = JSON.parse(readFileSync(join(partsDir, parts.sort().at(-1)!), 'utf8').split('\n')[0]!) as {
      ledger_heads?: { stream: string; seq: number }[];
    };
    const [head] = await queryDb(db, 'SELECT max(seq) AS seq FROM ledger');
    assert.ok(header.ledger_heads?.length, 'the part carries the heads');
    assert.ok(header.ledger_heads.every((h) => h.stream === 'pgaudit:default' && h.seq <= Number(head!['seq'])));
    const ok = await runCli(['verify', '--db', db, '--anchor', archive]);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.match(ok.stdout, /anchor\(s\) at .* agree with the ledger/);
    await removeRowsAndLedgerTail(db);
    assert.equal((await runCli(['verify', '--db', db])).code, 0, 'consistent with itself');
    const bad = await runCli(['verify', '--db', db, '--anchor', archive]);
    assert.equal(bad.code, 1, bad.stdout);
    assert.match(bad.stdout, /✘ anchor of .*: pgaudit:default batch \d+ is not in the ledger/);
  });
});
