import { constants, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { can, currentUser } from './access.js';
import { ConnectorError } from './errors.js';
import type { Logger } from './log.js';

/**
 * What `auditship check` reports, one result per thing checked, and the helpers every connector's check uses
 * (each connector folder has its check.ts, named in its declaration): a time bound, a logger that keeps the
 * warnings for the line, a failure turned into "what; how to fix it", a directory that must be writable.
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

/** Bounds a check that could hang (a host that drops packets) to one line. */
export const CHECK_TIMEOUT_MS = 20_000;

export function withTimeout<T>(p: Promise<T>, what: string, ms = CHECK_TIMEOUT_MS): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new ConnectorError('check', 'timeout', `no answer from ${what} within ${ms / 1000} s; is it reachable from this host?`, true)),
      ms,
    );
    timer.unref();
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** Warnings a connector logs while opening, kept for the check's line. */
export function notingLogger(notes: string[]): Logger {
  const note = (msg: string) => {
    notes.push(msg.replace(/\.$/, ''));
  };
  return { debug() {}, info() {}, warn: note, error: note };
}

/**
 * A failure as a result: connector messages read "what went wrong; how to fix it", so the part after the
 * first "; " is the fix (else `fallbackFix`). Only the first line of a message is kept.
 */
export function failure(id: string, label: string, err: unknown, fallbackFix: string): CheckResult {
  const message = String(err instanceof Error ? err.message : err).split('\n')[0]!;
  const cut = message.indexOf('; ');
  return cut > 0
    ? { id, ok: false, what: `${label}: ${message.slice(0, cut)}`, fix: message.slice(cut + 2) }
    : { id, ok: false, what: `${label}: ${message}`, fix: fallbackFix };
}

/** The nearest existing directory at or above `path`. */
export function existingAncestor(path: string): string {
  let d = path;
  for (;;) {
    try {
      if (statSync(d).isDirectory()) return d;
    } catch {
      /* go up */
    }
    const up = dirname(d);
    if (up === d) return d;
    d = up;
  }
}

/** A directory that must be writable, or creatable. */
export function writableDirectory(id: string, label: string, dir: string): CheckResult {
  const user = currentUser();
  let isDir = false;
  try {
    isDir = statSync(dir).isDirectory();
  } catch {
    /* missing */
  }
  if (isDir) {
    if (can(dir, constants.W_OK | constants.X_OK)) return { id, ok: true, what: `${label}: ${dir} is writable` };
    return { id, ok: false, what: `${label}: ${dir} is not writable by ${user.name}`, fix: `chown ${user.name} ${dir}, or choose a writable directory` };
  }
  const parent = existingAncestor(dir);
  if (can(parent, constants.W_OK | constants.X_OK))
    return { id, ok: true, what: `${label}: ${dir} does not exist yet and will be created (${parent} is writable)` };
  return {
    id,
    ok: false,
    what: `${label}: ${dir} does not exist and cannot be created (${parent} is not writable by ${user.name})`,
    fix: `create ${dir} writable by ${user.name}, or choose another place`,
  };
}
