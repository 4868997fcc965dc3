/**
 * Installs auditship's trigger-based audit schema on PostgreSQL 13+: one audit table `<schema>.logged_actions`
 * (read by the pg-audit-table source through an xid8 horizon cursor on (txid, event_id)), one trigger function
 * `<schema>.if_modified()`, and two triggers on each audited table (`auditship_row`, `auditship_truncate`).
 *
 * Everything runs in ONE transaction and is idempotent: a second install changes nothing but the triggers,
 * which are replaced so that changed exclusions or query logging take effect. The trigger function sends
 * `NOTIFY auditship, '<schema>.logged_actions'` as a wake-up only: the payload never carries row data, so no
 * row is too large to be written (a NOTIFY payload must stay under 8000 bytes, or the audited transaction
 * fails).
 *
 * Table names are given as 'name' or 'schema.name', raw ('public.Order Items', 'weird"name') or as SQL
 * identifiers ('public."Order Items"', '"weird""name"'); see tableNameCandidates.
 *
 * Kept as one file (about 600 lines): most of it is the SQL that `auditship pg install` creates (table,
 * trigger function, upgrades), which is reviewed as one script.
 */
import pg from 'pg';
import { ConnectorError } from '../../core/errors.js';

export const NOTIFY_CHANNEL = 'auditship';

export interface InstallOptions {
  /** Schema of the audit table and the trigger function (created when missing). Default 'auditship'. */
  schema: string;
  /** Tables to audit: 'name' (found through search_path) or 'schema.name', raw or quoted. */
  tables: string[];
  /** Table (named as in `tables`) → columns left out of row_data and changed_fields. */
  excludeColumns?: Record<string, string[]>;
  /** Record current_query() (the client's top-level statement text) in client_query. */
  logQuery?: boolean;
}

export const DEFAULT_SCHEMA = 'auditship';
export const AUDIT_TABLE = 'logged_actions';
export const TRIGGER_FUNCTION = 'if_modified';
export const ROW_TRIGGER = 'auditship_row';
export const TRUNCATE_TRIGGER = 'auditship_truncate';
/** BEFORE INSERT trigger upgradeAuditTable puts on a foreign audit table so that writers that insert an explicit NULL still get a txid. */
export const FILL_TXID_TRIGGER = 'auditship_fill_txid';

const q = (ident: string) => pg.escapeIdentifier(checkIdent(ident));
const lit = (text: string) => pg.escapeLiteral(text);

function checkIdent(ident: string): string {
  if (ident.length === 0) throw new ConnectorError('pg', 'invalid_name', 'an empty name is not a valid PostgreSQL identifier');
  if (ident.includes('\0')) throw new ConnectorError('pg', 'invalid_name', 'a PostgreSQL identifier cannot contain a NUL character');
  return ident;
}

/** The audit table's columns and their types as format_type() prints them; the reader depends on these names. */
const AUDIT_COLUMNS: [string, string][] = [
  ['event_id', 'bigint'],
  ['txid', 'xid8'],
  ['schema_name', 'text'],
  ['table_name', 'text'],
  ['relid', 'oid'],
  ['action', 'text'],
  ['row_data', 'jsonb'],
  ['changed_fields', 'jsonb'],
  ['statement_only', 'boolean'],
  ['session_user_name', 'text'],
  ['application_name', 'text'],
  ['client_addr', 'inet'],
  ['client_port', 'integer'],
  ['action_tstamp_tx', 'timestamp with time zone'],
  ['action_tstamp_stm', 'timestamp with time zone'],
  ['action_tstamp_clk', 'timestamp with time zone'],
  ['client_query', 'text'],
];

/** The audit table's DDL (schema and table quoted by the caller). */
export function auditTableDdl(qualified: string): string {
  return `CREATE TABLE IF NOT EXISTS ${qualified} (
  event_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  txid xid8 NOT NULL DEFAULT pg_current_xact_id(),
  schema_name text NOT NULL,
  table_name text NOT NULL,
  relid oid NOT NULL,
  action text NOT NULL CHECK (action IN ('I','U','D','T')),
  row_data jsonb,
  changed_fields jsonb,
  statement_only boolean NOT NULL,
  session_user_name text,
  application_name text,
  client_addr inet,
  client_port integer,
  action_tstamp_tx timestamptz NOT NULL,
  action_tstamp_stm timestamptz NOT NULL,
  action_tstamp_clk timestamptz NOT NULL,
  client_query text
)`;
}

/** Picks a dollar-quote tag that does not occur in `body`. */
function dollarQuote(body: string): string {
  for (let i = 0; ; i++) {
    const tag = `$auditship_fn${i || ''}$`;
    if (!body.includes(tag)) return `${tag}${body}${tag}`;
  }
}

/**
 * The trigger function. Trigger arguments: TG_ARGV[0] the excluded columns as a text[] literal ('{}',
 * '{updated_at,"last seen"}'), TG_ARGV[1] 'true' or 'false' (record current_query() in client_query).
 * `payload` is the NOTIFY payload: the audit table's name as format('%I.%I') prints it.
 */
export function triggerFunctionDdl(schema: string, payload: string): string {
  const table = `${q(schema)}.${q(AUDIT_TABLE)}`;
  const fn = `${q(schema)}.${q(TRIGGER_FUNCTION)}`;
  const body = `
DECLARE
  v_excluded text[] := '{}';
  v_log_query boolean := false;
  v_row jsonb;
  v_new jsonb;
  v_changed jsonb;
BEGIN
  IF TG_WHEN <> 'AFTER' THEN
    RAISE EXCEPTION 'auditship: % may only run as an AFTER trigger', ${lit(fn)};
  END IF;
  IF TG_NARGS > 0 AND TG_ARGV[0] IS NOT NULL AND TG_ARGV[0] <> '' THEN
    v_excluded := TG_ARGV[0]::text[];
  END IF;
  IF TG_NARGS > 1 THEN
    v_log_query := coalesce(TG_ARGV[1]::boolean, false);
  END IF;

  IF TG_LEVEL = 'ROW' AND TG_OP = 'INSERT' THEN
    v_row := to_jsonb(NEW) - v_excluded;
  ELSIF TG_LEVEL = 'ROW' AND TG_OP = 'DELETE' THEN
    v_row := to_jsonb(OLD) - v_excluded;
  ELSIF TG_LEVEL = 'ROW' AND TG_OP = 'UPDATE' THEN
    v_row := to_jsonb(OLD) - v_excluded;
    v_new := to_jsonb(NEW) - v_excluded;
    -- Compared as text: jsonb equality calls 1.0 and 1.00 equal, but the stored value did change.
    SELECT jsonb_object_agg(n.key, n.value) INTO v_changed
      FROM jsonb_each(v_new) AS n(key, value)
     WHERE (v_row -> n.key)::text IS DISTINCT FROM n.value::text;
    IF v_changed IS NULL THEN
      RETURN NULL;  -- nothing but excluded columns changed
    END IF;
  ELSIF TG_LEVEL = 'STATEMENT' AND TG_OP = 'TRUNCATE' THEN
    NULL;
  ELSE
    RAISE EXCEPTION 'auditship: % does not handle % % triggers', ${lit(fn)}, TG_LEVEL, TG_OP;
  END IF;

  INSERT INTO ${table} (
    schema_name, table_name, relid, action, row_data, changed_fields, statement_only,
    session_user_name, application_name, client_addr, client_port,
    action_tstamp_tx, action_tstamp_stm, action_tstamp_clk, client_query)
  VALUES (
    TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_RELID, substr(TG_OP, 1, 1), v_row, v_changed, TG_LEVEL = 'STATEMENT',
    session_user, current_setting('application_name', true), inet_client_addr(), inet_client_port(),
    transaction_timestamp(), statement_timestamp(), clock_timestamp(),
    CASE WHEN v_log_query THEN current_query() END);
  -- A wake-up only: the payload is the audit table's name, never row data (payloads must stay under 8000 bytes).
  PERFORM pg_notify(${lit(NOTIFY_CHANNEL)}, ${lit(payload)});
  RETURN NULL;
END;
`;
  return `CREATE OR REPLACE FUNCTION ${fn}() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS ${dollarQuote(body)}`;
}

/** A text[] literal of `items` ('{}', '{a,"b c","d\"e"}'), every element quoted. */
export function textArrayLiteral(items: string[]): string {
  return `{${items.map((s) => `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`).join(',')}}`;
}

// ---------------------------------------------------------------------------------------------------------
// Table names

export interface NameCandidate {
  schema: string | null;
  name: string;
}

/**
 * Splits `spec` as a possibly qualified SQL name: parts separated by dots, each either a double-quoted
 * identifier ("" escapes a quote) or a run of characters without quotes and dots (kept as written).
 * Returns null when `spec` is not of that shape (e.g. a raw name containing a quote).
 */
function splitQualified(spec: string): { text: string; quoted: boolean }[] | null {
  const parts: { text: string; quoted: boolean }[] = [];
  let i = 0;
  for (;;) {
    if (spec[i] === '"') {
      let text = '';
      i++;
      for (;;) {
        if (i >= spec.length) return null;
        if (spec[i] === '"') {
          if (spec[i + 1] === '"') {
            text += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        text += spec[i++];
      }
      parts.push({ text, quoted: true });
    } else {
      let j = i;
      while (j < spec.length && spec[j] !== '.' && spec[j] !== '"') j++;
      if (j === i) return null;
      parts.push({ text: spec.slice(i, j), quoted: false });
      i = j;
    }
    if (i === spec.length) break;
    if (spec[i] !== '.') return null;
    i++;
  }
  return parts.length <= 2 ? parts : null;
}

/**
 * The ways `spec` can name a table, most likely first: as a SQL name (quoted parts literal, unquoted parts as
 * written, then folded to lower case as PostgreSQL would), then raw — split at a dot into schema and name,
 * then the whole string as one name. The first that exists is the table.
 */
export function tableNameCandidates(spec: string): NameCandidate[] {
  const out: NameCandidate[] = [];
  const add = (schema: string | null, name: string) => {
    if (name && schema !== '' && !out.some((c) => c.schema === schema && c.name === name)) out.push({ schema, name });
  };
  const parts = splitQualified(spec);
  if (parts) {
    const asWritten = parts.map((p) => p.text);
    const folded = parts.map((p) => (p.quoted ? p.text : p.text.toLowerCase()));
    for (const ps of [asWritten, folded]) {
      if (ps.length === 2) add(ps[0]!, ps[1]!);
      else add(null, ps[0]!);
    }
  }
  for (let i = spec.indexOf('.'); i > 0; i = spec.indexOf('.', i + 1)) add(spec.slice(0, i), spec.slice(i + 1));
  add(null, spec);
  return out;
}

export interface ResolvedTable {
  oid: number;
  schema: string;
  name: string;
  /** schema.name as format('%I.%I') prints it. */
  display: string;
  /** schema.name, always quoted (for SQL built here). */
  sql: string;
  relkind: string;
}

const RELKINDS: Record<string, string> = {
  v: 'a view',
  m: 'a materialized view',
  f: 'a foreign table',
  S: 'a sequence',
  i: 'an index',
  I: 'an index',
  c: 'a composite type',
  t: 'a TOAST table',
};

async function lookup(client: pg.ClientBase, c: NameCandidate): Promise<ResolvedTable | null> {
  const sql = `SELECT c.oid::int8 AS oid, n.nspname AS schema, c.relname AS name, c.relkind AS relkind,
                      format('%I.%I', n.nspname, c.relname) AS display
                 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                WHERE ${c.schema === null ? 'c.oid = pg_catalog.to_regclass(pg_catalog.quote_ident($1))' : 'n.nspname = $2 AND c.relname = $1'}`;
  const r = await client.query<{ oid: string; schema: string; name: string; relkind: string; display: string }>(
    sql,
    c.schema === null ? [c.name] : [c.name, c.schema],
  );
  const row = r.rows[0];
  if (!row) return null;
  return { oid: Number(row.oid), schema: row.schema, name: row.name, relkind: row.relkind, display: row.display, sql: `${q(row.schema)}.${q(row.name)}` };
}

/** Finds the table `spec` names (see tableNameCandidates); a ConnectorError 'table_not_found' when none exists. */
export async function resolveTable(client: pg.ClientBase, spec: string, opts: { tablesOnly?: boolean } = {}): Promise<ResolvedTable> {
  if (spec.includes('\0')) throw new ConnectorError('pg', 'invalid_name', 'a table name cannot contain a NUL character');
  const candidates = tableNameCandidates(spec);
  if (spec.trim() !== spec) for (const c of tableNameCandidates(spec.trim())) candidates.push(c);
  for (const c of candidates) {
    const t = await lookup(client, c);
    if (!t) continue;
    if (opts.tablesOnly !== false && t.relkind !== 'r' && t.relkind !== 'p') {
      throw new ConnectorError(
        'pg',
        'not_a_table',
        `${t.display} is ${RELKINDS[t.relkind] ?? `not a table (relkind ${t.relkind})`}; only tables can be audited`,
      );
    }
    return t;
  }
  throw new ConnectorError(
    'pg',
    'table_not_found',
    `table ${JSON.stringify(spec)} does not exist (42P01); name it as schema.table when it is not on the search_path`,
  );
}

async function columnsOf(client: pg.ClientBase, oid: number): Promise<Map<string, string>> {
  const r = await client.query<{ attname: string; type: string }>(
    `SELECT attname, pg_catalog.format_type(atttypid, atttypmod) AS type FROM pg_catalog.pg_attribute
      WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
    [oid],
  );
  return new Map(r.rows.map((row) => [row.attname, row.type]));
}

/** Matches a column as written, then unquoted ("Col") or folded to lower case. */
function findColumn(columns: Map<string, string>, spec: string): string | null {
  if (columns.has(spec)) return spec;
  const m = /^"((?:[^"]|"")+)"$/.exec(spec);
  if (m) {
    const u = m[1]!.replace(/""/g, '"');
    return columns.has(u) ? u : null;
  }
  const lower = spec.toLowerCase();
  return columns.has(lower) ? lower : null;
}

// ---------------------------------------------------------------------------------------------------------
// Transactions and checks

async function inTransaction<T>(client: pg.ClientBase, fn: () => Promise<T>): Promise<T> {
  await client.query('BEGIN');
  try {
    const result = await fn();
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  }
}

async function serverVersion(client: pg.ClientBase): Promise<number> {
  const r = await client.query<{ v: string }>(`SELECT current_setting('server_version_num') AS v`);
  const v = Number(r.rows[0]?.v);
  if (!(v >= 130000)) {
    throw new ConnectorError(
      'pg',
      'unsupported_version',
      `PostgreSQL ${Math.floor(v / 10000)} is too old: auditship's audit table needs PostgreSQL 13 or later (xid8, pg_current_xact_id())`,
    );
  }
  return v;
}

/** Serialises concurrent installs and uninstalls (CREATE ... IF NOT EXISTS races otherwise). */
async function lockInstaller(client: pg.ClientBase): Promise<void> {
  await client.query(`SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('auditship install'))`);
}

async function regclassOid(client: pg.ClientBase, qualifiedSql: string): Promise<number | null> {
  const r = await client.query<{ oid: string | null }>('SELECT pg_catalog.to_regclass($1)::oid::int8 AS oid', [qualifiedSql]);
  const oid = r.rows[0]?.oid;
  return oid == null ? null : Number(oid);
}

/** Problems that keep `oid` from being auditship's audit table (empty when it is one). */
async function auditTableProblems(client: pg.ClientBase, oid: number): Promise<string[]> {
  const cols = await columnsOf(client, oid);
  const problems: string[] = [];
  for (const [name, type] of AUDIT_COLUMNS) {
    const has = cols.get(name);
    if (has === undefined) problems.push(`no column ${name}`);
    else if (has !== type) problems.push(`column ${name} is ${has}, not ${type}`);
  }
  return problems;
}

async function ensureTxidIndex(client: pg.ClientBase, oid: number, tableSql: string): Promise<boolean> {
  const r = await client.query(
    `SELECT 1 FROM pg_catalog.pg_index i
      WHERE i.indrelid = $1 AND i.indpred IS NULL AND i.indexprs IS NULL AND i.indnkeyatts = 2
        AND (SELECT array_agg(a.attname::text ORDER BY k.ord) FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
               JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
              WHERE k.ord <= 2) = ARRAY['txid', 'event_id']`,
    [oid],
  );
  if (r.rowCount) return false;
  await client.query(`CREATE INDEX ON ${tableSql} (txid, event_id)`);
  return true;
}

// ---------------------------------------------------------------------------------------------------------
// install / uninstall / upgrade

export async function installAudit(client: pg.ClientBase, opts: InstallOptions): Promise<{ auditTable: string; tables: string[] }> {
  const schema = opts.schema || DEFAULT_SCHEMA;
  checkIdent(schema);
  if (opts.tables.length === 0) throw new ConnectorError('pg', 'no_tables', 'name at least one table to audit');
  const auditSql = `${q(schema)}.${q(AUDIT_TABLE)}`;
  const fnSql = `${q(schema)}.${q(TRIGGER_FUNCTION)}`;
  return inTransaction(client, async () => {
    const version = await serverVersion(client);
    await lockInstaller(client);

    // Resolve everything before creating anything, so that a typo fails fast (the transaction would undo it anyway).
    const tables: ResolvedTable[] = [];
    for (const spec of opts.tables) {
      const t = await resolveTable(client, spec);
      if (!tables.some((u) => u.oid === t.oid)) tables.push(t);
    }
    const excluded = new Map<number, string[]>();
    for (const [spec, cols] of Object.entries(opts.excludeColumns ?? {})) {
      const t = await resolveTable(client, spec);
      if (!tables.some((u) => u.oid === t.oid)) {
        throw new ConnectorError('pg', 'exclude_unknown_table', `columns are excluded for ${t.display}, which is not among the tables to audit`);
      }
      const columns = await columnsOf(client, t.oid);
      const list = excluded.get(t.oid) ?? [];
      for (const c of cols) {
        const col = findColumn(columns, c);
        if (col === null)
          throw new ConnectorError('pg', 'column_not_found', `column ${JSON.stringify(c)} of ${t.display} does not exist (42703); it cannot be excluded`);
        if (!list.includes(col)) list.push(col);
      }
      excluded.set(t.oid, list);
    }

    await client.query(`CREATE SCHEMA IF NOT EXISTS ${q(schema)}`);
    await client.query(auditTableDdl(auditSql));
    const auditOid = await regclassOid(client, auditSql);
    if (auditOid === null) throw new ConnectorError('pg', 'install_failed', `${auditSql} was not created`);
    const problems = await auditTableProblems(client, auditOid);
    if (problems.length) {
      throw new ConnectorError(
        'pg',
        'foreign_audit_table',
        `${schema}.${AUDIT_TABLE} exists but is not auditship's audit table (${problems.join('; ')}); ` +
          'choose another schema, or upgrade it with `auditship pg install --upgrade TABLE` to read it as it is',
      );
    }
    await ensureTxidIndex(client, auditOid, auditSql);
    await client.query(`REVOKE ALL ON TABLE ${auditSql} FROM PUBLIC`);
    await client.query(
      `COMMENT ON TABLE ${auditSql} IS ${lit(`auditship audit trail, written by ${schema}.${TRIGGER_FUNCTION}(); read in (txid, event_id) order below the snapshot xmin`)}`,
    );
    const display = await client.query<{ d: string }>(`SELECT format('%I.%I', $1::text, $2::text) AS d`, [schema, AUDIT_TABLE]);
    const auditTable = display.rows[0]!.d;
    await client.query(triggerFunctionDdl(schema, auditTable));
    // A SECURITY DEFINER function writes the audit trail: nobody else may attach it to a table of theirs.
    await client.query(`REVOKE ALL ON FUNCTION ${fnSql}() FROM PUBLIC`);

    const audited: string[] = [];
    for (const t of tables) {
      if (t.oid === auditOid)
        throw new ConnectorError('pg', 'audit_table_audited', `${t.display} is the audit table itself; auditing it would log its own writes forever`);
      const args = `${lit(textArrayLiteral(excluded.get(t.oid) ?? []))}, ${lit(opts.logQuery ? 'true' : 'false')}`;
      const create = version >= 140000 ? 'CREATE OR REPLACE TRIGGER' : 'CREATE TRIGGER';
      if (version < 140000) {
        await client.query(`DROP TRIGGER IF EXISTS ${q(ROW_TRIGGER)} ON ${t.sql}`);
        await client.query(`DROP TRIGGER IF EXISTS ${q(TRUNCATE_TRIGGER)} ON ${t.sql}`);
      }
      await client.query(`${create} ${q(ROW_TRIGGER)} AFTER INSERT OR UPDATE OR DELETE ON ${t.sql} FOR EACH ROW EXECUTE FUNCTION ${fnSql}(${args})`);
      await client.query(`${create} ${q(TRUNCATE_TRIGGER)} AFTER TRUNCATE ON ${t.sql} FOR EACH STATEMENT EXECUTE FUNCTION ${fnSql}(${args})`);
      audited.push(t.display);
    }
    return { auditTable, tables: audited };
  });
}

/** Tables whose non-internal triggers call `fnOid`, as (oid, display, sql). */
async function tablesUsing(client: pg.ClientBase, fnOid: number): Promise<ResolvedTable[]> {
  const r = await client.query<{ oid: string; schema: string; name: string; relkind: string; display: string }>(
    `SELECT DISTINCT c.oid::int8 AS oid, n.nspname AS schema, c.relname AS name, c.relkind AS relkind, format('%I.%I', n.nspname, c.relname) AS display
       FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE t.tgfoid = $1 AND NOT t.tgisinternal AND t.tgparentid = 0
      ORDER BY 5`,
    [fnOid],
  );
  return r.rows.map((row) => ({
    oid: Number(row.oid),
    schema: row.schema,
    name: row.name,
    relkind: row.relkind,
    display: row.display,
    sql: `${q(row.schema)}.${q(row.name)}`,
  }));
}

export async function uninstallAudit(
  client: pg.ClientBase,
  opts: { schema: string; tables?: string[]; dropData?: boolean },
): Promise<{ tables: string[]; droppedData: boolean }> {
  const schema = opts.schema || DEFAULT_SCHEMA;
  checkIdent(schema);
  const auditSql = `${q(schema)}.${q(AUDIT_TABLE)}`;
  const fnSql = `${q(schema)}.${q(TRIGGER_FUNCTION)}`;
  return inTransaction(client, async () => {
    await serverVersion(client);
    await lockInstaller(client);
    const fn = await client.query<{ oid: string | null }>('SELECT pg_catalog.to_regprocedure($1)::oid::int8 AS oid', [`${fnSql}()`]);
    const fnOid = fn.rows[0]?.oid == null ? null : Number(fn.rows[0].oid);
    const audited = fnOid === null ? [] : await tablesUsing(client, fnOid);

    let targets: ResolvedTable[];
    if (opts.tables?.length) {
      targets = [];
      for (const spec of opts.tables) {
        const t = await resolveTable(client, spec);
        if (audited.some((a) => a.oid === t.oid) && !targets.some((u) => u.oid === t.oid)) targets.push(t);
      }
    } else {
      targets = audited;
    }
    for (const t of targets) {
      // Only triggers that call this schema's function: a same-named trigger of another install stays.
      const r = await client.query<{ tgname: string }>(
        'SELECT tgname FROM pg_catalog.pg_trigger WHERE tgrelid = $1 AND tgfoid = $2 AND NOT tgisinternal AND tgparentid = 0',
        [t.oid, fnOid],
      );
      for (const { tgname } of r.rows) await client.query(`DROP TRIGGER ${q(tgname)} ON ${t.sql}`);
    }

    let droppedData = false;
    if (opts.dropData) {
      const remaining = audited.filter((a) => !targets.some((t) => t.oid === a.oid));
      if (remaining.length) {
        throw new ConnectorError(
          'pg',
          'still_audited',
          `cannot drop ${schema}.${AUDIT_TABLE}: ${remaining.length} other table(s) still write to it ` +
            `(${remaining
              .slice(0, 5)
              .map((r) => r.display)
              .join(', ')}${remaining.length > 5 ? ', …' : ''}); uninstall them too, or leave out dropping the data`,
        );
      }
      const auditOid = await regclassOid(client, auditSql);
      if (auditOid !== null) {
        const problems = await auditTableProblems(client, auditOid);
        if (problems.length) {
          throw new ConnectorError(
            'pg',
            'foreign_audit_table',
            `${schema}.${AUDIT_TABLE} is not auditship's audit table (${problems.join('; ')}); not dropping it`,
          );
        }
        await client.query(`DROP TABLE ${auditSql}`);
        droppedData = true;
      }
      await client.query(`DROP FUNCTION IF EXISTS ${fnSql}()`);
      // The schema goes only when nothing else is left in it.
      await client.query('SAVEPOINT auditship_drop_schema');
      try {
        await client.query(`DROP SCHEMA IF EXISTS ${q(schema)} RESTRICT`);
        await client.query('RELEASE SAVEPOINT auditship_drop_schema');
      } catch (err) {
        if ((err as { code?: string }).code !== '2BP01') throw err;
        await client.query('ROLLBACK TO SAVEPOINT auditship_drop_schema');
      }
    }
    return { tables: targets.map((t) => t.display), droppedData };
  });
}

/**
 * Makes an existing audit table (e.g. a 91plus audit.logged_actions) readable by the horizon cursor: adds
 * `txid xid8 NOT NULL DEFAULT pg_current_xact_id()` and an index on (txid, event_id), idempotently.
 *
 * Existing rows get the upgrading transaction's id (they become visible to the cursor together, when it
 * commits). Adding the column rewrites the table under an ACCESS EXCLUSIVE lock. Writers that insert a whole
 * row — 91plus does `INSERT INTO audit.logged_actions VALUES (audit_row.*)` with a %ROWTYPE variable, so the
 * new column arrives as an explicit NULL — are covered by a BEFORE INSERT trigger that fills a NULL txid.
 */
export async function upgradeAuditTable(client: pg.ClientBase, table: string): Promise<{ added: boolean }> {
  return inTransaction(client, async () => {
    await serverVersion(client);
    await lockInstaller(client);
    const t = await resolveTable(client, table);
    const cols = await columnsOf(client, t.oid);
    if (!cols.has('event_id')) {
      throw new ConnectorError('pg', 'not_an_audit_table', `${t.display} has no event_id column; auditship reads audit tables in (txid, event_id) order`);
    }
    const txidType = cols.get('txid');
    if (txidType !== undefined && txidType !== 'xid8') {
      throw new ConnectorError('pg', 'txid_column_conflict', `${t.display} already has a column txid of type ${txidType}; auditship needs it to be xid8`);
    }
    const added = txidType === undefined;
    if (added) await client.query(`ALTER TABLE ${t.sql} ADD COLUMN txid xid8 NOT NULL DEFAULT pg_catalog.pg_current_xact_id()`);
    await ensureTxidIndex(client, t.oid, t.sql);
    // A table that already had txid (auditship's own, or upgraded before) needs no fill trigger (again).
    if (!added) return { added };

    const fnSql = `${q(t.schema)}.${q(FILL_TXID_TRIGGER)}`;
    await client.query(`CREATE OR REPLACE FUNCTION ${fnSql}() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $auditship_fn$
BEGIN
  IF NEW.txid IS NULL THEN
    NEW.txid := pg_current_xact_id();
  END IF;
  RETURN NEW;
END;
$auditship_fn$`);
    await client.query(`REVOKE ALL ON FUNCTION ${fnSql}() FROM PUBLIC`);
    await client.query(`DROP TRIGGER IF EXISTS ${q(FILL_TXID_TRIGGER)} ON ${t.sql}`);
    await client.query(`CREATE TRIGGER ${q(FILL_TXID_TRIGGER)} BEFORE INSERT ON ${t.sql} FOR EACH ROW EXECUTE FUNCTION ${fnSql}()`);
    return { added };
  });
}
