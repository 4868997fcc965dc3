/**
 * The event list beyond its default page (AuditQueries.listEvents): pages sorted by a whitelisted column in
 * either direction, pages with the statement in full for export, and the most frequent values of each field
 * over a filter (the list's sidebar). The same star-schema reads as queries.ts: conditions on event_rows, the
 * context and kind joined for the rows read.
 */
import {
  countBy,
  eventConditions,
  eventRowsOf,
  num,
  ROW_COLUMNS,
  STATEMENT_PREVIEW,
  strOrNull,
  toRow,
  Where,
  withDimensions,
  withTextIndex,
  type QueryRunner,
} from './queries.js';
import { checkSort, decodeSortCursor, pageLimit, pageOf, walkWindows } from './paging.js';
import type { EventFilter, EventPage, EventRow, PageOptions, SortSpec, TopEntry, TopValues } from './types.js';

/** Columns the event list may be sorted by (besides time): the name in the API → the column. */
export const EVENT_SORTS = {
  server: 'server',
  user: 'user_name',
  database: 'database_name',
  application: 'application_name',
  client: 'client_addr',
  session: 'session_id',
  audit_type: 'audit_type',
  class: 'class',
  command: 'command',
  object_type: 'object_type',
  object: 'object_name',
  sqlstate: 'sqlstate',
} as const;

/** The sidebar's fields: the filter key a click adds → the column counted. */
export const TOP_VALUE_FIELDS = {
  user: 'user_name',
  database: 'database_name',
  server: 'server',
  application: 'application_name',
  client: 'client_addr',
  class: 'class',
  command: 'command',
  object: 'object_name',
} as const;

/** An event with its statement in full (export). */
export interface EventExportRow extends Omit<EventRow, 'statement_preview'> {
  statement: string | null;
  error_message: string | null;
}

export class EventListQueries {
  constructor(private readonly db: QueryRunner) {}

  /** A page of events in the given order (time, newest first, by default); `full` reads the whole statement. */
  async page(unindexed: EventFilter, page: PageOptions, full = false): Promise<{ rows: Record<string, unknown>[]; next: string | null }> {
    const filter = await withTextIndex(this.db, unindexed);
    const sort = checkSort(page.sort, Object.keys(EVENT_SORTS));
    const limit = pageLimit(page.limit);
    const after = page.after ? decodeSortCursor(page.after, sort, 2) : null;
    const op = sort.dir === 'desc' ? '<' : '>';
    const dir = sort.dir === 'desc' ? 'DESC' : 'ASC';
    const statement = full ? 'statement, error_message' : `left(statement, ${STATEMENT_PREVIEW}) AS statement_preview`;
    let rows: Record<string, unknown>[];
    if (sort.by === 'time') {
      const [r] = await this.db.all(`SELECT epoch_ms(min(log_time))::DOUBLE AS lo, epoch_ms(max(log_time))::DOUBLE AS hi FROM event_rows`);
      if (!r || r['lo'] === null || r['lo'] === undefined) return { rows: [], next: null };
      let lo = Math.max(filter.from ?? -Infinity, Number(r['lo']));
      let hi = Math.min(filter.to ?? Infinity, Number(r['hi']) + 1);
      if (after && sort.dir === 'desc') hi = Math.min(hi, Math.floor(after[3] / 1000) + 1);
      if (after && sort.dir === 'asc') lo = Math.max(lo, Math.floor(after[3] / 1000));
      const order = `ORDER BY log_time ${dir}, context_id ${dir}, session_line_num ${dir}`;
      rows = await walkWindows(lo, hi, sort.dir, limit, async (start, end, wanted) => {
        const from = eventRowsOf(filter, start, end);
        if (from === null) return [];
        const w = eventConditions(filter, new Where(), start, end);
        if (after) {
          w.add(
            `(epoch_us(log_time), context_id, session_line_num) ${op} (${w.p(after[3])}::BIGINT, ${w.p(Number(after[4]))}::BIGINT, ${w.p(Number(after[5]))}::BIGINT)`,
          );
        }
        return this.db.all(
          `SELECT ${ROW_COLUMNS}, context_id, ${statement} FROM ${withDimensions(`SELECT * FROM ${from} ${w.sql()} ${order} LIMIT ${wanted}`)} ${order}`,
          w.params,
        );
      });
    } else {
      const key = `coalesce(${EVENT_SORTS[sort.by as keyof typeof EVENT_SORTS]}, '')`;
      const w = eventConditions(filter, new Where());
      const outer: string[] = [];
      if (after) {
        outer.push(
          `(${key}, epoch_us(log_time), context_id, session_line_num) ${op} (${w.p(after[2] ?? '')}::VARCHAR, ${w.p(after[3])}::BIGINT, ${w.p(Number(after[4]))}::BIGINT, ${w.p(Number(after[5]))}::BIGINT)`,
        );
      }
      rows = await this.db.all(
        `SELECT ${ROW_COLUMNS}, context_id, ${statement}, ${key} AS _s FROM ${withDimensions(`SELECT * FROM ${eventRowsOf(filter) ?? 'event_rows'} ${w.sql()}`)}
        ${outer.length ? `WHERE ${outer.join(' AND ')}` : ''}
        ORDER BY ${key} ${dir}, log_time ${dir}, context_id ${dir}, session_line_num ${dir} LIMIT ${limit + 1}`,
        w.params,
      );
    }
    return pageOf(rows, limit, (last) => [
      sort.by,
      sort.dir,
      sort.by === 'time' ? null : String(last['_s'] ?? ''),
      Number(last['t_us']),
      Number(last['context_id']),
      Number(last['session_line_num']),
    ]);
  }

  /** A page of the event list in any order, as listEvents answers. */
  async listSorted(filter: EventFilter, page: PageOptions): Promise<EventPage> {
    const got = await this.page(filter, page);
    return { rows: got.rows.map((r) => ({ ...toRow(r), statement_preview: strOrNull(r['statement_preview']) })), next: got.next };
  }

  /** A page with the statements in full (export). */
  async exportPage(filter: EventFilter, sort: SortSpec, after: string | null, limit: number): Promise<{ rows: EventExportRow[]; next: string | null }> {
    const got = await this.page(filter, { sort, after, limit }, true);
    return {
      rows: got.rows.map((r) => ({ ...toRow(r), statement: strOrNull(r['statement']), error_message: strOrNull(r['error_message']) })),
      next: got.next,
    };
  }

  /** The `n` most frequent values of each sidebar field over the filter's events. */
  async topValues(unindexed: EventFilter, n = 8): Promise<TopValues> {
    const limit = Math.max(1, Math.min(50, Math.floor(n)));
    const filter = await withTextIndex(this.db, unindexed);
    const rowsOf = eventRowsOf(filter) ?? 'event_rows';
    const w = eventConditions(filter, new Where());
    const facet = (name: string, table: string, id: string, col: string) =>
      `SELECT '${name}' AS f, d.${col} AS k, sum(p.n)::DOUBLE AS n FROM p JOIN ${table} AS d USING (${id}) WHERE d.${col} IS NOT NULL GROUP BY 2`;
    const parts = Object.entries(TOP_VALUE_FIELDS)
      .filter(([, col]) => col !== 'object_name')
      .map(([name, col]) =>
        ['class', 'command'].includes(col) ? facet(name, 'event_kinds', 'kind_id', col) : facet(name, 'event_contexts', 'context_id', col),
      );
    const rows = await this.db.all(
      `WITH p AS MATERIALIZED (SELECT context_id, kind_id, count(*) AS n FROM ${rowsOf} ${w.sql()} GROUP BY ALL)
      SELECT f, k, n FROM (${parts.join(' UNION ALL ')}) QUALIFY row_number() OVER (PARTITION BY f ORDER BY n DESC, k) <= ${limit} ORDER BY f, n DESC, k`,
      w.params,
    );
    const out: TopValues = Object.fromEntries(Object.keys(TOP_VALUE_FIELDS).map((k) => [k, [] as TopEntry[]]));
    for (const r of rows) out[String(r['f'])]!.push({ key: String(r['k']), n: num(r['n']) });
    const objects = await this.db.all(`${countBy('object_name', w.sql(), '', rowsOf)} ORDER BY n DESC, k LIMIT ${limit}`, w.params);
    out['object'] = objects.map((r) => ({ key: String(r['k']), n: num(r['n']) }));
    return out;
  }
}
