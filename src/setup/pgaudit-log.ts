/**
 * pgaudit.log as pgaudit reads it: the list syntax PostgreSQL accepts for it, its classes (with `-class`
 * exclusions), whether a value is valid, what it audits, and the nearest valid value to propose.
 */

/** pgaudit's classes (pgaudit.c check_pgaudit_log), as bits. MISC implies MISC_SET where pgaudit tests it. */
const CLASS_BITS: Record<string, number> = {
  read: 1,
  write: 2,
  function: 4,
  role: 8,
  ddl: 16,
  misc: 32,
  misc_set: 64,
  all: 127,
  none: 0,
};
const CLASS_ORDER = ['read', 'write', 'function', 'role', 'ddl', 'misc', 'misc_set'] as const;
/** What `auditship check` proposes when nothing valid is left. */
export const DEFAULT_PGAUDIT_LOG = 'read, write, ddl, role';

export interface PgauditLogToken {
  /** As written (quotes removed). */
  text: string;
  subtract: boolean;
  /** The class, lower-case; null when not a class. */
  className: string | null;
}

export interface ParsedPgauditLog {
  /** False when PostgreSQL cannot split the value into a list (e.g. `read write`, `read,,write`, `read;write`). */
  syntaxOk: boolean;
  tokens: PgauditLogToken[];
  /** Tokens that are not classes, as written (with their `-`). */
  invalid: string[];
  /** The classes audited (upper-case, in pgaudit's order); empty: nothing is audited. */
  audited: string[];
  /** Valid: PostgreSQL accepts it. */
  valid: boolean;
}

/**
 * Splits a list the way PostgreSQL's SplitIdentifierString does for GUC_LIST_INPUT settings: comma
 * separated, whitespace around items ignored, double quotes for an item as written, unquoted items
 * lower-cased; an empty item or two items without a comma between them is a syntax error (null).
 */
export function splitGucList(raw: string): string[] | null {
  const out: string[] = [];
  let i = 0;
  const isSpace = (c: string | undefined) => c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\f' || c === '\v';
  while (isSpace(raw[i])) i++;
  if (i >= raw.length) return out;
  for (;;) {
    let name = '';
    if (raw[i] === '"') {
      i++;
      for (;;) {
        if (i >= raw.length) return null; // unterminated quote
        if (raw[i] === '"') {
          if (raw[i + 1] === '"') {
            name += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        name += raw[i++];
      }
      if (name === '') return null;
    } else {
      const start = i;
      while (i < raw.length && raw[i] !== ',' && !isSpace(raw[i])) i++;
      if (i === start) return null; // empty item
      name = raw.slice(start, i).toLowerCase();
    }
    out.push(name);
    while (isSpace(raw[i])) i++;
    if (i >= raw.length) return out;
    if (raw[i] !== ',') return null; // two items without a comma
    i++;
    while (isSpace(raw[i])) i++;
  }
}

function tokenOf(text: string): PgauditLogToken {
  const subtract = text.startsWith('-');
  const name = (subtract ? text.slice(1) : text).toLowerCase();
  return { text, subtract, className: name in CLASS_BITS ? name : null };
}

function auditedOf(tokens: PgauditLogToken[]): string[] {
  let bits = 0;
  for (const t of tokens) {
    if (t.className === null) continue;
    const b = CLASS_BITS[t.className]!;
    bits = t.subtract ? bits & ~b : bits | b;
  }
  return CLASS_ORDER.filter((c) => bits & CLASS_BITS[c]!).map((c) => c.toUpperCase());
}

/** Parses a pgaudit.log value as pgaudit does: classes, `-class` subtracts, case-insensitive. */
export function parsePgauditLog(value: string): ParsedPgauditLog {
  const items = splitGucList(value);
  // A value PostgreSQL cannot split is still read leniently, to tell which classes were meant.
  const tokens = (items ?? value.split(/[\s,;]+/).filter(Boolean)).map(tokenOf);
  const invalid = tokens.filter((t) => t.className === null).map((t) => t.text);
  return { syntaxOk: items !== null, tokens, invalid, audited: auditedOf(tokens), valid: items !== null && invalid.length === 0 };
}

/**
 * The value to set instead: the valid classes kept (in their order, `-` kept), the rest dropped; when that
 * audits nothing, `read, write, ddl, role` — or, with `emptyOk` (a per-role value such as the shipper's
 * own `none`), whatever is left, null when nothing is.
 */
export function correctedPgauditLog(value: string, emptyOk = false): string | null {
  // An item that is not a class may still hold classes run together with another separator ('read;ddl').
  const kept = parsePgauditLog(value)
    .tokens.flatMap((t) =>
      t.className !== null
        ? [t]
        : t.text
            .split(/[^A-Za-z_-]+/)
            .filter(Boolean)
            .map(tokenOf),
    )
    .filter((t) => t.className !== null);
  const text = kept.map((t) => `${t.subtract ? '-' : ''}${t.className}`).join(', ');
  if (emptyOk) return kept.length ? text : null;
  return auditedOf(kept).length ? text : DEFAULT_PGAUDIT_LOG;
}

/** Why a pgaudit.log value is not valid, as a clause: "names 'privilege', which is not a pgaudit class …". */
export function describeInvalid(p: ParsedPgauditLog): string {
  const parts: string[] = [];
  if (p.invalid.length === 1) parts.push(`names '${p.invalid[0]}', which is not a pgaudit class`);
  else if (p.invalid.length > 1) parts.push(`names ${p.invalid.map((t) => `'${t}'`).join(', ')}, which are not pgaudit classes`);
  if (p.invalid.some((t) => /^-?privileges?$/i.test(t))) parts.push('(GRANT and REVOKE are logged by class ROLE)');
  if (!p.syntaxOk) parts.push(`${parts.length ? 'and ' : ''}is not a comma-separated list`);
  return parts.join(' ');
}
