import { renameSync, rmSync, writeFileSync } from 'node:fs';
import type { SavedSearch } from '../ui/saved-searches.js';
import { resolve } from 'node:path';
import type { PipelineConfig } from '../config/load.js';
import { databaseSettings, duckdbSinkOf, serverOf, sinkDeclaration, sourceDeclaration } from '../connectors.js';
import { ConfigError, isExpected } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { openDatabase, type Database } from '../sinks/duckdb/database.js';
import { readSocketPath } from '../sinks/duckdb/lock.js';
import { statusFilePath, type DaemonStatus, type PipelineStatus } from '../state/daemon-status.js';
import { DaemonMetrics } from './daemon-metrics.js';
import { JOBS } from './index.js';
import type { DaemonUi } from '../ui/daemon.js';
import type { UiAuth } from '../ui/server.js';

/**
 * `auditship run --follow`: every pipeline runs until the signal aborts, by its job's `follow` (jobs/index.ts):
 * pg_audit_table pipelines stream (NOTIFY + polling); pg_logs pipelines look at their directory (fs.watch),
 * rds_logs at their instance, sql_outbox and django_auditlog at their table, every poll_interval_ms. Each DuckDB
 * file is opened once and shared (DuckDB locks a file to one process), its tables created once from the
 * connectors' declarations (src/connectors.ts); each pipeline has its own connection.
 * While the daemon holds a file, `auditship status` reads `<db>.status.json`, which is rewritten (temp +
 * rename) whenever a pipeline's state changes and at least every few seconds. The daemon serves the UI of
 * each database of pgaudit events on a unix socket next to it (ui/daemon.ts), named in that file, so that
 * `auditship ui` and `auditship report` work while it writes.
 */
export type { DaemonStatus, PipelineStatus } from '../state/daemon-status.js';

/** Options of the daemon itself (not of a pipeline). */
export interface FollowOptions {
  /** Also serve the UI on this TCP address (it is always on the socket next to each database). */
  uiListen?: { host: string; port: number };
  uiAuth?: UiAuth;
  /** The config's saved searches (ui.saved_searches), offered by the UI. */
  savedSearches?: SavedSearch[];
  /** Serve Prometheus metrics at /metrics on this TCP address (the UI's TCP listener serves them too). */
  metricsListen?: { host: string; port: number };
}

export async function runFollow(pipelines: PipelineConfig[], log: Logger, signal: AbortSignal, options: FollowOptions = {}): Promise<boolean> {
  const dbs = new Map<string, Database>();
  const uis = new Map<string, DaemonUi>();
  const statuses = new Map<string, PipelineStatus>();
  const startedAt = new Date().toISOString();
  const metrics = new DaemonMetrics(pipelines);
  let alertWorkers: { stop(): Promise<void> }[] = [];
  const dbOf = (p: PipelineConfig) => resolve(duckdbSinkOf(p.sinks).path);
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
      if (!dbs.has(path)) dbs.set(path, await openDatabase(path, databaseSettings(pipelines.filter((q) => dbOf(q) === path))));
      set({ pipeline: p.name, kind: p.source.type, state: 'starting' });
    }
    // Create each database's tables once, before the pipelines start: DuckDB refuses two transactions that
    // create the same table concurrently (a catalog write-write conflict).
    for (const [path, db] of dbs) {
      for (const p of pipelines.filter((q) => dbOf(q) === path)) {
        const source = sourceDeclaration(p.source.type);
        const facts = { events: source.events, server: serverOf(p.source) };
        for (const sink of p.sinks) await sinkDeclaration(sink.type).tables?.(db.connection, facts);
        await source.tables?.(db.connection);
      }
    }
    // Alerts the pipelines' commits fire are delivered from here, beside them (src/alerts/delivery.ts).
    if (pipelines.some((p) => p.alerts)) alertWorkers = await (await import('./alerts.js')).startDeliveryWorkers(dbs, pipelines, log);
    // Other processes read each database through its read socket (opened with it); the UI on TCP, when
    // asked, for the first database of pgaudit events.
    let tcp = options.uiListen;
    for (const [path, db] of dbs) {
      if (!tcp || !pipelines.some((p) => dbOf(p) === path && sourceDeclaration(p.source.type).events === 'pgaudit')) continue;
      const { serveDaemonUi } = await import('../ui/daemon.js');
      const ui = await serveDaemonUi(db, {
        log,
        listen: tcp,
        ...(options.uiAuth ? { auth: options.uiAuth } : {}),
        ...(options.savedSearches ? { savedSearches: options.savedSearches } : {}),
        metrics: () => metrics.render(),
      });
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
      const key = `${dbOf(p)}\0${serverOf(p.source)}`;
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
          const job = await JOBS[p.source.type]();
          await job.follow(p, { log, signal, db, meter: metrics.meter(p.name), set, turn: (pass) => inTurn(p, pass) });
          return true;
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
    for (const w of alertWorkers) await w.stop().catch(() => {});
    for (const ui of uis.values()) await ui.close().catch(() => {});
    for (const db of dbs.values()) {
      await db.close();
      rmSync(`${db.path}.stage`, { recursive: true, force: true });
    }
  }
}
