import type { PipelineConfig } from '../config/load.js';
import { ConnectorError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { AppEventsSink, fingerprint, type AppEvent, type AppQuarantined } from '../sinks/duckdb/app-events.js';
import { openDatabase, type Database } from '../sinks/duckdb/database.js';
import { openOutboxSource, type OutboxSource, type OutboxSourceConfig } from '../sources/sql-outbox/index.js';

/**
 * Runs a sql_outbox or django_auditlog pipeline: chunk by chunk, claim unsent rows (source transaction),
 * store them and commit the sink, then mark them sent and commit the source. Once: until no unsent row is
 * left or batch_size rows were shipped. Follow: again every poll_interval_ms until the signal aborts,
 * retrying with backoff after retryable failures. Purges on schedule when purge_interval_hours is set.
 */
export interface OutboxRunOptions {
  log: Logger;
  follow?: boolean;
  signal?: AbortSignal;
  db?: Database;
  onStatus?: (status: OutboxStatus) => void;
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

export interface OutboxRunSummary {
  pipeline: string;
  table: string;
  db: string;
  /** Rows read and handled (shipped, recognised as already stored, or newly quarantined). */
  events: number;
  stored: number;
  duplicates: number;
  quarantined: number;
  /** Rows quarantined earlier and skipped again (they stay unsent at the source). */
  skipped: number;
  marked: number;
  purged: number;
  /** True when another shipper held the table's named lock and this run shipped nothing. */
  locked: boolean;
  durationMs: number;
  errors: { file: string; message: string }[];
  ok: boolean;
}

export function outboxConfig(pipeline: PipelineConfig): OutboxSourceConfig & { sourceName: string } {
  const s = pipeline.source;
  const str = (k: string, d = '') => (s[k] === undefined || s[k] === null ? d : String(s[k]));
  return {
    kind: s.type as 'sql_outbox' | 'django_auditlog',
    url: str('url'),
    table: str('table'),
    idColumn: str('id_column', 'id'),
    sentColumn: str('sent_column', 'is_sent'),
    messageColumn: str('message_column', 'message'),
    createdAtColumn: str('created_at_column', 'created_at'),
    timePath: str('time_path'),
    naiveTimeZone: str('naive_time_zone', 'UTC'),
    select: s['select'] ? String(s['select']) : null,
    markSent: s['mark_sent'] ? String(s['mark_sent']) : null,
    purgeSql: s['purge'] ? String(s['purge']) : null,
    userTable: str('user_table', 'auth_user'),
    origin: str('origin'),
    environment: str('environment'),
    sourceName: str('source_name', pipeline.name),
  };
}

async function openSink(pipeline: PipelineConfig, options: { db?: Database; log: Logger }): Promise<AppEventsSink> {
  const sinkConfig = pipeline.sinks[pipeline.sinks.length - 1]!;
  const db = options.db ?? await openDatabase(String(sinkConfig['path']), { memoryLimit: String(sinkConfig['memory_limit'] ?? '96MB'), threads: Number(sinkConfig['threads'] ?? 1) });
  try {
    return await AppEventsSink.open(db, options.log, !options.db);
  } catch (err) {
    if (!options.db) db.close();
    throw err;
  }
}

/** One pass over the unsent rows (up to batch_size). */
async function shipOnce(pipeline: PipelineConfig, src: OutboxSource, sink: AppEventsSink, known: Map<string, Set<string>>, summary: OutboxRunSummary, log: Logger, signal?: AbortSignal): Promise<void> {
  const cfg = outboxConfig(pipeline);
  const chunkSize = Number(pipeline.source['chunk_size'] ?? 500);
  const batchSize = Number(pipeline.source['batch_size'] ?? 5000);
  const { client, mapping } = src;
  const rowLocks = src.locking === 'rows';
  if (!rowLocks && !(await client.tryLock(src.lockName))) {
    summary.locked = true;
    log.info('Another shipper holds this table\'s lock; nothing shipped this time.', { pipeline: pipeline.name, table: mapping.table });
    return;
  }
  let afterId: string | null = null;
  let handled = 0;
  try {
    while (!signal?.aborted && (batchSize === 0 || handled < batchSize)) {
      const limit = batchSize === 0 ? chunkSize : Math.min(chunkSize, batchSize - handled);
      await client.begin();
      let open = true;
      try {
        const rows = await mapping.read(client, afterId, limit, rowLocks);
        if (rows.length === 0) { await client.commit(); open = false; break; }
        afterId = rows[rows.length - 1]!['id']!;
        const events: AppEvent[] = [];
        const bad: AppQuarantined[] = [];
        let skipped = 0;
        let lastEventTime: string | null = null;
        for (const row of rows) {
          const c = mapping.convert(row);
          if (c.ok) {
            events.push({ id: c.id, message: c.message, created: c.created, eventTime: c.eventTime });
            if (lastEventTime === null || c.eventTime > lastEventTime) lastEventTime = c.eventTime;
            continue;
          }
          const fp = fingerprint(c.raw, c.created);
          if (known.get(c.id)?.has(fp)) { skipped++; continue; }
          bad.push({ id: c.id, reason: c.reason, raw: c.raw, created: c.created, fingerprint: fp });
        }
        await sink.begin();
        let stored: number;
        try {
          stored = await sink.append(cfg.sourceName, mapping.table, events, bad);
          await sink.commit(cfg.sourceName, mapping.table, mapping.kind, { shipped: stored, quarantined: bad.length, lastEventTime });
        } catch (err) {
          await sink.rollback();
          throw err;
        }
        // Stored for good: now (and only now) the rows may be marked sent.
        const marked = await mapping.markSent(client, events.map((e) => e.id));
        await client.commit();
        open = false;
        for (const b of bad) {
          if (!known.has(b.id)) known.set(b.id, new Set());
          known.get(b.id)!.add(b.fingerprint);
        }
        if (bad.length) log.warn('Rows could not be shipped; quarantined (table app_quarantine), left unsent and skipped from now on.', { pipeline: pipeline.name, table: mapping.table, rows: bad.length, reasons: [...new Set(bad.map((b) => b.reason.replace(/".*"/, '…')))].slice(0, 3) });
        summary.events += events.length + bad.length;
        summary.stored += stored;
        summary.duplicates += events.length - stored;
        summary.quarantined += bad.length;
        summary.skipped += skipped;
        summary.marked += marked;
        handled += events.length + bad.length;
      } finally {
        if (open) await client.rollback();
      }
    }
  } finally {
    if (!rowLocks) await client.unlock(src.lockName);
  }
}

/** Deletes rows marked sent and older than retain_days, in bounded statements; records it in the sink. */
async function purgeWith(pipeline: PipelineConfig, src: OutboxSource, sink: AppEventsSink, log: Logger): Promise<number> {
  const cfg = outboxConfig(pipeline);
  const days = Number(pipeline.source['retain_days'] ?? 30);
  const chunk = Number(pipeline.source['purge_chunk_rows'] ?? 1000);
  const cutoff = new Date(Date.now() - days * 86_400_000).toISOString();
  let total = 0;
  for (;;) {
    const n = await src.mapping.purge(src.client, cutoff, chunk);
    if (n === null) {
      throw new ConnectorError(pipeline.source.type, 'purge_unsupported', `pipeline ${pipeline.name} reads a select mapping without a purge statement; set source.purge to purge it`, false);
    }
    total += n;
    if (n < chunk) break;
  }
  await sink.recordPurge(cfg.sourceName, src.mapping.table, src.mapping.kind, total);
  log.info('Purged rows marked sent.', { pipeline: pipeline.name, table: src.mapping.table, rows: total, olderThan: cutoff });
  return total;
}

function newSummary(pipeline: PipelineConfig, db: string): OutboxRunSummary {
  return { pipeline: pipeline.name, table: String(pipeline.source['table']), db, events: 0, stored: 0, duplicates: 0, quarantined: 0, skipped: 0, marked: 0, purged: 0, locked: false, durationMs: 0, errors: [], ok: true };
}

/** `auditship purge`: one pipeline's purge, on its own. */
export async function runOutboxPurge(pipeline: PipelineConfig, log: Logger): Promise<number> {
  const sink = await openSink(pipeline, { log });
  try {
    const src = await openOutboxSource(outboxConfig(pipeline), log, pipeline.name);
    try {
      return await purgeWith(pipeline, src, sink, log);
    } finally {
      await src.client.close();
    }
  } finally {
    await sink.close();
  }
}

export async function runOutboxPipeline(pipeline: PipelineConfig, options: OutboxRunOptions): Promise<OutboxRunSummary> {
  const started = Date.now();
  const log = options.log;
  const cfg = outboxConfig(pipeline);
  const pollMs = Number(pipeline.source['poll_interval_ms'] ?? 5000);
  const purgeHours = Number(pipeline.source['purge_interval_hours'] ?? 0);
  const sink = await openSink(pipeline, options);
  const summary = newSummary(pipeline, sink.path);
  const status: OutboxStatus = { pipeline: pipeline.name, kind: pipeline.source.type, table: cfg.table, state: 'starting', shipped: 0, quarantined: 0 };
  const report = (patch: Partial<OutboxStatus>) => { Object.assign(status, patch); options.onStatus?.({ ...status }); };
  let src: OutboxSource | null = null;
  let backoffMs = 0;
  try {
    while (!options.signal?.aborted) {
      try {
        if (!src) {
          src = await openOutboxSource(cfg, log, pipeline.name);
          log.info('Reading unsent rows.', { pipeline: pipeline.name, table: src.mapping.table, server: src.client.where, locking: src.locking });
        }
        const known = await sink.quarantinedRows(cfg.sourceName, src.mapping.table);
        report({ state: 'shipping', error: undefined, retryInMs: undefined });
        await shipOnce(pipeline, src, sink, known, summary, log, options.signal);
        if (purgeHours > 0) {
          const last = await sink.lastPurge(cfg.sourceName, src.mapping.table);
          if (last === null || Date.now() - last >= purgeHours * 3_600_000) summary.purged += await purgeWith(pipeline, src, sink, log);
        }
        backoffMs = 0;
        const unsent = options.follow ? await src.mapping.unsent(src.client, 100_000) : undefined;
        report({ state: summary.locked ? 'waiting_for_lock' : options.follow ? 'following' : 'stopped', shipped: summary.stored, quarantined: summary.quarantined, unsent, lastRunAt: new Date().toISOString() });
        if (!options.follow) break;
        summary.locked = false;
        await sleep(pollMs, options.signal);
      } catch (err) {
        const e = err instanceof ConnectorError ? err : new ConnectorError(pipeline.source.type, 'failed', (err as Error).message, false, { cause: err });
        if (!options.follow || !e.retryable) throw e;
        backoffMs = Math.min(60_000, backoffMs ? backoffMs * 2 : 1000);
        const delay = Math.round(backoffMs * (0.5 + Math.random() / 2));
        log.warn('Pipeline failed; retrying.', { pipeline: pipeline.name, code: e.code, reason: e.message, retryInMs: delay });
        report({ state: 'retrying', error: e.message, retryInMs: delay });
        await src?.client.close();
        src = null;
        await sleep(delay, options.signal);
      }
    }
    if (options.follow) report({ state: 'stopped' });
  } catch (err) {
    report({ state: 'failed', error: (err as Error).message });
    throw err;
  } finally {
    await src?.client.close();
    await sink.close();
    summary.durationMs = Date.now() - started;
  }
  return summary;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) { resolve(); return; }
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
  });
}
