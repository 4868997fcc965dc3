import mysql from 'mysql2/promise';
import pg from 'pg';
import { ConnectorError } from '../../core/errors.js';
import { describePgError, maskUrl } from '../../core/postgres.js';

/**
 * One small client interface over PostgreSQL (`pg`) and MariaDB/MySQL (`mysql2`) for the SQL table sources
 * (sql_outbox, django_auditlog): queries return rows of strings (exact BIGINTs, times as text, JSON as its
 * text), `p(n)` writes the n-th placeholder, and failures become one-line ConnectorErrors.
 */
export type Dialect = 'postgres' | 'mysql';

export type SqlValue = string | number | boolean | null;
export type SqlRow = Record<string, string | null>;

export interface SqlClient {
  readonly dialect: Dialect;
  /** The URL without its password. */
  readonly where: string;
  /** Server version text (SELECT version()). */
  readonly version: string;
  /** FOR UPDATE SKIP LOCKED: PostgreSQL 9.5+, MySQL 8.0+, MariaDB 10.6+. */
  readonly skipLocked: boolean;
  /** The n-th (1-based) parameter placeholder. */
  p(n: number): string;
  /** A quoted identifier; `a.b` is quoted part by part. */
  ident(name: string): string;
  query(sql: string, params?: SqlValue[]): Promise<SqlRow[]>;
  /** Runs a statement; returns the rows it changed. */
  execute(sql: string, params?: SqlValue[]): Promise<number>;
  begin(): Promise<void>;
  commit(): Promise<void>;
  rollback(): Promise<void>;
  /** A session-level named lock, not waited for; false when another session holds it. */
  tryLock(name: string): Promise<boolean>;
  unlock(name: string): Promise<void>;
  close(): Promise<void>;
}

export function dialectOf(url: string): Dialect | null {
  if (/^postgres(ql)?:\/\//i.test(url)) return 'postgres';
  if (/^(mysql|mariadb):\/\//i.test(url)) return 'mysql';
  return null;
}

function splitIdent(name: string): string[] {
  return name.split('.');
}

/** Every value as text or null, in place (no copy of the rows: a chunk of large messages is big enough once). */
function normalizeRows(rows: Record<string, unknown>[]): SqlRow[] {
  for (const row of rows) {
    for (const k in row) {
      const v = row[k];
      if (typeof v === 'string' || v === null) continue;
      row[k] =
        v === undefined
          ? null
          : v instanceof Date
            ? v.toISOString()
            : Buffer.isBuffer(v)
              ? v.toString('utf8')
              : typeof v === 'object'
                ? JSON.stringify(v)
                : String(v);
    }
  }
  return rows as SqlRow[];
}

/** One line for a failure of the server or the connection; `what` is what was being done. */
export function describeSqlError(
  err: unknown,
  ctx: { component: string; url: string; dialect: Dialect; action: string; privilegeHint?: string },
): ConnectorError {
  if (err instanceof ConnectorError) return err;
  if (ctx.dialect === 'postgres') return describePgError(err, ctx);
  const e = err as { code?: string; errno?: number; message?: string; sqlMessage?: string; fatal?: boolean };
  const where = maskUrl(ctx.url);
  const first = String(e?.sqlMessage ?? e?.message ?? err).split('\n')[0]!;
  const fail = (code: string, message: string, retryable: boolean) => new ConnectorError(ctx.component, code, message, retryable, { cause: err });
  switch (e?.code) {
    case 'ECONNREFUSED':
      return fail('connection_refused', `cannot connect to ${where}: connection refused; is MariaDB/MySQL running and listening on that host and port?`, true);
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return fail('host_not_found', `cannot connect to ${where}: host not found`, e.code === 'EAI_AGAIN');
    case 'ER_ACCESS_DENIED_ERROR':
    case 'ER_DBACCESS_DENIED_ERROR':
      return fail('auth_failed', `cannot connect to ${where}: ${first}; check the user and password in url`, true);
    case 'ER_BAD_DB_ERROR':
      return fail('database_not_found', `cannot connect to ${where}: ${first}; check the database in url`, true);
    case 'ER_NO_SUCH_TABLE':
      return fail('table_not_found', `${ctx.action} failed: ${first}; check table (and the URL's database)`, true);
    case 'ER_TABLEACCESS_DENIED_ERROR':
    case 'ER_COLUMNACCESS_DENIED_ERROR':
    case 'ER_SPECIFIC_ACCESS_DENIED_ERROR':
      return fail('permission_denied', `${ctx.action} failed: ${first}; ${ctx.privilegeHint ?? 'grant the privilege to this user'}`, true);
    case 'ER_BAD_FIELD_ERROR':
      return fail('column_not_found', `${ctx.action} failed: ${first}; check the *_column settings`, false);
    case 'ER_LOCK_WAIT_TIMEOUT':
    case 'ER_LOCK_DEADLOCK':
      return fail('lock_conflict', `${ctx.action} failed: ${first}; try again when the table is less busy`, true);
    case 'ETIMEDOUT':
    case 'ECONNRESET':
    case 'EPIPE':
    case 'PROTOCOL_CONNECTION_LOST':
      return fail('connection_lost', `MariaDB/MySQL at ${where} is unreachable while ${ctx.action}: ${first}`, true);
    default:
      break; // any other code (or none): below
  }
  if (e?.fatal) return fail('connection_lost', `MariaDB/MySQL at ${where} is unreachable while ${ctx.action}: ${first}`, true);
  return fail('sql_error', `${ctx.action} failed: ${first}${e?.code ? ` (${e.code})` : ''}`, false);
}

/** Connects; throws a ConnectorError (retryable when it may pass). */
export async function openSqlClient(url: string, component: string): Promise<SqlClient> {
  const dialect = dialectOf(url);
  if (!dialect)
    throw new ConnectorError(
      component,
      'bad_url',
      `url must start with postgres:// or mysql:// (or mariadb://), not ${maskUrl(url).split('://')[0]}://`,
      false,
    );
  return dialect === 'postgres' ? openPg(url, component) : openMysql(url, component);
}

async function openPg(url: string, component: string): Promise<SqlClient> {
  const client = new pg.Client({ connectionString: url, application_name: 'auditship', keepAlive: true });
  client.on('error', () => {
    /* surfaces on the next query */
  });
  const fail = (err: unknown, action: string) => describeSqlError(err, { component, url, dialect: 'postgres', action });
  let version = '';
  try {
    await client.connect();
    // auditship's own reads are not audited (pgaudit feedback loop) — first, or the statements before it
    // are; times as UTC text; batch reads are short index ranges where JIT and parallel plans only cost time.
    await client.query(`SET pgaudit.log = 'none'`).catch(() => {});
    await client.query(`SET TimeZone = 'UTC'; SET DateStyle = 'ISO'; SET jit = off`);
    version = String((await client.query<{ v: string }>('SELECT version() AS v')).rows[0]?.v ?? '');
  } catch (err) {
    await client.end().catch(() => {});
    throw fail(err, 'connecting');
  }
  const run = async (sql: string, params?: SqlValue[]) => {
    try {
      return await client.query({ text: sql, values: params ?? [] });
    } catch (err) {
      throw fail(err, 'querying');
    }
  };
  return {
    dialect: 'postgres',
    where: maskUrl(url),
    version,
    skipLocked: true,
    p: (n) => `$${n}`,
    ident: (name) =>
      splitIdent(name)
        .map((s) => `"${s.replaceAll('"', '""')}"`)
        .join('.'),
    async query(sql, params) {
      const r = await run(sql, params);
      return normalizeRows(r.rows as Record<string, unknown>[]);
    },
    async execute(sql, params) {
      return (await run(sql, params)).rowCount ?? 0;
    },
    async begin() {
      await run('BEGIN');
    },
    async commit() {
      await run('COMMIT');
    },
    async rollback() {
      await client.query('ROLLBACK').catch(() => {});
    },
    async tryLock(name) {
      const r = await run('SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS ok', [name]);
      return r.rows[0]?.ok === true;
    },
    async unlock(name) {
      await run('SELECT pg_advisory_unlock(hashtextextended($1, 0))', [name]).catch(() => {});
    },
    async close() {
      await client.end().catch(() => {});
    },
  };
}

/** MariaDB 10.6+ and MySQL 8.0+ have SKIP LOCKED. */
export function mysqlHasSkipLocked(version: string): boolean {
  const m = /^(\d+)\.(\d+)/.exec(version);
  if (!m) return false;
  const [major, minor] = [Number(m[1]), Number(m[2])];
  if (/mariadb/i.test(version)) return major > 10 || (major === 10 && minor >= 6);
  return major >= 8;
}

async function openMysql(url: string, component: string): Promise<SqlClient> {
  const fail = (err: unknown, action: string) => describeSqlError(err, { component, url, dialect: 'mysql', action });
  let conn: mysql.Connection;
  let version = '';
  try {
    const u = new URL(url.replace(/^mariadb:/i, 'mysql:'));
    conn = await mysql.createConnection({
      host: u.hostname || '127.0.0.1',
      port: u.port ? Number(u.port) : 3306,
      user: decodeURIComponent(u.username) || undefined,
      password: decodeURIComponent(u.password) || undefined,
      database: decodeURIComponent(u.pathname.replace(/^\//, '')) || undefined,
      supportBigNumbers: true,
      bigNumberStrings: true,
      dateStrings: true,
      timezone: 'Z',
      charset: 'utf8mb4',
      // JSON columns arrive as their text (stored and fingerprinted as the server wrote them); MariaDB
      // announces them as a BLOB with the extended format 'json'.
      typeCast: (field, next) => (field.type === 'JSON' || (field as { extendedFormat?: string }).extendedFormat === 'json' ? field.string('utf8') : next()),
    });
    conn.on('error', () => {
      /* surfaces on the next query */
    });
    // TIMESTAMP columns in UTC; row locks released for rows the WHERE rejects.
    await conn.query(`SET time_zone = '+00:00'`);
    await conn.query('SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED');
    const [rows] = await conn.query('SELECT version() AS v');
    version = String((rows as { v: string }[])[0]?.v ?? '');
  } catch (err) {
    throw fail(err, 'connecting');
  }
  const run = async (sql: string, params?: SqlValue[]) => {
    try {
      const [r] = await conn.query(sql, params ?? []);
      return r;
    } catch (err) {
      throw fail(err, 'querying');
    }
  };
  return {
    dialect: 'mysql',
    where: maskUrl(url),
    version,
    skipLocked: mysqlHasSkipLocked(version),
    p: () => '?',
    ident: (name) =>
      splitIdent(name)
        .map((s) => `\`${s.replaceAll('`', '``')}\``)
        .join('.'),
    async query(sql, params) {
      return normalizeRows((await run(sql, params)) as Record<string, unknown>[]);
    },
    async execute(sql, params) {
      return Number(((await run(sql, params)) as { affectedRows?: number }).affectedRows ?? 0);
    },
    async begin() {
      await run('START TRANSACTION');
    },
    async commit() {
      await run('COMMIT');
    },
    async rollback() {
      await conn.query('ROLLBACK').catch(() => {});
    },
    async tryLock(name) {
      const rows = (await run('SELECT GET_LOCK(?, 0) AS ok', [name.slice(0, 64)])) as { ok: unknown }[];
      return String(rows[0]?.ok) === '1';
    },
    async unlock(name) {
      await run('SELECT RELEASE_LOCK(?)', [name.slice(0, 64)]).catch(() => {});
    },
    async close() {
      await conn.end().catch(() => {});
    },
  };
}
