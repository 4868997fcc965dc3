import { accessSync, constants, readdirSync, readFileSync, statSync } from 'node:fs';
import { hostname, networkInterfaces, userInfo } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import pg from 'pg';
import { ExitError } from '../core/errors.js';
import { describePgError, maskUrl } from '../core/postgres.js';

/**
 * Is this PostgreSQL server ready to be audited with pgaudit and shipped by auditship? Facts are read once
 * (settings, the configuration files as PostgreSQL parsed them, per-role settings, the log directory as
 * this OS user sees it) and turned into one CheckResult per check by pure functions, so that every case
 * is testable without a server. Each failed check carries the exact statement(s) that fix it.
 *
 * What PostgreSQL 15 + pgaudit 1.7 do with an invalid pgaudit.log (found on throwaway clusters):
 *  - in postgresql.conf or postgresql.auto.conf: a WARNING at start (in the server log only) and the
 *    default `none` — nothing is audited, and `SHOW pgaudit.log` says `none` with source `default`;
 *    pg_file_settings keeps the value with applied = false, error = 'setting could not be applied'. At a
 *    reload a running server keeps its previous value until the next restart.
 *  - ALTER SYSTEM / ALTER ROLE / ALTER DATABASE … SET: refused (22023) while pgaudit is loaded, but
 *    accepted as a placeholder while it is not — and refused later, when pgaudit is loaded: the server-wide
 *    value falls back to `none`, per-role and per-database values are ignored with a WARNING at each login.
 *  - the list must be comma-separated: `'read write'` is refused ("List syntax is invalid").
 */

/** The result of one check: a line `✔ what` or `✘ what — fix: fix`. */
export interface CheckResult {
  /** Which check (stable): connection, preload, extension, pgaudit_log, pgaudit_log_role, collector, destination, connections, log_directory, or pipeline checks. */
  id: string;
  ok: boolean;
  what: string;
  /** The exact remedy (SQL statements, shell commands). */
  fix?: string;
  /** The SQL statements of the fix, in order (`auditship init` lists them). */
  sql?: string[];
  /** Could not be checked from here: printed with – and not a failure. */
  skipped?: boolean;
}

/** The line printed for a result. */
export function formatCheck(r: CheckResult): string {
  if (r.skipped) return `– ${r.what}${r.fix ? ` — to check it: ${r.fix}` : ''}`;
  return `${r.ok ? '✔' : '✘'} ${r.what}${!r.ok && r.fix ? ` — fix: ${r.fix}` : ''}`;
}

/** True when a result counts as a failure (exit 1). */
export function failed(r: CheckResult): boolean {
  return !r.ok && !r.skipped;
}

/* ---------------------------------------------------------------------------------------------------- */
/* pgaudit.log                                                                                           */

/** pgaudit's classes (pgaudit.c check_pgaudit_log), as bits. MISC implies MISC_SET where pgaudit tests it. */
const CLASS_BITS: Record<string, number> = {
  read: 1,
  write: 2,
  function: 4,
  role: 8,
  ddl: 16,
  misc: 32,
  misc_set: 64,
  all: 127,
  none: 0,
};
const CLASS_ORDER = ['read', 'write', 'function', 'role', 'ddl', 'misc', 'misc_set'] as const;
/** What `auditship check` proposes when nothing valid is left. */
export const DEFAULT_PGAUDIT_LOG = 'read, write, ddl, role';

export interface PgauditLogToken {
  /** As written (quotes removed). */
  text: string;
  subtract: boolean;
  /** The class, lower-case; null when not a class. */
  className: string | null;
}

export interface ParsedPgauditLog {
  /** False when PostgreSQL cannot split the value into a list (e.g. `read write`, `read,,write`, `read;write`). */
  syntaxOk: boolean;
  tokens: PgauditLogToken[];
  /** Tokens that are not classes, as written (with their `-`). */
  invalid: string[];
  /** The classes audited (upper-case, in pgaudit's order); empty: nothing is audited. */
  audited: string[];
  /** Valid: PostgreSQL accepts it. */
  valid: boolean;
}

/**
 * Splits a list the way PostgreSQL's SplitIdentifierString does for GUC_LIST_INPUT settings: comma
 * separated, whitespace around items ignored, double quotes for an item as written, unquoted items
 * lower-cased; an empty item or two items without a comma between them is a syntax error (null).
 */
export function splitGucList(raw: string): string[] | null {
  const out: string[] = [];
  let i = 0;
  const isSpace = (c: string | undefined) => c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\f' || c === '\v';
  while (isSpace(raw[i])) i++;
  if (i >= raw.length) return out;
  for (;;) {
    let name = '';
    if (raw[i] === '"') {
      i++;
      for (;;) {
        if (i >= raw.length) return null; // unterminated quote
        if (raw[i] === '"') {
          if (raw[i + 1] === '"') {
            name += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        name += raw[i++];
      }
      if (name === '') return null;
    } else {
      const start = i;
      while (i < raw.length && raw[i] !== ',' && !isSpace(raw[i])) i++;
      if (i === start) return null; // empty item
      name = raw.slice(start, i).toLowerCase();
    }
    out.push(name);
    while (isSpace(raw[i])) i++;
    if (i >= raw.length) return out;
    if (raw[i] !== ',') return null; // two items without a comma
    i++;
    while (isSpace(raw[i])) i++;
  }
}

function tokenOf(text: string): PgauditLogToken {
  const subtract = text.startsWith('-');
  const name = (subtract ? text.slice(1) : text).toLowerCase();
  return { text, subtract, className: name in CLASS_BITS ? name : null };
}

function auditedOf(tokens: PgauditLogToken[]): string[] {
  let bits = 0;
  for (const t of tokens) {
    if (t.className === null) continue;
    const b = CLASS_BITS[t.className]!;
    bits = t.subtract ? bits & ~b : bits | b;
  }
  return CLASS_ORDER.filter((c) => bits & CLASS_BITS[c]!).map((c) => c.toUpperCase());
}

/** Parses a pgaudit.log value as pgaudit does: classes, `-class` subtracts, case-insensitive. */
export function parsePgauditLog(value: string): ParsedPgauditLog {
  const items = splitGucList(value);
  // A value PostgreSQL cannot split is still read leniently, to tell which classes were meant.
  const tokens = (items ?? value.split(/[\s,;]+/).filter(Boolean)).map(tokenOf);
  const invalid = tokens.filter((t) => t.className === null).map((t) => t.text);
  return { syntaxOk: items !== null, tokens, invalid, audited: auditedOf(tokens), valid: items !== null && invalid.length === 0 };
}

/**
 * The value to set instead: the valid classes kept (in their order, `-` kept), the rest dropped; when that
 * audits nothing, `read, write, ddl, role` — or, with `emptyOk` (a per-role value such as the shipper's
 * own `none`), whatever is left, null when nothing is.
 */
export function correctedPgauditLog(value: string, emptyOk = false): string | null {
  // An item that is not a class may still hold classes run together with another separator ('read;ddl').
  const kept = parsePgauditLog(value)
    .tokens.flatMap((t) =>
      t.className !== null
        ? [t]
        : t.text
            .split(/[^A-Za-z_-]+/)
            .filter(Boolean)
            .map(tokenOf),
    )
    .filter((t) => t.className !== null);
  const text = kept.map((t) => `${t.subtract ? '-' : ''}${t.className}`).join(', ');
  if (emptyOk) return kept.length ? text : null;
  return auditedOf(kept).length ? text : DEFAULT_PGAUDIT_LOG;
}

/** Why a pgaudit.log value is not valid, as a clause: "names 'privilege', which is not a pgaudit class …". */
export function describeInvalid(p: ParsedPgauditLog): string {
  const parts: string[] = [];
  if (p.invalid.length === 1) parts.push(`names '${p.invalid[0]}', which is not a pgaudit class`);
  else if (p.invalid.length > 1) parts.push(`names ${p.invalid.map((t) => `'${t}'`).join(', ')}, which are not pgaudit classes`);
  if (p.invalid.some((t) => /^-?privileges?$/i.test(t))) parts.push('(GRANT and REVOKE are logged by class ROLE)');
  if (!p.syntaxOk) parts.push(`${parts.length ? 'and ' : ''}is not a comma-separated list`);
  return parts.join(' ');
}

/* ---------------------------------------------------------------------------------------------------- */
/* Facts read from the server                                                                           */

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

export interface PathInfo {
  path: string;
  mode: number;
  uid: number;
  gid: number;
  owner: string;
  group: string;
}

export interface OsUser {
  name: string;
  uid: number;
  /** Primary and supplementary groups of this process. */
  gids: number[];
}

/** The server's log directory as this OS user sees it. */
export type LogAccess =
  | { kind: 'remote'; host: string }
  | { kind: 'hidden' }
  | { kind: 'not_here'; dataDir: string }
  | {
      kind: 'local';
      dir: string;
      user: OsUser;
      /** The first path this user cannot traverse (`x`) or read (`rx`, the log directory itself). */
      blocked: { path: string; need: 'x' | 'rx'; info: PathInfo | null } | null;
      missing: boolean;
      files: number;
      newest: { info: PathInfo; readable: boolean } | null;
    };

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

/* ---------------------------------------------------------------------------------------------------- */
/* The checks (pure)                                                                                     */

const ON = (v: string | undefined) => v !== undefined && !['off', 'false', 'no', '0', ''].includes(v.trim().toLowerCase());
const lit = (s: string) => `'${s.replaceAll("'", "''")}'`;
const RELOAD = 'SELECT pg_reload_conf();';

function restartHint(f: ServerFacts): string {
  const cluster = /^(\d+)\/([\w.-]+)$/.exec(f.settings.get('cluster_name')?.value ?? '');
  if (cluster) return `systemctl restart postgresql@${cluster[1]}-${cluster[2]}`;
  const dataDir = f.settings.get('data_directory')?.value;
  return dataDir ? `pg_ctl restart -D ${dataDir}` : 'pg_ctl restart -D DATADIR';
}

function restartFix(f: ServerFacts, sql: string[] = []): Pick<CheckResult, 'fix' | 'sql'> {
  const restart = `restart PostgreSQL (${restartHint(f)})`;
  return sql.length ? { fix: `${sql.join(' ')} then ${restart}`, sql } : { fix: restart };
}

function reloadFix(sql: string[]): Pick<CheckResult, 'fix' | 'sql'> {
  const all = [...sql, RELOAD];
  return { fix: all.join(' '), sql: all };
}

const grantSettings = (f: ServerFacts) => `GRANT pg_read_all_settings TO ${f.role};`;
const hiddenClause = (f: ServerFacts) => `role ${f.role} is neither superuser nor a member of pg_read_all_settings`;

/** The last pg_file_settings line for `name` (the one that wins), if visible. */
function fileWinner(f: ServerFacts, name: string): FileSetting | undefined {
  return f.fileSettings
    ?.filter((s) => s.name === name)
    .sort((a, b) => a.seqno - b.seqno)
    .at(-1);
}

/** The items of a list setting as SHOW prints it (double-quoted items unquoted). */
export function listItems(value: string): string[] {
  return value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => (/^".*"$/.test(s) ? s.slice(1, -1).replaceAll('""', '"') : s));
}

/**
 * ALTER SYSTEM SET shared_preload_libraries with pgaudit added. Each library is its own literal: the
 * setting is a quoted list, so one literal 'a,pgaudit' would name a single library "a,pgaudit" and the
 * server would not start.
 */
export function preloadStatement(current: string): string {
  const items = listItems(current).filter((l) => l !== 'pgaudit');
  return `ALTER SYSTEM SET shared_preload_libraries = ${[...items, 'pgaudit'].map(lit).join(', ')};`;
}

/** pgaudit is loaded when its settings exist (pg_settings lists no placeholders). */
export function pgauditLoaded(f: ServerFacts): boolean {
  return [...f.settings.keys()].some((k) => k.startsWith('pgaudit.'));
}

function preloadCheck(f: ServerFacts): CheckResult {
  const id = 'preload';
  const spl = f.settings.get('shared_preload_libraries');
  if (pgauditLoaded(f)) return { id, ok: true, what: `pgaudit is loaded${spl ? ` (shared_preload_libraries = ${lit(spl.value)})` : ''}` };
  if (!spl) {
    return {
      id,
      ok: false,
      what: `pgaudit is not loaded, and ${hiddenClause(f)}, so shared_preload_libraries cannot be read for the exact fix`,
      fix: `${grantSettings(f)} then run auditship check again (or run it as a superuser)`,
      sql: [grantSettings(f)],
    };
  }
  const pending = fileWinner(f, 'shared_preload_libraries');
  if (spl.pendingRestart && pending && listItems(pending.value).includes('pgaudit')) {
    return {
      id,
      ok: false,
      what: `pgaudit is in shared_preload_libraries (${lit(pending.value)} in ${pending.file}) but not loaded: PostgreSQL has not been restarted since`,
      ...restartFix(f),
    };
  }
  // ALTER SYSTEM replaces the configured list: start from it (it may hold changes awaiting a restart).
  const configured = pending?.value ?? spl.value;
  const now = spl.value ? `now ${lit(spl.value)}` : 'now empty';
  const next = configured !== spl.value ? `; ${configured ? lit(configured) : 'empty'} after the next restart` : '';
  return { id, ok: false, what: `pgaudit is not in shared_preload_libraries (${now}${next})`, ...restartFix(f, [preloadStatement(configured)]) };
}

function extensionCheck(f: ServerFacts): CheckResult {
  const id = 'extension';
  if (f.extension !== null) return { id, ok: true, what: `the pgaudit extension (${f.extension}) is created in database ${f.database}` };
  const sql = 'CREATE EXTENSION pgaudit;';
  return {
    id,
    ok: false,
    what: `the pgaudit extension is not created in database ${f.database}`,
    fix: `${sql} (in database ${f.database}${pgauditLoaded(f) ? '' : ', once pgaudit is loaded'})`,
    sql: [sql],
  };
}

const SERVER_SOURCES = new Set(['default', 'configuration file', 'command line', 'environment variable', 'override']);

function pgauditLogChecks(f: ServerFacts): CheckResult[] {
  const id = 'pgaudit_log';
  const loaded = pgauditLoaded(f);
  const running = f.settings.get('pgaudit.log');
  const winner = fileWinner(f, 'pgaudit.log');
  // The server-wide value: the configuration file line that wins; else what the server reports, when it
  // is not a per-role or per-session value; else the placeholder (pgaudit not loaded); else the default.
  let value: string;
  let where: string;
  if (winner) {
    value = winner.value;
    where = `${winner.file} line ${winner.line}`;
  } else if (running && SERVER_SOURCES.has(running.source)) {
    value = running.value;
    where = running.source === 'default' ? 'the default' : (running.sourcefile ?? running.source);
  } else if (!loaded && f.pgauditPlaceholder !== null) {
    value = f.pgauditPlaceholder;
    where = 'the configuration';
  } else {
    value = 'none';
    where = 'the default';
  }
  const parsed = parsePgauditLog(value);
  const refused = winner?.error != null || !parsed.valid;
  const out: CheckResult[] = [];
  const unverified =
    f.fileSettings === null
      ? `; not compared with the configuration files, which role ${f.role} may not read (GRANT SELECT ON pg_file_settings TO ${f.role}; GRANT EXECUTE ON FUNCTION pg_show_all_file_settings() TO ${f.role};)`
      : '';
  if (refused) {
    const why = parsed.valid ? `was refused by PostgreSQL (${winner?.error})` : describeInvalid(parsed);
    let effect: string;
    if (!loaded) effect = 'PostgreSQL will refuse it when pgaudit is loaded and audit nothing';
    else if (
      running &&
      running.value !== value &&
      parsePgauditLog(running.value).audited.length &&
      SERVER_SOURCES.has(running.source) &&
      running.source !== 'default'
    ) {
      effect = `PostgreSQL refused it at the last reload and still runs with ${lit(running.value)}, but falls back to 'none' (nothing audited) at the next restart`;
    } else effect = "PostgreSQL refused it and runs with the default 'none': nothing is audited";
    const corrected = correctedPgauditLog(value)!;
    const fix = reloadFix([`ALTER SYSTEM SET pgaudit.log = ${lit(corrected)};`]);
    const inConf = winner && !winner.file.endsWith('postgresql.auto.conf') ? ` (and correct line ${winner.line} of ${winner.file}, which this overrides)` : '';
    out.push({ id, ok: false, what: `pgaudit.log = ${lit(value)} in ${where} ${why}; ${effect}`, fix: fix.fix + inConf, sql: fix.sql });
  } else if (parsed.audited.length === 0) {
    out.push({
      id,
      ok: false,
      what: `pgaudit.log = ${lit(value)} (${where}): pgaudit audits nothing`,
      ...reloadFix([`ALTER SYSTEM SET pgaudit.log = ${lit(DEFAULT_PGAUDIT_LOG)};`]),
    });
  } else {
    out.push({
      id,
      ok: true,
      what: `pgaudit.log = ${lit(value)} audits ${parsed.audited.join(', ')}${loaded ? '' : ' (once pgaudit is loaded)'}${unverified}`,
    });
  }
  for (const r of f.roleSettings) {
    const p = parsePgauditLog(r.value);
    if (p.valid) continue;
    const target =
      r.role === null && r.database === null
        ? 'ALTER ROLE ALL'
        : r.role === null
          ? `ALTER DATABASE ${r.database}`
          : `ALTER ROLE ${r.role}${r.database !== null ? ` IN DATABASE ${r.database}` : ''}`;
    const scope =
      r.role === null && r.database === null
        ? 'for all roles'
        : r.role === null
          ? `for database ${r.database}`
          : `for role ${r.role}${r.database !== null ? ` in database ${r.database}` : ''}`;
    const corrected = correctedPgauditLog(r.value, true);
    const sql = corrected === null ? `${target} RESET pgaudit.log;` : `${target} SET pgaudit.log = ${lit(corrected)};`;
    out.push({
      id: 'pgaudit_log_role',
      ok: false,
      sql: [sql],
      fix: sql,
      what: `pgaudit.log = ${lit(r.value)} set ${scope} ${describeInvalid(p)}; ${loaded ? 'PostgreSQL ignores it with a WARNING at each login' : 'PostgreSQL will ignore it once pgaudit is loaded'}`,
    });
  }
  return out;
}

function collectorCheck(f: ServerFacts): CheckResult {
  const id = 'collector';
  const s = f.settings.get('logging_collector');
  if (!s) return { id, ok: false, what: 'logging_collector cannot be read' };
  if (ON(s.value)) return { id, ok: true, what: 'logging_collector is on' };
  const pending = fileWinner(f, 'logging_collector');
  if (s.pendingRestart && pending && ON(pending.value)) {
    return {
      id,
      ok: false,
      what: `logging_collector is set to on (in ${pending.file}) but PostgreSQL has not been restarted since; csvlog and jsonlog need it`,
      ...restartFix(f),
    };
  }
  return { id, ok: false, what: 'logging_collector is off; csvlog and jsonlog files need it', ...restartFix(f, ['ALTER SYSTEM SET logging_collector = on;']) };
}

/** The log formats auditship reads that a log_destination value writes. */
export function auditFormats(logDestination: string, versionNum: number): ('csvlog' | 'jsonlog')[] {
  const items = listItems(logDestination.toLowerCase());
  return (['csvlog', 'jsonlog'] as const).filter((fmt) => items.includes(fmt) && (fmt === 'csvlog' || versionNum >= 150000));
}

function destinationCheck(f: ServerFacts): CheckResult {
  const id = 'destination';
  const s = f.settings.get('log_destination');
  if (!s) return { id, ok: false, what: 'log_destination cannot be read' };
  const formats = auditFormats(s.value, f.versionNum);
  if (formats.length) {
    const collector = ON(f.settings.get('logging_collector')?.value) ? '' : ' (once logging_collector is on)';
    return { id, ok: true, what: `log_destination = ${lit(s.value)} writes ${formats.join(' and ')} files${collector}` };
  }
  const items = listItems(s.value);
  const wanted = [...items, 'csvlog'].join(',');
  return {
    id,
    ok: false,
    what: `log_destination = ${lit(s.value)} writes neither csvlog nor jsonlog files`,
    ...reloadFix([`ALTER SYSTEM SET log_destination = ${lit(wanted)};`]),
  };
}

function connectionsCheck(f: ServerFacts): CheckResult {
  const id = 'connections';
  const off = ['log_connections', 'log_disconnections'].filter((n) => !ON(f.settings.get(n)?.value));
  if (!off.length) return { id, ok: true, what: 'log_connections and log_disconnections are on (sessions can be followed from connection to disconnection)' };
  return {
    id,
    ok: false,
    what: `${off.join(' and ')} ${off.length > 1 ? 'are' : 'is'} off; needed to follow sessions (who connected from where, and when they left)`,
    ...reloadFix(off.map((n) => `ALTER SYSTEM SET ${n} = on;`)),
  };
}

const modeText = (m: number) => `0${(m & 0o777).toString(8).padStart(3, '0')}`;

/** Why this user cannot use a path (`need`: x or rx for a directory, r for a file), and the commands that change that. */
export function accessFix(info: PathInfo | null, path: string, need: 'x' | 'rx' | 'r', user: OsUser): { why: string; fix: string } {
  if (!info) return { why: `${path} cannot be examined`, fix: `make ${path} readable by ${user.name}` };
  const dir = need !== 'r';
  const bits = need === 'r' ? 0o4 : 0o5;
  const desc = `${path} (${info.owner}:${info.group} ${modeText(info.mode)})`;
  if (user.uid === info.uid)
    return { why: `${desc} is not ${dir ? 'readable and searchable' : 'readable'} by its owner`, fix: `chmod u+${dir ? 'rx' : 'r'} ${path}` };
  const groupHas = ((info.mode >> 3) & bits) === bits;
  const inGroup = user.gids.includes(info.gid);
  const cmds: string[] = [];
  if (!groupHas) cmds.push(`chmod g+${dir ? 'rx' : 'r'} ${path}`);
  if (!inGroup) cmds.push(`usermod -aG ${info.group} ${user.name} (then log in again)`);
  const why = `${desc} is ${dir ? 'closed' : 'not readable'} to ${user.name}${inGroup ? `, although in group ${info.group}` : `, who is not in group ${info.group}`}`;
  return { why, fix: cmds.join('; ') || `chmod g+${dir ? 'rx' : 'r'} ${path}` };
}

function logDirectoryCheck(f: ServerFacts): CheckResult {
  const id = 'log_directory';
  const a = f.logAccess;
  if (a.kind === 'remote') {
    return {
      id,
      ok: false,
      skipped: true,
      what: `the log directory is not checked: the server (${a.host}) is not on this machine`,
      fix: 'run auditship check on the database host',
    };
  }
  if (a.kind === 'hidden') {
    return {
      id,
      ok: false,
      what: `the log directory cannot be checked: ${hiddenClause(f)}, so data_directory and log_directory cannot be read`,
      fix: grantSettings(f),
      sql: [grantSettings(f)],
    };
  }
  if (a.kind === 'not_here') {
    return {
      id,
      ok: false,
      skipped: true,
      what: `the log directory is not checked: the data directory ${a.dataDir} is not on this machine (is the server in a container, or on another host?)`,
      fix: 'run auditship check where the data directory is',
    };
  }
  if (a.blocked) {
    const { why, fix } = accessFix(a.blocked.info, a.blocked.path, a.blocked.need, a.user);
    const which = a.blocked.path === a.dir ? '' : ` (below ${a.blocked.path})`;
    return { id, ok: false, what: `the log directory ${a.dir}${which} is not readable by ${a.user.name}: ${why}`, fix };
  }
  if (a.missing) {
    return {
      id,
      ok: false,
      what: `the log directory ${a.dir} does not exist (yet)`,
      fix: 'it is created when PostgreSQL starts with logging_collector = on (see above); check log_directory',
    };
  }
  if (!a.newest) return { id, ok: true, what: `the log directory ${a.dir} is readable by ${a.user.name} (no log file in it yet)` };
  if (a.newest.readable)
    return {
      id,
      ok: true,
      what: `the log directory ${a.dir} is readable by ${a.user.name} (${a.files} file${a.files === 1 ? '' : 's'}; the newest, ${a.newest.info.path.slice(a.dir.length + 1)}, is readable)`,
    };
  // The newest file: PostgreSQL creates log files with log_file_mode (default 0600).
  const info = a.newest.info;
  const mode = f.settings.get('log_file_mode')?.value ?? '';
  const groupReadable = (info.mode & 0o040) !== 0;
  const inGroup = a.user.gids.includes(info.gid);
  const cmds: string[] = [];
  const sql: string[] = [];
  let why: string;
  if (!groupReadable) {
    const modeOk = /^[0-7]+$/.test(mode) && (parseInt(mode, 8) & 0o040) !== 0;
    if (!modeOk) {
      sql.push("ALTER SYSTEM SET log_file_mode = '0640';", RELOAD);
      cmds.push(`${sql.join(' ')} (for new files)`);
    }
    cmds.push(`chmod g+r ${a.dir}/*`);
    why = modeOk ? `it was created before log_file_mode = ${mode}` : `log_file_mode = ${mode || '0600'} makes log files readable by their owner only`;
  } else why = `${a.user.name} is not in group ${info.group}`;
  if (!inGroup) cmds.push(`usermod -aG ${info.group} ${a.user.name} (then log in again)`);
  return {
    id,
    ok: false,
    ...(sql.length ? { sql } : {}),
    what: `the newest log file ${info.path} (${info.owner}:${info.group} ${modeText(info.mode)}) is not readable by ${a.user.name}: ${why}`,
    fix: cmds.join('; '),
  };
}

/** Every server check, in the order printed. */
export function serverChecks(f: ServerFacts): CheckResult[] {
  return [preloadCheck(f), extensionCheck(f), ...pgauditLogChecks(f), collectorCheck(f), destinationCheck(f), connectionsCheck(f), logDirectoryCheck(f)];
}

/* ---------------------------------------------------------------------------------------------------- */
/* Connecting                                                                                            */

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

/* ---------------------------------------------------------------------------------------------------- */
/* Reading the facts                                                                                     */

/** True when `host` is this machine: a unix socket, loopback, or an address of one of its interfaces. */
export function isLocalHost(host: string): boolean {
  if (host.startsWith('/') || host.startsWith('@')) return true;
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h === '::1' || /^127\./.test(h) || h === '0.0.0.0' || h === hostname().toLowerCase()) return true;
  return Object.values(networkInterfaces()).some((list) => list?.some((i) => i.address.toLowerCase() === h));
}

function namesOf(file: string): Map<number, string> {
  const out = new Map<number, string>();
  try {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const [name, , id] = line.split(':');
      if (name && id !== undefined && /^\d+$/.test(id)) out.set(Number(id), name);
    }
  } catch {
    /* none: numeric ids are shown */
  }
  return out;
}

function pathInfo(path: string, users: Map<number, string>, groups: Map<number, string>): PathInfo | null {
  try {
    const st = statSync(path);
    return { path, mode: st.mode, uid: st.uid, gid: st.gid, owner: users.get(st.uid) ?? String(st.uid), group: groups.get(st.gid) ?? String(st.gid) };
  } catch {
    return null;
  }
}

/** Owner, group and mode of a path, with names; null when it cannot be examined. */
export function pathInfoOf(path: string): PathInfo | null {
  return pathInfo(path, namesOf('/etc/passwd'), namesOf('/etc/group'));
}

function can(path: string, mode: number): boolean {
  try {
    accessSync(path, mode);
    return true;
  } catch {
    return false;
  }
}

/** False only when the path does not exist (a closed parent directory means it may). */
function existsHere(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ENOENT';
  }
}

/** The current OS user (name, uid, groups). */
export function currentUser(): OsUser {
  const uid = process.getuid?.() ?? -1;
  const gids = [...new Set([process.getgid?.() ?? -1, ...(process.getgroups?.() ?? [])])];
  let name: string;
  try {
    name = userInfo().username;
  } catch {
    name = String(uid);
  }
  return { name, uid, gids };
}

/** How this OS user sees a log directory: the first path closed to it, or the newest file in it. */
export function inspectLogDirectory(dir: string, user: OsUser = currentUser()): LogAccess & { kind: 'local' } {
  const users = namesOf('/etc/passwd');
  const groups = namesOf('/etc/group');
  const base = { kind: 'local' as const, dir, user, blocked: null, missing: false, files: 0, newest: null };
  const ancestors: string[] = [];
  for (let d = dirname(dir); ; d = dirname(d)) {
    ancestors.unshift(d);
    if (dirname(d) === d) break;
  }
  for (const a of ancestors) {
    if (!can(a, constants.X_OK)) return { ...base, blocked: { path: a, need: 'x', info: pathInfo(a, users, groups) } };
  }
  const info = pathInfo(dir, users, groups);
  if (!info) return { ...base, missing: true };
  if (!can(dir, constants.R_OK | constants.X_OK)) return { ...base, blocked: { path: dir, need: 'rx', info } };
  let newest: { info: PathInfo; mtime: number } | null = null;
  let files = 0;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    let st;
    try {
      st = statSync(p);
    } catch {
      continue;
    }
    if (!st.isFile()) continue;
    files++;
    if (!newest || st.mtimeMs > newest.mtime) newest = { info: pathInfo(p, users, groups)!, mtime: st.mtimeMs };
  }
  return { ...base, files, newest: newest ? { info: newest.info, readable: can(newest.info.path, constants.R_OK) } : null };
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

/** The first line of `check`: whom it talks to. */
export function connectionCheck(f: ServerFacts): CheckResult {
  const as = f.superuser ? `superuser ${f.role}` : `${f.role}${f.readAllSettings ? ' (pg_read_all_settings)' : ''}`;
  return { id: 'connection', ok: true, what: `connected to ${f.where}: PostgreSQL ${f.version.split(' ')[0]} as ${as}` };
}
