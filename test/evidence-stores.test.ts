// Evidence stores in `npm test`: the local directory on disk, and the S3 store against s3rver
// started here (pure npm: it proves request formation and round trips; Object Lock and
// credentials are proven against a real S3 in `npm run test:s3`).
import test from 'ava';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import S3rver from 's3rver';
import { LocalDirectoryStore } from '../reports/evidence/stores/local.ts';
import { StoreConflictError, StoreError, StoreNotFoundError } from '../reports/evidence/stores/store.ts';
import { S3EvidenceStore } from '../reports/evidence/stores/s3.ts';
import { tempDir } from './helpers/evidence-fixture.ts';
import { s3StoreSuite, sampleBundle } from './helpers/s3-store-suite.ts';
import { verifyBundle } from '../server/evidence/verify.ts';

test('local store: write-once, read-only file, read back and hashed; same bytes again is a no-op', async (t) => {
  const dir = tempDir(t);
  const { out, built, opts } = await sampleBundle(dir);
  const store = new LocalDirectoryStore(join(dir, 'evidence'));
  const stored = await store.put('2026/10/b.tar.gz', out, { sha256: built.archiveSha256, retention: { mode: 'GOVERNANCE', retainUntil: new Date('2027-01-01T00:00:00Z') } });
  t.true(stored.created);
  t.is(stored.verifiedBy, 'read-back');
  t.is(stored.location, join(dir, 'evidence', '2026', '10', 'b.tar.gz'));
  t.is(statSync(stored.location).mode & 0o777, 0o400);
  t.true(readFileSync(stored.location).equals(readFileSync(out)));
  t.deepEqual(stored.retention, { mode: 'GOVERNANCE', retainUntil: '2027-01-01T00:00:00.000Z' });
  t.true((await verifyBundle(stored.location, opts)).ok);

  const again = await store.put('2026/10/b.tar.gz', out, { sha256: built.archiveSha256 });
  t.false(again.created);
  const other = join(dir, 'other');
  writeFileSync(other, 'x');
  await t.throwsAsync(store.put('2026/10/b.tar.gz', other, { sha256: createHash('sha256').update('x').digest('hex') }), {
    instanceOf: StoreConflictError,
  });
  t.true(readFileSync(stored.location).equals(readFileSync(out)), 'the stored bundle is untouched');

  t.deepEqual(await store.head('2026/10/b.tar.gz'), { size: built.archiveSize, sha256: built.archiveSha256 });
  t.is(await store.head('nope.tar.gz'), undefined);
  await t.throwsAsync(store.get('nope.tar.gz'), { instanceOf: StoreNotFoundError });
  t.is(await store.downloadUrl(), undefined);
  for (const bad of ['../x', '/abs', 'a//b', 'a/./b', '']) {
    await t.throwsAsync(store.put(bad, out, { sha256: built.archiveSha256 }), { instanceOf: StoreError }, bad);
  }
});

test('local store: two concurrent writers of one key leave one intact file', async (t) => {
  const dir = tempDir(t);
  const { out, built } = await sampleBundle(dir);
  const store = new LocalDirectoryStore(join(dir, 'evidence'));
  const results = await Promise.all([1, 2, 3, 4].map(() => store.put('k.tar.gz', out, { sha256: built.archiveSha256 })));
  t.is(results.filter((r) => r.created).length, 1);
  t.is((await store.head('k.tar.gz'))!.sha256, built.archiveSha256);
});

const s3rverTarget = (() => {
  let started: Promise<{ endpoint: string }> | undefined;
  let server: S3rver | undefined;
  let dir: string | undefined;
  return {
    get: () =>
      (started ??= (async () => {
        dir = mkdtempSync(join(tmpdir(), 'auditgate-s3rver-'));
        server = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: dir, configureBuckets: [{ name: 'evidence', configs: [] }] });
        const addr = await server.run();
        return { endpoint: `http://127.0.0.1:${addr.port}` };
      })()),
    async stop() {
      await server?.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
    },
  };
})();
test.after.always(() => s3rverTarget.stop());

s3StoreSuite(test, 's3rver', async () => {
  const { endpoint } = await s3rverTarget.get();
  return {
    options: { bucket: 'evidence', endpoint, region: 'us-east-1', credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } },
    // s3rver keeps no SHA-256 checksum: the store must fall back to reading the object back.
    expectVerifiedBy: 'read-back',
  };
});

test('s3rver: a missing key is reported as absent or not found', async (t) => {
  const { endpoint } = await s3rverTarget.get();
  const store = new S3EvidenceStore({ bucket: 'evidence', endpoint, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
  t.is(await store.head('missing/x.tar.gz'), undefined);
  await t.throwsAsync(store.get('missing/x.tar.gz'), { instanceOf: StoreNotFoundError });
  t.throws(() => new S3EvidenceStore({ bucket: 'ab' }), { message: /at least 3/ });
});
