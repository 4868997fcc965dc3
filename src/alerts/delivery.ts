/**
 * Delivering the outbox of alerts (`alert_outbox`) from the process that holds the DuckDB file: the
 * `run --follow` daemon all along (every poll_interval_ms), a one-shot `run` once its pipelines are done (for at
 * most run_deadline_ms). It never stalls a pipeline: deliveries run beside them on the event loop, at most
 * `concurrency` at once, each bounded by its destination's timeout_ms (and a guard beyond it); the store is
 * touched by short statements on a connection of the worker's own.
 *
 * Each attempt's outcome is written back: delivered; or attempts + 1 and the next attempt after an exponential
 * backoff with jitter (a receiver's Retry-After respected); or dead — a dead letter — after max_attempts or an
 * error a retry cannot mend. A kill between a receiver's acceptance and the write-back delivers that alert once
 * more, with the same id (AlertMessage.id, the Idempotency-Key), which receivers use to drop the repeat.
 * Nothing logged names a URL, a password, or the alert's text: the rule, the destination's name, the reason.
 */
import type { DuckDBConnection } from '@duckdb/node-api';
import type { Logger } from '../core/log.js';
import { sqlString } from '../duckdb/sql.js';
import type { Database } from '../sinks/duckdb/database.js';
import type { AlertsConfig } from './config.js';
import { deliver, DeliveryError, type Destination } from './deliver/index.js';
import { ALERT_COLUMNS, alertMessage, storedAlertOf } from './message.js';
import { ensureAlertTables } from './store.js';

/** The transport, as the worker calls it (tests give their own). */
export type DeliverFn = (dest: Destination, msg: ReturnType<typeof alertMessage>, opts: { signal?: AbortSignal }) => Promise<void>;

/** How far past a destination's own timeout_ms an attempt may run before the worker aborts it. */
const GUARD_MS = 5000;
const MAX_ERROR = 500;

export interface DeliveryCounts {
  delivered: number;
  retried: number;
  dead: number;
}

export class AlertDelivery {
  private readonly inflight = new Map<string, Promise<void>>();
  private readonly stopping = new AbortController();
  private timer: NodeJS.Timeout | null = null;
  private passing: Promise<void> | null = null;
  readonly counts: DeliveryCounts = { delivered: 0, retried: 0, dead: 0 };

  private constructor(
    private readonly conn: DuckDBConnection,
    private readonly config: AlertsConfig,
    private readonly log: Logger,
    private readonly send: DeliverFn,
  ) {}

  /** A worker on `db` (a connection of its own); creates the alert tables when missing. */
  static async open(db: Pick<Database, 'instance'>, config: AlertsConfig, log: Logger, send: DeliverFn = deliver): Promise<AlertDelivery> {
    const conn = await db.instance.connect();
    try {
      await conn.run("SET TimeZone = 'UTC'");
      await ensureAlertTables(db.instance, conn);
    } catch (err) {
      conn.closeSync();
      throw err;
    }
    return new AlertDelivery(conn, config, log, send);
  }

  /** Delivers what is due every poll_interval_ms until stop(). */
  start(): void {
    const tick = () => {
      if (this.stopping.signal.aborted) return;
      this.passing ??= this.pass()
        .catch((err: unknown) => this.log.warn('Alert delivery could not read the outbox; trying again.', { reason: (err as Error).message }))
        .finally(() => {
          this.passing = null;
        });
    };
    this.timer = setInterval(tick, this.config.delivery.poll_interval_ms);
    this.timer.unref();
    tick();
  }

  /**
   * Delivers what is due now and what falls due within `deadlineMs` (retries included), then returns; deliveries
   * still running at the deadline are aborted and stay pending (their attempt not counted).
   */
  async drain(deadlineMs: number): Promise<DeliveryCounts> {
    const end = Date.now() + deadlineMs;
    for (;;) {
      await this.pass();
      if (this.inflight.size) {
        const left = end - Date.now();
        if (left <= 0) break;
        await Promise.race([Promise.race(this.inflight.values()), new Promise((r) => setTimeout(r, Math.min(left, 200)))]);
        continue;
      }
      const next = await this.nextDueMs();
      if (next === null || next > end) break;
      await new Promise((r) => setTimeout(r, Math.max(10, Math.min(next - Date.now(), end - Date.now()))));
      if (Date.now() >= end) break;
    }
    return this.counts;
  }

  /** Stops taking work, aborts deliveries in flight (they stay pending), lets go of the connection. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.stopping.abort();
    await this.passing;
    await Promise.allSettled(this.inflight.values());
    this.conn.closeSync();
  }

  /** Starts deliveries of due rows, up to the free slots. */
  async pass(): Promise<void> {
    const slots = this.config.delivery.concurrency - this.inflight.size;
    if (slots <= 0 || this.stopping.signal.aborted) return;
    const r = await this.conn.runAndReadAll(
      `SELECT o.destination, o.attempts, ${ALERT_COLUMNS}
       FROM alert_outbox AS o JOIN alerts AS a ON a.alert_id = o.alert_id
       WHERE o.state = 'pending' AND o.next_attempt_at <= now()
       ORDER BY o.next_attempt_at, a.fired_at, o.alert_id, o.destination LIMIT ${slots + this.inflight.size}`,
    );
    for (const row of r.getRowObjectsJson()) {
      if (this.inflight.size >= this.config.delivery.concurrency) break;
      const key = `${String(row['alert_id'])}\0${String(row['destination'])}`;
      if (this.inflight.has(key)) continue;
      const attempt = this.attempt(row).finally(() => this.inflight.delete(key));
      this.inflight.set(key, attempt);
    }
  }

  private async nextDueMs(): Promise<number | null> {
    const r = await this.conn.runAndReadAll(`SELECT epoch_ms(min(next_attempt_at)) FROM alert_outbox WHERE state = 'pending'`);
    const v = r.getRows()[0]?.[0];
    return v === null || v === undefined ? null : Number(v);
  }

  private async attempt(row: Record<string, unknown>): Promise<void> {
    const alert = storedAlertOf(row);
    const destination = String(row['destination']);
    const attempts = Number(row['attempts']) + 1;
    const where = `alert_id = ${sqlString(alert.alert_id)} AND destination = ${sqlString(destination)} AND state = 'pending'`;
    const dest = this.config.destinations.get(destination);
    const rule = this.config.rules.find((r) => r.name === alert.rule);
    const fields = { rule: alert.rule, destination, attempt: attempts };
    try {
      if (!dest) throw new DeliveryError(`destination ${destination} is not in the config (alerts.destinations)`, false, { code: 'config' });
      const signal = AbortSignal.any([this.stopping.signal, AbortSignal.timeout(dest.timeout_ms + GUARD_MS)]);
      await this.send(dest, alertMessage(alert, rule?.filterText || undefined), { signal });
    } catch (err) {
      if (this.stopping.signal.aborted) return; // stopped: the attempt does not count, the row stays pending
      const e = err instanceof DeliveryError ? err : new DeliveryError(`delivery failed: ${(err as Error).message}`, true);
      const reason = (e.message.split('\n')[0] ?? '').slice(0, MAX_ERROR);
      if (!e.retryable || attempts >= this.config.delivery.max_attempts) {
        await this.write(
          `UPDATE alert_outbox SET state = 'dead', attempts = ${attempts}, last_error = ${sqlString(reason)}, updated_at = now() WHERE ${where}`,
        );
        this.counts.dead++;
        this.log.error('Alert delivery failed for good; it is a dead letter (auditship status).', { ...fields, reason });
        return;
      }
      const { backoff_initial_ms: initial, backoff_max_ms: max } = this.config.delivery;
      const base = Math.min(max, initial * 2 ** (attempts - 1));
      const delay = Math.max(Math.round(base * (0.5 + Math.random() / 2)), Math.min(e.retryAfterMs ?? 0, max));
      await this.write(`UPDATE alert_outbox SET attempts = ${attempts}, last_error = ${sqlString(reason)}, updated_at = now(),
        next_attempt_at = now() + to_milliseconds(${delay}) WHERE ${where}`);
      this.counts.retried++;
      this.log.info('Alert delivery failed; retrying.', { ...fields, reason, retryInMs: delay });
      return;
    }
    await this.write(`UPDATE alert_outbox SET state = 'delivered', attempts = ${attempts}, last_error = NULL, delivered_at = now(), updated_at = now()
      WHERE ${where}`);
    this.counts.delivered++;
    this.log.info('Alert delivered.', fields);
  }

  /** Writes an outcome back; a failure leaves the row pending (delivered again, with the same id). */
  private async write(sql: string): Promise<void> {
    try {
      await this.conn.run(sql);
    } catch (err) {
      this.log.warn('An alert delivery outcome could not be written to the store; the delivery is repeated.', { reason: (err as Error).message });
    }
  }
}
