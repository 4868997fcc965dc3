import type { ArchiveConfig } from './config.js';
import type { Logger } from '../../core/log.js';
import type { ArchiveState } from '../../state/archive-state.js';
import { defaultLevel, type Compression } from './compress.js';
import { manifestKey, type ArchiveForm } from './layout.js';
import { renderPart, type ManifestHeader } from './manifest.js';
import { LocalStore } from './store-local.js';
import type { S3StoreOptions } from './store-s3.js';
import type { ObjectStore, ObjectWriter, PutOptions, StoredObject } from './store.js';

/** An archive's options, its store, and the operations both event forms and the files form share (the sink: index.ts). */
export interface ArchiveSinkOptions {
  form: ArchiveForm;
  compression: Compression;
  compressionLevel: number;
  fileConcurrency: number;
  /** Form parquet: the memory cap for writing a range with very large records (bytes). */
  parquetMemoryLimit: number;
  storageClass: string;
  sse?: string;
  objectLock?: { mode: 'GOVERNANCE' | 'COMPLIANCE'; days: number };
  store: { kind: 'local'; directory: string } | ({ kind: 's3' } & S3StoreOptions);
}

/** The sink options from a validated `archive` sink config. */
export function archiveSinkOptions(cfg: ArchiveConfig): ArchiveSinkOptions {
  const compression = cfg.compression;
  const storageClass = cfg.storage_class;
  const sse = cfg.sse !== 'none' ? cfg.sse : undefined;
  const objectLock = cfg.object_lock_mode !== 'none' ? { mode: cfg.object_lock_mode, days: cfg.object_lock_days ?? 0 } : undefined;
  let prefix = (cfg.prefix ?? '').replace(/^\/+/, '');
  if (prefix && !prefix.endsWith('/')) prefix += '/';
  const { access_key_id: accessKeyId, secret_access_key: secretAccessKey, session_token: sessionToken } = cfg;
  return {
    form: cfg.form,
    compression,
    compressionLevel: cfg.compression_level ?? defaultLevel(compression),
    fileConcurrency: cfg.file_concurrency,
    parquetMemoryLimit: cfg.parquet_memory_limit,
    storageClass,
    ...(sse ? { sse } : {}),
    ...(objectLock ? { objectLock } : {}),
    store: cfg.directory
      ? { kind: 'local', directory: cfg.directory }
      : {
          kind: 's3',
          bucket: cfg.bucket!,
          prefix,
          region: cfg.region || process.env['AWS_REGION'] || process.env['AWS_DEFAULT_REGION'] || 'us-east-1',
          ...(cfg.endpoint ? { endpoint: cfg.endpoint } : {}),
          forcePathStyle: cfg.force_path_style,
          storageClass,
          ...(sse ? { sse } : {}),
          ...(cfg.sse_kms_key_id ? { sseKmsKeyId: cfg.sse_kms_key_id } : {}),
          ...(objectLock ? { objectLock } : {}),
          partSize: cfg.part_size,
          concurrency: cfg.upload_concurrency,
          maxRetries: cfg.max_retries,
          timeoutMs: cfg.timeout_ms,
          requestChecksumCalculation: cfg.request_checksum_calculation === 'when_required' ? 'WHEN_REQUIRED' : 'WHEN_SUPPORTED',
          ...(accessKeyId && secretAccessKey ? { credentials: { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) } } : {}),
        },
  };
}

/** The store of an archive; the AWS SDK is loaded only for a bucket. */
export async function openStore(options: ArchiveSinkOptions['store']): Promise<ObjectStore> {
  if (options.kind === 'local') return new LocalStore(options.directory);
  const { S3Store } = await import('./store-s3.js');
  return new S3Store(options);
}

/** The archive of one pipeline: its store, its state in DuckDB, and the operations both forms share. */
export class Archive {
  constructor(
    readonly store: ObjectStore,
    readonly state: ArchiveState,
    readonly options: ArchiveSinkOptions,
    private readonly log: Logger,
  ) {}

  get where(): string {
    return this.store.where;
  }

  /** Object Lock retention of an object written now, for its manifest entry. */
  lockOf(): { mode: string; retain_until: string } | undefined {
    const l = this.options.objectLock;
    return l ? { mode: l.mode, retain_until: new Date(Date.now() + l.days * 86_400_000).toISOString() } : undefined;
  }

  /**
   * Removes what an interrupted run left: objects whose manifest entry never committed, and their unfinished
   * uploads. Pending marks of committed objects are just dropped.
   */
  async reconcile(): Promise<number> {
    let removed = 0;
    for (const p of await this.state.pendingObjects()) {
      if (!p.committed) {
        if (p.uploadId) await this.store.abortUpload(p.key, p.uploadId);
        await this.store.delete(p.key);
        removed++;
      }
      await this.state.dropPending(p.key);
    }
    if (removed)
      this.log.info('Removed objects of an interrupted archive run; their source ranges are archived again.', { archive: this.where, objects: removed });
    return removed;
  }

  /** Starts an object: its key is marked pending (durably) before anything is written. */
  async openObject(key: string, put: PutOptions): Promise<ObjectWriter> {
    await this.state.pending(key);
    return this.store.createWriter(key, put, (id) => this.state.uploadStarted(key, id));
  }

  /** Gives up an object: the write is aborted, anything stored under the key removed, the mark dropped. */
  async abandon(key: string, writer: ObjectWriter): Promise<void> {
    await writer.abort();
    await this.store.delete(key).catch(() => {});
    await this.state.dropPending(key).catch(() => {});
  }

  /**
   * Writes one object: `produce` streams the bytes, then the object is finished and checked. On failure
   * nothing remains.
   */
  async writeObject(key: string, put: PutOptions, produce: (w: ObjectWriter) => Promise<void>): Promise<StoredObject> {
    const writer = await this.openObject(key, put);
    try {
      await produce(writer);
      return await writer.finish();
    } catch (err) {
      await this.abandon(key, writer);
      throw err;
    }
  }

  /** Deletes an object this run wrote but will not commit (it changed while being archived). */
  async discard(key: string): Promise<void> {
    await this.store.delete(key);
    await this.state.dropPending(key);
  }

  /**
   * Publishes committed entries that are in no manifest part yet as one new part (STANDARD class: it must
   * stay readable), chained to the previous one. A part cut short by a kill is written again, whole, with
   * the same name: its entries are still unpublished in the state.
   */
  async publishManifest(): Promise<number> {
    const { entries, prevKey, prevSha256 } = await this.state.unpublished();
    if (entries.length === 0) return 0;
    const first = entries[0]!.seq,
      last = entries[entries.length - 1]!.seq;
    const key = manifestKey(this.state.server, this.state.writer, first);
    const header: ManifestHeader = {
      manifest_part: 1,
      writer: this.state.writer,
      server: this.state.server,
      first_seq: first,
      last_seq: last,
      entries: entries.length,
      prev_key: prevKey,
      prev_sha256: prevSha256,
      created_at: new Date().toISOString(),
    };
    const heads = await this.state.ledgerHeads();
    if (heads.length) header.ledger_heads = heads;
    // Not marked pending: a part is never an orphan (its entries stay unpublished until it is stored).
    const stored = await this.store.putSmall(key, renderPart(header, entries), { contentType: 'application/x-ndjson', storageClass: 'STANDARD' });
    await this.state.markPublished(key, stored.sha256, first, last);
    this.log.info('Manifest part published.', { archive: this.where, key, entries: entries.length });
    return entries.length;
  }

  close(): void {
    this.state.close();
    this.store.close();
  }
}
