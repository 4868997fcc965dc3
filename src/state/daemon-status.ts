import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

/**
 * The status file of the `run --follow` daemon, `<db>.status.json` next to each DuckDB file it holds:
 * rewritten (temp + rename) as its pipelines change state. Other commands read it when they find the
 * database held: `status` shows its pipelines, `check` names the daemon.
 */
export interface PipelineStatus {
  pipeline: string;
  kind: string;
  state: string;
  [key: string]: unknown;
}

export interface DaemonStatus {
  pid: number;
  startedAt: string;
  updatedAt: string;
  db: string;
  pipelines: PipelineStatus[];
  /** Where this daemon answers other processes' read-only queries (sinks/duckdb/read-service.ts), and serves the UI on TCP when asked for. */
  ui?: { socket: string; url?: string };
  /** The daemon's counters per pipeline of this database, and its memory, when last written (jobs/daemon-metrics.ts). */
  metrics?: MetricsSnapshot;
}

export function statusFilePath(db: string): string {
  return `${resolve(db)}.status.json`;
}

/** The status of the daemon holding `db`, when its file exists and that process is alive; else null. */
export function readDaemonStatus(db: string): DaemonStatus | null {
  try {
    const st = JSON.parse(readFileSync(statusFilePath(db), 'utf8')) as DaemonStatus;
    process.kill(st.pid, 0); // throws when that process is gone
    return st;
  } catch {
    return null;
  }
}

/** A pipeline's numbers as the status file holds them. */
export interface PipelineMetricsSnapshot {
  source: string;
  events_read: number;
  events_stored: number;
  events_duplicate: number;
  records_quarantined: number;
  dead_letters: Record<string, number>;
  read_bytes: number;
  batches: number;
  commits: number;
  retries: number;
  errors: Record<string, number>;
  /** Now − the latest event time committed; null before the first commit with an event time. */
  lag_seconds: number | null;
  /** Now − the last commit of this process; null before it. */
  checkpoint_age_seconds: number | null;
  last_commit_at: string | null;
  sink_write_seconds: Record<string, { count: number; sum: number }>;
  sink_commit_seconds: Record<string, { count: number; sum: number }>;
}

export interface MetricsSnapshot {
  at: string;
  process: { resident_memory_bytes: number; heap_used_bytes: number; heap_total_bytes: number };
  pipelines: Record<string, PipelineMetricsSnapshot>;
}
