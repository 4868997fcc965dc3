import { AlertInputError, type AlertQueries } from '../alerts/queries.js';
import type { ApiHandler } from './api.js';
import { HttpError } from './http.js';

/**
 * `/api/alerts?limit=N&after=CURSOR`: fired alerts, newest first, each with the state of its deliveries
 * (pending, delivered, dead; attempts; the last error's first line), `next` for the older page.
 */
export function alertsHandler(alerts: Pick<AlertQueries, 'list'>): ApiHandler {
  return async (_q, p) => {
    for (const key of new Set(p.keys()))
      if (key !== 'limit' && key !== 'after') throw new HttpError(400, `unknown parameter "${key.slice(0, 40)}"; this endpoint takes limit, after`);
    const raw = p.get('limit');
    if (raw !== null && (!/^\d+$/.test(raw) || Number(raw) < 1 || Number(raw) > 200)) throw new HttpError(400, 'limit must be an integer from 1 to 200');
    const after = p.get('after');
    if (after !== null && (after === '' || after.length > 300)) throw new HttpError(400, 'after must be a cursor from a previous page (`next`)');
    try {
      return await alerts.list({ limit: raw === null ? 50 : Number(raw), after });
    } catch (err) {
      if (err instanceof AlertInputError) throw new HttpError(400, err.message);
      throw err;
    }
  };
}
