import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { createBucket, spawnS3Server, type SpawnedS3Server } from '../s3-server/client.js';
import { CsvlogGenerator, csvOf } from '../helpers/csvlog-gen.js';
import { ROOT, scratchDir } from '../helpers/ingest-cli.js';
import { startRuntimeApi } from './runtime-api.js';

/**
 * The zip as the Lambda service runs it: unpacked, its `index.handler` started by AWS's own runtime interface
 * client (aws-lambda-ric, the one in AWS's Node.js base images), which long-polls the Runtime API — served here
 * by test/lambda/runtime-api.ts. Two invocations in one process (a warm container), then one that fails.
 * aws-lambda-ric builds libcurl from source (autoconf, automake, libtool, cmake, g++): it is not a dependency;
 * set AUDITSHIP_LAMBDA_RIC to an installed copy's folder (…/node_modules/aws-lambda-ric) to run this test.
 */
const RIC = process.env['AUDITSHIP_LAMBDA_RIC'];
const skip = !RIC || !existsSync(join(RIC, 'bin', 'index.mjs')) ? 'AUDITSHIP_LAMBDA_RIC is not set to an installed aws-lambda-ric' : false;
const { dir, cleanup } = scratchDir('lambda-ric-');
let s3: SpawnedS3Server | undefined;
after(async () => {
  await s3?.stop();
  cleanup();
});

test('aws-lambda-ric runs the zipped handler through the Runtime API: a first and a warm invocation, a failing one', { skip }, async () => {
  s3 = await spawnS3Server({});
  await createBucket(s3.url, 'ric-state');
  const logs = join(dir, 'logs');
  mkdirSync(logs);
  const recs = new CsvlogGenerator({ seed: 41 }).records(800);
  writeFileSync(join(logs, 'postgresql-2024-05-01_100000.csv'), csvOf(recs));
  writeFileSync(join(logs, 'postgresql-2024-05-01_110000.csv'), '');
  const config = join(dir, 'auditship.yaml');
  const keys = { endpoint: s3.url, force_path_style: true, access_key_id: 'S3RVER', secret_access_key: 'S3RVER' };
  writeFileSync(
    config,
    JSON.stringify({
      pipelines: {
        logs: {
          source: { type: 'pg_logs', path: logs },
          sinks: [{ type: 'duckdb', path: 'state/ric.duckdb' }],
          state: { bucket: 'ric-state', key: 'ric.duckdb', ...keys },
        },
      },
    }),
  );
  const out = join(dir, 'zip');
  const pack = spawnSync(process.execPath, [join(ROOT, 'scripts', 'package-lambda.mjs'), '--arch', 'x86_64', '--out', out, '--config', config], {
    encoding: 'utf8',
  });
  assert.equal(pack.status, 0, pack.stderr);
  const task = join(dir, 'task');
  const unzip = spawnSync('unzip', ['-q', join(out, 'auditship-lambda-x86_64.zip'), '-d', task], { encoding: 'utf8' });
  assert.equal(unzip.status, 0, unzip.stderr);
  const api = await startRuntimeApi();
  const tmp = join(dir, 'container');
  mkdirSync(tmp);
  const child = spawn(process.execPath, [join(RIC!, 'bin', 'index.mjs'), 'index.handler'], {
    cwd: task,
    env: {
      PATH: process.env['PATH'],
      LAMBDA_TASK_ROOT: task,
      _HANDLER: 'index.handler',
      AWS_LAMBDA_RUNTIME_API: api.address,
      AWS_LAMBDA_FUNCTION_NAME: 'auditship',
      AWS_LAMBDA_FUNCTION_MEMORY_SIZE: '1024',
      AWS_REGION: 'us-east-1',
      TMPDIR: tmp,
      AUDITSHIP_TIME_MARGIN_MS: '10000',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (output += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (output += d));
  try {
    const first = await api.invoke({}, 120_000);
    assert.equal(first.error, undefined, `${JSON.stringify(first.error)}\n${output}`);
    const r1 = first.response as { ok: boolean; pipelines: { stored: number }[] };
    assert.equal(r1.ok, true);
    assert.equal(r1.pipelines[0]!.stored, recs.filter((r) => r.audit).length);
    const second = await api.invoke({}, 120_000);
    const r2 = second.response as { ok: boolean; pipelines: { stored: number }[] };
    assert.equal(r2.pipelines[0]!.stored, 0, 'the warm container continues from its state');
    assert.match(output, /State is current\./);
    assert.match(output, new RegExp(`"requestId":"${second.requestId}"`), 'log lines carry the request id');
    const bad = await api.invoke({ pipelines: ['nope'] }, 120_000);
    assert.match(String(bad.error?.errorMessage), /no pipeline nope in the config/);
    assert.equal(api.initError(), null);
  } finally {
    child.kill('SIGKILL');
    await api.close();
  }
});
