// Someone with database access edits the evidence (switching the append-only triggers off first,
// as an attacker would): the start-up self-check, fsck and `auditgate log fsck` must notice and
// name the index; a conflicting or forged checkpoint must stop the log from signing.
import test from 'ava';
import { join } from 'node:path';
import { DB_KINDS, createTestDb, type DbKind, type TestDb } from './helpers/db.ts';
import { disableAppendOnly, openTestLog, TEST_ORIGIN } from './helpers/log.ts';
import { sampleAuditRecord } from './helpers/audit-records.ts';
import { loadOrCreateLogKey } from '../server/audit/log-key.ts';
import { LogUnavailableError } from '../server/audit/log.ts';
import { leafHash, verifyInclusion } from '../server/audit/merkle.ts';
import type { KnexLog } from '../server/audit/knex-log.ts';
import type { NoteSigner } from '../server/audit/note.ts';
import { main } from '../server/cli/main.ts';

interface Fixture {
  tdb: TestDb;
  signer: NoteSigner;
  keyFile: string;
}

/** A log of `size` entries with checkpoints every `every` entries; closed again. */
async function buildLog(kind: DbKind, size = 300, every = 100): Promise<Fixture> {
  const tdb = await createTestDb(kind);
  const keyFile = join(tdb.dir, 'keys', 'log-key');
  const signer = await loadOrCreateLogKey(keyFile, TEST_ORIGIN);
  const log = await openTestLog(tdb.db, signer, { batchMaxSize: 256 });
  for (let n = 0; n < size; n += every) {
    await Promise.all(
      Array.from({ length: Math.min(every, size - n) }, (_, i) => log.append(sampleAuditRecord(n + i))),
    );
    await log.checkpoint();
  }
  await log.close();
  return { tdb, signer, keyFile };
}

async function flipByte(
  tdb: TestDb,
  table: string,
  column: string,
  where: Record<string, number>,
  offset: number,
) {
  await disableAppendOnly(tdb.db, tdb.kind, table);
  const row = await tdb.db(table).where(where).first();
  const b = Buffer.from(row[column]);
  b[offset] = b[offset]! ^ 0x01;
  t_assert(
    await tdb
      .db(table)
      .where(where)
      .update({ [column]: b }),
    1,
  );
}
function t_assert(got: number, want: number): void {
  if (got !== want) throw new Error(`tamper step changed ${got} rows, expected ${want}`);
}

async function runCli(f: Fixture, args: string[] = []): Promise<{ code: number; out: string }> {
  const lines: string[] = [];
  const env: Record<string, string> = {
    AUDITGATE_LOG_ORIGIN: TEST_ORIGIN,
    AUDITGATE_LOG_KEY_FILE: f.keyFile,
    AUDITGATE_DATA_DIR: f.tdb.dir,
    ...(f.tdb.databaseUrl ? { DATABASE_URL: f.tdb.databaseUrl } : {}),
  };
  const code = await main(['log', 'fsck', ...args], {
    out: (l) => lines.push(l),
    err: (l) => lines.push(l),
    env,
    cwd: f.tdb.dir,
  });
  return { code, out: lines.join('\n') };
}

async function reopen(f: Fixture): Promise<KnexLog> {
  return openTestLog(f.tdb.reopen(), f.signer);
}

for (const kind of DB_KINDS) {
  test(`${kind}: an intact log passes self-check, fsck and the CLI`, async (t) => {
    const f = await buildLog(kind);
    t.teardown(() => f.tdb.cleanup());
    const log = await reopen(f);
    t.teardown(() => log.close());
    t.true(log.selfCheck().ok);
    const r = await log.fsck();
    t.true(r.ok, r.problems.join('\n'));
    t.is(r.entriesChecked, 300);
    t.is(r.checkpointsChecked, 3);
    t.true(r.checks.every((c) => c.ok));
    const cli = await runCli(f);
    t.is(cli.code, 0, cli.out);
    t.regex(cli.out, /^PASS entry hashes: 300 entries re-hashed$/m);
    t.regex(cli.out, /^PASS log fsck: 300 of 300 entries and 3 checkpoints/m);
    t.notRegex(cli.out, /FAIL/);
    // The verifier key can be given instead of the private key file.
    const viaVkey = await runCli({ ...f, keyFile: join(f.tdb.dir, 'absent') }, ['--vkey', log.vkey]);
    t.is(viaVkey.code, 0, viaVkey.out);
  });

  test(`${kind}: one changed byte of an entry is found and named`, async (t) => {
    const f = await buildLog(kind);
    t.teardown(() => f.tdb.cleanup());
    await flipByte(f.tdb, 'log_entries', 'data', { idx: 41 }, 17);
    const log = await reopen(f);
    t.teardown(() => log.close());
    const sc = log.selfCheck();
    t.false(sc.ok);
    t.regex(sc.problems[0]!, /^entry 41: leaf hash [0-9a-f]{64} stored, [0-9a-f]{64} recomputed/);
    t.true(
      sc.problems.some((p) => /^checkpoint 300: root [0-9a-f]{64} signed, [0-9a-f]{64} recomputed/.test(p)),
    );
    await t.throwsAsync(log.append({ after: 'tamper' }), {
      instanceOf: LogUnavailableError,
      message: /entry 41/,
    });
    await t.throwsAsync(log.checkpoint(), { instanceOf: LogUnavailableError });
    const r = await log.fsck();
    t.false(r.ok);
    const check = r.checks.find((c) => c.name === 'entry hashes')!;
    t.false(check.ok);
    t.is(check.firstBadIndex, 41);
    t.true(
      r.checks.find((c) => c.name === 'stored tree hashes')!.ok,
      'stored hashes are still self-consistent',
    );
    t.is(r.checks.find((c) => c.name === 'checkpoint roots')!.firstBadIndex, 100);
    const cli = await runCli(f);
    t.is(cli.code, 1);
    t.regex(cli.out, /^FAIL entry hashes: first bad index 41; 1 problem: entry 41: leaf hash/m);
    t.regex(cli.out, /^FAIL log fsck/m);
  });

  test(`${kind}: one changed byte of a stored hash is found and named`, async (t) => {
    const f = await buildLog(kind);
    t.teardown(() => f.tdb.cleanup());
    // Entry 95 (binary 1011111) stores 6 hashes; position 3 is the node over leaves 88..95.
    await flipByte(f.tdb, 'log_entries', 'hashes', { idx: 95 }, 3 * 32 + 5);
    const log = await reopen(f);
    t.teardown(() => log.close());
    t.false(log.selfCheck().ok);
    t.regex(log.selfCheck().problems.join('\n'), /^entry 95: stored hash of node \(level 3, index 11\) is/m);
    // What the change would have done: proofs through that node no longer reach the signed root.
    const signed = (await log.latestCheckpoint())!;
    const entry80 = (await f.tdb.db('log_entries').where({ idx: 80 }).first()).data;
    const proof = await log.inclusionProof(80, signed.size);
    t.throws(() => verifyInclusion(80, signed.size, leafHash(entry80), proof, signed.root));
    const r = await log.fsck();
    const check = r.checks.find((c) => c.name === 'stored tree hashes')!;
    t.is(check.firstBadIndex, 95);
    t.true(r.checks.find((c) => c.name === 'entry hashes')!.ok);
    t.true(
      r.checks.find((c) => c.name === 'checkpoint roots')!.ok,
      'the entries still give the signed roots',
    );
    const cli = await runCli(f);
    t.is(cli.code, 1);
    t.regex(cli.out, /^FAIL stored tree hashes: first bad index 95;/m);
  });

  test(`${kind}: a changed stored leaf hash is found and named`, async (t) => {
    const f = await buildLog(kind);
    t.teardown(() => f.tdb.cleanup());
    await flipByte(f.tdb, 'log_entries', 'hashes', { idx: 7 }, 0);
    const log = await reopen(f);
    t.teardown(() => log.close());
    t.regex(log.selfCheck().problems[0]!, /^entry 7: leaf hash/);
    const r = await log.fsck();
    t.is(r.checks.find((c) => c.name === 'entry hashes')!.firstBadIndex, 7);
    t.is(r.checks.find((c) => c.name === 'stored tree hashes')!.firstBadIndex, 7);
  });

  test(`${kind}: a deleted last entry is found`, async (t) => {
    const f = await buildLog(kind);
    t.teardown(() => f.tdb.cleanup());
    await disableAppendOnly(f.tdb.db, kind, 'log_entries');
    t.is(await f.tdb.db('log_entries').where({ idx: 299 }).del(), 1);
    const log = await reopen(f);
    t.teardown(() => log.close());
    t.false(log.selfCheck().ok);
    t.true(log.selfCheck().problems.includes('entry 299: missing'), log.selfCheck().problems.join('\n'));
    await t.throwsAsync(log.append({}), { instanceOf: LogUnavailableError });
    const r = await log.fsck();
    t.is(r.checks.find((c) => c.name === 'entries present')!.firstBadIndex, 299);
    const cli = await runCli(f);
    t.is(cli.code, 1);
    t.regex(cli.out, /^FAIL entries present: first bad index 299;/m);
  });

  test(`${kind}: edited checkpoints and state row are found`, async (t) => {
    const f = await buildLog(kind);
    t.teardown(() => f.tdb.cleanup());
    await flipByte(f.tdb, 'log_checkpoints', 'root', { size: 200 }, 0);
    const cp100 = await f.tdb.db('log_checkpoints').where({ size: 100 }).first();
    const sig = cp100.note.lastIndexOf(' ') + 10;
    const forged =
      cp100.note.slice(0, sig) + (cp100.note[sig] === 'A' ? 'B' : 'A') + cp100.note.slice(sig + 1);
    await f.tdb.db('log_checkpoints').where({ size: 100 }).update({ note: forged });
    await f.tdb
      .db('log_state')
      .where({ id: 1 })
      .update({ root: Buffer.alloc(32, 7) });
    const log = await reopen(f);
    t.teardown(() => log.close());
    t.regex(log.selfCheck().problems.join('\n'), /^state row: root 0707/m);
    const r = await log.fsck();
    const sigs = r.checks.find((c) => c.name === 'checkpoint signatures')!;
    t.is(sigs.firstBadIndex, 100);
    t.regex(r.problems.join('\n'), /^checkpoint 100: signature does not verify/m);
    t.regex(r.problems.join('\n'), /^checkpoint 200: stored columns .* differ from the signed note/m);
    t.false(r.checks.find((c) => c.name === 'state row')!.ok);
    t.true(r.checks.find((c) => c.name === 'entry hashes')!.ok);
  });

  test(`${kind}: the last checkpoint is checked against the entries at start-up`, async (t) => {
    const f = await buildLog(kind);
    t.teardown(() => f.tdb.cleanup());
    // Replace the newest checkpoint with a validly signed one for a different tree.
    const { formatCheckpoint, signNote } = await import('../server/audit/note.ts');
    const root = Buffer.alloc(32, 9);
    await disableAppendOnly(f.tdb.db, kind, 'log_checkpoints');
    await f.tdb
      .db('log_checkpoints')
      .where({ size: 300 })
      .update({
        root,
        note: signNote(formatCheckpoint({ origin: TEST_ORIGIN, size: 300, root }), [f.signer]),
      });
    const log = await reopen(f);
    t.teardown(() => log.close());
    t.deepEqual(
      log.selfCheck().problems.filter((p) => p.startsWith('checkpoint')),
      [
        `checkpoint 300: root ${root.toString('hex')} signed, ${(await log.rootAt(300)).toString('hex')} recomputed from the entries`,
      ],
    );
    const r = await log.fsck();
    t.is(r.checks.find((c) => c.name === 'checkpoint consistency')!.firstBadIndex, 300);
  });

  test(`${kind}: fsck reaches what the bounded self-check does not`, async (t) => {
    const f = await buildLog(kind, 1_500, 1_500);
    t.teardown(() => f.tdb.cleanup());
    await flipByte(f.tdb, 'log_entries', 'data', { idx: 10 }, 3);
    const log = await reopen(f);
    t.teardown(() => log.close());
    // Only the checkpointed tail and the newest 1000 entries are re-hashed at start-up…
    t.true(log.selfCheck().ok);
    // …the full check finds entry 10.
    const r = await log.fsck();
    t.is(r.checks.find((c) => c.name === 'entry hashes')!.firstBadIndex, 10);
  });

  test(`${kind}: a different checkpoint of the same size from another signer raises the alarm`, async (t) => {
    const f = await buildLog(kind, 10, 10);
    t.teardown(() => f.tdb.cleanup());
    // Another process wins the race to store a checkpoint of the size we are about to sign, with
    // a different root: a trigger inserts it just before our insert.
    if (kind === 'postgres') {
      await f.tdb.db.raw(`CREATE FUNCTION evil() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
        IF pg_trigger_depth() = 1 THEN
          INSERT INTO log_checkpoints (size, root, note, signed_at) VALUES (NEW.size, '\\xabab', NEW.note, NEW.signed_at);
        END IF; RETURN NEW; END $$`);
      await f.tdb.db.raw(
        'CREATE TRIGGER evil BEFORE INSERT ON log_checkpoints FOR EACH ROW EXECUTE FUNCTION evil()',
      );
    } else {
      await f.tdb.db.raw(`CREATE TRIGGER evil BEFORE INSERT ON log_checkpoints BEGIN
        INSERT INTO log_checkpoints (size, root, note, signed_at) VALUES (NEW.size, X'abab', NEW.note, NEW.signed_at); END`);
    }
    const log = await reopen(f);
    t.teardown(() => log.close());
    await log.append({ one: 'more' });
    await t.throwsAsync(log.checkpoint(), {
      instanceOf: LogUnavailableError,
      message:
        /checkpoint 11: a different checkpoint of this size is stored \(root abab, ours [0-9a-f]{64}\)/,
    });
    t.false(log.selfCheck().ok);
    await t.throwsAsync(log.append({}), { instanceOf: LogUnavailableError, message: /checkpoint 11/ });
  });

  test(`${kind}: a checkpoint that does not verify stops signing`, async (t) => {
    const f = await buildLog(kind, 20, 20);
    t.teardown(() => f.tdb.cleanup());
    const log = await reopen(f);
    t.teardown(() => log.close());
    t.true(log.selfCheck().ok);
    // Written while the log runs (the start-up check already passed).
    const { generateSignerKey, parseSignerKey, formatCheckpoint, signNote } =
      await import('../server/audit/note.ts');
    const intruder = parseSignerKey(generateSignerKey(TEST_ORIGIN));
    const head = await log.head();
    await f.tdb.db('log_checkpoints').insert({
      size: 25,
      root: head.root,
      note: signNote(formatCheckpoint({ origin: TEST_ORIGIN, size: 25, root: head.root }), [intruder]),
      signed_at: new Date().toISOString(),
    });
    await Promise.all(Array.from({ length: 10 }, (_, i) => log.append({ i })));
    await t.throwsAsync(log.checkpoint(), {
      instanceOf: LogUnavailableError,
      message: /checkpoint 25: signature does not verify/,
    });
    t.is(
      Number((await f.tdb.db('log_checkpoints').count({ n: '*' }))[0]!.n),
      2,
      'nothing signed after the alarm',
    );
  });
}
