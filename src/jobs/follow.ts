import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { PipelineConfig } from '../config/load.js';
import { ConfigError, isExpected } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { noProgress } from '../core/progress.js';
import { defaultMemoryLimit, openDatabase, type Database } from '../sinks/duckdb/database.js';
import { readSocketPath } from '../sinks/duckdb/lock.js';
import { ROW_CHANGES_DDL } from '../sinks/duckdb/row-changes.js';
import { ensureSchema } from '../sinks/duckdb/schema.js';
import { ARCHIVE_DDL } from '../state/archive-state.js';
import { ensureRdsFiles } from '../state/rds-files.js';
import { APP_EVENTS_DDL } from '../sinks/duckdb/app-events.js';
import { LogsPipeline, type RunSummary } from './ingest.js';
import { RdsPipeline } from './rds.js';
import type { OpenedPipeline } from './opened.js';
import { LogWatch } from '../sources/pg-logs/watch.js';
import { runOutboxPipeline, type OutboxStatus } from './outbox.js';
import { runTablePipeline, type TableStatus } from './table.js';
import { statusFilePath, type DaemonStatus, type PipelineStatus } from './daemon-status.js';
import { DaemonMetrics } from './daemon-metrics.js';
import type { PipelineMeter } from '../core/meter.js';
import type { DaemonUi } from '../ui/daemon.js';
import type { UiAuth } from '../ui/server.js';

/**
 * `auditship run --follow`: every pipeline runs until the signal aborts. pg_audit_table pipelines stream
 * (NOTIFY + polling); pg_logs pipelines look at their directory, sql_outbox and django_auditlog pipelines at
 * their table, every poll_interval_ms. Each DuckDB file is
 * opened once and shared (DuckDB locks a file to one process); each pipeline has its own connection.
 * While the daemon holds a file, `auditship status` reads `<db>.status.json`, which is rewritten (temp +
 * rename) whenever a pipeline's state changes and at least every few seconds. The daemon serves the UI of
 * each database of pgaudit events on a unix socket next to it (ui/daemon.ts), named in that file, so that
 * `auditship ui` and `auditship report` work while it writes.
 */
export type { DaemonStatus, PipelineStatus } from './daemon-status.js';

/** Options of the daemon itself (not of a pipeline). */
export interface FollowOptions {
  /** Also serve the UI on this TCP address (it is always on the socket next to each database). */
  uiListen?: { host: string; port: number };
  uiAuth?: UiAuth;
  /** Serve Prometheus metrics at /metrics on this TCP address (the UI's TCP listener serves them too). */
  metricsListen?: { host: string; port: number };
}

export async function runFollow(pipelines: PipelineConfig[], log: Logger, signal: AbortSignal, options: FollowOptions = {}): Promise<boolean> {
  const dbs = new Map<string, Database>();
  const uis = new Map<string, DaemonUi>();
  const statuses = new Map<string, PipelineStatus>();
  const startedAt = new Date().toISOString();
  const metrics = new DaemonMetrics(pipelines);
  const dbOf = (p: PipelineConfig) => resolve(String(p.sinks[p.sinks.length - 1]!['path']));
  const writeStatus = () => {
    for (const path of dbs.keys()) {
      const mine = pipelines.filter((p) => dbOf(p) === path);
      const body: DaemonStatus = {
        pid: process.pid,
        startedAt,
        updatedAt: new Date().toISOString(),
        db: path,
        pipelines: mine.map((p) => statuses.get(p.name)!).filter(Boolean),
        metrics: metrics.snapshot(mine.map((p) => p.name)),
      };
      const ui = uis.get(path);
      body.ui = { socket: readSocketPath(path), ...(ui ? { url: ui.url } : {}) };
      const file = statusFilePath(path);
      try {
        writeFileSync(`${file}.tmp`, JSON.stringify(body, null, 2) + '\n');
        renameSync(`${file}.tmp`, file);
      } catch (err) {
        log.warn('Cannot write the status file.', { file, reason: (err as Error).message });
      }
    }
  };
  const set = (s: PipelineStatus) => {
    statuses.set(s.pipeline, s);
    metrics.status(s);
    writeStatus();
  };
  try {
    if (options.metricsListen) await metrics.listen(options.metricsListen, log);
    for (const p of pipelines) {
      const path = dbOf(p);
      if (!dbs.has(path)) {
        const sink = p.sinks[p.sinks.length - 1]!;
        dbs.set(
          path,
          await openDatabase(path, {
            memoryLimit: String(sink['memory_limit'] ?? defaultMemoryLimit(pipelines.filter((q) => dbOf(q) === path).map((q) => q.source.type))),
            threads: Number(sink['threads'] ?? 1),
          }),
        );
      }
      set({ pipeline: p.name, kind: p.source.type, state: 'starting' });
    }
    // Create each database's tables once, before the pipelines start: DuckDB refuses two transactions that
    // create the same table concurrently (a catalog write-write conflict).
    for (const [path, db] of dbs) {
      const mine = pipelines.filter((p) => dbOf(p) === path);
      if (mine.some((p) => p.source.type === 'pg_audit_table')) await db.connection.run(ROW_CHANGES_DDL);
      if (mine.some((p) => p.source.type === 'sql_outbox' || p.source.type === 'django_auditlog')) await db.connection.run(APP_EVENTS_DDL);
      for (const p of mine.filter((q) => q.source.type === 'pg_logs' || q.source.type === 'rds_logs'))
        await ensureSchema(db.connection, String(p.source['server'] ?? p.source['instance'] ?? 'default'));
      if (mine.some((p) => p.sinks.some((s) => s.type === 'archive'))) await db.connection.run(ARCHIVE_DDL);
      if (mine.some((p) => p.source.type === 'rds_logs')) await ensureRdsFiles(db.connection);
    }
    // Other processes read each database through its read socket (opened with it); the UI on TCP, when
    // asked, for the first database of pgaudit events.
    let tcp = options.uiListen;
    for (const [path, db] of dbs) {
      if (!tcp || !pipelines.some((p) => dbOf(p) === path && (p.source.type === 'pg_logs' || p.source.type === 'rds_logs'))) continue;
      const { serveDaemonUi } = await import('../ui/daemon.js');
      const ui = await serveDaemonUi(db, { log, listen: tcp, ...(options.uiAuth ? { auth: options.uiAuth } : {}), metrics: () => metrics.render() });
      uis.set(path, ui);
      log.info('Serving the UI.', { db: path, url: ui.url });
      tcp = undefined;
    }
    if (tcp) throw new ConfigError([`--ui: no pg_logs or rds_logs pipeline writes a DuckDB store here, so there is no UI to serve`]);
    // Log pipelines of one server and store take turns: each run's sink then starts from what the other one
    // committed (its watermark, below which rows are checked by identity), and two runs never store the same
    // new rows side by side in two transactions.
    const turns = new Map<string, Promise<unknown>>();
    const inTurn = <T>(p: PipelineConfig, fn: () => Promise<T>): Promise<T> => {
      const key = `${dbOf(p)}\0${String(p.source['server'] ?? p.source['instance'] ?? 'default')}`;
      const run = (turns.get(key) ?? Promise.resolve()).then(fn);
      turns.set(
        key,
        run.catch(() => {}),
      );
      return run;
    };
    const ticker = setInterval(writeStatus, 5000);
    ticker.unref();
    log.info('Following.', { pipelines: pipelines.map((p) => p.name), pid: process.pid });
    const results = await Promise.all(
      pipelines.map(async (p) => {
        const db = dbs.get(dbOf(p))!;
        try {
          if (p.source.type === 'pg_audit_table') {
            await runTablePipeline(p, { log, follow: true, signal, db, onStatus: (s: TableStatus) => set({ ...s }), meter: metrics.meter(p.name) });
            return true;
          }
          if (p.source.type === 'sql_outbox' || p.source.type === 'django_auditlog') {
            await runOutboxPipeline(p, { log, follow: true, signal, db, onStatus: (s: OutboxStatus) => set({ ...s }), meter: metrics.meter(p.name) });
            return true;
          }
          return await followLogs(p, db, log, signal, set, inTurn, metrics.meter(p.name));
        } catch (err) {
          if (!isExpected(err)) throw err;
          log.error('Pipeline stopped.', { pipeline: p.name, reason: err.message });
          set({ ...(statuses.get(p.name) ?? { pipeline: p.name, kind: p.source.type }), state: 'failed', error: err.message });
          return false;
        }
      }),
    );
    clearInterval(ticker);
    for (const p of pipelines) {
      const s = statuses.get(p.name);
      if (s && s.state !== 'failed') s.state = 'stopped';
    }
    writeStatus();
    log.info('Stopped; every pipeline flushed its last batch and checkpoint.', {});
    return results.every(Boolean);
  } finally {
    await metrics.close();
    for (const ui of uis.values()) await ui.close().catch(() => {});
    for (const db of dbs.values()) {
      await db.close();
      rmSync(`${db.path}.stage`, { recursive: true, force: true });
    }
  }
}

/** After fs.watch reports a change in a log directory, wait this long for the writes around it (one pass for a burst). */
const WATCH_SETTLE_MS = 200;

/**
 * A pg_logs or rds_logs pipeline in follow mode: opened once and kept open; one pass every poll_interval_ms; a
 * failing pass is retried, the pipeline closed and opened again first (a connection or sink may be broken).
 * pg_logs: after a pass that found no file changed, the next one comes as soon as fs.watch reports a change in
 * the log paths (poll_interval_ms at the latest); after any other pass, poll_interval_ms later, as ever (so a
 * server that keeps writing gets no more passes, commits or archive objects than before).
 */
async function followLogs(
  p: PipelineConfig,
  db: Database,
  log: Logger,
  signal: AbortSignal,
  set: (s: PipelineStatus) => void,
  inTurn: <T>(p: PipelineConfig, fn: () => Promise<T>) => Promise<T>,
  meter: PipelineMeter,
): Promise<boolean> {
  const interval = Number(p.source['poll_interval_ms'] ?? 5000);
  const options = { log, progress: noProgress, db, meter };
  const logs = p.source.type === 'pg_logs' ? new LogsPipeline(p, options) : null;
  const pipeline: OpenedPipeline<RunSummary> = logs ?? new RdsPipeline(p, options);
  const watch = logs ? new LogWatch(p.source['path'] as string[], p.source['file_glob'] as string | undefined, log, p.name) : null;
  let open = false;
  const close = async () => {
    if (!open) return;
    open = false;
    await pipeline.close();
  };
  let events = 0;
  let stored = 0;
  let failures = 0;
  while (!signal.aborted) {
    let quiet = false;
    watch?.refresh();
    watch?.clear();
    try {
      const s = await inTurn(p, async () => {
        if (!open) {
          await pipeline.open();
          open = true;
        }
        return pipeline.runOnce();
      });
      events += s.events;
      stored += s.stored;
      failures = 0;
      quiet = logs?.unchanged === true;
      if (!s.ok) meter.retrying();
      set({
        pipeline: p.name,
        kind: p.source.type,
        state: s.ok ? 'following' : 'retrying',
        events,
        stored,
        lastRunAt: new Date().toISOString(),
        filesRead: s.filesRead,
        ...(s.ok ? {} : { error: s.errors[0]?.message }),
      });
    } catch (err) {
      if (!isExpected(err)) {
        watch?.close();
        await close().catch(() => {});
        throw err;
      }
      failures++;
      meter.failed(err);
      meter.retrying();
      log.warn('Pipeline run failed; retrying.', { pipeline: p.name, reason: err.message });
      set({ pipeline: p.name, kind: p.source.type, state: 'retrying', events, stored, error: err.message });
      // A connection or a sink may be broken: the pipeline is opened again for the next try.
      await close().catch((e: unknown) => {
        if (!isExpected(e)) throw e;
        log.warn('A pipeline could not be closed after its run failed; it is opened anew.', { pipeline: p.name, reason: e.message });
      });
    }
    const wait = failures ? Math.min(60_000, interval * 2 ** Math.min(failures, 6)) : interval;
    if (watch && !failures && quiet) {
      await watch.wait(wait, WATCH_SETTLE_MS, signal);
      continue;
    }
    await new Promise<void>((r) => {
      const done = () => {
        clearTimeout(t);
        signal.removeEventListener('abort', done);
        r();
      };
      const t = setTimeout(done, wait);
      signal.addEventListener('abort', done, { once: true });
    });
  }
  watch?.close();
  await close();
  return true;
}
