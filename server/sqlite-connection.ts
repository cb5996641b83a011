// Settings every SQLite connection of auditgate gets — knex's connection and the log's own writer
// connection alike, so they cannot drift apart (the log's writer then changes two of them, see
// audit/sqlite-group-writer.ts).

export interface PragmaConnection {
  pragma(source: string): unknown;
}

export function prepareSqliteConnection(conn: PragmaConnection): void {
  // WAL + synchronous=FULL: a commit that returned survives power loss (NORMAL may lose it).
  conn.pragma('journal_mode = WAL');
  conn.pragma('synchronous = FULL');
  // Several connections write the file (knex's, the log's, other processes'): wait for the lock.
  conn.pragma('busy_timeout = 10000');
  conn.pragma('foreign_keys = ON');
}
