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

export type StageValue = string | number | boolean | null;

/** DuckDB types a stage column may have. */
export type StageType = 'VARCHAR' | 'BIGINT' | 'INTEGER' | 'BOOLEAN';

/** The staged columns of an event context (who, from where, which session: parse/session-tracker.ts). */
export const CONTEXT_STAGE: [string, StageType][] = [
  ['context_id', 'BIGINT'],
  ['session_id', 'VARCHAR'],
  ['user_name', 'VARCHAR'],
  ['database_name', 'VARCHAR'],
  ['client_addr', 'VARCHAR'],
  ['client_port', 'INTEGER'],
  ['application_name', 'VARCHAR'],
  ['backend_type', 'VARCHAR'],
  ['session_start_ms', 'BIGINT'],
  ['process_id', 'INTEGER'],
  ['leader_pid', 'INTEGER'],
];

/** The staged columns of an event kind (what pgaudit logged, and how the server tagged it). */
export const KIND_STAGE: [string, StageType][] = [
  ['kind_id', 'BIGINT'],
  ['audit_type', 'VARCHAR'],
  ['class', 'VARCHAR'],
  ['command', 'VARCHAR'],
  ['object_type', 'VARCHAR'],
  ['command_tag', 'VARCHAR'],
  ['error_severity', 'VARCHAR'],
];

/**
 * The rows as stage text (numbers must be integers) and the read_csv SQL of a relation with the columns,
 * once written to `file`.
 */
export function stageRows(
  file: string,
  columns: readonly (readonly [string, StageType])[],
  rows: readonly (readonly StageValue[])[],
  minLine = 0,
): { text: string; sql: string; maxLine: number } {
  let text = '';
  let maxLine = minLine;
  for (const row of rows) {
    let line = '';
    for (let i = 0; i < columns.length; i++) {
      const v = row[i] ?? null;
      if (i > 0) line += US;
      if (v === null) continue;
      line += columns[i]![1] === 'VARCHAR' ? stageText(String(v)) : typeof v === 'boolean' ? String(v) : String(Math.trunc(Number(v)));
    }
    line += '\n';
    if (line.length > maxLine) maxLine = line.length;
    text += line;
  }
  const types = columns.map(([n, t]) => `'${n}': '${t}'`).join(', ');
  // A small buffer for a small file: DuckDB allocates buffer_size whatever the file holds.
  const maxBytes = Math.max(1 << 16, maxLine * 4 + 16);
  const sql = `read_csv('${file.replaceAll("'", "''")}', header = false, auto_detect = false, delim = '${US}', quote = '${GS}', escape = '${GS}',
    new_line = '\\n', allow_quoted_nulls = false, strict_mode = true, max_line_size = ${maxBytes}, buffer_size = ${maxBytes * 2},
    columns = {${types}})`;
  return { text, sql, maxLine };
}
