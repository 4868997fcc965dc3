/**
 * A pipeline opened once and run many times: the follow daemon keeps it open between polls, a one-shot
 * `run` or `ingest` opens it, runs it once and closes it (runOpenedOnce).
 *
 * open() does what a pipeline needs before it can ship and what may touch the user's systems: it connects and
 * checks its sinks (the DuckDB schema, the Elasticsearch cluster, index templates and privileges, an archive's
 * bucket, the reconcile and manifest publish of what an earlier run left). runOnce() is one pass: read what
 * is new, write it to every sink, commit. close() lets go of everything open() took. After a pass that threw,
 * the caller closes the pipeline and opens it again before the next try (a connection or a sink may be
 * broken); a pass that only reported per-file errors in its summary leaves the pipeline open.
 */
export interface OpenedPipeline<S> {
  open(): Promise<void>;
  /** One pass; `signal` stops reading (what was read is committed, the summary says so). */
  runOnce(signal?: AbortSignal): Promise<S>;
  close(): Promise<void>;
}

/** open → runOnce → close: what a one-shot command does. */
export async function runOpenedOnce<S>(p: OpenedPipeline<S>, signal?: AbortSignal): Promise<S> {
  await p.open();
  try {
    return await p.runOnce(signal);
  } finally {
    await p.close();
  }
}
