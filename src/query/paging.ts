/**
 * Keyset pagination shared by the listings of row changes, application events and the sorted event list:
 * opaque cursors that carry the sort they belong to and the last row's sort key, time and identity; and the
 * walk through time windows (newest first, or oldest first) that lets a page of a 10-million-row table read
 * only the row groups of its window instead of sorting everything that matches (the way listEvents reads).
 */
import { QueryInputError, Where, tsParam, type QueryRunner } from './queries.js';
import type { SortSpec } from './types.js';

/** Largest page a caller may ask for. */
export const MAX_PAGE = 500;

/** A cursor: [sort name, direction, sort value (null for time), epoch µs, ...identity]. */
export type SortCursor = [string, 'asc' | 'desc', string | null, number, ...(string | number)[]];

export function encodeSortCursor(c: SortCursor): string {
  return Buffer.from(JSON.stringify(c)).toString('base64url');
}

/** The cursor of a page of this sort; QueryInputError when it is malformed or of another sort. */
export function decodeSortCursor(s: string, sort: SortSpec, identity: number): SortCursor {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(s, 'base64url').toString('utf8'));
  } catch {
    throw new QueryInputError('malformed cursor');
  }
  if (
    !Array.isArray(v) ||
    v.length !== 4 + identity ||
    v[0] !== sort.by ||
    v[1] !== sort.dir ||
    !(v[2] === null || typeof v[2] === 'string') ||
    !Number.isSafeInteger(v[3]) ||
    !v.slice(4).every((x) => typeof x === 'string' || Number.isSafeInteger(x))
  ) {
    throw new QueryInputError('malformed cursor, or a cursor of another sort order (start from the first page)');
  }
  return v as SortCursor;
}

/** An opaque id of a row: its time (µs) and identity, base64url JSON. */
export function encodeId(parts: (string | number)[]): string {
  return Buffer.from(JSON.stringify(parts)).toString('base64url');
}

/** The parts of an id: [epoch µs, ...strings]; QueryInputError when malformed. */
export function decodeId(s: string, strings: number): [number, ...string[]] {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(s, 'base64url').toString('utf8'));
  } catch {
    throw new QueryInputError('malformed id');
  }
  if (!Array.isArray(v) || v.length !== 1 + strings || !Number.isSafeInteger(v[0]) || !v.slice(1).every((x) => typeof x === 'string')) {
    throw new QueryInputError('malformed id');
  }
  return v as [number, ...string[]];
}

/** The sort a caller asked for, checked against the columns that may be sorted by; default newest first. */
export function checkSort(sort: Partial<SortSpec> | undefined, allowed: readonly string[]): SortSpec {
  const by = sort?.by ?? 'time';
  const dir = sort?.dir ?? 'desc';
  if (by !== 'time' && !allowed.includes(by)) throw new QueryInputError(`sort: "${by.slice(0, 40)}" is not one of time, ${allowed.join(', ')}`);
  if (dir !== 'asc' && dir !== 'desc') throw new QueryInputError('dir must be asc or desc');
  return { by, dir };
}

export const pageLimit = (limit: number | undefined, def = 50): number => Math.max(1, Math.min(MAX_PAGE, Math.floor(limit ?? def)));

/**
 * Reads up to `limit + 1` rows in time order through windows of [lo, hi) that widen 4× each step: `fetch(start,
 * end, wanted)` returns the rows of one window in the sort order, at most `wanted`. Newest first walks down
 * from hi, oldest first up from lo.
 */
export async function walkWindows(
  lo: number,
  hi: number,
  dir: 'asc' | 'desc',
  limit: number,
  fetch: (start: number, end: number, wanted: number) => Promise<Record<string, unknown>[]>,
): Promise<Record<string, unknown>[]> {
  const rows: Record<string, unknown>[] = [];
  let width = Math.max(60_000, (hi - lo) / 64);
  while (hi > lo && rows.length <= limit) {
    const start = dir === 'desc' ? Math.max(lo, hi - width) : lo;
    const end = dir === 'desc' ? hi : Math.min(hi, lo + width);
    rows.push(...(await fetch(start, end, limit + 1 - rows.length)));
    if (dir === 'desc') hi = start;
    else lo = end;
    width *= 4;
  }
  return rows;
}

/** One single table listed by time and sorted by whitelisted columns (row_changes, app_events). */
export interface TableListing {
  table: string;
  /** The time column (TIMESTAMPTZ) the listing walks by. */
  time: string;
  /** The row's identity after its time, in order: a SQL expression and the type its cursor value is cast to. */
  identity: { expr: string; type: 'VARCHAR' | 'BIGINT' }[];
  /** Sortable columns: name → SQL expression (text; NULL sorts as ''). */
  sorts: Record<string, string>;
}

/**
 * A page of a single table: the filter's rows in the sort order, after the cursor. `columns` is the SELECT list
 * (it may use the table's columns); each returned row also carries `_t` (epoch µs) and `_k0…` (identity).
 */
export async function listTable(
  db: QueryRunner,
  spec: TableListing,
  columns: string,
  conditions: (w: Where, from: number | undefined, to: number | undefined) => Where,
  bounds: { from?: number; to?: number },
  opts: { limit: number; after: string | null; sort: SortSpec },
): Promise<{ rows: Record<string, unknown>[]; next: string | null }> {
  const { limit, sort } = opts;
  const after = opts.after ? decodeSortCursor(opts.after, sort, spec.identity.length) : null;
  const sortExpr = sort.by === 'time' ? null : `coalesce((${spec.sorts[sort.by]!})::VARCHAR, '')`;
  const op = sort.dir === 'desc' ? '<' : '>';
  const dir = sort.dir === 'desc' ? 'DESC' : 'ASC';
  const keyExprs = [...(sortExpr ? [sortExpr] : []), `epoch_us(${spec.time})`, ...spec.identity.map((k) => k.expr)];
  const order = `ORDER BY ${keyExprs.map((e) => `${e} ${dir}`).join(', ')}`;
  const select = `SELECT ${columns}, epoch_us(${spec.time}) AS _t, ${spec.identity.map((k, i) => `(${k.expr})::VARCHAR AS _k${i}`).join(', ')}${sortExpr ? `, ${sortExpr} AS _s` : ''}`;
  const cursorCondition = (w: Where) => {
    if (!after) return;
    const values = [
      ...(sortExpr ? [`${w.p(after[2] ?? '')}::VARCHAR`] : []),
      `${w.p(after[3])}::BIGINT`,
      ...spec.identity.map((k, i) => `${w.p(after[4 + i] as string | number)}::${k.type}`),
    ];
    w.add(`(${keyExprs.join(', ')}) ${op} (${values.join(', ')})`);
  };
  const query = async (from: number | undefined, to: number | undefined, wanted: number) => {
    const w = conditions(new Where(), from, to);
    cursorCondition(w);
    return db.all(`${select} FROM ${spec.table} ${w.sql()} ${order} LIMIT ${wanted}`, w.params);
  };
  let rows: Record<string, unknown>[];
  if (sortExpr) {
    rows = await query(bounds.from, bounds.to, limit + 1);
  } else {
    const [r] = await db.all(`SELECT epoch_ms(min(${spec.time}))::DOUBLE AS lo, epoch_ms(max(${spec.time}))::DOUBLE AS hi FROM ${spec.table}`);
    if (!r || r['lo'] === null || r['lo'] === undefined) return { rows: [], next: null };
    const afterMs = after ? after[3] / 1000 : null;
    let lo = Math.max(bounds.from ?? -Infinity, Number(r['lo']));
    let hi = Math.min(bounds.to ?? Infinity, Number(r['hi']) + 1);
    if (afterMs !== null) {
      if (sort.dir === 'desc') hi = Math.min(hi, Math.floor(afterMs) + 1);
      else lo = Math.max(lo, Math.floor(afterMs));
    }
    rows = await walkWindows(lo, hi, sort.dir, limit, (start, end, wanted) => query(start, end, wanted));
  }
  return pageOf(rows, limit, (last) => [
    sort.by,
    sort.dir,
    sortExpr ? String(last['_s'] ?? '') : null,
    Number(last['_t']),
    ...spec.identity.map((_, i) => String(last[`_k${i}`])),
  ]);
}

/** The first `limit` of rows read with one more, and the cursor after the last of them (null at the end). */
export function pageOf(
  rows: Record<string, unknown>[],
  limit: number,
  cursorOf: (last: Record<string, unknown>) => SortCursor,
): { rows: Record<string, unknown>[]; next: string | null } {
  const last = rows.length > limit ? rows[limit - 1]! : null;
  return { rows: rows.slice(0, limit), next: last ? encodeSortCursor(cursorOf(last)) : null };
}

/** Time bounds as conditions on a column. */
export function timeConditions(w: Where, column: string, from: number | undefined, to: number | undefined): Where {
  if (from !== undefined) w.add(`${column} >= ${tsParam(w, from)}`);
  if (to !== undefined) w.add(`${column} < ${tsParam(w, to)}`);
  return w;
}
