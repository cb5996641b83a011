// The hot path of the log: committing one batch. Kept apart because it is the one place that
// talks below knex's query builder, for speed, with one implementation per database:
//
// - PostgreSQL: ONE statement. Data-modifying CTEs compare-and-swap the state row and insert
//   the entries and index rows only if the swap matched, so a batch costs one round trip and
//   one implicit transaction, all or nothing.
// - SQLite: better-sqlite3 is synchronous and in-process, so round trips are free and the cost
//   is statement preparation: cached prepared statements run inside BEGIN IMMEDIATE (the write
//   lock is taken before anything is read).
//
// Both return false when the state row did not match (another writer committed first); nothing
// was written then.
import { isPostgres, toInt, type Db } from '../db.ts';
import { AUDIT_EVENT_COLUMNS, type AuditEventRow } from './audit-events.ts';

export interface BatchWrite {
  oldSize: number;
  oldRoot: Buffer;
  newSize: number;
  newRoot: Buffer;
  entries: Array<{ idx: number; data: Buffer; hashes: Buffer }>;
  /** audit_events rows, or undefined when the index is off. */
  events?: AuditEventRow[];
}

export interface BatchWriter {
  write(batch: BatchWrite): Promise<boolean>;
}

export function batchWriter(db: Db): BatchWriter {
  return isPostgres(db) ? new PgBatchWriter(db) : new SqliteBatchWriter(db);
}

const EVENT_TYPES: Record<(typeof AUDIT_EVENT_COLUMNS)[number], string> = {
  idx: 'bigint',
  ts: 'timestamptz',
  event: 'text',
  direction: 'text',
  kind: 'text',
  target: 'text',
  transport: 'text',
  session: 'text',
  jsonrpc_method: 'text',
  name: 'text',
  subject: 'text',
  auth_method: 'text',
  key_id: 'text',
  issuer: 'text',
  client_address: 'text',
  http_status: 'integer',
  latency_ms: 'double precision',
  decision: 'text',
  rule: 'text',
};

// PostgreSQL accepts at most 65,535 parameters per statement: 3 per entry.
const PG_MAX_ROWS = 20_000;

class PgBatchWriter implements BatchWriter {
  #sql = new Map<string, string>();
  constructor(private readonly db: Db) {}

  #statement(entries: number, withEvents: boolean): string {
    const key = `${entries}/${withEvents}`;
    let sql = this.#sql.get(key);
    if (sql) return sql;
    const evCols = AUDIT_EVENT_COLUMNS.join(', ');
    // Entries as VALUES rows: pg sends Buffers as binary parameters. Index rows as one array per
    // column (unnest): 19 parameters instead of 19 per row, which PostgreSQL parses and plans
    // several times faster.
    sql =
      `WITH cas AS (UPDATE log_state SET size = ?, root = ?, updated_at = now() ` +
      `WHERE id = 1 AND size = ? AND root = ? RETURNING size), ` +
      `ent AS (INSERT INTO log_entries (idx, data, hashes) SELECT v.idx, v.data, v.hashes FROM (VALUES ` +
      Array.from({ length: entries }, () => '(?::bigint, ?::bytea, ?::bytea)').join(', ') +
      `) AS v(idx, data, hashes) WHERE EXISTS (SELECT 1 FROM cas))` +
      (withEvents
        ? `, ev AS (INSERT INTO audit_events (${evCols}) SELECT * FROM unnest(` +
          AUDIT_EVENT_COLUMNS.map((c) => `?::${EVENT_TYPES[c]}[]`).join(', ') +
          `) AS v(${evCols}) WHERE EXISTS (SELECT 1 FROM cas))`
        : '') +
      ` SELECT count(*) AS moved FROM cas`;
    // Batch sizes repeat (the limit, or small bursts): keep the text of the common ones.
    if (this.#sql.size < 64) this.#sql.set(key, sql);
    return sql;
  }

  async write(b: BatchWrite): Promise<boolean> {
    if (b.entries.length > PG_MAX_ROWS) {
      // Larger batches than one statement can carry: the ordinary transaction, same CAS.
      return this.#writeInTransaction(b);
    }
    const bindings: unknown[] = [b.newSize, b.newRoot, b.oldSize, b.oldRoot];
    for (const e of b.entries) bindings.push(e.idx, e.data, e.hashes);
    if (b.events) {
      const events = b.events;
      for (const c of AUDIT_EVENT_COLUMNS) bindings.push(events.map((ev) => ev[c]));
    }
    const r = await this.db.raw(
      this.#statement(b.entries.length, b.events !== undefined),
      bindings as never[],
    );
    return toInt(r.rows[0].moved) === 1;
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
      if (b.events)
        for (let i = 0; i < b.events.length; i += 1_000)
          await trx('audit_events').insert(b.events.slice(i, i + 1_000));
      moved = true;
    });
    return moved;
  }
}

interface SqliteStatement {
  run(...params: unknown[]): { changes: number };
}
interface SqliteConnection {
  prepare(sql: string): SqliteStatement;
  transaction<F extends (...a: any[]) => any>(fn: F): F & { immediate: F };
}
interface Prepared {
  cas: SqliteStatement;
  entry: SqliteStatement;
  event: SqliteStatement;
}

class SqliteBatchWriter implements BatchWriter {
  // Per connection: statements die with their connection (e.g. after knex re-creates its pool).
  #prepared = new WeakMap<SqliteConnection, Prepared>();
  constructor(private readonly db: Db) {}

  #prepare(conn: SqliteConnection): Prepared {
    let p = this.#prepared.get(conn);
    if (!p) {
      p = {
        cas: conn.prepare(
          'UPDATE log_state SET size = ?, root = ?, updated_at = ? WHERE id = 1 AND size = ? AND root = ?',
        ),
        entry: conn.prepare('INSERT INTO log_entries (idx, data, hashes) VALUES (?, ?, ?)'),
        event: conn.prepare(
          `INSERT INTO audit_events (${AUDIT_EVENT_COLUMNS.join(', ')}) VALUES (${AUDIT_EVENT_COLUMNS.map((c) => `@${c}`).join(', ')})`,
        ),
      };
      this.#prepared.set(conn, p);
    }
    return p;
  }

  async write(b: BatchWrite): Promise<boolean> {
    // knex's pool hands out the single better-sqlite3 connection; holding it keeps knex queries
    // from interleaving with this transaction.
    const conn = (await this.db.client.acquireConnection()) as SqliteConnection;
    try {
      const p = this.#prepare(conn);
      const now = new Date().toISOString();
      const tx = conn.transaction((): boolean => {
        if (p.cas.run(b.newSize, b.newRoot, now, b.oldSize, b.oldRoot).changes !== 1) return false;
        for (const e of b.entries) p.entry.run(e.idx, e.data, e.hashes);
        // Named parameters bind straight from the row object.
        if (b.events) for (const ev of b.events) p.event.run(ev);
        return true;
      });
      return tx.immediate();
    } finally {
      await this.db.client.releaseConnection(conn);
    }
  }
}
