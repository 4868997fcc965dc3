import { tokenize, type Token } from './lexer.js';

/**
 * The default redaction of SQL text (pgaudit's STATEMENT, the failed query of an ERROR record): secrets are found
 * by reading the statement as PostgreSQL does (lexer.ts), never by a pattern over the raw text, and replaced by
 * a fixed marker; the rest of the statement stays as it was, byte for byte. Each rule has a name, which the
 * redacted event records. The rules (a multi-statement string is read statement by statement):
 *  - `role_password`: the password of CREATE/ALTER ROLE/USER/GROUP … [ENCRYPTED] PASSWORD '…' (pgaudit masks it
 *    only in its own records of statements that succeeded; the server's ERROR record of a failed one does not);
 *  - `option_password`: a password-like option of OPTIONS (…) — user mappings and foreign servers;
 *  - `conninfo_password`: `password=…` in a connection string, and the password of a postgres:// URL, inside any
 *    string constant (dblink_connect, CREATE SUBSCRIPTION … CONNECTION, …);
 *  - `crypto_key`: the key (and pgp_pub_decrypt's password) of pgcrypto's functions; when the key is a
 *    parameter ($n), the statement's parameter n is secret (redactParameters masks it).
 */
/**
 * The marker a secret becomes: fixed for each rule (nothing of the value, not even its length, is kept), and
 * naming the rule, so that a redacted event shows which rules fired where they fired — in the store, the
 * search index, the archive and the UI alike.
 */
export function marker(rule: Rule): string {
  return `<redacted:${rule}>`;
}

/** The marker of a parameter value masked because the statement uses it as a key. */
export const REDACTED = marker('crypto_key');

export type StatementRule = 'role_password' | 'option_password' | 'conninfo_password' | 'crypto_key';
export type Rule = StatementRule;

export interface RedactedStatement {
  text: string;
  /** The rules that masked something, each once, in the order of the rules above. */
  rules: StatementRule[];
  /** 1-based positions of parameters ($n) that hold a secret. */
  secretParams: number[];
}

/** Words that make a statement worth reading: a statement without any of them has no secret these rules know. */
const HINT = /pass|pgp_|crypt|hmac|conn|host=|dbname=|:\/\//i;

/** pgcrypto functions and the (0-based) positions of their secret arguments. */
const CRYPTO_ARGS: Record<string, number[]> = {
  pgp_sym_encrypt: [1],
  pgp_sym_encrypt_bytea: [1],
  pgp_sym_decrypt: [1],
  pgp_sym_decrypt_bytea: [1],
  pgp_pub_decrypt: [1, 2],
  pgp_pub_decrypt_bytea: [1, 2],
  encrypt: [1],
  decrypt: [1],
  encrypt_iv: [1, 2],
  decrypt_iv: [1, 2],
  hmac: [1],
  crypt: [0],
};

const PASSWORD_OPTION = /^(password|passwd|sslpassword|secret|api_key|token)$/i;

/**
 * The conninfo `password=value` inside a string constant's source text: the value bare, or quoted as libpq
 * quotes it — which in the SQL text reads ''…'' in a standard constant and \'…\' in an E'…' one.
 */
const CONNINFO_PASSWORD = /(\bpassword\s*=\s*)(''(?:[^']|'''')*''|\\'(?:[^'\\]|\\\\)*?\\'|[^\s']+)/gi;
const URL_PASSWORD = /(\b[a-z][a-z0-9+.-]*:\/\/[^\s:/@]*:)([^\s@/]+)(@)/gi;

interface Edit {
  start: number;
  end: number;
  replacement: string;
}

/** The text of a string token with its inner part replaced (keeping its quoting: ', E', $tag$). */
function maskedString(text: string, t: Token, rule: Rule): string {
  const raw = text.slice(t.start, t.end);
  if (raw.startsWith('$')) {
    const tag = raw.slice(0, raw.indexOf('$', 1) + 1);
    return `${tag}${marker(rule)}${tag}`;
  }
  const q = raw.indexOf("'");
  return `${raw.slice(0, q)}'${marker(rule)}'`;
}

/** Splits tokens into statements at top-level semicolons. */
function statements(tokens: Token[]): Token[][] {
  const out: Token[][] = [];
  let cur: Token[] = [];
  for (const t of tokens) {
    if (t.kind === 'punct' && t.value === ';') {
      if (cur.length) out.push(cur);
      cur = [];
    } else cur.push(t);
  }
  if (cur.length) out.push(cur);
  return out;
}

const isWord = (t: Token | undefined, ...words: string[]) => t !== undefined && t.kind === 'word' && words.includes(t.value);

/** The index of the token that closes the parenthesis opened at `open`. */
function closing(ts: Token[], open: number): number {
  let depth = 0;
  for (let i = open; i < ts.length; i++) {
    const t = ts[i]!;
    if (t.kind !== 'punct') continue;
    if (t.value === '(' || t.value === '[') depth++;
    else if (t.value === ')' || t.value === ']') {
      depth--;
      if (depth === 0) return i;
    }
  }
  return ts.length;
}

/** The top-level arguments of the call whose parenthesis opens at `open`: [first, last] token indexes. */
function argumentsOf(ts: Token[], open: number): [number, number][] {
  const close = closing(ts, open);
  const args: [number, number][] = [];
  let depth = 0;
  let from = open + 1;
  for (let i = open + 1; i < close; i++) {
    const t = ts[i]!;
    if (t.kind !== 'punct') continue;
    if (t.value === '(' || t.value === '[') depth++;
    else if (t.value === ')' || t.value === ']') depth--;
    else if (t.value === ',' && depth === 0) {
      args.push([from, i - 1]);
      from = i + 1;
    }
  }
  if (from <= close - 1) args.push([from, close - 1]);
  return args;
}

function rolePassword(ts: Token[], text: string, edits: Edit[]): boolean {
  if (!isWord(ts[0], 'create', 'alter') || !isWord(ts[1], 'role', 'user', 'group')) return false;
  if (isWord(ts[2], 'mapping')) return false; // CREATE USER MAPPING: option_password
  let hit = false;
  for (let i = 2; i < ts.length - 1; i++) {
    if (!isWord(ts[i], 'password')) continue;
    const v = ts[i + 1]!;
    if (v.kind === 'string') {
      edits.push({ start: v.start, end: v.end, replacement: maskedString(text, v, 'role_password') });
      hit = true;
    }
  }
  return hit;
}

function optionPassword(ts: Token[], text: string, edits: Edit[]): boolean {
  let hit = false;
  for (let i = 0; i < ts.length - 1; i++) {
    if (!isWord(ts[i], 'options') || !(ts[i + 1]!.kind === 'punct' && ts[i + 1]!.value === '(')) continue;
    for (const [a, b] of argumentsOf(ts, i + 1)) {
      // [ADD | SET | DROP] name 'value'
      let k = a;
      if (isWord(ts[k], 'add', 'set', 'drop') && k < b) k++;
      const name = ts[k];
      const value = ts[b];
      if (!name || !value || k === b || value.kind !== 'string') continue;
      const optionName = name.kind === 'word' || name.kind === 'ident' ? name.value : '';
      if (!PASSWORD_OPTION.test(optionName)) continue;
      edits.push({ start: value.start, end: value.end, replacement: maskedString(text, value, 'option_password') });
      hit = true;
    }
  }
  return hit;
}

function conninfoPassword(ts: Token[], text: string, edits: Edit[]): boolean {
  let hit = false;
  for (const t of ts) {
    if (t.kind !== 'string') continue;
    const raw = text.slice(t.start, t.end);
    const mask = marker('conninfo_password');
    let masked = raw.replace(CONNINFO_PASSWORD, (_m, key: string) => `${key}${mask}`);
    masked = masked.replace(URL_PASSWORD, (_m, head: string, _pw: string, at: string) => `${head}${mask}${at}`);
    if (masked !== raw) {
      edits.push({ start: t.start, end: t.end, replacement: masked });
      hit = true;
    }
  }
  return hit;
}

function cryptoKey(ts: Token[], text: string, edits: Edit[], params: Set<number>): boolean {
  let hit = false;
  for (let i = 0; i < ts.length - 1; i++) {
    const t = ts[i]!;
    if (t.kind !== 'word' || !(t.value in CRYPTO_ARGS) || !(ts[i + 1]!.kind === 'punct' && ts[i + 1]!.value === '(')) continue;
    // A column or table named like the function is not a call: the name must not follow a dot.
    if (i > 0 && ts[i - 1]!.kind === 'punct' && ts[i - 1]!.value === '.' && !isWord(ts[i - 2], 'public', 'pgcrypto', 'extensions')) continue;
    const args = argumentsOf(ts, i + 1);
    for (const at of CRYPTO_ARGS[t.value]!) {
      const arg = args[at];
      if (!arg) continue;
      for (let k = arg[0]; k <= arg[1]; k++) {
        const a = ts[k]!;
        if (a.kind === 'string') {
          edits.push({ start: a.start, end: a.end, replacement: maskedString(text, a, 'crypto_key') });
          hit = true;
        } else if (a.kind === 'param') {
          params.add(Number(a.value));
          hit = true;
        }
      }
    }
  }
  return hit;
}

/** Applies non-overlapping edits (the first of overlapping ones wins). */
function applyEdits(text: string, edits: Edit[]): string {
  edits.sort((a, b) => a.start - b.start || b.end - a.end);
  let out = '';
  let at = 0;
  for (const e of edits) {
    if (e.start < at) continue;
    out += text.slice(at, e.start) + e.replacement;
    at = e.end;
  }
  return out + text.slice(at);
}

/** The statement with its secrets masked; the text itself (same string) when nothing was found. */
export function redactStatement(text: string): RedactedStatement {
  if (!HINT.test(text)) return { text, rules: [], secretParams: [] };
  const edits: Edit[] = [];
  const fired = new Set<StatementRule>();
  const params = new Set<number>();
  for (const ts of statements(tokenize(text))) {
    if (rolePassword(ts, text, edits)) fired.add('role_password');
    if (optionPassword(ts, text, edits)) fired.add('option_password');
    if (cryptoKey(ts, text, edits, params)) fired.add('crypto_key');
    if (conninfoPassword(ts, text, edits)) fired.add('conninfo_password');
  }
  if (edits.length === 0 && params.size === 0) return { text, rules: [], secretParams: [] };
  const order: StatementRule[] = ['role_password', 'option_password', 'conninfo_password', 'crypto_key'];
  return { text: edits.length ? applyEdits(text, edits) : text, rules: order.filter((r) => fired.has(r)), secretParams: [...params].sort((a, b) => a - b) };
}

/**
 * pgaudit's PARAMETER field with the values at `positions` (1-based) replaced by the marker. The field is a
 * comma-separated list whose values are double-quoted when they hold a comma, a quote or a line break ("" inside),
 * or `<none>` / `<not logged>`; it is returned unchanged when it is one of those or has fewer values.
 */
export function redactParameters(field: string, positions: readonly number[]): string {
  if (positions.length === 0 || field === '' || field.startsWith('<')) return field;
  const values: string[] = [];
  let i = 0;
  while (i <= field.length) {
    if (field[i] === '"') {
      let j = i + 1;
      for (;;) {
        const k = field.indexOf('"', j);
        if (k < 0) {
          j = field.length;
          break;
        }
        if (field[k + 1] === '"') {
          j = k + 2;
          continue;
        }
        j = k + 1;
        break;
      }
      values.push(field.slice(i, j));
      i = j + 1; // past the comma
    } else {
      const k = field.indexOf(',', i);
      const end = k < 0 ? field.length : k;
      values.push(field.slice(i, end));
      i = end + 1;
    }
    if (i > field.length) break;
  }
  let changed = false;
  for (const p of positions) {
    if (p >= 1 && p <= values.length) {
      values[p - 1] = REDACTED;
      changed = true;
    }
  }
  return changed ? values.join(',') : field;
}
