import type { IncomingMessage, ServerResponse } from 'node:http';
import type { SortSpec } from '../query/index.js';
import { checkKeys, filterOf, type UiQueries } from './api.js';
import { appFilterOf, changeFilterOf } from './api-sources.js';
import { HttpError, SECURITY_HEADERS } from './http.js';

/**
 * Export of a filter's rows as CSV (RFC 4180) or NDJSON, streamed: pages are read by cursor one at a time and
 * each is written before the next is asked for, waiting for the client to drain the socket — so memory stays a
 * page whatever the size, and a client that stops reading stops the reading of the store. Statements, row data
 * and messages are included (the user's own data, stored after redaction); nothing of them is logged.
 */

/** Rows per page read (the most the server holds of an export at once). */
export const EXPORT_PAGE = 500;

type Page = { rows: object[]; next: string | null };
export type ExportHandler = (q: UiQueries, params: URLSearchParams, req: IncomingMessage, res: ServerResponse) => Promise<void>;

/** One CSV field (RFC 4180): quoted when it holds a comma, a quote, CR or LF; quotes doubled. Objects as JSON. */
export function csvField(v: unknown): string {
  if (v === null || v === undefined) return '';
  const s = typeof v === 'object' ? JSON.stringify(v) : String(v);
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

export function csvLine(values: unknown[]): string {
  return `${values.map(csvField).join(',')}\r\n`;
}

const EXPORT_KEYS = ['format', 'sort', 'dir'];

function formatOf(p: URLSearchParams): 'csv' | 'ndjson' {
  const f = p.get('format') ?? 'csv';
  if (f !== 'csv' && f !== 'ndjson') throw new HttpError(400, 'format must be csv or ndjson');
  return f;
}

function sortParam(p: URLSearchParams): SortSpec {
  const dir = p.get('dir') ?? 'desc';
  if (dir !== 'asc' && dir !== 'desc') throw new HttpError(400, 'dir must be asc or desc');
  return { by: p.get('sort') ?? 'time', dir };
}

/** Writes the pages to the response as they come; stops when the client goes away. */
async function stream(
  req: IncomingMessage,
  res: ServerResponse,
  opts: { format: 'csv' | 'ndjson'; name: string; columns: string[]; json?: Set<string>; page: (after: string | null) => Promise<Page> },
): Promise<void> {
  // The first page is read before the headers go out: a bad cursor or sort is still a 400.
  let page = await opts.page(null);
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  res.writeHead(200, {
    ...SECURITY_HEADERS,
    'Content-Type': opts.format === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson; charset=utf-8',
    'Content-Disposition': `attachment; filename="auditship-${opts.name}-${stamp}.${opts.format === 'csv' ? 'csv' : 'ndjson'}"`,
    'Cache-Control': 'no-store',
  });
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  let gone = false;
  res.once('close', () => {
    gone = true;
  });
  const write = async (chunk: string) => {
    if (res.write(chunk) || gone) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        res.off('drain', done);
        res.off('close', done);
        resolve();
      };
      res.on('drain', done);
      res.on('close', done);
    });
  };
  if (opts.format === 'csv') await write(csvLine(opts.columns));
  for (;;) {
    let chunk = '';
    for (const row of page.rows as Record<string, unknown>[]) {
      if (opts.format === 'csv') {
        chunk += csvLine(opts.columns.map((c) => row[c]));
      } else {
        const out: Record<string, unknown> = {};
        for (const c of opts.columns) out[c] = opts.json?.has(c) ? jsonOrText(row[c]) : (row[c] ?? null);
        chunk += `${JSON.stringify(out)}\n`;
      }
    }
    if (chunk) await write(chunk);
    if (gone || !page.next) break;
    page = await opts.page(page.next);
  }
  if (!gone) res.end();
}

/** A JSON text column as its value in NDJSON (the text itself when it is not JSON). */
function jsonOrText(v: unknown): unknown {
  if (v === null || v === undefined) return null;
  try {
    return JSON.parse(String(v));
  } catch {
    return String(v);
  }
}

const EVENT_COLUMNS = [
  'log_time',
  'server',
  'user_name',
  'database_name',
  'client_addr',
  'application_name',
  'session_id',
  'session_line_num',
  'audit_type',
  'class',
  'command',
  'object_type',
  'object_name',
  'outcome',
  'sqlstate',
  'error_message',
  'statement',
];
const CHANGE_COLUMNS = [
  'time',
  'server',
  'source_table',
  'event_id',
  'schema_name',
  'table_name',
  'action',
  'user_name',
  'application_name',
  'client_addr',
  'statement_only',
  'row_data',
  'changed_fields',
  'client_query',
];
const APP_COLUMNS = ['time', 'source_name', 'source_table', 'row_id', 'actor', 'operation', 'target', 'message'];

function need<T>(v: T | undefined): T {
  if (v === undefined) throw new HttpError(404, 'no such API endpoint');
  return v;
}

/** `GET /api/export?format=csv|ndjson&sort=&dir=&<filter>` and its kin for row changes and application events. */
export const EXPORTS: Record<string, ExportHandler> = {
  '/api/export': async (q, p, req, res) => {
    checkKeys(p, [...EXPORT_KEYS, 'from', 'to', 'server', 'user', 'database', 'application', 'client', 'class', 'command', 'object', 'outcome', 'q']);
    const only = new URLSearchParams([...p].filter(([k]) => !EXPORT_KEYS.includes(k)));
    const filter = filterOf(only, []);
    const list = need(q.eventList);
    const sort = sortParam(p);
    await stream(req, res, { format: formatOf(p), name: 'events', columns: EVENT_COLUMNS, page: (after) => list.exportPage(filter, sort, after, EXPORT_PAGE) });
  },
  '/api/changes/export': async (q, p, req, res) => {
    const filter = changeFilterOf(p, EXPORT_KEYS);
    const rc = need(q.rowChanges);
    const sort = sortParam(p);
    await stream(req, res, {
      format: formatOf(p),
      name: 'row-changes',
      columns: CHANGE_COLUMNS,
      json: new Set(['row_data', 'changed_fields']),
      page: (after) => rc.exportPage(filter, sort, after, EXPORT_PAGE),
    });
  },
  '/api/app-events/export': async (q, p, req, res) => {
    const filter = appFilterOf(p, EXPORT_KEYS);
    const ae = need(q.appEvents);
    const sort = sortParam(p);
    await stream(req, res, {
      format: formatOf(p),
      name: 'app-events',
      columns: APP_COLUMNS,
      json: new Set(['message']),
      page: (after) => ae.exportPage(filter, sort, after, EXPORT_PAGE),
    });
  },
};
