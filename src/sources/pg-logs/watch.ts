import { statSync, watch, type FSWatcher } from 'node:fs';
import { basename, resolve } from 'node:path';
import type { Logger } from '../../core/log.js';
import { DEFAULT_FILE_GLOB } from './files.js';
import { globToRegExp } from './glob.js';

/**
 * Hints that a pg_logs source's paths changed, for the follow daemon: fs.watch (inotify on Linux) on each
 * directory (events of files the file glob matches) or log file given. A hint only makes the next pass come
 * sooner: events can be lost or coalesced, a watch can fail (inotify limits) or outlive its directory, so the
 * daemon still looks every poll_interval_ms, and a pass finds what changed by listing, never by the events.
 */
export class LogWatch {
  private readonly watches = new Map<string, { watcher: FSWatcher | null; ino: number }>();
  private readonly pattern: RegExp;
  /** Paths whose watch could not be set up, told once each (until it works). */
  private readonly failed = new Set<string>();
  private changed = false;
  private wake: (() => void) | null = null;
  private closed = false;

  constructor(
    private readonly paths: string[],
    fileGlob: string | undefined,
    private readonly log: Logger,
    private readonly pipeline: string,
  ) {
    this.pattern = globToRegExp(fileGlob ?? DEFAULT_FILE_GLOB);
  }

  /** Watches every path not watched yet, or whose watch ended or that is another directory or file now. */
  refresh(): void {
    if (this.closed) return;
    for (const p of this.paths.map((x) => resolve(x))) {
      let ino: number;
      let dir: boolean;
      try {
        const st = statSync(p);
        ino = st.ino;
        dir = st.isDirectory();
      } catch {
        this.unwatch(p);
        continue; // the next pass says what is wrong with it
      }
      const cur = this.watches.get(p);
      if (cur && cur.watcher && cur.ino === ino) continue;
      this.unwatch(p);
      try {
        const watcher = watch(p, { persistent: true }, (_event, name) => {
          // A directory's events name the file: those the glob does not take (stderr logs, …) are not news.
          if (dir && name !== null && !this.pattern.test(basename(String(name)))) return;
          this.notify();
        });
        watcher.on('error', () => {
          const w = this.watches.get(p);
          if (w && w.watcher === watcher) w.watcher = null;
          watcher.close();
          this.notify(); // whatever happened to it is for a pass to find
        });
        this.watches.set(p, { watcher, ino });
        this.failed.delete(p);
      } catch (err) {
        this.watches.set(p, { watcher: null, ino });
        if (!this.failed.has(p)) {
          this.failed.add(p);
          this.log.info('Cannot watch a log path for changes; it is looked at every poll_interval_ms.', {
            pipeline: this.pipeline,
            path: p,
            reason: (err as Error).message,
          });
        }
      }
    }
  }

  private unwatch(p: string): void {
    const cur = this.watches.get(p);
    cur?.watcher?.close();
    this.watches.delete(p);
  }

  private notify(): void {
    this.changed = true;
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  /** Forgets the changes reported so far: called as a pass begins (it sees them; what comes after is news). */
  clear(): void {
    this.changed = false;
  }

  /**
   * Resolves when a change is reported (`settleMs` after it, so that a burst of writes makes one pass), when
   * `ms` have passed, or when the signal aborts. A change reported since clear() counts at once.
   */
  async wait(ms: number, settleMs: number, signal: AbortSignal): Promise<void> {
    this.refresh();
    if (signal.aborted) return;
    await new Promise<void>((done) => {
      let settle: NodeJS.Timeout | null = null;
      const finish = () => {
        clearTimeout(timer);
        if (settle) clearTimeout(settle);
        signal.removeEventListener('abort', finish);
        this.wake = null;
        done();
      };
      const timer = setTimeout(finish, ms);
      signal.addEventListener('abort', finish, { once: true });
      const onChange = () => {
        settle = setTimeout(finish, Math.min(settleMs, ms));
      };
      if (this.changed) onChange();
      else this.wake = onChange;
    });
  }

  close(): void {
    this.closed = true;
    for (const p of [...this.watches.keys()]) this.unwatch(p);
    this.wake = null;
  }
}
