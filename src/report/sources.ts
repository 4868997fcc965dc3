import { AppEventQueries, RowChangeQueries, type QueryRunner } from '../query/index.js';
import { ACTOR, OPERATION } from '../query/app-events.js';

/**
 * The report's sections of the other sources: row changes from trigger audit tables (by table and action, the
 * users who made them, per day) and application events (by source and operation, actors, per day). A section
 * is null when the store has no such table; `--server` narrows row changes (application events have no server).
 */
export interface SourceSections {
  row_changes: {
    total: number;
    by_table_action: { table: string; action: string; n: number }[];
    top_users: { user_name: string | null; n: number }[];
    per_day: { day: string; action: string; n: number }[];
  } | null;
  app_events: {
    total: number;
    by_source_operation: { source: string; operation: string; n: number }[];
    top_actors: { actor: string | null; n: number }[];
    per_day: { day: string; operation: string; n: number }[];
  } | null;
}

/** Rows of each listing at most (tables × actions, users, actors). */
const LIMIT = 1000;

const n = (v: unknown) => (v === null || v === undefined ? 0 : Number(v));
const s = (v: unknown) => (v === null || v === undefined ? null : String(v));

export async function buildSourceSections(db: QueryRunner, opts: { since: number; until: number; server?: string[] }): Promise<SourceSections> {
  const params: (string | number)[] = [Math.round(opts.since * 1000), Math.round(opts.until * 1000)];
  const between = (col: string) => `${col} >= make_timestamp($1::BIGINT)::TIMESTAMPTZ AND ${col} < make_timestamp($2::BIGINT)::TIMESTAMPTZ`;
  const out: SourceSections = { row_changes: null, app_events: null };

  if (await new RowChangeQueries(db).present()) {
    const p = [...params];
    const servers = opts.server?.length ? ` AND server IN (${opts.server.map((v) => (p.push(v), `$${p.length}`)).join(', ')})` : '';
    const where = `WHERE ${between('action_tstamp_clk')}${servers}`;
    const [t] = await db.all(`SELECT count(*)::DOUBLE AS n FROM row_changes ${where}`, p);
    const byTable = await db.all(
      `SELECT coalesce(schema_name || '.', '') || coalesce(table_name, '?') AS t, coalesce(action, '?') AS a, count(*)::DOUBLE AS n
      FROM row_changes ${where} GROUP BY ALL ORDER BY t, n DESC, a LIMIT ${LIMIT}`,
      p,
    );
    const users = await db.all(
      `SELECT session_user_name AS u, count(*)::DOUBLE AS n FROM row_changes ${where} GROUP BY 1 ORDER BY n DESC, u NULLS LAST LIMIT ${LIMIT}`,
      p,
    );
    const perDay = await db.all(
      `SELECT strftime(date_trunc('day', action_tstamp_clk), '%Y-%m-%d') AS d, coalesce(action, '?') AS a, count(*)::DOUBLE AS n
      FROM row_changes ${where} GROUP BY ALL ORDER BY d, a`,
      p,
    );
    out.row_changes = {
      total: n(t?.['n']),
      by_table_action: byTable.map((r) => ({ table: String(r['t']), action: String(r['a']), n: n(r['n']) })),
      top_users: users.map((r) => ({ user_name: s(r['u']), n: n(r['n']) })),
      per_day: perDay.map((r) => ({ day: String(r['d']), action: String(r['a']), n: n(r['n']) })),
    };
  }

  if (await new AppEventQueries(db).present()) {
    const where = `WHERE ${between('event_time')}`;
    const [t] = await db.all(`SELECT count(*)::DOUBLE AS n FROM app_events ${where}`, params);
    const bySource = await db.all(
      `SELECT source_name AS src, coalesce(${OPERATION}, '?') AS o, count(*)::DOUBLE AS n
      FROM app_events ${where} GROUP BY ALL ORDER BY src, n DESC, o LIMIT ${LIMIT}`,
      params,
    );
    const actors = await db.all(
      `SELECT ${ACTOR} AS a, count(*)::DOUBLE AS n FROM app_events ${where} GROUP BY 1 ORDER BY n DESC, a NULLS LAST LIMIT ${LIMIT}`,
      params,
    );
    const perDay = await db.all(
      `SELECT strftime(date_trunc('day', event_time), '%Y-%m-%d') AS d, coalesce(${OPERATION}, '?') AS o, count(*)::DOUBLE AS n
      FROM app_events ${where} GROUP BY ALL ORDER BY d, o`,
      params,
    );
    out.app_events = {
      total: n(t?.['n']),
      by_source_operation: bySource.map((r) => ({ source: String(r['src']), operation: String(r['o']), n: n(r['n']) })),
      top_actors: actors.map((r) => ({ actor: s(r['a']), n: n(r['n']) })),
      per_day: perDay.map((r) => ({ day: String(r['d']), operation: String(r['o']), n: n(r['n']) })),
    };
  }
  return out;
}
