import { ConnectorError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import type { BulkDoc } from './documents.js';
import { errorReason, EsTransportError, type EsHttp } from './http.js';

/**
 * Bulk delivery with `create` and deterministic ids:
 *  - requests bounded by bytes and documents, at most `concurrency` in flight; add() waits while they are
 *    all busy (backpressure: a slow server slows the source, memory stays at about
 *    (concurrency + 1) x flushBytes);
 *  - a whole request that fails with 429, 5xx or a transport error is sent again after an exponential
 *    backoff with jitter; so are the items answered 429 or 5xx inside a successful request;
 *  - 201 is delivered, 409 (the id exists in that index) is delivered before — counted as a duplicate;
 *  - an `update` (sessions, outcomes) is retried on 409 (a version conflict), and one marked ifExists is done
 *    when the document is not there (404);
 *  - any other item error (a mapping conflict, 400) is final: the document goes to the dead-letter store with
 *    the server's reason and never blocks the rest;
 *  - no request body is larger than max_content_length (the cluster's http.max_content_length) less a small
 *    margin: a document that alone is larger is dead-lettered without being sent (document_too_large); a
 *    request refused with 413 anyway (the cluster's or a proxy's limit is lower) is sent again in halves, later
 *    requests are built no larger than those halves, and a document refused alone is dead-lettered
 *    (request_too_large);
 *  - flush() resolves once every document added is acknowledged (or dead-lettered): only then may the
 *    pipeline's checkpoint move past them. Retries exhausted: flush() rejects, and the pipeline rolls back.
 */
export interface BulkOptions {
  flushBytes: number;
  /** The cluster's http.max_content_length, in bytes. */
  maxContentLength: number;
  flushDocs: number;
  concurrency: number;
  maxRetries: number;
  retryInitialMs: number;
  retryMaxMs: number;
}

export interface DeadLetter {
  index: string;
  id: string;
  status: number;
  reason: string;
  source: string;
}

export interface BulkCounts {
  /** Event documents created, and found there already (409). */
  created: number;
  duplicates: number;
  /** Sessions, logon failures and outcomes delivered (created, updated, or unchanged). */
  correlated: number;
  deadLettered: number;
  retried: number;
  requests: number;
}

/** A document written into a request body: where its action and source lines are. */
interface Item {
  index: string;
  id: string;
  start: number;
  end: number;
  update?: boolean;
  ifExists?: boolean;
  correlation?: boolean;
}

/**
 * A request body being filled: documents are written into a Buffer as they come (each string is flattened
 * once and dies young; a body built by string concatenation was a deep rope that survived collections —
 * a quarter of the CPU went to the young-generation collector).
 */
interface Pending {
  buf: Buffer;
  len: number;
  items: Item[];
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Room kept below max_content_length (for a proxy that counts more than the body), at most 1/16 of it. */
const FRAMING_BYTES = 4096;

const bytesText = (n: number) => n.toLocaleString('en-US');

/** The source line of an item written in `batch` (its action line and the trailing newline stripped). */
function sourceOf(batch: Pending, item: Item): string {
  const text = batch.buf.toString('utf8', item.start, item.end);
  return text.slice(text.indexOf('\n') + 1, -1);
}

export class BulkWriter {
  private current: Pending;
  private inFlight = new Set<Promise<void>>();
  private failure: Error | null = null;
  counts: BulkCounts = { created: 0, duplicates: 0, correlated: 0, deadLettered: 0, retried: 0, requests: 0 };
  /** Dead letters since the last take (the state sink stores them with the checkpoint). */
  private dead: DeadLetter[] = [];
  /** The largest document (action and source lines) sent: max_content_length less the framing margin. */
  private readonly docLimit: number;
  /** The largest request body built: docLimit, or half the smallest body the cluster refused with 413 (less than a document refused alone). */
  private requestLimit: number;
  /** A request is sent once it holds this many bytes: flush_bytes, never above requestLimit. */
  private flushAt: number;
  /** The size of a new request buffer. */
  private readonly bufBytes: number;
  private warned413 = false;

  constructor(
    private readonly http: EsHttp,
    private readonly options: BulkOptions,
    private readonly log: Logger,
  ) {
    this.docLimit = options.maxContentLength - Math.min(FRAMING_BYTES, Math.floor(options.maxContentLength / 16));
    this.requestLimit = this.docLimit;
    this.flushAt = Math.min(options.flushBytes, this.docLimit);
    this.bufBytes = Math.ceil(this.flushAt * 1.1) + 65536;
    this.current = this.fresh();
  }

  /** Bodies sent and done with, for reuse: Node frees a Buffer only when V8 collects its small handle. */
  private spare: Buffer[] = [];

  private fresh(): Pending {
    return { buf: this.spare.pop() ?? Buffer.allocUnsafe(this.bufBytes), len: 0, items: [] };
  }

  async add(doc: BulkDoc): Promise<void> {
    if (this.failure) throw this.failure;
    const line =
      doc.action === 'update'
        ? `{"update":{"_index":${JSON.stringify(doc.index)},"_id":${JSON.stringify(doc.id)},"retry_on_conflict":3}}\n${doc.source}\n`
        : `{"create":{"_index":${JSON.stringify(doc.index)},"_id":${JSON.stringify(doc.id)}}}\n${doc.source}\n`;
    let cur = this.current;
    // The line's UTF-8 size is between its length and 3 × its length: counted ahead of writing it only when
    // the upper bound does not fit (never for ordinary documents; writing it counts them).
    let bytes = -1;
    if (cur.len + line.length * 3 > this.requestLimit) {
      bytes = Buffer.byteLength(line);
      if (bytes > this.docLimit) {
        this.documentTooLarge(doc, bytes);
        return;
      }
      if (cur.len + bytes > this.requestLimit && cur.items.length) {
        await this.dispatch();
        cur = this.current;
      }
    }
    if (cur.buf.length - cur.len < line.length * 3) {
      if (bytes < 0) bytes = Buffer.byteLength(line);
      if (cur.buf.length - cur.len < bytes) {
        const bigger = Buffer.allocUnsafe(Math.max(cur.buf.length * 2, cur.len + bytes));
        cur.buf.copy(bigger, 0, 0, cur.len);
        cur.buf = bigger;
      }
    }
    const start = cur.len;
    cur.len += cur.buf.write(line, start);
    const item: Item = { index: doc.index, id: doc.id, start, end: cur.len };
    if (doc.action === 'update') item.update = true;
    if (doc.ifExists) item.ifExists = true;
    if (doc.correlation) item.correlation = true;
    cur.items.push(item);
    if (cur.len >= this.flushAt || cur.items.length >= this.options.flushDocs) await this.dispatch();
  }

  /** A document larger than a request may be: dead-lettered unsent (the reason names sizes only). */
  private documentTooLarge(doc: BulkDoc, bytes: number): void {
    const max = this.options.maxContentLength;
    const reason =
      bytes > max
        ? `document_too_large: ${bytesText(bytes)} bytes > max_content_length ${bytesText(max)}`
        : `document_too_large: ${bytesText(bytes)} bytes > ${bytesText(this.docLimit)} (max_content_length ${bytesText(max)} less ${bytesText(max - this.docLimit)} kept for the request)`;
    this.counts.deadLettered++;
    this.dead.push({ index: doc.index, id: doc.id, status: 413, reason, source: doc.source });
  }

  /** Sends what is buffered and waits for every request; rejects with the first final failure. */
  async flush(): Promise<void> {
    if (this.current.items.length) await this.dispatch();
    while (this.inFlight.size) await Promise.all([...this.inFlight]);
    if (this.failure) throw this.failure;
  }

  takeDeadLetters(): DeadLetter[] {
    const d = this.dead;
    this.dead = [];
    return d;
  }

  /** Forgets buffered documents (the pipeline rolled back; they will be read and sent again). */
  async discard(): Promise<void> {
    this.current = this.fresh();
    while (this.inFlight.size) await Promise.allSettled([...this.inFlight]);
    this.failure = null;
    this.dead = [];
  }

  private async dispatch(): Promise<void> {
    const batch = this.current;
    this.current = this.fresh();
    while (this.inFlight.size >= this.options.concurrency) await Promise.race([...this.inFlight]);
    if (this.failure) throw this.failure;
    const p: Promise<void> = this.send(batch)
      .catch((err: Error) => {
        this.failure ??= err;
      })
      .finally(() => {
        this.inFlight.delete(p);
        // A buffer grown for a large document is not kept: it would hold its memory for the rest of the run.
        if (this.spare.length <= this.options.concurrency && batch.buf.length <= 2 * this.bufBytes) this.spare.push(batch.buf);
      });
    this.inFlight.add(p);
  }

  /** The request body for these items of `batch`: the buffer (or the slice) they fill, or their lines copied together. */
  private body(batch: Pending, items: Item[]): Buffer {
    if (items === batch.items) return batch.buf.subarray(0, batch.len);
    let contiguous = true;
    for (let k = 1; k < items.length && contiguous; k++) contiguous = items[k - 1]!.end === items[k]!.start;
    if (contiguous) return batch.buf.subarray(items[0]!.start, items[items.length - 1]!.end);
    return Buffer.concat(items.map((i) => batch.buf.subarray(i.start, i.end)));
  }

  private backoff(attempt: number): number {
    const base = Math.min(this.options.retryMaxMs, this.options.retryInitialMs * 2 ** attempt);
    return Math.round(base / 2 + (Math.random() * base) / 2);
  }

  /** Sends items of a body until each is acknowledged or dead-lettered; throws after maxRetries. */
  private async send(batch: Pending, items: Item[] = batch.items): Promise<void> {
    let todo = items;
    for (let attempt = 0; todo.length; attempt++) {
      if (attempt > this.options.maxRetries) {
        throw new ConnectorError(
          'elasticsearch',
          'bulk_failed',
          `${todo.length} document(s) were still refused by ${this.http.where} after ${this.options.maxRetries} retries (too many requests or server errors); nothing past them is checkpointed — the next run sends them again`,
          true,
        );
      }
      if (attempt > 0) {
        this.counts.retried += todo.length;
        await sleep(this.backoff(attempt - 1));
      }
      let res;
      const body = this.body(batch, todo);
      try {
        this.counts.requests++;
        res = await this.http.request('POST', '/_bulk', body, this.http.ndjsonType);
      } catch (err) {
        if (err instanceof EsTransportError) {
          this.log.warn('A bulk request failed; sending it again.', { reason: err.message, attempt: attempt + 1, documents: todo.length });
          continue;
        }
        throw err;
      }
      if (res.status === 429 || res.status >= 500) {
        this.log.warn('The cluster refused a bulk request; sending it again.', { status: res.status, reason: errorReason(res.body), attempt: attempt + 1 });
        continue;
      }
      if (res.status === 401 || res.status === 403) {
        throw new ConnectorError(
          'elasticsearch',
          res.status === 401 ? 'auth_failed' : 'permission_denied',
          `${this.http.where} answered ${res.status} to a bulk request: ${errorReason(res.body)}; ${res.status === 401 ? 'check username/password, api_key or bearer_token' : 'grant create_doc (or write) and create_index on the index pattern'}`,
          false,
        );
      }
      if (res.status === 413) {
        await this.refusedAsTooLarge(batch, todo, body.length);
        return;
      }
      if (res.status !== 200) {
        throw new ConnectorError(
          'elasticsearch',
          'bulk_refused',
          `${this.http.where} answered ${res.status} to a bulk request: ${errorReason(res.body)}`,
          false,
        );
      }
      // The common case needs no parsing of the items: every document was created.
      if (/^\{"took":\d+,"errors":false/.test(res.body) || /^\{"errors":false/.test(res.body)) {
        for (const i of todo) i.correlation ? this.counts.correlated++ : this.counts.created++;
        todo = [];
        break;
      }
      const parsed = JSON.parse(res.body) as { items: Record<string, { status: number; error?: { type?: string; reason?: string } }>[] };
      const again: Item[] = [];
      parsed.items.forEach((item, i) => {
        const r = item['create'] ?? item['update'] ?? Object.values(item)[0]!;
        const doc = todo[i]!;
        if (r.status === 201 || r.status === 200 || (r.status === 409 && !doc.update)) {
          if (doc.correlation) this.counts.correlated++;
          else if (r.status === 409) this.counts.duplicates++;
          else this.counts.created++;
        } else if (r.status === 404 && doc.ifExists) {
          // No such document: the line was not a pgaudit entry, or its event was dead-lettered.
        } else if (r.status === 429 || r.status >= 500 || r.status === 409) again.push(doc);
        else {
          this.counts.deadLettered++;
          this.dead.push({
            index: doc.index,
            id: doc.id,
            status: r.status,
            reason: `${r.error?.type ?? 'error'}: ${r.error?.reason ?? ''}`.slice(0, 2000),
            source: sourceOf(batch, doc),
          });
        }
      });
      if (parsed.items.length !== todo.length)
        throw new ConnectorError(
          'elasticsearch',
          'bulk_mismatch',
          `${this.http.where} answered ${parsed.items.length} items to ${todo.length} documents`,
          false,
        );
      todo = again;
    }
  }

  /**
   * A request of `bytes` refused with 413: the cluster (or a proxy in front of it) takes less than
   * max_content_length, and applied none of it. It is sent again in two halves (by bytes, so that a large
   * document is alone sooner), and a document refused alone is dead-lettered — each split halves the
   * documents, so it ends, and flush() still waits for all. Later requests are built no larger than the
   * halves (a document larger than that goes alone): one refusal, not one per request.
   */
  private async refusedAsTooLarge(batch: Pending, items: Item[], bytes: number): Promise<void> {
    // A document refused alone tells only that the limit is below its size.
    this.requestLimit = Math.min(this.requestLimit, items.length === 1 ? bytes - 1 : Math.floor(bytes / 2));
    this.flushAt = Math.min(this.flushAt, this.requestLimit);
    if (!this.warned413) {
      this.warned413 = true;
      this.log.warn(
        "The cluster refused a bulk request as too large (413); it is sent again in halves, and a document refused alone goes to es_dead_letters. Set max_content_length to the cluster's http.max_content_length (or to the body limit of a proxy in front of it).",
        {
          url: this.http.where,
          documents: items.length,
          bytes,
          maxContentLength: this.options.maxContentLength,
        },
      );
    }
    if (items.length === 1) {
      const doc = items[0]!;
      this.counts.deadLettered++;
      this.dead.push({ index: doc.index, id: doc.id, status: 413, reason: 'request_too_large (413)', source: sourceOf(batch, doc) });
      return;
    }
    const total = items.reduce((n, i) => n + i.end - i.start, 0);
    let k = 1;
    for (let acc = items[0]!.end - items[0]!.start; k < items.length - 1 && acc + items[k]!.end - items[k]!.start <= total / 2; k++)
      acc += items[k]!.end - items[k]!.start;
    await this.send(batch, items.slice(0, k));
    await this.send(batch, items.slice(k));
  }
}
