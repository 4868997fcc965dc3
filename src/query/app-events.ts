/**
 * The questions the UI and the report ask of `app_events` (outbox and django-auditlog messages,
 * sinks/duckdb/app-events.ts): a page of events, one event in full, counts over time by operation and the
 * most frequent actors and sources. The actor, operation and target are read from the message the way
 * structured-log-transfer writes it (`audit_event.actor`), else from top-level keys of the same name.
 */
import { BUCKETS_MS, ISO, num, QueryInputError, regexLiteral, strOrNull, Where, type QueryRunner } from './queries.js';
import { checkSort, decodeId, encodeId, listTable, pageLimit, timeConditions, type TableListing } from './paging.js';
import type { AppEventDetail, AppEventFilter, AppEventPage, AppEventRow, PageOptions, SortSpec, SourcesSummary, TimeSeries, TopEntry } from './types.js';

const TIME = 'event_time';
const PREVIEW = 240;
const FACET_LIMIT = 500;

const field = (...paths: string[]) => `coalesce(${paths.map((p) => `json_extract_string(message, '${p}')`).join(', ')})`;
export const ACTOR = field('$.audit_event.actor', '$.actor', '$.user');
export const OPERATION = field('$.audit_event.operation', '$.operation', '$.action');
export const TARGET = field('$.audit_event.target', '$.target', '$.object');

/** Columns a listing may be sorted by (besides time), and the top lists group by. */
export const APP_SORTS = {
  source: 'source_name',
  table: 'source_table',
  actor: ACTOR,
  operation: OPERATION,
  target: TARGET,
} as const;

const LISTING: TableListing = {
  table: 'app_events',
  time: TIME,
  identity: [
    { expr: 'source_name', type: 'VARCHAR' },
    { expr: 'source_table', type: 'VARCHAR' },
    { expr: 'row_id', type: 'VARCHAR' },
    { expr: 'fingerprint', type: 'VARCHAR' },
  ],
  sorts: APP_SORTS,
};

const LIST_COLUMNS = `${ISO(TIME)} AS time, source_name, source_table, row_id, fingerprint, ${ACTOR} AS actor, ${OPERATION} AS operation, ${TARGET} AS target`;

/** The filter's conditions on app_events. */
export function appEventConditions(f: AppEventFilter, w: Where, from = f.from, to = f.to): Where {
  timeConditions(w, TIME, from, to);
  w.in('source_name', f.source).in('source_table', f.table).in(ACTOR, f.actor).in(OPERATION, f.operation);
  if (f.text) w.add(`regexp_matches(message::VARCHAR, ${w.p(regexLiteral(f.text))}, 'i')`);
  return w;
}

function toRow(r: Record<string, unknown>): Omit<AppEventRow, 'preview'> {
  return {
    id: encodeId([Number(r['_t']), String(r['source_name']), String(r['source_table']), String(r['row_id']), String(r['fingerprint'])]),
    time: String(r['time']),
    source_name: String(r['source_name']),
    source_table: String(r['source_table']),
    row_id: String(r['row_id']),
    actor: strOrNull(r['actor']),
    operation: strOrNull(r['operation']),
    target: strOrNull(r['target']),
  };
}

/** An application event with its message in full, as export writes it. */
export interface AppEventExportRow extends Omit<AppEventRow, 'preview'> {
  message: string | null;
}

export class AppEventQueries {
  constructor(private readonly db: QueryRunner) {}

  async present(): Promise<boolean> {
    const rows = await this.db.all(`SELECT 1 FROM duckdb_tables() WHERE table_name = 'app_events' AND schema_name = 'main'`);
    return rows.length > 0;
  }

  /** How many events, their time range and the distinct values of the filter controls; null without the table. */
  async summary(): Promise<SourcesSummary['app_events']> {
    if (!(await this.present())) return null;
    const [r] = await this.db.all(`SELECT count(*)::DOUBLE AS n, ${ISO(`min(${TIME})`)} AS lo, ${ISO(`max(${TIME})`)} AS hi FROM app_events`);
    const values = async (expr: string) =>
      (
        await this.db.all(
          `SELECT v FROM (SELECT ${expr} AS v, count(*) AS n FROM app_events WHERE ${expr} IS NOT NULL GROUP BY 1 ORDER BY n DESC, v LIMIT ${FACET_LIMIT}) ORDER BY v`,
        )
      ).map((x) => String(x['v']));
    return {
      rows: num(r?.['n']),
      min_time: strOrNull(r?.['lo']),
      max_time: strOrNull(r?.['hi']),
      sources: await values('source_name'),
      tables: await values('source_table'),
      actors: await values(ACTOR),
      operations: await values(OPERATION),
    };
  }

  async listAppEvents(filter: AppEventFilter, page: PageOptions = {}): Promise<AppEventPage> {
    const sort = checkSort(page.sort, Object.keys(APP_SORTS));
    const preview = `left(coalesce(${field('$.audit_event.message', '$.message')}, message::VARCHAR), ${PREVIEW}) AS preview`;
    const got = await listTable(this.db, LISTING, `${LIST_COLUMNS}, ${preview}`, (w, from, to) => appEventConditions(filter, w, from, to), filter, {
      limit: pageLimit(page.limit),
      after: page.after ?? null,
      sort,
    });
    return { rows: got.rows.map((r) => ({ ...toRow(r), preview: strOrNull(r['preview']) })), next: got.next };
  }

  /** A page of events with their messages in full (export). */
  async exportPage(filter: AppEventFilter, sort: SortSpec, after: string | null, limit: number): Promise<{ rows: AppEventExportRow[]; next: string | null }> {
    const got = await listTable(
      this.db,
      LISTING,
      `${LIST_COLUMNS}, message::VARCHAR AS message`,
      (w, from, to) => appEventConditions(filter, w, from, to),
      filter,
      {
        limit: pageLimit(limit),
        after,
        sort: checkSort(sort, Object.keys(APP_SORTS)),
      },
    );
    return { rows: got.rows.map((r) => ({ ...toRow(r), message: strOrNull(r['message']) })), next: got.next };
  }

  async getAppEvent(id: string): Promise<AppEventDetail | null> {
    const [tUs, source, table, rowId, fp] = decodeId(id, 4);
    const w = new Where();
    w.add(`${TIME} = make_timestamp(${w.p(tUs)}::BIGINT)::TIMESTAMPTZ`)
      .add(`source_name = ${w.p(source!)}`)
      .add(`source_table = ${w.p(table!)}`)
      .add(`row_id = ${w.p(rowId!)}`)
      .add(`fingerprint = ${w.p(fp!)}`);
    const [r] = await this.db.all(
      `SELECT ${LIST_COLUMNS}, epoch_us(${TIME}) AS _t, ${ISO('created_at')} AS created_at, ${ISO('shipped_at')} AS shipped_at, message::VARCHAR AS message
      FROM app_events ${w.sql()} LIMIT 1`,
      w.params,
    );
    if (!r) return null;
    let message: unknown = r['message'];
    try {
      message = JSON.parse(String(r['message']));
    } catch {
      /* shown as text */
    }
    return {
      ...toRow(r),
      created_at: strOrNull(r['created_at']),
      shipped_at: strOrNull(r['shipped_at']),
      fingerprint: String(r['fingerprint']),
      message,
    };
  }

  /** Events per time bucket and operation (the chart's `class` is the operation). */
  async appEventsOverTime(filter: AppEventFilter): Promise<TimeSeries> {
    const [span] = await this.db.all(`SELECT epoch_ms(min(${TIME}))::DOUBLE AS lo, epoch_ms(max(${TIME}))::DOUBLE AS hi FROM app_events`);
    if (!span || span['lo'] === null || span['lo'] === undefined) return { bucket_ms: 3600e3, points: [] };
    const from = Math.max(filter.from ?? -Infinity, num(span['lo']));
    const to = Math.min(filter.to ?? Infinity, num(span['hi']) + 1);
    const bucket = BUCKETS_MS.find((b) => Math.max(1, to - from) / b <= 120) ?? BUCKETS_MS[BUCKETS_MS.length - 1]!;
    const w = appEventConditions(filter, new Where());
    const b = w.p(bucket);
    const rows = await this.db.all(
      `SELECT (epoch_ms(${TIME}) // ${b}::BIGINT * ${b}::BIGINT)::DOUBLE AS t, coalesce(${OPERATION}, '?') AS class, count(*)::DOUBLE AS n
      FROM app_events ${w.sql()} GROUP BY ALL ORDER BY t, class`,
      w.params,
    );
    return { bucket_ms: bucket, points: rows.map((r) => ({ t: num(r['t']), class: String(r['class']), n: num(r['n']) })) };
  }

  async topAppEvents(filter: AppEventFilter, by: keyof typeof APP_SORTS, n = 10): Promise<TopEntry[]> {
    const expr = APP_SORTS[by];
    if (!expr) throw new QueryInputError(`by: "${String(by).slice(0, 40)}" is not one of ${Object.keys(APP_SORTS).join(', ')}`);
    const w = appEventConditions(filter, new Where());
    w.add(`(${expr}) IS NOT NULL`);
    const rows = await this.db.all(
      `SELECT ${expr} AS k, count(*)::DOUBLE AS n FROM app_events ${w.sql()} GROUP BY 1 ORDER BY n DESC, k LIMIT ${Math.max(1, Math.min(100, Math.floor(n)))}`,
      w.params,
    );
    return rows.map((r) => ({ key: String(r['k']), n: num(r['n']) }));
  }
}
