/** What one run of a pipeline of log files (pg_logs, rds_logs) did: printed by `ingest`/`run`, returned by --json. */
export interface RunSummary {
  pipeline: string;
  server: string;
  db: string;
  filesRead: number;
  filesSkipped: number;
  events: number;
  stored: number;
  duplicates: number;
  quarantined: number;
  bytes: number;
  durationMs: number;
  /** Files passed over, and why (at most 50; filesSkipped counts them all). */
  skipped?: { path: string; reason: string }[];
  /** Files read to their end before and unchanged since. */
  unchanged?: number;
  errors: { file: string; message: string }[];
  /**
   * Per search sink: event documents created, already there (409), dead-lettered, sent again; correlated:
   * sessions, logon failures and statement outcomes delivered.
   */
  search?: { url: string; created: number; duplicates: number; correlated?: number; deadLettered: number; retried: number }[];
  /** Per archive sink: objects and bytes written this run. */
  archives?: ArchiveSummary[];
  /** A signal stopped the run: what was read is committed, the rest is read by the next run. */
  interrupted?: boolean;
  /** Files left for the next run: the run stopped starting new ones (a Lambda's time was running out). */
  remaining?: number;
  /**
   * Damaged compressed files read this run (truncated, corrupt, empty): their records before the damage are
   * stored, the damage is quarantined. Not a failure: the run goes on, and the next run does not read them again.
   */
  damaged?: { file: string; reason: string }[];
  ok: boolean;
}

/** Per archive sink: objects and bytes written this run. */
export interface ArchiveSummary {
  archive: string;
  form: string;
  objects: number;
  bytes: number;
  files?: number;
  unchanged?: number;
  failed?: number;
}

/** What one run of a pg_audit_table pipeline did. */
export interface TableRunSummary {
  pipeline: string;
  table: string;
  db: string;
  events: number;
  stored: number;
  duplicates: number;
  quarantined: number;
  deleted: number;
  durationMs: number;
  errors: { file: string; message: string }[];
  /** Per search sink: documents created, already there (409), dead-lettered, sent again. */
  search?: { url: string; created: number; duplicates: number; deadLettered: number; retried: number }[];
  ok: boolean;
}

/** What one run of a sql_outbox or django_auditlog pipeline did. */
export interface OutboxRunSummary {
  pipeline: string;
  table: string;
  db: string;
  /** Rows read and handled (shipped, recognised as already stored, or newly quarantined). */
  events: number;
  stored: number;
  duplicates: number;
  quarantined: number;
  /** Rows quarantined earlier and skipped again (they stay unsent at the source). */
  skipped: number;
  marked: number;
  purged: number;
  /** True when another shipper held the table's named lock and this run shipped nothing. */
  locked: boolean;
  /** Per search sink: documents created, already there (409), dead-lettered, sent again. */
  search?: { url: string; created: number; duplicates: number; deadLettered: number; retried: number }[];
  durationMs: number;
  errors: { file: string; message: string }[];
  ok: boolean;
}

/** What one run of any pipeline did: `run` prints it, `run --json` returns it. */
export type PipelineSummary = RunSummary | TableRunSummary | OutboxRunSummary;
