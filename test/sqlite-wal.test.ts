// The SQLite WAL stays bounded under steady appends. It must be started over from time to time,
// which SQLite does only when a write begins right after a complete checkpoint: a design that
// checkpoints on another connection than the writer's never gets there under steady writes (tried:
// the WAL grew by ≈ 4.5 KB per entry, without bound). Checkpoints inside the writer's commits do.
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
  // 16,000 entries write ≈ 70 MB of WAL frames; SQLite checkpoints every 1,000 pages (≈ 4 MB).
  t.true(largest < 40 * 1024 * 1024, `the WAL reached ${(largest / 2 ** 20).toFixed(1)} MiB`);
  const r = await log.fsck();
  t.true(r.ok, r.problems.join('\n'));
});
