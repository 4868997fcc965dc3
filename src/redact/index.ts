import { marker, redactParameters, redactStatement, type Rule } from './statement.js';
import { applyPatterns, type PatternRule } from './rules.js';

/**
 * Redaction: secrets masked before any sink sees an event (the default policy, on unless the config's
 * `redaction.enabled` is false). statement.ts reads SQL text the way PostgreSQL does and knows the rules;
 * lexer.ts is its scanner. This module applies them to what the parsers make: a pgaudit record (statement,
 * parameters, and the raw message when it is kept) and a session record (an error's message, detail and failed
 * query). mayHoldSecret is the byte-level test the fast csvlog packer runs on every statement: only a statement
 * that may hold a secret leaves the fast path for the string path, where it is redacted.
 */
export { marker, REDACTED, redactParameters, redactStatement, type RedactedStatement, type Rule, type StatementRule } from './statement.js';
export * from './rules.js';

/** The fields of a pgaudit record redaction reads and rewrites. */
export interface RedactableAuditRecord {
  statement: string | null;
  parameter: string | null;
  /** The raw message (`AUDIT: …`), or '' when it is not kept. */
  message: string;
}

/** The fields of a session record (connection, logon failure, error) redaction rewrites. */
export interface RedactableSessionRecord {
  message: string;
  detail: string | null;
  query: string | null;
}

/**
 * Masks the secrets of a pgaudit record in place: the built-in rules, then the user's patterns. Returns the
 * built-in rules that fired (none: the record is unchanged by them).
 */
export function redactAuditRecord(r: RedactableAuditRecord, patterns: readonly PatternRule[] = []): Rule[] {
  const rules = redactBuiltIn(r);
  if (patterns.length > 0) {
    if (r.statement !== null) r.statement = applyPatterns(r.statement, patterns);
    if (r.parameter !== null) r.parameter = applyPatterns(r.parameter, patterns);
    if (r.message) r.message = applyPatterns(r.message, patterns);
  }
  return rules;
}

function redactBuiltIn(r: RedactableAuditRecord): Rule[] {
  if (r.statement === null) return [];
  const s = redactStatement(r.statement);
  if (s.rules.length === 0) return [];
  if (s.text !== r.statement) {
    // The kept raw message holds the statement too, as pgaudit wrote it: CSV-quoted when it needed quoting.
    if (r.message) r.message = replaceAll(replaceAll(r.message, quoted(r.statement), quoted(s.text)), r.statement, s.text);
    r.statement = s.text;
  }
  if (s.secretParams.length && r.parameter !== null) {
    const p = redactParameters(r.parameter, s.secretParams);
    if (p !== r.parameter) {
      if (r.message) r.message = replaceAll(r.message, r.parameter, p);
      r.parameter = p;
    }
  }
  return s.rules;
}

/** Masks the texts of a session record in place (an error's message and detail, the statement that failed). */
export function redactSessionRecord(r: RedactableSessionRecord, patterns: readonly PatternRule[] = []): void {
  if (r.query !== null) r.query = applyPatterns(redactStatement(r.query).text, patterns);
  r.message = applyPatterns(redactStatement(r.message).text, patterns);
  if (r.detail !== null) r.detail = applyPatterns(redactStatement(r.detail).text, patterns);
}

/** A string constant as a regex alternative: '…' ('' inside), E'…' (backslash escapes), $tag$…$tag$. */
const CONSTANT = String.raw`(?:[Ee]'(?:[^'\\]|\\.|'')*'|'(?:[^']|'')*'|\$(?<tag>[A-Za-z_]\w*)?\$[\s\S]*?\$\k<tag>\$)`;
const RAW_PASSWORD = new RegExp(String.raw`(\bpassword\s+)` + CONSTANT, 'gi');
const RAW_CONNINFO = /(\bpassword\s*=\s*)(?:''(?:[^']|'''')*''|[^\s'",]+)/gi;
const RAW_URL = /(\b[a-z][a-z0-9+.-]*:\/\/[^\s:/@]*:)[^\s@/]+(@)/gi;
const RAW_CRYPTO = /pgp_|crypt|hmac/i;
const RAW_CONSTANT = new RegExp(CONSTANT, 'g');

/**
 * A record that could not be parsed (kept in quarantine with its raw text): it cannot be read as SQL, so the text
 * is masked conservatively — a constant after PASSWORD, `password=` values and URL passwords anywhere, and, when a
 * crypto function is named, every string constant. Better a quarantined line that says less than one that leaks.
 */
export function redactRaw(text: string): string {
  if (!HINT_RAW.test(text)) return text;
  let out = text.replace(RAW_PASSWORD, (_m, head: string) => `${head}'${marker('role_password')}'`);
  out = out.replace(RAW_CONNINFO, (_m, head: string) => `${head}${marker('conninfo_password')}`);
  out = out.replace(RAW_URL, (_m, head: string, at: string) => `${head}${marker('conninfo_password')}${at}`);
  if (RAW_CRYPTO.test(out)) out = out.replace(RAW_CONSTANT, `'${marker('crypto_key')}'`);
  return out;
}
const HINT_RAW = /pass|pgp_|crypt|hmac|:\/\//i;

function quoted(s: string): string {
  return `"${s.replaceAll('"', '""')}"`;
}

function replaceAll(text: string, from: string, to: string): string {
  return from === '' || from === to ? text : text.split(from).join(to);
}

const P = 0x70,
  C = 0x63,
  H = 0x68,
  D = 0x64,
  COLON = 0x3a;

/** Lowercase ASCII of byte b (other bytes unchanged). */
const lower = (b: number) => (b >= 65 && b <= 90 ? b | 0x20 : b);

function follows(src: Uint8Array, i: number, e: number, rest: string): boolean {
  if (i + rest.length > e) return false;
  for (let k = 0; k < rest.length; k++) if (lower(src[i + k]!) !== rest.charCodeAt(k)) return false;
  return true;
}

const QUOTE = 0x27,
  DOLLAR = 0x24,
  PAREN = 0x28,
  SLASH = 0x2f;
const isWordByte = (b: number) => (b >= 97 && b <= 122) || (b >= 65 && b <= 90) || (b >= 48 && b <= 57) || b === 95;

/**
 * The fast csvlog path's test of each statement, in order through one buffer: may it hold a secret? Every rule
 * masks a string constant ('…' in any form, or $$…$$) or a parameter ($n) passed to a crypto function, so a
 * statement without a quote and without a dollar sign holds none — the next quote and dollar of the buffer are
 * found natively and kept while the statements pass them, so most statements cost a comparison or two. A
 * statement with a dollar is read once: a dollar quote sends it to the byte scan (mayHoldSecret); with parameters
 * only, each call's function name ("name (", a comment or line break before the parenthesis sends the statement
 * to the scan) is tested. reset() before each buffer (or new content in it).
 */
export class SecretPrefilter {
  private buf: Uint8Array | null = null;
  private from = 0;
  private nq = -1;

  /** `all`: every statement may hold a secret (the user's patterns are read in the string path). */
  constructor(private readonly all = false) {}

  reset(): void {
    this.buf = null;
  }

  /** The next position of byte c at or after s (-2: none), from the cached one when it still lies ahead. */
  private next(c: number, cached: number, s: number): number {
    if (cached >= s || cached === -2) return cached;
    const i = (this.buf as Buffer).indexOf(c, s);
    return i < 0 ? -2 : i;
  }

  may(src: Buffer, s: number, e: number): boolean {
    if (this.all) return true;
    if (src !== this.buf || s < this.from) {
      this.buf = src;
      this.nq = -1;
    }
    this.from = s;
    let q = this.nq;
    if (q < s && q !== -2) {
      q = src.indexOf(QUOTE, s);
      this.nq = q = q < 0 ? -2 : q;
    }
    if (q >= 0 && q < e) return mayHoldSecret(src, s, e);
    // No quote: a dollar quote or a parameter given to a crypto function; one read of the statement's bytes.
    let params = false,
      calls = false;
    for (let i = s; i < e; i++) {
      const c = src[i]!;
      if (c === DOLLAR) {
        const d = i + 1 < e ? src[i + 1]! : 0;
        if (d < 48 || d > 57) return mayHoldSecret(src, s, e); // $$ or $tag$: a constant
        params = true;
      } else if (c === PAREN) calls = true;
    }
    if (!params || !calls) return false;
    // Parameters and calls: is one of the calls a crypto function's?
    for (let i = s; i < e; i++) {
      if (src[i] !== PAREN) continue;
      let w = i;
      while (w > s && (src[w - 1] === 32 || src[w - 1] === 9)) w--;
      const before = w > s ? src[w - 1]! : 0;
      if (before === 10 || before === 13 || before === SLASH) return mayHoldSecret(src, s, e); // after a comment
      let b = w;
      while (b > s && isWordByte(src[b - 1]!)) b--;
      if (b < w && mayHoldSecret(src, b, w)) return true;
    }
    return false;
  }
}

/**
 * True when the bytes [s, e) hold a word the redaction rules start from (pass…, pgp_…, crypt, hmac, conn…,
 * host=, dbname=, ://), case-insensitively: the same test as statement.ts's, on bytes, without making a string.
 */
export function mayHoldSecret(src: Uint8Array, s: number, e: number): boolean {
  for (let i = s; i < e; i++) {
    const b = lower(src[i]!);
    if (b === P) {
      if (follows(src, i + 1, e, 'ass') || follows(src, i + 1, e, 'gp_')) return true;
    } else if (b === C) {
      if (follows(src, i + 1, e, 'rypt') || follows(src, i + 1, e, 'onn')) return true;
    } else if (b === H) {
      if (follows(src, i + 1, e, 'mac') || follows(src, i + 1, e, 'ost=')) return true;
    } else if (b === D) {
      if (follows(src, i + 1, e, 'bname=')) return true;
    } else if (b === COLON) {
      if (follows(src, i + 1, e, '//')) return true;
    }
  }
  return false;
}
