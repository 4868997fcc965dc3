/**
 * Throwaway PostgreSQL clusters with pgaudit for tests.
 *
 * Each cluster lives in its own temp dir (data dir, unix socket, log dir), listens on a free
 * port on 127.0.0.1 with trust auth, and writes csvlog/jsonlog through the logging collector
 * with every pgaudit class enabled. Clusters run as the `postgres` OS user when we are root.
 * A process 'exit' handler stops (immediate) any cluster a test forgot to stop.
 */
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, appendFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';

/** Options for {@link startPgCluster}. */
export interface StartPgClusterOptions {
  /** `log_destination`; default `'csvlog,jsonlog'`. */
  logDestination?: string;
  /** `log_timezone`; default `'UTC'`. */
  logTimezone?: string;
  /** Extra postgresql.conf settings, e.g. `{ 'pgaudit.log_rows': 'on' }`. Values are quoted for you. */
  settings?: Record<string, string>;
  /** `shared_preload_libraries`; default `'pgaudit'`. `''` starts a server without pgaudit. */
  preloadLibraries?: string;
  /** Run `CREATE EXTENSION pgaudit` in `postgres`; default: when `preloadLibraries` names pgaudit. */
  createExtension?: boolean;
}

/** A running throwaway cluster. */
export interface PgCluster {
  readonly port: number;
  /** The temp dir holding everything (data dir, socket, logs); removed by stop(). */
  readonly baseDir: string;
  readonly dataDir: string;
  /** Absolute `log_directory`. */
  readonly logDir: string;
  /** Unix socket directory (= baseDir). */
  readonly socketDir: string;
  readonly logTimezone: string;
  readonly logDestination: string;
  /** Connection URL over TCP as superuser `postgres`. */
  url(db?: string): string;
  /** A connected client; the caller must end() it. */
  client(db?: string): Promise<pg.Client>;
  /** Runs SQL (simple query protocol, may hold several statements) on a short-lived connection. */
  exec(sql: string, db?: string): Promise<void>;
  /**
   * `SELECT pg_rotate_logfile()` (not audited) and waits until `current_logfiles` names new
   * files. Waits first if the current files are less than 1.1 s old: names carry seconds, and
   * PostgreSQL appends to an existing name.
   */
  rotate(): Promise<void>;
  /** `pg_ctl restart -m fast` (settings that need a restart, such as shared_preload_libraries). */
  restart(): Promise<void>;
  /** Waits until no file in the log dir has changed size for about 200 ms. */
  flushLogs(): Promise<void>;
  /** Absolute paths of all files in the log dir, sorted by name (= by creation time per format). */
  logFiles(): string[];
  /** The files currently written to, per format (`csvlog`, `jsonlog`, `stderr`), from `current_logfiles`. */
  currentLogFiles(): Record<string, string>;
  /**
   * `pg_ctl stop -m fast`, then removes the temp dir (unless `keepFiles`: then the caller
   * owns `baseDir`, e.g. to copy the logs including the shutdown messages). Idempotent.
   */
  stop(opts?: { keepFiles?: boolean }): Promise<void>;
}

const PG_MAJOR = '15';
const BIN_DIR = process.env['AUDITSHIP_PG_BINDIR'] ?? `/usr/lib/postgresql/${PG_MAJOR}/bin`;
const SUPERUSER = 'postgres';

interface RunAs {
  uid: number;
  gid: number;
}

/** When root, PostgreSQL refuses to run: use the `postgres` OS user. Otherwise run as ourselves. */
function runAs(): RunAs | undefined {
  if (process.getuid?.() !== 0) return undefined;
  try {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    return { uid, gid };
  } catch (cause) {
    throw new Error(
      'Running as root but there is no `postgres` OS user to run PostgreSQL as; install the postgresql-15 package or run the tests as a non-root user.',
      { cause },
    );
  }
}

function pgBin(name: string): string {
  return join(BIN_DIR, name);
}

function checkPrerequisites(): void {
  if (!existsSync(pgBin('initdb')) || !existsSync(pgBin('pg_ctl'))) {
    throw new Error(
      `PostgreSQL ${PG_MAJOR} binaries not found in ${BIN_DIR}; install them with \`apt-get install postgresql-${PG_MAJOR}\` or set AUDITSHIP_PG_BINDIR.`,
    );
  }
  let pkgLibDir: string;
  try {
    pkgLibDir = execFileSync(pgBin('pg_config'), ['--pkglibdir'], { encoding: 'utf8' }).trim();
  } catch {
    pkgLibDir = join(BIN_DIR, '..', 'lib');
  }
  if (!existsSync(join(pkgLibDir, 'pgaudit.so'))) {
    throw new Error(`pgaudit is not installed (no ${join(pkgLibDir, 'pgaudit.so')}); install it with \`apt-get install postgresql-${PG_MAJOR}-pgaudit\`.`);
  }
}

function run(cmd: string, args: string[], user: RunAs | undefined, cwd: string): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd, encoding: 'utf8', ...(user ?? {}), env: { ...process.env, LC_ALL: 'C' } }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${cmd} ${args.join(' ')} failed: ${stderr || stdout || error.message}`, { cause: error }));
      else resolve({ stdout, stderr });
    });
  });
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error('could not allocate a free port'));
        return;
      }
      server.close(() => resolve(address.port));
    });
  });
}

function confValue(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

/* ---- clean-up of clusters a test forgot to stop ---- */

interface LiveCluster {
  dataDir: string;
  baseDir: string;
  user: RunAs | undefined;
}

/** Keyed by baseDir. */
const liveClusters = new Map<string, LiveCluster>();
let exitHandlersInstalled = false;

/** Set AUDITSHIP_KEEP_PG=1 to keep temp dirs (data and logs) for a post-mortem. */
function removeBaseDir(baseDir: string): void {
  if (process.env['AUDITSHIP_KEEP_PG'] === undefined) rmSync(baseDir, { recursive: true, force: true });
}

/** Synchronous, so it can run in a process 'exit' handler. */
function stopImmediately(c: LiveCluster, running: boolean): void {
  if (running) {
    spawnSync(pgBin('pg_ctl'), ['-D', c.dataDir, '-m', 'immediate', '-w', 'stop'], { stdio: 'ignore', cwd: c.baseDir, ...(c.user ?? {}) });
  }
  liveClusters.delete(c.baseDir);
  removeBaseDir(c.baseDir);
}

function stopAllImmediately(): void {
  for (const c of [...liveClusters.values()]) stopImmediately(c, true);
}

function installExitHandlers(): void {
  if (exitHandlersInstalled) return;
  exitHandlersInstalled = true;
  process.on('exit', stopAllImmediately);
  // A signal kills the process without 'exit': clean up, then die of the same signal.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const handler = (): void => {
      stopAllImmediately();
      process.removeListener(signal, handler);
      process.kill(process.pid, signal);
    };
    process.on(signal, handler);
  }
}

/* ---- the cluster ---- */

function readCurrentLogfiles(dataDir: string): string {
  try {
    return readFileSync(join(dataDir, 'current_logfiles'), 'utf8');
  } catch {
    return '';
  }
}

async function initdb(dataDir: string, user: RunAs | undefined, cwd: string): Promise<void> {
  const base = [pgBin('initdb'), '-D', dataDir, '-U', SUPERUSER, '--auth=trust', '-E', 'UTF8', '--no-sync'];
  try {
    await run(base[0]!, [...base.slice(1), '--locale=C.UTF-8'], user, cwd);
  } catch {
    // C.UTF-8 is not available everywhere: fall back to C.
    rmSync(dataDir, { recursive: true, force: true });
    await run(base[0]!, [...base.slice(1), '--locale=C'], user, cwd);
  }
}

/**
 * Starts a throwaway PostgreSQL cluster with pgaudit preloaded and `CREATE EXTENSION pgaudit` done in `postgres`
 * (unless `preloadLibraries` / `createExtension` say otherwise).
 */
export async function startPgCluster(opts: StartPgClusterOptions = {}): Promise<PgCluster> {
  checkPrerequisites();
  const user = runAs();
  const logDestination = opts.logDestination ?? 'csvlog,jsonlog';
  const logTimezone = opts.logTimezone ?? 'UTC';
  const preloadLibraries = opts.preloadLibraries ?? 'pgaudit';
  const createExtension = opts.createExtension ?? preloadLibraries.split(',').some((l) => l.trim() === 'pgaudit');

  const baseDir = mkdtempSync(join(tmpdir(), 'auditship-pg-'));
  const dataDir = join(baseDir, 'data');
  const logDir = join(baseDir, 'log');
  chmodSync(baseDir, 0o755);
  mkdirSync(logDir, { mode: 0o755 });
  if (user) {
    chownSync(baseDir, user.uid, user.gid);
    chownSync(logDir, user.uid, user.gid);
  }
  installExitHandlers();

  let port = 0;
  try {
    await initdb(dataDir, user, baseDir);
    const baseConf: Record<string, string> = {
      unix_socket_directories: baseDir,
      listen_addresses: '127.0.0.1',
      shared_preload_libraries: preloadLibraries,
      logging_collector: 'on',
      log_destination: logDestination,
      log_directory: logDir,
      log_filename: 'postgresql-%Y-%m-%d_%H%M%S.log',
      log_rotation_age: '0',
      log_rotation_size: '0',
      log_file_mode: '0644',
      log_timezone: logTimezone,
      log_connections: 'on',
      log_disconnections: 'on',
      'pgaudit.log': 'all',
      'pgaudit.log_parameter': 'on',
      'pgaudit.log_relation': 'on',
      fsync: 'off',
      ...opts.settings,
    };
    const confPath = join(dataDir, 'postgresql.conf');
    const lines = Object.entries(baseConf).map(([k, v]) => `${k} = ${confValue(v)}`);
    appendFileSync(confPath, `\n# auditship test cluster\n${lines.join('\n')}\n`);

    // The port may be taken between choosing it and binding it: retry with another one.
    for (let attempt = 1; ; attempt++) {
      port = await freePort();
      appendFileSync(confPath, `port = ${port}\n`);
      try {
        await run(pgBin('pg_ctl'), ['-D', dataDir, '-l', join(baseDir, 'startup.log'), '-w', '-t', '60', 'start'], user, baseDir);
        liveClusters.set(baseDir, { dataDir, baseDir, user });
        break;
      } catch (error) {
        const startupLog = existsSync(join(baseDir, 'startup.log')) ? readFileSync(join(baseDir, 'startup.log'), 'utf8') : '';
        if (attempt < 3 && /could not bind|Address already in use|could not create any TCP\/IP sockets/i.test(startupLog + String(error))) continue;
        throw new Error(`PostgreSQL did not start: ${String(error)}\n${startupLog}`, { cause: error });
      }
    }
  } catch (error) {
    stopImmediately({ dataDir, baseDir, user }, liveClusters.has(baseDir));
    throw error;
  }

  const url = (db = 'postgres'): string => `postgresql://${SUPERUSER}@127.0.0.1:${port}/${encodeURIComponent(db)}`;
  const client = async (db = 'postgres'): Promise<pg.Client> => {
    const c = new pg.Client({ connectionString: url(db) });
    await c.connect();
    return c;
  };
  const exec = async (sql: string, db = 'postgres'): Promise<void> => {
    const c = await client(db);
    try {
      await c.query(sql);
    } finally {
      await c.end();
    }
  };

  // Files are named by second: a rotation within the same second reuses (appends to) the name.
  let lastRotationAt = Date.now();
  const rotate = async (): Promise<void> => {
    const wait = lastRotationAt + 1100 - Date.now();
    if (wait > 0) await sleep(wait);
    const before = readCurrentLogfiles(dataDir);
    // Not audited: the record would land in either file depending on pgaudit.log_rows.
    await exec("SET pgaudit.log = 'none'; SELECT pg_rotate_logfile()");
    const deadline = Date.now() + 10_000;
    while (readCurrentLogfiles(dataDir) === before || readCurrentLogfiles(dataDir) === '') {
      if (Date.now() > deadline) throw new Error(`log rotation did not happen within 10 s (current_logfiles: ${before.trim()})`);
      await sleep(20);
    }
    lastRotationAt = Date.now();
  };

  const logFiles = (): string[] =>
    readdirSync(logDir)
      .sort()
      .map((name) => join(logDir, name));

  const flushLogs = async (): Promise<void> => {
    const snapshot = (): string =>
      logFiles()
        .map((f) => {
          try {
            return `${f}:${statSync(f).size}`;
          } catch {
            return `${f}:gone`;
          }
        })
        .join('|');
    let last = snapshot();
    let stableSince = Date.now();
    const deadline = Date.now() + 30_000;
    while (Date.now() - stableSince < 200) {
      if (Date.now() > deadline) throw new Error('log files kept growing for 30 s');
      await sleep(25);
      const now = snapshot();
      if (now !== last) {
        last = now;
        stableSince = Date.now();
      }
    }
  };

  const currentLogFiles = (): Record<string, string> => {
    const result: Record<string, string> = {};
    for (const line of readCurrentLogfiles(dataDir).split('\n')) {
      const space = line.indexOf(' ');
      if (space > 0) {
        const path = line.slice(space + 1);
        result[line.slice(0, space)] = path.startsWith('/') ? path : join(dataDir, path);
      }
    }
    return result;
  };

  const restart = async (): Promise<void> => {
    await run(pgBin('pg_ctl'), ['-D', dataDir, '-l', join(baseDir, 'startup.log'), '-m', 'fast', '-w', '-t', '60', 'restart'], user, baseDir);
    lastRotationAt = Date.now(); // the server opened new log files, named by this second
  };

  let stopped: Promise<void> | undefined;
  const stop = (stopOpts: { keepFiles?: boolean } = {}): Promise<void> => {
    stopped ??= (async () => {
      try {
        await run(pgBin('pg_ctl'), ['-D', dataDir, '-m', 'fast', '-w', 'stop'], user, baseDir);
      } finally {
        liveClusters.delete(baseDir);
        if (!stopOpts.keepFiles) removeBaseDir(baseDir);
      }
    })();
    return stopped;
  };

  const cluster: PgCluster = {
    port,
    baseDir,
    dataDir,
    logDir,
    socketDir: baseDir,
    logTimezone,
    logDestination,
    url,
    client,
    exec,
    rotate,
    restart,
    flushLogs,
    logFiles,
    currentLogFiles,
    stop,
  };

  try {
    if (createExtension) await exec('CREATE EXTENSION pgaudit');
  } catch (error) {
    await stop();
    throw error;
  }
  return cluster;
}
