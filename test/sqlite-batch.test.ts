// The SQLite writer's statements: entries commit with synchronous=FULL (acknowledged = on disk),
// index rows with NORMAL (rebuilt from the entries after a crash, so they skip the fsync), and the
// connection is back on FULL afterwards, whatever happened in between.
import test from 'ava';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { auditEventFields } from '../server/audit/audit-events.ts';
import { EMPTY_ROOT } from '../server/audit/merkle.ts';
import { sqliteRunner, type SqliteConnection } from '../server/audit/sqlite-batch.ts';
import { prepareSqliteConnection, type PragmaConnection } from '../server/sqlite-connection.ts';
import { createTestDb } from './helpers/db.ts';
import { sampleAuditRecord } from './helpers/audit-records.ts';

type Conn = SqliteConnection & PragmaConnection & { close(): void };
const Database = createRequire(import.meta.url)('better-sqlite3') as new (file: string) => Conn;

test('entries commit with synchronous=FULL, index rows with NORMAL, and FULL is restored', async (t) => {
  const tdb = await createTestDb('sqlite');
  t.teardown(() => tdb.cleanup());
  const conn = new Database(join(tdb.dir, 'auditgate.sqlite'));
  t.teardown(() => conn.close());
  prepareSqliteConnection(conn);
  const level = () => (conn.pragma('synchronous') as Array<{ synchronous: number }>)[0]!.synchronous;
  // Record the synchronous level each insert ran under.
  const seen: Array<[string, number]> = [];
  const spy: SqliteConnection = {
    prepare(sql) {
      const stmt = conn.prepare(sql);
      const table = /INTO (log_entries|audit_events)/.exec(sql)?.[1];
      if (!table) return stmt;
      return {
        run: (...params: unknown[]) => {
          seen.push([table, level()]);
          return stmt.run(...params);
        },
      };
    },
    transaction: (fn) => conn.transaction(fn),
  };
  const run = sqliteRunner(spy);
  const state = conn.prepare('SELECT size FROM log_state WHERE id = 1') as unknown as {
    get(): { size: number };
  };
  t.is(state.get().size, 0);
  // Alternate commits and index writes: every entry under FULL, every index row under NORMAL.
  let root = Buffer.from(EMPTY_ROOT);
  for (let i = 0; i < 4; i++) {
    const next = Buffer.alloc(32, i + 1);
    t.true(
      run.commit({
        oldSize: i,
        oldRoot: root,
        newSize: i + 1,
        newRoot: next,
        entries: [{ idx: i, data: Buffer.from('{}'), hashes: Buffer.alloc(32, 2) }],
      }),
    );
    root = next;
    run.index([{ idx: i, ...auditEventFields(sampleAuditRecord(i)) }]);
  }
  t.is(state.get().size, 4);
  t.is(level(), 2, 'FULL again after the index write');
  // A failing index write (a row without its columns) still restores FULL.
  t.throws(() => run.index([{ idx: 1 } as never]));
  t.is(level(), 2, 'FULL again after a failed index write');
  t.deepEqual(
    seen.slice(0, 8),
    Array.from({ length: 4 }, () => [
      ['log_entries', 2],
      ['audit_events', 1],
    ]).flat(),
  );
});
