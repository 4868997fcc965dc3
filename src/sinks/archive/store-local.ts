import { randomBytes } from 'node:crypto';
import { constants, createReadStream, promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ConnectorError, describeFileError } from '../../core/errors.js';
import { ObjectHasher, type ListedObject, type ObjectHead, type ObjectStore, type ObjectWriter, type PutOptions, type StoredObject } from './store.js';

/**
 * A local directory as an object store: a key is a relative path. An object is written to a temp file
 * next to its place (`.<name>.partial-<tag>`), fsynced, renamed into place and its directory fsynced, so a
 * reader never sees half an object and a kill leaves at most a temp file (removed by the sink's reconcile).
 * There is no storage class and no metadata: verify re-hashes every object.
 */
export class LocalStore implements ObjectStore {
  readonly where: string;
  private readonly root: string;

  constructor(directory: string) {
    this.root = resolve(directory);
    this.where = pathToFileURL(this.root + sep).href;
  }

  private pathOf(key: string): string {
    const p = resolve(this.root, key);
    if (p !== this.root && !p.startsWith(this.root + sep))
      throw new ConnectorError('archive', 'bad_key', `object key ${key} leaves the archive directory`, false);
    return p;
  }

  async check(): Promise<void> {
    try {
      await fsp.mkdir(this.root, { recursive: true });
      await fsp.access(this.root, constants.W_OK | constants.R_OK);
    } catch (err) {
      throw new ConnectorError(
        'archive',
        'directory_unwritable',
        describeFileError(err, this.root, 'opening the archive directory') ?? `cannot use ${this.root} as the archive directory: ${(err as Error).message}`,
        false,
        { cause: err },
      );
    }
  }

  async createWriter(key: string, _options: PutOptions): Promise<ObjectWriter> {
    const final = this.pathOf(key);
    const dir = dirname(final);
    const temp = join(dir, `.${final.slice(dir.length + 1)}.partial-${randomBytes(4).toString('hex')}`);
    let fh: FileHandle;
    try {
      await fsp.mkdir(dir, { recursive: true });
      fh = await fsp.open(temp, 'wx');
    } catch (err) {
      throw fileError(err, final, 'writing an archive object');
    }
    const hasher = new ObjectHasher();
    let done = false;
    return {
      uploadId: undefined,
      async write(chunk: Buffer) {
        hasher.update(chunk);
        try {
          await fh.write(chunk);
        } catch (err) {
          throw fileError(err, final, 'writing an archive object');
        }
      },
      async finish(): Promise<StoredObject> {
        try {
          await fh.sync();
          await fh.close();
          await fsp.rename(temp, final);
          await syncDir(dir);
        } catch (err) {
          await fsp.rm(temp, { force: true }).catch(() => {});
          throw fileError(err, final, 'writing an archive object');
        }
        done = true;
        const d = hasher.digest();
        return { key, size: hasher.size, sha256: d.sha256, md5: d.md5, etag: `"${d.md5}"`, parts: 1, storageClass: 'LOCAL' };
      },
      async abort() {
        if (done) return;
        await fh.close().catch(() => {});
        await fsp.rm(temp, { force: true }).catch(() => {});
      },
    };
  }

  async putSmall(key: string, body: Buffer, options: PutOptions): Promise<StoredObject> {
    const w = await this.createWriter(key, options);
    await w.write(body);
    return w.finish();
  }

  async head(key: string): Promise<ObjectHead | null> {
    try {
      const st = await fsp.stat(this.pathOf(key));
      return { size: st.size, etag: '', storageClass: 'LOCAL', lastModified: st.mtime };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw fileError(err, this.pathOf(key), 'reading an archive object');
    }
  }

  async *read(key: string): AsyncIterable<Buffer> {
    const path = this.pathOf(key);
    try {
      for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) yield chunk as Buffer;
    } catch (err) {
      throw fileError(err, path, 'reading an archive object');
    }
  }

  async *list(prefix: string): AsyncIterable<ListedObject> {
    const walk = async function* (dir: string, root: string): AsyncIterable<ListedObject> {
      let entries;
      try {
        entries = await fsp.readdir(dir, { withFileTypes: true });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw fileError(err, dir, 'listing the archive');
      }
      for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
        const p = join(dir, e.name);
        if (e.isDirectory()) yield* walk(p, root);
        else if (e.isFile() && !e.name.includes('.partial-')) {
          const st = await fsp.stat(p);
          yield { key: relative(root, p).split(sep).join('/'), size: st.size, etag: '', storageClass: 'LOCAL' };
        }
      }
    };
    for await (const o of walk(this.root, this.root)) if (o.key.startsWith(prefix)) yield o;
  }

  async delete(key: string): Promise<void> {
    const path = this.pathOf(key);
    await fsp.rm(path, { force: true }).catch((err: unknown) => {
      throw fileError(err, path, 'removing an archive object');
    });
    // Temp files of an interrupted write of this key.
    const dir = dirname(path);
    const base = `.${path.slice(dir.length + 1)}.partial-`;
    const names = await fsp.readdir(dir).catch(() => [] as string[]);
    for (const n of names) if (n.startsWith(base)) await fsp.rm(join(dir, n), { force: true }).catch(() => {});
  }

  async abortUpload(): Promise<void> {}

  close(): void {}
}

async function syncDir(dir: string): Promise<void> {
  let fh: FileHandle | undefined;
  try {
    fh = await fsp.open(dir, 'r');
    await fh.sync();
  } catch {
    // Some file systems refuse fsync on a directory; the rename is still atomic.
  } finally {
    await fh?.close();
  }
}

function fileError(err: unknown, path: string, action: string): ConnectorError {
  if (err instanceof ConnectorError) return err;
  return new ConnectorError('archive', 'file_error', describeFileError(err, path, action) ?? `${action} failed on ${path}: ${(err as Error).message}`, false, {
    cause: err,
  });
}
