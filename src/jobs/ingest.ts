import type { PipelineConfig } from '../config/load.js';
import { sinkAnchorer } from './anchor.js';
import { databaseSettings, duckdbSinkOf, sourceOfType } from '../connectors.js';
import { ConnectorError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { PipelineMeter } from '../core/meter.js';
import { runPipeline } from '../core/pipeline.js';
import { profile } from '../core/profile.js';
import type { Progress } from '../core/progress.js';
import type { Database } from '../sinks/duckdb/database.js';
import { DuckDbSink } from '../sinks/duckdb/sink.js';
import type { ElasticsearchSink } from '../sinks/elasticsearch/index.js';
import { DAMAGE_REASON_PREFIX } from '../core/connector.js';
import { discoveryKey, type Discovery } from '../sources/pg-logs/files.js';
import { PgLogsSource } from '../sources/pg-logs/source.js';
import type { ArchivableFile } from '../sinks/archive/index.js';
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
import type { RunSummary } from './summary.js';
import type { Job } from './job.js';
import { followLogs } from './follow-logs.js';
import { LogWatch } from '../sources/pg-logs/watch.js';
import { noProgress } from '../core/progress.js';
import { attachAlerts } from './alerts.js';

export type { RunSummary } from './summary.js';

export interface IngestOptions {
  /** SIGINT/SIGTERM: stop reading, commit what was read (the summary says `interrupted`). */
  signal?: AbortSignal;
  force?: boolean;
  /** Fail (exit 1) when the paths hold no csvlog or jsonlog file at all (auditship ingest: a wrong path, stderr logs). */
  requireLogFiles?: boolean;
  /** A database held open by the caller (the follow daemon). */
  db?: Database;
  log: Logger;
  progress: Progress;
  /** The follow daemon's metrics of this pipeline. */
  meter?: PipelineMeter;
  /** True when no new file should be started (a Lambda's time is running out): the rest is the next run's. */
  stopStarting?: () => boolean;
}

/** The one line an ingest ends with when its paths hold no log file auditship can read. */
function noLogFiles(paths: string[], skipped: { path: string; reason: string }[]): ConnectorError {
  const where = paths.join(', ');
  const stderr = skipped.some((s) => /\.log$/.test(s.path));
  const why = skipped.length
    ? `${skipped.length} file(s) passed over: ${skipped[0]!.reason}${skipped.length > 1 ? ', …' : ''}`
    : 'no file matches the file glob';
  const hint = stderr
    ? "PostgreSQL's stderr log cannot be read (it alters multi-line statements); turn on csvlog (ALTER SYSTEM SET log_destination = 'csvlog'; logging_collector = on, restart) and point auditship at log_directory"
    : "point auditship at PostgreSQL's log_directory (SHOW log_directory;) with logging_collector = on and log_destination = 'csvlog' or 'jsonlog'";
  return new ConnectorError('pg_logs', 'no_log_files', `no csvlog or jsonlog file in ${where} (${why}); ${hint}`, false);
}

/** Largest source batch in pipelines with a search sink. */
const SEARCH_BATCH_BYTES = 2 << 20;

/**
 * Runs one pipeline once: plan the files, read them, store the events, commit checkpoints.
 * Assembles the configured source and sinks; the last DuckDB sink keeps the pipeline's state.
 */
export function runIngestPipeline(pipeline: PipelineConfig, options: IngestOptions): Promise<RunSummary> {
  return runOpenedOnce(new LogsPipeline(pipeline, options), options.signal);
}

/**
 * A pg_logs pipeline, opened once (see OpenedPipeline): the source's paths are listed and the sinks opened;
 * each pass plans the files, reads them, stores the events and commits the checkpoints. A pass of an open
 * pipeline whose listing is the one of the last pass that completed cleanly (same files, each with the same
 * stamp: nothing written, truncated, renamed or replaced) has nothing to do and touches no sink: it reports
 * nothing read.
 */
export class LogsPipeline implements OpenedPipeline<RunSummary> {
  private source: PgLogsSource | null = null;
  private sink: DuckDbSink | null = null;
  private searchSinks: ElasticsearchSink[] = [];
  private archives: ArchiveSet = { eventSinks: [], fileArchives: [], all: [] };
  /** Set by open() for the first pass: when opening began, and the listing done then. */
  private first: { started: number; discovery: Discovery } | null = null;
  /** The listing of the last pass that completed cleanly (no error, not interrupted), and what it reported. */
  private clean: { key: string; summary: RunSummary } | null = null;
  /** The last pass found no file changed since the last clean pass, and did nothing. */
  unchanged = false;

  constructor(
    private readonly pipeline: PipelineConfig,
    private readonly options: Omit<IngestOptions, 'signal'>,
  ) {}

  async open(): Promise<void> {
    const started = Date.now();
    const { pipeline, options } = this;
    const src = sourceOfType(pipeline.source, 'pg_logs');
    const sinkConfig = duckdbSinkOf(pipeline.sinks);
    const server = src.server;
    const source = new PgLogsSource(
      {
        paths: src.path,
        server,
        fileGlob: src.file_glob,
        preferFormat: src.prefer_format,
        skipActive: src.skip_active,
        ...(src.log_timezone ? { logTimezone: src.log_timezone } : {}),
        maxRecordBytes: src.max_record_bytes,
        // With a search sink the documents are built in JavaScript from each batch: smaller batches keep the
        // process under 300 MB (measured: 4MB batches 327 MB, 2MB 278 MB, and no slower).
        batchBytes: pipeline.sinks.some((s) => s.type === 'elasticsearch') ? Math.min(src.batch_bytes, SEARCH_BATCH_BYTES) : src.batch_bytes,
        force: Boolean(options.force),
        packMessage: sinkConfig.store_message,
        redact: pipeline.redaction?.enabled !== false,
        patterns: pipeline.redaction?.patterns ?? [],
      },
      options.log,
    );
    // The paths are looked at before any sink opens: a path that does not exist (or holds no log file, for
    // ingest) fails here, leaving no empty database or archive behind.
    const discovery = await profile.time('plan files (list, fingerprint, checkpoints)', 'js', () => source.discover());
    if (options.requireLogFiles && discovery.files.length === 0) throw noLogFiles(src.path, discovery.skipped);
    const anchorer = await sinkAnchorer(sinkConfig, options.log);
    const sink = await profile.time('open database', 'duckdb', () =>
      DuckDbSink.open(
        {
          path: sinkConfig.path,
          server,
          pipeline: pipeline.name,
          storeMessage: sinkConfig.store_message,
          memoryLimit: databaseSettings([pipeline]).memoryLimit,
          threads: sinkConfig.threads,
          replace: Boolean(options.force),
          storeEvents: sinkConfig.store_events,
          ledger: sinkConfig.ledger,
          ...(anchorer ? { anchorer } : {}),
          ...(options.db ? { database: options.db } : {}),
        },
        options.log,
      ),
    );
    // Search and archive sinks first: the pipeline commits them (every document acknowledged, every object
    // stored) before the DuckDB sink commits the checkpoint.
    const searchSinks: ElasticsearchSink[] = [];
    let archives: ArchiveSet = { eventSinks: [], fileArchives: [], all: [] };
    try {
      await attachAlerts(sink, pipeline, sink, ['pgaudit', 'logon_failures']);
      searchSinks.push(...(await openSearchSinks(pipeline, sink, server, options.log)));
      archives = await openArchives(pipeline, sink, server, 'pg_logs', options.log);
    } catch (err) {
      for (const s of searchSinks) await s.close();
      await sink.close();
      throw err;
    }
    this.source = source;
    this.sink = sink;
    this.searchSinks = searchSinks;
    this.archives = archives;
    this.first = { started, discovery };
    this.clean = null;
  }

  async runOnce(signal?: AbortSignal): Promise<RunSummary> {
    const { pipeline, options } = this;
    const source = this.source!,
      sink = this.sink!,
      searchSinks = this.searchSinks,
      archives = this.archives;
    const first = this.first;
    this.first = null;
    const started = first?.started ?? Date.now();
    const src = sourceOfType(pipeline.source, 'pg_logs');
    const sinkConfig = duckdbSinkOf(pipeline.sinks);
    const server = src.server;
    const discovery = first?.discovery ?? (await profile.time('plan files (list, fingerprint, checkpoints)', 'js', () => source.discover()));
    const key = discoveryKey(discovery);
    const clean = this.clean;
    this.clean = null;
    this.unchanged = !first && clean?.key === key;
    if (this.unchanged && clean) {
      // Nothing changed since a pass that read everything there was: there is nothing to read or archive.
      this.clean = clean;
      const last = clean.summary;
      const files = (last.archives ?? [])
        .filter((a) => a.form === 'files')
        .map((a) => ({ archive: a.archive, form: 'files', objects: 0, bytes: 0, files: 0, unchanged: (a.unchanged ?? 0) + (a.files ?? 0), failed: 0 }));
      return {
        pipeline: pipeline.name,
        server,
        db: sink.path,
        filesRead: 0,
        filesSkipped: last.filesSkipped,
        ...(last.skipped ? { skipped: last.skipped } : {}),
        unchanged: (last.unchanged ?? 0) + last.filesRead,
        events: 0,
        stored: 0,
        duplicates: 0,
        quarantined: 0,
        bytes: 0,
        durationMs: Date.now() - started,
        errors: [],
        ...sinkSummaries(searchSinks, archives, files, sinkCounts(searchSinks, archives)),
        ok: true,
      };
    }
    if (!first) {
      // A pass of an open pipeline starts from what is committed now, and reports only what it read itself.
      await sink.startPass();
      source.damaged.length = 0;
    }
    const since = sinkCounts(searchSinks, archives);
    const storeEvents = sinkConfig.store_events;
    // Parsing is needed when a sink takes events; an archive of whole files alone needs none.
    const parse = storeEvents || searchSinks.length > 0 || archives.eventSinks.length > 0;
    try {
      const plan = parse
        ? await profile.time('plan files (list, fingerprint, checkpoints)', 'js', () => source.plan(sink, discovery))
        : { files: [], skipped: [], totalBytes: 0, logFiles: 1, unchanged: 0, superseded: [] };
      if (options.requireLogFiles && plan.logFiles === 0) throw noLogFiles(src.path, plan.skipped);
      await sink.forgetDamagedFiles(server, plan.superseded);
      if (options.force) for (const p of plan.files) sink.markForReplace(p.fingerprint);
      for (const p of plan.files) if (p.reread) sink.markForIdentityCheck(p.fingerprint);
      for (const p of plan.files) if (p.rereadDamage) sink.markDamageReread(p.fingerprint);
      for (const s of plan.skipped) options.log.debug('Skipping a file.', { file: s.path, reason: s.reason });
      options.progress.start(plan.totalBytes, pipeline.name);
      const result = await runPipeline(
        source.read(plan, (n) => options.progress.addBytes(n)),
        [...searchSinks, ...archives.eventSinks, sink],
        {
          commitEvents: sinkConfig.commit_events,
          commitBytes: 1 << 30,
          log: options.log,
          onCommit: (t) => options.progress.setEvents(t.events),
          ...(signal ? { signal } : {}),
          ...(options.meter ? { meter: options.meter } : {}),
        },
      );
      // A first record that arrived in this run may complete `<previously logged>` rows stored before.
      if (result.stored > 0 && storeEvents) await profile.time('markers: sweep', 'duckdb', () => sink.sweepPreviouslyLogged());
      options.progress.done();
      for (const d of source.damaged) {
        options.log.warn(
          'A compressed log file is damaged: its records before the damage are stored and the damage is quarantined ' +
            '(auditship status). If a complete copy exists (or the file was still being written), put it in its place: the next run ' +
            'reads the rest. If not, there is nothing to do.',
          { file: d.file, damage: d.reason.slice(DAMAGE_REASON_PREFIX.length) },
        );
      }
      const archiveSummaries: ArchiveSummary[] = [];
      const errors = result.errors.map((e) => ({ file: e.source, message: e.message }));
      if (archives.fileArchives.length && !result.interrupted) {
        const completed = await source.completedFiles();
        const failedFiles = new Set(errors.map((e) => e.file));
        // A damaged file is not archived: it is not the log file, and its object could not be verified. A complete
        // copy in its place is archived.
        const damaged = parse ? await sink.damagedFiles(server) : new Set<string>();
        // Events per file, for the manifest: known for files this store has read to their end.
        const events = parse ? await sink.completeFileEvents(server) : new Map<string, number>();
        const files: ArchivableFile[] = completed
          .filter((c) => !failedFiles.has(c.file.path) && !damaged.has(c.fingerprint))
          .map(({ file, fingerprint }) => ({
            path: file.path,
            compression: file.compression,
            size: file.size,
            mtimeMs: file.mtimeMs,
            source: { kind: 'pg_logs', server, name: file.name, location: file.path, fingerprint },
            ...(events.has(fingerprint) ? { events: events.get(fingerprint)! } : {}),
            ...(src.log_timezone ? { logTimezone: src.log_timezone } : {}),
          }));
        options.progress.start(
          files.reduce((n, f) => n + f.size, 0),
          `${pipeline.name} archive`,
        );
        for (const archive of archives.fileArchives) {
          const r = await archiveFiles(archive, files, options.log, (n) => options.progress.addBytes(n));
          errors.push(...r.errors.map((e) => ({ file: e.file, message: `archive ${archive.where}: ${e.message}` })));
          for (const e of r.errors) options.meter?.failed(e.error);
          const archived = r.results.filter((x) => x.status === 'archived');
          archiveSummaries.push({
            archive: archive.where,
            form: 'files',
            objects: archived.length,
            bytes: archived.reduce((n, x) => n + (x.entry?.size ?? 0), 0),
            files: archived.length,
            unchanged: r.results.filter((x) => x.status === 'unchanged').length,
            failed: r.errors.length + r.results.filter((x) => x.status === 'changed_while_archiving').length,
          });
        }
        options.progress.done();
      }
      await finishArchives(archives);
      meterDeadLetters(options.meter, searchSinks, archives, since);
      const summary: RunSummary = {
        pipeline: pipeline.name,
        server,
        db: sink.path,
        filesRead: plan.files.length,
        filesSkipped: plan.skipped.length,
        ...(plan.skipped.length ? { skipped: plan.skipped.slice(0, 50) } : {}),
        unchanged: plan.unchanged,
        events: result.events,
        stored: result.stored,
        duplicates: result.duplicates,
        quarantined: result.quarantined,
        bytes: result.bytes,
        durationMs: Date.now() - started,
        errors,
        ...sinkSummaries(searchSinks, archives, archiveSummaries, since),
        ...(result.interrupted ? { interrupted: true } : {}),
        ...(source.damaged.length ? { damaged: [...source.damaged] } : {}),
        ok: errors.length === 0,
      };
      // A file that kept changing while it was archived is tried again: it changed, so the next listing differs.
      if (summary.ok && !result.interrupted) this.clean = { key, summary };
      return summary;
    } catch (err) {
      options.progress.done();
      throw err;
    }
  }

  async close(): Promise<void> {
    const sink = this.sink;
    const searchSinks = this.searchSinks,
      archives = this.archives;
    this.sink = null;
    this.source = null;
    this.first = null;
    this.clean = null;
    this.searchSinks = [];
    this.archives = { eventSinks: [], fileArchives: [], all: [] };
    try {
      for (const s of searchSinks) await s.close();
      await closeArchives(archives);
    } finally {
      await sink?.close();
    }
  }
}

/** The pg_logs job: `run` reads what is new once; `run --follow` keeps the pipeline open and watches its paths. */
export const logsJob: Job = {
  once: (p, { log, progress, signal }) => runIngestPipeline(p, { log, progress, signal }),
  follow: (p, ctx) => {
    const src = sourceOfType(p.source, 'pg_logs');
    const logs = new LogsPipeline(p, { log: ctx.log, progress: noProgress, db: ctx.db, meter: ctx.meter });
    const watch = new LogWatch(src.path, src.file_glob, ctx.log, p.name);
    return followLogs(p, logs, ctx, src.poll_interval_ms, { watch, unchanged: () => logs.unchanged });
  },
};
