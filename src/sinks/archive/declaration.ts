import { resolve } from 'node:path';
import type { SinkDeclaration } from '../../core/declaration.js';
import { ARCHIVE_SINK, type ArchiveConfig } from './config.js';

/** Where an archive sink writes, as a comparable string (two pipelines of one server must not share it). */
export function archiveLocation(sink: ArchiveConfig): string {
  if (sink.directory) return `file:${resolve(sink.directory)}`;
  return `s3:${sink.endpoint ?? ''}/${sink.bucket ?? ''}/${(sink.prefix ?? '').replace(/^\/+|\/+$/g, '')}`;
}

/** The archive sink's keys that only make sense together. */
function archiveProblems(sink: ArchiveConfig, at: string): string[] {
  const out: string[] = [];
  const local = sink.directory !== undefined;
  if (local === (sink.bucket !== undefined)) out.push(`${at}: give either directory (a local archive) or bucket (S3), not ${local ? 'both' : 'neither'}`);
  const mode = sink.object_lock_mode;
  if (mode !== 'none' && sink.object_lock_days === undefined)
    out.push(`${at}.object_lock_days: required with object_lock_mode ${mode} (days each object is retained)`);
  if (mode === 'none' && sink.object_lock_days !== undefined) out.push(`${at}.object_lock_days: only with object_lock_mode GOVERNANCE or COMPLIANCE`);
  if (sink.sse_kms_key_id !== undefined && sink.sse !== 'aws:kms') out.push(`${at}.sse_kms_key_id: only with sse: aws:kms`);
  if (local) {
    for (const k of ['endpoint', 'region', 'sse_kms_key_id', 'access_key_id', 'secret_access_key', 'session_token'] as const) {
      if (sink[k] !== undefined) out.push(`${at}.${k}: applies to a bucket, not to a directory`);
    }
    if (sink.storage_class !== 'STANDARD') out.push(`${at}.storage_class: applies to a bucket, not to a directory`);
    if (sink.sse !== 'none') out.push(`${at}.sse: applies to a bucket, not to a directory`);
    if (mode !== 'none') out.push(`${at}.object_lock_mode: applies to a bucket, not to a directory`);
  }
  if ((sink.access_key_id === undefined) !== (sink.secret_access_key === undefined)) out.push(`${at}: access_key_id and secret_access_key go together`);
  const part = sink.part_size;
  if (part < 5 * 2 ** 20 || part > 5 * 2 ** 30) out.push(`${at}.part_size: ${part} bytes; S3 parts are 5MiB to 5GiB (5MB is less than 5MiB)`);
  return out;
}

/** Sink `archive`: log files and their events as objects in S3-compatible storage or a directory (index.ts). */
export const archive: SinkDeclaration<typeof ARCHIVE_SINK> = {
  role: 'sink',
  spec: ARCHIVE_SINK,
  accepts: ['pgaudit'],
  mismatch: 'the archive sink takes log files and their events: use it in a pg_logs or rds_logs pipeline',
  problems: archiveProblems,
  check: async (pipeline, o, i) => (await import('./check.js')).checkArchive(pipeline, o, i),
  // The manifest state and the objects in flight (state/archive-state.ts).
  tables: async (connection) => {
    await connection.run((await import('../../state/archive-state.js')).ARCHIVE_DDL);
  },
};
