/**
 * The read service of a process writing a DuckDB store: DuckDB lets no other process open the file while one
 * writes it, so the writer answers read-only SQL itself — on a connection of its own, which sees committed
 * data only — over a unix socket next to the database (`<db>.read.sock`, mode 0600: only the database's
 * owner may connect). `ui`, `status`, `query` and `report` go there when they find the file held (reader.ts).
 *
 * Protocol: `POST /sql` with `{"sql": "...", "params": [...]}` → 200 `{"columns": [...], "rows": [[...]]}`
 * (DuckDB's JSON forms of the values; with `"exactNumbers": true` integers and decimals as exact-json.ts gives them), 400 `{"error": "..."}` for a statement that fails or is not a read
 * (`"refused": true`: not run at all).
 */
import { createServer, request, type Server } from 'node:http';
import { lstatSync, unlinkSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import type { DuckDBConnection, DuckDBInstance } from '../../duckdb/duckdb.js';
import { readSocketPath } from './lock.js';
import { assertReadOnlySql, ReadOnlySqlError } from '../../query/read-only.js';
import { jsonRows } from './exact-json.js';

export interface SqlResult {
  columns: string[];
  rows: unknown[][];
}

export interface SqlOptions {
  /** Integers and decimals as JSON numbers where a double holds them exactly (exact-json.ts), else DuckDB's JSON forms (BIGINT as a string). */
  exactNumbers?: boolean;
}

/** A statement refused or failed: the caller's mistake, not a transport failure. */
export class SqlError extends Error {
  /** `refused`: not run at all — not a single read statement (assertReadOnlySql); else it failed. */
  constructor(
    message: string,
    readonly refused = false,
  ) {
    super(message);
    this.name = 'SqlError';
  }
}

/** The service could not be reached (the writer finished, or is not serving): look again. */
export class ServiceUnavailable extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ServiceUnavailable';
  }
}

/** DuckDB statement types that only read (StatementType in the C API: SELECT 1, EXPLAIN 4). */
const READ_TYPES = new Set([1, 4]);

/**
 * Runs `sql` if it is one statement that only reads; else throws SqlError naming what was refused. DuckDB's
 * parser decides before anything is prepared (assertReadOnlySql): preparing can act already (EXPORT DATABASE
 * makes its directory), and an EXPLAIN ANALYZE prepares as an EXPLAIN whatever it runs.
 */
export async function runReadOnly(
  conn: DuckDBConnection,
  sql: string,
  params: readonly (string | number | null)[] = [],
  options: SqlOptions = {},
): Promise<SqlResult> {
  try {
    await assertReadOnlySql(conn, sql);
  } catch (err) {
    if (err instanceof ReadOnlySqlError) throw new SqlError(err.message, err.kind === 'refused');
    throw new SqlError((err as Error).message.split('\n')[0]!);
  }
  let extracted;
  try {
    extracted = await conn.extractStatements(sql);
  } catch (err) {
    throw new SqlError((err as Error).message.split('\n')[0]!);
  }
  if (extracted.count !== 1) throw new SqlError(`give one statement (${extracted.count} given)`, true);
  let prepared;
  try {
    prepared = await extracted.prepare(0);
  } catch (err) {
    throw new SqlError((err as Error).message.split('\n')[0]!);
  }
  if (!READ_TYPES.has(prepared.statementType)) throw new SqlError('only reading statements (SELECT, EXPLAIN) are run on the store', true);
  try {
    if (params.length) prepared.bind(params as (string | number | null)[]);
    const result = await prepared.runAndReadAll();
    return { columns: result.columnNames(), rows: options.exactNumbers ? jsonRows(result) : result.getRowsJson() };
  } catch (err) {
    throw new SqlError((err as Error).message.split('\n')[0]!);
  } finally {
    prepared.destroySync();
  }
}

export interface ReadService {
  socket: string;
  close(): Promise<void>;
}

const MAX_REQUEST_BYTES = 1 << 20;

/** Serves read-only SQL on the writer's database; close() waits for the query running, then lets go. */
export async function serveReads(db: { path: string; instance: DuckDBInstance }): Promise<ReadService> {
  const socket = readSocketPath(db.path);
  const conn = await db.instance.connect();
  await conn.run("SET TimeZone = 'UTC'");
  let chain: Promise<unknown> = Promise.resolve();
  let closing = false;
  const server: Server = createServer({ headersTimeout: 10_000, requestTimeout: 600_000 }, (req, res) => {
    const reply = (status: number, body: unknown) => {
      const buf = Buffer.from(JSON.stringify(body), 'utf8');
      // One request per connection: nothing stays open that close() would have to wait for.
      res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': String(buf.length), Connection: 'close' });
      res.end(buf);
    };
    if (req.method !== 'POST' || req.url !== '/sql') {
      reply(404, { error: 'POST /sql only' });
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_REQUEST_BYTES) {
        reply(413, { error: 'request too large' });
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (res.headersSent) return;
      let body: { sql?: unknown; params?: unknown; exactNumbers?: unknown };
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof body;
      } catch {
        reply(400, { error: 'the request is not JSON' });
        return;
      }
      const params = Array.isArray(body.params) ? (body.params as (string | number | null)[]) : [];
      if (typeof body.sql !== 'string') {
        reply(400, { error: 'no sql given' });
        return;
      }
      if (closing) {
        reply(503, { error: 'the writer is finishing' });
        return;
      }
      // One statement at a time on this connection.
      const run = chain.then(() => runReadOnly(conn, body.sql as string, params, { exactNumbers: body.exactNumbers === true }));
      chain = run.catch(() => {});
      run.then(
        (r) => reply(200, r),
        (err: unknown) =>
          reply(err instanceof SqlError ? 400 : 500, {
            error: (err as Error).message.split('\n')[0],
            ...(err instanceof SqlError && err.refused ? { refused: true } : {}),
          }),
      );
    });
  });
  removeStaleSocket(socket);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    // umask 0177: the socket is 0600 from its first instant.
    const old = process.umask(0o177);
    try {
      server.listen(socket, () => {
        server.off('error', reject);
        resolve();
      });
    } finally {
      process.umask(old);
    }
  });
  server.unref();
  return {
    socket,
    close: async () => {
      closing = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      await chain; // the query running is answered (its connection then closes)
      await closed;
      try {
        unlinkSync(socket);
      } catch {
        /* gone */
      }
      conn.closeSync();
    },
  };
}

/** A socket left by a killed writer is removed (only a socket; nothing else at that path is touched). */
function removeStaleSocket(path: string): void {
  try {
    if (lstatSync(path).isSocket()) unlinkSync(path);
  } catch {
    /* none */
  }
}

/** Asks the writer of `db` to run `sql`; ServiceUnavailable when no writer answers there. */
export function remoteSql(db: string, sql: string, params: readonly (string | number | null)[] = [], options: SqlOptions = {}): Promise<SqlResult> {
  const socketPath = readSocketPath(db);
  const payload = Buffer.from(JSON.stringify({ sql, params, ...(options.exactNumbers ? { exactNumbers: true } : {}) }), 'utf8');
  return new Promise((resolve, reject) => {
    const req = request(
      {
        socketPath,
        agent: false,
        path: '/sql',
        method: 'POST',
        headers: { host: 'localhost', 'content-type': 'application/json', 'content-length': String(payload.length) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (err) => reject(new ServiceUnavailable(err.message, { cause: err })));
        res.on('end', () => {
          let body: { error?: string; refused?: boolean } & Partial<SqlResult>;
          try {
            body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof body;
          } catch {
            reject(new ServiceUnavailable(`the writer answered HTTP ${res.statusCode} with something that is not JSON`));
            return;
          }
          if (res.statusCode === 200) resolve({ columns: body.columns ?? [], rows: body.rows ?? [] });
          else if (res.statusCode === 400) reject(new SqlError(body.error ?? 'refused', body.refused === true));
          else if (res.statusCode === 503) reject(new ServiceUnavailable(body.error ?? 'finishing'));
          else reject(new Error(`the writer's read service failed: ${body.error ?? `HTTP ${res.statusCode}`}`));
        });
      },
    );
    req.on('error', (err) => reject(new ServiceUnavailable(`cannot reach ${socketPath}: ${err.message}`, { cause: err })));
    req.end(payload);
  });
}

/** Whether something listens on the read socket of `db` (a cheap probe before a request). */
export function readServiceListening(db: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = netConnect(readSocketPath(db));
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
