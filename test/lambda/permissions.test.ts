import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { templatePolicy } from './template.js';
import { validateConfig } from '../../src/config/load.js';
import { AWS_CALLS, OPTIONAL_ACTIONS } from '../../src/lambda/permissions.js';
import { ROOT } from '../helpers/ingest-cli.js';

/**
 * Least privilege, checked: the AWS calls in the code (every `new …Command(` of the AWS SDK in src/, and RDS's
 * signed REST download) are the ones src/lambda/permissions.ts lists, and the IAM policy of
 * deploy/lambda/template.yaml grants exactly the actions they need — each on the resources it acts on (RDS
 * instances; bucket-level actions on buckets, object-level ones on objects) — plus only the optional ones
 * whose option the template offers. The bundled example config validates with the environment the template
 * sets. (test/lambda/handler.test.ts checks the requests the test servers saw against the same policy.)
 */

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? sourceFiles(p) : p.endsWith('.ts') ? [p] : [];
  });
}

test('every AWS call in the code is listed with its IAM actions, and every listed call is made', () => {
  const found = new Map<string, string>();
  for (const file of sourceFiles(join(ROOT, 'src'))) {
    const text = readFileSync(file, 'utf8');
    if (!/@aws-sdk\/client-|downloadCompleteLogFile/.test(text)) continue;
    for (const m of text.matchAll(/new ([A-Z][A-Za-z0-9]+)Command\(/g)) found.set(m[1]!, relative(ROOT, file));
    if (/\/v\d+\/downloadCompleteLogFile\//.test(text)) found.set('downloadCompleteLogFile', relative(ROOT, file));
  }
  for (const [call, file] of found) assert.ok(AWS_CALLS[call], `${file} calls ${call}: add it and its IAM actions to src/lambda/permissions.ts`);
  for (const call of Object.keys(AWS_CALLS)) assert.ok(found.has(call), `src/lambda/permissions.ts lists ${call}, which no code calls`);
});

test("the template's policy grants exactly the actions of the code's calls, each on its kind of resource", () => {
  const { statements, conditional } = templatePolicy();
  const needed = new Set(Object.values(AWS_CALLS).flat());
  const granted = new Set(statements.flatMap((s) => s.Action).filter((a) => !a.startsWith('logs:')));
  assert.deepEqual([...granted].sort(), [...needed].sort(), 'granted = needed');
  for (const s of [...statements, ...conditional]) {
    assert.equal(s.Effect, 'Allow');
    for (const a of s.Action) assert.ok(!a.includes('*'), `${s.Sid}: ${a} is a wildcard`);
    const resource = JSON.stringify(s.Resource);
    assert.ok(!/"\*"/.test(resource), `${s.Sid}: Resource "*"`);
    const service = new Set(s.Action.map((a) => a.split(':')[0]));
    assert.equal(service.size, 1, `${s.Sid}: one service per statement`);
    if (service.has('rds')) assert.match(resource, /arn:\$\{AWS::Partition\}:rds:\$\{AWS::Region\}:\$\{AWS::AccountId\}:db:/, `${s.Sid}: on the instances`);
    if (service.has('s3')) {
      // Bucket-level actions on the bucket (GetAtt X.Arn), object-level ones on its objects (X.Arn/*).
      const bucketLevel = s.Action.every((a) => a === 's3:ListBucket' || a === 's3:ListBucketMultipartUploads');
      if (bucketLevel) assert.match(resource, /"fn":"GetAtt","args":"(Archive|State)Bucket\.Arn"/, `${s.Sid}: on a bucket`);
      else assert.match(resource, /"fn":"Sub","args":"\$\{(Archive|State)Bucket\.Arn\}\/\*"/, `${s.Sid}: on objects`);
      assert.ok(
        s.Action.every((a) => a === 's3:ListBucket' || a === 's3:ListBucketMultipartUploads') || s.Action.every((a) => a !== 's3:ListBucket'),
        `${s.Sid}: bucket- and object-level actions apart`,
      );
    }
    if (service.has('logs')) assert.match(resource, /LogGroup\.Arn/, `${s.Sid}: its own log group only`);
  }
  // The state bucket gets only what the state needs (src/jobs/remote-state.ts): no delete, no listing of uploads.
  const state = statements.filter((s) => JSON.stringify(s.Resource).includes('StateBucket'));
  assert.deepEqual(state.flatMap((s) => s.Action).sort(), ['s3:AbortMultipartUpload', 's3:GetObject', 's3:ListBucket', 's3:PutObject']);
  // Optional actions only under their option's condition.
  for (const s of conditional) for (const a of s.Action) assert.ok(OPTIONAL_ACTIONS[a], `${s.Sid}: ${a} is not an optional action`);
  assert.deepEqual(
    conditional.flatMap((s) => s.Action),
    ['s3:PutObjectRetention'],
  );
});

test('the bundled example config validates with the environment the template gives the function', () => {
  const { template } = templatePolicy();
  const fn = (template['Resources'] as Record<string, { Properties: Record<string, unknown> }>)['Function']!;
  const vars = (fn.Properties['Environment'] as { Variables: Record<string, unknown> }).Variables;
  const doc = parse(readFileSync(join(ROOT, 'deploy', 'lambda', 'auditship.yaml'), 'utf8')) as unknown;
  for (const lock of [false, true]) {
    const env: Record<string, string> = {};
    for (const name of Object.keys(vars)) env[name] = 'x';
    Object.assign(env, { ARCHIVE_STORAGE_CLASS: 'GLACIER_IR', ARCHIVE_OBJECT_LOCK_MODE: lock ? 'COMPLIANCE' : 'none', AUDITSHIP_TIME_MARGIN_MS: '90000' });
    if (lock) env['ARCHIVE_OBJECT_LOCK_DAYS'] = '2555';
    else delete env['ARCHIVE_OBJECT_LOCK_DAYS'];
    const config = validateConfig(doc, env);
    for (const p of config.pipelines) {
      assert.equal(p.source.type, 'rds_logs', 'the policy covers rds_logs sources');
      assert.deepEqual(
        p.sinks.map((s) => s.type),
        ['archive', 'duckdb'],
      );
      assert.ok(p.state, 'the state is kept in the state bucket');
      const archive = p.sinks[0]!;
      assert.equal(archive.type === 'archive' && archive.object_lock_mode, lock ? 'COMPLIANCE' : 'none');
    }
  }
});
