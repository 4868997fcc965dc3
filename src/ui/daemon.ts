import { ConfigError, ConnectorError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { duckdbRunner, storeQueries } from '../query/index.js';
import { buildReport } from '../report/index.js';
import { AlertQueries } from '../alerts/queries.js';
import type { Database } from '../sinks/duckdb/database.js';
import type { SavedSearch } from './saved-searches.js';
import { startUiServer, UiServerError, type UiAuth, type UiServer } from './server.js';

/**
 * The UI served by the `run --follow` daemon itself on TCP, when `run --follow --ui HOST:PORT` asks. (Other
 * processes read the database it holds through its read socket — see sinks/duckdb/read-service.ts — so
 * `auditship ui`, `report`, `status` and `query` work while it writes.) Its queries run on a connection of
 * their own, so they read committed data while the pipelines write.
 */
export interface DaemonUi {
  url: string;
  close(): Promise<void>;
}

export async function serveDaemonUi(
  db: Database,
  opts: { log: Logger; listen: { host: string; port: number }; auth?: UiAuth; metrics?: () => string; savedSearches?: SavedSearch[] },
): Promise<DaemonUi> {
  const conn = await db.instance.connect();
  await conn.run("SET TimeZone = 'UTC'");
  const runner = duckdbRunner(conn);
  const queries = storeQueries(runner);
  const alerts = new AlertQueries(runner);
  const report = (o: { since: number; until: number; server?: string[] }) => buildReport(runner, o);
  let server: UiServer;
  try {
    server = await startUiServer({
      queries,
      report,
      alerts,
      host: opts.listen.host,
      port: opts.listen.port,
      log: opts.log,
      title: db.path,
      ...(opts.auth ? { auth: opts.auth } : {}),
      ...(opts.metrics ? { metrics: opts.metrics } : {}),
      ...(opts.savedSearches ? { savedSearches: opts.savedSearches } : {}),
    });
  } catch (err) {
    conn.closeSync();
    if (err instanceof UiServerError) {
      if (err.code === 'unsafe_listen') throw new ConfigError([`--ui: ${err.message}`], { cause: err });
      throw new ConnectorError('ui', err.code, err.message, false, { cause: err });
    }
    throw err;
  }
  return {
    url: server.url,
    close: async () => {
      await server.close();
      conn.closeSync();
    },
  };
}
