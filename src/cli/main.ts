import { readFileSync } from 'node:fs';

// The AWS SDK warns on every start under Node 20 that its releases after January 2027 need Node 22; the
// versions auditship pins run on 20. (Set before any client is made.)
process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] ??= 'true';
import { ConfigError, ConnectorError, ExitError } from '../core/errors.js';

/**
 * The auditship CLI: a table of commands, each a plain async function of argv that prints and throws
 * ExitError to fail. This is the only place that calls process.exit. A command's module is loaded when
 * it runs, so that a command carries only its own dependencies (memory: the AWS SDK, the database drivers).
 */
interface CommandModule {
  usage: string;
  summary: string;
  [fn: string]: unknown;
}
const COMMANDS: Record<string, { load: () => Promise<CommandModule>; fn: string }> = {
  ingest: { load: () => import('./commands/ingest.js'), fn: 'ingest' },
  run: { load: () => import('./commands/run.js'), fn: 'run' },
  query: { load: () => import('./commands/query.js'), fn: 'query' },
  ui: { load: () => import('./commands/ui.js'), fn: 'ui' },
  status: { load: () => import('./commands/status.js'), fn: 'status' },
  pg: { load: () => import('./commands/pg.js'), fn: 'pgCommand' },
  purge: { load: () => import('./commands/purge.js'), fn: 'purge' },
  report: { load: () => import('./commands/report.js'), fn: 'report' },
  verify: { load: () => import('./commands/verify.js'), fn: 'verify' },
  'verify-archive': { load: () => import('./commands/verify-archive.js'), fn: 'verifyArchiveCommand' },
  check: { load: () => import('./commands/check.js'), fn: 'check' },
  init: { load: () => import('./commands/init.js'), fn: 'init' },
};

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

async function help(): Promise<string> {
  const modules = await Promise.all(Object.entries(COMMANDS).map(async ([name, c]) => [name, await c.load()] as const));
  return [
    'auditship — ship database audit trails into DuckDB, Elasticsearch/OpenSearch and archives, exactly once.',
    '',
    'Commands:',
    ...modules.map(([name, m]) => `  ${name.padEnd(8)} ${m.summary}\n           ${m.usage}`),
    '',
    'auditship help COMMAND (or auditship COMMAND --help) describes every flag of a command, with its default.',
    'Exit codes: 0 ok, 1 a runtime failure, 2 usage or configuration error.',
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  // `auditship help CMD [SUB]` is `auditship CMD [SUB] --help`.
  if (argv[0] === 'help' && argv[1] !== undefined) return main([...argv.slice(1), '--help']);
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write((await help()) + '\n');
    return name ? 0 : 2;
  }
  if (name === '--version' || name === '-V') {
    process.stdout.write(version() + '\n');
    return 0;
  }
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`auditship: unknown command "${name}"; commands: ${Object.keys(COMMANDS).join(', ')}\n`);
    return 2;
  }
  try {
    const mod = await command.load();
    await (mod[command.fn] as (argv: string[]) => Promise<void>)(rest);
    return 0;
  } catch (err) {
    if (err instanceof ExitError) {
      if (err.message) process.stderr.write(`auditship: ${err.message}\n`);
      return err.exitCode;
    }
    if (err instanceof ConfigError) {
      process.stderr.write(
        err.problems.length === 1
          ? `auditship: ${err.problems[0]}\n`
          : `auditship: ${err.problems.length} configuration problems:\n${err.problems.map((p) => `  ${p}`).join('\n')}\n`,
      );
      return 2;
    }
    if (err instanceof ConnectorError) {
      process.stderr.write(`auditship: ${err.message}\n`);
      return 1;
    }
    process.stderr.write(`auditship: internal error (this is a bug, please report it): ${(err as Error)?.stack ?? String(err)}\n`);
    return 1;
  }
}

const code = await main(process.argv.slice(2));
process.exitCode = code;
// Exit once stdout has drained (a pipe may still hold output): nothing else should keep the process alive.
process.stdout.write('', () => process.exit(code));
