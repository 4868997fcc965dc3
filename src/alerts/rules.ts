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
 * A source as SQL: `relation` selects the transaction's new rows with the columns below; `column` maps a filter
 * or `by` key to its expression over that relation; `identity` names one event; `sample` is one event as a flat
 * JSON object (already redacted values, the statement cut short) for the alert's text.
 */
export interface SourceSql {
  /** The table rows are appended to (its rowid tells the transaction's own). */
  table: string;
  relation: string;
  column: Record<string, string>;
  time: string;
  identity: string;
  server: string;
  sample: string;
}

const ISO = (col: string) => `strftime(${col}, '%Y-%m-%dT%H:%M:%S.%gZ')`;
const SAMPLE_TEXT = 300;

export const SOURCES: Record<AlertSource, SourceSql> = {
  pgaudit: {
    table: 'event_rows',
    // Contexts and kinds are joined for the new rows only; the store's ids are hashes of their values.
    relation: `SELECT e.log_time AS t, c.server, c.session_id, e.session_line_num, c.user_name, c.database_name, c.client_addr, c.application_name,
        k.class, k.command, k.object_type, e.object_name, e.statement, e.sqlstate
      FROM event_rows AS e JOIN event_contexts AS c ON c.context_id = e.context_id JOIN event_kinds AS k ON k.kind_id = e.kind_id
      WHERE e.rowid >= ${TX_LOCAL_ROWID}`,
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
    time: 't',
    identity: `server || '/' || session_id || '/' || session_line_num`,
    server: 'server',
    sample: `json_object('time', ${ISO('t')}, 'server', server, 'user', user_name, 'database', database_name, 'client', client_addr,
        'class', class, 'command', command, 'object', object_name, 'outcome', CASE WHEN sqlstate IS NULL THEN 'success' ELSE 'error' END,
        'statement', left(statement, ${SAMPLE_TEXT}))`,
  },
  logon_failures: {
    table: 'logon_failures',
    relation: `SELECT log_time AS t, server, session_id, session_line_num, user_name, database_name, client_addr, sqlstate, reason, detail
      FROM logon_failures WHERE rowid >= ${TX_LOCAL_ROWID}`,
    column: { server: 'server', user: 'user_name', database: 'database_name', client: 'client_addr' },
    time: 't',
    identity: `server || '/' || session_id || '/' || session_line_num`,
    server: 'server',
    sample: `json_object('time', ${ISO('t')}, 'server', server, 'user', user_name, 'database', database_name, 'client', client_addr,
        'sqlstate', sqlstate, 'reason', left(reason, ${SAMPLE_TEXT}))`,
  },
  row_changes: {
    table: 'row_changes',
    relation: `SELECT coalesce(action_tstamp_clk, action_tstamp_stm, action_tstamp_tx, TIMESTAMPTZ '1970-01-01 00:00:00+00') AS t, server, source_table,
        event_id, schema_name, table_name, action, session_user_name, application_name, client_addr, row_data, changed_fields, client_query
      FROM row_changes WHERE rowid >= ${TX_LOCAL_ROWID}`,
    column: {
      server: 'server',
      table: `coalesce(schema_name || '.', '') || table_name`,
      action: 'action',
      user: 'session_user_name',
      application: 'application_name',
      client: 'client_addr',
    },
    time: 't',
    identity: `server || '/' || source_table || '/' || event_id`,
    server: 'server',
    sample: `json_object('time', ${ISO('t')}, 'server', server, 'table', coalesce(schema_name || '.', '') || table_name, 'action', action,
        'user', session_user_name, 'client', client_addr, 'event_id', event_id)`,
  },
  app_events: {
    table: 'app_events',
    // actor and operation: structured-log-transfer's audit_event (actor an object with user_id, or the text django_auditlog's
    // mapping writes), else top-level keys of the same names.
    relation: `SELECT coalesce(event_time, TIMESTAMPTZ '1970-01-01 00:00:00+00') AS t, source_name, source_table, row_id, fingerprint, message,
        coalesce(json_extract_string(message, '$.audit_event.actor.user_id'),
                 CASE WHEN json_type(message, '$.audit_event.actor') = 'VARCHAR' THEN json_extract_string(message, '$.audit_event.actor') END,
                 json_extract_string(message, '$.actor.user_id'),
                 CASE WHEN json_type(message, '$.actor') IN ('VARCHAR', 'BIGINT', 'UBIGINT') THEN json_extract_string(message, '$.actor') END) AS actor,
        coalesce(json_extract_string(message, '$.audit_event.operation'), json_extract_string(message, '$.operation'),
                 json_extract_string(message, '$.action')) AS operation
      FROM app_events WHERE rowid >= ${TX_LOCAL_ROWID}`,
    column: { source: 'source_name', table: 'source_table', actor: 'actor', operation: 'operation' },
    time: 't',
    identity: `source_name || '/' || source_table || '/' || row_id || '/' || fingerprint`,
    server: 'source_name',
    sample: `json_object('time', ${ISO('t')}, 'source', source_name, 'table', source_table, 'row_id', row_id, 'actor', actor, 'operation', operation)`,
  },
};

const list = (values: string[]) => values.map(sqlString).join(', ');

/** The SQL condition of a filter over its source's relation ('true' for none). */
export function conditionSql(source: AlertSource, f: RuleFilter): string {
  const s = SOURCES[source];
  const parts: string[] = [];
  if (source === 'pgaudit') {
    const p = f.pgaudit ?? {};
    for (const [key, values] of [
      ['server', p.server],
      ['user', p.user],
      ['database', p.database],
      ['application', p.application],
      ['client', p.client],
      ['class', p.class],
      ['command', p.command],
    ] as const) {
      if (values?.length) parts.push(`${s.column[key]} IN (${list(values)})`);
    }
    if (p.object) parts.push(`object_name ILIKE ${sqlString(likePattern(p.object))} ESCAPE '\\'`);
    if (p.outcome === 'error') parts.push('sqlstate IS NOT NULL');
    if (p.outcome === 'success') parts.push('sqlstate IS NULL');
    if (p.text) parts.push(`regexp_matches(statement, ${sqlString(regexLiteral(p.text))}, 'i')`);
  } else {
    for (const [key, values] of Object.entries(f.lists)) {
      const col = s.column[key]!;
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
