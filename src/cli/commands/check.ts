import { loadConfig, type Config } from '../../config/load.js';
import {
  DEFAULT_TARGET,
  configServerUrl,
  connectServer,
  connectionCheck,
  failed,
  formatCheck,
  pipelineChecks,
  readServerFacts,
  resolveTarget,
  serverChecks,
  type CheckResult,
  type ServerTarget,
} from '../../setup/index.js';
import { ExitError } from '../../core/errors.js';
import { defineCommand, parseCommandArgs } from '../args.js';

export const usage = 'auditship check [--url PGURL] [--config FILE]';
export const summary =
  "Check that PostgreSQL is ready for pgaudit and auditship (and, with --config, every pipeline's source and sinks); prints the exact fix for each problem.";

export const spec = defineCommand({
  name: 'check',
  summary,
  usage,
  flags: {
    url: {
      type: 'string',
      value: 'PGURL',
      description: 'the server, as a postgres:// URL',
      defaultText: `${DEFAULT_TARGET} (with --config of table sources only: their first postgres:// URL)`,
    },
    config: {
      type: 'string',
      short: 'c',
      value: 'FILE',
      description: 'also check each pipeline of this config: paths, tables, the DuckDB file, clusters, buckets',
    },
  },
  notes: `  One line per check: ✔ what is right, or ✘ what is wrong — fix: the exact fix (– : cannot be checked from here).
  Server: pgaudit in shared_preload_libraries, the pgaudit extension, pgaudit.log (also the values PostgreSQL
  refused in the configuration files, and per-role/per-database values), logging_collector, log_destination
  (csvlog or jsonlog), log_connections/log_disconnections, and the log directory readable by this OS user.
  As a superuser, check's own reads are kept out of the audit log (pgaudit.log = 'none' for its session).
  Exit codes: 0 all passed, 1 a check failed, 2 usage or configuration error.`,
});

export async function check(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommandArgs(argv, spec);
  if (positionals.length) throw new ExitError(2, `unexpected argument ${JSON.stringify(positionals[0])}\nusage: ${usage}`);
  const config: Config | null = values.config !== undefined ? loadConfig(values.config) : null;
  const fromConfig = config ? configServerUrl(config) : undefined;
  const target: ServerTarget =
    values.url !== undefined
      ? resolveTarget(values.url, 'url')
      : process.env['AUDITSHIP_PG_URL']
        ? resolveTarget(process.env['AUDITSHIP_PG_URL'], 'env')
        : fromConfig !== undefined
          ? resolveTarget(fromConfig, 'config')
          : resolveTarget(undefined, 'default');
  let ok = true;
  const print = (r: CheckResult) => {
    if (failed(r)) ok = false;
    process.stdout.write(formatCheck(r) + '\n');
  };
  let client;
  try {
    client = await connectServer(target);
  } catch (err) {
    if (!(err instanceof ExitError)) throw err;
    const [what, fix] = splitFix(err.message);
    print({ id: 'connection', ok: false, what, ...(fix ? { fix } : {}) });
  }
  if (client) {
    try {
      const facts = await readServerFacts(client, target);
      print(connectionCheck(facts));
      for (const r of serverChecks(facts)) print(r);
    } finally {
      await client.end().catch(() => {});
    }
  }
  if (config) for await (const r of pipelineChecks(config)) print(r);
  if (!ok) throw new ExitError(1);
}

/** "problem; remedy" → [problem, remedy]. */
function splitFix(message: string): [string, string | undefined] {
  const cut = message.lastIndexOf('; ');
  return cut > 0 ? [message.slice(0, cut), message.slice(cut + 2)] : [message, undefined];
}
