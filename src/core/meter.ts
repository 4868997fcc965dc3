/**
 * What a pipeline reports to the metrics of the `run --follow` daemon (jobs/daemon-metrics.ts). Calls come per
 * batch and per commit, never per event; a run without a daemon passes none. Only counts, durations, kinds
 * and times: never an event's content.
 */
export interface PipelineMeter {
  /** A batch read from the source: the records in it (events and those quarantined), bytes of source content (0 when unknown). */
  read(records: number, bytes: number): void;
  /** A sink (its kind: duckdb, elasticsearch, archive) took `seconds` to write one batch. */
  write(sink: string, seconds: number): void;
  /** A sink took `seconds` to make its writes durable at a commit point. */
  commitTime(sink: string, seconds: number): void;
  /** A commit point is durable: what it stored, and the latest event time it holds (epoch ms; null when unknown). */
  committed(c: { stored: number; duplicates: number; quarantined: number; lastEventMs: number | null }): void;
  /** A sink refused `n` records for good (elasticsearch dead letters, archive Parquet rejects). */
  deadLettered(sink: string, n: number): void;
  /** A failure: a source file or a run (its kind: the ConnectorError code, else 'other'). */
  failed(err: unknown): void;
  /** The pipeline tries again after a failure. */
  retrying(): void;
}
