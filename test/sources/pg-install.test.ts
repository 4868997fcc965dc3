import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import pg from 'pg';
import {
  installAudit,
  NOTIFY_CHANNEL,
  tableNameCandidates,
  textArrayLiteral,
  uninstallAudit,
  upgradeAuditTable,
} from '../../src/sources/pg-audit-table/install.js';
import { auditship } from '../helpers/cli.js';
import { ADMIN_URL, createTestDatabase, type TestDatabase } from '../helpers/pg-db.js';

/**
 * auditship's trigger-based audit schema against the real local PostgreSQL (15): what the triggers record,
 * idempotent re-installs, names that need quoting, a 1 MB row with a listener, uninstall, the 91plus upgrade,
 * and the `auditship pg` CLI (built: run `npm run build` first).
 */
let db: TestDatabase;
const roles: string[] = [];

before(async () => {
  db = await createTestDatabase('pg_install');
});

after(async () => {
  await db?.drop();
  if (roles.length) {
    const admin = new pg.Client({ connectionString: ADMIN_URL });
    await admin.connect();
    try {
      for (const r of roles) await admin.query(`DROP ROLE IF EXISTS ${pg.escapeIdentifier(r)}`);
    } finally {
      await admin.end();
    }
  }
});

interface Logged {
  event_id: string;
  txid: string;
  schema_name: string;
  table_name: string;
  relid: string;
  action: string;
  row_data: Record<string, unknown> | null;
  changed_fields: Record<string, unknown> | null;
  changed_text: string | null;
  statement_only: boolean;
  session_user_name: string | null;
  application_name: string | null;
  client_query: string | null;
  tstamps_ok: boolean;
}

async function logged(client: pg.ClientBase, where = 'true', params: unknown[] = [], auditTable = 'auditship.logged_actions'): Promise<Logged[]> {
  const r = await client.query<Logged>(
    `SELECT event_id::text, txid::text, schema_name, table_name, relid::int8::text AS relid, action, row_data, changed_fields,
            changed_fields::text AS changed_text, statement_only, session_user_name, application_name, client_query,
            (action_tstamp_tx <= action_tstamp_stm AND action_tstamp_stm <= action_tstamp_clk) AS tstamps_ok
       FROM ${auditTable} WHERE ${where} ORDER BY event_id`,
    params,
  );
  return r.rows;
}

async function triggersOn(client: pg.ClientBase, table: string): Promise<string[]> {
  const r = await client.query<{ tgname: string }>('SELECT tgname FROM pg_trigger WHERE tgrelid = $1::regclass AND NOT tgisinternal ORDER BY tgname', [table]);
  return r.rows.map((x) => x.tgname);
}

async function oidOf(client: pg.ClientBase, table: string): Promise<string> {
  const r = await client.query<{ oid: string }>('SELECT $1::regclass::oid::int8::text AS oid', [table]);
  return r.rows[0]!.oid;
}

async function withClient<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = await db.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** Runs `sql` in its own transaction on `c` and returns that transaction's pg_current_xact_id(). */
async function writeTx(c: pg.ClientBase, ...sql: string[]): Promise<string> {
  await c.query('BEGIN');
  for (const s of sql) await c.query(s);
  const x = await c.query<{ x: string }>('SELECT pg_current_xact_id()::text AS x');
  await c.query('COMMIT');
  return x.rows[0]!.x;
}

test('table name candidates: raw and quoted, qualified or not', () => {
  assert.deepEqual(tableNameCandidates('t1'), [{ schema: null, name: 't1' }]);
  assert.deepEqual(tableNameCandidates('public.Order Items')[0], { schema: 'public', name: 'Order Items' });
  assert.deepEqual(tableNameCandidates('public."Order Items"')[0], { schema: 'public', name: 'Order Items' });
  assert.deepEqual(tableNameCandidates('"weird""name"')[0], { schema: null, name: 'weird"name' });
  assert.deepEqual(tableNameCandidates('weird"name'), [{ schema: null, name: 'weird"name' }]);
  assert.deepEqual(tableNameCandidates('Public.Orders').slice(0, 2), [
    { schema: 'Public', name: 'Orders' },
    { schema: 'public', name: 'orders' },
  ]);
  assert.equal(textArrayLiteral([]), '{}');
  assert.equal(textArrayLiteral(['a', 'b c', 'd"e\\f']), '{"a","b c","d\\"e\\\\f"}');
});

test('install twice is idempotent: one trigger of each kind per table, one txid index, data kept', async () => {
  const c = db.client;
  await c.query('CREATE TABLE idem (id int PRIMARY KEY, v text)');
  const first = await installAudit(c, { schema: 'auditship', tables: ['idem'] });
  assert.deepEqual(first, { auditTable: 'auditship.logged_actions', tables: ['public.idem'] });
  await c.query(`INSERT INTO idem VALUES (1, 'one')`);
  const second = await installAudit(c, { schema: 'auditship', tables: ['idem', 'public.idem'] });
  assert.deepEqual(second, first);
  assert.deepEqual(await triggersOn(c, 'idem'), ['auditship_row', 'auditship_truncate']);
  await c.query(`INSERT INTO idem VALUES (2, 'two')`);
  const rows = await logged(c, `table_name = 'idem'`);
  assert.deepEqual(
    rows.map((r) => [r.action, r.row_data]),
    [
      ['I', { id: 1, v: 'one' }],
      ['I', { id: 2, v: 'two' }],
    ],
  );
  const idx = await c.query<{ def: string }>(
    `SELECT pg_get_indexdef(indexrelid) AS def FROM pg_index WHERE indrelid = 'auditship.logged_actions'::regclass ORDER BY 1`,
  );
  assert.deepEqual(idx.rows.map((r) => r.def.replace(/^.* USING /, '')).sort(), ['btree (event_id)', 'btree (txid, event_id)']);
  // The function is SECURITY DEFINER with a fixed search_path, owned by the installer, not executable by PUBLIC.
  const fn = await c.query<{ secdef: boolean; config: string[]; owner: string; public_exec: boolean }>(
    `SELECT prosecdef AS secdef, proconfig AS config, pg_get_userbyid(proowner) AS owner,
            has_function_privilege('public', oid, 'EXECUTE') AS public_exec
       FROM pg_proc WHERE oid = 'auditship.if_modified()'::regprocedure`,
  );
  assert.deepEqual(fn.rows[0], {
    secdef: true,
    config: ['search_path=pg_catalog, pg_temp'],
    owner: (await c.query('SELECT current_user AS u')).rows[0].u,
    public_exec: false,
  });
});

test('INSERT, UPDATE, DELETE and TRUNCATE are recorded with txid, user, application and the changed fields; excluded columns are left out', async () => {
  const c = db.client;
  await c.query(`CREATE TABLE items (id int PRIMARY KEY, name text, price numeric, updated_at timestamptz, secret text)`);
  await installAudit(c, { schema: 'auditship', tables: ['items'], excludeColumns: { items: ['updated_at', 'SECRET'] } });
  const relid = await oidOf(c, 'items');
  await withClient(async (w) => {
    await w.query(`SET application_name = 'pg-install-test'`);
    const user = (await w.query<{ u: string }>('SELECT session_user AS u')).rows[0]!.u;
    const x1 = await writeTx(w, `INSERT INTO items VALUES (1, 'apple', 1.0, now(), 's1'), (2, 'pear', 2, now(), 's2')`);
    const x2 = await writeTx(w, `UPDATE items SET name = 'green apple', updated_at = now() + interval '1 hour' WHERE id = 1`);
    // Only excluded columns, or nothing at all: not logged.
    await writeTx(w, `UPDATE items SET updated_at = now() + interval '2 hours', secret = 'changed'`);
    await writeTx(w, `UPDATE items SET name = name WHERE id = 2`);
    // The stored text changes although numeric 1.0 = 1.00: logged.
    const x3 = await writeTx(w, `UPDATE items SET price = 1.00 WHERE id = 1`);
    const x4 = await writeTx(w, `DELETE FROM items WHERE id = 2`);
    const x5 = await writeTx(w, `TRUNCATE items`);

    const rows = await logged(c, `table_name = 'items'`);
    assert.deepEqual(
      rows.map((r) => r.action),
      ['I', 'I', 'U', 'U', 'D', 'T'],
    );
    assert.deepEqual(
      rows.map((r) => r.txid),
      [x1, x1, x2, x3, x4, x5],
    );
    assert.deepEqual(rows[0]!.row_data, { id: 1, name: 'apple', price: 1.0 });
    assert.deepEqual(rows[1]!.row_data, { id: 2, name: 'pear', price: 2 });
    assert.deepEqual(rows[2]!.row_data, { id: 1, name: 'apple', price: 1.0 });
    assert.equal(rows[2]!.changed_text, '{"name": "green apple"}');
    assert.equal(rows[3]!.changed_text, '{"price": 1.00}');
    assert.deepEqual(rows[4]!.row_data, { id: 2, name: 'pear', price: 2 });
    assert.equal(rows[4]!.changed_fields, null);
    assert.equal(rows[5]!.row_data, null);
    assert.equal(rows[5]!.changed_fields, null);
    assert.deepEqual(
      rows.map((r) => r.statement_only),
      [false, false, false, false, false, true],
    );
    for (const r of rows) {
      assert.equal(r.schema_name, 'public');
      assert.equal(r.relid, relid);
      assert.equal(r.session_user_name, user);
      assert.equal(r.application_name, 'pg-install-test');
      assert.equal(r.client_query, null);
      assert.equal(r.tstamps_ok, true);
      for (const k of ['updated_at', 'secret']) {
        assert.ok(!(k in (r.row_data ?? {})) && !(k in (r.changed_fields ?? {})), `${k} must be excluded`);
      }
    }
    // Event ids grow with the statements.
    assert.deepEqual(
      rows.map((r) => Number(r.event_id)),
      [...rows.map((r) => Number(r.event_id))].sort((a, b) => a - b),
    );

    // Re-installing with other options replaces the triggers: now the query is recorded, nothing excluded.
    await installAudit(c, { schema: 'auditship', tables: ['items'], logQuery: true });
    const sql = `INSERT INTO items VALUES (3, 'plum', 3, now(), 's3')`;
    await w.query(sql);
    const [last] = await logged(c, `table_name = 'items' AND row_data->>'id' = '3'`);
    assert.equal(last!.client_query, sql);
    assert.equal(last!.row_data!['secret'], 's3');
    assert.ok('updated_at' in last!.row_data!);
  });
  const args = await c.query<{ args: string }>(
    `SELECT encode(tgargs, 'escape') AS args FROM pg_trigger WHERE tgrelid = 'items'::regclass AND tgname = 'auditship_row'`,
  );
  assert.equal(args.rows[0]!.args, '{}\\000true\\000');
});

test('excluded columns are validated, and an unknown table or the audit table itself is refused without leaving anything behind', async () => {
  const c = db.client;
  await c.query('CREATE TABLE refuse_ok (id int)');
  await assert.rejects(
    installAudit(c, { schema: 'never_created', tables: ['refuse_ok', 'no_such_table'] }),
    (e: Error & { code?: string }) => e.code === 'table_not_found' && /no_such_table/.test(e.message),
  );
  await assert.rejects(
    installAudit(c, { schema: 'never_created', tables: ['refuse_ok'], excludeColumns: { refuse_ok: ['nope'] } }),
    (e: Error & { code?: string }) => e.code === 'column_not_found' && /"nope"/.test(e.message),
  );
  const ns = await c.query(`SELECT to_regnamespace('never_created') AS n`);
  assert.equal(ns.rows[0].n, null);
  assert.deepEqual(await triggersOn(c, 'refuse_ok'), []);
  await assert.rejects(installAudit(c, { schema: 'auditship', tables: ['auditship.logged_actions'] }), /is the audit table itself/);
  await c.query('CREATE VIEW refuse_view AS SELECT 1 AS x');
  await assert.rejects(installAudit(c, { schema: 'auditship', tables: ['refuse_view'] }), /is a view; only tables can be audited/);
});

test('a 1 MB row is recorded whole and the listener gets a small NOTIFY payload', async () => {
  const c = db.client;
  await c.query('CREATE TABLE big (id int, body text)');
  await installAudit(c, { schema: 'auditship', tables: ['big'] });
  const listener = await db.connect();
  const notes: pg.Notification[] = [];
  listener.on('notification', (n) => notes.push(n));
  await listener.query(`LISTEN ${NOTIFY_CHANNEL}`);
  try {
    const body = 'é'.repeat(512 * 1024);
    assert.equal(Buffer.byteLength(body), 1024 * 1024);
    await withClient(async (w) => {
      await w.query('BEGIN');
      await w.query('INSERT INTO big VALUES (1, $1)', [body]);
      await w.query('INSERT INTO big VALUES (2, $1)', [body]);
      await w.query('COMMIT');
    });
    for (let i = 0; i < 100 && notes.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(notes.length, 1, 'one notification per transaction (identical payloads fold)');
    assert.equal(notes[0]!.channel, 'auditship');
    assert.equal(notes[0]!.payload, 'auditship.logged_actions');
    assert.ok(Buffer.byteLength(notes[0]!.payload ?? '') < 100);
    const r = await c.query<{ n: string; len: number }>(
      `SELECT count(*)::text AS n, max(octet_length(row_data->>'body')) AS len FROM auditship.logged_actions WHERE table_name = 'big'`,
    );
    assert.deepEqual(r.rows[0], { n: '2', len: 1024 * 1024 });
  } finally {
    await listener.end();
  }
});

test('names that need quoting: tables, columns and the audit schema', async () => {
  const c = db.client;
  await c.query(`CREATE TABLE public."Order Items" (id int, "Line Total" numeric, note text)`);
  await c.query(`CREATE TABLE "weird""name" (id int)`);
  await c.query(`CREATE SCHEMA "Sales.EU"`);
  await c.query(`CREATE TABLE "Sales.EU"."it's" (id int)`);
  const r1 = await installAudit(c, {
    schema: 'Audit Trail',
    tables: ['public.Order Items', 'weird"name', '"Sales.EU"."it\'s"'],
    excludeColumns: { 'public."Order Items"': ['Line Total'] },
  });
  assert.deepEqual(r1, { auditTable: '"Audit Trail".logged_actions', tables: ['public."Order Items"', 'public."weird""name"', '"Sales.EU"."it\'s"'] });
  // The quoted spellings name the same tables: re-installing changes nothing.
  const r2 = await installAudit(c, {
    schema: 'Audit Trail',
    tables: ['public."Order Items"', '"weird""name"', '"Sales.EU"."it\'s"'],
    excludeColumns: { 'public.Order Items': ['"Line Total"'] },
  });
  assert.deepEqual(r2, r1);
  assert.deepEqual(await triggersOn(c, 'public."Order Items"'), ['auditship_row', 'auditship_truncate']);
  assert.deepEqual(await triggersOn(c, '"weird""name"'), ['auditship_row', 'auditship_truncate']);

  const listener = await db.connect();
  const notes: pg.Notification[] = [];
  listener.on('notification', (n) => notes.push(n));
  await listener.query(`LISTEN ${NOTIFY_CHANNEL}`);
  try {
    await c.query(`INSERT INTO public."Order Items" VALUES (1, 9.99, 'n')`);
    await c.query(`INSERT INTO "weird""name" VALUES (7)`);
    await c.query(`INSERT INTO "Sales.EU"."it's" VALUES (8)`);
    for (let i = 0; i < 100 && notes.length < 3; i++) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(
      notes.map((n) => n.payload),
      Array(3).fill('"Audit Trail".logged_actions'),
    );
  } finally {
    await listener.end();
  }
  const rows = await logged(c, 'true', [], '"Audit Trail".logged_actions');
  assert.deepEqual(
    rows.map((r) => [r.schema_name, r.table_name, r.row_data]),
    [
      ['public', 'Order Items', { id: 1, note: 'n' }],
      ['public', 'weird"name', { id: 7 }],
      ['Sales.EU', "it's", { id: 8 }],
    ],
  );
  const removed = await uninstallAudit(c, { schema: 'Audit Trail', dropData: true });
  assert.deepEqual(removed, { tables: ['"Sales.EU"."it\'s"', 'public."Order Items"', 'public."weird""name"'], droppedData: true });
});

test('uninstall drops the triggers and keeps the data; with dropData it drops the audit table, function and empty schema', async () => {
  const c = db.client;
  await c.query('CREATE TABLE un1 (id int); CREATE TABLE un2 (id int)');
  await installAudit(c, { schema: 'audit_un', tables: ['un1', 'un2'] });
  await c.query('INSERT INTO un1 VALUES (1); INSERT INTO un2 VALUES (2)');
  assert.deepEqual(await uninstallAudit(c, { schema: 'audit_un', tables: ['un1'] }), { tables: ['public.un1'], droppedData: false });
  assert.deepEqual(await triggersOn(c, 'un1'), []);
  assert.deepEqual(await triggersOn(c, 'un2'), ['auditship_row', 'auditship_truncate']);
  await c.query('INSERT INTO un1 VALUES (3); INSERT INTO un2 VALUES (4)');
  let rows = await logged(c, 'true', [], 'audit_un.logged_actions');
  assert.deepEqual(
    rows.map((r) => [r.table_name, r.row_data]),
    [
      ['un1', { id: 1 }],
      ['un2', { id: 2 }],
      ['un2', { id: 4 }],
    ],
  );

  // Dropping the data while another table still writes to it is refused, and changes nothing.
  await assert.rejects(
    uninstallAudit(c, { schema: 'audit_un', tables: ['un1'], dropData: true }),
    (e: Error & { code?: string }) => e.code === 'still_audited' && /public\.un2/.test(e.message),
  );
  // Uninstall without tables: every audited table; the data stays.
  assert.deepEqual(await uninstallAudit(c, { schema: 'audit_un' }), { tables: ['public.un2'], droppedData: false });
  rows = await logged(c, 'true', [], 'audit_un.logged_actions');
  assert.equal(rows.length, 3);
  // Uninstalling again is harmless.
  assert.deepEqual(await uninstallAudit(c, { schema: 'audit_un' }), { tables: [], droppedData: false });

  assert.deepEqual(await uninstallAudit(c, { schema: 'audit_un', dropData: true }), { tables: [], droppedData: true });
  const left = await c.query(`SELECT to_regnamespace('audit_un') AS ns, to_regclass('audit_un.logged_actions') AS t`);
  assert.deepEqual(left.rows[0], { ns: null, t: null });
  await c.query('INSERT INTO un1 VALUES (5); INSERT INTO un2 VALUES (6)');

  // A schema that holds something else stays.
  await c.query('CREATE SCHEMA audit_keep; CREATE TABLE audit_keep.other (x int); CREATE TABLE un3 (id int)');
  await installAudit(c, { schema: 'audit_keep', tables: ['un3'] });
  assert.deepEqual(await uninstallAudit(c, { schema: 'audit_keep', dropData: true }), { tables: ['public.un3'], droppedData: true });
  const kept = await c.query(
    `SELECT to_regclass('audit_keep.other')::text AS t, to_regclass('audit_keep.logged_actions') AS la, to_regprocedure('audit_keep.if_modified()') AS fn`,
  );
  assert.deepEqual(kept.rows[0], { t: 'audit_keep.other', la: null, fn: null });
});

test('upgradeAuditTable adds txid and its index to a 91plus audit table, idempotently, and its trigger keeps working', async () => {
  const c = db.client;
  await c.query('CREATE EXTENSION IF NOT EXISTS hstore');
  await c.query(`CREATE SCHEMA audit;
    CREATE TABLE audit.logged_actions (
      event_id bigserial PRIMARY KEY, schema_name text NOT NULL, table_name text NOT NULL, relid oid NOT NULL,
      session_user_name text, action_tstamp_tx timestamptz NOT NULL, action_tstamp_stm timestamptz NOT NULL,
      action_tstamp_clk timestamptz NOT NULL, transaction_id bigint, application_name text, client_addr inet,
      client_port integer, client_query text, action text NOT NULL CHECK (action IN ('I','D','U','T')),
      row_data hstore, changed_fields hstore, statement_only boolean NOT NULL)`);
  // Like 91plus: a whole %ROWTYPE row is inserted, so a column added later arrives as an explicit NULL.
  await c.query(`CREATE FUNCTION audit.if_modified_func() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE r audit.logged_actions;
    BEGIN
      r := ROW(nextval('audit.logged_actions_event_id_seq'), TG_TABLE_SCHEMA::text, TG_TABLE_NAME::text, TG_RELID,
               session_user::text, current_timestamp, statement_timestamp(), clock_timestamp(), txid_current(),
               current_setting('application_name'), inet_client_addr(), inet_client_port(), NULL,
               substring(TG_OP, 1, 1), hstore(NEW.*), NULL, false);
      INSERT INTO audit.logged_actions VALUES (r.*);
      RETURN NULL;
    END $$`);
  await c.query(`CREATE TABLE h1 (id int, v text);
    CREATE TRIGGER audit_trigger_row AFTER INSERT ON h1 FOR EACH ROW EXECUTE FUNCTION audit.if_modified_func()`);
  await c.query(`INSERT INTO h1 VALUES (1, 'before')`);

  // Our installer does not take over (or drop) a foreign table of the same name.
  await assert.rejects(
    installAudit(c, { schema: 'audit', tables: ['h1'] }),
    (e: Error & { code?: string }) => e.code === 'foreign_audit_table' && /no column txid/.test(e.message),
  );
  await assert.rejects(uninstallAudit(c, { schema: 'audit', dropData: true }), (e: Error & { code?: string }) => e.code === 'foreign_audit_table');

  const colsBefore = (
    await c.query(`SELECT count(*)::int AS n FROM pg_attribute WHERE attrelid = 'audit.logged_actions'::regclass AND attnum > 0 AND NOT attisdropped`)
  ).rows[0].n as number;
  assert.deepEqual(await upgradeAuditTable(c, 'audit.logged_actions'), { added: true });
  const upgradeTxids = await c.query<{ txid: string }>('SELECT DISTINCT txid::text AS txid FROM audit.logged_actions');
  assert.equal(upgradeTxids.rows.length, 1, 'existing rows all get the upgrading transaction id');

  const x = await withClient((w) => writeTx(w, `INSERT INTO h1 VALUES (2, 'after')`));
  const rows = await c.query<{ txid: string; transaction_id: string; v: string }>(
    `SELECT txid::text AS txid, transaction_id::text AS transaction_id, row_data->'v' AS v FROM audit.logged_actions ORDER BY event_id`,
  );
  assert.deepEqual(
    rows.rows.map((r) => r.v),
    ['before', 'after'],
  );
  assert.equal(rows.rows[1]!.txid, x);
  assert.equal(rows.rows[1]!.transaction_id, x, '91plus txid_current() and pg_current_xact_id() agree');
  assert.notEqual(rows.rows[0]!.txid, x);

  assert.deepEqual(await upgradeAuditTable(c, 'audit.logged_actions'), { added: false });
  const cols = await c.query<{ type: string; notnull: boolean; def: string }>(
    `SELECT format_type(atttypid, atttypmod) AS type, attnotnull AS notnull, pg_get_expr(d.adbin, d.adrelid) AS def
       FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
      WHERE attrelid = 'audit.logged_actions'::regclass AND attname = 'txid'`,
  );
  assert.deepEqual(cols.rows[0], { type: 'xid8', notnull: true, def: 'pg_current_xact_id()' });
  const colsAfter = (
    await c.query(`SELECT count(*)::int AS n FROM pg_attribute WHERE attrelid = 'audit.logged_actions'::regclass AND attnum > 0 AND NOT attisdropped`)
  ).rows[0].n as number;
  assert.equal(colsAfter, colsBefore + 1);
  const idx = await c.query<{ def: string }>(
    `SELECT pg_get_indexdef(indexrelid) AS def FROM pg_index WHERE indrelid = 'audit.logged_actions'::regclass AND pg_get_indexdef(indexrelid) LIKE '%(txid, event_id)'`,
  );
  assert.equal(idx.rows.length, 1);
  assert.deepEqual(await triggersOn(c, 'audit.logged_actions'), ['auditship_fill_txid']);
  await assert.rejects(upgradeAuditTable(c, 'h1'), /has no event_id column/);
});

test('CLI: auditship pg install / --upgrade / uninstall', async () => {
  const c = db.client;
  await c.query('CREATE TABLE cli_t1 (id int, v text)');
  const url = new URL(db.url);
  url.password = 'hunter2'; // ignored by trust authentication; must never be printed
  const withPassword = url.toString();

  const ok = await auditship(['pg', 'install', '--url', withPassword, '--schema', 'audit_cli', '--exclude', 'cli_t1=v', 'cli_t1']);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /installed on 1 table\(s\)/);
  assert.match(ok.stdout, /audit_cli\.logged_actions/);
  assert.match(ok.stdout, /public\.cli_t1 \(without v\)/);
  assert.match(ok.stdout, /:\*\*\*\*@/);
  assert.ok(!(ok.stdout + ok.stderr).includes('hunter2'));
  assert.deepEqual(await triggersOn(c, 'cli_t1'), ['auditship_row', 'auditship_truncate']);
  await c.query(`INSERT INTO cli_t1 VALUES (1, 'x')`);
  const rows = await logged(c, 'true', [], 'audit_cli.logged_actions');
  assert.deepEqual(
    rows.map((r) => r.row_data),
    [{ id: 1 }],
  );

  // --url from the environment.
  const env = await auditship(['pg', 'install', '--schema', 'audit_cli', '--exclude', 'cli_t1=v', 'cli_t1'], { env: { AUDITSHIP_PG_URL: db.url } });
  assert.equal(env.code, 0, env.stderr);

  const missing = await auditship(['pg', 'install', '--url', withPassword, 'cli_t1', 'no_such_table']);
  assert.equal(missing.code, 1);
  assert.equal(missing.stderr.trimEnd().split('\n').length, 1, missing.stderr);
  assert.match(missing.stderr, /^auditship: table "no_such_table" does not exist/);
  assert.ok(!missing.stderr.includes('hunter2'));

  const noUrl = await auditship(['pg', 'install', 'cli_t1'], { env: { AUDITSHIP_PG_URL: '' } });
  assert.equal(noUrl.code, 2);
  assert.match(noUrl.stderr, /--url/);

  const badArgs = await auditship(['pg', 'install', '--url', db.url, '--upgrade', 'audit_cli.logged_actions', 'cli_t1']);
  assert.equal(badArgs.code, 2);
  const badExclude = await auditship(['pg', 'install', '--url', db.url, '--exclude', 'cli_t1', 'cli_t1']);
  assert.equal(badExclude.code, 2);
  assert.match(badExclude.stderr, /expected TABLE=COL/);

  const refused = await auditship(['pg', 'install', '--url', 'postgres://u:hunter2@127.0.0.1:1/x', 'cli_t1']);
  assert.equal(refused.code, 1);
  assert.equal(refused.stderr.trimEnd().split('\n').length, 1, refused.stderr);
  assert.match(refused.stderr, /connection refused/);
  assert.ok(!refused.stderr.includes('hunter2'));

  // A role without privileges: one line naming the missing privilege.
  const role = `auditship_np_${randomBytes(4).toString('hex')}`;
  roles.push(role);
  await c.query(`CREATE ROLE ${role} LOGIN`);
  const asRole = new URL(db.url);
  asRole.username = role;
  const denied = await auditship(['pg', 'install', '--url', asRole.toString(), 'cli_t1']);
  assert.equal(denied.code, 1);
  assert.equal(denied.stderr.trimEnd().split('\n').length, 1, denied.stderr);
  assert.match(denied.stderr, /permission denied.*42501/);

  // --upgrade on an auditship table is a no-op; on the 91plus one it was done above.
  const up = await auditship(['pg', 'install', '--url', db.url, '--upgrade', 'audit_cli.logged_actions']);
  assert.equal(up.code, 0, up.stderr);
  assert.match(up.stdout, /nothing to do/);
  assert.deepEqual(await triggersOn(c, 'audit_cli.logged_actions'), []);

  const un = await auditship(['pg', 'uninstall', '--url', db.url, '--schema', 'audit_cli']);
  assert.equal(un.code, 0, un.stderr);
  assert.match(un.stdout, /removed from 1 table\(s\)/);
  assert.match(un.stdout, /stays/);
  assert.deepEqual(await triggersOn(c, 'cli_t1'), []);
  assert.equal((await logged(c, 'true', [], 'audit_cli.logged_actions')).length, 1);
  const drop = await auditship(['pg', 'uninstall', '--url', db.url, '--schema', 'audit_cli', '--drop-data']);
  assert.equal(drop.code, 0, drop.stderr);
  assert.match(drop.stdout, /dropped/);
  assert.equal((await c.query(`SELECT to_regnamespace('audit_cli') AS ns`)).rows[0].ns, null);
});
