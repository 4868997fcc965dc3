import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { PipelineConfig } from '../config/load.js';
import { ExitError } from '../core/errors.js';

/** Parses argv for one command; usage errors become ExitError(2) with the command's usage line. */
export function parseCommandArgs<T extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: T, usage: string) {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new ExitError(2, `${(err as Error).message.split('\n')[0]}\nusage: ${usage}`);
  }
}

export const COMMON_OUTPUT_OPTIONS = {
  quiet: { type: 'boolean', short: 'q' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** The pipelines named by --pipeline (all when none is named); an unknown name is a usage error. */
export function selectPipelines(all: PipelineConfig[], names: string[] | undefined): PipelineConfig[] {
  if (!names?.length) return all;
  const unknown = names.filter((n) => !all.some((p) => p.name === n));
  if (unknown.length) throw new ExitError(2, `no pipeline named ${unknown.join(', ')}; the config has ${all.map((p) => p.name).join(', ')}`);
  return all.filter((p) => names.includes(p.name));
}
