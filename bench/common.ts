/**
 * What the benchmarks share: running a step as a child process under GNU time (wall time and peak RSS),
 * reading its JSON summary, number formatting, and the check that dist/ is current.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdir, readFile, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const TIME_BIN = '/usr/bin/time';

export interface RunResult {
  exit: number | null;
  signal: string | null;
  ms: number;
  rssMb: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export function tail(s: string, max: number): string {
  return s.length > max ? s.slice(s.length - max) : s;
}

export interface RunOptions {
  /** Most stdout kept (the end of it); default 1 MiB. */
  stdoutMax?: number;
  /** Children still running are kept here (for cleanup on Ctrl-C). */
  children?: Set<ChildProcess>;
}

/**
 * Runs `cmd argv` in its own process group, under `/usr/bin/time -f '%e %M' -o timeFile` unless timeFile is
 * null; after timeoutS seconds the whole group is killed.
 */
export async function runTimed(cmd: string, argv: readonly string[], timeFile: string | null, timeoutS: number, opts: RunOptions = {}): Promise<RunResult> {
  const useTime = timeFile !== null;
  const file = useTime ? TIME_BIN : cmd;
  const fileArgs = useTime ? ['-f', '%e %M', '-o', timeFile, cmd, ...argv] : [...argv];
  const stdoutMax = opts.stdoutMax ?? 1 << 20;
  const t0 = performance.now();
  return new Promise((resolvePromise) => {
    const child = spawn(file, fileArgs, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    opts.children?.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout = tail(stdout + d, stdoutMax)));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = tail(stderr + d, 1 << 20)));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      // the child was started in its own process group: end exactly that group
      if (child.pid !== undefined) {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }, timeoutS * 1000);
    child.on('error', (err) => {
      clearTimeout(timer);
      opts.children?.delete(child);
      resolvePromise({ exit: null, signal: null, ms: performance.now() - t0, rssMb: null, stdout, stderr: stderr + String(err), timedOut });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      opts.children?.delete(child);
      const ms = performance.now() - t0;
      let rssMb: number | null = null;
      let exit = code;
      if (useTime && timeFile) {
        void readFile(timeFile, 'utf8')
          .then((t) => {
            // GNU time prints "Command exited with non-zero status N" / "Command terminated by signal N" first
            const lines = t.trim().split('\n');
            const m = /^([\d.]+) (\d+)$/.exec(lines[lines.length - 1] ?? '');
            if (m) rssMb = Number(m[2]) / 1024;
            if (/terminated by signal (\d+)/.test(t)) exit = null;
          })
          .catch(() => undefined)
          .finally(() => resolvePromise({ exit, signal: signal ?? null, ms, rssMb, stdout, stderr, timedOut }));
      } else resolvePromise({ exit, signal: signal ?? null, ms, rssMb, stdout, stderr, timedOut });
    });
  });
}

/** The last line of stdout that parses as JSON and passes `accept`. */
export function lastJson(stdout: string, accept: (v: unknown) => boolean = () => true): unknown {
  for (const l of stdout.trim().split('\n').reverse()) {
    const s = l.trim();
    if (!s.startsWith('{') && !s.startsWith('[')) continue;
    try {
      const v: unknown = JSON.parse(s);
      if (accept(v)) return v;
    } catch {
      // not JSON
    }
  }
  return null;
}

export function fmtInt(n: number | null | undefined): string {
  return n === null || n === undefined || !Number.isFinite(n) ? '-' : Math.round(n).toLocaleString('en-US');
}

export function fmt1(n: number | null | undefined): string {
  return n === null || n === undefined || !Number.isFinite(n) ? '-' : n.toFixed(1);
}

/** A warning when dist/ (which the benchmarks run) is missing or older than src/. */
export async function distWarning(): Promise<string | null> {
  const main = join(ROOT, 'dist', 'cli', 'main.js');
  const st = await stat(main).catch(() => null);
  if (!st) return 'dist/cli/main.js is missing: run `npm run build` first';
  let newest = 0;
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.name.endsWith('.ts')) newest = Math.max(newest, (await stat(p)).mtimeMs);
    }
  };
  await walk(join(ROOT, 'src'));
  return newest > st.mtimeMs ? 'dist/ is older than src/: run `npm run build` for current numbers' : null;
}

/** A few readable lines explaining a failed child. */
export function excerpt(r: RunResult): string {
  const lines: string[] = [];
  const err = r.stderr.trim();
  if (err) lines.push(...err.split('\n').slice(-10));
  if (lines.length === 0 && r.stdout.trim()) lines.push(...r.stdout.trim().split('\n').slice(-6));
  return lines.map((l) => (l.length > 300 ? l.slice(0, 300) + '...' : l)).join('\n');
}

export function statusOf(r: RunResult, timeoutS: number): string {
  if (r.timedOut) return `TIMEOUT ${timeoutS}s`;
  if (r.exit === 0) return 'ok';
  return r.exit === null ? `KILLED ${r.signal ?? ''}`.trim() : `exit ${r.exit}`;
}

/** A step that failed for a reason worth printing (the other steps still run). */
export class StepError extends Error {}

/** Runs a child that must succeed; throws a StepError with its errors otherwise. */
export async function mustRun(what: string, cmd: string, argv: readonly string[], timeoutS: number, opts: RunOptions = {}): Promise<RunResult> {
  const r = await runTimed(cmd, argv, null, timeoutS, opts);
  if (r.exit !== 0 || r.timedOut) throw new StepError(`${what}: ${statusOf(r, timeoutS)}\n${excerpt(r)}`);
  return r;
}
