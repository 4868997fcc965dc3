import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { decodeSink, decodeSource, validateConfig } from '../../src/config/load.js';
import { SINKS, SOURCES, databaseSettings, serverOf } from '../../src/connectors.js';
import type { FieldSpec } from '../../src/core/config-spec.js';
import { JOBS } from '../../src/jobs/index.js';

/**
 * The registry (src/connectors.ts) is what the loader, the docs, run/follow/check/purge look a connector up in:
 * every declaration must be complete and consistent with its job, and decoding must give what the spec says.
 */
const root = new URL('../../', import.meta.url).pathname;

/** A value of the field's type for a required key (its example when it has one). */
function sample(f: FieldSpec): unknown {
  if (f.example !== undefined) return f.example;
  return f.type === 'url' ? `${f.schemes![0]}://localhost/x` : 'x';
}

/** The smallest section of a type: its required keys. */
function minimal(type: string, fields: Record<string, FieldSpec>): Record<string, unknown> {
  const out: Record<string, unknown> = { type };
  for (const [k, f] of Object.entries(fields)) if (f.required) out[k] = sample(f);
  return out;
}

describe('connector registry', () => {
  test('each declaration names its own type, describes every key, and has a job; purge is declared where the job purges', async () => {
    for (const [type, d] of Object.entries(SOURCES)) {
      assert.equal(d.spec.kind, type);
      assert.equal(d.role, 'source');
      assert.ok(d.spec.description.length > 20, type);
      for (const [key, f] of Object.entries(d.spec.fields)) assert.ok(f.description.length > 10, `${type}.${key} has a description`);
      const job = await JOBS[type as keyof typeof JOBS]();
      assert.equal(typeof job.once, 'function');
      assert.equal(typeof job.follow, 'function');
      assert.equal('purges' in d && d.purges === true, typeof job.purge === 'function', `${type}: purges ⇔ the job purges`);
    }
    for (const [type, d] of Object.entries(SINKS)) {
      assert.equal(d.spec.kind, type);
      assert.equal(d.role, 'sink');
      assert.ok(d.accepts.length > 0, type);
      for (const [key, f] of Object.entries(d.spec.fields)) assert.ok(f.description.length > 10, `${type}.${key} has a description`);
    }
  });

  test('decoding fills every default once, in the type the spec gives (sizes in bytes, paths as lists)', () => {
    const all = [
      ...Object.entries(SOURCES).map(([t, d]) => ['source', t, d.spec.fields] as const),
      ...Object.entries(SINKS).map(([t, d]) => ['sink', t, d.spec.fields] as const),
    ];
    for (const [role, type, specFields] of all) {
      const fields = specFields as Record<string, FieldSpec>;
      const problems: string[] = [];
      const raw = minimal(type, fields);
      if (type === 'archive') raw['directory'] = '/tmp/a'; // directory or bucket: one of them
      const decoded = (role === 'source' ? decodeSource(raw, type, problems) : decodeSink(raw, type, problems)) as Record<string, unknown>;
      assert.deepEqual(problems, [], type);
      for (const [key, f] of Object.entries(fields)) {
        const v = decoded[key];
        if (f.default === undefined) {
          if (!f.required && !(key in raw)) assert.equal(v, undefined, `${type}.${key} has no default`);
          continue;
        }
        const expected = { string: 'string', url: 'string', enum: 'string', integer: 'number', size: 'number', boolean: 'boolean', string_or_list: 'object' }[
          f.type
        ];
        assert.equal(typeof v, expected, `${type}.${key}: ${String(v)}`);
        if (f.type === 'size') assert.ok(Number.isInteger(v) && (v as number) >= 0, `${type}.${key} decodes to bytes`);
        if (f.type === 'enum') assert.ok(f.values!.includes(v as string), `${type}.${key}`);
      }
    }
  });

  test('the docs list every registered source and sink (they are generated from the registry)', () => {
    const docs = readFileSync(`${root}docs/configuration.md`, 'utf8');
    for (const type of [...Object.keys(SOURCES), ...Object.keys(SINKS)]) assert.match(docs, new RegExp(`^### \`${type}\`$`, 'm'), type);
  });

  test('server names and DuckDB settings come from the declarations', () => {
    const config = validateConfig({
      pipelines: {
        logs: { source: { type: 'pg_logs', path: '/x', server: 'db1' }, sinks: [{ type: 'duckdb', path: '/tmp/a.duckdb' }] },
        rds: { source: { type: 'rds_logs', instance: 'prod-1' }, sinks: [{ type: 'duckdb', path: '/tmp/a.duckdb' }] },
        app: { source: { type: 'sql_outbox', url: 'mysql://root@localhost/test' }, sinks: [{ type: 'duckdb', path: '/tmp/b.duckdb' }] },
        tuned: {
          source: { type: 'sql_outbox', url: 'mysql://root@localhost/test' },
          sinks: [{ type: 'duckdb', path: '/tmp/c.duckdb', memory_limit: '200MB', threads: 2 }],
        },
      },
    });
    const [logs, rds, app, tuned] = config.pipelines;
    assert.equal(serverOf(logs!.source), 'db1');
    assert.equal(serverOf(rds!.source), 'prod-1', 'an rds_logs server defaults to its instance');
    assert.deepEqual(databaseSettings([app!]), { memoryLimit: '48MB', threads: 1 }, 'application tables need less');
    assert.deepEqual(databaseSettings([app!, logs!]), { memoryLimit: '96MB', threads: 1 }, 'a shared file gets what its largest user needs');
    assert.deepEqual(databaseSettings([tuned!]), { memoryLimit: '200MB', threads: 2 }, "the sink's own settings win");
  });

  test('a sink that does not take the events of the source is a config error naming both', () => {
    assert.throws(
      () =>
        validateConfig({
          pipelines: {
            t: { source: { type: 'pg_audit_table', url: 'postgres://localhost/x' }, sinks: [{ type: 'archive', directory: '/tmp/a' }, { type: 'duckdb' }] },
          },
        }),
      (err: Error) => /pipelines\.t\.sinks\[0\]: the archive sink takes log files .* pg_logs or rds_logs pipeline/.test(err.message),
    );
  });
});
