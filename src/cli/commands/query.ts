import { ExitError } from '../../core/errors.js';
import { openStoreReader, SqlError } from '../../sinks/duckdb/reader.js';
import { DEFAULT_DB, defineCommand, parseCommandArgs } from '../args.js';
import { csvCell, formatTable } from '../output.js';

export const usage = 'auditship query [--db FILE] [--format table|csv|json] SQL';
export const summary = 'Run a read-only SQL query against the DuckDB store.';

export const spec = defineCommand({
  name: 'query',
  summary,
  usage,
  flags: {
    db: { type: 'string', value: 'FILE', description: 'the DuckDB store, opened read-only (or asked of the process writing it)', default: DEFAULT_DB },
    format: {
      type: 'string',
      short: 'f',
      value: 'FORMAT',
      default: 'table',
      description:
        'table, csv or json. json: an array of objects; integers (count(*), sum()) are JSON numbers while exact (|n| ≤ 2^53 − 1) and strings beyond, decimals numbers up to 15 significant digits and strings beyond, times text',
    },
  },
  notes: `  SQL is one read statement: SELECT, WITH, VALUES, FROM, TABLE, DESCRIBE, SHOW, SUMMARIZE, or EXPLAIN [ANALYZE]
  of one of them. Anything else (COPY, EXPORT DATABASE, ATTACH, INSTALL, LOAD, SET, PRAGMA, CALL) is refused
  before it runs, exit 2. SQL that starts with a -- comment goes after a lone --: auditship query -- "$SQL"
  Exit codes: 0 ok, 1 the query failed (or the store cannot be opened), 2 usage error or a refused statement.`,
});

export async function query(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommandArgs(argv, spec);
  const format = values.format;
  if (!['table', 'csv', 'json'].includes(format)) throw new ExitError(2, `--format: "${format}" is not one of table, csv, json`);
  if (positionals.length !== 1) throw new ExitError(2, `give one SQL statement (quote it)\nusage: ${usage}`);
  // Through the process writing the file, if one does (ingest, run, run --follow).
  const db = openStoreReader(values.db ?? './auditship.duckdb', { lingerMs: 0 });
  try {
    let result;
    try {
      result = await db.sql(positionals[0]!, [], { exactNumbers: format === 'json' });
    } catch (err) {
      // A statement that is not a read is refused (a usage error: nothing ran); one that fails is exit 1.
      if (err instanceof SqlError) throw new ExitError(err.refused ? 2 : 1, err.refused ? err.message : `query failed: ${err.message}`);
      throw err;
    }
    const { columns, rows } = result;
    if (format === 'json') {
      process.stdout.write(JSON.stringify(rows.map((r) => Object.fromEntries(columns.map((c, i) => [c, r[i]])))) + '\n');
    } else if (format === 'csv') {
      process.stdout.write([columns.map(csvCell).join(','), ...rows.map((r) => r.map(csvCell).join(','))].join('\n') + '\n');
    } else {
      process.stdout.write(formatTable(columns, rows) + `\n(${rows.length} row${rows.length === 1 ? '' : 's'})\n`);
    }
  } finally {
    await db.close();
  }
}
