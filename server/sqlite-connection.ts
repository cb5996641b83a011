// Settings every SQLite connection of auditgate gets — knex's connection and the log's writer
// thread alike, so they cannot drift apart.

export interface PragmaConnection {
  pragma(source: string): unknown;
}

export function prepareSqliteConnection(conn: PragmaConnection): void {
  // WAL + synchronous=FULL: a commit that returned survives power loss (NORMAL may lose it).
  conn.pragma('journal_mode = WAL');
  conn.pragma('synchronous = FULL');
  // Two connections write the file (knex's and the log's writer thread): wait for the lock.
  conn.pragma('busy_timeout = 10000');
  conn.pragma('foreign_keys = ON');
}
