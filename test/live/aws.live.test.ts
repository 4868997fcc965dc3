import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { DeleteObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { entriesOf, parseParts } from '../helpers/archive.js';
import { ROOT, queryDb, runCli, scratchDir } from '../helpers/ingest-cli.js';

/**
 * The archive sink and the rds_logs source against real AWS (or an S3-compatible store), when configured —
 * nothing can reach AWS from the machines CI runs on, so these skip there and say so:
 *   AUDITSHIP_TEST_S3_BUCKET     a bucket the credentials may write, list, read and delete in (a fresh prefix
 *                                auditship-live/<time>/ is used and removed); AUDITSHIP_TEST_S3_ENDPOINT and
 *                                AUDITSHIP_TEST_S3_PATH_STYLE=true for MinIO and the like; AWS_REGION.
 *   AUDITSHIP_TEST_S3_STORAGE_CLASS  optional, e.g. GLACIER_IR.
 *   AUDITSHIP_TEST_RDS_INSTANCE  an RDS/Aurora PostgreSQL instance whose logs may be listed and downloaded
 *                                (AWS_REGION); its completed csvlog files are shipped into a scratch DuckDB.
 * Credentials come from the standard AWS chain (environment, profile, role).
 */
const { dir, cleanup } = scratchDir('live-aws');
after(cleanup);
const bucket = process.env['AUDITSHIP_TEST_S3_BUCKET'];
const instance = process.env['AUDITSHIP_TEST_RDS_INSTANCE'];
const region = process.env['AWS_REGION'] ?? process.env['AWS_DEFAULT_REGION'] ?? 'us-east-1';

describe('archive sink against a live S3 bucket', { skip: bucket ? false : 'AUDITSHIP_TEST_S3_BUCKET is not set' }, () => {
  const prefix = `auditship-live/${Date.now()}/`;
  const endpoint = process.env['AUDITSHIP_TEST_S3_ENDPOINT'];
  const pathStyle = process.env['AUDITSHIP_TEST_S3_PATH_STYLE'] === 'true';
  const client = () => new S3Client({ region, ...(endpoint ? { endpoint } : {}), forcePathStyle: pathStyle });
  after(async () => {
    if (!bucket) return;
    const c = client();
    const r = await c.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
    for (const o of r.Contents ?? []) await c.send(new DeleteObjectCommand({ Bucket: bucket, Key: o.Key! })).catch(() => {});
    c.destroy();
  });

  test('real pgaudit logs archived as files and Parquet; the manifest lists each object once; verify-archive passes', async () => {
    const db = join(dir, 's3.duckdb');
    const config = join(dir, 's3.yaml');
    const common = {
      bucket,
      prefix,
      region,
      ...(endpoint ? { endpoint } : {}),
      force_path_style: pathStyle,
      ...(process.env['AUDITSHIP_TEST_S3_STORAGE_CLASS'] ? { storage_class: process.env['AUDITSHIP_TEST_S3_STORAGE_CLASS'] } : {}),
    };
    writeFileSync(
      config,
      [
        'pipelines:',
        '  logs:',
        `    source: { type: pg_logs, path: ${JSON.stringify(join(ROOT, 'examples', 'pgaudit-logs'))}, server: live }`,
        '    sinks:',
        `      - ${JSON.stringify({ type: 'archive', form: 'files', ...common })}`,
        `      - ${JSON.stringify({ type: 'archive', form: 'parquet', ...common })}`,
        `      - { type: duckdb, path: ${JSON.stringify(db)} }`,
        '',
      ].join('\n'),
    );
    const r = await runCli(['run', '--config', config, '--json']);
    assert.equal(r.code, 0, r.stderr.slice(-3000));
    const again = await runCli(['run', '--config', config, '--json']);
    assert.equal(again.code, 0, again.stderr.slice(-3000));
    const c = client();
    const list = await c.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `${prefix}_manifest/` }));
    const parts = [];
    for (const o of list.Contents ?? []) {
      const { GetObjectCommand } = await import('@aws-sdk/client-s3');
      const g = await c.send(new GetObjectCommand({ Bucket: bucket, Key: o.Key! }));
      parts.push({ key: o.Key!.slice(prefix.length), body: Buffer.from(await g.Body!.transformToByteArray()) });
    }
    c.destroy();
    const entries = entriesOf(parseParts(parts));
    assert.ok(entries.length >= 3);
    assert.equal(new Set(entries.map((e) => e.key)).size, entries.length, 'a rerun archived nothing twice');
    const v = await runCli(['verify-archive', '--config', config]);
    assert.equal(v.code, 0, v.stdout + v.stderr);
  });
});

describe('rds_logs against a live RDS instance', { skip: instance ? false : 'AUDITSHIP_TEST_RDS_INSTANCE is not set' }, () => {
  test('completed log files are downloaded whole, parsed, checkpointed; a rerun downloads nothing', async () => {
    const base = join(dir, 'rds');
    mkdirSync(base, { recursive: true });
    const db = join(base, 'rds.duckdb');
    const config = join(base, 'rds.yaml');
    writeFileSync(
      config,
      [
        'pipelines:',
        '  rds:',
        `    source: ${JSON.stringify({ type: 'rds_logs', instance, region, file_glob: '*.csv' })}`,
        '    sinks:',
        `      - ${JSON.stringify({ type: 'archive', directory: join(base, 'archive') })}`,
        `      - { type: duckdb, path: ${JSON.stringify(db)} }`,
        '',
      ].join('\n'),
    );
    const r = await runCli(['run', '--config', config, '--json']);
    assert.equal(r.code, 0, r.stderr.slice(-3000));
    const shipped = await queryDb(db, 'SELECT count(*) AS n FROM rds_log_files');
    const again = await runCli(['run', '--config', config, '--json']);
    assert.equal(again.code, 0, again.stderr.slice(-3000));
    const summary = (JSON.parse(again.stdout.trim().split('\n').pop()!) as { pipelines: { filesRead: number }[] }).pipelines[0]!;
    assert.equal(summary.filesRead, 0, 'nothing new on the second run');
    assert.ok(Number(shipped[0]!['n']) >= 0);
    const v = await runCli(['verify-archive', '--directory', join(base, 'archive')]);
    assert.ok(v.code === 0 || /holds no manifest/.test(v.stderr), v.stdout + v.stderr);
  });
});
