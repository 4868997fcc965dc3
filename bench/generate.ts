/**
 * Deterministic generator of PostgreSQL 15 csvlog files carrying pgaudit 1.7 records.
 *
 * Output follows csvlog.c (write_csvlog) byte for byte in structure:
 *   - 26 columns, no header, one record per "\n" (records may span lines inside quotes);
 *   - text columns always quoted with doubled inner quotes (appendCSVLiteral), NULL = empty;
 *   - numbers, log_time, session_start_time, severity and SQLSTATE unquoted;
 * and the pgaudit message follows pgaudit.c (append_valid_csv): a field is quoted only when it
 * contains a comma, a double quote, CR or LF; the parameter list is nested CSV.
 *
 * Workload: pgbench TPC-B sessions (prepared and simple protocol), an OLTP application pool
 * (log_relation + log_rows on: 10 pgaudit fields), short-lived web sessions, reporting queries
 * (multi-line CTEs, occasional 10-100 KB statements), an ETL job (multi-row INSERTs with JSON),
 * and administrators (DDL, ROLE, MISC, DO blocks), plus ~5 % non-AUDIT records: connection
 * received/authorized, disconnection, ERRORs with SQLSTATE/detail/query, checkpoints, autovacuum.
 *
 * CLI:
 *   node --import tsx bench/generate.ts --out DIR [--events N] [--file-mb 64] [--seed N] [--start ISO]
 *   node --import tsx bench/generate.ts --append FILE --events N [--seed N]
 * Both print one JSON line.
 */
import { open, mkdir, stat, utimes } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

export const GENERATOR_VERSION = 4;

export interface GenerateOptions {
  /** Number of AUDIT records to write (exact). */
  events: number;
  /** Rotate to a new file once the current one reaches this many bytes (default 64 MiB). */
  fileBytes?: number;
  /** log_time of the first record (default 2024-05-01T12:00:00Z). */
  startTime?: Date;
  /** PRNG seed (default 42). */
  seed?: number;
  /** Mean time between two log records in ms (default 0.45: ~2,000 events/s; 250 spreads 10 M over a month). */
  meanGapMs?: number;
}

export interface FileInfo {
  file: string;
  bytes: number;
  events: number;
  records: number;
}

export interface GenerateResult {
  files: string[];
  bytes: number;
  /** AUDIT records written. */
  events: number;
  /** All csvlog records written (AUDIT + other). */
  records: number;
  perFile: FileInfo[];
}

export interface AppendOptions {
  /** log_time of the first appended record (default: 1 s after the last record in the file). */
  startTime?: Date;
  /** PRNG seed (default derived from the file size and n). */
  seed?: number;
}

export interface AppendResult {
  file: string;
  /** Bytes appended. */
  bytes: number;
  events: number;
  records: number;
}

// ---------------------------------------------------------------------------------------------
// PRNG (sfc32 seeded through splitmix32) and helpers
// ---------------------------------------------------------------------------------------------

class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    let s = seed >>> 0;
    const next = (): number => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next();
    for (let i = 0; i < 12; i++) this.u32();
  }

  u32(): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) >>> 0;
    return t;
  }

  /** [0, 1) */
  float(): number {
    return this.u32() / 4294967296;
  }

  /** Integer in [lo, hi] inclusive. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.float() * (hi - lo + 1));
  }

  chance(p: number): boolean {
    return this.float() < p;
  }

  pick<T>(items: readonly T[]): T {
    const v = items[Math.floor(this.float() * items.length)];
    if (v === undefined) throw new Error('pick from empty list');
    return v;
  }

  /** Exponential with the given mean. */
  exp(mean: number): number {
    return -Math.log(1 - this.float()) * mean;
  }

  /** Signed 64-bit decimal string (query ids). */
  int64(): string {
    const hi = BigInt(this.u32());
    const lo = BigInt(this.u32());
    return BigInt.asIntN(64, (hi << 32n) | lo).toString();
  }
}

function pickWeighted<T>(rng: Rng, items: readonly (readonly [T, number])[]): T {
  let total = 0;
  for (const [, w] of items) total += w;
  let r = rng.float() * total;
  for (const [v, w] of items) {
    r -= w;
    if (r < 0) return v;
  }
  const last = items[items.length - 1];
  if (!last) throw new Error('pickWeighted from empty list');
  return last[0];
}

// ---------------------------------------------------------------------------------------------
// Quoting: csvlog.c appendCSVLiteral and pgaudit.c append_valid_csv
// ---------------------------------------------------------------------------------------------

/** csvlog.c appendCSVLiteral: NULL -> nothing; otherwise always quoted, quotes doubled. */
export function csvLiteral(s: string | null | undefined): string {
  if (s === null || s === undefined) return '';
  return '"' + (s.includes('"') ? s.replaceAll('"', '""') : s) + '"';
}

const NEEDS_QUOTE = /[",\r\n]/;

/** pgaudit.c append_valid_csv: quote only when the text holds a comma, quote, CR or LF. */
export function auditCsv(s: string | null | undefined): string {
  if (s === null || s === undefined || s === '') return '';
  if (!NEEDS_QUOTE.test(s)) return s;
  return '"' + s.replaceAll('"', '""') + '"';
}

/**
 * pgaudit PARAMETER field: each value through append_valid_csv (NULL = empty slot), joined by
 * commas, the whole list through append_valid_csv again. Zero parameters -> `<none>`.
 */
export function auditParams(params: readonly (string | null)[] | 'not logged'): string {
  if (params === 'not logged') return '<not logged>';
  if (params.length === 0) return '<none>';
  let s = '';
  for (let i = 0; i < params.length; i++) {
    if (i > 0) s += ',';
    const p = params[i];
    if (p !== null && p !== undefined) s += auditCsv(p);
  }
  return auditCsv(s);
}

// ---------------------------------------------------------------------------------------------
// Timestamps as elog.c formats them (log_timezone = UTC)
// ---------------------------------------------------------------------------------------------

function pad2(n: number): string {
  return n < 10 ? '0' + n : String(n);
}

function pad3(n: number): string {
  return n < 10 ? '00' + n : n < 100 ? '0' + n : String(n);
}

function formatSecond(sec: number): string {
  const d = new Date(sec * 1000);
  return (
    d.getUTCFullYear() +
    '-' +
    pad2(d.getUTCMonth() + 1) +
    '-' +
    pad2(d.getUTCDate()) +
    ' ' +
    pad2(d.getUTCHours()) +
    ':' +
    pad2(d.getUTCMinutes()) +
    ':' +
    pad2(d.getUTCSeconds())
  );
}

class TimeFormatter {
  private sec = Number.NaN;
  private prefix = '';

  /** `2024-05-01 12:00:00.123 UTC` */
  logTime(ms: number): string {
    const whole = Math.floor(ms);
    const sec = Math.floor(whole / 1000);
    if (sec !== this.sec) {
      this.sec = sec;
      this.prefix = formatSecond(sec);
    }
    return this.prefix + '.' + pad3(whole - sec * 1000) + ' UTC';
  }
}

/** `2024-05-01 11:59:58 UTC` (session_start_time has no fraction). */
function startTimeString(sec: number): string {
  return formatSecond(sec) + ' UTC';
}

/** PostgreSQL default log_filename postgresql-%Y-%m-%d_%H%M%S with .csv. */
export function logFileName(ms: number): string {
  const d = new Date(Math.floor(ms / 1000) * 1000);
  return (
    'postgresql-' +
    d.getUTCFullYear() +
    '-' +
    pad2(d.getUTCMonth() + 1) +
    '-' +
    pad2(d.getUTCDate()) +
    '_' +
    pad2(d.getUTCHours()) +
    pad2(d.getUTCMinutes()) +
    pad2(d.getUTCSeconds()) +
    '.csv'
  );
}

// ---------------------------------------------------------------------------------------------
// csvlog record
// ---------------------------------------------------------------------------------------------

interface ProcInfo {
  user: string | null;
  db: string | null;
  pid: number;
  /** connection_from, e.g. 10.0.0.7:51234; null for background processes */
  from: string | null;
  sid: string;
  start: string;
  app: string | null;
  backendType: string;
}

interface LineFields {
  ps: string | null;
  vxid: string | null;
  xid: number;
  severity: string;
  state: string;
  message: string;
  detail?: string | null;
  hint?: string | null;
  context?: string | null;
  query?: string | null;
  queryPos?: number | null;
  queryId: string;
}

function csvlogRecord(time: string, p: ProcInfo, line: number, f: LineFields): string {
  // 1 log_time .. 26 query_id, exactly as write_csvlog() emits them.
  return (
    time +
    ',' +
    csvLiteral(p.user) +
    ',' +
    csvLiteral(p.db) +
    ',' +
    p.pid +
    ',' +
    csvLiteral(p.from) +
    ',' +
    p.sid +
    ',' +
    line +
    ',' +
    csvLiteral(f.ps) +
    ',' +
    p.start +
    ',' +
    (f.vxid ?? '') +
    ',' +
    f.xid +
    ',' +
    f.severity +
    ',' +
    f.state +
    ',' +
    csvLiteral(f.message) +
    ',' +
    csvLiteral(f.detail) +
    ',' +
    csvLiteral(f.hint) +
    ',' +
    /* internal_query, internal_query_pos */ ',' +
    ',' +
    csvLiteral(f.context) +
    ',' +
    csvLiteral(f.query) +
    ',' +
    (f.queryPos ?? '') +
    ',' +
    /* location (log_error_verbosity default) */ ',' +
    csvLiteral(p.app) +
    ',' +
    csvLiteral(p.backendType) +
    ',' +
    /* leader_pid */ ',' +
    f.queryId +
    '\n'
  );
}

// ---------------------------------------------------------------------------------------------
// Workload model
// ---------------------------------------------------------------------------------------------

type Kind = 'pgbench' | 'app' | 'web' | 'report' | 'etl' | 'admin';

interface KindSpec {
  user: string;
  db: string;
  apps: readonly string[];
  hostBase: number;
  hostCount: number;
  /** share of AUDIT events */
  weight: number;
  /** target number of concurrently open sessions */
  pool: number;
  /** audit events per session before disconnecting (Infinity = persistent) */
  life: readonly [number, number] | null;
  logParameter: boolean;
  logRelation: boolean;
  logRows: boolean;
  ssl: boolean;
}

const KINDS: Record<Kind, KindSpec> = {
  pgbench: {
    user: 'bench',
    db: 'pgbench',
    apps: ['pgbench'],
    hostBase: 20,
    hostCount: 4,
    weight: 0.62,
    pool: 32,
    life: null,
    logParameter: true,
    logRelation: false,
    logRows: false,
    ssl: false,
  },
  app: {
    user: 'app',
    db: 'appdb',
    apps: ['orders-api', 'billing-worker'],
    hostBase: 30,
    hostCount: 12,
    weight: 0.21,
    pool: 20,
    life: [300, 3000],
    logParameter: true,
    logRelation: true,
    logRows: true,
    ssl: true,
  },
  web: {
    user: 'web',
    db: 'appdb',
    apps: ['checkout-web'],
    hostBase: 50,
    hostCount: 8,
    weight: 0.1,
    pool: 10,
    life: [1, 6],
    logParameter: true,
    logRelation: false,
    logRows: false,
    ssl: true,
  },
  report: {
    user: 'analyst',
    db: 'appdb',
    apps: ['Metabase', 'psql'],
    hostBase: 70,
    hostCount: 3,
    weight: 0.025,
    pool: 3,
    life: [20, 200],
    logParameter: false,
    logRelation: true,
    logRows: false,
    ssl: true,
  },
  etl: {
    user: 'etl',
    db: 'appdb',
    apps: ['airflow'],
    hostBase: 80,
    hostCount: 2,
    weight: 0.02,
    pool: 2,
    life: [50, 400],
    logParameter: true,
    logRelation: true,
    logRows: true,
    ssl: false,
  },
  admin: {
    user: 'postgres',
    db: 'appdb',
    apps: ['psql', 'flyway'],
    hostBase: 90,
    hostCount: 2,
    weight: 0.025,
    pool: 1,
    life: [5, 40],
    logParameter: true,
    logRelation: true,
    logRows: false,
    ssl: true,
  },
};

const KIND_WEIGHTS: readonly (readonly [Kind, number])[] = (Object.keys(KINDS) as Kind[]).map((k) => [k, KINDS[k].weight] as const);

/** One AUDIT entry (one log line) of a statement. */
interface AuditEntry {
  type?: 'SESSION' | 'OBJECT';
  cls: string;
  cmd: string;
  objType?: string;
  objName?: string;
  /** substatement id (default 1) */
  sub?: number;
  /** statement text override for substatements (function bodies) */
  text?: string;
  /** parameters override for substatements */
  params?: readonly (string | null)[];
  rows?: number;
}

/** One top-level statement as a client sends it. */
interface Stmt {
  text: string;
  params: readonly (string | null)[];
  /** ps display / command tag */
  tag: string;
  entries: readonly AuditEntry[];
  /** number of entries to keep when log_relation is off (default: collapse to one without object) */
  xactStart?: boolean;
  xactEnd?: boolean;
  writes?: boolean;
  /** query id fingerprint key (same text shape -> same id) */
  shape: string;
  /** optional ERROR to raise after the audit lines */
  error?: ErrorSpec;
}

interface ErrorSpec {
  state: string;
  message: string;
  detail?: string;
  hint?: string;
  context?: string;
  queryPos?: number;
}

interface Session {
  kind: Kind;
  spec: KindSpec;
  proc: ProcInfo;
  line: number;
  backendId: number;
  lxid: number;
  stmtId: number;
  startMs: number;
  /** AUDIT events left before disconnecting */
  left: number;
  queue: PendingLine[];
  simpleProtocol: boolean;
  selectOnly: boolean;
}

type PendingLine = (time: string) => { text: string; audit: boolean };

// ---------------------------------------------------------------------------------------------
// Statement vocabularies
// ---------------------------------------------------------------------------------------------

const FIRST = ['Anna', 'Jürgen', 'Zoë', 'María José', "D'Arcy", 'Ólafur', 'Li', 'Søren', 'Chloé', 'Ahmed', 'Priya', 'Tomás', '美咲'];
const LAST = ['Müller', "O'Brien", 'García', 'Nguyen', 'Smith', 'van der Berg', 'Kowalski', 'Ørsted', 'Dubois', '山田', 'Silva'];
const STREETS = ['12 Rue "Victor Hugo"', 'Hauptstraße 5', '221B Baker Street', 'Av. Paulista, 1000', '1-2-3 Shibuya', 'Flat 4, 10 Downing St'];
const CITIES = ['Paris', 'Berlin', 'London', 'São Paulo', 'Tokyo', 'Reykjavík'];
const SKUS = ['A-100', 'B-200', 'C-300', 'D-410', 'E-512', 'F-777', 'G-901'];
const STATUSES = ['pending', 'paid', 'shipped', 'delivered', 'cancelled', 'refunded'];
const NOTES = [
  'Leave at the door, please',
  'Call "Reception" first',
  'Fragile: glass, handle with care',
  'Customer said: "it\'s urgent"',
  'Line one\nLine two',
  'Gift wrap; message: "Happy birthday, Sam!"',
  'n/a',
  '',
];

function qlit(s: string): string {
  return "'" + s.replaceAll("'", "''") + "'";
}

function money(rng: Rng): string {
  return String(rng.int(100, 500000));
}

function email(rng: Rng): string {
  return `user${rng.int(1, 999999)}@example.${rng.pick(['com', 'org', 'de', 'fr'])}`;
}

function fullName(rng: Rng): string {
  return rng.pick(FIRST) + ' ' + rng.pick(LAST);
}

function isoTs(rng: Rng, baseMs: number): string {
  return new Date(baseMs - rng.int(0, 86400000 * 30)).toISOString().replace('T', ' ').replace('Z', '+00');
}

const rel = (name: string, objType = 'TABLE'): AuditEntry => ({ cls: '', cmd: '', objType, objName: name });

/** READ/WRITE entries with one line per relation (log_relation=on). */
function relEntries(cls: string, cmd: string, rels: readonly string[], rows?: number): AuditEntry[] {
  return rels.map((r) => ({ ...rel(r), cls, cmd, rows }));
}

// --- pgbench (TPC-B like, scale 100) ---

function pgbenchTransaction(rng: Rng, simple: boolean, selectOnly: boolean): Stmt[] {
  const aid = String(rng.int(1, 10000000));
  const bid = String(rng.int(1, 100));
  const tid = String(rng.int(1, 1000));
  const delta = String(rng.int(-5000, 5000));
  const st = (shape: string, tag: string, cls: string, prepared: string, params: string[], subst: string, writes = false): Stmt => ({
    text: simple ? subst : prepared,
    params: simple ? [] : params,
    tag,
    entries: [{ cls, cmd: tag }],
    shape,
    writes,
  });
  if (selectOnly) {
    return [
      st(
        'pgb-sel',
        'SELECT',
        'READ',
        'SELECT abalance FROM pgbench_accounts WHERE aid = $1;',
        [aid],
        `SELECT abalance FROM pgbench_accounts WHERE aid = ${aid};`,
      ),
    ];
  }
  return [
    { ...st('pgb-begin', 'BEGIN', 'MISC', 'BEGIN;', [], 'BEGIN;'), xactStart: true },
    st(
      'pgb-upd-acc',
      'UPDATE',
      'WRITE',
      'UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2;',
      [delta, aid],
      `UPDATE pgbench_accounts SET abalance = abalance + ${delta} WHERE aid = ${aid};`,
      true,
    ),
    st(
      'pgb-sel',
      'SELECT',
      'READ',
      'SELECT abalance FROM pgbench_accounts WHERE aid = $1;',
      [aid],
      `SELECT abalance FROM pgbench_accounts WHERE aid = ${aid};`,
    ),
    st(
      'pgb-upd-tel',
      'UPDATE',
      'WRITE',
      'UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2;',
      [delta, tid],
      `UPDATE pgbench_tellers SET tbalance = tbalance + ${delta} WHERE tid = ${tid};`,
      true,
    ),
    st(
      'pgb-upd-br',
      'UPDATE',
      'WRITE',
      'UPDATE pgbench_branches SET bbalance = bbalance + $1 WHERE bid = $2;',
      [delta, bid],
      `UPDATE pgbench_branches SET bbalance = bbalance + ${delta} WHERE bid = ${bid};`,
      true,
    ),
    st(
      'pgb-ins',
      'INSERT',
      'WRITE',
      'INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP);',
      [tid, bid, aid, delta],
      `INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (${tid}, ${bid}, ${aid}, ${delta}, CURRENT_TIMESTAMP);`,
      true,
    ),
    { ...st('pgb-end', 'COMMIT', 'MISC', 'END;', [], 'END;'), xactEnd: true },
  ];
}

// --- application (OLTP) ---

function appStatement(rng: Rng, nowMs: number): Stmt {
  const cust = String(rng.int(1, 2000000));
  const order = String(rng.int(1, 50000000));
  const r = rng.int(0, 99);
  if (r < 22) {
    return {
      text: 'SELECT id, status, total_cents, created_at\n  FROM public.orders\n WHERE customer_id = $1\n ORDER BY created_at DESC LIMIT 20',
      params: [cust],
      tag: 'SELECT',
      entries: relEntries('READ', 'SELECT', ['public.orders'], rng.int(0, 20)),
      shape: 'app-orders-by-cust',
    };
  }
  if (r < 36) {
    return {
      text:
        '/* orders-api: OrderRepository.findWithItems */\n' +
        'SELECT o.id, o.status, o.total_cents, i.sku, i.qty, i.price_cents\n' +
        '  FROM public.orders o\n' +
        '  JOIN public.order_items i ON i.order_id = o.id\n' +
        ' WHERE o.id = $1\n' +
        ' ORDER BY i.line_no',
      params: [order],
      tag: 'SELECT',
      entries: relEntries('READ', 'SELECT', ['public.orders', 'public.order_items'], rng.int(1, 8)),
      shape: 'app-order-items',
    };
  }
  if (r < 46) {
    const name = fullName(rng);
    const addr = rng.pick(STREETS) + ',\n' + rng.pick(CITIES);
    const note = rng.chance(0.3) ? null : rng.pick(NOTES);
    return {
      text: 'INSERT INTO public.customers (email, full_name, address, notes) VALUES ($1, $2, $3, $4) RETURNING id',
      params: [email(rng), name, addr, note],
      tag: 'INSERT',
      entries: relEntries('WRITE', 'INSERT', ['public.customers'], 1),
      shape: 'app-ins-cust',
      writes: true,
      error: rng.chance(0.04)
        ? {
            state: '23505',
            message: 'duplicate key value violates unique constraint "customers_email_key"',
            detail: 'Key (email)=(' + email(rng) + ') already exists.',
          }
        : undefined,
    };
  }
  if (r < 56) {
    const status = rng.pick(STATUSES);
    const note = rng.pick(NOTES);
    return {
      text: `UPDATE public.orders SET status = ${qlit(status)}, note = ${qlit(note)}, updated_at = now() WHERE id = $1`,
      params: [order],
      tag: 'UPDATE',
      entries: relEntries('WRITE', 'UPDATE', ['public.orders'], rng.int(0, 1)),
      shape: 'app-upd-status-' + status,
      writes: true,
      error: rng.chance(0.01) ? { state: '40001', message: 'could not serialize access due to concurrent update' } : undefined,
    };
  }
  if (r < 63) {
    const skus = Array.from({ length: rng.int(1, 4) }, () => rng.pick(SKUS));
    return {
      text: 'DELETE FROM public.cart_items WHERE cart_id = $1 AND sku = ANY($2)',
      params: [String(rng.int(1, 900000)), '{' + skus.join(',') + '}'],
      tag: 'DELETE',
      entries: relEntries('WRITE', 'DELETE', ['public.cart_items'], skus.length),
      shape: 'app-del-cart',
      writes: true,
    };
  }
  if (r < 70) {
    const lines = rng.int(1, 4);
    const items: string[] = [];
    for (let i = 0; i < lines; i++) items.push(`($1, ${i + 1}, ${qlit(rng.pick(SKUS))}, ${rng.int(1, 5)}, ${money(rng)})`);
    return {
      text: '-- add items to order\nINSERT INTO public.order_items (order_id, line_no, sku, qty, price_cents)\nVALUES\n    ' + items.join(',\n    '),
      params: [order],
      tag: 'INSERT',
      entries: relEntries('WRITE', 'INSERT', ['public.order_items'], lines),
      shape: 'app-ins-items-' + lines,
      writes: true,
    };
  }
  if (r < 76) {
    // function call: READ of the SELECT, EXECUTE of the function, its inner statement
    return {
      text: 'SELECT public.apply_discount($1, $2)',
      params: [order, rng.pick(['WELCOME10', 'SUMMER,24', 'VIP "GOLD"', 'BF-2024'])],
      tag: 'SELECT',
      entries: [
        { cls: 'READ', cmd: 'SELECT', rows: 1 },
        { cls: 'FUNCTION', cmd: 'EXECUTE', objType: 'FUNCTION', objName: 'public.apply_discount', rows: 1 },
        {
          cls: 'WRITE',
          cmd: 'UPDATE',
          objType: 'TABLE',
          objName: 'public.orders',
          sub: 2,
          text: 'UPDATE orders SET discount_cents = total_cents * d.pct / 100\n      FROM discounts d WHERE d.code = p_code AND orders.id = p_order',
          params: [],
          rows: 1,
        },
      ],
      shape: 'app-apply-discount',
      writes: true,
    };
  }
  if (r < 80) {
    return {
      text: 'SELECT * FROM public."Order Items Archive" WHERE order_id = $1',
      params: [order],
      tag: 'SELECT',
      entries: relEntries('READ', 'SELECT', ['public."Order Items Archive"'], rng.int(0, 5)),
      shape: 'app-archive',
    };
  }
  if (r < 86) {
    const body = `Hello,\nI would like a refund for order #${order}, because "the box was damaged".\n-- ${fullName(rng)}`;
    return {
      text: `INSERT INTO public.support_tickets (customer_id, subject, body, created_at)\nVALUES ($1, 'Refund request, order ${order}', ${qlit(body)}, $2)`,
      params: [cust, isoTs(rng, nowMs)],
      tag: 'INSERT',
      entries: relEntries('WRITE', 'INSERT', ['public.support_tickets'], 1),
      shape: 'app-ticket',
      writes: true,
    };
  }
  if (r < 92) {
    return {
      text: 'SELECT c.id, c.email, c.full_name\n  FROM public.customers c\n WHERE c.id = $1',
      params: [cust],
      tag: 'SELECT',
      // pgaudit.role grants SELECT on customers to the auditor role: SESSION + OBJECT lines
      entries: [
        { cls: 'READ', cmd: 'SELECT', objType: 'TABLE', objName: 'public.customers', rows: 1 },
        { type: 'OBJECT', cls: 'READ', cmd: 'SELECT', objType: 'TABLE', objName: 'public.customers', rows: 1 },
      ],
      shape: 'app-cust',
    };
  }
  if (r < 96) {
    return {
      text: 'UPDATE public.customers\n   SET last_seen_at = now(),\n       preferences = preferences || $2::jsonb\n WHERE id = $1',
      params: [cust, `{"theme": "${rng.pick(['dark', 'light'])}", "lang": "${rng.pick(['de', 'fr', 'ja', 'pt-BR'])}"}`],
      tag: 'UPDATE',
      entries: relEntries('WRITE', 'UPDATE', ['public.customers'], 1),
      shape: 'app-prefs',
      writes: true,
    };
  }
  return {
    text: `SET statement_timeout = '${rng.pick(['5s', '30s', '2min'])}'`,
    params: [],
    tag: 'SET',
    entries: [{ cls: 'MISC', cmd: 'SET', rows: 0 }],
    shape: 'app-set',
  };
}

function appTransaction(rng: Rng, nowMs: number): Stmt[] {
  const n = rng.int(1, 6);
  const stmts: Stmt[] = [];
  for (let i = 0; i < n; i++) stmts.push(appStatement(rng, nowMs));
  if (n === 1 || rng.chance(0.3)) return stmts;
  return [
    { text: 'BEGIN', params: [], tag: 'BEGIN', entries: [{ cls: 'MISC', cmd: 'BEGIN', rows: 0 }], shape: 'begin', xactStart: true },
    ...stmts,
    { text: 'COMMIT', params: [], tag: 'COMMIT', entries: [{ cls: 'MISC', cmd: 'COMMIT', rows: 0 }], shape: 'commit', xactEnd: true },
  ];
}

// --- web (short sessions) ---

function webTransaction(rng: Rng, nowMs: number): Stmt[] {
  const r = rng.int(0, 9);
  const sessionToken = Array.from({ length: 4 }, () => rng.u32().toString(16)).join('');
  if (r < 5) {
    return [
      {
        text: 'SELECT id, user_id, expires_at\n  FROM public.web_sessions\n WHERE token = $1 AND expires_at > now()',
        params: [sessionToken],
        tag: 'SELECT',
        entries: [{ cls: 'READ', cmd: 'SELECT' }],
        shape: 'web-session',
      },
    ];
  }
  if (r < 8) {
    return [
      {
        text: 'SELECT p.sku, p.name, p.price_cents, s.qty\n  FROM public.products p\n  LEFT JOIN public.stock s USING (sku)\n WHERE p.sku = ANY($1)',
        params: ['{' + SKUS.slice(0, rng.int(1, SKUS.length)).join(',') + '}'],
        tag: 'SELECT',
        entries: [{ cls: 'READ', cmd: 'SELECT' }],
        shape: 'web-products',
      },
    ];
  }
  const cart = String(rng.int(1, 900000));
  return [
    { text: 'BEGIN', params: [], tag: 'BEGIN', entries: [{ cls: 'MISC', cmd: 'BEGIN' }], shape: 'begin', xactStart: true },
    {
      text: 'INSERT INTO public.cart_items (cart_id, sku, qty, added_at) VALUES ($1, $2, $3, $4) ON CONFLICT (cart_id, sku) DO UPDATE SET qty = cart_items.qty + EXCLUDED.qty',
      params: [cart, rng.pick(SKUS), String(rng.int(1, 3)), isoTs(rng, nowMs)],
      tag: 'INSERT',
      entries: [{ cls: 'WRITE', cmd: 'INSERT' }],
      shape: 'web-cart',
      writes: true,
      error: rng.chance(0.02)
        ? {
            state: '23503',
            message: 'insert or update on table "cart_items" violates foreign key constraint "cart_items_sku_fkey"',
            detail: 'Key (sku)=(Z-000) is not present in table "products".',
          }
        : undefined,
    },
    {
      text: 'UPDATE public.carts SET updated_at = now() WHERE id = $1',
      params: [cart],
      tag: 'UPDATE',
      entries: [{ cls: 'WRITE', cmd: 'UPDATE' }],
      shape: 'web-cart-touch',
      writes: true,
    },
    { text: 'COMMIT', params: [], tag: 'COMMIT', entries: [{ cls: 'MISC', cmd: 'COMMIT' }], shape: 'commit', xactEnd: true },
  ];
}

// --- reporting ---

function longInList(rng: Rng, targetBytes: number): string {
  const parts: string[] = [];
  let size = 0;
  let line: string[] = [];
  while (size < targetBytes) {
    const v = String(rng.int(1, 2000000));
    line.push(v);
    size += v.length + 2;
    if (line.length === 16) {
      parts.push('        ' + line.join(', '));
      line = [];
      size += 9;
    }
  }
  if (line.length) parts.push('        ' + line.join(', '));
  return parts.join(',\n');
}

function reportStatement(rng: Rng, longProb: number): Stmt {
  if (rng.chance(longProb)) {
    const target = rng.int(10000, 100000);
    return {
      text:
        '-- Metabase:: userID: 12 queryType: native queryHash: ' +
        rng.u32().toString(16) +
        '\nSELECT c.id, c.email, sum(o.total_cents) AS revenue\n  FROM public.customers c\n  JOIN public.orders o ON o.customer_id = c.id\n WHERE c.id IN (\n' +
        longInList(rng, target) +
        '\n )\n GROUP BY c.id, c.email\n ORDER BY revenue DESC',
      params: [],
      tag: 'SELECT',
      entries: relEntries('READ', 'SELECT', ['public.customers', 'public.orders']),
      shape: 'report-long',
    };
  }
  const r = rng.int(0, 3);
  if (r === 0) {
    return {
      text:
        '/* Metabase: dashboard "Revenue, by day" */\n' +
        'WITH daily AS (\n' +
        "    SELECT date_trunc('day', o.created_at) AS day,\n" +
        '           sum(o.total_cents) / 100.0 AS revenue,\n' +
        '           count(*) AS orders\n' +
        '      FROM public.orders o\n' +
        `     WHERE o.created_at >= now() - interval '${rng.int(7, 90)} days'\n` +
        "       AND o.status NOT IN ('cancelled', 'refunded')\n" +
        '     GROUP BY 1\n' +
        ')\n' +
        'SELECT day, revenue, orders,\n' +
        '       avg(revenue) OVER (ORDER BY day ROWS BETWEEN 6 PRECEDING AND CURRENT ROW) AS revenue_7d\n' +
        '  FROM daily\n' +
        ' ORDER BY day;',
      params: [],
      tag: 'SELECT',
      entries: relEntries('READ', 'SELECT', ['public.orders']),
      shape: 'report-daily',
      error: rng.chance(0.03) ? { state: '57014', message: 'canceling statement due to statement timeout' } : undefined,
    };
  }
  if (r === 1) {
    return {
      text:
        'SELECT p.sku,\n' +
        '       p.name,\n' +
        '       sum(i.qty) AS units, -- units sold\n' +
        "       string_agg(DISTINCT c.country, ', ') AS countries\n" +
        '  FROM public.order_items i\n' +
        '  JOIN public.products p ON p.sku = i.sku\n' +
        '  JOIN public.orders o ON o.id = i.order_id\n' +
        '  JOIN public.customers c ON c.id = o.customer_id\n' +
        ' GROUP BY p.sku, p.name\n' +
        ' ORDER BY units DESC\n' +
        ` LIMIT ${rng.int(10, 100)}`,
      params: [],
      tag: 'SELECT',
      entries: relEntries('READ', 'SELECT', ['public.order_items', 'public.products', 'public.orders', 'public.customers']),
      shape: 'report-top',
    };
  }
  if (r === 2) {
    return {
      text: `SELECT count(*) FROM public.orders WHERE status = ${qlit(rng.pick(STATUSES))}`,
      params: [],
      tag: 'SELECT',
      entries: relEntries('READ', 'SELECT', ['public.orders']),
      shape: 'report-count',
    };
  }
  return {
    text: `SELECT * FROM public.support_tickets WHERE body ILIKE '%refund%' AND subject LIKE 'Refund request, order%' ORDER BY created_at DESC LIMIT 50`,
    params: [],
    tag: 'SELECT',
    entries: relEntries('READ', 'SELECT', ['public.support_tickets']),
    shape: 'report-tickets',
    error: rng.chance(0.05)
      ? {
          state: '42703',
          message: 'column "body" does not exist',
          hint: 'Perhaps you meant to reference the column "support_tickets.body_text".',
          queryPos: 40,
        }
      : undefined,
  };
}

// --- ETL ---

function etlStatement(rng: Rng, nowMs: number, longProb: number): Stmt[] {
  if (rng.chance(longProb * 1.5)) {
    const target = rng.int(10000, 100000);
    const rows: string[] = [];
    let size = 0;
    let id = rng.int(1, 1e9);
    while (size < target) {
      const payload = JSON.stringify({
        page: rng.pick(['/', '/cart', '/checkout', '/search?q=a,b']),
        ref: rng.chance(0.5) ? null : 'https://example.com/?utm="x"',
        items: [rng.pick(SKUS), rng.pick(SKUS)],
      });
      const row = `  (${id++}, ${qlit(rng.pick(['click', 'view', 'purchase']))}, ${qlit(payload)}, ${qlit(isoTs(rng, nowMs))})`;
      rows.push(row);
      size += row.length + 2;
    }
    const n = rows.length;
    return [
      {
        text: 'INSERT INTO staging.events (id, kind, payload, created_at) VALUES\n' + rows.join(',\n') + '\nON CONFLICT (id) DO NOTHING',
        params: [],
        tag: 'INSERT',
        entries: relEntries('WRITE', 'INSERT', ['staging.events'], n),
        shape: 'etl-bulk',
        writes: true,
      },
    ];
  }
  const r = rng.int(0, 3);
  if (r === 0) {
    return [
      {
        text: 'COPY staging.events (id, kind, payload, created_at) FROM STDIN WITH (FORMAT csv, HEADER false)',
        params: [],
        tag: 'COPY',
        entries: relEntries('WRITE', 'COPY', ['staging.events'], rng.int(1000, 50000)),
        shape: 'etl-copy',
        writes: true,
      },
    ];
  }
  if (r === 1) {
    return [
      { text: 'BEGIN', params: [], tag: 'BEGIN', entries: [{ cls: 'MISC', cmd: 'BEGIN', rows: 0 }], shape: 'begin', xactStart: true },
      {
        text:
          'INSERT INTO public.events (id, kind, payload, created_at)\n' +
          'SELECT id, kind, payload::jsonb, created_at\n' +
          '  FROM staging.events\n' +
          ' WHERE created_at < $1\n' +
          'ON CONFLICT (id) DO NOTHING',
        params: [isoTs(rng, nowMs)],
        tag: 'INSERT',
        entries: [...relEntries('WRITE', 'INSERT', ['public.events'], rng.int(0, 50000)), ...relEntries('READ', 'SELECT', ['staging.events'], 0)],
        shape: 'etl-merge',
        writes: true,
      },
      {
        text: 'DELETE FROM staging.events WHERE created_at < $1',
        params: [isoTs(rng, nowMs)],
        tag: 'DELETE',
        entries: relEntries('WRITE', 'DELETE', ['staging.events'], rng.int(0, 50000)),
        shape: 'etl-del',
        writes: true,
      },
      { text: 'COMMIT', params: [], tag: 'COMMIT', entries: [{ cls: 'MISC', cmd: 'COMMIT', rows: 0 }], shape: 'commit', xactEnd: true },
    ];
  }
  if (r === 2) {
    return [{ text: 'ANALYZE public.events', params: [], tag: 'ANALYZE', entries: [{ cls: 'MISC', cmd: 'ANALYZE', rows: 0 }], shape: 'etl-analyze' }];
  }
  return [
    {
      text: 'SELECT max(created_at) FROM public.events WHERE kind = $1',
      params: [rng.pick(['click', 'view', 'purchase'])],
      tag: 'SELECT',
      entries: relEntries('READ', 'SELECT', ['public.events'], 1),
      shape: 'etl-max',
    },
  ];
}

// --- administration ---

function adminStatement(rng: Rng): Stmt[] {
  const r = rng.int(0, 11);
  const t = `tmp_import_${rng.int(1, 9999)}`;
  switch (r) {
    case 0:
      return [
        {
          text: `CREATE TABLE IF NOT EXISTS public.${t} (\n    id bigserial PRIMARY KEY,\n    label text NOT NULL DEFAULT 'n/a, "unset"',\n    created_at timestamptz DEFAULT now()\n)`,
          params: [],
          tag: 'CREATE TABLE',
          entries: [
            { cls: 'DDL', cmd: 'CREATE SEQUENCE', objType: 'SEQUENCE', objName: `public.${t}_id_seq` },
            { cls: 'DDL', cmd: 'CREATE TABLE', objType: 'TABLE', objName: `public.${t}` },
            { cls: 'DDL', cmd: 'CREATE INDEX', objType: 'INDEX', objName: `public.${t}_pkey` },
            { cls: 'DDL', cmd: 'ALTER SEQUENCE', objType: 'SEQUENCE', objName: `public.${t}_id_seq` },
          ],
          shape: 'ddl-create',
        },
      ];
    case 1:
      return [
        {
          text: `ALTER TABLE public.orders ADD COLUMN IF NOT EXISTS gift_note text`,
          params: [],
          tag: 'ALTER TABLE',
          entries: [{ cls: 'DDL', cmd: 'ALTER TABLE', objType: 'TABLE', objName: 'public.orders' }],
          shape: 'ddl-alter',
          error: rng.chance(0.2) ? { state: '55P03', message: 'canceling statement due to lock timeout' } : undefined,
        },
      ];
    case 2:
      return [
        {
          text: `CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_status_idx ON public.orders (status) WHERE status <> 'delivered'`,
          params: [],
          tag: 'CREATE INDEX',
          entries: [{ cls: 'DDL', cmd: 'CREATE INDEX', objType: 'INDEX', objName: 'public.orders_status_idx' }],
          shape: 'ddl-index',
        },
      ];
    case 3:
      return [
        {
          text: `DROP TABLE IF EXISTS public.${t}`,
          params: [],
          tag: 'DROP TABLE',
          entries: [{ cls: 'DDL', cmd: 'DROP TABLE', objType: 'TABLE', objName: `public.${t}` }],
          shape: 'ddl-drop',
        },
      ];
    case 4:
      return [
        {
          text: 'GRANT SELECT ON ALL TABLES IN SCHEMA public TO analyst',
          params: [],
          tag: 'GRANT',
          entries: [{ cls: 'ROLE', cmd: 'GRANT' }],
          shape: 'role-grant',
        },
      ];
    case 5:
      return [
        {
          text: 'REVOKE INSERT, UPDATE, DELETE ON public.customers FROM web',
          params: [],
          tag: 'REVOKE',
          entries: [{ cls: 'ROLE', cmd: 'REVOKE' }],
          shape: 'role-revoke',
        },
      ];
    case 6:
      return [
        {
          text: `CREATE ROLE "svc_report_${rng.int(1, 99)}" LOGIN IN ROLE analyst`,
          params: [],
          tag: 'CREATE ROLE',
          entries: [{ cls: 'ROLE', cmd: 'CREATE ROLE' }],
          shape: 'role-create',
        },
      ];
    case 7:
      return [
        { text: 'ALTER ROLE app SET pgaudit.log_rows = on', params: [], tag: 'ALTER ROLE', entries: [{ cls: 'ROLE', cmd: 'ALTER ROLE' }], shape: 'role-alter' },
      ];
    case 8:
      return [
        {
          text: 'VACUUM (VERBOSE, ANALYZE) public.pgbench_history',
          params: [],
          tag: 'VACUUM',
          entries: [{ cls: 'MISC', cmd: 'VACUUM' }],
          shape: 'misc-vacuum',
        },
      ];
    case 9:
      return [
        {
          text:
            "DO $$\nDECLARE\n    r record;\nBEGIN\n    -- archive old tickets, one by one\n    FOR r IN SELECT id FROM public.support_tickets WHERE created_at < now() - interval '1 year' LOOP\n" +
            "        RAISE NOTICE 'archiving %, \"%\"', r.id, 'ticket';\n    END LOOP;\nEND\n$$",
          params: [],
          tag: 'DO',
          entries: [
            { cls: 'FUNCTION', cmd: 'DO' },
            {
              cls: 'READ',
              cmd: 'SELECT',
              objType: 'TABLE',
              objName: 'public.support_tickets',
              sub: 2,
              text: "SELECT id FROM public.support_tickets WHERE created_at < now() - interval '1 year'",
            },
          ],
          shape: 'fn-do',
        },
      ];
    case 10:
      return [{ text: 'CHECKPOINT', params: [], tag: 'CHECKPOINT', entries: [{ cls: 'MISC', cmd: 'CHECKPOINT' }], shape: 'misc-checkpoint' }];
    default:
      return [
        {
          text: `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'web' AND state = 'idle in transaction' AND state_change < now() - interval '10 min'`,
          params: [],
          tag: 'SELECT',
          entries: [
            { cls: 'READ', cmd: 'SELECT' },
            { cls: 'FUNCTION', cmd: 'EXECUTE', objType: 'FUNCTION', objName: 'pg_catalog.pg_terminate_backend' },
          ],
          shape: 'admin-terminate',
        },
      ];
  }
}

// ---------------------------------------------------------------------------------------------
// Engine: interleaves sessions, assigns times, line numbers, xids
// ---------------------------------------------------------------------------------------------

interface EngineOptions {
  seed: number;
  startMs: number;
  /** true: every session connects inside the generated window (used for appends) */
  freshSessions: boolean;
  meanGapMs?: number;
}

/** Probability that a report/ETL statement is a 10-100 KB one; ~1 per 5,000 events overall. */
const LONG_PROB = 0.004;

class Engine {
  readonly rng: Rng;
  nowMs: number;
  private readonly tf = new TimeFormatter();
  private readonly sessions: Record<Kind, Session[]> = { pgbench: [], app: [], web: [], report: [], etl: [], admin: [] };
  private readonly pids = new Set<number>();
  private lastPid: number;
  private readonly queryIds = new Map<string, string>();
  private nextBackendId = 3;
  private xid: number;
  private readonly checkpointer: ProcInfo;
  private checkpointerLine = 0;
  private nextCheckpointMs: number;
  private nextAutovacMs: number;
  private readonly background: PendingLine[] = [];

  constructor(private readonly opts: EngineOptions) {
    this.rng = new Rng(opts.seed);
    this.nowMs = opts.startMs;
    this.xid = 7_000_000 + this.rng.int(0, 1_000_000);
    this.lastPid = this.rng.int(1000, 4_000_000);
    const postmasterStart = Math.floor(opts.startMs / 1000) - 86400 - this.rng.int(0, 86400);
    const ckptPid = this.newPid();
    this.checkpointer = {
      user: null,
      db: null,
      pid: ckptPid,
      from: null,
      sid: postmasterStart.toString(16) + '.' + ckptPid.toString(16),
      start: startTimeString(postmasterStart),
      app: '',
      backendType: 'checkpointer',
    };
    this.checkpointerLine = this.rng.int(100, 5000);
    this.nextCheckpointMs = opts.startMs + this.rng.int(10_000, 300_000);
    this.nextAutovacMs = opts.startMs + this.rng.int(1_000, 30_000);
    for (const k of Object.keys(KINDS) as Kind[]) {
      for (let i = 0; i < KINDS[k].pool; i++) this.openSession(k, !opts.freshSessions && KINDS[k].life === null);
    }
  }

  /**
   * Linux hands out PIDs in increasing order (other processes take some in between) and wraps at pid_max,
   * so a PID comes back only after the whole range went round — never within one second. A session_id is
   * (start second, PID): unique in real logs. (Version 3 drew PIDs at random and reused one within a second
   * once per ~16,000 sessions: two sessions with one session_id.)
   */
  private newPid(): number {
    for (;;) {
      this.lastPid += this.rng.int(1, 12);
      if (this.lastPid > 4194303) this.lastPid = 300 + this.rng.int(0, 99);
      const pid = this.lastPid;
      if (!this.pids.has(pid)) {
        this.pids.add(pid);
        return pid;
      }
    }
  }

  private queryId(shape: string): string {
    let id = this.queryIds.get(shape);
    if (id === undefined) {
      id = this.rng.int64();
      this.queryIds.set(shape, id);
    }
    return id;
  }

  /** Open a session; `preexisting` sessions connected before the window (no connection lines). */
  private openSession(kind: Kind, preexisting: boolean): void {
    const spec = KINDS[kind];
    const rng = this.rng;
    const pid = this.newPid();
    const startMs = preexisting ? this.nowMs - rng.int(2_000, 3_600_000) : this.nowMs;
    const startSec = Math.floor(startMs / 1000);
    const host = `10.0.0.${spec.hostBase + rng.int(0, spec.hostCount - 1)}`;
    const port = String(rng.int(32768, 60999));
    const app = rng.pick(spec.apps);
    const s: Session = {
      kind,
      spec,
      proc: {
        user: spec.user,
        db: spec.db,
        pid,
        from: `${host}:${port}`,
        sid: startSec.toString(16) + '.' + pid.toString(16),
        start: startTimeString(startSec),
        app,
        backendType: 'client backend',
      },
      line: preexisting ? rng.int(10, 200000) : 0,
      backendId: this.nextBackendId++,
      lxid: preexisting ? rng.int(10, 500000) : 1,
      stmtId: 0,
      startMs,
      left: spec.life ? rng.int(spec.life[0], spec.life[1]) : Number.POSITIVE_INFINITY,
      queue: [],
      simpleProtocol: kind === 'pgbench' && rng.chance(0.25),
      selectOnly: kind === 'pgbench' && rng.chance(0.15),
    };
    if (this.nextBackendId > 200) this.nextBackendId = 3;
    if (s.stmtId === 0 && preexisting) s.stmtId = rng.int(10, 100000);
    if (!preexisting && kind !== 'pgbench' && rng.chance(0.03)) {
      // A failed login first (a mistyped password, a stale secret): its own backend, FATAL 28P01.
      const fpid = this.newPid();
      const failed: ProcInfo = {
        user: spec.user,
        db: spec.db,
        pid: fpid,
        from: `${host}:${Number(port) - 1}`,
        sid: startSec.toString(16) + '.' + fpid.toString(16),
        start: startTimeString(startSec),
        app: '',
        backendType: 'client backend',
      };
      s.queue.push((time) => ({
        text: csvlogRecord(time, { ...failed, user: null, db: null, backendType: 'not initialized' }, 1, {
          ps: '',
          vxid: null,
          xid: 0,
          severity: 'LOG',
          state: '00000',
          message: `connection received: host=${host} port=${Number(port) - 1}`,
          queryId: '0',
        }),
        audit: false,
      }));
      s.queue.push((time) => ({
        text: csvlogRecord(time, failed, 2, {
          ps: 'authentication',
          vxid: `${s.backendId}/1`,
          xid: 0,
          severity: 'FATAL',
          state: '28P01',
          message: `password authentication failed for user "${spec.user}"`,
          detail: `Connection matched pg_hba.conf line 98: "hostssl all ${spec.user} 10.0.0.0/8 scram-sha-256"`,
          queryId: '0',
        }),
        audit: false,
      }));
    }
    if (!preexisting) {
      const received: ProcInfo = { ...s.proc, user: null, db: null, app: '', backendType: 'not initialized' };
      s.queue.push((time) => ({
        text: csvlogRecord(time, received, ++s.line, {
          ps: '',
          vxid: null,
          xid: 0,
          severity: 'LOG',
          state: '00000',
          message: `connection received: host=${host} port=${port}`,
          queryId: '0',
        }),
        audit: false,
      }));
      const ssl = spec.ssl ? ' SSL enabled (protocol=TLSv1.3, cipher=TLS_AES_256_GCM_SHA384, bits=256)' : '';
      s.queue.push((time) => ({
        text: csvlogRecord(time, { ...s.proc, app: '' }, ++s.line, {
          ps: 'authentication',
          vxid: `${s.backendId}/${s.lxid}`,
          xid: 0,
          severity: 'LOG',
          state: '00000',
          message: `connection authorized: user=${spec.user} database=${spec.db} application_name=${app}${ssl}`,
          queryId: '0',
        }),
        audit: false,
      }));
      s.lxid++;
    }
    this.sessions[kind].push(s);
  }

  private closeSession(s: Session): void {
    const list = this.sessions[s.kind];
    const i = list.indexOf(s);
    if (i >= 0) list.splice(i, 1);
    this.pids.delete(s.proc.pid);
    this.openSession(s.kind, false);
  }

  /** Turn a client transaction into pending csvlog lines for the session. */
  private enqueue(s: Session, stmts: readonly Stmt[]): void {
    const spec = s.spec;
    let inXact = false;
    let xid = 0;
    for (const st of stmts) {
      if (st.xactStart) inXact = true;
      const stmtId = ++s.stmtId;
      const qid = st.tag === 'BEGIN' || st.tag === 'COMMIT' || st.tag === 'SET' ? '0' : this.queryId(st.shape);
      const lxid = s.lxid;
      // The xid is assigned while the first writing statement executes: pgaudit logs that
      // statement before the assignment, so its line still shows 0.
      const xidAtLog = xid;
      if (st.writes && xid === 0) xid = this.xid++;
      let entries = st.entries;
      if (!spec.logRelation && entries.length > 1) {
        // without log_relation one line per (statement, substatement, class)
        const seen = new Set<string>();
        entries = entries.filter((e) => {
          const key = `${e.type ?? 'SESSION'}|${e.sub ?? 1}|${e.cls}`;
          if (seen.has(key)) return false;
          seen.add(key);
          return true;
        });
      }
      for (const e of entries) {
        const type = e.type ?? 'SESSION';
        const sub = e.sub ?? 1;
        const objType = spec.logRelation || type === 'OBJECT' || e.cls === 'DDL' || e.cls === 'FUNCTION' ? e.objType : undefined;
        const objName = objType !== undefined ? e.objName : undefined;
        const text = e.text ?? st.text;
        const params = spec.logParameter ? auditParams(e.params ?? st.params) : auditParams('not logged');
        let msg = `AUDIT: ${type},${stmtId},${sub},${e.cls},${e.cmd},${auditCsv(objType)},${auditCsv(objName)},${auditCsv(text)},${params}`;
        if (spec.logRows) msg += ',' + (e.rows ?? 0);
        const tag = st.tag;
        s.queue.push((time) => ({
          text: csvlogRecord(time, s.proc, ++s.line, {
            ps: tag,
            vxid: `${s.backendId}/${lxid}`,
            xid: xidAtLog,
            severity: 'LOG',
            state: '00000',
            message: msg,
            queryId: qid,
          }),
          audit: true,
        }));
      }
      if (st.error) {
        const err = st.error;
        const errXid = xid;
        s.queue.push((time) => ({
          text: csvlogRecord(time, s.proc, ++s.line, {
            ps: st.tag,
            vxid: `${s.backendId}/${lxid}`,
            xid: errXid,
            severity: 'ERROR',
            state: err.state,
            message: err.message,
            detail: err.detail ?? null,
            hint: err.hint ?? null,
            context: err.context ?? null,
            query: st.text,
            queryPos: err.queryPos ?? null,
            queryId: qid,
          }),
          audit: false,
        }));
        // the rest of the transaction is aborted (not audited); the client's ROLLBACK is not logged
        s.lxid++;
        return;
      }
      if (!inXact || st.xactEnd) {
        s.lxid++;
        xid = 0;
        inXact = false;
      }
    }
  }

  private refill(s: Session): void {
    const rng = this.rng;
    switch (s.kind) {
      case 'pgbench': {
        const tx = pgbenchTransaction(rng, s.simpleProtocol, s.selectOnly);
        // occasional deadlock between pgbench clients updating the same branch
        if (!s.selectOnly && rng.chance(0.0015)) {
          const victim = tx[4];
          if (victim) {
            const other = rng.int(1000, 4194303);
            tx.splice(4, tx.length - 4, {
              ...victim,
              error: {
                state: '40P01',
                message: 'deadlock detected',
                detail: `Process ${s.proc.pid} waits for ShareLock on transaction ${this.xid - 3}; blocked by process ${other}.\nProcess ${other} waits for ShareLock on transaction ${this.xid - 1}; blocked by process ${s.proc.pid}.`,
                hint: 'See server log for query details.',
                context: `while updating tuple (${rng.int(0, 4000)},${rng.int(1, 60)}) in relation "pgbench_branches"`,
              },
            });
          }
        }
        this.enqueue(s, tx);
        break;
      }
      case 'app':
        this.enqueue(s, appTransaction(rng, this.nowMs));
        break;
      case 'web':
        this.enqueue(s, webTransaction(rng, this.nowMs));
        break;
      case 'report':
        this.enqueue(s, [reportStatement(rng, LONG_PROB)]);
        break;
      case 'etl':
        this.enqueue(s, etlStatement(rng, this.nowMs, LONG_PROB));
        break;
      case 'admin':
        this.enqueue(s, adminStatement(rng));
        break;
    }
  }

  private disconnect(s: Session): PendingLine {
    const spec = s.spec;
    const [host, port] = (s.proc.from ?? ':').split(':');
    return (time) => {
      const dur = Math.max(0, this.nowMs - s.startMs);
      const h = Math.floor(dur / 3_600_000);
      const m = Math.floor(dur / 60_000) % 60;
      const sec = ((dur % 60_000) / 1000).toFixed(3).padStart(6, '0');
      return {
        text: csvlogRecord(time, s.proc, ++s.line, {
          ps: 'idle',
          vxid: null,
          xid: 0,
          severity: 'LOG',
          state: '00000',
          message: `disconnection: session time: ${h}:${pad2(m)}:${sec} user=${spec.user} database=${spec.db} host=${host} port=${port}`,
          queryId: '0',
        }),
        audit: false,
      };
    };
  }

  private backgroundLines(): void {
    const rng = this.rng;
    if (this.nowMs >= this.nextCheckpointMs) {
      this.nextCheckpointMs = this.nowMs + 300_000;
      const ck = this.checkpointer;
      this.background.push((time) => ({
        text: csvlogRecord(time, ck, ++this.checkpointerLine, {
          ps: null,
          vxid: null,
          xid: 0,
          severity: 'LOG',
          state: '00000',
          message: 'checkpoint starting: time',
          queryId: '0',
        }),
        audit: false,
      }));
      const wrote = rng.int(1000, 60000);
      this.background.push((time) => ({
        text: csvlogRecord(time, ck, ++this.checkpointerLine, {
          ps: null,
          vxid: null,
          xid: 0,
          severity: 'LOG',
          state: '00000',
          message: `checkpoint complete: wrote ${wrote} buffers (${((wrote / 16384) * 100).toFixed(1)}%); 0 WAL file(s) added, 0 removed, ${rng.int(0, 9)} recycled; write=${(rng.float() * 270).toFixed(3)} s, sync=0.0${rng.int(10, 99)} s, total=${(270 + rng.float()).toFixed(3)} s; sync files=${rng.int(10, 90)}, longest=0.00${rng.int(1, 9)} s, average=0.001 s; distance=${rng.int(100000, 900000)} kB, estimate=${rng.int(100000, 900000)} kB`,
          queryId: '0',
        }),
        audit: false,
      }));
    }
    if (this.nowMs >= this.nextAutovacMs) {
      this.nextAutovacMs = this.nowMs + rng.int(5_000, 40_000);
      const pid = this.newPid();
      this.pids.delete(pid); // it exits at once
      const startSec = Math.floor(this.nowMs / 1000);
      const worker: ProcInfo = {
        user: null,
        db: null,
        pid,
        from: null,
        sid: startSec.toString(16) + '.' + pid.toString(16),
        start: startTimeString(startSec),
        app: '',
        backendType: 'autovacuum worker',
      };
      const table = rng.pick(['pgbench_branches', 'pgbench_tellers', 'pgbench_history', 'orders', 'cart_items']);
      const dbName = table.startsWith('pgbench') ? 'pgbench' : 'appdb';
      const rem = rng.int(10, 90000);
      const msg =
        `automatic vacuum of table "${dbName}.public.${table}": index scans: ${rng.int(0, 1)}\n` +
        `pages: 0 removed, ${rem} remain, ${rng.int(1, rem)} scanned (${(rng.float() * 100).toFixed(2)}% of total)\n` +
        `tuples: ${rng.int(0, 50000)} removed, ${rng.int(1000, 5000000)} remain, ${rng.int(0, 500)} are dead but not yet removable\n` +
        `removable cutoff: ${this.xid - rng.int(10, 1000)}, which was ${rng.int(1, 900)} XIDs old when operation ended\n` +
        `index scan not needed: 0 pages from table (0.00% of total) had 0 dead item identifiers removed\n` +
        `avg read rate: ${(rng.float() * 50).toFixed(3)} MB/s, avg write rate: ${(rng.float() * 50).toFixed(3)} MB/s\n` +
        `buffer usage: ${rng.int(100, 90000)} hits, ${rng.int(0, 900)} misses, ${rng.int(0, 900)} dirtied\n` +
        `WAL usage: ${rng.int(0, 9000)} records, ${rng.int(0, 900)} full page images, ${rng.int(0, 9000000)} bytes\n` +
        `system usage: CPU: user: 0.${rng.int(10, 99)} s, system: 0.0${rng.int(1, 9)} s, elapsed: ${rng.int(0, 9)}.${rng.int(100, 999)} s`;
      const vx = `${rng.int(3, 200)}/${rng.int(1, 90000)}`;
      this.background.push((time) => ({
        text: csvlogRecord(time, worker, 1, { ps: null, vxid: vx, xid: 0, severity: 'LOG', state: '00000', message: msg, queryId: '0' }),
        audit: false,
      }));
    }
  }

  /** Next csvlog record, in log order. */
  next(): { text: string; audit: boolean; timeMs: number } {
    const rng = this.rng;
    this.nowMs += rng.exp(this.opts.meanGapMs ?? 0.45);
    const time = this.tf.logTime(this.nowMs);
    this.backgroundLines();
    const bg = this.background.shift();
    if (bg) return { ...bg(time), timeMs: this.nowMs };
    const kind = pickWeighted(rng, KIND_WEIGHTS);
    const list = this.sessions[kind];
    const s = list.length > 0 ? rng.pick(list) : undefined;
    if (!s) throw new Error(`no session of kind ${kind}`);
    if (s.queue.length === 0) {
      if (s.left <= 0) {
        const line = this.disconnect(s)(time);
        this.closeSession(s);
        return { ...line, timeMs: this.nowMs };
      }
      this.refill(s);
    }
    const pending = s.queue.shift();
    if (!pending) throw new Error('empty session queue');
    const out = pending(time);
    if (out.audit) s.left--;
    return { ...out, timeMs: this.nowMs };
  }
}

// ---------------------------------------------------------------------------------------------
// Buffered file output
// ---------------------------------------------------------------------------------------------

const CHUNK_BYTES = 8 * 1024 * 1024;

class ChunkWriter {
  private parts: string[] = [];
  private pending = 0;
  bytes = 0;

  private constructor(private readonly fh: FileHandle) {}

  static async open(path: string, flags: 'w' | 'a'): Promise<ChunkWriter> {
    return new ChunkWriter(await open(path, flags));
  }

  /** Returns true when the buffer should be flushed. */
  push(text: string, byteLength: number): boolean {
    this.parts.push(text);
    this.pending += byteLength;
    this.bytes += byteLength;
    return this.pending >= CHUNK_BYTES;
  }

  async flush(): Promise<void> {
    if (this.parts.length === 0) return;
    const buf = Buffer.from(this.parts.join(''), 'utf8');
    this.parts = [];
    this.pending = 0;
    let off = 0;
    while (off < buf.length) {
      const { bytesWritten } = await this.fh.write(buf, off, buf.length - off);
      off += bytesWritten;
    }
  }

  async close(): Promise<void> {
    await this.flush();
    await this.fh.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------

const DEFAULT_START = Date.UTC(2024, 4, 1, 12, 0, 0);

export async function generateCsvlog(dir: string, opts: GenerateOptions): Promise<GenerateResult> {
  const events = Math.floor(opts.events);
  if (!(events >= 0)) throw new Error(`events must be >= 0, got ${opts.events}`);
  const fileBytes = opts.fileBytes ?? 64 * 1024 * 1024;
  const startMs = opts.startTime ? opts.startTime.getTime() : DEFAULT_START;
  await mkdir(dir, { recursive: true });
  const engine = new Engine({ seed: opts.seed ?? 42, startMs, freshSessions: false, ...(opts.meanGapMs ? { meanGapMs: opts.meanGapMs } : {}) });

  const perFile: FileInfo[] = [];
  let writer: ChunkWriter | undefined;
  let cur: FileInfo | undefined;
  let lastTimeMs = startMs;
  const usedNames = new Set<string>();

  const finishFile = async (): Promise<void> => {
    if (!writer || !cur) return;
    await writer.close();
    // mtime = time of the last record, as on the server (keeps mtime order == name order)
    const t = new Date(Math.floor(lastTimeMs));
    await utimes(cur.file, t, t);
    writer = undefined;
  };

  let written = 0;
  let records = 0;
  while (written < events) {
    const rec = engine.next();
    const len = Buffer.byteLength(rec.text, 'utf8');
    if (!writer || !cur || (cur.bytes >= fileBytes && cur.records > 0)) {
      await finishFile();
      let nameMs = rec.timeMs;
      let name = logFileName(nameMs);
      while (usedNames.has(name)) {
        nameMs += 1000;
        name = logFileName(nameMs);
      }
      usedNames.add(name);
      cur = { file: join(dir, name), bytes: 0, events: 0, records: 0 };
      perFile.push(cur);
      writer = await ChunkWriter.open(cur.file, 'w');
    }
    cur.bytes += len;
    cur.records++;
    records++;
    if (rec.audit) {
      cur.events++;
      written++;
    }
    lastTimeMs = rec.timeMs;
    if (writer.push(rec.text, len)) await writer.flush();
  }
  await finishFile();

  return {
    files: perFile.map((f) => f.file),
    bytes: perFile.reduce((a, f) => a + f.bytes, 0),
    events: written,
    records,
    perFile,
  };
}

const LOG_TIME_AT_LINE_START = /(?:^|\n)(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) UTC,/g;

/** Last log_time found in the last 4 MiB of a csvlog file (null if none). */
async function lastLogTimeMs(file: string): Promise<number | null> {
  const st = await stat(file);
  const len = Math.min(st.size, 4 * 1024 * 1024);
  if (len === 0) return null;
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(len);
    await fh.read(buf, 0, len, st.size - len);
    const text = buf.toString('utf8');
    let last: string | null = null;
    for (const m of text.matchAll(LOG_TIME_AT_LINE_START)) last = m[1] ?? last;
    return last === null ? null : Date.parse(last.replace(' ', 'T') + 'Z');
  } finally {
    await fh.close();
  }
}

/**
 * Append n AUDIT events (plus the usual share of other records) to an existing csvlog file, as
 * if the server kept writing it. New sessions connect after the file's last record, so their
 * session ids cannot collide with sessions already in the file.
 */
export async function appendEvents(file: string, n: number, opts: AppendOptions = {}): Promise<AppendResult> {
  const st = await stat(file);
  let startMs: number;
  if (opts.startTime) startMs = opts.startTime.getTime();
  else {
    const last = await lastLogTimeMs(file);
    startMs = (last ?? Date.now()) + 1000;
  }
  const engine = new Engine({ seed: opts.seed ?? (st.size ^ (n * 2654435761)) >>> 0, startMs, freshSessions: true });
  const writer = await ChunkWriter.open(file, 'a');
  let written = 0;
  let records = 0;
  try {
    while (written < n) {
      const rec = engine.next();
      records++;
      if (rec.audit) written++;
      if (writer.push(rec.text, Buffer.byteLength(rec.text, 'utf8'))) await writer.flush();
    }
  } finally {
    await writer.close();
  }
  return { file, bytes: writer.bytes, events: written, records };
}

// ---------------------------------------------------------------------------------------------
// CLI
// ---------------------------------------------------------------------------------------------

function parseArgs(argv: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const eq = a.indexOf('=');
    if (eq > 0) out.set(a.slice(2, eq), a.slice(eq + 1));
    else {
      const v = argv[i + 1];
      if (v === undefined || v.startsWith('--')) out.set(a.slice(2), 'true');
      else {
        out.set(a.slice(2), v);
        i++;
      }
    }
  }
  return out;
}

function num(v: string | undefined, def: number): number {
  if (v === undefined) return def;
  const n = Number(v.replaceAll('_', ''));
  if (!Number.isFinite(n)) throw new Error(`not a number: ${v}`);
  return n;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args.has('help')) {
    console.log(
      'usage: node --import tsx bench/generate.ts --out DIR [--events 1000000] [--file-mb 64] [--seed 42] [--start 2024-05-01T12:00:00Z]\n' +
        '       node --import tsx bench/generate.ts --append FILE --events 10000 [--seed N]',
    );
    return;
  }
  const t0 = performance.now();
  const seedArg = args.get('seed');
  const append = args.get('append');
  if (append !== undefined) {
    const res = await appendEvents(resolve(append), num(args.get('events'), 10000), seedArg !== undefined ? { seed: num(seedArg, 0) } : {});
    console.log(JSON.stringify({ ...res, ms: Math.round(performance.now() - t0) }));
    return;
  }
  const out = args.get('out');
  if (!out) throw new Error('--out DIR is required (or --append FILE)');
  const start = args.get('start');
  const res = await generateCsvlog(resolve(out), {
    events: num(args.get('events'), 1_000_000),
    fileBytes: Math.round(num(args.get('file-mb'), 64) * 1024 * 1024),
    startTime: start ? new Date(start) : undefined,
    seed: num(seedArg, 42),
  });
  console.log(
    JSON.stringify({
      files: res.files.length,
      bytes: res.bytes,
      events: res.events,
      records: res.records,
      bytesPerEvent: res.events ? Math.round(res.bytes / res.events) : 0,
      ms: Math.round(performance.now() - t0),
    }),
  );
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
    process.exit(1);
  });
}
