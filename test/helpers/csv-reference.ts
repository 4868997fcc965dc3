/**
 * Reference CSV encoders/decoders and input generators for the parse-layer property tests.
 *
 * Written independently of src/parse (shares no code with it): a character-by-character RFC 4180 reading
 * of what PostgreSQL csvlog and pgaudit write, used as the oracle the real parser is compared against.
 *
 *  - pgaudit (append_valid_csv): a field is quoted iff it contains a comma, double quote, CR or LF; inner
 *    quotes are doubled; NULL is an empty unquoted field. The reference encoder here additionally writes the
 *    empty string as `""` so that every value round-trips (pgaudit itself writes '' unquoted, like NULL).
 *  - csvlog: text columns are always quoted, numbers and timestamps never; NULL is empty.
 */
import type { Rng } from './prng.js';

// ---------------------------------------------------------------------------------------------------------
// Encoders

function needsQuotes(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    if (c === ',' || c === '"' || c === '\r' || c === '\n') return true;
  }
  return false;
}

function quote(value: string): string {
  let out = '"';
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    out += c === '"' ? '""' : c;
  }
  return out + '"';
}

/** RFC 4180 field: quoted iff it holds `,` `"` CR or LF; NULL → empty; '' → `""`. */
export function refEncodeField(value: string | null): string {
  if (value === null) return '';
  if (value === '') return '""';
  return needsQuotes(value) ? quote(value) : value;
}

/** One CSV record (no line end). */
export function refEncodeRecord(values: readonly (string | null)[]): string {
  let out = '';
  for (let i = 0; i < values.length; i++) {
    if (i > 0) out += ',';
    out += refEncodeField(values[i]!);
  }
  return out;
}

/** A csvlog column: text is always quoted, NULL is empty. */
export function csvlogText(value: string | null): string {
  return value === null ? '' : quote(value);
}

/** A csvlog column that is written bare (numbers, timestamps, ids); must hold no `,` `"` CR or LF. */
export function csvlogBare(value: string | number | null): string {
  if (value === null) return '';
  const s = String(value);
  if (s === '' || needsQuotes(s)) throw new Error(`not a bare csvlog value: ${JSON.stringify(s)}`);
  return s;
}

// ---------------------------------------------------------------------------------------------------------
// Decoders (oracles)

export type RefScan =
  | { kind: 'record'; fields: (string | null)[]; next: number }
  /** The text ends before the record does, and nothing so far is invalid. */
  | { kind: 'incomplete' }
  /** Not valid CSV (stray quote, text after a closing quote, lone CR outside quotes). */
  | { kind: 'invalid' };

/**
 * Strict RFC 4180 record reader starting at `pos`: a record ends at LF or CRLF outside quotes; unquoted
 * fields hold no `"`, CR or LF; a quoted field is followed by `,` or the line end.
 */
export function refScanRecord(text: string, pos: number): RefScan {
  const n = text.length;
  const fields: (string | null)[] = [];
  let i = pos;
  for (;;) {
    if (i >= n) return { kind: 'incomplete' };
    if (text[i] === '"') {
      let value = '';
      i++;
      for (;;) {
        if (i >= n) return { kind: 'incomplete' };
        const c = text[i]!;
        if (c === '"') {
          if (i + 1 >= n) return { kind: 'incomplete' };
          if (text[i + 1] === '"') {
            value += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        value += c;
        i++;
      }
      fields.push(value);
    } else {
      let value = '';
      while (i < n) {
        const c = text[i]!;
        if (c === ',' || c === '"' || c === '\r' || c === '\n') break;
        value += c;
        i++;
      }
      if (i >= n) return { kind: 'incomplete' };
      if (text[i] === '"') return { kind: 'invalid' };
      fields.push(value === '' ? null : value);
    }
    const sep = text[i];
    if (sep === ',') {
      i++;
      continue;
    }
    if (sep === '\n') return { kind: 'record', fields, next: i + 1 };
    if (sep === '\r') {
      if (i + 1 >= n) return { kind: 'incomplete' };
      if (text[i + 1] === '\n') return { kind: 'record', fields, next: i + 2 };
      return { kind: 'invalid' };
    }
    return { kind: 'invalid' };
  }
}

export type RefSplitError = 'unterminated_quote' | 'text_after_closing_quote' | 'quote_in_unquoted_field';

/**
 * Splits a whole text as ONE CSV record (the contract of splitCsv): fields end at `,` or at the end of the
 * text; CR and LF are ordinary characters; the first error met from the left is reported.
 */
export function refSplit(text: string): { fields: (string | null)[]; error: RefSplitError | null } {
  const n = text.length;
  const fields: (string | null)[] = [];
  let i = 0;
  for (;;) {
    if (i < n && text[i] === '"') {
      let value = '';
      i++;
      for (;;) {
        if (i >= n) return { fields, error: 'unterminated_quote' };
        const c = text[i]!;
        if (c === '"') {
          if (i + 1 < n && text[i + 1] === '"') {
            value += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        value += c;
        i++;
      }
      fields.push(value);
      if (i >= n) return { fields, error: null };
      if (text[i] !== ',') return { fields, error: 'text_after_closing_quote' };
      i++;
    } else {
      let value = '';
      while (i < n && text[i] !== ',') {
        if (text[i] === '"') return { fields, error: 'quote_in_unquoted_field' };
        value += text[i]!;
        i++;
      }
      fields.push(value === '' ? null : value);
      if (i >= n) return { fields, error: null };
      i++;
    }
  }
}

const TIMESTAMP_LINE = /\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} [^,\n]*,/y;

/** The smallest line start `i > pos` (text[i-1] is LF) whose line begins like a csvlog record; else -1. */
export function refNextRecordStart(text: string, pos: number): number {
  for (let i = Math.max(pos, 0); i < text.length; i++) {
    if (text[i] !== '\n') continue;
    TIMESTAMP_LINE.lastIndex = i + 1;
    if (TIMESTAMP_LINE.test(text)) return i + 1;
  }
  return -1;
}

// ---------------------------------------------------------------------------------------------------------
// Generators

/** Pieces random strings are made of: CSV specials, line ends, unicode (BMP, combining, astral), markers. */
const PIECES: readonly (readonly [number, string])[] = [
  [6, ','],
  [6, '"'],
  [3, '""'],
  [3, '\r'],
  [4, '\n'],
  [3, '\r\n'],
  [2, '","'],
  [2, '"\n'],
  [6, 'a'],
  [3, 'xyz'],
  [3, ' '],
  [2, '0'],
  [2, '42'],
  [1, '\t'],
  [1, '\\'],
  [1, "'"],
  [1, ';'],
  [1, 'é'],
  [1, 'e\u0301'],
  [1, 'ß'],
  [1, '中文'],
  [2, '😀'],
  [1, '𝄞'],
  [1, '\u{10FFFF}'],
  [1, '<none>'],
  [1, 'AUDIT: '],
  [1, '2024-05-01 12:00:00.123 UTC,'],
];

/** A random string of 0..maxPieces pieces. */
export function randomString(rng: Rng, maxPieces = 8): string {
  const n = rng.int(0, maxPieces);
  let s = '';
  for (let i = 0; i < n; i++) s += rng.weighted(PIECES);
  return s;
}

/** A random field: NULL (15%), '' (10%), or a random string. */
export function randomField(rng: Rng, maxPieces = 8): string | null {
  const r = rng.float();
  if (r < 0.15) return null;
  if (r < 0.25) return '';
  return randomString(rng, maxPieces);
}

export function randomFields(rng: Rng, minLength: number, maxLength: number, maxPieces = 8): (string | null)[] {
  const n = rng.int(minLength, maxLength);
  const out: (string | null)[] = [];
  for (let i = 0; i < n; i++) out.push(randomField(rng, maxPieces));
  return out;
}

/** A value safe to write bare in csvlog (never empty, no specials). */
export function randomBare(rng: Rng): string {
  return rng.pick(['0', '7', '12055', '-1', '3/44', '6b025d7c.2f17', '2024-05-01 12:00:00.123 UTC', 'LOG', '00000', '1.5e3']);
}

/** A column as written in a csvlog record, with the value it decodes to. */
export interface Column {
  value: string | null;
  text: string;
}

/** A random csvlog-like column: NULL, a bare token, or a quoted text (possibly ''). */
export function randomColumn(rng: Rng, maxPieces = 6): Column {
  const r = rng.float();
  if (r < 0.2) return { value: null, text: '' };
  if (r < 0.4) {
    const v = randomBare(rng);
    return { value: v, text: v };
  }
  const v = rng.bool(0.1) ? '' : randomString(rng, maxPieces);
  return { value: v, text: csvlogText(v) };
}

export interface TextRecords {
  text: string;
  records: { fields: (string | null)[]; start: number; next: number }[];
}

/** Joins encoded records, each ended by LF (or CRLF when `crlf` says so). */
export function joinRecords(rows: readonly (readonly Column[])[], lineEnd: (i: number) => string): TextRecords {
  let text = '';
  const records: TextRecords['records'] = [];
  rows.forEach((row, i) => {
    const start = text.length;
    text += row.map((c) => c.text).join(',') + lineEnd(i);
    records.push({ fields: row.map((c) => c.value), start, next: text.length });
  });
  return { text, records };
}

/** Several random records of 1..maxColumns columns. */
export function randomRecordsText(rng: Rng, maxRecords: number, maxColumns: number, maxPieces = 6): TextRecords {
  const rows: Column[][] = [];
  const count = rng.int(1, maxRecords);
  for (let r = 0; r < count; r++) {
    const cols = rng.int(1, maxColumns);
    const row: Column[] = [];
    for (let c = 0; c < cols; c++) row.push(randomColumn(rng, maxPieces));
    rows.push(row);
  }
  const crlf = rng.bool(0.25);
  return joinRecords(rows, () => (crlf && rng.bool(0.7) ? '\r\n' : '\n'));
}

const GARBAGE_ALPHABET: readonly (readonly [number, string])[] = [
  [8, '"'],
  [6, ','],
  [5, '\n'],
  [3, '\r'],
  [6, 'a'],
  [2, '1'],
  [1, ' '],
  [1, '😀'],
  [1, '\uD800'],
  [1, '2024-05-01 12:00:00.123 UTC,'],
  [1, '\n2024-05-01 12:00:00.123 CEST,"x'],
  [1, '""'],
];

/** A random text that is usually not valid CSV: random characters, or a valid text with a few mutations. */
export function garbageText(rng: Rng): string {
  if (rng.bool(0.4)) {
    const n = rng.int(0, 80);
    let s = '';
    for (let i = 0; i < n; i++) s += rng.weighted(GARBAGE_ALPHABET);
    return s;
  }
  let s = randomRecordsText(rng, 4, 8, 5).text;
  const mutations = rng.int(1, 3);
  for (let m = 0; m < mutations; m++) {
    const at = rng.int(0, s.length);
    if (rng.bool(0.35) && s.length > 0) {
      // delete one quote, comma or newline (the nearest one at or after `at`, else any char)
      let k = -1;
      for (let j = at; j < s.length; j++) {
        const c = s[j];
        if (c === '"' || c === ',' || c === '\n') {
          k = j;
          break;
        }
      }
      if (k < 0) k = Math.min(at, s.length - 1);
      s = s.slice(0, k) + s.slice(k + 1);
    } else {
      s = s.slice(0, at) + rng.pick(['"', ',', '\n', '\r', '""']) + s.slice(at);
    }
  }
  return s;
}
