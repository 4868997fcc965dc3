import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

/**
 * The status file of the `run --follow` daemon, `<db>.status.json` next to each DuckDB file it holds:
 * rewritten (temp + rename) as its pipelines change state. Other commands read it when they find the
 * database locked: `status` shows it, `check` names the daemon, `ui` and `report` reach its UI socket.
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
  /** Where this daemon serves the UI of the database: its unix socket, and a TCP address when asked for. */
  ui?: { socket: string; url?: string };
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
