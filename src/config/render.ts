import { stringify } from 'yaml';
import { SINKS, SOURCES } from '../connectors.js';
import {
  ALERT_DELIVERY_FIELDS,
  ALERT_RULE_FIELDS,
  METRICS_SECTION,
  REDACTION_SECTION,
  STATE_SECTION,
  UI_SECTION,
  type ConnectorSpec,
  type FieldSpec,
} from './schema.js';
import { DESTINATION_SPECS } from '../alerts/deliver/config.js';

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
    ...connectorBlock(SOURCES.pg_logs.spec, '      ', false),
    '    sinks:',
    ...connectorBlock(SINKS.duckdb.spec, '      ', true),
    '',
    '  # More sinks go before the duckdb sink (which keeps the checkpoints). To keep the log files in a bucket,',
    '  # uncomment and add to the sinks above:',
    ...commented(connectorBlock(SINKS.archive.spec, '      ', true)),
    '',
    '  # An RDS / Aurora PostgreSQL instance: its completed log files are downloaded, parsed and archived.',
    ...commented([
      '  rds:',
      '    source:',
      ...connectorBlock(SOURCES.rds_logs.spec, '      ', false),
      '    sinks:',
      '      - { type: archive, bucket: acme-audit-archive, storage_class: GLACIER }',
      '      - { type: duckdb, path: ./auditship.duckdb }',
    ]),
    '',
    '# A pipeline may keep its DuckDB file in S3 between runs (AWS Lambda, a container without a disk): add to the pipeline',
    ...commented(['state:', ...Object.entries(STATE_SECTION).flatMap(([name, f]) => fieldLines(name, f, '  '))]),
    '',
    '# The web UI of `auditship run --follow` (optional; `auditship ui` serves it without a daemon):',
    ...commented(['ui:', ...Object.entries(UI_SECTION).flatMap(([name, f]) => fieldLines(name, f, '  '))]),
    '',
    '# Redaction of secrets before any sink (on by default):',
    ...commented(['redaction:', ...Object.entries(REDACTION_SECTION).flatMap(([name, f]) => fieldLines(name, f, '  '))]),
    '',
    '# Prometheus metrics of `auditship run --follow` (optional):',
    ...commented(['metrics:', ...Object.entries(METRICS_SECTION).flatMap(([name, f]) => fieldLines(name, f, '  '))]),
    '',
    '# Alert rules (optional): evaluated in the transaction of each commit, over the events it stores; each alert is',
    '# delivered to its destinations by `run --follow` (and after a one-shot `run`), retried, else a dead letter.',
    ...commented([
      'alerts:',
      '  destinations:',
      '    # A name of yours for each receiver; rules name them in `to`.',
      '    security-hook:',
      ...connectorBlock(DESTINATION_SPECS.webhook.spec, '      ', false),
      '    security-mail:',
      ...connectorBlock(DESTINATION_SPECS.smtp.spec, '      ', false),
      '  rules:',
      '    # A filter rule: one alert per matching event (or per cooldown period and key).',
      '    - name: salary-ddl',
      '      source: pgaudit',
      '      filter: class=DDL&object=salary',
      '      to: security-hook',
      '    # A threshold: 5 failed logins of one user within 5 minutes fire once for that user and window.',
      '    - name: failed-logins',
      '      source: logon_failures',
      '      count: 5',
      '      window: 5m',
      '      by: user',
      '      to: [security-hook, security-mail]',
      '    # Every key of a rule:',
      ...Object.entries(ALERT_RULE_FIELDS).flatMap(([name, f]) => fieldLines(name, f, '    #   ')),
      '  delivery:',
      ...Object.entries(ALERT_DELIVERY_FIELDS).flatMap(([name, f]) => fieldLines(name, f, '    ')),
    ]),
    '',
  ];
  return lines.join('\n');
}

export function renderConfigDocs(): string {
  const out = [
    '# Configuration reference',
    '',
    "_Generated by `npm run gen:config` from each connector's `config.ts` (listed in `src/connectors.ts`) and `src/config/schema.ts`; do not edit by hand._",
    '',
    'A config file is YAML with the top-level keys `pipelines` (required), `ui`, `metrics`, `redaction` and `alerts`. `pipelines` maps a pipeline name to',
    '`{ source, sinks }`. `auditship run` runs every pipeline once; `${VAR}` and `${VAR:-default}` in',
    'strings are read from the environment. Unknown keys are errors, each reported with its path and',
    'the keys allowed there. See `auditship.example.yaml` for an annotated example.',
    '',
  ];
  const table = (title: string, declarations: Record<string, { spec: ConnectorSpec }>) => {
    out.push(`## ${title}`, '');
    for (const { spec } of Object.values(declarations)) {
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
  out.push(
    '## Redaction (`redaction`)',
    '',
    'An optional top-level section: the policy that masks secrets before any sink (on by default).',
    '',
    '| key | type | default | description |',
    '|---|---|---|---|',
  );
  for (const [name, f] of Object.entries(REDACTION_SECTION) as [string, FieldSpec][])
    out.push(`| \`${name}\` | ${f.type} | ${f.default === undefined ? '' : `\`${String(f.default)}\``} | ${f.description.replaceAll('|', '\\|')} |`);
  out.push('');
  out.push(
    '## Alerts (`alerts`)',
    '',
    "An optional top-level section: `destinations` (a mapping of names to a webhook or smtp destination), `rules` (a list) and `delivery`. Rules are evaluated in the transaction that stores each commit of events (with its checkpoint), over the rows it stored; each alert is stored with an idempotency key and delivered by `auditship run --follow` (and at the end of a one-shot `auditship run`) with retries, then dead-lettered (`auditship status`; the UI's Alerts view). Rules need the events in DuckDB: a pgaudit rule cannot read a pipeline with `store_events: false`, and pipelines whose state is kept in S3 take no rules yet.",
    '',
    '### A rule (`alerts.rules[]`)',
    '',
    '| key | type | default | description |',
    '|---|---|---|---|',
  );
  const sectionRows = (fields: Record<string, FieldSpec>) => {
    for (const [name, f] of Object.entries(fields))
      out.push(
        `| \`${name}\` | ${f.type === 'enum' ? f.values!.map((v) => `\`${v}\``).join(' \\| ') : f.type}${f.required ? ' (required)' : ''} | ${f.default === undefined ? '' : `\`${String(f.default)}\``} | ${f.description.replaceAll('|', '\\|')} |`,
      );
    out.push('');
  };
  sectionRows(ALERT_RULE_FIELDS);
  for (const { spec } of Object.values(DESTINATION_SPECS)) {
    out.push(
      `### A destination of type \`${spec.kind}\` (\`alerts.destinations.NAME\`)`,
      '',
      spec.description,
      '',
      '| key | type | default | description |',
      '|---|---|---|---|',
    );
    sectionRows(spec.fields);
  }
  out.push('### Delivery (`alerts.delivery`)', '', '| key | type | default | description |', '|---|---|---|---|');
  sectionRows(ALERT_DELIVERY_FIELDS);
  out.push(
    '## State in S3 (`pipelines.NAME.state`)',
    '',
    'An optional section of a pipeline: its DuckDB file kept in an S3 bucket between one-shot runs (`run`, the Lambda handler), for hosts whose disk does not outlive a run.',
    '',
    '| key | type | default | description |',
    '|---|---|---|---|',
  );
  for (const [name, f] of Object.entries(STATE_SECTION) as [string, FieldSpec][])
    out.push(
      `| \`${name}\` | ${f.type}${f.required ? ' (required)' : ''} | ${f.default === undefined ? '' : `\`${String(f.default)}\``} | ${f.description.replaceAll('|', '\\|')} |`,
    );
  out.push('');
  return out.join('\n');
}
