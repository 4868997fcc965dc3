/**
 * Running the built CLI (bin/auditship.js → dist/) as a user would — including killing it — and reading
 * its DuckDB file after it exited (DuckDB locks the file while a process holds it).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DuckDBInstance } from '@duckdb/node-api';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** The CLI under test; AUDITSHIP_BIN runs the same tests against another build. */
export const BIN = process.env['AUDITSHIP_BIN'] ?? join(ROOT, 'bin', 'auditship.js');

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  uid?: number;
  gid?: number;
}

export type CliChild = ChildProcess & { result: Promise<RunResult> };

let reachable = false;

/**
 * A CLI run as another user must reach the checkout: a clone inside a `mktemp -d` directory (mode 0700) is
 * not. Directories above ROOT get o+x (traverse, not list) for the run and their modes back at exit.
 */
function makeCheckoutReachable(): void {
  if (reachable) return;
  reachable = true;
  const changed: [string, number][] = [];
  for (let d = dirname(ROOT); ; d = dirname(d)) {
    const mode = statSync(d).mode & 0o7777;
    if ((mode & 0o001) === 0) {
      chmodSync(d, mode | 0o001);
      changed.push([d, mode]);
    }
    if (dirname(d) === d) break;
  }
  if (changed.length)
    process.on('exit', () => {
      for (const [d, mode] of changed) {
        try {
          chmodSync(d, mode);
        } catch {
          /* gone */
        }
      }
    });
}

/** Starts `auditship ARGS`; await `.result` for the exit. */
export function spawnCli(args: string[], options: SpawnOptions = {}): CliChild {
  if (options.uid !== undefined && options.uid !== process.getuid?.()) makeCheckoutReachable();
  const started = Date.now();
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(options.uid !== undefined ? { uid: options.uid } : {}),
    ...(options.gid !== undefined ? { gid: options.gid } : {}),
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  const result = new Promise<RunResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr, ms: Date.now() - started }));
  });
  return Object.assign(child, { result });
}

export function runCli(args: string[], options: SpawnOptions = {}): Promise<RunResult> {
  return spawnCli(args, options).result;
}

/** The --json summary of `auditship ingest`. */
export interface IngestSummary {
  events: number;
  stored: number;
  duplicates: number;
  quarantined: number;
  filesRead: number;
  filesSkipped: number;
  durationMs: number;
  errors: { file: string; message: string }[];
  ok: boolean;
  [key: string]: unknown;
}

export interface IngestRun extends RunResult {
  summary: IngestSummary;
}

/** Runs `auditship ingest --db DB --json [EXTRA] PATHS` and parses the summary; throws when there is none. */
export async function ingest(db: string, paths: string[], extra: string[] = [], options: SpawnOptions = {}): Promise<IngestRun> {
  const r = await runCli(['ingest', '--db', db, '--json', ...extra, ...paths], options);
  const last = r.stdout.trim().split('\n').pop() ?? '';
  let summary: IngestSummary;
  try {
    summary = JSON.parse(last) as IngestSummary;
  } catch {
    throw new Error(
      `ingest printed no JSON summary (exit ${r.code}, signal ${r.signal})\nstdout: ${r.stdout.slice(0, 2000)}\nstderr: ${r.stderr.slice(0, 2000)}`,
    );
  }
  return { ...r, summary };
}

/** Runs ingest and throws unless it succeeded (exit 0, ok); returns the summary. */
export async function ingestOk(db: string, paths: string[], extra: string[] = []): Promise<IngestSummary> {
  const r = await ingest(db, paths, extra);
  if (r.code !== 0 || !r.summary.ok) {
    throw new Error(`ingest failed (exit ${r.code}): ${JSON.stringify(r.summary)}\nstderr: ${r.stderr.slice(0, 2000)}`);
  }
  return r.summary;
}

/** `auditship query --db DB --format json SQL`, parsed. */
export async function queryCli(db: string, sql: string): Promise<Record<string, unknown>[]> {
  const r = await runCli(['query', '--db', db, '--format', 'json', sql]);
  if (r.code !== 0) throw new Error(`query failed (exit ${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, unknown>[];
}

export type Query = (sql: string) => Promise<Record<string, unknown>[]>;

/** Opens the DuckDB file in this process (read-only unless told), runs `fn`, closes it. */
export async function withDb<T>(path: string, fn: (q: Query) => Promise<T>, readOnly = true): Promise<T> {
  const instance = await DuckDBInstance.create(path, readOnly ? { access_mode: 'READ_ONLY' } : {});
  const conn = await instance.connect();
  try {
    await conn.run("SET TimeZone = 'UTC'");
    return await fn(async (sql) => (await conn.runAndReadAll(sql)).getRowObjectsJson());
  } finally {
    conn.closeSync();
    instance.closeSync();
  }
}

/** The rows of one query against a DuckDB file no process holds. */
export function queryDb(path: string, sql: string): Promise<Record<string, unknown>[]> {
  return withDb(path, (q) => q(sql));
}

/** One number out of a one-row, one-column query. */
export async function scalar(path: string, sql: string): Promise<number> {
  const rows = await queryDb(path, sql);
  return Number(Object.values(rows[0]!)[0]);
}

/** A fresh directory under the system temp dir, and its cleanup. */
export function scratchDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `auditship-${prefix}-`));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Non-empty lines. */
export function lines(text: string): string[] {
  return text.split('\n').filter((l) => l.trim() !== '');
}

/** True when the text holds something like a JavaScript stack trace. */
export function hasStackTrace(text: string): boolean {
  return /^\s+at .+(\(.*:\d+:\d+\)|:\d+:\d+)$/m.test(text);
}

/** `auditship verify --json` on a store: its report (exit 0 and ok), or a failure naming what did not verify. */
export async function assertLedgerVerifies(db: string, context = ''): Promise<{ streams: { stream: string; rows: number; entries: number }[] }> {
  const r = await runCli(['verify', '--db', db, '--json']);
  const report = JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}') as {
    ok?: boolean;
    streams: { stream: string; rows: number; entries: number; problem: string | null }[];
  };
  if (r.code !== 0 || report.ok !== true)
    throw new Error(
      `${context}: the ledger does not verify (exit ${r.code}): ${report.streams
        ?.map((s) => s.problem)
        .filter(Boolean)
        .join('; ')} ${r.stderr}`,
    );
  return report;
}
