import { ConnectorError } from '../../core/errors.js';
import type { SqlClient, SqlRow } from '../sql/client.js';
import { atPath, isoMicros, type EventTimeParser } from './event-time.js';

/**
 * How one kind of application audit table is read, converted and marked: the outbox table of
 * structured-log-transfer (`id, is_sent, message, created_at`, names configurable), django-auditlog's
 * `LogEntry`, and a generic mapping given as SQL in the config (the seed's "facade"). Every mapping reads
 * rows by ascending id after a key, turns each into a JSON message with an event time, or a reason it
 * cannot, and marks shipped ids sent.
 *
 * Kept as one file (about 440 lines): the outbox layouts (default columns, a select, django-auditlog)
 * implement one interface and share its conversions.
 */

/** A row converted: the message to store, its times (epoch microseconds, UTC) — or the reason it cannot be. */
export type Converted =
  | { ok: true; id: string; message: string; created: number | null; eventTime: number }
  | { ok: false; id: string; reason: string; raw: string; created: number | null };

export interface TableMapping {
  readonly kind: 'sql_outbox' | 'django_auditlog';
  /** Display name of the table read. */
  readonly table: string;
  /** Rows can be claimed with FOR UPDATE SKIP LOCKED (else the run takes a named lock). */
  readonly rowLocks: boolean;
  /** The next unsent rows with id > afterId (all when null), ascending, at most `limit`; `lock` adds the row locks. */
  read(c: SqlClient, afterId: string | null, limit: number, lock: boolean): Promise<SqlRow[]>;
  convert(row: SqlRow): Converted;
  /** Marks these ids sent (inside the caller's transaction). */
  markSent(c: SqlClient, ids: string[]): Promise<number>;
  /** Deletes up to `limit` rows marked sent and older than `cutoffIso`; null when the mapping cannot purge. */
  purge(c: SqlClient, cutoffIso: string, limit: number): Promise<number | null>;
  /** Unsent rows, counted up to `cap` (status). */
  unsent(c: SqlClient, cap: number): Promise<number>;
}

function placeholders(c: SqlClient, n: number, from = 1): string {
  return Array.from({ length: n }, (_, i) => c.p(from + i)).join(', ');
}

interface ColumnInfo {
  name: string;
  type: string;
}

/** The columns of a table (lower-case data types), or a clear error when it does not exist. */
export async function tableColumns(c: SqlClient, table: string, component: string): Promise<Map<string, string>> {
  const parts = table.split('.');
  const name = parts.pop()!;
  const schema = parts.pop() ?? null;
  const rows =
    c.dialect === 'postgres'
      ? await c.query(
          `SELECT column_name AS name, data_type AS type FROM information_schema.columns
                     WHERE table_name = $1 AND (($2::text IS NULL AND table_schema = ANY (current_schemas(false))) OR table_schema = $2)`,
          [name, schema],
        )
      : await c.query(
          `SELECT column_name AS name, data_type AS type FROM information_schema.columns
                     WHERE table_name = ? AND table_schema = COALESCE(?, DATABASE())`,
          [name, schema],
        );
  if (rows.length === 0) {
    throw new ConnectorError(
      component,
      'table_not_found',
      `table ${table} does not exist in ${c.where} (or this user cannot see it); check table and the URL's database`,
      true,
    );
  }
  return new Map((rows as unknown as ColumnInfo[]).map((r) => [r.name.toLowerCase(), r.type.toLowerCase()]));
}

/**
 * True when the server guarantees the column holds valid JSON: json/jsonb (PostgreSQL), JSON (MySQL), or
 * MariaDB's JSON, which is a LONGTEXT with a json_valid() check.
 */
export async function isJsonColumn(c: SqlClient, table: string, column: string, type: string | undefined): Promise<boolean> {
  if (type === 'json' || type === 'jsonb') return true;
  if (c.dialect !== 'mysql' || (type !== 'longtext' && type !== 'text' && type !== 'mediumtext')) return false;
  const parts = table.split('.');
  const name = parts.pop()!;
  const schema = parts.pop() ?? null;
  const r = await c
    .query(
      `SELECT check_clause AS cc FROM information_schema.check_constraints
                           WHERE table_name = ? AND constraint_schema = COALESCE(?, DATABASE())`,
      [name, schema],
    )
    .catch(() => []);
  const col = column.toLowerCase();
  return r.some((x) => new RegExp(`^json_valid\\(\`?${col.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\`?\\)$`, 'i').test(String(x['cc']).trim()));
}

/** SQL for the text at `path` inside a JSON column (NULL when absent or JSON null). */
function jsonPathText(c: SqlClient, column: string, path: string[]): string {
  if (c.dialect === 'postgres') {
    const arr = `{${path.map((k) => `"${k.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`).join(',')}}`;
    return `(${column} #>> '${arr.replaceAll("'", "''")}')`;
  }
  const jp = '$' + path.map((k) => `."${k.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`).join('');
  return `NULLIF(JSON_UNQUOTE(JSON_EXTRACT(${column}, '${jp.replaceAll("'", "''")}')), 'null')`;
}

/** True when a unique index (or the primary key) covers exactly this column. */
export async function hasUniqueIndex(c: SqlClient, table: string, column: string): Promise<boolean> {
  if (c.dialect === 'postgres') {
    const r = await c.query(
      `SELECT 1 AS ok FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                             WHERE i.indrelid = $1::regclass AND i.indisunique AND i.indnatts = 1 AND a.attname = $2`,
      [c.ident(table), column],
    );
    return r.length > 0;
  }
  const parts = table.split('.');
  const name = parts.pop()!;
  const schema = parts.pop() ?? null;
  const r = await c.query(
    `SELECT index_name FROM information_schema.statistics WHERE table_name = ? AND table_schema = COALESCE(?, DATABASE())
                           AND non_unique = 0 GROUP BY index_name HAVING count(*) = 1 AND max(column_name) = ?`,
    [name, schema, column],
  );
  return r.length > 0;
}

/** Text of a column as the mapping reads it: JSON as its text, times as UTC text. */
function textOf(c: SqlClient, col: string, type: string | undefined, prefix = ''): string {
  const q = prefix + c.ident(col);
  if (c.dialect === 'postgres') return type === 'json' || type === 'jsonb' ? `${q}::text` : type?.startsWith('timestamp') ? `${q}::text` : q;
  return q;
}

/** Converts a message's text and created_at into a Converted (shared by the outbox and query mappings). */
function convertMessage(id: string, text: string | null, createdRaw: string | null, timePath: string[], times: EventTimeParser): Converted {
  let created: number | null = null;
  if (createdRaw !== null) {
    created = times.parseText(createdRaw);
    if (created === null)
      return { ok: false, id, reason: `created_at ${JSON.stringify(createdRaw.slice(0, 40))} is not a time`, raw: text ?? '', created: null };
  }
  if (text === null) return { ok: false, id, reason: 'message is NULL', raw: '', created };
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { ok: false, id, reason: 'message is not valid JSON', raw: text, created };
  }
  const at = timePath.length ? atPath(parsed, timePath) : undefined;
  let eventTime: number | null = null;
  if (at !== undefined && at !== null) {
    eventTime = times.parseValue(at);
    if (eventTime === null)
      return { ok: false, id, reason: `${timePath.join('.')} ${JSON.stringify(String(at).slice(0, 40))} is not a time`, raw: text, created };
  } else {
    eventTime = created;
  }
  if (eventTime === null)
    return { ok: false, id, reason: `the message has no ${timePath.join('.')} and the row no created_at: no event time`, raw: text, created };
  return { ok: true, id, message: text, created, eventTime };
}

/**
 * Like convertMessage, for a message the server guarantees to be JSON, with the value at the time path
 * extracted by the server (`atText`): no JSON.parse per row, which was the largest cost in JavaScript.
 */
function convertTrusted(
  id: string,
  text: string | null,
  createdRaw: string | null,
  atText: string | null,
  timePath: string[],
  times: EventTimeParser,
): Converted {
  let created: number | null = null;
  if (createdRaw !== null) {
    created = times.parseText(createdRaw);
    if (created === null)
      return { ok: false, id, reason: `created_at ${JSON.stringify(createdRaw.slice(0, 40))} is not a time`, raw: text ?? '', created: null };
  }
  if (text === null) return { ok: false, id, reason: 'message is NULL', raw: '', created };
  let eventTime: number | null;
  if (atText !== null) {
    eventTime = /^\d+(\.\d+)?$/.test(atText) ? times.parseValue(Number(atText)) : times.parseText(atText);
    if (eventTime === null) return { ok: false, id, reason: `${timePath.join('.')} ${JSON.stringify(atText.slice(0, 40))} is not a time`, raw: text, created };
  } else {
    eventTime = created;
  }
  if (eventTime === null)
    return { ok: false, id, reason: `the message has no ${timePath.join('.')} and the row no created_at: no event time`, raw: text, created };
  return { ok: true, id, message: text, created, eventTime };
}

export interface OutboxColumns {
  id: string;
  sent: string;
  message: string;
  createdAt: string;
}

/** structured-log-transfer's outbox: unsent rows have the flag false or NULL; marking sets it true. */
export class OutboxMapping implements TableMapping {
  readonly kind = 'sql_outbox' as const;
  readonly rowLocks = true;
  private readonly select: string;
  private readonly unsentSql: string;

  /**
   * `jsonTyped`: the server guarantees the message is JSON (see isJsonColumn); the time is then read by the
   * server and the message is not parsed here.
   */
  constructor(
    readonly table: string,
    private readonly cols: OutboxColumns,
    types: Map<string, string>,
    private readonly timePath: string[],
    private readonly times: EventTimeParser,
    c: SqlClient,
    private readonly jsonTyped = false,
  ) {
    const q = (n: string) => c.ident(n);
    const created = types.has(cols.createdAt.toLowerCase()) ? textOf(c, cols.createdAt, types.get(cols.createdAt.toLowerCase())) : 'NULL';
    const at = jsonTyped && timePath.length ? jsonPathText(c, q(cols.message), timePath) : 'NULL';
    this.select = `${q(cols.id)} AS id, ${textOf(c, cols.message, types.get(cols.message.toLowerCase()))} AS message, ${created} AS created, ${at} AS at_text`;
    this.unsentSql = `(${q(cols.sent)} IS NULL OR ${q(cols.sent)} = ${c.dialect === 'postgres' ? 'false' : '0'})`;
  }

  async read(c: SqlClient, afterId: string | null, limit: number, lock: boolean): Promise<SqlRow[]> {
    const q = (n: string) => c.ident(n);
    return c.query(
      `SELECT ${this.select} FROM ${q(this.table)} WHERE ${this.unsentSql}${afterId === null ? '' : ` AND ${q(this.cols.id)} > ${c.p(1)}`}
                    ORDER BY ${q(this.cols.id)} LIMIT ${limit}${lock ? ' FOR UPDATE SKIP LOCKED' : ''}`,
      afterId === null ? [] : [afterId],
    );
  }

  convert(row: SqlRow): Converted {
    if (this.jsonTyped) return convertTrusted(row['id']!, row['message'] ?? null, row['created'] ?? null, row['at_text'] ?? null, this.timePath, this.times);
    return convertMessage(row['id']!, row['message'] ?? null, row['created'] ?? null, this.timePath, this.times);
  }

  async markSent(c: SqlClient, ids: string[]): Promise<number> {
    if (!ids.length) return 0;
    const q = (n: string) => c.ident(n);
    return c.execute(
      `UPDATE ${q(this.table)} SET ${q(this.cols.sent)} = ${c.dialect === 'postgres' ? 'true' : '1'} WHERE ${q(this.cols.id)} IN (${placeholders(c, ids.length)})`,
      ids,
    );
  }

  async purge(c: SqlClient, cutoffIso: string, limit: number): Promise<number> {
    const q = (n: string) => c.ident(n);
    const sent = `${q(this.cols.sent)} = ${c.dialect === 'postgres' ? 'true' : '1'}`;
    const old = `${q(this.cols.createdAt)} < ${c.p(1)}`;
    if (c.dialect === 'postgres') {
      return c.execute(
        `DELETE FROM ${q(this.table)} WHERE ${q(this.cols.id)} IN (SELECT ${q(this.cols.id)} FROM ${q(this.table)} WHERE ${sent} AND ${old} ORDER BY ${q(this.cols.id)} LIMIT ${limit})`,
        [cutoffIso],
      );
    }
    return c.execute(`DELETE FROM ${q(this.table)} WHERE ${sent} AND ${old} ORDER BY ${q(this.cols.id)} LIMIT ${limit}`, [mysqlTime(cutoffIso)]);
  }

  async unsent(c: SqlClient, cap: number): Promise<number> {
    const r = await c.query(`SELECT count(*) AS n FROM (SELECT 1 AS x FROM ${c.ident(this.table)} WHERE ${this.unsentSql} LIMIT ${cap}) s`);
    return Number(r[0]?.['n'] ?? 0);
  }
}

/** `2024-01-02 03:04:05.123456` for MySQL/MariaDB (the session is UTC). */
function mysqlTime(iso: string): string {
  return iso.replace('T', ' ').replace('Z', '');
}

/**
 * A mapping given as SQL (no code): `select` returns the unsent rows with columns id, message and
 * optionally created_at; `mark_sent` marks the ids given as `:ids`; `purge` (optional) deletes shipped
 * rows older than `:cutoff`, at most `:limit`. Rows are claimed by a named lock for the run.
 */
export class QueryMapping implements TableMapping {
  readonly kind = 'sql_outbox' as const;
  readonly rowLocks = false;

  constructor(
    readonly table: string,
    private readonly sql: { select: string; markSent: string; purge: string | null },
    private readonly timePath: string[],
    private readonly times: EventTimeParser,
  ) {}

  async read(c: SqlClient, afterId: string | null, limit: number): Promise<SqlRow[]> {
    return c.query(
      `SELECT q.* FROM (${this.sql.select}) q${afterId === null ? '' : ` WHERE q.id > ${c.p(1)}`} ORDER BY q.id LIMIT ${limit}`,
      afterId === null ? [] : [afterId],
    );
  }

  convert(row: SqlRow): Converted {
    return convertMessage(row['id']!, row['message'] ?? null, row['created_at'] ?? null, this.timePath, this.times);
  }

  async markSent(c: SqlClient, ids: string[]): Promise<number> {
    if (!ids.length) return 0;
    return c.execute(this.sql.markSent.replace(':ids', placeholders(c, ids.length)), ids);
  }

  async purge(c: SqlClient, cutoffIso: string, limit: number): Promise<number | null> {
    if (!this.sql.purge) return null;
    return c.execute(this.sql.purge.replace(':cutoff', c.p(1)).replace(':limit', String(limit)), [c.dialect === 'mysql' ? mysqlTime(cutoffIso) : cutoffIso]);
  }

  async unsent(c: SqlClient, cap: number): Promise<number> {
    const r = await c.query(`SELECT count(*) AS n FROM (SELECT 1 AS x FROM (${this.sql.select}) q LIMIT ${cap}) s`);
    return Number(r[0]?.['n'] ?? 0);
  }
}

const DJANGO_ACTIONS = ['create', 'update', 'delete', 'access'];

export interface DjangoOptions {
  table: string;
  userTable: string;
  origin: string;
  environment: string;
}

/**
 * django-auditlog's LogEntry → the message structured-log-transfer documents:
 * `{"@timestamp", "audit_event": {actor, date_time, operation, origin, target, environment, message}}`.
 * Unsent: `additional_data.is_sent` not true (a missing flag is unsent). Marking sets it in additional_data.
 */
export class DjangoMapping implements TableMapping {
  readonly kind = 'django_auditlog' as const;
  readonly rowLocks = true;
  readonly table: string;
  private readonly unsentSql: string;
  private readonly dataSelect: string;

  constructor(
    private readonly opts: DjangoOptions,
    types: Map<string, string>,
    userTypes: Map<string, string>,
    private readonly times: EventTimeParser,
    c: SqlClient,
  ) {
    this.table = opts.table;
    const q = (n: string) => c.ident(n);
    const pg = c.dialect === 'postgres';
    for (const col of ['id', 'action', 'object_repr', 'timestamp', 'additional_data', 'actor_id']) {
      if (!types.has(col))
        throw new ConnectorError('django_auditlog', 'table_unsupported', `${opts.table} has no ${col} column; is it django-auditlog's LogEntry table?`, false);
    }
    const ad = pg ? `${q('additional_data')}::jsonb` : q('additional_data');
    this.unsentSql = pg
      ? `(${ad} ->> 'is_sent') IS DISTINCT FROM 'true'`
      : `COALESCE(JSON_UNQUOTE(JSON_EXTRACT(${ad}, '$.is_sent')), 'false') NOT IN ('true', '1')`;
    const changesType = types.get('changes');
    const changes = changesType === undefined ? 'NULL' : textOf(c, 'changes', changesType, 'l.');
    const changesText = types.has('changes_text') ? `l.${q('changes_text')}` : 'NULL';
    const u = (col: string) => (userTypes.has(col) ? `u.${q(col)}` : 'NULL');
    const lad = pg ? `l.${q('additional_data')}::jsonb` : `l.${q('additional_data')}`;
    const adType = pg ? `jsonb_typeof(${lad})` : `JSON_TYPE(${lad})`;
    this.dataSelect = `l.${q('id')} AS id, l.${q('action')} AS action, l.${q('object_repr')} AS target, ${changes} AS changes,
      ${changesText} AS changes_text, ${textOf(c, 'timestamp', types.get('timestamp'), 'l.')} AS ts, ${adType} AS ad_type,
      ${u('first_name')} AS first_name, ${u('last_name')} AS last_name, ${u('email')} AS email, ${types.has('actor_email') ? `l.${q('actor_email')}` : 'NULL'} AS actor_email`;
  }

  async read(c: SqlClient, afterId: string | null, limit: number, lock: boolean): Promise<SqlRow[]> {
    const q = (n: string) => c.ident(n);
    // Claim the log entries alone (a join would lock user rows too, and MariaDB has no FOR UPDATE OF).
    const ids = await c.query(
      `SELECT ${q('id')} AS id FROM ${q(this.table)} WHERE ${this.unsentSql}${afterId === null ? '' : ` AND ${q('id')} > ${c.p(1)}`}
                               ORDER BY ${q('id')} LIMIT ${limit}${lock ? ' FOR UPDATE SKIP LOCKED' : ''}`,
      afterId === null ? [] : [afterId],
    );
    if (!ids.length) return [];
    return c.query(
      `SELECT ${this.dataSelect} FROM ${q(this.table)} l LEFT JOIN ${q(this.opts.userTable)} u ON u.${q('id')} = l.${q('actor_id')}
                    WHERE l.${q('id')} IN (${placeholders(c, ids.length)}) ORDER BY l.${q('id')}`,
      ids.map((r) => r['id']!),
    );
  }

  convert(row: SqlRow): Converted {
    const id = row['id']!;
    const raw = () => JSON.stringify(row);
    const us = row['ts'] === null ? null : this.times.parseText(row['ts']!);
    if (us === null) return { ok: false, id, reason: 'timestamp is missing or not a time', raw: raw(), created: null };
    const when = isoMicros(us);
    const adType = (row['ad_type'] ?? 'null').toLowerCase();
    if (adType !== 'object' && adType !== 'null')
      return { ok: false, id, reason: `additional_data is a JSON ${adType}, not an object: it cannot carry is_sent`, raw: raw(), created: us };
    const operation = DJANGO_ACTIONS[Number(row['action'])];
    if (operation === undefined) return { ok: false, id, reason: `unknown action ${JSON.stringify(row['action'])} (expected 0-3)`, raw: raw(), created: us };
    const full = `${row['first_name'] ?? ''} ${row['last_name'] ?? ''}`.trim();
    const actor = full || row['email'] || row['actor_email'] || 'unknown';
    const message = JSON.stringify({
      '@timestamp': when,
      audit_event: {
        actor,
        date_time: when,
        operation,
        origin: this.opts.origin,
        target: row['target'] ?? '',
        environment: this.opts.environment,
        message: row['changes'] ?? row['changes_text'] ?? '',
      },
    });
    return { ok: true, id, message, created: us, eventTime: us };
  }

  async markSent(c: SqlClient, ids: string[]): Promise<number> {
    if (!ids.length) return 0;
    const q = (n: string) => c.ident(n);
    const ad = q('additional_data');
    const set =
      c.dialect === 'postgres'
        ? `${ad} = CASE WHEN ${ad} IS NULL OR jsonb_typeof(${ad}::jsonb) = 'null' THEN '{"is_sent": true}'::jsonb ELSE ${ad}::jsonb || '{"is_sent": true}'::jsonb END`
        : `${ad} = JSON_SET(IF(${ad} IS NULL OR JSON_TYPE(${ad}) <> 'OBJECT', '{}', ${ad}), '$.is_sent', JSON_EXTRACT('true', '$'))`;
    return c.execute(`UPDATE ${q(this.table)} SET ${set} WHERE ${q('id')} IN (${placeholders(c, ids.length)})`, ids);
  }

  async purge(c: SqlClient, cutoffIso: string, limit: number): Promise<number> {
    const q = (n: string) => c.ident(n);
    if (c.dialect === 'postgres') {
      return c.execute(
        `DELETE FROM ${q(this.table)} WHERE ${q('id')} IN (SELECT ${q('id')} FROM ${q(this.table)}
                        WHERE (${q('additional_data')}::jsonb ->> 'is_sent') = 'true' AND ${q('timestamp')} < $1 ORDER BY ${q('id')} LIMIT ${limit})`,
        [cutoffIso],
      );
    }
    return c.execute(
      `DELETE FROM ${q(this.table)} WHERE JSON_UNQUOTE(JSON_EXTRACT(${q('additional_data')}, '$.is_sent')) IN ('true', '1')
                      AND ${q('timestamp')} < ? ORDER BY ${q('id')} LIMIT ${limit}`,
      [mysqlTime(cutoffIso)],
    );
  }

  async unsent(c: SqlClient, cap: number): Promise<number> {
    const r = await c.query(`SELECT count(*) AS n FROM (SELECT 1 AS x FROM ${c.ident(this.table)} WHERE ${this.unsentSql} LIMIT ${cap}) s`);
    return Number(r[0]?.['n'] ?? 0);
  }
}
