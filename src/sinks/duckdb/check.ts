import { statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { existingAncestor, failure, writableDirectory, type CheckResult } from '../../core/check.js';
import { ConnectorError } from '../../core/errors.js';
import { readDaemonStatus } from '../../state/daemon-status.js';
import type { DuckdbConfig } from './config.js';

/** `auditship check` of the duckdb sink: the file opens read-only (or is held by the daemon), or its directory is writable. */
export async function checkDuckdb(pipeline: string, sink: DuckdbConfig, i: number): Promise<CheckResult> {
  const path = resolve(sink.path);
  const id = 'duckdb';
  const label = `pipeline ${pipeline}: sink duckdb ${path}`;
  let exists = false;
  try {
    exists = statSync(path).isFile();
  } catch {
    /* not yet */
  }
  if (!exists) {
    const dir = dirname(path);
    const r = writableDirectory(id, label, dir);
    if (!r.ok) return r;
    const parent = existingAncestor(dir);
    return {
      id,
      ok: true,
      what: `${label}: does not exist yet and will be created${parent === dir ? ` (${dir} is writable)` : `, with its directory (${parent} is writable)`}`,
    };
  }
  const { openDatabase } = await import('./database.js');
  try {
    const db = await openDatabase(path, { readOnly: true, memoryLimit: '64MB', threads: 1 });
    await db.close();
    return { id, ok: true, what: `${label}: opens` };
  } catch (err) {
    if (err instanceof ConnectorError && err.code === 'db_locked') {
      const daemon = readDaemonStatus(path);
      const holder = /\(PID (\d+)/.exec(err.message)?.[1];
      if (daemon && (!holder || Number(holder) === daemon.pid)) {
        return { id, ok: true, what: `${label}: held by the running daemon (PID ${daemon.pid}, auditship run --follow since ${daemon.startedAt})` };
      }
    }
    return failure(id, label, err, `check sinks[${i}].path`);
  }
}
