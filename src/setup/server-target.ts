import { userInfo } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { ExitError } from '../core/errors.js';
import { describePgError, maskUrl } from '../core/postgres.js';
/**
 * Which PostgreSQL server `check` and `init` talk to (a URL, $AUDITSHIP_PG_URL, the config, or libpq's own
 * defaults the way psql takes them), how to name it without its password, and connecting to it.
 */

/** The server to check, and how to show it. */
export interface ServerTarget {
  /** How the server was chosen: --url, $AUDITSHIP_PG_URL, the config, or the local default (libpq env / socket). */
  origin: 'url' | 'env' | 'config' | 'default';
  config: pg.ClientConfig;
  /** The server as a URL without password (a libpq-style ?host=/dir URL for a socket). */
  where: string;
  /** A socket directory or a host name. */
  host: string;
}

/** resolveTarget's default, in words (check's and init's --help). */
export const DEFAULT_TARGET = '$AUDITSHIP_PG_URL, else PGHOST/PGPORT/PGUSER/PGDATABASE or the local socket /var/run/postgresql as this OS user, like psql';

/**
 * The server to connect to: `url` (postgres://…) when given, else PostgreSQL's own defaults the way psql
 * takes them: PGHOST (else the socket directory /var/run/postgresql), PGPORT, PGUSER (else this OS user),
 * PGDATABASE (else the user name), PGPASSWORD.
 */
export function resolveTarget(url: string | undefined, origin: ServerTarget['origin'], env: NodeJS.ProcessEnv = process.env): ServerTarget {
  if (url !== undefined) {
    const flag = origin === 'url' ? '--url' : origin === 'env' ? 'AUDITSHIP_PG_URL' : 'the config';
    if (!/^postgres(ql)?:\/\//i.test(url)) throw new ExitError(2, `${flag}: ${JSON.stringify(maskUrl(url))} is not a postgres:// or postgresql:// URL`);
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new ExitError(2, `${flag}: not a valid URL`);
    }
    const host = u.searchParams.get('host') ?? (decodeURIComponent(u.hostname) || env['PGHOST'] || 'localhost');
    return { origin, config: { connectionString: url }, where: maskUrl(url), host };
  }
  const host = env['PGHOST'] || '/var/run/postgresql';
  const port = Number(env['PGPORT'] || 5432);
  const user = env['PGUSER'] || userInfo().username;
  const database = env['PGDATABASE'] || user;
  const where = host.startsWith('/')
    ? `postgresql://${encodeURIComponent(user)}@/${encodeURIComponent(database)}?host=${host}&port=${port}`
    : `postgresql://${encodeURIComponent(user)}@${host.includes(':') ? `[${host}]` : host}:${port}/${encodeURIComponent(database)}`;
  return { origin, config: { host, port, user, database }, where, host };
}

/** How to name another server, for connection failures. */
export function targetHint(t: ServerTarget): string {
  return t.origin === 'default'
    ? 'give the server with --url postgres://USER@HOST:PORT/DB (or set AUDITSHIP_PG_URL, or PGHOST/PGPORT/PGUSER), or run as the postgres OS user'
    : 'check the URL given with --url (or AUDITSHIP_PG_URL), and that PostgreSQL is running';
}

/**
 * Connects; throws a one-line ExitError(1) naming the server (never its password) and what to do.
 * auditship's own reads are kept out of the audit log: the session's first statement sets pgaudit.log to
 * none (pgaudit does not log that SET itself, and nothing after it). Only a superuser may (or a role granted
 * SET on the parameter); for others it is refused, and they carry on, audited like any role.
 */
export async function connectServer(t: ServerTarget): Promise<pg.Client> {
  const client = new pg.Client({ ...t.config, application_name: 'auditship', connectionTimeoutMillis: 10_000 });
  client.on('error', () => {
    /* surfaces on the next query */
  });
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => {});
    throw new ExitError(1, `${connectionProblem(t, err)}; ${targetHint(t)}`);
  }
  await client.query(`SET pgaudit.log = 'none'`).catch(() => {});
  return client;
}

/** One sentence for a failed connection. */
export function connectionProblem(t: ServerTarget, err: unknown): string {
  const code = (err as { code?: string })?.code;
  if (code === 'ENOENT' && t.host.startsWith('/')) {
    const port = (t.config.port ?? (t.config.connectionString ? new URL(t.config.connectionString).searchParams.get('port') : null)) || 5432;
    return `cannot connect to ${t.where}: there is no PostgreSQL socket ${join(t.host, `.s.PGSQL.${port}`)} (is PostgreSQL running on this machine, on that port?)`;
  }
  // describePgError's "problem; remedy" becomes "problem (remedy)": the line's fix names the server to give.
  const msg = describePgError(err, { component: 'pg', url: t.config.connectionString ?? t.where, action: 'connecting' }).message;
  const cut = msg.indexOf('; ');
  return cut > 0 ? `${msg.slice(0, cut)} (${msg.slice(cut + 2)})` : msg;
}
