import { writeFile } from 'node:fs/promises';
import { ExitError } from '../../core/errors.js';
import { parseTime } from '../../query/index.js';
import { openStoreReader } from '../../sinks/duckdb/reader.js';
import { buildReport, renderHtml, renderMarkdown, type ReportData } from '../../report/index.js';
import { DEFAULT_DB, defineCommand, parseCommandArgs } from '../args.js';

export const usage = 'auditship report --since TIME [--until TIME] [--db FILE] [--server NAME]... [--format md|html|json] [--output FILE]';
export const summary =
  'Write an audit report of a time range: events by class and command, DDL and role changes in full, tables read and written per user, failed logins, failed statements.';

export const spec = defineCommand({
  name: 'report',
  summary,
  usage,
  flags: {
    since: {
      type: 'string',
      value: 'TIME',
      description: 'start of the range: an ISO-8601 time (2026-05-01, 2026-05-01T12:00:00Z) or a duration before now (90m, 24h, 7d); required',
    },
    until: { type: 'string', value: 'TIME', description: 'end of the range (not included), like --since', defaultText: 'now' },
    db: { type: 'string', value: 'FILE', description: 'the DuckDB store, opened read-only (or asked of the process writing it)', default: DEFAULT_DB },
    server: { type: 'string', value: 'NAME', multiple: true, description: 'only this server', defaultText: 'every server' },
    format: { type: 'string', short: 'f', value: 'FORMAT', description: 'md, html (a self-contained page with charts) or json', default: 'md' },
    output: { type: 'string', short: 'o', value: 'FILE', description: 'write the report to FILE', defaultText: 'stdout' },
  },
});

const DURATION = /^(\d+(?:\.\d+)?)\s*(m|min|h|d|w)$/i;
const UNIT_MS: Record<string, number> = { m: 60e3, min: 60e3, h: 3600e3, d: 86400e3, w: 7 * 86400e3 };

/** A report bound: a duration before `now` (7d, 24h, 90m) or an absolute time. */
export function parseBound(value: string, name: string, now: number): number {
  const d = DURATION.exec(value.trim());
  if (d) return now - Number(d[1]) * UNIT_MS[d[2]!.toLowerCase()]!;
  try {
    return parseTime(value, name);
  } catch (err) {
    throw new ExitError(2, `${(err as Error).message}, or a duration such as 7d`);
  }
}

export async function report(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommandArgs(argv, spec);
  if (positionals.length) throw new ExitError(2, `unexpected argument "${positionals[0]}"\nusage: ${usage}`);
  if (!values.since) throw new ExitError(2, `--since is required\nusage: ${usage}`);
  const format = values.format;
  if (!['md', 'html', 'json'].includes(format)) throw new ExitError(2, `--format: "${format}" is not one of md, html, json`);
  const now = Date.now();
  const since = parseBound(values.since, '--since', now);
  const until = values.until ? parseBound(values.until, '--until', now) : now;
  if (since >= until) throw new ExitError(2, '--since must be earlier than --until');
  const data = await reportData(values.db ?? './auditship.duckdb', { since, until, ...(values.server ? { server: values.server } : {}) });
  const text = format === 'json' ? JSON.stringify(data, null, 2) + '\n' : format === 'html' ? renderHtml(data) : renderMarkdown(data);
  if (values.output) {
    await writeFile(values.output, text);
    process.stderr.write(
      `auditship report: ${data.totals.events.toLocaleString('en-US')} events, ${data.changes.length} changes, ${data.failed_statements.length} failed statements, ${data.logon_failures.length} failed logins → ${values.output}\n`,
    );
  } else {
    process.stdout.write(text);
  }
}

/** The report's data, from the store (through the process writing it, if one does). */
async function reportData(dbPath: string, opts: { since: number; until: number; server?: string[] }): Promise<ReportData> {
  const store = openStoreReader(dbPath);
  try {
    return await buildReport(store, opts);
  } finally {
    await store.close();
  }
}
