/** JSON text helpers for the sinks that write JSON by hand (Elasticsearch bulk bodies, NDJSON archives). */

/** Characters JSON.stringify would escape (controls, quote, backslash, surrogates). */
const NEEDS_ESCAPE = /[\u0000-\u001f"\\\ud800-\udfff]/;

/** JSON text of a string: most values need no escaping, and a regex test is cheaper than JSON.stringify. */
export function jsonString(s: string): string {
  return NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`;
}
