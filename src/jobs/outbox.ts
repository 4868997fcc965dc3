import type { PipelineConfig } from '../config/load.js';
import { maskJson, parseJsonPath, type JsonPathRule } from '../redact/index.js';
import { sinkAnchorer } from './anchor.js';
import { databaseSettings, duckdbSinkOf, sinksOfType, sourceOfType } from '../connectors.js';
import { outboxSourceConfig, type AppTableConfig } from '../sources/sql-outbox/config.js';
import { ConnectorError } from '../core/errors.js';
import { attachAlerts } from './alerts.js';
import type { Logger } from '../core/log.js';
import type { PipelineMeter } from '../core/meter.js';
import { AppEventsSink, fingerprint, type AppEvent, type AppQuarantined, type StagedEvents } from '../sinks/duckdb/app-events.js';
import type { DeadLetter } from '../sinks/elasticsearch/index.js';
import { openDatabase, type Database } from '../sinks/duckdb/database.js';
import { ElasticsearchSink, elasticsearchOptions } from '../sinks/elasticsearch/index.js';
import type { SqlClient } from '../sources/sql/client.js';
import { openOutboxSource, type OutboxSource, type OutboxSourceConfig } from '../sources/sql-outbox/index.js';
import { runOpenedOnce, type OpenedPipeline } from './opened.js';
import { followPasses } from './runner.js';
import { Backoff, sleep } from '../core/retry.js';
import type { Job } from './job.js';
import type { OutboxRunSummary } from './summary.js';

/**
 * Runs a sql_outbox or django_auditlog pipeline: chunk by chunk, claim unsent rows (source transaction),
 * store them and commit the sink, then mark them sent and commit the source. Once: until no unsent row is
 * left or batch_size rows were shipped. Follow: again every poll_interval_ms until the signal aborts,
 * retrying with backoff after retryable failures. Purges on schedule when purge_interval_hours is set.
 *
 * Kept as one file (about 510 lines): the pass that pipelines chunks over two source connections (claim,
 * convert, store, mark sent) is one protocol whose order is what makes it exactly once.
 */
export type { OutboxRunSummary } from './summary.js';

export interface OutboxRunOptions {
  log: Logger;
  follow?: boolean;
  signal?: AbortSignal;
  db?: Database;
  onStatus?: (status: OutboxStatus) => void;
  /** The follow daemon's metrics of this pipeline (per chunk). */
  meter?: PipelineMeter;
}

export interface OutboxStatus {
  pipeline: string;
  kind: string;
  table: string;
  state: 'starting' | 'shipping' | 'following' | 'retrying' | 'waiting_for_lock' | 'stopped' | 'failed';
  shipped: number;
  quarantined: number;
  unsent?: number;
  lastRunAt?: string;
  error?: string;
  retryInMs?: number;
}

/** The source's decoded config (an app-table pipeline only). */
function appSource(pipeline: PipelineConfig): AppTableConfig {
  return sourceOfType(pipeline.source, 'sql_outbox', 'django_auditlog');
}

export function outboxConfig(pipeline: PipelineConfig): OutboxSourceConfig & { sourceName: string } {
  return outboxSourceConfig(appSource(pipeline), pipeline.name);
}

async function openSink(pipeline: PipelineConfig, options: { db?: Database; log: Logger }): Promise<AppEventsSink> {
  const db = options.db ?? (await openDatabase(duckdbSinkOf(pipeline.sinks).path, databaseSettings([pipeline])));
  try {
    const sink = duckdbSinkOf(pipeline.sinks);
    const events = await AppEventsSink.open(db, options.log, !options.db, sink.ledger, await sinkAnchorer(sink, options.log));
    try {
      await attachAlerts(db, pipeline, events, ['app_events']);
    } catch (err) {
      await events.close();
      throw err;
    }
    return events;
  } catch (err) {
    if (!options.db) await db.close();
    throw err;
  }
}

/** Source connections a pass uses in turn (three measured no faster than two: the process is CPU-bound then). */
const PIPELINE_CONNECTIONS = 2;

/** A claimed chunk, converted and staged: its rows are locked by the open transaction on `conn`. */
interface Prepared {
  conn: SqlClient;
  read: number;
  afterId: string | null;
  ids: string[];
  /** The events themselves, kept only when search sinks need them. */
  events: AppEvent[];
  staged: StagedEvents | null;
  bad: AppQuarantined[];
  skipped: number;
  lastEventTime: number | null;
}

/**
 * One pass over the unsent rows (up to batch_size). Source connections take turns (PIPELINE_CONNECTIONS),
 * so that the next chunk is claimed, converted and staged (server and JavaScript) while DuckDB stores this
 * one, and earlier chunks are marked sent meanwhile:
 *   conn A: claim+convert 1 ............... mark 1, commit | claim+convert 3 ...
 *   conn B:                 claim+convert 2 (id > last of 1) ............... mark 2, commit
 *   sink:                   store 1, commit               | store 2, commit ...
 * A chunk is marked only after the sink committed it; a failure anywhere rolls back whatever is not
 * committed, which leaves those rows unsent (read again later and recognised by the sink).
 */
async function shipOnce(
  pipeline: PipelineConfig,
  src: OutboxSource,
  sink: AppEventsSink,
  search: ElasticsearchSink[],
  known: Map<string, Set<string>>,
  summary: OutboxRunSummary,
  log: Logger,
  signal?: AbortSignal,
  meter?: PipelineMeter,
): Promise<void> {
  const cfg = outboxConfig(pipeline);
  const chunkSize = appSource(pipeline).chunk_size;
  const batchSize = appSource(pipeline).batch_size;
  const { mapping } = src;
  const rowLocks = src.locking === 'rows';
  if (!rowLocks && !(await src.client.tryLock(src.lockName))) {
    summary.locked = true;
    log.info("Another shipper holds this table's lock; nothing shipped this time.", { pipeline: pipeline.name, table: mapping.table });
    return;
  }
  // The user's JSON paths (redaction.json_paths): masked or dropped before any sink sees the message.
  const jsonRules = pipeline.redaction?.enabled === false ? [] : (pipeline.redaction?.json_paths ?? []).map((s) => parseJsonPath(s) as JsonPathRule);
  const conns = [src.client, ...(await src.spares(PIPELINE_CONNECTIONS - 1))];
  /** The last step (mark + commit) on each connection; the next claim on it waits for it. */
  const busy: Promise<unknown>[] = conns.map(() => Promise.resolve());
  const openTx = new Set<SqlClient>();
  const stagedFiles = new Set<StagedEvents>();
  const prepare = async (i: number, afterId: string | null, limit: number): Promise<Prepared> => {
    const conn = conns[i % conns.length]!;
    await busy[i % conns.length];
    await conn.begin();
    openTx.add(conn);
    const rows = await mapping.read(conn, afterId, limit, rowLocks);
    const events: AppEvent[] = [];
    const bad: AppQuarantined[] = [];
    let skipped = 0;
    let lastEventTime: number | null = null;
    for (const row of rows) {
      const c = mapping.convert(row);
      if (c.ok) {
        if (jsonRules.length > 0) c.message = maskJson(c.message, jsonRules);
        events.push(c);
        if (lastEventTime === null || c.eventTime > lastEventTime) lastEventTime = c.eventTime;
        continue;
      }
      const fp = fingerprint(c.raw, c.created);
      if (known.get(c.id)?.has(fp)) {
        skipped++;
        continue;
      }
      bad.push({ id: c.id, reason: c.reason, raw: c.raw, created: c.created, fingerprint: fp });
    }
    const staged = sink.stage(events);
    if (staged) stagedFiles.add(staged);
    return {
      conn,
      read: rows.length,
      afterId: rows.length ? rows[rows.length - 1]!['id']! : afterId,
      ids: events.map((e) => e.id),
      events: search.length ? events : [],
      staged,
      bad,
      skipped,
      lastEventTime,
    };
  };
  const limitFor = (done: number) => (batchSize === 0 ? chunkSize : Math.min(chunkSize, batchSize - done));
  let handled = 0;
  try {
    let i = 0;
    let next: Promise<Prepared> | null = prepare(0, null, limitFor(0));
    while (next) {
      const chunk: Prepared = await next;
      next = null;
      const { conn, staged, bad } = chunk;
      if (chunk.read === 0) {
        await conn.commit();
        openTx.delete(conn);
        break;
      }
      meter?.read(chunk.read, 0);
      const willHandle = handled + chunk.ids.length + bad.length;
      // The next chunk, on the other connection, while the sink stores this one.
      if (!signal?.aborted && (batchSize === 0 || willHandle < batchSize)) {
        const p = prepare(++i, chunk.afterId, limitFor(willHandle));
        p.catch(() => {});
        next = p;
      }
      // Search sinks first: every document acknowledged (or dead-lettered) before DuckDB commits and the
      // rows are marked sent. A crash in between sends them again: a 409, counted as delivered.
      const dead: { sink: string; letters: DeadLetter[] }[] = [];
      for (const es of search) {
        let t = performance.now();
        for (const e of chunk.events) await es.addAppEvent(cfg.sourceName, mapping.table, e, fingerprint(e.message, e.created));
        meter?.write('elasticsearch', (performance.now() - t) / 1000);
        t = performance.now();
        dead.push({ sink: `elasticsearch ${es.where}`, letters: await es.flush() });
        meter?.commitTime('elasticsearch', (performance.now() - t) / 1000);
      }
      await sink.begin();
      let stored: number;
      try {
        let t = performance.now();
        stored = await sink.append(cfg.sourceName, mapping.table, staged, bad);
        for (const d of dead) await sink.addDeadLetters(cfg.sourceName, d.sink, d.letters);
        if (staged) stagedFiles.delete(staged);
        meter?.write('duckdb', (performance.now() - t) / 1000);
        t = performance.now();
        await sink.commit(cfg.sourceName, mapping.table, mapping.kind, { shipped: stored, quarantined: bad.length, lastEventTime: chunk.lastEventTime });
        meter?.commitTime('duckdb', (performance.now() - t) / 1000);
      } catch (err) {
        await sink.rollback();
        throw err;
      }
      if (meter) {
        meter.committed({
          stored,
          duplicates: chunk.ids.length - stored,
          quarantined: bad.length,
          lastEventMs: chunk.lastEventTime === null ? null : chunk.lastEventTime / 1000,
        });
        const letters = dead.reduce((n, d) => n + d.letters.length, 0);
        if (letters) meter.deadLettered('elasticsearch', letters);
      }
      // Stored for good: now (and only now) these rows may be marked sent.
      const marking = (async () => {
        const marked = await mapping.markSent(conn, chunk.ids);
        await conn.commit();
        openTx.delete(conn);
        summary.marked += marked;
      })();
      busy[conns.indexOf(conn)] = marking.catch(() => {});
      for (const b of bad) {
        if (!known.has(b.id)) known.set(b.id, new Set());
        known.get(b.id)!.add(b.fingerprint);
      }
      if (bad.length)
        log.warn('Rows could not be shipped; quarantined (table app_quarantine), left unsent and skipped from now on.', {
          pipeline: pipeline.name,
          table: mapping.table,
          rows: bad.length,
          reasons: [...new Set(bad.map((b) => b.reason.replace(/".*"/, '…')))].slice(0, 3),
        });
      summary.events += chunk.ids.length + bad.length;
      summary.stored += stored;
      summary.duplicates += chunk.ids.length - stored;
      summary.quarantined += bad.length;
      summary.skipped += chunk.skipped;
      handled = willHandle;
      if (!next) await marking;
      else marking.catch(() => {});
    }
    await Promise.all(busy);
    // A mark that failed: its rows stay unsent and are recognised as stored when read again.
    for (const c of openTx)
      throw new ConnectorError(
        mapping.kind,
        'mark_failed',
        `marking shipped rows sent in ${mapping.table} failed on ${c.where}; they stay unsent and will be recognised as stored when read again`,
        true,
      );
  } finally {
    for (const c of openTx) await c.rollback();
    for (const f of stagedFiles) await sink.discard(f);
    if (!rowLocks) await src.client.unlock(src.lockName);
  }
}

/** Deletes rows marked sent and older than retain_days, in bounded statements; records it in the sink. */
async function purgeWith(pipeline: PipelineConfig, src: OutboxSource, sink: AppEventsSink, log: Logger): Promise<number> {
  const cfg = outboxConfig(pipeline);
  const days = appSource(pipeline).retain_days;
  const chunk = appSource(pipeline).purge_chunk_rows;
  const cutoff = new Date(Date.now() - days * 86_400_000).toISOString();
  let total = 0;
  for (;;) {
    const n = await src.mapping.purge(src.client, cutoff, chunk);
    if (n === null) {
      throw new ConnectorError(
        pipeline.source.type,
        'purge_unsupported',
        `pipeline ${pipeline.name} reads a select mapping without a purge statement; set source.purge to purge it`,
        false,
      );
    }
    total += n;
    if (n < chunk) break;
  }
  await sink.recordPurge(cfg.sourceName, src.mapping.table, src.mapping.kind, total);
  log.info('Purged rows marked sent.', { pipeline: pipeline.name, table: src.mapping.table, rows: total, olderThan: cutoff });
  return total;
}

function newSummary(pipeline: PipelineConfig, db: string): OutboxRunSummary {
  return {
    pipeline: pipeline.name,
    table: appSource(pipeline).table,
    db,
    events: 0,
    stored: 0,
    duplicates: 0,
    quarantined: 0,
    skipped: 0,
    marked: 0,
    purged: 0,
    locked: false,
    durationMs: 0,
    errors: [],
    ok: true,
  };
}

/** `auditship purge`: one pipeline's purge, on its own. */
export async function runOutboxPurge(pipeline: PipelineConfig, log: Logger): Promise<number> {
  const sink = await openSink(pipeline, { log });
  try {
    const src = await openOutboxSource(outboxConfig(pipeline), log, pipeline.name);
    try {
      return await purgeWith(pipeline, src, sink, log);
    } finally {
      await src.close();
    }
  } finally {
    await sink.close();
  }
}

export async function runOutboxPipeline(pipeline: PipelineConfig, options: OutboxRunOptions): Promise<OutboxRunSummary> {
  const started = Date.now();
  const log = options.log;
  const cfg = outboxConfig(pipeline);
  const pollMs = appSource(pipeline).poll_interval_ms;
  const status: OutboxStatus = { pipeline: pipeline.name, kind: pipeline.source.type, table: cfg.table, state: 'starting', shipped: 0, quarantined: 0 };
  const report = (patch: Partial<OutboxStatus>) => {
    Object.assign(status, patch);
    options.onStatus?.({ ...status });
  };
  const opened = new OutboxPipeline(pipeline, {
    log,
    ...(options.db ? { db: options.db } : {}),
    ...(options.meter ? { meter: options.meter } : {}),
    // A daemon that follows stays 'following' through its polls; 'shipping' is the first pass (or a retry's).
    onShipping: () => report({ state: options.follow && status.state === 'following' ? 'following' : 'shipping', error: undefined, retryInMs: undefined }),
  });
  const summary = newSummary(pipeline, opened.db);
  const asConnectorError = (err: unknown) =>
    err instanceof ConnectorError ? err : new ConnectorError(pipeline.source.type, 'failed', (err as Error).message, false, { cause: err });
  const passed = async (pass: OutboxRunSummary) => {
    addPass(summary, pass);
    const unsent = options.follow ? await opened.unsent(100_000) : undefined;
    report({
      state: pass.locked ? 'waiting_for_lock' : options.follow ? 'following' : 'stopped',
      shipped: summary.stored,
      quarantined: summary.quarantined,
      unsent,
      lastRunAt: new Date().toISOString(),
    });
  };
  try {
    if (!options.follow) await passed(await runOpenedOnce(opened, options.signal));
    else {
      await followPasses(opened, {
        pipeline: pipeline.name,
        log,
        signal: options.signal ?? new AbortController().signal,
        ...(options.meter ? { meter: options.meter } : {}),
        backoff: new Backoff({ initialMs: 1000, maxMs: 60_000 }),
        passSignal: true,
        passed,
        retryable: (err) => asConnectorError(err).retryable,
        retrying: (err, retryInMs) => report({ state: 'retrying', error: err.message, retryInMs }),
        wait: (signal) => sleep(pollMs, signal),
      });
      report({ state: 'stopped' });
    }
  } catch (err) {
    options.meter?.failed(err);
    report({ state: 'failed', error: (err as Error).message });
    throw asConnectorError(err);
  } finally {
    summary.durationMs = Date.now() - started;
  }
  return summary;
}

/** Adds a pass's counts to the summary of a run (the search counts sink by sink). */
function addPass(summary: OutboxRunSummary, pass: OutboxRunSummary): void {
  summary.events += pass.events;
  summary.stored += pass.stored;
  summary.duplicates += pass.duplicates;
  summary.quarantined += pass.quarantined;
  summary.skipped += pass.skipped;
  summary.marked += pass.marked;
  summary.purged += pass.purged;
  summary.locked = pass.locked;
  if (pass.search) {
    const before = summary.search;
    summary.search = pass.search.map((s, i) => {
      const b = before?.[i];
      return b
        ? {
            url: s.url,
            created: b.created + s.created,
            duplicates: b.duplicates + s.duplicates,
            deadLettered: b.deadLettered + s.deadLettered,
            retried: b.retried + s.retried,
          }
        : { ...s };
    });
  }
}

/**
 * A sql_outbox or django_auditlog pipeline, opened once (see OpenedPipeline): its DuckDB sink and search sinks;
 * the source's connections are made by the first pass and kept. Each pass claims and ships unsent rows (up to
 * batch_size), then purges when purge_interval_hours says so.
 */
export class OutboxPipeline implements OpenedPipeline<OutboxRunSummary> {
  private sink: AppEventsSink | null = null;
  private search: ElasticsearchSink[] = [];
  private src: OutboxSource | null = null;
  private readonly cfg: ReturnType<typeof outboxConfig>;

  constructor(
    private readonly pipeline: PipelineConfig,
    private readonly options: { log: Logger; db?: Database; onShipping?: () => void; meter?: PipelineMeter },
  ) {
    this.cfg = outboxConfig(pipeline);
  }

  /** The DuckDB file (once open). */
  get db(): string {
    return this.sink?.path ?? duckdbSinkOf(this.pipeline.sinks).path;
  }

  async open(): Promise<void> {
    const sink = await openSink(this.pipeline, this.options);
    const search: ElasticsearchSink[] = [];
    try {
      for (const c of sinksOfType(this.pipeline.sinks, 'elasticsearch'))
        search.push(await ElasticsearchSink.open(elasticsearchOptions(c, this.cfg.sourceName), this.options.log, 'app'));
    } catch (err) {
      for (const es of search) await es.close();
      await sink.close();
      throw err;
    }
    this.sink = sink;
    this.search = search;
  }

  async runOnce(signal?: AbortSignal): Promise<OutboxRunSummary> {
    const started = Date.now();
    const { pipeline, cfg } = this;
    const log = this.options.log;
    const sink = this.sink!,
      search = this.search;
    const summary = newSummary(pipeline, sink.path);
    const since = search.map((s) => ({ ...s.counts }));
    if (!this.src) {
      this.src = await openOutboxSource(cfg, log, pipeline.name);
      log.info('Reading unsent rows.', { pipeline: pipeline.name, table: this.src.mapping.table, server: this.src.client.where, locking: this.src.locking });
    }
    const src = this.src;
    const known = await sink.quarantinedRows(cfg.sourceName, src.mapping.table);
    this.options.onShipping?.();
    await shipOnce(pipeline, src, sink, search, known, summary, log, signal, this.options.meter);
    const purgeHours = appSource(pipeline).purge_interval_hours;
    if (purgeHours > 0) {
      const last = await sink.lastPurge(cfg.sourceName, src.mapping.table);
      if (last === null || Date.now() - last >= purgeHours * 3_600_000) summary.purged += await purgeWith(pipeline, src, sink, log);
    }
    if (search.length) {
      summary.search = search.map((s, i) => ({
        url: s.where,
        created: s.counts.created - since[i]!.created,
        duplicates: s.counts.duplicates - since[i]!.duplicates,
        deadLettered: s.counts.deadLettered - since[i]!.deadLettered,
        retried: s.counts.retried - since[i]!.retried,
      }));
    }
    summary.durationMs = Date.now() - started;
    return summary;
  }

  /** Rows still unsent, counted up to `limit` (the daemon's status). */
  unsent(limit: number): Promise<number> {
    return this.src!.mapping.unsent(this.src!.client, limit);
  }

  async close(): Promise<void> {
    const { src, search, sink } = this;
    this.src = null;
    this.search = [];
    this.sink = null;
    try {
      await src?.close();
      for (const es of search) await es.close();
    } finally {
      await sink?.close();
    }
  }
}

/** The sql_outbox and django_auditlog job: `run` ships the unsent rows once; `run --follow` every poll_interval_ms. */
export const outboxJob: Job = {
  once: (p, { log, signal }) => runOutboxPipeline(p, { log, signal }),
  purge: async (p, log) => ({ purged: await runOutboxPurge(p, log), retainDays: appSource(p).retain_days, table: appSource(p).table }),
  follow: async (p, ctx) => {
    await runOutboxPipeline(p, { log: ctx.log, follow: true, signal: ctx.signal, db: ctx.db, onStatus: (s) => ctx.set({ ...s }), meter: ctx.meter });
  },
};
