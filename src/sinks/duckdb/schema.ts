import { createHash } from 'node:crypto';
import type { DuckDBConnection } from '@duckdb/node-api';
import { PREVIOUSLY_LOGGED, textHash } from '../../parse/index.js';
import { sqlString } from '../../duckdb/sql.js';
import { ensureLedgerColumn, LEDGER_DDL } from '../../ledger/ledger.js';

/**
 * The DuckDB store's schema, its in-place upgrades (from earlier auditship versions, and from a database
 * written by the `pg_audit_to_duckdb` seed script: tables log_paths, log_summary, audit_logs with a unique
 * index).
 *
 * Events are stored as a star (schema version 3), because loading cost is per stored column: what an event
 * shares with its session and file, and with events of its kind, is stored once per context and kind.
 * Measured on 1 M events: 6.6 s of DuckDB time with every column on each row, 3.3 s with the star.
 *  - `event_rows`: one row per pgaudit entry: time, context_id, kind_id, and what is its own (line,
 *    transaction, statement ids, object, statement, parameter, rows, outcome).
 *  - `event_contexts`: server, session, user, database, client, application, backend, file — one row per
 *    session, file and application_name (id: a hash of the values, parse/session-tracker.ts).
 *  - `event_kinds`: audit type, class, command, object type, command tag, severity.
 *  - `audit_events` (view): one row per pgaudit entry with every field, as version 2 stored it. Identity:
 *    (server, session_id, session_line_num).
 *  - `audit_logs` (view): what users query. The seed's columns first (log_time, user_name, database_name,
 *    client_addr, message, application_name, session_id, session_line_num, log_path_id, file_name), then the
 *    server and session columns and every pgaudit field. Its `message` is computed (MESSAGE_EXPRESSION); a
 *    view costs nothing at insert time, where a generated column would double the cost of loading.
 *  - `log_paths`, `log_summary`: the seed's directory registry and per-file summary, kept up to date.
 *  - `ingest_files`: the checkpoint of each file, keyed by (pipeline, server, content fingerprint): each pipeline
 *    reads a file for its own sinks (schema version 4; before, two pipelines of one server shared a checkpoint and
 *    the second one's sinks never got the file). Checkpoints of a version 3 store have pipeline '' until the first
 *    pipeline of their server opens the store and takes them over (DuckDbSink.open).
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
 *  - `correlation_sessions`: internal — the last audited statement of each open session (its first and last
 *    audited line), for errors of later batches and runs; per pipeline, like the checkpoints it is committed with.
 *
 * Kept as one file (about 620 lines): the store's DDL and the upgrade step from each earlier version form one
 * sequence, read and reviewed together.
 */
export const SCHEMA_VERSION = 4;

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
  ['redactions', 'VARCHAR[]'],
];

/** Columns of audit_logs computed in the view, not stored in audit_events. */
const VIEW_ONLY = new Set(['message', 'outcome', 'redactions']);

/**
 * `redactions`: the names of the redaction rules that masked something in the event (src/redact), read from
 * the fixed markers `<redacted:RULE>` they left in the statement, parameter or error message; NULL when none.
 */
export const REDACTIONS_EXPRESSION = `CASE WHEN contains(concat(statement, parameter, error_message), '<redacted:')
  THEN list_sort(list_distinct(regexp_extract_all(concat(statement, chr(10), parameter, chr(10), error_message), '<redacted:([a-z][a-z0-9_]*)>', 1))) END`;

/** `outcome`: 'error' when an ERROR record ended the statement (sqlstate set), else 'success'. */
export const OUTCOME_EXPRESSION = `CASE WHEN sqlstate IS NULL THEN 'success' ELSE 'error' END`;

/** audit_events columns added after schema version 1, with their types (ALTER TABLE on upgrade). */
const ADDED_COLUMNS: [string, string][] = [
  ['sqlstate', 'VARCHAR'],
  ['error_message', 'VARCHAR'],
];

const SEED_COLUMNS = [
  'log_time',
  'user_name',
  'database_name',
  'client_addr',
  'message',
  'application_name',
  'session_id',
  'session_line_num',
  'log_path_id',
  'file_name',
];

const CREATE_SUPPORT_TABLES = `${LEDGER_DDL}
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
  pipeline        VARCHAR NOT NULL,
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
  PRIMARY KEY (pipeline, server, fingerprint)
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
  pipeline       VARCHAR NOT NULL,
  server         VARCHAR NOT NULL,
  session_id     VARCHAR NOT NULL,
  statement_id   BIGINT,
  vxid           VARCHAR,
  last_line      BIGINT,
  statement_hash BIGINT,
  marker         BOOLEAN,
  first_time     TIMESTAMPTZ,
  first_line     BIGINT,
  last_time      TIMESTAMPTZ,
  PRIMARY KEY (pipeline, server, session_id)
);
CREATE TABLE IF NOT EXISTS event_contexts (
  context_id       BIGINT PRIMARY KEY,
  server           VARCHAR,
  session_id       VARCHAR,
  user_name        VARCHAR,
  database_name    VARCHAR,
  client_addr      VARCHAR,
  client_port      INTEGER,
  application_name VARCHAR,
  backend_type     VARCHAR,
  session_start    TIMESTAMPTZ,
  process_id       INTEGER,
  leader_pid       INTEGER,
  log_path_id      INTEGER,
  file_name        VARCHAR,
  ledger_seq       BIGINT
);
CREATE TABLE IF NOT EXISTS event_kinds (
  kind_id        BIGINT PRIMARY KEY,
  audit_type     VARCHAR,
  class          VARCHAR,
  command        VARCHAR,
  object_type    VARCHAR,
  command_tag    VARCHAR,
  error_severity VARCHAR,
  ledger_stream  VARCHAR,
  ledger_seq     BIGINT
);
CREATE TABLE IF NOT EXISTS event_rows (
  log_time               TIMESTAMPTZ,
  context_id             BIGINT,
  kind_id                BIGINT,
  session_line_num       BIGINT,
  virtual_transaction_id VARCHAR,
  transaction_id         BIGINT,
  query_id               BIGINT,
  statement_id           BIGINT,
  substatement_id        BIGINT,
  object_name            VARCHAR,
  statement              VARCHAR,
  parameter              VARCHAR,
  rows                   BIGINT,
  raw_message            VARCHAR,
  statement_filled       BOOLEAN,
  sqlstate               VARCHAR,
  error_message          VARCHAR,
  ledger_seq             BIGINT
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

/** The flat table of schema versions 1 and 2 (one row per entry, every column), kept to convert old stores. */
function createFlatEvents(name: string): string {
  const cols = AUDIT_LOG_COLUMNS.filter(([n]) => !VIEW_ONLY.has(n)).map(([n, t]) => `${n} ${t}`);
  return `CREATE TABLE ${name} (\n  ${cols.join(',\n  ')}\n)`;
}

/** Where each audit_events column comes from in the star. */
const STAR_SOURCE: Record<string, string> = {
  user_name: 'c',
  database_name: 'c',
  client_addr: 'c',
  application_name: 'c',
  session_id: 'c',
  log_path_id: 'c',
  file_name: 'c',
  server: 'c',
  client_port: 'c',
  process_id: 'c',
  session_start: 'c',
  backend_type: 'c',
  leader_pid: 'c',
  command_tag: 'k',
  error_severity: 'k',
  audit_type: 'k',
  class: 'k',
  command: 'k',
  object_type: 'k',
};

/** audit_events: every stored column of an entry, in version 2's order, from the star. */
const CREATE_AUDIT_EVENTS_VIEW = `CREATE OR REPLACE VIEW audit_events AS SELECT
  ${AUDIT_LOG_COLUMNS.filter(([n]) => !VIEW_ONLY.has(n))
    .map(([n]) => `${STAR_SOURCE[n] ?? 'e'}.${n}`)
    .join(', ')}
FROM event_rows AS e LEFT JOIN event_contexts AS c ON c.context_id = e.context_id LEFT JOIN event_kinds AS k ON k.kind_id = e.kind_id`;

const CREATE_AUDIT_LOGS_VIEW = `CREATE OR REPLACE VIEW audit_logs AS SELECT
  ${AUDIT_LOG_COLUMNS.map(([n]) =>
    n === 'message'
      ? `${MESSAGE_EXPRESSION} AS message`
      : n === 'outcome'
        ? `${OUTCOME_EXPRESSION} AS outcome`
        : n === 'redactions'
          ? `${REDACTIONS_EXPRESSION} AS redactions`
          : n,
  ).join(',\n  ')}
FROM audit_events`;

/** Identifies the view definitions and the support tables: a short hash of their SQL (a change re-runs them). */
const VIEW_VERSION = createHash('sha256')
  .update(CREATE_AUDIT_EVENTS_VIEW)
  .update(CREATE_AUDIT_LOGS_VIEW)
  .update(CREATE_SUPPORT_TABLES)
  .digest('hex')
  .slice(0, 16);

/** Context and kind ids of rows converted from a flat table (any stable function of the values serves). */
const CONTEXT_ID_SQL =
  '(hash(server, session_id, user_name, database_name, client_addr, client_port, application_name, backend_type, session_start, process_id, leader_pid, log_path_id, file_name) >> 12)::BIGINT';
const KIND_ID_SQL = '(hash(audit_type, class, command, object_type, command_tag, error_severity) >> 12)::BIGINT';

async function tableType(conn: DuckDBConnection, table: string): Promise<string | null> {
  const r = await conn.runAndReadAll(
    `SELECT table_type FROM information_schema.tables WHERE table_catalog = current_database() AND table_schema = 'main' AND table_name = ${sqlString(table)}`,
  );
  const v = r.getRows()[0]?.[0];
  return v === undefined || v === null ? null : String(v);
}

async function tableColumns(conn: DuckDBConnection, table: string): Promise<Map<string, string>> {
  const r = await conn.runAndReadAll(
    `SELECT column_name, data_type FROM information_schema.columns WHERE table_catalog = current_database() AND table_schema = 'main' AND table_name = ${sqlString(table)}`,
  );
  return new Map(r.getRows().map((row) => [String(row[0]), String(row[1])]));
}

/** Lists the sessions with unresolved `<previously logged>` rows (a full scan: only at creation of the table). */
const FILL_PENDING_MARKERS = `INSERT OR IGNORE INTO pending_markers
  SELECT DISTINCT server, session_id FROM audit_events WHERE statement = '${PREVIOUSLY_LOGGED}' AND session_id IS NOT NULL`;

export interface SchemaInfo {
  /** True when this call upgraded a seed database. */
  upgradedFromSeed: boolean;
  legacyRows: number;
  /** The schema version the store had before this call upgraded it (0: none, a new store). */
  upgradedFrom: number;
  /** Rows converted by an upgrade. */
  upgradedRows: number;
}

/**
 * Turns a flat table of entries (schema versions 1 and 2, or a converted seed table) into the star, in the
 * caller's transaction: contexts, kinds and rows. The flat table is dropped.
 */
async function flatToStar(conn: DuckDBConnection, flat: string): Promise<number> {
  const ctx = [
    'server',
    'session_id',
    'user_name',
    'database_name',
    'client_addr',
    'client_port',
    'application_name',
    'backend_type',
    'session_start',
    'process_id',
    'leader_pid',
    'log_path_id',
    'file_name',
  ];
  const kind = ['audit_type', 'class', 'command', 'object_type', 'command_tag', 'error_severity'];
  await conn.run(`INSERT INTO event_contexts (context_id, ${ctx.join(', ')}) SELECT DISTINCT ${CONTEXT_ID_SQL} AS context_id, ${ctx.join(', ')} FROM ${flat}`);
  await conn.run(`INSERT INTO event_kinds (kind_id, ${kind.join(', ')}) SELECT DISTINCT ${KIND_ID_SQL} AS kind_id, ${kind.join(', ')} FROM ${flat}`);
  const r = await conn.run(`INSERT INTO event_rows (log_time, context_id, kind_id, session_line_num, virtual_transaction_id, transaction_id, query_id,
      statement_id, substatement_id, object_name, statement, parameter, rows, raw_message, statement_filled, sqlstate, error_message)
    SELECT log_time, ${CONTEXT_ID_SQL}, ${KIND_ID_SQL}, session_line_num, virtual_transaction_id,
      transaction_id, query_id, statement_id, substatement_id, object_name, statement, parameter, rows, raw_message, statement_filled, sqlstate, error_message
    FROM ${flat}`);
  return Number(r.rowsChanged);
}

/**
 * Converts the correlation state of a version 2 store (statement_md5) to version 3 (statement_hash): the text of
 * each open session's last statement is read from the flat table and hashed as the tracker hashes it. Sessions
 * that ended are dropped (version 2 kept them by mistake).
 */
async function convertSessionState(conn: DuckDBConnection, oldState: string, flat: string): Promise<void> {
  const rows = (
    await conn.runAndReadAll(`
    SELECT cs.server, cs.session_id, cs.statement_id, cs.vxid, cs.last_line, epoch_ms(cs.first_time), f.statement
    FROM ${oldState} AS cs
    LEFT JOIN (SELECT server, session_id, statement_id, arg_min(statement, session_line_num) AS statement FROM ${flat}
               WHERE (server, session_id, statement_id) IN (SELECT server, session_id, statement_id FROM ${oldState}) GROUP BY ALL) AS f
      USING (server, session_id, statement_id)
    WHERE NOT EXISTS (SELECT 1 FROM sessions AS s WHERE s.server = cs.server AND s.session_id = cs.session_id AND s.disconnected_at IS NOT NULL)`)
  ).getRows();
  if (rows.length === 0) return;
  const stmt =
    await conn.prepare(`INSERT OR REPLACE INTO correlation_sessions (pipeline, server, session_id, statement_id, vxid, last_line, statement_hash, marker, first_time)
    VALUES ('', $1, $2, $3, $4, $5, $6, $7, make_timestamp($8 * 1000)::TIMESTAMPTZ)`);
  for (const [server, session, statementId, vxid, lastLine, firstMs, statement] of rows) {
    const marker = statement === PREVIOUSLY_LOGGED;
    stmt.bindVarchar(1, String(server));
    stmt.bindVarchar(2, String(session));
    if (statementId === null) stmt.bindNull(3);
    else stmt.bindBigInt(3, BigInt(String(statementId)));
    if (vxid === null) stmt.bindNull(4);
    else stmt.bindVarchar(4, String(vxid));
    if (lastLine === null) stmt.bindNull(5);
    else stmt.bindBigInt(5, BigInt(String(lastLine)));
    stmt.bindBigInt(6, BigInt(marker || statement === null ? 0 : textHash(String(statement))));
    stmt.bindBoolean(7, marker);
    if (firstMs === null) stmt.bindNull(8);
    else stmt.bindBigInt(8, BigInt(String(firstMs)));
    await stmt.run();
  }
}

/** The ledger's columns on the tables of a store written before it (their rows keep NULL: entry 0). */
async function ensureLedgerColumns(conn: DuckDBConnection): Promise<void> {
  await ensureLedgerColumn(conn, 'event_rows');
  await ensureLedgerColumn(conn, 'event_contexts');
  await ensureLedgerColumn(conn, 'event_kinds', 'ledger_stream', 'VARCHAR');
  await ensureLedgerColumn(conn, 'event_kinds');
}

/** The tables a version 4 store keeps per pipeline (the reading position and what is committed with it). */
const PER_PIPELINE_TABLES = ['ingest_files', 'correlation_sessions'];

/**
 * Version 4, first step (before CREATE_SUPPORT_TABLES creates them anew): per-pipeline tables of an earlier
 * version (without a pipeline column) are renamed aside. Returns the tables set aside.
 */
async function setAsideUnkeyed(conn: DuckDBConnection): Promise<string[]> {
  const aside: string[] = [];
  for (const table of PER_PIPELINE_TABLES) {
    const columns = await tableColumns(conn, table);
    // statement_md5: a version 2 state, converted by convertSessionState.
    if (columns.size === 0 || columns.has('pipeline') || columns.has('statement_md5')) continue;
    await conn.run(`ALTER TABLE ${table} RENAME TO ${table}_unkeyed`);
    aside.push(table);
  }
  return aside;
}

/**
 * Version 4, second step: the rows set aside, every one kept, with pipeline '' — no pipeline name was recorded
 * before. The first pipeline of their server that opens the store takes them over (DuckDbSink.open).
 */
async function restoreUnkeyed(conn: DuckDBConnection, aside: string[]): Promise<void> {
  for (const table of aside) {
    await conn.run(`INSERT INTO ${table} BY NAME SELECT '' AS pipeline, * FROM ${table}_unkeyed`);
    await conn.run(`DROP TABLE ${table}_unkeyed`);
  }
}

/** True when a per-pipeline table exists without its pipeline column (a version 3 store). */
async function hasUnkeyedTables(conn: DuckDBConnection): Promise<boolean> {
  for (const table of PER_PIPELINE_TABLES) {
    const columns = await tableColumns(conn, table);
    if (columns.size > 0 && !columns.has('pipeline')) return true;
  }
  return false;
}

/** Creates the schema, or upgrades an earlier auditship store or a seed database in place, in one transaction. */
export async function ensureSchema(conn: DuckDBConnection, defaultServer: string): Promise<SchemaInfo> {
  const info: SchemaInfo = { upgradedFromSeed: false, legacyRows: 0, upgradedFrom: 0, upgradedRows: 0 };
  const eventsType = await tableType(conn, 'audit_events');
  if (eventsType === 'VIEW' && (await hasUnkeyedTables(conn))) {
    // Version 3: checkpoints and correlation state become per pipeline (every row kept, pipeline '').
    const fillMarkers = (await tableType(conn, 'pending_markers')) === null;
    await conn.run('BEGIN TRANSACTION');
    try {
      const aside = await setAsideUnkeyed(conn);
      await conn.run(CREATE_SUPPORT_TABLES);
      await ensureLedgerColumns(conn);
      await restoreUnkeyed(conn, aside);
      if (fillMarkers) await conn.run(FILL_PENDING_MARKERS);
      await conn.run(CREATE_AUDIT_EVENTS_VIEW);
      await conn.run(CREATE_AUDIT_LOGS_VIEW);
      await conn.run(`INSERT OR REPLACE INTO auditship_meta VALUES ('audit_logs_view', '${VIEW_VERSION}')`);
      await conn.run(`INSERT OR REPLACE INTO auditship_meta VALUES ('schema_version', '${SCHEMA_VERSION}')`);
      await conn.run(`INSERT OR REPLACE INTO auditship_meta VALUES ('upgraded_to_${SCHEMA_VERSION}', CAST(now() AS VARCHAR))`);
      await conn.run('COMMIT');
    } catch (err) {
      await conn.run('ROLLBACK').catch(() => {});
      throw err;
    }
    // Into the database file now, so that no start replays the table swap from the WAL (not needed for safety).
    await conn.run('CHECKPOINT').catch(() => {});
    info.upgradedFrom = 3;
    return info;
  }
  if (eventsType === 'VIEW') {
    // Version 4. Recreate the views only when their definition changed (a catalog write would cost a checkpoint).
    const r = await conn.runAndReadAll(`SELECT value FROM auditship_meta WHERE key = 'audit_logs_view'`);
    if ((await tableType(conn, 'pending_markers')) === null) {
      // A store of an auditship build without it: list its unresolved markers once.
      await conn.run('BEGIN TRANSACTION');
      await conn.run(CREATE_SUPPORT_TABLES);
      await conn.run(FILL_PENDING_MARKERS);
      await conn.run('COMMIT');
    }
    if (r.getRows()[0]?.[0] !== VIEW_VERSION) {
      await conn.run(CREATE_SUPPORT_TABLES);
      await ensureLedgerColumns(conn);
      await conn.run(CREATE_AUDIT_EVENTS_VIEW);
      await conn.run(CREATE_AUDIT_LOGS_VIEW);
      await conn.run(`INSERT OR REPLACE INTO auditship_meta VALUES ('schema_version', '${SCHEMA_VERSION}')`);
      await conn.run(`INSERT OR REPLACE INTO auditship_meta VALUES ('audit_logs_view', '${VIEW_VERSION}')`);
    }
    return info;
  }
  const seedTable = eventsType === null && (await tableType(conn, 'audit_logs')) === 'BASE TABLE';
  const existing = seedTable ? await tableColumns(conn, 'audit_logs') : new Map<string, string>();
  await conn.run('BEGIN TRANSACTION');
  try {
    let flat: string | null = null;
    let oldState: string | null = null;
    if (eventsType === 'BASE TABLE') {
      // A store of auditship 0.1 (schema version 1 or 2): its flat table and state are converted below.
      const v = (await conn.runAndReadAll(`SELECT value FROM auditship_meta WHERE key = 'schema_version'`)).getRows()[0]?.[0];
      info.upgradedFrom = v === undefined || v === null ? 1 : Number(v);
      await conn.run('DROP VIEW IF EXISTS audit_logs');
      await conn.run('ALTER TABLE audit_events RENAME TO audit_events_flat');
      flat = 'audit_events_flat';
      const have = await tableColumns(conn, flat);
      for (const [name, type] of ADDED_COLUMNS) {
        if (!have.has(name)) await conn.run(`ALTER TABLE ${flat} ADD COLUMN ${name} ${type}`);
      }
      if ((await tableColumns(conn, 'correlation_sessions')).has('statement_md5')) {
        await conn.run('ALTER TABLE correlation_sessions RENAME TO correlation_sessions_v2');
        oldState = 'correlation_sessions_v2';
      }
    }
    const aside = await setAsideUnkeyed(conn);
    await conn.run(CREATE_SUPPORT_TABLES);
    await restoreUnkeyed(conn, aside);
    if (seedTable) {
      // A seed database: its audit_logs becomes a flat table with every column (the pgaudit fields parsed from
      // its message), without the seed's unique index (identity is now server + session), deduplicated.
      const missing = SEED_COLUMNS.filter((c) => !existing.has(c));
      if (missing.length)
        throw new Error(`audit_logs exists but lacks the columns ${missing.join(', ')}; it was not written by pg_audit_to_duckdb or auditship`);
      await conn.run('DROP INDEX IF EXISTS ux_audit_unique');
      await conn.run(createFlatEvents('audit_events_flat'));
      flat = 'audit_events_flat';
      const F = `("(?:[^"]|"")*"|[^,]*)`;
      const re = `(?s)^AUDIT: (SESSION|OBJECT),(\\d+),(\\d+),([A-Z_]+),${F},${F},${F},${F},${F}(?:,(\\d*))?$`;
      const uq = (x: string) => `CASE WHEN starts_with(${x}, '"') THEN replace(${x}[2:-2], '""', '"') WHEN ${x} = '' THEN NULL ELSE ${x} END`;
      const logTime = existing.get('log_time')?.startsWith('TIMESTAMP WITH') ? 'log_time' : `timezone('UTC', log_time::TIMESTAMP)`;
      await conn.run(`
        INSERT INTO ${flat} BY NAME
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
    }
    if (flat) {
      info.upgradedRows = await flatToStar(conn, flat);
      if (oldState) {
        await convertSessionState(conn, oldState, flat);
        await conn.run(`DROP TABLE ${oldState}`);
      }
      if (seedTable) {
        const r = await conn.runAndReadAll(`SELECT count(*), max(log_time) FROM ${flat}`);
        const [count, maxTime] = r.getRows()[0]!;
        info.upgradedFromSeed = true;
        info.legacyRows = Number(count);
        if (maxTime !== null) {
          await conn.run(
            `INSERT OR REPLACE INTO auditship_meta VALUES ('legacy_max_log_time', (SELECT CAST(epoch_ms(max(log_time)) AS VARCHAR) FROM ${flat}))`,
          );
        }
        await conn.run(`INSERT OR REPLACE INTO auditship_meta VALUES ('upgraded_from_seed', CAST(now() AS VARCHAR))`);
      }
      await conn.run(`DROP TABLE ${flat}`);
      await conn.run(`INSERT OR REPLACE INTO auditship_meta VALUES ('upgraded_to_${SCHEMA_VERSION}', CAST(now() AS VARCHAR))`);
    }
    await conn.run(CREATE_AUDIT_EVENTS_VIEW);
    await conn.run(CREATE_AUDIT_LOGS_VIEW);
    if (flat) await conn.run(FILL_PENDING_MARKERS);
    await conn.run(`INSERT OR REPLACE INTO auditship_meta VALUES ('audit_logs_view', '${VIEW_VERSION}')`);
    await conn.run(`INSERT OR REPLACE INTO auditship_meta VALUES ('schema_version', '${SCHEMA_VERSION}')`);
    if (flat) {
      // Commit straight into the database file, not through the WAL: DuckDB 1.5 cannot replay a WAL holding
      // DROP TABLE of the seed's audit_logs (a foreign key to a table with a sequence default), and a WAL of a
      // whole converted store would be replayed slowly; a kill before the next checkpoint would leave a file
      // nobody can open, or a long start.
      await conn.run(`SET checkpoint_threshold = '0B'`);
      await conn.run(`SET auto_checkpoint_skip_wal_threshold = 0`);
    }
    await conn.run('COMMIT');
    if (flat) {
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
