import type { PipelineConfig } from '../config/load.js';
import { Backoff, sleep } from '../core/retry.js';
import type { LogWatch } from '../sources/pg-logs/watch.js';
import type { FollowContext } from './job.js';
import type { OpenedPipeline } from './opened.js';
import { followPasses } from './runner.js';
import type { RunSummary } from './summary.js';

/** After fs.watch reports a change in a log directory, wait this long for the writes around it (one pass for a burst). */
const WATCH_SETTLE_MS = 200;

/**
 * A pg_logs or rds_logs pipeline in follow mode: opened once and kept open; one pass every poll_interval_ms; a
 * failing pass is retried, the pipeline closed and opened again first (jobs/runner.ts), after 2, 4, 8 …
 * poll intervals (at most 60 s). pg_logs: after a pass that found no file changed (`unchanged`), the next one
 * comes as soon as fs.watch reports a change in the log paths (poll_interval_ms at the latest); after any other
 * pass, poll_interval_ms later, as ever (so a server that keeps writing gets no more passes, commits or archive
 * objects than before).
 */
export async function followLogs(
  p: PipelineConfig,
  pipeline: OpenedPipeline<RunSummary>,
  ctx: FollowContext,
  interval: number,
  watch: { watch: LogWatch; unchanged: () => boolean } | null,
): Promise<void> {
  let events = 0;
  let stored = 0;
  let quiet = false;
  const status = { pipeline: p.name, kind: p.source.type };
  try {
    await followPasses(pipeline, {
      pipeline: p.name,
      log: ctx.log,
      signal: ctx.signal,
      meter: ctx.meter,
      backoff: new Backoff({ initialMs: 2 * interval, maxMs: Math.min(60_000, 64 * interval), jitter: false }),
      turn: (pass) => {
        quiet = false;
        watch?.watch.refresh();
        watch?.watch.clear();
        return ctx.turn(pass);
      },
      passed: (s) => {
        events += s.events;
        stored += s.stored;
        quiet = watch?.unchanged() === true;
        // Files that failed are read again by the next pass: the pipeline is retrying them.
        if (!s.ok) ctx.meter.retrying();
        ctx.set({
          ...status,
          state: s.ok ? 'following' : 'retrying',
          events,
          stored,
          lastRunAt: new Date().toISOString(),
          filesRead: s.filesRead,
          ...(s.ok ? {} : { error: s.errors[0]?.message }),
        });
      },
      retrying: (err) => ctx.set({ ...status, state: 'retrying', events, stored, error: err.message }),
      wait: (signal) => (watch && quiet ? watch.watch.wait(interval, WATCH_SETTLE_MS, signal) : sleep(interval, signal)),
    });
  } finally {
    watch?.watch.close();
  }
}
