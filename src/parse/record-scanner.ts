import type { CsvError } from './csv.js';

/**
 * Reads csvlog records one at a time out of a decoded text buffer that may end in the middle of a record.
 *
 * A record ends at a newline outside quotes. Quoted fields may hold newlines; unquoted fields (numbers and
 * NULLs in csvlog) may not. The scanner decodes fields in the same pass in which it finds the boundary.
 */
export interface ScannedRecord {
  /** Decoded fields; `null` for an empty unquoted field. */
  fields: (string | null)[];
  /** Index of the record's first character. */
  start: number;
  /** Index just after the record's terminating newline. */
  next: number;
  /** Set when the record is not valid CSV; it still ends at `next`. */
  error: CsvError | null;
}

const QUOTE = 34;
const COMMA = 44;
const LF = 10;
const CR = 13;

/**
 * Scans the record that starts at `pos`. Returns `null` when the text holds no complete record from `pos`
 * (the caller reads more, or, at the end of a finished file, treats the rest as a truncated record).
 */
export function scanCsvRecord(text: string, pos: number): ScannedRecord | null {
  const start = pos;
  const end = text.length;
  const fields: (string | null)[] = [];
  for (;;) {
    if (pos >= end) return null;
    let c = text.charCodeAt(pos);
    if (c === QUOTE) {
      let value = '';
      let chunkStart = pos + 1;
      let q = pos + 1;
      for (;;) {
        q = text.indexOf('"', q);
        if (q < 0) return null;
        if (q + 1 < end && text.charCodeAt(q + 1) === QUOTE) {
          value += text.slice(chunkStart, q + 1);
          q += 2;
          chunkStart = q;
          continue;
        }
        if (q + 1 >= end) return null; // cannot yet tell a closing quote from a doubled one
        break;
      }
      value += text.slice(chunkStart, q);
      fields.push(value);
      pos = q + 1;
      c = text.charCodeAt(pos);
      if (c === COMMA) {
        pos++;
        continue;
      }
      if (c === LF) return { fields, start, next: pos + 1, error: null };
      if (c === CR && pos + 1 < end && text.charCodeAt(pos + 1) === LF) return { fields, start, next: pos + 2, error: null };
      return finishBroken(text, pos, fields, start, 'text_after_closing_quote');
    }
    // Unquoted field: short (numbers, NULL) — a plain loop beats indexOf here.
    let p = pos;
    while (p < end) {
      c = text.charCodeAt(p);
      if (c === COMMA || c === LF || c === QUOTE || c === CR) break;
      p++;
    }
    if (p >= end) return null;
    if (c === QUOTE) return finishBroken(text, p, fields, start, 'quote_in_unquoted_field');
    fields.push(p === pos ? null : text.slice(pos, p));
    if (c === COMMA) {
      pos = p + 1;
      continue;
    }
    if (c === LF) return { fields, start, next: p + 1, error: null };
    // CR: accept CRLF line ends; a lone CR in an unquoted field is malformed.
    if (p + 1 >= end) return null;
    if (text.charCodeAt(p + 1) === LF) return { fields, start, next: p + 2, error: null };
    return finishBroken(text, p, fields, start, 'quote_in_unquoted_field');
  }
}

/** Finds the end of a malformed record by quote parity and reports it with its error. */
function finishBroken(text: string, pos: number, fields: (string | null)[], start: number, error: CsvError): ScannedRecord | null {
  const next = skipToRecordEnd(text, pos, false);
  if (next < 0) return null;
  return { fields, start, next, error };
}

/**
 * Returns the index after the next newline outside quotes, starting at `pos` with the given quote state,
 * or -1 when the text ends first.
 */
export function skipToRecordEnd(text: string, pos: number, inQuote: boolean): number {
  const end = text.length;
  while (pos < end) {
    if (inQuote) {
      const q = text.indexOf('"', pos);
      if (q < 0) return -1;
      inQuote = false;
      pos = q + 1;
    } else {
      const nl = text.indexOf('\n', pos);
      const q = text.indexOf('"', pos);
      if (nl < 0) return -1;
      if (q < 0 || nl < q) return nl + 1;
      inQuote = true;
      pos = q + 1;
    }
  }
  return -1;
}

/** A csvlog record begins with a timestamp such as `2024-05-01 12:00:00.123`; used to resynchronise. */
const RECORD_START = /\n(?=\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} [^,\n]*,)/g;

/**
 * After unreadable bytes (an unterminated quote at the end of a finished file), finds the next line that
 * looks like the start of a csvlog record. Returns its index, or -1 when there is none.
 */
export function findNextRecordStart(text: string, pos: number): number {
  RECORD_START.lastIndex = pos;
  const m = RECORD_START.exec(text);
  return m ? m.index + 1 : -1;
}
