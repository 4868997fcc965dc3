import { constants, readdirSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { accessFix, can, currentUser, inspectLogDirectory, pathInfoOf } from '../../core/access.js';
import { failure, type CheckResult } from '../../core/check.js';
import type { PgLogsConfig } from './config.js';
import { discoverLogFiles } from './files.js';

/** `auditship check` of a pg_logs source: each path exists, is readable by this user, and holds csvlog/jsonlog files. */
export async function checkPgLogs(pipeline: string, src: PgLogsConfig): Promise<CheckResult[]> {
  const glob = src.file_glob;
  const out: CheckResult[] = [];
  for (const given of src.path) {
    const path = resolve(given);
    const id = 'pg_logs';
    const label = `pipeline ${pipeline}: source pg_logs ${path}`;
    let st;
    try {
      st = statSync(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        out.push({
          id,
          ok: false,
          what: `${label}: does not exist`,
          fix: "set source.path to the server's log directory (auditship check prints it; SHOW log_directory, relative to data_directory)",
        });
        continue;
      }
      const a = inspectLogDirectory(path);
      const blocked = a.blocked ?? { path, need: 'x' as const, info: null };
      const { why, fix } = accessFix(blocked.info, blocked.path, blocked.need, a.user);
      out.push({ id, ok: false, what: `${label}: not readable: ${why}`, fix });
      continue;
    }
    if (!st.isDirectory()) {
      if (can(path, constants.R_OK)) out.push({ id, ok: true, what: `${label}: a log file, readable` });
      else {
        const { why, fix } = accessFix(pathInfoOf(path), path, 'r', currentUser());
        out.push({ id, ok: false, what: `${label}: not readable: ${why}`, fix });
      }
      continue;
    }
    const a = inspectLogDirectory(path);
    if (a.blocked) {
      const { why, fix } = accessFix(a.blocked.info, a.blocked.path, a.blocked.need, a.user);
      out.push({ id, ok: false, what: `${label}: not readable by ${a.user.name}: ${why}`, fix });
      continue;
    }
    let found;
    try {
      found = await discoverLogFiles([path], { fileGlob: glob, preferFormat: src.prefer_format });
    } catch (err) {
      out.push(failure(id, label, err, 'make the log files readable by this user'));
      continue;
    }
    const files = found.files;
    if (files.length === 0) {
      const others = readdirSync(path).filter((n) => {
        try {
          return statSync(resolve(path, n)).isFile();
        } catch {
          return false;
        }
      });
      const unknown = found.skipped.length;
      if (others.length === 0) out.push({ id, ok: true, what: `${label}: readable, no log files yet (file_glob ${JSON.stringify(glob)})` });
      else {
        out.push({
          id,
          ok: false,
          what: `${label}: no csvlog or jsonlog file matches file_glob ${JSON.stringify(glob)} (the directory holds ${others.length} other file${others.length === 1 ? '' : 's'}, e.g. ${others.sort().at(-1)}${unknown ? `; ${unknown} matched but are neither csvlog nor jsonlog` : ''})`,
          fix: 'set source.file_glob to match the csvlog/jsonlog files, or make the server write them (log_destination, see auditship check)',
        });
      }
      continue;
    }
    const formats = [...new Set(files.map((f) => f.format))].join(' and ');
    const unreadable = files.filter((f) => !can(f.path, constants.R_OK));
    if (unreadable.length) {
      const newest = unreadable.at(-1)!;
      const { why, fix } = accessFix(pathInfoOf(newest.path), newest.path, 'r', a.user);
      out.push({ id, ok: false, what: `${label}: ${unreadable.length} of ${files.length} ${formats} files are not readable by ${a.user.name} (${why})`, fix });
      continue;
    }
    const twins = found.skipped.filter((s) => s.reason.startsWith('twin')).length;
    out.push({
      id,
      ok: true,
      what: `${label}: ${files.length} ${formats} file${files.length === 1 ? ' matches' : 's match'} ${JSON.stringify(glob)}${twins ? ` (${twins} ${src.prefer_format === 'csvlog' ? 'jsonlog' : 'csvlog'} twins skipped)` : ''}, all readable`,
    });
  }
  return out;
}
