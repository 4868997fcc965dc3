/**
 * A SQL lexer as PostgreSQL's scanner cuts text, for finding secrets without guessing: words (keywords and
 * identifiers, compared case-insensitively), quoted identifiers, string constants in every form (standard
 * '…' with '' inside, E'…' with backslash escapes, U&'…', B'…'/X'…', $$…$$ and $tag$…$tag$), numbers,
 * positional parameters ($1), operators and punctuation. Comments (-- to the end of the line, nested /* … *\/)
 * and whitespace are skipped. An unterminated constant or comment runs to the end of the text, as the server
 * would refuse it: the lexer never throws.
 */
export type TokenKind = 'word' | 'ident' | 'string' | 'number' | 'param' | 'punct' | 'op';

export interface Token {
  kind: TokenKind;
  /** The text of the token, [start, end) of the statement. */
  start: number;
  end: number;
  /** word: the lowercased word; punct/op: the character(s); param: the number as text; string: its inner text. */
  value: string;
}

const isSpace = (c: number) => c === 32 || c === 9 || c === 10 || c === 13 || c === 12 || c === 11;
const isWordStart = (c: number) => (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95 || c >= 128;
const isWordChar = (c: number) => isWordStart(c) || (c >= 48 && c <= 57) || c === 36;
const isDigit = (c: number) => c >= 48 && c <= 57;
const PUNCT = new Set(['(', ')', ',', ';', '[', ']', '.', ':']);
const OP_CHARS = '+-*/<>=~!@#%^&|`?';

/** The end of a standard '…' constant starting at the quote `i` ('' stays inside); the text length if unterminated. */
function endOfQuoted(text: string, i: number, backslashes: boolean): number {
  let j = i + 1;
  for (;;) {
    const k = text.indexOf("'", j);
    if (k < 0) return text.length;
    if (backslashes) {
      // A quote preceded by an odd number of backslashes is escaped.
      let b = k - 1;
      while (b >= i + 1 && text.charCodeAt(b) === 92) b--;
      if ((k - 1 - b) % 2 === 1) {
        j = k + 1;
        continue;
      }
    }
    if (text.charCodeAt(k + 1) === 39) {
      j = k + 2;
      continue;
    }
    return k + 1;
  }
}

export function tokenize(text: string): Token[] {
  const out: Token[] = [];
  const n = text.length;
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (isSpace(c)) {
      i++;
      continue;
    }
    // -- comment
    if (c === 45 && text.charCodeAt(i + 1) === 45) {
      const nl = text.indexOf('\n', i);
      i = nl < 0 ? n : nl + 1;
      continue;
    }
    // /* comment */ (nested)
    if (c === 47 && text.charCodeAt(i + 1) === 42) {
      let depth = 1;
      let j = i + 2;
      while (j < n && depth > 0) {
        if (text.charCodeAt(j) === 47 && text.charCodeAt(j + 1) === 42) {
          depth++;
          j += 2;
        } else if (text.charCodeAt(j) === 42 && text.charCodeAt(j + 1) === 47) {
          depth--;
          j += 2;
        } else j++;
      }
      i = j;
      continue;
    }
    // string constants with a prefix: E'…', U&'…', B'…', X'…', N'…'
    if ((c === 69 || c === 101) && text.charCodeAt(i + 1) === 39) {
      const end = endOfQuoted(text, i + 1, true);
      out.push({ kind: 'string', start: i, end, value: text.slice(i + 2, Math.max(i + 2, end - 1)) });
      i = end;
      continue;
    }
    if ((c === 85 || c === 117) && text.charCodeAt(i + 1) === 38 && text.charCodeAt(i + 2) === 39) {
      const end = endOfQuoted(text, i + 2, false);
      out.push({ kind: 'string', start: i, end, value: text.slice(i + 3, Math.max(i + 3, end - 1)) });
      i = end;
      continue;
    }
    if ((c === 66 || c === 98 || c === 88 || c === 120 || c === 78 || c === 110) && text.charCodeAt(i + 1) === 39) {
      const end = endOfQuoted(text, i + 1, false);
      out.push({ kind: 'string', start: i, end, value: text.slice(i + 2, Math.max(i + 2, end - 1)) });
      i = end;
      continue;
    }
    if (c === 39) {
      const end = endOfQuoted(text, i, false);
      out.push({ kind: 'string', start: i, end, value: text.slice(i + 1, Math.max(i + 1, end - 1)).replaceAll("''", "'") });
      i = end;
      continue;
    }
    // $n parameter or $tag$ … $tag$ constant
    if (c === 36) {
      if (isDigit(text.charCodeAt(i + 1))) {
        let j = i + 1;
        while (j < n && isDigit(text.charCodeAt(j))) j++;
        out.push({ kind: 'param', start: i, end: j, value: text.slice(i + 1, j) });
        i = j;
        continue;
      }
      let j = i + 1;
      while (j < n && isWordChar(text.charCodeAt(j)) && text.charCodeAt(j) !== 36) j++;
      if (text.charCodeAt(j) === 36 && (j === i + 1 || isWordStart(text.charCodeAt(i + 1)))) {
        const tag = text.slice(i, j + 1);
        const close = text.indexOf(tag, j + 1);
        const end = close < 0 ? n : close + tag.length;
        out.push({ kind: 'string', start: i, end, value: text.slice(j + 1, close < 0 ? n : close) });
        i = end;
        continue;
      }
    }
    if (c === 34) {
      let j = i + 1;
      for (;;) {
        const k = text.indexOf('"', j);
        if (k < 0) {
          j = n;
          break;
        }
        if (text.charCodeAt(k + 1) === 34) {
          j = k + 2;
          continue;
        }
        j = k + 1;
        break;
      }
      out.push({ kind: 'ident', start: i, end: j, value: text.slice(i + 1, Math.max(i + 1, j - 1)).replaceAll('""', '"') });
      i = j;
      continue;
    }
    if (isWordStart(c)) {
      let j = i + 1;
      while (j < n && isWordChar(text.charCodeAt(j))) j++;
      out.push({ kind: 'word', start: i, end: j, value: text.slice(i, j).toLowerCase() });
      i = j;
      continue;
    }
    if (isDigit(c) || (c === 46 && isDigit(text.charCodeAt(i + 1)))) {
      let j = i + 1;
      while (j < n && (isDigit(text.charCodeAt(j)) || text.charCodeAt(j) === 46 || text.charCodeAt(j) === 95)) j++;
      out.push({ kind: 'number', start: i, end: j, value: text.slice(i, j) });
      i = j;
      continue;
    }
    const ch = text[i]!;
    if (PUNCT.has(ch)) {
      out.push({ kind: 'punct', start: i, end: i + 1, value: ch });
      i++;
      continue;
    }
    if (OP_CHARS.includes(ch)) {
      let j = i + 1;
      while (j < n && OP_CHARS.includes(text[j]!) && !(text[j] === '-' && text[j + 1] === '-') && !(text[j] === '/' && text[j + 1] === '*')) j++;
      out.push({ kind: 'op', start: i, end: j, value: text.slice(i, j) });
      i = j;
      continue;
    }
    i++; // anything else (a stray character) is skipped
  }
  return out;
}
