import type { PipelineConfig } from '../config/load.js';
import { duckdbSinkOf } from '../connectors.js';
import { JOBS, type OnceContext, type PipelineSummary } from './index.js';

/**
 * Runs a pipeline once (`run`, the Lambda handler). With a `state` section its DuckDB file is fetched from S3
 * first and written back after, conditionally (src/jobs/remote-state.ts): also after a pipeline that failed, since
 * what it committed is valid; a write-back refused because another run moved the state fails the pipeline.
 */
export async function runPipelineOnce(pipeline: PipelineConfig, ctx: OnceContext): Promise<PipelineSummary> {
  // The job is loaded when a pipeline needs it: a run carries only the drivers and SDKs it uses.
  const job = await JOBS[pipeline.source.type]();
  if (!pipeline.state) return job.once(pipeline, ctx);
  const { RemoteState } = await import('./remote-state.js');
  const remote = await RemoteState.open(pipeline.state, duckdbSinkOf(pipeline.sinks).path, ctx.log, `pipelines.${pipeline.name}.state`);
  try {
    await remote.fetch();
    let summary: PipelineSummary;
    try {
      summary = await job.once(pipeline, ctx);
    } catch (err) {
      await remote
        .push()
        .catch((e: unknown) =>
          ctx.log.warn('The state could not be written back after the pipeline failed.', { state: remote.where, reason: (e as Error).message }),
        );
      throw err;
    }
    await remote.push();
    return summary;
  } finally {
    remote.close();
  }
}
