import { readFileSync } from 'node:fs';
import { ConnectorError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { PipelineMeter } from '../core/meter.js';
import { Registry, type Counter, type CounterChild, type Histogram, type HistogramChild } from '../core/metrics.js';
import type { MetricsSnapshot, PipelineMetricsSnapshot, PipelineStatus } from '../state/daemon-status.js';

/**
 * The metrics of the `run --follow` daemon: per pipeline what it read, stored, skipped, quarantined and
 * dead-lettered, its batches, commits, retries and errors by kind, its lag and checkpoint age, how long each
 * sink takes to write and to commit; and the process's memory and CPU. Served as Prometheus text at
 * `/metrics` (the UI's TCP listener, and `metrics.listen` / `--metrics`), and written into the status file as
 * a snapshot (`auditship status --json` prints it).
 *
 * Labels hold bounded sets only: the pipeline's name (from the config), the source kind, the sink kind, an
 * error's code and a pipeline state — never statement text, parameters, row data, paths, URLs or secrets.
 * Pipelines call their meter per batch and per commit (core/meter.ts), never per event.
 */

/** Sink kinds a label may hold; anything else is 'other'. */
const SINK_KINDS = new Set(['duckdb', 'elasticsearch', 'archive']);
/** States a pipeline reports (TableStatus, OutboxStatus, the log pipelines of follow.ts). */
export const PIPELINE_STATES = ['starting', 'catching_up', 'shipping', 'following', 'waiting_for_lock', 'retrying', 'stopped', 'failed'] as const;
/** Seconds: from a millisecond DuckDB append to a slow bulk request or S3 upload. */
export const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

const sinkKind = (kind: string) => (SINK_KINDS.has(kind) ? kind : 'other');
/** A count to add: a metrics slip (a negative or NaN count) must never fail a pipeline. */
const count = (n: number) => (n > 0 ? n : 0);

/** An error's kind for a label: its ConnectorError code (a fixed snake_case word), else 'other'. */
export function errorKind(err: unknown): string {
  const code = err instanceof ConnectorError ? err.code : undefined;
  return code !== undefined && /^[a-z][a-z0-9_]{0,47}$/.test(code) ? code : 'other';
}

interface Families {
  read: Counter;
  stored: Counter;
  duplicates: Counter;
  quarantined: Counter;
  deadLetters: Counter;
  bytes: Counter;
  batches: Counter;
  commits: Counter;
  retries: Counter;
  errors: Counter;
  write: Histogram;
  commit: Histogram;
}

/** One pipeline's children of every family: what its meter updates. */
class PipelineMetrics implements PipelineMeter {
  readonly labels: { pipeline: string; source: string };
  readonly readC: CounterChild;
  readonly storedC: CounterChild;
  readonly duplicatesC: CounterChild;
  readonly quarantinedC: CounterChild;
  readonly bytesC: CounterChild;
  readonly batchesC: CounterChild;
  readonly commitsC: CounterChild;
  readonly retriesC: CounterChild;
  readonly writes = new Map<string, HistogramChild>();
  readonly commitTimes = new Map<string, HistogramChild>();
  readonly deadLetters = new Map<string, CounterChild>();
  readonly errors = new Map<string, CounterChild>();
  lastEventMs: number | null = null;
  lastCommitMs: number | null = null;
  state = 'starting';
  backlog: number | null = null;

  constructor(
    readonly name: string,
    source: string,
    private readonly f: Families,
  ) {
    this.labels = { pipeline: name, source };
    this.readC = f.read.labels(this.labels);
    this.storedC = f.stored.labels(this.labels);
    this.duplicatesC = f.duplicates.labels(this.labels);
    this.quarantinedC = f.quarantined.labels(this.labels);
    this.bytesC = f.bytes.labels(this.labels);
    this.batchesC = f.batches.labels(this.labels);
    this.commitsC = f.commits.labels(this.labels);
    this.retriesC = f.retries.labels(this.labels);
  }

  private byKind<C>(map: Map<string, C>, key: string, make: () => C): C {
    let c = map.get(key);
    if (c === undefined) {
      c = make();
      map.set(key, c);
    }
    return c;
  }

  read(records: number, bytes: number): void {
    this.batchesC.inc();
    this.readC.inc(count(records));
    this.bytesC.inc(count(bytes));
  }

  write(sink: string, seconds: number): void {
    const k = sinkKind(sink);
    this.byKind(this.writes, k, () => this.f.write.labels({ ...this.labels, sink: k })).observe(seconds);
  }

  commitTime(sink: string, seconds: number): void {
    const k = sinkKind(sink);
    this.byKind(this.commitTimes, k, () => this.f.commit.labels({ ...this.labels, sink: k })).observe(seconds);
  }

  committed(c: { stored: number; duplicates: number; quarantined: number; lastEventMs: number | null }): void {
    this.commitsC.inc();
    this.storedC.inc(count(c.stored));
    this.duplicatesC.inc(count(c.duplicates));
    this.quarantinedC.inc(count(c.quarantined));
    this.lastCommitMs = Date.now();
    if (c.lastEventMs !== null && Number.isFinite(c.lastEventMs) && (this.lastEventMs === null || c.lastEventMs > this.lastEventMs))
      this.lastEventMs = c.lastEventMs;
  }

  deadLettered(sink: string, n: number): void {
    if (!(n > 0)) return;
    const k = sinkKind(sink);
    this.byKind(this.deadLetters, k, () => this.f.deadLetters.labels({ ...this.labels, sink: k })).inc(n);
  }

  failed(err: unknown): void {
    const kind = errorKind(err);
    this.byKind(this.errors, kind, () => this.f.errors.labels({ ...this.labels, kind })).inc();
  }

  retrying(): void {
    this.retriesC.inc();
  }

  lagSeconds(now: number): number | null {
    return this.lastEventMs === null ? null : Math.max(0, (now - this.lastEventMs) / 1000);
  }

  checkpointAgeSeconds(now: number): number | null {
    return this.lastCommitMs === null ? null : Math.max(0, (now - this.lastCommitMs) / 1000);
  }

  snapshot(now: number): PipelineMetricsSnapshot {
    const times = (m: Map<string, HistogramChild>) => Object.fromEntries([...m].map(([k, h]) => [k, { count: h.count, sum: Math.round(h.sum * 1e6) / 1e6 }]));
    const round = (v: number | null) => (v === null ? null : Math.round(v * 1000) / 1000);
    return {
      source: this.labels.source,
      events_read: this.readC.value,
      events_stored: this.storedC.value,
      events_duplicate: this.duplicatesC.value,
      records_quarantined: this.quarantinedC.value,
      dead_letters: Object.fromEntries([...this.deadLetters].map(([k, c]) => [k, c.value])),
      read_bytes: this.bytesC.value,
      batches: this.batchesC.value,
      commits: this.commitsC.value,
      retries: this.retriesC.value,
      errors: Object.fromEntries([...this.errors].map(([k, c]) => [k, c.value])),
      lag_seconds: round(this.lagSeconds(now)),
      checkpoint_age_seconds: round(this.checkpointAgeSeconds(now)),
      last_commit_at: this.lastCommitMs === null ? null : new Date(this.lastCommitMs).toISOString(),
      sink_write_seconds: times(this.writes),
      sink_commit_seconds: times(this.commitTimes),
    };
  }
}

function packageVersion(): string {
  try {
    return String((JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version);
  } catch {
    return 'unknown';
  }
}

export class DaemonMetrics {
  readonly registry = new Registry();
  private readonly pipelines = new Map<string, PipelineMetrics>();
  private servers: { close(): Promise<void> }[] = [];

  constructor(pipelines: readonly { name: string; source: { type: string } }[]) {
    const r = this.registry;
    const base = ['pipeline', 'source'];
    const f: Families = {
      read: r.counter({
        name: 'auditship_events_read_total',
        labelNames: base,
        help: 'Records read from the source (events and records then quarantined), counted per batch as read; a batch rolled back is counted again when read again.',
      }),
      stored: r.counter({
        name: 'auditship_events_stored_total',
        labelNames: base,
        help: 'Events newly stored by the state sink (the last duckdb sink), counted when committed.',
      }),
      duplicates: r.counter({
        name: 'auditship_events_duplicate_total',
        labelNames: base,
        help: 'Events the store already held (same identity) and skipped, counted when committed.',
      }),
      quarantined: r.counter({
        name: 'auditship_records_quarantined_total',
        labelNames: base,
        help: 'Records that could not be parsed or converted, kept in the quarantine table, counted when committed.',
      }),
      deadLetters: r.counter({
        name: 'auditship_dead_letters_total',
        labelNames: [...base, 'sink'],
        help: 'Records a sink refused for good: elasticsearch (es_dead_letters), archive (events Parquet could not take, under pgaudit-rejects/).',
      }),
      bytes: r.counter({
        name: 'auditship_read_bytes_total',
        labelNames: base,
        help: 'Bytes of source content read (log content; staged row text of an audit table; not counted for outbox tables).',
      }),
      batches: r.counter({ name: 'auditship_batches_total', labelNames: base, help: 'Batches read from the source and written to the sinks.' }),
      commits: r.counter({
        name: 'auditship_commits_total',
        labelNames: base,
        help: 'Commit points made durable: the events and the checkpoint in one transaction.',
      }),
      retries: r.counter({
        name: 'auditship_retries_total',
        labelNames: base,
        help: 'Times the pipeline tried again after a failure (a failed run, file or connection), with backoff.',
      }),
      errors: r.counter({
        name: 'auditship_errors_total',
        labelNames: [...base, 'kind'],
        help: 'Failures by kind: the error code (e.g. unreachable, db_locked, file_unreadable), else other.',
      }),
      write: r.histogram({
        name: 'auditship_sink_write_duration_seconds',
        labelNames: [...base, 'sink'],
        buckets: DURATION_BUCKETS,
        help: 'Time a sink took to write one batch.',
      }),
      commit: r.histogram({
        name: 'auditship_sink_commit_duration_seconds',
        labelNames: [...base, 'sink'],
        buckets: DURATION_BUCKETS,
        help: 'Time a sink took to make its writes durable at a commit point.',
      }),
    };
    const lag = r.gauge({
      name: 'auditship_lag_seconds',
      labelNames: base,
      help: 'Now minus the latest event time committed (grows while no new event arrives); absent before the first commit of this process.',
    });
    const age = r.gauge({ name: 'auditship_checkpoint_age_seconds', labelNames: base, help: 'Now minus the last commit of this process; absent before it.' });
    const backlog = r.gauge({
      name: 'auditship_backlog_records',
      labelNames: base,
      help: 'Records waiting at the source when last counted, at most 100,000 (pg_audit_table: rows beyond the cursor; sql_outbox, django_auditlog: unsent rows).',
    });
    const state = r.gauge({
      name: 'auditship_pipeline_state',
      labelNames: [...base, 'state'],
      help: `1 for the pipeline's current state, 0 for the others (${PIPELINE_STATES.join(', ')}).`,
    });
    const rss = r.gauge({ name: 'process_resident_memory_bytes', help: 'Resident memory size in bytes (DuckDB included).' });
    const cpu = r.counter({ name: 'process_cpu_seconds_total', help: 'Total user and system CPU time spent in seconds.' });
    const start = r.gauge({ name: 'process_start_time_seconds', help: 'Start time of the process since unix epoch in seconds.' });
    const heapUsed = r.gauge({ name: 'nodejs_heap_size_used_bytes', help: 'V8 heap in use, in bytes.' });
    const heapTotal = r.gauge({ name: 'nodejs_heap_size_total_bytes', help: 'V8 heap allocated, in bytes.' });
    const external = r.gauge({ name: 'nodejs_external_memory_bytes', help: 'Memory of C++ objects bound to JavaScript objects (buffers), in bytes.' });
    r.gauge({ name: 'auditship_build_info', labelNames: ['version'], help: 'Always 1; the version of auditship in a label.' })
      .labels({ version: packageVersion() })
      .set(1);
    start.labels().set(Math.round(performance.timeOrigin) / 1000);

    for (const p of pipelines) this.pipelines.set(p.name, new PipelineMetrics(p.name, p.source.type, f));
    r.onCollect(() => {
      const now = Date.now();
      lag.clear();
      age.clear();
      backlog.clear();
      for (const p of this.pipelines.values()) {
        const l = p.lagSeconds(now);
        if (l !== null) lag.labels(p.labels).set(l);
        const a = p.checkpointAgeSeconds(now);
        if (a !== null) age.labels(p.labels).set(a);
        if (p.backlog !== null) backlog.labels(p.labels).set(p.backlog);
        for (const s of PIPELINE_STATES) state.labels({ ...p.labels, state: s }).set(p.state === s ? 1 : 0);
      }
      const mem = process.memoryUsage();
      rss.labels().set(mem.rss);
      heapUsed.labels().set(mem.heapUsed);
      heapTotal.labels().set(mem.heapTotal);
      external.labels().set(mem.external);
      const c = process.cpuUsage();
      cpu.labels().set((c.user + c.system) / 1e6);
    });
  }

  /** The meter of a pipeline the daemon runs. */
  meter(pipeline: string): PipelineMeter {
    const m = this.pipelines.get(pipeline);
    if (!m) throw new Error(`no metrics for pipeline ${pipeline}`);
    return m;
  }

  /** A pipeline's status update (follow.ts): its state and backlog. */
  status(s: PipelineStatus): void {
    const m = this.pipelines.get(s.pipeline);
    if (!m) return;
    m.state = s.state;
    const backlog = s['backlogRows'] ?? s['unsent'];
    if (typeof backlog === 'number') m.backlog = backlog;
  }

  /** The Prometheus text of every metric. */
  render(): string {
    return this.registry.render();
  }

  /** The numbers of these pipelines (default all) and of the process, for the status file. */
  snapshot(pipelines?: readonly string[]): MetricsSnapshot {
    const now = Date.now();
    const mem = process.memoryUsage();
    const names = pipelines ?? [...this.pipelines.keys()];
    return {
      at: new Date(now).toISOString(),
      process: { resident_memory_bytes: mem.rss, heap_used_bytes: mem.heapUsed, heap_total_bytes: mem.heapTotal },
      pipelines: Object.fromEntries(names.filter((n) => this.pipelines.has(n)).map((n) => [n, this.pipelines.get(n)!.snapshot(now)])),
    };
  }

  /** Serves `/metrics` on this address until close(). */
  async listen(address: { host: string; port: number }, log: Logger): Promise<string> {
    const { startMetricsServer } = await import('../ui/metrics-server.js');
    const server = await startMetricsServer({ ...address, render: () => this.render(), log });
    this.servers.push(server);
    log.info('Serving metrics.', { url: `${server.url}metrics` });
    return server.url;
  }

  async close(): Promise<void> {
    for (const s of this.servers.splice(0)) await s.close().catch(() => {});
  }
}
