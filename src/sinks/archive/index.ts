/**
 * Sink `archive`: keeps audit logs for cheap, verifiable retention in a local directory or an S3-compatible
 * bucket (storage class, server-side encryption, Object Lock retention), in one of three forms:
 *  - `files`: each completed log file as it is, compressed (gzip, or zstd) — files.ts;
 *  - `ndjson`: the parsed pgaudit events as NDJSON.gz — events.ts;
 *  - `parquet`: the parsed events as Parquet, partitioned server=…/date=… for DuckDB, Trino, Athena, Spark.
 * Key layout: layout.ts. Every object has a SHA-256 and a manifest entry (manifest.ts) committed in the
 * DuckDB state together with the checkpoint it belongs to, so each source range is archived exactly once.
 *
 * Crash safety: before an object is written its key is recorded as pending (committed at once, on a DuckDB
 * connection of its own). An object whose entry never committed — the run was killed or failed between the
 * upload and the checkpoint — is removed by `reconcile()` at the next start (an unfinished multipart upload
 * is aborted), and its source range is archived again. Keys of committed objects are never written again.
 */
export { Archive, archiveSinkOptions, openStore, type ArchiveSinkOptions } from './archive.js';
export { ArchiveEventsSink } from './events.js';
export { archiveLogFile, type ArchivableFile, type FileArchiveResult } from './files.js';
export type { ArchiveForm } from './layout.js';
