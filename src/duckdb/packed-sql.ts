import { EVENT_ROW_COLUMNS, EVENT_ROW_NUMERIC, type EventRowColumn } from '../parse/index.js';
import { msToTimestamptz, sqlString } from './sql.js';

/** Packed rows (parse/packed.ts) as DuckDB reads them from stage files: one CSV dialect, one reader. */

/** Type of each packed field as DuckDB's CSV reader parses it. */
export const PACKED_TYPES: Record<EventRowColumn, string> = Object.fromEntries(
  EVENT_ROW_COLUMNS.map((c) => [c, EVENT_ROW_NUMERIC.has(c) ? 'BIGINT' : 'VARCHAR']),
) as Record<EventRowColumn, string>;

/** event_rows columns filled from the packed rows, with the SQL that computes each from its field. */
export const FROM_PACKED: [string, string][] = EVENT_ROW_COLUMNS.map((c) =>
  c === 'log_time_ms' ? ['log_time', msToTimestamptz('log_time_ms')] : c === 'message' ? ['raw_message', 'message'] : [c, c],
);

/** A relation of the packed rows in one stage file or several (FROM_PACKED's columns). */
export function readPackedSql(file: string | string[]): string {
  const files = typeof file === 'string' ? sqlString(file) : `[${file.map(sqlString).join(', ')}]`;
  const columns = EVENT_ROW_COLUMNS.map((c) => `'${c}': '${PACKED_TYPES[c]}'`).join(', ');
  return `SELECT ${FROM_PACKED.map(([name, expr]) => `${expr} AS ${name}`).join(', ')}
    FROM read_csv(${files}, header = false, auto_detect = false, delim = '\x1f', quote = '\x1d', escape = '\x1d',
                  new_line = '\\n', allow_quoted_nulls = false, strict_mode = true, columns = {${columns}})`;
}
