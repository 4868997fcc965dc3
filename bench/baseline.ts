/**
 * Baseline: a faithful Node port of pg_audit_to_duckdb (bisoftbilgi/bisoft-postgresql-toolkit,
 * pgaudit_to_duckdb/pg_audit_to_duckdb.py), directory mode.
 *
 * What the original does, and this port repeats step by step:
 *   1. setup_database: open the DB, CREATE SEQUENCE log_path_id_seq, tables log_paths,
 *      log_summary, audit_logs and UNIQUE INDEX ux_audit_unique, close;
 *   2. log_paths_insert_path / get_log_path_id: open, upsert the directory, close (twice);
 *   3. list files by glob, sort by mtime (optionally drop the newest: off here, we compare full
 *      ingests);
 *   4. per file: open the DB, read (mtime, size) from log_summary and skip an unchanged file,
 *      otherwise INSERT INTO audit_logs SELECT ... FROM read_csv(file, columns = the 26 csvlog
 *      columns with types, header=false, quote/escape '"', nullstr '', ignore_errors, null_padding,
 *      auto_detect=false, sample_size=-1) WHERE TRIM(message) LIKE 'AUDIT:%' ANTI JOIN audit_logs
 *      ON (log_path_id, session_id, session_line_num); log_time via strptime (%f UTC or %f %z);
 *      then INSERT OR REPLACE log_summary; close the DB (a checkpoint per file, as in Python,
 *      where each duckdb.connect() / close() pair opens and closes the database).
 * No memory_limit or threads setting: the original sets none.
 *
 * usage: node --import tsx bench/baseline.ts --db FILE [--glob 'postgresql-*.csv*'] [--skip-newest]
 *        [--variant exact|parallel-false|brief] DIR
 * Prints one JSON line {files, events, ms, ...}.
 */
import { readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DuckDBInstance } from '@duckdb/node-api';
import type { DuckDBConnection } from '@duckdb/node-api';

/** PG_AUDIT_COLUMNS of the original, in order (its read_csv `columns=` argument). */
export const PG_AUDIT_COLUMNS: readonly (readonly [string, string])[] = [
  ['log_time', 'VARCHAR'],
  ['user_name', 'VARCHAR'],
  ['database_name', 'VARCHAR'],
  ['process_id', 'INT'],
  ['client_addr', 'VARCHAR'],
  ['session_id', 'VARCHAR'],
  ['session_line_num', 'INT'],
  ['command_tag', 'VARCHAR'],
  ['session_start_time', 'VARCHAR'],
  ['virtual_transaction_id', 'VARCHAR'],
  ['transaction_id', 'BIGINT'],
  ['error_severity', 'VARCHAR'],
  ['sql_state_code', 'VARCHAR'],
  ['message', 'VARCHAR'],
  ['detail', 'VARCHAR'],
  ['hint', 'VARCHAR'],
  ['internal_query', 'VARCHAR'],
  ['internal_query_pos', 'INT'],
  ['context', 'VARCHAR'],
  ['query', 'VARCHAR'],
  ['query_pos', 'INT'],
  ['location', 'VARCHAR'],
  ['application_name', 'VARCHAR'],
  ['backend_type', 'VARCHAR'],
  ['leader_pid', 'INT'],
  ['query_id', 'BIGINT'],
];

const COLUMNS_STRUCT = '{' + PG_AUDIT_COLUMNS.map(([n, t]) => `'${n}': '${t}'`).join(', ') + '}';

export interface BaselineOptions {
  /** file_glob of the original (its default `postgresql_*.csv*` does not match PostgreSQL's default hyphenated names). */
  glob?: string;
  skipNewest?: boolean;
  messagePrefix?: string;
  forceReprocess?: boolean;
  /** read_csv variant (default parallel-false) */
  variant?: BaselineVariant;
}

export interface BaselineResult {
  variant: BaselineVariant;
  files: number;
  processed: number;
  skipped: number;
  /** rows inserted into audit_logs by this run */
  events: number;
  errors: string[];
  ms: number;
}

async function withDb<T>(dbPath: string, fn: (con: DuckDBConnection) => Promise<T>): Promise<T> {
  // duckdb.connect(path) ... con.close() in the original: the database is opened and closed
  // (with a checkpoint) every time.
  const inst = await DuckDBInstance.create(dbPath);
  const con = await inst.connect();
  try {
    return await fn(con);
  } finally {
    con.closeSync();
    inst.closeSync();
  }
}

async function setupDatabase(dbPath: string): Promise<void> {
  await withDb(dbPath, async (con) => {
    await con.run(`
      CREATE SEQUENCE IF NOT EXISTS log_path_id_seq;
      CREATE TABLE IF NOT EXISTS log_paths (
          id   INTEGER PRIMARY KEY NOT NULL DEFAULT nextval('log_path_id_seq'),
          path VARCHAR UNIQUE
      );`);
    await con.run(`
      CREATE TABLE IF NOT EXISTS log_summary (
          log_path_id INTEGER,
          file_name   VARCHAR,
          last_mtime  DOUBLE,
          last_size   BIGINT,
          PRIMARY KEY (log_path_id, file_name),
          FOREIGN KEY (log_path_id) REFERENCES log_paths(id)
      );`);
    await con.run(`
      CREATE TABLE IF NOT EXISTS audit_logs (
          log_time        TIMESTAMP,
          user_name       VARCHAR,
          database_name   VARCHAR,
          client_addr     VARCHAR,
          message         VARCHAR,
          application_name VARCHAR,
          session_id      VARCHAR,
          session_line_num INT,
          log_path_id     INTEGER,
          file_name       VARCHAR,
          FOREIGN KEY (log_path_id) REFERENCES log_paths(id)
      );`);
    await con.run(`
      CREATE UNIQUE INDEX IF NOT EXISTS ux_audit_unique
      ON audit_logs (log_path_id, session_id, session_line_num);`);
  });
}

async function logPathsInsertPath(dbPath: string, logDir: string): Promise<void> {
  const normalized = logDir.replace(/\/+$/, '');
  await withDb(dbPath, async (con) => {
    await con.run('INSERT INTO log_paths (path) VALUES ($1) ON CONFLICT (path) DO NOTHING;', [normalized]);
  });
}

async function getLogPathId(dbPath: string, logDir: string): Promise<number> {
  const normalized = logDir.replace(/\/+$/, '');
  return withDb(dbPath, async (con) => {
    const r = await con.runAndReadAll('SELECT id FROM log_paths WHERE path = $1;', [normalized]);
    const row = r.getRowsJS()[0];
    if (!row) throw new Error(`Log path '${normalized}' not found in database.`);
    return Number(row[0]);
  });
}

/** fnmatch-style glob (* ? [..]) for one path component. */
function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] ?? '';
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const j = glob.indexOf(']', i + 1);
      if (j < 0) re += '\\[';
      else {
        re +=
          '[' +
          glob
            .slice(i + 1, j)
            .replace(/^!/, '^')
            .replace(/\\/g, '\\\\') +
          ']';
        i = j;
      }
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp('^' + re + '$');
}

/**
 * read_csv variants:
 *  - `exact`: the original's options verbatim. Since DuckDB PR #19012 (Sept 2025, duckdb#18577)
 *    null_padding + a quoted newline in the parallel scanner raises "The parallel scanner does
 *    not support null_padding in conjunction with quoted new lines" (before, it was silently
 *    ignored), so with DuckDB 1.5.6 every file holding a multi-line record fails and the
 *    original logs the error and ingests nothing from it.
 *  - `parallel-false` (default): the original plus `parallel=false`, the fix the error message
 *    prescribes: what a user of the script has to do today. Single-threaded CSV scan.
 *  - `brief`: read_csv(header=false, all_varchar=true) with the 26 names, no null_padding /
 *    ignore_errors, strptime('%Y-%m-%d %H:%M:%S.%g %Z'): the simplified description of the method.
 */
export type BaselineVariant = 'exact' | 'parallel-false' | 'brief';

const VARCHAR_COLUMNS_STRUCT = '{' + PG_AUDIT_COLUMNS.map(([n]) => `'${n}': 'VARCHAR'`).join(', ') + '}';

function insertSql(variant: BaselineVariant): string {
  const logTime =
    variant === 'brief'
      ? `strptime(log_time, '%Y-%m-%d %H:%M:%S.%g %Z')::TIMESTAMP`
      : `CASE
          WHEN log_time LIKE '%UTC%'
              THEN strptime(log_time, '%Y-%m-%d %H:%M:%S.%f UTC')::TIMESTAMP
          ELSE    strptime(log_time, '%Y-%m-%d %H:%M:%S.%f %z')::TIMESTAMP
      END`;
  const reader =
    variant === 'brief'
      ? `read_csv($3, columns=${VARCHAR_COLUMNS_STRUCT}, header=FALSE, all_varchar=TRUE, auto_detect=FALSE,
          delim=',', quote='"', escape='"', nullstr='')`
      : `read_csv($3,
          columns=${COLUMNS_STRUCT}, header=FALSE, delim=',', quote='"', escape='"',
          nullstr='',
          ignore_errors=TRUE,
          null_padding=TRUE,
          auto_detect=FALSE,
          sample_size=-1${variant === 'parallel-false' ? ',\n          parallel=FALSE' : ''}
      )`;
  const filter = variant === 'brief' ? 'message LIKE $4' : 'TRIM(message) LIKE $4';
  return `
  INSERT INTO audit_logs
  SELECT
      ${logTime} AS log_time,
      user_name,
      database_name,
      client_addr,
      message,
      application_name,
      session_id,
      session_line_num,
      $1 AS log_path_id,
      $2 AS file_name
  FROM (
      SELECT * FROM ${reader}
      WHERE ${filter}
  ) s
  ANTI JOIN audit_logs t
    ON t.log_path_id      = $5
   AND t.session_id       = s.session_id
   AND t.session_line_num = s.session_line_num::INT;`;
}

export async function runBaseline(dbPath: string, logDir: string, opts: BaselineOptions = {}): Promise<BaselineResult> {
  const t0 = performance.now();
  const glob = opts.glob ?? 'postgresql-*.csv*';
  const prefix = opts.messagePrefix ?? 'AUDIT:%';
  const variant = opts.variant ?? 'parallel-false';
  const sql = insertSql(variant);
  const res: BaselineResult = { variant, files: 0, processed: 0, skipped: 0, events: 0, errors: [], ms: 0 };

  await setupDatabase(dbPath);
  await logPathsInsertPath(dbPath, logDir);
  const logPathId = await getLogPathId(dbPath, logDir);

  const re = globToRegExp(glob);
  const names = (await readdir(logDir)).filter((n) => re.test(n)).sort();
  const withTimes: { path: string; mtime: number }[] = [];
  for (const n of names) {
    const p = join(logDir, n);
    try {
      withTimes.push({ path: p, mtime: (await stat(p)).mtimeMs });
    } catch {
      // vanished between listing and stat: the original drops it too
    }
  }
  withTimes.sort((a, b) => a.mtime - b.mtime); // stable: ties keep name order, like Python's sorted()
  let files = withTimes.map((f) => f.path);
  if (opts.skipNewest && files.length) files = files.slice(0, -1);
  res.files = files.length;

  for (const file of files) {
    const fname = file.slice(file.lastIndexOf('/') + 1);
    let mtime: number;
    let fsize: number;
    try {
      const st = await stat(file);
      mtime = st.mtimeMs / 1000;
      fsize = st.size;
    } catch {
      continue;
    }
    try {
      await withDb(dbPath, async (con) => {
        const prev = await con.runAndReadAll('SELECT last_mtime, last_size FROM log_summary WHERE log_path_id = $1 AND file_name = $2;', [logPathId, fname]);
        const row = prev.getRowsJS()[0];
        if (!opts.forceReprocess && row && Number(row[0]) === mtime && Number(row[1]) === fsize) {
          res.skipped++;
          return;
        }
        if (opts.forceReprocess) {
          await con.run('DELETE FROM audit_logs WHERE log_path_id = $1 AND file_name = $2;', [logPathId, fname]);
        }
        const ins = await con.run(sql, [logPathId, fname, file, prefix, logPathId]);
        res.events += ins.rowsChanged;
        await con.run('INSERT OR REPLACE INTO log_summary (log_path_id, file_name, last_mtime, last_size) VALUES ($1, $2, $3, $4);', [
          logPathId,
          fname,
          mtime,
          fsize,
        ]);
        res.processed++;
      });
    } catch (e) {
      // the original logs DuckDB errors per file and carries on
      res.errors.push(`${fname}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  res.ms = Math.round(performance.now() - t0);
  return res;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  let db: string | undefined;
  let dir: string | undefined;
  const opts: BaselineOptions = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--db') db = argv[++i];
    else if (a === '--glob') opts.glob = argv[++i];
    else if (a === '--skip-newest') opts.skipNewest = true;
    else if (a === '--force') opts.forceReprocess = true;
    else if (a === '--variant') {
      const v = argv[++i];
      if (v !== 'exact' && v !== 'parallel-false' && v !== 'brief') throw new Error('--variant must be exact, parallel-false or brief');
      opts.variant = v;
    } else if (a === '--help' || a === '-h') {
      console.log(
        "usage: node --import tsx bench/baseline.ts --db FILE [--glob 'postgresql-*.csv*'] [--skip-newest] [--force] [--variant exact|parallel-false|brief] DIR",
      );
      return;
    } else if (a !== undefined && !a.startsWith('--') && dir === undefined) dir = a;
    else throw new Error(`unexpected argument ${a}`);
  }
  if (!db || !dir) throw new Error('usage: baseline.ts --db FILE DIR');
  const res = await runBaseline(resolve(db), resolve(dir), opts);
  console.log(JSON.stringify(res));
  if (res.errors.length) process.exitCode = 1;
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
    process.exit(1);
  });
}
