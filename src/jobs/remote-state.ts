import { createHash, randomBytes } from 'node:crypto';
import { processAlive } from '../core/pid.js';
import {
  closeSync,
  existsSync,
  mkdirSync,
  fsyncSync,
  openSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { createReadStream } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { StateConfig } from '../config/load.js';
import { decodeSink } from '../config/load.js';
import { ConfigError, ConnectorError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { archiveSinkOptions, openStore } from '../sinks/archive/index.js';
import { S3Store } from '../sinks/archive/store-s3.js';

/**
 * A pipeline's DuckDB file kept in an S3 bucket between runs (`state:` of a pipeline), for hosts whose disk does
 * not outlive a run: an AWS Lambda invocation, a container. The local file is a cache of one version of the
 * object, named in a sidecar (`<db>.state.json`: the object and the ETag the file descends from).
 *
 *  - fetch(): a GET with If-None-Match on that ETag — the local copy is used as it is when the object did not
 *    change (a warm Lambda container), else the object is downloaded beside the file and renamed over it (a kill
 *    leaves the old file or the new one, never half of one). No object: the run starts from the local file, if
 *    any (a store that moves to S3), else from nothing.
 *  - push(): after the pipeline closed the file, a conditional PUT: If-Match the ETag fetched, If-None-Match: *
 *    when there was none. Another run that moved the state in between makes it fail with 412: this run's
 *    checkpoints are not kept (ConnectorError `state_conflict`, one line), and what it shipped is recognised by
 *    the next run as after a kill (archive objects are written under the same keys; search documents have ids).
 *    S3 replaces an object atomically, so a run killed at any point leaves the old state or the new one.
 *  - One process at a time per local file (`<db>.state-lock`, with the pid; a dead holder's lock is taken over).
 */
export interface StateTransfer {
  /** Bytes moved (0: the local copy was current). */
  bytes: number;
  ms: number;
}

interface Sidecar {
  where: string;
  etag: string;
}

/** Parts this large are written in one PUT: a state file up to this size is never a multipart upload. */
const SINGLE_PUT_BYTES = 256 << 20;

export class RemoteState {
  /** The ETag of the remote version the local file descends from; null: there was no object. */
  private etag: string | null = null;
  private locked = false;

  private constructor(
    private readonly store: S3Store,
    private readonly key: string,
    readonly where: string,
    private readonly local: string,
    private readonly log: Logger,
  ) {}

  static async open(config: StateConfig, localPath: string, log: Logger, at = 'state'): Promise<RemoteState> {
    const problems: string[] = [];
    const endpoint = config.endpoint ?? process.env['AWS_ENDPOINT_URL_S3'];
    const cfg = decodeSink(
      {
        type: 'archive',
        bucket: config.bucket,
        ...(endpoint ? { endpoint } : {}),
        ...(config.region ? { region: config.region } : {}),
        force_path_style: config.force_path_style || (endpoint !== undefined && config.endpoint === undefined),
        sse: config.sse,
        ...(config.sse_kms_key_id ? { sse_kms_key_id: config.sse_kms_key_id } : {}),
        ...(config.access_key_id ? { access_key_id: config.access_key_id } : {}),
        ...(config.secret_access_key ? { secret_access_key: config.secret_access_key } : {}),
        ...(config.session_token ? { session_token: config.session_token } : {}),
        max_retries: config.max_retries,
        timeout_ms: config.timeout_ms,
        part_size: SINGLE_PUT_BYTES,
        upload_concurrency: 1,
      },
      at,
      problems,
    );
    if (problems.length || cfg?.type !== 'archive') throw new ConfigError(problems);
    const store = await openStore(archiveSinkOptions(cfg).store);
    if (!(store instanceof S3Store)) throw new ConfigError([`${at}: the state is kept in an S3 bucket`]);
    return new RemoteState(store, config.key, `s3://${config.bucket}/${config.key}`, resolve(localPath), log);
  }

  private get sidecarPath(): string {
    return `${this.local}.state.json`;
  }

  private readSidecar(): Sidecar | null {
    try {
      const s = JSON.parse(readFileSync(this.sidecarPath, 'utf8')) as Sidecar;
      return typeof s.where === 'string' && typeof s.etag === 'string' ? s : null;
    } catch {
      return null;
    }
  }

  private writeSidecar(etag: string): void {
    const tmp = `${this.sidecarPath}.${process.pid}`;
    writeFileSync(tmp, JSON.stringify({ where: this.where, etag } satisfies Sidecar));
    renameSync(tmp, this.sidecarPath);
  }

  /** Takes the local file for this process: a second process on the same file would rename under the first. */
  private lock(): void {
    const path = `${this.local}.state-lock`;
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        writeFileSync(path, String(process.pid), { flag: 'wx' });
        this.locked = true;
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        const pid = Number(readFileSync(path, 'utf8'));
        if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && processAlive(pid))
          throw new ConnectorError('state', 'state_busy', `${this.local} is in use by another auditship process (pid ${pid}) with state ${this.where}`, false);
        rmSync(path, { force: true }); // its holder is gone
      }
    }
    throw new ConnectorError('state', 'state_busy', `cannot take ${this.local}.state-lock`, false);
  }

  /** Brings the local file to the object's current version (or keeps it when it is that version). */
  async fetch(): Promise<StateTransfer> {
    const started = Date.now();
    mkdirSync(dirname(this.local), { recursive: true });
    this.lock();
    removeLeftovers(this.local);
    const side = this.readSidecar();
    const here = existsSync(this.local);
    const mine = side !== null && side.where === this.where && here;
    const got = await this.store.getIfChanged(this.key, mine ? side.etag : undefined).catch((err: unknown) => {
      throw restate(err, `fetching the state ${this.where}`);
    });
    if (got === 'unchanged') {
      this.etag = side!.etag;
      this.log.info('State is current.', { state: this.where, ms: Date.now() - started });
      return { bytes: 0, ms: Date.now() - started };
    }
    if (got === null) {
      this.etag = null;
      if (here && side && side.where !== this.where) {
        // The local file is another state's copy: not this pipeline's history.
        rmSync(this.local, { force: true });
        rmSync(`${this.local}.wal`, { force: true });
        this.log.info('No state in the bucket yet; the local file belonged to another state and was set aside.', { state: this.where });
      } else if (mine) {
        this.log.warn('The state object is gone from the bucket; this run goes on from the local copy and writes it anew.', { state: this.where });
      } else if (here) {
        this.log.info('No state in the bucket yet: the local DuckDB file becomes the first state.', { state: this.where, db: this.local });
      } else {
        this.log.info('No state in the bucket yet: starting a new one.', { state: this.where });
      }
      return { bytes: 0, ms: Date.now() - started };
    }
    const tmp = `${this.local}.fetch-${process.pid}-${randomBytes(4).toString('hex')}`;
    let bytes = 0;
    try {
      const fd = openSync(tmp, 'w', 0o600);
      try {
        for await (const chunk of got.body) {
          let at = 0;
          while (at < chunk.length) at += writeSync(fd, chunk, at);
          bytes += chunk.length;
        }
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      if (bytes !== got.size)
        throw new ConnectorError('state', 'state_truncated', `the state ${this.where} ended after ${bytes} of ${got.size} bytes; run again`, true);
      // The file is replaced whole; a WAL of the old file would be replayed into the new one.
      rmSync(`${this.local}.wal`, { force: true });
      renameSync(tmp, this.local);
    } catch (err) {
      rmSync(tmp, { force: true });
      throw restate(err, `fetching the state ${this.where}`);
    }
    this.writeSidecar(got.etag);
    this.etag = got.etag;
    this.log.info('State fetched.', { state: this.where, bytes, ms: Date.now() - started });
    return { bytes, ms: Date.now() - started };
  }

  /** Writes the local file back, conditionally; the pipeline must have closed it. */
  async push(): Promise<StateTransfer> {
    const started = Date.now();
    if (!existsSync(this.local))
      throw new ConnectorError('state', 'state_missing', `${this.local} does not exist: nothing to write back to ${this.where}`, false);
    const wal = `${this.local}.wal`;
    if (existsSync(wal) && statSync(wal).size > 0)
      throw new ConnectorError('state', 'state_open', `${this.local} still has a write-ahead log: it was not closed, so it is not written back`, false);
    const size = statSync(this.local).size;
    // A run that stored nothing leaves the file as fetched: its MD5 is the object's ETag (one PUT, not SSE-KMS).
    if (this.etag !== null && /^"?[0-9a-f]{32}"?$/i.test(this.etag) && (await md5File(this.local)) === this.etag.replace(/"/g, '').toLowerCase()) {
      this.log.info('State unchanged: not written back.', { state: this.where, ms: Date.now() - started });
      return { bytes: 0, ms: Date.now() - started };
    }
    const writer = await this.store.createWriter(this.key, {
      contentType: 'application/octet-stream',
      sizeHint: size,
      storageClass: 'STANDARD',
      ...(this.etag !== null ? { ifMatch: this.etag } : { ifNoneMatch: '*' }),
    });
    let etag: string;
    try {
      for await (const chunk of createReadStream(this.local, { highWaterMark: 1 << 20 })) await writer.write(chunk as Buffer);
      etag = (await writer.finish()).etag;
    } catch (err) {
      await writer.abort().catch(() => {});
      if (err instanceof ConnectorError && err.code === 'precondition_failed')
        throw new ConnectorError(
          'state',
          'state_conflict',
          `the state ${this.where} was moved by another run since this one fetched it: this run's checkpoints are not kept (what it shipped is recognised by the next run)`,
          false,
          { cause: err },
        );
      throw restate(err, `writing the state back to ${this.where}`);
    }
    this.writeSidecar(etag);
    this.etag = etag;
    this.log.info('State written back.', { state: this.where, bytes: size, ms: Date.now() - started });
    return { bytes: size, ms: Date.now() - started };
  }

  close(): void {
    if (this.locked) rmSync(`${this.local}.state-lock`, { force: true });
    this.locked = false;
    this.store.close();
  }
}

async function md5File(path: string): Promise<string> {
  const h = createHash('md5');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Downloads a killed run left beside the file (`<db>.fetch-PID-…`). */
function removeLeftovers(local: string): void {
  const dir = dirname(local);
  const stem = `${basename(local)}.fetch-`;
  let names: string[] = [];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const n of names) if (n.startsWith(stem)) rmSync(join(dir, n), { force: true });
}

/** An S3 error of the state names the state, not an archive. */
function restate(err: unknown, doing: string): unknown {
  if (err instanceof ConnectorError && err.component === 'archive')
    return new ConnectorError('state', err.code, `${doing}: ${err.message}`, err.retryable, { cause: err.cause ?? err });
  return err;
}
