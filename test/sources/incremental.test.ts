import assert from 'node:assert/strict';
import { appendFileSync, chmodSync, chownSync, closeSync, mkdirSync, openSync, readdirSync, statSync, utimesSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { auditOnly, CsvlogGenerator, csvOf } from '../helpers/csvlog-gen.js';
import { ingestOk, runCli, scratchDir } from '../helpers/ingest-cli.js';

/**
 * What a cron run costs: a run with nothing new does not open a log file (one stat each), and a run after
 * records were appended to the active file reads from its checkpoint on — what came before is not read again.
 * (Behaviour, not time: the figures are `npm run bench`'s steps c and d.)
 */
const { dir, cleanup } = scratchDir('auditship-incremental-');
after(cleanup);

const BASE = Math.floor(Date.now() / 1000) - 86_400;

test('a run with nothing new opens no log file', async (t) => {
  if (process.getuid?.() !== 0) {
    t.skip('needs root (the CLI runs as nobody, who then cannot read the files)');
    return;
  }
  const home = join(dir, 'nobody');
  const logs = join(home, 'log');
  mkdirSync(logs, { recursive: true });
  const gen = new CsvlogGenerator({ seed: 21 });
  for (let i = 0; i < 4; i++) {
    const f = join(logs, `postgresql-2024-05-01_1${i}0000.csv`);
    writeFileSync(f, csvOf(gen.records(300)));
    utimesSync(f, BASE + i * 60, BASE + i * 60);
  }
  chmodSync(dir, 0o755);
  for (const p of [home, logs, ...readdirSync(logs).map((f) => join(logs, f))]) chownSync(p, 65534, 65534);
  const as = { uid: 65534, gid: 65534 };
  const db = join(home, 'a.duckdb');
  const first = await runCli(['ingest', '--db', db, '--json', logs], as);
  assert.equal(first.code, 0, first.stderr);
  assert.equal(JSON.parse(first.stdout).stored, 1200);
  // Nobody may read the files any more (the active one included), only list the directory and stat them.
  for (const f of readdirSync(logs)) chmodSync(join(logs, f), 0o000);
  const again = await runCli(['ingest', '--db', db, '--json', logs], as);
  assert.equal(again.code, 0, `a run with nothing new must not open a file: ${again.stderr}`);
  const s = JSON.parse(again.stdout) as { stored: number; bytes: number };
  assert.equal(s.stored, 0);
  assert.equal(s.bytes, 0);
});

test('records appended to the active file are read from its checkpoint on; what came before is not read again', async () => {
  const logs = join(dir, 'append');
  mkdirSync(logs);
  const gen = new CsvlogGenerator({ seed: 22, multilineShare: 0.2 });
  const active = join(logs, 'postgresql-2024-05-01_120000.csv');
  const before = gen.records(5000);
  writeFileSync(active, csvOf(before));
  const db = join(dir, 'append.duckdb');
  const first = await ingestOk(db, [logs]);
  assert.equal(first.stored, auditOnly(before).length);
  const size = statSync(active).size;

  // Garbage in the middle of what was read: a run that read the file again would quarantine it. (The first
  // line and the bytes just before the checkpoint identify the file: both are kept.)
  const fd = openSync(active, 'r+');
  const garbage = Buffer.from('\n' + 'this is not a csvlog record,,,"\n'.repeat(100));
  writeSync(fd, garbage, 0, garbage.length, Math.floor(size / 2));
  closeSync(fd);

  const added = gen.records(400);
  appendFileSync(active, csvOf(added));
  const appendedBytes = statSync(active).size - size;
  const second = await ingestOk(db, [logs]);
  assert.equal(second.stored, auditOnly(added).length, 'exactly the appended events');
  assert.equal(second.quarantined, 0, 'the damaged middle was not read again');
  assert.equal(second.bytes, appendedBytes, 'only the appended bytes were read');
});
