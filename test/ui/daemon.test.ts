import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { generateCsvlog } from '../../bench/generate.js';
import { runCli, scratchDir, spawnCli, type CliChild } from '../helpers/ingest-cli.js';

/**
 * The UI and the report while `run --follow` holds the DuckDB file: the daemon answers read-only queries on
 * a unix socket next to the database (mode 0600) and, when asked, serves the UI on TCP; `auditship ui --db`
 * and `auditship report --db` find the file held and read through that socket; new files shipped meanwhile
 * show up.
 */
const { dir, cleanup } = scratchDir('auditship-ui-daemon-');
const children: CliChild[] = [];
after(() => {
  for (const c of children) c.kill('SIGKILL');
  cleanup();
});

function getJson(url: string): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = request(url, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => {
        text += d;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : null }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function until<T>(what: string, get: () => T | Promise<T>, ok: (v: T) => boolean, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  let v = await get();
  while (!ok(v) && Date.now() < end) {
    await sleep(150);
    v = await get();
  }
  assert.ok(ok(v), `timed out waiting for ${what}: ${JSON.stringify(v)?.slice(0, 400)}`);
  return v;
}

test('ui and report work while run --follow writes the database', { timeout: 120_000 }, async () => {
  const all = join(dir, 'all');
  await generateCsvlog(all, { events: 12_000, seed: 21, fileBytes: 1 << 20 });
  const files = readdirSync(all).sort();
  assert.ok(files.length >= 3);
  const logs = join(dir, 'logs');
  mkdirSync(logs);
  renameSync(join(all, files[0]!), join(logs, files[0]!));
  const db = join(dir, 'audit.duckdb');
  const config = join(dir, 'config.yaml');
  writeFileSync(
    config,
    [
      'pipelines:',
      '  logs:',
      `    source: { type: pg_logs, path: ${JSON.stringify(logs)}, poll_interval_ms: 200, server: db1 }`,
      `    sinks: [ { type: duckdb, path: ${JSON.stringify(db)} } ]`,
      'ui:',
      '  listen: 127.0.0.1:0',
      '',
    ].join('\n'),
  );
  const daemon = spawnCli(['run', '--config', config, '--follow']);
  children.push(daemon);
  const status = () => {
    try {
      return JSON.parse(readFileSync(`${db}.status.json`, 'utf8')) as {
        ui?: { socket: string; url?: string };
        pipelines: { state: string; stored?: number }[];
      };
    } catch {
      return null;
    }
  };
  const st = await until('the daemon to serve its UI and ship the first file', status, (s) =>
    Boolean(s?.ui?.url && s.pipelines[0]?.state === 'following' && Number(s.pipelines[0]?.stored) > 0),
  );
  const socket = st!.ui!.socket;
  assert.equal(socket, `${db}.read.sock`);
  assert.equal(statSync(socket).mode & 0o777, 0o600, 'only the owner may connect');

  // The daemon's own TCP UI.
  const direct = await getJson(`${st!.ui!.url!.replace(/\/$/, '')}/api/facets`);
  assert.equal(direct.status, 200);
  const before = (direct.body as { events: number }).events;
  assert.ok(before > 0);

  // `auditship ui` on the held file: its queries go through the daemon's read socket.
  const ui = spawnCli(['ui', '--db', db, '--listen', '127.0.0.1:0']);
  children.push(ui);
  let out = '';
  ui.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const line = await until(
    'auditship ui to start',
    () => out,
    (v) => v.includes('\n'),
  );
  assert.match(line, /auditship ui: serving .*audit\.duckdb at http:\/\/127\.0\.0\.1:\d+\//);
  const base = /at (http:\/\/\S+)/.exec(line)![1]!.replace(/\/$/, '');
  const facets = await getJson(`${base}/api/facets`);
  assert.equal(facets.status, 200);
  assert.deepEqual((facets.body as { servers: string[] }).servers, ['db1']);
  const page = await getJson(`${base}/api/events?limit=5&class=READ`);
  const rows = (page.body as { rows: { id: string; class: string }[] }).rows;
  assert.equal(rows.length, 5);
  assert.ok(rows.every((r) => r.class === 'READ'));
  const event = await getJson(`${base}/api/event?id=${encodeURIComponent(rows[0]!.id)}`);
  assert.equal(event.status, 200);
  assert.ok((event.body as { event: { statement: string } }).event.statement);
  const bad = await getJson(`${base}/api/events?outcome=perhaps`);
  assert.equal(bad.status, 400);

  // New files arrive; the proxied UI sees them.
  for (const f of files.slice(1)) renameSync(join(all, f), join(logs, f));
  await until(
    'the new files through the proxied UI',
    async () => ((await getJson(`${base}/api/facets?`)).body as { events: number }).events,
    (n) => n === 12_000,
  );

  // The report, on the locked file.
  const report = await runCli(['report', '--db', db, '--since', '2024-01-01', '--format', 'json']);
  assert.equal(report.code, 0, report.stderr);
  const data = JSON.parse(report.stdout) as { totals: { events: number }; changes: unknown[] };
  assert.equal(data.totals.events, 12_000);
  assert.ok(data.changes.length > 0);

  ui.kill('SIGTERM');
  assert.equal((await ui.result).code, 0);
  daemon.kill('SIGTERM');
  assert.equal((await daemon.result).code, 0);
  assert.ok(!existsSync(socket), 'the socket is removed when the daemon stops');
  // Without the daemon, ui opens the file itself.
  const ui2 = spawnCli(['ui', '--db', db, '--listen', '127.0.0.1:0']);
  children.push(ui2);
  let out2 = '';
  ui2.stdout!.on('data', (d: Buffer) => {
    out2 += d.toString();
  });
  const line2 = await until(
    'auditship ui to start on its own',
    () => out2,
    (v) => v.includes('\n'),
  );
  assert.match(line2, /auditship ui: serving .*audit\.duckdb at http:/);
  const own = /at (http:\/\/\S+)/.exec(line2)![1]!.replace(/\/$/, '');
  assert.equal(((await getJson(`${own}/api/facets`)).body as { events: number }).events, 12_000);
  ui2.kill('SIGTERM');
  await ui2.result;
});
