import pg from 'pg';
import { ExitError } from '../../core/errors.js';
import { describePgError, maskUrl } from '../../core/postgres.js';
import { DEFAULT_SCHEMA, installAudit, NOTIFY_CHANNEL, uninstallAudit, upgradeAuditTable } from '../../sources/pg-audit-table/install.js';
import { commandHelp, defineCommand, parseCommandArgs, type FlagTable } from '../args.js';

export const usage = [
  'auditship pg install --url URL [--schema NAME] [--exclude TABLE=COL,COL]... [--log-query] TABLE...',
  '           auditship pg install --url URL --upgrade TABLE',
  '           auditship pg uninstall --url URL [--schema NAME] [--drop-data] [TABLE...]',
].join('\n');
export const summary = "Install (or remove) auditship's audit triggers and audit table on PostgreSQL 13+.";

const CONNECTION_FLAGS = {
  url: { type: 'string', value: 'URL', description: 'the database, as a postgres:// URL', defaultText: '$AUDITSHIP_PG_URL' },
  schema: { type: 'string', value: 'NAME', description: 'schema of the audit table and the trigger function', defaultText: DEFAULT_SCHEMA },
  json: { type: 'boolean', description: 'print the result as one JSON object on stdout' },
  quiet: { type: 'boolean', short: 'q', description: 'print nothing but errors' },
} as const satisfies FlagTable;

export const installSpec = defineCommand({
  name: 'pg install',
  summary: "Install auditship's audit table and triggers on PostgreSQL 13+ (or upgrade an existing audit table).",
  usage:
    'auditship pg install --url URL [--schema NAME] [--exclude TABLE=COL,COL]... [--log-query] TABLE...\n           auditship pg install --url URL --upgrade TABLE',
  flags: {
    ...CONNECTION_FLAGS,
    exclude: { type: 'string', multiple: true, value: 'TABLE=COL,COL', description: 'columns of TABLE left out of row_data and changed_fields' },
    'log-query': { type: 'boolean', description: "record the client's top-level statement in client_query" },
    upgrade: {
      type: 'string',
      value: 'TABLE',
      description:
        'instead of installing: add txid xid8 DEFAULT pg_current_xact_id() and an index on (txid, event_id) to this existing audit table (e.g. a 91plus audit.logged_actions) so auditship can read it',
    },
  },
  notes: `  Creates <schema>.logged_actions and <schema>.if_modified() (once) and puts the triggers auditship_row and
  auditship_truncate on each TABLE ('name', 'schema.name', or quoted SQL names); running it again replaces the
  triggers (changed --exclude or --log-query take effect).`,
});

export const uninstallSpec = defineCommand({
  name: 'pg uninstall',
  summary: "Remove auditship's audit triggers from PostgreSQL.",
  usage: 'auditship pg uninstall --url URL [--schema NAME] [--drop-data] [TABLE...]',
  flags: {
    ...CONNECTION_FLAGS,
    'drop-data': { type: 'boolean', description: 'also drop the audit table, the trigger function and the schema when empty' },
  },
  notes: '  Drops the triggers (of TABLE..., or of every audited table); the audit data stays unless --drop-data.',
});

export async function pgCommand(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
    process.stdout.write(`${summary}\n\n${commandHelp(installSpec)}\n\n${commandHelp(uninstallSpec)}\n`);
    if (sub === undefined) throw new ExitError(2);
    return;
  }
  if (sub === 'install') return install(rest);
  if (sub === 'uninstall') return uninstall(rest);
  throw new ExitError(2, `unknown pg subcommand "${sub}"; use install or uninstall\nusage: ${usage}`);
}

async function install(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommandArgs(argv, installSpec);
  const url = connectionUrl(values.url);

  if (values.upgrade !== undefined) {
    const extra = [
      positionals.length ? 'TABLE arguments' : '',
      values.schema !== undefined ? '--schema' : '',
      values.exclude?.length ? '--exclude' : '',
      values['log-query'] ? '--log-query' : '',
    ].filter(Boolean);
    if (extra.length) throw new ExitError(2, `--upgrade takes one audit table and no ${extra.join(', ')}\nusage: ${usage}`);
    if (!values.upgrade) throw new ExitError(2, `--upgrade needs the audit table to upgrade\nusage: ${usage}`);
    const table = values.upgrade;
    const { added } = await withClient(url, 'upgrading the audit table', (c) => upgradeAuditTable(c, table));
    if (values.json) process.stdout.write(JSON.stringify({ table, added }) + '\n');
    else if (!values.quiet) {
      process.stdout.write(
        added
          ? `upgraded ${table} on ${maskUrl(url)}: added txid xid8 DEFAULT pg_current_xact_id() and an index on (txid, event_id)\n`
          : `${table} on ${maskUrl(url)} already has txid xid8 and its index; nothing to do\n`,
      );
    }
    return;
  }

  if (positionals.length === 0) throw new ExitError(2, `name at least one TABLE to audit\nusage: ${usage}`);
  const excludeColumns: Record<string, string[]> = {};
  for (const e of values.exclude ?? []) {
    const parsed = parseExclude(e);
    if (!parsed) throw new ExitError(2, `--exclude ${JSON.stringify(e)}: expected TABLE=COL[,COL...]\nusage: ${usage}`);
    (excludeColumns[parsed.table] ??= []).push(...parsed.columns);
  }
  const schema = values.schema ?? DEFAULT_SCHEMA;
  if (!schema) throw new ExitError(2, '--schema: empty schema name');
  const result = await withClient(url, 'installing the audit triggers', (c) =>
    installAudit(c, { schema, tables: positionals, excludeColumns, logQuery: values['log-query'] ?? false }),
  );
  if (values.json) {
    process.stdout.write(JSON.stringify({ ...result, notifyChannel: NOTIFY_CHANNEL }) + '\n');
    return;
  }
  if (values.quiet) return;
  const lines = [
    `audit triggers installed on ${result.tables.length} table(s) of ${maskUrl(url)} → ${result.auditTable} (NOTIFY channel ${NOTIFY_CHANNEL}${values['log-query'] ? ', query text recorded' : ''})`,
  ];
  const excludedFor = new Map<string, string[]>();
  for (const [spec, cols] of Object.entries(excludeColumns)) {
    const i = positionals.indexOf(spec);
    const display = i >= 0 ? result.tables[i] : undefined;
    if (display) excludedFor.set(display, cols);
  }
  for (const t of result.tables) {
    const cols = excludedFor.get(t);
    lines.push(`  ${t}${cols ? ` (without ${cols.join(', ')})` : ''}`);
  }
  process.stdout.write(lines.join('\n') + '\n');
}

async function uninstall(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommandArgs(argv, uninstallSpec);
  const url = connectionUrl(values.url);
  const schema = values.schema ?? DEFAULT_SCHEMA;
  if (!schema) throw new ExitError(2, '--schema: empty schema name');
  const result = await withClient(url, 'removing the audit triggers', (c) =>
    uninstallAudit(c, { schema, tables: positionals, dropData: values['drop-data'] ?? false }),
  );
  if (values.json) {
    process.stdout.write(JSON.stringify(result) + '\n');
    return;
  }
  if (values.quiet) return;
  const lines = [`audit triggers removed from ${result.tables.length} table(s) of ${maskUrl(url)}${result.tables.length ? ':' : ''}`];
  for (const t of result.tables) lines.push(`  ${t}`);
  lines.push(
    result.droppedData
      ? `the audit table ${schema}.logged_actions and its data were dropped`
      : values['drop-data']
        ? `there was no audit table ${schema}.logged_actions to drop`
        : `the audit data in ${schema}.logged_actions stays`,
  );
  process.stdout.write(lines.join('\n') + '\n');
}

/** TABLE=COL,COL with TABLE possibly quoted ("a=b"=x) and columns possibly quoted ("a,b"). */
export function parseExclude(spec: string): { table: string; columns: string[] } | null {
  let inQuote = false;
  let eq = -1;
  for (let i = 0; i < spec.length; i++) {
    if (spec[i] === '"') inQuote = !inQuote;
    else if (spec[i] === '=' && !inQuote) {
      eq = i;
      break;
    }
  }
  if (eq <= 0) return null;
  const columns: string[] = [];
  let cur = '';
  inQuote = false;
  for (const ch of spec.slice(eq + 1)) {
    if (ch === '"') inQuote = !inQuote;
    if (ch === ',' && !inQuote) {
      columns.push(cur.trim());
      cur = '';
      continue;
    }
    cur += ch;
  }
  columns.push(cur.trim());
  if (columns.some((c) => c === '')) return null;
  return { table: spec.slice(0, eq), columns };
}

function connectionUrl(given: string | undefined): string {
  const url = given ?? process.env['AUDITSHIP_PG_URL'];
  if (!url) throw new ExitError(2, `give the database with --url postgres://USER@HOST/DB (or set AUDITSHIP_PG_URL)\nusage: ${usage}`);
  if (!/^postgres(ql)?:\/\//i.test(url)) throw new ExitError(2, `--url: ${JSON.stringify(maskUrl(url))} is not a postgres:// or postgresql:// URL`);
  try {
    new URL(url);
  } catch {
    throw new ExitError(2, '--url: not a valid URL');
  }
  return url;
}

const PRIVILEGE_HINT = 'run as the owner of the tables (with CREATE on the database) or as a superuser';

async function withClient<T>(url: string, action: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 15_000, application_name: 'auditship' });
  client.on('error', () => {}); // a dropped connection surfaces as the failing query's error
  try {
    try {
      await client.connect();
    } catch (err) {
      throw describePgError(err, { component: 'pg', url, action: 'connecting', privilegeHint: PRIVILEGE_HINT });
    }
    try {
      return await fn(client);
    } catch (err) {
      throw describePgError(err, { component: 'pg', url, action, privilegeHint: PRIVILEGE_HINT });
    }
  } finally {
    await client.end().catch(() => {});
  }
}
