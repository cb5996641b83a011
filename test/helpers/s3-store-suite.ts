// The S3 store tests that every S3 server must pass: s3rver in `npm test`, a real S3 (Ceph RGW in
// CI, or AWS itself) in `npm run test:s3`. Request formation is checked on the wire (our
// SHA-256 and Content-MD5 headers, lock headers), whatever the server does with them.
import type { TestFn } from 'ava';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { S3EvidenceStore, type S3StoreOptions } from '../../reports/evidence/stores/s3.ts';
import { StoreConflictError, type VerifiedBy } from '../../reports/evidence/stores/store.ts';
import { verifyBundle } from '../../server/evidence/verify.ts';
import { MemoryLog, evidenceKeys, fillLog, fixtureBundle, tempDir } from './evidence-fixture.ts';

export interface S3Target {
  options: Omit<S3StoreOptions, 'prefix'>;
  /** Which check the server allows: 's3-checksum' when it stores SHA-256 checksums, else 'read-back'. */
  expectVerifiedBy: VerifiedBy | 'either';
}

export interface SeenRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
}

/** Records every request's headers as signed and sent. */
export function recordRequests(client: S3Client): SeenRequest[] {
  const seen: SeenRequest[] = [];
  client.middlewareStack.add(
    (next) => async (args) => {
      const req = args.request as { method: string; path: string; headers: Record<string, string> };
      seen.push({ method: req.method, path: req.path, headers: Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k.toLowerCase(), v])) });
      return next(args);
    },
    { step: 'finalizeRequest', priority: 'low', name: 'recordRequests' },
  );
  return seen;
}

export async function sampleBundle(dir: string, name = 'bundle.tar.gz') {
  const log = new MemoryLog('auditgate.test/log');
  fillLog(log, 200);
  const keys = evidenceKeys();
  const out = join(dir, name);
  const built = await fixtureBundle({ log, keys, from: 50, to: 200, out });
  return { out, built, opts: { vkey: log.vkey, signerKey: keys.publicKey } };
}

export function s3StoreSuite(test: TestFn, label: string, target: () => Promise<S3Target>): void {
  test(`${label}: a bundle is stored write-once with a SHA-256 checksum and verified after upload`, async (t) => {
    const tg = await target();
    const dir = tempDir(t);
    const { out, built } = await sampleBundle(dir);
    const prefix = `run-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;
    const store = new S3EvidenceStore({ ...tg.options, prefix });
    const seen = recordRequests(store.client);

    const stored = await store.put('2026/10/bundle.tar.gz', out, { sha256: built.archiveSha256 });
    t.true(stored.created);
    t.is(stored.sha256, built.archiveSha256);
    t.is(stored.size, built.archiveSize);
    t.is(stored.location, `s3://${store.bucket}/${prefix}/2026/10/bundle.tar.gz`);
    if (tg.expectVerifiedBy !== 'either') t.is(stored.verifiedBy, tg.expectVerifiedBy);

    const put = seen.find((r) => r.method === 'PUT')!;
    t.truthy(put, 'a PUT was sent');
    t.is(put.headers['x-amz-checksum-sha256'], Buffer.from(built.archiveSha256, 'hex').toString('base64'));
    t.is(put.headers['content-md5'], createHash('md5').update(readFileSync(out)).digest('base64'));
    t.falsy(put.headers['x-amz-trailer'], 'no chunked trailer checksums');
    const head = seen.find((r) => r.method === 'HEAD')!;
    t.is(head.headers['x-amz-checksum-mode'], 'ENABLED');

    // A retried job re-puts the same bytes: accepted, nothing new written.
    seen.length = 0;
    const again = await store.put('2026/10/bundle.tar.gz', out, { sha256: built.archiveSha256 });
    t.false(again.created);
    t.false(seen.some((r) => r.method === 'PUT'));

    // Other bytes under the same key are refused.
    const other = join(dir, 'other.bin');
    writeFileSync(other, 'not the bundle');
    const otherSha = createHash('sha256').update('not the bundle').digest('hex');
    await t.throwsAsync(store.put('2026/10/bundle.tar.gz', other, { sha256: otherSha }), { instanceOf: StoreConflictError });
    // A file that changed since it was hashed is refused before upload.
    await t.throwsAsync(store.put('2026/10/x.tar.gz', other, { sha256: built.archiveSha256 }), { message: /changed/ });
    t.is(await store.head('2026/10/x.tar.gz'), undefined);
  });

  test(`${label}: a pre-signed URL downloads the exact archive, which still verifies`, async (t) => {
    const tg = await target();
    const dir = tempDir(t);
    const { out, built, opts } = await sampleBundle(dir);
    const store = new S3EvidenceStore({ ...tg.options, prefix: `dl-${Date.now()}-${Math.random().toString(36).slice(2, 8)}` });
    await store.put('b.tar.gz', out, { sha256: built.archiveSha256 });
    const url = await store.downloadUrl('b.tar.gz', { expiresInSeconds: 120, filename: 'evidence.tar.gz' });
    t.regex(url, /X-Amz-Signature=/);
    t.regex(url, /X-Amz-Expires=120/);
    const res = await fetch(url);
    t.is(res.status, 200);
    const bytes = Buffer.from(await res.arrayBuffer());
    t.is(createHash('sha256').update(bytes).digest('hex'), built.archiveSha256);
    writeFileSync(join(dir, 'downloaded.tar.gz'), bytes);
    t.true((await verifyBundle(join(dir, 'downloaded.tar.gz'), opts)).ok);
    // The store's own stream gives the same bytes.
    const chunks: Buffer[] = [];
    for await (const c of await store.get('b.tar.gz')) chunks.push(c as Buffer);
    t.true(Buffer.concat(chunks).equals(bytes));
  });
}
