/**
 * What `auditship status` and the UI read of alerts: counts per delivery state, the dead letters, and the fired
 * alerts newest first with the state of each delivery (cursor pagination). Fixed SQL with bound parameters over
 * any QueryRunner: a file opened read-only, or the read socket of the process writing it.
 */
import type { QueryRunner } from '../query/queries.js';
import { ALERT_COLUMNS, alertMessage, storedAlertOf } from './message.js';

export interface AlertCounts {
  pending: number;
  delivered: number;
  dead: number;
}

export interface DeadLetter {
  rule: string;
  destination: string;
  attempts: number;
  /** The last error's first line. */
  last_error: string | null;
  fired_at: string;
  dead_at: string;
}

export interface DeliveryState {
  destination: string;
  state: 'pending' | 'delivered' | 'dead';
  attempts: number;
  last_error: string | null;
  next_attempt_at: string | null;
  delivered_at: string | null;
}

export interface AlertView {
  id: string;
  rule: string;
  source: string;
  pipeline: string;
  server: string | null;
  key: string | null;
  title: string;
  text: string;
  fired_at: string;
  matched: number;
  first_event_time: string | null;
  last_event_time: string | null;
  deliveries: DeliveryState[];
}

export interface AlertPage {
  alerts: AlertView[];
  /** Pass as `after` for the next (older) page; null at the end. */
  next: string | null;
}

const ISO = (col: string) => `strftime(${col}, '%Y-%m-%dT%H:%M:%S.%gZ')`;

/** Thrown for a malformed cursor (the UI answers 400). */
export class AlertInputError extends Error {}

export class AlertQueries {
  constructor(private readonly db: QueryRunner) {}

  /** Whether the store has alert tables at all (a store no rule ever wrote has none). */
  async present(): Promise<boolean> {
    const r = await this.db.all(`SELECT count(*)::INTEGER AS n FROM information_schema.tables WHERE table_name = 'alert_outbox'`);
    return Number(r[0]?.['n'] ?? 0) > 0;
  }

  async counts(): Promise<AlertCounts> {
    const r = await this.db.all(`SELECT state, count(*)::DOUBLE AS n FROM alert_outbox GROUP BY state`);
    const out: AlertCounts = { pending: 0, delivered: 0, dead: 0 };
    for (const row of r) if (String(row['state']) in out) out[String(row['state']) as keyof AlertCounts] = Number(row['n']);
    return out;
  }

  async deadLetters(limit = 50): Promise<DeadLetter[]> {
    const r = await this.db.all(
      `SELECT a.rule, o.destination, o.attempts, o.last_error, ${ISO('a.fired_at')} AS fired_at, ${ISO('o.updated_at')} AS dead_at
       FROM alert_outbox AS o JOIN alerts AS a ON a.alert_id = o.alert_id WHERE o.state = 'dead'
       ORDER BY o.updated_at DESC, o.alert_id LIMIT ${Math.max(1, Math.min(limit, 1000))}`,
    );
    return r.map((x) => ({
      rule: String(x['rule']),
      destination: String(x['destination']),
      attempts: Number(x['attempts']),
      last_error: x['last_error'] === null || x['last_error'] === undefined ? null : String(x['last_error']).split('\n')[0]!,
      fired_at: String(x['fired_at']),
      dead_at: String(x['dead_at']),
    }));
  }

  /** Fired alerts, newest first, with their deliveries; `after` is a page's `next`. */
  async list(opts: { limit: number; after?: string | null }): Promise<AlertPage> {
    if (!(await this.present())) return { alerts: [], next: null };
    const params: (string | number)[] = [];
    let where = '';
    if (opts.after) {
      const [us, id] = decodeCursor(opts.after);
      params.push(us, id);
      where = `WHERE (epoch_us(a.fired_at) < $1 OR (epoch_us(a.fired_at) = $1 AND a.alert_id < $2))`;
    }
    const rows = await this.db.all(
      `SELECT ${ALERT_COLUMNS}, epoch_us(a.fired_at)::DOUBLE AS fired_us,
         (SELECT to_json(list({'destination': o.destination, 'state': o.state, 'attempts': o.attempts, 'last_error': o.last_error,
                                'next_attempt_at': ${ISO('o.next_attempt_at')}, 'delivered_at': ${ISO('o.delivered_at')}} ORDER BY o.destination))::VARCHAR
          FROM alert_outbox AS o WHERE o.alert_id = a.alert_id) AS deliveries
       FROM alerts AS a ${where}
       ORDER BY a.fired_at DESC, a.alert_id DESC LIMIT ${opts.limit + 1}`,
      params,
    );
    const page = rows.slice(0, opts.limit);
    const alerts = page.map((r): AlertView => {
      const a = storedAlertOf(r);
      const m = alertMessage(a);
      const deliveries = (JSON.parse(String(r['deliveries'] ?? '[]')) ?? []) as DeliveryState[];
      return {
        id: a.alert_id,
        rule: a.rule,
        source: a.source,
        pipeline: a.pipeline,
        server: a.server,
        key: a.group_key,
        title: m.title,
        text: m.text,
        fired_at: a.fired_at,
        matched: a.matched,
        first_event_time: a.first_event_time,
        last_event_time: a.last_event_time,
        deliveries: deliveries.map((d) => ({ ...d, last_error: d.last_error === null ? null : String(d.last_error).split('\n')[0]! })),
      };
    });
    const last = page.at(-1);
    return { alerts, next: rows.length > opts.limit && last ? encodeCursor([Number(last['fired_us']), String(last['alert_id'])]) : null };
  }
}

function encodeCursor(c: [number, string]): string {
  return Buffer.from(JSON.stringify(c)).toString('base64url');
}

function decodeCursor(s: string): [number, string] {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(s, 'base64url').toString('utf8'));
  } catch {
    throw new AlertInputError('after must be a cursor from a previous page (`next`)');
  }
  if (!Array.isArray(v) || v.length !== 2 || !Number.isSafeInteger(v[0]) || typeof v[1] !== 'string' || !/^[0-9a-f]{64}$/.test(v[1]))
    throw new AlertInputError('after must be a cursor from a previous page (`next`)');
  return v as [number, string];
}
