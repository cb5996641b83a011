// The database goes away in the middle of traffic: appends must fail fast with
// LogUnavailableError (never hang, never acknowledge), and the same log object must work again
// once the database is back, without a restart, with every acknowledged entry intact.
import test from 'ava';
import canonicalizeModule from 'canonicalize';
import { createDb } from '../server/db.ts';
import { LogUnavailableError } from '../server/audit/log.ts';
import type { KnexLog } from '../server/audit/knex-log.ts';
import { createTestDb } from './helpers/db.ts';
import { openTestLog, storedEntries, testSigner } from './helpers/log.ts';
import { sampleAuditRecord } from './helpers/audit-records.ts';
import { TcpProxy } from './helpers/tcp-proxy.ts';

const canonicalize = canonicalizeModule as unknown as (value: unknown) => string | undefined;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Outcome {
  startedAt: number;
  ms: number;
  index?: number;
  error?: unknown;
  bytes: Buffer;
}

/** `workers` loops appending until stopped; every outcome is recorded with its latency. */
function traffic(log: KnexLog, workers: number) {
  const outcomes: Outcome[] = [];
  let stop = false;
  let n = 0;
  const loops = Array.from({ length: workers }, async () => {
    while (!stop) {
      const record = sampleAuditRecord(n++);
      const bytes = Buffer.from(canonicalize(record)!);
      const startedAt = performance.now();
      try {
        const index = await log.append(record);
        outcomes.push({ startedAt, ms: performance.now() - startedAt, index, bytes });
      } catch (error) {
        outcomes.push({ startedAt, ms: performance.now() - startedAt, error, bytes });
        await sleep(5);
      }
    }
  });
  return {
    outcomes,
    async stop() {
      stop = true;
      await Promise.all(loops);
    },
  };
}

async function waitFor(cond: () => boolean, ms: number): Promise<boolean> {
  const end = performance.now() + ms;
  while (!cond() && performance.now() < end) await sleep(10);
  return cond();
}

async function checkAcknowledged(
  t: import('ava').ExecutionContext,
  log: KnexLog,
  outcomes: Outcome[],
  db: import('../server/db.ts').Db,
) {
  const stored = await storedEntries(db);
  const acked = outcomes.filter((o) => o.index !== undefined);
  t.true(acked.length > 0);
  for (const o of acked)
    t.true(stored.get(o.index!)?.equals(o.bytes), `acknowledged entry ${o.index} is stored`);
  const r = await log.fsck();
  t.true(r.ok, r.problems.join('\n'));
  t.true(log.selfCheck().ok);
}

test('postgres: connection lost mid-traffic → prompt LogUnavailableError, then recovery without restart', async (t) => {
  const tdb = await createTestDb('postgres');
  t.teardown(() => tdb.cleanup());
  const target = new URL(tdb.databaseUrl!);
  const proxy = new TcpProxy(target.hostname, Number(target.port || 5432));
  await proxy.start();
  t.teardown(() => proxy.kill());
  const viaProxy = new URL(tdb.databaseUrl!);
  viaProxy.port = String(proxy.port);
  const db = createDb({ databaseUrl: viaProxy.toString() });
  t.teardown(() => db.destroy());
  const log = await openTestLog(db, testSigner(), { appendTimeoutMs: 3_000 });
  t.teardown(() => log.close());

  const load = traffic(log, 16);
  t.true(await waitFor(() => load.outcomes.filter((o) => o.index !== undefined).length > 200, 10_000));
  const killedAt = performance.now();
  await proxy.kill();
  await sleep(1_000);
  const during = load.outcomes.filter((o) => o.startedAt > killedAt + 50 && o.startedAt < killedAt + 900);
  t.true(during.length > 0, 'appends were attempted while the database was down');
  for (const o of during) {
    t.true(o.error instanceof LogUnavailableError, `append during the outage: ${String(o.error ?? o.index)}`);
    t.true(o.ms < 1_000, `rejected after ${Math.round(o.ms)} ms`);
  }
  // Appends in flight at the moment of the kill are answered too (failed or, if COMMIT made it, acknowledged).
  t.true(load.outcomes.filter((o) => o.startedAt <= killedAt).length > 0);

  await proxy.start();
  const backAt = performance.now();
  t.true(
    await waitFor(() => load.outcomes.some((o) => o.startedAt > backAt && o.index !== undefined), 10_000),
    'appends succeed again once the database is back',
  );
  await sleep(200);
  await load.stop();
  await checkAcknowledged(t, log, load.outcomes, tdb.db);
  t.is((await log.checkpoint())?.size, (await log.head()).size);
});

test("sqlite, commits on knex's connection: database refuses writes, then its connection closes, mid-traffic → prompt LogUnavailableError and recovery", async (t) => {
  const tdb = await createTestDb('sqlite');
  t.teardown(() => tdb.cleanup());
  const log = await openTestLog(tdb.db, testSigner(), { appendTimeoutMs: 3_000, sqliteWriterThread: false });
  const load = traffic(log, 16);
  t.teardown(async () => {
    await load.stop();
    await log.close();
  });
  const acked = () => load.outcomes.filter((o) => o.index !== undefined).length;
  t.true(await waitFor(() => acked() > 200, 10_000));

  for (const outage of ['read-only', 'closed'] as const) {
    const downAt = performance.now();
    // A file system that turned read-only, or a connection that is gone.
    if (outage === 'read-only') await tdb.db.raw('PRAGMA query_only = 1');
    else await tdb.db.destroy();
    await sleep(600);
    const during = load.outcomes.filter((o) => o.startedAt > downAt + 50 && o.startedAt < downAt + 500);
    t.true(during.length > 0, `${outage}: appends were attempted`);
    for (const o of during) {
      t.true(o.error instanceof LogUnavailableError, `${outage}: ${String(o.error ?? o.index)}`);
      t.true(o.ms < 1_000, `${outage}: rejected after ${Math.round(o.ms)} ms`);
    }
    if (outage === 'read-only') await tdb.db.raw('PRAGMA query_only = 0');
    else tdb.db.initialize();
    const upAt = performance.now();
    t.true(
      await waitFor(() => load.outcomes.some((o) => o.startedAt > upAt && o.index !== undefined), 10_000),
      `${outage}: recovered`,
    );
  }
  await load.stop();
  await checkAcknowledged(t, log, load.outcomes, tdb.db);
});

test("sqlite, commits on the log's own connections: another process holds the database lock mid-traffic → LogUnavailableError within the append timeout, the event loop keeps running, then recovery", async (t) => {
  const tdb = await createTestDb('sqlite');
  t.teardown(() => tdb.cleanup());
  const log = await openTestLog(tdb.db, testSigner(), { appendTimeoutMs: 400 });
  const load = traffic(log, 16);
  t.teardown(async () => {
    await load.stop();
    await log.close();
  });
  const acked = () => load.outcomes.filter((o) => o.index !== undefined).length;
  t.true(await waitFor(() => acked() > 200, 10_000));

  // A separate connection (as another process would) takes the write lock and keeps it.
  const other = tdb.reopen();
  const conn = (await other.client.acquireConnection()) as { exec(sql: string): void };
  conn.exec('BEGIN EXCLUSIVE');
  const downAt = performance.now();
  // The log's writes wait for the lock on its writer thread; the event loop does not.
  let maxLag = 0;
  let last = performance.now();
  const lag = setInterval(() => {
    const now = performance.now();
    maxLag = Math.max(maxLag, now - last - 10);
    last = now;
  }, 10);
  await sleep(1_500);
  clearInterval(lag);
  t.true(maxLag < 250, `the event loop stalled for ${Math.round(maxLag)} ms while the lock was held`);
  const during = load.outcomes.filter((o) => o.startedAt > downAt + 50 && o.startedAt < downAt + 1_000);
  t.true(during.length > 0, 'appends were attempted while the lock was held');
  for (const o of during) {
    t.true(o.error instanceof LogUnavailableError, `append while locked: ${String(o.error ?? o.index)}`);
    t.true(o.ms < 1_000, `rejected after ${Math.round(o.ms)} ms`);
  }
  conn.exec('COMMIT');
  await other.client.releaseConnection(conn);
  const upAt = performance.now();
  t.true(
    await waitFor(() => load.outcomes.some((o) => o.startedAt > upAt && o.index !== undefined), 10_000),
    'appends succeed again once the lock is released',
  );
  await load.stop();
  await checkAcknowledged(t, log, load.outcomes, tdb.db);
});
