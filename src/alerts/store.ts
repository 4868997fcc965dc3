/**
 * The alert tables of the DuckDB store, written in the transaction of the batch that fired them:
 *  - `alerts`: one row per fired alert. `alert_id` is its idempotency key, a SHA-256 of what fired it — the rule and
 *    the event (server, session, line; audit table and event id; application source, row and fingerprint) for an
 *    alert per event; the rule, pipeline, key and window (or cooldown period) start for a threshold or cooldown —
 *    so evaluating the same rows again (after a kill) yields the same id, which INSERT OR IGNORE keeps once.
 *  - `alert_outbox`: one row per alert and destination: state pending → delivered, or dead (a dead letter) after
 *    `max_attempts` or a refusal for good; `attempts`, `next_attempt_at` and the last error line persisted.
 *  - `alert_windows`: per pipeline, rule, key and window start: the matching events counted so far (threshold
 *    rules and cooldowns); an alert fires when a commit takes the count to the rule's count.
 */
import type { DuckDBConnection } from '@duckdb/node-api';
import { oneSchemaAtATime, type Database } from '../sinks/duckdb/database.js';
import { TX_LOCAL_ROWID } from './rules.js';

export const ALERTS_DDL = `
CREATE TABLE IF NOT EXISTS alerts (
  alert_id         VARCHAR PRIMARY KEY,
  rule             VARCHAR NOT NULL,
  source           VARCHAR NOT NULL,
  pipeline         VARCHAR NOT NULL,
  server           VARCHAR,
  group_key        VARCHAR,
  window_start     TIMESTAMPTZ,
  window_ms        BIGINT,
  first_event_time TIMESTAMPTZ,
  last_event_time  TIMESTAMPTZ,
  matched          BIGINT,
  threshold        BIGINT,
  event_id         VARCHAR,
  samples          VARCHAR,
  fired_at         TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS alert_outbox (
  alert_id        VARCHAR NOT NULL,
  destination     VARCHAR NOT NULL,
  state           VARCHAR NOT NULL,
  attempts        INTEGER NOT NULL,
  next_attempt_at TIMESTAMPTZ,
  last_error      VARCHAR,
  created_at      TIMESTAMPTZ,
  updated_at      TIMESTAMPTZ,
  delivered_at    TIMESTAMPTZ,
  PRIMARY KEY (alert_id, destination)
);
CREATE TABLE IF NOT EXISTS alert_windows (
  pipeline     VARCHAR NOT NULL,
  rule         VARCHAR NOT NULL,
  group_key    VARCHAR NOT NULL,
  window_start TIMESTAMPTZ NOT NULL,
  events       BIGINT NOT NULL,
  first_time   TIMESTAMPTZ,
  last_time    TIMESTAMPTZ,
  PRIMARY KEY (pipeline, rule, group_key, window_start)
);`;

/** Creates the alert tables (once per instance at a time: DuckDB refuses concurrent creation of one table). */
export async function ensureAlertTables(instance: Database['instance'], conn: DuckDBConnection): Promise<void> {
  await oneSchemaAtATime(instance, () => conn.run(ALERTS_DDL));
}

/**
 * Whether this DuckDB still numbers a transaction's own new rows from TX_LOCAL_ROWID (what evaluation relies on to
 * read only the rows of the commit). Checked in a transaction rolled back, on a temporary table of its own.
 */
export async function transactionRowsVisible(instance: Database['instance']): Promise<boolean> {
  const conn = await instance.connect();
  try {
    await conn.run('CREATE TEMP TABLE IF NOT EXISTS alert_rowid_probe (x INTEGER)');
    await conn.run('BEGIN TRANSACTION');
    try {
      await conn.run('INSERT INTO alert_rowid_probe VALUES (1), (2)');
      const r = await conn.runAndReadAll(`SELECT count(*) FROM alert_rowid_probe WHERE rowid >= ${TX_LOCAL_ROWID}`);
      return Number(r.getRows()[0]![0]) === 2;
    } finally {
      await conn.run('ROLLBACK');
    }
  } finally {
    conn.closeSync();
  }
}
