import type { DuckDBConnection } from '@duckdb/node-api';
import { BlockBuilder, type TextBlock } from '../../text-index/index.js';
import { profile } from '../../core/profile.js';
import type { Logger } from '../../core/log.js';

/**
 * The store's text index (src/text-index): table `text_index`, one row per block of stored pgaudit events —
 * the time range of its rows and the bitmap of their statements' n-grams (type BIT: bitmap bit i is the BIT's
 * bit i). Rows
 * are added in the same transaction as the events they describe, so the index never lags the rows a reader
 * sees. A block is never changed; a statement that changes later (`<previously logged>` filled in) adds a
 * block for its rows. Rows replaced by `--force` leave their blocks (a block may only say "maybe").
 *
 * `auditship_meta.text_index` = 'complete' says every stored event is covered; readers use the index only
 * then. A store made before the index gets it built once when a writer opens it (buildMissingIndex).
 */
export const TEXT_INDEX_DDL = `CREATE TABLE IF NOT EXISTS text_index (lo TIMESTAMPTZ NOT NULL, hi TIMESTAMPTZ NOT NULL, rows INTEGER NOT NULL, grams BIT NOT NULL)`;

export const TEXT_INDEX_COMPLETE = 'complete';

/** Stores blocks (in the caller's transaction), in one statement. */
export async function storeBlocks(conn: DuckDBConnection, blocks: readonly TextBlock[]): Promise<void> {
  if (blocks.length === 0) return;
  const t = performance.now();
  const ts = (ms: number) => `make_timestamp(${Math.floor(ms) * 1000}::BIGINT)::TIMESTAMPTZ`;
  const stmt = await conn.prepare(
    `INSERT INTO text_index VALUES ${blocks.map((b, i) => `(${ts(b.lo)}, ${ts(b.hi)}, ${b.rows}, $${i + 1}::BLOB::BIT)`).join(', ')}`,
  );
  blocks.forEach((b, i) => stmt.bindBlob(i + 1, toSqlBitOrder(b.bits)));
  await stmt.run();
  stmt.destroySync();
  profile.add('text index: store blocks', 'duckdb', performance.now() - t);
}

/** DuckDB's BIT numbers bits from the most significant bit of the first byte; the bitmaps from the least. */
function toSqlBitOrder(bits: Uint8Array): Uint8Array {
  const out = new Uint8Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = REVERSED[bits[i]!]!;
  return out;
}

const REVERSED = new Uint8Array(256).map((_, v) => {
  let r = 0;
  for (let j = 0; j < 8; j++) if (v & (1 << j)) r |= 0x80 >> j;
  return r;
});

/**
 * Adds blocks for the rows a statement was just written into by SQL (`<previously logged>` filled in): the
 * rows are named by a query yielding (epoch ms, statement).
 */
export async function indexRowsOf(conn: DuckDBConnection, rowsSql: string): Promise<number> {
  const builder = new BlockBuilder();
  const result = await conn.stream(rowsSql);
  for (;;) {
    const chunk = await result.fetchChunk();
    if (!chunk || chunk.rowCount === 0) break;
    const [times, texts] = [chunk.getColumnValues(0), chunk.getColumnValues(1)];
    for (let i = 0; i < chunk.rowCount; i++) builder.addText(Number(times[i]), texts[i] === null ? null : String(texts[i]));
  }
  await storeBlocks(conn, builder.blocks);
  return builder.blocks.reduce((n, b) => n + b.rows, 0);
}

/**
 * Makes the index complete when a writer opens the store: for a new store it only records that it is; for
 * one made before the index it indexes every stored event once (in one transaction).
 */
export async function buildMissingIndex(conn: DuckDBConnection, log: Logger): Promise<void> {
  const state = (await conn.runAndReadAll(`SELECT value FROM auditship_meta WHERE key = 'text_index'`)).getRows()[0]?.[0];
  if (state === TEXT_INDEX_COMPLETE) return;
  const count = Number((await conn.runAndReadAll('SELECT count(*) FROM event_rows')).getRows()[0]![0]);
  const started = Date.now();
  await conn.run('BEGIN TRANSACTION');
  try {
    if (count > 0) {
      log.info('Building the text index of the stored events (once, for a store made before it).', { events: count });
      await conn.run('DELETE FROM text_index');
      await indexRowsOf(conn, 'SELECT epoch_ms(log_time)::DOUBLE, statement FROM event_rows');
    }
    await conn.run(`INSERT OR REPLACE INTO auditship_meta VALUES ('text_index', '${TEXT_INDEX_COMPLETE}')`);
    await conn.run('COMMIT');
  } catch (err) {
    await conn.run('ROLLBACK').catch(() => {});
    throw err;
  }
  if (count > 0) log.info('Text index built.', { events: count, ms: Date.now() - started });
}
