import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { DuckDBInstance } from '@duckdb/node-api';
import { createLogger } from '../../src/core/log.js';
import { Archive, archiveLogFile, archiveSinkOptions, type ArchivableFile } from '../../src/sinks/archive/index.js';
import { LocalStore } from '../../src/sinks/archive/store-local.js';
import type { ObjectStore } from '../../src/sinks/archive/store.js';
import { ArchiveState } from '../../src/state/archive-state.js';
import { decode, listDir } from '../helpers/archive.js';
import { csvOf, CsvlogGenerator } from '../helpers/csvlog-gen.js';
import { scratchDir } from '../helpers/ingest-cli.js';
import { sinkSection } from '../helpers/config.js';

/**
 * A log file that changes while it is being archived (someone appends, or it was not finished after all):
 * the object made from the moving file is discarded and the file is archived again from its start; when it
 * keeps changing, nothing is archived and nothing is left behind. In process, with a store that appends to
 * the file in the middle of the upload — the only way to hit that moment every time.
 */
const { dir, cleanup } = scratchDir('archive-changing');
after(cleanup);
const log = createLogger({ level: 'warn' });

async function setup(name: string, appendOnWrites: number) {
  const base = join(dir, name);
  mkdirSync(base, { recursive: true });
  const file = join(base, 'postgresql-2024-05-01_120000.csv');
  const gen = new CsvlogGenerator({ seed: 3 });
  writeFileSync(file, csvOf(gen.records(2000)));
  const inner = new LocalStore(join(base, 'archive'));
  let appended = 0;
  // Appends a record to the source file during the first `appendOnWrites` objects' uploads.
  const store: ObjectStore = Object.assign(Object.create(inner) as ObjectStore, {
    createWriter: async (...args: Parameters<ObjectStore['createWriter']>) => {
      const w = await inner.createWriter(args[0], args[1]);
      const object = appended;
      let wrote = false;
      return {
        get uploadId() {
          return w.uploadId;
        },
        write: async (c: Buffer) => {
          if (!wrote && object < appendOnWrites) {
            wrote = true;
            appended++;
            appendFileSync(file, csvOf(gen.records(1)));
          }
          await w.write(c);
        },
        finish: () => w.finish(),
        abort: () => w.abort(),
      };
    },
  });
  const instance = await DuckDBInstance.create(':memory:');
  const conn = await instance.connect();
  const state = await ArchiveState.open(instance, conn, store.where, 'db1');
  const archive = new Archive(
    store,
    state,
    archiveSinkOptions(sinkSection({ type: 'archive', directory: join(base, 'archive'), form: 'files', compression: 'gzip' })),
    log,
  );
  const st = statSync(file);
  const f: ArchivableFile = {
    path: file,
    compression: 'none',
    size: st.size,
    mtimeMs: st.mtimeMs,
    source: { kind: 'pg_logs', server: 'db1', name: 'postgresql-2024-05-01_120000.csv', location: file, fingerprint: 'fp' },
  };
  return {
    base,
    file,
    archive,
    f,
    conn,
    close: () => {
      archive.close();
      conn.closeSync();
      instance.closeSync();
    },
  };
}

test('a file that grows during its upload is archived again whole, from the start', async () => {
  const s = await setup('once', 1);
  try {
    const r = await archiveLogFile(s.archive, s.f);
    assert.equal(r.status, 'archived');
    const key = r.entry!.key;
    assert.deepEqual(listDir(join(s.base, 'archive')), [key], 'only the second, complete object is there');
    const object = readFileSync(join(s.base, 'archive', key));
    assert.ok(decode(object, 'gzip').equals(readFileSync(s.file)), 'the object holds the file as it is now, appended record included');
    assert.equal(r.entry!.range.end, statSync(s.file).size);
    assert.equal(Number((await s.conn.runAndReadAll('SELECT count(*) FROM archive_pending')).getRows()[0]![0]), 0);
  } finally {
    s.close();
  }
});

test('a file that keeps changing is not archived, and nothing is left behind', async () => {
  const s = await setup('always', 100);
  try {
    const r = await archiveLogFile(s.archive, s.f);
    assert.equal(r.status, 'changed_while_archiving');
    assert.deepEqual(listDir(join(s.base, 'archive')), []);
    assert.equal(Number((await s.conn.runAndReadAll('SELECT count(*) FROM archive_objects')).getRows()[0]![0]), 0);
    assert.equal(Number((await s.conn.runAndReadAll('SELECT count(*) FROM archive_pending')).getRows()[0]![0]), 0);
  } finally {
    s.close();
  }
});
