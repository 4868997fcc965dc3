import { resolve } from 'node:path';
import { failure, withTimeout, writableDirectory, type CheckResult } from '../../core/check.js';
import type { ArchiveConfig } from './config.js';

/** `auditship check` of an archive sink: the directory is writable, or the bucket answers HeadBucket. */
export async function checkArchive(pipeline: string, sink: ArchiveConfig, i: number): Promise<CheckResult> {
  const id = 'archive';
  const { archiveSinkOptions, openStore } = await import('./index.js');
  const o = archiveSinkOptions(sink);
  if (o.store.kind === 'local') return writableDirectory(id, `pipeline ${pipeline}: sink archive`, resolve(o.store.directory));
  const label = `pipeline ${pipeline}: sink archive s3://${o.store.bucket}/${o.store.prefix}`;
  const store = await openStore({ ...o.store, maxRetries: 1, timeoutMs: 15_000 });
  try {
    await withTimeout(store.check(), `the bucket ${o.store.bucket}`);
    return { id, ok: true, what: `${label}: the bucket answers (HeadBucket)` };
  } catch (err) {
    return failure(id, label, err, `check sinks[${i}].bucket, region/endpoint and the AWS credentials`);
  } finally {
    store.close();
  }
}
