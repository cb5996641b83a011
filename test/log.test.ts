// The Merkle audit log on real SQLite and PostgreSQL: durable contiguous appends under
// concurrency, exact bytes, proofs and past roots against an independent recomputation,
// checkpoints, the audit_events index, append-only enforcement, and two writers on one database.
import test from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import canonicalizeModule from 'canonicalize';
import knexFactory from 'knex';
import { DB_KINDS, PG_ADMIN_URL, createTestDb } from './helpers/db.ts';
import { disableAppendOnly, openTestLog, storedEntries, testSigner } from './helpers/log.ts';
import { sampleAuditRecord } from './helpers/audit-records.ts';
import { verifyConsistency, verifyInclusion, leafHash } from '../server/audit/merkle.ts';
import { openNote, parseCheckpoint, parseVerifierKey } from '../server/audit/note.ts';
import { LogRangeError, LogUnavailableError } from '../server/audit/log.ts';

// The package is CommonJS (module.exports = fn); its typings describe an ESM default export.
const canonicalize = canonicalizeModule as unknown as (value: unknown) => string | undefined;

// ------------------------------------------------------------- an independent RFC 9162 tree
const sha = (...parts: Buffer[]): Buffer => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
};
function split(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}
class RefTree {
  readonly leaves: Buffer[];
  #memo = new Map<string, Buffer>();
  constructor(entries: Buffer[]) {
    this.leaves = entries.map((e) => sha(Buffer.from([0]), e));
  }
  mth(lo: number, hi: number): Buffer {
    const key = `${lo}:${hi}`;
    let v = this.#memo.get(key);
    if (!v) {
      const n = hi - lo;
      v =
        n === 0
          ? sha()
          : n === 1
            ? this.leaves[lo]!
            : sha(Buffer.from([1]), this.mth(lo, lo + split(n)), this.mth(lo + split(n), hi));
      this.#memo.set(key, v);
    }
    return v;
  }
  root(size: number): Buffer {
    return this.mth(0, size);
  }
  path(m: number, lo: number, hi: number): Buffer[] {
    const n = hi - lo;
    if (n <= 1) return [];
    const k = split(n);
    return m < k
      ? [...this.path(m, lo, lo + k), this.mth(lo + k, hi)]
      : [...this.path(m - k, lo + k, hi), this.mth(lo, lo + k)];
  }
  subproof(m: number, lo: number, hi: number, b: boolean): Buffer[] {
    const n = hi - lo;
    if (m === n) return b ? [] : [this.mth(lo, hi)];
    const k = split(n);
    return m <= k
      ? [...this.subproof(m, lo, lo + k, b), this.mth(lo + k, hi)]
      : [...this.subproof(m - k, lo + k, hi, false), this.mth(lo, lo + k)];
  }
  consistency(m: number, n: number): Buffer[] {
    return m === n ? [] : this.subproof(m, 0, n, true);
  }
}

/** A deterministic pseudo-random sequence (tests must be reproducible). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

for (const kind of DB_KINDS) {
  test(`${kind}: concurrent appends are contiguous, exact and durable`, async (t) => {
    const tdb = await createTestDb(kind);
    t.teardown(() => tdb.cleanup());
    const signer = testSigner();
    const log = await openTestLog(tdb.db, signer, { batchMaxSize: 32 });
    const records = Array.from({ length: 600 }, (_, i) => sampleAuditRecord(i));
    // Key order, escapes and number forms all differ between JSON.stringify and RFC 8785.
    const special = { z: 1, a: [1e21, 0.1, -0, 'é\u2028"'], m: { b: true, a: null } };
    const specialBytes = Buffer.from(
      '{"a":[1e+21,0.1,0,"é\u2028\\""],"m":{"a":null,"b":true},"z":1}',
      'utf8',
    );
    const indices = await Promise.all([
      ...records.map((r) => log.append(r)),
      log.append(special),
      log.appendBytes(Buffer.from('{"a":1,"b":"x"}')),
    ]);
    t.deepEqual(
      [...indices].sort((a, b) => a - b),
      Array.from({ length: 602 }, (_, i) => i),
    );
    t.true(
      log.stats.batches <= 40,
      `group commit batched ${log.stats.entries} entries into ${log.stats.batches} transactions`,
    );
    await log.close();

    // A second handle sees exactly the acknowledged bytes (committed, not cached).
    const other = tdb.reopen();
    const stored = await storedEntries(other);
    t.is(stored.size, 602);
    records.forEach((r, i) => t.true(stored.get(indices[i]!)!.equals(Buffer.from(canonicalize(r)!, 'utf8'))));
    t.true(stored.get(indices[600]!)!.equals(specialBytes), stored.get(indices[600]!)!.toString());
    t.is(stored.get(indices[601]!)!.toString(), '{"a":1,"b":"x"}');

    const reopened = await openTestLog(other, signer);
    t.true(reopened.selfCheck().ok, reopened.selfCheck().problems.join('\n'));
    const head = await reopened.head();
    const ref = new RefTree([...stored.values()]);
    t.is(head.size, 602);
    t.true(head.root.equals(ref.root(602)));
    await reopened.close();
  });

  test(`${kind}: appendBytes refuses bytes that are not canonical JSON, append refuses non-objects`, async (t) => {
    const tdb = await createTestDb(kind);
    t.teardown(() => tdb.cleanup());
    const log = await openTestLog(tdb.db, testSigner());
    t.teardown(() => log.close());
    for (const bad of ['{"b":1,"a":2}', '{"a": 1}', '{"a":1}\n', 'not json', '{"a":1.0}']) {
      await t.throwsAsync(log.appendBytes(Buffer.from(bad)), { instanceOf: TypeError }, bad);
    }
    await t.throwsAsync(log.append([1, 2] as unknown as object), { instanceOf: TypeError });
    await t.throwsAsync(log.append({ n: NaN }), { instanceOf: TypeError });
    t.is((await log.head()).size, 0);
  });

  test(`${kind}: proofs and past roots from the store equal an independent recomputation`, async (t) => {
    const tdb = await createTestDb(kind);
    t.teardown(() => tdb.cleanup());
    const log = await openTestLog(tdb.db, testSigner(), { batchMaxSize: 7 });
    t.teardown(() => log.close());
    const N = 300;
    // Appends in irregular batches so stored hashes are written across batch boundaries.
    for (let i = 0; i < N;) {
      const n = Math.min(N - i, 1 + (i % 13));
      await Promise.all(
        Array.from({ length: n }, (_, j) => log.append({ i: i + j, pad: 'x'.repeat((i + j) % 40) })),
      );
      i += n;
    }
    const entries = [...(await storedEntries(tdb.db)).values()];
    const ref = new RefTree(entries);

    for (let size = 0; size <= N; size++) {
      t.true((await log.rootAt(size)).equals(ref.root(size)), `root at ${size}`);
    }
    const rand = rng(7);
    const pairs: Array<[number, number]> = [];
    for (let i = 0; i < 250; i++) {
      const size = 1 + Math.floor(rand() * N);
      pairs.push([Math.floor(rand() * size), size]);
    }
    // Edges: first and last leaf, powers of two and their neighbours.
    for (const size of [1, 2, 3, 4, 5, 63, 64, 65, 127, 128, 129, 255, 256, 257, N])
      pairs.push([0, size], [size - 1, size]);
    for (const [index, size] of pairs) {
      const proof = await log.inclusionProof(index, size);
      t.deepEqual(
        proof.map((b) => b.toString('hex')),
        ref.path(index, 0, size).map((b) => b.toString('hex')),
        `inclusion ${index}/${size}`,
      );
      verifyInclusion(index, size, leafHash(entries[index]!), proof, ref.root(size));
    }
    const cons: Array<[number, number]> = [];
    for (let i = 0; i < 250; i++) {
      const b = 1 + Math.floor(rand() * N);
      cons.push([1 + Math.floor(rand() * b), b]);
    }
    for (const s of [1, 2, 3, 4, 7, 8, 9, 64, 100, 128, 255, 256, N]) cons.push([s, N], [1, s], [s, s]);
    for (const [m, n] of cons) {
      const proof = await log.consistencyProof(m, n);
      t.deepEqual(
        proof.map((b) => b.toString('hex')),
        ref.consistency(m, n).map((b) => b.toString('hex')),
        `consistency ${m}→${n}`,
      );
      verifyConsistency(m, n, ref.root(m), ref.root(n), proof);
    }
  });

  test(`${kind}: reads reject bad parameters with LogRangeError and page through entries`, async (t) => {
    const tdb = await createTestDb(kind);
    t.teardown(() => tdb.cleanup());
    const log = await openTestLog(tdb.db, testSigner(), { batchMaxSize: 500 });
    t.teardown(() => log.close());
    const N = 2_345;
    const sent = Array.from({ length: N }, (_, i) => ({ i, r: randomBytes(8).toString('hex') }));
    await Promise.all(sent.map((r) => log.append(r)));
    const bad: Array<() => Promise<unknown>> = [
      () => log.inclusionProof(5, 5),
      () => log.inclusionProof(-1, 5),
      () => log.inclusionProof(0, N + 1),
      () => log.inclusionProof(1.5, 5),
      () => log.consistencyProof(0, 5),
      () => log.consistencyProof(6, 5),
      () => log.consistencyProof(1, N + 1),
      () => log.rootAt(N + 1),
      () => log.rootAt(-1),
      async () => {
        for await (const _ of log.entries(0, N + 1)) void _;
      },
      async () => {
        for await (const _ of log.entries(5, 4)) void _;
      },
    ];
    for (const [i, f] of bad.entries()) await t.throwsAsync(f(), { instanceOf: LogRangeError }, `case ${i}`);

    const seen: number[] = [];
    const byIndex = await storedEntries(tdb.db);
    for await (const e of log.entries(0, N)) {
      seen.push(e.index);
      t.true(e.data.equals(byIndex.get(e.index)!));
    }
    t.deepEqual(
      seen,
      Array.from({ length: N }, (_, i) => i),
    );
    const middle: number[] = [];
    for await (const e of log.entries(999, 2_001)) middle.push(e.index);
    t.deepEqual(
      middle,
      Array.from({ length: 1_002 }, (_, i) => 999 + i),
    );
    // The bytes are the canonical form of what was sent, and nothing else.
    const contents = new Set(sent.map((r) => canonicalize(r)));
    for (const data of byIndex.values()) t.true(contents.has(data.toString()));
  });

  test(`${kind}: checkpoints are signed from committed state, verify, and are consistent`, async (t) => {
    const tdb = await createTestDb(kind);
    t.teardown(() => tdb.cleanup());
    const signer = testSigner();
    const log = await openTestLog(tdb.db, signer);
    t.teardown(() => log.close());
    t.is(await log.checkpoint(), undefined, 'nothing to sign in an empty log');
    const verifier = parseVerifierKey(log.vkey);
    const sizes = [1, 5, 64, 65, 200];
    const cps = [];
    for (const target of sizes) {
      const have = (await log.head()).size;
      await Promise.all(
        Array.from({ length: target - have }, (_, i) => log.append(sampleAuditRecord(have + i))),
      );
      const cp = (await log.checkpoint())!;
      const body = parseCheckpoint(openNote(cp.note, [verifier]).body);
      t.is(body.origin, signer.name);
      t.is(body.size, target);
      t.true(Buffer.from(body.root).equals((await log.head()).root));
      t.true(cp.root.equals(Buffer.from(body.root)));
      cps.push(cp);
      // Without growth there is nothing new to sign.
      const again = (await log.checkpoint())!;
      t.is(again.size, target);
      t.is(again.note, cp.note);
    }
    t.is(Number((await tdb.db('log_checkpoints').count({ n: '*' }))[0]!.n), sizes.length);
    for (let i = 1; i < cps.length; i++) {
      const proof = await log.consistencyProof(cps[i - 1]!.size, cps[i]!.size);
      verifyConsistency(cps[i - 1]!.size, cps[i]!.size, cps[i - 1]!.root, cps[i]!.root, proof);
    }
    t.is((await log.latestCheckpoint())!.size, 200);
    const r = await log.fsck();
    t.true(r.ok, r.problems.join('\n'));
    t.is(r.checkpointsChecked, sizes.length);
  });

  test(`${kind}: the checkpoint timer signs only when the tree grew`, async (t) => {
    const tdb = await createTestDb(kind);
    t.teardown(() => tdb.cleanup());
    const log = await openTestLog(tdb.db, testSigner(), { checkpointTimer: true, checkpointIntervalMs: 40 });
    t.teardown(() => log.close());
    const count = async () => Number((await tdb.db('log_checkpoints').count({ n: '*' }))[0]!.n);
    await new Promise((r) => setTimeout(r, 200));
    t.is(await count(), 0);
    await Promise.all(Array.from({ length: 10 }, (_, i) => log.append({ i })));
    const deadline = Date.now() + 5_000;
    while ((await log.latestCheckpoint())?.size !== 10 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    t.is((await log.latestCheckpoint())?.size, 10);
    await new Promise((r) => setTimeout(r, 250));
    t.is(await count(), 1, 'no new checkpoint while the tree did not grow');
    await log.append({ i: 10 });
    while ((await log.latestCheckpoint())?.size !== 11 && Date.now() < deadline + 5_000)
      await new Promise((r) => setTimeout(r, 20));
    t.is(await count(), 2);
  });

  test(`${kind}: audit_events rows lost in a crash (and holes another writer left) are rebuilt from the entries`, async (t) => {
    const tdb = await createTestDb(kind);
    t.teardown(() => tdb.cleanup());
    const signer = testSigner();
    // The index waits a minute to be written: a "crash" (the log is never closed) loses the queue.
    const crashed = await openTestLog(tdb.db, signer, { indexDelayMs: 60_000 });
    const records = Array.from({ length: 300 }, (_, i) => sampleAuditRecord(i));
    for (let i = 0; i < 100; i++) await crashed.append(records[i]!);
    t.is(await crashed.syncIndex(), 100);
    for (let i = 100; i < 300; i++) await crashed.append(records[i]!);
    t.is(
      Number((await tdb.db('audit_events').count({ n: '*' }).first())!.n),
      100,
      'rows 100.. are still queued',
    );
    // Another writer's rows missing in the middle, as if it crashed with its queue unwritten.
    await disableAppendOnly(tdb.db, kind, 'audit_events');
    await tdb.db('audit_events').whereBetween('idx', [40, 59]).del();

    const reopened = await openTestLog(tdb.db, signer);
    t.teardown(() => reopened.close());
    t.true(reopened.selfCheck().ok);
    const rows = await tdb.db('audit_events').select().orderBy('idx');
    t.deepEqual(
      rows.map((r: { idx: unknown }) => Number(r.idx)),
      records.map((_, i) => i),
    );
    for (const [i, r] of rows.entries()) {
      t.is(r.subject, records[i]!.actor!.subject ?? null);
      t.is(r.event, records[i]!.event);
    }
    // Rows already there are left alone when the crashed process's queue is written late after all.
    await crashed.syncIndex();
    t.is(Number((await tdb.db('audit_events').count({ n: '*' }).first())!.n), 300);
  });

  test(`${kind}: audit_events mirrors each entry's record`, async (t) => {
    const tdb = await createTestDb(kind);
    t.teardown(() => tdb.cleanup());
    const log = await openTestLog(tdb.db, testSigner());
    t.teardown(() => log.close());
    const rec = sampleAuditRecord(4);
    const i0 = await log.append(rec);
    const i1 = await log.append({
      event: 'custom',
      ts: '2026-01-02T03:04:05+02:00',
      mcp: { target: 'x\u0000y'.padEnd(2_000, 'z'), http_status: 'nope' },
      // A lone surrogate has no UTF-8 form; a pair cut at the 512-unit limit leaves one too.
      actor: { subject: 'eve\ud800', key_id: 'k'.repeat(511) + '\ud83d\ude00' },
    });
    const i2 = await log.appendBytes(Buffer.from('{"actor":{"subject":"dave"},"v":1}'));
    t.is(await log.syncIndex(), 3);
    const rows = await tdb.db('audit_events').select().orderBy('idx');
    t.is(rows.length, 3);
    const [r0, r1, r2] = rows;
    t.is(Number(r0.idx), i0);
    t.is(r0.event, 'mcp.message');
    t.is(r0.subject, rec.actor!.subject);
    t.is(r0.target, rec.mcp!.target);
    t.is(r0.direction, 'client_to_upstream');
    t.is(r0.kind, 'request');
    t.is(r0.transport, 'http');
    t.is(r0.session, rec.mcp!.session);
    t.is(r0.jsonrpc_method, 'tools/call');
    t.is(r0.name, rec.mcp!.name);
    t.is(r0.auth_method, 'api_key');
    t.is(r0.key_id, rec.actor!.key_id);
    t.is(r0.client_address, rec.client!.address);
    t.is(r0.http_status, 200);
    t.is(r0.latency_ms, rec.mcp!.latency_ms);
    t.is(r0.decision, 'allow');
    t.is(r0.rule, 'default-allow');
    const ts = (v: unknown) => (v instanceof Date ? v.toISOString() : String(v));
    if (kind === 'sqlite') t.is(r0.ts, rec.ts);
    else t.is(ts(r0.ts), `${rec.ts.slice(0, 23)}Z`);
    t.is(Number(r1.idx), i1);
    t.is(r1.event, 'custom');
    t.is(ts(r1.ts).slice(0, 19), '2026-01-02T01:04:05');
    t.is(r1.target.length, 512, 'long values are cut in the index');
    t.false(r1.target.includes('\u0000'));
    t.is(r1.http_status, null);
    t.is(r1.subject, 'eve\ufffd');
    t.is(r1.key_id, 'k'.repeat(511) + '\ufffd');
    t.is(Number(r2.idx), i2);
    t.is(r2.subject, 'dave');
    t.is(r2.event, null);
    // Reports query time ranges with ISO strings on both databases.
    const inRange = await tdb
      .db('audit_events')
      .where('ts', '>=', '2026-11-25T00:00:00.000000Z')
      .select('idx');
    t.deepEqual(
      inRange.map((r: { idx: unknown }) => Number(r.idx)),
      [i0],
    );
    // The index can be switched off (benchmarks compare); the entries stay the same.
    const bare = await openTestLog(tdb.reopen(), testSigner(), { indexEvents: false });
    await bare.append({ plain: true });
    await bare.close();
    t.is(Number((await tdb.db('audit_events').count({ n: '*' }))[0]!.n), 3);
    t.is(Number((await tdb.db('log_entries').count({ n: '*' }))[0]!.n), 4);
  });

  test(`${kind}: the database refuses UPDATE and DELETE on the evidence tables`, async (t) => {
    const tdb = await createTestDb(kind);
    t.teardown(() => tdb.cleanup());
    const log = await openTestLog(tdb.db, testSigner());
    await Promise.all(Array.from({ length: 3 }, (_, i) => log.append({ i })));
    await log.checkpoint();
    await log.close();
    const attempts = [
      'UPDATE log_entries SET data = hashes WHERE idx = 1',
      'UPDATE log_entries SET hashes = data WHERE idx = 2',
      'DELETE FROM log_entries WHERE idx = 2',
      'UPDATE audit_events SET subject = NULL',
      'DELETE FROM audit_events',
      'UPDATE log_checkpoints SET note = note',
      'DELETE FROM log_checkpoints',
      'UPDATE log_state SET size = 1',
      'DELETE FROM log_state',
      ...(kind === 'postgres'
        ? ['TRUNCATE log_entries', 'TRUNCATE audit_events', 'TRUNCATE log_checkpoints', 'TRUNCATE log_state']
        : []),
    ];
    for (const sql of attempts) {
      // better-sqlite3's SqliteError is not an Error to ava's throwsAsync: check by hand.
      const err = await tdb.db.raw(sql).then(
        () => undefined,
        (e: { message?: string }) => e,
      );
      t.regex(String(err?.message), /auditgate: .*(append-only|only grow|may not)/, sql);
    }
    t.is(Number((await tdb.db('log_state').first()).size), 3);
    t.is(Number((await tdb.db('log_entries').count({ n: '*' }))[0]!.n), 3);
  });
}

// SQLite: better-sqlite3 waits for locks synchronously, so two handles in one process would
// block each other's event loop; log-writers.test.ts runs two processes on both databases.
test('postgres: two instances in one process append concurrently into one log', async (t) => {
  const tdb = await createTestDb('postgres');
  t.teardown(() => tdb.cleanup());
  const signer = testSigner();
  const a = await openTestLog(tdb.db, signer, { batchMaxSize: 16 });
  const b = await openTestLog(tdb.reopen(), signer, { batchMaxSize: 16 });
  t.teardown(() => Promise.all([a.close(), b.close()]).then(() => undefined));
  const acked = new Map<number, Buffer>();
  const run = async (log: typeof a, name: string) => {
    for (let round = 0; round < 20; round++) {
      const recs = Array.from({ length: 20 }, (_, i) => ({ writer: name, round, i }));
      const idx = await Promise.all(recs.map((r) => log.append(r)));
      idx.forEach((x, i) => {
        t.false(acked.has(x), `index ${x} acknowledged twice`);
        acked.set(x, Buffer.from(canonicalize(recs[i])!));
      });
      if (round % 4 === 0) await log.checkpoint();
    }
  };
  await Promise.all([run(a, 'a'), run(b, 'b')]);
  await Promise.all([a.checkpoint(), b.checkpoint()]);
  t.is(acked.size, 800);
  t.true(a.stats.casConflicts + b.stats.casConflicts > 0, 'the writers did contend for the state row');
  const stored = await storedEntries(tdb.db);
  t.is(stored.size, 800);
  for (const [i, bytes] of acked) t.true(stored.get(i)!.equals(bytes), `entry ${i}`);
  const [ha, hb] = await Promise.all([a.head(), b.head()]);
  t.is(ha.size, 800);
  t.true(ha.root.equals(hb.root));
  t.true(ha.root.equals(new RefTree([...stored.values()]).root(800)));
  const r = await a.fsck();
  t.true(r.ok, r.problems.join('\n'));
  t.true(r.checkpointsChecked >= 2);
});

test('postgres: the writer role has no UPDATE or DELETE on evidence tables', async (t) => {
  const tdb = await createTestDb('postgres');
  const role = `ag_app_${randomBytes(5).toString('hex')}`;
  await tdb.db.raw(`CREATE ROLE ${role} LOGIN IN ROLE auditgate_writer`);
  t.teardown(async () => {
    await tdb.cleanup();
    const admin = knexFactory({ client: 'pg', connection: PG_ADMIN_URL });
    await admin.raw(`DROP ROLE IF EXISTS ${role}`).finally(() => admin.destroy());
  });
  const u = new URL(tdb.databaseUrl!);
  u.username = role;
  const app = knexFactory({ client: 'pg', connection: u.toString() });
  t.teardown(() => app.destroy());
  // What the log needs works…
  await app('log_entries').insert({ idx: 0, data: Buffer.from('{}'), hashes: leafHash(Buffer.from('{}')) });
  await app('audit_events').insert({ idx: 0 });
  t.is(
    await app('log_state')
      .where({ id: 1 })
      .update({ size: 1, root: leafHash(Buffer.from('{}')) }),
    1,
  );
  // …and the rest is refused by privileges, before any trigger runs, even a disabled one.
  for (const sql of [
    'UPDATE log_entries SET data = hashes',
    'DELETE FROM log_entries',
    'UPDATE audit_events SET subject = NULL',
    'DELETE FROM log_checkpoints',
    'DELETE FROM log_state',
    'TRUNCATE log_entries',
    'ALTER TABLE log_entries DISABLE TRIGGER USER',
  ]) {
    await t.throwsAsync(app.raw(sql), { message: /permission denied|must be owner/ }, sql);
  }
});

test('sqlite and postgres logs of the same records have the same roots', async (t) => {
  const dbs = await Promise.all(DB_KINDS.map((k) => createTestDb(k)));
  t.teardown(() => Promise.all(dbs.map((d) => d.cleanup())).then(() => undefined));
  const roots: string[] = [];
  for (const d of dbs) {
    const log = await openTestLog(d.db, testSigner());
    for (let i = 0; i < 50; i++) await log.append(sampleAuditRecord(i));
    roots.push((await log.head()).root.toString('hex'));
    await log.close();
  }
  t.is(roots[0], roots[1]);
});

test('append after close rejects with LogUnavailableError', async (t) => {
  const tdb = await createTestDb('sqlite');
  t.teardown(() => tdb.cleanup());
  const log = await openTestLog(tdb.db, testSigner());
  const pending = log.append({ before: true });
  await log.close();
  t.is(await pending, 0, 'queued appends are committed by close()');
  await t.throwsAsync(log.append({ after: true }), { instanceOf: LogUnavailableError });
});
