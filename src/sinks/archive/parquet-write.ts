import { promises as fsp } from 'node:fs';
import type { DuckDBConnection } from '../../duckdb/duckdb.js';
import { ConnectorError, storageFailure } from '../../core/errors.js';
import { sqlString } from '../../duckdb/sql.js';
import { utcDate } from './layout.js';

/**
 * Writing a range's events to Parquet with DuckDB (events.ts), and finding the records Parquet cannot take: the
 * COPY settings that bound its memory, per-date statistics, and the search by halves over the records ordered by
 * size (a record Parquet refuses goes to the range's rejects object instead of stalling the archive). The large
 * records' JSON-lines file is indexed by line so that a half can be copied out without reading the rest.
 */

/** Rows per Parquet row group: about 20 MB of events in memory while a file is written (DuckDB's default, 122,880, needs ~45 MB). */
const PARQUET_ROW_GROUP_ROWS = 61_440;
/** …and at most this much text per row group: a range of large statements stays within the memory given. */
const PARQUET_ROW_GROUP_BYTES = '16MB';
/** DuckDB's memory for writing Parquet; raised per range for very large records (memoryFor). */
export const BASE_MEMORY = 96_000_000;
export const BASE_MEMORY_SETTING = '96MB';

export interface DateStats {
  events: number;
  min: number;
  max: number;
}

/** A record in the search for those Parquet cannot take: its identity and size. */
export interface SearchKey {
  session: string;
  line: number;
  bytes: number;
}

/** A line of the large records' JSON file: its record and where it is. */
export interface LineKey extends SearchKey {
  date: string;
  offset: number;
  length: number;
}

/** A failure of space or of the files themselves: no record is to blame, the run fails (and is retried). */
export function isResourceFailure(err: unknown): boolean {
  return storageFailure(err) !== null;
}

/** The kind of a DuckDB failure ("Out of Memory Error"), without the rest of the message (it may quote data). */
export function failureKind(err: unknown): string {
  const first = ((err as Error)?.message ?? String(err)).split('\n')[0] ?? '';
  const m = /^(?:Error: )?([A-Za-z ]*(?:Error|Exception))\b/.exec(first);
  return m ? m[1]!.trim() : 'Error';
}

/** The text a record brings to Parquet (what makes a record large). */
const RECORD_BYTES = `(strlen(coalesce(statement, '')) + strlen(coalesce(parameter, '')))`;

/** A date's rows of a select over events. */
export function ofDateSql(select: string, date: string): string {
  return `SELECT * FROM (${select}) WHERE strftime(log_time, '%Y-%m-%d') = ${sqlString(date)}`;
}

/** Events, first and last time per UTC date of a select. */
export async function dateStats(conn: DuckDBConnection, select: string): Promise<Map<string, DateStats>> {
  const r = await conn.runAndReadAll(`SELECT strftime(log_time, '%Y-%m-%d') AS date, count(*), epoch_ms(min(log_time)), epoch_ms(max(log_time))
    FROM (${select}) GROUP BY 1 ORDER BY 1`);
  return new Map(r.getRows().map((x) => [String(x[0]), { events: Number(x[1]), min: Number(x[2]), max: Number(x[3]) }]));
}

/** COPY … TO a Parquet file; the error when it fails (nothing is left of the file then). */
export async function copyParquet(conn: DuckDBConnection, sql: string, path: string): Promise<unknown> {
  try {
    await conn.run(
      `COPY (${sql}) TO ${sqlString(path)} (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE ${PARQUET_ROW_GROUP_ROWS}, ROW_GROUP_SIZE_BYTES '${PARQUET_ROW_GROUP_BYTES}')`,
    );
    return null;
  } catch (err) {
    await fsp.rm(path, { force: true });
    return err ?? new Error('unknown failure');
  }
}

/** The records of a select, smallest first (the order searchParquet takes them in). */
export async function packedKeys(conn: DuckDBConnection, select: string): Promise<SearchKey[]> {
  try {
    const r = await conn.runAndReadAll(
      `SELECT session_id, session_line_num, ${RECORD_BYTES} AS bytes FROM (${select}) ORDER BY bytes, session_id, session_line_num`,
    );
    return r.getRows().map((x) => ({ session: String(x[0]), line: Number(x[1]), bytes: Number(x[2]) }));
  } catch (err) {
    throw parquetError(err);
  }
}

/** A filter for the records [lo, hi) of `keys` (in packedKeys' order), without a join (which could hold the records). */
export function keyRangeSql(keys: SearchKey[], lo: number, hi: number): string {
  const from = (k: SearchKey) => `(${RECORD_BYTES} > ${k.bytes} OR (${RECORD_BYTES} = ${k.bytes} AND (session_id > ${sqlString(k.session)}
    OR (session_id = ${sqlString(k.session)} AND session_line_num >= ${k.line}))))`;
  return `${from(keys[lo]!)}${hi < keys.length ? ` AND NOT ${from(keys[hi]!)}` : ''}`;
}

/** Each line of a JSON-lines file of large records: its record, date and place. */
export async function indexLines(file: string): Promise<LineKey[]> {
  const out: LineKey[] = [];
  const fh = await fsp.open(file, 'r');
  try {
    const size = (await fh.stat()).size;
    let offset = 0;
    let carry: Buffer = Buffer.alloc(0);
    const chunk = Buffer.allocUnsafe(4 << 20);
    while (offset < size || carry.length) {
      const { bytesRead } = offset < size ? await fh.read(chunk, 0, chunk.length, offset) : { bytesRead: 0 };
      let buf = carry.length ? Buffer.concat([carry, chunk.subarray(0, bytesRead)]) : chunk.subarray(0, bytesRead);
      const base = offset - carry.length;
      offset += bytesRead;
      let start = 0;
      for (;;) {
        const nl = buf.indexOf(10, start);
        if (nl < 0) break;
        if (nl > start) {
          const o = JSON.parse(buf.toString('utf8', start, nl)) as Record<string, string | number | null>;
          out.push({
            session: String(o['session_id']),
            line: Number(o['session_line_num']),
            bytes: nl - start,
            date: utcDate(Number(o['log_time_ms'])),
            offset: base + start,
            length: nl + 1 - start,
          });
        }
        start = nl + 1;
      }
      carry = Buffer.from(buf.subarray(start));
      if (bytesRead === 0) break;
      buf = Buffer.alloc(0);
    }
  } finally {
    await fh.close();
  }
  return out;
}

/** Copies the given lines of a file into a new file. */
export async function copyLines(from: string, lines: LineKey[], to: string): Promise<void> {
  const src = await fsp.open(from, 'r');
  const dst = await fsp.open(to, 'w');
  try {
    for (const l of lines) {
      const buf = Buffer.allocUnsafe(l.length);
      await src.read(buf, 0, l.length, l.offset);
      await dst.write(buf);
    }
  } finally {
    await src.close();
    await dst.close();
  }
}

export function parquetError(err: unknown): ConnectorError {
  const msg = ((err as Error)?.message ?? String(err)).split('\n')[0] ?? '';
  return new ConnectorError(
    'archive',
    'parquet_failed',
    storageFailure(err) === 'no_space' ? `no space left for the Parquet spool files: ${msg}` : `writing Parquet failed: ${msg}`,
    false,
    { cause: err },
  );
}
