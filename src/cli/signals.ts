/**
 * Ctrl-C and SIGTERM during a run that ends by itself (ingest, run without --follow): the first signal stops
 * reading — what was read is written and committed, and the command says so; a second one ends the process at
 * once (nothing is lost either way: every commit is atomic with its checkpoint). Exit 130 (SIGINT) or 143
 * (SIGTERM), as a shell reports a process a signal ended.
 */
import { ExitError } from '../core/errors.js';

export interface Interruption {
  signal: AbortSignal;
  /** The signal received, if any. */
  readonly received: NodeJS.Signals | null;
  /** Throws the exit (after the command printed its summary) when a signal was received. */
  exitIfInterrupted(what: string): void;
  dispose(): void;
}

const CODES: Partial<Record<NodeJS.Signals, number>> = { SIGINT: 130, SIGTERM: 143 };

export function onInterrupt(): Interruption {
  const controller = new AbortController();
  let received: NodeJS.Signals | null = null;
  const handler = (sig: NodeJS.Signals) => {
    if (received) process.exit(CODES[sig] ?? 1); // a second signal: now
    received = sig;
    process.stderr.write(`auditship: ${sig}: finishing the batches already read and committing them (again to stop at once)\n`);
    controller.abort();
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return {
    signal: controller.signal,
    get received() {
      return received;
    },
    exitIfInterrupted(what: string) {
      if (!received) return;
      throw new ExitError(CODES[received] ?? 1, `stopped by ${received}: ${what}; the same command continues from there`);
    },
    dispose() {
      process.off('SIGINT', handler);
      process.off('SIGTERM', handler);
    },
  };
}
