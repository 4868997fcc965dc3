/**
 * The user's redaction rules, from the config's `redaction` section, on top of the built-in ones
 * (statement.ts):
 *  - `patterns`: `NAME=REGEX` — every match in a pgaudit statement, parameter, raw message, and in the server's
 *    error texts becomes `<redacted:NAME>`. A JavaScript regular expression, applied to the whole text.
 *  - `columns`: `SCHEMA.TABLE.COLUMN` (masked) or `SCHEMA.TABLE.COLUMN:drop` — a column of an audited table in
 *    an audit table's row_data and changed_fields: masked or left out, in PostgreSQL's own query, so the value
 *    never leaves the database (sources/pg-audit-table/layout.ts).
 *  - `json_paths`: `a.b.c` (masked) or `a.b.c:drop` — a value of an outbox or django-auditlog message; `*`
 *    stands for any key or array element of one level.
 * Names are lower case letters, digits and underscores, so that the marker reads back (audit_logs.redactions).
 */
export const RULE_NAME = /^[a-z][a-z0-9_]*$/;

export interface PatternRule {
  name: string;
  re: RegExp;
}

export interface ColumnRule {
  schema: string;
  table: string;
  column: string;
  action: 'mask' | 'drop';
}

export interface JsonPathRule {
  path: string[];
  action: 'mask' | 'drop';
}

/** Reads `NAME=REGEX`; a string is the problem with it. */
export function parsePattern(spec: string): PatternRule | string {
  const eq = spec.indexOf('=');
  const name = spec.slice(0, eq);
  if (eq < 1 || !RULE_NAME.test(name)) return `${JSON.stringify(spec)}: give NAME=REGEX, NAME in lower case letters, digits and _`;
  try {
    const re = new RegExp(spec.slice(eq + 1), 'g');
    if (re.test('')) return `${JSON.stringify(spec)}: the expression matches the empty string`;
    return { name, re };
  } catch (err) {
    return `${JSON.stringify(spec)}: ${(err as Error).message}`;
  }
}

/** Compiles checked pattern specs (the config loader checked them). */
export function compilePatterns(specs: readonly string[] | undefined): PatternRule[] {
  return (specs ?? []).map((s) => {
    const r = parsePattern(s);
    if (typeof r === 'string') throw new Error(r);
    return r;
  });
}

/** The text with every match of every rule masked. */
export function applyPatterns(text: string, rules: readonly PatternRule[]): string {
  let out = text;
  for (const r of rules) {
    r.re.lastIndex = 0;
    if (r.re.test(out)) {
      r.re.lastIndex = 0;
      out = out.replace(r.re, `<redacted:${r.name}>`);
    }
  }
  return out;
}

function action(spec: string): { body: string; action: 'mask' | 'drop' } | string {
  const colon = spec.lastIndexOf(':');
  if (colon < 0) return { body: spec, action: 'mask' };
  const a = spec.slice(colon + 1);
  if (a !== 'drop' && a !== 'mask') return `${JSON.stringify(spec)}: ends in :${a}; give :drop, :mask or nothing (mask)`;
  return { body: spec.slice(0, colon), action: a };
}

/** Reads `SCHEMA.TABLE.COLUMN[:drop]`. */
export function parseColumnRule(spec: string): ColumnRule | string {
  const a = action(spec);
  if (typeof a === 'string') return a;
  const parts = a.body.split('.');
  if (parts.length !== 3 || parts.some((p) => p === '')) return `${JSON.stringify(spec)}: give SCHEMA.TABLE.COLUMN, then :drop to leave the column out`;
  return { schema: parts[0]!, table: parts[1]!, column: parts[2]!, action: a.action };
}

/** Reads `a.b.c[:drop]` (`*`: any key or element of one level). */
export function parseJsonPath(spec: string): JsonPathRule | string {
  const a = action(spec);
  if (typeof a === 'string') return a;
  const path = a.body.split('.');
  if (path.some((p) => p === '')) return `${JSON.stringify(spec)}: give a dotted path such as user.password, then :drop to leave the value out`;
  return { path, action: a.action };
}

export const JSON_PATH_MARKER = '<redacted:json_path>';

function maskAt(node: unknown, path: readonly string[], i: number, rule: JsonPathRule): boolean {
  if (node === null || typeof node !== 'object') return false;
  const key = path[i]!;
  const last = i === path.length - 1;
  const keys = key === '*' ? Object.keys(node) : Object.prototype.hasOwnProperty.call(node, key) ? [key] : [];
  let fired = false;
  for (const k of keys) {
    const o = node as Record<string, unknown>;
    if (!last) {
      fired = maskAt(o[k], path, i + 1, rule) || fired;
      continue;
    }
    if (rule.action === 'drop') {
      if (Array.isArray(node)) o[k] = null;
      else delete o[k];
    } else o[k] = JSON_PATH_MARKER;
    fired = true;
  }
  return fired;
}

/**
 * The message with the rules' values masked or dropped; the text unchanged (byte for byte) when no rule
 * applies or the text is not JSON (such a message is quarantined as it is: it cannot be read).
 */
export function maskJson(text: string, rules: readonly JsonPathRule[]): string {
  if (rules.length === 0) return text;
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return text;
  }
  let fired = false;
  for (const r of rules) fired = maskAt(doc, r.path, 0, r) || fired;
  return fired ? JSON.stringify(doc) : text;
}
