import type { Batch } from '../../core/connector.js';
import type { PatternRule } from '../../redact/index.js';
import { ConnectorError, describeFileError } from '../../core/errors.js';
import { BufferPool, type SessionTracker, type TimestampResolver } from '../../parse/index.js';
import type { PgAuditPayload } from '../../model/pg-audit-payload.js';
import { BatchBuilder } from './batches.js';
import { LogContent } from './content.js';
import type { LogFile } from './files.js';
import { lastRecordStart, overlongRecord, parseLastPieces, parseRecords } from './records.js';

export { readTailBefore } from './content.js';

/**
 * Reads one log file from a byte offset and yields batches of parsed pgaudit records.
 *
 * Content is decoded in chunks; records are cut only at complete-record boundaries (csvlog: a newline
 * outside quotes; jsonlog: any newline), so a batch's checkpoint offset always sits between records.
 * In the active file the last, incomplete record is left for the next run. In a finished file an
 * incomplete tail is quarantined. A malformed record is quarantined with its byte offset and reason, and
 * reading resynchronises on the next line that looks like a record start.
 *
 * A damaged compressed file (decompress.ts) is read up to the damage: its complete records are stored, and one
 * quarantine entry holds the damage — the reason, and the text of the record it cut (if any) at that record's
 * offset. The checkpoint stops at that offset and the file counts as read to its end; should the file change
 * (a complete copy put in its place, a copy that was still being written), the next run reads on from there.
 */
export interface ReadOptions {
  server: string;
  fingerprint: string;
  startOffset: number;
  times: TimestampResolver;
  /** Column count known from an earlier run (csvlog), 0 to detect. */
  columns: number;
  /** Target bytes of content per batch. */
  batchBytes: number;
  /** A record longer than this is quarantined instead of waited for (active file). */
  maxRecordBytes: number;
  /** Pack the raw message too (a sink keeps it). */
  packMessage?: boolean;
  /** Mask secrets in statements, parameters and error texts (src/redact). */
  redact?: boolean;
  /** The user's patterns, compiled (redact/rules.ts). */
  patterns?: readonly PatternRule[];
  /** Where packed-row buffers come from and go back to (shared across files). */
  pool?: BufferPool;
  /** The source's session tracker: contexts, kinds and correlation across files (one per source). */
  tracker: SessionTracker;
  onProgress?: (bytes: number) => void;
  /** Accumulates the time spent parsing and reading (the parser thread reports it to the profile). */
  timing?: { parseMs: number; readMs: number };
}

/**
 * The loop of reading one file: fill the held bytes (content.ts), cut them into records (records.ts) gathered into
 * a batch (batches.ts), yield a batch every batchBytes of content (or 200,000 events), and at the end of the
 * content decide what the last bytes are: wait for the rest (the active file), a record or an incomplete one to
 * quarantine (a finished file), or what a damaged compressed file's damage cut.
 */
export async function* readLogFile(file: LogFile, opts: ReadOptions): AsyncGenerator<Batch<PgAuditPayload>> {
  const { times, timing } = opts;
  const readBytes = Math.min(opts.batchBytes, 2 << 20);
  const pool = opts.pool ?? new BufferPool();
  const batch = new BatchBuilder(file, opts, pool, opts.startOffset);
  let content: LogContent | null = null;
  /** While one record is longer than what is held: read on until this much is held before parsing again. */
  let parseAgainAt = 0;
  try {
    content = await LogContent.open(file, pool, readBytes * 2, opts.startOffset, timing, opts.onProgress);
    const c = content;
    const take = (endOfSource: boolean, complete: boolean) => batch.take(c.offset, c.tail, { endOfSource, complete, damage: c.damage?.reason });
    for (;;) {
      await c.fill(readBytes, parseAgainAt);
      if (c.eof && c.skip > 0 && c.damage) {
        // Damaged before the checkpoint (a damaged copy in place of a file read further before): nothing new to
        // read; the damage is recorded where reading stands.
        batch.bad(c.offset, c.damage.reason, '');
        yield take(true, true);
        return;
      }
      if (c.eof && c.skip > 0) {
        throw new ConnectorError('pg_logs', 'file_shrunk', `${file.path} became shorter than its checkpoint while being read`, true);
      }
      const t1 = timing ? performance.now() : 0;
      const consumed = parseRecords(c.bytes, c.offset, file.format, batch, times);
      if (timing) timing.parseMs += performance.now() - t1;
      if (consumed > 0) {
        c.consume(consumed);
        parseAgainAt = 0;
      } else if (!c.eof) {
        if (c.held >= c.work.length - readBytes) c.grow(c.work.length * 2); // one record longer than the buffer
        // A record longer than what is held: parse again once twice as much is held (every byte is scanned a
        // bounded number of times, however long the record), or once it could be too long.
        if (c.held > readBytes) parseAgainAt = Math.min(c.held * 2, opts.maxRecordBytes + 1);
      }
      if (!c.eof && c.held > opts.maxRecordBytes) {
        // A record that never ends (corruption, or longer than allowed): quarantine it and resync.
        const cut = overlongRecord(c.work, c.held);
        batch.bad(c.offset, `record longer than max_record_bytes (${opts.maxRecordBytes})`, cut.text);
        c.consume(cut.bytes);
      }
      if (c.eof) {
        finishContent(c, file, batch, times);
        yield take(true, !file.active && (c.held === 0 || c.damage !== null));
        return;
      }
      if (c.offset - batch.start >= opts.batchBytes || batch.events >= 200_000) yield take(false, false);
    }
  } catch (err) {
    if (typeof (err as NodeJS.ErrnoException)?.code !== 'string' || err instanceof ConnectorError) throw err;
    throw new ConnectorError(
      'pg_logs',
      'read_failed',
      describeFileError(err, file.path, 'reading a log file') ?? `cannot read ${file.path}: ${(err as Error).message}`,
      false,
      { cause: err },
    );
  } finally {
    batch.dispose();
    await content?.close();
  }
}

/**
 * The end of the content: in a finished file, the bytes after the last record boundary are taken as records where
 * they are whole and quarantined where not; in a damaged file the last piece is cut by the damage even if it looks
 * whole (a number cut short still parses), so it goes to quarantine with the damage and the checkpoint stops
 * before it, where a complete copy of the file is read on from. The active file's last bytes wait for the rest.
 */
function finishContent(c: LogContent, file: LogFile, batch: BatchBuilder, times: TimestampResolver): void {
  let damageRecorded = false;
  if (c.held > 0 && !file.active) {
    const end = c.damage ? lastRecordStart(c.work, c.held) : c.held;
    if (end > 0) {
      parseLastPieces(c.work.toString('utf8', 0, end), c.offset, file.format, batch, times);
      c.consume(end);
    }
    if (c.damage) {
      batch.bad(c.offset, c.damage.reason, c.work.toString('utf8', 0, c.held));
      damageRecorded = true;
    }
  }
  if (c.damage && !damageRecorded) batch.bad(c.offset, c.damage.reason, '');
}
