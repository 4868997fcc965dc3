import type {
  EventDetail,
  EventFilter,
  EventPage,
  EventRow,
  EventWithSession,
  Facets,
  LogonFailureSummary,
  SessionInfo,
  TimelineItem,
  TimeSeries,
  TopEntry,
} from './types.js';
import { bitCondition, termBits } from '../text-index/index.js';

/** Runs one SQL statement with positional parameters ($1, $2, ...) and returns its rows as plain JSON values. */
export interface QueryRunner {
  all(sql: string, params?: (string | number | null)[]): Promise<Record<string, unknown>[]>;
}

export const STATEMENT_PREVIEW = 240;
export const TIMELINE_LIMIT = 200;
const MAX_PAGE = 500;
const FACET_CACHE_MS = 10_000;
const FACET_LIMIT = 500;

/** Bucket widths for time charts; the smallest giving at most ~120 buckets over the range is used. */
export const BUCKETS_MS = [60e3, 5 * 60e3, 15 * 60e3, 3600e3, 3 * 3600e3, 6 * 3600e3, 12 * 3600e3, 86400e3, 7 * 86400e3, 30 * 86400e3];

export const ISO = (col: string) => `strftime(${col}, '%Y-%m-%dT%H:%M:%S.%gZ')`;
const OUTCOME = `CASE WHEN sqlstate IS NULL THEN 'success' ELSE 'error' END`;

/** An event's identity with its time (which lets DuckDB skip row groups): [epoch µs, server, session, line]. */
type Key = [number, string, string, number];

function encodeKey(k: Key): string {
  return Buffer.from(JSON.stringify(k)).toString('base64url');
}

function decodeKey(s: string): Key {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(s, 'base64url').toString('utf8'));
  } catch {
    throw new QueryInputError('malformed event id or cursor');
  }
  if (
    !Array.isArray(v) ||
    v.length !== 4 ||
    !Number.isSafeInteger(v[0]) ||
    typeof v[1] !== 'string' ||
    typeof v[2] !== 'string' ||
    !Number.isSafeInteger(v[3])
  ) {
    throw new QueryInputError('malformed event id or cursor');
  }
  return v as Key;
}

/** A page cursor: the last row's [epoch µs, context_id, line] (the order pages are read in). */
type Cursor = [number, number, number];

function encodeCursor(c: Cursor): string {
  return Buffer.from(JSON.stringify(c)).toString('base64url');
}

function decodeCursor(s: string): Cursor {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(s, 'base64url').toString('utf8'));
  } catch {
    throw new QueryInputError('malformed cursor');
  }
  if (!Array.isArray(v) || v.length !== 3 || !v.every((x) => Number.isSafeInteger(x))) throw new QueryInputError('malformed cursor');
  return v as Cursor;
}

/** A caller's input that no query can answer (a bad cursor): the UI answers 400. */
export class QueryInputError extends Error {}

/** SQL conditions and their parameters, built up with placeholders only. */
export class Where {
  readonly parts: string[] = [];
  readonly params: (string | number | null)[] = [];
  p(value: string | number | null): string {
    this.params.push(value);
    return `$${this.params.length}`;
  }
  add(sql: string): this {
    this.parts.push(sql);
    return this;
  }
  in(column: string, values: string[] | undefined): this {
    if (values && values.length) this.add(`${column} IN (${values.map((v) => this.p(v)).join(', ')})`);
    return this;
  }
  sql(): string {
    return this.parts.length ? `WHERE ${this.parts.join(' AND ')}` : '';
  }
}

export const tsParam = (w: Where, ms: number) => `make_timestamp(${w.p(Math.round(ms * 1000))}::BIGINT)::TIMESTAMPTZ`;

/** Ids of the contexts (server, user, database) and kinds (class, command) a filter admits, as conditions on event_rows. */
function dimensionConditions(f: EventFilter, w: Where): Where {
  const ctx: string[] = [];
  const inList = (column: string, values: string[] | undefined, into: string[]) => {
    if (values && values.length) into.push(`${column} IN (${values.map((v) => w.p(v)).join(', ')})`);
  };
  inList('server', f.server, ctx);
  inList('user_name', f.user, ctx);
  inList('database_name', f.database, ctx);
  inList('application_name', f.application, ctx);
  inList('client_addr', f.client, ctx);
  if (ctx.length) w.add(`context_id IN (SELECT context_id FROM event_contexts WHERE ${ctx.join(' AND ')})`);
  const kinds: string[] = [];
  inList('class', f.class, kinds);
  inList('command', f.command, kinds);
  if (kinds.length) w.add(`kind_id IN (SELECT kind_id FROM event_kinds WHERE ${kinds.join(' AND ')})`);
  return w;
}

/**
 * The conditions of a filter on event_rows (time bounds given separately, for windows). The store is a star
 * (sinks/duckdb/schema.ts): filters on a session's or a kind's columns become sets of their ids, so that the
 * events are read from event_rows alone and joined to their context and kind only for the rows shown.
 *
 * Kept as one file (about 500 lines): every audit query the UI, the report and the UI benchmark run, as fixed
 * parameterised SQL, so that one review sees all SQL that reads the store.
 */
export function eventConditions(f: EventFilter, w: Where, from = f.from, to = f.to): Where {
  if (from !== undefined) w.add(`log_time >= ${tsParam(w, from)}`);
  if (to !== undefined) w.add(`log_time < ${tsParam(w, to)}`);
  dimensionConditions(f, w);
  if (f.object) w.add(`object_name ILIKE ${w.p(likePattern(f.object))} ESCAPE '\\'`);
  if (f.outcome === 'error') w.add('sqlstate IS NOT NULL');
  if (f.outcome === 'success') w.add('sqlstate IS NULL');
  if (f.text) {
    // The text index ruled out every event (eventRowsOf reads only the ranges it left otherwise).
    if ((f as IndexedFilter).textRanges?.length === 0) return w.add('false');
    // Case-insensitive: RE2 with the text as a literal scans about 4x faster than ILIKE in DuckDB 1.5.
    w.add(`regexp_matches(statement, ${w.p(regexLiteral(f.text))}, 'i')`);
  }
  return w;
}

/** A filter with the text index's answer for its text: [start, end) epoch-ms ranges that may hold it. */
export type IndexedFilter = EventFilter & { textRanges?: [number, number][] };

/** The filter with the text index's answer for its text, when the store's index can narrow the search. */
export async function withTextIndex(db: QueryRunner, f: EventFilter): Promise<IndexedFilter> {
  if (!f.text) return f;
  // The index covers every row unless an auditship from before it wrote to the store since: then there are more
  // rows than the blocks describe (blocks count every row of a batch, even one skipped as stored).
  const [meta] = await db.all(`SELECT value, (SELECT coalesce(sum(rows), 0) FROM text_index) >= (SELECT count(*) FROM event_rows) AS covered
    FROM auditship_meta WHERE key = 'text_index'`);
  if (meta?.['value'] !== 'complete' || meta['covered'] !== true) return f;
  const ranges = await textRanges(db, f.text, f.from, f.to);
  return ranges ? { ...f, textRanges: ranges } : f;
}

const tsLiteral = (ms: number) => {
  if (!Number.isFinite(ms)) throw new Error('a time range bound is not a number');
  return `make_timestamp(${Math.round(ms * 1000)}::BIGINT)::TIMESTAMPTZ`;
};

/**
 * What a filter's events are read from: `event_rows`, or only the time ranges the text index left of it within
 * [from, to) — as a UNION ALL of one scan per range, because DuckDB skips row groups by their zone maps for each
 * scan's range (measured on 10 M events: 35 ranges in 40-90 ms; the same ranges as one OR, 500-770 ms: it
 * skipped nothing). Null when no range is left in [from, to): nothing to read.
 */
export function eventRowsOf(f: EventFilter, from = -Infinity, to = Infinity): string | null {
  const ranges = (f as IndexedFilter).textRanges;
  if (!ranges) return 'event_rows';
  const within = ranges.filter(([a, b]) => b > from && a < to);
  if (within.length === 0) return null;
  return `(${within.map(([a, b]) => `SELECT * FROM event_rows WHERE log_time >= ${tsLiteral(a)} AND log_time < ${tsLiteral(b)}`).join(' UNION ALL ')}) AS event_rows`;
}

/** More ranges than this are joined across their smallest gaps (each range is a scan of its own). */
const MAX_TEXT_RANGES = 64;

/**
 * Ranges of the blocks the text index says may hold the text (sorted, merged), within [from, to); null when
 * the index cannot narrow the search: the text has no trigram, the store's index is not complete, or most
 * blocks may hold it (a scan is as fast).
 */
async function textRanges(db: QueryRunner, text: string, from: number | undefined, to: number | undefined): Promise<[number, number][] | null> {
  const bits = termBits(text);
  if (bits.length === 0) return null;
  const w = new Where();
  if (from !== undefined) w.add(`hi >= ${tsParam(w, from)}`);
  if (to !== undefined) w.add(`lo < ${tsParam(w, to)}`);
  const hit = bits.map(bitCondition).join(' AND ');
  const rows = await db.all(`SELECT epoch_ms(lo)::DOUBLE AS lo, epoch_ms(hi)::DOUBLE AS hi, (${hit}) AS hit FROM text_index ${w.sql()} ORDER BY lo`, w.params);
  const hits = rows.filter((r) => r['hit'] === true);
  if (rows.length > 0 && hits.length > rows.length / 2) return null;
  const ranges: [number, number][] = [];
  for (const r of hits) {
    const [lo, hi] = [Number(r['lo']), Number(r['hi']) + 1];
    const last = ranges[ranges.length - 1];
    if (last && lo <= last[1]) last[1] = Math.max(last[1], hi);
    else ranges.push([lo, hi]);
  }
  if (ranges.length > MAX_TEXT_RANGES) {
    const gaps = ranges
      .slice(1)
      .map((r, i) => r[0] - ranges[i]![1])
      .sort((a, b) => a - b);
    const keep = gaps[gaps.length - (MAX_TEXT_RANGES - 1)]!; // join every gap smaller than this
    const joined: [number, number][] = [];
    for (const r of ranges) {
      const last = joined[joined.length - 1];
      if (last && r[0] - last[1] < keep) last[1] = r[1];
      else joined.push([...r]);
    }
    return joined;
  }
  return ranges;
}

/** The text as an RE2 pattern matching it literally. */
export function regexLiteral(text: string): string {
  return text.replace(/[\\^$.|?*+()[\]{}]/g, (c) => `\\${c}`);
}

/** `%text%` with LIKE's wildcards in the text escaped. */
export function likePattern(text: string): string {
  return `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

export const num = (v: unknown): number => (v === null || v === undefined ? 0 : Number(v));
export const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));
export const strOrNull = (v: unknown): string | null => (v === null || v === undefined ? null : String(v));

export const ROW_COLUMNS = `epoch_us(log_time) AS t_us, ${ISO('log_time')} AS log_time, server, session_id, session_line_num::BIGINT AS session_line_num,
  user_name, database_name, client_addr, application_name, audit_type, class, command, object_type, object_name,
  ${OUTCOME} AS outcome, sqlstate`;

/** Rows of event_rows (a subquery `e`) with their context and kind columns. */
export const withDimensions = (rows: string) => `(${rows}) AS e LEFT JOIN event_contexts USING (context_id) LEFT JOIN event_kinds USING (kind_id)`;

/** Columns of a session (event_contexts) and of a kind (event_kinds) that charts group by. */
const CONTEXT_COLUMNS = new Set(['server', 'user_name', 'database_name', 'client_addr', 'application_name', 'session_id']);
const KIND_COLUMNS = new Set(['audit_type', 'class', 'command', 'object_type']);

/** Counts per value of a column over the filtered events: grouped by context or kind id first, then joined. */
export function countBy(column: string, where: string, extra = '', rows = 'event_rows'): string {
  if (CONTEXT_COLUMNS.has(column)) {
    return `SELECT c.${column} AS k, sum(e.n)::DOUBLE AS n FROM (SELECT context_id, count(*) AS n FROM ${rows} ${where} GROUP BY 1) AS e
      JOIN event_contexts AS c USING (context_id) WHERE c.${column} IS NOT NULL ${extra} GROUP BY 1`;
  }
  if (KIND_COLUMNS.has(column)) {
    return `SELECT k.${column} AS k, sum(e.n)::DOUBLE AS n FROM (SELECT kind_id, count(*) AS n FROM ${rows} ${where} GROUP BY 1) AS e
      JOIN event_kinds AS k USING (kind_id) WHERE k.${column} IS NOT NULL ${extra} GROUP BY 1`;
  }
  return `SELECT ${column} AS k, count(*)::DOUBLE AS n FROM ${rows} ${where} ${where ? 'AND' : 'WHERE'} ${column} IS NOT NULL ${extra} GROUP BY 1`;
}

export function toRow(r: Record<string, unknown>): Omit<EventRow, 'statement_preview'> {
  return {
    id: encodeKey([Number(r['t_us']), String(r['server']), String(r['session_id']), Number(r['session_line_num'])]),
    log_time: String(r['log_time']),
    server: String(r['server']),
    session_id: String(r['session_id']),
    session_line_num: Number(r['session_line_num']),
    user_name: strOrNull(r['user_name']),
    database_name: strOrNull(r['database_name']),
    client_addr: strOrNull(r['client_addr']),
    application_name: strOrNull(r['application_name']),
    audit_type: strOrNull(r['audit_type']),
    class: strOrNull(r['class']),
    command: strOrNull(r['command']),
    object_type: strOrNull(r['object_type']),
    object_name: strOrNull(r['object_name']),
    outcome: r['outcome'] === 'error' ? 'error' : 'success',
    sqlstate: strOrNull(r['sqlstate']),
  };
}

export class AuditQueries {
  private facetCache: { at: number; value: Facets } | null = null;

  constructor(
    private readonly db: QueryRunner,
    private readonly now: () => number = Date.now,
  ) {}

  /** Distinct values for the filter controls (at most FACET_LIMIT each), cached for a few seconds. */
  async facets(): Promise<Facets> {
    if (this.facetCache && this.now() - this.facetCache.at < FACET_CACHE_MS) return this.facetCache.value;
    // One pass over event_rows: events per (context, kind), then each facet from those counts and the dimensions.
    const facet = (name: string, table: string, id: string, col: string) =>
      `SELECT '${name}' AS f, d.${col} AS v, sum(p.n) AS n FROM p JOIN ${table} AS d USING (${id}) WHERE d.${col} IS NOT NULL GROUP BY 2`;
    const rows = await this.db.all(`WITH p AS MATERIALIZED (SELECT context_id, kind_id, count(*) AS n FROM event_rows GROUP BY ALL)
      SELECT f, v FROM (
        ${facet('servers', 'event_contexts', 'context_id', 'server')} UNION ALL ${facet('users', 'event_contexts', 'context_id', 'user_name')}
        UNION ALL ${facet('databases', 'event_contexts', 'context_id', 'database_name')} UNION ALL ${facet('classes', 'event_kinds', 'kind_id', 'class')}
        UNION ALL ${facet('commands', 'event_kinds', 'kind_id', 'command')})
      QUALIFY row_number() OVER (PARTITION BY f ORDER BY n DESC, v) <= ${FACET_LIMIT}`);
    const values = (f: string) =>
      rows
        .filter((r) => r['f'] === f)
        .map((r) => String(r['v']))
        .sort();
    const [range] = await this.db.all(`SELECT ${ISO('min(log_time)')} AS min_time, ${ISO('max(log_time)')} AS max_time, count(*)::DOUBLE AS n FROM event_rows`);
    const value: Facets = {
      servers: values('servers'),
      users: values('users'),
      databases: values('databases'),
      classes: values('classes'),
      commands: values('commands'),
      min_time: strOrNull(range?.['min_time']),
      max_time: strOrNull(range?.['max_time']),
      events: num(range?.['n']),
    };
    this.facetCache = { at: this.now(), value };
    return value;
  }

  /** Stored time range in epoch ms [min, max], or null when empty. */
  private async range(f: EventFilter): Promise<[number, number] | null> {
    const w = dimensionConditions({ ...(f.server ? { server: f.server } : {}) }, new Where());
    const [r] = await this.db.all(`SELECT epoch_ms(min(log_time))::DOUBLE AS lo, epoch_ms(max(log_time))::DOUBLE AS hi FROM event_rows ${w.sql()}`, w.params);
    if (!r || r['lo'] === null || r['lo'] === undefined) return null;
    return [Number(r['lo']), Number(r['hi'])];
  }

  /**
   * The newest events matching the filter, older than the cursor, newest first. Events are stored about in
   * time order, so the query walks back in widening time windows: a page of recent events reads only the
   * row groups of its window instead of sorting everything that matches.
   */
  async listEvents(unindexed: EventFilter, page: { limit?: number; after?: string | null } = {}): Promise<EventPage> {
    const limit = Math.max(1, Math.min(MAX_PAGE, Math.floor(page.limit ?? 50)));
    const after = page.after ? decodeCursor(page.after) : null;
    const filter = await withTextIndex(this.db, unindexed);
    const text = filter.textRanges;
    if (text && text.length === 0) return { rows: [], next: null };
    const stored = await this.range(filter);
    if (!stored) return { rows: [], next: null };
    const lo = Math.max(filter.from ?? -Infinity, stored[0], text ? text[0]![0] : -Infinity);
    let hi = Math.min(filter.to ?? Infinity, stored[1] + 1, after ? Math.floor(after[0] / 1000) + 1 : Infinity, text ? text[text.length - 1]![1] : Infinity);
    const rows: Record<string, unknown>[] = [];
    let width = Math.max(60_000, (hi - lo) / 64);
    while (hi > lo && rows.length <= limit) {
      const start = Math.max(lo, hi - width);
      const from = eventRowsOf(filter, start, hi);
      if (from === null) {
        hi = start;
        width *= 4;
        continue;
      }
      const w = eventConditions(filter, new Where(), start, hi);
      if (after) {
        w.add(`(epoch_us(log_time), context_id, session_line_num) < (${w.p(after[0])}::BIGINT, ${w.p(after[1])}::BIGINT, ${w.p(after[2])}::BIGINT)`);
      }
      const order = 'ORDER BY log_time DESC, context_id DESC, session_line_num DESC';
      const got = await this.db.all(
        `SELECT ${ROW_COLUMNS}, context_id, left(statement, ${STATEMENT_PREVIEW}) AS statement_preview
        FROM ${withDimensions(`SELECT * FROM ${from} ${w.sql()} ${order} LIMIT ${limit + 1 - rows.length}`)} ${order}`,
        w.params,
      );
      rows.push(...got);
      hi = start;
      width *= 4;
    }
    const out: EventRow[] = rows.slice(0, limit).map((r) => ({ ...toRow(r), statement_preview: strOrNull(r['statement_preview']) }));
    const last = rows.length > limit ? rows[limit - 1]! : null;
    return {
      rows: out,
      next: last ? encodeCursor([Number(last['t_us']), Number(last['context_id']), Number(last['session_line_num'])]) : null,
    };
  }

  /** One event in full, with its session and the session's timeline around it. */
  async getEvent(id: string): Promise<EventWithSession | null> {
    const [tUs, server, sessionId, line] = decodeKey(id);
    const w = new Where();
    const t = w.p(tUs);
    w.add(`log_time = make_timestamp(${t}::BIGINT)::TIMESTAMPTZ`)
      .add(`server = ${w.p(server)}`)
      .add(`session_id = ${w.p(sessionId)}`)
      .add(`session_line_num = ${w.p(line)}::BIGINT`);
    const [r] = await this.db.all(
      `SELECT ${ROW_COLUMNS}, statement, parameter, rows::DOUBLE AS rows, statement_id::DOUBLE AS statement_id,
        substatement_id::DOUBLE AS substatement_id, virtual_transaction_id, transaction_id::DOUBLE AS transaction_id, process_id, client_port,
        backend_type, file_name, error_message, epoch_us(session_start) AS session_start_us
      FROM audit_events ${w.sql()} LIMIT 1`,
      w.params,
    );
    if (!r) return null;
    const event: EventDetail = {
      ...toRow(r),
      statement: strOrNull(r['statement']),
      parameter: strOrNull(r['parameter']),
      rows: numOrNull(r['rows']),
      statement_id: numOrNull(r['statement_id']),
      substatement_id: numOrNull(r['substatement_id']),
      virtual_transaction_id: strOrNull(r['virtual_transaction_id']),
      transaction_id: numOrNull(r['transaction_id']),
      process_id: numOrNull(r['process_id']),
      client_port: numOrNull(r['client_port']),
      backend_type: strOrNull(r['backend_type']),
      file_name: strOrNull(r['file_name']),
      error_message: strOrNull(r['error_message']),
    };
    const [s] = await this.db.all(
      `SELECT server, session_id, process_id, user_name, database_name, client_addr, client_port, application_name,
        ${ISO('session_start')} AS session_start, ${ISO('connected_at')} AS connected_at, ${ISO('disconnected_at')} AS disconnected_at,
        duration_ms::DOUBLE AS duration_ms, epoch_us(disconnected_at) AS end_us
      FROM sessions WHERE server = $1 AND session_id = $2`,
      [server, sessionId],
    );
    const session: SessionInfo | null = s
      ? {
          server,
          session_id: sessionId,
          process_id: numOrNull(s['process_id']),
          user_name: strOrNull(s['user_name']),
          database_name: strOrNull(s['database_name']),
          client_addr: strOrNull(s['client_addr']),
          client_port: numOrNull(s['client_port']),
          application_name: strOrNull(s['application_name']),
          session_start: strOrNull(s['session_start']),
          connected_at: strOrNull(s['connected_at']),
          disconnected_at: strOrNull(s['disconnected_at']),
          duration_ms: numOrNull(s['duration_ms']),
        }
      : null;

    // The session's audit rows nearest to the event: up to half the limit on each side, found in widening
    // time windows around it (a session may span the whole store; its neighbours are close in time).
    const half = TIMELINE_LIMIT / 2;
    const evMs = tUs / 1000;
    const startMs = r['session_start_us'] !== null && r['session_start_us'] !== undefined ? Number(r['session_start_us']) / 1000 : -Infinity;
    const endMs = s && s['end_us'] !== null && s['end_us'] !== undefined ? Number(s['end_us']) / 1000 : Infinity;
    const side = async (before: boolean) => {
      const got: Record<string, unknown>[] = [];
      let near = evMs;
      for (let width = 60_000; got.length < half; width *= 8) {
        const far = before ? Math.max(startMs, near - width) : Math.min(endMs, near + width);
        const tw = new Where();
        tw.add(`context_id IN (SELECT context_id FROM event_contexts WHERE server = ${tw.p(server)} AND session_id = ${tw.p(sessionId)})`).add(
          `session_line_num ${before ? '<=' : '>'} ${tw.p(line)}::BIGINT`,
        );
        const [a, b] = before ? [far, near] : [near, far];
        if (Number.isFinite(a)) tw.add(`log_time >= ${tsParam(tw, a)}`);
        if (Number.isFinite(b)) tw.add(`log_time ${before && near === evMs ? '<=' : '<'} ${tsParam(tw, b + (before && near === evMs ? 0 : 0))}`);
        const order = `ORDER BY session_line_num ${before ? 'DESC' : 'ASC'}`;
        const rows = await this.db.all(
          `SELECT ${ROW_COLUMNS} FROM ${withDimensions(`SELECT * FROM event_rows ${tw.sql()} ${order} LIMIT ${half + 1 - got.length}`)}
          ${order}`,
          tw.params,
        );
        got.push(...rows.filter((x) => !got.some((g) => g['session_line_num'] === x['session_line_num'])));
        if (!Number.isFinite(far) ? true : before ? far <= startMs : far >= endMs) break;
        if (width > 400 * 86400e3) break;
        near = far;
      }
      return got;
    };
    const beforeRows = await side(true);
    const afterRows = await side(false);
    const truncated = beforeRows.length > half || afterRows.length > half;
    const audit = [...beforeRows.slice(0, half), ...afterRows.slice(0, half)];
    const errors = await this.db.all(
      `SELECT ${ISO('log_time')} AS log_time, session_line_num::DOUBLE AS line, severity, sqlstate
      FROM statement_errors WHERE server = $1 AND session_id = $2 ORDER BY session_line_num LIMIT ${TIMELINE_LIMIT}`,
      [server, sessionId],
    );
    const timeline: TimelineItem[] = [];
    for (const a of audit) {
      const row = toRow(a);
      timeline.push({
        log_time: row.log_time,
        session_line_num: row.session_line_num,
        kind: 'audit',
        id: row.id,
        class: row.class,
        command: row.command,
        object_name: row.object_name,
        outcome: row.outcome,
        sqlstate: row.sqlstate,
        label: [row.command ?? row.class ?? 'AUDIT', row.object_name].filter(Boolean).join(' '),
      });
    }
    const lines = timeline.map((i) => i.session_line_num);
    const [minLine, maxLine] = [Math.min(...lines), Math.max(...lines)];
    for (const e of errors) {
      const l = Number(e['line']);
      if (truncated && (l < minLine || l > maxLine)) continue;
      timeline.push({
        log_time: String(e['log_time']),
        session_line_num: l,
        kind: 'error',
        sqlstate: strOrNull(e['sqlstate']),
        label: `${String(e['severity'] ?? 'ERROR')} ${String(e['sqlstate'] ?? '')}`.trim(),
      });
    }
    timeline.sort((a, b) => a.session_line_num - b.session_line_num);
    if (session?.connected_at && (!truncated || minLine <= 2)) {
      timeline.unshift({
        log_time: session.connected_at,
        session_line_num: 0,
        kind: 'connect',
        label: `connected${session.application_name ? ` (${session.application_name})` : ''}`,
      });
    }
    if (session?.disconnected_at && !truncated) {
      timeline.push({ log_time: session.disconnected_at, session_line_num: Number.MAX_SAFE_INTEGER, kind: 'disconnect', label: 'disconnected' });
    }
    return { event, session, timeline, truncated };
  }

  /** Bucket width for a chart over the filter's range. */
  private async bucketFor(f: EventFilter): Promise<{ bucket: number; from?: number; to?: number }> {
    const stored = await this.range(f);
    if (!stored) return { bucket: 3600e3 };
    const from = Math.max(f.from ?? -Infinity, stored[0]);
    const to = Math.min(f.to ?? Infinity, stored[1] + 1);
    const span = Math.max(1, to - from);
    const bucket = BUCKETS_MS.find((b) => span / b <= 120) ?? BUCKETS_MS[BUCKETS_MS.length - 1]!;
    return { bucket, from, to };
  }

  /** Events per time bucket and class. */
  async eventsOverTime(filter: EventFilter): Promise<TimeSeries> {
    const { bucket } = await this.bucketFor(filter);
    const indexed = await withTextIndex(this.db, filter);
    const w = eventConditions(indexed, new Where());
    const b = w.p(bucket);
    const rows = await this.db.all(
      `SELECT e.t, coalesce(k.class, '?') AS class, sum(e.n)::DOUBLE AS n
      FROM (SELECT (epoch_ms(log_time) // ${b}::BIGINT * ${b}::BIGINT)::DOUBLE AS t, kind_id, count(*) AS n FROM ${eventRowsOf(indexed) ?? 'event_rows'} ${w.sql()} GROUP BY ALL) AS e
      LEFT JOIN event_kinds AS k USING (kind_id) GROUP BY ALL ORDER BY t, class`,
      w.params,
    );
    return { bucket_ms: bucket, points: rows.map((r) => ({ t: num(r['t']), class: String(r['class']), n: num(r['n']) })) };
  }

  private async top(filter: EventFilter, column: string, n: number): Promise<TopEntry[]> {
    const indexed = await withTextIndex(this.db, filter);
    const w = eventConditions(indexed, new Where());
    const rows = await this.db.all(
      `${countBy(column, w.sql(), '', eventRowsOf(indexed) ?? 'event_rows')} ORDER BY n DESC, k LIMIT ${Math.max(1, Math.min(100, Math.floor(n)))}`,
      w.params,
    );
    return rows.map((r) => ({ key: String(r['k']), n: num(r['n']) }));
  }

  /** The users with the most events matching the filter. */
  topUsers(filter: EventFilter, n = 10): Promise<TopEntry[]> {
    return this.top(filter, 'user_name', n);
  }

  /** The objects (tables, functions, ...) with the most events matching the filter. */
  topObjects(filter: EventFilter, n = 10): Promise<TopEntry[]> {
    return this.top(filter, 'object_name', n);
  }

  /** Failed logins in the filter's time range (and servers, users): over time, and the most frequent. */
  async logonFailures(filter: EventFilter): Promise<LogonFailureSummary> {
    const w = new Where();
    if (filter.from !== undefined) w.add(`log_time >= ${tsParam(w, filter.from)}`);
    if (filter.to !== undefined) w.add(`log_time < ${tsParam(w, filter.to)}`);
    w.in('server', filter.server).in('user_name', filter.user).in('database_name', filter.database);
    const [span] = await this.db.all(
      `SELECT epoch_ms(min(log_time))::DOUBLE AS lo, epoch_ms(max(log_time))::DOUBLE AS hi, count(*)::DOUBLE AS n FROM logon_failures ${w.sql()}`,
      w.params,
    );
    const total = num(span?.['n']);
    if (total === 0) return { total: 0, bucket_ms: 3600e3, points: [], top: [] };
    const from = filter.from ?? num(span!['lo']);
    const to = filter.to ?? num(span!['hi']) + 1;
    const bucket = BUCKETS_MS.find((b) => Math.max(1, to - from) / b <= 120) ?? BUCKETS_MS[BUCKETS_MS.length - 1]!;
    const b = w.p(bucket);
    const points = await this.db.all(
      `SELECT (epoch_ms(log_time) // ${b}::BIGINT * ${b}::BIGINT)::DOUBLE AS t, count(*)::DOUBLE AS n
      FROM logon_failures ${w.sql()} GROUP BY 1 ORDER BY 1`,
      w.params,
    );
    w.params.pop();
    const top = await this.db.all(
      `SELECT user_name, client_addr, arg_max(reason, log_time) AS reason, count(*)::DOUBLE AS n
      FROM logon_failures ${w.sql()} GROUP BY 1, 2 ORDER BY n DESC, user_name NULLS LAST LIMIT 10`,
      w.params,
    );
    return {
      total,
      bucket_ms: bucket,
      points: points.map((r) => ({ t: num(r['t']), n: num(r['n']) })),
      top: top.map((r) => ({
        user_name: strOrNull(r['user_name']),
        client_addr: strOrNull(r['client_addr']),
        reason: String(r['reason'] ?? ''),
        n: num(r['n']),
      })),
    };
  }
}
