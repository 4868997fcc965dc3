import { loadConfig } from '../../config/load.js';
import { ExitError, isExpected } from '../../core/errors.js';
import { createLogger, quietLogger } from '../../core/log.js';
import { SOURCES, sourceDeclaration } from '../../connectors.js';
import { JOBS } from '../../jobs/index.js';
import { COMMON_OUTPUT_OPTIONS, defineCommand, parseCommandArgs } from '../args.js';
import { n } from '../output.js';

/** The source types that purge, as words: "sql_outbox or django_auditlog". */
const PURGING = Object.entries(SOURCES)
  .filter(([, d]) => 'purges' in d && d.purges)
  .map(([type]) => type)
  .join(' or ');

export const usage = 'auditship purge [--config FILE] [--pipeline NAME] [--quiet] [--json]';
export const summary =
  'Delete rows marked sent and older than retain_days from the sql_outbox and django_auditlog tables, in bounded statements; never an unsent row.';

export const spec = defineCommand({
  name: 'purge',
  summary,
  usage,
  flags: {
    config: { type: 'string', short: 'c', value: 'FILE', description: 'the config file', defaultText: '$AUDITSHIP_CONFIG, else auditship.yaml' },
    pipeline: {
      type: 'string',
      value: 'NAME',
      multiple: true,
      description: 'purge only this pipeline',
      defaultText: 'every sql_outbox and django_auditlog pipeline',
    },
    ...COMMON_OUTPUT_OPTIONS,
  },
  notes: '  Exit codes: 0 ok, 1 a pipeline failed, 2 usage or configuration error.',
});

export async function purge(argv: string[]): Promise<void> {
  const { values } = parseCommandArgs(argv, spec);
  const config = loadConfig(values.config ?? process.env['AUDITSHIP_CONFIG'] ?? 'auditship.yaml');
  let pipelines = config.pipelines.filter((p) => sourceDeclaration(p.source.type).purges === true);
  if (values.pipeline?.length) {
    const unknown = values.pipeline.filter((name) => !pipelines.some((p) => p.name === name));
    if (unknown.length) throw new ExitError(2, `no ${PURGING} pipeline named ${unknown.join(', ')}`);
    pipelines = pipelines.filter((p) => values.pipeline!.includes(p.name));
  }
  if (pipelines.length === 0) throw new ExitError(2, `the config has no ${PURGING} pipeline to purge`);
  const log = values.quiet ? quietLogger() : createLogger();
  const results: { pipeline: string; ok: boolean; purged?: number; error?: string }[] = [];
  for (const p of pipelines) {
    try {
      const job = await JOBS[p.source.type]();
      if (!job.purge) throw new Error(`the ${p.source.type} job declares purges but has no purge`);
      const { purged, retainDays, table } = await job.purge(p, log);
      results.push({ pipeline: p.name, ok: true, purged });
      if (!values.json && !values.quiet)
        process.stdout.write(`${p.name}: ${n(purged)} rows marked sent and older than ${retainDays} days deleted from ${table}\n`);
    } catch (err) {
      if (!isExpected(err)) throw err;
      results.push({ pipeline: p.name, ok: false, error: err.message });
      process.stderr.write(`auditship: pipeline ${p.name} failed: ${err.message}\n`);
    }
  }
  if (values.json) process.stdout.write(JSON.stringify({ pipelines: results, ok: results.every((r) => r.ok) }) + '\n');
  if (results.some((r) => !r.ok)) throw new ExitError(1, '');
}
