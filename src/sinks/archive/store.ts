import { createHash, type Hash } from 'node:crypto';

/**
 * Where archived objects go: a local directory or an S3-compatible bucket, behind one small interface so
 * that the archive sink, the manifest and `verify-archive` do not care which.
 *
 * Keys given to a store are relative to its prefix. An object is written through an ObjectWriter that hashes
 * what it stores (SHA-256 of the whole object, MD5 per part for the ETag) and uploads in parts of bounded
 * size, so memory stays at about (upload_concurrency + 1) × part_size whatever the object's size.
 */
export interface PutOptions {
  contentType: string;
  /** Cold classes are for data objects; the manifest always goes to STANDARD. */
  storageClass?: string;
  /** An upper bound of the object's size when known (a log file's size): parts grow so that 10,000 suffice. */
  sizeHint?: number;
  /**
   * A conditional write (S3 only): replace the object only if its ETag is still this one, or ('*' as
   * ifNoneMatch) only if there is none. Refused: a ConnectorError with code `precondition_failed`.
   */
  ifMatch?: string;
  ifNoneMatch?: '*';
}

/** What a finished write stored. */
export interface StoredObject {
  key: string;
  size: number;
  /** SHA-256 (hex) of the object's bytes as stored. */
  sha256: string;
  /** MD5 (hex) of the whole object. */
  md5: string;
  /** The store's ETag as it answered the upload (S3: quoted; multipart: md5 of part md5s + "-N"). */
  etag: string;
  versionId?: string;
  parts: number;
  storageClass: string;
}

/** An object's metadata, as HEAD tells it. */
export interface ObjectHead {
  size: number;
  etag: string;
  storageClass: string;
  versionId?: string;
  /** The store's own SHA-256 checksum where it keeps one (S3 with ChecksumMode: base64, maybe "-N" composite). */
  checksumSha256?: string;
  lastModified?: Date;
}

export interface ListedObject {
  key: string;
  size: number;
  etag: string;
  storageClass: string;
}

export interface ObjectWriter {
  /** Set once a multipart upload has been started (S3), so an interrupted one can be aborted later. */
  readonly uploadId: string | undefined;
  write(chunk: Buffer): Promise<void>;
  /** Completes the object and verifies the store's ETag against what was sent. */
  finish(): Promise<StoredObject>;
  /** Gives up: nothing remains (an S3 multipart upload is aborted, a local temp file removed). */
  abort(): Promise<void>;
}

/** Objects in cold classes cannot be read until restored; verify checks them by HEAD. */
export const COLD_CLASSES: ReadonlySet<string> = new Set(['GLACIER', 'DEEP_ARCHIVE']);

export interface ObjectStore {
  /** The archive's identity and display name: `s3://bucket/prefix/` or `file:///dir/`. */
  readonly where: string;
  /** Reachability and permission: one clear line when the bucket or directory cannot be used. */
  check(): Promise<void>;
  /** Starts an object; `onUploadStarted` gets an S3 multipart upload id as soon as there is one. */
  createWriter(key: string, options: PutOptions, onUploadStarted?: (uploadId: string) => Promise<void>): Promise<ObjectWriter>;
  /** Writes a small object in one request (the manifest). */
  putSmall(key: string, body: Buffer, options: PutOptions): Promise<StoredObject>;
  head(key: string): Promise<ObjectHead | null>;
  /** The object's bytes. Throws ConnectorError code `cold_object` for an object that must be restored first. */
  read(key: string): AsyncIterable<Buffer>;
  list(prefix: string): AsyncIterable<ListedObject>;
  /** Removes an object (S3 with Object Lock: a delete marker; the locked version stays). Missing is fine. */
  delete(key: string): Promise<void>;
  /** Aborts an interrupted multipart upload (S3); nothing to do elsewhere. */
  abortUpload(key: string, uploadId: string): Promise<void>;
  close(): void;
}

/** SHA-256 and MD5 of everything written, and MD5 per part (for the multipart ETag). */
export class ObjectHasher {
  private readonly sha = createHash('sha256');
  private readonly md5 = createHash('md5');
  readonly partMd5s: Buffer[] = [];
  size = 0;

  update(chunk: Buffer): void {
    this.sha.update(chunk);
    this.md5.update(chunk);
    this.size += chunk.length;
  }

  addPart(part: Buffer): Buffer {
    const d = createHash('md5').update(part).digest();
    this.partMd5s.push(d);
    return d;
  }

  digest(): { sha256: string; md5: string; multipartEtag: string | null } {
    const md5 = this.md5.digest('hex');
    const multipartEtag = this.partMd5s.length > 0 ? `${createHash('md5').update(Buffer.concat(this.partMd5s)).digest('hex')}-${this.partMd5s.length}` : null;
    return { sha256: this.sha.digest('hex'), md5, multipartEtag };
  }
}

/** True when `etag` (quotes ignored) is one of the forms an upload of these bytes may have. */
export function etagMatches(etag: string, md5: string, multipartEtag: string | null): boolean {
  const e = etag.replace(/^"|"$/g, '').toLowerCase();
  return e === md5 || (multipartEtag !== null && e === multipartEtag);
}

/** True when an ETag has the MD5-based shape (SSE-KMS and SSE-C ETags are something else). */
export function isMd5Etag(etag: string): boolean {
  return /^"?[0-9a-f]{32}(-\d+)?"?$/i.test(etag);
}

/** A streaming SHA-256 for callers that hash while reading. */
export function sha256Stream(): Hash {
  return createHash('sha256');
}
