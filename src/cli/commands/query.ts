import { ExitError } from '../../core/errors.js';
import { openDatabase } from '../../sinks/duckdb/database.js';
import { parseCommandArgs } from '../args.js';
import { csvCell, formatTable } from '../output.js';

export const usage = 'auditship query [--db FILE] [--format table|csv|json] SQL';
export const summary = 'Run a read-only SQL query against the DuckDB store.';

export async function query(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommandArgs(argv, {
    db: { type: 'string' },
    format: { type: 'string', short: 'f' },
    help: { type: 'boolean', short: 'h' },
  }, usage);
  if (values.help) { process.stdout.write(`${summary}\nusage: ${usage}\n`); return; }
  const format = values.format ?? 'table';
  if (!['table', 'csv', 'json'].includes(format)) throw new ExitError(2, `--format: "${format}" is not one of table, csv, json`);
  if (positionals.length !== 1) throw new ExitError(2, `give one SQL statement (quote it)\nusage: ${usage}`);
  const db = await openDatabase(values.db ?? './auditship.duckdb', { readOnly: true, memoryLimit: '1GB', threads: 2 });
  try {
    let result;
    try {
      result = await db.connection.runAndReadAll(positionals[0]!);
    } catch (err) {
      throw new ExitError(1, `query failed: ${(err as Error).message.split('\n')[0]}`);
    }
    const columns = result.columnNames();
    const rows = result.getRowsJson() as unknown[][];
    if (format === 'json') {
      process.stdout.write(JSON.stringify(rows.map((r) => Object.fromEntries(columns.map((c, i) => [c, r[i]])))) + '\n');
    } else if (format === 'csv') {
      process.stdout.write([columns.map(csvCell).join(','), ...rows.map((r) => r.map(csvCell).join(','))].join('\n') + '\n');
    } else {
      process.stdout.write(formatTable(columns, rows) + `\n(${rows.length} row${rows.length === 1 ? '' : 's'})\n`);
    }
  } finally {
    db.close();
  }
}
