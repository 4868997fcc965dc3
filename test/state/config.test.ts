import assert from 'node:assert/strict';
import { test } from 'node:test';
import { validateConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/core/errors.js';
import { runCli, scratchDir } from '../helpers/ingest-cli.js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** The `state` section of a pipeline: checked like every section, one line per problem. */
const source = { type: 'pg_logs', path: '/var/log/postgresql' };

function problems(doc: unknown): string[] {
  try {
    validateConfig(doc, {});
    return [];
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
}

test('a state section is decoded with its defaults', () => {
  const c = validateConfig({ pipelines: { p: { source, sinks: [{ type: 'duckdb', path: '/tmp/a.duckdb' }], state: { bucket: 'b', key: 'k/s.duckdb' } } } }, {});
  assert.deepEqual(c.pipelines[0]!.state, { bucket: 'b', key: 'k/s.duckdb', force_path_style: false, sse: 'none', max_retries: 8, timeout_ms: 120000 });
});

test('a state without bucket or key, with a prefix for a key, or an unknown key: one line each', () => {
  assert.deepEqual(problems({ pipelines: { p: { source, sinks: [{ type: 'duckdb' }], state: { key: 'x/', colour: 1 } } } }).sort(), [
    'pipelines.p.state.bucket: required (The S3 bucket that keeps the state file)',
    'pipelines.p.state.colour: unknown key in a state section; allowed: bucket, key, region, endpoint, force_path_style, sse, sse_kms_key_id, access_key_id, secret_access_key, session_token, max_retries, timeout_ms',
    'pipelines.p.state.key: a key of an object, not a prefix',
  ]);
});

test('two pipelines on one DuckDB file must keep it in the same place', () => {
  const sinks = [{ type: 'duckdb', path: '/tmp/shared.duckdb' }];
  const p = problems({
    pipelines: { a: { source, sinks, state: { bucket: 'b', key: 'one' } }, b: { source: { ...source, server: 'x' }, sinks } },
  });
  assert.equal(p.length, 1);
  assert.match(p[0]!, /^pipelines\.b\.state: pipeline a keeps \/tmp\/shared\.duckdb in s3:\/\/b\/one, this one in the local disk only/);
});

test('run --follow refuses a pipeline whose state is in S3, with one line and exit 2', async () => {
  const { dir, cleanup } = scratchDir('state-follow-');
  try {
    const cfg = join(dir, 'c.yaml');
    writeFileSync(
      cfg,
      JSON.stringify({
        pipelines: { p: { source: { ...source, path: dir }, sinks: [{ type: 'duckdb', path: join(dir, 'x.duckdb') }], state: { bucket: 'b', key: 'k' } } },
      }),
    );
    const r = await runCli(['run', '--follow', '--config', cfg]);
    assert.equal(r.code, 2);
    assert.match(r.stderr.trim(), /^auditship: pipeline p keeps its state in S3, which one-shot runs do .*run --follow` keeps its state on the local disk/);
  } finally {
    cleanup();
  }
});
