/**
 * A generated PostgreSQL 15 csvlog for the UI tests: several servers' worth of sessions by several users
 * on several databases, with pgaudit entries of every class (READ, WRITE, DDL, ROLE, FUNCTION, MISC),
 * connection and disconnection records, statements that fail (an ERROR after the audit entry, with the
 * statement in the `query` column as log_min_error_statement writes it) and failed logins (FATAL 28P01).
 * Deterministic for a seed; the returned counts are what the UI should find.
 */
import { csvText, pgauditField, pgLogTime, Rng } from '../helpers/csvlog-gen.js';

interface Kind {
  class: string;
  command: string;
  objectType: string | null;
  object: string | null;
  statement: (n: number) => string;
  /** SQLSTATE and message when this statement fails, and how often. */
  failure?: { sqlstate: string; message: string; share: number };
}

const KINDS: Record<string, Kind> = {
  readAccounts: {
    class: 'READ',
    command: 'SELECT',
    objectType: 'TABLE',
    object: 'public.accounts',
    statement: (n) => `SELECT id, owner, balance FROM public.accounts WHERE id = ${n}`,
  },
  readOrders: {
    class: 'READ',
    command: 'SELECT',
    objectType: 'TABLE',
    object: 'sales.orders',
    statement: (n) => `SELECT * FROM sales.orders WHERE customer_id = ${n} ORDER BY placed_at DESC LIMIT 20`,
  },
  readSalaries: {
    class: 'READ',
    command: 'SELECT',
    objectType: 'TABLE',
    object: 'hr.salaries',
    statement: (n) => `SELECT employee_id, amount FROM hr.salaries WHERE employee_id = ${n}`,
    failure: { sqlstate: '42501', message: 'permission denied for table salaries', share: 0.5 },
  },
  insertOrder: {
    class: 'WRITE',
    command: 'INSERT',
    objectType: 'TABLE',
    object: 'sales.orders',
    statement: (n) => `INSERT INTO sales.orders (id, customer_id, total) VALUES (${n}, ${n % 97}, ${(n * 7) % 1000}.50)`,
    failure: { sqlstate: '23505', message: 'duplicate key value violates unique constraint "orders_pkey"', share: 0.05 },
  },
  updateAccount: {
    class: 'WRITE',
    command: 'UPDATE',
    objectType: 'TABLE',
    object: 'public.accounts',
    statement: (n) => `UPDATE public.accounts SET balance = balance - 10 WHERE id = ${n}`,
  },
  deleteSession: {
    class: 'WRITE',
    command: 'DELETE',
    objectType: 'TABLE',
    object: 'public.web_sessions',
    statement: (n) => `DELETE FROM public.web_sessions WHERE expires_at < now() - interval '${n % 30} days'`,
  },
  createTable: {
    class: 'DDL',
    command: 'CREATE TABLE',
    objectType: 'TABLE',
    object: null,
    statement: (n) => `CREATE TABLE public.import_${n} (id bigint PRIMARY KEY, payload jsonb)`,
  },
  alterTable: {
    class: 'DDL',
    command: 'ALTER TABLE',
    objectType: 'TABLE',
    object: 'sales.orders',
    statement: (n) => `ALTER TABLE sales.orders ADD COLUMN IF NOT EXISTS note_${n % 5} text`,
  },
  grant: { class: 'ROLE', command: 'GRANT', objectType: null, object: null, statement: () => 'GRANT SELECT ON sales.orders TO report_ro' },
  createRole: {
    class: 'ROLE',
    command: 'CREATE ROLE',
    objectType: null,
    object: null,
    statement: (n) => `CREATE ROLE temp_user_${n} LOGIN PASSWORD <REDACTED>`,
  },
  callFunction: {
    class: 'FUNCTION',
    command: 'EXECUTE',
    objectType: 'FUNCTION',
    object: 'public.calc_bonus',
    statement: (n) => `SELECT public.calc_bonus(${n})`,
  },
  setPath: { class: 'MISC', command: 'SET', objectType: null, object: null, statement: () => 'SET search_path = sales, public' },
  vacuum: { class: 'MISC', command: 'VACUUM', objectType: null, object: null, statement: () => 'VACUUM (ANALYZE) sales.orders' },
};

interface Profile {
  user: string;
  database: string;
  app: string;
  client: string;
  kinds: (keyof typeof KINDS)[];
}

const PROFILES: Profile[] = [
  {
    user: 'alice',
    database: 'appdb',
    app: 'app-web',
    client: '10.0.1.10',
    kinds: ['readAccounts', 'readAccounts', 'updateAccount', 'readOrders', 'deleteSession', 'callFunction'],
  },
  {
    user: 'bob',
    database: 'sales',
    app: 'psql',
    client: '10.0.1.22',
    kinds: ['readOrders', 'insertOrder', 'insertOrder', 'alterTable', 'setPath', 'readAccounts'],
  },
  { user: 'carol', database: 'hr', app: 'pgAdmin 4', client: '10.0.2.5', kinds: ['readSalaries', 'readAccounts', 'callFunction', 'setPath'] },
  {
    user: 'etl_loader',
    database: 'sales',
    app: 'etl "loader"',
    client: '10.0.3.40',
    kinds: ['insertOrder', 'insertOrder', 'insertOrder', 'createTable', 'vacuum'],
  },
  { user: 'report_ro', database: 'sales', app: 'report, nightly', client: '10.0.3.41', kinds: ['readOrders', 'readOrders', 'readSalaries'] },
  { user: 'postgres', database: 'postgres', app: 'psql', client: '127.0.0.1', kinds: ['grant', 'createRole', 'createTable', 'vacuum', 'setPath'] },
];

export interface WorkloadCounts {
  audit: number;
  sessions: number;
  errors: number;
  logonFailures: number;
  firstMs: number;
  lastMs: number;
}

export interface WorkloadOptions {
  seed?: number;
  startMs?: number;
  /** Sessions to generate (each 3-20 audit entries). */
  sessions?: number;
  /** Spread of the sessions in time. */
  spanMs?: number;
  /** First session number (distinct workloads never share a session id). */
  sessionBase?: number;
}

/** The csvlog text and its counts. */
export function generateWorkload(options: WorkloadOptions = {}): { csv: string; counts: WorkloadCounts } {
  const r = new Rng(options.seed ?? 7);
  const start = options.startMs ?? Date.UTC(2026, 2, 1, 0, 0, 0, 0);
  const sessions = options.sessions ?? 300;
  const span = options.spanMs ?? 3 * 86400e3;
  const out: string[] = [];
  const counts: WorkloadCounts = { audit: 0, sessions: 0, errors: 0, logonFailures: 0, firstMs: Infinity, lastMs: -Infinity };
  let serial = 1000;
  let vx = 1;
  let t = start;
  for (let i = 0; i < sessions; i++) {
    t += Math.max(1000, Math.round((span / sessions) * (0.5 + r.float())));
    const sessionNo = (options.sessionBase ?? 0) + i + 1;
    const pid = 20000 + (sessionNo % 40000);
    const startSec = Math.floor(t / 1000);
    const sid = `${startSec.toString(16)}.${pid.toString(16)}`;
    const port = r.int(30000, 60000);
    let line = 0;
    const row = (
      ms: number,
      user: string | null,
      db: string | null,
      client: string,
      tag: string,
      vxid: string,
      severity: string,
      sqlstate: string,
      message: string,
      opts: { detail?: string; query?: string; app?: string; backend?: string } = {},
    ) => {
      line++;
      counts.firstMs = Math.min(counts.firstMs, ms);
      counts.lastMs = Math.max(counts.lastMs, ms);
      out.push(
        [
          pgLogTime(ms),
          user === null ? '' : csvText(user),
          db === null ? '' : csvText(db),
          String(pid),
          csvText(`${client}:${port}`),
          sid,
          String(line),
          csvText(tag),
          pgLogTime(startSec * 1000, false),
          vxid,
          '0',
          severity,
          sqlstate,
          csvText(message),
          opts.detail === undefined ? '' : csvText(opts.detail),
          '',
          '',
          '',
          '',
          opts.query === undefined ? '' : csvText(opts.query),
          '',
          '',
          csvText(opts.app ?? ''),
          csvText(opts.backend ?? 'client backend'),
          '',
          '0',
        ].join(',') + '\n',
      );
    };

    // Now and then a failed login instead of a session.
    if (r.chance(0.08)) {
      const who = r.pick(['mallory', 'bob', 'admin', 'root']);
      const from = r.pick(['203.0.113.7', '203.0.113.9', '10.0.1.22']);
      row(t, null, null, from, '', '', 'LOG', '00000', `connection received: host=${from} port=${port}`, { backend: 'not initialized' });
      row(t + 3, who, 'appdb', from, 'authentication', `${(vx++ % 90) + 3}/1`, 'FATAL', '28P01', `password authentication failed for user "${who}"`, {
        detail: `Connection matched pg_hba.conf line 99: "host all all 0.0.0.0/0 scram-sha-256"`,
      });
      counts.logonFailures++;
      continue;
    }

    const p = r.pick(PROFILES);
    counts.sessions++;
    row(t, null, null, p.client, '', '', 'LOG', '00000', `connection received: host=${p.client} port=${port}`, { backend: 'not initialized' });
    row(
      t + 2,
      p.user,
      p.database,
      p.client,
      'authentication',
      `3/${vx}`,
      'LOG',
      '00000',
      `connection authorized: user=${p.user} database=${p.database} application_name=${p.app}`,
      { app: p.app },
    );
    let ms = t + 5;
    let statementId = 0;
    const n = r.int(3, 20);
    for (let k = 0; k < n; k++) {
      ms += r.int(5, 4000);
      const kind = KINDS[r.pick(p.kinds)]!;
      statementId++;
      serial++;
      const statement = kind.statement(serial);
      const object = kind.object ?? (kind.command === 'CREATE TABLE' ? `public.import_${serial}` : null);
      const vxid = `3/${++vx}`;
      const message = `AUDIT: SESSION,${statementId},1,${kind.class},${kind.command},${kind.objectType ?? ''},${pgauditField(object)},${pgauditField(statement)},<none>`;
      row(ms, p.user, p.database, p.client, kind.command, vxid, 'LOG', '00000', message, { app: p.app });
      counts.audit++;
      const fails = kind.failure && (p.user === 'report_ro' || kind.failure.sqlstate !== '42501') && r.chance(kind.failure.share);
      if (fails) {
        ms += 1;
        row(ms, p.user, p.database, p.client, kind.command, vxid, 'ERROR', kind.failure!.sqlstate, kind.failure!.message, { query: statement, app: p.app });
        counts.errors++;
      }
    }
    ms += r.int(10, 2000);
    const dur = ms - startSec * 1000;
    const hms = `${Math.floor(dur / 3600e3)}:${String(Math.floor(dur / 60e3) % 60).padStart(2, '0')}:${String(Math.floor(dur / 1000) % 60).padStart(2, '0')}.${String(dur % 1000).padStart(3, '0')}`;
    row(
      ms,
      p.user,
      p.database,
      p.client,
      'idle',
      '',
      'LOG',
      '00000',
      `disconnection: session time: ${hms} user=${p.user} database=${p.database} host=${p.client} port=${port}`,
      { app: p.app },
    );
    t = ms;
  }
  return { csv: out.join(''), counts };
}
