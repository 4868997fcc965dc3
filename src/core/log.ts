/**
 * auditship's own log: a fixed sentence plus fields. Human-readable on a terminal, JSON lines otherwise.
 * Audit data is sensitive: callers pass identifiers, counts and paths here — never statement text,
 * parameters or row data.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export interface LoggerOptions {
  level?: LogLevel;
  json?: boolean;
  stream?: NodeJS.WritableStream;
  /** Fields every line carries (a Lambda invocation's request id). */
  fields?: Record<string, unknown>;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const stream = options.stream ?? process.stderr;
  const min = ORDER[options.level ?? 'info'];
  const json = options.json ?? !(stream as NodeJS.WriteStream).isTTY;
  const write = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => {
    if (ORDER[level] < min) return;
    if (json) {
      stream.write(JSON.stringify({ time: new Date().toISOString(), level, msg, ...options.fields, ...fields }) + '\n');
    } else {
      const extra =
        fields && Object.keys(fields).length
          ? ' ' +
            Object.entries(fields)
              .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
              .join(' ')
          : '';
      stream.write(`${level === 'info' ? '' : level.toUpperCase() + ': '}${msg}${extra}\n`);
    }
  };
  return {
    debug: (m, f) => write('debug', m, f),
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
  };
}

/** A logger that drops everything (tests, --quiet). Warnings and errors still reach stderr. */
export function quietLogger(): Logger {
  const inner = createLogger({ level: 'warn' });
  return { debug() {}, info() {}, warn: inner.warn, error: inner.error };
}
