/**
 * What a rule says, as SQL over the rows a commit stores: per source, the relation of the transaction's new rows
 * with the columns rules may test, group by and show (its identity, event time and a sample); a filter parsed in
 * the UI's URL terms (pgaudit through query/filter.ts parseFilter itself, so a rule and the page mean the same
 * thing by `class=DDL&object=salary`); and each filter as one SQL condition with its values as literals.
 *
 * The conditions are built from parsed values only (lists, substrings), every value quoted by sqlString: a
 * rule cannot inject SQL. Text matches as the UI's search does: RE2 with the text as a literal, case-insensitive.
 */
import { parseFilter } from '../query/filter.js';
import { likePattern, regexLiteral } from '../query/queries.js';
import type { EventFilter } from '../query/types.js';
import { sqlString } from '../duckdb/sql.js';

export const ALERT_SOURCES = ['pgaudit', 'logon_failures', 'row_changes', 'app_events'] as const;
export type AlertSource = (typeof ALERT_SOURCES)[number];

/**
 * DuckDB numbers the rows a transaction appends from this id up until it commits (its transaction-local storage,
 * `MAX_ROW_ID`): `rowid >= TX_LOCAL_ROWID` is exactly "the rows this transaction stored". The store checks that
 * it still does when rules are attached (evaluate.ts), and a test checks it on every build.
 */
export const TX_LOCAL_ROWID = '36028797018960000';

/** Filter keys per source (the UI's URL terms; pgaudit's are parseFilter's). */
export const FILTER_KEYS: Record<AlertSource, string[]> = {
  pgaudit: ['server', 'user', 'database', 'application', 'client', 'class', 'command', 'object', 'outcome', 'text', 'q'],
  row_changes: ['server', 'table', 'action', 'user', 'application', 'client', 'text'],
  app_events: ['source', 'table', 'actor', 'operation', 'text'],
  logon_failures: ['server', 'user', 'database', 'client', 'text'],
};

/** `by` keys per source. */
export const GROUP_KEYS: Record<AlertSource, string[]> = {
  pgaudit: ['server', 'user', 'database', 'application', 'client', 'class', 'command', 'object'],
  row_changes: ['server', 'table', 'action', 'user', 'application', 'client'],
  app_events: ['source', 'table', 'actor', 'operation'],
  logon_failures: ['server', 'user', 'database', 'client'],
};

/** A parsed filter: lists are OR within a key, keys are AND; text and object are substrings. */
export interface RuleFilter {
  pgaudit?: EventFilter;
  lists: Record<string, string[]>;
  text?: string;
}

const ACTIONS: Record<string, string> = { I: 'INSERT', U: 'UPDATE', D: 'DELETE', T: 'TRUNCATE' };

/** Parses a rule's filter (URL terms) for its source; a problem as a string. */
export function parseRuleFilter(source: AlertSource, text: string): RuleFilter | string {
  const params = new URLSearchParams(text.trim());
  for (const key of new Set(params.keys()))
    if (!FILTER_KEYS[source].includes(key)) return `unknown key "${key.slice(0, 40)}" for ${source} events; allowed: ${FILTER_KEYS[source].join(', ')}`;
  if (source === 'pgaudit') {
    const only = new URLSearchParams();
    for (const [k, v] of params) only.append(k === 'text' ? 'q' : k, v);
    try {
      return { pgaudit: parseFilter(only), lists: {} };
    } catch (err) {
      return (err as Error).message;
    }
  }
  const f: RuleFilter = { lists: {} };
  for (const key of new Set(params.keys())) {
    if (key === 'text') {
      const t = params.getAll('text').join(',').trim();
      if (t.length > 1000) return 'text: longer than 1000 characters';
      if (t) f.text = t;
      continue;
    }
    const values = [
      ...new Set(
        params
          .getAll(key)
          .flatMap((v) => v.split(','))
          .map((v) => v.trim())
          .filter(Boolean),
      ),
    ];
    if (key === 'action') {
      const mapped = values.map((v) => ACTIONS[v.toUpperCase()] ?? v.toUpperCase());
      const bad = mapped.find((v) => !['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE'].includes(v));
      if (bad) return `action: "${bad.slice(0, 20)}" is not INSERT, UPDATE, DELETE or TRUNCATE`;
      f.lists[key] = mapped;
    } else if (values.length) f.lists[key] = values;
  }
  return f;
}

/**
 * A source as SQL, in two parts so that a commit's rows are read once and narrowly:
 *  - `matching`: the transaction's new rows with the columns filters test (`rid` is the row's rowid, `t` its event
 *    time), read once per commit; `keyColumns` of them are carried on for the matching rows only, and `keyed` adds
 *    what `by` keys need (pgaudit: the rows' contexts and kinds) — `column` maps a key to its expression there;
 *  - `rows(where)`: every column of the new rows that pass `where` (a condition on `rid`): their identity, server and
 *    a sample (one event as a flat JSON object of stored, already redacted values, the statement cut short), read
 *    only for the few rows an alert shows.
 * Keeping the commit's statements out of joins and aggregates matters: joining contexts to every new row first
 * held them in a hash table, out of memory at 250,000 events under the default 96 MB.
 */
export interface SourceSql {
  matching: string;
  keyColumns: string[];
  keyed?: (h: string) => string;
  column: Record<string, string>;
  rows: (where: string) => string;
}

const ISO = (col: string) => `strftime(${col}, '%Y-%m-%dT%H:%M:%S.%gZ')`;
const SAMPLE_TEXT = 300;
const EPOCH = `TIMESTAMPTZ '1970-01-01 00:00:00+00'`;
const APP_ACTOR = `coalesce(json_extract_string(message, '$.audit_event.actor.user_id'),
    CASE WHEN json_type(message, '$.audit_event.actor') = 'VARCHAR' THEN json_extract_string(message, '$.audit_event.actor') END,
    json_extract_string(message, '$.actor.user_id'),
    CASE WHEN json_type(message, '$.actor') IN ('VARCHAR', 'BIGINT', 'UBIGINT') THEN json_extract_string(message, '$.actor') END)`;
const APP_OPERATION = `coalesce(json_extract_string(message, '$.audit_event.operation'), json_extract_string(message, '$.operation'),
    json_extract_string(message, '$.action'))`;

/** What rows(where) returns: rid, ident, srv, sample. */
const ROW_OUT = (ident: string, server: string, sample: string) => `rid, ${ident} AS ident, ${server} AS srv, ${sample} AS sample`;

export const SOURCES: Record<AlertSource, SourceSql> = {
  pgaudit: {
    // Filters test event_rows alone: a context's or kind's values as sets of their ids, as the UI's queries do.
    matching: `SELECT rowid AS rid, log_time AS t, context_id, kind_id, object_name, statement, sqlstate FROM event_rows WHERE rowid >= ${TX_LOCAL_ROWID}`,
    keyColumns: ['context_id', 'kind_id', 'object_name'],
    keyed: (h) => `SELECT h.*, c.server, c.user_name, c.database_name, c.client_addr, c.application_name, k.class, k.command
      FROM (${h}) AS h JOIN event_contexts AS c ON c.context_id = h.context_id JOIN event_kinds AS k ON k.kind_id = h.kind_id`,
    column: {
      server: 'server',
      user: 'user_name',
      database: 'database_name',
      application: 'application_name',
      client: 'client_addr',
      class: 'class',
      command: 'command',
      object: 'object_name',
    },
    rows: (where) => `SELECT ${ROW_OUT(
      `server || '/' || session_id || '/' || session_line_num`,
      'server',
      `json_object('time', ${ISO('t')}, 'server', server, 'user', user_name, 'database', database_name, 'client', client_addr,
        'class', class, 'command', command, 'object', object_name, 'outcome', CASE WHEN sqlstate IS NULL THEN 'success' ELSE 'error' END,
        'statement', left(statement, ${SAMPLE_TEXT}))`,
    )} FROM (
      SELECT e.rid, e.log_time AS t, c.server, c.session_id, e.session_line_num, c.user_name, c.database_name, c.client_addr,
             k.class, k.command, e.object_name, e.statement, e.sqlstate
      FROM (SELECT rowid AS rid, * FROM event_rows WHERE rowid >= ${TX_LOCAL_ROWID} AND ${where}) AS e
      JOIN event_contexts AS c ON c.context_id = e.context_id JOIN event_kinds AS k ON k.kind_id = e.kind_id)`,
  },
  logon_failures: {
    matching: `SELECT rowid AS rid, log_time AS t, server, user_name, database_name, client_addr, reason, detail FROM logon_failures WHERE rowid >= ${TX_LOCAL_ROWID}`,
    keyColumns: ['server', 'user_name', 'database_name', 'client_addr'],
    column: { server: 'server', user: 'user_name', database: 'database_name', client: 'client_addr' },
    rows: (where) =>
      `SELECT ${ROW_OUT(
        `server || '/' || session_id || '/' || session_line_num`,
        'server',
        `json_object('time', ${ISO('log_time')}, 'server', server, 'user', user_name, 'database', database_name, 'client', client_addr,
        'sqlstate', sqlstate, 'reason', left(reason, ${SAMPLE_TEXT}))`,
      )} FROM (SELECT rowid AS rid, * FROM logon_failures WHERE rowid >= ${TX_LOCAL_ROWID} AND ${where})`,
  },
  row_changes: {
    matching: `SELECT rowid AS rid, coalesce(action_tstamp_clk, action_tstamp_stm, action_tstamp_tx, ${EPOCH}) AS t, server, schema_name, table_name,
        action, session_user_name, application_name, client_addr, row_data, changed_fields, client_query
      FROM row_changes WHERE rowid >= ${TX_LOCAL_ROWID}`,
    keyColumns: ['server', 'schema_name', 'table_name', 'action', 'session_user_name', 'application_name', 'client_addr'],
    column: {
      server: 'server',
      table: `coalesce(schema_name || '.', '') || table_name`,
      action: 'action',
      user: 'session_user_name',
      application: 'application_name',
      client: 'client_addr',
    },
    rows: (where) =>
      `SELECT ${ROW_OUT(
        `server || '/' || source_table || '/' || event_id`,
        'server',
        `json_object('time', ${ISO(`coalesce(action_tstamp_clk, action_tstamp_stm, action_tstamp_tx, ${EPOCH})`)}, 'server', server,
        'table', coalesce(schema_name || '.', '') || table_name, 'action', action, 'user', session_user_name, 'client', client_addr, 'event_id', event_id)`,
      )} FROM (SELECT rowid AS rid, * FROM row_changes WHERE rowid >= ${TX_LOCAL_ROWID} AND ${where})`,
  },
  app_events: {
    // actor and operation: structured-log-transfer's audit_event (actor an object with user_id, or the text
    // django_auditlog's mapping writes), else top-level keys of the same names.
    matching: `SELECT rowid AS rid, coalesce(event_time, ${EPOCH}) AS t, source_name, source_table, message, ${APP_ACTOR} AS actor,
        ${APP_OPERATION} AS operation FROM app_events WHERE rowid >= ${TX_LOCAL_ROWID}`,
    keyColumns: ['source_name', 'source_table', 'actor', 'operation'],
    column: { source: 'source_name', table: 'source_table', actor: 'actor', operation: 'operation' },
    rows: (where) =>
      `SELECT ${ROW_OUT(
        `source_name || '/' || source_table || '/' || row_id || '/' || fingerprint`,
        'source_name',
        `json_object('time', ${ISO(`coalesce(event_time, ${EPOCH})`)}, 'source', source_name, 'table', source_table, 'row_id', row_id,
        'actor', ${APP_ACTOR}, 'operation', ${APP_OPERATION})`,
      )} FROM (SELECT rowid AS rid, * FROM app_events WHERE rowid >= ${TX_LOCAL_ROWID} AND ${where})`,
  },
};

const list = (values: string[]) => values.map(sqlString).join(', ');

/** The SQL condition of a filter over its source's relation ('true' for none). */
export function conditionSql(source: AlertSource, f: RuleFilter): string {
  const parts: string[] = [];
  if (source === 'pgaudit') {
    const p = f.pgaudit ?? {};
    const dimension = (table: string, id: string, pairs: [string, string[] | undefined][]) => {
      const conds = pairs.filter(([, v]) => v?.length).map(([col, v]) => `${col} IN (${list(v!)})`);
      if (conds.length) parts.push(`${id} IN (SELECT ${id} FROM ${table} WHERE ${conds.join(' AND ')})`);
    };
    dimension('event_contexts', 'context_id', [
      ['server', p.server],
      ['user_name', p.user],
      ['database_name', p.database],
      ['application_name', p.application],
      ['client_addr', p.client],
    ]);
    dimension('event_kinds', 'kind_id', [
      ['class', p.class],
      ['command', p.command],
    ]);
    if (p.object) parts.push(`object_name ILIKE ${sqlString(likePattern(p.object))} ESCAPE '\\'`);
    if (p.outcome === 'error') parts.push('sqlstate IS NOT NULL');
    if (p.outcome === 'success') parts.push('sqlstate IS NULL');
    if (p.text) parts.push(`regexp_matches(statement, ${sqlString(regexLiteral(p.text))}, 'i')`);
  } else {
    for (const [key, values] of Object.entries(f.lists)) {
      const col = SOURCES[source].column[key]!;
      if (source === 'row_changes' && key === 'table') {
        // TABLE or SCHEMA.TABLE, case-insensitive (PostgreSQL folds unquoted names).
        const lower = values.map((v) => v.toLowerCase());
        parts.push(`(lower(table_name) IN (${list(lower)}) OR lower(${col}) IN (${list(lower)}))`);
      } else if (key === 'operation') parts.push(`upper(${col}) IN (${list(values.map((v) => v.toUpperCase()))})`);
      else parts.push(`${col} IN (${list(values)})`);
    }
    if (f.text) {
      const haystack =
        source === 'row_changes'
          ? `concat_ws(chr(10), row_data, changed_fields, client_query)`
          : source === 'app_events'
            ? 'message::VARCHAR'
            : `concat_ws(chr(10), reason, detail)`;
      parts.push(`regexp_matches(${haystack}, ${sqlString(regexLiteral(f.text))}, 'i')`);
    }
  }
  return parts.length ? parts.map((p) => `(${p})`).join(' AND ') : 'true';
}

/** The SQL of a rule's key: `user=alice, client=10.0.0.1` ('' without `by`). */
export function groupKeySql(source: AlertSource, by: string[]): string {
  if (!by.length) return `''`;
  const col = SOURCES[source].column;
  return `concat_ws(', ', ${by.map((b) => `${sqlString(b + '=')} || coalesce(${col[b]}::VARCHAR, '-')`).join(', ')})`;
}
