import { createHash } from 'node:crypto';
import type { DuckDBConnection } from '@duckdb/node-api';
import { sqlString, usToTimestamptz } from '../duckdb/sql.js';
import { profile } from '../core/profile.js';
import { ENCODING, type Dimension, type Stream } from './streams.js';

/**
 * The ledger's tables and the writing side. Each batch a sink stores takes the stream's next sequence number
 * (`ledger_seq` on every row it inserts, and on the dimension rows it inserts with them) and, in the same
 * transaction, appends one entry: the rows' count and the batch digest — SHA-256 over the digest of its rows'
 * encodings in identity order and those of its dimension rows (streams.ts) — chained to the entry before.
 * A batch that deletes stored rows (`ingest --force` reads a file again) first keeps the encodings of those
 * rows under their own batch (`ledger_removed`), so the earlier batches still verify and the removal itself is
 * on the chain.
 */
export const LEDGER_DDL = `
CREATE TABLE IF NOT EXISTS ledger (
  stream       VARCHAR NOT NULL,
  seq          BIGINT NOT NULL,
  kind         VARCHAR NOT NULL,
  source       VARCHAR NOT NULL,
  source_table VARCHAR,
  encoding     INTEGER NOT NULL,
  rows         BIGINT NOT NULL,
  removed      BIGINT NOT NULL,
  batch_digest VARCHAR NOT NULL,
  digest       VARCHAR NOT NULL,
  committed_at TIMESTAMPTZ NOT NULL,
  PRIMARY KEY (stream, seq)
);
CREATE TABLE IF NOT EXISTS ledger_removed (
  stream     VARCHAR NOT NULL,
  seq        BIGINT NOT NULL,
  removed_by BIGINT NOT NULL,
  k1         BIGINT,
  k2         BIGINT,
  k3         BIGINT,
  k4         VARCHAR,
  k5         VARCHAR,
  enc        VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS ledger_anchored (
  location    VARCHAR PRIMARY KEY,
  heads       VARCHAR,
  anchored_at TIMESTAMPTZ
);`;

/** One ledger entry. */
export interface LedgerEntry {
  stream: string;
  seq: number;
  kind: string;
  source: string;
  sourceTable: string | null;
  encoding: number;
  rows: number;
  removed: number;
  batchDigest: string;
  digest: string;
  /** Epoch microseconds. */
  committedUs: bigint;
}

/** The digest of an entry: SHA-256 over the previous digest and the entry's fields (hex). */
export function chainDigest(previous: string, e: Omit<LedgerEntry, 'digest' | 'kind' | 'source' | 'sourceTable'>): string {
  return createHash('sha256').update([previous, e.stream, e.seq, e.encoding, e.rows, e.removed, e.batchDigest, e.committedUs].join('\n')).digest('hex');
}

/** SQL: (seq, keys, encoding) of the stream's rows matching `where` (over alias `e`). */
export function encodedRows(stream: Stream, where: string, seqExpr = 'e.ledger_seq'): string {
  const [k1, k2, k3, k4, k5] = stream.keys;
  return `SELECT ${seqExpr} AS seq, ${k1} AS k1, ${k2} AS k2, ${k3} AS k3, ${k4} AS k4, ${k5} AS k5, ${stream.encoding} AS enc
    FROM ${stream.from} AND (${where})`;
}

/** SQL: the removed rows' (seq, keys, encoding) recorded for the stream's batches matching `where` (over `seq`). */
export function removedRows(stream: Stream, where: string): string {
  return `SELECT seq, k1, k2, k3, k4, k5, enc FROM ledger_removed WHERE stream = ${sqlString(stream.name)} AND (${where})`;
}

/** SQL: per batch, its row count and rows digest (SHA-256 of the encodings in identity order). */
export function rowsDigests(rowsSql: string): string {
  return `SELECT seq, count(*) AS n, sha256(coalesce(string_agg(enc, '' ORDER BY k1, k2, k3, k4, k5, enc), '')) AS d FROM (${rowsSql}) GROUP BY seq`;
}

/** SQL: per batch, the digest of the dimension rows it inserted (matching `where` over alias `d`). */
export function dimensionDigests(dim: Dimension, where: string, seqExpr = 'd.ledger_seq'): string {
  return `SELECT seq, sha256(coalesce(string_agg(enc, '' ORDER BY k), '')) AS d FROM (
    SELECT ${seqExpr} AS seq, ${dim.key} AS k, ${dim.encoding} AS enc FROM ${dim.from} AND (${where})) GROUP BY seq`;
}

/** A batch's digest: over its rows digest and the digests of the dimension rows it inserted. */
export function batchDigest(rowsDigest: string, dimensionDigests: string[]): string {
  return createHash('sha256')
    .update([rowsDigest, ...dimensionDigests].join(':'))
    .digest('hex');
}

/** The stream's last entry (seq and digest), or null when it has none. */
export async function ledgerHead(conn: DuckDBConnection, stream: string): Promise<{ seq: number; digest: string } | null> {
  const r = await conn.runAndReadAll(`SELECT seq, digest FROM ledger WHERE stream = ${sqlString(stream)} ORDER BY seq DESC LIMIT 1`);
  const row = r.getRows()[0];
  return row ? { seq: Number(row[0]), digest: String(row[1]) } : null;
}

/** The rows of a batch as the sink hashed them itself (from the bytes it loaded), instead of in SQL. */
export interface KnownRows {
  rows: number;
  digest: string;
}

/**
 * A sink's ledger. `begin(stream)` inside the transaction gives the sequence number for the rows it inserts
 * (the same until `end`); `end(stream)` before COMMIT appends the entry (none when nothing was stored or
 * removed). A transaction may hold several entries of a stream (pg_logs: one per batch written).
 */
export class LedgerWriter {
  private open = new Map<string, { seq: number; previous: string; removed: number }>();
  /** The last entry of each stream as this connection wrote or read it (forgotten on rollback). */
  private heads = new Map<string, { seq: number; digest: string }>();

  constructor(private readonly conn: DuckDBConnection) {}

  async begin(stream: Stream): Promise<number> {
    const held = this.open.get(stream.name);
    if (held) return held.seq;
    let head = this.heads.get(stream.name) ?? (await ledgerHead(this.conn, stream.name));
    if (head === null) head = await this.genesis(stream);
    const entry = { seq: head.seq + 1, previous: head.digest, removed: 0 };
    this.open.set(stream.name, entry);
    return entry.seq;
  }

  /**
   * Rows stored before the ledger existed (an upgraded store, or the ledger turned on later: `ledger_seq`
   * NULL) become entry 0 when their stream gets its first entry, so that they are covered from then on.
   * Returns the head to chain to.
   */
  private async genesis(stream: Stream): Promise<{ seq: number; digest: string }> {
    if (stream.kind === 'pgaudit') {
      // Kinds inserted before the ledger belong to no stream yet: the first stream that starts takes them.
      await this.conn.run(`UPDATE event_kinds SET ledger_stream = ${sqlString(stream.name)}, ledger_seq = 0 WHERE ledger_stream IS NULL`);
    }
    const r = (await this.conn.runAndReadAll(rowsDigests(encodedRows(stream, 'e.ledger_seq IS NULL', '0')))).getRows()[0];
    const dims: string[] = [];
    for (const d of stream.dimensions) {
      const row = (await this.conn.runAndReadAll(dimensionDigests(d, 'coalesce(d.ledger_seq, 0) = 0', '0'))).getRows()[0];
      dims.push(row ? String(row[1]) : EMPTY_DIGEST);
    }
    if (!r && dims.every((d) => d === EMPTY_DIGEST)) return { seq: 0, digest: '' };
    const entry = await this.append(stream, 0, '', r ? Number(r[1]) : 0, 0, batchDigest(r ? String(r[2]) : EMPTY_DIGEST, dims));
    return { seq: 0, digest: entry.digest };
  }

  /** Before rows of earlier batches are deleted (matching `where` over alias `e`): keep their encodings. */
  async removing(stream: Stream, where: string): Promise<void> {
    const seq = await this.begin(stream);
    const r = await this.conn.run(`INSERT INTO ledger_removed
      SELECT ${sqlString(stream.name)}, coalesce(seq, 0), ${seq}, k1, k2, k3, k4, k5, enc FROM (${encodedRows(stream, where)})`);
    this.open.get(stream.name)!.removed += Number(r.rowsChanged);
  }

  /**
   * Appends the stream's entry for the rows since begin (before COMMIT); returns it, or null when it held
   * nothing. `known`: the rows as the sink hashed them (else they are hashed in SQL); `dimensions`: whether
   * the batch may have inserted dimension rows (else their digests are those of nothing).
   */
  async end(stream: Stream, known?: KnownRows, dimensions = true): Promise<LedgerEntry | null> {
    const held = this.open.get(stream.name);
    if (!held) return null;
    this.open.delete(stream.name);
    const t = performance.now();
    let rows = known;
    if (!rows) {
      const r = (await this.conn.runAndReadAll(rowsDigests(encodedRows(stream, `e.ledger_seq = ${held.seq}`)))).getRows()[0];
      rows = r ? { rows: Number(r[1]), digest: String(r[2]) } : { rows: 0, digest: EMPTY_DIGEST };
    }
    const dims: string[] = [];
    for (const d of stream.dimensions) {
      if (!dimensions) dims.push(EMPTY_DIGEST);
      else {
        const r = (await this.conn.runAndReadAll(dimensionDigests(d, `d.ledger_seq = ${held.seq}`))).getRows()[0];
        dims.push(r ? String(r[1]) : EMPTY_DIGEST);
      }
    }
    let entry: LedgerEntry | null = null;
    if (rows.rows > 0 || held.removed > 0 || dims.some((d) => d !== EMPTY_DIGEST)) {
      entry = await this.append(stream, held.seq, held.previous, rows.rows, held.removed, batchDigest(rows.digest, dims));
    }
    profile.add(known ? 'ledger: append entry' : 'ledger: hash batch in SQL, append entry', 'duckdb', performance.now() - t);
    return entry;
  }

  /** Forgets open sequence numbers and cached heads (after ROLLBACK). */
  reset(): void {
    this.open.clear();
    this.heads.clear();
  }

  private async append(stream: Stream, seq: number, previous: string, rows: number, removed: number, digest: string): Promise<LedgerEntry> {
    const committedUs = BigInt(Date.now()) * 1000n;
    const base = { stream: stream.name, seq, encoding: ENCODING, rows, removed, batchDigest: digest, committedUs };
    const entry: LedgerEntry = { ...base, kind: stream.kind, source: stream.source, sourceTable: stream.sourceTable, digest: chainDigest(previous, base) };
    await this.conn.run(`INSERT INTO ledger VALUES (${sqlString(entry.stream)}, ${seq}, ${sqlString(entry.kind)}, ${sqlString(entry.source)},
      ${entry.sourceTable === null ? 'NULL' : sqlString(entry.sourceTable)}, ${ENCODING}, ${rows}, ${removed}, ${sqlString(digest)},
      ${sqlString(entry.digest)}, ${usToTimestamptz(String(committedUs))})`);
    this.heads.set(stream.name, { seq, digest: entry.digest });
    return entry;
  }
}

/** The digest of a batch without rows (the SHA-256 of the empty string). */
export const EMPTY_DIGEST = createHash('sha256').update('').digest('hex');

/** Adds a ledger column (`ledger_seq`) to a table of a store written before the ledger (its rows keep NULL: entry 0). */
export async function ensureLedgerColumn(conn: DuckDBConnection, table: string, column = 'ledger_seq', type = 'BIGINT'): Promise<void> {
  const r = await conn.runAndReadAll(
    `SELECT count(*) FROM information_schema.columns WHERE table_catalog = current_database() AND table_schema = 'main'
       AND table_name = ${sqlString(table)} AND column_name = ${sqlString(column)}`,
  );
  if (Number(r.getRows()[0]![0]) === 0) await conn.run(`ALTER TABLE ${table} ADD COLUMN ${column} ${type}`);
}
