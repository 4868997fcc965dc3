import { decodeSink } from '../config/load.js';
import { ConfigError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { Anchorer } from '../ledger/anchor.js';
import { archiveSinkOptions, openStore } from '../sinks/archive/index.js';
import type { ObjectStore } from '../sinks/archive/store.js';
import type { DuckdbConfig } from '../sinks/duckdb/config.js';

/**
 * Where the ledger's anchors go: a directory, or `s3://bucket/prefix` — opened as an archive's store (its
 * retries, checksums and Object Lock handling). `verify --anchor` and the DuckDB sink's `ledger_anchor` share it.
 */
export async function openAnchorStore(location: string, s3: { endpoint?: string; region?: string; forcePathStyle?: boolean } = {}): Promise<ObjectStore> {
  const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(location);
  const endpoint = s3.endpoint ?? (m ? process.env['AWS_ENDPOINT_URL_S3'] : undefined);
  const problems: string[] = [];
  const cfg = decodeSink(
    {
      type: 'archive',
      ...(m ? { bucket: m[1], prefix: m[2] } : { directory: location }),
      ...(endpoint ? { endpoint } : {}),
      ...(s3.region ? { region: s3.region } : {}),
      // S3-compatible stores at an endpoint of their own (MinIO, Ceph) address buckets by path.
      force_path_style: s3.forcePathStyle ?? endpoint !== undefined,
    },
    'ledger_anchor',
    problems,
  );
  if (problems.length || cfg?.type !== 'archive') throw new ConfigError(problems);
  return openStore(archiveSinkOptions(cfg).store);
}

/** The anchorer of a DuckDB sink with `ledger_anchor`, or undefined. */
export async function sinkAnchorer(sink: DuckdbConfig, log: Logger): Promise<Anchorer | undefined> {
  if (!sink.ledger || sink.ledger_anchor === undefined) return undefined;
  return new Anchorer(await openAnchorStore(sink.ledger_anchor), sink.ledger_anchor_every_s * 1000, sink.path, log);
}
