import { loadConfig } from '../../config/load.js';
import { ExitError, isExpected } from '../../core/errors.js';
import { createLogger, quietLogger } from '../../core/log.js';
import { profile } from '../../core/profile.js';
import { createProgress, noProgress } from '../../core/progress.js';
import type { PipelineSummary } from '../../jobs/index.js';
import { runPipelineOnce } from '../../jobs/once.js';
import { savedSearchesOf } from '../../ui/saved-searches.js';
import { COMMON_OUTPUT_OPTIONS, defineCommand, parseCommandArgs, selectPipelines } from '../args.js';
import { onInterrupt } from '../signals.js';
import { formatSummary } from '../output.js';

export const usage =
  'auditship run [--config FILE] [--pipeline NAME] [--follow [--ui HOST:PORT [--ui-token T | --ui-basic-auth U:P]] [--metrics HOST:PORT]] [--profile] [--quiet] [--json]';
export const summary =
  'Run every pipeline of a config once and exit (cron-friendly); --follow: keep running until SIGTERM/SIGINT, serving the UI (on a socket next to the database; on TCP with --ui) and Prometheus metrics (with --metrics).';

export const spec = defineCommand({
  name: 'run',
  summary,
  usage,
  flags: {
    config: { type: 'string', short: 'c', value: 'FILE', description: 'the config file', defaultText: '$AUDITSHIP_CONFIG, else auditship.yaml' },
    pipeline: { type: 'string', value: 'NAME', multiple: true, description: 'run only this pipeline', defaultText: 'every pipeline' },
    follow: {
      type: 'boolean',
      short: 'f',
      description:
        'keep running until SIGTERM/SIGINT: each pipeline looks for new records every poll_interval_ms; the web UI is served on a unix socket next to each DuckDB file',
    },
    ui: {
      type: 'string',
      value: 'HOST:PORT',
      description: 'with --follow: also serve the web UI on this address (a non-loopback one needs a token or basic auth)',
      defaultText: "the config's ui.listen, else none",
    },
    'ui-token': {
      type: 'string',
      value: 'TOKEN',
      description: 'a shared secret of at least 16 characters the UI asks for',
      defaultText: "the config's ui.token, else $AUDITSHIP_UI_TOKEN",
    },
    'ui-basic-auth': {
      type: 'string',
      value: 'USER:PASSWORD',
      description: 'HTTP Basic authentication of the UI',
      defaultText: "the config's ui.basic_auth, else $AUDITSHIP_UI_BASIC_AUTH",
    },
    metrics: {
      type: 'string',
      value: 'HOST:PORT',
      description:
        'with --follow: serve Prometheus metrics at /metrics on this address (no authentication: they hold no audit data; the --ui address serves them too)',
      defaultText: "the config's metrics.listen, else none",
    },
    profile: { type: 'boolean', description: 'print on stderr where the time went, per pipeline and step' },
    ...COMMON_OUTPUT_OPTIONS,
  },
  notes: `  Exit codes: 0 ok, 1 a pipeline failed (the others still ran), 2 usage or configuration error; 130/143 after
  Ctrl-C/SIGTERM (what was read is committed).`,
});

export async function run(argv: string[]): Promise<void> {
  const { values } = parseCommandArgs(argv, spec);
  if (values.ui !== undefined && !values.follow)
    throw new ExitError(2, `--ui needs --follow (the UI is served while the daemon runs; \`auditship ui\` serves it otherwise)\nusage: ${usage}`);
  if (values.metrics !== undefined && !values.follow)
    throw new ExitError(2, `--metrics needs --follow (the daemon serves its metrics while it runs)\nusage: ${usage}`);
  const config = loadConfig(values.config ?? process.env['AUDITSHIP_CONFIG'] ?? 'auditship.yaml');
  // The daemon's UI: flags first, then the config's ui section (then the environment, in authOptions).
  const { parseListen, authOptions } = await import('./ui.js');
  const listen = values.ui ?? (values.follow ? config.ui?.listen : undefined);
  const uiListen = listen !== undefined ? parseListen(listen, values.ui !== undefined ? '--ui' : 'ui.listen') : undefined;
  const metricsAt = values.metrics ?? (values.follow ? config.metrics?.listen : undefined);
  const metricsListen = metricsAt !== undefined ? parseListen(metricsAt, values.metrics !== undefined ? '--metrics' : 'metrics.listen') : undefined;
  const uiAuth = authOptions(values['ui-token'] ?? config.ui?.token, values['ui-basic-auth'] ?? config.ui?.basic_auth);
  const pipelines = selectPipelines(config.pipelines, values.pipeline);
  const log = values.quiet ? quietLogger() : createLogger();
  const progress = values.quiet || values.json ? noProgress : createProgress(process.stderr, log);
  if (values.follow) {
    const stateful = pipelines.filter((p) => p.state);
    if (stateful.length)
      throw new ExitError(
        2,
        `pipeline ${stateful[0]!.name} keeps its state in S3, which one-shot runs do (\`auditship run\`, the Lambda handler); \`run --follow\` keeps its state on the local disk: remove state or run without --follow`,
      );
    const controller = new AbortController();
    const stop = (sig: string) => {
      if (controller.signal.aborted) return;
      log.info('Stopping: finishing the current batches.', { signal: sig });
      controller.abort();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
    const { runFollow } = await import('../../jobs/follow.js');
    const ok = await runFollow(pipelines, log, controller.signal, {
      ...(uiListen ? { uiListen } : {}),
      ...(uiAuth ? { uiAuth } : {}),
      ...(metricsListen ? { metricsListen } : {}),
      ...(config.ui?.saved_searches ? { savedSearches: savedSearchesOf(config.ui.saved_searches) } : {}),
    });
    if (!ok) throw new ExitError(1, 'a pipeline stopped with an error (see the log)');
    return;
  }
  const results: (PipelineSummary | { pipeline: string; ok: false; error: string })[] = [];
  const interrupt = onInterrupt();
  const signal = interrupt.signal;
  for (const pipeline of pipelines) {
    if (signal.aborted) break; // the pipelines not started yet run next time
    if (values.profile) profile.start();
    try {
      const s = await runPipelineOnce(pipeline, { log, progress, signal });
      results.push(s);
      if (values.profile) process.stderr.write(profile.table(`pipeline ${pipeline.name}`) + '\n');
      if (!values.json && !values.quiet) process.stdout.write(formatSummary(s) + '\n');
    } catch (err) {
      if (!isExpected(err)) throw err;
      results.push({ pipeline: pipeline.name, ok: false, error: err.message });
      process.stderr.write(`auditship: pipeline ${pipeline.name} failed: ${err.message}\n`);
    }
  }
  // Alerts the runs fired (and earlier ones left pending) are delivered now, for at most alerts.delivery.run_deadline_ms.
  if (!signal.aborted && pipelines.some((p) => p.alerts)) {
    try {
      await (await import('../../jobs/alerts.js')).deliverAfterRun(pipelines, log);
    } catch (err) {
      if (!isExpected(err)) throw err;
      process.stderr.write(`auditship: alerts could not be delivered (they stay pending for the next run): ${err.message}\n`);
    }
  }
  interrupt.dispose();
  if (values.json)
    process.stdout.write(
      JSON.stringify({ pipelines: results, ok: results.every((r) => r.ok), ...(interrupt.received ? { interrupted: interrupt.received } : {}) }) + '\n',
    );
  interrupt.exitIfInterrupted(`${results.length} of ${pipelines.length} pipeline(s) ran, each committed what it read`);
  const failed = results.filter((r) => !r.ok).map((r) => r.pipeline);
  // One pipeline's failure is its own line already; with several, the last line counts them.
  if (failed.length)
    throw new ExitError(1, values.json || results.length === 1 ? '' : `${failed.length} of ${results.length} pipeline(s) failed: ${failed.join(', ')}`);
}
