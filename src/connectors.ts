import type { Options } from './core/config-spec.js';
import type { SinkDeclaration, SourceDeclaration } from './core/declaration.js';
import { archive } from './sinks/archive/declaration.js';
import { duckdb } from './sinks/duckdb/declaration.js';
import { elasticsearch } from './sinks/elasticsearch/declaration.js';
import { pgAuditTable } from './sources/pg-audit-table/declaration.js';
import { pgLogs } from './sources/pg-logs/declaration.js';
import { rdsLogs } from './sources/rds-logs/declaration.js';
import { djangoAuditlog, sqlOutbox } from './sources/sql-outbox/declaration.js';

/**
 * The registry: every connector `type` a config may name, mapped to the declaration its folder exports (config
 * keys and defaults, event kind, DuckDB tables, cross-key rules, its check for `auditship check`). The config
 * loader, the docs generator, `init`, `run --follow` and `check` look a connector up here; `run`, `run --follow`
 * and `purge` find each source type's job in jobs/index.ts, a table typed by SourceType, so that a source added
 * here without a job does not compile.
 *
 * Adding a sink: its folder (config.ts, declaration.ts, check.ts, the sink) and one line in SINKS; the sink
 * contract test (test/sinks/contract.test.ts) then asks for its subject.
 */
export const SOURCES = {
  pg_logs: pgLogs,
  rds_logs: rdsLogs,
  pg_audit_table: pgAuditTable,
  sql_outbox: sqlOutbox,
  django_auditlog: djangoAuditlog,
} as const;

export const SINKS = { duckdb, elasticsearch, archive } as const;

export type SourceType = keyof typeof SOURCES;
export type SinkType = keyof typeof SINKS;

/** A pipeline's decoded source section: one typed variant per source type (narrow on `type`). */
export type SourceConfig = { [K in SourceType]: Options<(typeof SOURCES)[K]['spec']> }[SourceType];
/** A decoded sink section: one typed variant per sink type. */
export type SinkConfig = { [K in SinkType]: Options<(typeof SINKS)[K]['spec']> }[SinkType];
/** The decoded section of one source or sink type. */
export type SourceConfigOf<K extends SourceType> = Extract<SourceConfig, { type: K }>;
export type SinkConfigOf<K extends SinkType> = Extract<SinkConfig, { type: K }>;

/** The declaration of a source type (the config loader guarantees the type is registered). */
export function sourceDeclaration(type: SourceType): SourceDeclaration {
  return SOURCES[type] as unknown as SourceDeclaration;
}

export function sinkDeclaration(type: SinkType): SinkDeclaration {
  return SINKS[type] as unknown as SinkDeclaration;
}

/** The server name a pipeline's source keys its events and checkpoints by. */
export function serverOf(source: SourceConfig): string {
  return sourceDeclaration(source.type).server(source as never);
}

/** A pipeline's source, narrowed to the types a job runs (a wrong type is a programming error). */
export function sourceOfType<K extends SourceType>(source: SourceConfig, ...types: K[]): SourceConfigOf<K> {
  if (!(types as SourceType[]).includes(source.type)) throw new Error(`a ${source.type} source given to the job of ${types.join('/')}`);
  return source as SourceConfigOf<K>;
}

/** The pipeline's sinks of one type, typed. */
export function sinksOfType<K extends SinkType>(sinks: readonly SinkConfig[], type: K): SinkConfigOf<K>[] {
  return sinks.filter((s): s is SinkConfigOf<K> => s.type === type);
}

/** The pipeline's DuckDB sink: the last one (the config loader makes sure). */
export function duckdbSinkOf(sinks: readonly SinkConfig[]): SinkConfigOf<'duckdb'> {
  const last = sinks[sinks.length - 1];
  if (last?.type !== 'duckdb') throw new Error('a pipeline without a duckdb sink last');
  return last;
}

/**
 * How to open the DuckDB file of these pipelines (they share it): the sink's memory_limit, else the most any of
 * their sources runs well with; its threads.
 */
export function databaseSettings(pipelines: readonly { source: SourceConfig; sinks: readonly SinkConfig[] }[]): { memoryLimit: string; threads: number } {
  const sink = duckdbSinkOf(pipelines[0]!.sinks);
  const mb = Math.max(...pipelines.map((p) => sourceDeclaration(p.source.type).memoryMB));
  return { memoryLimit: sink.memory_limit ?? `${mb}MB`, threads: sink.threads };
}
