// Two gateway processes writing one log: the compare-and-swap on log_state must serialise them
// into one contiguous, consistent log, with every acknowledgement pointing at its own entry.
import test from 'ava';
import { join } from 'node:path';
import { DB_KINDS, createTestDb } from './helpers/db.ts';
import { startAppender } from './helpers/appender.ts';
import { openTestLog, sha256hex, storedEntries, TEST_ORIGIN } from './helpers/log.ts';
import { loadOrCreateLogKey } from '../server/audit/log-key.ts';

for (const kind of DB_KINDS) {
  test(`${kind}: two processes appending concurrently never fork the log`, async (t) => {
    const tdb = await createTestDb(kind);
    t.teardown(() => tdb.cleanup());
    const key = join(tdb.dir, 'log-key');
    const signer = await loadOrCreateLogKey(key, TEST_ORIGIN);
    const per = 1_500;
    const writers = ['a', 'b'].map((tag) =>
      startAppender(tdb, { key, origin: TEST_ORIGIN, tag, count: per, concurrency: 32 }),
    );
    t.teardown(() => writers.forEach((w) => w.child.kill('SIGKILL')));
    const ends = await Promise.all(writers.map((w) => w.exited));
    for (const e of ends) t.true(e.done && e.code === 0, `writer exited ${e.code}/${e.signal}: ${e.stderr}`);

    const stored = await storedEntries(tdb.db);
    t.is(stored.size, 2 * per);
    const seen = new Set<number>();
    for (const w of writers) {
      t.is(w.acked.size, per);
      for (const [i, h] of w.acked) {
        t.false(seen.has(i), `index ${i} acknowledged to both writers`);
        seen.add(i);
        t.is(sha256hex(stored.get(i)!), h, `entry ${i}`);
      }
    }
    const log = await openTestLog(tdb.db, signer);
    t.teardown(() => log.close());
    t.true(log.selfCheck().ok, log.selfCheck().problems.join('\n'));
    await log.checkpoint();
    const r = await log.fsck();
    t.true(r.ok, r.problems.join('\n'));
    t.true(r.checkpointsChecked >= 1);
  });
}
