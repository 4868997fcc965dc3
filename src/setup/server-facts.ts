import { hostname, networkInterfaces } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import type pg from 'pg';
import { existsHere, inspectLogDirectory, type LogAccess } from '../core/access.js';
import { describePgError } from '../core/postgres.js';
import { parsePgauditLog } from './pgaudit-log.js';
import type { ServerTarget } from './server-target.js';

export { accessFix, currentUser, inspectLogDirectory, pathInfoOf, type LogAccess, type OsUser, type PathInfo } from '../core/access.js';
/**
 * The facts `auditship check` and `init` judge a server by, read once: settings, the configuration files as
 * PostgreSQL parsed them, per-role settings, the log directory as this OS user sees it (who owns what, which
 * permission is missing), and whether the server runs on this machine at all. Only catalog reads and stat calls;
 * nothing is changed.
 */

export interface SettingFact {
  value: string;
  /** pg_settings.source: default, configuration file, user, database, … */
  source: string;
  sourcefile: string | null;
  pendingRestart: boolean;
}

/** One line of pg_file_settings. */
export interface FileSetting {
  file: string;
  line: number;
  seqno: number;
  name: string;
  value: string;
  applied: boolean;
  error: string | null;
}

/** A pgaudit.log set with ALTER ROLE / ALTER DATABASE (pg_db_role_setting); names as SQL identifiers, null = all. */
export interface RoleSetting {
  role: string | null;
  database: string | null;
  value: string;
}

export interface ServerFacts {
  /** The server as shown (no password). */
  where: string;
  /** The connected role and database, as SQL identifiers. */
  role: string;
  database: string;
  superuser: boolean;
  /** Superuser or member of pg_read_all_settings: data_directory, log_directory, … are visible. */
  readAllSettings: boolean;
  version: string;
  versionNum: number;
  /** pg_settings rows visible to the role (superuser-only ones are missing without the privilege). */
  settings: Map<string, SettingFact>;
  /** current_setting('pgaudit.log') while pgaudit is not loaded (a placeholder from the configuration), else null. */
  pgauditPlaceholder: string | null;
  /** The pgaudit extension's version in the connected database; null when not created. */
  extension: string | null;
  /** pg_file_settings for the settings checked; null when the role may not read it. */
  fileSettings: FileSetting[] | null;
  roleSettings: RoleSetting[];
  logAccess: LogAccess;
}

const CHECKED_SETTINGS = [
  'shared_preload_libraries',
  'logging_collector',
  'log_destination',
  'log_connections',
  'log_disconnections',
  'log_directory',
  'data_directory',
  'log_filename',
  'log_file_mode',
  'log_timezone',
  'cluster_name',
  'port',
  'server_version',
  'pgaudit.log',
];

/** True when `host` is this machine: a unix socket, loopback, or an address of one of its interfaces. */
export function isLocalHost(host: string): boolean {
  if (host.startsWith('/') || host.startsWith('@')) return true;
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h === '::1' || /^127\./.test(h) || h === '0.0.0.0' || h === hostname().toLowerCase()) return true;
  return Object.values(networkInterfaces()).some((list) => list?.some((i) => i.address.toLowerCase() === h));
}

/** The log directory: log_directory resolved against data_directory. */
export function resolveLogDirectory(dataDir: string, logDirectory: string): string {
  return isAbsolute(logDirectory) ? logDirectory : resolve(dataDir, logDirectory);
}

/** Reads everything the checks need. Only catalog reads; nothing is changed. Fails with one line. */
export async function readServerFacts(client: pg.Client, t: ServerTarget): Promise<ServerFacts> {
  try {
    return await readFacts(client, t);
  } catch (err) {
    throw describePgError(err, { component: 'pg', url: t.config.connectionString ?? t.where, action: 'reading the server settings' });
  }
}

async function readFacts(client: pg.Client, t: ServerTarget): Promise<ServerFacts> {
  const who = (
    await client.query<{ role: string; db: string; su: boolean; read_all: boolean; num: string; version: string }>(
      `SELECT quote_ident(current_user) AS role, quote_ident(current_database()) AS db,
            coalesce((SELECT rolsuper FROM pg_roles WHERE rolname = current_user), false) AS su,
            pg_has_role('pg_read_all_settings', 'USAGE') AS read_all,
            current_setting('server_version_num') AS num, current_setting('server_version') AS version`,
    )
  ).rows[0]!;
  const settings = new Map<string, SettingFact>();
  const rows = await client.query<{
    name: string;
    setting: string;
    reset_val: string;
    boot_val: string;
    source: string;
    sourcefile: string | null;
    pending_restart: boolean;
  }>(`SELECT name, setting, reset_val, boot_val, source, sourcefile, pending_restart FROM pg_settings WHERE name = ANY($1) OR name LIKE 'pgaudit.%'`, [
    CHECKED_SETTINGS,
  ]);
  for (const r of rows.rows) settings.set(r.name, { value: r.setting ?? '', source: r.source, sourcefile: r.sourcefile, pendingRestart: r.pending_restart });
  const loaded = [...settings.keys()].some((k) => k.startsWith('pgaudit.'));
  // Without pgaudit loaded nothing is audited, and connectServer's SET made (or overwrote) the placeholder:
  // RESET gives back the configured value, if any ('' when the SET created it).
  let placeholder: string | null = null;
  if (!loaded) {
    await client.query('RESET pgaudit.log').catch(() => {});
    placeholder = (await client.query<{ v: string | null }>(`SELECT current_setting('pgaudit.log', true) AS v`)).rows[0]?.v || null;
  }
  const extension = (await client.query<{ v: string }>(`SELECT extversion AS v FROM pg_extension WHERE extname = 'pgaudit'`)).rows[0]?.v ?? null;
  let fileSettings: FileSetting[] | null;
  try {
    const r = await client.query<{
      sourcefile: string;
      sourceline: number;
      seqno: number;
      name: string;
      setting: string | null;
      applied: boolean;
      error: string | null;
    }>(`SELECT sourcefile, sourceline, seqno, name, setting, applied, error FROM pg_file_settings WHERE name = ANY($1) ORDER BY seqno`, [CHECKED_SETTINGS]);
    fileSettings = r.rows.map((x) => ({
      file: x.sourcefile,
      line: x.sourceline,
      seqno: x.seqno,
      name: x.name,
      value: x.setting ?? '',
      applied: x.applied,
      error: x.error,
    }));
  } catch (err) {
    if ((err as { code?: string }).code !== '42501') throw err;
    fileSettings = null;
  }
  const roleSettings = (
    await client.query<{ role: string | null; db: string | null; cfg: string }>(
      `SELECT CASE WHEN s.setrole = 0 THEN NULL ELSE quote_ident(r.rolname) END AS role,
            CASE WHEN s.setdatabase = 0 THEN NULL ELSE quote_ident(d.datname) END AS db, c.cfg
     FROM pg_db_role_setting s LEFT JOIN pg_roles r ON r.oid = s.setrole LEFT JOIN pg_database d ON d.oid = s.setdatabase,
          unnest(s.setconfig) AS c(cfg)
     WHERE lower(left(c.cfg, 12)) = 'pgaudit.log='
     ORDER BY 1 NULLS FIRST, 2 NULLS FIRST`,
    )
  ).rows.map((r) => ({ role: r.role, database: r.db, value: r.cfg.slice(12) }));
  const own = rows.rows.find((r) => r.name === 'pgaudit.log' && r.source === 'session');
  if (own)
    settings.set(
      'pgaudit.log',
      serverPgauditLog(own.reset_val, own.boot_val, settings.get('pgaudit.log')!, { role: who.role, database: who.db, roleSettings, fileSettings }),
    );
  const dataDir = settings.get('data_directory')?.value;
  const logDir = settings.get('log_directory')?.value;
  let logAccess: LogAccess;
  if (!isLocalHost(t.host)) logAccess = { kind: 'remote', host: t.host };
  else if (dataDir === undefined || logDir === undefined) logAccess = { kind: 'hidden' };
  else if (!existsHere(dataDir)) logAccess = { kind: 'not_here', dataDir };
  else logAccess = inspectLogDirectory(resolveLogDirectory(dataDir, logDir));
  return {
    where: t.where,
    role: who.role,
    database: who.db,
    superuser: who.su,
    readAllSettings: who.su || who.read_all,
    version: who.version,
    versionNum: Number(who.num),
    settings,
    pgauditPlaceholder: placeholder,
    extension,
    fileSettings,
    roleSettings,
    logAccess,
  };
}

/**
 * pgaudit.log as the server runs it, when this session turned it off (connectServer): pg_settings shows that
 * SET. The value the session started with is reset_val; where it came from is no longer shown, so it is told
 * from the rest: a valid per-role or per-database value for this session, else the built-in default when
 * reset_val is that, else a configuration file when one sets it, else the command line.
 */
export function serverPgauditLog(
  resetVal: string,
  bootVal: string,
  fact: SettingFact,
  session: { role: string; database: string; roleSettings: RoleSetting[]; fileSettings: FileSetting[] | null },
): SettingFact {
  const perRole = session.roleSettings.some(
    (r) => (r.role === null || r.role === session.role) && (r.database === null || r.database === session.database) && parsePgauditLog(r.value).valid,
  );
  const source = perRole
    ? 'user'
    : resetVal === bootVal
      ? 'default'
      : session.fileSettings?.some((f) => f.name === 'pgaudit.log')
        ? 'configuration file'
        : 'command line';
  return { ...fact, value: resetVal, source, sourcefile: null };
}
