import { listParam as list, parseRangeAndText as common } from './filter.js';
import type { AppEventFilter, ChangeFilter } from './types.js';

/**
 * Filters of row changes and application events from URL parameters (the terms of the UI's hash and API):
 * from, to (ISO-8601 or epoch ms), lists (repeatable or comma-separated) and q (free text). A malformed value
 * throws Error with a one-line message.
 */

/** The parameters a row-changes filter takes. */
export const CHANGE_FILTER_KEYS = ['from', 'to', 'server', 'schema', 'table', 'action', 'user', 'q'];
/** The parameters an application-events filter takes. */
export const APP_FILTER_KEYS = ['from', 'to', 'source', 'table', 'actor', 'operation', 'q'];

export function parseChangeFilter(params: URLSearchParams): ChangeFilter {
  const f: ChangeFilter = common(params);
  for (const key of ['server', 'schema', 'table', 'user'] as const) {
    const v = list(params, key);
    if (v) f[key] = v;
  }
  const action = list(params, 'action');
  if (action) f.action = action.map((a) => a.toUpperCase());
  return f;
}

export function parseAppEventFilter(params: URLSearchParams): AppEventFilter {
  const f: AppEventFilter = common(params);
  for (const key of ['source', 'table', 'actor', 'operation'] as const) {
    const v = list(params, key);
    if (v) f[key] = v;
  }
  return f;
}
