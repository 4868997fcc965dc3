import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { PACKED_COLUMNS } from '../../parse/packed.js';
import { jsonString } from '../../core/json.js';

/**
 * Events → Elasticsearch/OpenSearch documents: ECS names where ECS has one (`@timestamp`, `user.name`,
 * `source.ip`, `source.port`, `process.pid`, `event.action`, `service.name`), the rest under
 * `postgresql.*`. Each document has a deterministic `_id` from the event's identity and goes to the index
 * named from its *event* time, so a re-send (after a crash, or a re-ingested file) meets its earlier copy
 * in the same index and `create` answers 409: delivered, never duplicated — across day boundaries too.
 *
 * Kept as one file (about 470 lines): the document of every event kind (pgaudit, row change, application
 * event, correlation) follows one mapping, written once.
 */
export type IndexPeriod = 'daily' | 'monthly';

export interface EventKindNames {
  /** Index name prefix, e.g. `auditship-pgaudit`. */
  prefix: string;
  period: IndexPeriod;
}

/** `<prefix>-2024.05.01` (daily) or `<prefix>-2024.05` (monthly), in UTC. */
export function indexName(names: EventKindNames, timeMs: number): string {
  const d = new Date(Number.isFinite(timeMs) ? timeMs : 0);
  const ym = `${d.getUTCFullYear()}.${String(d.getUTCMonth() + 1).padStart(2, '0')}`;
  return `${names.prefix}-${names.period === 'monthly' ? ym : `${ym}.${String(d.getUTCDate()).padStart(2, '0')}`}`;
}

/** A deterministic document id: base64url of sha1 over the identity parts (27 characters). */
export function documentId(parts: (string | number)[]): string {
  const h = createHash('sha1');
  for (const p of parts) h.update(String(p)).update('\u0000');
  return h.digest('base64url');
}

type Value = string | number | null | undefined;

/** A pgaudit event as the parser hands it on (packed row or record object): the fields used here. */
export interface PgAuditEventFields {
  log_time_ms: Value;
  user_name: Value;
  database_name: Value;
  client_addr: Value;
  client_port: Value;
  application_name: Value;
  session_id: Value;
  session_line_num: Value;
  process_id: Value;
  virtual_transaction_id: Value;
  transaction_id: Value;
  command_tag: Value;
  session_start_ms: Value;
  error_severity: Value;
  backend_type: Value;
  leader_pid: Value;
  query_id: Value;
  audit_type: Value;
  statement_id: Value;
  substatement_id: Value;
  class: Value;
  command: Value;
  object_type: Value;
  object_name: Value;
  statement: Value;
  parameter: Value;
  rows: Value;
}

function num(v: Value): number | undefined {
  if (v === null || v === undefined || v === '') return undefined;
  const n = typeof v === 'number' ? v : Number(v);
  return Number.isFinite(n) ? n : undefined;
}

function str(v: Value): string | undefined {
  return v === null || v === undefined ? undefined : String(v);
}

/** Drops undefined members (smaller documents; absent rather than null). */
function compact<T extends Record<string, unknown>>(o: T): T {
  for (const k of Object.keys(o)) if (o[k] === undefined) delete o[k];
  return o;
}

export interface BulkDoc {
  index: string;
  id: string;
  /** The document as JSON; with action `update`, the update body (`{"doc":…}`). */
  source: string;
  /**
   * Default `create`: a document that exists is delivered already (409). `update`: merged into the document of
   * that id (idempotent; sessions, and the outcome of a statement onto its events).
   */
  action?: 'update';
  /** An update of a document that may not exist (an outcome for a line that is not a pgaudit entry): 404 is no error. */
  ifExists?: boolean;
  /** A session, logon failure or outcome: counted apart from the events. */
  correlation?: boolean;
}

const COL = Object.fromEntries(PACKED_COLUMNS.map((c, i) => [c, i])) as Record<(typeof PACKED_COLUMNS)[number], number>;

/** `,"key":"text"` for a present value ('' when absent). */
function ts(key: string, v: string | number | null | undefined): string {
  return v === null || v === undefined ? '' : `,"${key}":${jsonString(typeof v === 'string' ? v : String(v))}`;
}

/** `,"key":number` for a present, finite value ('' when absent). */
function tn(key: string, v: string | number | null | undefined): string {
  if (v === null || v === undefined || v === '') return '';
  const n = typeof v === 'number' ? v : Number(v);
  return Number.isFinite(n) ? `,"${key}":${n}` : '';
}

/** `,"name":{...}` from members written with a leading comma ('' when there are none). */
function obj(name: string, members: string): string {
  return members ? `,"${name}":{${members.slice(1)}}` : '';
}

/**
 * The same document as pgauditDocument(), from values in PACKED_COLUMNS order, written straight as JSON
 * (no intermediate objects: this runs once per event at tens of thousands a second).
 */
export function pgauditDocumentFromValues(serverJson: string, server: string, v: readonly (string | number | null)[], names: EventKindNames): BulkDoc {
  const timeMs = typeof v[COL.log_time_ms] === 'number' ? (v[COL.log_time_ms] as number) : Number(v[COL.log_time_ms] ?? 0);
  const addr = v[COL.client_addr];
  const addrText = addr === null || addr === undefined ? null : String(addr);
  const start = v[COL.session_start_ms];
  const command = v[COL.command];
  const audit =
    ts('audit_type', v[COL.audit_type]) +
    tn('statement_id', v[COL.statement_id]) +
    tn('substatement_id', v[COL.substatement_id]) +
    ts('class', v[COL.class]) +
    ts('command', command) +
    ts('object_type', v[COL.object_type]) +
    ts('object_name', v[COL.object_name]) +
    ts('statement', v[COL.statement]) +
    ts('parameter', v[COL.parameter]) +
    tn('rows', v[COL.rows]);
  const log =
    ts('database', v[COL.database_name]) +
    ts('application_name', v[COL.application_name]) +
    ts('session_id', v[COL.session_id]) +
    tn('session_line_num', v[COL.session_line_num]) +
    (start === null || start === undefined || start === '' ? '' : `,"session_start":"${new Date(Number(start)).toISOString()}"`) +
    ts('virtual_transaction_id', v[COL.virtual_transaction_id]) +
    tn('transaction_id', v[COL.transaction_id]) +
    ts('command_tag', v[COL.command_tag]) +
    ts('error_severity', v[COL.error_severity]) +
    ts('backend_type', v[COL.backend_type]) +
    tn('leader_pid', v[COL.leader_pid]) +
    ts('query_id', v[COL.query_id]);
  const source =
    `{"@timestamp":"${new Date(timeMs).toISOString()}"` +
    `,"event":{"kind":"event","category":["database"],"dataset":"postgresql.audit","module":"postgresql"${command === null || command === undefined ? '' : `,"action":${JSON.stringify(String(command).toLowerCase())}`}}` +
    `,"service":{"name":${serverJson},"type":"postgresql"}` +
    obj('user', ts('name', v[COL.user_name])) +
    obj('source', (addrText !== null && isIP(addrText) ? `,"ip":${JSON.stringify(addrText)}` : '') + ts('address', addrText) + tn('port', v[COL.client_port])) +
    obj('process', tn('pid', v[COL.process_id])) +
    obj('postgresql', obj('audit', audit) + obj('log', log)) +
    '}';
  return {
    index: indexName(names, timeMs),
    id: documentId(['pgaudit', server, String(v[COL.session_id]), String(v[COL.session_line_num])]),
    source,
  };
}

/** One pgaudit event as a document of `auditship-pgaudit-*` (the reference shape; see the fast variant above). */
export function pgauditDocument(server: string, e: PgAuditEventFields, names: EventKindNames): BulkDoc {
  const timeMs = num(e.log_time_ms) ?? 0;
  const addr = str(e.client_addr);
  const sessionStart = num(e.session_start_ms);
  const doc = {
    '@timestamp': new Date(timeMs).toISOString(),
    event: compact({ kind: 'event', category: ['database'], dataset: 'postgresql.audit', module: 'postgresql', action: str(e.command)?.toLowerCase() }),
    service: { name: server, type: 'postgresql' },
    user: compact({ name: str(e.user_name) }),
    source: compact({ ip: addr && isIP(addr) ? addr : undefined, address: addr, port: num(e.client_port) }),
    process: compact({ pid: num(e.process_id) }),
    postgresql: {
      audit: compact({
        audit_type: str(e.audit_type),
        statement_id: num(e.statement_id),
        substatement_id: num(e.substatement_id),
        class: str(e.class),
        command: str(e.command),
        object_type: str(e.object_type),
        object_name: str(e.object_name),
        statement: str(e.statement),
        parameter: str(e.parameter),
        rows: num(e.rows),
      }),
      log: compact({
        database: str(e.database_name),
        application_name: str(e.application_name),
        session_id: str(e.session_id),
        session_line_num: num(e.session_line_num),
        session_start: sessionStart === undefined ? undefined : new Date(sessionStart).toISOString(),
        virtual_transaction_id: str(e.virtual_transaction_id),
        transaction_id: num(e.transaction_id),
        command_tag: str(e.command_tag),
        error_severity: str(e.error_severity),
        backend_type: str(e.backend_type),
        leader_pid: num(e.leader_pid),
        query_id: str(e.query_id),
      }),
    },
  };
  return {
    index: indexName(names, timeMs),
    id: documentId(['pgaudit', server, String(e.session_id), String(e.session_line_num)]),
    source: JSON.stringify(doc),
  };
}

const KEYWORD = { type: 'keyword', ignore_above: 1024 };
/** Statement-like text: searchable words, and the exact text (first 8191 characters) for aggregations. */
const LONG_TEXT = { type: 'text', fields: { keyword: { type: 'keyword', ignore_above: 8191 } } };

/** Index templates: one per event kind, explicit mappings (dynamic: strict for pgaudit — no surprises). */
export function pgauditTemplate(names: EventKindNames): { name: string; body: Record<string, unknown> } {
  return {
    name: names.prefix,
    body: {
      index_patterns: [`${names.prefix}-*`],
      priority: 200,
      template: {
        settings: { number_of_shards: 1, 'index.refresh_interval': '5s' },
        mappings: {
          dynamic: 'strict',
          properties: {
            '@timestamp': { type: 'date' },
            event: { properties: { kind: KEYWORD, category: KEYWORD, dataset: KEYWORD, module: KEYWORD, action: KEYWORD, outcome: KEYWORD } },
            service: { properties: { name: KEYWORD, type: KEYWORD } },
            user: { properties: { name: KEYWORD } },
            source: { properties: { ip: { type: 'ip' }, address: KEYWORD, port: { type: 'long' } } },
            process: { properties: { pid: { type: 'long' } } },
            // The outcome of a failed statement (elasticsearch/correlation.ts): SQLSTATE and the server's message.
            error: { properties: { code: KEYWORD, message: LONG_TEXT } },
            postgresql: {
              properties: {
                audit: {
                  properties: {
                    audit_type: KEYWORD,
                    statement_id: { type: 'long' },
                    substatement_id: { type: 'long' },
                    class: KEYWORD,
                    command: KEYWORD,
                    object_type: KEYWORD,
                    object_name: KEYWORD,
                    statement: LONG_TEXT,
                    parameter: LONG_TEXT,
                    rows: { type: 'long' },
                  },
                },
                log: {
                  properties: {
                    database: KEYWORD,
                    application_name: KEYWORD,
                    session_id: KEYWORD,
                    session_line_num: { type: 'long' },
                    session_start: { type: 'date' },
                    virtual_transaction_id: KEYWORD,
                    transaction_id: { type: 'long' },
                    command_tag: KEYWORD,
                    error_severity: KEYWORD,
                    backend_type: KEYWORD,
                    leader_pid: { type: 'long' },
                    query_id: KEYWORD,
                  },
                },
              },
            },
          },
        },
      },
      _meta: { managed_by: 'auditship', kind: 'pgaudit' },
    },
  };
}

/** Index names may hold lower-case letters, digits, `-` and `_` (and not start with `-` or `_`). */
export function indexSafe(name: string): string {
  return (
    name
      .toLowerCase()
      .replace(/[^a-z0-9_-]+/g, '-')
      .replace(/^[-_]+/, '') || 'default'
  );
}

/** An application event (sql_outbox, django_auditlog): the fields a document is made of. */
export interface AppEventFields {
  id: string;
  message: string;
  /** Epoch microseconds. */
  created: number | null;
  eventTime: number;
}

/**
 * An application event as a document of `<prefix>-app-<source>-<date>`: the application's own message
 * (structured-log-transfer's `audit_event`, or anything else) with `@timestamp` (the event time, unless the
 * message has one) and `auditship.{source_name, source_table, row_id}`. One index family per source: two
 * applications' messages never fight over one mapping. The id is the sink's identity: source, table, row
 * id and the content fingerprint.
 */
export function appEventDocument(names: EventKindNames, sourceName: string, table: string, e: AppEventFields, fingerprintHex: string): BulkDoc {
  const timeMs = Math.floor(e.eventTime / 1000);
  const envelope = { source_name: sourceName, source_table: table, row_id: e.id };
  let doc: Record<string, unknown>;
  const parsed = JSON.parse(e.message) as unknown;
  if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) {
    doc = parsed as Record<string, unknown>;
    if (doc['@timestamp'] === undefined) doc = { '@timestamp': new Date(timeMs).toISOString(), ...doc };
  } else {
    doc = { '@timestamp': new Date(timeMs).toISOString(), value: parsed };
  }
  doc['auditship'] = envelope;
  return {
    index: indexName(names, timeMs),
    id: documentId(['app', sourceName, table, e.id, fingerprintHex]),
    source: JSON.stringify(doc),
  };
}

/** The template of application events: the envelope mapped, the application's fields dynamic. */
export function appTemplate(prefix: string): { name: string; body: Record<string, unknown> } {
  return {
    name: prefix,
    body: {
      index_patterns: [`${prefix}-*`],
      priority: 200,
      template: {
        settings: { number_of_shards: 1, 'index.refresh_interval': '5s' },
        mappings: {
          dynamic: true,
          properties: {
            '@timestamp': { type: 'date' },
            auditship: { properties: { source_name: KEYWORD, source_table: KEYWORD, row_id: KEYWORD } },
            // structured-log-transfer's fields that mean the same in its outbox and django-auditlog messages
            // (actor, target and message differ in shape between the two: left to each index's dynamic mapping)
            audit_event: { properties: { date_time: { type: 'date' }, operation: KEYWORD, origin: KEYWORD, environment: KEYWORD, status: KEYWORD } },
          },
        },
      },
      _meta: { managed_by: 'auditship', kind: 'app' },
    },
  };
}

const ROW_ACTIONS: Record<string, string> = {
  I: 'INSERT',
  U: 'UPDATE',
  D: 'DELETE',
  T: 'TRUNCATE',
  INSERT: 'INSERT',
  UPDATE: 'UPDATE',
  DELETE: 'DELETE',
  TRUNCATE: 'TRUNCATE',
};

/** A row change as the pg_audit_table source reads it (texts; JSON columns as JSON text). */
export interface RowChangeFields {
  event_id: string;
  txid: string | null;
  schema_name: string | null;
  table_name: string | null;
  relid: string | null;
  action: string;
  row_data: string | null;
  changed_fields: string | null;
  statement_only: string | null;
  session_user_name: string | null;
  application_name: string | null;
  client_addr: string | null;
  client_port: string | null;
  action_tstamp_tx_us: string | null;
  action_tstamp_stm_us: string | null;
  action_tstamp_clk_us: string | null;
  client_query: string | null;
}

function isoOfMicros(us: string | null): string | undefined {
  if (us === null || us === '') return undefined;
  const n = Number(us);
  return Number.isFinite(n) ? new Date(Math.floor(n / 1000)).toISOString() : undefined;
}

/**
 * A row change (pg_audit_table) as a document of `<prefix>-rows-<date>`: ECS fields, and the audited row and
 * changed fields as JSON objects under `postgresql.row_change` (mapped `flattened` / `flat_object`: every
 * key searchable, no mapping explosion across audited tables). The id is (server, audit table, event id).
 */
export function rowChangeDocument(serverJson: string, server: string, auditTable: string, r: RowChangeFields, names: EventKindNames): BulkDoc {
  const clk = r.action_tstamp_clk_us ?? r.action_tstamp_stm_us ?? r.action_tstamp_tx_us;
  const timeMs = clk === null ? 0 : Math.floor(Number(clk) / 1000);
  const action = ROW_ACTIONS[r.action.toUpperCase()] ?? r.action;
  const addr = r.client_addr;
  const tx = isoOfMicros(r.action_tstamp_tx_us);
  const stm = isoOfMicros(r.action_tstamp_stm_us);
  const rc =
    `"audit_table":${jsonString(auditTable)},"event_id":${Number(r.event_id)}` +
    tn('txid', r.txid) +
    ts('schema', r.schema_name) +
    ts('table', r.table_name) +
    tn('relid', r.relid) +
    `,"action":"${action}"` +
    (r.row_data === null ? '' : `,"row_data":${r.row_data}`) +
    (r.changed_fields === null ? '' : `,"changed_fields":${r.changed_fields}`) +
    (r.statement_only === null ? '' : `,"statement_only":${r.statement_only === 'true' || r.statement_only === 't'}`) +
    ts('application_name', r.application_name) +
    (tx ? `,"transaction_start":"${tx}"` : '') +
    (stm ? `,"statement_start":"${stm}"` : '') +
    ts('query', r.client_query);
  const source =
    `{"@timestamp":"${new Date(timeMs).toISOString()}"` +
    `,"event":{"kind":"event","category":["database"],"type":["change"],"dataset":"postgresql.row_changes","module":"postgresql","action":"${action.toLowerCase()}"}` +
    `,"service":{"name":${serverJson},"type":"postgresql"}` +
    obj('user', ts('name', r.session_user_name)) +
    obj('source', (addr !== null && isIP(addr) ? `,"ip":${JSON.stringify(addr)}` : '') + ts('address', addr) + tn('port', r.client_port)) +
    `,"postgresql":{"row_change":{${rc}}}}`;
  return { index: indexName(names, timeMs), id: documentId(['rows', server, auditTable, r.event_id]), source };
}

/** The row-changes template; `objectType` is `flattened` (Elasticsearch) or `flat_object` (OpenSearch 2.7+). */
export function rowsTemplate(names: EventKindNames, objectType: string): { name: string; body: Record<string, unknown> } {
  const json = objectType === 'object' ? { type: 'object', enabled: false } : { type: objectType };
  return {
    name: names.prefix,
    body: {
      index_patterns: [`${names.prefix}-*`],
      priority: 200,
      template: {
        settings: { number_of_shards: 1, 'index.refresh_interval': '5s' },
        mappings: {
          dynamic: 'strict',
          properties: {
            '@timestamp': { type: 'date' },
            event: { properties: { kind: KEYWORD, category: KEYWORD, type: KEYWORD, dataset: KEYWORD, module: KEYWORD, action: KEYWORD } },
            service: { properties: { name: KEYWORD, type: KEYWORD } },
            user: { properties: { name: KEYWORD } },
            source: { properties: { ip: { type: 'ip' }, address: KEYWORD, port: { type: 'long' } } },
            postgresql: {
              properties: {
                row_change: {
                  properties: {
                    audit_table: KEYWORD,
                    event_id: { type: 'long' },
                    txid: { type: 'long' },
                    schema: KEYWORD,
                    table: KEYWORD,
                    relid: { type: 'long' },
                    action: KEYWORD,
                    row_data: json,
                    changed_fields: json,
                    statement_only: { type: 'boolean' },
                    application_name: KEYWORD,
                    transaction_start: { type: 'date' },
                    statement_start: { type: 'date' },
                    query: LONG_TEXT,
                  },
                },
              },
            },
          },
        },
      },
      _meta: { managed_by: 'auditship', kind: 'rows' },
    },
  };
}
