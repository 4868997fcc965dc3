import { createWriteStream } from 'node:fs';
import type { ColumnRule } from '../../redact/index.js';
import { unlink } from 'node:fs/promises';
import pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import Cursor from 'pg-cursor';
import { ConnectorError } from '../../core/errors.js';
import { describePgError } from '../../core/postgres.js';
import type { Logger } from '../../core/log.js';
import { NOTIFY_CHANNEL } from './install.js';
import { detectLayout, type AuditTableLayout } from './layout.js';
import { ROW_INDEX, type CursorMode, type RawRow, type TableBatch, type TableCursor } from '../../model/table-rows.js';

export type { RawRow, StagedRows, TableBatch, TableCursor } from '../../model/table-rows.js';

/**
 * Reads an audit table in commit-safe order (see layout.ts for the cursor modes), wakes up on NOTIFY,
 * polls as a safety net, and deletes shipped rows when asked — only rows at or below a cursor every sink
 * has committed.
 *
 * Kept as one file (about 490 lines): reading in commit-safe order is one algorithm over its three cursor
 * modes (xid8, txid, lag window), the backlog and the delete of shipped rows.
 */
export interface PgAuditTableOptions {
  url: string;
  table: string;
  server: string;
  cursor: CursorMode | 'auto';
  batchRows: number;
  batchBytes: number;
  lagWindowMs: number;
  deleteChunkRows: number;
  /** Columns of audited tables masked or left out of row_data and changed_fields (redaction.columns). */
  columns?: ColumnRule[];
}

const COL = ROW_INDEX;

/** A PostgreSQL failure as one line; `what` is the action ('reading the audit table'). */
function pgError(err: unknown, what: string, url: string): ConnectorError {
  return describePgError(err, {
    component: 'pg_audit_table',
    url,
    action: what,
    privilegeHint: 'grant SELECT on the audit table (and DELETE for delete_after_ship) to this user',
  });
}

export class PgAuditTableSource {
  private client: pg.Client | null = null;
  private listener: pg.Client | null = null;
  layout!: AuditTableLayout;
  private identity = '';
  private wakeResolvers: (() => void)[] = [];
  private woken = false;
  private closed = false;
  private listenBackoffMs = 0;
  private listenTimer: NodeJS.Timeout | null = null;
  private probeTimer: NodeJS.Timeout | null = null;
  /** True while the NOTIFY listener is connected. */
  listening = false;
  /** Told when the NOTIFY listener connects or is lost. */
  onListening?: (listening: boolean) => void;

  constructor(
    readonly options: PgAuditTableOptions,
    private readonly log: Logger,
  ) {}

  get name(): string {
    return this.layout?.name ?? this.options.table;
  }

  /** Connects, reads the table's layout and identity. Throws a ConnectorError (retryable when it may pass). */
  async connect(): Promise<void> {
    const client = new pg.Client({ connectionString: this.options.url, application_name: 'auditship', keepAlive: true });
    client.on('error', () => {
      /* surfaces on the next query */
    });
    try {
      await client.connect();
      // auditship's own reads must not be audited (a feedback loop) where pgaudit is loaded.
      await client.query(`SET pgaudit.log = 'none'`).catch(() => {});
      // Every read is a short ordered index range (a batch). The planner misjudges row-comparison ranges
      // by orders of magnitude and picks a parallel bitmap scan + sort with JIT: ~70 ms a batch instead of
      // ~15 ms (measured on 10k-row batches). Neither pays off for one batch.
      await client.query('SET jit = off; SET max_parallel_workers_per_gather = 0');
      this.layout = await detectLayout(client, this.options.table, this.options.cursor === 'auto' ? undefined : this.options.cursor, this.options.columns);
      let system = '';
      try {
        system = (await client.query<{ s: string }>('SELECT system_identifier::text AS s FROM pg_control_system()')).rows[0]?.s ?? '';
      } catch {
        system = ''; // not permitted for this role: the table oid alone identifies the table
      }
      this.identity = `${system}:${this.layout.oid}`;
    } catch (err) {
      await client.end().catch(() => {});
      throw pgError(err, 'reading the audit table layout', this.options.url);
    }
    this.client = client;
  }

  /** The cursor to start from: the stored one, unless the table is another one now (restore, re-creation). */
  startCursor(stored: TableCursor | null): { cursor: TableCursor; reset: string | null } {
    const fresh: TableCursor = {
      identity: this.identity,
      mode: this.layout.mode,
      txid: '0',
      eventId: '0',
      ...(this.layout.mode === 'lag_window' ? { gaps: [] } : {}),
    };
    if (!stored) return { cursor: fresh, reset: null };
    if (stored.identity !== this.identity) {
      return {
        cursor: fresh,
        reset:
          'the audit table is not the one the cursor was taken on (restored, recreated or another cluster); reading it again from the start — rows already stored are recognised by their event id',
      };
    }
    if (stored.mode !== this.layout.mode) {
      return {
        cursor: fresh,
        reset: `the cursor mode changed from ${stored.mode} to ${this.layout.mode}; reading the table again from the start — rows already stored are recognised by their event id`,
      };
    }
    return { cursor: stored, reset: null };
  }

  /**
   * Reads the next rows after `cursor` into `stageFile` with COPY when the layout allows (a horizon
   * cursor, JSON that needs no check); falls back to read() when the batch would exceed batchBytes of
   * stage file (very large rows), so memory stays bounded either way.
   */
  async readStaged(cursor: TableCursor, stageFile: string, limit = this.options.batchRows): Promise<TableBatch> {
    const L = this.layout;
    if (L.mode === 'lag_window' || L.validateJson) return this.read(cursor, limit);
    if (!/^\d+$/.test(cursor.txid) || !/^-?\d+$/.test(cursor.eventId))
      throw new ConnectorError('pg_audit_table', 'bad_cursor', `the stored cursor is not valid (${JSON.stringify(cursor)})`, false);
    if (!this.client) await this.connect();
    const cast = L.txCast;
    try {
      // The batch's last (transaction, event id) below the horizon: every row up to it exists for good.
      // Rows that cannot be stored (no table name, an unknown action) take the row path to quarantine.
      const valid = L.rowsValid
        ? 'true'
        : `(${L.columns.table_name}) IS NOT NULL AND upper(${L.columns.action}) IN ('I', 'U', 'D', 'T', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE')`;
      const b = await this.client!.query<{ tx: string; id: string; n: string; lo: string; hi: string; clk: string | null; bad: string }>(
        `SELECT tx::text AS tx, event_id::text AS id, n::text AS n, lo::text AS lo, hi::text AS hi, clk::text AS clk, bad::text AS bad FROM (
           SELECT tx, event_id, count(*) OVER () AS n, min(event_id) OVER () AS lo, max(event_id) OVER () AS hi, max(clk) OVER () AS clk,
                  count(*) FILTER (WHERE NOT ok) OVER () AS bad
           FROM (SELECT ${L.txColumn} AS tx, event_id, (${L.columns.action_tstamp_clk_us})::bigint AS clk, coalesce(${valid}, false) AS ok
                 FROM ${L.qualified} WHERE (${L.txColumn}, event_id) > ($1${cast}, $2::bigint) AND ${L.txColumn} < ${L.horizon}
                 ORDER BY ${L.txColumn}, event_id LIMIT ${Math.max(1, Math.floor(limit))}) AS l) AS s
         ORDER BY s.tx DESC, s.event_id DESC LIMIT 1`,
        [cursor.txid, cursor.eventId],
      );
      const last = b.rows[0];
      if (!last) return { rows: [], bytes: 0, cursor, expiredGaps: 0 };
      const range = `(${L.txColumn}, event_id) > ($$${cursor.txid}$$${cast}, ${BigInt(cursor.eventId)})
                 AND (${L.txColumn}, event_id) <= ($$${last.tx}$$${cast}, ${BigInt(last.id)})`;
      const bad =
        Number(last.bad) === 0
          ? { rows: [] as RawRow[] }
          : await this.client!.query<RawRow>({
              text: `SELECT ${L.selectList} FROM ${L.qualified} WHERE ${range} AND NOT coalesce(${valid}, false)`,
              rowMode: 'array',
            });
      const copy = this.client!.query(
        copyTo(
          `COPY (SELECT ${L.selectList} FROM ${L.qualified} WHERE ${range} AND coalesce(${valid}, false)
               ORDER BY ${L.txColumn}, event_id LIMIT ${Number(last.n)})
         TO STDOUT (FORMAT csv, DELIMITER E'\\x1f', QUOTE E'\\x1d', ESCAPE E'\\x1d', FORCE_QUOTE *)`,
        ),
      );
      const out = createWriteStream(stageFile);
      let bytes = 0;
      let longest = 0;
      let run = 0;
      let tooBig = false;
      await new Promise<void>((resolve, reject) => {
        copy.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
          let from = 0;
          for (let nl = chunk.indexOf(10); nl >= 0; nl = chunk.indexOf(10, from)) {
            run += nl - from + 1;
            if (run > longest) longest = run;
            run = 0;
            from = nl + 1;
          }
          run += chunk.length - from;
          if (bytes > this.options.batchBytes * 4 && !tooBig) {
            tooBig = true;
            copy.destroy();
            out.destroy();
            resolve();
            return;
          }
          if (!out.write(chunk)) {
            copy.pause();
            out.once('drain', () => copy.resume());
          }
        });
        copy.on('error', (e) => {
          if (!tooBig) reject(e);
        });
        copy.on('end', () => out.end());
        out.on('finish', () => resolve());
        out.on('error', reject);
      });
      if (tooBig) {
        // Very large rows: the row path bounds each batch by batch_bytes. (Cancelling a COPY ends the connection.)
        await unlink(stageFile).catch(() => {});
        await this.dropClient();
        // eslint-disable-next-line @typescript-eslint/return-await -- read() handles its own failures; the catch below is the COPY's only
        return this.read(cursor, limit);
      }
      return {
        staged: {
          file: stageFile,
          rows: Number(last.n) - bad.rows.length,
          fileBytes: bytes,
          longestLine: Math.max(longest, run),
          minEventId: last.lo,
          maxEventId: last.hi,
          lastClockUs: last.clk,
        },
        rows: bad.rows,
        bytes,
        cursor: { ...cursor, txid: last.tx, eventId: last.id },
        expiredGaps: 0,
      };
    } catch (err) {
      await unlink(stageFile).catch(() => {});
      await this.dropClient();
      throw pgError(err, 'reading the audit table', this.options.url);
    }
  }

  /** Reads the next rows after `cursor`, at most `limit` (batchRows) rows and about batchBytes bytes. */
  async read(cursor: TableCursor, limit = this.options.batchRows): Promise<TableBatch> {
    if (!this.client) await this.connect();
    const L = this.layout;
    limit = Math.max(1, Math.floor(limit));
    let sql: string;
    let params: unknown[];
    if (L.mode !== 'lag_window') {
      sql = `SELECT ${L.selectList} FROM ${L.qualified}
             WHERE (${L.txColumn}, event_id) > ($1${L.txCast}, $2::bigint) AND ${L.txColumn} < ${L.horizon}
             ORDER BY ${L.txColumn}, event_id LIMIT ${limit}`;
      params = [cursor.txid, cursor.eventId];
    } else {
      sql = `SELECT ${L.selectList} FROM ${L.qualified}
             WHERE event_id > $1::bigint OR event_id = ANY($2::bigint[]) ORDER BY event_id LIMIT ${limit}`;
      params = [cursor.eventId, (cursor.gaps ?? []).map(([id]) => id)];
    }
    const rows: RawRow[] = [];
    let bytes = 0;
    const pgCursor = this.client!.query(new Cursor<RawRow>(sql, params, { rowMode: 'array' }));
    try {
      while (rows.length < limit && bytes < this.options.batchBytes) {
        const chunk = await pgCursor.read(Math.min(1000, limit - rows.length));
        for (const r of chunk) {
          rows.push(r);
          for (const v of r) if (v !== null) bytes += v.length + 1;
        }
        if (chunk.length === 0) break;
      }
    } catch (err) {
      await this.dropClient();
      throw pgError(err, 'reading the audit table', this.options.url);
    } finally {
      await pgCursor.close().catch(() => {});
    }
    return { rows, bytes, ...this.advance(cursor, rows) };
  }

  private advance(cursor: TableCursor, rows: RawRow[]): { cursor: TableCursor; expiredGaps: number } {
    if (rows.length === 0 && this.layout.mode !== 'lag_window') return { cursor, expiredGaps: 0 };
    if (this.layout.mode !== 'lag_window') {
      const last = rows[rows.length - 1]!;
      return { cursor: { ...cursor, txid: last[COL.txid]!, eventId: last[COL.event_id]! }, expiredGaps: 0 };
    }
    // lag_window: the highest id seen, and the ids below it not seen yet.
    const now = Date.now();
    const gaps = new Map((cursor.gaps ?? []).map(([id, since]) => [id, since]));
    let high = BigInt(cursor.eventId);
    for (const r of rows) {
      const id = BigInt(r[COL.event_id]!);
      gaps.delete(String(id));
      if (id > high) {
        // ids between the old high and this one: missing for now (a gap wider than 10,000 is a sequence jump)
        if (id - high <= 10_000n) for (let g = high + 1n; g < id; g++) gaps.set(String(g), now);
        high = id;
      }
    }
    let expired = 0;
    for (const [id, since] of gaps) {
      if (now - since > this.options.lagWindowMs) {
        gaps.delete(id);
        expired++;
      }
    }
    return { cursor: { ...cursor, eventId: String(high), gaps: [...gaps] }, expiredGaps: expired };
  }

  /**
   * Deletes shipped rows: those at or below `cursor` in (transaction, event id) order, in chunks. Only
   * the horizon modes can tell shipped rows apart from rows that committed later; lag_window refuses.
   */
  async deleteShipped(cursor: TableCursor): Promise<number> {
    const L = this.layout;
    if (L.mode === 'lag_window')
      throw new ConnectorError(
        'pg_audit_table',
        'delete_unsafe',
        `delete_after_ship needs a transaction column in ${L.name}; run \`auditship pg install --upgrade ${L.name}\``,
        false,
      );
    if (cursor.eventId === '0' && cursor.txid === '0') return 0;
    if (!this.client) await this.connect();
    const cast = `$1${L.txCast}`;
    let total = 0;
    try {
      for (;;) {
        const r = await this.client!.query(
          `DELETE FROM ${L.qualified} WHERE ctid = ANY(ARRAY(
             SELECT ctid FROM ${L.qualified} WHERE (${L.txColumn}, event_id) <= (${cast}, $2::bigint)
             ORDER BY ${L.txColumn}, event_id LIMIT ${this.options.deleteChunkRows}))`,
          [cursor.txid, cursor.eventId],
        );
        total += r.rowCount ?? 0;
        if ((r.rowCount ?? 0) < this.options.deleteChunkRows) break;
      }
    } catch (err) {
      await this.dropClient();
      throw pgError(err, 'deleting shipped rows', this.options.url);
    }
    return total;
  }

  /**
   * True when rows exist beyond the cursor that the last read could not take yet: their transactions are
   * not below the horizon (another transaction, anywhere in the cluster, is still open). No NOTIFY will
   * come for them again, so the reader looks again soon instead of waiting for the poll interval.
   */
  async heldBack(cursor: TableCursor): Promise<boolean> {
    const L = this.layout;
    if (L.mode === 'lag_window') return (cursor.gaps?.length ?? 0) > 0;
    if (!this.client) await this.connect();
    const cast = `$1${L.txCast}`;
    try {
      const r = await this.client!.query(`SELECT 1 FROM ${L.qualified} WHERE (${L.txColumn}, event_id) > (${cast}, $2::bigint) LIMIT 1`, [
        cursor.txid,
        cursor.eventId,
      ]);
      return (r.rowCount ?? 0) > 0;
    } catch (err) {
      await this.dropClient();
      throw pgError(err, 'reading the audit table', this.options.url);
    }
  }

  /** Rows waiting beyond the cursor (up to `cap`) and the age of the oldest, for status. */
  async backlog(cursor: TableCursor, cap = 100_000): Promise<{ rows: number; oldestMs: number | null }> {
    if (!this.client) await this.connect();
    const L = this.layout;
    const where = L.mode === 'lag_window' ? 'event_id > $1::bigint' : `(${L.txColumn}, event_id) > ($2${L.txCast}, $1::bigint)`;
    const params = L.mode === 'lag_window' ? [cursor.eventId] : [cursor.eventId, cursor.txid];
    try {
      const r = await this.client!.query<{ n: string; oldest: string | null }>(
        `SELECT count(*)::text AS n, (min(us::bigint) / 1000)::text AS oldest
         FROM (SELECT ${L.columns.action_tstamp_clk_us} AS us FROM ${L.qualified} WHERE ${where} LIMIT ${cap}) s`,
        params,
      );
      const oldest = r.rows[0]!.oldest;
      return { rows: Number(r.rows[0]!.n), oldestMs: oldest === null ? null : Number(oldest) };
    } catch (err) {
      await this.dropClient();
      throw pgError(err, 'counting the backlog', this.options.url);
    }
  }

  /** Starts LISTEN on its own connection; reconnects with backoff and wakes the reader after each reconnect. */
  startListening(): void {
    if (this.closed || this.listener) return;
    const listener = new pg.Client({ connectionString: this.options.url, application_name: 'auditship-listen', keepAlive: true });
    this.listener = listener;
    const fail = (err: unknown) => {
      if (this.listener !== listener) return;
      this.listener = null;
      this.listening = false;
      this.onListening?.(false);
      if (this.probeTimer) {
        clearInterval(this.probeTimer);
        this.probeTimer = null;
      }
      listener.end().catch(() => {});
      if (this.closed) return;
      this.listenBackoffMs = Math.min(30_000, this.listenBackoffMs ? this.listenBackoffMs * 2 : 500);
      const delay = this.listenBackoffMs * (0.5 + Math.random() / 2);
      this.log.warn('Lost the NOTIFY connection; reconnecting (polling meanwhile).', {
        table: this.name,
        retryInMs: Math.round(delay),
        reason: (err as Error)?.message?.split('\n')[0],
      });
      this.listenTimer = setTimeout(() => {
        this.listenTimer = null;
        this.startListening();
      }, delay);
    };
    listener.on('error', fail);
    listener.on('end', () => fail(new Error('connection ended')));
    listener.on('notification', () => this.wake());
    listener
      .connect()
      .then(() => listener.query(`LISTEN ${NOTIFY_CHANNEL}`))
      .then(() => {
        if (this.listener !== listener) return;
        this.listening = true;
        this.onListening?.(true);
        this.listenBackoffMs = 0;
        // Whatever committed while we were not listening is read now.
        this.wake();
        // Dead TCP stays silent: probe, and treat a probe that does not return as a lost connection.
        this.probeTimer = setInterval(() => {
          const timer = setTimeout(() => fail(new Error('probe timed out')), 10_000);
          listener.query('SELECT 1').then(
            () => clearTimeout(timer),
            (e) => {
              clearTimeout(timer);
              fail(e);
            },
          );
        }, 15_000);
        this.probeTimer.unref();
      })
      .catch(fail);
  }

  /** Wakes a pending waitForWork(). */
  wake(): void {
    this.woken = true;
    const r = this.wakeResolvers;
    this.wakeResolvers = [];
    for (const f of r) f();
  }

  /** Resolves on a notification, after `timeoutMs`, or on abort. */
  waitForWork(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    if (this.woken) {
      this.woken = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(t);
        signal?.removeEventListener('abort', done);
        this.woken = false;
        resolve();
      };
      const t = setTimeout(done, timeoutMs);
      signal?.addEventListener('abort', done, { once: true });
      this.wakeResolvers.push(done);
    });
  }

  private async dropClient(): Promise<void> {
    const c = this.client;
    this.client = null;
    if (c) await c.end().catch(() => {});
  }

  /** Ends both connections; connect() and startListening() may follow. */
  async disconnect(): Promise<void> {
    if (this.listenTimer) {
      clearTimeout(this.listenTimer);
      this.listenTimer = null;
    }
    if (this.probeTimer) {
      clearInterval(this.probeTimer);
      this.probeTimer = null;
    }
    const l = this.listener;
    this.listener = null;
    this.listening = false;
    if (l) await l.end().catch(() => {});
    await this.dropClient();
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.disconnect();
    this.wake();
  }
}
