import { ConnectorError } from './errors.js';

/**
 * What every PostgreSQL connector shares: URLs shown without their password, and one translation of
 * PostgreSQL and connection failures into one-line ConnectorErrors — with one table deciding what is worth
 * retrying (the follow daemon retries those with backoff; one-shot commands report them).
 */

/** The URL with its password (and a password= parameter) replaced by ****. */
export function maskUrl(url: string): string {
  let out = url;
  try {
    const u = new URL(url);
    if (u.password) u.password = '****';
    for (const key of [...u.searchParams.keys()]) if (/pass/i.test(key)) u.searchParams.set(key, '****');
    out = u.toString();
  } catch {
    /* not a URL: masked below */
  }
  // Also what the URL parser does not see as a password: `user:pw@host` without a scheme parses as the scheme
  // "user:", and key=value connection strings have no URL form at all.
  out = out.includes('://') ? out.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/@\s]*):[^@\s/]*@/i, '$1:****@') : out.replace(/^([^:/@\s]*):[^@\s]*@/, '$1:****@');
  return out.replace(/(password=)('(?:[^'\\]|\\.)*'|[^&\s]*)/gi, '$1****');
}

/**
 * SQLSTATE classes after which trying again later can succeed: connection exceptions, transaction rollbacks
 * (serialization, deadlock), insufficient resources, operator intervention (shutdown, cancel), system errors,
 * lock not available.
 */
const RETRYABLE_CLASSES = new Set(['08', '40', '53', '57', '58']);

export interface PgErrorContext {
  /** The connector reporting (ConnectorError.component). */
  component: string;
  url: string;
  /** What was being done, e.g. 'reading the audit table'. */
  action: string;
  /** The remedy for a missing privilege (42501). */
  privilegeHint?: string;
}

/** One line for a failure of PostgreSQL or of the connection to it: what went wrong and how to fix it. */
export function describePgError(err: unknown, ctx: PgErrorContext): ConnectorError {
  if (err instanceof ConnectorError) return err;
  const e = err as { code?: string; message?: string; severity?: string };
  const where = maskUrl(ctx.url);
  const first = String(e?.message ?? err)
    .split('\n')[0]!
    .replaceAll(ctx.url, where);
  const fail = (code: string, message: string, retryable: boolean) => new ConnectorError(ctx.component, code, message, retryable, { cause: err });
  const code = e?.code ?? '';
  switch (code) {
    case 'ECONNREFUSED':
      return fail('connection_refused', `cannot connect to ${where}: connection refused; is PostgreSQL running and listening on that host and port?`, true);
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return fail('host_not_found', `cannot connect to ${where}: host not found`, code === 'EAI_AGAIN');
    case 'ETIMEDOUT':
    case 'ECONNRESET':
    case 'EPIPE':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return fail('connection_failed', `cannot connect to ${where}: ${first}`, true);
    case '28P01':
    case '28000':
      return fail('auth_failed', `cannot connect to ${where}: ${first}; check the user and password, and pg_hba.conf`, true);
    case '3D000':
      return fail('database_not_found', `cannot connect to ${where}: ${first}`, true);
    case '42P01':
      return fail('table_not_found', `${ctx.action} failed: ${first} (42P01); check the table name and the URL's database`, true);
    case '42501':
      return fail('permission_denied', `${ctx.action} failed: ${first} (42501); ${ctx.privilegeHint ?? 'grant the privilege to this user'}`, true);
    case '55P03':
      return fail('lock_conflict', `${ctx.action} failed: ${first} (55P03); try again when the tables are less busy`, true);
  }
  if (RETRYABLE_CLASSES.has(code.slice(0, 2))) return fail('server_unavailable', `${ctx.action} on ${where} failed: ${first} (${code})`, true);
  if (e?.severity && code) return fail('sql_error', `${ctx.action} failed: ${first} (SQLSTATE ${code})`, false);
  // No SQLSTATE: the connection broke (terminated, reset, timed out) — PostgreSQL may be back soon.
  return fail('connection_lost', `PostgreSQL at ${where} is unreachable while ${ctx.action}: ${first}`, true);
}
