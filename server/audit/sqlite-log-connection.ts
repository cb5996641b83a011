// The log's own better-sqlite3 connection to the database file, apart from knex's: on the writer
// thread, and on the event loop for commits made there (log-writer.ts). On an error it is dropped
// and opened again for the next batch, so a database that comes back is used again.
import { createRequire } from 'node:module';
import { prepareSqliteConnection, type PragmaConnection } from '../sqlite-connection.ts';
import { sqliteRunner, type SqliteConnection, type SqliteRunner } from './sqlite-batch.ts';

type Connection = SqliteConnection & PragmaConnection & { close(): void };
// better-sqlite3 ships no type declarations: the one constructor used here, typed by hand.
const Database = createRequire(import.meta.url)('better-sqlite3') as new (
  file: string,
  opts: { fileMustExist: boolean },
) => Connection;

export class SqliteLogConnection {
  #db: Connection | undefined;
  #run: SqliteRunner | undefined;

  /** `busyTimeoutMs`: how long a statement waits for another connection's write lock. */
  constructor(
    private readonly file: string,
    private readonly busyTimeoutMs?: number,
  ) {}

  /** The runner on an open connection, opening one if needed (throws if the file cannot be opened). */
  runner(): SqliteRunner {
    if (this.#run) return this.#run;
    // fileMustExist: the schema is migrated before the log opens; a file that vanished is an
    // outage, not a reason to start an empty database.
    const db = new Database(this.file, { fileMustExist: true });
    try {
      prepareSqliteConnection(db);
      if (this.busyTimeoutMs !== undefined) db.pragma(`busy_timeout = ${this.busyTimeoutMs}`);
      this.#run = sqliteRunner(db);
    } catch (err) {
      db.close();
      throw err;
    }
    this.#db = db;
    return this.#run;
  }

  /** Closes the connection (after an error, or at the end); the next runner() opens a new one. */
  drop(): void {
    try {
      this.#db?.close();
    } catch {
      // Already broken.
    }
    this.#db = undefined;
    this.#run = undefined;
  }
}

/** SQLITE_BUSY or SQLITE_LOCKED (and their extended codes): another connection holds the lock. */
export function isLockError(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'string' && (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'));
}
