import { createHash } from 'node:crypto';
import type { DuckDBConnection } from '@duckdb/node-api';
import { sqlString, usToTimestamptz } from '../duckdb/sql.js';
import { profile } from '../core/profile.js';
import { ENCODING, type Stream } from './streams.js';

/**
 * The ledger's tables and the writing side. Each transaction of a sink that stores rows of a stream takes the
 * stream's next sequence number (`ledger_seq` on every row it inserts) and, before COMMIT, appends one entry:
 * the rows' count and batch digest, chained to the entry before. A batch that deletes stored rows (`ingest
 * --force` reads a file again) first records the hashes of those rows under their own batch
 * (`ledger_removed`), so the earlier batches still verify and the removal itself is on the chain.
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
  k1         VARCHAR,
  k2         BIGINT,
  k3         VARCHAR,
  row_hash   VARCHAR NOT NULL
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

/** SQL: (keys, row hash) of the stream's rows matching `where` (over alias `e`). */
export function hashedRows(stream: Stream, where: string, seqExpr = 'e.ledger_seq'): string {
  const [k1, k2, k3] = stream.keys;
  return `SELECT ${seqExpr} AS seq, ${k1} AS k1, ${k2} AS k2, ${k3} AS k3, sha256(${stream.encoding}) AS h FROM ${stream.from} AND (${where})`;
}

/** SQL: the removed rows' (keys, hash) recorded for the stream's batches matching `where` (over `seq`). */
export function removedRows(stream: Stream, where: string): string {
  return `SELECT seq, k1, k2, k3, row_hash AS h FROM ledger_removed WHERE stream = ${sqlString(stream.name)} AND (${where})`;
}

/** SQL: per batch, its row count and digest, over the union of stored and removed rows. */
export function batchDigests(rowsSql: string): string {
  return `SELECT seq, count(*) AS n, sha256(coalesce(string_agg(h, '' ORDER BY k1, k2, k3), '')) AS d FROM (${rowsSql}) GROUP BY seq`;
}

/** The stream's last entry (seq and digest), or null when it has none. */
export async function ledgerHead(conn: DuckDBConnection, stream: string): Promise<{ seq: number; digest: string } | null> {
  const r = await conn.runAndReadAll(`SELECT seq, digest FROM ledger WHERE stream = ${sqlString(stream)} ORDER BY seq DESC LIMIT 1`);
  const row = r.getRows()[0];
  return row ? { seq: Number(row[0]), digest: String(row[1]) } : null;
}

/**
 * A sink's ledger: `begin(stream)` inside the transaction gives the sequence number for the rows it inserts;
 * `end(stream)` before COMMIT appends the entry (none when the transaction stored and removed no row).
 */
export class LedgerWriter {
  private open = new Map<string, { stream: Stream; seq: number; previous: string; removed: number }>();

  constructor(private readonly conn: DuckDBConnection) {}

  /** The sequence number of this transaction's rows of the stream (the same on every call until end/reset). */
  async begin(stream: Stream): Promise<number> {
    const held = this.open.get(stream.name);
    if (held) return held.seq;
    let head = await ledgerHead(this.conn, stream.name);
    if (head === null) head = await this.genesis(stream);
    const entry = { stream, seq: head.seq + 1, previous: head.digest, removed: 0 };
    this.open.set(stream.name, entry);
    return entry.seq;
  }

  /**
   * Rows stored before the ledger existed (an upgraded store: `ledger_seq` NULL) become entry 0 when their
   * stream gets its first entry, so that they are covered from then on. Returns the head to chain to.
   */
  private async genesis(stream: Stream): Promise<{ seq: number; digest: string }> {
    const r = await this.conn.runAndReadAll(batchDigests(hashedRows(stream, 'e.ledger_seq IS NULL', '0')));
    const row = r.getRows()[0];
    if (!row) return { seq: 0, digest: '' };
    const entry = await this.append(stream, 0, '', Number(row[1]), 0, String(row[2]));
    return { seq: 0, digest: entry.digest };
  }

  /** Before rows of earlier batches are deleted (matching `where` over alias `e`): keep their hashes. */
  async removing(stream: Stream, where: string): Promise<void> {
    const seq = await this.begin(stream);
    const r = await this.conn.run(`INSERT INTO ledger_removed
      SELECT ${sqlString(stream.name)}, coalesce(seq, 0), ${seq}, k1, k2, k3, h FROM (${hashedRows(stream, where)})`);
    this.open.get(stream.name)!.removed += Number(r.rowsChanged);
  }

  /** Appends the stream's entry for this transaction (before COMMIT); returns it, or null when it held nothing. */
  async end(stream: Stream): Promise<LedgerEntry | null> {
    const held = this.open.get(stream.name);
    if (!held) return null;
    this.open.delete(stream.name);
    const t = performance.now();
    const r = await this.conn.runAndReadAll(batchDigests(hashedRows(stream, `e.ledger_seq = ${held.seq}`)));
    const row = r.getRows()[0];
    const rows = row ? Number(row[1]) : 0;
    let entry: LedgerEntry | null = null;
    if (rows > 0 || held.removed > 0) {
      entry = await this.append(stream, held.seq, held.previous, rows, held.removed, row ? String(row[2]) : EMPTY_DIGEST);
    }
    profile.add('ledger: hash batch, append entry', 'duckdb', performance.now() - t);
    return entry;
  }

  /** Forgets open sequence numbers (after ROLLBACK). */
  reset(): void {
    this.open.clear();
  }

  private async append(stream: Stream, seq: number, previous: string, rows: number, removed: number, batchDigest: string): Promise<LedgerEntry> {
    const committedUs = BigInt(Date.now()) * 1000n;
    const base = { stream: stream.name, seq, encoding: ENCODING, rows, removed, batchDigest, committedUs };
    const entry: LedgerEntry = { ...base, kind: stream.kind, source: stream.source, sourceTable: stream.sourceTable, digest: chainDigest(previous, base) };
    await this.conn.run(`INSERT INTO ledger VALUES (${sqlString(entry.stream)}, ${seq}, ${sqlString(entry.kind)}, ${sqlString(entry.source)},
      ${entry.sourceTable === null ? 'NULL' : sqlString(entry.sourceTable)}, ${ENCODING}, ${rows}, ${removed}, ${sqlString(batchDigest)},
      ${sqlString(entry.digest)}, ${usToTimestamptz(String(committedUs))})`);
    return entry;
  }
}

/** The digest of a batch without rows (the SHA-256 of the empty string). */
export const EMPTY_DIGEST = createHash('sha256').update('').digest('hex');

/** Adds `ledger_seq` to a table of a store written before the ledger (its rows keep NULL: entry 0). */
export async function ensureLedgerColumn(conn: DuckDBConnection, table: string): Promise<void> {
  const r = await conn.runAndReadAll(
    `SELECT count(*) FROM information_schema.columns WHERE table_catalog = current_database() AND table_schema = 'main'
       AND table_name = ${sqlString(table)} AND column_name = 'ledger_seq'`,
  );
  if (Number(r.getRows()[0]![0]) === 0) await conn.run(`ALTER TABLE ${table} ADD COLUMN ledger_seq BIGINT`);
}
