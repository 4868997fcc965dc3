import { sqlString } from '../duckdb/sql.js';
import { batchDigest, chainDigest, dimensionDigests, EMPTY_DIGEST, encodedRows, removedRows, rowsDigests } from './ledger.js';
import { ENCODING, appEventsStream, pgauditStream, rowChangesStream, streamOf, type Stream } from './streams.js';
import type { AnchorRecord } from './anchor.js';

/**
 * `auditship verify`: recomputes every stream's chain from the stored rows. A stream fails at its first batch
 * whose rows no longer hash to the entry's digest (a row changed, deleted or added), whose entry does not
 * follow from the one before (the ledger edited), or that the ledger does not list (rows forged with a
 * batch number, or the ledger cut short). Anchors (heads written outside the store) catch what the store
 * alone cannot: rows and ledger rewritten together, or a ledger cut short together with its rows.
 */
export interface StreamVerdict {
  stream: string;
  /** Entries in the ledger. */
  entries: number;
  /** Rows stored, and rows accounted as removed by a later batch (`ingest --force`). */
  rows: number;
  head: { seq: number; digest: string } | null;
  /** Rows of a stream that has no ledger entry at all (a store written before the ledger, not written since). */
  unattested: number;
  /** The first problem, naming its batch; null when the stream verifies. */
  problem: string | null;
  batch: number | null;
}

/** Runs one read statement and returns its rows (a DuckDB connection, or the store reader of `ui` and `status`). */
export type Rows = (sql: string) => Promise<unknown[][]>;

export interface VerifyReport {
  ok: boolean;
  streams: StreamVerdict[];
  /** Anchor records checked and the first problem they show. */
  anchors: { records: number; problem: string | null };
}

interface Entry {
  seq: number;
  rows: number;
  removed: number;
  encoding: number;
  batchDigest: string;
  digest: string;
  committedUs: bigint;
}

/** Streams in the store: those the ledger names and those with rows. */
async function streamsOf(q: Rows): Promise<Stream[]> {
  const byName = new Map<string, Stream>();
  const add = (s: Stream | null) => {
    if (s && !byName.has(s.name)) byName.set(s.name, s);
  };
  const tables = new Set((await q(`SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'`)).map((r) => String(r[0])));
  if (tables.has('ledger')) {
    for (const r of await q(`SELECT DISTINCT kind, source, source_table FROM ledger ORDER BY ALL`))
      add(streamOf(String(r[0]), String(r[1]), r[2] === null ? null : String(r[2])));
  }
  if (tables.has('event_rows')) for (const r of await q(`SELECT DISTINCT server FROM event_contexts ORDER BY 1`)) add(pgauditStream(String(r[0])));
  if (tables.has('row_changes'))
    for (const r of await q(`SELECT DISTINCT server, source_table FROM row_changes ORDER BY ALL`)) add(rowChangesStream(String(r[0]), String(r[1])));
  if (tables.has('app_events'))
    for (const r of await q(`SELECT DISTINCT source_name, source_table FROM app_events ORDER BY ALL`)) add(appEventsStream(String(r[0]), String(r[1])));
  return [...byName.values()];
}

/** Rows hashed per verification query, about (batches are grouped up to this many rows). */
const ROWS_PER_QUERY = 250_000;

async function verifyStream(q: Rows, stream: Stream, hasLedger: boolean, onBatch: (rows: number) => void): Promise<StreamVerdict> {
  const verdict: StreamVerdict = { stream: stream.name, entries: 0, rows: 0, head: null, unattested: 0, problem: null, batch: null };
  const fail = (batch: number, problem: string) => {
    if (verdict.batch === null || batch < verdict.batch) {
      verdict.batch = batch;
      verdict.problem = problem;
    }
  };
  const entries: Entry[] = hasLedger
    ? (
        await q(`SELECT seq, rows, removed, encoding, batch_digest, digest, epoch_us(committed_at)
          FROM ledger WHERE stream = ${sqlString(stream.name)} ORDER BY seq`)
      ).map((r) => ({
        seq: Number(r[0]),
        rows: Number(r[1]),
        removed: Number(r[2]),
        encoding: Number(r[3]),
        batchDigest: String(r[4]),
        digest: String(r[5]),
        committedUs: BigInt(String(r[6])),
      }))
    : [];
  verdict.entries = entries.length;
  const stored = new Map<number, number>();
  const removed = hasLedger ? await q(`SELECT seq, count(*) FROM ledger_removed WHERE stream = ${sqlString(stream.name)} GROUP BY 1`) : [];
  for (const r of await q(`SELECT coalesce(e.ledger_seq, 0), count(*) FROM ${stream.from} GROUP BY 1`)) stored.set(Number(r[0]), Number(r[1]));
  for (const [seq, n] of removed) stored.set(Number(seq), (stored.get(Number(seq)) ?? 0) + Number(n));
  verdict.rows = [...stored.values()].reduce((a, b) => a + b, 0);
  if (entries.length === 0) {
    if (stored.size === 1 && stored.has(0)) {
      verdict.unattested = stored.get(0)!;
      return verdict;
    }
    if (stored.size > 0) fail(Math.min(...stored.keys()), `rows carry batch numbers but the ledger has no entry for this stream (the ledger was deleted)`);
    return verdict;
  }
  verdict.head = { seq: entries.at(-1)!.seq, digest: entries.at(-1)!.digest };

  // The chain: consecutive entries, each digest following from the one before.
  let previous = '';
  let expected = entries[0]!.seq === 0 ? 0 : 1;
  for (const e of entries) {
    if (e.seq !== expected) {
      fail(expected, `batch ${expected} is missing from the ledger (entries ${expected - 1} and ${e.seq} are adjacent)`);
      break;
    }
    if (e.encoding !== ENCODING) {
      fail(e.seq, `batch ${e.seq} uses encoding ${e.encoding}, which this build cannot check`);
      break;
    }
    const digest = chainDigest(previous, { stream: stream.name, ...e });
    if (digest !== e.digest) {
      fail(e.seq, `batch ${e.seq}: its entry does not follow from the one before (the ledger was edited)`);
      break;
    }
    previous = e.digest;
    expected++;
  }

  // Rows with a batch number the ledger does not list.
  const listed = new Set(entries.map((e) => e.seq));
  for (const [seq, n] of [...stored].sort((a, b) => a[0] - b[0])) {
    if (listed.has(seq)) continue;
    const head = verdict.head.seq;
    fail(
      seq,
      seq > head
        ? `batch ${seq}: ${n} row(s) after the ledger's last batch ${head} (the ledger was cut short, or rows were forged)`
        : seq === 0
          ? `${n} row(s) without a batch number, which no ledger entry covers (rows were inserted)`
          : `batch ${seq}: ${n} row(s) of a batch the ledger does not list (rows were forged)`,
    );
  }

  // Dimension rows (sessions' contexts, kinds) with a batch number the ledger does not list.
  for (const d of stream.dimensions) {
    for (const r of await q(`SELECT DISTINCT coalesce(d.ledger_seq, 0) FROM ${d.from} ORDER BY 1`)) {
      const seq = Number(r[0]);
      if (!listed.has(seq)) fail(seq, `batch ${seq}: session or kind rows of a batch the ledger does not list (rows were forged)`);
    }
  }

  // Each batch's rows (and the dimension rows it inserted) against its digest, in groups of batches.
  const check = (e: Entry, n: number, digest: string) => {
    if (n !== e.rows) fail(e.seq, `batch ${e.seq}: the ledger lists ${e.rows} row(s), the store holds ${n} (row(s) ${n < e.rows ? 'deleted' : 'added'})`);
    else if (digest !== e.batchDigest) fail(e.seq, `batch ${e.seq}: its rows do not hash to the ledger's digest (a row was changed)`);
  };
  const checkGroup = async (group: Entry[], rowsWhere: string, removedWhere: string, dimWhere: string, seqExpr?: string) => {
    const rows = new Map<number, [number, string]>();
    for (const r of await q(rowsDigests(`${encodedRows(stream, rowsWhere, seqExpr)} UNION ALL ${removedRows(stream, removedWhere)}`)))
      rows.set(Number(r[0]), [Number(r[1]), String(r[2])]);
    const dims = stream.dimensions.map(() => new Map<number, string>());
    for (const [i, d] of stream.dimensions.entries())
      for (const r of await q(dimensionDigests(d, dimWhere, 'coalesce(d.ledger_seq, 0)'))) dims[i]!.set(Number(r[0]), String(r[1]));
    for (const e of group) {
      const [n, digest] = rows.get(e.seq) ?? [0, EMPTY_DIGEST];
      check(
        e,
        n,
        batchDigest(
          digest,
          dims.map((m) => m.get(e.seq) ?? EMPTY_DIGEST),
        ),
      );
    }
  };
  const zero = entries[0]!.seq === 0 ? entries[0]! : null;
  if (zero) {
    await checkGroup([zero], 'e.ledger_seq IS NULL', 'seq = 0', 'coalesce(d.ledger_seq, 0) = 0', '0');
    onBatch(zero.rows);
  }
  const rest = entries.filter((e) => e.seq > 0);
  for (let i = 0; i < rest.length;) {
    let j = i;
    let rows = 0;
    while (j < rest.length && (j === i || rows + rest[j]!.rows <= ROWS_PER_QUERY)) rows += rest[j++]!.rows;
    const lo = rest[i]!.seq;
    const hi = rest[j - 1]!.seq;
    const range = `BETWEEN ${lo} AND ${hi}`;
    await checkGroup(rest.slice(i, j), `e.ledger_seq ${range}`, `seq ${range}`, `d.ledger_seq ${range}`);
    onBatch(rows);
    i = j;
  }
  return verdict;
}

/** Checks anchor records against the ledger: each anchored head must be in the ledger with the same digest. */
async function checkAnchors(q: Rows, anchors: AnchorRecord[], hasLedger: boolean): Promise<string | null> {
  for (const a of anchors) {
    for (const h of a.heads) {
      const r = hasLedger ? (await q(`SELECT digest FROM ledger WHERE stream = ${sqlString(h.stream)} AND seq = ${Number(h.seq)}`))[0] : undefined;
      if (!r) return `anchor of ${a.anchored_at}: ${h.stream} batch ${h.seq} is not in the ledger (the ledger was cut short or replaced)`;
      if (String(r[0]) !== h.digest)
        return `anchor of ${a.anchored_at}: ${h.stream} batch ${h.seq} has another digest in the ledger (rows and ledger were rewritten)`;
    }
  }
  return null;
}

export async function verifyLedger(q: Rows, options: { anchors?: AnchorRecord[]; onProgress?: (rowsDone: number) => void } = {}): Promise<VerifyReport> {
  const hasLedger = Number((await q(`SELECT count(*) FROM information_schema.tables WHERE table_schema = 'main' AND table_name = 'ledger'`))[0]![0]) > 0;
  let done = 0;
  const streams: StreamVerdict[] = [];
  for (const s of await streamsOf(q)) {
    streams.push(
      await verifyStream(q, s, hasLedger, (n) => {
        done += n;
        options.onProgress?.(done);
      }),
    );
  }
  const anchors = { records: options.anchors?.length ?? 0, problem: options.anchors ? await checkAnchors(q, options.anchors, hasLedger) : null };
  return { ok: streams.every((s) => s.problem === null) && anchors.problem === null, streams, anchors };
}
