import { request } from 'node:http';
import { ConnectorError } from '../core/errors.js';
import { filterToParams, type EventFilter } from '../query/index.js';
import type { ReportData } from '../report/index.js';
import type { UiQueries } from './server.js';

/**
 * The audit queries of another auditship process — the `run --follow` daemon that holds the DuckDB file
 * (DuckDB lets one process open it) — asked over the UI socket the daemon serves next to the database
 * (`<db>.ui.sock`, mode 0600: only the database's owner can connect). `auditship ui` and `auditship
 * report` use it when the file is locked, so they work while the daemon writes.
 */
export interface RemoteQueries extends UiQueries {
  report(opts: { since: number; until: number; server?: string[] }): Promise<ReportData>;
}

function get<T>(socketPath: string, path: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method: 'GET', headers: { host: 'localhost', accept: 'application/json' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        let value: unknown;
        try {
          value = JSON.parse(body);
        } catch {
          reject(new ConnectorError('ui', 'daemon_bad_answer', `the auditship daemon answered ${path.split('?')[0]} with something that is not JSON (HTTP ${res.statusCode})`, true));
          return;
        }
        if (res.statusCode === 404 && path.startsWith('/api/event?')) { resolve(null as T); return; }
        if (res.statusCode !== 200) {
          const msg = (value as { error?: string })?.error ?? `HTTP ${res.statusCode}`;
          const err = new Error(msg) as Error & { status?: number };
          err.status = res.statusCode;
          reject(err);
          return;
        }
        resolve(value as T);
      });
    });
    req.setTimeout(60_000, () => req.destroy(new Error('the auditship daemon did not answer within 60 s')));
    req.on('error', (err) => reject(new ConnectorError('ui', 'daemon_unreachable', `cannot reach the auditship daemon at ${socketPath}: ${err.message}`, true, { cause: err })));
    req.end();
  });
}

const withFilter = (path: string, f: EventFilter, extra: Record<string, string | number | null | undefined> = {}) => {
  const p = filterToParams(f);
  for (const [k, v] of Object.entries(extra)) if (v !== undefined && v !== null) p.set(k, String(v));
  const qs = p.toString();
  return qs ? `${path}?${qs}` : path;
};

export function remoteQueries(socketPath: string): RemoteQueries {
  return {
    facets: () => get(socketPath, '/api/facets'),
    listEvents: (f, page = {}) => get(socketPath, withFilter('/api/events', f, { limit: page.limit, after: page.after })),
    getEvent: (id) => get(socketPath, `/api/event?${new URLSearchParams({ id })}`),
    eventsOverTime: (f) => get(socketPath, withFilter('/api/charts/timeline', f)),
    topUsers: (f, n = 10) => get(socketPath, withFilter('/api/charts/top-users', f, { n })),
    topObjects: (f, n = 10) => get(socketPath, withFilter('/api/charts/top-objects', f, { n })),
    logonFailures: (f) => get(socketPath, withFilter('/api/charts/logon-failures', f)),
    report: (o) => {
      const p = new URLSearchParams({ since: String(o.since), until: String(o.until) });
      for (const s of o.server ?? []) p.append('server', s);
      return get(socketPath, `/api/report?${p}`);
    },
  };
}
