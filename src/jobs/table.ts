import type { PipelineConfig } from '../config/load.js';
import { parseColumnRule, type ColumnRule } from '../redact/index.js';
import { sinkAnchorer } from './anchor.js';
import { tableSourceOptions } from '../sources/pg-audit-table/config.js';
import { databaseSettings, duckdbSinkOf, sinksOfType, sourceOfType } from '../connectors.js';
import { ConnectorError } from '../core/errors.js';
import { profile } from '../core/profile.js';
import { maskUrl } from '../core/postgres.js';
import type { Logger } from '../core/log.js';
import type { PipelineMeter } from '../core/meter.js';
import { openDatabase, type Database } from '../sinks/duckdb/database.js';
import { checkRow, ROW_GROUP_ROWS, RowChangesSink } from '../sinks/duckdb/row-changes.js';
import { ElasticsearchSink, elasticsearchOptions } from '../sinks/elasticsearch/index.js';
import { ROW_COLUMNS } from '../sources/pg-audit-table/layout.js';
import { PgAuditTableSource, type RawRow, type TableBatch, type TableCursor } from '../sources/pg-audit-table/source.js';
import type { Job } from './job.js';
import type { TableRunSummary } from './summary.js';
import { Backoff, sleep } from '../core/retry.js';
import { attachAlerts } from './alerts.js';

/**
 * Runs a pg_audit_table pipeline: read rows after the cursor, store them with the cursor in one DuckDB
 * transaction, then (delete_after_ship) delete what is at or below the stored cursor. Once: until the
 * table is caught up. Follow: until the signal aborts, woken by NOTIFY, polling as a safety net, with
 * reconnects and backoff on retryable failures; the state is reported through onStatus.
 */
export type { TableRunSummary } from './summary.js';

export interface TableRunOptions {
  log: Logger;
  follow?: boolean;
  signal?: AbortSignal;
  /** A database held by the caller (the daemon opens each file once); otherwise the sink opens its own. */
  db?: Database;
  onStatus?: (status: TableStatus) => void;
  /** The follow daemon's metrics of this pipeline (per batch and per commit). */
  meter?: PipelineMeter;
}

export interface TableStatus {
  pipeline: string;
  kind: 'pg_audit_table';
  table: string;
  state: 'starting' | 'catching_up' | 'following' | 'retrying' | 'stopped' | 'failed';
  mode?: string;
  listening?: boolean;
  shipped: number;
  quarantined: number;
  deleted: number;
  lastBatchAt?: string;
  /** Rows beyond the cursor when last counted (capped at 100,000) and the age of the oldest, ms. */
  backlogRows?: number;
  lagMs?: number | null;
  error?: string;
  retryInMs?: number;
}

export async function runTablePipeline(pipeline: PipelineConfig, options: TableRunOptions): Promise<TableRunSummary> {
  const started = Date.now();
  const src = sourceOfType(pipeline.source, 'pg_audit_table');
  const server = src.server;
  const pollMs = src.poll_interval_ms;
  const latencyMs = src.batch_latency_ms;
  const deleteAfterShip = src.delete_after_ship;
  const log = options.log;
  const columns = pipeline.redaction?.enabled === false ? [] : (pipeline.redaction?.columns ?? []).map((s) => parseColumnRule(s) as ColumnRule);
  const source = new PgAuditTableSource(tableSourceOptions(src, columns), log);
  const db = options.db ?? (await openDatabase(duckdbSinkOf(pipeline.sinks).path, databaseSettings([pipeline])));
  const status: TableStatus = {
    pipeline: pipeline.name,
    kind: 'pg_audit_table',
    table: src.table,
    state: 'starting',
    shipped: 0,
    quarantined: 0,
    deleted: 0,
  };
  const report = (patch: Partial<TableStatus>) => {
    Object.assign(status, patch);
    options.onStatus?.({ ...status });
  };
  const summary: TableRunSummary = {
    pipeline: pipeline.name,
    table: src.table,
    db: db.path,
    events: 0,
    stored: 0,
    duplicates: 0,
    quarantined: 0,
    deleted: 0,
    durationMs: 0,
    errors: [],
    ok: true,
  };
  source.onListening = (listening) => report({ listening });
  let sink: RowChangesSink | null = null;
  // Search sinks need the rows in JavaScript: the pipeline then reads by the row path instead of COPY.
  const search: ElasticsearchSink[] = [];
  const read = (at: TableCursor, file: string, limit: number) => (search.length ? source.read(at, limit) : source.readStaged(at, file, limit));
  const toSearch = async (rows: RawRow[]) => {
    for (const es of search) {
      for (const r of rows) {
        if (checkRow(r, source.layout.validateJson) !== null) continue; // quarantined instead
        await es.addRowChange(server, source.layout.name, Object.fromEntries(ROW_COLUMNS.map((c, i) => [c, r[i] ?? null])) as never);
      }
    }
  };
  const backoff = new Backoff({ initialMs: 500, maxMs: 30_000 });
  let heldMs = 0;
  const batchRows = src.batch_rows;
  const batchBytes = src.batch_bytes;
  const commitRows = src.commit_rows;
  const commitIntervalMs = 5000;
  // A backlog transaction holds a whole number of DuckDB row groups (see ROW_GROUP_ROWS): each read asks
  // for no more rows than are left to the next boundary.
  const txRows = commitRows >= ROW_GROUP_ROWS ? Math.floor(commitRows / ROW_GROUP_ROWS) * ROW_GROUP_ROWS : commitRows;
  const limitAfter = (rowsInTx: number) => Math.min(batchRows, txRows - (rowsInTx % txRows));
  let next: { batch: Promise<TableBatch>; limit: number } | null = null;
  let txOpen = false;
  let txStarted = 0;
  let tx = { events: 0, stored: 0, duplicates: 0, quarantined: 0 };
  const aborted = () => options.signal?.aborted === true;
  const meter = options.meter;
  try {
    const store = duckdbSinkOf(pipeline.sinks);
    sink = await RowChangesSink.open(db, log, !options.db, store.ledger, await sinkAnchorer(store, log));
    await attachAlerts(db, pipeline, sink, ['row_changes']);
    for (const c of sinksOfType(pipeline.sinks, 'elasticsearch')) search.push(await ElasticsearchSink.open(elasticsearchOptions(c, server), log, 'rows'));
    let cursor: TableCursor | null = null;
    let lastBacklogCheck = 0;
    while (!aborted()) {
      try {
        if (!cursor) {
          await source.connect();
          const start = source.startCursor(await sink.loadCursor(server, source.layout.name));
          cursor = start.cursor;
          if (start.reset) log.warn(`Cursor reset: ${start.reset}.`, { pipeline: pipeline.name, table: source.layout.name });
          if (source.layout.mode === 'lag_window') {
            log.warn(
              'The audit table has no transaction column: reading in lag-window mode, which misses a row whose transaction commits more than lag_window_ms after it took its id. Run `auditship pg install --upgrade TABLE` to add one.',
              { pipeline: pipeline.name, table: source.layout.name, lagWindowMs: src.lag_window_ms },
            );
            if (deleteAfterShip)
              throw new ConnectorError(
                'pg_audit_table',
                'delete_unsafe',
                `delete_after_ship needs a transaction column in ${source.layout.name}; run \`auditship pg install --upgrade ${source.layout.name}\` first`,
                false,
              );
          }
          log.info('Reading the audit table.', {
            pipeline: pipeline.name,
            table: source.layout.name,
            mode: source.layout.mode,
            url: maskUrl(src.url),
          });
          report({ table: source.layout.name, mode: source.layout.mode, state: 'catching_up', error: undefined, retryInMs: undefined });
          // Rows stored by a run that was killed before its delete.
          if (deleteAfterShip) {
            const n = await source.deleteShipped(cursor);
            summary.deleted += n;
            report({ deleted: summary.deleted });
          }
          if (options.follow) source.startListening();
        }
        const at: TableCursor = cursor;
        const limit = next ? next.limit : limitAfter(tx.events);
        const pending = next ? next.batch : read(at, sink.stageFile(), limit);
        const batch: TableBatch = await profile.time('waits for PostgreSQL (the next batch)', 'wait', () => pending);
        next = null;
        // Rows read: those staged and those the row path carries (all of them, or the ones to quarantine).
        const count = batch.staged ? batch.staged.rows + batch.rows.length : batch.rows.length;
        const full = count >= limit || (!batch.staged && batch.bytes >= batchBytes);
        if (meter && count > 0) meter.read(count, batch.staged ? batch.staged.fileBytes : batch.bytes);
        // A backlog: read the next chunk from PostgreSQL while DuckDB stores this one.
        if (full) {
          const nextLimit = limitAfter(tx.events + count);
          const p = read(batch.cursor, sink.stageFile(), nextLimit);
          p.catch(() => {});
          next = { batch: p, limit: nextLimit };
        }
        const changed = JSON.stringify(batch.cursor) !== JSON.stringify(cursor);
        if (count > 0 || changed) {
          if (!txOpen) {
            await sink.begin();
            txOpen = true;
            txStarted = Date.now();
          }
          let quarantined: number;
          let t = performance.now();
          if (batch.staged) {
            const r = await sink.appendStaged(server, source.layout.name, batch.staged);
            tx.stored += r.stored;
            tx.duplicates += r.duplicates;
            quarantined = 0;
            if (batch.rows.length)
              quarantined = (await sink.append(server, source.layout.name, { ...batch, staged: undefined }, source.layout.validateJson)).quarantined.length;
          } else {
            if (search.length) {
              await toSearch(batch.rows);
              meter?.write('elasticsearch', (performance.now() - t) / 1000);
              t = performance.now();
            }
            const r = await sink.append(server, source.layout.name, batch, source.layout.validateJson);
            tx.stored += r.stored;
            tx.duplicates += r.duplicates;
            quarantined = r.quarantined.length;
          }
          meter?.write('duckdb', (performance.now() - t) / 1000);
          cursor = batch.cursor;
          tx.events += count;
          tx.quarantined += quarantined;
          if (quarantined)
            log.warn('Audit rows could not be converted; quarantined (table row_quarantine).', {
              pipeline: pipeline.name,
              table: source.layout.name,
              rows: quarantined,
            });
          if (batch.expiredGaps)
            log.warn('Gave up waiting for missing event ids (rolled back, or a transaction longer than lag_window_ms).', {
              pipeline: pipeline.name,
              ids: batch.expiredGaps,
            });
        }
        // Commit when caught up, or every commit_rows rows of a backlog (DuckDB writes big transactions
        // straight to its file; small ones go through its WAL and a checkpoint).
        if (txOpen && (!full || tx.events >= txRows || Date.now() - txStarted >= commitIntervalMs)) {
          // Every document acknowledged (or dead-lettered, in this transaction) before the cursor moves.
          let dead = 0;
          for (const es of search) {
            const t = performance.now();
            const letters = await es.flush();
            meter?.commitTime('elasticsearch', (performance.now() - t) / 1000);
            dead += letters.length;
            await sink.addDeadLetters(server, `elasticsearch ${es.where}`, letters);
          }
          const lastEventMs = sink.pendingLastEventMs;
          const t = performance.now();
          await sink.commit(server, source.layout.name, batch.cursor);
          txOpen = false;
          if (meter) {
            meter.commitTime('duckdb', (performance.now() - t) / 1000);
            meter.committed({ stored: tx.stored, duplicates: tx.duplicates, quarantined: tx.quarantined, lastEventMs });
            if (dead) meter.deadLettered('elasticsearch', dead);
          }
          summary.events += tx.events;
          summary.stored += tx.stored;
          summary.duplicates += tx.duplicates;
          summary.quarantined += tx.quarantined;
          const shippedRows = tx.events > 0;
          tx = { events: 0, stored: 0, duplicates: 0, quarantined: 0 };
          if (deleteAfterShip && shippedRows) summary.deleted += await source.deleteShipped(batch.cursor);
          report({ shipped: summary.stored, quarantined: summary.quarantined, deleted: summary.deleted, lastBatchAt: new Date().toISOString() });
        }
        backoff.reset();
        if (full) continue; // a backlog: the next chunk at once
        if (!options.follow) break;
        if (status.state !== 'following' || Date.now() - lastBacklogCheck > 5000) {
          lastBacklogCheck = Date.now();
          const b = await source.backlog(cursor);
          report({
            state: 'following',
            listening: source.listening,
            backlogRows: b.rows,
            lagMs: b.oldestMs === null ? 0 : Math.max(0, Date.now() - b.oldestMs),
          });
        }
        // Rows behind an open transaction get no second NOTIFY: look again soon, backing off to the poll interval.
        if (await source.heldBack(cursor)) heldMs = Math.min(pollMs, heldMs ? heldMs * 2 : 50);
        else heldMs = 0;
        await source.waitForWork(heldMs || pollMs, options.signal);
        // Let a burst of small transactions gather into one batch.
        if (latencyMs > 0 && !aborted()) await new Promise((r) => setTimeout(r, latencyMs));
      } catch (err) {
        const e = err instanceof ConnectorError ? err : new ConnectorError('pg_audit_table', 'failed', (err as Error).message, false, { cause: err });
        next = null;
        meter?.failed(err);
        if (txOpen) {
          txOpen = false;
          tx = { events: 0, stored: 0, duplicates: 0, quarantined: 0 };
          await sink.rollback();
        }
        for (const es of search) await es.rollback();
        if (!options.follow || !e.retryable) throw e;
        const delay = backoff.next();
        log.warn('Pipeline run failed; retrying.', { pipeline: pipeline.name, code: e.code, reason: e.message, retryInMs: delay });
        meter?.retrying();
        report({ state: 'retrying', error: e.message, retryInMs: delay });
        cursor = null;
        await source.disconnect();
        await sleep(delay, options.signal);
      }
    }
    report({ state: 'stopped' });
  } catch (err) {
    report({ state: 'failed', error: (err as Error).message });
    throw err;
  } finally {
    await source.close();
    for (const es of search) await es.close();
    if (search.length)
      summary.search = search.map((x) => ({
        url: x.where,
        created: x.counts.created,
        duplicates: x.counts.duplicates,
        deadLettered: x.counts.deadLettered,
        retried: x.counts.retried,
      }));
    await sink?.close();
    if (!options.db && sink === null) await db.close();
    summary.durationMs = Date.now() - started;
  }
  return summary;
}

/** The pg_audit_table job: `run` reads until the table is caught up; `run --follow` streams (NOTIFY + polling). */
export const tableJob: Job = {
  once: (p, { log, signal }) => runTablePipeline(p, { log, signal }),
  follow: async (p, ctx) => {
    await runTablePipeline(p, { log: ctx.log, follow: true, signal: ctx.signal, db: ctx.db, onStatus: (s) => ctx.set({ ...s }), meter: ctx.meter });
  },
};
