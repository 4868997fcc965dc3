/**
 * `npm run bench:es`: pgaudit events → the Elasticsearch sink, against the test server of test/es-server
 * (its own process; no real cluster can run on this machine kind).
 *
 *   node --import tsx bench/es.ts [--events 1000000] [--slow-events 200000] [--slow-delay-ms 300]
 *        [--flavor elasticsearch|opensearch] [--steps fast,slow] [--keep] [--timeout 1200]
 *
 * Steps (each `auditship run` a child under GNU time: wall and peak RSS):
 *   fast: every event of a generated csvlog set (bench/generate.ts, cached in .bench-data/es-<events>/)
 *         through a pg_logs pipeline [elasticsearch, duckdb with store_events: false (checkpoints only)]
 *         into a fresh DuckDB file and an empty server;
 *         documents/s = documents the server holds / wall. Target ≥ 30,000/s, ≤ 300 MB.
 *   slow: the same pipeline on the first files (about --slow-events events) while the server answers
 *         every bulk request after --slow-delay-ms: memory must stay bounded (backpressure), every event
 *         still delivered once.
 * Each step checks that the server holds exactly as many event documents (auditship-pgaudit-*) as DuckDB stored
 * events; documents/s counts every document delivered, the correlation documents (sessions, logon failures) too.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { createInterface } from 'node:readline';
import { distWarning, fmt1, fmtInt, lastJson, ROOT, runTimed } from './common.js';
import { generateCsvlog, GENERATOR_VERSION, type FileInfo } from './generate.js';

const MiB = 1024 * 1024;
const START_TIME = '2024-03-01T00:00:00.000Z';

interface Args {
  events: number;
  slowEvents: number;
  slowDelayMs: number;
  flavor: string;
  steps: string[];
  keep: boolean;
  timeoutS: number;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { events: 1_000_000, slowEvents: 200_000, slowDelayMs: 300, flavor: 'elasticsearch', steps: ['fast', 'slow'], keep: false, timeoutS: 1200 };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]!;
    const v = () => argv[++i] ?? '';
    if (k === '--events') a.events = Number(v());
    else if (k === '--slow-events') a.slowEvents = Number(v());
    else if (k === '--slow-delay-ms') a.slowDelayMs = Number(v());
    else if (k === '--flavor') a.flavor = v();
    else if (k === '--steps') a.steps = v().split(',');
    else if (k === '--keep') a.keep = true;
    else if (k === '--timeout') a.timeoutS = Number(v());
    else throw new Error(`unknown option ${k}`);
  }
  return a;
}

async function dataSet(events: number): Promise<{ dir: string; files: FileInfo[]; bytes: number }> {
  const base = join(ROOT, '.bench-data', `es-${events}`);
  const logs = join(base, 'logs');
  const marker = join(base, 'params.json');
  const fileBytes = Math.max(MiB, Math.min(64 * MiB, Math.round((events * 350) / 5)));
  const want = { generatorVersion: GENERATOR_VERSION, events, fileBytes, startTime: START_TIME };
  if (existsSync(marker)) {
    const m = JSON.parse(await readFile(marker, 'utf8')) as typeof want & { files: FileInfo[]; bytes: number };
    if (m.generatorVersion === want.generatorVersion && m.events === events && m.fileBytes === fileBytes) return { dir: logs, files: m.files, bytes: m.bytes };
  }
  await rm(base, { recursive: true, force: true });
  await mkdir(logs, { recursive: true });
  process.stdout.write(`generating ${fmtInt(events)} events into ${relative(process.cwd(), logs)} ... `);
  const t0 = performance.now();
  const res = await generateCsvlog(logs, { events, fileBytes, seed: 42, startTime: new Date(START_TIME) });
  console.log(`${res.files.length} files, ${(res.bytes / MiB).toFixed(1)} MiB, ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  await writeFile(marker, JSON.stringify({ ...want, files: res.perFile, bytes: res.bytes }, null, 2) + '\n');
  return { dir: logs, files: res.perFile, bytes: res.bytes };
}

async function startServer(flavor: string): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'test/es-server/server.ts'), '--port', '0', '--flavor', flavor], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const rl = createInterface({ input: child.stdout });
  const url = await new Promise<string>((resolve, reject) => {
    rl.once('line', (line) => {
      try {
        resolve((JSON.parse(line) as { url: string }).url);
      } catch (e) {
        reject(e);
      }
    });
    child.once('exit', (code) => reject(new Error(`the test server exited (${code})`)));
  });
  return { url, child };
}

async function call(url: string, method: string, path: string, body?: unknown): Promise<unknown> {
  const r = await fetch(url + path, { method, headers: { 'content-type': 'application/json' }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  return r.json();
}

interface StepResult {
  ok: boolean;
  error?: string;
  events?: number;
  docs?: number;
  eventDocs?: number;
  correlationDocs?: number;
  wallS?: number;
  docsPerS?: number;
  peakRssMb?: number | null;
  duckdbEvents?: number;
  equal?: boolean;
  created?: number;
  duplicates?: number;
  retried?: number;
}

async function step(name: string, url: string, logsDir: string, work: string, args: Args): Promise<StepResult> {
  const db = join(work, `${name}.duckdb`);
  const config = join(work, `${name}.yaml`);
  await writeFile(
    config,
    [
      'pipelines:',
      '  logs:',
      '    source:',
      '      type: pg_logs',
      `      path: ${JSON.stringify(logsDir)}`,
      '    sinks:',
      '      - type: elasticsearch',
      `        url: ${JSON.stringify(url)}`,
      '      - type: duckdb',
      `        path: ${JSON.stringify(db)}`,
      '        store_events: false',
      '',
    ].join('\n'),
  );
  const r = await runTimed(
    process.execPath,
    [join(ROOT, 'bin/auditship.js'), 'run', '--config', config, '--quiet', '--json'],
    join(work, `time-${name}.txt`),
    args.timeoutS,
  );
  const summary = lastJson(r.stdout) as { pipelines?: { stored?: number; search?: { created: number; duplicates: number; retried: number }[] }[] } | null;
  if (r.exit !== 0) return { ok: false, error: `exit ${r.exit}: ${r.stderr.slice(-600)}` };
  const p = summary?.pipelines?.[0];
  await call(url, 'POST', '/auditship-*/_refresh').catch(() => {});
  const stats = (await call(url, 'GET', '/_test/stats')) as { docs: number };
  // The event documents are checked against the store; the rest are the correlation documents (sessions, logon
  // failures) that the same pipeline delivers beside them.
  const eventDocs = ((await call(url, 'GET', '/auditship-pgaudit-*/_count')) as { count: number }).count;
  const wallS = r.ms / 1000;
  const events = p?.stored ?? 0;
  return {
    ok: eventDocs === events,
    events,
    docs: stats.docs,
    eventDocs,
    correlationDocs: stats.docs - eventDocs,
    wallS,
    docsPerS: Math.round(stats.docs / wallS),
    peakRssMb: r.rssMb,
    duckdbEvents: events,
    equal: eventDocs === events,
    created: p?.search?.[0]?.created,
    duplicates: p?.search?.[0]?.duplicates,
    retried: p?.search?.[0]?.retried,
    ...(eventDocs === events ? {} : { error: `the server holds ${eventDocs} event documents, DuckDB ${events} events` }),
  };
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const warn = await distWarning();
  if (warn) console.log(`NOTE: ${warn}`);
  const data = await dataSet(args.events);
  const work = join(ROOT, '.bench-data', `es-run-${new Date().toISOString().replace(/[-:]/g, '').slice(0, 15)}-${process.pid}`);
  await mkdir(work, { recursive: true });
  const { url, child } = await startServer(args.flavor);
  const results: Record<string, StepResult> = {};
  try {
    if (args.steps.includes('fast')) {
      console.log(`fast: ${fmtInt(args.events)} events (${(data.bytes / MiB).toFixed(0)} MiB) → ${args.flavor} test server + DuckDB`);
      results['fast'] = await step('fast', url, data.dir, work, args);
      console.log(`  ${JSON.stringify(results['fast'])}`);
    }
    if (args.steps.includes('slow')) {
      // The first files, about --slow-events events.
      const slowDir = join(work, 'slow-logs');
      await mkdir(slowDir, { recursive: true });
      let n = 0;
      for (const f of data.files) {
        if (n >= args.slowEvents) break;
        const { link } = await import('node:fs/promises');
        await link(f.file, join(slowDir, f.file.slice(f.file.lastIndexOf('/') + 1)));
        n += f.events;
      }
      await call(url, 'POST', '/_test/reset');
      await call(url, 'POST', '/_test/faults', { delayMs: args.slowDelayMs });
      console.log(`slow: ~${fmtInt(n)} events, every bulk answered after ${args.slowDelayMs} ms`);
      results['slow'] = await step('slow', url, slowDir, work, args);
      console.log(`  ${JSON.stringify(results['slow'])}`);
    }
  } finally {
    child.kill('SIGKILL');
    if (!args.keep) await rm(work, { recursive: true, force: true });
  }
  const f = results['fast'];
  const s = results['slow'];
  console.log('\nstep  figure                         value        target');
  if (f) {
    console.log(
      `fast  documents/s                    ${fmtInt(f.docsPerS ?? null).padStart(10)}   >= 30,000  ${(f.docsPerS ?? 0) >= 30_000 ? 'met' : 'MISSED'}`,
    );
    console.log(
      `fast  peak RSS MB                    ${fmt1(f.peakRssMb ?? null).padStart(10)}   <= 300     ${(f.peakRssMb ?? 999) <= 300 ? 'met' : 'MISSED'}`,
    );
    console.log(
      `fast  event documents = events       ${String(f.equal).padStart(10)}   (${f.eventDocs ?? 0} + ${f.correlationDocs ?? 0} correlation documents)`,
    );
  }
  if (s) {
    console.log(
      `slow  peak RSS MB (server slow)      ${fmt1(s.peakRssMb ?? null).padStart(10)}   bounded    ${(s.peakRssMb ?? 999) <= 300 ? 'met' : 'MISSED'}`,
    );
    console.log(
      `slow  event documents = events       ${String(s.equal).padStart(10)}   (${s.eventDocs ?? 0} + ${s.correlationDocs ?? 0} correlation documents)`,
    );
  }
  console.log(JSON.stringify({ bench: 'es', at: new Date().toISOString(), params: args, steps: results }));
  if (Object.values(results).some((r) => !r.ok)) process.exitCode = 1;
}

await main();
