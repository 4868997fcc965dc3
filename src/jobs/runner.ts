import { isExpected } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { PipelineMeter } from '../core/meter.js';
import { Backoff, sleep } from '../core/retry.js';
import type { OpenedPipeline } from './opened.js';

/**
 * The follow loop of a pipeline that runs in passes (pg_logs, rds_logs, sql_outbox, django_auditlog): open it
 * once, run a pass, report, wait for the next; after a pass that throws, back off (core/retry.ts), close the
 * pipeline (a connection or a sink may be broken) and open it again for the next try. The signal ends the wait
 * at once; a pass in progress ends with what it read committed. Each job says only what is its own: how a pass
 * is reported, which failures are worth another try, how long to wait between passes.
 *
 * pg_audit_table streams rather than running in passes (NOTIFY, a prefetched next batch): its loop is its own
 * (jobs/table.ts) but takes its backoff and sleep from the same place.
 */
export interface FollowOptions<S> {
  pipeline: string;
  log: Logger;
  signal: AbortSignal;
  meter?: PipelineMeter;
  backoff: Backoff;
  /** Runs a pass; `pass` opens the pipeline when needed (log pipelines of one server take turns: jobs/follow.ts). */
  turn?: <T>(pass: () => Promise<T>) => Promise<T>;
  /** Hand the signal to runOnce (the pass then stops reading early); else a pass runs to its end. */
  passSignal?: boolean;
  /** Reports a pass (its status, counters). */
  passed(summary: S): void | Promise<void>;
  /** Whether a failure is tried again; else the loop ends with it (default: any expected error). */
  retryable?(err: unknown): boolean;
  /** Reports a failure that is tried again in `retryInMs`. */
  retrying(err: Error, retryInMs: number): void;
  /** Waits until the next pass is due (or the signal aborts). */
  wait(signal: AbortSignal): Promise<void>;
}

export async function followPasses<S>(p: OpenedPipeline<S>, o: FollowOptions<S>): Promise<void> {
  let open = false;
  const close = async () => {
    if (!open) return;
    open = false;
    await p.close();
  };
  const retryable = o.retryable ?? isExpected;
  const turn = o.turn ?? ((pass) => pass());
  let failed = false;
  try {
    while (!o.signal.aborted) {
      try {
        const summary = await turn(async () => {
          if (!open) {
            await p.open();
            open = true;
          }
          return p.runOnce(o.passSignal ? o.signal : undefined);
        });
        o.backoff.reset();
        await o.passed(summary);
      } catch (err) {
        if (!retryable(err)) throw err;
        const e = err as Error;
        const delay = o.backoff.next();
        o.meter?.failed(err);
        o.meter?.retrying();
        o.log.warn('Pipeline run failed; retrying.', { pipeline: o.pipeline, reason: e.message, retryInMs: delay });
        o.retrying(e, delay);
        // A connection or a sink may be broken: the pipeline is opened again for the next try.
        await close().catch((c: unknown) => {
          if (!isExpected(c)) throw c;
          o.log.warn('A pipeline could not be closed after its run failed; it is opened anew.', { pipeline: o.pipeline, reason: c.message });
        });
        await sleep(delay, o.signal);
        continue;
      }
      await o.wait(o.signal);
    }
  } catch (err) {
    failed = true;
    throw err;
  } finally {
    // After a failure that ends the loop, that failure is what the caller hears of, not a second one.
    await close().catch((c: unknown) => {
      if (!failed) throw c;
    });
  }
}
