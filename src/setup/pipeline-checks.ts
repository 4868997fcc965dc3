import { accessSync, constants, readdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Config, PipelineConfig } from '../config/load.js';
import type { SinkConfig, SinkConfigOf, SinkType, SourceConfig, SourceConfigOf, SourceType } from '../connectors.js';
import { tableSourceOptions } from '../sources/pg-audit-table/config.js';
import { rdsApiTarget } from '../sources/rds-logs/config.js';
import { ConnectorError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { maskUrl } from '../core/postgres.js';
import { readDaemonStatus } from '../jobs/daemon-status.js';
import { accessFix, currentUser, inspectLogDirectory, pathInfoOf, type CheckResult } from './server-checks.js';

/**
 * Light, read-only checks of each pipeline's source and sinks: can auditship reach and use them? One
 * CheckResult per path, table, database, cluster or bucket. Each connector is reached through the same
 * code the pipelines use (its connect or open step, its healthcheck), and nothing is written: a DuckDB
 * file is opened read-only, a directory that does not exist yet is not created.
 */

/** Bounds a check that could hang (a host that drops packets) to one line. */
const CHECK_TIMEOUT_MS = 20_000;

function withTimeout<T>(p: Promise<T>, what: string, ms = CHECK_TIMEOUT_MS): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new ConnectorError('check', 'timeout', `no answer from ${what} within ${ms / 1000} s; is it reachable from this host?`, true)),
      ms,
    );
    timer.unref();
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** Warnings a connector logs while opening, kept for the check's line. */
function notingLogger(notes: string[]): Logger {
  const note = (msg: string) => {
    notes.push(msg.replace(/\.$/, ''));
  };
  return { debug() {}, info() {}, warn: note, error: note };
}

/**
 * A failure as a result: connector messages read "what went wrong; how to fix it", so the part after the
 * first "; " is the fix (else `fallbackFix`). Only the first line of a message is kept.
 */
function failure(id: string, label: string, err: unknown, fallbackFix: string): CheckResult {
  const message = String(err instanceof Error ? err.message : err).split('\n')[0]!;
  const cut = message.indexOf('; ');
  return cut > 0
    ? { id, ok: false, what: `${label}: ${message.slice(0, cut)}`, fix: message.slice(cut + 2) }
    : { id, ok: false, what: `${label}: ${message}`, fix: fallbackFix };
}

function can(path: string, mode: number): boolean {
  try {
    accessSync(path, mode);
    return true;
  } catch {
    return false;
  }
}

/** The nearest existing directory at or above `path`. */
function existingAncestor(path: string): string {
  let d = path;
  for (;;) {
    try {
      if (statSync(d).isDirectory()) return d;
    } catch {
      /* go up */
    }
    const up = dirname(d);
    if (up === d) return d;
    d = up;
  }
}

/** A directory that must be writable, or creatable. */
function writableDirectory(id: string, label: string, dir: string): CheckResult {
  const user = currentUser();
  let isDir = false;
  try {
    isDir = statSync(dir).isDirectory();
  } catch {
    /* missing */
  }
  if (isDir) {
    if (can(dir, constants.W_OK | constants.X_OK)) return { id, ok: true, what: `${label}: ${dir} is writable` };
    return { id, ok: false, what: `${label}: ${dir} is not writable by ${user.name}`, fix: `chown ${user.name} ${dir}, or choose a writable directory` };
  }
  const parent = existingAncestor(dir);
  if (can(parent, constants.W_OK | constants.X_OK))
    return { id, ok: true, what: `${label}: ${dir} does not exist yet and will be created (${parent} is writable)` };
  return {
    id,
    ok: false,
    what: `${label}: ${dir} does not exist and cannot be created (${parent} is not writable by ${user.name})`,
    fix: `create ${dir} writable by ${user.name}, or choose another place`,
  };
}

/* ---- sources ---- */

async function checkPgLogs(p: PipelineConfig, src: SourceConfigOf<'pg_logs'>): Promise<CheckResult[]> {
  const glob = src.file_glob;
  const out: CheckResult[] = [];
  const { discoverLogFiles } = await import('../sources/pg-logs/files.js');
  for (const given of src.path) {
    const path = resolve(given);
    const id = 'pg_logs';
    const label = `pipeline ${p.name}: source pg_logs ${path}`;
    let st;
    try {
      st = statSync(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        out.push({
          id,
          ok: false,
          what: `${label}: does not exist`,
          fix: "set source.path to the server's log directory (auditship check prints it; SHOW log_directory, relative to data_directory)",
        });
        continue;
      }
      const a = inspectLogDirectory(path);
      const blocked = a.blocked ?? { path, need: 'x' as const, info: null };
      const { why, fix } = accessFix(blocked.info, blocked.path, blocked.need, a.user);
      out.push({ id, ok: false, what: `${label}: not readable: ${why}`, fix });
      continue;
    }
    if (!st.isDirectory()) {
      if (can(path, constants.R_OK)) out.push({ id, ok: true, what: `${label}: a log file, readable` });
      else {
        const { why, fix } = accessFix(pathInfoOf(path), path, 'r', currentUser());
        out.push({ id, ok: false, what: `${label}: not readable: ${why}`, fix });
      }
      continue;
    }
    const a = inspectLogDirectory(path);
    if (a.blocked) {
      const { why, fix } = accessFix(a.blocked.info, a.blocked.path, a.blocked.need, a.user);
      out.push({ id, ok: false, what: `${label}: not readable by ${a.user.name}: ${why}`, fix });
      continue;
    }
    let found;
    try {
      found = await discoverLogFiles([path], { fileGlob: glob, preferFormat: src.prefer_format });
    } catch (err) {
      out.push(failure(id, label, err, 'make the log files readable by this user'));
      continue;
    }
    const files = found.files;
    if (files.length === 0) {
      const others = readdirSync(path).filter((n) => {
        try {
          return statSync(resolve(path, n)).isFile();
        } catch {
          return false;
        }
      });
      const unknown = found.skipped.length;
      if (others.length === 0) out.push({ id, ok: true, what: `${label}: readable, no log files yet (file_glob ${JSON.stringify(glob)})` });
      else {
        out.push({
          id,
          ok: false,
          what: `${label}: no csvlog or jsonlog file matches file_glob ${JSON.stringify(glob)} (the directory holds ${others.length} other file${others.length === 1 ? '' : 's'}, e.g. ${others.sort().at(-1)}${unknown ? `; ${unknown} matched but are neither csvlog nor jsonlog` : ''})`,
          fix: 'set source.file_glob to match the csvlog/jsonlog files, or make the server write them (log_destination, see auditship check)',
        });
      }
      continue;
    }
    const formats = [...new Set(files.map((f) => f.format))].join(' and ');
    const unreadable = files.filter((f) => !can(f.path, constants.R_OK));
    if (unreadable.length) {
      const newest = unreadable.at(-1)!;
      const { why, fix } = accessFix(pathInfoOf(newest.path), newest.path, 'r', a.user);
      out.push({ id, ok: false, what: `${label}: ${unreadable.length} of ${files.length} ${formats} files are not readable by ${a.user.name} (${why})`, fix });
      continue;
    }
    const twins = found.skipped.filter((s) => s.reason.startsWith('twin')).length;
    out.push({
      id,
      ok: true,
      what: `${label}: ${files.length} ${formats} file${files.length === 1 ? ' matches' : 's match'} ${JSON.stringify(glob)}${twins ? ` (${twins} ${src.prefer_format === 'csvlog' ? 'jsonlog' : 'csvlog'} twins skipped)` : ''}, all readable`,
    });
  }
  return out;
}

async function checkPgAuditTable(p: PipelineConfig, src: SourceConfigOf<'pg_audit_table'>): Promise<CheckResult> {
  const url = src.url;
  const label = `pipeline ${p.name}: source pg_audit_table ${maskUrl(url)} ${src.table}`;
  const { PgAuditTableSource } = await import('../sources/pg-audit-table/source.js');
  const notes: string[] = [];
  const source = new PgAuditTableSource(tableSourceOptions(src), notingLogger(notes));
  try {
    await withTimeout(source.connect(), maskUrl(url));
    return { id: 'pg_audit_table', ok: true, what: `${label}: the table ${source.layout.name} exists (cursor ${source.layout.mode})` };
  } catch (err) {
    return failure('pg_audit_table', label, err, 'check source.url and source.table');
  } finally {
    await source.close().catch(() => {});
  }
}

async function checkAppTable(p: PipelineConfig, src: SourceConfigOf<'sql_outbox' | 'django_auditlog'>): Promise<CheckResult> {
  const url = src.url;
  const label = `pipeline ${p.name}: source ${src.type} ${maskUrl(url)} ${src.table}`;
  const { outboxConfig } = await import('../jobs/outbox.js');
  const { openOutboxSource } = await import('../sources/sql-outbox/index.js');
  const notes: string[] = [];
  let opened: Awaited<ReturnType<typeof openOutboxSource>> | undefined;
  try {
    opened = await withTimeout(openOutboxSource(outboxConfig(p), notingLogger(notes), p.name), maskUrl(url));
    const server = opened.client.version.split(/[\s-]/)[0];
    return {
      id: src.type,
      ok: true,
      what: `${label}: the table ${opened.mapping.table} exists (${opened.client.dialect === 'postgres' ? 'PostgreSQL' : 'MariaDB/MySQL'} ${server})${notes.length ? `; note: ${notes.join('; ')}` : ''}`,
    };
  } catch (err) {
    return failure(src.type, label, err, 'check source.url and source.table');
  } finally {
    await opened?.close().catch(() => {});
  }
}

async function checkRdsLogs(p: PipelineConfig, src: SourceConfigOf<'rds_logs'>): Promise<CheckResult> {
  const target = rdsApiTarget(src);
  const { instance, region } = target;
  const label = `pipeline ${p.name}: source rds_logs ${instance} in ${region}`;
  const { RdsApi } = await import('../sources/rds-logs/api.js');
  const { DescribeDBLogFilesCommand } = await import('@aws-sdk/client-rds');
  const api = new RdsApi({ ...target, maxRetries: 1, timeoutMs: 15_000 }, notingLogger([]));
  try {
    // One page of at most 20 files (RDS's smallest page): enough to prove credentials, permission and instance.
    const r = await withTimeout(api.client.send(new DescribeDBLogFilesCommand({ DBInstanceIdentifier: instance, MaxRecords: 20 })), `the RDS API in ${region}`);
    const n = r.DescribeDBLogFiles?.length ?? 0;
    return { id: 'rds_logs', ok: true, what: `${label}: DescribeDBLogFiles answers (${n}${r.Marker ? '+' : ''} log file${n === 1 ? '' : 's'})` };
  } catch (err) {
    return failure('rds_logs', label, api.error(err, 'DescribeDBLogFiles'), 'check instance, region and the AWS credentials');
  } finally {
    api.close();
  }
}

/* ---- sinks ---- */

async function checkDuckdb(p: PipelineConfig, sink: SinkConfigOf<'duckdb'>, i: number): Promise<CheckResult> {
  const path = resolve(sink.path);
  const id = 'duckdb';
  const label = `pipeline ${p.name}: sink duckdb ${path}`;
  let exists = false;
  try {
    exists = statSync(path).isFile();
  } catch {
    /* not yet */
  }
  if (!exists) {
    const dir = dirname(path);
    const r = writableDirectory(id, label, dir);
    if (!r.ok) return r;
    const parent = existingAncestor(dir);
    return {
      id,
      ok: true,
      what: `${label}: does not exist yet and will be created${parent === dir ? ` (${dir} is writable)` : `, with its directory (${parent} is writable)`}`,
    };
  }
  const { openDatabase } = await import('../sinks/duckdb/database.js');
  try {
    const db = await openDatabase(path, { readOnly: true, memoryLimit: '64MB', threads: 1 });
    await db.close();
    return { id, ok: true, what: `${label}: opens` };
  } catch (err) {
    if (err instanceof ConnectorError && err.code === 'db_locked') {
      const daemon = readDaemonStatus(path);
      const holder = /\(PID (\d+)/.exec(err.message)?.[1];
      if (daemon && (!holder || Number(holder) === daemon.pid)) {
        return { id, ok: true, what: `${label}: held by the running daemon (PID ${daemon.pid}, auditship run --follow since ${daemon.startedAt})` };
      }
    }
    return failure(id, label, err, `check sinks[${i}].path`);
  }
}

async function checkElasticsearch(p: PipelineConfig, sink: SinkConfigOf<'elasticsearch'>, i: number): Promise<CheckResult> {
  const id = 'elasticsearch';
  const { detectCluster, elasticsearchOptions } = await import('../sinks/elasticsearch/index.js');
  const { EsHttp } = await import('../sinks/elasticsearch/http.js');
  const o = elasticsearchOptions(sink, 'check');
  let label = `pipeline ${p.name}: sink elasticsearch ${maskUrl(o.url)}`;
  let http;
  try {
    http = new EsHttp({ url: o.url, auth: o.auth, caFile: o.caFile, insecure: o.insecure, timeoutMs: Math.min(o.timeoutMs, 10_000), maxSockets: 1 });
    label = `pipeline ${p.name}: sink elasticsearch ${http.where}`;
    const info = await detectCluster(http, o.flavor);
    return { id, ok: true, what: `${label}: ${info.flavor === 'opensearch' ? 'OpenSearch' : 'Elasticsearch'} ${info.version}` };
  } catch (err) {
    // Transport failures carry no remedy of their own (the fallback), and name the URL the label shows.
    const r = failure(id, label, err, `check sinks[${i}].url, and that the cluster runs and is reachable from this host`);
    return { ...r, what: r.what.replace(`${label}: cannot connect to ${http?.where ?? ''}: `, `${label}: cannot connect: `) };
  } finally {
    http?.close();
  }
}

async function checkArchive(p: PipelineConfig, sink: SinkConfigOf<'archive'>, i: number): Promise<CheckResult> {
  const id = 'archive';
  const { archiveSinkOptions, openStore } = await import('../sinks/archive/index.js');
  const o = archiveSinkOptions(sink);
  if (o.store.kind === 'local') return writableDirectory(id, `pipeline ${p.name}: sink archive`, resolve(o.store.directory));
  const label = `pipeline ${p.name}: sink archive s3://${o.store.bucket}/${o.store.prefix}`;
  const store = await openStore({ ...o.store, maxRetries: 1, timeoutMs: 15_000 });
  try {
    await withTimeout(store.check(), `the bucket ${o.store.bucket}`);
    return { id, ok: true, what: `${label}: the bucket answers (HeadBucket)` };
  } catch (err) {
    return failure(id, label, err, `check sinks[${i}].bucket, region/endpoint and the AWS credentials`);
  } finally {
    store.close();
  }
}

/* ---- all ---- */

/** Each source type's checks (typed by the registry: a source type without checks does not compile). */
const SOURCE_CHECKS: { [K in SourceType]: (p: PipelineConfig, src: SourceConfigOf<K>) => Promise<CheckResult[]> } = {
  pg_logs: checkPgLogs,
  rds_logs: async (p, src) => [await checkRdsLogs(p, src)],
  pg_audit_table: async (p, src) => [await checkPgAuditTable(p, src)],
  sql_outbox: async (p, src) => [await checkAppTable(p, src)],
  django_auditlog: async (p, src) => [await checkAppTable(p, src)],
};

/** Each sink type's check. */
const SINK_CHECKS: { [K in SinkType]: (p: PipelineConfig, sink: SinkConfigOf<K>, i: number) => Promise<CheckResult> } = {
  duckdb: checkDuckdb,
  elasticsearch: checkElasticsearch,
  archive: checkArchive,
};

function sourceChecks(p: PipelineConfig): Promise<CheckResult[]> {
  return (SOURCE_CHECKS[p.source.type] as (p: PipelineConfig, src: SourceConfig) => Promise<CheckResult[]>)(p, p.source);
}

function sinkCheck(p: PipelineConfig, sink: SinkConfig, i: number): Promise<CheckResult> {
  return (SINK_CHECKS[sink.type] as (p: PipelineConfig, sink: SinkConfig, i: number) => Promise<CheckResult>)(p, sink, i);
}

/** The checks of every pipeline, source first then each sink, yielded as each finishes. */
export async function* pipelineChecks(config: Config): AsyncGenerator<CheckResult> {
  for (const p of config.pipelines) {
    for (const r of await sourceChecks(p)) yield r;
    for (const [i, sink] of p.sinks.entries()) yield await sinkCheck(p, sink, i);
  }
}

/**
 * The PostgreSQL server a config points `check` at, when it names one: none when a pg_logs pipeline reads
 * log files (that server is this machine's), else the first postgres:// URL of a table source.
 */
export function configServerUrl(config: Config): string | undefined {
  if (config.pipelines.some((p) => p.source.type === 'pg_logs')) return undefined;
  return config.pipelines
    .map((p) => ('url' in p.source ? p.source.url : undefined))
    .find((u): u is string => typeof u === 'string' && /^postgres(ql)?:\/\//i.test(u));
}
