import { randomBytes } from 'node:crypto';
import type { DuckDBConnection } from '@duckdb/node-api';
import type { Logger } from '../core/log.js';
import { sqlString } from '../duckdb/sql.js';

/**
 * Anchors: the ledger's heads written outside the store, one small JSON object per anchor under
 * `ledger-anchors/` of a directory or bucket (the archive sink's location keys; with S3 Object Lock each anchor
 * is kept unchangeable for its retention). Rewriting rows and ledger together, or cutting both short, leaves
 * the store consistent with itself but not with an anchor written before: `auditship verify --anchor` finds it.
 */
export const ANCHOR_PREFIX = 'ledger-anchors/';

/** What anchors need of an object store (an archive's store: sinks/archive/store.ts, opened by jobs/anchor.ts). */
export interface AnchorStore {
  readonly where: string;
  putSmall(key: string, body: Buffer, options: { contentType: string }): Promise<unknown>;
  list(prefix: string): AsyncIterable<{ key: string }>;
  read(key: string): AsyncIterable<Buffer>;
  close(): void;
}

export interface AnchorHead {
  stream: string;
  seq: number;
  digest: string;
}

export interface AnchorRecord {
  anchored_at: string;
  /** The store's path on the host that wrote the anchor (for people; not checked). */
  store: string;
  heads: AnchorHead[];
}

/** Every stream's last entry. */
export async function ledgerHeads(conn: DuckDBConnection): Promise<AnchorHead[]> {
  const r = await conn.runAndReadAll(`SELECT stream, max(seq), arg_max(digest, seq) FROM ledger GROUP BY stream ORDER BY stream`);
  return r.getRows().map((row) => ({ stream: String(row[0]), seq: Number(row[1]), digest: String(row[2]) }));
}

/** Writes one anchor object with the given heads; returns its key. */
export async function writeAnchor(store: AnchorStore, record: AnchorRecord): Promise<string> {
  const stamp = record.anchored_at.replace(/[:.]/g, '-');
  const key = `${ANCHOR_PREFIX}${stamp}-${randomBytes(4).toString('hex')}.json`;
  await store.putSmall(key, Buffer.from(JSON.stringify(record) + '\n'), { contentType: 'application/json' });
  return key;
}

/** Reads one object whole. */
async function readAll(store: AnchorStore, key: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of store.read(key)) chunks.push(c);
  return Buffer.concat(chunks);
}

/** Where the archive sink publishes its manifest parts (sinks/archive/layout.ts MANIFEST_DIR). */
const MANIFEST_PREFIX = '_manifest/';

/**
 * Every anchor under the location, oldest first. A record that cannot be read is an error: anchors are evidence.
 * With `manifestWriters` (the writer ids an archive gave this store: its archive_writers table), the ledger heads
 * in the headers of those writers' manifest parts count as anchors too: an archive location is an anchor location.
 */
export async function readAnchors(store: AnchorStore, manifestWriters: readonly string[] = []): Promise<AnchorRecord[]> {
  const keys: string[] = [];
  for await (const o of store.list(ANCHOR_PREFIX)) if (o.key.endsWith('.json')) keys.push(o.key);
  keys.sort();
  const out: AnchorRecord[] = [];
  for (const key of keys) {
    let rec: AnchorRecord;
    try {
      rec = JSON.parse((await readAll(store, key)).toString('utf8')) as AnchorRecord;
    } catch {
      throw new Error(`anchor ${store.where}${key} is not JSON`);
    }
    if (typeof rec.anchored_at !== 'string' || !Array.isArray(rec.heads)) throw new Error(`anchor ${store.where}${key} lacks anchored_at or heads`);
    out.push(rec);
  }
  if (manifestWriters.length === 0) return out;
  const parts: string[] = [];
  for await (const o of store.list(MANIFEST_PREFIX)) {
    const name = o.key.slice(o.key.lastIndexOf('/') + 1);
    if (name.endsWith('.jsonl') && manifestWriters.some((w) => name.startsWith(`${w}-`))) parts.push(o.key);
  }
  for (const key of parts.sort()) {
    const first = (await readAll(store, key)).toString('utf8').split('\n', 1)[0] ?? '';
    let header: { manifest_part?: number; created_at?: string; ledger_heads?: AnchorHead[] };
    try {
      header = JSON.parse(first) as typeof header;
    } catch {
      throw new Error(`manifest part ${store.where}${key} does not start with a JSON header`);
    }
    if (header.manifest_part !== 1) throw new Error(`manifest part ${store.where}${key} does not start with a manifest header`);
    if (Array.isArray(header.ledger_heads) && header.ledger_heads.length)
      out.push({ anchored_at: String(header.created_at), store: `manifest part ${key}`, heads: header.ledger_heads });
  }
  return out.sort((x, y) => (x.anchored_at < y.anchored_at ? -1 : x.anchored_at > y.anchored_at ? 1 : 0));
}

/**
 * Writes the heads after a commit when the last anchor is at least `everyMs` old (and at close). A failure is
 * logged and tried again after the next commit: an anchor late is better than ingest stopped.
 */
export class Anchorer {
  private lastMs = 0;
  /** The heads of the last anchor written to this location from this store (null: not read yet). */
  private lastHeads: string | null = null;

  constructor(
    private readonly store: AnchorStore,
    private readonly everyMs: number,
    private readonly storePath: string,
    private readonly log: Logger,
  ) {}

  get where(): string {
    return this.store.where;
  }

  /** Writes the heads if they moved since the last anchor, then lets go of the store. */
  async close(conn: DuckDBConnection): Promise<void> {
    await this.afterCommit(conn, true);
    this.store.close();
  }

  async afterCommit(conn: DuckDBConnection, force = false): Promise<void> {
    const now = Date.now();
    if (!force && now - this.lastMs < this.everyMs) return;
    try {
      const where = sqlString(this.store.where);
      // What an earlier run anchored here: a run that stores nothing new writes no anchor.
      this.lastHeads ??= String((await conn.runAndReadAll(`SELECT heads FROM ledger_anchored WHERE location = ${where}`)).getRows()[0]?.[0] ?? '');
      const heads = await ledgerHeads(conn);
      const text = JSON.stringify(heads);
      if (heads.length === 0 || text === this.lastHeads) {
        this.lastMs = now;
        return;
      }
      const key = await writeAnchor(this.store, { anchored_at: new Date(now).toISOString(), store: this.storePath, heads });
      this.lastMs = now;
      this.lastHeads = text;
      await conn.run(`INSERT OR REPLACE INTO ledger_anchored VALUES (${where}, ${sqlString(text)}, now())`);
      this.log.debug('Ledger heads anchored.', { at: `${this.store.where}${key}`, streams: heads.length });
    } catch (err) {
      this.log.warn('Could not write a ledger anchor; trying again after the next commit.', { at: this.store.where, reason: (err as Error).message });
    }
  }
}
