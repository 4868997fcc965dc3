import { archiveLocation, decodeSink, loadConfig } from '../../config/load.js';
import type { ArchiveConfig } from '../../sinks/archive/config.js';
import { ExitError } from '../../core/errors.js';
import { createLogger } from '../../core/log.js';
import { createProgress, noProgress } from '../../core/progress.js';
import { archiveSinkOptions, openStore } from '../../sinks/archive/index.js';
import { verifyArchive, type VerifyReport } from '../../sinks/archive/verify.js';
import { COMMON_OUTPUT_OPTIONS, configDefault, defineCommand, parseCommandArgs, selectPipelines } from '../args.js';
import { ARCHIVE_SINK } from '../../sinks/archive/config.js';
import { n, size } from '../output.js';

export const usage =
  'auditship verify-archive [--config FILE] [--pipeline NAME] | (--directory DIR | --bucket NAME [--prefix P] [--endpoint URL] [--region R] [--force-path-style]) [--server NAME] [--quick] [--deep] [--json]';
export const summary =
  'Check an archive against its manifest: every object present and intact (full SHA-256, or HEAD and the stored ETag for cold classes and with --quick), the manifest chain unbroken. Exit 1 when anything is missing or corrupt.';

export const spec = defineCommand({
  name: 'verify-archive',
  summary,
  usage,
  flags: {
    config: {
      type: 'string',
      short: 'c',
      value: 'FILE',
      description: 'verify the archive sinks of this config',
      defaultText: '$AUDITSHIP_CONFIG, else auditship.yaml, unless --directory or --bucket',
    },
    pipeline: { type: 'string', value: 'NAME', multiple: true, description: "only this pipeline's archive sinks", defaultText: 'every pipeline' },
    directory: { type: 'string', value: 'DIR', description: "verify the local archive in DIR instead of a config's" },
    bucket: { type: 'string', value: 'NAME', description: "verify the archive in this S3 bucket instead of a config's" },
    prefix: {
      type: 'string',
      value: 'P',
      description: 'with --bucket: the key prefix the archive is under',
      defaultText: `"${configDefault(ARCHIVE_SINK, 'prefix')}"`,
    },
    endpoint: { type: 'string', value: 'URL', description: 'with --bucket: an S3-compatible endpoint (MinIO, Ceph, R2)', defaultText: 'AWS S3 of the region' },
    region: { type: 'string', value: 'R', description: "with --bucket: the bucket's region", defaultText: '$AWS_REGION, else us-east-1' },
    'force-path-style': {
      type: 'boolean',
      description: 'with --bucket: path-style addressing (endpoint/bucket/key), which MinIO and most S3-compatible stores need',
    },
    server: { type: 'string', value: 'NAME', description: 'only the objects of this server', defaultText: 'every server' },
    quick: { type: 'boolean', description: 'check each object by HEAD (size and the stored ETag) instead of reading it whole and re-hashing it' },
    deep: { type: 'boolean', description: "also decompress each archived log file and compare it with the original's SHA-256" },
    concurrency: { type: 'string', value: 'N', description: 'objects checked at the same time', default: '4' },
    ...COMMON_OUTPUT_OPTIONS,
  },
  notes: '  Exit codes: 0 intact, 1 an object is missing or corrupt (or the archive cannot be read), 2 usage or configuration error.',
});

export async function verifyArchiveCommand(argv: string[]): Promise<void> {
  const { values } = parseCommandArgs(argv, spec);
  const sinks: ArchiveConfig[] = [];
  if (values.directory || values.bucket) {
    if (values.directory && values.bucket) throw new ExitError(2, `give --directory or --bucket, not both\nusage: ${usage}`);
    const problems: string[] = [];
    const sink = decodeSink(
      {
        type: 'archive',
        ...(values.directory ? { directory: values.directory } : { bucket: values.bucket }),
        ...(values.prefix ? { prefix: values.prefix } : {}),
        ...(values.endpoint ? { endpoint: values.endpoint } : {}),
        ...(values.region ? { region: values.region } : {}),
        force_path_style: Boolean(values['force-path-style']),
      },
      'verify-archive',
      problems,
    );
    if (problems.length || sink?.type !== 'archive') throw new ExitError(2, problems.map((p) => p.replace(/^verify-archive\./, '--')).join('\n'));
    sinks.push(sink);
  } else {
    const config = loadConfig(values.config ?? process.env['AUDITSHIP_CONFIG'] ?? 'auditship.yaml');
    const pipelines = selectPipelines(config.pipelines, values.pipeline);
    const seen = new Set<string>();
    for (const p of pipelines)
      for (const s of p.sinks) {
        if (s.type !== 'archive' || seen.has(archiveLocation(s))) continue;
        seen.add(archiveLocation(s));
        sinks.push(s);
      }
    if (!sinks.length) throw new ExitError(2, 'the config has no archive sink (or give --directory / --bucket)');
  }
  const concurrency = Number(values.concurrency);
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new ExitError(2, `--concurrency: ${values.concurrency} is not a positive integer`);
  const log = createLogger({ level: values.quiet || values.json ? 'warn' : 'info' });
  const reports: VerifyReport[] = [];
  for (const cfg of sinks) {
    const store = await openStore(archiveSinkOptions(cfg).store);
    const progress = values.json || values.quiet ? noProgress : createProgress(process.stderr, log);
    try {
      progress.start(0, `verify ${store.where}`);
      const report = await verifyArchive(store, {
        ...(values.server ? { server: values.server } : {}),
        quick: Boolean(values.quick),
        deep: Boolean(values.deep),
        concurrency,
        onBytes: (b) => progress.addBytes(b),
        onProblem: (p) => {
          if (!values.json) process.stdout.write(`✘ ${p.kind}: ${p.key}: ${p.reason}\n`);
        },
      });
      progress.done();
      reports.push(report);
      if (!values.json) {
        process.stdout.write(
          `${report.problems.length ? '✘' : '✔'} ${report.archive}: ${n(report.ok)} of ${n(report.objects)} objects intact ` +
            `(${n(report.verifiedByHash)} re-hashed, ${size(report.bytesHashed)}; ${n(report.verifiedByHead)} by HEAD and stored ETag), ` +
            `${n(report.manifestParts)} manifest part(s), ${n(report.problems.length)} problem(s)` +
            `${report.unlisted.length ? `; ${n(report.unlisted.length)} object(s) in no manifest entry (an interrupted run's leftovers are removed by the next run)` : ''}\n`,
        );
      }
    } finally {
      store.close();
    }
  }
  if (values.json) process.stdout.write(JSON.stringify({ archives: reports, ok: reports.every((r) => r.problems.length === 0) }) + '\n');
  const bad = reports.reduce((k, r) => k + r.problems.length, 0);
  if (bad) throw new ExitError(1, values.json ? '' : `${bad} problem(s) found: the archive does not match its manifest`);
}
