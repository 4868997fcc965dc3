/**
 * Throwaway databases on the machine's MariaDB server (127.0.0.1:3306, user root, no password) for tests
 * that need no special server settings: each test file creates its own database and drops it at the end.
 * AUDITSHIP_TEST_MYSQL_URL points them at another server (a database URL whose user may CREATE DATABASE,
 * read information_schema.PROCESSLIST and KILL the connections to its own databases).
 */
import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';

export const MYSQL_ADMIN_URL = process.env['AUDITSHIP_TEST_MYSQL_URL'] ?? 'mysql://root@127.0.0.1:3306/test';

export interface TestMysqlDatabase {
  name: string;
  /** Connection URL of the new database. */
  url: string;
  /** A connected connection on it (closed by drop()). */
  conn: mysql.Connection;
  /** A new connection on the database (the caller closes it). */
  connect(): Promise<mysql.Connection>;
  /** Drops the database, killing whatever is still connected to it. */
  drop(): Promise<void>;
}

/**
 * The connection settings every test connection uses: BIGINTs and DECIMALs as exact strings, DATETIMEs as
 * their text (no local-time Date conversion), several statements per query (fixtures), UTC for Dates sent.
 */
function open(url: string): Promise<mysql.Connection> {
  return mysql.createConnection({
    uri: url,
    supportBigNumbers: true,
    bigNumberStrings: true,
    dateStrings: true,
    multipleStatements: true,
    timezone: 'Z',
  });
}

function urlFor(name: string): string {
  const u = new URL(MYSQL_ADMIN_URL);
  u.pathname = `/${name}`;
  return u.toString();
}

export async function createTestMysqlDatabase(prefix: string): Promise<TestMysqlDatabase> {
  const name = `auditship_${prefix.replace(/[^a-z0-9_]/gi, '_').toLowerCase()}_${randomBytes(4).toString('hex')}`;
  const admin = await open(MYSQL_ADMIN_URL);
  try {
    await admin.query(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4`);
  } finally {
    await admin.end();
  }
  const url = urlFor(name);
  const connect = () => open(url);
  const conn = await connect();
  return {
    name,
    url,
    conn,
    connect,
    async drop() {
      await conn.end().catch(() => {});
      const a = await open(MYSQL_ADMIN_URL);
      try {
        // MariaDB has no DROP DATABASE ... FORCE: end the sessions still in the database (a test's
        // leftover connections, possibly holding metadata locks) so that DROP cannot wait on them.
        const [rows] = await a.query<mysql.RowDataPacket[]>('SELECT ID FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID()', [name]);
        for (const r of rows) await a.query(`KILL ${Number(r['ID'])}`).catch(() => {});
        await a.query(`DROP DATABASE IF EXISTS \`${name}\``);
      } finally {
        await a.end();
      }
    },
  };
}
