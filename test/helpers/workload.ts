/**
 * A realistic audited workload for a cluster from {@link startPgCluster}, with the exact audit
 * records pgaudit 1.7 (PostgreSQL 15) writes for it.
 *
 * Every scenario runs in its own session(s) with a distinctive `application_name` (set with
 * `SET application_name`, which is itself the first audit record of the scenario), so tests
 * can select records per scenario. For each application name, the returned events are ALL the
 * audit records carrying it, in log order. `workload.test.ts` proves this against the raw
 * jsonlog and csvlog files.
 */
import { readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import type pg from 'pg';
import type { PgCluster } from './pg-cluster.js';

/** One audit record pgaudit is expected to write. */
export interface ExpectedEvent {
  /** application_name of the session (one per scenario, e.g. `wl-params`). */
  sessionApplicationName: string;
  /** Database the session was connected to (csvlog database_name / jsonlog dbname). */
  database: string;
  auditType: 'SESSION' | 'OBJECT';
  /** STATEMENT_ID: per-backend counter of logged top-level statements, from 1. */
  statementId: number;
  /** SUBSTATEMENT_ID within the statement (DO blocks, functions, EXECUTE, CTAS), from 1. */
  substatementId: number;
  class: 'READ' | 'WRITE' | 'FUNCTION' | 'ROLE' | 'DDL' | 'MISC';
  /** Command tag as pgaudit prints it (`SELECT`, `CREATE TABLE`, `TRUNCATE TABLE`, `???`). */
  command: string;
  /** OBJECT_TYPE, null when pgaudit leaves the field empty. */
  objectType: string | null;
  /** OBJECT_NAME after one CSV decode, e.g. `public."we""ird, name\nx"`; null when empty. */
  objectName: string | null;
  /**
   * The statement text pgaudit logs: the exact text sent, except that pgaudit redacts
   * everything after `password` in CREATE/ALTER ROLE, and that for substatements it is the
   * text of the inner statement. With `statementOnce` this is the text carried forward from
   * the first record of the same (statementId, substatementId).
   */
  statement: string;
  /**
   * PARAMETER after one CSV decode of the pgaudit field: `<none>` without parameters,
   * otherwise the nested CSV list (`1,"a,b",` for [1, 'a,b', null]); null when the field is
   * empty (a single NULL or '' parameter). Carried forward like `statement` when `statementOnce`.
   */
  parameter: string | null;
  /** ROWS (10th field) when `pgaudit.log_rows` was on for the record, null for 9-field records. */
  rows: number | null;
  /**
   * True when the record was written with `pgaudit.log_statement_once = on` after the first
   * record of its (statementId, substatementId): STATEMENT and PARAMETER are then literally
   * `<previously logged>` in the log, and `statement`/`parameter` above hold the carried value.
   */
  statementOnce: boolean;
}

/** Options for {@link runWorkload}. */
export interface WorkloadOptions {
  /** Size in bytes of the big statement (`SELECT length('…')`); 0 skips it. Default 10 MiB. */
  largeStatementBytes?: number;
  /** Rotate the log in the middle of a session (scenario `wl-params`). Default true. */
  rotate?: boolean;
  /** At the end, replace the oldest (rotated-away) csvlog file by a gzip of it. Default true. */
  gzipRotated?: boolean;
}

/** A statement specification: what to send and which audit records to expect. */
interface Step {
  sql: string;
  /** Bind parameters: uses the extended protocol through pg. */
  params?: unknown[];
  /** Named prepared statement (extended protocol, parsed once). */
  name?: string;
  /** Force the extended protocol without parameters. */
  extended?: boolean;
  /** The statement fails; its audit records (if any) are still expected. */
  fails?: boolean;
  events: EventSpec[];
}

interface EventSpec {
  class: ExpectedEvent['class'];
  command: string;
  objectType?: string | null;
  objectName?: string | null;
  auditType?: 'SESSION' | 'OBJECT';
  substatementId?: number;
  /** This record belongs to the next top-level statement (multi-statement query strings). */
  nextStatement?: boolean;
  /** Default: the SQL sent. */
  statement?: string;
  /** Default: rendered from the step's params (`<none>` without). */
  parameter?: string | null;
  /** Rows reported when log_rows is on. Default 0. */
  rows?: number;
}

/** pgaudit's append_valid_csv: quote only if the value holds a comma, double quote, CR or LF. */
export function pgauditCsv(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

/** The PARAMETER field after one CSV decode, for text-like parameters sent through pg. */
export function renderParameters(values: readonly unknown[]): string | null {
  if (values.length === 0) return '<none>';
  const list = values.map((v) => (v === null || v === undefined ? '' : pgauditCsv(String(v)))).join(',');
  return list === '' ? null : list;
}

const TABLE_WEIRD = '"we""ird, name\nx"';
const TABLE_WEIRD_NAME = 'public."we""ird, name\nx"';
const COL_WEIRD = '"col, ""q"""';
const TABLE_CITIES = '"städte 東京"';
const TABLE_CITIES_NAME = 'public."städte 東京"';
const OBJECT_DB = 'auditship_objects';

/** One client session of a scenario; tracks what pgaudit will print for it. */
class Session {
  private statementCounter = 0;
  private logRows: boolean;
  private statementOnce = false;

  constructor(
    private readonly client: pg.Client,
    readonly app: string,
    readonly database: string,
    private readonly clusterLogRows: boolean,
    private readonly out: ExpectedEvent[],
  ) {
    this.logRows = clusterLogRows;
  }

  static async open(cluster: PgCluster, app: string, clusterLogRows: boolean, out: ExpectedEvent[], database = 'postgres'): Promise<Session> {
    const client = await cluster.client(database);
    const s = new Session(client, app, database, clusterLogRows, out);
    await s.run({ sql: `SET application_name = '${app}'`, events: [{ class: 'MISC', command: 'SET' }] });
    return s;
  }

  /** SET/RESET of a pgaudit setting; the record of the SET itself already reflects the new value. */
  async set(setting: 'pgaudit.log_rows' | 'pgaudit.log_statement_once' | 'pgaudit.role', value: string | null): Promise<void> {
    const on = value === 'on';
    if (setting === 'pgaudit.log_rows') this.logRows = value === null ? this.clusterLogRows : on;
    if (setting === 'pgaudit.log_statement_once') this.statementOnce = value === null ? false : on;
    const sql = value === null ? `RESET ${setting}` : `SET ${setting} = ${setting === 'pgaudit.role' ? `'${value}'` : value}`;
    await this.run({ sql, events: [{ class: 'MISC', command: value === null ? 'RESET' : 'SET' }] });
  }

  get rowsOn(): boolean {
    return this.logRows;
  }

  async run(step: Step): Promise<void> {
    const expected = this.expect(step);
    let failed = false;
    try {
      if (step.params !== undefined || step.name !== undefined || step.extended) {
        // pg uses the extended protocol (Parse/Bind/Execute) for these.
        await this.client.query({
          text: step.sql,
          values: step.params ?? [],
          ...(step.name ? { name: step.name } : {}),
          ...(step.extended ? { queryMode: 'extended' } : {}),
        } as pg.QueryConfig);
      } else {
        await this.client.query(step.sql);
      }
    } catch (error) {
      if (!step.fails) throw error;
      failed = true;
    }
    if (step.fails && !failed) throw new Error(`statement was expected to fail: ${step.sql.slice(0, 200)}`);
    this.out.push(...expected);
  }

  private expect(step: Step): ExpectedEvent[] {
    const result: ExpectedEvent[] = [];
    if (step.events.length === 0) return result;
    let statementId = ++this.statementCounter;
    const firstBySub = new Map<number, ExpectedEvent>();
    for (const e of step.events) {
      if (e.nextStatement) {
        statementId = ++this.statementCounter;
        firstBySub.clear();
      }
      const substatementId = e.substatementId ?? 1;
      const first = firstBySub.get(substatementId);
      const once = this.statementOnce && first !== undefined;
      const event: ExpectedEvent = {
        sessionApplicationName: this.app,
        database: this.database,
        auditType: e.auditType ?? 'SESSION',
        statementId,
        substatementId,
        class: e.class,
        command: e.command,
        objectType: e.objectType ?? null,
        objectName: e.objectName ?? null,
        statement: once ? first.statement : (e.statement ?? step.sql),
        parameter: once ? first.parameter : e.parameter !== undefined ? e.parameter : renderParameters(step.params ?? []),
        rows: this.logRows ? (e.rows ?? 0) : null,
        statementOnce: once,
      };
      if (first === undefined) firstBySub.set(substatementId, event);
      result.push(event);
    }
    return result;
  }

  async close(): Promise<void> {
    await this.client.end();
  }
}

/** Reads `pgaudit.log_rows` of the cluster without leaving an audit record. */
async function clusterSetting(cluster: PgCluster, name: string): Promise<string> {
  const client = await cluster.client();
  try {
    await client.query("SET pgaudit.log = 'none'");
    const r = await client.query<{ v: string }>('SELECT current_setting($1) AS v', [name]);
    return r.rows[0]!.v;
  } finally {
    await client.end();
  }
}

/* ---------------- scenarios ---------------- */

async function ddl(s: Session): Promise<void> {
  const accounts = `CREATE TABLE accounts (
    id      serial PRIMARY KEY,   -- surrogate key
    owner   text NOT NULL,
    balance numeric(12,2) NOT NULL DEFAULT 0
)`;
  await s.run({
    sql: accounts,
    events: [
      { class: 'DDL', command: 'CREATE SEQUENCE', objectType: 'SEQUENCE', objectName: 'public.accounts_id_seq' },
      { class: 'DDL', command: 'CREATE TABLE', objectType: 'TABLE', objectName: 'public.accounts' },
      { class: 'DDL', command: 'CREATE INDEX', objectType: 'INDEX', objectName: 'public.accounts_pkey' },
      { class: 'DDL', command: 'ALTER SEQUENCE', objectType: 'SEQUENCE', objectName: 'public.accounts_id_seq' },
    ],
  });
  await s.run({
    sql: `CREATE TABLE ${TABLE_WEIRD} (id int PRIMARY KEY, ${COL_WEIRD} text)`,
    events: [
      { class: 'DDL', command: 'CREATE TABLE', objectType: 'TABLE', objectName: TABLE_WEIRD_NAME },
      { class: 'DDL', command: 'CREATE INDEX', objectType: 'INDEX', objectName: 'public."we""ird, name\nx_pkey"' },
    ],
  });
  await s.run({
    sql: `CREATE TABLE ${TABLE_CITIES} (name text, note text)`,
    events: [{ class: 'DDL', command: 'CREATE TABLE', objectType: 'TABLE', objectName: TABLE_CITIES_NAME }],
  });
  await s.run({ sql: 'CREATE TABLE scratch (x int)', events: [{ class: 'DDL', command: 'CREATE TABLE', objectType: 'TABLE', objectName: 'public.scratch' }] });
  await s.run({
    sql: 'CREATE VIEW v_accounts AS\n  SELECT id, owner FROM accounts',
    events: [{ class: 'DDL', command: 'CREATE VIEW', objectType: 'VIEW', objectName: 'public.v_accounts' }],
  });
  await s.run({
    sql: 'CREATE INDEX accounts_owner_idx ON accounts (owner)',
    events: [{ class: 'DDL', command: 'CREATE INDEX', objectType: 'INDEX', objectName: 'public.accounts_owner_idx' }],
  });
  await s.run({
    sql: 'ALTER TABLE accounts ADD COLUMN city text',
    events: [{ class: 'DDL', command: 'ALTER TABLE', objectType: 'TABLE', objectName: 'public.accounts' }],
  });
  await s.run({
    sql: `COMMENT ON TABLE accounts IS 'Kunden, "accounts"\nZürich 東京 🦆'`,
    events: [{ class: 'DDL', command: 'COMMENT', objectType: 'TABLE', objectName: 'public.accounts' }],
  });
  await s.run({ sql: 'CREATE TABLE to_drop (x int)', events: [{ class: 'DDL', command: 'CREATE TABLE', objectType: 'TABLE', objectName: 'public.to_drop' }] });
  await s.run({ sql: 'DROP TABLE to_drop', events: [{ class: 'DDL', command: 'DROP TABLE', objectType: 'TABLE', objectName: 'public.to_drop' }] });
}

async function dml(s: Session): Promise<void> {
  await s.run({
    sql: `INSERT INTO accounts (owner, balance, city)
VALUES ('O''Brien, "Bob"', 10.50, 'Zürich'),
       ('multi
line, owner', 20, 'Köln')`,
    events: [{ class: 'WRITE', command: 'INSERT', objectType: 'TABLE', objectName: 'public.accounts', rows: 2 }],
  });
  await s.run({
    sql: `INSERT INTO ${TABLE_WEIRD} VALUES (1, 'a,b'), (2, 'quote " here')`,
    events: [{ class: 'WRITE', command: 'INSERT', objectType: 'TABLE', objectName: TABLE_WEIRD_NAME, rows: 2 }],
  });
  await s.run({
    sql: `INSERT INTO ${TABLE_CITIES} VALUES ('Zürich', '東京 🦆, "Grüezi"'), ('Köln', 'Dom')`,
    events: [{ class: 'WRITE', command: 'INSERT', objectType: 'TABLE', objectName: TABLE_CITIES_NAME, rows: 2 }],
  });
  await s.run({
    sql: `SELECT a.owner, s.note
  FROM accounts a
  JOIN ${TABLE_CITIES} s ON s.name = a.city
 WHERE a.balance > 5`,
    events: [
      { class: 'READ', command: 'SELECT', objectType: 'TABLE', objectName: 'public.accounts', rows: 2 },
      { class: 'READ', command: 'SELECT', objectType: 'TABLE', objectName: TABLE_CITIES_NAME, rows: 2 },
    ],
  });
  // A view: pgaudit also reports the view's own RTE, once as '???' (no required permission).
  await s.run({
    sql: 'SELECT * FROM v_accounts',
    events: [
      { class: 'READ', command: 'SELECT', objectType: 'VIEW', objectName: 'public.v_accounts', rows: 2 },
      { class: 'MISC', command: '???', objectType: 'VIEW', objectName: 'public.v_accounts', rows: 2 },
      { class: 'READ', command: 'SELECT', objectType: 'TABLE', objectName: 'public.accounts', rows: 2 },
    ],
  });
  await s.run({
    sql: `UPDATE accounts SET balance = balance + 1 WHERE owner = 'O''Brien, "Bob"'`,
    events: [{ class: 'WRITE', command: 'UPDATE', objectType: 'TABLE', objectName: 'public.accounts', rows: 1 }],
  });
  await s.run({
    sql: `DELETE FROM ${TABLE_WEIRD} WHERE id = 2`,
    events: [{ class: 'WRITE', command: 'DELETE', objectType: 'TABLE', objectName: TABLE_WEIRD_NAME, rows: 1 }],
  });
  await s.run({ sql: 'TRUNCATE scratch', events: [{ class: 'WRITE', command: 'TRUNCATE TABLE' }] });
  await s.run({
    sql: 'CREATE TABLE accounts_copy AS SELECT * FROM accounts',
    events: [
      { class: 'READ', command: 'SELECT', objectType: 'TABLE', objectName: 'public.accounts', rows: 2 },
      { class: 'DDL', command: 'CREATE TABLE AS', objectType: 'TABLE', objectName: 'public.accounts_copy', substatementId: 2 },
    ],
  });
}

async function params(s: Session, cluster: PgCluster, rotate: boolean): Promise<void> {
  await s.run({
    sql: 'INSERT INTO accounts (owner, balance, city) VALUES ($1, $2, $3)',
    params: ['Zoë "Z", Ltd.', '7.25', null],
    events: [{ class: 'WRITE', command: 'INSERT', objectType: 'TABLE', objectName: 'public.accounts', rows: 1 }],
  });
  await s.run({
    sql: 'SELECT $1::int AS n, $2::text AS t, $3::text AS nul,\n       $4::text AS nl, $5::text AS empty, $6::text AS uni',
    params: [42, 'a,"b"', null, 'line1\nline2', '', 'Zürich 東京 🦆'],
    events: [{ class: 'READ', command: 'SELECT', rows: 1 }],
  });
  // The same named statement executed twice: parsed once, logged per execution.
  const find = 'SELECT id, owner FROM accounts WHERE owner = $1 OR city = $2';
  await s.run({
    sql: find,
    name: 'find_account',
    params: ['O\'Brien, "Bob"', 'Köln'],
    events: [{ class: 'READ', command: 'SELECT', objectType: 'TABLE', objectName: 'public.accounts', rows: 2 }],
  });
  await s.run({
    sql: find,
    name: 'find_account',
    params: [null, 'Zürich'],
    events: [{ class: 'READ', command: 'SELECT', objectType: 'TABLE', objectName: 'public.accounts', rows: 1 }],
  });
  // One parameter: pgaudit quotes it twice only if it needs quoting.
  await s.run({ sql: 'SELECT $1::text AS one', params: ['a,b'], events: [{ class: 'READ', command: 'SELECT', rows: 1 }] });
  await s.run({ sql: 'SELECT $1::text AS plain', params: ['plain'], events: [{ class: 'READ', command: 'SELECT', rows: 1 }] });
  // A single '' (or NULL) parameter leaves the PARAMETER field empty.
  await s.run({ sql: 'SELECT $1::text AS empty', params: [''], events: [{ class: 'READ', command: 'SELECT', rows: 1 }] });
  await s.run({ sql: 'SELECT $1::text AS a, $2::text AS b', params: [null, ''], events: [{ class: 'READ', command: 'SELECT', rows: 1 }] });
  if (rotate) await cluster.rotate();
  await s.run({
    sql: `UPDATE ${TABLE_WEIRD} SET ${COL_WEIRD} = $1 WHERE id = $2`,
    params: ['new\r\nvalue, "x"', 1],
    events: [{ class: 'WRITE', command: 'UPDATE', objectType: 'TABLE', objectName: TABLE_WEIRD_NAME, rows: 1 }],
  });
  await s.run({
    sql: 'SELECT count(*) FROM accounts',
    extended: true,
    events: [{ class: 'READ', command: 'SELECT', objectType: 'TABLE', objectName: 'public.accounts', rows: 1 }],
  });
}

async function plpgsql(s: Session): Promise<void> {
  const fn = `CREATE FUNCTION account_count(p_owner text) RETURNS bigint
LANGUAGE plpgsql AS $fn$
BEGIN
  RETURN (SELECT count(*) FROM accounts WHERE owner = p_owner);
END
$fn$`;
  await s.run({ sql: fn, events: [{ class: 'DDL', command: 'CREATE FUNCTION', objectType: 'FUNCTION', objectName: 'public.account_count(pg_catalog.text)' }] });
  const call = `SELECT account_count('O''Brien, "Bob"') AS n`;
  const execute: EventSpec = { class: 'FUNCTION', command: 'EXECUTE', objectType: 'FUNCTION', objectName: 'public.account_count' };
  // Inside PL/pgSQL the parameter list is the function's variables (argument, then FOUND).
  const inner: EventSpec = {
    class: 'READ',
    command: 'SELECT',
    objectType: 'TABLE',
    objectName: 'public.accounts',
    statement: '(SELECT count(*) FROM accounts WHERE owner = p_owner)',
    parameter: `"O'Brien, ""Bob""",`,
    rows: 1,
  };
  const outer: EventSpec = { class: 'READ', command: 'SELECT', rows: 1 };
  await s.run({
    sql: call,
    // With log_rows, SELECT records are written at executor end: the outer SELECT comes last,
    // and substatement ids are handed out in logging order.
    events: s.rowsOn
      ? [
          { ...execute, substatementId: 1 },
          { ...inner, substatementId: 2 },
          { ...outer, substatementId: 3 },
        ]
      : [
          { ...outer, substatementId: 1 },
          { ...execute, substatementId: 2 },
          { ...inner, substatementId: 3 },
        ],
  });
  const block = `DO $$
DECLARE
  n int := 0;
BEGIN
  INSERT INTO ${TABLE_CITIES} (name, note) VALUES ('Bern', 'CH, "Bärn"');
  EXECUTE 'UPDATE accounts SET city = $1 WHERE city = $2' USING 'Bern', 'Köln';
  SELECT count(*) INTO n FROM accounts;
  PERFORM set_config('auditship.n', n::text, true);
END
$$`;
  await s.run({
    sql: block,
    events: [
      { class: 'FUNCTION', command: 'DO' },
      {
        class: 'WRITE',
        command: 'INSERT',
        objectType: 'TABLE',
        objectName: TABLE_CITIES_NAME,
        substatementId: 2,
        statement: `INSERT INTO ${TABLE_CITIES} (name, note) VALUES ('Bern', 'CH, "Bärn"')`,
        rows: 1,
      },
      {
        class: 'WRITE',
        command: 'UPDATE',
        objectType: 'TABLE',
        objectName: 'public.accounts',
        substatementId: 3,
        statement: 'UPDATE accounts SET city = $1 WHERE city = $2',
        parameter: 'Bern,Köln',
        rows: 1,
      },
      {
        class: 'READ',
        command: 'SELECT',
        objectType: 'TABLE',
        objectName: 'public.accounts',
        substatementId: 4,
        statement: 'SELECT count(*)        FROM accounts',
        rows: 1,
      },
      {
        class: 'READ',
        command: 'SELECT',
        substatementId: 5,
        statement: "SELECT set_config('auditship.n', n::text, true)",
        parameter: ',3,',
        rows: 1,
      },
    ],
  });
}

async function roles(s: Session): Promise<void> {
  await s.run({ sql: 'CREATE ROLE auditship_reader NOLOGIN', events: [{ class: 'ROLE', command: 'CREATE ROLE' }] });
  await s.run({
    sql: `CREATE ROLE auditship_app LOGIN PASSWORD 'S3cr3t, "pw"'`,
    events: [{ class: 'ROLE', command: 'CREATE ROLE', statement: 'CREATE ROLE auditship_app LOGIN PASSWORD <REDACTED>' }],
  });
  await s.run({ sql: `GRANT SELECT ON accounts, ${TABLE_CITIES} TO auditship_reader`, events: [{ class: 'ROLE', command: 'GRANT', objectType: 'TABLE' }] });
  await s.run({ sql: 'GRANT auditship_reader TO auditship_app', events: [{ class: 'ROLE', command: 'GRANT ROLE' }] });
  await s.run({ sql: `REVOKE SELECT ON ${TABLE_CITIES} FROM auditship_reader`, events: [{ class: 'ROLE', command: 'REVOKE', objectType: 'TABLE' }] });
  await s.run({ sql: "ALTER ROLE auditship_app VALID UNTIL 'infinity'", events: [{ class: 'ROLE', command: 'ALTER ROLE' }] });
  await s.run({
    sql: "ALTER ROLE auditship_app PASSWORD 'an0ther'",
    events: [{ class: 'ROLE', command: 'ALTER ROLE', statement: 'ALTER ROLE auditship_app PASSWORD <REDACTED>' }],
  });
  await s.run({
    sql: 'ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO auditship_reader',
    events: [{ class: 'ROLE', command: 'ALTER DEFAULT PRIVILEGES', objectType: 'TABLES' }],
  });
  await s.run({ sql: 'CREATE ROLE auditship_tmp', events: [{ class: 'ROLE', command: 'CREATE ROLE' }] });
  await s.run({ sql: 'DROP ROLE auditship_tmp', events: [{ class: 'ROLE', command: 'DROP ROLE' }] });
}

async function rows(s: Session): Promise<void> {
  await s.set('pgaudit.log_rows', 'on');
  await s.run({
    sql: 'SELECT id FROM accounts ORDER BY id',
    events: [{ class: 'READ', command: 'SELECT', objectType: 'TABLE', objectName: 'public.accounts', rows: 3 }],
  });
  await s.run({
    sql: 'UPDATE accounts SET balance = balance * 2',
    events: [{ class: 'WRITE', command: 'UPDATE', objectType: 'TABLE', objectName: 'public.accounts', rows: 3 }],
  });
  await s.run({ sql: 'SELECT generate_series(1, 5) AS n', events: [{ class: 'READ', command: 'SELECT', rows: 5 }] });
  await s.set('pgaudit.log_rows', 'off');
  await s.run({
    sql: 'SELECT count(*) FROM accounts',
    events: [{ class: 'READ', command: 'SELECT', objectType: 'TABLE', objectName: 'public.accounts', rows: 1 }],
  });
  await s.set('pgaudit.log_rows', null);
  await s.run({ sql: 'SELECT 1 AS after_reset', events: [{ class: 'READ', command: 'SELECT', rows: 1 }] });
}

async function objectSession(s: Session): Promise<void> {
  await s.run({ sql: 'CREATE ROLE auditor NOLOGIN', events: [{ class: 'ROLE', command: 'CREATE ROLE' }] });
  await s.run({ sql: 'GRANT SELECT ON accounts TO auditor', events: [{ class: 'ROLE', command: 'GRANT', objectType: 'TABLE' }] });
  await s.run({ sql: `GRANT INSERT, UPDATE ON ${TABLE_WEIRD} TO auditor`, events: [{ class: 'ROLE', command: 'GRANT', objectType: 'TABLE' }] });
  await s.set('pgaudit.role', 'auditor');
  // Per relation: an OBJECT record if the audit role holds a matching grant, then the SESSION one.
  await s.run({
    sql: `SELECT a.owner, s.note FROM accounts a LEFT JOIN ${TABLE_CITIES} s ON s.name = a.city`,
    events: [
      { auditType: 'OBJECT', class: 'READ', command: 'SELECT', objectType: 'TABLE', objectName: 'public.accounts', rows: 3 },
      { class: 'READ', command: 'SELECT', objectType: 'TABLE', objectName: 'public.accounts', rows: 3 },
      { class: 'READ', command: 'SELECT', objectType: 'TABLE', objectName: TABLE_CITIES_NAME, rows: 3 },
    ],
  });
  await s.run({
    sql: `INSERT INTO ${TABLE_WEIRD} VALUES ($1, $2)`,
    params: [3, 'object, "audited"'],
    events: [
      { auditType: 'OBJECT', class: 'WRITE', command: 'INSERT', objectType: 'TABLE', objectName: TABLE_WEIRD_NAME, rows: 1 },
      { class: 'WRITE', command: 'INSERT', objectType: 'TABLE', objectName: TABLE_WEIRD_NAME, rows: 1 },
    ],
  });
  await s.run({
    sql: `SELECT * FROM ${TABLE_WEIRD}`,
    events: [{ class: 'READ', command: 'SELECT', objectType: 'TABLE', objectName: TABLE_WEIRD_NAME, rows: 2 }],
  });
  await s.set('pgaudit.role', null);
}

async function objectDatabase(cluster: PgCluster, clusterLogRows: boolean, out: ExpectedEvent[]): Promise<void> {
  const app = 'wl-object-db';
  const setup = await Session.open(cluster, app, clusterLogRows, out);
  await setup.run({ sql: `CREATE DATABASE ${OBJECT_DB}`, events: [{ class: 'DDL', command: 'CREATE DATABASE' }] });
  await setup.run({ sql: `ALTER DATABASE ${OBJECT_DB} SET pgaudit.role = 'auditor'`, events: [{ class: 'DDL', command: 'ALTER DATABASE' }] });
  await setup.close();

  // No CREATE EXTENSION pgaudit in this database: without its event triggers, DDL records
  // carry no object type or name.
  const s = await Session.open(cluster, app, clusterLogRows, out, OBJECT_DB);
  await s.run({ sql: 'CREATE TABLE secrets (id int, v text)', events: [{ class: 'DDL', command: 'CREATE TABLE' }] });
  await s.run({ sql: 'GRANT SELECT ON secrets TO auditor', events: [{ class: 'ROLE', command: 'GRANT' }] });
  await s.run({
    sql: `INSERT INTO secrets VALUES (1, 'top, "secret"'), (2, 'other')`,
    events: [{ class: 'WRITE', command: 'INSERT', objectType: 'TABLE', objectName: 'public.secrets', rows: 2 }],
  });
  await s.run({
    sql: 'SELECT v FROM secrets WHERE id = $1',
    params: [1],
    events: [
      { auditType: 'OBJECT', class: 'READ', command: 'SELECT', objectType: 'TABLE', objectName: 'public.secrets', rows: 1 },
      { class: 'READ', command: 'SELECT', objectType: 'TABLE', objectName: 'public.secrets', rows: 1 },
    ],
  });
  await s.close();
}

async function statementOnce(s: Session): Promise<void> {
  await s.set('pgaudit.log_statement_once', 'on');
  await s.run({
    sql: `SELECT a.owner, s.note, w.${COL_WEIRD}
  FROM accounts a
  JOIN ${TABLE_CITIES} s ON s.name = a.city
  LEFT JOIN ${TABLE_WEIRD} w ON w.id = a.id
 WHERE a.balance >= $1 AND a.owner <> $2`,
    params: ['0', 'nobody, "really"'],
    events: [
      { class: 'READ', command: 'SELECT', objectType: 'TABLE', objectName: 'public.accounts', rows: 2 },
      { class: 'READ', command: 'SELECT', objectType: 'TABLE', objectName: TABLE_CITIES_NAME, rows: 2 },
      { class: 'READ', command: 'SELECT', objectType: 'TABLE', objectName: TABLE_WEIRD_NAME, rows: 2 },
    ],
  });
  await s.set('pgaudit.log_rows', 'on');
  await s.run({
    sql: 'INSERT INTO accounts_copy SELECT * FROM accounts WHERE city = $1',
    params: ['Bern'],
    events: [
      { class: 'WRITE', command: 'INSERT', objectType: 'TABLE', objectName: 'public.accounts_copy', rows: 1 },
      { class: 'READ', command: 'SELECT', objectType: 'TABLE', objectName: 'public.accounts', rows: 1 },
    ],
  });
  await s.set('pgaudit.log_rows', null);
  // Within a DO block the marker applies per substatement.
  await s.run({
    sql: 'DO $$ BEGIN DELETE FROM accounts_copy WHERE id IN (SELECT id FROM accounts); END $$',
    events: [
      { class: 'FUNCTION', command: 'DO' },
      {
        class: 'WRITE',
        command: 'DELETE',
        objectType: 'TABLE',
        objectName: 'public.accounts_copy',
        substatementId: 2,
        statement: 'DELETE FROM accounts_copy WHERE id IN (SELECT id FROM accounts)',
        rows: 3,
      },
      { class: 'READ', command: 'SELECT', objectType: 'TABLE', objectName: 'public.accounts', substatementId: 2, rows: 3 },
    ],
  });
  await s.set('pgaudit.log_statement_once', null);
}

async function sqlPrepare(s: Session): Promise<void> {
  const prepare = 'PREPARE by_city(text) AS SELECT owner FROM accounts WHERE city = $1';
  await s.run({ sql: prepare, events: [{ class: 'READ', command: 'PREPARE' }] });
  // EXECUTE: the inner query is logged with the PREPARE text and the EXECUTE arguments.
  await s.run({
    sql: "EXECUTE by_city('Zürich')",
    events: [
      { class: 'READ', command: 'SELECT', objectType: 'TABLE', objectName: 'public.accounts', statement: prepare, parameter: 'Zürich', rows: 1 },
      { class: 'MISC', command: 'EXECUTE', substatementId: 2 },
    ],
  });
  await s.run({ sql: 'DEALLOCATE by_city', events: [{ class: 'MISC', command: 'DEALLOCATE' }] });
}

async function misc(s: Session): Promise<void> {
  // pgaudit 1.7 logs the whole query string for each statement of a multi-statement query.
  const multi = "SELECT 1 AS a; SELECT 'x, y' AS b";
  await s.run({
    sql: multi,
    events: [
      { class: 'READ', command: 'SELECT', rows: 1 },
      { class: 'READ', command: 'SELECT', rows: 1, nextStatement: true },
    ],
  });
  await s.run({ sql: 'BEGIN', events: [{ class: 'MISC', command: 'BEGIN' }] });
  await s.run({
    sql: 'INSERT INTO scratch VALUES (1)',
    events: [{ class: 'WRITE', command: 'INSERT', objectType: 'TABLE', objectName: 'public.scratch', rows: 1 }],
  });
  await s.run({ sql: 'ROLLBACK', events: [{ class: 'MISC', command: 'ROLLBACK' }] });
  // A failing statement is logged before it fails, except with log_rows (logged at executor end).
  await s.run({ sql: 'BEGIN', events: [{ class: 'MISC', command: 'BEGIN' }] });
  await s.run({
    sql: "INSERT INTO accounts (id, owner) VALUES (1, 'duplicate')",
    fails: true,
    events: s.rowsOn ? [] : [{ class: 'WRITE', command: 'INSERT', objectType: 'TABLE', objectName: 'public.accounts' }],
  });
  // Nothing is audited in an aborted transaction, not even the ROLLBACK.
  await s.run({ sql: 'SELECT 1 AS ignored', fails: true, events: [] });
  await s.run({ sql: 'ROLLBACK', events: [] });
  await s.run({ sql: 'ANALYZE accounts', events: [{ class: 'MISC', command: 'ANALYZE' }] });
  await s.run({ sql: 'CHECKPOINT', events: [{ class: 'MISC', command: 'CHECKPOINT' }] });
  await s.run({ sql: 'SHOW pgaudit.log_relation', events: [{ class: 'MISC', command: 'SHOW' }] });
}

async function big(s: Session, bytes: number): Promise<void> {
  const chunk = 'abc, "d"\n🦆 ';
  const literal = chunk.repeat(Math.max(1, Math.ceil(bytes / Buffer.byteLength(chunk))));
  await s.run({ sql: `SELECT length('${literal}') AS big`, events: [{ class: 'READ', command: 'SELECT', rows: 1 }] });
}

/**
 * Runs the workload on a fresh cluster (it creates tables, roles and a database, so run it
 * once per cluster) and returns the audit records pgaudit writes for it, per scenario
 * application name, in log order:
 *
 * wl-ddl, wl-dml, wl-params (rotation in the middle of the session), wl-plpgsql, wl-role,
 * wl-rows, wl-object-session, wl-object-db (two sessions: postgres, then auditship_objects),
 * wl-once, wl-sql-prepare, wl-misc, wl-big.
 *
 * Afterwards the log files are flushed and, unless disabled, the oldest csvlog file is
 * replaced by `<name>.csv.gz`.
 */
export async function runWorkload(cluster: PgCluster, opts: WorkloadOptions = {}): Promise<ExpectedEvent[]> {
  const largeStatementBytes = opts.largeStatementBytes ?? 10 * 1024 * 1024;
  const clusterLogRows = (await clusterSetting(cluster, 'pgaudit.log_rows')) === 'on';
  const out: ExpectedEvent[] = [];
  const scenario = async (app: string, body: (s: Session) => Promise<void>): Promise<void> => {
    const s = await Session.open(cluster, app, clusterLogRows, out);
    try {
      await body(s);
    } finally {
      await s.close();
    }
  };

  await scenario('wl-ddl', ddl);
  await scenario('wl-dml', dml);
  if (largeStatementBytes > 0) await scenario('wl-big', (s) => big(s, largeStatementBytes));
  await scenario('wl-params', (s) => params(s, cluster, opts.rotate ?? true));
  await scenario('wl-plpgsql', plpgsql);
  await scenario('wl-role', roles);
  await scenario('wl-rows', rows);
  await scenario('wl-object-session', objectSession);
  await objectDatabase(cluster, clusterLogRows, out);
  await scenario('wl-once', statementOnce);
  await scenario('wl-sql-prepare', sqlPrepare);
  await scenario('wl-misc', misc);

  await cluster.flushLogs();
  if (opts.gzipRotated ?? true) gzipOldestCsvlog(cluster);
  return out;
}

/** Replaces the oldest, no longer current csvlog file by `<file>.gz`; returns its new path. */
export function gzipOldestCsvlog(cluster: PgCluster): string {
  const current = new Set(Object.values(cluster.currentLogFiles()));
  const candidate = cluster.logFiles().find((f) => f.endsWith('.csv') && !current.has(f));
  if (candidate === undefined) throw new Error('no rotated csvlog file to gzip (did the workload rotate?)');
  const gz = `${candidate}.gz`;
  writeFileSync(gz, gzipSync(readFileSync(candidate)), { mode: 0o644 });
  unlinkSync(candidate);
  return gz;
}

/** One server-clock sample for log_time checks. */
export interface TimezoneSample {
  /** Exact statement text, unique in the log (a SELECT with a `tz marker N` comment). */
  statement: string;
  /** Server `clock_timestamp()` during the statement, epoch milliseconds. */
  serverEpochMs: number;
}

/**
 * Runs a few marked statements (application_name `tz-sample`) and returns, for each, the
 * server's clock_timestamp() captured in the same statement. A test finds the record by its
 * statement and compares its parsed log_time (within a second or two).
 */
export async function timezoneSample(cluster: PgCluster, count = 3): Promise<TimezoneSample[]> {
  const client = await cluster.client();
  const samples: TimezoneSample[] = [];
  try {
    await client.query("SET application_name = 'tz-sample'");
    for (let i = 1; i <= count; i++) {
      const statement = `SELECT (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS server_ms /* tz marker ${i} */`;
      const r = await client.query<{ server_ms: number }>(statement);
      samples.push({ statement, serverEpochMs: Math.round(r.rows[0]!.server_ms) });
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  } finally {
    await client.end();
  }
  await cluster.flushLogs();
  return samples;
}
