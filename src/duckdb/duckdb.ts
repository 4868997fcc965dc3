/**
 * @duckdb/node-api, loaded with require: importing the CommonJS package from an ES module makes Node lex every
 * module it re-exports first (measured: 180 ms against 100 ms to load; a run with nothing new costs ~0.4 s in
 * all). Every value import of the package goes through here; type imports may name the package directly.
 */
import { createRequire } from 'node:module';
import type * as NodeApi from '@duckdb/node-api';

const api = createRequire(import.meta.url)('@duckdb/node-api') as typeof NodeApi;

export const DuckDBInstance: typeof NodeApi.DuckDBInstance = api.DuckDBInstance;
export type DuckDBInstance = NodeApi.DuckDBInstance;
export type { DuckDBConnection } from '@duckdb/node-api';
export const DuckDBTypeId: typeof NodeApi.DuckDBTypeId = api.DuckDBTypeId;
export const JsonDuckDBValueConverter: typeof NodeApi.JsonDuckDBValueConverter = api.JsonDuckDBValueConverter;
