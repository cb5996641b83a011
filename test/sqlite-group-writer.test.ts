// The SQLite log writer's WAL upkeep: under steady appends SQLite never finds a moment to start the
// WAL over by itself (its checkpoints run on another thread), so the checkpointer restarts it once
// it passes its limit. Without that the WAL grew by ≈ 4.5 KB per entry, without bound.
import test from 'ava';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { createTestDb } from './helpers/db.ts';
import { sampleAuditRecord } from './helpers/audit-records.ts';
import { openTestLog, testSigner } from './helpers/log.ts';

test('sqlite: the WAL stays bounded under steady appends from 32 writers', async (t) => {
  const tdb = await createTestDb('sqlite');
  t.teardown(() => tdb.cleanup());
  const log = await openTestLog(tdb.db, testSigner());
  t.teardown(() => log.close());
  const wal = join(tdb.dir, 'auditgate.sqlite-wal');
  const writers = 32;
  const each = 500;
  let largest = 0;
  await Promise.all(
    Array.from({ length: writers }, async (_, w) => {
      for (let i = 0; i < each; i++) {
        await log.append(sampleAuditRecord(w * each + i));
        if (i % 50 === 0) largest = Math.max(largest, statSync(wal).size);
      }
    }),
  );
  t.is((await log.head()).size, writers * each);
  // 16,000 entries wrote ≈ 70 MB of WAL frames; the restart limit is 8 MB, checked every 200 ms.
  t.true(largest < 40 * 1024 * 1024, `the WAL reached ${(largest / 2 ** 20).toFixed(1)} MiB`);
  const r = await log.fsck();
  t.true(r.ok, r.problems.join('\n'));
});
