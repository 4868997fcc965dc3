/**
 * A handler for package.test.ts, bundled by scripts/package-lambda.mjs (--entry) like src/lambda/index.ts: it
 * goes through what a bundle can get wrong — the AWS SDK v3 (bundled CommonJS that needs require and
 * __dirname), pg (its optional pg-native left out), zstd (a package loaded with createRequire that reads its
 * .wasm next to itself), yaml, DuckDB through src/duckdb/duckdb.ts (the native binding), and the pg_logs
 * parser thread (parse-worker.js next to index.mjs).
 */
import { createRequire } from 'node:module';
import { ListBucketsCommand, S3Client } from '@aws-sdk/client-s3';
import { DescribeDBLogFilesCommand, RDSClient } from '@aws-sdk/client-rds';
import pg from 'pg';
import { DuckDBInstance } from '../../src/duckdb/duckdb.js';
import { compressInto } from '../../src/sinks/archive/compress.js';
import type { ObjectWriter, StoredObject } from '../../src/sinks/archive/store.js';
import { discoverLogFiles, fingerprintFile } from '../../src/sources/pg-logs/files.js';
import { ParseThread } from '../../src/sources/pg-logs/parse-thread.js';

export interface FixtureEvent {
  /** A pgaudit csvlog or jsonlog file, for the parser thread. */
  logFile: string;
}

/** The error an AWS call to a closed port ends with: the SDK got as far as sending. */
async function awsError(send: () => Promise<unknown>): Promise<string> {
  try {
    await send();
    return 'no error';
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? (err as Error).name;
  }
}

export async function handler(event: FixtureEvent, _context: unknown) {
  const aws = { region: 'eu-west-1', endpoint: 'http://127.0.0.1:9', maxAttempts: 1, credentials: { accessKeyId: 'AKIDTEST', secretAccessKey: 'secret' } };
  const s3 = await awsError(() => new S3Client({ ...aws, forcePathStyle: true }).send(new ListBucketsCommand({})));
  const rds = await awsError(() => new RDSClient(aws).send(new DescribeDBLogFilesCommand({ DBInstanceIdentifier: 'db1' })));

  const pgNative = (pg as unknown as { native: unknown }).native;
  const pgClient = typeof pg.Client;

  const chunks: Buffer[] = [];
  const writer: ObjectWriter = {
    uploadId: undefined,
    write: async (chunk) => void chunks.push(chunk),
    finish: async () => ({}) as StoredObject,
    abort: async () => {},
  };
  const input = Buffer.from('auditship '.repeat(1000));
  await compressInto(
    (async function* () {
      yield input;
    })(),
    'zstd',
    3,
    writer,
  );
  const zstd = Buffer.concat(chunks);

  const yaml = (createRequire(import.meta.url)('yaml') as typeof import('yaml')).parse('answer: 42') as { answer: number };

  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  const duckdb = (await connection.runAndReadAll('SELECT 42 AS answer')).getRowObjectsJson()[0];
  connection.closeSync();
  instance.closeSync();

  const { files } = await discoverLogFiles([event.logFile]);
  const file = files[0]!;
  const parser = new ParseThread(
    { server: 'db1', batchBytes: 1 << 20, maxRecordBytes: 1 << 20, packMessage: false, redact: true, patterns: [], profile: false },
    [],
  );
  let events = 0;
  let errors = 0;
  try {
    for await (const item of parser.read(file, (await fingerprintFile(file.path, file.compression)) ?? '', 0, 0)) {
      if (item.type === 'batch') {
        events += item.batch.eventCount;
        item.batch.release?.();
      } else errors++;
    }
  } finally {
    await parser.close();
  }

  return {
    s3,
    rds,
    pgNative,
    pgClient,
    zstd: { input: input.length, output: zstd.length, magic: zstd.subarray(0, 4).toString('hex') },
    yaml: yaml.answer,
    duckdb,
    parser: { events, errors },
  };
}
