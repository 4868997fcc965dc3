import { stringify } from 'yaml';
import { METRICS_SECTION, SINKS, SOURCES, UI_SECTION, type ConnectorSpec, type FieldSpec } from './schema.js';

/**
 * Renders the annotated example config and the configuration reference from the schema. Both generated
 * files are committed; `npm run gen:config` rewrites them and a test fails when they are stale.
 */
/** Words of `text` in lines of at most `width` characters, each starting with `prefix` (a comment marker). */
export function wrap(text: string, prefix: string, width = 100): string[] {
  const words = text.split(/\s+/).filter(Boolean);
  const lines: string[] = [];
  let line = '';
  for (const w of words) {
    if ((prefix + line + ' ' + w).length > width && line) {
      lines.push(prefix + line);
      line = w;
    } else line = line ? `${line} ${w}` : w;
  }
  if (line) lines.push(prefix + line);
  return lines;
}

/** A value as YAML on one line. */
export function yamlValue(v: unknown): string {
  return stringify(v, { lineWidth: 0 }).trimEnd();
}

function fieldLines(name: string, spec: FieldSpec, indent: string): string[] {
  const lines = wrap(spec.description, `${indent}# `);
  const allowed = spec.type === 'enum' ? `One of: ${spec.values!.join(', ')}.` : '';
  if (spec.required) {
    lines.push(`${indent}# Required.${allowed ? ' ' + allowed : ''}`);
    lines.push(`${indent}${name}: ${yamlValue(spec.example ?? '')}`);
  } else if (spec.default !== undefined) {
    if (allowed) lines.push(`${indent}# ${allowed}`);
    lines.push(`${indent}${name}: ${yamlValue(spec.default)}`);
  } else {
    if (allowed) lines.push(`${indent}# ${allowed}`);
    lines.push(`${indent}# ${name}: ${yamlValue(spec.example ?? '')}`);
  }
  return lines;
}

function connectorBlock(spec: ConnectorSpec, indent: string, listItem: boolean): string[] {
  const lines = wrap(`${spec.kind}: ${spec.description}`, `${indent}# `);
  lines.push(`${indent}${listItem ? '- ' : ''}type: ${spec.kind}`);
  const inner = listItem ? `${indent}  ` : indent;
  for (const [name, f] of Object.entries(spec.fields)) lines.push(...fieldLines(name, f, inner));
  return lines;
}

/** Comments lines out (already commented ones keep their text). */
function commented(lines: string[]): string[] {
  return lines.map((l) => {
    const m = /^(\s*)(.*)$/.exec(l)!;
    return m[2]!.startsWith('#') ? l : `${m[1]}# ${m[2]}`;
  });
}

export function renderExampleConfig(): string {
  const lines = [
    '# auditship configuration — generated from src/config/schema.ts by `npm run gen:config`; do not edit.',
    '# Copy to auditship.yaml and run `auditship run` (or `auditship run --config FILE`).',
    '# Strings may use ${VAR} or ${VAR:-default} to read the environment.',
    '',
    'pipelines:',
    '  # A pipeline: one source, one or more sinks. Names are yours; several pipelines may run in one config.',
    '  main:',
    '    source:',
    ...connectorBlock(SOURCES['pg_logs']!, '      ', false),
    '    sinks:',
    ...connectorBlock(SINKS['duckdb']!, '      ', true),
    '',
    '  # More sinks go before the duckdb sink (which keeps the checkpoints). To keep the log files in a bucket,',
    '  # uncomment and add to the sinks above:',
    ...commented(connectorBlock(SINKS['archive']!, '      ', true)),
    '',
    '  # An RDS / Aurora PostgreSQL instance: its completed log files are downloaded, parsed and archived.',
    ...commented([
      '  rds:',
      '    source:',
      ...connectorBlock(SOURCES['rds_logs']!, '      ', false),
      '    sinks:',
      '      - { type: archive, bucket: acme-audit-archive, storage_class: GLACIER }',
      '      - { type: duckdb, path: ./auditship.duckdb }',
    ]),
    '',
    '# The web UI of `auditship run --follow` (optional; `auditship ui` serves it without a daemon):',
    ...commented(['ui:', ...Object.entries(UI_SECTION).flatMap(([name, f]) => fieldLines(name, f, '  '))]),
    '',
    '# Prometheus metrics of `auditship run --follow` (optional):',
    ...commented(['metrics:', ...Object.entries(METRICS_SECTION).flatMap(([name, f]) => fieldLines(name, f, '  '))]),
    '',
  ];
  return lines.join('\n');
}

export function renderConfigDocs(): string {
  const out = [
    '# Configuration reference',
    '',
    '_Generated from `src/config/schema.ts` by `npm run gen:config`; do not edit by hand._',
    '',
    'A config file is YAML with the top-level keys `pipelines` (required), `ui` and `metrics`. `pipelines` maps a pipeline name to',
    '`{ source, sinks }`. `auditship run` runs every pipeline once; `${VAR}` and `${VAR:-default}` in',
    'strings are read from the environment. Unknown keys are errors, each reported with its path and',
    'the keys allowed there. See `auditship.example.yaml` for an annotated example.',
    '',
  ];
  const table = (title: string, specs: Record<string, ConnectorSpec>) => {
    out.push(`## ${title}`, '');
    for (const spec of Object.values(specs)) {
      out.push(`### \`${spec.kind}\``, '', spec.description, '', '| key | type | default | description |', '|---|---|---|---|');
      for (const [name, f] of Object.entries(spec.fields)) {
        const type =
          f.type === 'enum'
            ? f.values!.map((v) => `\`${v}\``).join(' \\| ')
            : f.type === 'string_or_list'
              ? 'path or list'
              : f.type === 'url'
                ? `URL: ${f.schemes!.map((v) => `\`${v}://\``).join(' \\| ')}`
                : f.type;
        const def = f.required ? '**required**' : f.default !== undefined ? `\`${String(f.default)}\`` : '—';
        out.push(`| \`${name}\` | ${type} | ${def} | ${f.description.replaceAll('|', '\\|')} |`);
      }
      out.push('');
    }
  };
  table('Sources', SOURCES);
  table('Sinks', SINKS);
  out.push(
    '## Web UI (`ui`)',
    '',
    'An optional top-level section for the UI that `auditship run --follow` serves (`auditship ui` takes the same settings as flags).',
    '',
    '| key | type | default | description |',
    '|---|---|---|---|',
  );
  for (const [name, f] of Object.entries(UI_SECTION)) out.push(`| \`${name}\` | ${f.type} | — | ${f.description.replaceAll('|', '\\|')} |`);
  out.push('');
  out.push(
    '## Metrics (`metrics`)',
    '',
    "An optional top-level section: the Prometheus metrics that `auditship run --follow` serves (the README's Metrics section lists them).",
    '',
    '| key | type | default | description |',
    '|---|---|---|---|',
  );
  for (const [name, f] of Object.entries(METRICS_SECTION)) out.push(`| \`${name}\` | ${f.type} | — | ${f.description.replaceAll('|', '\\|')} |`);
  out.push('');
  return out.join('\n');
}
