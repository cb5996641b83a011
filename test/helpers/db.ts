// Real databases for tests: a fresh SQLite file in a temp dir, or a fresh PostgreSQL database
// on the local server (trust auth) that is dropped afterwards.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import knexFactory from 'knex';
import { createDb, migrate, type Db } from '../../server/db.ts';

export const PG_ADMIN_URL = process.env.AUDITGATE_TEST_PG_URL || 'postgres://postgres@127.0.0.1:5432/postgres';

export type DbKind = 'sqlite' | 'postgres';
export const DB_KINDS: DbKind[] = ['sqlite', 'postgres'];

export interface TestDb {
  kind: DbKind;
  db: Db;
  /** What to pass as DATABASE_URL / sqlite file to another process using the same database. */
  databaseUrl?: string;
  sqliteFile?: string;
  dir: string;
  /** Opens another knex handle on the same database (e.g. to simulate a second process or an attacker). */
  reopen(): Db;
  cleanup(): Promise<void>;
}

export async function createTestDb(kind: DbKind, opts: { migrate?: boolean } = {}): Promise<TestDb> {
  const dir = mkdtempSync(join(tmpdir(), 'auditgate-test-'));
  let databaseUrl: string | undefined;
  let sqliteFile: string | undefined;
  let dbName: string | undefined;
  if (kind === 'postgres') {
    dbName = `auditgate_test_${randomBytes(6).toString('hex')}`;
    const admin = knexFactory({ client: 'pg', connection: PG_ADMIN_URL });
    try {
      await admin.raw(`CREATE DATABASE ${dbName}`);
    } finally {
      await admin.destroy();
    }
    const u = new URL(PG_ADMIN_URL);
    u.pathname = `/${dbName}`;
    databaseUrl = u.toString();
  } else {
    sqliteFile = join(dir, 'auditgate.sqlite');
  }
  const open = () => createDb({ databaseUrl, sqliteFile });
  const db = open();
  if (opts.migrate !== false) await migrate(db);
  const extra: Db[] = [];
  return {
    kind,
    db,
    databaseUrl,
    sqliteFile,
    dir,
    reopen() {
      const d = open();
      extra.push(d);
      return d;
    },
    async cleanup() {
      await Promise.allSettled([db.destroy(), ...extra.map((d) => d.destroy())]);
      if (dbName) {
        const admin = knexFactory({ client: 'pg', connection: PG_ADMIN_URL });
        try {
          await admin.raw(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
        } finally {
          await admin.destroy();
        }
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
