import { parseFilter, parseTime, type AuditQueries, type EventFilter, type SortSpec, type StoreQueries } from '../query/index.js';
import { HttpError } from './http.js';

/**
 * The UI's JSON API: one handler per path, each checking its parameters (filter keys, bounded integers, cursors;
 * never SQL) and asking the query layer. A wrong parameter is a 400 with one line saying what is allowed.
 */

/** What the UI asks of the query layer: every AuditQueries method (a fake in tests, the real class in use). */
export type UiQueries = Pick<AuditQueries, 'facets' | 'listEvents' | 'getEvent' | 'eventsOverTime' | 'topUsers' | 'topObjects' | 'logonFailures'> &
  Partial<Pick<StoreQueries, 'eventList' | 'rowChanges' | 'appEvents'>>;

/** The data of `auditship report` for a time range (served at /api/report while the daemon holds the database). */
export type ReportFn = (opts: { since: number; until: number; server?: string[] }) => Promise<unknown>;

const FILTER_KEYS = ['from', 'to', 'server', 'user', 'database', 'application', 'client', 'class', 'command', 'object', 'outcome', 'q'];

export function intParam(params: URLSearchParams, name: string, def: number, min: number, max: number): number {
  const raw = params.get(name);
  if (raw === null) return def;
  if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) throw new HttpError(400, `${name} must be an integer from ${min} to ${max}`);
  return Number(raw);
}

export function checkKeys(params: URLSearchParams, allowed: string[]): void {
  for (const key of new Set(params.keys())) {
    if (!allowed.includes(key)) throw new HttpError(400, `unknown parameter "${key.slice(0, 40)}"; this endpoint takes ${allowed.join(', ') || 'none'}`);
  }
}

export function filterOf(params: URLSearchParams, extra: string[]): EventFilter {
  checkKeys(params, [...FILTER_KEYS, ...extra]);
  const only = new URLSearchParams();
  for (const [k, v] of params) if (FILTER_KEYS.includes(k)) only.append(k, v);
  try {
    return parseFilter(only);
  } catch (err) {
    throw new HttpError(400, String((err as Error).message ?? err).split('\n')[0]!);
  }
}

/** `sort` and `dir` (time, newest first when absent: null); a column the query does not allow is its 400. */
export function sortOf(params: URLSearchParams): Partial<SortSpec> | null {
  const by = params.get('sort');
  const dir = params.get('dir');
  if (by === null && dir === null) return null;
  if (dir !== null && dir !== 'asc' && dir !== 'desc') throw new HttpError(400, 'dir must be asc or desc');
  if ((by ?? 'time') === 'time' && (dir ?? 'desc') === 'desc') return null;
  return { ...(by !== null ? { by } : {}), ...(dir !== null ? { dir } : {}) };
}

export type ApiHandler = (q: UiQueries, params: URLSearchParams) => Promise<unknown>;

export const API: Record<string, ApiHandler> = {
  '/api/facets': async (q, p) => {
    checkKeys(p, []);
    return q.facets();
  },
  '/api/events': async (q, p) => {
    const filter = filterOf(p, ['limit', 'after', 'sort', 'dir']);
    const limit = intParam(p, 'limit', 50, 1, 500);
    const after = p.get('after');
    if (after !== null && (after === '' || after.length > 1000)) throw new HttpError(400, 'after must be a cursor from a previous page (`next`)');
    const sort = sortOf(p);
    if (sort && q.eventList) return q.eventList.listSorted(filter, { limit, after, sort });
    return q.listEvents(filter, { limit, after });
  },
  '/api/event': async (q, p) => {
    checkKeys(p, ['id']);
    const id = p.get('id');
    if (!id || id.length > 1000) throw new HttpError(400, 'id is required (an event id from /api/events)');
    const event = await q.getEvent(id);
    if (!event) throw new HttpError(404, 'no event with this id');
    return event;
  },
  '/api/charts/timeline': async (q, p) => q.eventsOverTime(filterOf(p, [])),
  '/api/charts/top-users': async (q, p) => {
    const f = filterOf(p, ['n']);
    return q.topUsers(f, intParam(p, 'n', 10, 1, 100));
  },
  '/api/charts/top-objects': async (q, p) => {
    const f = filterOf(p, ['n']);
    return q.topObjects(f, intParam(p, 'n', 10, 1, 100));
  },
  '/api/charts/logon-failures': async (q, p) => q.logonFailures(filterOf(p, [])),
};

/** `/api/report`: since and until (epoch ms or ISO), servers. */
export function reportHandler(report: ReportFn): ApiHandler {
  return async (_q, p) => {
    checkKeys(p, ['since', 'until', 'server']);
    const bound = (name: string) => {
      const v = p.get(name);
      if (!v) throw new HttpError(400, `${name} is required`);
      try {
        return parseTime(v, name);
      } catch (err) {
        throw new HttpError(400, (err as Error).message);
      }
    };
    const since = bound('since'),
      until = bound('until');
    if (since >= until) throw new HttpError(400, 'since must be earlier than until');
    const server = p.getAll('server');
    return report({ since, until, ...(server.length ? { server } : {}) });
  };
}
