/**
 * Who holds a DuckDB file, and the small protocol that lets readers and writers of one store take turns.
 *
 * DuckDB locks the file for the process that opens it: exclusively (a POSIX write lock) to write, shared (a
 * read lock) to read. auditship's readers (`ui`, `status`, `query`, `report`) open it read-only for a request
 * and let go right after; a writer (`ingest`, `run`) that finds only readers holding it leaves a
 * `<db>.writer-waiting` marker — readers seeing it start nothing new on the file — and retries until they are
 * done; once it holds the file it answers their queries itself, over `<db>.read.sock` (see read-service.ts).
 */
import { processAlive } from '../../core/pid.js';
import { createHash } from 'node:crypto';
import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export interface LockHolder {
  pid: number;
  /** `write`: a process writing the file (or a read-write DuckDB); `read`: a read-only one. */
  kind: 'read' | 'write';
}

/**
 * The processes holding POSIX locks on `path`, from /proc/locks (Linux); null when that cannot be read, or
 * the file does not exist.
 */
export function lockHolders(path: string): LockHolder[] | null {
  let ino: number;
  let text: string;
  try {
    ino = statSync(path).ino;
    text = readFileSync('/proc/locks', 'utf8');
  } catch {
    return null;
  }
  const holders: LockHolder[] = [];
  // "1: POSIX  ADVISORY  WRITE 1234 fd:01:5678 0 EOF" (blocked waiters have "->" before the type).
  for (const line of text.split('\n')) {
    const m = /^\d+:\s+(?:->\s+)?(?:POSIX|OFDLCK)\s+\S+\s+(READ|WRITE)\s+(-?\d+)\s+[0-9a-f]+:[0-9a-f]+:(\d+)\s/.exec(line);
    if (m && Number(m[3]) === ino && !line.includes('->')) holders.push({ pid: Number(m[2]), kind: m[1] === 'WRITE' ? 'write' : 'read' });
  }
  return holders;
}

/** `PID n: auditship ui --db …` (the command line, shortened), or `PID n`. */
export function describeHolder(pid: number): string {
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    const shown = cmd
      .map((a) => a.replace(/^.*\/(bin\/auditship(\.js)?|dist\/cli\/main\.js)$/, 'auditship'))
      .slice(0, 6)
      .join(' ');
    return `PID ${pid}: ${shown.length > 120 ? shown.slice(0, 117) + '...' : shown}`;
  } catch {
    return `PID ${pid}`;
  }
}

const markerPath = (db: string) => `${resolve(db)}.writer-waiting`;

/** Tells readers that a writer waits for the file: they start nothing new on it. */
export function markWriterWaiting(db: string): void {
  try {
    writeFileSync(markerPath(db), `${process.pid}\n`);
  } catch {
    /* a read-only directory: readers then just take longer */
  }
}

export function clearWriterWaiting(db: string): void {
  try {
    if (Number(readFileSync(markerPath(db), 'utf8').trim()) === process.pid) rmSync(markerPath(db), { force: true });
  } catch {
    /* none */
  }
}

/** A live writer waits for the file (a marker left by a killed one is ignored). */
export function writerWaiting(db: string): boolean {
  let pid: number;
  try {
    pid = Number(readFileSync(markerPath(db), 'utf8').trim());
  } catch {
    return false;
  }
  return Number.isInteger(pid) && pid > 0 && pid !== process.pid && processAlive(pid);
}

/** `<db>.read.sock`, or a name under the temp directory when that path is too long for a unix socket. */
export function readSocketPath(db: string): string {
  const path = `${resolve(db)}.read.sock`;
  if (Buffer.byteLength(path) <= 100) return path;
  const name = `auditship-${createHash('sha256').update(resolve(db)).digest('hex').slice(0, 16)}.read.sock`;
  const inTmp = join(tmpdir(), name);
  // A long $TMPDIR too (a container's): the kernel would cut the name, and the socket could not be removed by it.
  return Buffer.byteLength(inTmp) <= 100 ? inTmp : join('/tmp', name);
}
