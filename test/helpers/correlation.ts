/**
 * Reading correlation back from every sink, for tests: the DuckDB store's tables (the reference), the documents
 * of the Elasticsearch test server, and the datasets of a local archive — each in one comparable shape.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { requestJson } from '../es-server/client.js';
import { decode, duck, entriesOf, localManifest } from './archive.js';
import { queryDb } from './ingest-cli.js';

export type Doc = Record<string, unknown>;

/** Every document of the indices a pattern names (the test server's dump, beyond the 10,000-hit window). */
export async function esDocs(url: string, pattern: string): Promise<Doc[]> {
  const cat = await requestJson(url, 'GET', `/_cat/indices/${pattern}?format=json&h=index`);
  const out: Doc[] = [];
  for (const { index } of cat.body as { index: string }[]) {
    const r = await requestJson(url, 'GET', `/_test/docs/${index}`);
    for (const line of String(r.body).split('\n').filter(Boolean)) out.push((JSON.parse(line) as { _source: Doc })._source);
  }
  return out;
}

/** session_id/line/sqlstate of the event documents marked failed (with the error message). */
export async function esOutcomes(url: string): Promise<string[]> {
  return (await esDocs(url, 'auditship-pgaudit-*'))
    .filter((d) => (d.event as Doc)['outcome'] === 'failure')
    .map((d) => {
      const log = (d.postgresql as { log: Doc }).log;
      const error = d.error as Doc;
      assert.ok(error['message'], 'the error message is on the event');
      return `${log['session_id']}/${log['session_line_num']}/${error['code']}`;
    });
}

export const esSession = (d: Doc) => {
  const pg = d.postgresql as { log: Doc; session: Doc };
  return [
    pg.log['session_id'],
    (d.user as Doc)['name'],
    pg.log['database'],
    (d.source as Doc)['address'],
    pg.log['application_name'],
    pg.session['connected_at'],
    pg.session['disconnected_at'],
    pg.session['duration_ms'],
  ].join('|');
};
export const esFailure = (d: Doc) => {
  const log = (d.postgresql as { log: Doc }).log;
  return [
    log['session_id'],
    log['session_line_num'],
    d['@timestamp'],
    (d.user as Doc)['name'],
    (d.source as Doc)['address'],
    (d.error as Doc)['code'],
    (d.error as Doc)['message'],
  ].join('|');
};
const iso = (v: unknown) =>
  v === null || v === undefined
    ? ''
    : new Date(
        String(v)
          .replace(' ', 'T')
          .replace(/(\+00)?$/, 'Z')
          .replace('ZZ', 'Z'),
      ).toISOString();
export const archivedSession = (r: Doc) =>
  [
    r['session_id'],
    r['user_name'],
    r['database_name'],
    r['client_addr'],
    r['application_name'],
    iso(r['connected_at']),
    iso(r['disconnected_at']),
    r['duration_ms'] ?? '',
  ]
    .map((x) => String(x ?? ''))
    .join('|');
export const archivedFailure = (r: Doc) =>
  [r['session_id'], r['session_line_num'], iso(r['log_time']), r['user_name'], r['client_addr'], r['sqlstate'], r['reason']]
    .map((x) => String(x ?? ''))
    .join('|');

/** The DuckDB store's correlation, in the shapes above. */
export async function storeCorrelation(db: string): Promise<{ sessions: string[]; failures: string[]; errors: string[]; failed: string[] }> {
  const t = (c: string) => `coalesce(strftime(${c}, '%Y-%m-%dT%H:%M:%S.%gZ'), '')`;
  const col = async (sql: string) => (await queryDb(db, sql)).map((r) => String(r['x'])).sort();
  return {
    sessions: await col(
      `SELECT concat_ws('|', session_id, user_name, database_name, client_addr, application_name, ${t('connected_at')}, ${t('disconnected_at')}, coalesce(duration_ms::VARCHAR, '')) AS x FROM sessions`,
    ),
    failures: await col(
      `SELECT concat_ws('|', session_id, session_line_num, ${t('log_time')}, user_name, client_addr, sqlstate, reason) AS x FROM logon_failures`,
    ),
    errors: await col(`SELECT concat_ws('/', session_id, session_line_num, sqlstate, coalesce(statement_id::VARCHAR, '')) AS x FROM statement_errors`),
    failed: await col(`SELECT concat_ws('/', session_id, session_line_num, sqlstate) AS x FROM audit_logs WHERE outcome = 'error'`),
  };
}

/** A dataset of a local NDJSON archive (committed objects), as rows. */
export async function readNdjson(archive: string, dataset: 'events' | 'sessions' | 'logon_failures' | 'statement_errors'): Promise<Doc[]> {
  return entriesOf(localManifest(archive))
    .filter((e) => ((e as { dataset?: string }).dataset ?? 'events') === dataset)
    .flatMap((e) =>
      decode(readFileSync(join(archive, e.key)), 'gzip')
        .toString('utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Doc),
    );
}

/** A dataset of a local Parquet archive (committed objects), as rows. */
export async function readParquet(archive: string, dataset: 'events' | 'sessions' | 'logon_failures' | 'statement_errors'): Promise<Doc[]> {
  const keys = entriesOf(localManifest(archive))
    .filter((e) => ((e as { dataset?: string }).dataset ?? 'events') === dataset)
    .map((e) => join(archive, e.key));
  if (keys.length === 0) return [];
  return duck(`SELECT * REPLACE (${
    dataset === 'sessions'
      ? "strftime(connected_at, '%Y-%m-%dT%H:%M:%S.%gZ') AS connected_at, strftime(disconnected_at, '%Y-%m-%dT%H:%M:%S.%gZ') AS disconnected_at, strftime(last_seen, '%Y-%m-%dT%H:%M:%S.%gZ') AS last_seen"
      : dataset === 'events'
        ? 'session_line_num AS session_line_num'
        : "strftime(log_time, '%Y-%m-%dT%H:%M:%S.%gZ') AS log_time"
  })
    FROM read_parquet([${keys.map((k) => `'${k}'`).join(', ')}])`);
}
