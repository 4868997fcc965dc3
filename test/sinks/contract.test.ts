import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { GetObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { SINKS, type SinkType } from '../../src/connectors.js';
import { requestJson, spawnEsServer } from '../es-server/client.js';
import { createBucket, s3ClientFor, spawnS3Server } from '../s3-server/client.js';
import { duck, entriesOf, parseParts, writeLogs } from '../helpers/archive.js';
import { csvOf, CsvlogGenerator, Rng, type GenRecord } from '../helpers/csvlog-gen.js';
import { queryDb, runCli, scratchDir, spawnCli, type CliChild } from '../helpers/ingest-cli.js';

/**
 * The contract every sink meets, run over every sink of the registry (src/connectors.ts): a sink type without an
 * entry in SUBJECTS does not compile, and one the registry lists but this file does not know fails here.
 *
 * One scenario for all: pgaudit csvlog files with lines of noise among the records, a first run while the
 * sink's server injects faults (refusals, 5xx, connection resets), then more files and `auditship run` killed
 * with SIGKILL at random moments, then run to completion. Every sink must then hold every event exactly once
 * (read back from the sink itself: the DuckDB table, the cluster's documents, the archive's Parquet objects),
 * the noise must be quarantined with a reason and counted, and must not have held back what follows it.
 */

interface Subject {
  /** The sink sections placed before the (always last) duckdb sink. */
  sinks: Record<string, unknown>[];
  /** Injects faults the sink must ride through in one run (null: no server to fail; the store's own faults, a full disk, are test/sinks/disk-full.test.ts). */
  faults: (() => Promise<void>) | null;
  /** Clears the faults and says how many of them the sink met (each must have been met). */
  clearFaults: () => Promise<{ injected: number; met: number }>;
  /** The identity `session_id/session_line_num` of every event the sink holds, one per stored copy. */
  identities: () => Promise<string[]>;
  stop: () => Promise<void>;
}

const { dir, cleanup } = scratchDir('sink-contract');
const children = new Set<CliChild>();
const stops: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of children) c.kill('SIGKILL');
  for (const s of stops) await s().catch(() => {});
  cleanup();
});

/** Every identity in a tree of JSON (an Elasticsearch document's source). */
function identityOf(source: unknown): string | null {
  const stack = [source];
  while (stack.length) {
    const o = stack.pop();
    if (!o || typeof o !== 'object') continue;
    const r = o as Record<string, unknown>;
    if (r['session_id'] !== undefined && r['session_line_num'] !== undefined) return `${String(r['session_id'])}/${String(r['session_line_num'])}`;
    stack.push(...Object.values(r));
  }
  return null;
}

const SUBJECTS: { readonly [K in SinkType]: (name: string) => Promise<Subject> } = {
  duckdb: async () => ({
    sinks: [],
    faults: null,
    clearFaults: async () => ({ injected: 0, met: 0 }),
    identities: async () => [], // the duckdb sink is last in every pipeline: checked for every subject below
    stop: async () => {},
  }),

  elasticsearch: async () => {
    const es = await spawnEsServer({});
    return {
      sinks: [{ type: 'elasticsearch', url: es.url, flush_docs: 400, concurrency: 2, max_retries: 8 }],
      faults: async () => {
        await es.faults({ bulk429: 2, bulk503: 1, resetNext: 2, resetAfterApply: true });
      },
      clearFaults: async () => {
        const st = await es.stats();
        await es.faults({ bulk429: 0, bulk503: 0, item429Every: 0, resetNext: 0, delayMs: 0 });
        return { injected: 5, met: st.rejected429 + st.rejected503 + st.resets };
      },
      identities: async () => {
        await requestJson(es.url, 'POST', '/_test/refresh');
        const indices = (await requestJson(es.url, 'GET', '/_cat/indices?format=json')).body as { index: string }[];
        const out: string[] = [];
        for (const { index } of indices) {
          const dump = await fetch(`${es.url}/_test/docs/${encodeURIComponent(index)}`);
          for (const line of (await dump.text()).split('\n').filter(Boolean)) {
            const id = identityOf((JSON.parse(line) as { _source: unknown })._source);
            if (id !== null) out.push(id);
          }
        }
        return out;
      },
      stop: () => es.stop(),
    };
  },

  archive: async (name) => {
    const s3 = await spawnS3Server({});
    const bucket = `contract-${name}`;
    await createBucket(s3.url, bucket);
    const key = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
    const client = s3ClientFor(s3.url, key);
    const objects = async () => {
      const out = new Map<string, Buffer>();
      let token: string | undefined;
      do {
        const r = await client.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
        for (const o of r.Contents ?? [])
          out.set(o.Key!, Buffer.from(await (await client.send(new GetObjectCommand({ Bucket: bucket, Key: o.Key! }))).Body!.transformToByteArray()));
        token = r.IsTruncated ? r.NextContinuationToken : undefined;
      } while (token);
      return out;
    };
    return {
      sinks: [
        {
          type: 'archive',
          form: 'parquet',
          bucket,
          endpoint: s3.url,
          force_path_style: true,
          access_key_id: key.accessKeyId,
          secret_access_key: key.secretAccessKey,
        },
      ],
      faults: async () => {
        await s3.faults([
          { match: { op: 'PutObject', bucket }, action: { type: 'status', status: 500 }, times: 2 },
          { match: { op: ['PutObject', 'UploadPart'], bucket }, action: { type: 'reset_before_response' }, times: 1 },
        ]);
      },
      clearFaults: async () => {
        const st = await s3.faultState();
        await s3.clearFaults();
        return { injected: 3, met: st.rules.reduce((n, r) => n + r.fired, 0) };
      },
      identities: async () => {
        const all = await objects();
        const parquet = [...all.keys()].filter((k) => k.endsWith('.parquet')).sort();
        const entries = entriesOf(parseParts([...all].filter(([k]) => k.startsWith('_manifest/')).map(([k, body]) => ({ key: k, body }))));
        assert.deepEqual(parquet, entries.map((e) => e.key).sort(), 'the bucket holds exactly the objects its manifest names');
        const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
        assert.equal(uploads.Uploads?.length ?? 0, 0, 'no multipart upload left open');
        const local = join(dir, `${name}-parquet`);
        for (const k of parquet) {
          mkdirSync(join(local, ...k.split('/').slice(0, -1)), { recursive: true });
          writeFileSync(join(local, k), all.get(k)!);
        }
        if (parquet.length === 0) return [];
        const rows = await duck(
          `SELECT session_id || '/' || session_line_num AS id FROM read_parquet('${local}/pgaudit/**/*.parquet', hive_partitioning = true)`,
        );
        return rows.map((r) => String(r['id']));
      },
      stop: async () => {
        client.destroy();
        await s3.stop();
      },
    };
  },
};

const NOISE = 'this is not a csvlog record, only a line of noise\n';

/** Log files of `count` records in `files` files, a line of noise inside each; returns the audit records. */
function writeBatch(logs: string, gen: CsvlogGenerator, first: number, files: number, count: number): GenRecord[] {
  const audit: GenRecord[] = [];
  const specs = [];
  for (let i = 0; i < files; i++) {
    const recs = gen.records(count);
    audit.push(...recs.filter((r) => r.audit));
    const cut = Math.floor(recs.length / 3);
    specs.push({
      name: `postgresql-2024-05-0${first + i}_000000.csv`,
      text: csvOf(recs.slice(0, cut)) + NOISE + csvOf(recs.slice(cut)),
      agoS: 1000 - first - i,
    });
  }
  writeLogs(logs, specs);
  return audit;
}

/** `auditship run`, SIGKILLed after `delayMs` unless it ended first (then it must have succeeded). */
async function runAndKill(config: string, delayMs: number): Promise<boolean> {
  const child = spawnCli(['run', '--config', config, '--json', '--quiet']);
  children.add(child);
  const timer = setTimeout(() => child.kill('SIGKILL'), delayMs);
  const r = await child.result;
  clearTimeout(timer);
  children.delete(child);
  if (r.signal !== 'SIGKILL' && r.code !== 0) throw new Error(`run exited ${r.code}: ${r.stderr.slice(-3000)}`);
  return r.signal === 'SIGKILL';
}

function assertExactlyOnce(got: string[], expected: GenRecord[], where: string): void {
  const want = new Set(expected.map((r) => `${r.sessionId}/${r.line}`));
  const seen = new Set<string>();
  const twice = got.filter((id) => (seen.has(id) ? true : (seen.add(id), false)));
  assert.deepEqual(twice.slice(0, 5), [], `${where}: no event twice`);
  const missing = [...want].filter((id) => !seen.has(id));
  assert.deepEqual(missing.slice(0, 5), [], `${where}: no event missing (${missing.length} of ${want.size})`);
  assert.equal(seen.size, want.size, `${where}: nothing that was not logged`);
}

describe('sink contract: exactly once through faults, noise and SIGKILL, for every registered sink', () => {
  test('every sink of the registry has a subject here', () => {
    assert.deepEqual(Object.keys(SUBJECTS).sort(), Object.keys(SINKS).sort());
  });

  for (const type of Object.keys(SINKS) as SinkType[]) {
    test(`${type}: faults ridden through, noise quarantined, kills survived, every event once`, async () => {
      const subject = await SUBJECTS[type](type);
      stops.push(subject.stop);
      const logs = join(dir, `${type}-logs`);
      mkdirSync(logs, { recursive: true });
      const db = join(dir, `${type}.duckdb`);
      const config = join(dir, `${type}.yaml`);
      writeFileSync(
        config,
        [
          'pipelines:',
          '  logs:',
          `    source: { type: pg_logs, path: ${JSON.stringify(logs)}, server: db1, batch_bytes: 256KB }`,
          '    sinks:',
          ...subject.sinks.map((s) => `      - ${JSON.stringify(s)}`),
          `      - { type: duckdb, path: ${JSON.stringify(db)}, commit_events: 1500 }`,
          '',
        ].join('\n'),
      );
      const gen = new CsvlogGenerator({ seed: 31, otherShare: 0.02 });

      // 1. Faults: one run rides through them (the sink retries) and stores everything, the noise aside.
      const expected = writeBatch(logs, gen, 1, 2, 2500);
      if (subject.faults) await subject.faults();
      const first = await runCli(['run', '--config', config, '--json']);
      const faults = await subject.clearFaults();
      assert.equal(first.code, 0, first.stderr.slice(-3000));
      assert.equal(faults.met, faults.injected, 'the sink met every fault injected');
      assertExactlyOnce(await subject.identities(), type === 'duckdb' ? [] : expected, `${type} after the faults`);

      // 2. SIGKILL at random moments while more files are shipped, then a run to completion.
      expected.push(...writeBatch(logs, gen, 3, 3, 2500));
      const rng = new Rng(7);
      let landed = 0;
      let aim = 1500;
      for (let attempt = 0; attempt < 10 && landed < 3; attempt++) {
        if (await runAndKill(config, 200 + rng.int(0, aim))) landed++;
        else aim = Math.max(300, Math.floor(aim * 0.6)); // it finished first: aim earlier
      }
      assert.ok(landed >= 2, `kills landed: ${landed}`);
      const last = await runCli(['run', '--config', config, '--json']);
      assert.equal(last.code, 0, last.stderr.slice(-3000));

      if (type !== 'duckdb') assertExactlyOnce(await subject.identities(), expected, type);
      const stored = await queryDb(db, "SELECT session_id || '/' || session_line_num AS id FROM audit_events");
      assertExactlyOnce(
        stored.map((r) => String(r['id'])),
        expected,
        `${type} pipeline's duckdb store`,
      );
      const noise = await queryDb(db, 'SELECT path, reason, raw FROM quarantine ORDER BY path');
      assert.equal(noise.length, 5, 'each line of noise quarantined once');
      for (const n of noise) {
        assert.equal(String(n['raw']), NOISE, 'the line as it was');
        assert.ok(String(n['reason']).length > 5, 'with a reason');
      }
    });
  }
});
