/**
 * Waiting between tries, one way for every pipeline: an exponential backoff (doubling from `initialMs` up to
 * `maxMs`, optionally with "equal jitter": a random half of it is taken off, so that pipelines that failed
 * together do not retry together) and a sleep that an AbortSignal ends at once (a daemon that is told to
 * stop never waits out a backoff).
 */
export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
  /** Take a random part of up to half of each delay off (default true). */
  jitter?: boolean;
}

export class Backoff {
  private failures = 0;

  constructor(private readonly policy: BackoffPolicy) {}

  /** Tries that failed in a row. */
  get attempts(): number {
    return this.failures;
  }

  /** The delay before the next try after one more failure. */
  next(): number {
    const { initialMs, maxMs, jitter = true } = this.policy;
    const base = Math.min(maxMs, initialMs * 2 ** Math.min(this.failures, 30));
    this.failures++;
    return jitter ? Math.round(base * (0.5 + Math.random() / 2)) : base;
  }

  /** A try succeeded: the next failure starts from initialMs again. */
  reset(): void {
    this.failures = 0;
  }
}

/** Resolves after `ms`, or as soon as the signal aborts (never rejects). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) {
      resolve();
      return;
    }
    const done = () => {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
