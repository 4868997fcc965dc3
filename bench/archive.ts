/**
 * `npm run bench:archive`: archiving csvlog files to a local S3 server (s3rver, test/s3-server) against
 * `gzip -6` on the same files in the same run.
 *
 *   node --import tsx bench/archive.ts [--mb 1024] [--forms files[,parquet,ndjson]] [--runs 1] [--keep] [--timeout 1800]
 *        [--sink '{"part_size":"8MB"}']   (extra archive sink settings, to compare)
 *
 * Data: generated once into .bench-data/archive-<mb>mb/logs (bench/generate.ts; params.json marks it), plus
 * one small newer file so that every generated file is finished (the newest file of a directory is the
 * active one and is not archived whole). Steps, each a child process under GNU time (wall, peak RSS):
 *   gzip:     `gzip -6 -c FILE > /dev/null` for every file, one after another (the baseline);
 *   files:    `auditship run` of a pg_logs pipeline with sinks [archive (form files, gzip level 6) to the
 *             S3 server, duckdb store_events: false] into a fresh bucket and DuckDB file;
 *   parquet / ndjson (with --forms): the same pipeline with that archive form (the events are parsed).
 * After each auditship step the archive is checked (`verify-archive`, not timed): every object re-hashed
 * against the manifest. The S3 server runs in its own process; auditship talks to s3rver directly (not
 * through the test proxy). Prints a table and a final JSON line; targets are printed, not asserted.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createBucket, spawnS3Server } from '../test/s3-server/client.js';
import { distWarning, excerpt, fmt1, fmtInt, lastJson, ROOT, runTimed, statusOf, TIME_BIN } from './common.js';
import { generateCsvlog, GENERATOR_VERSION } from './generate.js';

const MB = 1e6;

interface Args {
  mb: number;
  forms: string[];
  runs: number;
  keep: boolean;
  timeoutS: number;
  sink: Record<string, unknown>;
}

function parseArgs(argv: readonly string[]): Args {
  const a: Args = { mb: 1024, forms: ['files'], runs: 1, keep: false, timeoutS: 1800, sink: {} };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    if (k === '--mb') a.mb = Number(argv[++i]);
    else if (k === '--forms') a.forms = String(argv[++i]).split(',');
    else if (k === '--runs') a.runs = Number(argv[++i]);
    else if (k === '--keep') a.keep = true;
    else if (k === '--sink') a.sink = JSON.parse(String(argv[++i])) as Record<string, unknown>;
    else if (k === '--timeout') a.timeoutS = Number(argv[++i]);
    else if (k === '--help' || k === '-h') {
      console.log('usage: npm run bench:archive -- [--mb 1024] [--forms files,parquet,ndjson] [--runs 1] [--keep] [--timeout 1800]');
      process.exit(0);
    } else throw new Error(`unknown argument ${k}`);
  }
  if (!(a.mb > 0) || !(a.runs >= 1) || a.forms.some((f) => !['files', 'parquet', 'ndjson'].includes(f))) throw new Error('bad arguments (see --help)');
  return a;
}

/** ~356 bytes per generated event (bench/generate.ts). */
const BYTES_PER_EVENT = 356;

async function dataSet(mb: number): Promise<{ dir: string; files: string[]; bytes: number }> {
  const base = join(ROOT, '.bench-data', `archive-${mb}mb`);
  const logs = join(base, 'logs');
  const marker = join(base, 'params.json');
  const events = Math.round((mb * MB) / BYTES_PER_EVENT);
  const want = { generatorVersion: GENERATOR_VERSION, events, seed: 42 };
  const have = existsSync(marker) ? (JSON.parse(await readFile(marker, 'utf8')) as typeof want) : null;
  if (!have || have.generatorVersion !== want.generatorVersion || have.events !== want.events) {
    await rm(base, { recursive: true, force: true });
    await mkdir(logs, { recursive: true });
    console.log(`generating ${fmtInt(events)} events (~${mb} MB of csvlog) into ${logs} ...`);
    await generateCsvlog(logs, { events, seed: 42, startTime: new Date('2024-05-01T00:00:00Z') });
    // A newer, small file: the last generated file is then finished, not the active one.
    const names = (await readdir(logs)).sort();
    const lastTime = Math.max(...(await Promise.all(names.map(async (n) => (await stat(join(logs, n))).mtimeMs))));
    const active = join(logs, 'postgresql-2099-01-01_000000.csv');
    await writeFile(active, '');
    await utimes(active, (lastTime + 60_000) / 1000, (lastTime + 60_000) / 1000);
    await writeFile(marker, JSON.stringify(want));
  }
  const files = (await readdir(logs))
    .filter((n) => n.endsWith('.csv') && !n.startsWith('postgresql-2099'))
    .sort()
    .map((n) => join(logs, n));
  let bytes = 0;
  for (const f of files) bytes += (await stat(f)).size;
  return { dir: logs, files, bytes };
}

interface StepResult {
  step: string;
  ms: number;
  rssMb: number | null;
  mbPerS: number;
  status: string;
  objects?: number;
  storedMb?: number;
  verified?: string;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const warn = await distWarning();
  if (warn) console.log(`note: ${warn}`);
  if (!existsSync(TIME_BIN)) throw new Error(`${TIME_BIN} (GNU time) is missing: apt-get install time`);
  const data = await dataSet(args.mb);
  console.log(`data: ${data.files.length} csvlog files, ${fmt1(data.bytes / MB)} MB`);
  const work = join(ROOT, '.bench-data', `archive-run-${Date.now()}-${process.pid}`);
  await mkdir(work, { recursive: true });
  const s3 = await spawnS3Server({ dir: join(work, 's3') });
  const results: StepResult[] = [];
  try {
    for (let run = 1; run <= args.runs; run++) {
      // Baseline: gzip -6 of the same files, one after another.
      const script = data.files.map((f) => `gzip -6 -c '${f}' > /dev/null`).join(' && ');
      const g = await runTimed('sh', ['-c', script], join(work, `time-gzip-${run}`), args.timeoutS);
      results.push({ step: `gzip -6 (run ${run})`, ms: g.ms, rssMb: g.rssMb, mbPerS: data.bytes / MB / (g.ms / 1000), status: statusOf(g, args.timeoutS) });
      for (const form of args.forms) {
        const bucket = `bench-${form}-${run}-${Date.now() % 100000}`;
        await createBucket(s3.directUrl, bucket);
        const db = join(work, `${bucket}.duckdb`);
        const config = join(work, `${bucket}.yaml`);
        await writeFile(
          config,
          [
            'pipelines:',
            '  bench:',
            `    source: { type: pg_logs, path: "${data.dir}", server: bench }`,
            '    sinks:',
            `      - ${JSON.stringify({ type: 'archive', form, bucket, endpoint: s3.directUrl, force_path_style: true, region: 'us-east-1', access_key_id: 'S3RVER', secret_access_key: 'S3RVER', ...args.sink })}`,
            `      - { type: duckdb, path: "${db}", store_events: false }`,
            '',
          ].join('\n'),
        );
        const r = await runTimed(
          process.execPath,
          [join(ROOT, 'bin', 'auditship.js'), 'run', '--config', config, '--json', '--quiet'],
          join(work, `time-${bucket}`),
          args.timeoutS,
        );
        const summary = lastJson(r.stdout) as { pipelines?: { archives?: { objects: number; bytes: number }[] }[] } | null;
        const a = summary?.pipelines?.[0]?.archives?.[0];
        const step: StepResult = {
          step: `auditship ${form} (run ${run})`,
          ms: r.ms,
          rssMb: r.rssMb,
          mbPerS: data.bytes / MB / (r.ms / 1000),
          status: statusOf(r, args.timeoutS),
          ...(a ? { objects: a.objects, storedMb: a.bytes / MB } : {}),
        };
        if (r.exit !== 0) console.log(excerpt(r));
        const v = spawnSync(process.execPath, [join(ROOT, 'bin', 'auditship.js'), 'verify-archive', '--config', config, '--json'], {
          encoding: 'utf8',
          maxBuffer: 1 << 26,
        });
        const report = lastJson(v.stdout) as { archives: { ok: number; objects: number; problems: unknown[] }[] } | null;
        step.verified = report
          ? `${report.archives[0]!.ok}/${report.archives[0]!.objects} objects${report.archives[0]!.problems.length ? `, ${report.archives[0]!.problems.length} problems` : ''}`
          : `verify failed: ${v.stderr.slice(-300)}`;
        results.push(step);
        console.log(`${step.step}: ${fmt1(step.ms / 1000)} s, ${fmt1(step.mbPerS)} MB/s, peak RSS ${fmtInt(step.rssMb)} MB, ${step.verified}`);
      }
    }
  } finally {
    await s3.stop();
    if (!args.keep) await rm(work, { recursive: true, force: true });
  }
  console.log('');
  console.log('| step | wall | MB/s | peak RSS | objects | stored | check |');
  console.log('|---|---|---|---|---|---|---|');
  for (const r of results)
    console.log(
      `| ${r.step} | ${fmt1(r.ms / 1000)} s | ${fmt1(r.mbPerS)} | ${fmtInt(r.rssMb)} MB | ${r.objects ?? '-'} | ${r.storedMb === undefined ? '-' : `${fmt1(r.storedMb)} MB`} | ${r.verified ?? r.status} |`,
    );
  const ratios: Record<string, number> = {};
  for (let run = 1; run <= args.runs; run++) {
    const g = results.find((r) => r.step === `gzip -6 (run ${run})`)!;
    const f = results.find((r) => r.step === `auditship files (run ${run})`);
    if (f) ratios[`run${run}`] = g.ms / f.ms;
  }
  for (const [k, v] of Object.entries(ratios)) console.log(`${k}: auditship files form at ${(v * 100).toFixed(0)}% of gzip -6's speed (target ≥ 80%)`);
  const files = results.filter((r) => r.step.startsWith('auditship files'));
  if (files.length) console.log(`peak RSS of the files form: ${files.map((r) => fmtInt(r.rssMb)).join(', ')} MB (target ≤ 200 MB)`);
  console.log(JSON.stringify({ bench: 'archive', mb: data.bytes / MB, files: data.files.length, results, ratios }));
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : err);
  process.exit(1);
});
