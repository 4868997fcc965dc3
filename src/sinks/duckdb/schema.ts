import { createHash } from 'node:crypto';
import type { DuckDBConnection } from '@duckdb/node-api';
import { PREVIOUSLY_LOGGED } from '../../parse/index.js';
import { sqlString } from './database.js';

/**
 * The DuckDB store's schema, and the in-place upgrade of a database written by the `pg_audit_to_duckdb`
 * seed script (tables log_paths, log_summary, audit_logs with a unique index).
 *
 * Tables:
 *  - `audit_events`: one row per pgaudit entry, every field parsed. Identity: (server, session_id,
 *    session_line_num).
 *  - `audit_logs`: the view users query. The seed's columns first (log_time, user_name, database_name,
 *    client_addr, message, application_name, session_id, session_line_num, log_path_id, file_name), then the
 *    server and session columns and every pgaudit field. Its `message` is computed (MESSAGE_EXPRESSION); a
 *    view costs nothing at insert time, where a generated column would double the cost of loading.
 *  - `log_paths`, `log_summary`: the seed's directory registry and per-file summary, kept up to date.
 *  - `ingest_files`: the checkpoint of each file, keyed by (server, content fingerprint).
 *  - `quarantine`: records that could not be parsed: where they are, why, and their raw text.
 *  - `pending_markers`: sessions holding `<previously logged>` rows whose first entry is not stored yet, so
 *    that later runs complete them without scanning the whole table.
 *  - `auditship_meta`: schema version and upgrade facts.
 * Correlation (from the server's own records in the same files, see parse/session-log.ts and correlate.ts):
 *  - `sessions`: one row per session from its connection authorized and disconnection records.
 *  - `logon_failures`: FATAL authentication failures (SQLSTATE class 28).
 *  - `statement_errors`: ERROR/FATAL records of sessions, with the pgaudit statement each one ended
 *    (`statement_id`, NULL when the failed statement was not audited, e.g. a syntax error). The outcome is
 *    also on the audited rows themselves: audit_events.sqlstate and error_message, and audit_logs.outcome.
 *  - `correlation_sessions`: internal — the last audited statement of each open session, for errors of
 *    later batches.
 */
export const SCHEMA_VERSION = 2;

/** pgaudit's append_valid_csv in SQL: quote a field only when it holds a comma, quote, CR or LF. */
function pgauditCsv(x: string): string {
  return `CASE WHEN ${x} IS NULL THEN '' WHEN contains(${x}, ',') OR contains(${x}, '"') OR contains(${x}, chr(10)) OR contains(${x}, chr(13))
    THEN '"' || replace(${x}, '"', '""') || '"' ELSE ${x} END`;
}

/**
 * `message` is computed, not stored: the pgaudit message rebuilt exactly as pgaudit wrote it from the parsed
 * fields (the `<previously logged>` markers included), or the raw text where it was kept (`raw_message`:
 * rows of a seed database, or with the sink's store_message option). It keeps the seed's column for its
 * queries without storing every statement twice.
 */
export const MESSAGE_EXPRESSION = `coalesce(raw_message, 'AUDIT: ' || audit_type || ',' || statement_id || ',' || substatement_id || ','
  || ${pgauditCsv('class')} || ',' || ${pgauditCsv('command')} || ',' || ${pgauditCsv('object_type')} || ','
  || ${pgauditCsv('object_name')} || ','
  || CASE WHEN statement_filled THEN '<previously logged>,<previously logged>'
          ELSE ${pgauditCsv('statement')} || ',' || ${pgauditCsv('parameter')} END
  || CASE WHEN rows IS NULL THEN '' ELSE ',' || rows END)`;

/** Columns of the audit_logs view in order, with their types; all but `message` are audit_events columns. */
export const AUDIT_LOG_COLUMNS: [string, string][] = [
  ['log_time', 'TIMESTAMPTZ'],
  ['user_name', 'VARCHAR'],
  ['database_name', 'VARCHAR'],
  ['client_addr', 'VARCHAR'],
  ['message', 'VARCHAR'],
  ['application_name', 'VARCHAR'],
  ['session_id', 'VARCHAR'],
  ['session_line_num', 'BIGINT'],
  ['log_path_id', 'INTEGER'],
  ['file_name', 'VARCHAR'],
  ['server', 'VARCHAR'],
  ['client_port', 'INTEGER'],
  ['process_id', 'INTEGER'],
  ['virtual_transaction_id', 'VARCHAR'],
  ['transaction_id', 'BIGINT'],
  ['command_tag', 'VARCHAR'],
  ['session_start', 'TIMESTAMPTZ'],
  ['error_severity', 'VARCHAR'],
  ['backend_type', 'VARCHAR'],
  ['leader_pid', 'INTEGER'],
  ['query_id', 'BIGINT'],
  ['audit_type', 'VARCHAR'],
  ['statement_id', 'BIGINT'],
  ['substatement_id', 'BIGINT'],
  ['class', 'VARCHAR'],
  ['command', 'VARCHAR'],
  ['object_type', 'VARCHAR'],
  ['object_name', 'VARCHAR'],
  ['statement', 'VARCHAR'],
  ['parameter', 'VARCHAR'],
  ['rows', 'BIGINT'],
  ['statement_filled', 'BOOLEAN'],
  ['raw_message', 'VARCHAR'],
  ['outcome', 'VARCHAR'],
  ['sqlstate', 'VARCHAR'],
  ['error_message', 'VARCHAR'],
];

/** Columns of audit_logs computed in the view, not stored in audit_events. */
const VIEW_ONLY = new Set(['message', 'outcome']);

/** `outcome`: 'error' when an ERROR record ended the statement (sqlstate set), else 'success'. */
export const OUTCOME_EXPRESSION = `CASE WHEN sqlstate IS NULL THEN 'success' ELSE 'error' END`;

/** audit_events columns added after schema version 1, with their types (ALTER TABLE on upgrade). */
const ADDED_COLUMNS: [string, string][] = [['sqlstate', 'VARCHAR'], ['error_message', 'VARCHAR']];

const SEED_COLUMNS = ['log_time', 'user_name', 'database_name', 'client_addr', 'message', 'application_name', 'session_id', 'session_line_num', 'log_path_id', 'file_name'];

const CREATE_SUPPORT_TABLES = `
CREATE SEQUENCE IF NOT EXISTS log_path_id_seq START 1;
CREATE TABLE IF NOT EXISTS log_paths (
  id   INTEGER PRIMARY KEY NOT NULL DEFAULT nextval('log_path_id_seq'),
  path VARCHAR UNIQUE
);
CREATE TABLE IF NOT EXISTS log_summary (
  log_path_id INTEGER,
  file_name   VARCHAR,
  last_mtime  DOUBLE,
  last_size   BIGINT,
  PRIMARY KEY (log_path_id, file_name),
  FOREIGN KEY (log_path_id) REFERENCES log_paths(id)
);
CREATE TABLE IF NOT EXISTS auditship_meta (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE IF NOT EXISTS ingest_files (
  server          VARCHAR NOT NULL,
  fingerprint     VARCHAR NOT NULL,
  path            VARCHAR,
  file_name       VARCHAR,
  format          VARCHAR,
  compression     VARCHAR,
  columns         INTEGER,
  byte_offset     BIGINT,
  tail_hash       VARCHAR,
  size            BIGINT,
  mtime           DOUBLE,
  bytes_ingested  BIGINT,
  events          BIGINT,
  quarantined     BIGINT,
  last_event_time TIMESTAMPTZ,
  complete        BOOLEAN,
  first_ingested  TIMESTAMPTZ,
  updated_at      TIMESTAMPTZ,
  PRIMARY KEY (server, fingerprint)
);
CREATE TABLE IF NOT EXISTS pending_markers (
  server     VARCHAR NOT NULL,
  session_id VARCHAR NOT NULL,
  PRIMARY KEY (server, session_id)
);
CREATE TABLE IF NOT EXISTS quarantine (
  server         VARCHAR NOT NULL,
  file_name      VARCHAR,
  path           VARCHAR,
  fingerprint    VARCHAR NOT NULL,
  byte_offset    BIGINT NOT NULL,
  reason         VARCHAR,
  raw            VARCHAR,
  quarantined_at TIMESTAMPTZ,
  PRIMARY KEY (server, fingerprint, byte_offset)
);
CREATE TABLE IF NOT EXISTS sessions (
  server           VARCHAR NOT NULL,
  session_id       VARCHAR NOT NULL,
  process_id       INTEGER,
  user_name        VARCHAR,
  database_name    VARCHAR,
  client_addr      VARCHAR,
  client_port      INTEGER,
  application_name VARCHAR,
  backend_type     VARCHAR,
  session_start    TIMESTAMPTZ,
  connected_at     TIMESTAMPTZ,
  disconnected_at  TIMESTAMPTZ,
  duration_ms      BIGINT,
  PRIMARY KEY (server, session_id)
);
CREATE TABLE IF NOT EXISTS logon_failures (
  server           VARCHAR NOT NULL,
  session_id       VARCHAR NOT NULL,
  session_line_num BIGINT NOT NULL,
  log_time         TIMESTAMPTZ,
  user_name        VARCHAR,
  database_name    VARCHAR,
  client_addr      VARCHAR,
  client_port      INTEGER,
  sqlstate         VARCHAR,
  reason           VARCHAR,
  detail           VARCHAR,
  PRIMARY KEY (server, session_id, session_line_num)
);
CREATE TABLE IF NOT EXISTS correlation_sessions (
  server         VARCHAR NOT NULL,
  session_id     VARCHAR NOT NULL,
  statement_id   BIGINT,
  vxid           VARCHAR,
  last_line      BIGINT,
  statement_md5  VARCHAR,
  first_time     TIMESTAMPTZ,
  PRIMARY KEY (server, session_id)
);
CREATE TABLE IF NOT EXISTS statement_errors (
  server                 VARCHAR NOT NULL,
  session_id             VARCHAR NOT NULL,
  session_line_num       BIGINT NOT NULL,
  log_time               TIMESTAMPTZ,
  user_name              VARCHAR,
  database_name          VARCHAR,
  virtual_transaction_id VARCHAR,
  transaction_id         BIGINT,
  severity               VARCHAR,
  sqlstate               VARCHAR,
  message                VARCHAR,
  statement_id           BIGINT,
  PRIMARY KEY (server, session_id, session_line_num)
);
`;

function createAuditEvents(name: string): string {
  const cols = AUDIT_LOG_COLUMNS.filter(([n]) => !VIEW_ONLY.has(n)).map(([n, t]) => `${n} ${t}`);
  return `CREATE TABLE ${name} (\n  ${cols.join(',\n  ')}\n)`;
}

const CREATE_AUDIT_LOGS_VIEW = `CREATE OR REPLACE VIEW audit_logs AS SELECT
  ${AUDIT_LOG_COLUMNS.map(([n]) => (n === 'message' ? `${MESSAGE_EXPRESSION} AS message` : n === 'outcome' ? `${OUTCOME_EXPRESSION} AS outcome` : n)).join(',\n  ')}
FROM audit_events`;

/** Identifies the view definition and the support tables: a short hash of their SQL (a change re-runs both). */
const VIEW_VERSION = createHash('sha256').update(CREATE_AUDIT_LOGS_VIEW).update(CREATE_SUPPORT_TABLES).digest('hex').slice(0, 16);

async function tableType(conn: DuckDBConnection, table: string): Promise<string | null> {
  const r = await conn.runAndReadAll(
    `SELECT table_type FROM information_schema.tables WHERE table_schema = 'main' AND table_name = ${sqlString(table)}`);
  const v = r.getRows()[0]?.[0];
  return v === undefined || v === null ? null : String(v);
}

async function tableColumns(conn: DuckDBConnection, table: string): Promise<Map<string, string>> {
  const r = await conn.runAndReadAll(
    `SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'main' AND table_name = ${sqlString(table)}`);
  return new Map(r.getRows().map((row) => [String(row[0]), String(row[1])]));
}

/** Lists the sessions with unresolved `<previously logged>` rows (a full scan: only at creation of the table). */
const FILL_PENDING_MARKERS = `INSERT OR IGNORE INTO pending_markers
  SELECT DISTINCT server, session_id FROM audit_events WHERE statement = '${PREVIOUSLY_LOGGED}' AND session_id IS NOT NULL`;

export interface SchemaInfo {
  /** True when this call upgraded a seed database. */
  upgradedFromSeed: boolean;
  legacyRows: number;
}

/** Creates the schema, or upgrades a seed database in place, in one transaction. */
export async function ensureSchema(conn: DuckDBConnection, defaultServer: string): Promise<SchemaInfo> {
  const info: SchemaInfo = { upgradedFromSeed: false, legacyRows: 0 };
  if (await tableType(conn, 'audit_events') !== null) {
    // Recreate the view only when its definition changed (a catalog write would cost a checkpoint).
    const r = await conn.runAndReadAll(`SELECT value FROM auditship_meta WHERE key = 'audit_logs_view'`);
    if (await tableType(conn, 'pending_markers') === null) {
      // A database of an earlier auditship version: list its unresolved markers once.
      await conn.run('BEGIN TRANSACTION');
      await conn.run(CREATE_SUPPORT_TABLES);
      await conn.run(FILL_PENDING_MARKERS);
      await conn.run('COMMIT');
    }
    if (r.getRows()[0]?.[0] !== VIEW_VERSION) {
      await conn.run(CREATE_SUPPORT_TABLES);
      const have = await tableColumns(conn, 'audit_events');
      for (const [name, type] of ADDED_COLUMNS) {
        if (!have.has(name)) await conn.run(`ALTER TABLE audit_events ADD COLUMN ${name} ${type}`);
      }
      await conn.run(`INSERT OR REPLACE INTO auditship_meta VALUES ('schema_version', '${SCHEMA_VERSION}')`);
      await conn.run(CREATE_AUDIT_LOGS_VIEW);
      await conn.run(`INSERT OR REPLACE INTO auditship_meta VALUES ('audit_logs_view', '${VIEW_VERSION}')`);
    }
    return info;
  }
  const seedTable = await tableType(conn, 'audit_logs') === 'BASE TABLE';
  const existing = seedTable ? await tableColumns(conn, 'audit_logs') : new Map<string, string>();
  await conn.run('BEGIN TRANSACTION');
  try {
    await conn.run(CREATE_SUPPORT_TABLES);
    if (!seedTable) {
      await conn.run(createAuditEvents('audit_events'));
    } else {
      // A seed database: rebuild audit_logs with every column, keep its rows (parsed from their message),
      // drop the seed's unique index (identity is now server + session), deduplicate what it let through.
      const missing = SEED_COLUMNS.filter((c) => !existing.has(c));
      if (missing.length) throw new Error(`audit_logs exists but lacks the columns ${missing.join(', ')}; it was not written by pg_audit_to_duckdb or auditship`);
      await conn.run('DROP INDEX IF EXISTS ux_audit_unique');
      await conn.run(createAuditEvents('audit_events'));
      const F = `("(?:[^"]|"")*"|[^,]*)`;
      const re = `(?s)^AUDIT: (SESSION|OBJECT),(\\d+),(\\d+),([A-Z_]+),${F},${F},${F},${F},${F}(?:,(\\d*))?$`;
      const uq = (x: string) => `CASE WHEN starts_with(${x}, '"') THEN replace(${x}[2:-2], '""', '"') WHEN ${x} = '' THEN NULL ELSE ${x} END`;
      const logTime = existing.get('log_time')?.startsWith('TIMESTAMP WITH') ? 'log_time' : `timezone('UTC', log_time::TIMESTAMP)`;
      await conn.run(`
        INSERT INTO audit_events BY NAME
        SELECT ${logTime} AS log_time, user_name, database_name, client_addr, message AS raw_message, application_name, session_id,
               session_line_num, log_path_id, file_name, ${sqlString(defaultServer)} AS server,
               nullif(p.audit_type, '') AS audit_type, TRY_CAST(nullif(p.statement_id, '') AS BIGINT) AS statement_id,
               TRY_CAST(nullif(p.substatement_id, '') AS BIGINT) AS substatement_id, nullif(p.class, '') AS class,
               ${uq('p.command')} AS command, ${uq('p.object_type')} AS object_type, ${uq('p.object_name')} AS object_name,
               ${uq('p.statement')} AS statement, ${uq('p.parameter')} AS parameter, TRY_CAST(nullif(p.rows, '') AS BIGINT) AS rows,
               false AS statement_filled
        FROM (
          SELECT *, regexp_extract(message, ${sqlString(re)},
                   ['audit_type','statement_id','substatement_id','class','command','object_type','object_name','statement','parameter','rows']) AS p
          FROM audit_logs
        )
        QUALIFY row_number() OVER (PARTITION BY session_id, session_line_num ORDER BY log_time) = 1`);
      await conn.run('DROP TABLE audit_logs');
      const r = await conn.runAndReadAll(`SELECT count(*), max(log_time) FROM audit_events`);
      const [count, maxTime] = r.getRows()[0]!;
      info.upgradedFromSeed = true;
      info.legacyRows = Number(count);
      if (maxTime !== null) {
        await conn.run(`INSERT OR REPLACE INTO auditship_meta VALUES ('legacy_max_log_time', (SELECT CAST(epoch_ms(max(log_time)) AS VARCHAR) FROM audit_events))`);
      }
      await conn.run(`INSERT OR REPLACE INTO auditship_meta VALUES ('upgraded_from_seed', CAST(now() AS VARCHAR))`);
      await conn.run(FILL_PENDING_MARKERS);
    }
    await conn.run(CREATE_AUDIT_LOGS_VIEW);
    await conn.run(`INSERT OR REPLACE INTO auditship_meta VALUES ('audit_logs_view', '${VIEW_VERSION}')`);
    await conn.run(`INSERT OR REPLACE INTO auditship_meta VALUES ('schema_version', '${SCHEMA_VERSION}')`);
    if (info.upgradedFromSeed) {
      // Commit straight into the database file, not through the WAL: DuckDB 1.5 cannot replay a WAL holding
      // DROP TABLE of the seed's audit_logs (a foreign key to a table with a sequence default), so a kill
      // before the next checkpoint would leave a file nobody can open.
      await conn.run(`SET checkpoint_threshold = '0B'`);
      await conn.run(`SET auto_checkpoint_skip_wal_threshold = 0`);
    }
    await conn.run('COMMIT');
    if (info.upgradedFromSeed) {
      await conn.run('CHECKPOINT');
      await conn.run('RESET checkpoint_threshold');
      await conn.run('RESET auto_checkpoint_skip_wal_threshold');
    }
  } catch (err) {
    await conn.run('ROLLBACK').catch(() => {});
    throw err;
  }
  return info;
}
