import { checkConnector } from '../../config/load.js';
import { SINKS, SOURCES } from '../../config/schema.js';
import { ConfigError, ExitError } from '../../core/errors.js';
import { createLogger, quietLogger } from '../../core/log.js';
import { profile } from '../../core/profile.js';
import { onInterrupt } from '../signals.js';
import { createProgress, noProgress } from '../../core/progress.js';
import { runIngestPipeline } from '../../jobs/ingest.js';
import { COMMON_OUTPUT_OPTIONS, parseCommandArgs } from '../args.js';
import { formatSummary } from '../output.js';

export const usage = 'auditship ingest [--db FILE] [--server NAME] [--skip-active] [--force] [--glob GLOB] [--log-timezone ZONE] [--prefer-format jsonlog|csvlog] [--store-message] [--profile] [--quiet] [--json] PATH...';

export const summary = 'Ingest PostgreSQL log files or directories (pgaudit) into DuckDB.';

export async function ingest(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommandArgs(argv, {
    db: { type: 'string' },
    server: { type: 'string' },
    'skip-active': { type: 'boolean' },
    force: { type: 'boolean' },
    glob: { type: 'string' },
    'log-timezone': { type: 'string' },
    'prefer-format': { type: 'string' },
    'store-message': { type: 'boolean' },
    profile: { type: 'boolean' },
    ...COMMON_OUTPUT_OPTIONS,
  }, usage);
  if (values.help) { process.stdout.write(`${summary}\nusage: ${usage}\n`); return; }
  if (positionals.length === 0) throw new ExitError(2, `no PATH given (a log file or the server's log_directory)\nusage: ${usage}`);
  const problems: string[] = [];
  const rawSource: Record<string, unknown> = { type: 'pg_logs', path: positionals };
  if (values.server !== undefined) rawSource['server'] = values.server;
  if (values['skip-active']) rawSource['skip_active'] = true;
  if (values.glob !== undefined) rawSource['file_glob'] = values.glob;
  if (values['log-timezone'] !== undefined) rawSource['log_timezone'] = values['log-timezone'];
  if (values['prefer-format'] !== undefined) rawSource['prefer_format'] = values['prefer-format'];
  const source = checkConnector(rawSource, SOURCES, 'source', 'ingest', problems);
  const rawSink: Record<string, unknown> = { type: 'duckdb' };
  if (values.db !== undefined) rawSink['path'] = values.db;
  if (values['store-message']) rawSink['store_message'] = true;
  const sink = checkConnector(rawSink, SINKS, 'sink', 'ingest', problems);
  if (problems.length || !source || !sink) throw new ConfigError(problems.map((p) => p.replace(/^ingest\./, '--')));
  const log = values.quiet ? quietLogger() : createLogger();
  const progress = values.quiet || values.json ? noProgress : createProgress(process.stderr, log);
  if (values.profile) profile.start();
  const interrupt = onInterrupt();
  let summaryResult;
  try {
    summaryResult = await runIngestPipeline({ name: 'ingest', source, sinks: [sink] }, { force: Boolean(values.force), log, progress, requireLogFiles: true, signal: interrupt.signal });
  } finally {
    interrupt.dispose();
  }
  if (values.profile) process.stderr.write(profile.table(`ingest of ${summaryResult.events} events, ${summaryResult.bytes} bytes`) + '\n');
  if (values.json) process.stdout.write(JSON.stringify(summaryResult) + '\n');
  else if (!values.quiet) process.stdout.write(formatSummary(summaryResult) + '\n');
  interrupt.exitIfInterrupted(`${summaryResult.stored.toLocaleString('en')} new events committed`);
  if (!summaryResult.ok) {
    throw new ExitError(1, values.json || !values.quiet ? '' : summaryResult.errors.map((e) => `${e.file}: ${e.message}`).join('\n'));
  }
}
