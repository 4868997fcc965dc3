/**
 * `npm run bench:outbox`: the sql_outbox source (an application's outbox table `audit_logs(id, is_sent,
 * message, created_at)` → DuckDB `app_events`, rows marked sent) against a local MariaDB and PostgreSQL.
 *
 *   node --import tsx bench/outbox.ts [--rows 1000000] [--chunk-size 5000] [--steps mariadb,postgres]
 *        [--mysql-url mysql://root@127.0.0.1:3306/] [--pg-url postgres://postgres@127.0.0.1:5432/postgres]
 *        [--timeout 1200] [--keep]
 *
 * Steps (one per server, each on a database of its own, auditship_bench_<pid>_<step>, dropped at the end
 * unless --keep):
 *   mariadb / postgres: `audit_logs` as the structured-log-transfer service defines it, plus a primary key
 *   (no index on is_sent: the service has none); --rows rows generated server-side (MariaDB: the Sequence
 *   engine, or a recursive CTE where there is none; PostgreSQL: generate_series) in 100k-row statements on
 *   two connections: ids 1..N, is_sent false, created_at spread over the last 30 days in id order, message a
 *   ~350-byte audit message. ANALYZE (PostgreSQL: VACUUM (ANALYZE) + CHECKPOINT). Then
 *   `auditship run --config F --quiet --json` on a fresh DuckDB file under GNU time: wall, rows/s
 *   (app_events rows / wall), peak RSS; `auditship query` counts app_events, which must equal --rows, and the
 *   source must hold 0 rows with is_sent false and --rows with is_sent true.
 * A benchmark, not a test: targets are printed next to the figures, nothing is asserted. A failing step
 * is reported and the others still run; the exit code is 1 only when a step failed. Prints a summary
 * table and one JSON line at the end.
 */
import { type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { availableParallelism, loadavg } from 'node:os';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { maskUrl } from '../src/core/postgres.js';
import {
  distWarning,
  excerpt,
  fmt1,
  fmtInt,
  lastJson,
  mustRun as mustRunChild,
  ROOT,
  runTimed,
  statusOf,
  StepError,
  TIME_BIN,
  type RunResult,
} from './common.js';

const BIN = join(ROOT, 'bin', 'auditship.js');
const STEP_NAMES = ['mariadb', 'postgres'] as const;
type StepName = (typeof STEP_NAMES)[number];

const TARGET_ROWS_PER_S = 50_000;
const TARGET_RSS_MB = 300;
const TABLE = 'audit_logs';
const PIPELINE = 'outbox';
/** Rows per generating INSERT ... SELECT. */
const GEN_CHUNK = 100_000;
/** created_at (and the message's time) spread over this span, ending about now. */
const SPAN_MS = 30 * 24 * 3600 * 1000;

interface Args {
  rows: number;
  chunkSize: number;
  steps: StepName[];
  timeoutS: number;
  keep: boolean;
  pgUrl: string;
  mysqlUrl: string;
}

function parseArgs(argv: readonly string[]): Args {
  const a: Args = {
    rows: 1_000_000,
    chunkSize: 5000,
    steps: [...STEP_NAMES],
    timeoutS: 1200,
    keep: false,
    pgUrl: process.env['AUDITSHIP_BENCH_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres',
    mysqlUrl: process.env['AUDITSHIP_BENCH_MYSQL_URL'] ?? 'mysql://root@127.0.0.1:3306/',
  };
  const num = (v: string | undefined, name: string, min = 1): number => {
    const n = Number((v ?? '').replaceAll('_', ''));
    if (!Number.isFinite(n) || n < min) throw new Error(`${name} needs a number >= ${min}, got ${v}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    switch (k) {
      case '--rows':
        a.rows = Math.floor(num(argv[++i], k, 10));
        break;
      case '--chunk-size':
        a.chunkSize = Math.floor(num(argv[++i], k));
        break;
      case '--timeout':
        a.timeoutS = num(argv[++i], k);
        break;
      case '--keep':
        a.keep = true;
        break;
      case '--pg-url':
        a.pgUrl = argv[++i] ?? '';
        break;
      case '--mysql-url':
        a.mysqlUrl = argv[++i] ?? '';
        break;
      case '--steps': {
        const list = (argv[++i] ?? '')
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean);
        const bad = list.filter((s) => !(STEP_NAMES as readonly string[]).includes(s));
        if (bad.length || list.length === 0) throw new Error(`--steps: a comma list of ${STEP_NAMES.join(', ')}`);
        a.steps = list as StepName[];
        break;
      }
      case '--help':
      case '-h':
        console.log(
          'usage: npm run bench:outbox -- [--rows 1000000] [--chunk-size 5000] [--steps mariadb,postgres] [--timeout 1200] [--keep]\n' +
            '                               [--mysql-url mysql://root@127.0.0.1:3306/] [--pg-url postgres://postgres@127.0.0.1:5432/postgres]',
        );
        process.exit(0);
        break;
      default:
        throw new Error(`unknown argument ${k}`);
    }
  }
  const checkUrl = (opt: string, url: string, re: RegExp, what: string) => {
    let ok = re.test(url);
    try {
      new URL(url);
    } catch {
      ok = false;
    }
    if (!ok) throw new Error(`${opt}: not a ${what} URL: ${maskUrl(url)}`);
  };
  checkUrl('--pg-url', a.pgUrl, /^postgres(ql)?:\/\//i, 'postgres://');
  checkUrl('--mysql-url', a.mysqlUrl, /^(mysql|mariadb):\/\//i, 'mysql://');
  return a;
}

/** The server URL with another database. */
function dbUrl(base: string, db: string): string {
  const u = new URL(base);
  u.pathname = '/' + encodeURIComponent(db);
  return u.toString();
}

// ---------------------------------------------------------------------------------------------
// Child processes (as in bench/pg-audit-table.ts)
// ---------------------------------------------------------------------------------------------

const children = new Set<ChildProcess>();
const RUN_OPTS = { stdoutMax: 8 << 20, children };

/** Runs a child that must succeed; throws a StepError with its errors otherwise. */
function mustRun(what: string, cmd: string, argv: readonly string[], timeoutS = 300): Promise<RunResult> {
  return mustRunChild(what, cmd, argv, timeoutS, RUN_OPTS);
}

/** `auditship query --format json` on a DuckDB file (read-only). */
async function duckQuery(db: string, sql: string): Promise<Record<string, unknown>[]> {
  const r = await mustRun('auditship query', process.execPath, [BIN, 'query', '--db', db, '--format', 'json', sql], 300);
  const rows = lastJson(r.stdout);
  if (!Array.isArray(rows)) throw new StepError(`auditship query printed no JSON rows: ${r.stdout.slice(0, 300)}`);
  return rows as Record<string, unknown>[];
}

// ---------------------------------------------------------------------------------------------
// The two servers behind one small interface
// ---------------------------------------------------------------------------------------------

interface Conn {
  /** Rows of a query; `?` placeholders on MariaDB, `$n` on PostgreSQL. */
  query(sql: string, params?: unknown[]): Promise<Record<string, unknown>[]>;
  close(): Promise<void>;
}

/** Connections still open (closed on Ctrl-C before the databases are dropped). */
const openConns = new Set<{ destroy(): void }>();

function errText(e: unknown): string {
  const x = e as { message?: string; code?: string; sqlMessage?: string };
  return String(x?.sqlMessage || x?.message || x?.code || e).split('\n')[0]!;
}

/** A server's error as a StepError: the message and the statement's first line, no stack. */
function sqlError(e: unknown, sql: string): StepError {
  const code = (e as { code?: string })?.code;
  return new StepError(`${errText(e)}${code ? ` (${code})` : ''}\nin: ${sql.trim().split('\n')[0]!.slice(0, 200)}`);
}

function connectError(e: unknown, url: string): StepError {
  return new StepError(`cannot connect to ${maskUrl(url)}: ${errText(e)}`);
}

async function connectMysql(url: string): Promise<Conn> {
  const u = new URL(url.replace(/^mariadb:/i, 'mysql:'));
  const c = await mysql
    .createConnection({
      host: u.hostname || '127.0.0.1',
      port: u.port ? Number(u.port) : 3306,
      user: decodeURIComponent(u.username) || 'root',
      password: decodeURIComponent(u.password) || undefined,
      database: decodeURIComponent(u.pathname.replace(/^\//, '')) || undefined,
      supportBigNumbers: true,
      bigNumberStrings: true,
      dateStrings: true,
      timezone: 'Z',
      charset: 'utf8mb4',
    })
    .catch((e: unknown) => {
      throw connectError(e, url);
    });
  c.on('error', () => {});
  const handle = { destroy: () => c.destroy() };
  openConns.add(handle);
  // the generated times are UTC wall times (DATETIME has no zone)
  await c.query(`SET time_zone = '+00:00'`);
  return {
    async query(sql, params) {
      try {
        const [rows] = await c.query(sql, params ?? []);
        return Array.isArray(rows) ? (rows as Record<string, unknown>[]) : [];
      } catch (e) {
        throw sqlError(e, sql);
      }
    },
    async close() {
      openConns.delete(handle);
      await c.end().catch(() => c.destroy());
    },
  };
}

async function connectPg(url: string): Promise<Conn> {
  const c = new pg.Client({ connectionString: url, application_name: 'auditship-bench' });
  c.on('error', () => {});
  await c.connect().catch((e: unknown) => {
    throw connectError(e, url);
  });
  const handle = { destroy: () => void c.end().catch(() => {}) };
  openConns.add(handle);
  return {
    async query(sql, params) {
      try {
        return (await c.query({ text: sql, values: params ?? [] })).rows as Record<string, unknown>[];
      } catch (e) {
        throw sqlError(e, sql);
      }
    },
    async close() {
      openConns.delete(handle);
      await c.end().catch(() => {});
    },
  };
}

async function withConn<T>(connect: () => Promise<Conn>, fn: (c: Conn) => Promise<T>): Promise<T> {
  const c = await connect();
  try {
    return await fn(c);
  } finally {
    await c.close();
  }
}

interface Backend {
  step: StepName;
  label: string;
  /** The server URL (any database). */
  serverUrl: string;
  connect(url: string): Promise<Conn>;
  createDb(name: string): Promise<void>;
  dropDb(name: string): Promise<void>;
  ddl: string;
  /** Fills ids `from`..`to` (of `total`), times from `baseMs` on. */
  generate(c: Conn, from: number, to: number, total: number, baseMs: number): Promise<void>;
  /** Run once per database before generating (e.g. checks for the Sequence engine). */
  prepare?(c: Conn): Promise<string | null>;
  /** Average message bytes and the table's size (text). */
  stats(c: Conn): Promise<{ avgBytes: number | null; size: string | null }>;
  /** After generating: statistics, and whatever makes the run independent of the load's after-effects. */
  settle(c: Conn): Promise<string>;
  counts(c: Conn): Promise<{ total: number; unsent: number; sent: number }>;
}

/* The message, built the same on both servers (PostgreSQL's jsonb orders the keys its own way):
 *   {"audit_event": {"origin": "bench-app", "status": "SUCCESS", "date_time_epoch": <ms>, "date_time": "<ISO Z>",
 *    "actor": {"role": "USER", "user_id": "<md5 of the user as a uuid>", "provider": "tunnistamo",
 *              "ip_address": "10.a.b.c"},
 *    "operation": "READ|CREATE|UPDATE|DELETE", "additional_information": "...",
 *    "target": {"id": "<id>", "type": "Profile"}}}
 * 5,000 users (u = id * 7919 mod 5000), operations 60 % READ, 20 % CREATE, 10 % UPDATE, 10 % DELETE,
 * the time ms = base + (id - 1) * span / N.
 */
const OPS = ['READ', 'READ', 'READ', 'READ', 'READ', 'READ', 'CREATE', 'CREATE', 'UPDATE', 'DELETE'];

const MARIA_INSERT = (seqFrom: string) => `INSERT INTO ${TABLE} (id, is_sent, message, created_at)
SELECT g.id, FALSE,
  JSON_OBJECT('audit_event', JSON_OBJECT(
    'origin', 'bench-app',
    'status', 'SUCCESS',
    'date_time_epoch', g.ms,
    'date_time', CONCAT(LEFT(DATE_FORMAT(g.t, '%Y-%m-%dT%H:%i:%s.%f'), 23), 'Z'),
    'actor', JSON_OBJECT(
      'role', 'USER',
      'user_id', CONCAT_WS('-', SUBSTR(g.m, 1, 8), SUBSTR(g.m, 9, 4), SUBSTR(g.m, 13, 4), SUBSTR(g.m, 17, 4), SUBSTR(g.m, 21, 12)),
      'provider', 'tunnistamo',
      'ip_address', CONCAT('10.', g.u DIV 250, '.', g.u % 250, '.', 1 + g.id % 200)),
    'operation', ELT(1 + g.id % 10, ${OPS.map((o) => `'${o}'`).join(', ')}),
    'additional_information', CONCAT('graphql ', LOWER(ELT(1 + g.id % 10, ${OPS.map((o) => `'${o}'`).join(', ')})), ' ', LEFT(MD5(g.id), 8)),
    'target', JSON_OBJECT('id', CAST(g.id AS CHAR), 'type', 'Profile'))),
  g.t
FROM (SELECT s.id, s.ms, s.u, MD5(CONCAT('user-', s.u)) AS m,
             CAST('1970-01-01 00:00:00' AS DATETIME(6)) + INTERVAL s.ms * 1000 MICROSECOND AS t
        FROM (SELECT q.seq AS id, ? + (q.seq - 1) * ? DIV ? AS ms, (q.seq * 7919) % 5000 AS u FROM ${seqFrom}) s) g`;

const PG_INSERT = `INSERT INTO ${TABLE} (id, is_sent, message, created_at)
SELECT g.id, false,
  jsonb_build_object('audit_event', jsonb_build_object(
    'origin', 'bench-app',
    'status', 'SUCCESS',
    'date_time_epoch', g.ms,
    'date_time', to_char(g.t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'actor', jsonb_build_object(
      'role', 'USER',
      'user_id', md5('user-' || g.u)::uuid::text,
      'provider', 'tunnistamo',
      'ip_address', '10.' || (g.u / 250) || '.' || (g.u % 250) || '.' || (1 + g.id % 200)),
    'operation', (ARRAY[${OPS.map((o) => `'${o}'`).join(', ')}])[1 + (g.id % 10)::int],
    'additional_information', 'graphql ' || lower((ARRAY[${OPS.map((o) => `'${o}'`).join(', ')}])[1 + (g.id % 10)::int]) || ' ' || left(md5(g.id::text), 8),
    'target', jsonb_build_object('id', g.id::text, 'type', 'Profile'))),
  g.t
FROM (SELECT s.id, s.ms, s.u, timestamptz 'epoch' + s.ms * interval '1 millisecond' AS t
        FROM (SELECT i AS id, $3::bigint + (i - 1) * $4::bigint / $5::bigint AS ms, (i * 7919) % 5000 AS u
                FROM generate_series($1::bigint, $2::bigint) AS i) s) g`;

function mariadbBackend(args: Args): Backend {
  let seqEngine = true;
  const server = (c: (conn: Conn) => Promise<void>) => withConn(() => connectMysql(args.mysqlUrl), c);
  return {
    step: 'mariadb',
    label: 'MariaDB',
    serverUrl: args.mysqlUrl,
    connect: connectMysql,
    createDb: (name) =>
      server(async (c) => {
        await c.query(`DROP DATABASE IF EXISTS \`${name}\``);
        await c.query(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4`);
      }),
    dropDb: (name) =>
      server(async (c) => {
        // like PostgreSQL's DROP DATABASE ... WITH (FORCE): end what still works in it (this bench's own sessions
        // and an auditship run that was killed mid-statement), or DROP waits for their metadata locks
        const procs = await c.query('SELECT ID AS id FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID()', [name]);
        for (const p of procs) await c.query(`KILL ${Number(p['id'])}`).catch(() => {});
        await c.query(`DROP DATABASE IF EXISTS \`${name}\``);
      }),
    ddl: `CREATE TABLE ${TABLE} (id BIGINT NOT NULL PRIMARY KEY, is_sent BOOLEAN NOT NULL DEFAULT FALSE, message JSON, created_at DATETIME(6)) ENGINE=InnoDB`,
    async prepare(c) {
      const rows = await c.query(`SELECT SUPPORT AS s FROM information_schema.ENGINES WHERE ENGINE = 'SEQUENCE'`);
      seqEngine = ['YES', 'DEFAULT'].includes(String(rows[0]?.['s'] ?? ''));
      return seqEngine ? 'Sequence engine' : 'recursive CTE (no Sequence engine)';
    },
    async generate(c, from, to, total, baseMs) {
      const params = [baseMs, SPAN_MS, total];
      if (seqEngine) {
        await c.query(MARIA_INSERT(`seq_${from}_to_${to} AS q`), params);
      } else {
        // both stop a recursion at 1000 rows by default: MariaDB's max_recursive_iterations (10.6+), MySQL's
        // cte_max_recursion_depth; each server knows only its own variable
        await c.query(`SET SESSION max_recursive_iterations = ${GEN_CHUNK + 10}`).catch(() => {});
        await c.query(`SET SESSION cte_max_recursion_depth = ${GEN_CHUNK + 10}`).catch(() => {});
        const cte = `(WITH RECURSIVE r (seq) AS (SELECT ${from} UNION ALL SELECT seq + 1 FROM r WHERE seq < ${to}) SELECT seq FROM r) AS q`;
        await c.query(MARIA_INSERT(cte), params);
      }
    },
    async stats(c) {
      const r = await c.query(`SELECT AVG(LENGTH(message)) AS avg FROM ${TABLE}`);
      const s = await c.query(`SELECT DATA_LENGTH + INDEX_LENGTH AS b FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?`, [
        TABLE,
      ]);
      const bytes = Number(s[0]?.['b']);
      return {
        avgBytes: r[0]?.['avg'] == null ? null : Math.round(Number(r[0]['avg']) * 10) / 10,
        size: Number.isFinite(bytes) ? `${Math.round(bytes / 1048576)} MB` : null,
      };
    },
    async settle(c) {
      // OPTIMIZE would rebuild a table that was just loaded in primary-key order: ANALYZE is what it lacks
      await c.query(`ANALYZE TABLE ${TABLE}`);
      return 'ANALYZE TABLE';
    },
    async counts(c) {
      const r = await c.query(
        `SELECT COUNT(*) AS total, COALESCE(SUM(is_sent = FALSE), 0) AS unsent, COALESCE(SUM(is_sent <> FALSE), 0) AS sent FROM ${TABLE}`,
      );
      return { total: Number(r[0]?.['total']), unsent: Number(r[0]?.['unsent']), sent: Number(r[0]?.['sent']) };
    },
  };
}

function postgresBackend(args: Args): Backend {
  const server = (c: (conn: Conn) => Promise<void>) => withConn(() => connectPg(args.pgUrl), c);
  return {
    step: 'postgres',
    label: 'PostgreSQL',
    serverUrl: args.pgUrl,
    connect: connectPg,
    createDb: (name) =>
      server(async (c) => {
        await c.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
        await c.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
      }),
    dropDb: (name) =>
      server(async (c) => {
        await c.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
      }),
    ddl: `CREATE TABLE ${TABLE} (id bigint PRIMARY KEY, is_sent boolean NOT NULL DEFAULT false, message jsonb, created_at timestamptz)`,
    async generate(c, from, to, total, baseMs) {
      await c.query(PG_INSERT, [from, to, baseMs, SPAN_MS, total]);
    },
    async stats(c) {
      const r = await c.query(
        `SELECT avg(octet_length(message::text))::numeric(10,1)::text AS avg, pg_size_pretty(pg_total_relation_size('${TABLE}')) AS size FROM ${TABLE}`,
      );
      return { avgBytes: r[0]?.['avg'] == null ? null : Number(r[0]['avg']), size: (r[0]?.['size'] as string | undefined) ?? null };
    },
    async settle(c) {
      // a backlog that built up over time has been vacuumed: no hint-bit writes or visibility-map work in the run
      await c.query(`VACUUM (ANALYZE) ${TABLE}`);
      await c.query('CHECKPOINT');
      return 'VACUUM (ANALYZE) + CHECKPOINT';
    },
    async counts(c) {
      const r = await c.query(
        `SELECT count(*)::text AS total, count(*) FILTER (WHERE NOT is_sent)::text AS unsent, count(*) FILTER (WHERE is_sent)::text AS sent FROM ${TABLE}`,
      );
      return { total: Number(r[0]?.['total']), unsent: Number(r[0]?.['unsent']), sent: Number(r[0]?.['sent']) };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// One step
// ---------------------------------------------------------------------------------------------

interface StepResult {
  step: StepName;
  ok: boolean;
  error: string | null;
  ms: number;
  figures: Record<string, unknown>;
}

/** Databases created, per step (dropped at the end unless --keep). */
const createdDbs: { backend: Backend; name: string }[] = [];

/** The pipeline summary of `auditship run --json`; every field may be missing. */
interface PipelineSummary {
  pipeline?: string;
  table?: string;
  db?: string;
  events?: number;
  stored?: number;
  duplicates?: number;
  quarantined?: number;
  marked?: number;
  durationMs?: number;
  errors?: unknown[];
  ok?: boolean;
}

async function writeConfig(file: string, url: string, chunkSize: number, dbPath: string): Promise<void> {
  const yaml = `pipelines:
  ${PIPELINE}:
    source:
      type: sql_outbox
      url: ${JSON.stringify(url)}
      table: ${TABLE}
      chunk_size: ${chunkSize}
      batch_size: 0
    sinks:
      - type: duckdb
        path: ${JSON.stringify(dbPath)}
`;
  await writeFile(file, yaml);
}

async function runStep(b: Backend, args: Args, work: string, haveTime: boolean, fig: Record<string, unknown>): Promise<void> {
  // ---- the server, the database, the table
  const version = await withConn(
    () => b.connect(b.serverUrl),
    async (c) => String((await c.query('SELECT version() AS v'))[0]?.['v'] ?? ''),
  );
  fig['server'] = version.split(' on ')[0] ?? version;
  const name = `auditship_bench_${process.pid}_${b.step}`;
  await b.createDb(name);
  createdDbs.push({ backend: b, name });
  const url = dbUrl(b.serverUrl, name);
  fig['database'] = maskUrl(url);
  console.log(`  server ${String(fig['server'])}; database ${maskUrl(url)}`);

  // ---- generate: 100k-row statements on two connections
  const n = args.rows;
  const conns = await Promise.all([0, 1].map(() => b.connect(url)));
  try {
    const c = conns[0]!;
    await c.query(b.ddl);
    const how = b.prepare ? await b.prepare(c) : 'generate_series';
    fig['generator'] = how;
    const ranges: [number, number][] = [];
    for (let a = 1; a <= n; a += GEN_CHUNK) ranges.push([a, Math.min(n, a + GEN_CHUNK - 1)]);
    const baseMs = Date.now() - SPAN_MS;
    process.stdout.write(
      `  generating ${fmtInt(n)} outbox rows (${how}, ${ranges.length} statement${ranges.length === 1 ? '' : 's'} on ${conns.length} connections) ... `,
    );
    const g0 = performance.now();
    await Promise.all(
      conns.map(async (cc, ci) => {
        for (let i = ci; i < ranges.length; i += conns.length) {
          const [from, to] = ranges[i]!;
          await b.generate(cc, from, to, n, baseMs);
        }
      }),
    );
    const genMs = performance.now() - g0;
    fig['generateMs'] = Math.round(genMs);
    console.log(`${(genMs / 1000).toFixed(1)} s (${fmtInt(n / (genMs / 1000))} rows/s)`);
    const s0 = performance.now();
    const what = await b.settle(c);
    fig['settleMs'] = Math.round(performance.now() - s0);
    // after the ANALYZE: MariaDB's information_schema sizes come from the persistent statistics
    const st = await b.stats(c);
    fig['avgMessageBytes'] = st.avgBytes;
    fig['tableSize'] = st.size;
    console.log(`  ${what}: ${((fig['settleMs'] as number) / 1000).toFixed(1)} s; message avg ${fmt1(st.avgBytes)} B, table ${st.size ?? '-'}`);
  } finally {
    await Promise.all(conns.map((c) => c.close()));
  }

  // ---- ship it once into a fresh DuckDB file
  const dbPath = join(work, `${b.step}.duckdb`);
  const config = join(work, `${b.step}.yaml`);
  await writeConfig(config, url, args.chunkSize, dbPath);
  process.stdout.write(`  auditship run --config ${relative(ROOT, config)} --quiet --json ... `);
  const r = await runTimed(
    process.execPath,
    [BIN, 'run', '--config', config, '--quiet', '--json'],
    haveTime ? join(work, `time-${b.step}.txt`) : null,
    args.timeoutS,
    RUN_OPTS,
  );
  const wallS = r.ms / 1000;
  const status = statusOf(r, args.timeoutS);
  const out = lastJson(r.stdout, (v) => typeof v === 'object' && v !== null && 'pipelines' in v) as { pipelines?: PipelineSummary[]; ok?: boolean } | null;
  const p = out?.pipelines?.find((x) => x.pipeline === PIPELINE) ?? out?.pipelines?.[0] ?? null;
  fig['runStatus'] = status;
  fig['wallS'] = Math.round(wallS * 100) / 100;
  fig['peakRssMb'] = r.rssMb === null ? null : Math.round(r.rssMb * 10) / 10;
  fig['summary'] = p;
  console.log(`${status}, ${wallS.toFixed(2)} s, peak RSS ${fmt1(r.rssMb)} MB`);
  if (status !== 'ok') throw new StepError(`auditship run: ${status}\n${excerpt(r)}`);
  if (out?.ok === false || p?.ok === false) {
    throw new StepError(`auditship run exited 0 but reports ok: false: ${JSON.stringify(p?.errors ?? out).slice(0, 1000)}\n${excerpt(r)}`);
  }
  const sv = (k: keyof PipelineSummary) => (typeof p?.[k] === 'number' ? fmtInt(p[k]) : 'n/a');
  console.log(
    `  summary: events ${sv('events')}, stored ${sv('stored')}, marked ${sv('marked')}, duplicates ${sv('duplicates')}, quarantined ${sv('quarantined')}, pipeline ${typeof p?.durationMs === 'number' ? (p.durationMs / 1000).toFixed(2) + ' s' : 'n/a'}`,
  );

  // ---- verify: DuckDB holds every row once, the source has them all marked sent
  const cnt = await duckQuery(dbPath, 'SELECT count(*) AS n FROM app_events');
  const duckRows = Number(cnt[0]?.['n']);
  const src = await withConn(
    () => b.connect(url),
    (c) => b.counts(c),
  );
  fig['duckdbRows'] = duckRows;
  fig['rowsPerS'] = Number.isFinite(duckRows) ? Math.round(duckRows / wallS) : null;
  fig['sourceUnsent'] = src.unsent;
  fig['sourceSent'] = src.sent;
  const duckOk = duckRows === n;
  const srcOk = src.unsent === 0 && src.sent === n && src.total === n;
  fig['countsMatch'] = duckOk;
  fig['sourceMarked'] = srcOk;
  const st = await stat(dbPath).catch(() => null);
  fig['duckdbFileMb'] = st ? Math.round((st.size / 1048576) * 10) / 10 : null;
  console.log(
    `  app_events ${fmtInt(duckRows)} rows (generated ${fmtInt(n)}: ${duckOk ? 'equal' : 'MISMATCH'}), ${fmtInt(fig['rowsPerS'] as number | null)} rows/s, DuckDB file ${fmt1(fig['duckdbFileMb'] as number | null)} MB`,
  );
  console.log(`  ${TABLE}: is_sent false ${fmtInt(src.unsent)}, true ${fmtInt(src.sent)} (expected 0 / ${fmtInt(n)}: ${srcOk ? 'equal' : 'MISMATCH'})`);
  const problems: string[] = [];
  if (!duckOk) problems.push(`app_events holds ${duckRows} rows, ${n} were generated`);
  if (!srcOk) problems.push(`${TABLE} has ${src.unsent} rows with is_sent false and ${src.sent} with true (of ${src.total}); expected 0 and ${n}`);
  if (problems.length) throw new StepError(problems.join('\n'));
}

// ---------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------

function verdict(ok: boolean | null): string {
  return ok === null ? '-' : ok ? 'met' : 'MISSED';
}

function printSummary(results: StepResult[]): void {
  const rows: string[][] = [['step', 'status', 'figure', 'value', 'target', 'vs target']];
  const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
  results.forEach((res, i) => {
    const f = res.figures;
    const s = (f['summary'] as PipelineSummary | undefined) ?? null;
    const sv = (k: keyof PipelineSummary) => (s === null ? '-' : typeof s[k] === 'number' ? fmtInt(s[k]) : 'n/a');
    const rps = num(f['rowsPerS']);
    const rss = num(f['peakRssMb']);
    const gen = num(f['generateMs']);
    const dur = num(s?.durationMs);
    rows.push([
      `${i + 1}. ${res.step}`,
      res.ok ? 'ok' : 'FAILED',
      'outbox rows generated',
      f['generateMs'] === undefined ? '-' : fmtInt(num(f['rows'])),
      '',
      '',
    ]);
    rows.push(['', '', '  generate s', gen === null ? '-' : (gen / 1000).toFixed(1), '', '']);
    rows.push(['', '', '  message avg bytes', fmt1(num(f['avgMessageBytes'])), '', '']);
    rows.push(['', '', 'wall s (auditship run)', num(f['wallS'])?.toFixed(2) ?? '-', '', '']);
    rows.push(['', '', '  of which the pipeline s', s === null ? '-' : dur === null ? 'n/a' : (dur / 1000).toFixed(2), '', '']);
    rows.push(['', '', 'rows/s', fmtInt(rps), `>= ${fmtInt(TARGET_ROWS_PER_S)}`, verdict(rps === null ? null : rps >= TARGET_ROWS_PER_S)]);
    rows.push(['', '', 'peak RSS MB', fmt1(rss), `<= ${TARGET_RSS_MB}`, verdict(rss === null ? null : rss <= TARGET_RSS_MB)]);
    rows.push(['', '', 'events / stored / marked', `${sv('events')} / ${sv('stored')} / ${sv('marked')}`, '', '']);
    rows.push(['', '', 'duplicates / quarantined', `${sv('duplicates')} / ${sv('quarantined')}`, '', '']);
    rows.push([
      '',
      '',
      'app_events = rows',
      `${fmtInt(num(f['duckdbRows']))} / ${fmtInt(num(f['rows']))}`,
      'equal',
      verdict(typeof f['countsMatch'] === 'boolean' ? f['countsMatch'] : null),
    ]);
    rows.push([
      '',
      '',
      'source is_sent false / true',
      `${fmtInt(num(f['sourceUnsent']))} / ${fmtInt(num(f['sourceSent']))}`,
      `0 / ${fmtInt(num(f['rows']))}`,
      verdict(typeof f['sourceMarked'] === 'boolean' ? f['sourceMarked'] : null),
    ]);
  });
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  console.log('');
  rows.forEach((r, ri) => {
    console.log(
      r
        .map((c, i) => (i === 3 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
        .join('  ')
        .trimEnd(),
    );
    if (ri === 0) console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  });
  for (const r of results) if (!r.ok && r.error) console.log(`\n${r.step} FAILED: ${r.error.split('\n').join('\n    | ')}`);
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const haveTime = existsSync(TIME_BIN);
  if (!haveTime) console.log(`NOTE: ${TIME_BIN} (GNU time) not found, peak RSS unavailable: apt-get install time`);
  const warn = await distWarning();
  if (warn) console.log(`NOTE: ${warn}`);

  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '');
  const work = join(ROOT, '.bench-data', `outbox-run-${stamp}-${process.pid}`);
  await mkdir(work, { recursive: true });
  console.log(`${fmtInt(args.rows)} outbox rows per server, chunk_size ${args.chunkSize}; work dir ${relative(process.cwd(), work)}`);
  // Other work on the machine skews every figure here (two cores are common): say so up front.
  const load0 = loadavg()[0] ?? 0;
  const cpus = availableParallelism();
  if (load0 > 0.5)
    console.log(
      `NOTE: 1-minute load average ${load0.toFixed(2)} on ${cpus} CPUs at the start: if other work is still running (not just work that ended), figures will be noisy`,
    );

  const backends: Record<StepName, Backend> = { mariadb: mariadbBackend(args), postgres: postgresBackend(args) };
  let interrupted = false;
  const cleanup = async (): Promise<string[]> => {
    for (const c of children)
      if (c.pid !== undefined) {
        try {
          process.kill(-c.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    if (args.keep) return [];
    for (const c of openConns) c.destroy();
    const problems: string[] = [];
    for (const { backend, name } of createdDbs) {
      try {
        await backend.dropDb(name);
      } catch (e) {
        problems.push(`${backend.label} ${name}: ${(e as Error).message}`);
      }
    }
    await rm(work, { recursive: true, force: true });
    return problems;
  };
  process.once('SIGINT', () => {
    interrupted = true;
    console.log('\ninterrupted: cleaning up');
    void cleanup()
      .then((problems) => {
        for (const p of problems) console.log(`cleanup: ${p}`);
      })
      .finally(() => process.exit(130));
  });

  const results: StepResult[] = [];
  for (const [i, step] of args.steps.entries()) {
    if (interrupted) break;
    const b = backends[step];
    const load = Math.round((loadavg()[0] ?? 0) * 100) / 100;
    console.log(`\n${i + 1}. ${step}: ${fmtInt(args.rows)} outbox rows from ${b.label} at ${maskUrl(b.serverUrl)} (load average ${load.toFixed(2)})`);
    const figures: Record<string, unknown> = { loadavgAtStart: load, rows: args.rows };
    const t0 = performance.now();
    let error: string | null = null;
    try {
      await runStep(b, args, work, haveTime, figures);
    } catch (e) {
      error = e instanceof StepError ? e.message : e instanceof Error ? (e.stack ?? e.message) : String(e);
      if (interrupted) error = `interrupted (${error.split('\n')[0]})`;
      console.log(`\n  FAILED: ${error.split('\n').join('\n    | ')}`);
    }
    results.push({ step, ok: error === null, error, ms: Math.round(performance.now() - t0), figures });
  }
  if (interrupted) return; // the SIGINT handler cleans up and exits

  printSummary(results);
  const problems = await cleanup();
  if (args.keep)
    console.log(`\nkept ${relative(process.cwd(), work)} and databases ${createdDbs.map((d) => `${d.name} (${d.backend.label})`).join(', ') || '(none)'}`);
  for (const p of problems) console.log(`cleanup: ${p}`);

  const pick = (s: StepName) => results.find((r) => r.step === s);
  console.log(
    JSON.stringify({
      bench: 'outbox',
      at: new Date().toISOString(),
      machine: { cpus, loadavgAtStart: Math.round(load0 * 100) / 100 },
      params: { rows: args.rows, chunkSize: args.chunkSize, batchSize: 0, timeoutS: args.timeoutS },
      targets: { rowsPerS: TARGET_ROWS_PER_S, peakRssMb: TARGET_RSS_MB },
      steps: Object.fromEntries(
        STEP_NAMES.map((s) => {
          const r = pick(s);
          return [s, r ? { ok: r.ok, ms: r.ms, error: r.error, ...r.figures } : null];
        }),
      ),
    }),
  );
  if (results.some((r) => !r.ok)) process.exitCode = 1;
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
  process.exit(1);
});
