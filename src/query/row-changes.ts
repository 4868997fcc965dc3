/**
 * The questions the UI and the report ask of `row_changes` (trigger audit tables, sinks/duckdb/row-changes.ts):
 * a page of changes, one change with the diff of its fields, counts over time by action and the most frequent
 * users and tables. Fixed SQL with bound parameters, as in queries.ts; the time of a change is its
 * `action_tstamp_clk` (NOT NULL in the audit table auditship installs; the clock time of the 91plus tables).
 */
import { BUCKETS_MS, ISO, num, numOrNull, QueryInputError, regexLiteral, strOrNull, Where, type QueryRunner } from './queries.js';
import { checkSort, decodeId, encodeId, listTable, pageLimit, timeConditions, type TableListing } from './paging.js';
import type { ChangeDetail, ChangeFilter, ChangePage, ChangeRow, FieldDiff, PageOptions, SortSpec, SourcesSummary, TimeSeries, TopEntry } from './types.js';

const TIME = 'action_tstamp_clk';
const PREVIEW = 240;
const FACET_LIMIT = 500;

/** Columns a listing may be sorted by (besides time). */
export const CHANGE_SORTS = {
  server: 'server',
  schema: 'schema_name',
  table: 'table_name',
  action: 'action',
  user: 'session_user_name',
  application: 'application_name',
  client: 'client_addr',
} as const;

/** What the top lists and charts may group by. */
export const CHANGE_GROUPS = { ...CHANGE_SORTS, qualified_table: `schema_name || '.' || table_name` } as const;

const LISTING: TableListing = {
  table: 'row_changes',
  time: TIME,
  identity: [
    { expr: 'server', type: 'VARCHAR' },
    { expr: 'source_table', type: 'VARCHAR' },
    { expr: 'event_id', type: 'BIGINT' },
  ],
  sorts: CHANGE_SORTS,
};

const LIST_COLUMNS = `${ISO(TIME)} AS time, server, source_table, event_id::VARCHAR AS event_id, schema_name, table_name, action,
  session_user_name, application_name, client_addr, statement_only,
  CASE WHEN action = 'UPDATE' AND json_valid(changed_fields) THEN json_keys(changed_fields)::VARCHAR[] END AS changed`;

/** The filter's conditions on row_changes. */
export function changeConditions(f: ChangeFilter, w: Where, from = f.from, to = f.to): Where {
  timeConditions(w, TIME, from, to);
  w.in('server', f.server)
    .in('schema_name', f.schema)
    .in(
      'action',
      f.action?.map((a) => a.toUpperCase()),
    )
    .in('session_user_name', f.user);
  if (f.table?.length) {
    const list = f.table.map((t) => w.p(t)).join(', ');
    w.add(`(table_name IN (${list}) OR schema_name || '.' || table_name IN (${list}))`);
  }
  if (f.text) {
    const p = w.p(regexLiteral(f.text));
    w.add(`(regexp_matches(coalesce(row_data, ''), ${p}, 'i') OR regexp_matches(coalesce(changed_fields, ''), ${p}, 'i'))`);
  }
  return w;
}

function parseJson(text: unknown): unknown {
  if (text === null || text === undefined) return null;
  try {
    return JSON.parse(String(text));
  } catch {
    return String(text);
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The fields of a change: INSERT adds the row's fields, DELETE removes them, UPDATE changes the fields of
 * changed_fields (their old values from row_data, the old row) and leaves the others as they were.
 */
export function diffOf(action: string | null, rowData: unknown, changed: unknown): FieldDiff[] {
  const row = isObject(rowData) ? rowData : {};
  if (action === 'INSERT') return Object.entries(row).map(([field, after]) => ({ field, kind: 'added' as const, after }));
  if (action === 'DELETE') return Object.entries(row).map(([field, before]) => ({ field, kind: 'removed' as const, before }));
  if (action !== 'UPDATE') return [];
  const next = isObject(changed) ? changed : {};
  const out: FieldDiff[] = [];
  for (const [field, before] of Object.entries(row)) {
    if (field in next) out.push({ field, kind: 'changed', before, after: next[field] });
    else out.push({ field, kind: 'unchanged', before, after: before });
  }
  for (const [field, after] of Object.entries(next)) if (!(field in row)) out.push({ field, kind: 'added', after });
  return out;
}

function toRow(r: Record<string, unknown>): Omit<ChangeRow, 'preview'> {
  const changed = r['changed'];
  return {
    id: encodeId([Number(r['_t']), String(r['server']), String(r['source_table']), String(r['event_id'])]),
    time: String(r['time']),
    server: String(r['server']),
    source_table: String(r['source_table']),
    event_id: String(r['event_id']),
    schema_name: strOrNull(r['schema_name']),
    table_name: strOrNull(r['table_name']),
    action: strOrNull(r['action']),
    user_name: strOrNull(r['session_user_name']),
    application_name: strOrNull(r['application_name']),
    client_addr: strOrNull(r['client_addr']),
    statement_only: r['statement_only'] === null || r['statement_only'] === undefined ? null : r['statement_only'] === true || r['statement_only'] === 'true',
    changed: Array.isArray(changed) ? changed.map(String) : null,
  };
}

/** A row change with its data in full, as export writes it. */
export interface ChangeExportRow extends Omit<ChangeRow, 'preview'> {
  row_data: string | null;
  changed_fields: string | null;
  client_query: string | null;
}

export class RowChangeQueries {
  constructor(private readonly db: QueryRunner) {}

  /** Whether row_changes exists in this store (a store of pgaudit logs only has none). */
  async present(): Promise<boolean> {
    const rows = await this.db.all(`SELECT 1 FROM duckdb_tables() WHERE table_name = 'row_changes' AND schema_name = 'main'`);
    return rows.length > 0;
  }

  /** How many changes, their time range and the distinct values of the filter controls; null without the table. */
  async summary(): Promise<SourcesSummary['row_changes']> {
    if (!(await this.present())) return null;
    const [r] = await this.db.all(`SELECT count(*)::DOUBLE AS n, ${ISO(`min(${TIME})`)} AS lo, ${ISO(`max(${TIME})`)} AS hi FROM row_changes`);
    const values = async (expr: string) =>
      (
        await this.db.all(
          `SELECT v FROM (SELECT ${expr} AS v, count(*) AS n FROM row_changes WHERE ${expr} IS NOT NULL GROUP BY 1 ORDER BY n DESC, v LIMIT ${FACET_LIMIT}) ORDER BY v`,
        )
      ).map((x) => String(x['v']));
    return {
      rows: num(r?.['n']),
      min_time: strOrNull(r?.['lo']),
      max_time: strOrNull(r?.['hi']),
      servers: await values('server'),
      schemas: await values('schema_name'),
      tables: await values(`schema_name || '.' || table_name`),
      actions: await values('action'),
      users: await values('session_user_name'),
    };
  }

  /** A page of changes matching the filter, newest first unless sorted otherwise. */
  async listChanges(filter: ChangeFilter, page: PageOptions = {}): Promise<ChangePage> {
    const sort = checkSort(page.sort, Object.keys(CHANGE_SORTS));
    const preview = `left(CASE WHEN action = 'UPDATE' THEN coalesce(changed_fields, row_data) ELSE row_data END, ${PREVIEW}) AS preview`;
    const got = await listTable(this.db, LISTING, `${LIST_COLUMNS}, ${preview}`, (w, from, to) => changeConditions(filter, w, from, to), filter, {
      limit: pageLimit(page.limit),
      after: page.after ?? null,
      sort,
    });
    return { rows: got.rows.map((r) => ({ ...toRow(r), preview: strOrNull(r['preview']) })), next: got.next };
  }

  /** A page of changes with their data in full (export). */
  async exportPage(filter: ChangeFilter, sort: SortSpec, after: string | null, limit: number): Promise<{ rows: ChangeExportRow[]; next: string | null }> {
    const got = await listTable(
      this.db,
      LISTING,
      `${LIST_COLUMNS}, row_data, changed_fields, client_query`,
      (w, from, to) => changeConditions(filter, w, from, to),
      filter,
      { limit: pageLimit(limit), after, sort: checkSort(sort, Object.keys(CHANGE_SORTS)) },
    );
    return {
      rows: got.rows.map((r) => ({
        ...toRow(r),
        row_data: strOrNull(r['row_data']),
        changed_fields: strOrNull(r['changed_fields']),
        client_query: strOrNull(r['client_query']),
      })),
      next: got.next,
    };
  }

  /** One change in full, with the diff of its fields; null when not stored. */
  async getChange(id: string): Promise<ChangeDetail | null> {
    const [tUs, server, sourceTable, eventId] = decodeId(id, 3);
    if (!/^-?\d{1,19}$/.test(eventId!)) throw new QueryInputError('malformed id');
    const w = new Where();
    w.add(`${TIME} = make_timestamp(${w.p(tUs)}::BIGINT)::TIMESTAMPTZ`)
      .add(`server = ${w.p(server!)}`)
      .add(`source_table = ${w.p(sourceTable!)}`)
      .add(`event_id = ${w.p(eventId!)}::BIGINT`);
    const [r] = await this.db.all(
      `SELECT ${LIST_COLUMNS}, epoch_us(${TIME}) AS _t, txid::VARCHAR AS txid, relid::VARCHAR AS relid, client_port, ${ISO('action_tstamp_tx')} AS tstamp_tx,
        ${ISO('action_tstamp_stm')} AS tstamp_stm, client_query, ${ISO('shipped_at')} AS shipped_at, row_data, changed_fields
      FROM row_changes ${w.sql()} LIMIT 1`,
      w.params,
    );
    if (!r) return null;
    const rowData = parseJson(r['row_data']);
    const changed = parseJson(r['changed_fields']);
    const row = toRow(r);
    return {
      ...row,
      txid: strOrNull(r['txid']),
      relid: strOrNull(r['relid']),
      client_port: numOrNull(r['client_port']),
      tstamp_tx: strOrNull(r['tstamp_tx']),
      tstamp_stm: strOrNull(r['tstamp_stm']),
      client_query: strOrNull(r['client_query']),
      shipped_at: strOrNull(r['shipped_at']),
      row_data: rowData,
      changed_fields: changed,
      diff: diffOf(row.action, rowData, changed),
    };
  }

  /** Changes per time bucket and action (the chart's `class` is the action). */
  async changesOverTime(filter: ChangeFilter): Promise<TimeSeries> {
    const [span] = await this.db.all(`SELECT epoch_ms(min(${TIME}))::DOUBLE AS lo, epoch_ms(max(${TIME}))::DOUBLE AS hi FROM row_changes`);
    if (!span || span['lo'] === null || span['lo'] === undefined) return { bucket_ms: 3600e3, points: [] };
    const from = Math.max(filter.from ?? -Infinity, num(span['lo']));
    const to = Math.min(filter.to ?? Infinity, num(span['hi']) + 1);
    const bucket = BUCKETS_MS.find((b) => Math.max(1, to - from) / b <= 120) ?? BUCKETS_MS[BUCKETS_MS.length - 1]!;
    const w = changeConditions(filter, new Where());
    const b = w.p(bucket);
    const rows = await this.db.all(
      `SELECT (epoch_ms(${TIME}) // ${b}::BIGINT * ${b}::BIGINT)::DOUBLE AS t, coalesce(action, '?') AS class, count(*)::DOUBLE AS n
      FROM row_changes ${w.sql()} GROUP BY ALL ORDER BY t, class`,
      w.params,
    );
    return { bucket_ms: bucket, points: rows.map((r) => ({ t: num(r['t']), class: String(r['class']), n: num(r['n']) })) };
  }

  /** The most frequent values of a column over the filter's changes. */
  async topChanges(filter: ChangeFilter, by: keyof typeof CHANGE_GROUPS, n = 10): Promise<TopEntry[]> {
    const expr = CHANGE_GROUPS[by];
    if (!expr) throw new QueryInputError(`by: "${String(by).slice(0, 40)}" is not one of ${Object.keys(CHANGE_GROUPS).join(', ')}`);
    const w = changeConditions(filter, new Where());
    w.add(`(${expr}) IS NOT NULL`);
    const rows = await this.db.all(
      `SELECT ${expr} AS k, count(*)::DOUBLE AS n FROM row_changes ${w.sql()} GROUP BY 1 ORDER BY n DESC, k LIMIT ${Math.max(1, Math.min(100, Math.floor(n)))}`,
      w.params,
    );
    return rows.map((r) => ({ key: String(r['k']), n: num(r['n']) }));
  }
}
