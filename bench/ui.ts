/**
 * `npm run bench:ui` (also `npm run bench -- --mode ui`): the latency of every query the web UI makes, on a
 * store of 10 M events.
 *
 *   node --import tsx bench/ui.ts [--events 10000000] [--runs 40] [--db FILE] [--keep]
 *
 * Data: bench/generate.ts writes the csvlog once into .bench-data/ui-<events>/logs, and `auditship ingest`
 * loads it into .bench-data/ui-<events>/audit.duckdb (both reused while their parameters match). The
 * queries then run as `auditship ui` runs them: the database opened read-only (memory_limit 1GB, 2
 * threads), AuditQueries over one connection, each query a realistic mix of filters drawn from the data
 * (users, classes, commands, objects, outcome, time ranges; pages followed by their cursor; events opened by
 * id; free-text searches on rows of their own, common words and selective terms apart). The facet cache is bypassed: every facets call is cold. Prints p50/p95/max per
 * query kind and a final JSON line.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { ROOT, runTimed } from './common.js';
import { generateCsvlog, GENERATOR_VERSION } from './generate.js';
import { openDatabase } from '../src/sinks/duckdb/database.js';
import { AuditQueries, duckdbRunner, type EventFilter } from '../src/query/index.js';
import { Rng } from '../test/helpers/csvlog-gen.js';

interface Args {
  events: number;
  runs: number;
  db?: string;
  keep: boolean;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { events: 10_000_000, runs: 40, keep: false };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = () => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`${k} needs a value`);
      return x;
    };
    if (k === '--events') a.events = Number(v().replaceAll('_', ''));
    else if (k === '--runs') a.runs = Number(v());
    else if (k === '--db') a.db = v();
    else if (k === '--keep') a.keep = true;
    else if (k === '--mode') v();
    else throw new Error(`unknown argument ${k}`);
  }
  return a;
}

async function prepare(args: Args): Promise<string> {
  if (args.db) return args.db;
  const dir = join(ROOT, '.bench-data', `ui-${args.events}`);
  const meanGapMs = (30 * 86400e3) / (args.events * 1.05); // a month of activity (about 5 % of records are not audit entries)
  const params = JSON.stringify({ events: args.events, generator: GENERATOR_VERSION, seed: 7, meanGapMs });
  const marker = join(dir, 'params.json');
  const db = join(dir, 'audit.duckdb');
  if (existsSync(marker) && (await readFile(marker, 'utf8')) === params && existsSync(db)) return db;
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  let t = performance.now();
  process.stderr.write(`generating ${args.events.toLocaleString('en-US')} events of csvlog into ${dir}/logs ...\n`);
  const gen = await generateCsvlog(join(dir, 'logs'), { events: args.events, seed: 7, fileBytes: 256 << 20, meanGapMs });
  process.stderr.write(`  ${(gen.bytes / 2 ** 20).toFixed(0)} MiB in ${gen.files.length} files, ${((performance.now() - t) / 1000).toFixed(1)} s\n`);
  t = performance.now();
  process.stderr.write('ingesting with auditship ...\n');
  const r = await runTimed(process.execPath, [join(ROOT, 'bin', 'auditship.js'), 'ingest', '--db', db, '--quiet', '--json', join(dir, 'logs')], null, 7200);
  if (r.exit !== 0) throw new Error(`ingest failed: ${r.stderr.slice(-500)}`);
  process.stderr.write(`  ${((performance.now() - t) / 1000).toFixed(1)} s\n`);
  await rm(join(dir, 'logs'), { recursive: true, force: true }); // 3.6 GB; the database is what is measured
  await writeFile(marker, params);
  return db;
}

function quantile(sorted: number[], q: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const dbPath = await prepare(args);
  const db = await openDatabase(dbPath, { readOnly: true, memoryLimit: '1GB', threads: 2 });
  const runner = duckdbRunner(db.connection);
  const fresh = () => new AuditQueries(runner); // no facet cache between runs
  const q = fresh();
  const facets = await q.facets();
  const [count] = await runner.all('SELECT count(*)::DOUBLE AS n FROM audit_events');
  const lo = Date.parse(facets.min_time!),
    hi = Date.parse(facets.max_time!) + 1;
  const objects = (await q.topObjects({}, 40)).map((o) => o.key);
  const rng = new Rng(11);
  const words = ['customers', 'orders', 'pgbench_accounts', 'UPDATE', 'email', 'GRANT', 'invoice', 'zzz-no-match'];
  const range = (): Pick<EventFilter, 'from' | 'to'> => {
    const k = rng.int(0, 3);
    if (k === 0) return {};
    const span = [3600e3, 86400e3, 7 * 86400e3][k - 1]!;
    const to = lo + rng.float() * (hi - lo);
    return { from: Math.max(lo, to - span), to };
  };
  const randomFilter = (): EventFilter => {
    const f: EventFilter = range();
    const k = rng.int(0, 5);
    if (k === 0) f.user = [rng.pick(facets.users)];
    if (k === 1) f.class = [rng.pick(facets.classes)];
    if (k === 2) {
      f.user = [rng.pick(facets.users)];
      f.command = [rng.pick(facets.commands)];
    }
    if (k === 3) f.object = rng.pick(objects).split('.').pop()!;
    if (k === 4) f.outcome = 'error';
    return f;
  };
  // Free text, measured on rows of its own: the words above (six of eight are in nearly every block of 4,096
  // events — SQL keywords, table names — so the text index cannot narrow them), and selective terms of the kind
  // people look for (an id, an address, a name, a word that is nowhere), which it narrows.
  const textFilter = (): EventFilter => ({ ...range(), text: rng.pick(words) });
  const selective = ['salary', 'invoice', '2382417', 'tmp_import_9507', '10.1.2.3', 'zzz-no-match'];
  const selectiveFilter = (): EventFilter => ({ ...range(), text: rng.pick(selective) });
  const kinds: Record<string, (i: number) => Promise<unknown>> = {
    facets: () => fresh().facets(),
    'events, first page': () => q.listEvents(randomFilter(), { limit: 50 }),
    'events, next pages (5 deep)': async () => {
      const f = randomFilter();
      let page = await q.listEvents(f, { limit: 50 });
      const times: number[] = [];
      for (let i = 0; i < 5 && page.next; i++) {
        const t = performance.now();
        page = await q.listEvents(f, { limit: 50, after: page.next });
        times.push(performance.now() - t);
      }
      return { inner: times };
    },
    'event + session timeline': async () => {
      const page = await q.listEvents({ from: lo + rng.float() * (hi - lo - 3600e3), to: hi }, { limit: 50 });
      const id = page.rows[rng.int(0, page.rows.length - 1)]?.id;
      const t = performance.now();
      if (id) await q.getEvent(id);
      return { inner: [performance.now() - t] };
    },
    'chart: events over time by class': () => q.eventsOverTime(randomFilter()),
    'chart: top users': () => q.topUsers(randomFilter(), 10),
    'chart: top objects': () => q.topObjects(randomFilter(), 10),
    'chart: failed logins': () => q.logonFailures(range()),
    'free text: events, first page': () => q.listEvents(textFilter(), { limit: 50 }),
    'free text: chart over time': () => q.eventsOverTime(textFilter()),
    'free text: top users': () => q.topUsers(textFilter(), 10),
    'free text, selective: first page': () => q.listEvents(selectiveFilter(), { limit: 50 }),
    'free text, selective: chart': () => q.eventsOverTime(selectiveFilter()),
    'free text, selective: top users': () => q.topUsers(selectiveFilter(), 10),
  };
  const results: { query: string; runs: number; p50: number; p95: number; max: number }[] = [];
  process.stderr.write(
    `store: ${Number(count!['n']).toLocaleString('en-US')} events, ${facets.users.length} users, ${facets.commands.length} commands; ${args.runs} runs per query\n`,
  );
  for (const [name, fn] of Object.entries(kinds)) {
    await fn(-1); // warm-up: the first touch of each column reads it from disk
    const times: number[] = [];
    for (let i = 0; i < args.runs; i++) {
      const t = performance.now();
      const inner = await fn(i);
      const total = performance.now() - t;
      if (inner && typeof inner === 'object' && 'inner' in inner) times.push(...(inner as { inner: number[] }).inner);
      else times.push(total);
    }
    times.sort((a, b) => a - b);
    results.push({ query: name, runs: times.length, p50: quantile(times, 0.5), p95: quantile(times, 0.95), max: times[times.length - 1]! });
  }
  await db.close();
  const w = Math.max(...results.map((r) => r.query.length));
  process.stdout.write(`\n${'query'.padEnd(w)}   runs    p50 ms    p95 ms    max ms\n`);
  for (const r of results) {
    process.stdout.write(
      `${r.query.padEnd(w)}  ${String(r.runs).padStart(5)}  ${r.p50.toFixed(1).padStart(8)}  ${r.p95.toFixed(1).padStart(8)}  ${r.max.toFixed(1).padStart(8)}\n`,
    );
  }
  const worst = Math.max(...results.filter((r) => !r.query.startsWith('free text')).map((r) => r.p95));
  const worstText = Math.max(...results.filter((r) => r.query.startsWith('free text')).map((r) => r.p95));
  const worstSelective = Math.max(...results.filter((r) => r.query.startsWith('free text, selective')).map((r) => r.p95));
  process.stdout.write(
    `\nworst p95 without free text: ${worst.toFixed(1)} ms; with free text: ${worstText.toFixed(1)} ms; selective terms: ${worstSelective.toFixed(1)} ms (target ≤ 300 ms)\n`,
  );
  process.stdout.write(
    JSON.stringify({ events: Number(count!['n']), runs: args.runs, results, worstP95: worst, worstP95FreeText: worstText, worstP95Selective: worstSelective }) +
      '\n',
  );
}

await main();
