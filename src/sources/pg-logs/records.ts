import { isUtf8 } from 'node:buffer';
import {
  CSVLOG_COLUMN_COUNTS,
  csvlogRecord,
  findNextRecordStart,
  GS,
  jsonlogRecord,
  packCsvlog,
  scanCsvRecord,
  type RecordOutcome,
  type TimestampResolver,
} from '../../parse/index.js';
import type { BatchBuilder } from './batches.js';
import type { LogFormat } from './files.js';

/**
 * Cutting held log bytes into records, for reader.ts: only complete records are taken (csvlog: up to a newline
 * outside quotes; jsonlog: up to any newline), so that what is consumed always ends between records. A damaged
 * csvlog record is quarantined up to the next line that starts like a record (resynchronisation).
 */

/**
 * Parses the complete records at the start of `buf` (content offset `offset`) into the batch; returns the bytes
 * consumed. csvlog in valid UTF-8 takes the fast path, bytes straight into packed rows (parse/csvlog-pack.ts);
 * jsonlog, and csvlog with invalid UTF-8 or control characters, the string path.
 */
export function parseRecords(buf: Buffer, offset: number, format: LogFormat, batch: BatchBuilder, times: TimestampResolver): number {
  const lastNl = buf.lastIndexOf(10);
  if (lastNl < 0) return 0;
  const end = lastNl + 1;
  const st = batch.st;
  if (format === 'csvlog' && buf.indexOf(GS) < 0 && isUtf8(buf.subarray(0, end))) {
    st.onBad = (s, e, reason) => batch.bad(offset + s, reason, buf.toString('utf8', s, e));
    st.onLarge = (s, e) => {
      const text = buf.toString('utf8', s, e);
      const rec = scanCsvRecord(text, 0);
      const outcome: RecordOutcome = rec ? csvlogRecord(rec.fields, rec.error, st.columns || 26, times) : { kind: 'bad', reason: 'unreadable record' };
      batch.record(
        outcome,
        () => offset + s,
        () => text,
      );
    };
    st.onSessionRecord = (r) => st.tracker.sessionRecord(r);
    return packCsvlog(buf, 0, end, st);
  }
  const text = buf.toString('utf8', 0, end);
  let pos = 0;
  let charCursor = 0,
    byteCursor = 0;
  const byteAt = (charPos: number) => {
    byteCursor += Buffer.byteLength(text.slice(charCursor, charPos));
    charCursor = charPos;
    return offset + byteCursor;
  };
  if (format === 'jsonlog') {
    for (;;) {
      const nl = text.indexOf('\n', pos);
      if (nl < 0) break;
      const e = nl > pos && text.charCodeAt(nl - 1) === 13 ? nl - 1 : nl;
      const line = text.slice(pos, e);
      const start = pos;
      batch.record(
        jsonlogRecord(line, times),
        () => byteAt(start),
        () => line,
      );
      pos = nl + 1;
    }
  } else {
    for (;;) {
      const rec = scanCsvRecord(text, pos);
      if (!rec) break;
      if (st.columns === 0 && !rec.error && (CSVLOG_COLUMN_COUNTS as readonly number[]).includes(rec.fields.length)) st.columns = rec.fields.length;
      const outcome = csvlogRecord(rec.fields, rec.error, st.columns || 26, times);
      let next = rec.next;
      if (rec.error || (outcome.kind === 'bad' && rec.fields.length !== (st.columns || 26))) {
        // Damaged: quarantine up to the next line that starts like a record (see csvlog-pack).
        const resync = findNextRecordStart(text, rec.start + 1);
        if (resync < 0) break; // wait for more data (or the end of a finished file)
        next = resync;
      }
      const start = rec.start;
      batch.record(
        outcome,
        () => byteAt(start),
        () => text.slice(start, next),
      );
      pos = next;
    }
  }
  return pos === text.length ? end : end - Buffer.byteLength(text.slice(pos));
}

/**
 * The last bytes of a finished file, `text` at content offset `at`, which end in no record boundary: each piece
 * that starts like a record is taken if it is a whole record, else quarantined as an incomplete record.
 */
export function parseLastPieces(text: string, at: number, format: LogFormat, batch: BatchBuilder, times: TimestampResolver): void {
  for (;;) {
    const resync = findNextRecordStart(text, 1);
    const piece = resync > 0 ? text.slice(0, resync) : text;
    let outcome: RecordOutcome;
    if (format === 'jsonlog') outcome = jsonlogRecord(piece.replace(/\r?\n$/, ''), times);
    else {
      const rec = scanCsvRecord(piece.endsWith('\n') ? piece : piece + '\n', 0);
      outcome =
        rec && rec.next >= piece.length
          ? csvlogRecord(rec.fields, rec.error, batch.columns || 26, times)
          : { kind: 'bad', reason: 'incomplete record at the end of a finished file' };
    }
    const pieceAt = at;
    batch.record(
      outcome,
      () => pieceAt,
      () => piece,
    );
    at += Buffer.byteLength(piece);
    if (resync <= 0) break;
    text = text.slice(resync);
  }
}

/** How many of the `held` bytes an overlong record takes: up to the next line that starts like a record, or all. */
export function overlongRecord(work: Buffer, held: number): { bytes: number; text: string } {
  const text = work.toString('utf8', 0, held);
  const resync = findNextRecordStart(text, 1);
  return resync > 0 ? { bytes: Buffer.byteLength(text.slice(0, resync)), text: text.slice(0, resync) } : { bytes: held, text };
}

/**
 * Where the last line that starts like a csvlog record begins in `buf[0, held)` (0 if none): a byte offset, the
 * search runs over the bytes as latin1 so that invalid UTF-8 cannot shift it.
 */
export function lastRecordStart(buf: Buffer, held: number): number {
  const bytes = buf.toString('latin1', 0, held);
  let last = 0;
  for (let i = findNextRecordStart(bytes, 1); i > 0; i = findNextRecordStart(bytes, i + 1)) last = i;
  return last;
}
