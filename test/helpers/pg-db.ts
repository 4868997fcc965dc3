/**
 * Throwaway databases on the machine's PostgreSQL server (127.0.0.1:5432, trust auth) for tests that need
 * no special server settings: each test file creates its own database and drops it at the end.
 * AUDITSHIP_TEST_PG_URL points them at another server (a database URL whose user may CREATE DATABASE).
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export const ADMIN_URL = process.env['AUDITSHIP_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export interface TestDatabase {
  name: string;
  /** Connection URL of the new database. */
  url: string;
  /** A connected client on it (closed by drop()). */
  client: pg.Client;
  /** A new client on the database (the caller closes it). */
  connect(): Promise<pg.Client>;
  /** Drops the database, terminating whatever is still connected. */
  drop(): Promise<void>;
}

function urlFor(name: string): string {
  const u = new URL(ADMIN_URL);
  u.pathname = `/${name}`;
  return u.toString();
}

export async function createTestDatabase(prefix: string): Promise<TestDatabase> {
  const name = `auditship_${prefix.replace(/[^a-z0-9_]/gi, '_').toLowerCase()}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE "${name}"`);
  } finally {
    await admin.end();
  }
  const url = urlFor(name);
  const connect = async () => {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    return c;
  };
  const client = await connect();
  return {
    name,
    url,
    client,
    connect,
    async drop() {
      await client.end().catch(() => {});
      const a = new pg.Client({ connectionString: ADMIN_URL });
      await a.connect();
      try {
        await a.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      } finally {
        await a.end();
      }
    },
  };
}
