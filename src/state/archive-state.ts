import { randomBytes } from 'node:crypto';
import type { DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import type { ManifestEntry } from '../model/manifest.js';
import { ledgerHeads } from '../ledger/anchor.js';
import { sqlString } from '../duckdb/sql.js';

/**
 * What the DuckDB state keeps for each archive (a bucket + prefix, or a directory), per server:
 *  - `archive_objects`: the manifest — one row per archived object, inserted in the same transaction as the
 *    checkpoint that moves past its source range (or, for log files archived whole, with the file's done
 *    mark), so that every range is in it exactly once; `manifest_key` is set once the entry is published in
 *    a manifest part.
 *  - `archive_pending`: objects being written and not yet committed, recorded (and committed, on a
 *    connection of their own) *before* the upload starts. Whatever a kill leaves behind — an object without
 *    a manifest entry, an unfinished multipart upload — is found there by the next run and removed.
 *  - `archive_writers`: per archive and server, this state's writer id (manifest parts are named by it, so
 *    two auditship databases never overwrite each other's parts) and the last published part (the chain).
 */
export const ARCHIVE_DDL = `
CREATE TABLE IF NOT EXISTS archive_objects (
  archive VARCHAR NOT NULL, server VARCHAR NOT NULL, seq BIGINT NOT NULL, key VARCHAR NOT NULL, form VARCHAR NOT NULL,
  source_id VARCHAR, source_name VARCHAR, source_size BIGINT, source_mtime_ms BIGINT, content_sha256 VARCHAR,
  version INTEGER, range_start BIGINT, range_end BIGINT, events BIGINT, size BIGINT, sha256 VARCHAR,
  entry VARCHAR NOT NULL, manifest_key VARCHAR, archived_at TIMESTAMPTZ,
  PRIMARY KEY (archive, server, seq));
CREATE TABLE IF NOT EXISTS archive_pending (
  archive VARCHAR NOT NULL, key VARCHAR NOT NULL, upload_id VARCHAR, started_at TIMESTAMPTZ, PRIMARY KEY (archive, key));
CREATE TABLE IF NOT EXISTS archive_writers (
  archive VARCHAR NOT NULL, server VARCHAR NOT NULL, writer_id VARCHAR NOT NULL, last_manifest_key VARCHAR, last_manifest_sha256 VARCHAR,
  PRIMARY KEY (archive, server));
`;

/** An entry before it has its sequence number. */
export type NewEntry = Omit<ManifestEntry, 'seq' | 'writer'> & {
  /** Form files: the version number, and the file's size on disk and last write, which identify the version. */
  version?: number;
  sourceMtimeMs?: number;
  sourceDiskSize?: number;
};

/** The latest committed version of a log file archived whole. */
export interface ArchivedFile {
  key: string;
  version: number;
  size: number;
  mtimeMs: number;
  contentSha256: string;
}

export class ArchiveState {
  private chain: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly main: DuckDBConnection,
    private readonly side: DuckDBConnection,
    readonly archive: string,
    readonly server: string,
    readonly writer: string,
  ) {}

  /** `main` is the DuckDB sink's connection (its transactions carry the entries); a side connection is opened for pending marks. */
  static async open(instance: DuckDBInstance, main: DuckDBConnection, archive: string, server: string, createTables = true): Promise<ArchiveState> {
    if (createTables) await main.run(ARCHIVE_DDL);
    const side = await instance.connect();
    const a = sqlString(archive),
      s = sqlString(server);
    let row = (await side.runAndReadAll(`SELECT writer_id FROM archive_writers WHERE archive = ${a} AND server = ${s}`)).getRows()[0];
    if (!row) {
      await side.run(`INSERT OR IGNORE INTO archive_writers VALUES (${a}, ${s}, '${randomBytes(4).toString('hex')}', NULL, NULL)`);
      row = (await side.runAndReadAll(`SELECT writer_id FROM archive_writers WHERE archive = ${a} AND server = ${s}`)).getRows()[0]!;
    }
    return new ArchiveState(main, side, archive, server, String(row[0]));
  }

  /** The ledger's heads as committed (none when the store keeps no ledger). */
  async ledgerHeads(): Promise<{ stream: string; seq: number; digest: string }[]> {
    return this.serial(async () => {
      const exists = (await this.side.runAndReadAll(`SELECT count(*) FROM duckdb_tables() WHERE table_name = 'ledger'`)).getRows()[0]![0];
      return Number(exists) > 0 ? ledgerHeads(this.side) : [];
    });
  }

  private get where(): string {
    return `archive = ${sqlString(this.archive)}`;
  }

  /** Runs `fn` after everything queued before it (the side connection and commits are used one at a time). */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.chain.then(fn);
    this.chain = p.catch(() => {});
    return p;
  }

  /** Records, durably and before anything is written, that `key` is about to be written. */
  pending(key: string): Promise<void> {
    return this.serial(async () => {
      await this.side.run(`INSERT OR REPLACE INTO archive_pending VALUES (${sqlString(this.archive)}, ${sqlString(key)}, NULL, now())`);
    });
  }

  uploadStarted(key: string, uploadId: string): Promise<void> {
    return this.serial(async () => {
      await this.side.run(`UPDATE archive_pending SET upload_id = ${sqlString(uploadId)} WHERE ${this.where} AND key = ${sqlString(key)}`);
    });
  }

  /**
   * Pending objects, each with whether a committed entry has it (then the mark is only to be dropped) or not
   * (then the object, or the upload, is a leftover to remove).
   */
  pendingObjects(): Promise<{ key: string; uploadId: string | null; committed: boolean }[]> {
    return this.serial(async () => {
      const r = await this.side.runAndReadAll(`
        SELECT p.key, p.upload_id, EXISTS (SELECT 1 FROM archive_objects o WHERE o.archive = p.archive AND o.key = p.key) AS committed
        FROM archive_pending p WHERE p.${this.where} ORDER BY p.started_at`);
      return r.getRows().map((row) => ({ key: String(row[0]), uploadId: row[1] === null ? null : String(row[1]), committed: Boolean(row[2]) }));
    });
  }

  dropPending(key: string): Promise<void> {
    return this.serial(async () => {
      await this.side.run(`DELETE FROM archive_pending WHERE ${this.where} AND key = ${sqlString(key)}`);
    });
  }

  /** True when a committed entry (of any server) has this key. */
  isCommitted(key: string): Promise<boolean> {
    return this.serial(async () => {
      const r = await this.side.runAndReadAll(`SELECT count(*) FROM archive_objects WHERE ${this.where} AND key = ${sqlString(key)}`);
      return Number(r.getRows()[0]![0]) > 0;
    });
  }

  /** The latest committed version of the file with this fingerprint (form files), or null. */
  latestFile(fingerprint: string): Promise<ArchivedFile | null> {
    return this.serial(async () => {
      const r = await this.side.runAndReadAll(`
        SELECT key, version, source_size, source_mtime_ms, content_sha256 FROM archive_objects
        WHERE ${this.where} AND server = ${sqlString(this.server)} AND form = 'files' AND source_id = ${sqlString(fingerprint)}
        ORDER BY version DESC LIMIT 1`);
      const row = r.getRows()[0];
      return row ? { key: String(row[0]), version: Number(row[1]), size: Number(row[2]), mtimeMs: Number(row[3]), contentSha256: String(row[4]) } : null;
    });
  }

  /**
   * Inserts entries in the main connection's open transaction (the caller begins and commits it): each gets
   * the next sequence number of this archive and server.
   */
  async insertEntries(entries: NewEntry[]): Promise<ManifestEntry[]> {
    if (entries.length === 0) return [];
    const r = await this.main.runAndReadAll(`SELECT coalesce(max(seq), 0) FROM archive_objects WHERE ${this.where} AND server = ${sqlString(this.server)}`);
    let seq = Number(r.getRows()[0]![0]);
    const out: ManifestEntry[] = [];
    const stmt = await this.main.prepare(
      `INSERT INTO archive_objects VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, NULL, now())`,
    );
    for (const e of entries) {
      const { version, sourceMtimeMs, sourceDiskSize, ...rest } = e;
      const entry = { ...rest, v: 1, writer: this.writer, seq: ++seq } as ManifestEntry;
      stmt.bindVarchar(1, this.archive);
      stmt.bindVarchar(2, this.server);
      stmt.bindBigInt(3, BigInt(entry.seq));
      stmt.bindVarchar(4, entry.key);
      stmt.bindVarchar(5, entry.form);
      stmt.bindVarchar(6, entry.source.fingerprint);
      stmt.bindVarchar(7, entry.source.name);
      const diskSize = sourceDiskSize ?? entry.source.size;
      if (diskSize === undefined) stmt.bindNull(8);
      else stmt.bindBigInt(8, BigInt(diskSize));
      if (sourceMtimeMs === undefined) stmt.bindNull(9);
      else stmt.bindBigInt(9, BigInt(Math.round(sourceMtimeMs)));
      if (entry.content_sha256 === undefined) stmt.bindNull(10);
      else stmt.bindVarchar(10, entry.content_sha256);
      if (version === undefined) stmt.bindNull(11);
      else stmt.bindInteger(11, version);
      stmt.bindBigInt(12, BigInt(entry.range.start));
      stmt.bindBigInt(13, BigInt(entry.range.end));
      if (entry.events === undefined) stmt.bindNull(14);
      else stmt.bindBigInt(14, BigInt(entry.events));
      stmt.bindBigInt(15, BigInt(entry.size));
      stmt.bindVarchar(16, entry.sha256);
      stmt.bindVarchar(17, JSON.stringify(entry));
      await stmt.run();
      out.push(entry);
    }
    return out;
  }

  /** Commits entries on the main connection in a transaction of their own. */
  commitEntries(entries: NewEntry[]): Promise<ManifestEntry[]> {
    return this.serial(async () => {
      await this.main.run('BEGIN TRANSACTION');
      try {
        const out = await this.insertEntries(entries);
        await this.main.run('COMMIT');
        return out;
      } catch (err) {
        await this.main.run('ROLLBACK').catch(() => {});
        throw err;
      }
    });
  }

  /** Committed entries not yet in a published manifest part, in sequence order. */
  unpublished(): Promise<{ entries: ManifestEntry[]; prevKey: string | null; prevSha256: string | null }> {
    return this.serial(async () => {
      const r = await this.side.runAndReadAll(
        `SELECT entry FROM archive_objects WHERE ${this.where} AND server = ${sqlString(this.server)} AND manifest_key IS NULL ORDER BY seq`,
      );
      const w = await this.side.runAndReadAll(
        `SELECT last_manifest_key, last_manifest_sha256 FROM archive_writers WHERE ${this.where} AND server = ${sqlString(this.server)}`,
      );
      const wr = w.getRows()[0];
      return {
        entries: r.getRows().map((row) => JSON.parse(String(row[0])) as ManifestEntry),
        prevKey: wr?.[0] == null ? null : String(wr[0]),
        prevSha256: wr?.[1] == null ? null : String(wr[1]),
      };
    });
  }

  /** After a part is stored: its entries point to it, and it becomes the chain's last link. */
  markPublished(partKey: string, sha256: string, firstSeq: number, lastSeq: number): Promise<void> {
    return this.serial(async () => {
      await this.side.run('BEGIN TRANSACTION');
      try {
        await this.side.run(
          `UPDATE archive_objects SET manifest_key = ${sqlString(partKey)} WHERE ${this.where} AND server = ${sqlString(this.server)} AND seq BETWEEN ${firstSeq} AND ${lastSeq}`,
        );
        await this.side.run(
          `UPDATE archive_writers SET last_manifest_key = ${sqlString(partKey)}, last_manifest_sha256 = ${sqlString(sha256)} WHERE ${this.where} AND server = ${sqlString(this.server)}`,
        );
        await this.side.run('COMMIT');
      } catch (err) {
        await this.side.run('ROLLBACK').catch(() => {});
        throw err;
      }
    });
  }

  close(): void {
    this.side.closeSync();
  }
}
