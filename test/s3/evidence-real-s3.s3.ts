// The evidence store against a real S3 (`npm run test:s3`): Ceph RGW in CI, or AWS itself.
// Configured only by the standard variables AWS_ENDPOINT_URL (omit for AWS), AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY and optionally AWS_REGION; credentials reach the store through the SDK's
// default provider chain, as in production. Proves what s3rver cannot: Object Lock (a
// COMPLIANCE-locked bundle cannot be deleted nor its retention shortened; GOVERNANCE needs an
// explicit bypass) and SigV4 (wrong credentials are refused).
import test from 'ava';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  GetObjectRetentionCommand,
  HeadObjectCommand,
  PutObjectRetentionCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { S3EvidenceStore, type S3StoreOptions } from '../../reports/evidence/stores/s3.ts';
import { s3StoreSuite, sampleBundle } from '../helpers/s3-store-suite.ts';
import { tempDir } from '../helpers/evidence-fixture.ts';
import { verifyBundle } from '../../server/evidence/verify.ts';
import { evidenceLogSetup } from '../helpers/evidence-log.ts';

const env = process.env;
if (!env.AWS_ACCESS_KEY_ID || !env.AWS_SECRET_ACCESS_KEY) {
  throw new Error(
    'npm run test:s3 needs a real S3: set AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY ' +
      '(e.g. eval "$(D=/tmp/ceph-s3 RGW_PORT=7480 ../shared/tools/ceph-s3-up.sh)")',
  );
}
const endpoint = env.AWS_ENDPOINT_URL || undefined;
const region = env.AWS_REGION || 'us-east-1';
const bucket = `auditgate-test-${randomBytes(5).toString('hex')}`;
const base: Omit<S3StoreOptions, 'prefix'> = { bucket, endpoint, region, forcePathStyle: Boolean(endpoint) };

let ready: Promise<void> | undefined;
function bucketReady(): Promise<void> {
  ready ??= (async () => {
    const admin = new S3Client({ region, endpoint, forcePathStyle: Boolean(endpoint) });
    // Object Lock must be enabled when the bucket is created; it turns on versioning.
    await admin.send(new CreateBucketCommand({ Bucket: bucket, ObjectLockEnabledForBucket: true }));
    admin.destroy();
  })();
  return ready;
}

async function refused(t: import('ava').ExecutionContext, p: Promise<unknown>, what: string): Promise<S3ServiceException> {
  const err = await t.throwsAsync(p, undefined, what);
  t.true(err instanceof S3ServiceException, `${what}: ${String(err)}`);
  return err as S3ServiceException;
}

s3StoreSuite(test, 'real S3', async () => {
  await bucketReady();
  // AWS stores x-amz-checksum-sha256; Ceph 16 does not and the store reads the object back.
  return { options: base, expectVerifiedBy: 'either' };
});

test('real S3: a COMPLIANCE-locked bundle cannot be deleted and its retention cannot be shortened', async (t) => {
  await bucketReady();
  const dir = tempDir(t);
  const { out, built, opts } = await sampleBundle(dir);
  const store = new S3EvidenceStore({ ...base, prefix: `compliance-${Date.now()}` });
  const retainUntil = new Date(Date.now() + 10 * 60_000);
  retainUntil.setUTCMilliseconds(0);
  const stored = await store.put('b.tar.gz', out, { sha256: built.archiveSha256, retention: { mode: 'COMPLIANCE', retainUntil } });
  t.log(`verified by ${stored.verifiedBy}; version ${stored.versionId}`);
  t.truthy(stored.versionId, 'a versioned bucket returns the version id');
  t.is(stored.retention?.mode, 'COMPLIANCE');
  t.is(new Date(stored.retention!.retainUntil).getTime(), retainUntil.getTime());

  const Key = `${store.prefix}b.tar.gz`;
  const c = store.client;
  const ret = await c.send(new GetObjectRetentionCommand({ Bucket: bucket, Key, VersionId: stored.versionId }));
  t.is(ret.Retention?.Mode, 'COMPLIANCE');

  const del = await refused(t, c.send(new DeleteObjectCommand({ Bucket: bucket, Key, VersionId: stored.versionId })), 'delete the locked version');
  t.is(del.$metadata.httpStatusCode, 403);
  // Even the governance bypass does not apply to COMPLIANCE.
  await refused(
    t,
    c.send(new DeleteObjectCommand({ Bucket: bucket, Key, VersionId: stored.versionId, BypassGovernanceRetention: true })),
    'delete with bypass',
  );
  await refused(
    t,
    c.send(
      new PutObjectRetentionCommand({
        Bucket: bucket,
        Key,
        VersionId: stored.versionId,
        Retention: { Mode: 'COMPLIANCE', RetainUntilDate: new Date(Date.now() + 60_000) },
      }),
    ),
    'shorten the retention',
  );
  await refused(
    t,
    c.send(
      new PutObjectRetentionCommand({
        Bucket: bucket,
        Key,
        VersionId: stored.versionId,
        Retention: { Mode: 'GOVERNANCE', RetainUntilDate: retainUntil },
      }),
    ),
    'weaken COMPLIANCE to GOVERNANCE',
  );

  // Deleting without a version id only hides the object behind a delete marker; the locked
  // version is still there, byte for byte, and still verifies.
  await c.send(new DeleteObjectCommand({ Bucket: bucket, Key }));
  const got = await c.send(new GetObjectCommand({ Bucket: bucket, Key, VersionId: stored.versionId }));
  const bytes = Buffer.from(await got.Body!.transformToByteArray());
  t.true(bytes.equals(readFileSync(out)));
  const head = await c.send(new HeadObjectCommand({ Bucket: bucket, Key, VersionId: stored.versionId }));
  t.is(head.ObjectLockMode, 'COMPLIANCE');
  t.true((await verifyBundle(out, opts)).ok);
});

test('real S3: a GOVERNANCE-locked bundle cannot be deleted without the explicit bypass', async (t) => {
  await bucketReady();
  const dir = tempDir(t);
  const { out, built } = await sampleBundle(dir);
  const store = new S3EvidenceStore({ ...base, prefix: `governance-${Date.now()}` });
  const retainUntil = new Date(Date.now() + 10 * 60_000);
  const stored = await store.put('b.tar.gz', out, { sha256: built.archiveSha256, retention: { mode: 'GOVERNANCE', retainUntil } });
  t.is(stored.retention?.mode, 'GOVERNANCE');
  const Key = `${store.prefix}b.tar.gz`;
  const del = await refused(t, store.client.send(new DeleteObjectCommand({ Bucket: bucket, Key, VersionId: stored.versionId })), 'delete without bypass');
  t.is(del.$metadata.httpStatusCode, 403);
  t.is((await store.head('b.tar.gz'))?.size, built.archiveSize);
});

test('real S3: wrong credentials are refused (bad secret, unknown key)', async (t) => {
  await bucketReady();
  const dir = tempDir(t);
  const { out, built } = await sampleBundle(dir);
  for (const [what, credentials] of [
    ['bad secret', { accessKeyId: env.AWS_ACCESS_KEY_ID!, secretAccessKey: `${env.AWS_SECRET_ACCESS_KEY}x` }],
    ['unknown key', { accessKeyId: 'AKIAUNKNOWN000000000', secretAccessKey: 'not-a-secret-0000000000000000000000000' }],
  ] as const) {
    const store = new S3EvidenceStore({ ...base, prefix: 'denied', credentials });
    const err = await refused(t, store.put('b.tar.gz', out, { sha256: built.archiveSha256 }), what);
    t.is(err.$metadata.httpStatusCode, 403, what);
  }
  const good = new S3EvidenceStore({ ...base, prefix: 'denied' });
  t.is(await good.head('b.tar.gz'), undefined, 'nothing was written');
});

test('real S3: the service configured from the environment stores a COMPLIANCE-locked bundle, logs where and how it was checked', async (t) => {
  await bucketReady();
  const s = await evidenceLogSetup('sqlite', {
    env: {
      AUDITGATE_EVIDENCE_STORE: 's3',
      AUDITGATE_EVIDENCE_S3_BUCKET: bucket,
      AUDITGATE_EVIDENCE_S3_PREFIX: `service-${Date.now()}/`,
      AUDITGATE_EVIDENCE_LOCK_MODE: 'COMPLIANCE',
      // Short, so a real AWS bucket is not burdened for years by a test.
      AUDITGATE_EVIDENCE_RETENTION_DAYS: '1',
      ...(endpoint ? { AWS_ENDPOINT_URL: endpoint } : {}),
      AWS_REGION: region,
    },
  });
  t.teardown(() => s.cleanup());
  // Yesterday (an empty period here): retain-until = its end + 1 day is still ahead.
  const to = new Date(Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), new Date().getUTCDate()));
  const from = new Date(to.getTime() - 86_400_000);
  const r = await s.service.bundle({ from, to, actor: { subject: 'test', auth_method: 'local' } });
  t.true(r.created);
  t.is(r.row.storeKind, 's3');
  t.regex(r.row.location, new RegExp(`^s3://${bucket}/service-\\d+/bundles/`));
  t.is(r.row.retentionMode, 'COMPLIANCE');
  t.is(r.row.retainUntil, new Date(to.getTime() + 86_400_000).toISOString());
  t.truthy(r.row.versionId);
  t.log(`checked by ${r.row.verifiedBy}`);
  const key = r.row.location.slice(`s3://${bucket}/`.length);
  t.true(s.service.store instanceof S3EvidenceStore);
  const client = (s.service.store as S3EvidenceStore).client;
  const del = await refused(t, client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key, VersionId: r.row.versionId! })), 'delete');
  t.is(del.$metadata.httpStatusCode, 403);
  for await (const e of s.log.entries(r.row.logIdx, r.row.logIdx + 1)) {
    const rec = JSON.parse(e.data.toString());
    t.is(rec.event, 'evidence.bundle');
    t.is(rec.detail.store.verified_by, r.row.verifiedBy);
    t.is(rec.detail.store.retention.mode, 'COMPLIANCE');
  }
});
