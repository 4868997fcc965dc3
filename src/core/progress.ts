/**
 * Progress on long work: a bar (bytes, events/s, ETA) redrawn on a terminal, plain log lines otherwise.
 */
import type { Logger } from './log.js';

export interface Progress {
  start(totalBytes: number, label: string): void;
  addBytes(n: number): void;
  setEvents(n: number): void;
  done(): void;
}

export const noProgress: Progress = { start() {}, addBytes() {}, setEvents() {}, done() {} };

function mb(n: number): string {
  return n >= 1e9 ? `${(n / 1e9).toFixed(2)} GB` : `${(n / 1e6).toFixed(1)} MB`;
}

export function createProgress(stream: NodeJS.WriteStream, log: Logger): Progress {
  const tty = Boolean(stream.isTTY) && process.env['CI'] !== 'true';
  let total = 0,
    bytes = 0,
    events = 0,
    started = 0,
    lastDraw = 0,
    label = '';
  const draw = (final = false) => {
    const now = Date.now();
    if (!final && now - lastDraw < (tty ? 100 : 5000)) return;
    lastDraw = now;
    const secs = Math.max((now - started) / 1000, 0.001);
    const rate = events / secs;
    const frac = total > 0 ? Math.min(1, bytes / total) : 1;
    const eta = frac > 0 && frac < 1 ? Math.round(secs / frac - secs) : 0;
    if (tty) {
      const width = 24;
      const filled = Math.round(frac * width);
      const line = `${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${Math.round(frac * 100)}% ${mb(bytes)}/${mb(total)} ${Math.round(rate).toLocaleString('en')} ev/s${eta ? ` ETA ${eta}s` : ''}`;
      stream.write(`\r\x1b[K${line}`);
      if (final) stream.write('\n');
    } else if (!final) {
      log.info('Ingesting.', { pipeline: label, bytes, totalBytes: total, events, eventsPerSecond: Math.round(rate), etaSeconds: eta });
    }
  };
  return {
    start(t, l) {
      total = t;
      bytes = 0;
      events = 0;
      started = Date.now();
      lastDraw = started;
      label = l;
    },
    addBytes(n) {
      bytes += n;
      draw();
    },
    setEvents(n) {
      events = n;
    },
    done() {
      if (tty && total > 0) draw(true);
    },
  };
}
