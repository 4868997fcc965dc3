import type pg from 'pg';
import type { ColumnRule } from '../../redact/index.js';
import { ConnectorError } from '../../core/errors.js';
import { ROW_COLUMNS, type CursorMode, type RowColumn } from '../../model/table-rows.js';

export { ROW_COLUMNS, type CursorMode, type RowColumn } from '../../model/table-rows.js';

/**
 * What an audit table looks like, found out from the catalog at start: auditship's own table
 * (`auditship pg install`), a stock audit-trigger 91plus `audit.logged_actions` (hstore row data,
 * `transaction_id` from txid_current()), or a variant (`action_timestamp` instead of the three
 * `action_tstamp_*` columns, json/jsonb/text row data, no transaction column).
 *
 * Cursor modes (REFERENCE.md §4, "Safe cursor"):
 *  - `xid8`: an xid8 column (auditship's `txid`, or one added by `pg install --upgrade`); rows are read in
 *    (txid, event_id) order and only below pg_snapshot_xmin(pg_current_snapshot()): every transaction there
 *    has ended, so no row can ever appear behind the cursor.
 *  - `txid`: the same with a bigint `transaction_id` filled by txid_current() (91plus) and the pre-PG13
 *    functions txid_snapshot_xmin(txid_current_snapshot()).
 *  - `lag_window`: no transaction column. Rows are read by event_id; ids missing below the highest one seen
 *    (a transaction still open, or rolled back) are looked for again until they are `lag_window_ms` old.
 *    A transaction that commits later than that after taking its id is missed: a warning says so at start.
 */

export interface AuditTableLayout {
  /** Schema-qualified, quoted name of the audit table. */
  qualified: string;
  /** Display name (schema.table, unquoted). */
  name: string;
  oid: number;
  mode: CursorMode;
  /** Quoted name of the transaction column (xid8/txid modes). */
  txColumn: string | null;
  /** Cast that turns a decimal text into the transaction column's type ('::text::xid8' or '::bigint'). */
  txCast: string;
  /** SQL for the oldest transaction still running: rows of transactions below it can no longer appear. */
  horizon: string;
  /** SELECT list producing the canonical columns, in ROW_COLUMNS order, all as text. */
  selectList: string;
  /** The expression of each canonical column. */
  columns: Record<RowColumn, string>;
  /** row_data/changed_fields are text columns: each value is checked to be JSON before it is stored. */
  validateJson: boolean;
  /** Constraints guarantee every row a table name and an action in I, U, D, T: no per-batch check. */
  rowsValid: boolean;
}

/** Columns of a row as the source hands them on, in this order. */
export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** Splits `schema.table` (either part may be quoted) into its parts; the schema defaults to null. */
export function splitQualified(name: string): { schema: string | null; table: string } {
  const parts: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < name.length; i++) {
    const ch = name[i]!;
    if (quoted) {
      if (ch === '"' && name[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else cur += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === '.') {
      parts.push(cur);
      cur = '';
    } else cur += ch;
  }
  parts.push(cur);
  if (parts.length === 1) return { schema: null, table: parts[0]! };
  if (parts.length === 2) return { schema: parts[0]!, table: parts[1]! };
  throw new ConnectorError('pg_audit_table', 'bad_table_name', `"${name}" is not a table name (write table or schema.table)`, false);
}

function epochUs(col: string): string {
  return `(extract(epoch from ${col}) * 1000000)::bigint::text`;
}

/** Reads the catalog and works out the layout; one clear error when the table is missing or unusable. */
export async function detectLayout(
  client: pg.ClientBase,
  tableName: string,
  forced?: CursorMode,
  redact: readonly ColumnRule[] = [],
): Promise<AuditTableLayout> {
  const { schema, table } = splitQualified(tableName);
  const rel = await client.query<{ oid: string; nspname: string; relname: string }>(
    `SELECT c.oid::text AS oid, n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relname = $1 AND c.relkind IN ('r', 'p') AND ($2::text IS NULL AND pg_table_is_visible(c.oid) OR n.nspname = $2)`,
    [table, schema],
  );
  const found = rel.rows[0];
  if (!found) {
    throw new ConnectorError(
      'pg_audit_table',
      'table_missing',
      `audit table ${tableName} does not exist (or is not visible to this user); install one with \`auditship pg install\` or fix source.table`,
      true,
    );
  }
  const cols = await client.query<{ attname: string; type: string; notnull: boolean }>(
    `SELECT attname, format_type(atttypid, atttypmod) AS type, attnotnull AS notnull FROM pg_attribute
     WHERE attrelid = $1::oid AND attnum > 0 AND NOT attisdropped`,
    [found.oid],
  );
  const types = new Map(cols.rows.map((r) => [r.attname, r.type]));
  // The table itself guarantees a table name and a known action (auditship's and 91plus's constraints).
  const checks = await client.query<{ def: string }>(`SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE conrelid = $1::oid AND contype = 'c'`, [
    found.oid,
  ]);
  const actionChecked = checks.rows.some(
    (r) => /\baction\b/.test(r.def) && /^CHECK \(\(?action = ANY \(ARRAY\['[IUDT]'::text(, '[IUDT]'::text)*\]\)\)\)?$/.test(r.def),
  );
  const rowsValid = actionChecked && cols.rows.some((r) => r.attname === 'table_name' && r.notnull);
  const has = (c: string) => types.has(c);
  const q = quoteIdent;
  for (const required of ['event_id', 'action']) {
    if (!has(required)) {
      throw new ConnectorError(
        'pg_audit_table',
        'table_unsupported',
        `${found.nspname}.${found.relname} has no ${required} column; it is not an audit table auditship can read (expected auditship's or the audit-trigger 91plus layout)`,
        false,
      );
    }
  }
  let mode: CursorMode;
  let txColumn: string | null = null;
  const xid8Column = [...types].find(([, t]) => t === 'xid8')?.[0];
  if (xid8Column) {
    mode = 'xid8';
    txColumn = q(xid8Column);
  } else if (types.get('transaction_id') === 'bigint') {
    mode = 'txid';
    txColumn = q('transaction_id');
  } else mode = 'lag_window';
  if (forced && forced !== mode) {
    if (forced === 'lag_window') {
      mode = 'lag_window';
      txColumn = null;
    } else {
      throw new ConnectorError(
        'pg_audit_table',
        'cursor_unavailable',
        `cursor: ${forced} needs ${forced === 'xid8' ? 'an xid8 column' : 'a bigint transaction_id column'} in ${found.nspname}.${found.relname}; run \`auditship pg install --upgrade ${found.nspname}.${found.relname}\` to add one`,
        false,
      );
    }
  }
  const json = (c: string) => {
    if (!has(c)) return 'NULL';
    const t = types.get(c)!;
    if (redact.length > 0) return maskedJson(c, t);
    if (t === 'hstore') return `hstore_to_json(${q(c)})::text`;
    return `${q(c)}::text`;
  };
  /**
   * redaction.columns: the audited table's columns masked or left out, in this query — the values never leave
   * PostgreSQL. Only the rows of the tables named are rewritten (as jsonb: their text is jsonb's).
   */
  const maskedJson = (c: string, t: string) => {
    if (!['jsonb', 'json', 'hstore'].includes(t) || !has('table_name') || !has('schema_name'))
      throw new ConnectorError(
        'pg_audit_table',
        'redaction_unsupported',
        `redaction.columns needs ${found.nspname}.${found.relname}.${c} as jsonb, json or hstore, and schema_name and table_name columns (it is ${t})`,
        false,
      );
    const base = t === 'jsonb' ? q(c) : t === 'json' ? `${q(c)}::jsonb` : `hstore_to_jsonb(${q(c)})`;
    const plain = t === 'hstore' ? `hstore_to_json(${q(c)})::text` : `${q(c)}::text`;
    const byTable = new Map<string, ColumnRule[]>();
    for (const r of redact) byTable.set(`${r.schema}.${r.table}`, [...(byTable.get(`${r.schema}.${r.table}`) ?? []), r]);
    const lit = (s: string) => `'${s.replaceAll("'", "''")}'`;
    const cases = [...byTable.values()].map((rules) => {
      let expr = base;
      for (const r of rules) {
        expr =
          r.action === 'drop'
            ? `(${expr}) - ${lit(r.column)}`
            : `CASE WHEN (${expr}) ? ${lit(r.column)} THEN jsonb_set(${expr}, ARRAY[${lit(r.column)}], to_jsonb('<redacted:column>'::text)) ELSE ${expr} END`;
      }
      return `WHEN ${q('schema_name')} = ${lit(rules[0]!.schema)} AND ${q('table_name')} = ${lit(rules[0]!.table)} THEN (${expr})::text`;
    });
    return `CASE ${cases.join(' ')} ELSE ${plain} END`;
  };
  const text = (c: string) => (has(c) ? `${q(c)}::text` : 'NULL');
  const ts = (...names: string[]) => {
    const c = names.find(has);
    return c ? epochUs(q(c)) : 'NULL';
  };
  const select: Record<RowColumn, string> = {
    event_id: `${q('event_id')}::text`,
    txid: txColumn ? `${txColumn}::text` : 'NULL',
    schema_name: text('schema_name'),
    table_name: text('table_name'),
    relid: text('relid'),
    action: text('action'),
    row_data: json('row_data'),
    changed_fields: json('changed_fields'),
    statement_only: has('statement_only') ? `${q('statement_only')}::text` : 'NULL',
    session_user_name: text('session_user_name'),
    application_name: text('application_name'),
    client_addr: has('client_addr') ? `host(${q('client_addr')})` : 'NULL',
    client_port: text('client_port'),
    action_tstamp_tx_us: ts('action_tstamp_tx', 'action_timestamp', 'action_tstamp'),
    action_tstamp_stm_us: ts('action_tstamp_stm', 'action_timestamp', 'action_tstamp'),
    action_tstamp_clk_us: ts('action_tstamp_clk', 'action_timestamp', 'action_tstamp'),
    client_query: text('client_query'),
  };
  if (types.get('client_addr') && types.get('client_addr') !== 'inet') select.client_addr = text('client_addr');
  return {
    qualified: `${q(found.nspname)}.${q(found.relname)}`,
    name: `${found.nspname}.${found.relname}`,
    oid: Number(found.oid),
    mode,
    txColumn,
    txCast: mode === 'xid8' ? '::text::xid8' : '::bigint',
    horizon: mode === 'xid8' ? 'pg_snapshot_xmin(pg_current_snapshot())' : 'txid_snapshot_xmin(txid_current_snapshot())',
    // Aliased so that ORDER BY txid, event_id sorts the table's columns, not these texts.
    selectList: ROW_COLUMNS.map((c, i) => `${select[c]} AS c${i}`).join(', '),
    columns: select,
    validateJson: ['row_data', 'changed_fields'].some((c) => has(c) && !['jsonb', 'json', 'hstore'].includes(types.get(c)!)),
    rowsValid,
  };
}
