import {
  APP_FILTER_KEYS,
  APP_SORTS,
  CHANGE_FILTER_KEYS,
  CHANGE_GROUPS,
  parseAppEventFilter,
  parseChangeFilter,
  type AppEventFilter,
  type ChangeFilter,
} from '../query/index.js';
import { checkKeys, filterOf, intParam, sortOf, type ApiHandler, type UiQueries } from './api.js';
import { HttpError } from './http.js';

/**
 * The JSON API of the other sources and of the event list's extras: which sources the store holds, row changes
 * and application events (page, one in full, charts), and the top values of the event filter. Each answers 404
 * when the server was started without those queries (a test's fake store).
 */

function need<T>(v: T | undefined): T {
  if (v === undefined) throw new HttpError(404, 'no such API endpoint');
  return v;
}

function parsed<F>(params: URLSearchParams, keys: string[], extra: string[], parse: (p: URLSearchParams) => F): F {
  checkKeys(params, [...keys, ...extra]);
  const only = new URLSearchParams();
  for (const [k, v] of params) if (keys.includes(k)) only.append(k, v);
  try {
    return parse(only);
  } catch (err) {
    throw new HttpError(400, String((err as Error).message ?? err).split('\n')[0]!);
  }
}

export const changeFilterOf = (p: URLSearchParams, extra: string[]): ChangeFilter => parsed(p, CHANGE_FILTER_KEYS, extra, parseChangeFilter);
export const appFilterOf = (p: URLSearchParams, extra: string[]): AppEventFilter => parsed(p, APP_FILTER_KEYS, extra, parseAppEventFilter);

function cursorOf(p: URLSearchParams): string | null {
  const after = p.get('after');
  if (after !== null && (after === '' || after.length > 1000)) throw new HttpError(400, 'after must be a cursor from a previous page (`next`)');
  return after;
}

function idOf(p: URLSearchParams, what: string): string {
  checkKeys(p, ['id']);
  const id = p.get('id');
  if (!id || id.length > 2000) throw new HttpError(400, `id is required (an id from ${what})`);
  return id;
}

function byOf<K extends string>(p: URLSearchParams, allowed: readonly K[]): K {
  const by = p.get('by');
  if (!by || !(allowed as readonly string[]).includes(by)) throw new HttpError(400, `by must be one of ${allowed.join(', ')}`);
  return by as K;
}

export const SOURCE_API: Record<string, ApiHandler> = {
  '/api/sources': async (q: UiQueries, p) => {
    checkKeys(p, []);
    return {
      row_changes: q.rowChanges ? await q.rowChanges.summary() : null,
      app_events: q.appEvents ? await q.appEvents.summary() : null,
    };
  },
  '/api/top-values': async (q, p) => {
    const f = filterOf(p, ['n']);
    const n = intParam(p, 'n', 8, 1, 50);
    // Without the query (a test's fake store) the sidebar is empty rather than an error on the page.
    return q.eventList ? q.eventList.topValues(f, n) : {};
  },

  '/api/changes': async (q, p) => {
    const f = changeFilterOf(p, ['limit', 'after', 'sort', 'dir']);
    return need(q.rowChanges).listChanges(f, { limit: intParam(p, 'limit', 50, 1, 500), after: cursorOf(p), sort: sortOf(p) ?? {} });
  },
  '/api/change': async (q, p) => {
    const c = await need(q.rowChanges).getChange(idOf(p, '/api/changes'));
    if (!c) throw new HttpError(404, 'no row change with this id');
    return c;
  },
  '/api/changes/charts/timeline': async (q, p) => need(q.rowChanges).changesOverTime(changeFilterOf(p, [])),
  '/api/changes/charts/top': async (q, p) => {
    const f = changeFilterOf(p, ['by', 'n']);
    return need(q.rowChanges).topChanges(f, byOf(p, Object.keys(CHANGE_GROUPS) as (keyof typeof CHANGE_GROUPS)[]), intParam(p, 'n', 10, 1, 100));
  },

  '/api/app-events': async (q, p) => {
    const f = appFilterOf(p, ['limit', 'after', 'sort', 'dir']);
    return need(q.appEvents).listAppEvents(f, { limit: intParam(p, 'limit', 50, 1, 500), after: cursorOf(p), sort: sortOf(p) ?? {} });
  },
  '/api/app-event': async (q, p) => {
    const e = await need(q.appEvents).getAppEvent(idOf(p, '/api/app-events'));
    if (!e) throw new HttpError(404, 'no application event with this id');
    return e;
  },
  '/api/app-events/charts/timeline': async (q, p) => need(q.appEvents).appEventsOverTime(appFilterOf(p, [])),
  '/api/app-events/charts/top': async (q, p) => {
    const f = appFilterOf(p, ['by', 'n']);
    return need(q.appEvents).topAppEvents(f, byOf(p, Object.keys(APP_SORTS) as (keyof typeof APP_SORTS)[]), intParam(p, 'n', 10, 1, 100));
  },
};
