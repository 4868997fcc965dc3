/**
 * The pg_logs parser thread: reads and parses log files (reader.ts) on a worker thread, so that parsing and
 * DuckDB's storing run on both cores and the main thread is free to hand DuckDB its next statement the
 * moment one ends (on the main thread, a parse slice in progress kept DuckDB waiting: measured 5.5 s → see
 * the README's profile). Protocol: parse-thread.ts. The session tracker (contexts, kinds, correlation state)
 * lives here, across the files of a run.
 */
import { parentPort } from 'node:worker_threads';
import { compilePatterns } from '../../redact/index.js';
import { ConnectorError } from '../../core/errors.js';
import { BufferPool, SessionTracker, TimestampError, TimestampResolver } from '../../parse/index.js';
import { readLogFile } from './reader.js';
import type { ToParser, FromParser, ParserError } from './parse-thread.js';

const port = parentPort!;
const pool = new BufferPool();
const tracker = new SessionTracker();
let times: TimestampResolver | null = null;
let options: Extract<ToParser, { type: 'init' }>['options'] | null = null;
/**
 * Batches handed over and not yet given back; the parser waits beyond MAX_IN_FLIGHT: one being stored, one
 * queued behind it, one on its way (measured: 2 in flight left both threads waiting for each other).
 */
let inFlight = 0;
const MAX_IN_FLIGHT = 3;
let wake: (() => void) | null = null;
const queue: ToParser[] = [];
let next: ((m: ToParser) => void) | null = null;
const timing = { parseMs: 0, readMs: 0 };

function post(m: FromParser, transfer: ArrayBuffer[] = []): void {
  port.postMessage(m, transfer);
}

function errorOf(err: unknown, path: string): ParserError {
  if (err instanceof TimestampError) return { message: `${path}: ${err.message}`, code: 'timestamp_unresolvable', retryable: false };
  if (err instanceof ConnectorError) return { message: err.message, code: err.code, retryable: err.retryable };
  return { message: (err as Error)?.message ?? String(err) };
}

async function readFile(m: Extract<ToParser, { type: 'read' }>): Promise<void> {
  const o = options!;
  let progress = 0;
  try {
    for await (const batch of readLogFile(m.file, {
      server: o.server,
      fingerprint: m.fingerprint,
      startOffset: m.startOffset,
      times: times!,
      columns: m.columns,
      batchBytes: o.batchBytes,
      maxRecordBytes: o.maxRecordBytes,
      pool,
      packMessage: o.packMessage,
      redact: o.redact,
      patterns: tracker.patterns,
      tracker,
      onProgress: (n) => {
        progress += n;
        if (progress >= 8 << 20) {
          post({ type: 'progress', bytes: progress });
          progress = 0;
        }
      },
      ...(o.profile ? { timing } : {}),
    })) {
      // The packed rows' buffer goes to the main thread (no copy) and comes back with the acknowledgement.
      const packed = batch.payload.packed;
      let buffer = packed.buffer as ArrayBuffer;
      if (packed.byteOffset !== 0 || buffer.byteLength > packed.length * 4 + (1 << 20)) {
        // A view into a shared or much larger buffer: send a copy instead.
        buffer = packed.buffer.slice(packed.byteOffset, packed.byteOffset + packed.length) as ArrayBuffer;
        batch.release?.();
      }
      const { release: _release, payload, ...rest } = batch;
      void _release;
      const { packed: _packed, ...payloadRest } = payload;
      void _packed;
      post({ type: 'batch', batch: { ...rest, payload: payloadRest }, packed: { buffer, length: packed.length }, progress, timing: { ...timing } }, [buffer]);
      progress = 0;
      inFlight++;
      while (inFlight >= MAX_IN_FLIGHT)
        await new Promise<void>((r) => {
          wake = r;
        });
    }
    post({ type: 'end', progress, timing: { ...timing } });
  } catch (err) {
    post({ type: 'error', error: errorOf(err, m.file.path), progress, timing: { ...timing } });
  }
}

function receive(m: ToParser): void {
  if (m.type === 'ack') {
    inFlight--;
    if (m.buffer) pool.release(Buffer.from(m.buffer));
    const w = wake;
    wake = null;
    w?.();
    return;
  }
  if (next) {
    const n = next;
    next = null;
    n(m);
  } else queue.push(m);
}

port.on('message', receive);

async function main(): Promise<void> {
  for (;;) {
    const m =
      queue.shift() ??
      (await new Promise<ToParser>((r) => {
        next = r;
      }));
    if (m.type === 'init') {
      options = m.options;
      times = new TimestampResolver(m.options.logTimezone);
      tracker.redact = m.options.redact;
      tracker.patterns = compilePatterns(m.options.patterns);
      tracker.load(m.states);
    } else if (m.type === 'reload') {
      tracker.load(m.states);
    } else if (m.type === 'read') {
      await readFile(m);
    } else if (m.type === 'close') {
      port.off('message', receive);
      port.close();
      return;
    }
  }
}

void main();
