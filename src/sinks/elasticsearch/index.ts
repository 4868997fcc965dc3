import type { ElasticsearchConfig } from './config.js';
import type { Batch, FileCheckpoint, Sink, WriteReport } from '../../core/connector.js';
import { ConnectorError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { firstOutcomes, type StatementOutcome } from '../../parse/index.js';
import { dimensionsOf, PACKED_COLUMNS, recordRows } from '../../parse/packed.js';
import type { PgAuditPayload } from '../../model/pg-audit-payload.js';
import { BulkWriter, type BulkCounts, type DeadLetter } from './bulk.js';
import {
  appEventDocument,
  appTemplate,
  indexSafe,
  pgauditDocumentFromValues,
  pgauditTemplate,
  rowChangeDocument,
  rowsTemplate,
  type AppEventFields,
  type RowChangeFields,
  type EventKindNames,
  type IndexPeriod,
} from './documents.js';
import { logonFailureDocument, logonFailuresTemplate, OUTCOME_PROPERTIES, outcomeUpdates, sessionDocument, sessionsTemplate } from './correlation.js';
import { errorReason, EsHttp, EsTransportError, type EsAuth } from './http.js';

/**
 * Sink `elasticsearch`: Elasticsearch 8.x/9.x and OpenSearch 2.x/3.x.
 *
 * At open: GET / tells the flavor and version (product header, `version.distribution`) — checked against
 * `flavor` unless auto — and the index template for each event kind is put (explicit mappings, ECS names).
 * Events become documents with deterministic ids in indices named from the event time (documents.ts) and
 * are delivered in bulk with retries (bulk.ts); with pgaudit events go their correlation: sessions, logon
 * failures and the outcome of failed statements (correlation.ts). The sink is never the pipeline's state
 * store: its commit() waits until every document is acknowledged, and only then does the state sink (DuckDB)
 * commit the checkpoint — so a crash anywhere re-sends, and a re-send is a 409 or an update that changes
 * nothing, counted as delivered.
 *
 * Kept as one file (about 420 lines): the sink's open (cluster, template, privileges), write, flush and
 * dead-letter steps share the bulk writer's state.
 */
export interface ElasticsearchSinkOptions {
  url: string;
  flavor: 'auto' | 'elasticsearch' | 'opensearch';
  auth: EsAuth;
  caFile?: string;
  insecure: boolean;
  indexPrefix: string;
  indexPeriod: IndexPeriod;
  manageTemplate: boolean;
  flushBytes: number;
  /** The cluster's http.max_content_length: no request body, and so no document, is larger. */
  maxContentLength: number;
  flushDocs: number;
  concurrency: number;
  maxRetries: number;
  timeoutMs: number;
  server: string;
}

/** What a sink instance carries: pgaudit entries, or application events. */
export type EventKind = 'pgaudit' | 'app' | 'rows';

export interface ClusterInfo {
  flavor: 'elasticsearch' | 'opensearch';
  version: string;
  major: number;
}

/** Reads GET / : reachability, auth, product and version. One clear line per problem. */
export async function detectCluster(http: EsHttp, expected: 'auto' | 'elasticsearch' | 'opensearch'): Promise<ClusterInfo> {
  let res;
  try {
    res = await http.request('GET', '/');
  } catch (err) {
    if (err instanceof EsTransportError) throw new ConnectorError('elasticsearch', 'unreachable', err.message, true, { cause: err });
    throw err;
  }
  if (res.status === 401)
    throw new ConnectorError(
      'elasticsearch',
      'auth_failed',
      `${http.where} refused the credentials (401): ${errorReason(res.body)}; check username/password, api_key or bearer_token`,
      false,
    );
  if (res.status === 403)
    throw new ConnectorError(
      'elasticsearch',
      'permission_denied',
      `${http.where} answered 403 to GET /: ${errorReason(res.body)}; the user needs the monitor cluster privilege (or use a user that may read the root endpoint)`,
      false,
    );
  if (res.status !== 200)
    throw new ConnectorError(
      'elasticsearch',
      'unexpected_answer',
      `${http.where} answered ${res.status} to GET /: ${errorReason(res.body)}; is this an Elasticsearch or OpenSearch endpoint?`,
      res.status >= 500,
    );
  let info: { version?: { number?: string; distribution?: string } };
  try {
    info = JSON.parse(res.body) as typeof info;
  } catch {
    throw new ConnectorError('elasticsearch', 'unexpected_answer', `${http.where} is not an Elasticsearch or OpenSearch endpoint (GET / is not JSON)`, false);
  }
  const version = info.version?.number ?? '';
  const flavor = info.version?.distribution === 'opensearch' ? 'opensearch' : res.headers['x-elastic-product'] === 'Elasticsearch' ? 'elasticsearch' : null;
  if (!flavor || !version)
    throw new ConnectorError(
      'elasticsearch',
      'unsupported_product',
      `${http.where} is neither Elasticsearch (X-Elastic-Product header) nor OpenSearch (version.distribution); version ${version || 'unknown'}`,
      false,
    );
  if (expected !== 'auto' && expected !== flavor)
    throw new ConnectorError('elasticsearch', 'wrong_flavor', `${http.where} is ${flavor} ${version}, but flavor is set to ${expected}`, false);
  const major = Number(version.split('.')[0]);
  if (flavor === 'elasticsearch' && (major < 8 || major > 9))
    throw new ConnectorError('elasticsearch', 'unsupported_version', `Elasticsearch ${version} at ${http.where}: auditship supports 8.x and 9.x`, false);
  if (flavor === 'opensearch' && (major < 2 || major > 3))
    throw new ConnectorError('elasticsearch', 'unsupported_version', `OpenSearch ${version} at ${http.where}: auditship supports 2.x and 3.x`, false);
  return { flavor, version, major };
}

export class ElasticsearchSink implements Sink<PgAuditPayload> {
  readonly kind = 'elasticsearch';
  private readonly names: EventKindNames;
  /** pgaudit: the sessions and logon failures index families. */
  private readonly sessionNames: EventKindNames;
  private readonly failureNames: EventKindNames;
  /** Outcomes of the batches since the last commit: applied to their event documents at the commit. */
  private outcomes: StatementOutcome[] = [];
  /** Correlation (sessions, failed logins, outcomes) is sent: the user may write it. */
  private correlate = true;
  /** Given the dead letters of each commit (the state sink stores them in its transaction). */
  onDeadLetters?: (letters: DeadLetter[]) => Promise<void>;

  private constructor(
    private readonly http: EsHttp,
    private readonly bulk: BulkWriter,
    readonly cluster: ClusterInfo,
    private readonly options: ElasticsearchSinkOptions,
    private readonly log: Logger,
    readonly eventKind: EventKind,
  ) {
    this.names = { prefix: `${options.indexPrefix}-${eventKind}`, period: options.indexPeriod };
    this.sessionNames = { prefix: `${options.indexPrefix}-sessions`, period: options.indexPeriod };
    this.failureNames = { prefix: `${options.indexPrefix}-logon-failures`, period: options.indexPeriod };
  }

  /** The index patterns this sink writes to. */
  private get patterns(): string[] {
    return this.eventKind === 'pgaudit' ? [this.names, this.sessionNames, this.failureNames].map((n) => `${n.prefix}-*`) : [`${this.names.prefix}-*`];
  }

  /** Opens the sink for one kind of event: pgaudit entries (pg_logs) or application events (sql_outbox, django_auditlog). */
  static async open(options: ElasticsearchSinkOptions, log: Logger, eventKind: EventKind = 'pgaudit'): Promise<ElasticsearchSink> {
    const http = new EsHttp({
      url: options.url,
      auth: options.auth,
      caFile: options.caFile,
      insecure: options.insecure,
      timeoutMs: options.timeoutMs,
      maxSockets: options.concurrency + 1,
    });
    try {
      const cluster = await detectCluster(http, options.flavor);
      // Elasticsearch: plain JSON is accepted by 8.x and 9.x alike (no compatible-with header).
      const sink = new ElasticsearchSink(
        http,
        new BulkWriter(
          http,
          {
            flushBytes: options.flushBytes,
            maxContentLength: options.maxContentLength,
            flushDocs: options.flushDocs,
            concurrency: options.concurrency,
            maxRetries: options.maxRetries,
            retryInitialMs: 500,
            retryMaxMs: 30_000,
          },
          log,
        ),
        cluster,
        options,
        log,
        eventKind,
      );
      if (options.manageTemplate) await sink.putTemplates();
      await sink.checkWritePrivilege();
      log.info('Elasticsearch sink ready.', { url: http.where, flavor: cluster.flavor, version: cluster.version, indices: sink.patterns.join(',') });
      return sink;
    } catch (err) {
      http.close();
      throw err;
    }
  }

  private async putTemplates(): Promise<void> {
    if (this.eventKind === 'pgaudit') {
      await this.putTemplate(pgauditTemplate(this.names));
      await this.putTemplate(sessionsTemplate(this.sessionNames));
      await this.putTemplate(logonFailuresTemplate(this.failureNames));
      await this.addOutcomeFields();
    } else {
      await this.putTemplate(this.eventKind === 'rows' ? rowsTemplate(this.names, this.jsonObjectType()) : appTemplate(this.names.prefix));
    }
  }

  /**
   * Indices an earlier template made lack the outcome fields (strict mapping): they are added, so that the
   * outcome of their events can be written. Without the privilege to (manage on the pattern), a warning: those
   * outcomes are refused and kept in es_dead_letters.
   */
  private async addOutcomeFields(): Promise<void> {
    let res;
    try {
      res = await this.http.request('PUT', `/${encodeURIComponent(`${this.names.prefix}-*`)}/_mapping`, JSON.stringify({ properties: OUTCOME_PROPERTIES }));
    } catch (err) {
      if (err instanceof EsTransportError) throw new ConnectorError('elasticsearch', 'unreachable', err.message, true, { cause: err });
      throw err;
    }
    if (res.status === 200 || res.status === 404) return; // 404: no such index yet
    this.log.warn('Cannot add the outcome fields to existing pgaudit indices; outcomes of their events will be refused and kept in es_dead_letters.', {
      url: this.http.where,
      status: res.status,
      reason: errorReason(res.body),
      remedy: `grant manage on ${this.names.prefix}-*, or add event.outcome, error.code and error.message to their mappings`,
    });
  }

  private async putTemplate(t: { name: string; body: Record<string, unknown> }): Promise<void> {
    let res;
    try {
      res = await this.http.request('PUT', `/_index_template/${encodeURIComponent(t.name)}`, JSON.stringify(t.body));
    } catch (err) {
      if (err instanceof EsTransportError) throw new ConnectorError('elasticsearch', 'unreachable', err.message, true, { cause: err });
      throw err;
    }
    if (res.status === 403)
      throw new ConnectorError(
        'elasticsearch',
        'permission_denied',
        `${this.http.where} refused to put the index template ${t.name} (403): ${errorReason(res.body)}; grant manage_index_templates, or set manage_template: false and install it yourself`,
        false,
      );
    if (res.status !== 200)
      throw new ConnectorError(
        'elasticsearch',
        'template_refused',
        `${this.http.where} refused the index template ${t.name} (${res.status}): ${errorReason(res.body)}`,
        false,
      );
  }

  /**
   * Elasticsearch: may this user create documents (and indices) under the index pattern? Asked with
   * _has_privileges, so a missing privilege is one line at start rather than a failed bulk later. Without
   * what correlation needs (index on the event and session patterns, create_doc on the failures'), the
   * events are still shipped and a warning names the privileges: a role made for an earlier auditship keeps
   * working. A cluster without security (an error answer) or OpenSearch (no such endpoint: 400/404) is not asked.
   */
  private async checkWritePrivilege(): Promise<void> {
    if (this.cluster.flavor !== 'elasticsearch') return;
    const events: [string, string[]] = [`${this.names.prefix}-*`, ['create_doc', 'create_index']];
    // pgaudit: events are updated with their outcome; sessions are updated; failures created.
    const correlation: [string, string[]][] =
      this.eventKind === 'pgaudit'
        ? [
            [`${this.names.prefix}-*`, ['index']],
            [`${this.sessionNames.prefix}-*`, ['create_doc', 'create_index', 'index']],
            [`${this.failureNames.prefix}-*`, ['create_doc', 'create_index']],
          ]
        : [];
    const wanted = [events, ...correlation];
    let res;
    try {
      res = await this.http.request(
        'POST',
        '/_security/user/_has_privileges',
        JSON.stringify({ index: wanted.map(([p, privileges]) => ({ names: [p], privileges })) }),
      );
    } catch {
      return; // reachability was checked; the first bulk request will say what is wrong
    }
    if (res.status !== 200) return;
    const r = JSON.parse(res.body) as { has_all_requested?: boolean; index?: Record<string, Record<string, boolean>> };
    if (r.has_all_requested !== false) return;
    const missing = (p: string, privileges: string[]) => privileges.filter((x) => r.index?.[p]?.[x] === false);
    const eventsMissing = missing(...events);
    if (eventsMissing.length) {
      throw new ConnectorError(
        'elasticsearch',
        'permission_denied',
        `the user may not write ${events[0]} on ${this.http.where} (missing: ${eventsMissing.join(', ')}); grant them on that index pattern`,
        false,
      );
    }
    const lacking = correlation.map(([p, privileges]) => `${missing(p, privileges).join('+')} on ${p}`).filter((x) => !x.startsWith(' on'));
    if (lacking.length) {
      this.correlate = false;
      this.log.warn('Sessions, failed logins and statement outcomes are not sent: the user lacks privileges for them; events are.', {
        url: this.http.where,
        missing: lacking,
        remedy: 'grant them to get the correlation indices and outcome fields',
      });
    }
  }

  async write(batch: Batch<PgAuditPayload>): Promise<WriteReport> {
    const { packed, packedCount, objects } = batch.payload;
    const server = this.options.server;
    const serverJson = JSON.stringify(server);
    // One document at a time: only the bulk requests being filled and in flight are alive (a batch's
    // documents built up front outlived the waits, were promoted, and the heap grew to hundreds of MB).
    if (packedCount > 0) {
      const dims = dimensionsOf(batch.payload.contexts, batch.payload.kinds);
      for (const v of recordRows(packed, dims)) await this.bulk.add(pgauditDocumentFromValues(serverJson, server, v, this.names));
    }
    for (const r of objects) {
      const rec = r as unknown as Record<string, string | number | null>;
      await this.bulk.add(
        pgauditDocumentFromValues(
          serverJson,
          server,
          PACKED_COLUMNS.map((c) => rec[c] ?? null),
          this.names,
        ),
      );
    }
    if (!this.correlate) return { stored: 0, duplicates: 0, quarantined: 0 };
    const { sessions, logonFailures, outcomes } = batch.payload.correlation;
    for (const r of sessions) await this.bulk.add(sessionDocument(serverJson, server, r, this.sessionNames));
    for (const r of logonFailures) await this.bulk.add(logonFailureDocument(serverJson, server, r, this.failureNames));
    // Outcomes wait for the commit: their event documents must be acknowledged first.
    for (const o of outcomes) this.outcomes.push(o);
    return { stored: 0, duplicates: 0, quarantined: 0 };
  }

  /** The field type for arbitrary JSON objects: Elasticsearch's flattened, OpenSearch's flat_object (2.7+). */
  private jsonObjectType(): string {
    if (this.cluster.flavor === 'elasticsearch') return 'flattened';
    const [major, minor] = this.cluster.version.split('.').map(Number) as [number, number];
    return major > 2 || (major === 2 && minor >= 7) ? 'flat_object' : 'object';
  }

  /** Queues a row change (pg_audit_table); flush() delivers. */
  async addRowChange(server: string, auditTable: string, r: RowChangeFields): Promise<void> {
    await this.bulk.add(rowChangeDocument(JSON.stringify(server), server, auditTable, r, this.names));
  }

  /** Queues an application event (sql_outbox, django_auditlog); flush() delivers. */
  async addAppEvent(sourceName: string, table: string, e: AppEventFields, fingerprintHex: string): Promise<void> {
    const names = { prefix: `${this.names.prefix}-${indexSafe(sourceName)}`, period: this.names.period };
    await this.bulk.add(appEventDocument(names, sourceName, table, e, fingerprintHex));
  }

  /** Waits until every queued document is acknowledged or dead-lettered; returns the dead letters. */
  async flush(): Promise<DeadLetter[]> {
    await this.bulk.flush();
    return this.bulk.takeDeadLetters();
  }

  async commit(_checkpoints: FileCheckpoint[]): Promise<void> {
    await this.bulk.flush();
    if (this.outcomes.length) {
      const server = this.options.server;
      for (const o of firstOutcomes(this.outcomes)) for (const doc of outcomeUpdates(server, o, this.names)) await this.bulk.add(doc);
      this.outcomes = [];
      await this.bulk.flush();
    }
    const dead = this.bulk.takeDeadLetters();
    if (dead.length) {
      this.log.warn('Documents refused for good; kept in es_dead_letters with the reason.', {
        count: dead.length,
        reasons: [...new Set(dead.map((d) => d.reason.split(':')[0]))].slice(0, 3),
      });
      if (this.onDeadLetters) await this.onDeadLetters(dead);
    }
  }

  async rollback(): Promise<void> {
    this.outcomes = [];
    await this.bulk.discard();
  }

  /** The cluster URL without credentials. */
  get where(): string {
    return this.http.where;
  }

  get counts(): BulkCounts {
    return this.bulk.counts;
  }

  async close(): Promise<void> {
    await this.bulk.discard();
    this.http.close();
  }
}

export type { DeadLetter } from './bulk.js';

/** The sink options from a validated `elasticsearch` sink config. */
export function elasticsearchOptions(cfg: ElasticsearchConfig, server: string): ElasticsearchSinkOptions {
  return {
    url: cfg.url,
    flavor: cfg.flavor,
    auth: { username: cfg.username, password: cfg.password, apiKey: cfg.api_key, bearerToken: cfg.bearer_token },
    caFile: cfg.ca_file,
    insecure: cfg.insecure,
    indexPrefix: cfg.index_prefix,
    indexPeriod: cfg.index_period,
    manageTemplate: cfg.manage_template,
    flushBytes: cfg.flush_bytes,
    maxContentLength: cfg.max_content_length,
    flushDocs: cfg.flush_docs,
    concurrency: cfg.concurrency,
    maxRetries: cfg.max_retries,
    timeoutMs: cfg.timeout_ms,
    server,
  };
}
