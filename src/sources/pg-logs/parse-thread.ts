/**
 * The main thread's side of the parser thread (parse-worker.ts): starts it, hands it files, and yields the
 * batches it sends. At most two batches are on their way at a time (the parser waits for an acknowledgement,
 * which also gives the packed rows' buffer back for reuse): memory stays flat however much is read.
 */
import { Worker } from 'node:worker_threads';
import { compilePatterns } from '../../redact/index.js';
import type { Batch } from '../../core/connector.js';
import { ConnectorError } from '../../core/errors.js';
import { profile } from '../../core/profile.js';
import { BufferPool, SessionTracker, TimestampError, TimestampResolver, type StatementState } from '../../parse/index.js';
import type { LogFile } from './files.js';
import type { PgAuditPayload } from '../../model/pg-audit-payload.js';
import { readLogFile } from './reader.js';

export interface ParserOptions {
  server: string;
  logTimezone?: string;
  batchBytes: number;
  maxRecordBytes: number;
  packMessage: boolean;
  /** Mask secrets in statements, parameters and error texts (src/redact) before a batch leaves the parser. */
  redact: boolean;
  /** The user's patterns, NAME=REGEX (compiled where they run: regular expressions do not cross threads). */
  patterns: string[];
  profile: boolean;
}

export type ToParser =
  | { type: 'init'; options: ParserOptions; states: StatementState[] }
  | { type: 'reload'; states: StatementState[] }
  | { type: 'read'; file: LogFile; fingerprint: string; startOffset: number; columns: number }
  | { type: 'ack'; buffer?: ArrayBuffer }
  | { type: 'close' };

export interface ParserError {
  message: string;
  code?: string;
  retryable?: boolean;
}
interface Timing {
  parseMs: number;
  readMs: number;
}
type SentBatch = Omit<Batch<PgAuditPayload>, 'release' | 'payload'> & { payload: Omit<PgAuditPayload, 'packed'> };

export type FromParser =
  | { type: 'batch'; batch: SentBatch; packed: { buffer: ArrayBuffer; length: number }; progress: number; timing: Timing }
  | { type: 'progress'; bytes: number }
  | { type: 'end'; progress: number; timing: Timing }
  | { type: 'error'; error: ParserError; progress: number; timing: Timing };

export type ParsedItem = { type: 'batch'; batch: Batch<PgAuditPayload> } | { type: 'error'; error: Error };

function workerUrl(): { url: URL; execArgv: string[] } {
  // Under tsx (tests, benchmarks from source) the worker is the .ts file, loaded through tsx as well.
  if (import.meta.url.endsWith('.ts')) return { url: new URL('./parse-worker.ts', import.meta.url), execArgv: ['--import', 'tsx'] };
  return { url: new URL('./parse-worker.js', import.meta.url), execArgv: [] };
}

/** Reads and parses log files: on a thread of its own (ParseThread) or on the caller's (InlineParser). */
export interface Parser {
  read(file: LogFile, fingerprint: string, startOffset: number, columns: number): AsyncGenerator<ParsedItem>;
  reload(states: StatementState[]): void;
  close(): Promise<void>;
}

/**
 * The parser on the main thread: for a few MB (a cron run's new records) starting a thread costs more than
 * it saves.
 */
export class InlineParser implements Parser {
  private readonly tracker = new SessionTracker();
  private readonly pool = new BufferPool();
  private readonly times: TimestampResolver;

  constructor(
    private readonly options: ParserOptions,
    states: StatementState[],
    private readonly onProgress?: (bytes: number) => void,
  ) {
    this.times = new TimestampResolver(options.logTimezone);
    this.tracker.redact = options.redact;
    this.tracker.patterns = compilePatterns(options.patterns);
    this.tracker.load(states);
  }

  async *read(file: LogFile, fingerprint: string, startOffset: number, columns: number): AsyncGenerator<ParsedItem> {
    const o = this.options;
    const timing = { parseMs: 0, readMs: 0 };
    try {
      for await (const batch of readLogFile(file, {
        server: o.server,
        fingerprint,
        startOffset,
        times: this.times,
        columns,
        batchBytes: o.batchBytes,
        maxRecordBytes: o.maxRecordBytes,
        pool: this.pool,
        packMessage: o.packMessage,
        redact: o.redact,
        patterns: this.tracker.patterns,
        tracker: this.tracker,
        ...(this.onProgress ? { onProgress: this.onProgress } : {}),
        ...(o.profile ? { timing } : {}),
      })) {
        yield { type: 'batch', batch };
      }
    } catch (err) {
      yield {
        type: 'error',
        error:
          err instanceof TimestampError
            ? new ConnectorError('pg_logs', 'timestamp_unresolvable', `${file.path}: ${err.message}`, false, { cause: err })
            : err instanceof Error
              ? err
              : new Error(String(err)),
      };
    } finally {
      profile.add('parse', 'js', timing.parseMs);
      profile.add('read file', 'js', timing.readMs);
    }
  }

  reload(states: StatementState[]): void {
    this.tracker.load(states);
  }

  async close(): Promise<void> {}
}

export class ParseThread implements Parser {
  private readonly worker: Worker;
  private readonly inbox: FromParser[] = [];
  private waiting: ((m: FromParser) => void) | null = null;
  private failed: Error | null = null;
  private seen: Timing = { parseMs: 0, readMs: 0 };

  constructor(
    options: ParserOptions,
    states: StatementState[],
    private readonly onProgress?: (bytes: number) => void,
  ) {
    const { url, execArgv } = workerUrl();
    // A small young generation: the parser's garbage dies young, and the default (up to 48 MB) only adds RSS
    // (measured: 161 MB → 124 MB peak for the parser alone, at the same speed within noise).
    this.worker = new Worker(url, { execArgv, stdout: false, stderr: false, resourceLimits: { maxYoungGenerationSizeMb: 8 } });
    this.worker.on('message', (m: FromParser) => this.deliver(m));
    this.worker.on('error', (err) => {
      this.failed = err;
      this.deliver({ type: 'error', error: { message: `the parser thread failed: ${err.message}` }, progress: 0, timing: this.seen });
    });
    this.worker.on('exit', (code) => {
      if (code !== 0 && !this.failed) {
        this.failed = new Error(`the parser thread exited with code ${code}`);
        this.deliver({ type: 'error', error: { message: this.failed.message }, progress: 0, timing: this.seen });
      }
    });
    this.post({ type: 'init', options, states });
  }

  private post(m: ToParser, transfer: ArrayBuffer[] = []): void {
    this.worker.postMessage(m, transfer);
  }

  private deliver(m: FromParser): void {
    if (m.type === 'progress') {
      this.onProgress?.(m.bytes);
      return;
    }
    if (this.waiting) {
      const w = this.waiting;
      this.waiting = null;
      w(m);
    } else this.inbox.push(m);
  }

  private receive(): Promise<FromParser> {
    const m = this.inbox.shift();
    if (m) return Promise.resolve(m);
    return new Promise((resolve) => {
      this.waiting = resolve;
    });
  }

  /** The parser's time since its last report, into the profile (lane `parser`). */
  private account(t: Timing, progress: number): void {
    if (progress > 0) this.onProgress?.(progress);
    if (!profile.enabled) return;
    profile.add('parse', 'parser', t.parseMs - this.seen.parseMs);
    profile.add('read file', 'parser', t.readMs - this.seen.readMs);
    this.seen = t;
  }

  /** Reads one file: its batches, then the end (or one error item, after which the file is abandoned). */
  async *read(file: LogFile, fingerprint: string, startOffset: number, columns: number): AsyncGenerator<ParsedItem> {
    this.post({ type: 'read', file, fingerprint, startOffset, columns });
    for (;;) {
      const t0 = profile.enabled ? performance.now() : 0;
      const m = await this.receive();
      if (profile.enabled) profile.add('waits for the parser', 'wait', performance.now() - t0);
      if (m.type === 'progress') continue;
      this.account(m.timing, m.progress);
      if (m.type === 'end') return;
      if (m.type === 'error') {
        const e = m.error;
        yield { type: 'error', error: e.code ? new ConnectorError('pg_logs', e.code, e.message, e.retryable ?? false) : new Error(e.message) };
        if (this.failed) throw this.failed;
        return;
      }
      const { buffer, length } = m.packed;
      let acked = false;
      const batch: Batch<PgAuditPayload> = {
        ...m.batch,
        payload: { ...m.batch.payload, packed: Buffer.from(buffer, 0, length) },
        release: () => {
          if (acked) return;
          acked = true;
          this.post({ type: 'ack', buffer }, [buffer]);
        },
      };
      yield { type: 'batch', batch };
    }
  }

  /** After a rollback: the sessions' state as committed. */
  reload(states: StatementState[]): void {
    this.post({ type: 'reload', states });
  }

  async close(): Promise<void> {
    this.post({ type: 'close' });
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        void this.worker.terminate().then(() => resolve());
      }, 2000);
      this.worker.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
