import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { queryCli, runCli, scratchDir, spawnCli, type CliChild } from '../helpers/ingest-cli.js';
import { startPgCluster, type PgCluster } from '../helpers/pg-cluster.js';
import { browserUnavailable, launchBrowser } from '../helpers/browser.js';
import { startWebhookReceiver, type WebhookReceiver } from '../alert-receivers/webhook-receiver.js';
import { installAudit } from '../../src/sources/pg-audit-table/install.js';

/**
 * Alert rules on real PostgreSQL logs, audit tables and an outbox: each kind of rule fires exactly for the
 * events that match (a filter on pgaudit events, a threshold on failed logins, a rule on row changes, one on
 * application events), delivered to a webhook receiver once per idempotency key; receivers that refuse, fail or
 * hang stall nothing and end as dead letters in `auditship status`; `run --follow` killed again and again loses no
 * alert and repeats one only with its key; the UI lists the alerts.
 */

const { dir, cleanup } = scratchDir('alerts');
let cluster: PgCluster;
const receivers: WebhookReceiver[] = [];
const children = new Set<CliChild>();
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

after(async () => {
  for (const c of children) c.kill('SIGKILL');
  for (const r of receivers) await r.close().catch(() => {});
  await cluster?.stop();
  cleanup();
});

async function receiver(mode: Parameters<typeof startWebhookReceiver>[0] = 'ok'): Promise<WebhookReceiver> {
  const r = await startWebhookReceiver(mode);
  receivers.push(r);
  return r;
}

async function sql(text: string): Promise<void> {
  await cluster.exec(text);
}

async function failLogin(user: string): Promise<void> {
  const c = new pg.Client({ host: '127.0.0.1', port: cluster.port, database: 'postgres', user });
  await assert.rejects(c.connect());
  await c.end().catch(() => {});
}

function writeConfig(name: string, body: string[]): string {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, body.join('\n') + '\n');
  return file;
}

const logsPipeline = (db: string) => [
  '  logs:',
  `    source: { type: pg_logs, path: ${cluster.logDir}, server: t1, poll_interval_ms: 200 }`,
  `    sinks: [ { type: duckdb, path: ${db} } ]`,
];

const strings = (rows: Record<string, unknown>[], key: string) => rows.map((r) => String(r[key])).sort();

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await check()) return;
    await sleep(200);
  }
  assert.fail(`timed out waiting for ${what}`);
}

function startDaemon(config: string): CliChild {
  const child = spawnCli(['run', '--follow', '--config', config]);
  children.add(child);
  void child.result.then(() => children.delete(child));
  return child;
}

describe('alert rules on real PostgreSQL', () => {
  const db1 = () => join(dir, 'kinds.duckdb');

  before(async () => {
    cluster = await startPgCluster({ logDestination: 'csvlog' });
  });

  test('each kind of rule fires exactly for the matching events, delivered once per key', async () => {
    const rx = await receiver('flaky');
    rx.setMode('flaky', 2); // the first two requests fail: delivered on a retry
    const c = await cluster.client();
    try {
      await c.query('CREATE TABLE accounts (id int PRIMARY KEY, owner text)');
      await installAudit(c, { schema: 'auditship', tables: ['accounts'] });
      await c.query(`CREATE TABLE app_outbox (id bigint PRIMARY KEY, is_sent boolean DEFAULT false, message jsonb, created_at timestamptz DEFAULT now())`);
      await c.query('CREATE TABLE salary (id int, amount numeric)');
      await c.query('ALTER TABLE salary ADD COLUMN currency text');
      await c.query('CREATE TABLE holidays (id int)');
      await c.query('SELECT * FROM salary');
      await c.query(`INSERT INTO accounts VALUES (1, 'alice'), (2, 'bob'), (3, 'carol')`);
      await c.query(`UPDATE accounts SET owner = 'bobby' WHERE id = 2`);
      await c.query('DELETE FROM accounts WHERE id = 3');
      const now = new Date().toISOString();
      const msg = (actor: string, operation: string) =>
        JSON.stringify({ audit_event: { date_time: now, operation, actor: { user_id: actor, role: 'USER' }, target: { id: '7', type: 'Profile' } } });
      const outbox: [number, string][] = [
        [1, msg('mallory', 'DELETE')],
        [2, msg('mallory', 'READ')],
        [3, msg('alice', 'DELETE')],
        [4, msg('mallory', 'DELETE')],
        [5, msg('bob', 'UPDATE')],
      ];
      for (const [id, m] of outbox) await c.query('INSERT INTO app_outbox (id, message) VALUES ($1, $2)', [id, m]);
    } finally {
      await c.end();
    }
    for (let i = 0; i < 6; i++) await failLogin('ghost');
    for (let i = 0; i < 2; i++) await failLogin('phantom');
    await cluster.flushLogs();

    const config = writeConfig('kinds', [
      'pipelines:',
      ...logsPipeline(db1()),
      '  rows:',
      `    source: { type: pg_audit_table, url: "${cluster.url()}" }`,
      `    sinks: [ { type: duckdb, path: ${db1()} } ]`,
      '  outbox:',
      `    source: { type: sql_outbox, url: "${cluster.url()}", table: app_outbox }`,
      `    sinks: [ { type: duckdb, path: ${db1()} } ]`,
      'alerts:',
      '  destinations:',
      `    hook: { type: webhook, url: "${rx.url}/hook/secret-path" }`,
      '  delivery: { backoff_initial_ms: 50, backoff_max_ms: 200, poll_interval_ms: 50, run_deadline_ms: 15000 }',
      '  rules:',
      '    - { name: salary-ddl, source: pgaudit, filter: "class=DDL&object=salary", to: hook }',
      '    - { name: failed-logins, source: logon_failures, count: 5, window: 1d, by: user, to: hook }',
      '    - { name: account-deletes, source: row_changes, filter: "table=public.accounts&action=DELETE", to: hook }',
      '    - { name: mallory-deletes, source: app_events, filter: "actor=mallory&operation=DELETE", to: hook }',
      // Text rules: one the text index lets through, one it rules out for every commit (nothing holds it).
      '    - { name: amount-text, source: pgaudit, filter: "text=AMOUNT Numeric", to: hook }',
      '    - { name: absent-text, source: pgaudit, filter: "text=no such words anywhere", to: hook }',
    ]);
    const r = await runCli(['run', '--config', config]);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /secret-path/, 'the webhook URL is never logged');

    const alerts = await queryCli(db1(), `SELECT alert_id, rule, group_key, event_id, matched FROM alerts ORDER BY rule, event_id`);
    const of = (rule: string) => alerts.filter((a) => a['rule'] === rule);
    // pgaudit: exactly the DDL events on salary (CREATE TABLE and ALTER TABLE), not holidays, not the SELECT.
    const salary = await queryCli(
      db1(),
      `SELECT server || '/' || session_id || '/' || session_line_num AS id FROM audit_logs WHERE class = 'DDL' AND object_name ILIKE '%salary%'`,
    );
    assert.ok(salary.length >= 2, 'the workload logged DDL on salary');
    assert.deepEqual(strings(of('salary-ddl'), 'event_id'), strings(salary, 'id'));
    for (const a of of('salary-ddl')) assert.equal(a['alert_id'], sha256(`salary-ddl\x1f${String(a['event_id'])}`));
    // Threshold: ghost failed 6 times (one alert for the user and window), phantom twice (none).
    assert.deepEqual(
      of('failed-logins').map((a) => [a['group_key'], Number(a['matched'])]),
      [['user=ghost', 6]], // all six in one commit: the count when it fired
    );
    // Row changes: the one DELETE on accounts.
    const deleted = await queryCli(db1(), `SELECT server || '/' || source_table || '/' || event_id AS id FROM row_changes WHERE action = 'DELETE'`);
    assert.equal(deleted.length, 1);
    assert.deepEqual(strings(of('account-deletes'), 'event_id'), strings(deleted, 'id'));
    // Application events: rows 1 and 4.
    assert.deepEqual(
      of('mallory-deletes').map((a) => String(a['event_id']).split('/')[2]),
      ['1', '4'],
    );
    // Text: the events whose statement holds the text, in any case; none for the text nowhere.
    const amount = await queryCli(
      db1(),
      `SELECT server || '/' || session_id || '/' || session_line_num AS id FROM audit_logs WHERE regexp_matches(statement, 'amount numeric', 'i')`,
    );
    assert.ok(amount.length >= 1, 'the workload logged the CREATE TABLE of salary');
    assert.deepEqual(strings(of('amount-text'), 'event_id'), strings(amount, 'id'));
    assert.deepEqual(of('absent-text'), []);
    assert.equal(alerts.length, salary.length + 1 + 1 + 2 + amount.length);

    // Every alert reached the receiver, after its failures, once per idempotency key.
    const got = rx.unique();
    assert.deepEqual(got.map((q) => q.idempotencyKey).sort(), strings(alerts, 'alert_id'));
    const body = got.find((q) => (q.body as { rule: string }).rule === 'failed-logins')!.body as {
      title: string;
      text: string;
      fields: Record<string, unknown>;
    };
    assert.match(body.title, /failed-logins fired \(6 events|failed-logins fired \(5 events/);
    assert.equal(body.fields['key'], 'user=ghost');
    const states = await queryCli(db1(), `SELECT state, count(*) AS n FROM alert_outbox GROUP BY state`);
    assert.deepEqual(
      states.map((s) => [s['state'], Number(s['n'])]),
      [['delivered', alerts.length]],
    );

    // A run with nothing new fires and delivers nothing again.
    const before = rx.received.length;
    const again = await runCli(['run', '--config', config]);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(Number((await queryCli(db1(), 'SELECT count(*) AS n FROM alerts'))[0]!['n']), alerts.length);
    assert.equal(rx.received.length, before);
  });

  test('the UI lists the fired alerts with their deliveries (headless Chromium)', { skip: browserUnavailable() ?? false }, async () => {
    const ui = spawnCli(['ui', '--db', db1(), '--listen', '127.0.0.1:0']);
    children.add(ui);
    let out = '';
    ui.stdout!.on('data', (d: string) => (out += d));
    await waitFor('the UI to listen', async () => /serving .* at http/.test(out), 15_000);
    const url = /at (http\S+)/.exec(out)![1]!;
    const browser = await launchBrowser();
    try {
      const { page, errors } = await browser.newPage();
      await page.goto(`${url}#view=alerts`);
      await page.getByTestId('alert-list').waitFor();
      const rows = page.getByTestId('alert-row');
      const n = Number((await queryCli(db1(), 'SELECT count(*) AS n FROM alerts'))[0]!['n']);
      assert.equal(await rows.count(), n);
      const logins = page.locator('[data-testid="alert-row"][data-rule="failed-logins"]');
      assert.match((await logins.getByTestId('alert-title').textContent()) ?? '', /failed-logins fired/);
      assert.equal(await logins.getByTestId('alert-delivery').getAttribute('data-state'), 'delivered');
      assert.equal(await page.getByTestId('tab-alerts').getAttribute('aria-current'), 'page');
      assert.equal(await page.getByTestId('results').isVisible(), false, 'the events view is hidden');
      const api = (await (await page.request.get(`${url}api/alerts?limit=2`)).json()) as { alerts: unknown[]; next: string | null };
      assert.equal(api.alerts.length, 2);
      assert.ok(api.next);
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
      ui.kill('SIGTERM');
      await ui.result;
    }
  });

  test('refusing, failing and hanging receivers stall no ingest; their deliveries retry, then are dead letters in status', async () => {
    const db = join(dir, 'dead.duckdb');
    const refuse = await receiver('reject');
    const fail = await receiver('fail');
    const hang = await receiver('hang');
    const config = writeConfig('dead', [
      'pipelines:',
      ...logsPipeline(db),
      'alerts:',
      '  destinations:',
      `    refuse: { type: webhook, url: "${refuse.url}/x" }`,
      `    fail: { type: webhook, url: "${fail.url}/x" }`,
      `    hang: { type: webhook, url: "${hang.url}/x", timeout_ms: 300 }`,
      '  delivery: { max_attempts: 3, backoff_initial_ms: 50, backoff_max_ms: 100, poll_interval_ms: 50, concurrency: 2 }',
      '  rules:',
      '    - { name: stall-ddl, source: pgaudit, filter: "class=DDL&object=stall_", to: [refuse, fail, hang] }',
    ]);
    const daemon = startDaemon(config);
    const stored = async () =>
      Number(
        (await queryCli(db, `SELECT count(*) AS n FROM audit_logs WHERE class = 'DDL' AND object_name LIKE '%stall_%'`).catch(() => [{ n: -1 }]))[0]!['n'],
      );
    // Events keep landing while every delivery fails or hangs.
    for (let i = 1; i <= 4; i++) {
      await sql(`CREATE TABLE stall_${i} (id int)`);
      await waitFor(`stall_${i} stored`, async () => (await stored()) === i, 15_000);
    }
    await waitFor('every delivery settled', async () => {
      const r = await queryCli(db, `SELECT count(*) FILTER (WHERE state = 'pending') AS p, count(*) AS n FROM alert_outbox`);
      return Number(r[0]!['n']) === 12 && Number(r[0]!['p']) === 0;
    });
    const st = await runCli(['status', '--db', db]);
    assert.equal(st.code, 0, st.stderr);
    assert.match(st.stdout, /alerts: 0 deliveries pending, 0 delivered, 12 dead letters/);
    assert.match(st.stdout, /stall-ddl\s+refuse\s+1\s.*HTTP 400/);
    assert.match(st.stdout, /stall-ddl\s+fail\s+3\s.*HTTP 503/);
    assert.match(st.stdout, /stall-ddl\s+hang\s+3\s/);
    const json = JSON.parse((await runCli(['status', '--db', db, '--json'])).stdout) as { alerts: { dead: number; dead_letters: { destination: string }[] } };
    assert.equal(json.alerts.dead, 12);
    assert.equal(refuse.received.length, 4, 'a refusal is not retried');
    assert.equal(fail.received.length, 12, 'three attempts per alert');
    daemon.kill('SIGTERM');
    assert.equal((await daemon.result).code, 0);
  });

  test('run --follow killed again and again: no alert lost, repeats only with the same idempotency key', async () => {
    const db = join(dir, 'kill.duckdb');
    const rx = await receiver('ok');
    const config = writeConfig('kill', [
      'pipelines:',
      ...logsPipeline(db),
      'alerts:',
      '  destinations:',
      `    hook: { type: webhook, url: "${rx.url}/k" }`,
      '  delivery: { backoff_initial_ms: 50, backoff_max_ms: 200, poll_interval_ms: 50 }',
      '  rules:',
      '    - { name: kill-ddl, source: pgaudit, filter: "class=DDL&object=kill_", to: hook }',
      '    - { name: kill-burst, source: pgaudit, filter: "class=DDL&object=kill_", count: 3, window: 1d, to: hook }',
    ]);
    let writing = true;
    let n = 0;
    const writer = (async () => {
      while (writing) {
        await sql(`CREATE TABLE kill_${++n} (id int)`);
        await sleep(40);
      }
    })();
    let daemon = startDaemon(config);
    for (let i = 0; i < 4; i++) {
      await sleep(600 + Math.floor(Math.random() * 1200));
      daemon.kill('SIGKILL');
      await daemon.result;
      daemon = startDaemon(config);
    }
    writing = false;
    await writer;
    await cluster.flushLogs();
    await waitFor(
      'every event stored and every alert delivered',
      async () => {
        const r = await queryCli(
          db,
          `SELECT (SELECT count(*) FROM audit_logs WHERE class = 'DDL' AND object_name LIKE '%kill_%') AS events,
                  (SELECT count(*) FROM alert_outbox WHERE state <> 'delivered') AS open`,
        ).catch(() => [{ events: -1, open: -1 }]);
        return Number(r[0]!['events']) === n && Number(r[0]!['open']) === 0;
      },
      60_000,
    );
    daemon.kill('SIGTERM');
    assert.equal((await daemon.result).code, 0);
    const events = await queryCli(
      db,
      `SELECT server || '/' || session_id || '/' || session_line_num AS id FROM audit_logs WHERE class = 'DDL' AND object_name LIKE '%kill_%'`,
    );
    const expected = new Set(events.map((e) => sha256(`kill-ddl\x1f${String(e['id'])}`)));
    const burst = await queryCli(db, `SELECT alert_id FROM alerts WHERE rule = 'kill-burst'`);
    assert.equal(burst.length, 1, 'the threshold fired once for its window');
    expected.add(String(burst[0]!['alert_id']));
    const fired = await queryCli(db, 'SELECT alert_id FROM alerts');
    assert.deepEqual(new Set(strings(fired, 'alert_id')), expected);
    const accepted = rx.received.filter((q) => q.status === 200).map((q) => q.idempotencyKey!);
    assert.deepEqual(new Set(accepted), expected, 'every alert arrived; nothing else did');
    assert.equal(rx.unique().length, expected.size);
  });
});
