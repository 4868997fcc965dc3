/**
 * The guard for SQL text a user sends to the store (`auditship query`, and any reader that takes SQL): only
 * read statements run. A read-only database refuses INSERT or DELETE by itself, but not COPY … TO a file,
 * EXPORT DATABASE, ATTACH, INSTALL or SET.
 *
 * DuckDB's own parser decides: json_serialize_sql serializes SELECT statements and refuses every other kind,
 * and to it SELECT, WITH, VALUES, FROM-first, TABLE, DESCRIBE, SHOW, SUMMARIZE and PIVOT … IN (…) are all
 * SELECTs. EXPLAIN [ANALYZE] is the one other kind let through, and only around one such SELECT. Nothing is
 * prepared before the decision: preparing EXPORT DATABASE already creates its directory (DuckDB 1.5.6).
 */
import type { DuckDBConnection } from '@duckdb/node-api';

/** What `auditship query` runs; the order of the refusal message. */
export const READ_STATEMENTS = ['SELECT', 'WITH', 'VALUES', 'FROM', 'TABLE', 'DESCRIBE', 'SHOW', 'SUMMARIZE', 'EXPLAIN'] as const;

/** Why SQL text was not run: `refused` — not a read statement (or none); `syntax` — DuckDB cannot parse it. */
export class ReadOnlySqlError extends Error {
  constructor(
    readonly kind: 'refused' | 'syntax',
    message: string,
  ) {
    super(message);
    this.name = 'ReadOnlySqlError';
  }
}

/**
 * EXPLAIN, ANALYZE and its options ahead of the explained statement. The options may hold no quote, comment
 * or semicolon, so the statement starts where DuckDB's parser starts it.
 */
const EXPLAIN_PREFIX = /^\s*EXPLAIN(?:\s+ANALY[SZ]E)?(?:\s*\([^()'"/;-]*\))?\s+/i;

interface Serialized {
  error: boolean;
  error_type?: string;
  error_message?: string;
  statements?: unknown[];
}

/** DuckDB's parse of `sql`: how many statements, when every one is a SELECT. */
async function parseSelects(conn: DuckDBConnection, sql: string): Promise<Serialized> {
  const reader = await conn.runAndReadAll('SELECT json_serialize_sql($1::VARCHAR)', [sql]);
  return JSON.parse(String(reader.getRows()[0]![0])) as Serialized;
}

/** The first word of the text after leading comments, upper-cased, to name a refused statement. */
function firstWord(sql: string): string {
  const text = sql.replace(/^(?:\s+|--[^\n]*(?:\n|$)|\/\*[\s\S]*?\*\/)*/, '');
  return /^[A-Za-z_]+/.exec(text)?.[0]?.toUpperCase() ?? '';
}

function refused(sql: string): ReadOnlySqlError {
  const word = firstWord(sql);
  const what =
    word === 'EXPLAIN'
      ? 'EXPLAIN of a statement that is not a read'
      : word && !(READ_STATEMENTS as readonly string[]).includes(word)
        ? `${word} is not a read statement`
        : 'one of the statements is not a read';
  const reads = READ_STATEMENTS.filter((w) => w !== 'EXPLAIN').join(', ');
  return new ReadOnlySqlError('refused', `query refused: ${what}; only ${reads} and EXPLAIN of those run (nothing was run)`);
}

/**
 * Throws ReadOnlySqlError unless every statement in `sql` only reads; runs nothing of `sql` itself.
 * @returns the number of statements.
 */
export async function assertReadOnlySql(conn: DuckDBConnection, sql: string): Promise<number> {
  const parsed = await parseSelects(conn, sql);
  if (!parsed.error) {
    const n = parsed.statements?.length ?? 0;
    if (n === 0) throw new ReadOnlySqlError('refused', 'no SQL statement given (only comments or blanks)');
    return n;
  }
  if (parsed.error_type === 'parser') throw new ReadOnlySqlError('syntax', `Parser Error: ${parsed.error_message ?? 'syntax error'}`);
  const explain = EXPLAIN_PREFIX.exec(sql);
  if (explain) {
    const inner = await parseSelects(conn, sql.slice(explain[0].length));
    // The whole text parsed, so a remainder that does not is a statement this prefix misread: refused.
    if (!inner.error && inner.statements?.length === 1) return 1;
  }
  throw refused(sql);
}
