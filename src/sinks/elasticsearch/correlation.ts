/**
 * Correlation → Elasticsearch/OpenSearch documents, beside the pgaudit events (documents.ts):
 *  - sessions in `<index_prefix>-sessions-<date of the session start>`, one document per session (id: server and
 *    session id), built by `update` from its connection and disconnection records — whichever comes first
 *    creates it, the other adds to it, in the same run or any later one (a session that ends in a later file);
 *  - logon failures in `<index_prefix>-logon-failures-<date>`, one document per FATAL authentication record
 *    (id: server, session id, line), created like the events;
 *  - the outcome of a statement an error ended, onto its event documents (`event.outcome: failure`,
 *    `error.code` = SQLSTATE, `error.message`) by `update` of each document id — the same outcome as the DuckDB
 *    store's audit_logs.outcome, sqlstate and error_message. Event documents without it did not fail (as far
 *    as the log says: the error may come in a later file).
 * Every write is idempotent by id, so a re-send after a crash changes nothing.
 */
import { isIP } from 'node:net';
import type { SessionRecord, StatementOutcome } from '../../parse/index.js';
import { jsonString } from '../../core/json.js';
import { documentId, indexName, type BulkDoc, type EventKindNames } from './documents.js';

const iso = (ms: number) => new Date(ms).toISOString();

/** `,"key":"value"` for a non-null string (JSON-escaped), '' otherwise. */
function ts(key: string, v: string | null | undefined): string {
  return v === null || v === undefined ? '' : `,"${key}":${jsonString(v)}`;
}

function tn(key: string, v: number | null | undefined): string {
  return v === null || v === undefined || !Number.isFinite(v) ? '' : `,"${key}":${v}`;
}

function obj(name: string, members: string): string {
  return members ? `,"${name}":{${members.slice(1)}}` : '';
}

/** Who and from where: ECS fields a session or a failed login shares with the events. */
function who(serverJson: string, r: SessionRecord): string {
  return (
    `,"service":{"name":${serverJson},"type":"postgresql"}` +
    obj('user', ts('name', r.user_name)) +
    obj(
      'source',
      (r.client_addr !== null && isIP(r.client_addr) ? `,"ip":${JSON.stringify(r.client_addr)}` : '') +
        ts('address', r.client_addr) +
        tn('port', r.client_port),
    ) +
    obj('process', tn('pid', r.process_id))
  );
}

/**
 * A connection or disconnection record as an update of its session's document. The session's start time
 * (on every record of the session) names the index and is its @timestamp, so both records meet in one
 * document. The connection record says who and from where (`doc`, always applied); a disconnection record
 * adds the end and duration, and says who only when it creates the document (`upsert`: its session's
 * connection was not logged) — so the result does not depend on which of the two is applied first.
 */
export function sessionDocument(serverJson: string, server: string, r: SessionRecord, names: EventKindNames): BulkDoc {
  const startMs = r.session_start_ms ?? r.log_time_ms;
  const base =
    `{"@timestamp":"${iso(startMs)}","event":{"kind":"event","category":["session"],"dataset":"postgresql.session","module":"postgresql"}` + who(serverJson, r);
  const log =
    ts('session_id', r.session_id) +
    ts('database', r.database_name) +
    ts('application_name', r.application_name) +
    ts('backend_type', r.backend_type) +
    (r.session_start_ms === null ? '' : `,"session_start":"${iso(r.session_start_ms)}"`);
  let body: string;
  if (r.kind === 'connect') {
    body = `{"doc":${base},"postgresql":{"log":{${log.slice(1)}},"session":{"connected_at":"${iso(r.log_time_ms)}"}}},"doc_as_upsert":true}`;
  } else {
    const end = `"disconnected_at":"${iso(r.log_time_ms)}"${tn('duration_ms', r.duration_ms)}`;
    body = `{"doc":{"postgresql":{"session":{${end}}}},"upsert":${base},"postgresql":{"log":{${log.slice(1)}},"session":{${end}}}}}`;
  }
  return { index: indexName(names, startMs), id: documentId(['session', server, r.session_id]), source: body, action: 'update', correlation: true };
}

/** A FATAL authentication record (SQLSTATE class 28) as a document: created once, like an event. */
export function logonFailureDocument(serverJson: string, server: string, r: SessionRecord, names: EventKindNames): BulkDoc {
  const source =
    `{"@timestamp":"${iso(r.log_time_ms)}"` +
    `,"event":{"kind":"event","category":["authentication"],"type":["start"],"outcome":"failure","dataset":"postgresql.logon_failure","module":"postgresql"}` +
    who(serverJson, r) +
    obj('error', ts('code', r.sqlstate) + ts('message', r.message)) +
    `,"postgresql":{"log":{${(ts('session_id', r.session_id) + tn('session_line_num', r.session_line_num) + ts('database', r.database_name)).slice(1)}}` +
    obj('logon_failure', ts('detail', r.detail)) +
    '}}';
  return { index: indexName(names, r.log_time_ms), id: documentId(['logon_failure', server, r.session_id, r.session_line_num]), source, correlation: true };
}

/**
 * The outcome of a failed statement as updates of its event documents: one per line from its first to its
 * last audited entry (a line in between that is not an entry has no document: ifExists), into the index of
 * the entries' time (both, when the statement crossed an index's period).
 */
export function outcomeUpdates(server: string, o: StatementOutcome, names: EventKindNames): BulkDoc[] {
  const body = `{"doc":{"event":{"outcome":"failure"},"error":{${(ts('code', o.sqlstate) + ts('message', o.message)).slice(1)}}}}`;
  const indices = [...new Set([indexName(names, o.from_ms), indexName(names, o.last_ms)])];
  const first = Math.min(o.first_line, o.last_line);
  const out: BulkDoc[] = [];
  for (let line = first; line <= o.last_line; line++) {
    const id = documentId(['pgaudit', server, o.session_id, String(line)]);
    for (const index of indices) out.push({ index, id, source: body, action: 'update', ifExists: true, correlation: true });
  }
  return out;
}

const KEYWORD = { type: 'keyword', ignore_above: 1024 };
const MESSAGE = { type: 'text', fields: { keyword: { type: 'keyword', ignore_above: 8191 } } };
const SETTINGS = { number_of_shards: 1, 'index.refresh_interval': '5s' };
const WHO = {
  service: { properties: { name: KEYWORD, type: KEYWORD } },
  user: { properties: { name: KEYWORD } },
  source: { properties: { ip: { type: 'ip' }, address: KEYWORD, port: { type: 'long' } } },
  process: { properties: { pid: { type: 'long' } } },
};

/** What the pgaudit template adds for outcomes (also put onto indices made by an earlier template). */
export const OUTCOME_PROPERTIES = {
  event: { properties: { outcome: KEYWORD } },
  error: { properties: { code: KEYWORD, message: MESSAGE } },
};

export function sessionsTemplate(names: EventKindNames): { name: string; body: Record<string, unknown> } {
  return {
    name: names.prefix,
    body: {
      index_patterns: [`${names.prefix}-*`],
      priority: 200,
      template: {
        settings: SETTINGS,
        mappings: {
          dynamic: 'strict',
          properties: {
            '@timestamp': { type: 'date' },
            event: { properties: { kind: KEYWORD, category: KEYWORD, dataset: KEYWORD, module: KEYWORD } },
            ...WHO,
            postgresql: {
              properties: {
                log: {
                  properties: { session_id: KEYWORD, database: KEYWORD, application_name: KEYWORD, backend_type: KEYWORD, session_start: { type: 'date' } },
                },
                session: { properties: { connected_at: { type: 'date' }, disconnected_at: { type: 'date' }, duration_ms: { type: 'long' } } },
              },
            },
          },
        },
      },
      _meta: { managed_by: 'auditship', kind: 'sessions' },
    },
  };
}

export function logonFailuresTemplate(names: EventKindNames): { name: string; body: Record<string, unknown> } {
  return {
    name: names.prefix,
    body: {
      index_patterns: [`${names.prefix}-*`],
      priority: 200,
      template: {
        settings: SETTINGS,
        mappings: {
          dynamic: 'strict',
          properties: {
            '@timestamp': { type: 'date' },
            event: { properties: { kind: KEYWORD, category: KEYWORD, type: KEYWORD, outcome: KEYWORD, dataset: KEYWORD, module: KEYWORD } },
            ...WHO,
            error: { properties: { code: KEYWORD, message: MESSAGE } },
            postgresql: {
              properties: {
                log: { properties: { session_id: KEYWORD, session_line_num: { type: 'long' }, database: KEYWORD } },
                logon_failure: { properties: { detail: MESSAGE } },
              },
            },
          },
        },
      },
      _meta: { managed_by: 'auditship', kind: 'logon-failures' },
    },
  };
}
