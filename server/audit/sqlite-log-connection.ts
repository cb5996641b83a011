// The log's own better-sqlite3 connection to the database file, apart from knex's: on the writer
// thread, and on the event loop for commits made there (log-writer.ts). On an error it is dropped
// and opened again for the next batch, so a database that comes back is used again.
import { close, closeSync, fdatasync, fsyncSync, openSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { prepareSqliteConnection, type PragmaConnection } from '../sqlite-connection.ts';
import { sqliteRunner, type SqliteConnection, type SqliteRunner } from './sqlite-batch.ts';

type Connection = SqliteConnection & PragmaConnection & { close(): void };
// better-sqlite3 ships no type declarations: the one constructor used here, typed by hand.
const Database = createRequire(import.meta.url)('better-sqlite3') as new (
  file: string,
  opts: { fileMustExist: boolean },
) => Connection;

export interface SqliteLogConnectionOptions {
  /** How long a statement waits for another connection's write lock (default: the shared setting). */
  busyTimeoutMs?: number;
  /**
   * Commit without SQLite's fsync (synchronous=NORMAL) and leave the caller to make each commit
   * durable with syncWal() before acknowledging it. The event loop then never waits for the disk:
   * only the fdatasync does, on libuv's thread pool.
   */
  deferSync?: boolean;
}

export class SqliteLogConnection {
  #db: Connection | undefined;
  #run: SqliteRunner | undefined;
  /** The WAL file, held open for fdatasync while deferSync is on. */
  #wal: WalFile | undefined;

  constructor(
    private readonly file: string,
    private readonly opts: SqliteLogConnectionOptions = {},
  ) {}

  /** The runner on an open connection, opening one if needed (throws if the file cannot be opened). */
  runner(): SqliteRunner {
    if (this.#run) return this.#run;
    // fileMustExist: the schema is migrated before the log opens; a file that vanished is an
    // outage, not a reason to start an empty database.
    const db = new Database(this.file, { fileMustExist: true });
    let wal: WalFile | undefined;
    try {
      prepareSqliteConnection(db);
      if (this.opts.busyTimeoutMs !== undefined) db.pragma(`busy_timeout = ${this.opts.busyTimeoutMs}`);
      if (this.opts.deferSync) {
        // WAL mode at NORMAL: no sync at commit, but SQLite still syncs around its checkpoints
        // (the WAL before it is copied into the database, the database before the WAL is reused),
        // so every frame is in a synced WAL or a synced database file. syncWal() adds the sync at
        // commit that FULL would make.
        db.pragma('synchronous = NORMAL');
        // The first read opens the WAL (creating it if the last connection removed it).
        db.pragma('schema_version');
        wal = new WalFile(`${this.file}-wal`);
      }
      this.#run = sqliteRunner(db, { synchronous: this.opts.deferSync ? 'NORMAL' : 'FULL' });
    } catch (err) {
      wal?.close();
      db.close();
      throw err;
    }
    this.#db = db;
    this.#wal = wal;
    return this.#run;
  }

  /**
   * Makes every commit made so far on this connection durable (deferSync): one fdatasync of the
   * WAL, off the event loop. A commit is acknowledged only after this resolves.
   */
  syncWal(): Promise<void> {
    return this.#wal ? this.#wal.sync() : Promise.resolve();
  }

  /** Closes the connection (after an error, or at the end); the next runner() opens a new one. */
  drop(): void {
    try {
      this.#db?.close();
    } catch {
      // Already broken.
    }
    this.#wal?.close();
    this.#db = undefined;
    this.#run = undefined;
    this.#wal = undefined;
  }
}

/**
 * A descriptor of the WAL file for fdatasync. SQLite keeps the file (same inode) while any
 * connection has the database open, this one included, so syncing this descriptor syncs the pages
 * SQLite wrote through its own.
 */
class WalFile {
  readonly #fd: number;
  #syncing = 0;
  #closing = false;

  constructor(path: string) {
    this.#fd = openSync(path, 'r+');
    // A WAL file created just now needs its directory entry on disk too (SQLite syncs the
    // directory of a new journal for the same reason).
    const dir = openSync(dirname(path), 'r');
    try {
      fsyncSync(dir);
    } finally {
      closeSync(dir);
    }
  }

  sync(): Promise<void> {
    if (this.#closing) return Promise.reject(new Error('SQLite WAL file closed'));
    this.#syncing++;
    return new Promise<void>((resolve, reject) =>
      fdatasync(this.#fd, (err) => {
        if (--this.#syncing === 0 && this.#closing) close(this.#fd, () => {});
        if (err) reject(err);
        else resolve();
      }),
    );
  }

  /** Closes the descriptor once no sync is using it (a reused descriptor number must never be synced). */
  close(): void {
    if (this.#closing) return;
    this.#closing = true;
    if (this.#syncing === 0) close(this.#fd, () => {});
  }
}

/** SQLITE_BUSY or SQLITE_LOCKED (and their extended codes): another connection holds the lock. */
export function isLockError(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'string' && (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'));
}
