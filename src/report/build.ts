import type { QueryRunner } from '../query/index.js';
import { buildSourceSections, type SourceSections } from './sources.js';

/**
 * The audit report of a time range, as data: what `auditship report` renders as JSON, Markdown or HTML.
 * Every section comes from one query of the DuckDB store; statements are given in full where the report
 * promises them (DDL, role and privilege changes, failed statements).
 */
export interface ReportData {
  generated_at: string;
  since: string;
  until: string;
  servers: string[];
  totals: { events: number; users: number; sessions: number; failed_statements: number; logon_failures: number };
  /** Events by class and command. */
  by_class_command: { class: string; command: string; n: number }[];
  /** Events per day and class (the chart). */
  per_day: { day: string; class: string; n: number }[];
  /** Every DDL and ROLE event (CREATE/ALTER/DROP, GRANT/REVOKE, CREATE/ALTER ROLE ...) in full. */
  changes: ReportEvent[];
  /** Tables (and other relations) read and written, per user. */
  access: { user_name: string | null; object_name: string; object_type: string | null; reads: number; writes: number; first: string; last: string }[];
  logon_failures: {
    log_time: string;
    server: string;
    user_name: string | null;
    database_name: string | null;
    client_addr: string | null;
    sqlstate: string | null;
    reason: string;
  }[];
  /** Audited statements that ended in an error, in full. */
  failed_statements: ReportEvent[];
  /** Errors of statements pgaudit did not log (syntax errors, unknown relations), by SQLSTATE. */
  unaudited_errors: { sqlstate: string | null; n: number }[];
  /** Sections cut at ROW_LIMIT rows say how many rows they had. */
  truncated: { section: string; total: number }[];
  /** Row changes of trigger audit tables (sources.ts); null when the store has none. */
  row_changes: SourceSections['row_changes'];
  /** Application events (outbox, django-auditlog); null when the store has none. */
  app_events: SourceSections['app_events'];
}

export interface ReportEvent {
  log_time: string;
  server: string;
  user_name: string | null;
  database_name: string | null;
  client_addr: string | null;
  application_name: string | null;
  class: string | null;
  command: string | null;
  object_type: string | null;
  object_name: string | null;
  statement: string | null;
  parameter: string | null;
  outcome: 'success' | 'error';
  sqlstate: string | null;
  error_message: string | null;
  session_id: string;
  session_line_num: number;
}

/** At most this many rows per listing section (the rest is counted in `truncated`). */
export const ROW_LIMIT = 10_000;

const ISO = (col: string) => `strftime(${col}, '%Y-%m-%dT%H:%M:%S.%gZ')`;
const n = (v: unknown) => (v === null || v === undefined ? 0 : Number(v));
const s = (v: unknown) => (v === null || v === undefined ? null : String(v));

const EVENT_COLUMNS = `${ISO('log_time')} AS log_time, server, user_name, database_name, client_addr, application_name, class, command,
  object_type, object_name, statement, parameter, CASE WHEN sqlstate IS NULL THEN 'success' ELSE 'error' END AS outcome, sqlstate,
  error_message, session_id, session_line_num::DOUBLE AS session_line_num`;

function toEvent(r: Record<string, unknown>): ReportEvent {
  return {
    log_time: String(r['log_time']),
    server: String(r['server']),
    user_name: s(r['user_name']),
    database_name: s(r['database_name']),
    client_addr: s(r['client_addr']),
    application_name: s(r['application_name']),
    class: s(r['class']),
    command: s(r['command']),
    object_type: s(r['object_type']),
    object_name: s(r['object_name']),
    statement: s(r['statement']),
    parameter: s(r['parameter']),
    outcome: r['outcome'] === 'error' ? 'error' : 'success',
    sqlstate: s(r['sqlstate']),
    error_message: s(r['error_message']),
    session_id: String(r['session_id']),
    session_line_num: n(r['session_line_num']),
  };
}

export interface ReportOptions {
  since: number;
  until: number;
  server?: string[];
  now?: () => Date;
}

export async function buildReport(db: QueryRunner, opts: ReportOptions): Promise<ReportData> {
  const params: (string | number)[] = [Math.round(opts.since * 1000), Math.round(opts.until * 1000)];
  let serverCond = '';
  if (opts.server?.length) {
    serverCond = ` AND server IN (${opts.server
      .map((v) => {
        params.push(v);
        return `$${params.length}`;
      })
      .join(', ')})`;
  }
  const range = `log_time >= make_timestamp($1::BIGINT)::TIMESTAMPTZ AND log_time < make_timestamp($2::BIGINT)::TIMESTAMPTZ${serverCond}`;
  const truncated: ReportData['truncated'] = [];
  const listing = async (section: string, sql: string): Promise<Record<string, unknown>[]> => {
    const rows = await db.all(`${sql} LIMIT ${ROW_LIMIT + 1}`, params);
    if (rows.length > ROW_LIMIT) {
      const [c] = await db.all(`SELECT count(*)::DOUBLE AS n FROM (${sql})`, params);
      truncated.push({ section, total: n(c?.['n']) });
      return rows.slice(0, ROW_LIMIT);
    }
    return rows;
  };

  const [totals] = await db.all(
    `SELECT count(*)::DOUBLE AS events, count(DISTINCT user_name)::DOUBLE AS users,
      count(DISTINCT (server, session_id))::DOUBLE AS sessions, count(*) FILTER (WHERE sqlstate IS NOT NULL)::DOUBLE AS failed
    FROM audit_events WHERE ${range}`,
    params,
  );
  const [failures] = await db.all(`SELECT count(*)::DOUBLE AS n FROM logon_failures WHERE ${range}`, params);
  const servers = (await db.all(`SELECT DISTINCT server FROM audit_events WHERE ${range} ORDER BY 1`, params)).map((r) => String(r['server']));
  const byClass = await db.all(
    `SELECT coalesce(class, '?') AS class, coalesce(command, '?') AS command, count(*)::DOUBLE AS n
    FROM audit_events WHERE ${range} GROUP BY ALL ORDER BY class, n DESC, command`,
    params,
  );
  const perDay = await db.all(
    `SELECT strftime(date_trunc('day', log_time), '%Y-%m-%d') AS day, coalesce(class, '?') AS class, count(*)::DOUBLE AS n
    FROM audit_events WHERE ${range} GROUP BY ALL ORDER BY day, class`,
    params,
  );
  const changes = await listing(
    'changes',
    `SELECT ${EVENT_COLUMNS} FROM audit_events WHERE ${range} AND class IN ('DDL', 'ROLE')
    ORDER BY log_time, server, session_id, session_line_num`,
  );
  const access = await listing(
    'access',
    `SELECT user_name, object_name, any_value(object_type) AS object_type,
      count(*) FILTER (WHERE class = 'READ')::DOUBLE AS reads, count(*) FILTER (WHERE class = 'WRITE')::DOUBLE AS writes,
      ${ISO('min(log_time)')} AS first, ${ISO('max(log_time)')} AS last
    FROM audit_events WHERE ${range} AND class IN ('READ', 'WRITE') AND object_name IS NOT NULL
    GROUP BY user_name, object_name ORDER BY user_name NULLS LAST, reads + writes DESC, object_name`,
  );
  const logons = await listing(
    'logon_failures',
    `SELECT ${ISO('log_time')} AS log_time, server, user_name, database_name, client_addr, sqlstate, reason
    FROM logon_failures WHERE ${range} ORDER BY log_time, server, session_id`,
  );
  const failed = await listing(
    'failed_statements',
    `SELECT ${EVENT_COLUMNS} FROM audit_events WHERE ${range} AND sqlstate IS NOT NULL
    ORDER BY log_time, server, session_id, session_line_num`,
  );
  const unaudited = await db.all(
    `SELECT sqlstate, count(*)::DOUBLE AS n FROM statement_errors WHERE ${range} AND statement_id IS NULL
    GROUP BY 1 ORDER BY n DESC, sqlstate`,
    params,
  );

  return {
    generated_at: (opts.now?.() ?? new Date()).toISOString(),
    since: new Date(opts.since).toISOString(),
    until: new Date(opts.until).toISOString(),
    servers,
    totals: {
      events: n(totals?.['events']),
      users: n(totals?.['users']),
      sessions: n(totals?.['sessions']),
      failed_statements: n(totals?.['failed']),
      logon_failures: n(failures?.['n']),
    },
    by_class_command: byClass.map((r) => ({ class: String(r['class']), command: String(r['command']), n: n(r['n']) })),
    per_day: perDay.map((r) => ({ day: String(r['day']), class: String(r['class']), n: n(r['n']) })),
    changes: changes.map(toEvent),
    access: access.map((r) => ({
      user_name: s(r['user_name']),
      object_name: String(r['object_name']),
      object_type: s(r['object_type']),
      reads: n(r['reads']),
      writes: n(r['writes']),
      first: String(r['first']),
      last: String(r['last']),
    })),
    logon_failures: logons.map((r) => ({
      log_time: String(r['log_time']),
      server: String(r['server']),
      user_name: s(r['user_name']),
      database_name: s(r['database_name']),
      client_addr: s(r['client_addr']),
      sqlstate: s(r['sqlstate']),
      reason: String(r['reason'] ?? ''),
    })),
    failed_statements: failed.map(toEvent),
    unaudited_errors: unaudited.map((r) => ({ sqlstate: s(r['sqlstate']), n: n(r['n']) })),
    truncated,
    ...(await buildSourceSections(db, opts)),
  };
}
