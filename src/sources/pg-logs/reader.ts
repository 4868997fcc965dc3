import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import type { Batch, FileCheckpoint, QuarantinedRecord } from '../../core/connector.js';
import { ConnectorError, describeFileError } from '../../core/errors.js';
import { isUtf8 } from 'node:buffer';
import {
  BufferPool,
  CSVLOG_COLUMN_COUNTS,
  csvlogRecord,
  findNextRecordStart,
  GS,
  jsonlogRecord,
  packable,
  packCsvlog,
  PackWriter,
  PREVIOUSLY_LOGGED,
  scanCsvRecord,
  type CsvlogPackState,
  type PgAuditRecord,
  type RecordOutcome,
  type SessionTracker,
  type TimestampResolver,
} from '../../parse/index.js';
import type { PgAuditPayload } from '../../model/pg-audit-payload.js';
import { DamagedContent, openContent } from './decompress.js';
import { TAIL_BYTES, tailHashOf, type LogFile } from './files.js';

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
  /** Where packed-row buffers come from and go back to (shared across files). */
  pool?: BufferPool;
  /** The source's session tracker: contexts, kinds and correlation across files (one per source). */
  tracker: SessionTracker;
  onProgress?: (bytes: number) => void;
  /** Accumulates the time spent parsing and reading (the parser thread reports it to the profile). */
  timing?: { parseMs: number; readMs: number };
}

const RAW_QUARANTINE_LIMIT = 1 << 20; // keep at most 1 MiB of a bad record's raw text

export async function* readLogFile(file: LogFile, opts: ReadOptions): AsyncGenerator<Batch<PgAuditPayload>> {
  const { server, fingerprint, times, timing } = opts;
  const readBytes = Math.min(opts.batchBytes, 2 << 20);
  let offset = opts.startOffset; // absolute content offset of the first unconsumed byte
  let skip = opts.startOffset; // content bytes still to skip to reach startOffset (compressed files)
  // One work buffer holds the unconsumed bytes [0, held); it grows only for a record longer than it.
  const pool = opts.pool ?? new BufferPool();
  let work = pool.acquire(readBytes * 2);
  let held = 0;
  let lastTail: Buffer = Buffer.alloc(0); // the TAIL_BYTES before `offset`
  let eof = false;
  let damage: DamagedContent | null = null; // where a damaged compressed file's content ends, and why

  // Packed rows take about 55 % of the log text they come from (pgbench-like logs; more with store_message).
  const out = new PackWriter(pool, Math.min(opts.packMessage ? opts.batchBytes * 2 : (opts.batchBytes * 3) >> 2, 32 << 20));
  let objects: PgAuditRecord[] = [];
  let markers = new Set<string>();
  const tracker = opts.tracker;
  tracker.beginFile(server, file.label ?? file.path, out);
  let quarantine: QuarantinedRecord[] = [];
  let batchStart = offset;
  const st: CsvlogPackState = {
    columns: opts.columns,
    times,
    storeMessage: opts.packMessage ?? false,
    out,
    tracker,
    onBad: () => {},
    onLarge: () => {},
    onMarker: (session) => {
      markers.add(session);
    },
    events: 0,
    minTimeMs: 0,
    maxTimeMs: 0,
  };

  const advanceTail = (bytes: Buffer) => {
    lastTail = bytes.length >= TAIL_BYTES ? Buffer.from(bytes.subarray(bytes.length - TAIL_BYTES)) : Buffer.concat([lastTail, bytes]).subarray(-TAIL_BYTES);
  };

  const makeBatch = (endOfSource: boolean, complete: boolean): Batch<PgAuditPayload> => {
    const dims = tracker.takeBatch(); // before take(): it reads the statements of the packed rows
    const { bytes: packed, count, release } = out.take();
    const eventCount = st.events;
    const cp: FileCheckpoint = {
      server,
      fingerprint,
      path: file.label ?? file.path,
      format: file.format,
      compression: file.compression,
      columns: st.columns,
      offset,
      tailHash: tailHashOf(lastTail),
      size: file.size,
      mtimeMs: file.mtimeMs,
      eventsDelta: eventCount,
      quarantinedDelta: quarantine.length,
      bytesDelta: offset - batchStart,
      lastEventMs: eventCount ? st.maxTimeMs : null,
      complete,
    };
    const b: Batch<PgAuditPayload> = {
      payload: { packed, packedCount: count, objects, contexts: dims.contexts, kinds: dims.kinds, markerSessions: [...markers], correlation: dims.correlation },
      eventCount,
      quarantine,
      checkpoint: cp,
      bytes: offset - batchStart,
      minTimeMs: st.minTimeMs,
      maxTimeMs: st.maxTimeMs,
      endOfSource,
      release,
      ...(endOfSource && damage ? { damage: damage.reason } : {}),
    };
    objects = [];
    markers = new Set();
    quarantine = [];
    batchStart = offset;
    st.events = 0;
    st.minTimeMs = 0;
    st.maxTimeMs = 0;
    return b;
  };

  const bad = (at: number, reason: string, raw: string) => {
    quarantine.push({
      server,
      source: file.label ?? file.path,
      sourceId: fingerprint,
      offset: at,
      reason,
      raw: raw.length > RAW_QUARANTINE_LIMIT ? raw.slice(0, RAW_QUARANTINE_LIMIT) : raw,
    });
  };

  /** An audit record from the string path: pack it, or keep it as an object if it cannot be packed. */
  const takeRecord = (outcome: RecordOutcome, offsetOf: () => number, raw: () => string) => {
    if (outcome.kind === 'audit') {
      const r = outcome.record;
      const t = r.log_time_ms;
      if (st.events === 0) {
        st.minTimeMs = t;
        st.maxTimeMs = t;
      } else {
        if (t < st.minTimeMs) st.minTimeMs = t;
        if (t > st.maxTimeMs) st.maxTimeMs = t;
      }
      st.events++;
      if (r.statement === PREVIOUSLY_LOGGED) markers.add(r.session_id);
      if (!opts.packMessage) r.message = '';
      tracker.auditRecord(r);
      if (packable(r)) out.record(r, tracker.contextId, tracker.kindId);
      else {
        r.context_id = tracker.contextId;
        r.kind_id = tracker.kindId;
        objects.push(r);
      }
    } else if (outcome.kind === 'session') {
      tracker.sessionRecord(outcome.record);
    } else if (outcome.kind === 'bad') {
      bad(offsetOf(), outcome.reason, raw());
    }
  };

  /** Parses the complete records at the start of `buf`; returns the number of bytes consumed. */
  const parse = (buf: Buffer): number => {
    const lastNl = buf.lastIndexOf(10);
    if (lastNl < 0) return 0;
    const end = lastNl + 1;
    if (file.format === 'csvlog' && buf.indexOf(GS) < 0 && isUtf8(buf.subarray(0, end))) {
      // The fast path: bytes straight into packed rows.
      st.onBad = (s, e, reason) => bad(offset + s, reason, buf.toString('utf8', s, e));
      st.onLarge = (s, e) => {
        const text = buf.toString('utf8', s, e);
        const rec = scanCsvRecord(text, 0);
        const outcome: RecordOutcome = rec ? csvlogRecord(rec.fields, rec.error, st.columns || 26, times) : { kind: 'bad', reason: 'unreadable record' };
        takeRecord(
          outcome,
          () => offset + s,
          () => text,
        );
      };
      st.onSessionRecord = (r) => tracker.sessionRecord(r);
      return packCsvlog(buf, 0, end, st);
    }
    // The string path: jsonlog, and csvlog chunks with invalid UTF-8 or control characters.
    const text = buf.toString('utf8', 0, end);
    let pos = 0;
    let charCursor = 0,
      byteCursor = 0;
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
        takeRecord(
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
        takeRecord(
          outcome,
          () => byteAt(start),
          () => text.slice(start, next),
        );
        pos = next;
      }
    }
    return pos === text.length ? end : end - Buffer.byteLength(text.slice(pos));
  };

  /** Drops the first n held bytes (parsed or quarantined). */
  const consume = (n: number) => {
    advanceTail(work.subarray(0, n));
    offset += n;
    opts.onProgress?.(n);
    work.copyWithin(0, n, held);
    held -= n;
  };

  const grow = (min: number) => {
    if (work.length >= min) return;
    let size = work.length * 2;
    while (size < min) size *= 2;
    const next = pool.acquire(size);
    work.copy(next, 0, 0, held);
    pool.release(work);
    work = next;
  };

  let fh: FileHandle | null = null;
  let position = opts.startOffset;
  /** While one record is longer than what is held: read on until this much is held before parsing again. */
  let parseAgainAt = 0;
  let iterator: AsyncIterator<Buffer> | null = null;
  let stream: AsyncIterable<Buffer> | null = null;
  try {
    if (file.compression === 'none') {
      fh = await fsp.open(file.path, 'r');
      if (opts.startOffset > 0) {
        lastTail = Buffer.from(await readTailBefore(file.path, opts.startOffset));
        skip = 0;
      }
    } else {
      stream = openContent(file.path, file.compression);
      iterator = stream[Symbol.asyncIterator]();
    }
    for (;;) {
      // Fill the work buffer up to at least readBytes of new data, or to the end of the content.
      let added = 0;
      while (!eof && (added < readBytes || held < parseAgainAt)) {
        if (fh) {
          grow(held + readBytes);
          const t0 = timing ? performance.now() : 0;
          const { bytesRead } = await fh.read(work, held, Math.min(readBytes, work.length - held), position);
          if (timing) timing.readMs += performance.now() - t0;
          if (bytesRead === 0) {
            eof = true;
            break;
          }
          position += bytesRead;
          held += bytesRead;
          added += bytesRead;
        } else {
          const t0 = timing ? performance.now() : 0;
          let next: IteratorResult<Buffer>;
          try {
            next = await iterator!.next();
          } catch (err) {
            if (!(err instanceof DamagedContent)) throw err;
            damage = err;
            eof = true;
            break;
          }
          if (timing) timing.readMs += performance.now() - t0;
          if (next.done) {
            eof = true;
            break;
          }
          let chunk = next.value;
          if (skip > 0) {
            const n = Math.min(skip, chunk.length);
            advanceTail(chunk.subarray(0, n));
            skip -= n;
            if (n === chunk.length) continue;
            chunk = chunk.subarray(n);
          }
          grow(held + chunk.length);
          chunk.copy(work, held);
          held += chunk.length;
          added += chunk.length;
        }
      }
      if (eof && skip > 0 && damage) {
        // Damaged before the checkpoint (a damaged copy in place of a file read further before): nothing new to
        // read; the damage is recorded where reading stands.
        bad(offset, damage.reason, '');
        yield makeBatch(true, true);
        return;
      }
      if (eof && skip > 0) {
        throw new ConnectorError('pg_logs', 'file_shrunk', `${file.path} became shorter than its checkpoint while being read`, true);
      }
      const t1 = timing ? performance.now() : 0;
      const consumed = parse(work.subarray(0, held));
      if (timing) timing.parseMs += performance.now() - t1;
      if (consumed > 0) {
        consume(consumed);
        parseAgainAt = 0;
      } else if (!eof) {
        if (held >= work.length - readBytes) grow(work.length * 2); // one record longer than the buffer
        // A record longer than what is held: parse again once twice as much is held (every byte is scanned a
        // bounded number of times, however long the record), or once it could be too long.
        if (held > readBytes) parseAgainAt = Math.min(held * 2, opts.maxRecordBytes + 1);
      }
      if (!eof && held > opts.maxRecordBytes) {
        // A record that never ends (corruption, or longer than allowed): quarantine it and resync.
        const text = work.toString('utf8', 0, held);
        const resync = findNextRecordStart(text, 1);
        const cut = resync > 0 ? Buffer.byteLength(text.slice(0, resync)) : held;
        bad(offset, `record longer than max_record_bytes (${opts.maxRecordBytes})`, text.slice(0, resync > 0 ? resync : text.length));
        consume(cut);
      }
      if (eof) {
        let damageRecorded = false;
        if (held > 0 && !file.active) {
          // In a damaged file the last piece is cut by the damage even if it looks whole (a number cut short still
          // parses): it goes to quarantine with the damage, and the checkpoint stops before it, where a complete
          // copy of the file is read on from.
          const end = damage ? lastRecordStart(work, held) : held;
          if (end > 0) {
            // A finished file ends in an incomplete record: keep what is a record, quarantine the rest.
            let text = work.toString('utf8', 0, end);
            let at = offset;
            for (;;) {
              const resync = findNextRecordStart(text, 1);
              const piece = resync > 0 ? text.slice(0, resync) : text;
              let outcome: RecordOutcome;
              if (file.format === 'jsonlog') outcome = jsonlogRecord(piece.replace(/\r?\n$/, ''), times);
              else {
                const rec = scanCsvRecord(piece.endsWith('\n') ? piece : piece + '\n', 0);
                outcome =
                  rec && rec.next >= piece.length
                    ? csvlogRecord(rec.fields, rec.error, st.columns || 26, times)
                    : { kind: 'bad', reason: 'incomplete record at the end of a finished file' };
              }
              const pieceAt = at;
              takeRecord(
                outcome,
                () => pieceAt,
                () => piece,
              );
              at += Buffer.byteLength(piece);
              if (resync <= 0) break;
              text = text.slice(resync);
            }
            consume(end);
          }
          if (damage) {
            bad(offset, damage.reason, work.toString('utf8', 0, held));
            damageRecorded = true;
          }
        }
        if (damage && !damageRecorded) bad(offset, damage.reason, '');
        yield makeBatch(true, !file.active && (held === 0 || damage !== null));
        return;
      }
      if (offset - batchStart >= opts.batchBytes || st.events >= 200_000) yield makeBatch(false, false);
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
    pool.release(work);
    out.dispose();
    await fh?.close();
    await iterator?.return?.();
    (stream as { destroy?: () => void } | null)?.destroy?.();
  }
}

/**
 * Where the last line that starts like a csvlog record begins in `buf[0, held)` (0 if none): a byte offset, the
 * search runs over the bytes as latin1 so that invalid UTF-8 cannot shift it.
 */
function lastRecordStart(buf: Buffer, held: number): number {
  const bytes = buf.toString('latin1', 0, held);
  let last = 0;
  for (let i = findNextRecordStart(bytes, 1); i > 0; i = findNextRecordStart(bytes, i + 1)) last = i;
  return last;
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
    throw new ConnectorError(
      'pg_logs',
      'file_unreadable',
      describeFileError(err, path, 'reading a log file') ?? `cannot read ${path}: ${(err as Error).message}`,
      false,
      { cause: err },
    );
  } finally {
    await fh?.close();
  }
}
