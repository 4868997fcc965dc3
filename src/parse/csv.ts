/**
 * The CSV layer shared by csvlog records, pgaudit messages and pgaudit parameter lists.
 *
 * PostgreSQL and pgaudit both write RFC 4180 style CSV: a field is either unquoted (no comma, quote, CR or LF
 * inside) or wrapped in double quotes with inner quotes doubled. An empty unquoted field means NULL; a quoted
 * empty field `""` is the empty string. Pure functions, no I/O.
 */

/** Why a CSV text could not be split; `null` when it could. */
export type CsvError = 'unterminated_quote' | 'text_after_closing_quote' | 'quote_in_unquoted_field';

export interface CsvSplit {
  /** Decoded fields; `null` for an empty unquoted field. */
  fields: (string | null)[];
  /** Set when the text is not valid CSV; `fields` is then incomplete. */
  error: CsvError | null;
}

const QUOTE = 34; // "
const COMMA = 44; // ,

/**
 * Splits one CSV record held in `text[start, end)` into decoded fields. The record must not include its
 * terminating newline. Newlines inside quoted fields are part of the field.
 */
export function splitCsv(text: string, start = 0, end = text.length): CsvSplit {
  const fields: (string | null)[] = [];
  let pos = start;
  for (;;) {
    if (pos < end && text.charCodeAt(pos) === QUOTE) {
      // Quoted field: find the closing quote, skipping doubled quotes.
      let value = '';
      let chunkStart = pos + 1;
      let q = pos + 1;
      for (;;) {
        q = text.indexOf('"', q);
        if (q < 0 || q >= end) return { fields, error: 'unterminated_quote' };
        if (q + 1 < end && text.charCodeAt(q + 1) === QUOTE) {
          value += text.slice(chunkStart, q + 1);
          q += 2;
          chunkStart = q;
          continue;
        }
        break;
      }
      value += text.slice(chunkStart, q);
      fields.push(value);
      pos = q + 1;
      if (pos === end) return { fields, error: null };
      if (text.charCodeAt(pos) !== COMMA) return { fields, error: 'text_after_closing_quote' };
      pos++;
    } else {
      let comma = text.indexOf(',', pos);
      if (comma < 0 || comma > end) comma = end;
      const quote = text.indexOf('"', pos);
      if (quote >= 0 && quote < comma) return { fields, error: 'quote_in_unquoted_field' };
      fields.push(comma === pos ? null : text.slice(pos, comma));
      if (comma === end) return { fields, error: null };
      pos = comma + 1;
    }
  }
}

/** Encodes fields the way pgaudit's append_valid_csv and csvlog do for text: quote only when needed. */
export function encodeCsvField(value: string | null): string {
  if (value === null) return '';
  if (/[",\r\n]/.test(value)) return '"' + value.replaceAll('"', '""') + '"';
  return value;
}

/** Joins fields into one CSV record (no newline), quoting only where needed. */
export function encodeCsv(values: readonly (string | null)[]): string {
  return values.map(encodeCsvField).join(',');
}
