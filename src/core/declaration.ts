import type { DuckDBConnection } from '@duckdb/node-api';
import type { CheckResult } from './check.js';
import type { ConnectorSpec, Options } from './config-spec.js';

/**
 * What a source or sink folder declares about itself, in its `declaration.ts` (kept free of drivers and SDKs,
 * so that loading a config loads none). The registry (src/connectors.ts) maps each `type` to its declaration;
 * the config loader, the docs generator, `run`, `run --follow`, `check`, `purge` and `init` look a connector up
 * there instead of branching on its type.
 */
export interface Declaration<S extends ConnectorSpec = ConnectorSpec> {
  /** Its config keys: types, defaults (given once, here), descriptions. */
  readonly spec: S;
  /** Rules across keys that one key's spec cannot express, one line per problem (`at` is the config path). */
  problems?(options: Options<S>, at: string): string[];
}

/** What a source's events are: they decide the DuckDB sink's tables and whether the UI and archive apply. */
export type EventKind = 'pgaudit' | 'row_changes' | 'app_events';

export interface SourceDeclaration<S extends ConnectorSpec = ConnectorSpec> extends Declaration<S> {
  readonly role: 'source';
  readonly events: EventKind;
  /** The server name that keys the pipeline's events and checkpoints (with the DuckDB file: its turn). */
  server(options: Options<S>): string;
  /** Creates the state tables the source keeps beside the events (before any pipeline of a database runs). */
  tables?(connection: DuckDBConnection): Promise<void>;
  /** Its checks for `auditship check`: read-only, one result per path, table or endpoint (its check.ts, loaded then). */
  check(pipeline: string, options: Options<S>): Promise<CheckResult[]>;
  /** Whether `auditship purge` applies: the source deletes rows it shipped long ago. */
  readonly purges?: boolean;
  /** The DuckDB memory_limit (MB) it runs well with when its duckdb sink names none. */
  readonly memoryMB: number;
}

/** What a pipeline's source tells its sinks about the events they will get. */
export interface PipelineFacts {
  events: EventKind;
  server: string;
}

export interface SinkDeclaration<S extends ConnectorSpec = ConnectorSpec> extends Declaration<S> {
  readonly role: 'sink';
  /** The event kinds it takes; a pipeline whose source makes another kind is a config error. */
  readonly accepts: readonly EventKind[];
  /** The config error when a pipeline's source makes events it does not take (else a generic line). */
  readonly mismatch?: string;
  /** Its check for `auditship check` (`index`: its place in the pipeline's sinks, for the fix's wording). */
  check(pipeline: string, options: Options<S>, index: number): Promise<CheckResult>;
  /** Creates the DuckDB tables it keeps (the event tables, an archive's manifest state). */
  tables?(connection: DuckDBConnection, facts: PipelineFacts): Promise<void>;
}
