import { createHash } from 'node:crypto';
import { createGunzip } from 'node:zlib';
import { Decompress as ZstdDecompress } from 'fzstd';
import { ConnectorError } from '../../core/errors.js';
import { ALL_DATASETS, MANIFEST_DIR, manifestPrefix, partitionValue } from './layout.js';
import { parsePart, type ManifestEntry, type ManifestHeader } from './manifest.js';
import { COLD_CLASSES, type ObjectStore } from './store.js';

/**
 * Checking an archive against its manifest, from the archive alone (no DuckDB state needed):
 *  - the manifest parts: every part readable, each writer's chain of parts unbroken (sequence numbers
 *    contiguous, each part's prev_sha256 the SHA-256 of the part before it);
 *  - every object of the manifest (the latest entry per key): present, of the recorded size, and either
 *    re-hashed in full (SHA-256) or — for cold storage classes, which cannot be read unrestored, and with
 *    `quick` — checked by HEAD against the recorded size and the ETag the store gave at upload;
 *  - with `deep`, a compressed log file is also decompressed and compared with the original's content_sha256.
 * Objects under the archive's datasets that no entry mentions are listed as `unlisted` (an interrupted run's
 * leftover, removed by the next run, or something written by hand) without failing the check.
 */
export interface VerifyOptions {
  server?: string;
  quick: boolean;
  deep: boolean;
  concurrency: number;
  onBytes?: (n: number) => void;
  /** Called for each problem as it is found. */
  onProblem?: (p: VerifyProblem) => void;
}

export interface VerifyProblem {
  kind: 'missing' | 'corrupt' | 'manifest' | 'unreadable';
  key: string;
  reason: string;
}

export interface VerifyReport {
  archive: string;
  manifestParts: number;
  entries: number;
  objects: number;
  verifiedByHash: number;
  verifiedByHead: number;
  bytesHashed: number;
  ok: number;
  problems: VerifyProblem[];
  unlisted: string[];
}

async function sha256Of(chunks: AsyncIterable<Buffer>, onBytes?: (n: number) => void): Promise<{ sha256: string; size: number }> {
  const h = createHash('sha256');
  let size = 0;
  for await (const c of chunks) {
    h.update(c);
    size += c.length;
    onBytes?.(c.length);
  }
  return { sha256: h.digest('hex'), size };
}

async function contentSha256(chunks: AsyncIterable<Buffer>, compression: string): Promise<string> {
  const h = createHash('sha256');
  if (compression === 'gzip') {
    const gz = createGunzip();
    const done = (async () => {
      for await (const c of gz) h.update(c as Buffer);
    })();
    for await (const c of chunks) if (!gz.write(c)) await new Promise((r) => gz.once('drain', r));
    gz.end();
    await done;
  } else if (compression === 'zstd') {
    const d = new ZstdDecompress((c) => h.update(c));
    for await (const c of chunks) d.push(c);
    d.push(new Uint8Array(0), true);
  } else {
    for await (const c of chunks) h.update(c);
  }
  return h.digest('hex');
}

export async function verifyArchive(store: ObjectStore, options: VerifyOptions): Promise<VerifyReport> {
  const report: VerifyReport = {
    archive: store.where,
    manifestParts: 0,
    entries: 0,
    objects: 0,
    verifiedByHash: 0,
    verifiedByHead: 0,
    bytesHashed: 0,
    ok: 0,
    problems: [],
    unlisted: [],
  };
  const problem = (p: VerifyProblem) => {
    report.problems.push(p);
    options.onProblem?.(p);
  };

  // 1. The manifest parts and their chains.
  const parts: { key: string; header: ManifestHeader | null; sha256: string; entries: ManifestEntry[] }[] = [];
  for await (const o of store.list(options.server !== undefined ? manifestPrefix(options.server) : `${MANIFEST_DIR}/`)) {
    if (!o.key.endsWith('.jsonl')) continue;
    const chunks: Buffer[] = [];
    try {
      for await (const c of store.read(o.key)) chunks.push(c);
    } catch (err) {
      problem({ kind: 'unreadable', key: o.key, reason: `manifest part cannot be read: ${(err as Error).message}` });
      continue;
    }
    const parsed = parsePart(Buffer.concat(chunks));
    if (options.server !== undefined && parsed.header && parsed.header.server !== options.server) continue;
    report.manifestParts++;
    if (!parsed.header) problem({ kind: 'manifest', key: o.key, reason: 'manifest part has no header line (damaged or not written by auditship)' });
    if (parsed.bad) problem({ kind: 'manifest', key: o.key, reason: `${parsed.bad} line(s) of the manifest part are not valid entries` });
    parts.push({ key: o.key, header: parsed.header, sha256: parsed.sha256, entries: parsed.entries });
  }
  if (parts.length === 0) {
    throw new ConnectorError(
      'archive',
      'no_manifest',
      `${store.where} holds no manifest (nothing under ${MANIFEST_DIR}/${options.server ? ` for server ${options.server}` : ''}): not an auditship archive, or the wrong prefix`,
      false,
    );
  }
  const chains = new Map<string, typeof parts>();
  for (const p of parts) {
    if (!p.header) continue;
    const id = `${p.header.server}\0${p.header.writer}`;
    chains.set(id, [...(chains.get(id) ?? []), p]);
  }
  for (const chain of chains.values()) {
    chain.sort((a, b) => a.header!.first_seq - b.header!.first_seq);
    let prev: (typeof parts)[number] | null = null;
    for (const p of chain) {
      const h = p.header!;
      const expectedFirst = prev ? prev.header!.last_seq + 1 : 1;
      if (h.first_seq !== expectedFirst) {
        problem({
          kind: 'manifest',
          key: p.key,
          reason: `manifest entries ${expectedFirst}..${h.first_seq - 1} of writer ${h.writer} (server ${h.server}) are missing: a manifest part was deleted`,
        });
      } else if (prev && (h.prev_key !== prev.key || h.prev_sha256 !== prev.sha256)) {
        problem({
          kind: 'manifest',
          key: prev.key,
          reason: `manifest part was altered: the next part records SHA-256 ${h.prev_sha256}, it has ${prev.sha256}`,
        });
      } else if (!prev && h.prev_key !== null) {
        problem({ kind: 'manifest', key: p.key, reason: `the manifest part before it (${h.prev_key}) is missing` });
      }
      const seqs = p.entries.map((e) => e.seq);
      if (p.entries.length !== h.entries || seqs.some((s, i) => s !== h.first_seq + i) || h.last_seq !== h.first_seq + h.entries - 1) {
        problem({
          kind: 'manifest',
          key: p.key,
          reason: `manifest part holds ${p.entries.length} entries, its header says ${h.entries} (${h.first_seq}..${h.last_seq})`,
        });
      }
      prev = p;
    }
  }

  // 2. The objects: the latest entry per key.
  const latest = new Map<string, ManifestEntry>();
  for (const p of parts)
    for (const e of p.entries) {
      report.entries++;
      const cur = latest.get(e.key);
      if (!cur || e.archived_at > cur.archived_at || (e.archived_at === cur.archived_at && e.seq > cur.seq)) latest.set(e.key, e);
    }
  report.objects = latest.size;
  const queue = [...latest.values()];
  let next = 0;
  const checkOne = async (e: ManifestEntry) => {
    let head;
    try {
      head = await store.head(e.key);
    } catch (err) {
      problem({ kind: 'unreadable', key: e.key, reason: (err as Error).message });
      return;
    }
    if (!head) {
      problem({ kind: 'missing', key: e.key, reason: `in the manifest (seq ${e.seq}, ${e.size} bytes) but not in the archive` });
      return;
    }
    if (head.size !== e.size) {
      problem({ kind: 'corrupt', key: e.key, reason: `size ${head.size}, the manifest says ${e.size}` });
      return;
    }
    const byHead = async () => {
      if (head.etag && e.etag && head.etag !== e.etag) {
        problem({ kind: 'corrupt', key: e.key, reason: `ETag ${head.etag}, the manifest says ${e.etag} (the object was replaced or altered)` });
        return;
      }
      report.verifiedByHead++;
      report.ok++;
    };
    if (options.quick || COLD_CLASSES.has(head.storageClass)) {
      await byHead();
      return;
    }
    try {
      const { sha256, size } = await sha256Of(store.read(e.key), (n) => {
        report.bytesHashed += n;
        options.onBytes?.(n);
      });
      if (size !== e.size || sha256 !== e.sha256) {
        problem({ kind: 'corrupt', key: e.key, reason: `SHA-256 ${sha256} (${size} bytes), the manifest says ${e.sha256}` });
        return;
      }
      if (options.deep && e.form === 'files' && e.content_sha256) {
        const content = await contentSha256(store.read(e.key), e.compression ?? 'none');
        if (content !== e.content_sha256) {
          problem({ kind: 'corrupt', key: e.key, reason: `decompressed content has SHA-256 ${content}, the original file had ${e.content_sha256}` });
          return;
        }
      }
      report.verifiedByHash++;
      report.ok++;
    } catch (err) {
      if (err instanceof ConnectorError && err.code === 'cold_object') {
        await byHead();
        return;
      }
      problem({ kind: 'unreadable', key: e.key, reason: (err as Error).message });
    }
  };
  await Promise.all(
    Array.from({ length: Math.max(1, options.concurrency) }, async () => {
      while (next < queue.length) await checkOne(queue[next++]!);
    }),
  );

  // 3. Objects no entry mentions.
  for (const dataset of ALL_DATASETS) {
    const prefix = options.server !== undefined ? `${dataset}/server=${partitionValue(options.server)}/` : `${dataset}/`;
    for await (const o of store.list(prefix)) if (!latest.has(o.key)) report.unlisted.push(o.key);
  }
  return report;
}
