/**
 * `npm run bench`: ingest benchmark, baseline (pg_audit_to_duckdb port) vs auditship.
 *
 *   node --import tsx bench/ingest.ts [--events 1000000] [--dir DIR] [--keep]
 *        [--append 10000] [--file-mb N] [--seed 42] [--variant parallel-false|exact|brief]
 *        [--timeout 1200]
 *   node --import tsx bench/ingest.ts --mode ui [bench/ui.ts options]   (also `npm run bench:ui`)
 *
 * Data: generated once into .bench-data/<events>/logs (params.json marks what is there; a set
 * with the same parameters is reused). --dir uses existing csvlog files instead (never modified).
 * Every run works on .bench-data/run-<stamp>/: hard links of the files (the newest one copied,
 * because step d appends to it) and fresh databases; that directory is removed afterwards
 * unless --keep.
 *
 * Steps, each a child process timed by GNU time (`/usr/bin/time -f '%e %M'`):
 *   a. baseline into a fresh DB (the seed's method, bench/baseline.ts);
 *   h. baseline "DuckDB by hand" into a fresh DB (bench/by-hand.ts: one parallel read_csv + regexp INSERT);
 *   b. `node bin/auditship.js ingest --db FILE --quiet --json DIR` into a fresh DB;
 *   c. the same again, nothing new;
 *   d. append N events (default 10,000) to the newest file, run auditship again;
 *   e. auditship first ingest of about half the bytes (first files), for memory flatness.
 * plus, for comparison, a2 (baseline re-run, nothing new) and d2 (baseline on the appended file).
 * A failing step is reported and the run goes on. Prints a table and a final JSON line.
 * --profile: each auditship step also prints where its time went (`auditship ingest --profile`).
 * Afterwards the by-hand table and auditship's audit_logs are compared: same row count, and the same values
 * in every shared column for a sample of rows.
 */
import { copyFile, link, mkdir, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { DuckDBInstance } from '@duckdb/node-api';
import { distWarning, fmt1, fmtInt, lastJson, ROOT, runTimed, TIME_BIN, type RunResult } from './common.js';
import { appendEvents, generateCsvlog, GENERATOR_VERSION } from './generate.js';
import type { FileInfo } from './generate.js';

const MiB = 1024 * 1024;

interface Args {
  events: number;
  dir?: string;
  keep: boolean;
  append: number;
  fileMb?: number;
  seed: number;
  variant: 'exact' | 'parallel-false' | 'brief';
  timeoutS: number;
  profile: boolean;
  /** auditship with the ledger on (`ingest --ledger`). */
  ledger: boolean;
}

function parseArgs(argv: readonly string[]): Args {
  const a: Args = { events: 1_000_000, keep: false, append: 10_000, seed: 42, variant: 'parallel-false', timeoutS: 1200, profile: false, ledger: false };
  const num = (v: string | undefined, name: string): number => {
    const n = Number((v ?? '').replaceAll('_', ''));
    if (!Number.isFinite(n) || n < 0) throw new Error(`${name} needs a number, got ${v}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    switch (k) {
      case '--events':
        a.events = Math.floor(num(argv[++i], k));
        break;
      case '--dir':
        a.dir = resolve(argv[++i] ?? '');
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
      case '--append':
        a.append = Math.floor(num(argv[++i], k));
        break;
      case '--file-mb':
        a.fileMb = num(argv[++i], k);
        break;
      case '--seed':
        a.seed = num(argv[++i], k);
        break;
      case '--timeout':
        a.timeoutS = num(argv[++i], k);
        break;
      case '--variant': {
        const v = argv[++i];
        if (v !== 'exact' && v !== 'parallel-false' && v !== 'brief') throw new Error('--variant: exact | parallel-false | brief');
        a.variant = v;
        break;
      }
      case '--help':
      case '-h':
        console.log(
          'usage: npm run bench -- [--events 1000000] [--dir DIR] [--keep] [--append 10000] [--file-mb N]\n' +
            '                        [--seed 42] [--variant parallel-false|exact|brief] [--timeout 1200] [--profile] [--ledger]',
        );
        process.exit(0);
        break;
      default:
        throw new Error(`unknown argument ${k}`);
    }
  }
  return a;
}

// ---------------------------------------------------------------------------------------------
// Data set
// ---------------------------------------------------------------------------------------------

interface DataSet {
  dir: string;
  files: FileInfo[]; // events/records may be -1 when unknown (--dir)
  bytes: number;
  events: number | null;
  generated: boolean;
  reused: boolean;
}

interface Marker {
  generatorVersion: number;
  events: number;
  fileBytes: number;
  seed: number;
  startTime: string;
  files: FileInfo[];
  bytes: number;
  records: number;
  ms: number;
}

const START_TIME = '2024-05-01T12:00:00.000Z';
/** bytes per AUDIT event measured on the generator's output, used to size rotation */
const EST_BYTES_PER_EVENT = 355;

async function prepareData(args: Args): Promise<DataSet> {
  if (args.dir) {
    const names = (await readdir(args.dir)).filter((n) => /\.csv(\.\d+)?$/.test(n)).sort();
    if (names.length === 0) throw new Error(`no *.csv files in ${args.dir}`);
    const files: FileInfo[] = [];
    for (const n of names) {
      const st = await stat(join(args.dir, n));
      files.push({ file: join(args.dir, n), bytes: st.size, events: -1, records: -1 });
    }
    return { dir: args.dir, files, bytes: files.reduce((s, f) => s + f.bytes, 0), events: null, generated: false, reused: true };
  }
  // rotate at 64 MiB, but keep >= ~5 files on small sets so the half-set check means something
  const fileBytes =
    args.fileMb !== undefined ? Math.round(args.fileMb * MiB) : Math.max(MiB, Math.min(64 * MiB, Math.round((args.events * EST_BYTES_PER_EVENT) / 5)));
  const base = join(ROOT, '.bench-data', String(args.events));
  const logs = join(base, 'logs');
  const markerPath = join(base, 'params.json');
  const want = { generatorVersion: GENERATOR_VERSION, events: args.events, fileBytes, seed: args.seed, startTime: START_TIME };
  if (existsSync(markerPath)) {
    try {
      const m = JSON.parse(await readFile(markerPath, 'utf8')) as Marker;
      const same =
        m.generatorVersion === want.generatorVersion &&
        m.events === want.events &&
        m.fileBytes === want.fileBytes &&
        m.seed === want.seed &&
        m.startTime === want.startTime;
      let intact = same;
      for (const f of same ? m.files : []) {
        const st = await stat(f.file).catch(() => null);
        if (!st || st.size !== f.bytes) intact = false;
      }
      if (intact) return { dir: logs, files: m.files, bytes: m.bytes, events: m.events, generated: false, reused: true };
    } catch {
      // regenerate
    }
  }
  await rm(base, { recursive: true, force: true });
  await mkdir(logs, { recursive: true });
  process.stdout.write(
    `generating ${args.events.toLocaleString('en-US')} events into ${relative(process.cwd(), logs) || logs} (rotation ${(fileBytes / MiB).toFixed(1)} MiB) ... `,
  );
  const t0 = performance.now();
  const res = await generateCsvlog(logs, { events: args.events, fileBytes, seed: args.seed, startTime: new Date(START_TIME) });
  const ms = Math.round(performance.now() - t0);
  console.log(
    `${res.files.length} files, ${(res.bytes / MiB).toFixed(1)} MiB, ${(res.bytes / Math.max(1, res.events)).toFixed(0)} B/event, ${(ms / 1000).toFixed(1)} s`,
  );
  const marker: Marker = { ...want, files: res.perFile, bytes: res.bytes, records: res.records, ms };
  await writeFile(markerPath, JSON.stringify(marker, null, 2) + '\n');
  return { dir: logs, files: res.perFile, bytes: res.bytes, events: res.events, generated: true, reused: false };
}

/** Hard-link (or copy) files into dir; `copyLast` copies the newest one (we append to it). */
async function stage(dir: string, files: readonly FileInfo[], copyLast: boolean): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (let i = 0; i < files.length; i++) {
    const f = files[i];
    if (!f) continue;
    const dest = join(dir, f.file.slice(f.file.lastIndexOf('/') + 1));
    const st = await stat(f.file);
    if (copyLast && i === files.length - 1) {
      await copyFile(f.file, dest);
      await utimes(dest, st.atime, st.mtime);
    } else {
      try {
        await link(f.file, dest);
      } catch {
        await copyFile(f.file, dest);
        await utimes(dest, st.atime, st.mtime);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------------------------

function lastJsonObject(stdout: string): Record<string, unknown> | null {
  return lastJson(stdout, (v) => v !== null && typeof v === 'object' && !Array.isArray(v)) as Record<string, unknown> | null;
}

async function tableCounts(dbPath: string): Promise<Record<string, number> | null> {
  if (!existsSync(dbPath)) return null;
  const inst = await DuckDBInstance.create(dbPath, { access_mode: 'READ_ONLY' });
  const con = await inst.connect();
  try {
    const t = await con.runAndReadAll(`SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = current_database() ORDER BY 1, 2`);
    const out: Record<string, number> = {};
    for (const [schema, table] of t.getRowsJS()) {
      const q = `"${String(schema).replaceAll('"', '""')}"."${String(table).replaceAll('"', '""')}"`;
      const r = await con.runAndReadAll(`SELECT count(*)::BIGINT FROM ${q}`);
      out[`${String(schema)}.${String(table)}`] = Number(r.getRowsJS()[0]?.[0] ?? 0);
    }
    return out;
  } finally {
    con.closeSync();
    inst.closeSync();
  }
}

// ---------------------------------------------------------------------------------------------
// Steps and report
// ---------------------------------------------------------------------------------------------

interface Step {
  id: string;
  name: string;
  ok: boolean;
  status: string;
  exit: number | null;
  ms: number;
  rssMb: number | null;
  /** events / bytes this step is accountable for (null: not meaningful) */
  events: number | null;
  bytes: number | null;
  eventsPerS: number | null;
  mbPerS: number | null;
  dbRows: number | null;
  tables: Record<string, number> | null;
  output: Record<string, unknown> | null;
  stderrTail: string;
}

/** A few readable lines explaining a failed step. */
function failureExcerpt(r: RunResult, output: Record<string, unknown> | null): string {
  const lines: string[] = [];
  const errs = output && Array.isArray(output.errors) ? (output.errors as unknown[]) : [];
  for (const e of errs.slice(0, 3)) lines.push(String(e).split('\n').slice(0, 2).join(' / '));
  if (errs.length > 3) lines.push(`... ${errs.length - 3} more errors`);
  const err = r.stderr.trim();
  if (err) lines.push(...err.split('\n').slice(-12));
  if (lines.length === 0 && r.stdout.trim()) lines.push(...r.stdout.trim().split('\n').slice(-6));
  return lines.map((l) => (l.length > 300 ? l.slice(0, 300) + '...' : l)).join('\n');
}

/** A baseline as plain JS (run by plain node, like dist/: no tsx startup or memory counted against it). */
async function transpileBaseline(outDir: string, name: 'baseline' | 'by-hand'): Promise<string> {
  const src = await readFile(join(ROOT, 'bench', `${name}.ts`), 'utf8');
  const out = ts.transpileModule(src, {
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: false },
    fileName: `${name}.ts`,
  });
  const file = join(outDir, `${name}.mjs`);
  await writeFile(file, out.outputText);
  return file;
}

/** Columns the by-hand table shares with audit_logs, compared on a sample (message: auditship computes it). */
const COMPARED_COLUMNS = [
  'log_time',
  'user_name',
  'database_name',
  'client_addr',
  'message',
  'application_name',
  'session_id',
  'session_line_num',
  'file_name',
  'client_port',
  'process_id',
  'virtual_transaction_id',
  'transaction_id',
  'command_tag',
  'session_start',
  'error_severity',
  'backend_type',
  'leader_pid',
  'query_id',
  'audit_type',
  'statement_id',
  'substatement_id',
  'class',
  'command',
  'object_type',
  'object_name',
  'statement',
  'parameter',
  'rows',
];

/** Row counts of both tables, and the sample rows (1 in 97 by line number) that differ in any shared column. */
async function compareTables(byHandDb: string, toolDb: string): Promise<{ byHand: number; auditship: number; sampled: number; differing: number }> {
  const inst = await DuckDBInstance.create(':memory:');
  const con = await inst.connect();
  try {
    await con.run("SET TimeZone = 'UTC'");
    await con.run(`ATTACH '${byHandDb}' AS h (READ_ONLY)`);
    await con.run(`ATTACH '${toolDb}' AS t (READ_ONLY)`);
    const count = async (sql: string) => Number((await con.runAndReadAll(sql)).getRows()[0]![0]);
    const cols = COMPARED_COLUMNS.join(', ');
    const sample = (db: string) => `SELECT ${cols} FROM ${db}.audit_logs WHERE hash(session_id, session_line_num) % 97 = 0`;
    return {
      byHand: await count('SELECT count(*) FROM h.audit_logs'),
      auditship: await count('SELECT count(*) FROM t.audit_logs'),
      sampled: await count(`SELECT count(*) FROM (${sample('h')})`),
      differing: await count(`SELECT count(*) FROM ((${sample('h')} EXCEPT ALL ${sample('t')}) UNION ALL (${sample('t')} EXCEPT ALL ${sample('h')}))`),
    };
  } finally {
    con.closeSync();
    inst.closeSync();
  }
}

/** Newest mtime under dist/ (identifies the auditship build a step ran). */
async function distStamp(): Promise<number> {
  let newest = 0;
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else newest = Math.max(newest, (await stat(p).catch(() => null))?.mtimeMs ?? 0);
    }
  };
  await walk(join(ROOT, 'dist'));
  return newest;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const haveTime = existsSync(TIME_BIN);
  if (!haveTime) console.log(`NOTE: ${TIME_BIN} (GNU time) not found, peak RSS unavailable: apt-get install time`);
  const warn = await distWarning();
  if (warn) console.log(`NOTE: ${warn}`);

  const data = await prepareData(args);
  if (data.reused && !args.dir)
    console.log(
      `reusing ${relative(process.cwd(), data.dir)}: ${data.files.length} files, ${(data.bytes / MiB).toFixed(1)} MiB, ${fmtInt(data.events)} events`,
    );
  if (args.dir) console.log(`using ${data.dir}: ${data.files.length} files, ${(data.bytes / MiB).toFixed(1)} MiB`);

  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '');
  const work = join(ROOT, '.bench-data', `run-${stamp}-${process.pid}`);
  const full = join(work, 'logs');
  const half = join(work, 'logs-half');
  await mkdir(work, { recursive: true });
  await stage(full, data.files, true);

  // about half the bytes, whole files from the oldest
  let halfCount = 0;
  let halfBytes = 0;
  for (const f of data.files) {
    if (halfCount > 0 && Math.abs(halfBytes + f.bytes - data.bytes / 2) > Math.abs(halfBytes - data.bytes / 2)) break;
    halfBytes += f.bytes;
    halfCount++;
  }
  if (halfCount >= data.files.length) halfCount = Math.max(1, data.files.length - 1);
  const halfFiles = data.files.slice(0, halfCount);
  halfBytes = halfFiles.reduce((s, f) => s + f.bytes, 0);
  await stage(half, halfFiles, false);

  const baselineJs = await transpileBaseline(work, 'baseline');
  const byHandJs = await transpileBaseline(work, 'by-hand');
  const steps: Step[] = [];
  const builds: { step: string; stamp: number; changed: boolean }[] = [];
  let timeSeq = 0;

  const exec = async (id: string, name: string, argv: readonly string[], acc: { events: number | null; bytes: number | null }, db: string): Promise<Step> => {
    process.stdout.write(`${id}. ${name} ... `);
    if (argv[0] !== baselineJs && argv[0] !== byHandJs) {
      const st = await distStamp();
      if (builds.length && builds[builds.length - 1]?.stamp !== st) builds.push({ step: id, stamp: st, changed: true });
      else if (!builds.length) builds.push({ step: id, stamp: st, changed: false });
    }
    const r = await runTimed(process.execPath, argv, haveTime ? join(work, `time-${++timeSeq}.txt`) : null, args.timeoutS);
    const output = lastJsonObject(r.stdout);
    let tables: Record<string, number> | null = null;
    try {
      tables = await tableCounts(db);
    } catch (e) {
      tables = null;
      r.stderr += `\n[bench] cannot open ${db}: ${e instanceof Error ? e.message : String(e)}`;
    }
    // audit rows: audit_logs when the schema has it (both do today), else the largest table
    const dbRows = tables ? (tables['main.audit_logs'] ?? Math.max(0, ...Object.values(tables))) : null;
    let ok = r.exit === 0 && !r.timedOut;
    let status = ok ? 'ok' : r.timedOut ? `TIMEOUT ${args.timeoutS}s` : r.exit === null ? `KILLED ${r.signal ?? ''}`.trim() : `FAIL exit ${r.exit}`;
    if (ok && tables === null) {
      ok = false;
      status = 'FAIL no database written';
    }
    const s = r.ms / 1000;
    const step: Step = {
      id,
      name,
      ok,
      status,
      exit: r.exit,
      ms: Math.round(r.ms),
      rssMb: r.rssMb === null ? null : Math.round(r.rssMb * 10) / 10,
      events: acc.events,
      bytes: acc.bytes,
      eventsPerS: ok && acc.events !== null ? Math.round(acc.events / s) : null,
      mbPerS: ok && acc.bytes !== null ? Math.round((acc.bytes / MiB / s) * 10) / 10 : null,
      dbRows,
      tables,
      output,
      stderrTail: ok ? '' : failureExcerpt(r, output),
    };
    console.log(`${status}, ${fmtInt(step.ms)} ms, peak RSS ${fmt1(step.rssMb)} MB`);
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
    if (!ok && step.stderrTail) console.log(step.stderrTail.replace(/^/gm, '    | '));
    steps.push(step);
    return step;
  };

  const all = { events: data.events, bytes: data.bytes };
  const baseDb = join(work, 'baseline.duckdb');
  const toolDb = join(work, 'auditship.duckdb');
  const halfDb = join(work, 'auditship-half.duckdb');
  const byHandDb = join(work, 'by-hand.duckdb');
  const tool = (db: string, dir: string): string[] => [
    join(ROOT, 'bin', 'auditship.js'),
    'ingest',
    '--db',
    db,
    '--quiet',
    '--json',
    ...(args.profile ? ['--profile'] : []),
    ...(args.ledger ? ['--ledger'] : []),
    dir,
  ];

  const variantLabel = args.variant === 'parallel-false' ? 'seed + parallel=false' : args.variant;
  const a = await exec('a', `baseline (${variantLabel})`, [baselineJs, '--variant', args.variant, '--db', baseDb, full], all, baseDb);
  // per-file event counts: from the generator, else from the baseline's table
  let halfEvents: number | null = null;
  if (data.events === null && a.ok) {
    const total = a.output && typeof a.output.events === 'number' ? a.output.events : null;
    all.events = total;
    a.events = total;
    if (total !== null) a.eventsPerS = Math.round(total / (a.ms / 1000));
    try {
      const inst = await DuckDBInstance.create(baseDb, { access_mode: 'READ_ONLY' });
      const con = await inst.connect();
      const r = await con.runAndReadAll('SELECT file_name, count(*)::BIGINT FROM audit_logs GROUP BY 1');
      const per = new Map(r.getRowsJS().map(([f, n]) => [String(f), Number(n)]));
      con.closeSync();
      inst.closeSync();
      halfEvents = halfFiles.reduce((s, f) => s + (per.get(f.file.slice(f.file.lastIndexOf('/') + 1)) ?? 0), 0);
    } catch {
      halfEvents = null;
    }
  } else if (data.events !== null) {
    halfEvents = halfFiles.reduce((s, f) => s + f.events, 0);
  }

  const baseArgs = [baselineJs, '--variant', args.variant, '--db', baseDb, full];
  const a2 = await exec('a2', 'baseline re-run, nothing new', baseArgs, { events: null, bytes: null }, baseDb);
  const h = await exec('h', 'baseline: DuckDB by hand (read_csv + regexp, one INSERT)', [byHandJs, '--db', byHandDb, full], all, byHandDb);
  // With --ledger, the same ingest without redaction and ledger first: their cost as one figure (a single pair;
  // farm-bench's paired runs are steadier on a noisy machine).
  let plain: Step | null = null;
  if (args.ledger) {
    const plainDb = join(work, 'auditship-plain.duckdb');
    const config = join(work, 'plain.yaml');
    await writeFile(
      config,
      JSON.stringify({
        redaction: { enabled: false },
        pipelines: { plain: { source: { type: 'pg_logs', path: full }, sinks: [{ type: 'duckdb', path: plainDb }] } },
      }),
    );
    plain = await exec(
      'b0',
      'auditship first ingest, redaction off, no ledger',
      [join(ROOT, 'bin', 'auditship.js'), 'run', '--config', config, '--quiet', '--json', ...(args.profile ? ['--profile'] : [])],
      all,
      plainDb,
    );
  }
  const b = await exec('b', `auditship first ingest${args.ledger ? ' (redaction on, ledger on)' : ''}`, tool(toolDb, full), all, toolDb);
  if (plain?.ok && b.ok)
    console.log(
      `   redaction + ledger: ${fmtInt(b.ms - plain.ms)} ms of ${fmtInt(b.ms)} ms (+${(((b.ms - plain.ms) / plain.ms) * 100).toFixed(1)} % over b0; budget 10 %)`,
    );
  let same: Awaited<ReturnType<typeof compareTables>> | null = null;
  if (h.ok && b.ok) {
    same = await compareTables(byHandDb, toolDb);
    console.log(
      `   by hand vs auditship: ${fmtInt(same.byHand)} vs ${fmtInt(same.auditship)} rows; ${fmtInt(same.sampled)} sampled rows, ${fmtInt(same.differing)} differ in a shared column`,
    );
  }
  const c = await exec('c', 'auditship re-run, nothing new', tool(toolDb, full), { events: null, bytes: null }, toolDb);

  const newest = data.files[data.files.length - 1];
  if (!newest) throw new Error('no files');
  const activeFile = join(full, newest.file.slice(newest.file.lastIndexOf('/') + 1));
  const app = await appendEvents(activeFile, args.append);
  const activeSize = (await stat(activeFile)).size;
  const d = await exec(
    'd',
    `auditship +${fmtInt(app.events)} events appended to ${(activeSize / MiB).toFixed(0)} MB active file (${fmtInt(app.bytes)} B)`,
    tool(toolDb, full),
    { events: app.events, bytes: app.bytes },
    toolDb,
  );
  // the baseline on the same appended file (it re-reads the whole changed file and ANTI JOINs)
  const d2 = await exec('d2', `baseline, same appended file`, baseArgs, { events: app.events, bytes: app.bytes }, baseDb);
  const e = await exec(
    'e',
    `auditship first ingest, half set (${halfCount}/${data.files.length} files)`,
    tool(halfDb, half),
    { events: halfEvents, bytes: halfBytes },
    halfDb,
  );

  // ---- report
  const rows: string[][] = [['step', 'status', 'wall ms', 'events/s', 'MB/s', 'peak RSS MB', 'rows in DB']];
  for (const s of steps) rows.push([`${s.id}. ${s.name}`, s.status, fmtInt(s.ms), fmtInt(s.eventsPerS), fmt1(s.mbPerS), fmt1(s.rssMb), fmtInt(s.dbRows)]);
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  console.log('');
  console.log(
    `input: ${data.files.length} files, ${(data.bytes / MiB).toFixed(1)} MiB, ${fmtInt(all.events)} AUDIT events${all.events ? `, ${(data.bytes / all.events).toFixed(0)} B/event` : ''}`,
  );
  rows.forEach((r, ri) => {
    console.log(r.map((c, i) => (i === 0 || i === 1 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  '));
    if (ri === 0) console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  });

  const ratio = (x: Step, y: Step): string => (x.ok && y.ok ? (x.ms / y.ms).toFixed(2) + 'x' : 'n/a');
  const timeRatio = a.ok && b.ok ? a.ms / b.ms : null;
  const byHandRatio = h.ok && b.ok ? h.ms / b.ms : null;
  const rssRatio = a.ok && b.ok && a.rssMb && b.rssMb ? a.rssMb / b.rssMb : null;
  const flat = b.ok && e.ok && b.rssMb && e.rssMb ? b.rssMb / e.rssMb : null;
  console.log('');
  console.log(`first ingest time ratio baseline/auditship: ${timeRatio === null ? 'n/a (a step failed)' : timeRatio.toFixed(2) + 'x'}  (target >= 1.5x)`);
  console.log(`first ingest time ratio by-hand/auditship:  ${byHandRatio === null ? 'n/a (a step failed)' : byHandRatio.toFixed(2) + 'x'}  (target >= 2x)`);
  console.log(`peak RSS ratio baseline/auditship:          ${rssRatio === null ? 'n/a' : rssRatio.toFixed(2) + 'x'}`);
  console.log(`re-run ratio baseline/auditship (a2/c):     ${ratio(a2, c)};  incremental (d2/d): ${ratio(d2, d)}`);
  console.log(
    `memory flatness, auditship peak RSS:        full ${fmt1(b.ok ? b.rssMb : null)} MB (${(data.bytes / MiB).toFixed(0)} MiB in), half ${fmt1(e.ok ? e.rssMb : null)} MB (${(halfBytes / MiB).toFixed(0)} MiB in)${flat === null ? '' : `, ratio ${flat.toFixed(2)}`}`,
  );
  if (b.ok && a.ok && a.dbRows !== null && b.dbRows !== null && all.events !== null) {
    console.log(`rows: baseline audit_logs ${fmtInt(a.dbRows)}, auditship largest table ${fmtInt(b.dbRows)}, expected ${fmtInt(all.events)}`);
  }
  console.log('baseline runs as transpiled JS with plain node (like dist/); both read from a warm page cache.');
  const rebuilt = builds.filter((x) => x.changed).map((x) => x.step);
  if (rebuilt.length)
    console.log(`WARNING: dist/ was rebuilt during the run (before step ${rebuilt.join(', ')}): auditship steps ran different builds and are not comparable`);

  if (args.keep) console.log(`kept ${relative(process.cwd(), work)}`);
  else await rm(work, { recursive: true, force: true });
  if (!args.dir)
    console.log(
      `data set kept for reuse: ${relative(process.cwd(), dirname(data.dir))} (${(data.bytes / MiB).toFixed(0)} MiB; delete .bench-data/ to reclaim)`,
    );

  console.log(
    JSON.stringify({
      bench: 'ingest',
      input: { dir: args.dir ?? relative(ROOT, data.dir), files: data.files.length, bytes: data.bytes, events: all.events, generated: data.generated },
      baselineVariant: args.variant,
      appended: { events: app.events, bytes: app.bytes, records: app.records, activeFileBytes: activeSize },
      half: { files: halfCount, bytes: halfBytes, events: halfEvents },
      steps: steps.map((s) => ({
        id: s.id,
        name: s.name,
        ok: s.ok,
        status: s.status,
        ms: s.ms,
        rssMb: s.rssMb,
        events: s.events,
        bytes: s.bytes,
        eventsPerS: s.eventsPerS,
        mbPerS: s.mbPerS,
        dbRows: s.dbRows,
        tables: s.tables,
        output: s.output,
      })),
      byHandComparison: same,
      ratios: {
        time: timeRatio === null ? null : Math.round(timeRatio * 100) / 100,
        byHand: byHandRatio === null ? null : Math.round(byHandRatio * 100) / 100,
        rss: rssRatio === null ? null : Math.round(rssRatio * 100) / 100,
        rerun: a2.ok && c.ok ? Math.round((a2.ms / c.ms) * 100) / 100 : null,
        incremental: d2.ok && d.ok ? Math.round((d2.ms / d.ms) * 100) / 100 : null,
      },
      flatness: { fullRssMb: b.ok ? b.rssMb : null, halfRssMb: e.ok ? e.rssMb : null, fullBytes: data.bytes, halfBytes },
      distRebuiltBefore: rebuilt,
      distBuiltAt: builds[0] ? new Date(builds[0].stamp).toISOString() : null,
    }),
  );
  if (steps.some((s) => !s.ok)) process.exitCode = 1;
}

const mode = process.argv.indexOf('--mode');
if (mode >= 0 && process.argv[mode + 1] === 'ui') {
  // `npm run bench -- --mode ui`: the UI benchmark (bench/ui.ts reads the same argv).
  await import('./ui.js');
} else {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
    process.exit(1);
  });
}
