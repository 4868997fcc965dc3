/**
 * The three kinds of failure auditship reports, and the exit codes they map to (STYLE.md):
 * a config or usage error (exit 2), a runtime failure of a source or sink (exit 1), and an internal error —
 * a bug (exit 1, with a stack trace). Expected failures print one line and no stack.
 */

/** A wrong or missing setting. `problems` holds one line per wrong key: path, what is wrong, what is allowed. */
export class ConfigError extends Error {
  constructor(
    readonly problems: string[],
    options?: { cause?: unknown },
  ) {
    super(problems.length === 1 ? problems[0]! : `${problems.length} problems in the configuration:\n  ${problems.join('\n  ')}`, options);
    this.name = 'ConfigError';
  }
}

/** A failure of a source or sink at run time, with a stable snake_case `code` and whether a retry can help. */
export class ConnectorError extends Error {
  constructor(
    readonly component: string,
    readonly code: string,
    message: string,
    readonly retryable = false,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ConnectorError';
  }
}

/** Thrown by commands to end the process with `code` after printing `message` (if any) on stderr. */
export class ExitError extends Error {
  constructor(
    readonly exitCode: number,
    message = '',
  ) {
    super(message);
    this.name = 'ExitError';
  }
}

/** True for errors whose message is meant for the user as it is (no stack trace). */
export function isExpected(err: unknown): err is ConfigError | ConnectorError | ExitError {
  return err instanceof ConfigError || err instanceof ConnectorError || err instanceof ExitError;
}

/**
 * What kind of storage failure an error is, from its code or message (DuckDB's and the OS's words), or null: the
 * failures of space or of the files themselves, for which no record is to blame — the run fails (and is retried)
 * rather than quarantining anything.
 */
export function storageFailure(err: unknown): 'no_space' | 'quota' | 'read_only' | 'permission' | 'io' | null {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const msg = (err as Error | undefined)?.message ?? String(err);
  if (code === 'ENOSPC' || /No space left|ENOSPC/i.test(msg) || (/could not write/i.test(msg) && /space/i.test(msg))) return 'no_space';
  if (code === 'EDQUOT' || /Disk quota/i.test(msg)) return 'quota';
  if (code === 'EROFS' || /Read-only file system/i.test(msg)) return 'read_only';
  if (code === 'EACCES' || code === 'EPERM' || /Permission denied/i.test(msg)) return 'permission';
  if (code === 'EIO' || /IO Error/i.test(msg)) return 'io';
  return null;
}

/** Translates operating-system errors on a file into one sentence that names the file and the fix. */
export function describeFileError(err: unknown, path: string, action: string): string | null {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ENOENT':
      return `${path} does not exist (${action})`;
    case 'EACCES':
    case 'EPERM':
      return `permission denied on ${path} (${action}); run as a user that can read it, e.g. a member of the postgres group`;
    case 'ENOSPC':
      return `no space left on the device holding ${path} (${action}); free space or move the database`;
    case 'EDQUOT':
      return `disk quota exceeded for ${path} (${action}); free space or raise the quota`;
    case 'EISDIR':
      return `${path} is a directory (${action})`;
    case 'EROFS':
      return `${path} is on a read-only file system (${action})`;
    case 'EIO':
      return `input/output error on ${path} (${action}); check the disk`;
    default:
      return null;
  }
}
