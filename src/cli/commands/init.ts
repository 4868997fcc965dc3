import { existsSync, writeFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { validateConfig } from '../../config/load.js';
import { ExitError } from '../../core/errors.js';
import { DEFAULT_TARGET, connectServer, failed, planInit, readServerFacts, renderInitConfig, resolveTarget, serverChecks } from '../../setup/index.js';
import { defineCommand, parseCommandArgs } from '../args.js';

export const usage = 'auditship init [--url PGURL] [--output FILE] [--force] [--db FILE]';
export const summary =
  'Write a commented config for the local PostgreSQL: its log directory (csvlog or jsonlog files) into DuckDB, with the fixes the server still needs.';

export const spec = defineCommand({
  name: 'init',
  summary,
  usage,
  flags: {
    url: { type: 'string', value: 'PGURL', description: 'the server, as a postgres:// URL', defaultText: DEFAULT_TARGET },
    output: {
      type: 'string',
      short: 'o',
      value: 'FILE',
      description: 'the config file to write; an existing file is kept unless --force',
      default: './auditship.yaml',
    },
    force: { type: 'boolean', short: 'f', description: 'overwrite an existing --output file' },
    db: { type: 'string', value: 'FILE', description: 'the DuckDB file of the pipeline', default: 'auditship.duckdb' },
  },
  notes: `  As a superuser, init's own reads are kept out of the audit log (pgaudit.log = 'none' for its session).
  Exit codes: 0 written, 1 the server cannot be reached or read, 2 usage error or the file exists.`,
});

export async function init(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommandArgs(argv, spec);
  if (positionals.length) throw new ExitError(2, `unexpected argument ${JSON.stringify(positionals[0])}\nusage: ${usage}`);
  const output = values.output;
  if (!output) throw new ExitError(2, '--output: empty file name');
  if (!values.force && existsSync(output)) throw new ExitError(2, `${output} already exists; pass --force to overwrite it (or --output FILE)`);
  const dbPath = values.db;
  if (!dbPath) throw new ExitError(2, '--db: empty file name');
  const target =
    values.url !== undefined
      ? resolveTarget(values.url, 'url')
      : process.env['AUDITSHIP_PG_URL']
        ? resolveTarget(process.env['AUDITSHIP_PG_URL'], 'env')
        : resolveTarget(undefined, 'default');
  const client = await connectServer(target);
  let facts;
  try {
    facts = await readServerFacts(client, target);
  } finally {
    await client.end().catch(() => {});
  }
  const problems = serverChecks(facts).filter(failed);
  const plan = planInit(facts, dbPath, problems);
  if (!plan) {
    throw new ExitError(
      1,
      `cannot read data_directory and log_directory on ${facts.where}: role ${facts.role} is neither superuser nor a member of pg_read_all_settings; GRANT pg_read_all_settings TO ${facts.role}; or give a superuser with --url`,
    );
  }
  const text = renderInitConfig(plan, output);
  // The file must load as it is written: a failure here is a bug in the renderer, not the user's.
  validateConfig(parseDocument(text).toJS(), {});
  try {
    writeFileSync(output, text, { flag: values.force ? 'w' : 'wx' });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new ExitError(2, `${output} already exists; pass --force to overwrite it (or --output FILE)`);
    throw new ExitError(1, `cannot write ${output}: ${code ?? (err as Error).message}`);
  }
  const lines = [`wrote ${output}: pipeline main reads the ${plan.format} files (${plan.fileGlob}) of ${plan.logDir} into ${dbPath}`];
  if (facts.logAccess.kind === 'remote' || facts.logAccess.kind === 'not_here') {
    lines.push(`note: the server is not on this machine: run auditship where ${plan.logDir} is (or point source.path at a copy of it)`);
  }
  if (problems.length)
    lines.push(
      `the server is not ready yet: ${problems.length} problem${problems.length === 1 ? '' : 's'}, listed with their fixes at the top of ${output}; after fixing them: auditship check --config ${output}`,
    );
  lines.push(`next: auditship run --config ${output}`);
  process.stdout.write(lines.join('\n') + '\n');
}
