import { readFileSync } from 'node:fs';

// The AWS SDK warns on every start under Node 20 that its releases after January 2027 need Node 22; the
// versions auditship pins run on 20. (Set before any client is made.)
process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] ??= 'true';
import { ConfigError, ConnectorError, ExitError } from '../core/errors.js';
import * as ingestCmd from './commands/ingest.js';
import * as pgCmd from './commands/pg.js';
import * as purgeCmd from './commands/purge.js';
import * as queryCmd from './commands/query.js';
import * as runCmd from './commands/run.js';
import * as statusCmd from './commands/status.js';
import * as verifyArchiveCmd from './commands/verify-archive.js';

/**
 * The auditship CLI: a table of commands, each a plain async function of argv that prints and throws
 * ExitError to fail. This is the only place that calls process.exit.
 */
const COMMANDS: Record<string, { run: (argv: string[]) => Promise<void>; usage: string; summary: string }> = {
  ingest: { run: ingestCmd.ingest, usage: ingestCmd.usage, summary: ingestCmd.summary },
  run: { run: runCmd.run, usage: runCmd.usage, summary: runCmd.summary },
  query: { run: queryCmd.query, usage: queryCmd.usage, summary: queryCmd.summary },
  status: { run: statusCmd.status, usage: statusCmd.usage, summary: statusCmd.summary },
  pg: { run: pgCmd.pgCommand, usage: pgCmd.usage, summary: pgCmd.summary },
  purge: { run: purgeCmd.purge, usage: purgeCmd.usage, summary: purgeCmd.summary },
  'verify-archive': { run: verifyArchiveCmd.verifyArchiveCommand, usage: verifyArchiveCmd.usage, summary: verifyArchiveCmd.summary },
};

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

function help(): string {
  return [
    'auditship — ship database audit trails into DuckDB, exactly once.',
    '',
    'Commands:',
    ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(8)} ${c.summary}\n           ${c.usage}`),
    '',
    'Exit codes: 0 ok, 1 a runtime failure, 2 usage or configuration error.',
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(help() + '\n');
    return name ? 0 : 2;
  }
  if (name === '--version' || name === '-V') { process.stdout.write(version() + '\n'); return 0; }
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`auditship: unknown command "${name}"; commands: ${Object.keys(COMMANDS).join(', ')}\n`);
    return 2;
  }
  try {
    await command.run(rest);
    return 0;
  } catch (err) {
    if (err instanceof ExitError) {
      if (err.message) process.stderr.write(`auditship: ${err.message}\n`);
      return err.exitCode;
    }
    if (err instanceof ConfigError) {
      process.stderr.write(err.problems.length === 1 ? `auditship: ${err.problems[0]}\n` : `auditship: ${err.problems.length} configuration problems:\n${err.problems.map((p) => `  ${p}`).join('\n')}\n`);
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
