import { archiveLocation, loadConfig, type ConnectorConfig } from '../../config/load.js';
import { ExitError } from '../../core/errors.js';
import { createLogger } from '../../core/log.js';
import { createProgress, noProgress } from '../../core/progress.js';
import { archiveSinkOptions, openStore } from '../../sinks/archive/index.js';
import { verifyArchive, type VerifyReport } from '../../sinks/archive/verify.js';
import { parseCommandArgs, selectPipelines } from '../args.js';
import { n, size } from '../output.js';

export const usage = 'auditship verify-archive [--config FILE] [--pipeline NAME] | (--directory DIR | --bucket NAME [--prefix P] [--endpoint URL] [--region R] [--force-path-style]) [--server NAME] [--quick] [--deep] [--json]';
export const summary = 'Check an archive against its manifest: every object present and intact (full SHA-256, or HEAD and the stored ETag for cold classes and with --quick), the manifest chain unbroken. Exit 1 when anything is missing or corrupt.';

export async function verifyArchiveCommand(argv: string[]): Promise<void> {
  const { values } = parseCommandArgs(argv, {
    config: { type: 'string', short: 'c' },
    pipeline: { type: 'string', multiple: true },
    directory: { type: 'string' },
    bucket: { type: 'string' },
    prefix: { type: 'string' },
    endpoint: { type: 'string' },
    region: { type: 'string' },
    'force-path-style': { type: 'boolean' },
    server: { type: 'string' },
    quick: { type: 'boolean' },
    deep: { type: 'boolean' },
    concurrency: { type: 'string' },
    json: { type: 'boolean' },
    quiet: { type: 'boolean', short: 'q' },
    help: { type: 'boolean', short: 'h' },
  }, usage);
  if (values.help) { process.stdout.write(`${summary}\nusage: ${usage}\n`); return; }
  const sinks: ConnectorConfig[] = [];
  if (values.directory || values.bucket) {
    if (values.directory && values.bucket) throw new ExitError(2, `give --directory or --bucket, not both\nusage: ${usage}`);
    sinks.push({
      type: 'archive', ...(values.directory ? { directory: values.directory } : { bucket: values.bucket }),
      ...(values.prefix ? { prefix: values.prefix } : {}), ...(values.endpoint ? { endpoint: values.endpoint } : {}),
      ...(values.region ? { region: values.region } : {}), force_path_style: Boolean(values['force-path-style']),
    });
  } else {
    const config = loadConfig(values.config ?? process.env['AUDITSHIP_CONFIG'] ?? 'auditship.yaml');
    const pipelines = selectPipelines(config.pipelines, values.pipeline);
    const seen = new Set<string>();
    for (const p of pipelines) for (const s of p.sinks) {
      if (s.type !== 'archive' || seen.has(archiveLocation(s))) continue;
      seen.add(archiveLocation(s));
      sinks.push(s);
    }
    if (!sinks.length) throw new ExitError(2, 'the config has no archive sink (or give --directory / --bucket)');
  }
  const concurrency = values.concurrency ? Number(values.concurrency) : 4;
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new ExitError(2, `--concurrency: ${values.concurrency} is not a positive integer`);
  const log = createLogger({ level: values.quiet || values.json ? 'warn' : 'info' });
  const reports: VerifyReport[] = [];
  for (const cfg of sinks) {
    const store = await openStore(archiveSinkOptions(cfg).store);
    const progress = values.json || values.quiet ? noProgress : createProgress(process.stderr, log);
    try {
      progress.start(0, `verify ${store.where}`);
      const report = await verifyArchive(store, {
        ...(values.server ? { server: values.server } : {}), quick: Boolean(values.quick), deep: Boolean(values.deep), concurrency,
        onBytes: (b) => progress.addBytes(b),
        onProblem: (p) => { if (!values.json) process.stdout.write(`✘ ${p.kind}: ${p.key}: ${p.reason}\n`); },
      });
      progress.done();
      reports.push(report);
      if (!values.json) {
        process.stdout.write(`${report.problems.length ? '✘' : '✔'} ${report.archive}: ${n(report.ok)} of ${n(report.objects)} objects intact `
          + `(${n(report.verifiedByHash)} re-hashed, ${size(report.bytesHashed)}; ${n(report.verifiedByHead)} by HEAD and stored ETag), `
          + `${n(report.manifestParts)} manifest part(s), ${n(report.problems.length)} problem(s)`
          + `${report.unlisted.length ? `; ${n(report.unlisted.length)} object(s) in no manifest entry (an interrupted run's leftovers are removed by the next run)` : ''}\n`);
      }
    } finally {
      store.close();
    }
  }
  if (values.json) process.stdout.write(JSON.stringify({ archives: reports, ok: reports.every((r) => r.problems.length === 0) }) + '\n');
  const bad = reports.reduce((k, r) => k + r.problems.length, 0);
  if (bad) throw new ExitError(1, values.json ? '' : `${bad} problem(s) found: the archive does not match its manifest`);
}
