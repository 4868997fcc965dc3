import { parseArgs } from 'node:util';
import type { PipelineConfig } from '../config/load.js';
import type { ConnectorSpec } from '../core/config-spec.js';
import { DUCKDB_SINK } from '../sinks/duckdb/config.js';
import { ExitError } from '../core/errors.js';

/**
 * A command's flags, in one table: what node's parseArgs needs to parse them, and what --help says of each.
 * `--help` is every command's; parseCommandArgs prints the help and ends the command.
 */
export interface FlagSpec {
  type: 'string' | 'boolean';
  short?: string;
  multiple?: boolean;
  /** The value in --help, e.g. FILE (string flags). */
  value?: string;
  /** What the flag does (one sentence or two). */
  description: string;
  /** The value when the flag is not given: applied by the parser, and shown. */
  default?: string;
  /** The default as words, when the command works it out itself (from the environment, the config, other flags). */
  defaultText?: string;
}

export type FlagTable = Record<string, FlagSpec>;

export interface CommandSpec<T extends FlagTable = FlagTable> {
  /** The words that run it: 'query', 'pg install'. */
  name: string;
  summary: string;
  usage: string;
  flags: T;
  /** Text after the flags, as written: arguments, what the output means. */
  notes?: string;
}

/** Defines a command's spec, keeping its flags' literal types for the parsed values. */
export function defineCommand<const T extends FlagTable>(spec: CommandSpec<T>): CommandSpec<T> {
  return spec;
}

/** A config key's default, for a flag that sets that key. */
export function configDefault(spec: ConnectorSpec, key: string): string {
  const d = spec.fields[key]?.default;
  if (d === undefined) throw new Error(`${spec.kind}.${key} has no default`);
  return String(d);
}

/** The DuckDB store of the commands that read one: the duckdb sink's default path. */
export const DEFAULT_DB = configDefault(DUCKDB_SINK, 'path');

export const HELP_FLAG = { help: { type: 'boolean', short: 'h', description: 'print this help and exit' } } as const satisfies FlagTable;

export const COMMON_OUTPUT_OPTIONS = {
  quiet: { type: 'boolean', short: 'q', description: 'print nothing but errors' },
  json: { type: 'boolean', description: 'print the result as one JSON object on stdout (and no progress)' },
} as const satisfies FlagTable;

type ValueOf<F extends FlagSpec> = F['type'] extends 'string' ? string : boolean;
type Parsed<F extends FlagSpec> = F['multiple'] extends true ? ValueOf<F>[] : ValueOf<F>;
export type FlagValues<T extends FlagTable> = { [K in keyof T]: T[K] extends { default: string } ? Parsed<T[K]> : Parsed<T[K]> | undefined };

/** Every flag of a command, --help included, in the order --help lists them. */
export function allFlags(spec: CommandSpec): FlagTable {
  return { ...spec.flags, ...HELP_FLAG };
}

/**
 * Parses argv for one command: a usage error becomes ExitError(2) with the command's usage line; --help
 * prints the help and ends the command (ExitError(0)).
 */
export function parseCommandArgs<T extends FlagTable>(argv: string[], spec: CommandSpec<T>): { values: FlagValues<T>; positionals: string[] } {
  const options = Object.fromEntries(
    Object.entries(allFlags(spec)).map(([name, f]) => [
      name,
      {
        type: f.type,
        ...(f.short ? { short: f.short } : {}),
        ...(f.multiple ? { multiple: true } : {}),
        ...(f.default !== undefined ? { default: f.default } : {}),
      },
    ]),
  );
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new ExitError(2, `${(err as Error).message.split('\n')[0]}\nusage: ${spec.usage}`);
  }
  if (parsed.values['help']) {
    process.stdout.write(commandHelp(spec) + '\n');
    throw new ExitError(0);
  }
  return { values: parsed.values as FlagValues<T>, positionals: parsed.positionals };
}

const WIDTH = 100;

/** `text` in lines of at most WIDTH characters: the first after `first`, the others after `indent` spaces. */
function wrapped(text: string, first: string, indent: number): string[] {
  const lines: string[] = [];
  let line = first;
  let empty = true;
  const width = (l: string) => l.length - (l.lastIndexOf('\n') + 1);
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (!empty && width(line) + 1 + word.length > WIDTH) {
      lines.push(line);
      line = ' '.repeat(indent);
      empty = true;
    }
    line += empty ? word : ` ${word}`;
    empty = false;
  }
  lines.push(line);
  return lines;
}

/** One flag as --help shows it: `-c, --config FILE` (and `--name` alone when it has no short form). */
export function flagSpelling(name: string, f: FlagSpec): string {
  return `${f.short ? `-${f.short}, ` : '    '}--${name}${f.type === 'string' ? ` ${f.value ?? 'VALUE'}` : ''}`;
}

/** What a flag's --help entry says after its spelling. */
export function flagText(f: FlagSpec): string {
  const dflt = f.default !== undefined ? f.default : f.defaultText;
  return `${f.description}${f.multiple ? ' (repeatable)' : ''}${dflt !== undefined ? ` (default: ${dflt === '' ? '""' : dflt})` : ''}`;
}

/** The text of `auditship CMD --help`: summary, usage, every flag with what it does and its default, notes. */
export function commandHelp(spec: CommandSpec): string {
  const flags = Object.entries(allFlags(spec));
  const spellings = flags.map(([name, f]) => `  ${flagSpelling(name, f)}`);
  const column = Math.min(34, Math.max(...spellings.map((s) => s.length)) + 2);
  const out = [spec.summary, '', `usage: ${spec.usage}`, '', 'Flags:'];
  flags.forEach(([, f], i) => {
    const spelled = spellings[i]!;
    const first = spelled.length + 2 <= column ? spelled.padEnd(column) : `${spelled}\n${' '.repeat(column)}`;
    out.push(...wrapped(flagText(f), first, column));
  });
  if (spec.notes) out.push('', spec.notes);
  return out.join('\n');
}

/** The pipelines named by --pipeline (all when none is named); an unknown name is a usage error. */
export function selectPipelines(all: PipelineConfig[], names: string[] | undefined): PipelineConfig[] {
  if (!names?.length) return all;
  const unknown = names.filter((n) => !all.some((p) => p.name === n));
  if (unknown.length) throw new ExitError(2, `no pipeline named ${unknown.join(', ')}; the config has ${all.map((p) => p.name).join(', ')}`);
  return all.filter((p) => names.includes(p.name));
}
