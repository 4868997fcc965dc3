import type { EventFilter } from './types.js';

/** Query-string parameters of a filter: from, to (ISO-8601 or epoch ms), server, user, database, application, client, class, command (repeatable or comma-separated), object, outcome, q (statement text). */
export type FilterParams = URLSearchParams;

const MAX_TEXT = 1000;

/** A time parameter: epoch milliseconds, or an ISO-8601 date/time (UTC unless it names an offset). */
export function parseTime(value: string, name: string): number {
  const v = value.trim();
  if (/^-?\d+$/.test(v)) return Number(v);
  const iso = /^\d{4}-\d\d-\d\d([T ]\d\d:\d\d(:\d\d(\.\d+)?)?)?(Z|[+-]\d\d:?\d\d)?$/.exec(v);
  const ms = iso ? Date.parse(iso[4] || !iso[1] ? v.replace(' ', 'T') : `${v.replace(' ', 'T')}Z`) : NaN;
  if (!Number.isFinite(ms)) throw new Error(`${name}: "${value.slice(0, 40)}" is not a time (ISO-8601 such as 2026-05-01T12:00:00Z, or epoch milliseconds)`);
  return ms;
}

/** A list parameter: repeatable or comma-separated, trimmed, distinct; undefined when empty. */
export function listParam(params: FilterParams, name: string): string[] | undefined {
  const values = params
    .getAll(name)
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter((v) => v !== '');
  return values.length ? [...new Set(values)] : undefined;
}

/** Reads an EventFilter from URL parameters; throws Error with a one-line message for a malformed value. */
export function parseFilter(params: FilterParams): EventFilter {
  const f: EventFilter = parseRangeAndText(params);
  for (const [key, name] of [
    ['server', 'server'],
    ['user', 'user'],
    ['database', 'database'],
    ['application', 'application'],
    ['client', 'client'],
    ['class', 'class'],
    ['command', 'command'],
  ] as const) {
    const v = listParam(params, name);
    if (v) f[key] = key === 'class' || key === 'command' ? v.map((x) => x.toUpperCase()) : v;
  }
  const object = params.get('object')?.trim();
  if (object) f.object = object.slice(0, MAX_TEXT);
  const outcome = params.get('outcome')?.trim();
  if (outcome && outcome !== 'any') {
    if (outcome !== 'success' && outcome !== 'error') throw new Error(`outcome: "${outcome.slice(0, 20)}" is not success, error or any`);
    f.outcome = outcome;
  }
  return f;
}

/** The keys every source's filter takes: from, to (ISO-8601 or epoch ms) and q (free text). */
export function parseRangeAndText(params: FilterParams): { from?: number; to?: number; text?: string } {
  const f: { from?: number; to?: number; text?: string } = {};
  const from = params.get('from');
  const to = params.get('to');
  if (from) f.from = parseTime(from, 'from');
  if (to) f.to = parseTime(to, 'to');
  if (f.from !== undefined && f.to !== undefined && f.from >= f.to) throw new Error('from must be earlier than to');
  const q = params.get('q');
  if (q && q.trim()) {
    if (q.length > MAX_TEXT) throw new Error(`q: longer than ${MAX_TEXT} characters`);
    f.text = q.trim();
  }
  return f;
}

/** The URL parameters of a filter (the inverse of parseFilter), e.g. to ask another process's API. */
export function filterToParams(f: EventFilter, params = new URLSearchParams()): URLSearchParams {
  if (f.from !== undefined) params.set('from', String(f.from));
  if (f.to !== undefined) params.set('to', String(f.to));
  for (const [key, name] of [
    ['server', 'server'],
    ['user', 'user'],
    ['database', 'database'],
    ['application', 'application'],
    ['client', 'client'],
    ['class', 'class'],
    ['command', 'command'],
  ] as const) {
    for (const v of f[key] ?? []) params.append(name, v);
  }
  if (f.object) params.set('object', f.object);
  if (f.outcome) params.set('outcome', f.outcome);
  if (f.text) params.set('q', f.text);
  return params;
}
