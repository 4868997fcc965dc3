/**
 * Where an ingest's time goes: named steps with their wall time, printed as one table per run
 * (`auditship ingest --profile`, `npm run bench -- --profile`). Off unless asked for: a disabled profile
 * costs one branch per step.
 *
 * Steps run on lanes that overlap: `parser` (the parser thread: reading and parsing log files), `js` (the
 * main thread: planning, staging batches for DuckDB) and `duckdb` (statements DuckDB runs on its own thread,
 * timed by DuckDB itself where it reports a time).
 * Shares are of the run's wall time, so each lane's rows add up to at most about 100 %; `wait` rows say
 * how long one lane stood idle waiting for the other.
 */
export type Lane = 'parser' | 'js' | 'duckdb' | 'wait';

interface Step {
  lane: Lane;
  ms: number;
  calls: number;
}

export class Profile {
  private readonly steps = new Map<string, Step>();
  private started = 0;
  enabled = false;

  /** Turns the profile on and starts its clock. */
  start(): void {
    this.enabled = true;
    this.steps.clear();
    this.started = performance.now();
  }

  add(name: string, lane: Lane, ms: number): void {
    if (!this.enabled) return;
    const s = this.steps.get(name);
    if (s) {
      s.ms += ms;
      s.calls++;
    } else this.steps.set(name, { lane, ms, calls: 1 });
  }

  /** Times an async step. */
  async time<T>(name: string, lane: Lane, fn: () => Promise<T>): Promise<T> {
    if (!this.enabled) return fn();
    const t0 = performance.now();
    try {
      return await fn();
    } finally {
      this.add(name, lane, performance.now() - t0);
    }
  }

  /** Times a synchronous step. */
  timeSync<T>(name: string, lane: Lane, fn: () => T): T {
    if (!this.enabled) return fn();
    const t0 = performance.now();
    try {
      return fn();
    } finally {
      this.add(name, lane, performance.now() - t0);
    }
  }

  /** The steps so far, with the wall time since start. */
  snapshot(): { wallMs: number; steps: { name: string; lane: Lane; ms: number; calls: number }[] } {
    return {
      wallMs: performance.now() - this.started,
      steps: [...this.steps.entries()].map(([name, s]) => ({ name, ...s })),
    };
  }

  /** The table: one row per step (by lane, then by time), seconds and share of wall time. */
  table(title: string): string {
    const { wallMs, steps } = this.snapshot();
    const order: Lane[] = ['parser', 'js', 'duckdb', 'wait'];
    steps.sort((a, b) => order.indexOf(a.lane) - order.indexOf(b.lane) || b.ms - a.ms);
    const rows = [
      ['lane', 'step', 'calls', 'seconds', 'share'],
      ...steps.map((s) => [s.lane, s.name, String(s.calls), (s.ms / 1000).toFixed(3), `${((100 * s.ms) / wallMs).toFixed(1)} %`]),
    ];
    // Steps named 'group: what' are also summed per group (e.g. every correlation statement).
    const groups = new Map<string, { lane: Lane; ms: number }>();
    for (const s of steps) {
      const colon = s.name.indexOf(': ');
      if (colon < 0) continue;
      const g = groups.get(s.name.slice(0, colon));
      if (g) g.ms += s.ms;
      else groups.set(s.name.slice(0, colon), { lane: s.lane, ms: s.ms });
    }
    for (const [name, g] of groups) rows.push([g.lane, `${name} (all)`, '', (g.ms / 1000).toFixed(3), `${((100 * g.ms) / wallMs).toFixed(1)} %`]);
    for (const lane of order) {
      const ms = steps.filter((s) => s.lane === lane).reduce((n, s) => n + s.ms, 0);
      if (ms > 0) rows.push([lane, '(lane total)', '', (ms / 1000).toFixed(3), `${((100 * ms) / wallMs).toFixed(1)} %`]);
    }
    rows.push(['', 'wall', '', (wallMs / 1000).toFixed(3), '100.0 %']);
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
    const line = (r: string[]) => r.map((c, i) => (i >= 2 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ');
    return [`profile: ${title}`, line(rows[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)].join('\n');
  }
}

/** The process's profile (one ingest at a time is profiled). */
export const profile = new Profile();
