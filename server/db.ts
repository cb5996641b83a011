// One place that knows the differences between SQLite and PostgreSQL: connection settings,
// durability pragmas, migrations, and how integers come back.
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import knexFactory, { type Knex } from 'knex';
import { prepareSqliteConnection } from './sqlite-connection.ts';

export type Db = Knex;

export interface DbOptions {
  /** postgres://… ; when absent, SQLite at sqliteFile. */
  databaseUrl?: string;
  sqliteFile?: string;
  /** PostgreSQL pool size. */
  poolMax?: number;
}

export const MIGRATIONS_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../migrations');

export function knexConfig(opts: DbOptions): Knex.Config {
  const migrations: Knex.MigratorConfig = {
    directory: MIGRATIONS_DIR,
    loadExtensions: ['.ts'],
    tableName: 'knex_migrations',
  };
  if (opts.databaseUrl) {
    return {
      client: 'pg',
      connection: opts.databaseUrl,
      pool: {
        min: 0,
        max: opts.poolMax ?? 10,
        // Durable commits are the log's promise: never let a session run with async commit.
        afterCreate: (conn: any, done: (err: Error | null, conn: any) => void) => {
          conn.query('SET synchronous_commit = on', (err: Error | null) => done(err, conn));
        },
      },
      acquireConnectionTimeout: 10_000,
      migrations,
    };
  }
  const file = opts.sqliteFile ?? ':memory:';
  if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true });
  return {
    client: 'better-sqlite3',
    connection: { filename: file },
    useNullAsDefault: true,
    pool: {
      min: 1,
      max: 1,
      afterCreate: (conn: any, done: (err: Error | null, conn: any) => void) => {
        try {
          prepareSqliteConnection(conn);
          done(null, conn);
        } catch (err) {
          done(err as Error, conn);
        }
      },
    },
    migrations,
  };
}

export function createDb(opts: DbOptions): Db {
  return knexFactory(knexConfig(opts));
}

/** The file of a file-backed SQLite database; undefined for PostgreSQL and in-memory SQLite. */
export function sqliteFile(db: Db): string | undefined {
  if (isPostgres(db)) return undefined;
  const file = ((db.client.config as Knex.Config).connection as { filename?: string } | undefined)?.filename;
  return file && file !== ':memory:' && !file.startsWith('file:') ? file : undefined;
}

export function isPostgres(db: Db): boolean {
  return (db.client.config as Knex.Config).client === 'pg';
}

export async function migrate(db: Db): Promise<void> {
  await db.migrate.latest();
}

/** PostgreSQL returns bigint as string, SQLite as number: normalise in this one place. */
export function toInt(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  if (typeof v === 'string' && /^-?\d+$/.test(v)) return Number(v);
  throw new TypeError(`expected an integer from the database, got ${typeof v}`);
}

/** BLOB/bytea columns: better-sqlite3 and pg both return Buffer; guard against anything else. */
export function toBuffer(v: unknown): Buffer {
  if (Buffer.isBuffer(v)) return v;
  if (v instanceof Uint8Array) return Buffer.from(v);
  throw new TypeError(`expected bytes from the database, got ${typeof v}`);
}

/** Is this error "the database is not reachable" (as opposed to a bug or a constraint)? */
export function isConnectionError(err: unknown): boolean {
  const e = err as { code?: string; message?: string } | undefined;
  const code = e?.code ?? '';
  return (
    ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', '57P01', '57P02', '57P03', '08000', '08003', '08006'].includes(
      code,
    ) ||
    code.startsWith('SQLITE_IOERR') ||
    code === 'SQLITE_FULL' ||
    code === 'SQLITE_CANTOPEN' ||
    /Knex: Timeout acquiring a connection|Connection terminated|terminating connection/i.test(e?.message ?? '')
  );
}
