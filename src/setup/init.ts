import { wrap, yamlValue } from '../config/render.js';
import { SINKS, SOURCES } from '../connectors.js';
import type { ConnectorSpec, FieldSpec } from '../core/config-spec.js';
import { auditFormats, formatCheck, resolveLogDirectory, type CheckResult, type ServerFacts } from './server-checks.js';

/**
 * The config `auditship init` writes for a local PostgreSQL: one pg_logs pipeline reading the server's log
 * directory into a DuckDB file. Every key is explained by its description from the config schema (the one
 * source of truth, as for auditship.example.yaml); keys init sets are written, the others are shown
 * commented out with their default. When the server is not ready, the failed checks of `auditship check`
 * and their fixes head the file.
 */
export interface InitPlan {
  version: string;
  clusterName: string;
  port: string;
  dataDir: string;
  logDir: string;
  logDestination: string;
  logFilename: string;
  /** The server's log_timezone when it is an IANA zone the parser knows. */
  logTimezone: string | null;
  format: 'csvlog' | 'jsonlog';
  fileGlob: string;
  server: string;
  dbPath: string;
  /** Failed checks (not skipped ones). */
  problems: CheckResult[];
}

/** What init reads off the server's facts: where the logs are and in which format. Null: settings hidden. */
export function planInit(f: ServerFacts, dbPath: string, problems: CheckResult[]): InitPlan | null {
  const get = (n: string) => f.settings.get(n)?.value;
  const dataDir = get('data_directory');
  const logDirectory = get('log_directory');
  if (dataDir === undefined || logDirectory === undefined) return null;
  const formats = auditFormats(get('log_destination') ?? '', f.versionNum);
  // csvlog when the server writes it (or writes neither yet: the fix adds csvlog); jsonlog when it is the only one.
  const format = formats.includes('csvlog') || formats.length === 0 ? 'csvlog' : 'jsonlog';
  const tz = get('log_timezone') ?? '';
  let logTimezone: string | null = null;
  try {
    if (tz) {
      new Intl.DateTimeFormat('en', { timeZone: tz });
      logTimezone = tz;
    }
  } catch {
    logTimezone = null;
  }
  return {
    version: f.version.split(' ')[0]!,
    clusterName: get('cluster_name') ?? '',
    port: get('port') ?? '',
    dataDir,
    logDir: resolveLogDirectory(dataDir, logDirectory),
    logDestination: get('log_destination') ?? '',
    logFilename: get('log_filename') ?? '',
    logTimezone,
    format,
    fileGlob: format === 'csvlog' ? '*.csv' : '*.json',
    server: get('cluster_name') || 'default',
    dbPath,
    problems,
  };
}

/** A key with its description: set to `value` (and why, `note`), or shown commented out with its default. */
function keyLines(name: string, spec: FieldSpec, indent: string, value?: unknown, note?: string): string[] {
  const lines = wrap(spec.description, `${indent}# `);
  if (spec.type === 'enum') lines.push(`${indent}# One of: ${spec.values!.join(', ')}.`);
  if (note) lines.push(...wrap(note, `${indent}# `));
  if (value !== undefined) lines.push(`${indent}${name}: ${yamlValue(value)}`);
  else lines.push(`${indent}# ${name}: ${yamlValue(spec.default ?? spec.example ?? '')}`);
  return lines;
}

function connectorLines(spec: ConnectorSpec, indent: string, listItem: boolean, values: Record<string, { value: unknown; note?: string }>): string[] {
  const lines = wrap(`${spec.kind}: ${spec.description}`, `${indent}# `);
  lines.push(`${indent}${listItem ? '- ' : ''}type: ${spec.kind}`);
  const inner = listItem ? `${indent}  ` : indent;
  for (const [name, f] of Object.entries(spec.fields)) lines.push(...keyLines(name, f, inner, values[name]?.value, values[name]?.note));
  return lines;
}

/** The YAML text of the config. */
export function renderInitConfig(plan: InitPlan, file: string, now = new Date()): string {
  const server = [plan.clusterName ? `cluster ${plan.clusterName}` : '', plan.port ? `port ${plan.port}` : '', `data directory ${plan.dataDir}`]
    .filter(Boolean)
    .join(', ');
  const lines = [
    ...wrap(
      `auditship configuration for PostgreSQL ${plan.version} (${server}), written by \`auditship init\` on ${now.toISOString().slice(0, 10)}. ` +
        'Every key is described below; the reference is docs/configuration.md. Strings may use ${VAR} or ${VAR:-default} to read the environment.',
      '# ',
    ),
    `#   check the server and this file: auditship check --config ${file}`,
    `#   ship the audit log:             auditship run --config ${file}   (--follow to keep running)`,
  ];
  if (plan.problems.length) {
    lines.push(
      '#',
      `# THIS SERVER IS NOT READY YET: auditship check found ${plan.problems.length} problem${plan.problems.length === 1 ? '' : 's'}. As a superuser (psql), apply the fixes in`,
      '# this order, then run auditship check again:',
    );
    for (const p of plan.problems) {
      const [what, fix] = formatCheck(p).split(' — fix: ');
      lines.push(...wrap(what!, '#   '));
      if (fix) lines.push(...wrap(`fix: ${fix}`, '#       '));
    }
  }
  const written = plan.logDestination
    .split(',')
    .map((d) => d.trim().toLowerCase())
    .includes(plan.format);
  const source: Record<string, { value: unknown; note?: string }> = {
    path: { value: plan.logDir, note: "Set from the server's log_directory, resolved against its data_directory." },
    server: { value: plan.server, note: plan.clusterName ? "Set to the server's cluster_name." : undefined },
    file_glob: {
      value: plan.fileGlob,
      note:
        `The server's ${plan.format} files${plan.logFilename ? ` (log_filename = '${plan.logFilename}', with .${plan.format === 'csvlog' ? 'csv' : 'json'} for .log)` : ''}` +
        `${written ? '.' : `, which it does not write yet (log_destination = '${plan.logDestination}'; see the fixes at the top).`}`,
    },
  };
  if (plan.logTimezone) source['log_timezone'] = { value: plan.logTimezone, note: "Set to the server's log_timezone." };
  lines.push(
    '',
    'pipelines:',
    '  # A pipeline: one source, one or more sinks (the last one is duckdb: it keeps the checkpoints).',
    '  main:',
    '    source:',
    ...connectorLines(SOURCES.pg_logs.spec, '      ', false, source),
    '    sinks:',
    ...connectorLines(SINKS.duckdb.spec, '      ', true, {
      path: { value: plan.dbPath, note: 'A relative path is taken from the directory auditship runs in.' },
    }),
    '',
  );
  return lines.join('\n');
}
