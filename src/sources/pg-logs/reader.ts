import { promises as fsp } from 'node:fs';
import type { Batch, FileCheckpoint, QuarantinedRecord } from '../../core/connector.js';
import { ConnectorError, describeFileError } from '../../core/errors.js';
import { isUtf8 } from 'node:buffer';
import {
  CSVLOG_COLUMN_COUNTS, csvlogRecord, findNextRecordStart, GS, jsonlogRecord, packable, packCsvlog, PackWriter,
  PREVIOUSLY_LOGGED, RS, scanCsvRecord, US, type CsvlogPackState, type PgAuditRecord, type RecordOutcome, type TimestampResolver,
} from '../../parse/index.js';
import type { PgAuditPayload } from './payload.js';
import { openContent, TAIL_BYTES, tailHashOf, type LogFile } from './files.js';

/**
 * Reads one log file from a byte offset and yields batches of parsed pgaudit records.
 *
 * Content is decoded in chunks; records are cut only at complete-record boundaries (csvlog: a newline
 * outside quotes; jsonlog: any newline), so a batch's checkpoint offset always sits between records.
 * In the active file the last, incomplete record is left for the next run. In a finished file an
 * incomplete tail is quarantined. A malformed record is quarantined with its byte offset and reason, and
 * reading resynchronises on the next line that looks like a record start.
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
  onProgress?: (bytes: number) => void;
}

const RAW_QUARANTINE_LIMIT = 1 << 20; // keep at most 1 MiB of a bad record's raw text

export async function* readLogFile(file: LogFile, opts: ReadOptions): AsyncGenerator<Batch<PgAuditPayload>> {
  const { server, fingerprint, times } = opts;
  const parseBytes = Math.min(opts.batchBytes, 4 << 20);
  let offset = opts.startOffset; // absolute content offset of the first unconsumed byte
  let skip = opts.startOffset; // content bytes still to skip to reach startOffset
  let parts: Buffer[] = [];
  let partsLength = 0;
  let pending: Buffer = Buffer.alloc(0); // unconsumed bytes carried over from the last parse
  let lastTail: Buffer = Buffer.alloc(0); // the TAIL_BYTES before `offset`
  let waitFor = 0; // a record longer than what we held: parse again only once this much is held
  let eof = false;

  const out = new PackWriter(1 << 20);
  let objects: PgAuditRecord[] = [];
  let markers = new Set<string>();
  let quarantine: QuarantinedRecord[] = [];
  let batchStart = offset;
  const st: CsvlogPackState = {
    columns: opts.columns, times, storeMessage: true, out,
    onBad: () => {}, onMarker: (session) => markers.add(session), events: 0, minTimeMs: 0, maxTimeMs: 0,
  };

  const advanceTail = (bytes: Buffer) => {
    lastTail = bytes.length >= TAIL_BYTES
      ? Buffer.from(bytes.subarray(bytes.length - TAIL_BYTES))
      : Buffer.concat([lastTail, bytes]).subarray(-TAIL_BYTES);
  };

  const makeBatch = (endOfSource: boolean, complete: boolean): Batch<PgAuditPayload> => {
    const { bytes: packed, count } = out.take();
    const eventCount = st.events;
    const cp: FileCheckpoint = {
      server, fingerprint, path: file.path, format: file.format, compression: file.compression, columns: st.columns,
      offset, tailHash: tailHashOf(lastTail), size: file.size, mtimeMs: file.mtimeMs,
      eventsDelta: eventCount, quarantinedDelta: quarantine.length, bytesDelta: offset - batchStart,
      lastEventMs: eventCount ? st.maxTimeMs : null, complete,
    };
    const b: Batch<PgAuditPayload> = {
      payload: { packed, packedCount: count, objects, markerSessions: [...markers] },
      eventCount, quarantine, checkpoint: cp, bytes: offset - batchStart, minTimeMs: st.minTimeMs, maxTimeMs: st.maxTimeMs, endOfSource,
    };
    objects = []; markers = new Set(); quarantine = []; batchStart = offset;
    st.events = 0; st.minTimeMs = 0; st.maxTimeMs = 0;
    return b;
  };

  const bad = (at: number, reason: string, raw: string) => {
    quarantine.push({ server, source: file.path, sourceId: fingerprint, offset: at, reason, raw: raw.length > RAW_QUARANTINE_LIMIT ? raw.slice(0, RAW_QUARANTINE_LIMIT) : raw });
  };

  /** An audit record from the string path: pack it, or keep it as an object if it cannot be packed. */
  const takeRecord = (outcome: RecordOutcome, offsetOf: () => number, raw: () => string) => {
    if (outcome.kind === 'audit') {
      const r = outcome.record;
      const t = r.log_time_ms;
      if (st.events === 0) { st.minTimeMs = t; st.maxTimeMs = t; } else { if (t < st.minTimeMs) st.minTimeMs = t; if (t > st.maxTimeMs) st.maxTimeMs = t; }
      st.events++;
      if (r.statement === PREVIOUSLY_LOGGED) markers.add(r.session_id);
      if (packable(r)) out.record(r, true);
      else objects.push(r);
    } else if (outcome.kind === 'bad') {
      bad(offsetOf(), outcome.reason, raw());
    }
  };

  /** Parses the complete records at the start of `buf`; returns the number of bytes consumed. */
  const parse = (buf: Buffer): number => {
    const lastNl = buf.lastIndexOf(10);
    if (lastNl < 0) return 0;
    const end = lastNl + 1;
    if (file.format === 'csvlog' && isUtf8(buf.subarray(0, end)) && buf.indexOf(US) < 0 && buf.indexOf(RS) < 0 && buf.indexOf(GS) < 0) {
      // The fast path: bytes straight into packed rows.
      st.onBad = (s, e, reason) => bad(offset + s, reason, buf.toString('utf8', s, e));
      return packCsvlog(buf, 0, end, st);
    }
    // The string path: jsonlog, and csvlog chunks with invalid UTF-8 or control characters.
    const text = buf.toString('utf8', 0, end);
    let pos = 0;
    let charCursor = 0, byteCursor = 0;
    const byteAt = (charPos: number) => {
      byteCursor += Buffer.byteLength(text.slice(charCursor, charPos));
      charCursor = charPos;
      return offset + byteCursor;
    };
    if (file.format === 'jsonlog') {
      for (;;) {
        const nl = text.indexOf('\n', pos);
        if (nl < 0) break;
        const e = nl > pos && text.charCodeAt(nl - 1) === 13 ? nl - 1 : nl;
        const line = text.slice(pos, e);
        const start = pos;
        takeRecord(jsonlogRecord(line, times), () => byteAt(start), () => line);
        pos = nl + 1;
      }
    } else {
      for (;;) {
        const rec = scanCsvRecord(text, pos);
        if (!rec) break;
        if (st.columns === 0 && !rec.error && (CSVLOG_COLUMN_COUNTS as readonly number[]).includes(rec.fields.length)) st.columns = rec.fields.length;
        const outcome = csvlogRecord(rec.fields, rec.error, st.columns || 26, times);
        let next = rec.next;
        if (outcome.kind === 'bad') {
          // A broken record may have swallowed the records after it: resynchronise.
          const resync = findNextRecordStart(text, rec.start + 1);
          if (resync > 0 && resync < rec.next) next = resync;
        }
        const start = rec.start;
        takeRecord(outcome, () => byteAt(start), () => text.slice(start, next));
        pos = next;
      }
    }
    return pos === text.length ? end : end - Buffer.byteLength(text.slice(pos));
  };

  const consume = (buf: Buffer, n: number): Buffer => {
    advanceTail(buf.subarray(0, n));
    offset += n;
    opts.onProgress?.(n);
    return buf.subarray(n);
  };

  const stream = openContent(file.path, file.compression);
  const iterator = stream[Symbol.asyncIterator]();
  try {
    for (;;) {
      if (!eof) {
        let next: IteratorResult<Buffer>;
        try {
          next = await iterator.next();
        } catch (err) {
          throw new ConnectorError('pg_logs', 'read_failed',
            describeFileError(err, file.path, 'reading a log file') ?? `cannot read ${file.path}: ${(err as Error).message}`, false, { cause: err });
        }
        if (next.done) eof = true;
        else {
          let chunk = next.value;
          if (skip > 0) {
            const n = Math.min(skip, chunk.length);
            advanceTail(chunk.subarray(0, n));
            skip -= n;
            if (n === chunk.length) continue;
            chunk = chunk.subarray(n);
          }
          parts.push(chunk);
          partsLength += chunk.length;
          if (pending.length + partsLength < Math.max(parseBytes, waitFor * 2)) continue;
        }
      }
      if (eof && skip > 0) {
        throw new ConnectorError('pg_logs', 'file_shrunk', `${file.path} became shorter than its checkpoint while being read`, true);
      }
      if (partsLength > 0) {
        pending = Buffer.concat(pending.length ? [pending, ...parts] : parts);
        parts = []; partsLength = 0;
      }
      const consumed = parse(pending);
      if (consumed > 0) { pending = consume(pending, consumed); waitFor = 0; }
      else waitFor = pending.length;
      if (!eof && pending.length > opts.maxRecordBytes) {
        // A record that never ends (corruption, or longer than allowed): quarantine it and resync.
        const text = pending.toString('utf8');
        const resync = findNextRecordStart(text, 1);
        const cut = resync > 0 ? Buffer.byteLength(text.slice(0, resync)) : pending.length;
        bad(offset, `record longer than max_record_bytes (${opts.maxRecordBytes})`, text.slice(0, resync > 0 ? resync : text.length));
        pending = consume(pending, cut);
        waitFor = 0;
      }
      if (eof) {
        if (pending.length > 0 && !file.active) {
          // A finished file ends in an incomplete record: keep what is a record, quarantine the rest.
          let text = pending.toString('utf8');
          let at = offset;
          for (;;) {
            const resync = findNextRecordStart(text, 1);
            const piece = resync > 0 ? text.slice(0, resync) : text;
            let outcome: RecordOutcome;
            if (file.format === 'jsonlog') outcome = jsonlogRecord(piece.replace(/\r?\n$/, ''), times);
            else {
              const rec = scanCsvRecord(piece.endsWith('\n') ? piece : piece + '\n', 0);
              outcome = rec && rec.next >= piece.length
                ? csvlogRecord(rec.fields, rec.error, st.columns || 26, times)
                : { kind: 'bad', reason: 'incomplete record at the end of a finished file' };
            }
            const pieceAt = at;
            takeRecord(outcome, () => pieceAt, () => piece);
            at += Buffer.byteLength(piece);
            if (resync <= 0) break;
            text = text.slice(resync);
          }
          pending = consume(pending, pending.length);
        }
        yield makeBatch(true, !file.active && pending.length === 0);
        return;
      }
      if (offset - batchStart >= opts.batchBytes || st.events >= 200_000) yield makeBatch(false, false);
    }
  } finally {
    await iterator.return?.();
    (stream as { destroy?: () => void }).destroy?.();
  }
}

/** Reads the `TAIL_BYTES` before `offset` of a plain file (to verify a checkpoint before resuming). */
export async function readTailBefore(path: string, offset: number): Promise<Buffer> {
  const start = Math.max(0, offset - TAIL_BYTES);
  let fh;
  try {
    fh = await fsp.open(path, 'r');
    const buf = Buffer.alloc(offset - start);
    const { bytesRead } = await fh.read(buf, 0, buf.length, start);
    return buf.subarray(0, bytesRead);
  } catch (err) {
    throw new ConnectorError('pg_logs', 'file_unreadable', describeFileError(err, path, 'reading a log file') ?? `cannot read ${path}: ${(err as Error).message}`, false, { cause: err });
  } finally {
    await fh?.close();
  }
}
