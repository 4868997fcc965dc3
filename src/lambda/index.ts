import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { loadConfig, parseConfig, type Config } from '../config/load.js';
import { ConfigError, isExpected } from '../core/errors.js';
import { createLogger, type Logger } from '../core/log.js';
import { noProgress } from '../core/progress.js';
import type { PipelineSummary } from '../jobs/index.js';
import { runPipelineOnce } from '../jobs/once.js';

/**
 * auditship as an AWS Lambda function (`index.handler` of the zip that `npm run package:lambda` builds; the
 * CloudFormation template is deploy/lambda/template.yaml). Each invocation runs the configured pipelines once,
 * as `auditship run` does: a pipeline with a `state` section fetches its DuckDB file from S3 and writes it back
 * conditionally (src/jobs/remote-state.ts), so overlapping invocations cannot both move a checkpoint.
 *
 * Config, first found: $AUDITSHIP_CONFIG_YAML (the YAML text), $AUDITSHIP_CONFIG_S3 (s3://bucket/key),
 * $AUDITSHIP_CONFIG (a file; relative to the bundle), else auditship.yaml in the bundle. Secrets come from the
 * environment through the config's ${VAR} references. The event may name pipelines: { "pipelines": ["rds"] }.
 *
 * Time: no new log file is started once context.getRemainingTimeInMillis() is below the margin
 * ($AUDITSHIP_TIME_MARGIN_MS, default 60 s: the file in progress, the commit and the state's write-back must
 * fit); what is left is reported (`remaining`) and shipped by the next invocation. Logs are JSON lines with the
 * request id (CloudWatch). A pipeline that failed makes the invocation fail (the error names it) after the
 * summary is logged; otherwise the summary is returned.
 */
export interface LambdaContext {
  getRemainingTimeInMillis(): number;
  awsRequestId?: string;
  functionName?: string;
}

export interface LambdaEvent {
  /** Run only these pipelines (default: all). */
  pipelines?: string[];
}

export interface LambdaResult {
  ok: boolean;
  requestId?: string;
  durationMs: number;
  /** Log files left for the next invocation (the time margin was reached). */
  remaining: number;
  pipelines: (PipelineSummary | { pipeline: string; ok: false; error: string } | { pipeline: string; ok: true; skipped: 'no time left' })[];
}

export const DEFAULT_TIME_MARGIN_MS = 60_000;

export async function handler(event: LambdaEvent | null | undefined, context: LambdaContext): Promise<LambdaResult> {
  const started = Date.now();
  const log = createLogger({ json: true, stream: process.stdout, fields: context.awsRequestId ? { requestId: context.awsRequestId } : {} });
  const margin = Number(process.env['AUDITSHIP_TIME_MARGIN_MS'] ?? DEFAULT_TIME_MARGIN_MS);
  const stopStarting = () => context.getRemainingTimeInMillis() < margin;
  let config: Config;
  try {
    config = await loadLambdaConfig(log);
  } catch (err) {
    const message = err instanceof ConfigError ? err.problems.join('; ') : (err as Error).message;
    log.error('The config cannot be used.', { reason: message });
    throw new Error(`auditship: ${message}`);
  }
  const wanted = event?.pipelines;
  const unknown = wanted?.filter((n) => !config.pipelines.some((p) => p.name === n)) ?? [];
  if (unknown.length) throw new Error(`auditship: no pipeline ${unknown.join(', ')} in the config`);
  const pipelines = wanted ? config.pipelines.filter((p) => wanted.includes(p.name)) : config.pipelines;
  // The bundle's directory is read-only: relative paths (the DuckDB file) are under /tmp.
  const task = process.env['LAMBDA_TASK_ROOT'];
  if (task && resolve(process.cwd()) === resolve(task)) process.chdir(tmpdir());
  const signal = new AbortController().signal;
  const result: LambdaResult = { ok: true, ...(context.awsRequestId ? { requestId: context.awsRequestId } : {}), durationMs: 0, remaining: 0, pipelines: [] };
  for (const pipeline of pipelines) {
    if (stopStarting()) {
      result.pipelines.push({ pipeline: pipeline.name, ok: true, skipped: 'no time left' });
      continue;
    }
    try {
      const s = await runPipelineOnce(pipeline, { log, progress: noProgress, signal, stopStarting });
      result.pipelines.push(s);
      if ('remaining' in s && s.remaining) result.remaining += s.remaining;
      if (!s.ok) result.ok = false;
    } catch (err) {
      if (!isExpected(err)) throw err;
      result.ok = false;
      result.pipelines.push({ pipeline: pipeline.name, ok: false, error: err.message });
      log.error('Pipeline failed.', { pipeline: pipeline.name, reason: err.message });
    }
  }
  result.durationMs = Date.now() - started;
  log.info('Invocation done.', { summary: result });
  if (!result.ok) {
    const failed = result.pipelines.filter((p) => !p.ok);
    throw new Error(`auditship: ${failed.length} pipeline(s) failed: ${failed.map((p) => `${p.pipeline}${'error' in p ? ` (${p.error})` : ''}`).join('; ')}`);
  }
  return result;
}

async function loadLambdaConfig(log: Logger): Promise<Config> {
  const env = process.env;
  const inline = env['AUDITSHIP_CONFIG_YAML'];
  if (inline) return parseConfig(inline, '$AUDITSHIP_CONFIG_YAML', env);
  const s3 = env['AUDITSHIP_CONFIG_S3'];
  if (s3) {
    const m = /^s3:\/\/([^/]+)\/(.+)$/.exec(s3);
    if (!m) throw new ConfigError([`$AUDITSHIP_CONFIG_S3: s3://bucket/key, not ${s3}`]);
    const { openAnchorStore } = await import('../jobs/anchor.js');
    const store = await openAnchorStore(`s3://${m[1]}/`);
    try {
      const chunks: Buffer[] = [];
      for await (const c of store.read(m[2]!)) chunks.push(c);
      log.info('Config read from S3.', { at: s3 });
      return parseConfig(Buffer.concat(chunks).toString('utf8'), s3, env);
    } finally {
      store.close();
    }
  }
  const root = env['LAMBDA_TASK_ROOT'] ?? process.cwd();
  const file = env['AUDITSHIP_CONFIG'] ?? 'auditship.yaml';
  const path = isAbsolute(file) ? file : join(root, file);
  if (!existsSync(path) && !env['AUDITSHIP_CONFIG'])
    throw new ConfigError([
      'no config: set AUDITSHIP_CONFIG_YAML (the YAML), AUDITSHIP_CONFIG_S3 (s3://bucket/key) or AUDITSHIP_CONFIG (a file), or put auditship.yaml in the bundle',
    ]);
  return loadConfig(path, env);
}
