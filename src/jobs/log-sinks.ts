import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { PipelineConfig } from '../config/load.js';
import type { FileCheckpoint } from '../core/connector.js';
import type { Logger } from '../core/log.js';
import type { PipelineMeter } from '../core/meter.js';
import {
  Archive,
  ArchiveEventsSink,
  archiveLogFile,
  archiveSinkOptions,
  openStore,
  type ArchivableFile,
  type FileArchiveResult,
} from '../sinks/archive/index.js';
import type { SourceIdentity } from '../sinks/archive/manifest.js';
import { ArchiveState } from '../state/archive-state.js';
import type { DuckDbSink } from '../sinks/duckdb/sink.js';
import { ElasticsearchSink, elasticsearchOptions } from '../sinks/elasticsearch/index.js';
import type { ArchiveSummary, RunSummary } from './summary.js';

export type { ArchiveSummary } from './summary.js';

/**
 * The archive (and search) sinks of a log pipeline (pg_logs, rds_logs), opened against the pipeline's DuckDB state:
 * each store is checked, what an interrupted run left is removed, and committed entries not yet in the
 * manifest are published. Event forms become pipeline sinks; the files form archives finished files after
 * the events are stored.
 */
export interface ArchiveSet {
  /** Sinks for the parsed events (forms ndjson, parquet). */
  eventSinks: ArchiveEventsSink[];
  /** Archives that take whole log files (form files). */
  fileArchives: Archive[];
  all: Archive[];
}

export async function openArchives(
  pipeline: PipelineConfig,
  duckdb: DuckDbSink,
  server: string,
  sourceKind: SourceIdentity['kind'],
  log: Logger,
  locationOf?: (cp: FileCheckpoint) => { name: string; location: string },
): Promise<ArchiveSet> {
  const set: ArchiveSet = { eventSinks: [], fileArchives: [], all: [] };
  try {
    for (const cfg of pipeline.sinks.filter((s) => s.type === 'archive')) {
      const options = archiveSinkOptions(cfg);
      // With the state in S3, the upload ids a killed run noted may never have been written back (store-s3.ts).
      const store = await openStore(options.store.kind === 's3' && pipeline.state ? { ...options.store, abortEarlierUploads: true } : options.store);
      let state: ArchiveState;
      try {
        await store.check();
        state = await ArchiveState.open(duckdb.instance, duckdb.connection, store.where, server);
      } catch (err) {
        store.close();
        throw err;
      }
      const archive = new Archive(store, state, options, log);
      set.all.push(archive);
      await archive.reconcile();
      await archive.publishManifest();
      if (options.form === 'files') set.fileArchives.push(archive);
      else {
        const sink = new ArchiveEventsSink(
          archive,
          {
            server,
            sourceKind,
            spoolDir: join(`${duckdb.path}.stage`, `archive-${process.pid}-${randomBytes(4).toString('hex')}`),
            storedSessions: (ids) => duckdb.storedSessions(ids),
            ...(locationOf ? { locationOf } : {}),
          },
          log,
        );
        sink.onEntries = (entries) =>
          duckdb.withinTransaction(async () => {
            await state.insertEntries(entries);
          });
        set.eventSinks.push(sink);
      }
      log.info('Archive ready.', { archive: store.where, form: options.form, storageClass: options.storageClass });
    }
  } catch (err) {
    await closeArchives(set).catch(() => {});
    throw err;
  }
  return set;
}

/** The search sinks of a log pipeline (pgaudit events); their dead letters go into the DuckDB state. */
export async function openSearchSinks(pipeline: PipelineConfig, duckdb: DuckDbSink, server: string, log: Logger): Promise<ElasticsearchSink[]> {
  const out: ElasticsearchSink[] = [];
  try {
    for (const cfg of pipeline.sinks.filter((s) => s.type === 'elasticsearch')) {
      const es = await ElasticsearchSink.open(elasticsearchOptions(cfg, server), log);
      es.onDeadLetters = (letters) => duckdb.addDeadLetters(`elasticsearch ${es.where}`, letters);
      out.push(es);
    }
  } catch (err) {
    for (const s of out) await s.close();
    throw err;
  }
  return out;
}

/** What the search and archive (events) sinks of a pipeline counted so far: a pass of an open pipeline reports what it added. */
export interface SinkCounts {
  search: { created: number; duplicates: number; correlated: number; deadLettered: number; retried: number }[];
  events: { objects: number; bytes: number; rejected: number }[];
}

export function sinkCounts(search: ElasticsearchSink[], set: ArchiveSet): SinkCounts {
  return {
    search: search.map((s) => ({
      created: s.counts.created,
      duplicates: s.counts.duplicates,
      correlated: s.counts.correlated,
      deadLettered: s.counts.deadLettered,
      retried: s.counts.retried,
    })),
    events: set.eventSinks.map((s) => ({ objects: s.counts.objects, bytes: s.counts.bytes, rejected: s.counts.rejected })),
  };
}

/**
 * The per-sink part of a run summary: search counts, and objects per archive (`files`: those of form files);
 * counted from `since` (the counts as the pass began) when given.
 */
export function sinkSummaries(
  search: ElasticsearchSink[],
  set: ArchiveSet,
  files: ArchiveSummary[],
  since?: SinkCounts,
): Pick<RunSummary, 'search' | 'archives'> {
  const now = sinkCounts(search, set);
  const archives: ArchiveSummary[] = [
    ...set.eventSinks.map((s, i) => ({
      archive: s.where,
      form: s.archive.options.form,
      objects: now.events[i]!.objects - (since?.events[i]?.objects ?? 0),
      bytes: now.events[i]!.bytes - (since?.events[i]?.bytes ?? 0),
    })),
    ...files,
  ];
  return {
    ...(search.length
      ? {
          search: search.map((s, i) => {
            const c = now.search[i]!,
              b = since?.search[i];
            return {
              url: s.where,
              created: c.created - (b?.created ?? 0),
              duplicates: c.duplicates - (b?.duplicates ?? 0),
              correlated: c.correlated - (b?.correlated ?? 0),
              deadLettered: c.deadLettered - (b?.deadLettered ?? 0),
              retried: c.retried - (b?.retried ?? 0),
            };
          }),
        }
      : {}),
    ...(archives.length ? { archives } : {}),
  };
}

/**
 * What this pass's search sinks dead-lettered and its Parquet archives rejected, to the daemon's metrics (the
 * sinks' counts grow over the passes of an opened pipeline: counted from `since`, the counts as the pass began).
 */
export function meterDeadLetters(meter: PipelineMeter | undefined, search: ElasticsearchSink[], set: ArchiveSet, since?: SinkCounts): void {
  if (!meter) return;
  meter.deadLettered(
    'elasticsearch',
    search.reduce((n, s, i) => n + s.counts.deadLettered - (since?.search[i]?.deadLettered ?? 0), 0),
  );
  meter.deadLettered(
    'archive',
    set.eventSinks.reduce((n, s, i) => n + s.counts.rejected - (since?.events[i]?.rejected ?? 0), 0),
  );
}

/**
 * Archives finished files, `fileConcurrency` at a time per archive. A file that fails is reported and the
 * others go on.
 */
export async function archiveFiles(
  archive: Archive,
  files: ArchivableFile[],
  log: Logger,
  onBytes?: (n: number) => void,
): Promise<{ results: FileArchiveResult[]; errors: { file: string; message: string; error: Error }[] }> {
  const results: FileArchiveResult[] = [];
  const errors: { file: string; message: string; error: Error }[] = [];
  let next = 0;
  const worker = async () => {
    while (next < files.length) {
      const f = files[next++]!;
      try {
        const r = await archiveLogFile(archive, f, onBytes);
        results.push(r);
        if (r.status === 'changed_while_archiving') {
          log.warn('A log file kept changing while it was archived; it is tried again next run.', { archive: archive.where, file: f.source.location });
        } else if (r.status === 'archived') {
          log.debug('Log file archived.', { archive: archive.where, key: r.entry!.key, bytes: r.entry!.size });
        }
      } catch (err) {
        const e = err instanceof Error ? err : new Error(String(err));
        errors.push({ file: f.source.location, message: e.message, error: e });
        log.error('A log file could not be archived; it is tried again next run.', { archive: archive.where, file: f.source.location, reason: e.message });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(archive.options.fileConcurrency, files.length)) }, worker));
  return { results, errors };
}

/** Publishes the manifest and drops the pending marks of what committed; then closes. */
export async function finishArchives(set: ArchiveSet): Promise<void> {
  for (const a of set.all) {
    await a.publishManifest();
    await a.reconcile();
  }
}

export async function closeArchives(set: ArchiveSet): Promise<void> {
  for (const s of set.eventSinks) await s.close().catch(() => {});
  for (const a of set.all) {
    await a.reconcile().catch(() => {});
    a.close();
  }
}
