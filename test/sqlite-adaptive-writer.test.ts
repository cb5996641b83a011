// Where the log's SQLite commits run: on the event loop while they are quick, on the writer thread
// while another connection holds the lock or commits are slow — and the log is the same either way.
import test from 'ava';
import { createHash } from 'node:crypto';
import { SqliteAdaptiveWriter, type BatchWrite } from '../server/audit/log-writer.ts';
import { EMPTY_ROOT } from '../server/audit/merkle.ts';
import { createTestDb, type TestDb } from './helpers/db.ts';

/** Consecutive batches with made-up roots (the writer checks only the state row's compare-and-swap). */
function batches() {
  let size = 0;
  let root = EMPTY_ROOT;
  return (n = 3): BatchWrite => {
    const newRoot = createHash('sha256').update(root).update(String(size)).digest();
    const entries = Array.from({ length: n }, (_, i) => ({
      idx: size + i,
      data: Buffer.from(JSON.stringify({ entry: size + i })),
      hashes: createHash('sha256').update(String(size + i)).digest(),
    }));
    const b = { oldSize: size, oldRoot: root, newSize: size + n, newRoot, entries };
    size += n;
    root = newRoot;
    return b;
  };
}

async function setup(t: { teardown(fn: () => unknown): void }, opts?: { slowMs?: number; spellMs?: number }) {
  const tdb: TestDb = await createTestDb('sqlite');
  const w = new SqliteAdaptiveWriter(tdb.sqliteFile!, opts);
  await w.start();
  t.teardown(async () => {
    await w.close();
    await tdb.cleanup();
  });
  return { tdb, w, next: batches() };
}

const count = async (tdb: TestDb) => Number((await tdb.db('log_entries').count({ n: '*' }))[0]!.n);

/** How long ago (ms) the state row says the last batch committed. */
const sinceUpdate = async (tdb: TestDb) =>
  Date.now() - Date.parse((await tdb.db('log_state').where({ id: 1 }).first('updated_at')).updated_at as string);

test('quick commits run on the event loop', async (t) => {
  // "Quick" by a generous bar, so that a loaded test machine's fsync does not count as slow.
  const { tdb, w, next } = await setup(t, { slowMs: 1_000 });
  for (let i = 0; i < 20; i++) t.true(await w.write(next()));
  t.is(w.stats.inline, 20);
  t.is(w.stats.thread, 0);
  t.is(await count(tdb), 60);
  const ago = await sinceUpdate(tdb);
  t.true(ago >= 0 && ago < 5_000, `the inline commit stamped the state row ${ago} ms ago`);
});

test('while another connection holds the lock, writes wait on the thread and the event loop runs on', async (t) => {
  const { tdb, w, next } = await setup(t, { spellMs: 60_000 });
  t.true(await w.write(next()));
  const other = tdb.reopen();
  const conn = (await other.client.acquireConnection()) as { exec(sql: string): void };
  conn.exec('BEGIN EXCLUSIVE');
  let ticks = 0;
  const timer = setInterval(() => ticks++, 10);
  const pending = w.write(next());
  await new Promise((r) => setTimeout(r, 500));
  clearInterval(timer);
  t.true(ticks >= 20, `the event loop ran ${ticks} timer ticks in 500 ms while the write waited`);
  t.is(w.stats.thread, 1, 'the locked write went to the thread');
  conn.exec('COMMIT');
  await other.client.releaseConnection(conn);
  t.true(await pending, 'and committed once the lock was released');
  // The spell: later writes stay on the thread.
  t.true(await w.write(next()));
  t.is(w.stats.thread, 2);
  t.is(w.stats.inline, 1);
  t.is(await count(tdb), 9);
});

test('slow commits move writes to the thread for a spell, then back to the event loop', async (t) => {
  // Every commit counts as slow: the next write goes to the thread until the spell ends.
  const { tdb, w, next } = await setup(t, { slowMs: 0, spellMs: 300 });
  t.true(await w.write(next()));
  t.true(await w.write(next()));
  t.true(await w.write(next()));
  t.deepEqual(w.stats, { inline: 1, thread: 2 });
  const ago = await sinceUpdate(tdb);
  t.true(ago >= 0 && ago < 5_000, `the thread's commit stamped the state row ${ago} ms ago`);
  await new Promise((r) => setTimeout(r, 350));
  t.true(await w.write(next()));
  t.deepEqual(w.stats, { inline: 2, thread: 2 });
  t.is(await count(tdb), 12);
});

test('a write that lost the compare-and-swap reports it, inline or on the thread', async (t) => {
  const { w, next } = await setup(t, { slowMs: 0, spellMs: 60_000 });
  const stale = next();
  t.true(await w.write(stale)); // inline; starts the spell
  t.false(await w.write(stale), 'the same old state again, on the thread');
  t.deepEqual(w.stats, { inline: 1, thread: 1 });
});
