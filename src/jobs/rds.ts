import { randomBytes } from 'node:crypto';
import { sinkAnchorer } from './anchor.js';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import type { PipelineConfig } from '../config/load.js';
import { rdsApiTarget } from '../sources/rds-logs/config.js';
import { databaseSettings, duckdbSinkOf, serverOf, sourceOfType } from '../connectors.js';
import { ConnectorError, isExpected } from '../core/errors.js';
import { runPipeline } from '../core/pipeline.js';
import { DuckDbSink } from '../sinks/duckdb/sink.js';
import { ensureRdsFiles, markRdsFileShipped, shippedRdsFiles, takeOverRdsFiles } from '../state/rds-files.js';
import type { ElasticsearchSink } from '../sinks/elasticsearch/index.js';
import type { ArchivableFile } from '../sinks/archive/index.js';
import { fingerprintFile } from '../sources/pg-logs/files.js';
import { PgLogsSource } from '../sources/pg-logs/source.js';
import { RdsLogsSource } from '../sources/rds-logs/index.js';
import {
  archiveFiles,
  closeArchives,
  finishArchives,
  meterDeadLetters,
  openArchives,
  openSearchSinks,
  sinkCounts,
  sinkSummaries,
  type ArchiveSet,
  type ArchiveSummary,
} from './log-sinks.js';
import { runOpenedOnce, type OpenedPipeline } from './opened.js';
import type { IngestOptions, RunSummary } from './ingest.js';
import type { Job } from './job.js';
import { followLogs } from './follow-logs.js';
import { noProgress } from '../core/progress.js';
import { attachAlerts } from './alerts.js';

/**
 * Runs an rds_logs pipeline once. File by file, oldest first: download the completed file (checked
 * against a fresh listing), parse it into the pipeline's sinks (csvlog: the same parser and checkpoints as
 * pg_logs, keyed by content, so a file that grew continues where it stopped), archive it whole into the
 * archive sinks of form files, and only then checkpoint it in `rds_log_files` (per pipeline). A kill anywhere re-downloads
 * that one file next run; its events and objects are recognised and not stored twice.
 */
const FATAL = new Set([
  'no_credentials',
  'bad_credentials',
  'expired_credentials',
  'no_instance',
  'permission_denied',
  'no_bucket',
  'wrong_region',
  'spool_failed',
]);

export function runRdsPipeline(pipeline: PipelineConfig, options: IngestOptions): Promise<RunSummary> {
  return runOpenedOnce(new RdsPipeline(pipeline, options), options.signal);
}

/**
 * An rds_logs pipeline, opened once (see OpenedPipeline): the API client, the sinks and the shipped-file marks;
 * each pass lists the instance's files and ships the completed ones not shipped yet.
 */
export class RdsPipeline implements OpenedPipeline<RunSummary> {
  private opened: {
    rds: RdsLogsSource;
    parser: PgLogsSource;
    sink: DuckDbSink;
    searchSinks: ElasticsearchSink[];
    archives: ArchiveSet;
    instance: string;
    server: string;
    logTimezone: string;
  } | null = null;
  /** When open() began, for the first pass's duration. */
  private openedAt: number | null = null;

  constructor(
    private readonly pipeline: PipelineConfig,
    private readonly options: Omit<IngestOptions, 'signal'>,
  ) {}

  async open(): Promise<void> {
    const started = Date.now();
    const { pipeline, options } = this;
    const log = options.log;
    const src = sourceOfType(pipeline.source, 'rds_logs');
    const sinkConfig = duckdbSinkOf(pipeline.sinks);
    const target = rdsApiTarget(src);
    const { instance } = target;
    const server = serverOf(src);
    const hasSearch = pipeline.sinks.some((s) => s.type === 'elasticsearch');
    const rds = new RdsLogsSource(
      {
        ...target,
        server,
        maxRetries: src.max_retries,
        timeoutMs: src.timeout_ms,
        fileGlob: src.file_glob,
        download: src.download,
        idleCompleteMinutes: src.idle_complete_minutes,
      },
      log,
    );
    const logTimezone = src.log_timezone;
    const parser = new PgLogsSource(
      {
        paths: [],
        server,
        skipActive: false,
        logTimezone,
        maxRecordBytes: src.max_record_bytes,
        batchBytes: hasSearch ? Math.min(src.batch_bytes, 2 << 20) : src.batch_bytes,
        force: false,
        packMessage: sinkConfig.store_message,
        redact: pipeline.redaction?.enabled !== false,
        patterns: pipeline.redaction?.patterns ?? [],
      },
      log,
    );
    let sink: DuckDbSink;
    try {
      const anchorer = await sinkAnchorer(sinkConfig, log);
      sink = await DuckDbSink.open(
        {
          path: sinkConfig.path,
          server,
          pipeline: pipeline.name,
          storeMessage: sinkConfig.store_message,
          memoryLimit: databaseSettings([pipeline]).memoryLimit,
          threads: sinkConfig.threads,
          storeEvents: sinkConfig.store_events,
          ledger: sinkConfig.ledger,
          ...(anchorer ? { anchorer } : {}),
          ...(options.db ? { database: options.db } : {}),
        },
        log,
      );
    } catch (err) {
      rds.close();
      throw err;
    }
    const searchSinks: ElasticsearchSink[] = [];
    let archives: ArchiveSet = { eventSinks: [], fileArchives: [], all: [] };
    try {
      await attachAlerts(sink, pipeline, sink, ['pgaudit', 'logon_failures']);
      searchSinks.push(...(await openSearchSinks(pipeline, sink, server, log)));
      archives = await openArchives(pipeline, sink, server, 'rds_logs', log, (cp) => ({ name: cp.path.slice(rds.where.length + 1), location: cp.path }));
      await ensureRdsFiles(sink.connection);
      const taken = await takeOverRdsFiles(sink.connection, pipeline.name, server, instance);
      if (taken)
        log.info('This pipeline took over the shipped-file marks the store had before they were kept per pipeline.', {
          pipeline: pipeline.name,
          instance,
          files: taken,
        });
    } catch (err) {
      for (const s of searchSinks) await s.close();
      await closeArchives(archives);
      await sink.close();
      rds.close();
      throw err;
    }
    this.opened = { rds, parser, sink, searchSinks, archives, instance, server, logTimezone };
    this.openedAt = started;
  }

  async runOnce(_signal?: AbortSignal): Promise<RunSummary> {
    const started = this.openedAt ?? Date.now();
    const first = this.openedAt !== null;
    this.openedAt = null;
    const { pipeline, options } = this;
    const log = options.log;
    const sinkConfig = duckdbSinkOf(pipeline.sinks);
    const { rds, parser, sink, searchSinks, archives, instance, server, logTimezone } = this.opened!;
    if (!first) {
      // A pass of an open pipeline starts from what is committed now, and reports only what it shipped itself.
      await sink.startPass();
      parser.damaged.length = 0;
    }
    const since = sinkCounts(searchSinks, archives);
    const spool = join(`${sink.path}.stage`, `rds-${process.pid}-${randomBytes(4).toString('hex')}`);
    try {
      const storeEvents = sinkConfig.store_events;
      const parse = storeEvents || searchSinks.length > 0 || archives.eventSinks.length > 0;
      const plan = await rds.plan(await shippedRdsFiles(sink.connection, pipeline.name, server, instance));
      for (const f of plan.active) log.debug('Skipping the log file RDS is writing.', { file: f.name });
      log.info('Log files listed.', { instance, toShip: plan.ship.length, active: plan.active.length, unchanged: plan.unchanged });
      options.progress.start(
        plan.ship.reduce((n, f) => n + f.size, 0),
        pipeline.name,
      );

      const totals = { events: 0, stored: 0, duplicates: 0, quarantined: 0, bytes: 0 };
      const errors: { file: string; message: string }[] = [];
      const archiveSummaries = new Map<string, ArchiveSummary>();
      for (const a of archives.fileArchives)
        archiveSummaries.set(a.where, { archive: a.where, form: 'files', objects: 0, bytes: 0, files: 0, unchanged: 0, failed: 0 });
      let shipped = 0;
      let remaining = 0;
      for (const [index, file] of plan.ship.entries()) {
        if (options.stopStarting?.()) {
          remaining = plan.ship.length - index;
          log.info('Not starting another file: the time left is short; the next run ships the rest.', { remaining });
          break;
        }
        const location = rds.location(file.name);
        let path: string | null = null;
        try {
          const fetched = await rds.fetch(file, spool, (n) => options.progress.addBytes(n));
          if (!fetched) {
            log.warn('A log file disappeared before it could be shipped (rds.log_retention_period).', { file: location });
            continue;
          }
          path = fetched.path;
          const size = (await fsp.stat(path)).size;
          const fingerprint = size > 0 ? ((await fingerprintFile(path, 'none')) ?? null) : null;
          const logFile = rds.logFile(fetched, size);
          let failed = false;
          if (parse && logFile && size > 0) {
            const p = await parser.plan(sink, [logFile]);
            const r = await runPipeline(parser.read(p), [...searchSinks, ...archives.eventSinks, sink], {
              commitEvents: sinkConfig.commit_events,
              commitBytes: 1 << 30,
              log,
              onCommit: (t) => options.progress.setEvents(totals.events + t.events),
              ...(options.meter ? { meter: options.meter } : {}),
            });
            totals.events += r.events;
            totals.stored += r.stored;
            totals.duplicates += r.duplicates;
            totals.quarantined += r.quarantined;
            totals.bytes += r.bytes;
            for (const e of r.errors) {
              errors.push({ file: location, message: e.message });
              failed = true;
            }
          }
          if (failed) continue; // not checkpointed: shipped again next run
          if (fingerprint) {
            const events = (await sink.completeFileEvents(server)).get(fingerprint);
            const archivable: ArchivableFile = {
              path,
              compression: 'none',
              size,
              mtimeMs: fetched.file.lastWritten,
              stable: true,
              logTimezone,
              source: { kind: 'rds_logs', server, name: fetched.file.name, location, fingerprint },
              ...(events !== undefined && parse && logFile ? { events } : {}),
              download: { method: fetched.download.method, ...(fetched.download.truncatedLines ? { truncated_lines: fetched.download.truncatedLines } : {}) },
            };
            for (const a of archives.fileArchives) {
              const r = await archiveFiles(a, [archivable], log);
              const s = archiveSummaries.get(a.where)!;
              for (const x of r.results) {
                if (x.status === 'archived') {
                  s.objects++;
                  s.files = (s.files ?? 0) + 1;
                  s.bytes += x.entry?.size ?? 0;
                } else s.unchanged = (s.unchanged ?? 0) + 1;
              }
              for (const e of r.errors) {
                s.failed = (s.failed ?? 0) + 1;
                if (e.error instanceof ConnectorError && FATAL.has(e.error.code)) throw e.error;
                options.meter?.failed(e.error);
                errors.push({ file: location, message: `archive ${a.where}: ${e.message}` });
                failed = true;
              }
            }
          }
          if (failed) continue;
          await sink.connection.run('BEGIN TRANSACTION');
          try {
            await markRdsFileShipped(sink.connection, {
              pipeline: pipeline.name,
              server,
              instance,
              name: fetched.file.name,
              size: fetched.file.size,
              lastWritten: fetched.file.lastWritten,
              fingerprint,
              downloadedBytes: size,
              method: fetched.download.method,
              truncatedLines: fetched.download.truncatedLines,
            });
            await sink.connection.run('COMMIT');
          } catch (err) {
            await sink.connection.run('ROLLBACK').catch(() => {});
            throw err;
          }
          shipped++;
        } catch (err) {
          if (!isExpected(err) || (err instanceof ConnectorError && FATAL.has(err.code))) throw err;
          errors.push({ file: location, message: err.message });
          options.meter?.failed(err);
          log.error('A log file could not be shipped; it is tried again next run.', { file: location, reason: err.message });
        } finally {
          if (path) await fsp.rm(path, { force: true });
        }
      }
      if (totals.stored > 0 && storeEvents) await sink.sweepPreviouslyLogged();
      options.progress.done();
      await finishArchives(archives);
      meterDeadLetters(options.meter, searchSinks, archives, since);
      return {
        pipeline: pipeline.name,
        server,
        db: sink.path,
        filesRead: shipped,
        filesSkipped: plan.active.length + plan.unchanged,
        ...totals,
        durationMs: Date.now() - started,
        errors,
        ...sinkSummaries(searchSinks, archives, [...archiveSummaries.values()], since),
        ...(remaining ? { remaining } : {}),
        ok: errors.length === 0,
      };
    } catch (err) {
      options.progress.done();
      throw err;
    } finally {
      await fsp.rm(spool, { recursive: true, force: true });
    }
  }

  async close(): Promise<void> {
    const o = this.opened;
    this.opened = null;
    this.openedAt = null;
    if (!o) return;
    try {
      for (const s of o.searchSinks) await s.close();
      await closeArchives(o.archives);
    } finally {
      await o.sink.close();
      o.rds.close();
    }
  }
}

/** The rds_logs job: `run` ships the completed files once; `run --follow` lists the instance every poll_interval_ms. */
export const rdsJob: Job = {
  // A one-shot run finishes the files it started (a download is not cut short by Ctrl-C).
  once: (p, { log, progress, stopStarting }) => runRdsPipeline(p, { log, progress, ...(stopStarting ? { stopStarting } : {}) }),
  follow: (p, ctx) =>
    followLogs(
      p,
      new RdsPipeline(p, { log: ctx.log, progress: noProgress, db: ctx.db, meter: ctx.meter }),
      ctx,
      sourceOfType(p.source, 'rds_logs').poll_interval_ms,
      null,
    ),
};
