// The hot path of the log: committing one batch. Kept apart because it is the one place that
// talks below knex's query builder, for speed, with one implementation per database:
//
// - PostgreSQL: ONE statement. Data-modifying CTEs compare-and-swap the state row and insert
//   the entries only if the swap matched, so a batch costs one round trip and one implicit
//   transaction, all or nothing. Index rows follow in a transaction of their own (writeIndex).
// - SQLite: sqlite-batch.ts on a connection of the log's own. A commit runs on the event loop
//   while commits are quick (a fast disk: the fsync takes a fraction of a millisecond), and on a
//   writer thread (sqlite-writer-thread.ts) while they are slow or another connection holds the
//   lock, so a slow disk or a lock wait never stalls the event loop. In-memory databases (and
//   callers that ask) commit on knex's connection instead.
//
// Both return false when the state row did not match (another writer committed first); nothing
// was written then.
import { Worker } from 'node:worker_threads';
import { isPostgres, sqliteFile, toInt, type Db } from '../db.ts';
import { AUDIT_EVENT_COLUMNS, type AuditEventRow } from './audit-events.ts';
import { sqliteRunner, type SqliteConnection, type SqliteRunner } from './sqlite-batch.ts';
import { pack, type WriterReply, type WriterRequest } from './sqlite-packed.ts';
import { isLockError, SqliteLogConnection } from './sqlite-log-connection.ts';

export interface BatchWrite {
  oldSize: number;
  oldRoot: Buffer;
  newSize: number;
  newRoot: Buffer;
  entries: Array<{ idx: number; data: Buffer; hashes: Buffer }>;
}

export interface BatchWriter {
  write(batch: BatchWrite): Promise<boolean>;
  /** Inserts audit_events rows of committed entries; rows already there are left as they are. */
  writeIndex(rows: AuditEventRow[]): Promise<void>;
  /** Gets ready for the first write (starts the SQLite writer thread); resolves when it is. */
  start(): Promise<void>;
  /** Releases what the writer holds itself (the SQLite writer thread); the Db stays the caller's. */
  close(): Promise<void>;
  /** SQLite's adaptive writer: commits made on the event loop and on its thread. */
  readonly stats?: { inline: number; thread: number };
}

/**
 * The writer for this database. A file-backed SQLite database is written on a connection of the
 * log's own, on the event loop or on its writer thread (SqliteAdaptiveWriter), unless `thread` is
 * false (then on knex's connection, blocking the event loop for each commit).
 */
export function batchWriter(db: Db, opts: { thread?: boolean } = {}): BatchWriter {
  if (isPostgres(db)) return new PgBatchWriter(db);
  const file = sqliteFile(db);
  return file && opts.thread !== false ? new SqliteAdaptiveWriter(file) : new SqliteBatchWriter(db);
}

/**
 * Runs `fn` on one connection of knex's pool, below its query builder. A connection that failed
 * is marked by knex's driver glue and dropped from the pool when it is released.
 */
async function withConnection<C, T>(db: Db, fn: (conn: C) => Promise<T>): Promise<T> {
  const conn = (await db.client.acquireConnection()) as C;
  try {
    return await fn(conn);
  } finally {
    await db.client.releaseConnection(conn);
  }
}

// PostgreSQL accepts at most 65,535 parameters per statement: 3 per entry.
const PG_MAX_ROWS = 20_000;

/** The one method of a node-postgres client the batch writer calls. */
interface PgConnection {
  query(q: { name?: string; text: string; values?: unknown[] }): Promise<{ rows: Array<Record<string, unknown>> }>;
}

const PG_INDEX_COLUMNS = AUDIT_EVENT_COLUMNS.join(', ');
const PG_INDEX_SQL =
  `INSERT INTO audit_events (${PG_INDEX_COLUMNS}) SELECT ${PG_INDEX_COLUMNS} ` +
  `FROM json_populate_recordset(NULL::audit_events, $1::json) ON CONFLICT (idx) DO NOTHING`;

/** Batch sizes whose statement stays prepared on each connection (sizes repeat: the limit, small bursts). */
const PG_PREPARED_SIZES = 64;

class PgBatchWriter implements BatchWriter {
  /** Per batch size: the statement, and its name while it is one of the sizes kept prepared. */
  #statements = new Map<number, { text: string; name?: string }>();
  constructor(private readonly db: Db) {}

  #statement(entries: number): { text: string; name?: string } {
    const known = this.#statements.get(entries);
    if (known) return known;
    // Entries as VALUES rows: pg sends Buffers as binary parameters.
    let values = '';
    for (let i = 0, p = 5; i < entries; i++, p += 3) {
      values += `${i ? ', ' : ''}($${p}::bigint, $${p + 1}::bytea, $${p + 2}::bytea)`;
    }
    const text =
      `WITH cas AS (UPDATE log_state SET size = $1, root = $2, updated_at = now() ` +
      `WHERE id = 1 AND size = $3 AND root = $4 RETURNING size), ` +
      `ent AS (INSERT INTO log_entries (idx, data, hashes) SELECT v.idx, v.data, v.hashes FROM (VALUES ` +
      values +
      `) AS v(idx, data, hashes) WHERE EXISTS (SELECT 1 FROM cas))` +
      ` SELECT count(*) AS moved FROM cas`;
    if (this.#statements.size >= PG_PREPARED_SIZES) return { text };
    const statement = { text, name: `auditgate_log_batch_${entries}` };
    this.#statements.set(entries, statement);
    return statement;
  }

  async writeIndex(rows: AuditEventRow[]): Promise<void> {
    if (rows.length === 0) return;
    // The rows travel as one JSON parameter: node-postgres escaped every element of 19 text
    // arrays (the unnest form) at several times the cost of JSON.stringify.
    await withConnection(this.db, async (conn: PgConnection) => {
      // Index rows are rebuilt from the entries when the log opens, so their commit need not
      // wait for the WAL flush (an asynchronous commit: a crash may lose it, never corrupts).
      await conn.query({ text: 'BEGIN; SET LOCAL synchronous_commit = off' });
      try {
        await conn.query({ name: 'auditgate_index_rows', text: PG_INDEX_SQL, values: [JSON.stringify(rows)] });
        await conn.query({ text: 'COMMIT' });
      } catch (err) {
        await conn.query({ text: 'ROLLBACK' }).catch(() => {});
        throw err;
      }
    });
  }

  async write(b: BatchWrite): Promise<boolean> {
    if (b.entries.length > PG_MAX_ROWS) {
      // Larger batches than one statement can carry: the ordinary transaction, same CAS.
      return this.#writeInTransaction(b);
    }
    const values: unknown[] = [b.newSize, b.newRoot, b.oldSize, b.oldRoot];
    for (const e of b.entries) values.push(e.idx, e.data, e.hashes);
    // A named statement is parsed and planned once per connection and batch size; parsing and
    // planning this statement anew was most of PostgreSQL's CPU per batch. The statement goes
    // to node-postgres directly (a pooled connection of knex's): knex's raw() would resend it
    // unnamed each time.
    const { text, name } = this.#statement(b.entries.length);
    const r = await withConnection(this.db, (conn: PgConnection) => conn.query({ name, text, values }));
    return toInt(r.rows[0]!.moved as number | string) === 1;
  }

  async #writeInTransaction(b: BatchWrite): Promise<boolean> {
    let moved = false;
    await this.db.transaction(async (trx) => {
      const n = await trx('log_state')
        .where({ id: 1, size: b.oldSize, root: b.oldRoot })
        .update({ size: b.newSize, root: b.newRoot, updated_at: trx.fn.now() });
      if (n !== 1) return;
      for (let i = 0; i < b.entries.length; i += 1_000)
        await trx('log_entries').insert(b.entries.slice(i, i + 1_000));
      moved = true;
    });
    return moved;
  }

  async start(): Promise<void> {}

  async close(): Promise<void> {}
}

class SqliteBatchWriter implements BatchWriter {
  // Per connection: statements die with their connection (e.g. after knex re-creates its pool).
  #runners = new WeakMap<SqliteConnection, SqliteRunner>();
  constructor(private readonly db: Db) {}

  async #with<T>(fn: (run: SqliteRunner) => T): Promise<T> {
    // knex's pool hands out the single better-sqlite3 connection; holding it keeps knex queries
    // from interleaving with this transaction.
    return withConnection(this.db, async (conn: SqliteConnection) => {
      let run = this.#runners.get(conn);
      if (!run) this.#runners.set(conn, (run = sqliteRunner(conn)));
      return fn(run);
    });
  }

  write(b: BatchWrite): Promise<boolean> {
    return this.#with((run) => run.commit(b));
  }

  writeIndex(rows: AuditEventRow[]): Promise<void> {
    return this.#with((run) => run.index(rows));
  }

  async start(): Promise<void> {}

  async close(): Promise<void> {}
}

/** Commits on the log's SQLite writer thread (sqlite-writer-thread.ts), started on first use. */
class SqliteThreadWriter implements BatchWriter {
  #worker: Worker | undefined;
  #ready: Promise<void> = Promise.resolve();
  #pending = new Map<number, { resolve: (moved: boolean) => void; reject: (err: Error) => void }>();
  #nextId = 1;
  constructor(private readonly file: string) {}

  #start(): Worker {
    // The process runs TypeScript through tsx's loader, which a worker does not inherit: register
    // it in the thread before importing the writer.
    const tsx = import.meta.resolve('tsx/esm/api');
    const entry = new URL('./sqlite-writer-thread.ts', import.meta.url).href;
    const w = new Worker(
      `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); })`,
      { eval: true, workerData: { file: this.file } },
    );
    w.on('message', (reply: WriterReply) => {
      const p = this.#pending.get(reply.id);
      if (!p) return;
      this.#pending.delete(reply.id);
      if ('error' in reply)
        p.reject(Object.assign(new Error(reply.error.message), { code: reply.error.code }));
      else p.resolve(reply.moved);
      // An idle writer thread must not keep the process alive.
      if (this.#pending.size === 0) w.unref();
    });
    const lost = (why: string) => {
      if (this.#worker !== w) return;
      this.#worker = undefined;
      const err = new Error(`SQLite writer thread stopped: ${why}`);
      for (const p of this.#pending.values()) p.reject(err);
      this.#pending.clear();
    };
    w.on('error', (err) => lost(err.message));
    w.on('exit', (code) => lost(`exit code ${code}`));
    // The thread answers request 0 once it has loaded and tried to open the database.
    this.#ready = new Promise<void>((resolve) =>
      this.#pending.set(0, { resolve: () => resolve(), reject: () => resolve() }),
    );
    this.#worker = w;
    return w;
  }

  /** Nothing sent to the thread is waiting for its answer. */
  get idle(): boolean {
    return this.#pending.size === 0;
  }

  /** Loading the thread takes a moment (its TypeScript loader, better-sqlite3): not on the first append's time. */
  start(): Promise<void> {
    if (!this.#worker) this.#start();
    return this.#ready;
  }

  #send(req: WriterRequest, transfer = false): Promise<boolean> {
    // Requests are answered in order by one thread: commits and index writes never interleave.
    const w = this.#worker ?? this.#start();
    return new Promise<boolean>((resolve, reject) => {
      this.#pending.set(req.id, { resolve, reject });
      w.ref();
      if (transfer && 'packed' in req) w.postMessage(req, [req.packed.bytes.buffer as ArrayBuffer]);
      else w.postMessage(req);
    });
  }

  write(b: BatchWrite): Promise<boolean> {
    return this.#send({ id: this.#nextId++, packed: pack(b) }, true);
  }

  async writeIndex(rows: AuditEventRow[]): Promise<void> {
    await this.#send({ id: this.#nextId++, index: JSON.stringify(rows) });
  }

  async close(): Promise<void> {
    const w = this.#worker;
    if (!w) return;
    // Close the connection in the thread (SQLite checkpoints its WAL on the last close), then stop it.
    await this.#send({ id: this.#nextId++, close: true }).catch(() => {});
    this.#worker = undefined;
    await w.terminate();
  }
}

/** Inline commits slower than this on average (ms) go to the writer thread. */
const INLINE_SLOW_MS = 1.5;
/** How long writes stay on the thread after commits were slow or the lock was taken (ms). */
const THREAD_SPELL_MS = 5_000;

/**
 * SQLite commits on the event loop while they are quick, on the writer thread otherwise.
 *
 * Handing a batch to the writer thread and back wakes a sleeping thread twice. On a busy machine
 * that costs more than a fast commit itself: in `npm run bench:gateway` (2 cores shared with the
 * load and the upstream) the thread's round trip took 0.6–0.7 ms beyond the commit's 0.4–1 ms,
 * and committing on the event loop took 0.05 ms less CPU per call (≈ 5 % more calls/s). A slow
 * commit, though, holds the event loop: so the event loop's connection never waits for a lock
 * (busy_timeout 0: a locked database sends that write, and the next ones for a while, to the
 * thread, which waits), and when inline commits average over INLINE_SLOW_MS (a slow disk) writes
 * go to the thread for THREAD_SPELL_MS, then try the event loop again. A write goes inline only
 * while the thread has nothing in flight, so the two never race for the lock.
 */
export class SqliteAdaptiveWriter implements BatchWriter {
  readonly #thread: SqliteThreadWriter;
  readonly #inline: SqliteLogConnection;
  readonly #slowMs: number;
  readonly #spellMs: number;
  /** Moving average of inline write durations (ms). */
  #averageMs = 0;
  /** performance.now() until which writes go to the thread. */
  #threadUntil = 0;
  /** Entry commits made on the event loop and on the thread (index writes not counted). */
  readonly stats = { inline: 0, thread: 0 };

  constructor(file: string, opts: { slowMs?: number; spellMs?: number } = {}) {
    this.#thread = new SqliteThreadWriter(file);
    this.#inline = new SqliteLogConnection(file, 0);
    this.#slowMs = opts.slowMs ?? INLINE_SLOW_MS;
    this.#spellMs = opts.spellMs ?? THREAD_SPELL_MS;
  }

  /** Runs `fn` on the event loop's connection, or returns undefined when the write belongs to the thread. */
  #tryInline<T>(fn: (run: SqliteRunner) => T): { value: T } | undefined {
    const now = performance.now();
    if (now < this.#threadUntil || !this.#thread.idle) return undefined;
    let value: T;
    try {
      value = fn(this.#inline.runner());
    } catch (err) {
      // The statement rolled back; nothing of this write is in the database.
      if (!isLockError(err)) {
        this.#inline.drop();
        throw err;
      }
      this.#threadUntil = performance.now() + this.#spellMs;
      return undefined;
    }
    const ms = performance.now() - now;
    this.#averageMs += (ms - this.#averageMs) / 16;
    if (this.#averageMs > this.#slowMs) {
      this.#threadUntil = performance.now() + this.#spellMs;
      // Start afresh after the spell: one slow stretch should not outlive it.
      this.#averageMs = 0;
    }
    return { value };
  }

  async write(b: BatchWrite): Promise<boolean> {
    const done = this.#tryInline((run) => run.commit(b));
    if (done) {
      this.stats.inline++;
      return done.value;
    }
    this.stats.thread++;
    return this.#thread.write(b);
  }

  async writeIndex(rows: AuditEventRow[]): Promise<void> {
    if (this.#tryInline((run) => run.index(rows))) return;
    return this.#thread.writeIndex(rows);
  }

  start(): Promise<void> {
    return this.#thread.start();
  }

  async close(): Promise<void> {
    this.#inline.drop();
    await this.#thread.close();
  }
}
