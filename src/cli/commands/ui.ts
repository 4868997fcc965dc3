import { ExitError } from '../../core/errors.js';
import { loadConfig } from '../../config/load.js';
import { savedSearchesOf } from '../../ui/saved-searches.js';
import { openStoreReader } from '../../sinks/duckdb/reader.js';
import { createLogger } from '../../core/log.js';
import { storeQueries } from '../../query/index.js';
import { startUiServer, UiServerError, type UiAuth, type UiQueries } from '../../ui/index.js';
import { AlertQueries } from '../../alerts/queries.js';
import { DEFAULT_DB, defineCommand, parseCommandArgs } from '../args.js';

export const usage = 'auditship ui [--db FILE] [--listen HOST:PORT] [--token TOKEN] [--basic-auth USER:PASSWORD] [--config FILE]';
export const summary =
  'Serve a read-only web UI over the DuckDB store (search, event and session details, charts) until SIGINT/SIGTERM; env AUDITSHIP_UI_TOKEN / AUDITSHIP_UI_BASIC_AUTH instead of the flags.';

const MIN_TOKEN_LENGTH = 16;

export const spec = defineCommand({
  name: 'ui',
  summary,
  usage,
  flags: {
    db: { type: 'string', value: 'FILE', description: 'the DuckDB store, opened read-only (or asked of the process writing it)', default: DEFAULT_DB },
    listen: {
      type: 'string',
      short: 'l',
      value: 'HOST:PORT',
      description: 'where to serve; a bare PORT is on 127.0.0.1, port 0 any free port; a non-loopback address needs --token or --basic-auth',
      default: '127.0.0.1:8080',
    },
    token: {
      type: 'string',
      value: 'TOKEN',
      description: `a shared secret of at least ${MIN_TOKEN_LENGTH} characters: send Authorization: Bearer TOKEN, or open the UI once with ?token=TOKEN`,
      defaultText: '$AUDITSHIP_UI_TOKEN',
    },
    'basic-auth': {
      type: 'string',
      value: 'USER:PASSWORD',
      description: 'HTTP Basic authentication (use it behind TLS)',
      defaultText: '$AUDITSHIP_UI_BASIC_AUTH',
    },
    config: { type: 'string', short: 'c', value: 'FILE', description: 'a config whose ui.saved_searches the page offers', defaultText: 'none' },
  },
});

/** `HOST:PORT`, `[IPv6]:PORT` or a bare `PORT` (on 127.0.0.1); `what` names the flag or key in the error. */
export function parseListen(value: string, what = '--listen'): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(value) ?? /^()()(\d{1,5})$/.exec(value);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new ExitError(2, `${what}: "${value}" is not HOST:PORT (e.g. 127.0.0.1:8080; port 0 = any free port)`);
  return { host: m[1] || m[2] || '127.0.0.1', port };
}

/** The credentials from the flags, else from the environment; a weak token or a malformed USER:PASSWORD is a usage error. */
export function authOptions(token: string | undefined, basicAuth: string | undefined, env: NodeJS.ProcessEnv = process.env): UiAuth | undefined {
  const t = token ?? (env['AUDITSHIP_UI_TOKEN'] || undefined);
  const b = basicAuth ?? (env['AUDITSHIP_UI_BASIC_AUTH'] || undefined);
  const auth: UiAuth = {};
  if (t !== undefined) {
    if (t.length < MIN_TOKEN_LENGTH) throw new ExitError(2, `the UI token must be at least ${MIN_TOKEN_LENGTH} characters (e.g. \`openssl rand -hex 16\`)`);
    auth.token = t;
  }
  if (b !== undefined) {
    const colon = b.indexOf(':');
    if (colon <= 0 || colon === b.length - 1) throw new ExitError(2, 'basic auth must be USER:PASSWORD, both non-empty');
    auth.basic = { user: b.slice(0, colon), password: b.slice(colon + 1) };
  }
  return auth.token || auth.basic ? auth : undefined;
}

/** What the UI serves: the queries, a title, and how to let go of them. */
export interface UiBackend {
  queries: UiQueries;
  alerts: AlertQueries;
  /** The database as shown in the page header and the startup line. */
  title: string;
  close(): Promise<void>;
}

/**
 * The store for the UI: each request reads the file (opened read-only, let go of when idle) or, while a
 * process writes it (ingest, run, run --follow), asks that process — so the UI and cron ingests work side by
 * side (sinks/duckdb/reader.ts).
 */
export async function openUiBackend(dbPath: string): Promise<UiBackend> {
  const store = openStoreReader(dbPath);
  await store.sql('SELECT 1'); // a file that is not a DuckDB store fails here, not on the first page load
  return { queries: storeQueries(store), alerts: new AlertQueries(store), title: store.path, close: () => store.close() };
}

export async function ui(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommandArgs(argv, spec);
  if (positionals.length) throw new ExitError(2, `unexpected argument "${positionals[0]}"\nusage: ${usage}`);
  const { host, port } = parseListen(values.listen ?? '127.0.0.1:8080');
  const auth = authOptions(values.token, values['basic-auth']);
  const backend = await openUiBackend(values.db ?? './auditship.duckdb');
  const log = createLogger();
  let server;
  try {
    const saved = values.config ? loadConfig(values.config).ui?.saved_searches : undefined;
    server = await startUiServer({
      queries: backend.queries,
      alerts: backend.alerts,
      host,
      port,
      log,
      title: backend.title,
      ...(auth ? { auth } : {}),
      ...(saved ? { savedSearches: savedSearchesOf(saved) } : {}),
    });
  } catch (err) {
    await backend.close();
    if (err instanceof UiServerError) throw new ExitError(err.code === 'unsafe_listen' ? 2 : 1, err.message);
    throw err;
  }
  process.stdout.write(`auditship ui: serving ${backend.title} at ${server.url}\n`);
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
  log.info('Stopping the UI server.', { signal });
  await server.close();
  await backend.close();
}
