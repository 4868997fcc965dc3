/**
 * Stage files: batches handed to DuckDB's read_csv in one call instead of one native call per value.
 * The dialect is the one of parse/packed.ts: US (0x1F) between fields, GS (0x1D) around every text value
 * with an inner GS doubled, an empty unquoted field for NULL, and LF after each record.
 */
export const US = '\x1f';
export const GS = '\x1d';

/** A text value (or NULL) as a stage field. */
export function stageText(v: string | null): string {
  if (v === null) return '';
  return GS + (v.includes(GS) ? v.replaceAll(GS, GS + GS) : v) + GS;
}

/** The read_csv options of the stage dialect; `maxLine` is the longest record in bytes (with some slack). */
export function stageCsvOptions(maxLine: number): string {
  return `header = false, auto_detect = false, delim = '${US}', quote = '${GS}', escape = '${GS}', new_line = '\\n',
          allow_quoted_nulls = false, strict_mode = true, max_line_size = ${maxLine}, buffer_size = ${Math.max(16 << 20, maxLine * 2)}`;
}
