// A writer process killed with SIGKILL at random moments, over and over: whatever it had
// acknowledged must be in the log with the same bytes after every restart, the start-up
// self-check must pass, and every signed checkpoint must be consistent with the next.
import test from 'ava';
import { join } from 'node:path';
import { DB_KINDS, createTestDb } from './helpers/db.ts';
import { startAppender } from './helpers/appender.ts';
import { openTestLog, sha256hex, storedEntries, TEST_ORIGIN } from './helpers/log.ts';
import { loadOrCreateLogKey } from '../server/audit/log-key.ts';

const KILLS = 20;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Reproducible "random" kill moments (tests must be repeatable). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

for (const kind of DB_KINDS) {
  test(`${kind}: SIGKILL at ${KILLS} random moments loses no acknowledged entry`, async (t) => {
    const tdb = await createTestDb(kind);
    t.teardown(() => tdb.cleanup());
    const key = join(tdb.dir, 'log-key');
    const signer = await loadOrCreateLogKey(key, TEST_ORIGIN);
    const rand = rng(kind === 'sqlite' ? 1 : 2);
    const acked = new Map<number, string>();
    let killedWhileStarting = 0;

    for (let round = 0; round < KILLS; round++) {
      const w = startAppender(tdb, {
        key,
        origin: TEST_ORIGIN,
        tag: `r${round}`,
        concurrency: 64,
        checkpointMs: 15,
      });
      // Mostly mid-traffic; every fourth round at a random moment of start-up (self-check, first batch).
      if (round % 4 === 3) {
        await sleep(rand() * 700);
        if (w.acked.size === 0) killedWhileStarting++;
      } else {
        await w.firstAck;
        await sleep(rand() * 300);
      }
      w.child.kill('SIGKILL');
      const end = await w.exited;
      t.is(end.signal, 'SIGKILL', `round ${round}: the writer ended on its own: ${end.stderr}`);
      for (const [i, h] of w.acked) {
        const before = acked.get(i);
        t.true(
          before === undefined || before === h,
          `round ${round}: index ${i} acknowledged twice with different bytes`,
        );
        acked.set(i, h);
      }

      const stored = await storedEntries(tdb.db);
      let missing = 0;
      for (const [i, h] of acked) {
        const data = stored.get(i);
        if (!data || sha256hex(data) !== h) missing++;
      }
      t.is(missing, 0, `round ${round}: ${missing} acknowledged entries missing or different`);

      const log = await openTestLog(tdb.reopen(), signer);
      t.true(log.selfCheck().ok, `round ${round}: ${log.selfCheck().problems.join('; ')}`);
      const r = await log.fsck();
      t.true(r.ok, `round ${round}: ${r.problems.join('; ')}`);
      await log.close();
    }
    const cps = await tdb.db('log_checkpoints').count({ n: '*' });
    t.log(
      `${kind}: ${acked.size} acknowledged entries over ${KILLS} kills, ${cps[0]!.n} checkpoints, ${killedWhileStarting} kills during start-up`,
    );
    t.true(acked.size > KILLS * 50, 'the writer made real progress between kills');
    // Timing, not correctness: a kill within a few ms of the first acknowledgement leaves no
    // time to sign, and a loaded machine signs later; at least a quarter of the rounds must have
    // crash-interrupted checkpoints for fsck to check.
    t.true(Number(cps[0]!.n) >= KILLS / 4, 'checkpoints were signed between kills');
  });
}
