/**
 * `npm run bench:lambda`: what a pipeline's state in S3 (src/jobs/remote-state.ts) costs a Lambda invocation, for a
 * DuckDB state file of about `--state-mb` (50) MB, against the S3 test server (test/s3-server); and the size of
 * the Lambda bundle (scripts/package-lambda.mjs).
 *
 *   node --import tsx bench/lambda.ts [--state-mb 50] [--runs 3] [--via proxy,direct] [--arch x86_64] [--no-bundle]
 *        [--keep] [--timeout 600]
 *
 * State: a pg_logs pipeline over generated csvlog (bench/generate.ts) into a DuckDB sink that stores the events,
 * one `auditship run` into a new file, the event count scaled until the file is within 5 % of --state-mb; the
 * file is cached in .bench-data/lambda-<mb>mb/ (params.json marks it; the logs are not kept). Each bench run
 * starts the S3 server (its own process) and puts that file in a container (a TMPDIR) beside a handler whose
 * pipeline has a `state:` section: the handler finds no object, takes the local file as the first state and
 * writes it back (If-None-Match: *) — the real path; not timed.
 *
 * Every step is the handler (dist/lambda/index.js) invoked as the Lambda runtime would, by test/lambda/invoke.mjs
 * in a child process under GNU time when present (wall, peak RSS): LAMBDA_TASK_ROOT is a directory holding
 * auditship.yaml (and the cwd), TMPDIR is the container; the DuckDB path is relative, so it lives in the
 * container. The pipeline has nothing to do (pg_logs over an empty directory), so the steps differ by the state:
 *   noop        no state section, a new container: the handler's start + run floor;
 *   noop (zip)  the same, from the zip of package-lambda extracted outside the repository (with the bundle);
 *   cold        with the state, a new container: fetch (download) + run + write-back (upload);
 *   warm        again in the same container: the local copy is current (GET If-None-Match → 304); a write-back.
 * Each is a new process: a warm Lambda container would also keep the process (modules loaded); this does not.
 * cold and warm run once per --via: `proxy` is the S3 server's URL (its recording, checking proxy, as the tests
 * use it), `direct` is s3rver behind it (no recording or digest checks; conditional writes are not checked
 * there). Fetch and write-back times come from the handler's JSON log ("State fetched." and "State written
 * back." carry bytes and ms); "state ready" is from the handler's start (its summary's time less its durationMs)
 * to that log line. A 304 is logged without its time: through the proxy, its recording gives how long the
 * server took. Medians over --runs; a table and a final JSON line (every sample too). Nothing is asserted.
 */
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { arch as hostArch, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createBucket, spawnS3Server } from '../test/s3-server/client.js';
import { distWarning, excerpt, fmt1, fmtInt, lastJson, mustRun, ROOT, runTimed, statusOf, TIME_BIN, type RunResult } from './common.js';
import { generateCsvlog, GENERATOR_VERSION } from './generate.js';

const MB = 1e6;
const MIB = 1 << 20;
const HANDLER = join(ROOT, 'dist', 'lambda', 'index.js');
const INVOKE = join(ROOT, 'test', 'lambda', 'invoke.mjs');
const KEYS = { access_key_id: 'S3RVER', secret_access_key: 'S3RVER' };
const BUCKET = 'bench-state';
const VIAS = ['proxy', 'direct'] as const;
type Via = (typeof VIAS)[number];

interface Args {
  stateMb: number;
  runs: number;
  via: Via[];
  arch: 'x86_64' | 'arm64';
  bundle: boolean;
  keep: boolean;
  timeoutS: number;
}

function parseArgs(argv: readonly string[]): Args {
  const a: Args = { stateMb: 50, runs: 3, via: [...VIAS], arch: 'x86_64', bundle: true, keep: false, timeoutS: 600 };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    if (k === '--state-mb') a.stateMb = Number(argv[++i]);
    else if (k === '--runs') a.runs = Number(argv[++i]);
    else if (k === '--via') a.via = String(argv[++i]).split(',') as Via[];
    else if (k === '--arch') a.arch = String(argv[++i]) as Args['arch'];
    else if (k === '--no-bundle') a.bundle = false;
    else if (k === '--keep') a.keep = true;
    else if (k === '--timeout') a.timeoutS = Number(argv[++i]);
    else if (k === '--help' || k === '-h') {
      console.log(
        'usage: npm run bench:lambda -- [--state-mb 50] [--runs 3] [--via proxy,direct] [--arch x86_64|arm64] [--no-bundle] [--keep] [--timeout 600]',
      );
      process.exit(0);
    } else throw new Error(`unknown argument ${k}`);
  }
  if (!(a.stateMb > 0) || !(a.runs >= 1) || !Number.isInteger(a.runs) || a.via.length === 0 || a.via.some((v) => !VIAS.includes(v)))
    throw new Error('bad arguments (see --help)');
  if (!['x86_64', 'arm64'].includes(a.arch)) throw new Error(`--arch x86_64 or arm64, not ${a.arch}`);
  return a;
}

// ---------------------------------------------------------------------------------------------------------
// The state file: generated once, reused
// ---------------------------------------------------------------------------------------------------------

/** DuckDB bytes per stored event (store_events: true, store_message: false), measured: ~218. */
const DB_BYTES_PER_EVENT = 210;
const SEED = 42;

interface StateData {
  db: string;
  bytes: number;
  events: number;
  logFiles: number;
}

interface StateParams {
  generatorVersion: number;
  stateMb: number;
  seed: number;
  events: number;
  logFiles: number;
  dbBytes: number;
}

async function stateData(mb: number, timeoutS: number): Promise<StateData> {
  const base = join(ROOT, '.bench-data', `lambda-${mb}mb`);
  const logs = join(base, 'logs');
  const db = join(base, 'state.duckdb');
  const marker = join(base, 'params.json');
  const have = existsSync(marker) ? (JSON.parse(await readFile(marker, 'utf8')) as StateParams) : null;
  const dbSize = existsSync(db) ? (await stat(db)).size : -1;
  if (have && have.generatorVersion === GENERATOR_VERSION && have.stateMb === mb && have.seed === SEED && have.dbBytes === dbSize && !existsSync(`${db}.wal`))
    return { db, bytes: dbSize, events: have.events, logFiles: have.logFiles };
  await rm(base, { recursive: true, force: true });
  await mkdir(logs, { recursive: true });
  const config = join(base, 'build.yaml');
  await writeFile(
    config,
    [
      'pipelines:',
      '  bench:',
      `    source: { type: pg_logs, path: ${JSON.stringify(logs)}, server: bench }`,
      '    sinks:',
      `      - { type: duckdb, path: ${JSON.stringify(db)} }`,
      '',
    ].join('\n'),
  );
  // One ingestion into a new file per attempt: a file that grew over several runs holds free blocks (DuckDB
  // does not compact), so its size per event is not predictable; a single ingestion's is nearly linear. The
  // next attempt scales the event count by how far the file missed; within 5 % is kept.
  const target = mb * MB;
  let events = Math.max(5000, Math.round(target / DB_BYTES_PER_EVENT));
  let size = 0;
  for (let attempt = 1; attempt <= 4; attempt++) {
    await rm(logs, { recursive: true, force: true });
    await mkdir(logs, { recursive: true });
    for (const f of [db, `${db}.wal`]) await rm(f, { force: true });
    console.log(`state: generating ${fmtInt(events)} events and storing them into ${db} (attempt ${attempt}) ...`);
    await generateCsvlog(logs, { events, seed: SEED, startTime: new Date('2024-05-01T12:00:00Z') });
    await mustRun(
      'auditship run (building the state)',
      process.execPath,
      [join(ROOT, 'bin', 'auditship.js'), 'run', '--config', config, '--json', '--quiet'],
      timeoutS,
    );
    size = (await stat(db)).size;
    if (Math.abs(size - target) <= target * 0.05) break;
    console.log(`state: ${fmt1(size / MB)} MB, not within 5 % of ${mb} MB`);
    events = Math.max(5000, Math.round((events * target) / size));
  }
  if (existsSync(`${db}.wal`)) throw new Error(`${db}.wal remains after auditship run: the state file was not closed cleanly`);
  const logFiles = (await readdir(logs)).length;
  await rm(logs, { recursive: true, force: true }); // only the DuckDB file is kept
  const params: StateParams = { generatorVersion: GENERATOR_VERSION, stateMb: mb, seed: SEED, events, logFiles, dbBytes: size };
  await writeFile(marker, JSON.stringify(params));
  return { db, bytes: size, events, logFiles };
}

// ---------------------------------------------------------------------------------------------------------
// Invoking the handler
// ---------------------------------------------------------------------------------------------------------

interface LogLine {
  time?: string;
  level?: string;
  msg?: string;
  bytes?: number;
  ms?: number;
  summary?: { durationMs?: number };
}

interface Invocation {
  run: RunResult;
  status: string;
  ok: boolean;
  /** The handler's own durationMs (from its start to its summary). */
  handlerMs: number | null;
  fetchBytes: number | null;
  fetchMs: number | null;
  /** "State is current." (304). */
  current: boolean;
  /** From the handler's start to the state's log line ("State fetched." / "State is current."). */
  readyMs: number | null;
  pushBytes: number | null;
  pushMs: number | null;
  error?: string;
  lines: LogLine[];
}

/**
 * Runs the handler in `container` (its TMPDIR) with the bundle directory `task` (auditship.yaml; also the cwd,
 * as on Lambda). `env -C` sets both for the child of GNU time, which then execs node: time measures node.
 */
async function invoke(
  handler: string,
  task: string,
  container: string,
  requestId: string,
  timeFile: string | null,
  timeoutS: number,
  outFile: string,
): Promise<Invocation> {
  await mkdir(container, { recursive: true });
  const run = await runTimed(
    '/usr/bin/env',
    [
      '-C',
      task,
      '-u',
      'NODE_OPTIONS',
      `LAMBDA_TASK_ROOT=${task}`,
      `TMPDIR=${container}`,
      'AUDITSHIP_TIME_MARGIN_MS=60000',
      'AWS_EC2_METADATA_DISABLED=true',
      'AWS_REGION=us-east-1',
      process.execPath,
      INVOKE,
      handler,
      '--request-id',
      requestId,
      '--timeout-ms',
      String(timeoutS * 1000),
    ],
    timeFile,
    timeoutS,
  );
  await writeFile(outFile, run.stdout + (run.stderr ? `\n--- stderr\n${run.stderr}` : ''));
  const lines: LogLine[] = [];
  for (const l of run.stdout.split('\n')) {
    if (!l.startsWith('{')) continue;
    try {
      lines.push(JSON.parse(l) as LogLine);
    } catch {
      // not a log line
    }
  }
  const outcome = lastJson(run.stdout, (v) => typeof v === 'object' && v !== null && ('result' in v || 'error' in v)) as {
    result?: { ok: boolean; durationMs: number };
    error?: string;
  } | null;
  const fetched = lines.find((l) => l.msg === 'State fetched.');
  const pushed = lines.find((l) => l.msg === 'State written back.');
  const currentAt = lines.findIndex((l) => l.msg === 'State is current.');
  // The handler's start: its summary's time less its durationMs (both in ms).
  const done = lines.find((l) => l.msg === 'Invocation done.');
  const startMs = done?.time && done.summary?.durationMs !== undefined ? Date.parse(done.time) - done.summary.durationMs : NaN;
  const stateLine = fetched ?? (currentAt >= 0 ? lines[currentAt] : undefined);
  const readyMs = stateLine?.time && Number.isFinite(startMs) ? Date.parse(stateLine.time) - startMs : null;
  const ok = run.exit === 0 && !run.timedOut && outcome?.result?.ok === true;
  return {
    run,
    status: ok ? 'ok' : outcome?.error ? `failed: ${outcome.error.slice(0, 200)}` : statusOf(run, timeoutS),
    ok,
    handlerMs: outcome?.result?.durationMs ?? null,
    fetchBytes: fetched?.bytes ?? (currentAt >= 0 ? 0 : null),
    // A 304 is logged without its time (the proxy's recording gives the server's side of it).
    fetchMs: fetched?.ms ?? null,
    current: currentAt >= 0,
    readyMs,
    pushBytes: pushed?.bytes ?? null,
    pushMs: pushed?.ms ?? null,
    ...(outcome?.error ? { error: outcome.error } : {}),
    lines,
  };
}

/** A bundle directory holding auditship.yaml: the pipeline over an empty log directory, with or without state. */
async function taskDir(dir: string, emptyLogs: string, state: { endpoint: string; key: string } | null): Promise<string> {
  await mkdir(dir, { recursive: true });
  await writeFile(
    join(dir, 'auditship.yaml'),
    [
      'pipelines:',
      '  bench:',
      `    source: { type: pg_logs, path: ${JSON.stringify(emptyLogs)}, server: bench }`,
      '    sinks:',
      '      - { type: duckdb, path: state/auditship.duckdb }',
      ...(state ? [`    state: ${JSON.stringify({ bucket: BUCKET, key: state.key, endpoint: state.endpoint, force_path_style: true, ...KEYS })}`] : []),
      '',
    ].join('\n'),
  );
  return dir;
}

// ---------------------------------------------------------------------------------------------------------
// The bundle
// ---------------------------------------------------------------------------------------------------------

interface Bundle {
  arch: string;
  zip?: string;
  zippedBytes?: number;
  unzippedBytes?: number;
  files?: number;
  /** Why there are no sizes. */
  note?: string;
}

async function buildBundle(arch: string, out: string, timeoutS: number): Promise<Bundle> {
  const r = await runTimed(process.execPath, [join(ROOT, 'scripts', 'package-lambda.mjs'), '--arch', arch, '--out', out], null, timeoutS);
  const m = /: [\d.]+ MiB \((\d+) bytes\) zipped, [\d.]+ MiB \((\d+) bytes\) unzipped, (\d+) files/.exec(r.stdout);
  if (r.exit !== 0 || !m) return { arch, note: `package-lambda failed (${statusOf(r, timeoutS)}): ${excerpt(r).split('\n').slice(-3).join(' / ')}` };
  return { arch, zip: join(out, `auditship-lambda-${arch}.zip`), zippedBytes: Number(m[1]), unzippedBytes: Number(m[2]), files: Number(m[3]) };
}

/** Extracts the zip outside the repository (nothing resolves from its node_modules); null when unzip is missing. */
async function extract(zip: string): Promise<string | null> {
  if (!existsSync('/usr/bin/unzip')) return null;
  const dir = await mkdtemp(join(tmpdir(), 'auditship-bench-lambda-zip-'));
  const r = await runTimed('/usr/bin/unzip', ['-q', zip, '-d', dir], null, 300);
  if (r.exit !== 0) {
    await rm(dir, { recursive: true, force: true });
    return null;
  }
  return dir;
}

// ---------------------------------------------------------------------------------------------------------
// Figures
// ---------------------------------------------------------------------------------------------------------

interface Sample {
  step: string;
  run: number;
  ms: number;
  rssMb: number | null;
  handlerMs: number | null;
  readyMs: number | null;
  fetchBytes: number | null;
  fetchMs: number | null;
  pushBytes: number | null;
  pushMs: number | null;
  /** Through the proxy: how long the server took over the state's GET and PUT (its recording). */
  serverGetMs: number | null;
  serverGetStatus: number | null;
  serverPutMs: number | null;
  status: string;
}

function median(xs: readonly (number | null)[]): number | null {
  const v = xs.filter((x): x is number => x !== null && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const m = v.length >> 1;
  return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
}

interface StepFigures {
  step: string;
  runs: number;
  failed: number;
  ms: number | null;
  rssMb: number | null;
  handlerMs: number | null;
  readyMs: number | null;
  fetchBytes: number | null;
  fetchMs: number | null;
  pushBytes: number | null;
  pushMs: number | null;
  serverGetMs: number | null;
  serverPutMs: number | null;
  /** Over the noop step's median wall (cold and warm). */
  overheadMs?: number | null;
  ratio?: number | null;
  rssOverNoopMb?: number | null;
  fetchMBps?: number | null;
  pushMBps?: number | null;
}

function figures(step: string, samples: readonly Sample[], noop: StepFigures | null): StepFigures {
  const s = samples.filter((x) => x.step === step);
  const good = s.filter((x) => x.status === 'ok');
  const f: StepFigures = {
    step,
    runs: s.length,
    failed: s.length - good.length,
    ms: median(good.map((x) => x.ms)),
    rssMb: median(good.map((x) => x.rssMb)),
    handlerMs: median(good.map((x) => x.handlerMs)),
    readyMs: median(good.map((x) => x.readyMs)),
    fetchBytes: median(good.map((x) => x.fetchBytes)),
    fetchMs: median(good.map((x) => x.fetchMs)),
    pushBytes: median(good.map((x) => x.pushBytes)),
    pushMs: median(good.map((x) => x.pushMs)),
    serverGetMs: median(good.map((x) => x.serverGetMs)),
    serverPutMs: median(good.map((x) => x.serverPutMs)),
  };
  if (noop && step !== noop.step && !step.startsWith('noop')) {
    f.overheadMs = f.ms !== null && noop.ms !== null ? f.ms - noop.ms : null;
    f.ratio = f.ms !== null && noop.ms ? f.ms / noop.ms : null;
    f.rssOverNoopMb = f.rssMb !== null && noop.rssMb !== null ? f.rssMb - noop.rssMb : null;
  }
  const rate = (bytes: number | null, ms: number | null) => (bytes && ms ? bytes / MB / (ms / 1000) : null);
  f.fetchMBps = rate(f.fetchBytes, f.fetchMs);
  f.pushMBps = rate(f.pushBytes, f.pushMs);
  return f;
}

const sec = (ms: number | null | undefined) => (ms === null || ms === undefined ? '-' : `${(ms / 1000).toFixed(2)} s`);
const msStr = (ms: number | null | undefined) => (ms === null || ms === undefined ? '-' : `${fmtInt(ms)} ms`);
const signed = (ms: number | null | undefined) => (ms === null || ms === undefined ? '-' : `${ms >= 0 ? '+' : '−'}${(Math.abs(ms) / 1000).toFixed(2)} s`);

// ---------------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const warn = await distWarning();
  if (warn) console.log(`note: ${warn}`);
  if (!existsSync(HANDLER)) throw new Error(`${HANDLER} is missing: run \`npm run build\` first`);
  const load = loadavg()[0]!;
  if (load > 0.5) console.log(`NOTE: load average ${load.toFixed(2)} at the start: other work on the machine shows in the figures`);
  const timed = existsSync(TIME_BIN);
  if (!timed) console.log(`note: ${TIME_BIN} (GNU time) is missing: no peak RSS (apt-get install time)`);
  const data = await stateData(args.stateMb, args.timeoutS);
  console.log(`state: ${fmt1(data.bytes / MB)} MB DuckDB file (${fmtInt(data.events)} events from ${data.logFiles} csvlog files), ${data.db}`);

  const work = join(ROOT, '.bench-data', `lambda-run-${Date.now()}-${process.pid}`);
  await mkdir(work, { recursive: true });
  // Containers (TMPDIRs) with short paths: a writer's read socket falls back to $TMPDIR/auditship-<hash>.read.sock
  // when <db>.read.sock is long, and that name is not checked against the 108 bytes a socket path may have.
  const containers = await mkdtemp(join(tmpdir(), 'abl-'));
  const emptyLogs = join(work, 'empty-logs');
  await mkdir(emptyLogs, { recursive: true });
  /** One invocation; `id` is its request id and names its GNU time output and its stdout in the work directory. */
  const call = (handler: string, task: string, container: string, id: string, timeIt = true) =>
    invoke(handler, task, container, id, timed && timeIt ? join(work, `time-${id}`) : null, args.timeoutS, join(work, `out-${id}.jsonl`));
  const samples: Sample[] = [];
  let bundle: Bundle | null = null;
  let zipDir: string | null = null;
  const seeded: Record<string, { pushMs: number | null; bytes: number | null }> = {};
  const s3 = await spawnS3Server({ dir: join(work, 's3') });
  try {
    if (args.bundle) {
      console.log(`bundle: node scripts/package-lambda.mjs --arch ${args.arch} --out ${join(work, 'bundle')} ...`);
      bundle = await buildBundle(args.arch, join(work, 'bundle'), args.timeoutS);
      if (bundle.note) console.log(`bundle: skipped — ${bundle.note}`);
      else {
        console.log(`bundle: ${fmt1(bundle.zippedBytes! / MIB)} MiB zipped, ${fmt1(bundle.unzippedBytes! / MIB)} MiB unzipped, ${bundle.files} files`);
        const nodeArch = args.arch === 'x86_64' ? 'x64' : 'arm64';
        if (nodeArch !== hostArch()) console.log(`bundle: built for ${args.arch}, this machine is ${hostArch()}: no "noop (zip)" step`);
        else {
          zipDir = await extract(bundle.zip!);
          if (zipDir) await taskDir(zipDir, emptyLogs, null);
          else console.log('bundle: /usr/bin/unzip is missing or failed: no "noop (zip)" step');
        }
      }
    }

    await createBucket(s3.url, BUCKET);
    const endpoints: Record<Via, string> = { proxy: s3.url, direct: s3.directUrl };
    const noopTask = await taskDir(join(work, 'task-noop'), emptyLogs, null);
    const stateTasks = {} as Record<Via, string>;
    for (const via of args.via) {
      stateTasks[via] = await taskDir(join(work, `task-${via}`), emptyLogs, { endpoint: endpoints[via], key: `${via}/auditship.duckdb` });
      // The first state: the built file in a container, where the handler finds no object and writes it back.
      const seed = join(containers, `seed-${via}`);
      await mkdir(join(seed, 'state'), { recursive: true });
      await copyFile(data.db, join(seed, 'state', 'auditship.duckdb'));
      const r = await call(HANDLER, stateTasks[via], seed, `seed-${via}`, false);
      if (!r.ok || r.pushBytes === null) throw new Error(`uploading the first state (${via}) failed: ${r.status}\n${excerpt(r.run)}`);
      seeded[via] = { pushMs: r.pushMs, bytes: r.pushBytes };
      console.log(`state: written to s3://${BUCKET}/${via}/auditship.duckdb through ${via} (${fmt1(r.pushBytes / MB)} MB in ${msStr(r.pushMs)})`);
      await rm(seed, { recursive: true, force: true });
    }

    const record = async (step: string, run: number, r: Invocation, via?: Via) => {
      // The proxy's recording of this invocation's state requests (cleared before each step).
      const recorded = via === 'proxy' ? await s3.requests({ bucket: BUCKET, keyPrefix: 'proxy/', clear: true }) : [];
      const get = recorded.find((q) => q.op === 'GetObject');
      const put = recorded.find((q) => q.op === 'PutObject');
      const s: Sample = {
        step,
        run,
        ms: r.run.ms,
        rssMb: r.run.rssMb,
        handlerMs: r.handlerMs,
        readyMs: r.readyMs,
        fetchBytes: r.fetchBytes,
        fetchMs: r.fetchMs,
        pushBytes: r.pushBytes,
        pushMs: r.pushMs,
        serverGetMs: get?.durationMs ?? null,
        serverGetStatus: get?.status ?? null,
        serverPutMs: put?.durationMs ?? null,
        status: r.status,
      };
      samples.push(s);
      const fetch = r.current
        ? `304${s.serverGetMs !== null ? ` (server ${msStr(s.serverGetMs)})` : ''}`
        : `${msStr(s.fetchMs)} (${fmt1((s.fetchBytes ?? 0) / MB)} MB)`;
      const state = s.fetchBytes !== null || s.pushBytes !== null ? `, state ready at ${msStr(s.readyMs)}, fetch ${fetch}, write-back ${msStr(s.pushMs)}` : '';
      console.log(
        `run ${run} ${step}: ${sec(s.ms)}, handler ${msStr(s.handlerMs)}, peak RSS ${fmtInt(s.rssMb)} MB${state}${s.status === 'ok' ? '' : ` — ${s.status}`}`,
      );
      if (s.status !== 'ok') console.log(excerpt(r.run));
    };

    for (let run = 1; run <= args.runs; run++) {
      await record('noop', run, await call(HANDLER, noopTask, join(containers, `noop-${run}`), `noop-${run}`));
      if (zipDir) await record('noop (zip)', run, await call(join(zipDir, 'index.mjs'), zipDir, join(containers, `zip-${run}`), `zip-${run}`));
      for (const via of args.via) {
        const container = join(containers, `${via}-${run}`);
        await s3.clearRequests();
        const cold = await call(HANDLER, stateTasks[via], container, `cold-${via}-${run}`);
        if (cold.ok && cold.current) cold.status = 'not cold: the state was current';
        await record(`cold (${via})`, run, cold, via);
        const warm = await call(HANDLER, stateTasks[via], container, `warm-${via}-${run}`);
        if (warm.ok && !warm.current) warm.status = 'not warm: the state was downloaded';
        await record(`warm (${via})`, run, warm, via);
      }
    }
  } finally {
    await s3.stop();
    if (zipDir) await rm(zipDir, { recursive: true, force: true });
    if (!args.keep) await rm(work, { recursive: true, force: true });
    if (!args.keep) await rm(containers, { recursive: true, force: true });
    else console.log(`kept: ${work} and ${containers}`);
  }

  const noop = figures('noop', samples, null);
  const steps = ['noop', ...(samples.some((s) => s.step === 'noop (zip)') ? ['noop (zip)'] : []), ...args.via.flatMap((v) => [`cold (${v})`, `warm (${v})`])];
  const results = steps.map((s) => (s === 'noop' ? noop : figures(s, samples, noop)));
  console.log('');
  console.log(`state ${fmt1(data.bytes / MB)} MB (${fmt1(data.bytes / MIB)} MiB); medians of ${args.runs} run(s); overhead = step − noop`);
  console.log('');
  console.log('| step | wall | handler | peak RSS | state ready | state fetch | write-back | overhead | × noop | RSS − noop | runs |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of results) {
    const fetch =
      r.fetchBytes === null
        ? '-'
        : r.fetchBytes === 0
          ? `304${r.serverGetMs !== null ? ` (server ${msStr(r.serverGetMs)})` : ''}`
          : `${msStr(r.fetchMs)} (${fmt1(r.fetchMBps)} MB/s)`;
    const push = r.pushMs === null ? '-' : `${msStr(r.pushMs)} (${fmt1(r.pushMBps)} MB/s)`;
    const rss = r.rssOverNoopMb === undefined || r.rssOverNoopMb === null ? '-' : `${r.rssOverNoopMb >= 0 ? '+' : '−'}${fmtInt(Math.abs(r.rssOverNoopMb))} MB`;
    console.log(
      `| ${r.step} | ${sec(r.ms)} | ${msStr(r.handlerMs)} | ${fmtInt(r.rssMb)} MB | ${msStr(r.readyMs)} | ${fetch} | ${push} | ${signed(r.overheadMs)} | ${r.ratio ? `${r.ratio.toFixed(2)}×` : '-'} | ${rss} | ${r.runs - r.failed}/${r.runs} |`,
    );
  }
  if (bundle)
    console.log(
      bundle.note
        ? `| bundle ${bundle.arch} | skipped: ${bundle.note} | | | | | | | | | |`
        : `| bundle ${bundle.arch} | ${fmt1(bundle.zippedBytes! / MIB)} MiB zipped | ${fmt1(bundle.unzippedBytes! / MIB)} MiB unzipped | ${bundle.files} files | | | | | | | |`,
    );
  const failed = samples.filter((s) => s.status !== 'ok');
  if (failed.length)
    console.log(
      `\n${failed.length} invocation(s) failed or were not what the step needs: ${failed.map((s) => `${s.step} run ${s.run}: ${s.status}`).join('; ')}`,
    );
  console.log(
    JSON.stringify({
      bench: 'lambda',
      loadAverage: { start: load, end: loadavg()[0] },
      stateMb: args.stateMb,
      stateBytes: data.bytes,
      events: data.events,
      runs: args.runs,
      via: args.via,
      seeded,
      results,
      samples,
      bundle: bundle
        ? {
            arch: bundle.arch,
            zippedBytes: bundle.zippedBytes ?? null,
            unzippedBytes: bundle.unzippedBytes ?? null,
            files: bundle.files ?? null,
            note: bundle.note ?? null,
          }
        : null,
    }),
  );
  if (failed.length) process.exitCode = 1;
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : err);
  process.exit(1);
});
