// The log's SQLite writer for a database file: group commit with an fsync that does not block.
//
// With synchronous=FULL, SQLite fsyncs the WAL inside COMMIT: the calling thread waits for the disk
// (≈ 0.3–1 ms here) once per batch — on the event loop that stalled every request, and moving it
// to a worker thread cost a message and a thread wake-up each way per batch (≈ 250 µs of CPU per
// batch, measured). Instead the log commits on a connection of its own with synchronous=NORMAL —
// SQLite writes the WAL frames and returns without syncing (in WAL mode NORMAL never corrupts the
// database; it only leaves the newest commits in the OS cache) — and makes them durable itself:
// an fdatasync of the WAL file on libuv's thread pool, which covers every batch committed before it
// started. A batch is acknowledged only after such an fsync returned, so an acknowledged entry is
// as durable as with FULL, and batches committed while one fsync runs share the next.
//
// Why this is safe:
// - fdatasync flushes the file's data and size, whoever wrote them; WAL frames are written in commit
//   order, so an fsync covers all earlier frames. Other writes that must be durable (the signed
//   checkpoint rows, API keys, …) go through knex's connection with FULL, whose fsync of the same WAL
//   covers every entry frame before them: a checkpoint is never stored durably ahead of its entries.
// - In NORMAL mode a checkpoint (WAL → database file) syncs the WAL before copying and the database
//   after, so frames never leave the WAL for an unsynced database file.
// - The WAL file lives as long as a connection is open; this one keeps it, and the descriptor is
//   reopened with the connection. Its directory entry is synced once when opened (a new WAL file).
// - If an fsync fails, the kernel may have dropped the unwritten pages: nothing later can be trusted
//   to reach the disk in order, so the writer refuses every later batch until the service restarts
//   (as PostgreSQL does). Fail closed.
//
// Checkpoints (copying the WAL into the database file, with two fsyncs) run on a small thread of
// their own every CHECKPOINT_EVERY_MS: SQLite's automatic checkpoint runs inside a COMMIT, and on the
// event loop it took 40 % of the commit time (a 5–10 ms stall every 1,000 pages), measured.
//
// The connection never waits for a lock on the event loop (busy_timeout 0): a lock held by another
// process is retried with timers, and a connection that failed is dropped and reopened for the next
// batch, so a database that comes back is used again.
import { closeSync, fdatasync, fsyncSync, openSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { prepareSqliteConnection, type PragmaConnection } from '../sqlite-connection.ts';
import type { AuditEventRow } from './audit-events.ts';
import type { BatchWrite, BatchWriter } from './log-writer.ts';
import { sqliteRunner, type SqliteConnection, type SqliteRunner } from './sqlite-batch.ts';

type Connection = SqliteConnection & PragmaConnection & { close(): void };
const require = createRequire(import.meta.url);
// better-sqlite3 ships no type declarations: the one constructor used here, typed by hand.
const Database = require('better-sqlite3') as new (
  file: string,
  opts: { fileMustExist: boolean },
) => Connection;

/** How long a batch waits for another process's write lock before it fails (as busy_timeout did). */
const LOCK_WAIT_MS = 10_000;

export class FsyncFailedError extends Error {}

const CHECKPOINT_EVERY_MS = 200;

const RESTART_WAL_BYTES = 8 * 1024 * 1024;

// Plain JavaScript, so the thread needs no TypeScript loader. PASSIVE never waits for or blocks the
// writer; with synchronous=FULL the checkpoint syncs the WAL before and the database after copying.
// Errors (database gone for a moment) are retried on a new connection at the next tick.
const CHECKPOINTER = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.lib);
const { statSync } = require('node:fs');
let db;
const timer = setInterval(() => {
  try {
    if (!db) {
      db = new Database(workerData.file, { fileMustExist: true });
      db.pragma('synchronous = FULL');
      db.pragma('busy_timeout = 100');
    }
    db.pragma('wal_checkpoint(PASSIVE)');
    // Under steady writes a PASSIVE checkpoint never finds the WAL fully copied at the moment a
    // write starts, so SQLite never starts it over and it grows: past the limit, RESTART waits for
    // the writer's current transaction (the log's writer retries meanwhile), copies the rest, and
    // lets the next write begin the WAL again from its start.
    if (statSync(workerData.file + '-wal').size > workerData.restartBytes) db.pragma('wal_checkpoint(RESTART)');
  } catch {
    try { db && db.close(); } catch {}
    db = undefined;
  }
}, workerData.everyMs);
parentPort.once('message', () => {
  clearInterval(timer);
  try { db && db.close(); } catch {}
  parentPort.postMessage('closed');
});
`;

export class SqliteGroupWriter implements BatchWriter {
  #conn: Connection | undefined;
  #run: SqliteRunner | undefined;
  /** The WAL file of the current connection, opened after its first commit (SQLite creates it lazily). */
  #wal: number | undefined;
  /** The fsync running now, and the one queued behind it for commits made meanwhile. */
  #running: Promise<void> | undefined;
  #next: Promise<void> | undefined;
  /** Descriptors of dropped connections, closed once no fsync uses them. */
  #retired: number[] = [];
  #broken: Error | undefined;
  #checkpointer: Worker | undefined;

  constructor(private readonly file: string) {}

  #open(): SqliteRunner {
    if (this.#run) return this.#run;
    // fileMustExist: the schema is migrated before the log opens; a file that vanished is an
    // outage, not a reason to start an empty database.
    const conn = new Database(this.file, { fileMustExist: true });
    try {
      prepareSqliteConnection(conn);
      // Durability comes from #durable()'s fsync; a lock is waited for with timers, not here.
      conn.pragma('synchronous = NORMAL');
      conn.pragma('busy_timeout = 0');
      // The checkpointer thread copies the WAL into the database file (see the top of the file).
      conn.pragma('wal_autocheckpoint = 0');
      this.#run = sqliteRunner(conn, { synchronous: 'NORMAL' });
    } catch (err) {
      conn.close();
      throw err;
    }
    this.#conn = conn;
    return this.#run;
  }

  #drop(): void {
    try {
      this.#conn?.close();
    } catch {
      // Already broken.
    }
    if (this.#wal !== undefined) this.#retired.push(this.#wal);
    this.#conn = undefined;
    this.#run = undefined;
    this.#wal = undefined;
    this.#closeRetired();
  }

  #closeRetired(): void {
    if (this.#running || this.#next) return;
    for (const fd of this.#retired.splice(0)) closeSync(fd);
  }

  #walFd(): number {
    if (this.#wal !== undefined) return this.#wal;
    const fd = openSync(`${this.file}-wal`, 'r+');
    try {
      // The WAL may have just been created: make its directory entry durable too.
      const dir = openSync(dirname(this.file), 'r');
      try {
        fsyncSync(dir);
      } finally {
        closeSync(dir);
      }
    } catch (err) {
      closeSync(fd);
      throw err;
    }
    return (this.#wal = fd);
  }

  /** Runs fn on the connection, retrying while another connection holds the write lock. */
  async #withConnection<T>(fn: (run: SqliteRunner) => T): Promise<T> {
    const until = performance.now() + LOCK_WAIT_MS;
    for (let delay = 1; ; delay = Math.min(2 * delay, 25)) {
      if (this.#broken) throw this.#broken;
      try {
        return fn(this.#open());
      } catch (err) {
        const code = (err as { code?: string }).code ?? '';
        if (/^SQLITE_(BUSY|LOCKED)/.test(code) && performance.now() < until) {
          await sleep(delay);
          continue;
        }
        this.#drop();
        throw err;
      }
    }
  }

  #fsync(): Promise<void> {
    let fd: number;
    try {
      fd = this.#walFd();
    } catch (err) {
      return Promise.reject(err);
    }
    const p = new Promise<void>((resolve, reject) =>
      fdatasync(fd, (err) => {
        if (!err) return resolve();
        this.#broken ??= new FsyncFailedError(
          `fsync of the SQLite WAL failed (${err.code ?? err.message}): appends refused until the service restarts`,
        );
        reject(this.#broken);
      }),
    );
    this.#running = p;
    const settled = () => {
      if (this.#running === p) this.#running = undefined;
      this.#closeRetired();
    };
    p.then(settled, settled);
    return p;
  }

  /** Resolves once an fsync that started after this call returned: every commit made so far is on disk. */
  #durable(): Promise<void> {
    if (!this.#running) return this.#fsync();
    if (!this.#next) {
      // The running fsync may have started before the caller's commit: the next one covers it.
      const next = this.#running
        .catch(() => {})
        .then(() => {
          this.#next = undefined;
          return this.#fsync();
        });
      this.#next = next;
    }
    return this.#next;
  }

  async write(b: BatchWrite): Promise<boolean> {
    const moved = await this.#withConnection((run) => run.commit({ ...b, now: new Date().toISOString() }));
    if (!moved) return false;
    await this.#durable();
    return true;
  }

  /** Index rows are rebuilt from the entries after a crash: they need no fsync of their own. */
  async writeIndex(rows: AuditEventRow[]): Promise<void> {
    await this.#withConnection((run) => run.index(rows));
  }

  async start(): Promise<void> {
    if (!this.#checkpointer) {
      const w = new Worker(CHECKPOINTER, {
        eval: true,
        workerData: {
          file: this.file,
          lib: require.resolve('better-sqlite3'),
          everyMs: CHECKPOINT_EVERY_MS,
          restartBytes: RESTART_WAL_BYTES,
        },
      });
      // A thread that cannot start leaves the WAL to grow until knex's connection checkpoints it.
      w.on('error', () => {});
      w.unref();
      this.#checkpointer = w;
    }
    try {
      this.#open();
    } catch {
      // Reported by the first batch, which tries again.
    }
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.#running, this.#next]);
    this.#drop();
    const w = this.#checkpointer;
    this.#checkpointer = undefined;
    if (w) {
      // Let it close its connection (not in the middle of a checkpoint), then stop it.
      const closed = new Promise((r) => {
        w.once('message', r);
        w.once('exit', r);
      });
      w.postMessage('close');
      await Promise.race([closed, sleep(2_000)]);
      await w.terminate();
    }
  }
}
