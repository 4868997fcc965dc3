import type { ArchiveForm, CorrelationDataset } from '../../model/manifest.js';

export type { ArchiveForm, CorrelationDataset } from '../../model/manifest.js';

/**
 * The archive's key layout (relative to the sink's prefix). Hive-style `name=value` directories let DuckDB,
 * Trino, Athena and Spark prune by server and date; each dataset has its own top directory, so a table
 * defined over one never meets another format's files.
 *
 *   logs/server=<server>/date=<YYYY-MM-DD>/<log file name>[.gz|.zst]       form files: the log files
 *   pgaudit/server=<server>/date=<YYYY-MM-DD>/<file>-<fp>-<offset>.parquet  form parquet: one object per
 *   pgaudit-ndjson/server=<server>/date=<YYYY-MM-DD>/<...>.ndjson.gz          source range and event date
 *   sessions[-ndjson]/server=<server>/date=<YYYY-MM-DD>/<...>                forms parquet, ndjson: the
 *   logon-failures[-ndjson]/server=<server>/date=<YYYY-MM-DD>/<...>          correlation of the same source
 *   statement-errors[-ndjson]/server=<server>/date=<YYYY-MM-DD>/<...>        range (archive/correlation.ts)
 *   pgaudit-rejects/server=<server>/date=<YYYY-MM-DD>/<...>.ndjson.gz        form parquet: records Parquet
 *                                                                            could not take, as NDJSON
 *   _manifest/server=<server>/<writer>-<seq>.jsonl                          the manifest, in parts
 *
 * `date` is the UTC date of the events (parquet, ndjson; of the session start for sessions) or of the log file
 * (files: from its name, else its last write). An object name never changes once committed: a later version of a log file gets `.v2`,
 * `.v3` before its suffix, and the manifest entry says which key it supersedes.
 */

export const DATASET: Record<ArchiveForm, string> = { files: 'logs', parquet: 'pgaudit', ndjson: 'pgaudit-ndjson' };

export const CORRELATION_DATASETS: Record<CorrelationDataset, Record<'parquet' | 'ndjson', string>> = {
  sessions: { parquet: 'sessions', ndjson: 'sessions-ndjson' },
  logon_failures: { parquet: 'logon-failures', ndjson: 'logon-failures-ndjson' },
  statement_errors: { parquet: 'statement-errors', ndjson: 'statement-errors-ndjson' },
};

/** Every top directory of objects (not the manifest). */
export const ALL_DATASETS: string[] = [...Object.values(DATASET), ...Object.values(CORRELATION_DATASETS).flatMap((d) => Object.values(d)), 'pgaudit-rejects'];
export const MANIFEST_DIR = '_manifest';

/** A Hive partition value: characters that would break a path or a `name=value` pair are %-escaped. */
export function partitionValue(v: string): string {
  return v.replace(/[%/\\=#?*:"'<>|\x00-\x1f\x7f ]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`) || '%00';
}

/** A file name safe in a key: the base name, with the same escaping. */
export function safeName(name: string): string {
  const base = name.split('/').pop() || 'file';
  return partitionValue(base);
}

export function utcDate(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/** The date a log file belongs to: `YYYY-MM-DD` in its name (PostgreSQL's and RDS's names have one), else its last write. */
export function fileDate(name: string, lastWrittenMs: number): string {
  const m = /(\d{4})-(\d{2})-(\d{2})/.exec(name.split('/').pop() ?? name);
  if (m) {
    const [, y, mo, d] = m;
    const t = Date.UTC(Number(y), Number(mo) - 1, Number(d));
    if (Number.isFinite(t) && utcDate(t) === `${y}-${mo}-${d}`) return `${y}-${mo}-${d}`;
  }
  return utcDate(lastWrittenMs);
}

export function partitionDir(form: ArchiveForm, server: string, date: string): string {
  return `${DATASET[form]}/server=${partitionValue(server)}/date=${date}/`;
}

/** Key of a log file (form files); `version` 1 is the plain name. */
export function fileKey(server: string, date: string, name: string, suffix: string, version: number): string {
  const base = safeName(name);
  return `${partitionDir('files', server, date)}${base}${version > 1 ? `.v${version}` : ''}${suffix}`;
}

/**
 * Key of the events of one source range on one date (forms parquet, ndjson), or of the range's sessions, logon
 * failures or statement errors (`dataset`).
 */
export function eventsKey(
  form: 'parquet' | 'ndjson',
  server: string,
  date: string,
  sourceName: string,
  fingerprint: string,
  startOffset: number,
  attempt = 1,
  dataset?: CorrelationDataset,
): string {
  const stem = safeName(sourceName).replace(/\.(csv|json|log)(\.gz|\.zst)?$/, '');
  const ext = form === 'parquet' ? '.parquet' : '.ndjson.gz';
  const dir = dataset ? `${CORRELATION_DATASETS[dataset][form]}/server=${partitionValue(server)}/date=${date}/` : partitionDir(form, server, date);
  return `${dir}${stem}-${fingerprint.slice(0, 12)}-${startOffset}${attempt > 1 ? `.r${attempt}` : ''}${ext}`;
}

/** Key of the records of one source range and date that Parquet could not take (form parquet), as NDJSON.gz. */
export function rejectsKey(server: string, date: string, sourceName: string, fingerprint: string, startOffset: number, attempt = 1): string {
  const stem = safeName(sourceName).replace(/\.(csv|json|log)(\.gz|\.zst)?$/, '');
  return `pgaudit-rejects/server=${partitionValue(server)}/date=${date}/${stem}-${fingerprint.slice(0, 12)}-${startOffset}${attempt > 1 ? `.r${attempt}` : ''}.ndjson.gz`;
}

export function manifestPrefix(server: string): string {
  return `${MANIFEST_DIR}/server=${partitionValue(server)}/`;
}

export function manifestKey(server: string, writer: string, firstSeq: number): string {
  return `${manifestPrefix(server)}${writer}-${String(firstSeq).padStart(12, '0')}.jsonl`;
}
