import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { ConnectorError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import type { ShippedRdsFile } from '../../state/rds-files.js';
import { globToRegExp } from '../pg-logs/glob.js';
import type { LogFile, LogFormat } from '../pg-logs/files.js';
import { RdsApi, type DownloadResult, type RdsApiOptions, type RdsLogFile } from './api.js';

/**
 * Source `rds_logs`: the log files of an RDS or Aurora PostgreSQL instance.
 *
 * Each run lists the files (DescribeDBLogFiles, every page) and compares them with the checkpoint
 * (`rds_log_files`: name, size, last write of what was shipped) — never a time window, so a late or failed
 * run misses nothing and a file is not shipped twice. The newest file of each kind (csvlog `.csv`, stderr)
 * is the one PostgreSQL writes and is skipped (RDS with stderr + csvlog has two live files), unless it was
 * not written for `idle_complete_minutes`. Each file to ship is downloaded to a local spool file — whole,
 * by the REST download, or by portions — and the download is checked: listed again afterwards, a file
 * whose size or last write moved is downloaded again, and a copy whose length differs from the listed size
 * is refused. The copy then goes through the pg_logs parser (csvlog files: events into the pipeline's
 * sinks) and to the archive sinks, and only then is the file checkpointed (jobs/rds.ts).
 */
export interface RdsLogsOptions extends RdsApiOptions {
  server: string;
  fileGlob: string;
  download: 'auto' | 'complete' | 'portion';
  idleCompleteMinutes: number;
}

export interface RdsPlan {
  /** Files to ship, oldest first. */
  ship: RdsLogFile[];
  /** The live files skipped. */
  active: RdsLogFile[];
  unchanged: number;
  filtered: number;
}

export interface FetchedFile {
  file: RdsLogFile;
  path: string;
  download: DownloadResult;
}

/** The log format of an RDS log file name; null for stderr logs (archived, not parsed). */
export function formatOf(name: string): LogFormat | null {
  if (name.endsWith('.csv')) return 'csvlog';
  if (name.endsWith('.json')) return 'jsonlog';
  return null;
}

/** A glob over the whole LogFileName: `*` also crosses `/` (error/postgresql.log.*). */
function nameGlob(glob: string): RegExp {
  return new RegExp(globToRegExp(glob).source.replaceAll('[^/]*', '.*').replaceAll('[^/]', '.'));
}

const MAX_DOWNLOAD_ATTEMPTS = 3;

export class RdsLogsSource {
  readonly api: RdsApi;
  private method: 'complete' | 'portion';

  constructor(
    private readonly options: RdsLogsOptions,
    private readonly log: Logger,
  ) {
    this.api = new RdsApi(options, log);
    this.method = options.download === 'portion' ? 'portion' : 'complete';
  }

  get where(): string {
    return this.api.where;
  }

  /** rds:<region>/<instance>/<name>: where a file is said to be in checkpoints, quarantine and the manifest. */
  location(name: string): string {
    return `${this.api.where}/${name}`;
  }

  async plan(shipped: Map<string, ShippedRdsFile>, now = Date.now()): Promise<RdsPlan> {
    const all = await this.api.listFiles();
    const glob = nameGlob(this.options.fileGlob);
    const files = all.filter((f) => glob.test(f.name));
    const newest = new Map<string, RdsLogFile>();
    for (const f of files) {
      const kind = formatOf(f.name) ?? 'stderr';
      const cur = newest.get(kind);
      if (!cur || f.lastWritten > cur.lastWritten || (f.lastWritten === cur.lastWritten && f.name > cur.name)) newest.set(kind, f);
    }
    const idleMs = this.options.idleCompleteMinutes * 60_000;
    const live = new Set([...newest.values()].filter((f) => idleMs === 0 || now - f.lastWritten < idleMs));
    const plan: RdsPlan = { ship: [], active: [...live], unchanged: 0, filtered: all.length - files.length };
    for (const f of files) {
      if (live.has(f)) continue;
      const s = shipped.get(f.name);
      if (s && s.size === f.size && s.lastWritten === f.lastWritten) {
        plan.unchanged++;
        continue;
      }
      plan.ship.push(f);
    }
    plan.ship.sort((a, b) => a.lastWritten - b.lastWritten || a.name.localeCompare(b.name));
    return plan;
  }

  /**
   * Downloads a file into `spoolDir` and checks the copy. Returns null when the file is gone (expired
   * meanwhile). Throws when it keeps changing or its copy cannot be made exact.
   */
  async fetch(file: RdsLogFile, spoolDir: string, onBytes?: (n: number) => void): Promise<FetchedFile | null> {
    await fsp.mkdir(spoolDir, { recursive: true });
    const path = join(spoolDir, `${randomBytes(6).toString('hex')}-${file.name.split('/').pop()}`);
    let current = file;
    let lastProblem = '';
    for (let attempt = 1; attempt <= MAX_DOWNLOAD_ATTEMPTS; attempt++) {
      let download: DownloadResult;
      try {
        download = await this.api.download(current.name, path, this.method, onBytes);
      } catch (err) {
        if (err instanceof ConnectorError && err.code === 'file_gone') {
          await fsp.rm(path, { force: true });
          return null;
        }
        if (err instanceof ConnectorError && err.code === 'permission_denied' && this.method === 'complete' && this.options.download === 'auto') {
          this.log.warn('The whole-file download is refused (rds:DownloadCompleteDBLogFile); downloading by portions instead.', {
            instance: this.options.instance,
          });
          this.method = 'portion';
          attempt--;
          continue;
        }
        await fsp.rm(path, { force: true });
        throw err;
      }
      const after = await this.api.describeFile(current.name);
      if (!after) {
        await fsp.rm(path, { force: true });
        return null;
      }
      if (after.size !== current.size || after.lastWritten !== current.lastWritten) {
        lastProblem = `it changed while being downloaded (size ${current.size} → ${after.size})`;
        this.log.info('A log file changed while it was downloaded; downloading it again.', { instance: this.options.instance, file: current.name });
        current = after;
        continue;
      }
      if (download.bytes !== after.size && download.truncatedLines === 0) {
        lastProblem = `the download gave ${download.bytes} bytes, RDS lists ${after.size}`;
        this.log.warn('A downloaded log file is not as long as RDS lists it; downloading it again.', {
          instance: this.options.instance,
          file: current.name,
          bytes: download.bytes,
          listed: after.size,
        });
        continue;
      }
      return { file: current, path, download };
    }
    await fsp.rm(path, { force: true });
    throw new ConnectorError(
      'rds_logs',
      'download_unstable',
      `${this.location(file.name)}: ${lastProblem} in ${MAX_DOWNLOAD_ATTEMPTS} attempts; it is tried again next run`,
      true,
    );
  }

  /** The downloaded copy as a finished log file for the pg_logs parser (csvlog and jsonlog only). */
  logFile(f: FetchedFile, size: number): LogFile | null {
    const format = formatOf(f.file.name);
    if (!format) return null;
    const name = f.file.name.split('/').pop()!;
    return {
      path: f.path,
      realPath: f.path,
      dir: '',
      name,
      format,
      compression: 'none',
      size,
      mtimeMs: f.file.lastWritten,
      active: false,
      stem: name.replace(/\.(csv|json)$/, ''),
      label: this.location(f.file.name),
    };
  }

  close(): void {
    this.api.close();
  }
}
