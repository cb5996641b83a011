// Evidence bundles from the real log (KnexLog on SQLite and PostgreSQL): periods map to index
// ranges that chain, checkpoints are signed at exactly the boundaries and kept with the log's
// own (fsck still passes), the archive is verified before it is stored, its hash is recorded in
// the log, a rebuild gives the same bytes and records nothing new, and a download is recorded.
// Then the CLI: `auditgate bundle` and `auditgate verify-bundle`, the latter also as a plain
// subprocess with no database or configuration at all.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { createPublicKey } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DB_KINDS } from './helpers/db.ts';
import { OCT, SEP, evidenceLogSetup } from './helpers/evidence-log.ts';
import { loadOrCreateLogKey } from '../server/audit/log-key.ts';
import type { KnexLog } from '../server/audit/knex-log.ts';
import type { AuditRecord } from '../gateway/audit-record.ts';
import { loadEvidenceConfig } from '../server/evidence/config.ts';
import { loadOrCreateEvidenceKey } from '../server/evidence/signing-key.ts';
import { EvidenceConflictError, EvidenceService } from '../server/evidence/bundle-service.ts';
import { verifyBundle } from '../server/evidence/verify.ts';
import { main } from '../server/cli/main.ts';
import { openSshPublicKeyLine } from '../reports/evidence/sshsig.ts';
import { toInt } from '../server/db.ts';

async function setup(kind: (typeof DB_KINDS)[number], withReports: boolean) {
  return evidenceLogSetup(kind, { reports: withReports });
}

const ACTOR = { subject: 'auditor@example.com', auth_method: 'session' as const };

async function entriesOf(log: KnexLog, event: string): Promise<Array<{ index: number; rec: AuditRecord }>> {
  const out = [];
  for await (const e of log.entries(0, (await log.head()).size)) {
    const rec = JSON.parse(e.data.toString()) as AuditRecord;
    if (rec.event === event) out.push({ index: e.index, rec });
  }
  return out;
}

for (const kind of DB_KINDS) {
  test(`${kind}: two months bundle into a verified, chained, recorded pair; a rebuild is identical and records nothing`, async (t) => {
    const s = await setup(kind, kind === 'sqlite');
    t.teardown(() => s.cleanup());
    const vopts = { vkey: s.log.vkey, signerKey: s.service.publicKey };

    const sep = await s.service.bundle({ ...SEP, actor: ACTOR, out: join(s.tdb.dir, 'sep.tar.gz') });
    t.true(sep.created);
    t.is(sep.row.firstIndex, 0);
    t.is(sep.row.endIndex, 30);
    t.is(sep.row.verifiedBy, 'read-back');
    t.deepEqual(
      sep.checks.filter((l) => l.status !== 'PASS').map((l) => l.check),
      kind === 'sqlite' ? [] : ['reports'],
    );
    // The boundary checkpoint was signed at exactly size 30 and kept with the log's own.
    const cp = await s.tdb.db('log_checkpoints').where({ size: 30 }).first();
    t.truthy(cp);
    t.is(await s.tdb.db('log_checkpoints').where({ size: 0 }).first(), undefined, 'the empty tree is not stored');

    const oct = await s.service.bundle({ ...OCT, actor: ACTOR, out: join(s.tdb.dir, 'oct.tar.gz') });
    t.is(oct.row.firstIndex, 30, 'October continues where September ended');
    t.is(oct.row.endIndex, 70);
    t.is(oct.row.previousSha256, sep.row.archiveSha256);
    const chained = await verifyBundle(join(s.tdb.dir, 'oct.tar.gz'), { ...vopts, previous: join(s.tdb.dir, 'sep.tar.gz') });
    t.true(chained.ok, JSON.stringify(chained.lines.filter((l) => l.status === 'FAIL')));
    t.is(chained.lines.find((l) => l.check === 'chain')!.status, 'PASS');
    t.is(chained.records, 40);
    if (kind === 'sqlite') {
      for (const r of ['access-review', 'activity', 'changes']) t.is(chained.lines.find((l) => l.check === `report ${r}`)?.status, 'PASS', r);
    }
    // The stored copy is the archive that was verified.
    t.true(readFileSync(oct.row.location).equals(readFileSync(join(s.tdb.dir, 'oct.tar.gz'))));

    // Each bundle's hash is in the log, in an entry after its period.
    const recorded = await entriesOf(s.log, 'evidence.bundle');
    t.deepEqual(
      recorded.map((e) => e.rec.detail?.archive_sha256),
      [sep.row.archiveSha256, oct.row.archiveSha256],
    );
    t.is(recorded[1]!.index, oct.row.logIdx);
    t.true(recorded[0]!.index >= 70);

    // Rebuild: same bytes, nothing new stored or logged.
    const size = (await s.log.head()).size;
    const again = await s.service.bundle({ ...OCT, actor: ACTOR, out: join(s.tdb.dir, 'oct-again.tar.gz') });
    t.false(again.created);
    t.true(readFileSync(join(s.tdb.dir, 'oct-again.tar.gz')).equals(readFileSync(join(s.tdb.dir, 'oct.tar.gz'))));
    t.is((await s.log.head()).size, size);

    // evidence_bundles is insert-only.
    await t.throwsAsync(s.tdb.db('evidence_bundles').where({ bundle_id: oct.row.bundleId }).update({ archive_sha256: 'x' }), { any: true });
    await t.throwsAsync(s.tdb.db('evidence_bundles').where({ bundle_id: oct.row.bundleId }).delete(), { any: true });

    // A period that has not ended (with the grace for in-flight appends) is refused.
    await t.throwsAsync(s.service.bundle({ from: new Date(Date.now() - 86_400_000), to: new Date(Date.now() - 1000), actor: ACTOR }), {
      message: /bundle it after/,
    });

    // The log's own full check still passes with the boundary checkpoints in it.
    const fsck = await s.log.fsck();
    t.true(fsck.ok, fsck.problems.join('\n'));
  });
}

test('sqlite: a bundle for part of one day, reports included, holds exactly that part and verifies', async (t) => {
  // The access review compares with the period before, which for 10 s at 00:00:10 lies on the
  // same date: rounding it to dates gave "2026-09-02..2026-09-02" and the bundle failed.
  const s = await setup('sqlite', true);
  t.teardown(() => s.cleanup());
  const r = await s.service.bundle({ from: new Date('2026-09-02T00:00:10Z'), to: new Date('2026-09-02T00:00:20Z'), actor: ACTOR });
  t.is(r.row.firstIndex, 10);
  t.is(r.row.endIndex, 20);
  t.deepEqual(r.checks.filter((l) => l.status !== 'PASS').map((l) => `${l.check}: ${l.detail}`), []);
});

test('sqlite: a download is recorded before the bytes are handed out; a changed period is a conflict, never a replacement', async (t) => {
  const s = await setup('sqlite', false);
  t.teardown(() => s.cleanup());
  const sep = await s.service.bundle({ ...SEP, actor: ACTOR });
  const before = (await s.log.head()).size;
  const dl = await s.service.download(sep.row.bundleId, ACTOR, { address: '127.0.0.1' });
  t.is(dl.url, undefined, 'the local store has no URLs: the bytes are streamed');
  const chunks: Buffer[] = [];
  for await (const c of dl.stream!) chunks.push(c as Buffer);
  t.true(Buffer.concat(chunks).equals(readFileSync(sep.row.location)));
  const reads = await entriesOf(s.log, 'audit.read');
  t.is(reads.length, 1);
  t.is(reads[0]!.index, before);
  t.is(reads[0]!.rec.actor?.subject, 'auditor@example.com');
  t.deepEqual(reads[0]!.rec.detail, { what: 'evidence.bundle', bundle_id: sep.row.bundleId, archive_sha256: sep.row.archiveSha256, via: 'stream' });
  await t.throwsAsync(s.service.download('nope', ACTOR), { message: /no evidence bundle/ });

  // Rebuilding with other content (here: the reports now exist) is refused.
  const withReports = new EvidenceService({
    db: s.tdb.db,
    log: s.log,
    logSigner: await loadOrCreateLogKey(join(s.tdb.dir, 'log-key'), s.origin),
    config: loadEvidenceConfig(s.env, s.tdb.dir, s.origin, s.tdb.dir),
    store: s.service.store,
    evidenceKey: await loadOrCreateEvidenceKey(join(s.tdb.dir, 'evidence-key.pem')),
    instance: 'test',
    version: 'test',
    reports: async () => [{ name: 'x', files: [{ name: 'x.csv', content: Buffer.from('a\n') }] }],
  });
  await t.throwsAsync(withReports.bundle({ ...SEP, actor: ACTOR }), { instanceOf: EvidenceConflictError });
  t.is(toInt((await s.tdb.db('evidence_bundles').count({ n: '*' }).first())!.n), 1);
});

test('CLI: auditgate bundle and verify-bundle; verify-bundle also runs as a bare subprocess with no database or configuration', async (t) => {
  const s = await setup('sqlite', true);
  await s.log.close();
  t.teardown(() => s.cleanup());
  const out: string[] = [];
  const err: string[] = [];
  const io = { out: (l: string) => out.push(l), err: (l: string) => err.push(l), env: s.env, cwd: s.tdb.dir };

  t.is(await main(['bundle', '--period', '2026-09', '--out', 'sep.tar.gz'], io), 0, err.join('\n'));
  t.true(out.some((l) => /^bundle 20260901T000000Z--20261001T000000Z: records 0\.\.29 \(30\)$/.test(l)), out.join('\n'));
  t.true(out.some((l) => /^recorded in the audit log as entry \d+$/.test(l)));
  out.length = 0;
  t.is(await main(['bundle', '--from', '2026-09-01', '--to', '2026-10-01T00:00:00Z', '--out', 'sep2.tar.gz'], io), 0, err.join('\n'));
  t.true(out.some((l) => /already produced earlier with the same bytes/.test(l)));
  t.true(readFileSync(join(s.tdb.dir, 'sep.tar.gz')).equals(readFileSync(join(s.tdb.dir, 'sep2.tar.gz'))));

  const pub = openSshPublicKeyLine(createPublicKey(readFileSync(join(s.tdb.dir, 'evidence-key.pem'), 'utf8')));
  writeFileSync(join(s.tdb.dir, 'signer.pub'), `${pub}\n`);
  const logKey = await loadOrCreateLogKey(join(s.tdb.dir, 'log-key'), s.origin);
  const { verifierKey } = await import('../server/audit/note.ts');
  writeFileSync(join(s.tdb.dir, 'log.vkey'), `${verifierKey(logKey)}\n`);

  out.length = 0;
  t.is(await main(['verify-bundle', 'sep.tar.gz', '--vkey', 'log.vkey', '--signer-key', 'signer.pub'], io), 0, out.join('\n'));
  t.true(out.some((l) => l.startsWith('PASS records complete: 30 records')));
  t.regex(out.at(-1)!, /^PASS verify-bundle: \d+ checks \(\d+ passed\), 30 records/);

  // A bare subprocess: only the bundle and the keys, an empty environment but PATH.
  const bare = spawnSync(process.execPath, [join(process.cwd(), 'bin/auditgate.mjs'), 'verify-bundle', 'sep.tar.gz', '--vkey', 'log.vkey', '--signer-key', 'signer.pub'], {
    cwd: s.tdb.dir,
    env: { PATH: process.env.PATH ?? '' },
    encoding: 'utf8',
  });
  t.is(bare.status, 0, bare.stdout + bare.stderr);
  t.regex(bare.stdout, /PASS manifest signature/);

  // One byte changed: exit 1 and the failing checks named.
  const bytes = readFileSync(join(s.tdb.dir, 'sep.tar.gz'));
  bytes[bytes.length - 30] = bytes[bytes.length - 30]! ^ 0xff;
  writeFileSync(join(s.tdb.dir, 'bad.tar.gz'), bytes);
  const bad = spawnSync(process.execPath, [join(process.cwd(), 'bin/auditgate.mjs'), 'verify-bundle', 'bad.tar.gz', '--vkey', 'log.vkey'], {
    cwd: s.tdb.dir,
    env: { PATH: process.env.PATH ?? '' },
    encoding: 'utf8',
  });
  t.is(bad.status, 1, bad.stdout + bad.stderr);
  t.regex(bad.stdout, /FAIL verify-bundle|FAIL archive/);

  err.length = 0;
  t.is(await main(['verify-bundle'], io), 2);
  t.is(await main(['bundle', '--period', 'nonsense'], io), 2);
});
