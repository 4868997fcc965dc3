/**
 * `npm run bench:table`: the pg_audit_table source (trigger-fed `auditship.logged_actions` → DuckDB
 * `row_changes`) against a local PostgreSQL.
 *
 *   node --import tsx bench/pg-audit-table.ts [--rows 1000000] [--seconds 30] [--rate 2000]
 *        [--pgbench-seconds 20] [--pgbench-runs 1] [--scale 10] [--url postgres://postgres@127.0.0.1:5432/postgres]
 *        [--steps backlog,follow,trigger] [--timeout 1200] [--keep] [--profile] [--ledger]
 *
 * Steps (each on a database of its own, auditship_bench_<pid>_<step>, dropped at the end unless --keep):
 *   1. backlog: `bench_items` audited with `auditship pg install`; --rows audit rows made with a few
 *      INSERT ... SELECT generate_series statements (80 % inserts, 15 % updates, the rest deletes and one
 *      TRUNCATE), VACUUM ANALYZE + CHECKPOINT; then `auditship run --config F --quiet --json` on a fresh
 *      DuckDB file under GNU time: wall, rows/s, peak RSS, and DuckDB's count against the audit table's.
 *   2. follow: `auditship run --follow` on a fresh DuckDB file; once the status file says "following",
 *      --rate rows/s for --seconds (every 100 ms, rate/100 transactions of one 10-row INSERT each, over 4
 *      connections); the client's Date.now() after each commit is kept per transaction. After the daemon
 *      has shipped everything it is stopped (SIGTERM) and per-row latency = epoch_ms(shipped_at) − commit
 *      time. shipped_at is DuckDB's now() of the storing transaction (its start), so the figure leaves out
 *      the few ms that transaction takes to commit.
 *   3. trigger cost: pgbench -i -s SCALE, then built-in tpcb-like `-c 4 -j 2 -T N`, without triggers; the
 *      same on freshly initialised tables with `auditship pg install` on the four pgbench tables
 *      (--pgbench-runs N: N such pairs, alternating; the median TPS of each side is reported).
 * A benchmark, not a test: targets are printed next to the figures, nothing is asserted. A failing step
 * is reported and the others still run; the exit code is 1 only when a step failed. Prints a summary
 * table and one JSON line at the end.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { availableParallelism, loadavg } from 'node:os';
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
  tail,
  TIME_BIN,
  type RunResult,
} from './common.js';

const BIN = join(ROOT, 'bin', 'auditship.js');
const STEP_NAMES = ['backlog', 'follow', 'trigger'] as const;
type StepName = (typeof STEP_NAMES)[number];

const TARGET_ROWS_PER_S = 100_000;
const TARGET_RSS_MB = 300;
const TARGET_P99_MS = 1000;

interface Args {
  rows: number;
  seconds: number;
  rate: number;
  pgbenchSeconds: number;
  pgbenchRuns: number;
  scale: number;
  url: string;
  steps: StepName[];
  timeoutS: number;
  keep: boolean;
  /** Print where the backlog run's time went (`auditship run --profile`). */
  profile: boolean;
  /** The DuckDB sink with the ledger on. */
  ledger: boolean;
}

function parseArgs(argv: readonly string[]): Args {
  const a: Args = {
    rows: 1_000_000,
    seconds: 30,
    rate: 2000,
    pgbenchSeconds: 20,
    pgbenchRuns: 1,
    scale: 10,
    url: process.env['AUDITSHIP_BENCH_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres',
    steps: [...STEP_NAMES],
    timeoutS: 1200,
    keep: false,
    profile: false,
    ledger: false,
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
      case '--seconds':
        a.seconds = num(argv[++i], k);
        break;
      case '--rate':
        a.rate = Math.floor(num(argv[++i], k, 100));
        break;
      case '--pgbench-seconds':
        a.pgbenchSeconds = Math.floor(num(argv[++i], k));
        break;
      case '--pgbench-runs':
        a.pgbenchRuns = Math.floor(num(argv[++i], k));
        break;
      case '--scale':
        a.scale = Math.floor(num(argv[++i], k));
        break;
      case '--url':
        a.url = argv[++i] ?? '';
        break;
      case '--timeout':
        a.timeoutS = num(argv[++i], k);
        break;
      case '--keep':
        a.keep = true;
        break;
      case '--profile':
        a.profile = true;
        break;
      case '--ledger':
        a.ledger = true;
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
          'usage: npm run bench:table -- [--rows 1000000] [--seconds 30] [--rate 2000] [--pgbench-seconds 20] [--pgbench-runs 1]\n' +
            '                              [--scale 10] [--url postgres://postgres@127.0.0.1:5432/postgres] [--steps backlog,follow,trigger]\n' +
            '                              [--timeout 1200] [--keep] [--profile] [--ledger]',
        );
        process.exit(0);
        break;
      default:
        throw new Error(`unknown argument ${k}`);
    }
  }
  try {
    new URL(a.url);
  } catch {
    throw new Error(`--url: not a postgres:// URL: ${a.url}`);
  }
  return a;
}

/** The server URL with another database. */
function dbUrl(base: string, db: string): string {
  const u = new URL(base);
  u.pathname = '/' + encodeURIComponent(db);
  return u.toString();
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, ms)));

// ---------------------------------------------------------------------------------------------
// Child processes (as in bench/ingest.ts)
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

async function pgInstall(url: string, tables: string[]): Promise<void> {
  await mustRun('auditship pg install', process.execPath, [BIN, 'pg', 'install', '--url', url, ...tables], 120);
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------------------------

const createdDbs: string[] = [];

async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url, application_name: 'auditship-bench' });
  c.on('error', () => {});
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end().catch(() => {});
  }
}

async function createDb(args: Args, name: string): Promise<string> {
  await withClient(args.url, async (c) => {
    await c.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
    await c.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
  });
  createdDbs.push(name);
  return dbUrl(args.url, name);
}

async function dropDbs(args: Args): Promise<string[]> {
  const problems: string[] = [];
  await withClient(args.url, async (c) => {
    for (const name of createdDbs) {
      try {
        await c.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
      } catch (e) {
        problems.push(`${name}: ${(e as Error).message}`);
      }
    }
  }).catch((e: unknown) => problems.push(`cannot connect to drop databases: ${(e as Error).message}`));
  return problems;
}

const ITEMS_DDL = `CREATE TABLE bench_items (id bigint PRIMARY KEY, name text, qty int, price numeric, note text, updated_at timestamptz)`;

/** Rows `$1`..`$2` of bench_items; `$3` starts the note. row_data comes out at about 200-250 bytes. */
const INSERT_ITEMS = `INSERT INTO bench_items (id, name, qty, price, note, updated_at)
SELECT g, 'item ' || g || ' ' || (ARRAY['widget','gadget','sprocket','flange','gizmo'])[1 + g % 5],
       ((g * 7919) % 1000)::int, round(((g * 104729) % 100000) / 100.0, 2),
       $3::text || ' ' || md5(g::text) || ' ' || left(md5((g + 1)::text), 20),
       timestamptz '2026-01-01 00:00:00+00' + g * interval '1 second'
  FROM generate_series($1::bigint, $2::bigint) AS g`;

// ---------------------------------------------------------------------------------------------
// Step results
// ---------------------------------------------------------------------------------------------

interface StepResult {
  step: StepName;
  ok: boolean;
  error: string | null;
  ms: number;
  figures: Record<string, unknown>;
}

function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] ?? null;
}

async function writeConfig(file: string, pipeline: string, url: string, dbPath: string, ledger: boolean): Promise<void> {
  const yaml = `pipelines:
  ${pipeline}:
    source:
      type: pg_audit_table
      url: ${JSON.stringify(url)}
    sinks:
      - type: duckdb
        path: ${JSON.stringify(dbPath)}
        ledger: ${ledger}
`;
  await writeFile(file, yaml);
}

// ---------------------------------------------------------------------------------------------
// 1. Backlog catch-up
// ---------------------------------------------------------------------------------------------

async function stepBacklog(args: Args, work: string, haveTime: boolean, fig: Record<string, unknown>): Promise<void> {
  const url = await createDb(args, `auditship_bench_${process.pid}_backlog`);
  fig['database'] = maskUrl(url);
  await withClient(url, (c) => c.query(ITEMS_DDL));
  await pgInstall(url, ['bench_items']);

  // ---- generate: 80 % inserts, 15 % updates, deletes, and one TRUNCATE; about 100k rows a statement
  const n = args.rows;
  const inserts = Math.max(1, Math.round(n * 0.8));
  const updates = Math.min(inserts, Math.round(n * 0.15));
  const deletes = Math.max(0, Math.min(inserts, n - inserts - updates - 1));
  const chunk = 100_000;
  const ranges = (from: number, to: number): [number, number][] => {
    const out: [number, number][] = [];
    for (let a = from; a <= to; a += chunk) out.push([a, Math.min(to, a + chunk - 1)]);
    return out;
  };
  let total = 0;
  process.stdout.write(`  generating ${fmtInt(n)} audit rows (${fmtInt(inserts)} I, ${fmtInt(updates)} U, ${fmtInt(deletes)} D, 1 T) ... `);
  const g0 = performance.now();
  // inserts on two connections (the trigger, not the table, is the work: use both cores)
  const insertRanges = ranges(1, inserts);
  const clients = await Promise.all(
    [0, 1].map(async () => {
      const c = new pg.Client({ connectionString: url, application_name: 'auditship-bench' });
      c.on('error', () => {});
      await c.connect();
      return c;
    }),
  );
  try {
    await Promise.all(
      clients.map(async (c, ci) => {
        for (let i = ci; i < insertRanges.length; i += clients.length) {
          const [a, b] = insertRanges[i]!;
          await c.query(INSERT_ITEMS, [a, b, `batch ${Math.floor(a / chunk)} created by the backlog generator`]);
        }
      }),
    );
    const c = clients[0]!;
    const updateRanges = ranges(1, updates);
    await Promise.all(
      clients.map(async (cc, ci) => {
        for (let i = ci; i < updateRanges.length; i += clients.length) {
          const [a, b] = updateRanges[i]!;
          await cc.query(`UPDATE bench_items SET qty = qty + 1, price = price * 1.05, updated_at = updated_at + interval '1 hour' WHERE id BETWEEN $1 AND $2`, [
            a,
            b,
          ]);
        }
      }),
    );
    for (const [a, b] of deletes > 0 ? ranges(inserts - deletes + 1, inserts) : []) {
      await c.query('DELETE FROM bench_items WHERE id BETWEEN $1 AND $2', [a, b]);
    }
    await c.query('TRUNCATE bench_items');
    const genMs = performance.now() - g0;
    fig['generateMs'] = Math.round(genMs);
    const stats = await c.query<{ action: string; n: string; avg: string | null }>(
      `SELECT action, count(*)::text AS n, avg(octet_length(row_data::text))::numeric(10,1)::text AS avg FROM auditship.logged_actions GROUP BY 1 ORDER BY 1`,
    );
    const byAction: Record<string, number> = {};
    for (const r of stats.rows) {
      byAction[r.action] = Number(r.n);
      total += Number(r.n);
    }
    const avg = await c.query<{ avg: string | null; size: string }>(
      `SELECT avg(octet_length(row_data::text))::numeric(10,1)::text AS avg, pg_size_pretty(pg_total_relation_size('auditship.logged_actions')) AS size FROM auditship.logged_actions`,
    );
    fig['auditRows'] = total;
    fig['auditByAction'] = byAction;
    fig['avgRowDataBytes'] = avg.rows[0]?.avg == null ? null : Number(avg.rows[0].avg);
    fig['auditTableSize'] = avg.rows[0]?.size ?? null;
    console.log(
      `${(genMs / 1000).toFixed(1)} s (${fmtInt(total / (genMs / 1000))} rows/s through the trigger), row_data avg ${fmt1(fig['avgRowDataBytes'] as number | null)} B, audit table ${String(fig['auditTableSize'])}`,
    );
    // a backlog that built up over time has been vacuumed; make the run independent of hint-bit writes and checkpoints
    await c.query('VACUUM (ANALYZE) auditship.logged_actions');
    await c.query('CHECKPOINT');
  } finally {
    await Promise.all(clients.map((c) => c.end().catch(() => {})));
  }

  // ---- ship it once into a fresh DuckDB file
  const dbPath = join(work, 'backlog.duckdb');
  const config = join(work, 'backlog.yaml');
  await writeConfig(config, 'rows', url, dbPath, args.ledger);
  process.stdout.write(`  auditship run --config ${relative(ROOT, config)} --quiet --json ... `);
  const r = await runTimed(
    process.execPath,
    [BIN, 'run', '--config', config, '--quiet', '--json', ...(args.profile ? ['--profile'] : [])],
    haveTime ? join(work, 'time-backlog.txt') : null,
    args.timeoutS,
    RUN_OPTS,
  );
  const wallS = r.ms / 1000;
  const status = statusOf(r, args.timeoutS);
  const out = lastJson(r.stdout) as {
    pipelines?: { stored?: number; events?: number; duplicates?: number; quarantined?: number; durationMs?: number }[];
    ok?: boolean;
  } | null;
  const p = out?.pipelines?.[0];
  fig['runStatus'] = status;
  fig['wallS'] = Math.round(wallS * 100) / 100;
  fig['peakRssMb'] = r.rssMb === null ? null : Math.round(r.rssMb * 10) / 10;
  fig['summary'] = p ?? null;
  console.log(`${status}, ${wallS.toFixed(2)} s, peak RSS ${fmt1(r.rssMb)} MB`);
  const profileAt = r.stderr.indexOf('profile: ');
  if (args.profile && profileAt >= 0)
    console.log(
      r.stderr
        .slice(profileAt)
        .split('\n')
        .filter((l) => !l.startsWith('{'))
        .join('\n')
        .trimEnd()
        .replace(/^/gm, '    '),
    );
  if (status !== 'ok') throw new StepError(`auditship run: ${status}\n${excerpt(r)}`);

  const cnt = await duckQuery(dbPath, 'SELECT count(*) AS n FROM row_changes');
  const duckRows = Number(cnt[0]?.['n']);
  const byAct = await duckQuery(dbPath, 'SELECT action, count(*) AS n FROM row_changes GROUP BY 1 ORDER BY 1');
  fig['duckdbRows'] = duckRows;
  fig['duckdbByAction'] = Object.fromEntries(byAct.map((x) => [String(x['action']), Number(x['n'])]));
  fig['rowsPerS'] = Math.round(duckRows / wallS);
  fig['countsMatch'] = duckRows === total;
  const st = await stat(dbPath).catch(() => null);
  fig['duckdbFileMb'] = st ? Math.round((st.size / 1048576) * 10) / 10 : null;
  console.log(
    `  row_changes ${fmtInt(duckRows)} rows (audit table ${fmtInt(total)}: ${duckRows === total ? 'equal' : 'DIFFERENT'}), ${fmtInt(duckRows / wallS)} rows/s, DuckDB file ${fmt1(fig['duckdbFileMb'] as number | null)} MB`,
  );
  if (duckRows !== total) throw new StepError(`row_changes holds ${duckRows} rows, the audit table ${total}`);
}

// ---------------------------------------------------------------------------------------------
// 2. Follow latency
// ---------------------------------------------------------------------------------------------

interface DaemonStatusFile {
  pipelines?: { pipeline?: string; state?: string; shipped?: number; error?: string }[];
}

function readStatus(file: string, pipeline: string): { state?: string; shipped?: number; error?: string } | null {
  try {
    const s = JSON.parse(readFileSync(file, 'utf8')) as DaemonStatusFile;
    return s.pipelines?.find((p) => p.pipeline === pipeline) ?? null;
  } catch {
    return null; // not written yet, or being replaced
  }
}

/** Peak resident set (VmHWM) of a live process, MB. */
function peakRssOf(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Math.round((Number(m[1]) / 1024) * 10) / 10 : null;
  } catch {
    return null;
  }
}

async function stepFollow(args: Args, work: string, fig: Record<string, unknown>): Promise<void> {
  const url = await createDb(args, `auditship_bench_${process.pid}_follow`);
  fig['database'] = maskUrl(url);
  await withClient(url, (c) => c.query(ITEMS_DDL));
  await pgInstall(url, ['bench_items']);

  const dbPath = join(work, 'follow.duckdb');
  const config = join(work, 'follow.yaml');
  const statusFile = `${dbPath}.status.json`;
  await writeConfig(config, 'follow', url, dbPath, args.ledger);

  // ---- the daemon
  const t0 = performance.now();
  const daemon = spawn(process.execPath, [BIN, 'run', '--config', config, '--follow'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  children.add(daemon);
  let dOut = '';
  let dErr = '';
  daemon.stdout.setEncoding('utf8').on('data', (d: string) => (dOut = tail(dOut + d, 1 << 20)));
  daemon.stderr.setEncoding('utf8').on('data', (d: string) => (dErr = tail(dErr + d, 1 << 20)));
  let exited: { code: number | null; signal: string | null } | null = null;
  const exitP = new Promise<void>((r) =>
    daemon.on('close', (code, signal) => {
      exited = { code, signal };
      children.delete(daemon);
      r();
    }),
  );
  daemon.on('error', (e) => {
    dErr += String(e);
  });
  const daemonTail = () =>
    tail((dErr + dOut).trim(), 3000)
      .split('\n')
      .slice(-10)
      .join('\n');

  try {
    // ---- wait until it follows
    process.stdout.write('  starting auditship run --follow ... ');
    for (;;) {
      if (exited) throw new StepError(`the daemon exited before following (${JSON.stringify(exited)})\n${daemonTail()}`);
      const s = readStatus(statusFile, 'follow');
      if (s?.state === 'following') break;
      if (s?.state === 'failed') throw new StepError(`the pipeline failed: ${s.error ?? ''}`);
      if (performance.now() - t0 > 60_000) throw new StepError(`not following after 60 s (state ${s?.state ?? 'no status file'})\n${daemonTail()}`);
      await sleep(50);
    }
    fig['startupMs'] = Math.round(performance.now() - t0);
    console.log(`following after ${fmtInt(fig['startupMs'] as number)} ms`);

    // ---- the load: every 100 ms, rate/100 transactions of 10 rows, over 4 connections
    const ROWS_PER_TX = 10;
    const TICK_MS = 100;
    const txPerTick = Math.max(1, Math.round((args.rate * TICK_MS) / 1000 / ROWS_PER_TX));
    const nClients = Math.min(4, txPerTick);
    const clients = await Promise.all(
      Array.from({ length: nClients }, async () => {
        const c = new pg.Client({ connectionString: url, application_name: 'auditship-bench-load' });
        c.on('error', () => {});
        await c.connect();
        return c;
      }),
    );
    const commitMs: number[] = []; // by transaction number; ids tx*10+1 .. tx*10+10
    let txSeq = 0;
    let failed = 0;
    let firstError: string | null = null;
    let late = 0;
    process.stdout.write(
      `  load: ${fmtInt(txPerTick * ROWS_PER_TX * (1000 / TICK_MS))} rows/s (${txPerTick} tx x ${ROWS_PER_TX} rows every ${TICK_MS} ms, ${nClients} connections) for ${args.seconds} s ... `,
    );
    const l0 = Date.now();
    const end = l0 + args.seconds * 1000;
    let ticks = 0;
    try {
      for (let tick = 0; ; tick++) {
        const due = l0 + tick * TICK_MS;
        if (due >= end) break;
        const wait = due - Date.now();
        if (wait > 0) await sleep(wait);
        else if (wait < -TICK_MS) late++;
        const jobs: Promise<void>[] = [];
        for (let ci = 0; ci < nClients; ci++) {
          const c = clients[ci]!;
          const mine: number[] = [];
          for (let k = ci; k < txPerTick; k += nClients) mine.push(txSeq + k);
          jobs.push(
            (async () => {
              for (const tx of mine) {
                const sent = Date.now();
                try {
                  // one autocommitted INSERT = one transaction; the promise resolves after its COMMIT
                  await c.query({
                    name: 'bench_ins',
                    text: INSERT_ITEMS,
                    values: [tx * ROWS_PER_TX + 1, tx * ROWS_PER_TX + ROWS_PER_TX, `sent_ms=${sent} tx=${tx}`],
                  });
                  commitMs[tx] = Date.now();
                } catch (e) {
                  failed++;
                  firstError ??= (e as Error).message;
                }
              }
            })(),
          );
        }
        txSeq += txPerTick;
        ticks++;
        await Promise.all(jobs);
      }
    } finally {
      await Promise.all(clients.map((c) => c.end().catch(() => {})));
    }
    // the schedule's span (the last tick's work is due within its 100 ms), or longer when it ran late
    const loadMs = Math.max(Date.now() - l0, ticks * TICK_MS);
    const committedTx = commitMs.filter((x) => x !== undefined).length;
    const committedRows = committedTx * ROWS_PER_TX;
    fig['loadMs'] = loadMs;
    fig['rowsCommitted'] = committedRows;
    fig['txCommitted'] = committedTx;
    fig['txFailed'] = failed;
    fig['ticksLate'] = late;
    fig['targetRate'] = txPerTick * ROWS_PER_TX * (1000 / TICK_MS);
    fig['achievedRate'] = Math.round(committedRows / (loadMs / 1000));
    console.log(
      `${fmtInt(committedRows)} rows committed in ${(loadMs / 1000).toFixed(1)} s = ${fmtInt(fig['achievedRate'] as number)} rows/s${failed ? `, ${failed} transactions FAILED (${firstError})` : ''}${late ? `, ${late} ticks late` : ''}`,
    );

    // ---- let it ship everything, then stop it
    const d0 = performance.now();
    let shipped = 0;
    for (;;) {
      if (exited) throw new StepError(`the daemon exited while following (${JSON.stringify(exited)})\n${daemonTail()}`);
      const s = readStatus(statusFile, 'follow');
      shipped = s?.shipped ?? shipped;
      if (shipped >= committedRows) break;
      if (performance.now() - d0 > 60_000) {
        fig['drainTimedOut'] = true;
        break;
      }
      await sleep(20);
    }
    fig['drainMs'] = Math.round(performance.now() - d0);
    fig['daemonPeakRssMb'] = peakRssOf(daemon.pid);
    const s0 = performance.now();
    daemon.kill('SIGTERM');
    const killTimer = setTimeout(() => {
      try {
        daemon.kill('SIGKILL');
      } catch {
        /* gone */
      }
    }, 30_000);
    await exitP;
    clearTimeout(killTimer);
    fig['stopMs'] = Math.round(performance.now() - s0);
    const ex = exited as { code: number | null; signal: string | null } | null;
    fig['daemonExit'] = ex?.code ?? ex?.signal ?? null;
    console.log(
      `  shipped ${fmtInt(shipped)} rows ${fmtInt(fig['drainMs'] as number)} ms after the load ended; SIGTERM -> exit ${String(fig['daemonExit'])} in ${fmtInt(fig['stopMs'] as number)} ms; daemon peak RSS ${fmt1(fig['daemonPeakRssMb'] as number | null)} MB`,
    );
    if (ex?.code !== 0) throw new StepError(`the daemon did not exit 0 after SIGTERM (${JSON.stringify(ex)})\n${daemonTail()}`);

    // ---- latencies from row_changes.shipped_at
    const rows = await duckQuery(dbPath, `SELECT (row_data->>'id')::BIGINT AS id, epoch_ms(shipped_at) AS s FROM row_changes WHERE action = 'INSERT'`);
    const lat: number[] = [];
    const seen = new Set<number>();
    let dupes = 0;
    let unknown = 0;
    for (const r of rows) {
      const id = Number(r['id']);
      const s = Number(r['s']);
      if (seen.has(id)) {
        dupes++;
        continue;
      }
      seen.add(id);
      const c = commitMs[Math.floor((id - 1) / ROWS_PER_TX)];
      if (c === undefined || !Number.isFinite(s)) {
        unknown++;
        continue;
      }
      lat.push(s - c);
    }
    lat.sort((a, b) => a - b);
    const batches = await duckQuery(dbPath, `SELECT count(DISTINCT shipped_at) AS n FROM row_changes`);
    fig['duckdbRows'] = rows.length;
    fig['missing'] = committedRows - seen.size + unknown;
    fig['duplicates'] = dupes;
    fig['batches'] = Number(batches[0]?.['n']);
    fig['rowsPerBatch'] = fig['batches'] ? Math.round((rows.length / Number(fig['batches'])) * 10) / 10 : null;
    fig['latencyMs'] = {
      min: lat[0] ?? null,
      p50: percentile(lat, 50),
      p90: percentile(lat, 90),
      p99: percentile(lat, 99),
      max: lat[lat.length - 1] ?? null,
      mean: lat.length ? Math.round((lat.reduce((x, y) => x + y, 0) / lat.length) * 10) / 10 : null,
      n: lat.length,
    };
    const L = fig['latencyMs'] as Record<string, number | null>;
    console.log(
      `  commit -> shipped_at over ${fmtInt(lat.length)} rows: p50 ${fmtInt(L['p50'])} ms, p90 ${fmtInt(L['p90'])} ms, p99 ${fmtInt(L['p99'])} ms, max ${fmtInt(L['max'])} ms (min ${fmtInt(L['min'])}); ${fmtInt(fig['batches'] as number)} DuckDB transactions, ${fmt1(fig['rowsPerBatch'] as number | null)} rows each`,
    );
    if (fig['missing'] || dupes) throw new StepError(`row_changes: ${String(fig['missing'])} committed rows missing, ${dupes} duplicates`);
  } finally {
    if (!exited && daemon.pid !== undefined) {
      try {
        process.kill(-daemon.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
      await Promise.race([exitP, sleep(5000)]);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// 3. Trigger cost (pgbench)
// ---------------------------------------------------------------------------------------------

interface PgbenchRun {
  tps: number | null;
  latencyMs: number | null;
  transactions: number | null;
}

function parsePgbench(out: string): PgbenchRun {
  const tps = /tps = ([\d.]+) \(without initial connection time\)/.exec(out) ?? /tps = ([\d.]+)/.exec(out);
  const lat = /latency average = ([\d.]+) ms/.exec(out);
  const tx = /number of transactions actually processed: (\d+)/.exec(out);
  return { tps: tps ? Number(tps[1]) : null, latencyMs: lat ? Number(lat[1]) : null, transactions: tx ? Number(tx[1]) : null };
}

async function stepTrigger(args: Args, fig: Record<string, unknown>): Promise<void> {
  const url = await createDb(args, `auditship_bench_${process.pid}_pgbench`);
  fig['database'] = maskUrl(url);
  fig['scale'] = args.scale;
  fig['options'] = `-c 4 -j 2 -T ${args.pgbenchSeconds} (tpcb-like)`;
  const tables = ['pgbench_accounts', 'pgbench_tellers', 'pgbench_branches', 'pgbench_history'];
  const runOne = async (label: string, withTriggers: boolean): Promise<PgbenchRun> => {
    process.stdout.write(`  ${label}: pgbench -i -s ${args.scale} ... `);
    // fresh tables (and audit table) for each run, so no run inherits another's bloat
    await withClient(url, (c) => c.query('DROP SCHEMA IF EXISTS auditship CASCADE'));
    await mustRun('pgbench -i', 'pgbench', ['-i', '-q', '-s', String(args.scale), url], 600);
    if (withTriggers) await pgInstall(url, tables);
    await withClient(url, (c) => c.query('CHECKPOINT'));
    process.stdout.write(`run ${args.pgbenchSeconds} s ... `);
    const r = await mustRun('pgbench', 'pgbench', ['-c', '4', '-j', '2', '-T', String(args.pgbenchSeconds), url], args.pgbenchSeconds + 300);
    const p = parsePgbench(r.stdout);
    if (p.tps === null) throw new StepError(`no tps in the pgbench output:\n${r.stdout.slice(-500)}`);
    console.log(`${p.tps.toFixed(1)} tps, latency ${p.latencyMs ?? '-'} ms`);
    return p;
  };
  const withoutRuns: PgbenchRun[] = [];
  const withRuns: (PgbenchRun & { auditRows: number; avgRowDataBytes: number | null })[] = [];
  for (let i = 0; i < args.pgbenchRuns; i++) {
    const nth = args.pgbenchRuns > 1 ? ` #${i + 1}` : '';
    withoutRuns.push(await runOne(`without triggers${nth}`, false));
    const w = await runOne(`with auditship triggers${nth}`, true);
    const audit = await withClient(url, (c) =>
      c.query<{ n: string; avg: string | null }>(
        `SELECT count(*)::text AS n, avg(octet_length(row_data::text))::numeric(10,1)::text AS avg FROM auditship.logged_actions`,
      ),
    );
    withRuns.push({ ...w, auditRows: Number(audit.rows[0]?.n ?? 0), avgRowDataBytes: audit.rows[0]?.avg == null ? null : Number(audit.rows[0].avg) });
  }
  /** The run of median TPS (the lower middle one for an even count). */
  const median = <T extends PgbenchRun>(runs: T[]): T => [...runs].sort((x, y) => (x.tps ?? 0) - (y.tps ?? 0))[Math.floor((runs.length - 1) / 2)]!;
  const without = median(withoutRuns);
  const withT = median(withRuns);
  fig['without'] = without;
  fig['with'] = withT;
  if (args.pgbenchRuns > 1) {
    fig['runs'] = args.pgbenchRuns;
    fig['withoutTps'] = withoutRuns.map((r) => r.tps);
    fig['withTps'] = withRuns.map((r) => r.tps);
  }
  const auditRows = withRuns.reduce((n, r) => n + r.auditRows, 0);
  const txs = withRuns.reduce((n, r) => n + (r.transactions ?? 0), 0);
  fig['auditRows'] = withT.auditRows;
  fig['avgRowDataBytes'] = withT.avgRowDataBytes;
  fig['auditRowsPerTx'] = txs ? Math.round((auditRows / txs) * 100) / 100 : null;
  if (without.tps && withT.tps) {
    fig['ratio'] = Math.round((withT.tps / without.tps) * 1000) / 1000;
    fig['overheadPct'] = Math.round((1 - withT.tps / without.tps) * 1000) / 10;
  }
  console.log(
    `  with/without ${String(fig['ratio'])} (the triggers cost ${String(fig['overheadPct'])} % of the TPS)${args.pgbenchRuns > 1 ? ', medians' : ''}; ${fmtInt(withT.auditRows)} audit rows, ${String(fig['auditRowsPerTx'])} per transaction`,
  );
}

// ---------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------

function verdict(ok: boolean | null): string {
  return ok === null ? '-' : ok ? 'met' : 'MISSED';
}

function printSummary(results: StepResult[]): void {
  const rows: string[][] = [['step', 'status', 'figure', 'value', 'target', 'vs target']];
  const get = (s: StepName) => results.find((r) => r.step === s);
  const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

  const b = get('backlog');
  if (b) {
    const f = b.figures;
    const st = b.ok ? 'ok' : 'FAILED';
    const rps = num(f['rowsPerS']);
    const rss = num(f['peakRssMb']);
    rows.push(['1. backlog catch-up', st, 'audit rows generated', fmtInt(num(f['auditRows'])), '', '']);
    rows.push(['', '', 'wall s (auditship run)', num(f['wallS'])?.toFixed(2) ?? '-', '', '']);
    const dur = num((f['summary'] as { durationMs?: number } | null)?.durationMs);
    rows.push(['', '', '  of which the pipeline s', dur === null ? '-' : (dur / 1000).toFixed(2), '', '']);
    rows.push(['', '', 'rows/s', fmtInt(rps), `>= ${fmtInt(TARGET_ROWS_PER_S)}`, verdict(rps === null ? null : rps >= TARGET_ROWS_PER_S)]);
    rows.push(['', '', 'peak RSS MB', fmt1(rss), `<= ${TARGET_RSS_MB}`, verdict(rss === null ? null : rss <= TARGET_RSS_MB)]);
    rows.push([
      '',
      '',
      'row_changes = audit table',
      `${fmtInt(num(f['duckdbRows']))} / ${fmtInt(num(f['auditRows']))}`,
      'equal',
      verdict(typeof f['countsMatch'] === 'boolean' ? f['countsMatch'] : null),
    ]);
  }
  const fo = get('follow');
  if (fo) {
    const f = fo.figures;
    const L = (f['latencyMs'] ?? {}) as Record<string, number | null>;
    const p99 = num(L['p99']);
    rows.push([
      '2. follow latency',
      fo.ok ? 'ok' : 'FAILED',
      'rate rows/s (achieved / asked)',
      `${fmtInt(num(f['achievedRate']))} / ${fmtInt(num(f['targetRate']))}`,
      '',
      '',
    ]);
    rows.push([
      '',
      '',
      'rows committed / shipped',
      `${fmtInt(num(f['rowsCommitted']))} / ${fmtInt(num(f['duckdbRows']))}`,
      'equal',
      verdict(f['missing'] === undefined ? null : f['missing'] === 0 && f['duplicates'] === 0),
    ]);
    rows.push(['', '', 'latency p50 ms', fmtInt(num(L['p50'])), '', '']);
    rows.push(['', '', 'latency p99 ms', fmtInt(p99), `<= ${fmtInt(TARGET_P99_MS)}`, verdict(p99 === null ? null : p99 <= TARGET_P99_MS)]);
    rows.push(['', '', 'latency max ms', fmtInt(num(L['max'])), '', '']);
    rows.push(['', '', 'rows per DuckDB transaction', fmt1(num(f['rowsPerBatch'])), '', '']);
    rows.push(['', '', 'daemon peak RSS MB', fmt1(num(f['daemonPeakRssMb'])), '', '']);
  }
  const t = get('trigger');
  if (t) {
    const f = t.figures;
    const w = (f['without'] ?? {}) as PgbenchRun;
    const x = (f['with'] ?? {}) as PgbenchRun;
    rows.push(['3. trigger cost (pgbench)', t.ok ? 'ok' : 'FAILED', 'TPS without triggers', fmt1(num(w.tps)), '', '']);
    rows.push(['', '', 'TPS with auditship triggers', fmt1(num(x.tps)), '', '']);
    rows.push(['', '', 'ratio with/without', num(f['ratio'])?.toFixed(3) ?? '-', '', '']);
    rows.push(['', '', 'overhead %', fmt1(num(f['overheadPct'])), '', '']);
  }
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
  const work = join(ROOT, '.bench-data', `table-run-${stamp}-${process.pid}`);
  await mkdir(work, { recursive: true });
  let server = '';
  try {
    server = await withClient(args.url, async (c) => (await c.query<{ v: string }>('SELECT version() AS v')).rows[0]?.v ?? '');
  } catch (e) {
    console.error(`cannot connect to ${maskUrl(args.url)}: ${(e as Error).message}`);
    process.exit(1);
  }
  console.log(`server: ${server.split(' on ')[0]} at ${maskUrl(args.url)}; work dir ${relative(process.cwd(), work)}`);
  // Other work on the machine skews every figure here (two cores are common): say so up front.
  const load0 = loadavg()[0] ?? 0;
  const cpus = availableParallelism();
  if (load0 > 0.5)
    console.log(
      `NOTE: 1-minute load average ${load0.toFixed(2)} on ${cpus} CPUs at the start: if other work is still running (not just work that ended), figures will be noisy`,
    );

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
    const problems = await dropDbs(args);
    await rm(work, { recursive: true, force: true });
    return problems;
  };
  process.once('SIGINT', () => {
    interrupted = true;
    console.log('\ninterrupted: cleaning up');
    void cleanup().finally(() => process.exit(130));
  });

  const results: StepResult[] = [];
  for (const step of args.steps) {
    if (interrupted) break;
    const titles: Record<StepName, string> = {
      backlog: `1. backlog catch-up (${fmtInt(args.rows)} audit rows)`,
      follow: `2. follow latency (${fmtInt(args.rate)} rows/s for ${args.seconds} s)`,
      trigger: `3. trigger cost (pgbench scale ${args.scale}, ${args.pgbenchSeconds} s per run${args.pgbenchRuns > 1 ? `, ${args.pgbenchRuns} pairs` : ''})`,
    };
    console.log(`\n${titles[step]}`);
    const figures: Record<string, unknown> = { loadavgAtStart: Math.round((loadavg()[0] ?? 0) * 100) / 100 };
    const t0 = performance.now();
    let error: string | null = null;
    try {
      if (step === 'backlog') await stepBacklog(args, work, haveTime, figures);
      else if (step === 'follow') await stepFollow(args, work, figures);
      else await stepTrigger(args, figures);
    } catch (e) {
      error = e instanceof StepError ? e.message : e instanceof Error ? (e.stack ?? e.message) : String(e);
      console.log(`\n  FAILED: ${error.split('\n').join('\n    | ')}`);
    }
    results.push({ step, ok: error === null, error, ms: Math.round(performance.now() - t0), figures });
  }

  printSummary(results);
  const problems = await cleanup();
  if (args.keep) console.log(`\nkept ${relative(process.cwd(), work)} and databases ${createdDbs.join(', ')}`);
  for (const p of problems) console.log(`cleanup: ${p}`);

  const pick = (s: StepName) => results.find((r) => r.step === s);
  console.log(
    JSON.stringify({
      bench: 'pg-audit-table',
      at: new Date().toISOString(),
      server: server.split(' on ')[0] ?? server,
      machine: { cpus, loadavgAtStart: Math.round(load0 * 100) / 100 },
      params: {
        rows: args.rows,
        seconds: args.seconds,
        rate: args.rate,
        pgbenchSeconds: args.pgbenchSeconds,
        pgbenchRuns: args.pgbenchRuns,
        scale: args.scale,
      },
      targets: { rowsPerS: TARGET_ROWS_PER_S, peakRssMb: TARGET_RSS_MB, followP99Ms: TARGET_P99_MS },
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
