/**
 * Baseline "DuckDB by hand": what a skilled user writes in SQL alone to get the parsed table auditship
 * builds — one INSERT of every csvlog file of a directory into a table with the columns of auditship's
 * `audit_logs` (without correlation: no outcome, sqlstate, error_message).
 *
 *  - `read_csv` of all files at once, parallel (DuckDB's default), every column VARCHAR;
 *  - the AUDIT filter on the message;
 *  - the pgaudit fields split by one CSV-aware `regexp_extract` (quoted fields with doubled quotes), the
 *    quotes removed;
 *  - times by `strptime`, with the seed script's rule for the zone: the literal `UTC` when the stamp says
 *    UTC, else a numeric offset (`%z`). (`%Z`, which resolves abbreviations, measured 5x slower: 2.1 s
 *    against 0.38 s for 1 M stamps — a skilled user on a UTC server would not pay it.)
 *  - client address and port split from connection_from.
 *
 * No memory_limit or threads setting (DuckDB's defaults: every core, 80 % of RAM). No deliberate slowness.
 *
 * usage: node --import tsx bench/by-hand.ts --db FILE DIR     prints one JSON line {events, ms}
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DuckDBInstance } from '@duckdb/node-api';

const CSVLOG_COLUMNS = [
  'log_time',
  'user_name',
  'database_name',
  'process_id',
  'connection_from',
  'session_id',
  'session_line_num',
  'command_tag',
  'session_start_time',
  'virtual_transaction_id',
  'transaction_id',
  'error_severity',
  'sql_state_code',
  'message',
  'detail',
  'hint',
  'internal_query',
  'internal_query_pos',
  'context',
  'query',
  'query_pos',
  'location',
  'application_name',
  'backend_type',
  'leader_pid',
  'query_id',
];

/** pgaudit's fields after `AUDIT: `: five plain ones, four that may be CSV-quoted, and the optional ROWS. */
const FIELD = '("(?:[^"]|"")*"|[^,]*)';
const AUDIT_RE = `(?s)^AUDIT: (SESSION|OBJECT),(\\d+),(\\d+),([A-Z_]+),${FIELD},${FIELD},${FIELD},${FIELD},${FIELD}(?:,(\\d*))?$`;
const unquote = (x: string) => `CASE WHEN starts_with(${x}, '"') THEN replace(${x}[2:-2], '""', '"') WHEN ${x} = '' THEN NULL ELSE ${x} END`;
const time = (x: string, fraction: string) =>
  `CASE WHEN ${x} LIKE '%UTC' THEN strptime(${x}, '%Y-%m-%d %H:%M:%S${fraction} UTC') ELSE strptime(${x}, '%Y-%m-%d %H:%M:%S${fraction} %z') END::TIMESTAMPTZ`;

export const BY_HAND_SQL = (dir: string) => `
CREATE TABLE audit_logs (
  log_time TIMESTAMPTZ, user_name VARCHAR, database_name VARCHAR, client_addr VARCHAR, message VARCHAR, application_name VARCHAR,
  session_id VARCHAR, session_line_num BIGINT, log_path_id INTEGER, file_name VARCHAR, server VARCHAR, client_port INTEGER,
  process_id INTEGER, virtual_transaction_id VARCHAR, transaction_id BIGINT, command_tag VARCHAR, session_start TIMESTAMPTZ,
  error_severity VARCHAR, backend_type VARCHAR, leader_pid INTEGER, query_id BIGINT, audit_type VARCHAR, statement_id BIGINT,
  substatement_id BIGINT, class VARCHAR, command VARCHAR, object_type VARCHAR, object_name VARCHAR, statement VARCHAR,
  parameter VARCHAR, rows BIGINT);
INSERT INTO audit_logs
SELECT ${time('log_time', '.%g')}, user_name, database_name,
       nullif(split_part(connection_from, ':', 1), ''), message, application_name, session_id, session_line_num::BIGINT,
       1, parse_filename(filename), 'default', TRY_CAST(nullif(split_part(connection_from, ':', 2), '') AS INTEGER),
       process_id::INTEGER, virtual_transaction_id, transaction_id::BIGINT, command_tag, ${time('session_start_time', '')},
       error_severity, backend_type, leader_pid::INTEGER, query_id::BIGINT,
       p.audit_type, p.statement_id::BIGINT, p.substatement_id::BIGINT, p.class, ${unquote('p.command')}, ${unquote('p.object_type')},
       ${unquote('p.object_name')}, ${unquote('p.statement')}, ${unquote('p.parameter')}, TRY_CAST(nullif(p.rows, '') AS BIGINT)
FROM (
  SELECT *, regexp_extract(message, '${AUDIT_RE.replaceAll("'", "''")}',
           ['audit_type', 'statement_id', 'substatement_id', 'class', 'command', 'object_type', 'object_name', 'statement', 'parameter', 'rows']) AS p
  FROM read_csv('${dir.replaceAll("'", "''")}/*.csv', header = false, auto_detect = false, delim = ',', quote = '"', escape = '"',
                filename = true, columns = {${CSVLOG_COLUMNS.map((c) => `'${c}': 'VARCHAR'`).join(', ')}})
  WHERE starts_with(message, 'AUDIT: ')
)`;

export async function runByHand(db: string, dir: string): Promise<{ events: number; ms: number }> {
  const t0 = performance.now();
  const instance = await DuckDBInstance.create(db);
  const conn = await instance.connect();
  let events = 0;
  try {
    await conn.run("SET TimeZone = 'UTC'");
    const sql = BY_HAND_SQL(dir).split(';\n');
    await conn.run(sql[0]!);
    events = Number((await conn.run(sql[1]!)).rowsChanged);
  } finally {
    conn.closeSync();
    instance.closeSync();
  }
  return { events, ms: Math.round(performance.now() - t0) };
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const at = argv.indexOf('--db');
  const db = at >= 0 ? argv[at + 1] : undefined;
  const dir = argv.filter((a, i) => a !== '--db' && i !== at + 1)[0];
  if (!db || !dir) throw new Error('usage: by-hand.ts --db FILE DIR');
  console.log(JSON.stringify(await runByHand(resolve(db), resolve(dir))));
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
    process.exit(1);
  });
}
