import { loadConfig } from '../../config/load.js';
import { ExitError, isExpected } from '../../core/errors.js';
import { createLogger, quietLogger } from '../../core/log.js';
import { runOutboxPurge } from '../../jobs/outbox.js';
import { COMMON_OUTPUT_OPTIONS, parseCommandArgs } from '../args.js';
import { n } from '../output.js';

export const usage = 'auditship purge [--config FILE] [--pipeline NAME] [--quiet] [--json]';
export const summary = 'Delete rows marked sent and older than retain_days from the sql_outbox and django_auditlog tables, in bounded statements; never an unsent row.';

export async function purge(argv: string[]): Promise<void> {
  const { values } = parseCommandArgs(argv, {
    config: { type: 'string', short: 'c' },
    pipeline: { type: 'string', multiple: true },
    ...COMMON_OUTPUT_OPTIONS,
  }, usage);
  if (values.help) { process.stdout.write(`${summary}\nusage: ${usage}\n`); return; }
  const config = loadConfig(values.config ?? process.env['AUDITSHIP_CONFIG'] ?? 'auditship.yaml');
  let pipelines = config.pipelines.filter((p) => p.source.type === 'sql_outbox' || p.source.type === 'django_auditlog');
  if (values.pipeline?.length) {
    const unknown = values.pipeline.filter((name) => !pipelines.some((p) => p.name === name));
    if (unknown.length) throw new ExitError(2, `no sql_outbox or django_auditlog pipeline named ${unknown.join(', ')}`);
    pipelines = pipelines.filter((p) => values.pipeline!.includes(p.name));
  }
  if (pipelines.length === 0) throw new ExitError(2, 'the config has no sql_outbox or django_auditlog pipeline to purge');
  const log = values.quiet ? quietLogger() : createLogger();
  const results: { pipeline: string; ok: boolean; purged?: number; error?: string }[] = [];
  for (const p of pipelines) {
    try {
      const purged = await runOutboxPurge(p, log);
      results.push({ pipeline: p.name, ok: true, purged });
      if (!values.json && !values.quiet) process.stdout.write(`${p.name}: ${n(purged)} rows marked sent and older than ${p.source['retain_days']} days deleted from ${p.source['table']}\n`);
    } catch (err) {
      if (!isExpected(err)) throw err;
      results.push({ pipeline: p.name, ok: false, error: err.message });
      process.stderr.write(`auditship: pipeline ${p.name} failed: ${err.message}\n`);
    }
  }
  if (values.json) process.stdout.write(JSON.stringify({ pipelines: results, ok: results.every((r) => r.ok) }) + '\n');
  if (results.some((r) => !r.ok)) throw new ExitError(1, '');
}
