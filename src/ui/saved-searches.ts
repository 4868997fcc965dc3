/**
 * Saved searches: a name and a filter in the UI's own terms — the URL hash of the page (`range=24h&class=ROLE&
 * outcome=error&q=salary`). Kept in the config (`ui.saved_searches: "NAME=FILTER"`, shared by everyone who opens
 * the UI) and in the browser (saved from the page, local to it). A link `#search=NAME` opens one by name.
 */
export interface SavedSearch {
  name: string;
  /** URL-encoded filter parameters, as in the page's hash. */
  filter: string;
}

/** The keys a saved filter may hold: those of the page's hash. */
export const SEARCH_KEYS = ['range', 'from', 'to', 'server', 'user', 'database', 'class', 'command', 'object', 'outcome', 'q'];

/** Parses `NAME=FILTER`; returns a problem as a string. */
export function parseSavedSearch(spec: string): SavedSearch | string {
  const at = spec.indexOf('=');
  const name = at < 0 ? '' : spec.slice(0, at).trim();
  if (!name) return `"${spec.slice(0, 60)}": NAME=FILTER, e.g. "Failed logins=class=ROLE&outcome=error"`;
  if (name.length > 80) return `"${name.slice(0, 40)}…": a name of at most 80 characters`;
  const filter = new URLSearchParams(spec.slice(at + 1).trim());
  if ([...filter.keys()].length === 0) return `${name}: the filter is empty`;
  for (const key of filter.keys())
    if (!SEARCH_KEYS.includes(key)) return `${name}: unknown filter key "${key.slice(0, 40)}"; allowed: ${SEARCH_KEYS.join(', ')}`;
  const range = filter.get('range');
  if (range !== null && !['1h', '24h', '7d', '30d', 'all', 'custom'].includes(range)) return `${name}: range is 1h, 24h, 7d, 30d, all or custom`;
  const outcome = filter.get('outcome');
  if (outcome !== null && !['success', 'error'].includes(outcome)) return `${name}: outcome is success or error`;
  return { name, filter: filter.toString() };
}

/** The config's saved searches (validated when the config was loaded). */
export function savedSearchesOf(specs: string | string[]): SavedSearch[] {
  return (Array.isArray(specs) ? specs : [specs]).map(parseSavedSearch).filter((s): s is SavedSearch => typeof s !== 'string');
}
