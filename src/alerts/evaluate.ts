/**
 * Evaluating a pipeline's rules at each commit, inside the transaction that stores the batch and its checkpoint:
 * what fires is stored (`alerts`, `alert_outbox`, `alert_windows`: store.ts) or not at all, with the events —
 * so a kill at any point neither loses an alert nor fires it twice, and a commit evaluated again after a kill
 * gives the same idempotency keys.
 *
 * Cost: one statement per source and commit reads the rows the transaction stored (rowid ≥ TX_LOCAL_ROWID, which
 * DuckDB finds without a scan of what was committed before) and tests every rule of that source in one pass (an
 * OR of the rules' conditions; a list of the rules each matching row satisfies). Rows that match go to a temporary
 * table; only then do a few statements turn them into alerts, window counts and deliveries. A commit that matches
 * nothing costs that one statement.
 */
import type { DuckDBConnection } from '@duckdb/node-api';
import { sqlString } from '../duckdb/sql.js';
import { profile } from '../core/profile.js';
import type { Database } from '../sinks/duckdb/database.js';
import type { AlertRule, PipelineAlerts } from './config.js';
import { conditionSql, groupKeySql, SOURCES, TX_LOCAL_ROWID, type AlertSource } from './rules.js';
import { ensureAlertTables, transactionRowsVisible } from './store.js';
import { ConnectorError } from '../core/errors.js';

/** What a DuckDB sink calls in its open transaction just before it commits (sinks know no more of alerts). */
export interface CommitHook {
  beforeCommit(conn: DuckDBConnection): Promise<void>;
}

const HITS_DDL = `CREATE TEMP TABLE IF NOT EXISTS alert_hits (r INTEGER, t TIMESTAMPTZ, ident VARCHAR, srv VARCHAR, gkey VARCHAR, sample VARCHAR);
CREATE TEMP TABLE IF NOT EXISTS alert_groups (r INTEGER, gkey VARCHAR, ws TIMESTAMPTZ, cnt BIGINT, first_t TIMESTAMPTZ, last_t TIMESTAMPTZ, srv VARCHAR,
  samples VARCHAR, prev BIGINT, prev_first TIMESTAMPTZ)`;

const us = (ms: number | null) => (ms === null ? 'NULL' : String(ms * 1000));

/** The rules of a pipeline for the sources its DuckDB sink commits, as SQL; null when none apply. */
export class AlertEvaluator implements CommitHook {
  private readonly hitSql: string[];
  private readonly rulesValues: string;
  private readonly destValues: string;
  private readonly bucketed: boolean;
  private readonly perEvent: boolean;
  /** Alerts fired by the commits of this evaluator (after they committed or not: a count for logs and tests). */
  fired = 0;

  private constructor(
    private readonly pipeline: string,
    readonly rules: AlertRule[],
  ) {
    const bySource = new Map<AlertSource, number[]>();
    rules.forEach((r, i) => bySource.set(r.source, [...(bySource.get(r.source) ?? []), i]));
    this.hitSql = [...bySource].map(([source, idx]) => hitsSql(source, idx, rules));
    this.rulesValues = `(VALUES ${rules
      .map((r, i) => {
        const perEvent = r.windowMs === null && r.cooldownMs === null;
        const bucket = r.windowMs ?? r.cooldownMs;
        return `(${i}, ${sqlString(r.name)}, ${sqlString(r.source)}, ${r.count}, ${us(bucket)}::BIGINT, ${us(r.windowMs !== null ? r.cooldownMs : null)}::BIGINT, ${perEvent})`;
      })
      .join(', ')}) AS rr(r, rule, source, threshold, bucket_us, cooldown_us, per_event)`;
    this.destValues = `(VALUES ${rules.flatMap((r) => r.to.map((d) => `(${sqlString(r.name)}, ${sqlString(d)})`)).join(', ')}) AS d(rule, destination)`;
    this.perEvent = rules.some((r) => r.windowMs === null && r.cooldownMs === null);
    this.bucketed = rules.some((r) => r.windowMs !== null || r.cooldownMs !== null);
  }

  /**
   * The evaluator of `alerts` for a sink committing `sources`, or null when no rule reads them. Creates the alert
   * tables when missing (before any transaction that writes them begins: DuckDB's catalog is transactional too).
   */
  static async attach(
    db: Pick<Database, 'instance'>,
    pipeline: string,
    alerts: PipelineAlerts | undefined,
    sources: AlertSource[],
  ): Promise<AlertEvaluator | null> {
    const rules = alerts?.rules.filter((r) => sources.includes(r.source)) ?? [];
    if (!rules.length) return null;
    if (!(await transactionRowsVisible(db.instance)))
      throw new ConnectorError(
        'duckdb',
        'alerts_unsupported',
        'this DuckDB version does not number the rows of a transaction as auditship expects, so alert rules cannot tell the rows of a commit; this is a bug of this build — remove alerts: from the config, or use the DuckDB version of package.json',
        false,
      );
    const conn = await db.instance.connect();
    try {
      await ensureAlertTables(db.instance, conn);
    } finally {
      conn.closeSync();
    }
    return new AlertEvaluator(pipeline, rules);
  }

  async beforeCommit(conn: DuckDBConnection): Promise<void> {
    const t = profile.enabled ? performance.now() : 0;
    // The connection's own temporary tables; created in the transaction (a rollback takes them too), so each time.
    await conn.run(HITS_DDL);
    let hits = 0;
    for (const sql of this.hitSql) hits += Number((await conn.run(sql)).rowsChanged);
    if (hits > 0) {
      const p = sqlString(this.pipeline);
      if (this.perEvent) {
        const r = await conn.run(`INSERT OR IGNORE INTO alerts
          SELECT sha256(rr.rule || chr(31) || h.ident), rr.rule, rr.source, ${p}, h.srv, h.gkey, NULL, NULL, h.t, h.t, 1, 1, h.ident,
                 '[' || h.sample || ']', now()
          FROM alert_hits AS h JOIN ${this.rulesValues} ON rr.r = h.r WHERE rr.per_event`);
        this.fired += Number(r.rowsChanged);
      }
      if (this.bucketed) await this.windows(conn, p);
      await conn.run(`INSERT OR IGNORE INTO alert_outbox
        SELECT a.alert_id, d.destination, 'pending', 0, now(), NULL, now(), now(), NULL
        FROM alerts AS a JOIN ${this.destValues} ON d.rule = a.rule
        WHERE a.rowid >= ${TX_LOCAL_ROWID} AND a.pipeline = ${p}`);
      await conn.run('DELETE FROM alert_hits');
    }
    if (profile.enabled) profile.add('alerts: evaluate rules', 'duckdb', performance.now() - t);
  }

  /** Threshold rules and cooldowns: counts per key and window, merged with what earlier commits counted. */
  private async windows(conn: DuckDBConnection, p: string): Promise<void> {
    const n = await conn.run(`INSERT INTO alert_groups
      SELECT g.*, coalesce(w.events, 0), w.first_time FROM (
        SELECT h.r, h.gkey, time_bucket(to_microseconds(rr.bucket_us), h.t) AS ws, count(*) AS cnt, min(h.t), max(h.t), min(h.srv),
               '[' || array_to_string(list(h.sample ORDER BY h.t, h.ident)[1:3], ',') || ']'
        FROM alert_hits AS h JOIN ${this.rulesValues} ON rr.r = h.r WHERE NOT rr.per_event GROUP BY ALL
      ) AS g JOIN ${this.rulesValues} ON rr.r = g.r
      LEFT JOIN alert_windows AS w ON w.pipeline = ${p} AND w.rule = rr.rule AND w.group_key = g.gkey AND w.window_start = g.ws`);
    if (Number(n.rowsChanged) === 0) return;
    // One alert per key and window (or cooldown period, which holds whole windows): the first window to reach the count.
    const fired = await conn.run(`INSERT OR IGNORE INTO alerts
      SELECT id, rule, source, ${p}, srv, gkey, ws, bucket_us // 1000, coalesce(least(prev_first, first_t), first_t), last_t, prev + cnt, threshold, NULL,
             samples, now()
      FROM (
        SELECT sha256(concat_ws(chr(31), ${p}, rr.rule, g.gkey,
                 epoch_us(CASE WHEN rr.cooldown_us IS NULL THEN g.ws ELSE time_bucket(to_microseconds(rr.cooldown_us), g.ws) END)::VARCHAR)) AS id,
               rr.rule, rr.source, g.srv, g.gkey, g.ws, rr.bucket_us, g.prev_first, g.first_t, g.last_t, g.prev, g.cnt, rr.threshold, g.samples
        FROM alert_groups AS g JOIN ${this.rulesValues} ON rr.r = g.r
        WHERE g.prev < rr.threshold AND g.prev + g.cnt >= rr.threshold
        QUALIFY row_number() OVER (PARTITION BY id ORDER BY g.ws) = 1
      )`);
    this.fired += Number(fired.rowsChanged);
    await conn.run(`INSERT INTO alert_windows
      SELECT ${p}, rr.rule, g.gkey, g.ws, g.cnt, g.first_t, g.last_t FROM alert_groups AS g JOIN ${this.rulesValues} ON rr.r = g.r
      ON CONFLICT (pipeline, rule, group_key, window_start) DO UPDATE SET events = alert_windows.events + excluded.events,
        first_time = least(alert_windows.first_time, excluded.first_time), last_time = greatest(alert_windows.last_time, excluded.last_time)`);
    // Windows long past (by event time) are no longer needed: a late event there starts a count again, and an
    // alert it could fire has the id of the one that fired then.
    await conn.run(`DELETE FROM alert_windows AS w USING ${this.rulesValues}
      WHERE w.pipeline = ${p} AND w.rule = rr.rule
        AND w.window_start < (SELECT max(last_t) FROM alert_groups) - to_microseconds(2 * greatest(rr.bucket_us, coalesce(rr.cooldown_us, 0)) + 86400000000)
        AND (w.rule, w.group_key, w.window_start) NOT IN (SELECT rr2.rule, g.gkey, g.ws FROM alert_groups AS g JOIN ${this.rulesValues.replace(' AS rr(', ' AS rr2(')} ON rr2.r = g.r)`);
    await conn.run('DELETE FROM alert_groups');
  }
}

/** One pass over the source's new rows: the rules each row matches, its key per rule, identity and sample. */
function hitsSql(source: AlertSource, idx: number[], rules: AlertRule[]): string {
  const s = SOURCES[source];
  const conds = idx.map((i) => ({ i, sql: conditionSql(source, rules[i]!.filter) }));
  const any = conds.some((c) => c.sql === 'true') ? 'true' : conds.map((c) => `(${c.sql})`).join(' OR ');
  const which = `list_filter([${conds.map((c) => `CASE WHEN ${c.sql} THEN ${c.i} END`).join(', ')}], x -> x IS NOT NULL)`;
  const keys = idx.map((i) => `WHEN ${i} THEN ${groupKeySql(source, rules[i]!.by)}`).join(' ');
  return `INSERT INTO alert_hits
    SELECT r, t, ident, srv, CASE r ${keys} END, sample FROM (
      SELECT n.*, ${s.identity} AS ident, ${s.server} AS srv, ${s.sample} AS sample, unnest(${which}) AS r
      FROM (${s.relation}) AS n WHERE ${any}
    )`;
}
