// SQLite's half of committing one batch of the log, shared by the in-thread writer and the writer
// thread so the statements exist once. better-sqlite3 is synchronous and in-process, so round trips
// are free and the cost is statement preparation: prepared statements are kept per connection and
// run inside BEGIN IMMEDIATE (the write lock is taken before anything is read).
import { AUDIT_EVENT_COLUMNS, type AuditEventRow } from './audit-events.ts';

export interface SqliteStatement {
  run(...params: unknown[]): { changes: number };
}
export interface SqliteConnection {
  prepare(sql: string): SqliteStatement;
  transaction<F extends (...a: any[]) => any>(fn: F): F & { immediate: F };
}

/** A batch as SQLite binds it (bytes may arrive as plain Uint8Arrays from another thread). */
export interface SqliteBatch {
  oldSize: number;
  oldRoot: Uint8Array;
  newSize: number;
  newRoot: Uint8Array;
  entries: Array<{ idx: number; data: Uint8Array; hashes: Uint8Array }>;
}

export interface SqliteRunner {
  /** Commits a batch: false when the state row did not match (another writer committed first). */
  commit(b: SqliteBatch): boolean;
  /** Inserts audit_events rows in one transaction; rows already there are left as they are. */
  index(rows: AuditEventRow[]): void;
}

/** The log's writes on one connection, with their statements prepared once. */
export function sqliteRunner(conn: SqliteConnection): SqliteRunner {
  const cas = conn.prepare(
    'UPDATE log_state SET size = ?, root = ?, updated_at = ? WHERE id = 1 AND size = ? AND root = ?',
  );
  const entry = conn.prepare('INSERT INTO log_entries (idx, data, hashes) VALUES (?, ?, ?)');
  const event = conn.prepare(
    `INSERT OR IGNORE INTO audit_events (${AUDIT_EVENT_COLUMNS.join(', ')}) VALUES (${AUDIT_EVENT_COLUMNS.map((c) => `@${c}`).join(', ')})`,
  );
  const tx = conn.transaction((b: SqliteBatch): boolean => {
    // log_state.updated_at: when the batch committed, wherever it was made.
    const now = new Date().toISOString();
    if (cas.run(b.newSize, bytes(b.newRoot), now, b.oldSize, bytes(b.oldRoot)).changes !== 1) return false;
    for (const e of b.entries) entry.run(e.idx, bytes(e.data), bytes(e.hashes));
    return true;
  });
  // Named parameters bind straight from the row object.
  const indexTx = conn.transaction((rows: AuditEventRow[]) => {
    for (const row of rows) event.run(row);
  });
  // Index rows are rebuilt from the entries when the log opens, so their commit need not wait for
  // the disk: NORMAL skips the fsync (in WAL mode it never corrupts; a crash may lose the latest
  // such commits, which the rebuild restores). The fsync was ≈ 0.5–1 ms of the writer's time every
  // 20 ms, during which entry commits waited. The next FULL commit syncs these frames too.
  // SQLite applies this pragma while preparing it, not when a kept statement runs again: a fresh
  // statement each time (every 20 ms at most).
  const synchronous = (level: 'NORMAL' | 'FULL') => conn.prepare(`PRAGMA synchronous = ${level}`).run();
  const index = (rows: AuditEventRow[]) => {
    synchronous('NORMAL');
    try {
      indexTx.immediate(rows);
    } finally {
      synchronous('FULL');
    }
  };
  return { commit: (b) => tx.immediate(b), index };
}

/** better-sqlite3 binds Buffers as BLOBs; a Uint8Array that crossed threads is wrapped, not copied. */
function bytes(u: Uint8Array): Buffer {
  return Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}
