import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { openSqlClient, type SqlClient } from '../../src/sources/sql/client.js';
import { logentryDdl, userTablesDdl, type DjangoDialect } from '../fixtures/django-auditlog.js';
import { queryDb, runCli, scratchDir } from '../helpers/ingest-cli.js';
import { createTestMysqlDatabase } from '../helpers/mysql-db.js';
import { createTestDatabase } from '../helpers/pg-db.js';

/**
 * django_auditlog against django-auditlog's tables exactly as its migrations create them (2.x: changes as
 * text; 3.x: changes as JSON), on PostgreSQL and MariaDB, with auth_user and a custom user table: the
 * message structured-log-transfer documents, is_sent kept in additional_data (missing = unsent), bad
 * entries quarantined, purge of sent entries only.
 */

const { dir, cleanup } = scratchDir('django-auditlog');
const drops: (() => Promise<void>)[] = [];
after(async () => {
  for (const d of drops) await d().catch(() => {});
  cleanup();
});

async function freshDb(dialect: DjangoDialect, prefix: string): Promise<{ url: string; c: SqlClient }> {
  const made = dialect === 'pg' ? await createTestDatabase(prefix) : await createTestMysqlDatabase(prefix);
  const c = await openSqlClient(made.url, 'test');
  drops.push(async () => {
    await c.close();
    await made.drop();
  });
  return { url: made.url, c };
}

let seq = 0;
function config(url: string, source: Record<string, unknown>): { config: string; db: string } {
  const n = seq++;
  const db = join(dir, `django-${n}.duckdb`);
  const lines = ['pipelines:', '  django:', '    source:', '      type: django_auditlog', `      url: ${JSON.stringify(url)}`];
  for (const [k, v] of Object.entries(source)) lines.push(`      ${k}: ${JSON.stringify(v)}`);
  lines.push('    sinks:', '      - type: duckdb', `        path: ${db}`);
  const file = join(dir, `django-${n}.yaml`);
  writeFileSync(file, lines.join('\n') + '\n');
  return { config: file, db };
}

const cases: { dialect: DjangoDialect; version: 2 | 3; userTable: string }[] = [
  { dialect: 'pg', version: 2, userTable: 'auth_user' },
  { dialect: 'pg', version: 3, userTable: 'auth_user' },
  { dialect: 'mysql', version: 2, userTable: 'auth_user' },
  { dialect: 'mysql', version: 3, userTable: 'auth_user' },
  { dialect: 'pg', version: 3, userTable: 'accounts_user' },
  { dialect: 'mysql', version: 3, userTable: 'accounts_user' },
];

for (const { dialect, version, userTable } of cases) {
  describe(`django_auditlog ${version}.x on ${dialect === 'pg' ? 'PostgreSQL' : 'MariaDB'} with ${userTable}`, () => {
    test('builds the documented message, marks entries sent in additional_data, quarantines what it cannot ship, purges only sent entries', async () => {
      const { url, c } = await freshDb(dialect, `dj${version}`);
      for (const s of [...userTablesDdl(dialect, userTable), ...logentryDdl(dialect, version, userTable)]) await c.execute(s);
      const now = dialect === 'pg' ? 'now()' : 'NOW(6)';
      const t = dialect === 'pg' ? 'true' : '1';
      const f = dialect === 'pg' ? 'false' : '0';
      await c.execute(`INSERT INTO django_content_type (id, app_label, model) VALUES (1, 'shop', 'order')`);
      await c.execute(`INSERT INTO ${userTable} (id, password, is_superuser, username, first_name, last_name, email, is_staff, is_active, date_joined)
                       VALUES (1, 'x', ${f}, 'ada', 'Ada', 'Lovelace', 'ada@example.com', ${f}, ${t}, ${now}),
                              (2, 'x', ${f}, 'bob', '', '', 'bob@example.com', ${f}, ${t}, ${now}),
                              (3, 'x', ${f}, 'eve', '', '', '', ${f}, ${t}, ${now})`);
      const changes = JSON.stringify({ status: ['new', 'paid'] });
      // id, action, actor, additional_data, timestamp
      const entries: [number, number, number | null, string | null, string][] = [
        [7, 1, 1, null, '2024-05-01 12:00:00.250000'], // update by Ada; no additional_data: unsent
        [3, 0, 2, '{}', '2024-05-01 11:00:00'], // create by bob (no name: email); ids out of order
        [5, 2, 3, '{"is_sent": false, "ip": "10.0.0.1"}', '2024-05-01 11:30:00'], // delete by eve (no name, no email)
        [9, 3, null, 'null', '2024-05-01 13:00:00'], // access, no actor; JSON null additional_data
        [11, 1, 1, '{"is_sent": true}', '2024-05-01 14:00:00'], // already sent: not shipped
        [12, 1, 1, '[1, 2]', '2024-05-01 15:00:00'], // cannot carry is_sent: quarantined
        [13, 7, 1, null, '2024-05-01 16:00:00'], // unknown action: quarantined
      ];
      for (const [id, action, actor, ad, ts] of entries) {
        const cols = ['id', 'object_pk', 'object_id', 'object_repr', 'action', 'changes', 'timestamp', 'actor_id', 'content_type_id', 'additional_data'];
        const vals: (string | number | null)[] = [id, String(100 + id), 100 + id, `Order #${100 + id}`, action, changes, ts, actor, 1, ad];
        if (version === 3) {
          cols.push('changes_text');
          vals.push('');
        }
        if (version === 3 && actor === null) {
          cols.push('actor_email');
          vals.push('gone@example.com');
        }
        await c.execute(`INSERT INTO auditlog_logentry (${cols.join(', ')}) VALUES (${cols.map((_, i) => c.p(i + 1)).join(', ')})`, vals);
      }
      const cfg = config(url, { user_table: userTable, origin: 'shop-backend', environment: 'test', retain_days: 30 });
      const r = await runCli(['run', '--config', cfg.config, '--json']);
      assert.equal(r.code, 0, r.stderr);
      const s = (JSON.parse(r.stdout.trim().split('\n').pop()!) as { pipelines: Record<string, number>[] }).pipelines[0]!;
      assert.deepEqual([s['stored'], s['quarantined'], s['marked']], [4, 2, 4]);

      const rows = await queryDb(
        cfg.db,
        `SELECT row_id, strftime(event_time, '%Y-%m-%dT%H:%M:%S.%f') AS t, message::VARCHAR AS m FROM app_events ORDER BY row_num`,
      );
      const messages = rows.map((x) => ({
        id: x['row_id'],
        t: x['t'],
        m: JSON.parse(String(x['m'])) as { '@timestamp': string; audit_event: Record<string, unknown> },
      }));
      assert.deepEqual(
        messages.map((x) => x.id),
        ['3', '5', '7', '9'],
      );
      const ev = (id: string) => messages.find((x) => x.id === id)!.m;
      assert.deepEqual(ev('7'), {
        '@timestamp': '2024-05-01T12:00:00.250000Z',
        audit_event: {
          actor: 'Ada Lovelace',
          date_time: '2024-05-01T12:00:00.250000Z',
          operation: 'update',
          origin: 'shop-backend',
          target: 'Order #107',
          environment: 'test',
          message: ev('7').audit_event['message'],
        },
      });
      assert.deepEqual(JSON.parse(String(ev('7').audit_event['message'])), { status: ['new', 'paid'] }, 'changes as text, whatever the column type');
      assert.equal(typeof ev('7').audit_event['message'], 'string');
      assert.equal(ev('3').audit_event['actor'], 'bob@example.com');
      assert.equal(ev('3').audit_event['operation'], 'create');
      assert.equal(ev('5').audit_event['actor'], 'unknown');
      assert.equal(ev('5').audit_event['operation'], 'delete');
      assert.equal(ev('9').audit_event['actor'], version === 3 ? 'gone@example.com' : 'unknown');
      assert.equal(ev('9').audit_event['operation'], 'access');
      assert.equal(messages.find((x) => x.id === '3')!.t, '2024-05-01T11:00:00.000000');

      const reasons = await queryDb(cfg.db, 'SELECT row_id, reason FROM app_quarantine ORDER BY row_id');
      assert.deepEqual(
        reasons.map((x) => x['row_id']),
        ['12', '13'],
      );
      assert.match(String(reasons[0]!['reason']), /additional_data is a JSON array/);
      assert.match(String(reasons[1]!['reason']), /unknown action/);

      // The flag lives in additional_data; what was there stays.
      const ad = await c.query(`SELECT id, additional_data${dialect === 'pg' ? '::text' : ''} AS ad FROM auditlog_logentry ORDER BY id`);
      const flags = Object.fromEntries(ad.map((x) => [x['id'], x['ad'] === null ? null : (JSON.parse(x['ad']!) as unknown)]));
      assert.deepEqual(flags, {
        3: { is_sent: true },
        5: { is_sent: true, ip: '10.0.0.1' },
        7: { is_sent: true },
        9: { is_sent: true },
        11: { is_sent: true },
        12: [1, 2],
        13: null,
      });
      const again = await runCli(['run', '--config', cfg.config, '--json']);
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stdout, /"stored":0/);

      // Purge: sent and older than 30 days (all of these are from 2024) — never 12 or 13, which are unsent.
      const p = await runCli(['purge', '--config', cfg.config]);
      assert.equal(p.code, 0, p.stderr);
      const left = (await c.query('SELECT id FROM auditlog_logentry ORDER BY id')).map((x) => Number(x['id']));
      assert.deepEqual(left, [12, 13]);
    });
  });
}
