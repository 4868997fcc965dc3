import { correctedPgauditLog, DEFAULT_PGAUDIT_LOG, describeInvalid, parsePgauditLog } from './pgaudit-log.js';
import { accessFix, modeText } from '../core/access.js';
import type { CheckResult } from '../core/check.js';

export type { CheckResult } from '../core/check.js';
import type { FileSetting, ServerFacts } from './server-facts.js';

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

export * from './pgaudit-log.js';
export * from './server-facts.js';
export * from './server-target.js';

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

/** The first line of `check`: whom it talks to. */
export function connectionCheck(f: ServerFacts): CheckResult {
  const as = f.superuser ? `superuser ${f.role}` : `${f.role}${f.readAllSettings ? ' (pg_read_all_settings)' : ''}`;
  return { id: 'connection', ok: true, what: `connected to ${f.where}: PostgreSQL ${f.version.split(' ')[0]} as ${as}` };
}
