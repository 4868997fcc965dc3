import { ConfigError, ExitError } from '../../core/errors.js';
import { createLogger } from '../../core/log.js';
import { openAnchorStore } from '../../jobs/anchor.js';
import { openStoreReader } from '../../sinks/duckdb/reader.js';
import { readAnchors, writeAnchor, type AnchorHead } from '../../ledger/anchor.js';
import { verifyLedger } from '../../ledger/verify.js';
import { DEFAULT_DB, defineCommand, parseCommandArgs } from '../args.js';
import { n } from '../output.js';

export const usage =
  'auditship verify [--db FILE] [--anchor DIR|s3://BUCKET/PREFIX [--endpoint URL] [--region R] [--force-path-style]] [--write-anchor] [--json]';
export const summary =
  "Check the store's ledger: every stream's rows re-hashed against the chain of batch digests, and the heads against the anchors written outside the store. Names the first batch where a row was changed, deleted or added (exit 1); else prints the head digests.";

export const spec = defineCommand({
  name: 'verify',
  summary,
  usage,
  flags: {
    db: { type: 'string', value: 'FILE', description: 'the DuckDB store (read-only, or through the process writing it)', default: DEFAULT_DB },
    anchor: {
      type: 'string',
      value: 'LOCATION',
      description: 'where anchors are kept (a directory, or s3://bucket/prefix): each anchored head must be in the ledger with its digest',
    },
    endpoint: { type: 'string', value: 'URL', description: 'with an s3:// anchor: an S3-compatible endpoint', defaultText: 'AWS S3 of the region' },
    region: { type: 'string', value: 'R', description: "with an s3:// anchor: the bucket's region", defaultText: '$AWS_REGION, else us-east-1' },
    'force-path-style': { type: 'boolean', description: 'with an s3:// anchor: path-style addressing (MinIO and most S3-compatible stores)' },
    'write-anchor': { type: 'boolean', description: 'when the store verifies, write its heads to --anchor (for a schedule, e.g. cron)' },
    json: { type: 'boolean', description: 'print the report as one JSON object' },
    quiet: { type: 'boolean', short: 'q', description: 'print only problems' },
  },
  notes: '  Exit codes: 0 the ledger verifies, 1 a batch does not (or an anchor disagrees, or the store cannot be read), 2 usage error.',
});

export async function verify(argv: string[]): Promise<void> {
  const { values } = parseCommandArgs(argv, spec);
  if (values['write-anchor'] && !values.anchor) throw new ExitError(2, `--write-anchor needs --anchor\nusage: ${usage}`);
  const log = createLogger({ level: values.quiet || values.json ? 'warn' : 'info' });
  const db = openStoreReader(values.db ?? DEFAULT_DB, { lingerMs: 0 });
  const store = values.anchor
    ? await openAnchorStore(values.anchor, {
        ...(values.endpoint ? { endpoint: values.endpoint } : {}),
        ...(values.region ? { region: values.region } : {}),
        ...(values['force-path-style'] ? { forcePathStyle: true } : {}),
      }).catch((err: unknown) => {
        throw err instanceof ConfigError ? new ExitError(2, err.problems.map((p) => p.replace(/^ledger_anchor\./, '--anchor ')).join('\n')) : err;
      })
    : null;
  try {
    // An archive location anchors too: the manifest parts this store's archive writers published carry heads.
    const writers = store
      ? await db
          .sql(`SELECT DISTINCT writer_id FROM archive_writers`)
          .then((r) => r.rows.map((row) => String(row[0])))
          .catch(() => [] as string[])
      : [];
    const anchors = store ? await readAnchors(store, writers) : undefined;
    const started = Date.now();
    const report = await verifyLedger(async (sql) => (await db.sql(sql)).rows, anchors ? { anchors } : {});
    const ms = Date.now() - started;
    let anchoredAt: string | null = null;
    if (report.ok && store && values['write-anchor']) {
      const heads: AnchorHead[] = report.streams.filter((s) => s.head).map((s) => ({ stream: s.stream, seq: s.head!.seq, digest: s.head!.digest }));
      anchoredAt = new Date().toISOString();
      if (heads.length) await writeAnchor(store, { anchored_at: anchoredAt, store: db.path, heads });
    }
    if (values.json) {
      process.stdout.write(JSON.stringify({ db: db.path, ...report, ms, ...(anchoredAt ? { anchored_at: anchoredAt } : {}) }) + '\n');
    } else {
      for (const s of report.streams) {
        if (s.problem) process.stdout.write(`✘ ${s.stream}: ${s.problem}\n`);
        else if (values.quiet) continue;
        else if (s.head)
          process.stdout.write(`✔ ${s.stream}: ${n(s.rows)} rows in ${n(s.entries)} batches verify; head batch ${s.head.seq} digest ${s.head.digest}\n`);
        else process.stdout.write(`- ${s.stream}: ${n(s.unattested)} rows written before the ledger, not covered (the next write covers them)\n`);
      }
      if (report.anchors.problem) process.stdout.write(`✘ ${report.anchors.problem}\n`);
      else if (store && !values.quiet) process.stdout.write(`✔ ${n(report.anchors.records)} anchor(s) at ${store.where} agree with the ledger\n`);
      if (!store && !values.quiet)
        log.info('No --anchor given: rows and ledger rewritten together would verify; anchors written outside the store catch that.');
      if (anchoredAt && !values.quiet) process.stdout.write(`anchored the heads at ${store!.where}\n`);
    }
    if (!report.ok) {
      const bad = report.streams.filter((s) => s.problem).length + (report.anchors.problem ? 1 : 0);
      throw new ExitError(1, values.json ? '' : `the ledger does not verify: ${bad} problem(s)`);
    }
  } finally {
    store?.close();
    await db.close();
  }
}
