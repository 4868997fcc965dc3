import { accessSync, constants, readdirSync, readFileSync, statSync } from 'node:fs';
import { userInfo } from 'node:os';
import { dirname, join } from 'node:path';

/**
 * Paths as this OS user sees them: who owns a path and with which mode, which groups this process has, the first
 * directory on the way to a log directory that is closed to it, and the commands that would open it. `auditship
 * check` uses it for the server's log directory and for each pipeline's paths.
 */

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

export function can(path: string, mode: number): boolean {
  try {
    accessSync(path, mode);
    return true;
  } catch {
    return false;
  }
}

/** False only when the path does not exist (a closed parent directory means it may). */
export function existsHere(path: string): boolean {
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

export const modeText = (m: number) => `0${(m & 0o777).toString(8).padStart(3, '0')}`;

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
