// The evidence bundle as a scheduled job (the report scheduler: persisted runs, catch-up oldest
// first so the chain stays in order) and over HTTP (list; download recorded before it is served:
// streamed from the local store, or a 302 to a pre-signed URL for S3).
import test from 'ava';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Hapi from '@hapi/hapi';
import Boom from '@hapi/boom';
import S3rver from 's3rver';
import { OCT, SEP, evidenceLogSetup } from './helpers/evidence-log.ts';
import { JobRegistry, Scheduler } from '../server/jobs/scheduler.ts';
import { EVIDENCE_JOB, evidenceJob, periodEndingBy } from '../server/evidence/job.ts';
import { evidenceRoutesPlugin } from '../server/evidence/routes.ts';
import { verifyBundle } from '../server/evidence/verify.ts';
import { S3EvidenceStore } from '../reports/evidence/stores/s3.ts';
import type { AuditRecord } from '../gateway/audit-record.ts';
import type { KnexLog } from '../server/audit/knex-log.ts';

async function records(log: KnexLog, event: string): Promise<AuditRecord[]> {
  const out: AuditRecord[] = [];
  for await (const e of log.entries(0, (await log.head()).size)) {
    const r = JSON.parse(e.data.toString()) as AuditRecord;
    if (r.event === event) out.push(r);
  }
  return out;
}

test('periods: each slot bundles the period that ended most recently before it', (t) => {
  const iso = (p: { from: Date; to: Date }) => [p.from.toISOString(), p.to.toISOString()];
  t.deepEqual(iso(periodEndingBy('month', new Date('2026-11-01T00:14:00Z'))), ['2026-10-01T00:00:00.000Z', '2026-11-01T00:00:00.000Z']);
  t.deepEqual(iso(periodEndingBy('month', new Date('2026-01-20T00:00:00Z'))), ['2025-12-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z']);
  t.deepEqual(iso(periodEndingBy('quarter', new Date('2026-10-01T00:15:00Z'))), ['2026-07-01T00:00:00.000Z', '2026-10-01T00:00:00.000Z']);
  t.deepEqual(iso(periodEndingBy('quarter', new Date('2026-02-01T00:00:00Z'))), ['2025-10-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z']);
  t.deepEqual(iso(periodEndingBy('day', new Date('2026-03-01T00:10:00Z'))), ['2026-02-28T00:00:00.000Z', '2026-03-01T00:00:00.000Z']);
});

test('scheduled: missed monthly slots are caught up oldest first, each run recorded, the bundles chained and naming their run', async (t) => {
  const s = await evidenceLogSetup('sqlite');
  t.teardown(() => s.cleanup());
  let clock = new Date('2026-09-30T12:00:00Z');
  const registry = new JobRegistry();
  registry.register(evidenceJob(s.service, { cron: '15 0 1 * *', timezone: 'UTC', period: 'month' }));
  const scheduler = new Scheduler({ db: s.tdb.db, log: s.log, registry, holder: 'test', instance: 'test', now: () => clock, cronTriggers: false });
  await scheduler.start();
  await scheduler.idle();
  t.is((await s.service.list()).length, 0, 'nothing due when the job is registered');

  // The service was down over two slots (Oct 1 and Nov 1, 00:15).
  clock = new Date('2026-11-02T09:00:00Z');
  await scheduler.runDue(EVIDENCE_JOB);
  await scheduler.stop();
  const rows = (await s.service.list()).reverse();
  t.deepEqual(
    rows.map((r) => [r.bundleId, r.firstIndex, r.endIndex]),
    [
      ['20260901T000000Z--20261001T000000Z', 0, 30],
      ['20261001T000000Z--20261101T000000Z', 30, 70],
    ],
  );
  t.is(rows[1]!.previousSha256, rows[0]!.archiveSha256);
  const runs = await s.tdb.db('report_runs').where({ job: EVIDENCE_JOB }).orderBy('expected_at');
  t.deepEqual(
    runs.map((r: { status: string; trigger: string; period_label: string }) => [r.status, r.trigger, r.period_label]),
    [
      ['succeeded', 'catch-up', '2026-09-01..2026-10-01'],
      ['succeeded', 'catch-up', '2026-10-01..2026-11-01'],
    ],
  );
  t.deepEqual(rows[1]!.jobRun, { id: runs[1].id, job: EVIDENCE_JOB, trigger: 'catch-up', scheduledFor: '2026-11-01T00:15:00.000Z' });
  t.deepEqual(JSON.parse(runs[1].outputs), { [`${rows[1]!.bundleId}.tar.gz`]: rows[1]!.archiveSha256 });
  const runRecords = await records(s.log, 'report.run');
  t.is(runRecords.filter((r) => r.detail?.job === EVIDENCE_JOB && r.detail?.status === 'succeeded').length, 2);

  // bundle.json names the run; the pair verifies as a chain.
  const r = await verifyBundle(rows[1]!.location, { vkey: s.log.vkey, signerKey: s.service.publicKey, previous: rows[0]!.location });
  t.true(r.ok, JSON.stringify(r.lines.filter((l) => l.status !== 'PASS')));
});

async function testServer(service: import('../server/evidence/bundle-service.ts').EvidenceService) {
  const server = Hapi.server({ port: 0, host: '127.0.0.1' });
  server.auth.scheme('test', () => ({
    authenticate: (request, h) => {
      const who = request.headers['x-test-user'];
      if (!who) return h.unauthenticated(Boom.unauthorized('no user'));
      return h.authenticated({
        credentials: { actor: { subject: String(who), auth_method: 'api_key' }, scope: String(request.headers['x-test-roles'] ?? '').split(','), via: 'api_key' } as never,
      });
    },
  }));
  server.auth.strategy('test', 'test');
  await server.register({ plugin: evidenceRoutesPlugin, options: { service, auth: { strategy: 'test', access: { scope: ['admin', 'compliance', 'auditor'] } } } });
  return server;
}

test('HTTP: readers list bundles and download the archive (streamed), the download recorded first; others are refused', async (t) => {
  const s = await evidenceLogSetup('sqlite');
  t.teardown(() => s.cleanup());
  const sep = await s.service.bundle({ ...SEP, actor: { subject: 'cli', auth_method: 'local' } });
  const server = await testServer(s.service);
  const auditor = { 'x-test-user': 'alice@example.com', 'x-test-roles': 'auditor' };

  const list = await server.inject({ method: 'GET', url: '/api/evidence/bundles', headers: auditor });
  t.is(list.statusCode, 200);
  const items = JSON.parse(list.payload);
  t.is(items.length, 1);
  t.is(items[0].archive_sha256, sep.row.archiveSha256);
  t.is(items[0].record_count, 30);

  const before = (await s.log.head()).size;
  const dl = await server.inject({ method: 'GET', url: `/api/evidence/bundles/${sep.row.bundleId}/archive`, headers: auditor });
  t.is(dl.statusCode, 200);
  t.is(dl.headers['content-type'], 'application/gzip');
  t.is(dl.headers['x-archive-sha256'], sep.row.archiveSha256);
  t.regex(String(dl.headers['content-disposition']), /attachment; filename="auditgate-evidence-20260901T000000Z--20261001T000000Z\.tar\.gz"/);
  t.true(dl.rawPayload.equals(readFileSync(sep.row.location)));
  const reads = await records(s.log, 'audit.read');
  t.is(reads.length, 1);
  t.is(reads[0]!.actor?.subject, 'alice@example.com');
  t.is(reads[0]!.detail?.bundle_id, sep.row.bundleId);
  t.is((await s.log.head()).size, before + 1);

  t.is((await server.inject({ method: 'GET', url: '/api/evidence/bundles/nope/archive', headers: auditor })).statusCode, 404);
  t.is((await server.inject({ method: 'GET', url: `/api/evidence/bundles/${sep.row.bundleId}/archive`, headers: { 'x-test-user': 'bob', 'x-test-roles': 'user' } })).statusCode, 403);
  t.is((await server.inject({ method: 'GET', url: `/api/evidence/bundles/${sep.row.bundleId}/archive` })).statusCode, 401);
  t.is((await records(s.log, 'audit.read')).length, 1, 'refused requests hand nothing out and record no read');
});

test('HTTP with S3: the archive route answers 302 to a pre-signed URL that serves the exact archive; the read is recorded', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'auditgate-s3rver-'));
  const s3 = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: dir, configureBuckets: [{ name: 'evidence' }] });
  const { port } = await s3.run();
  t.teardown(async () => {
    await s3.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const store = new S3EvidenceStore({ bucket: 'evidence', prefix: 'ag', endpoint: `http://127.0.0.1:${port}`, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
  const s = await evidenceLogSetup('sqlite', { store });
  t.teardown(() => s.cleanup());
  const oct0 = await s.service.bundle({ ...SEP, actor: { subject: 'cli', auth_method: 'local' } });
  const oct = await s.service.bundle({ ...OCT, actor: { subject: 'cli', auth_method: 'local' } });
  t.is(oct.row.location, `s3://evidence/ag/bundles/2026/${oct.row.bundleId}.tar.gz`);
  t.is(oct.row.previousSha256, oct0.row.archiveSha256);
  const server = await testServer(s.service);
  const res = await server.inject({ method: 'GET', url: `/api/evidence/bundles/${oct.row.bundleId}/archive`, headers: { 'x-test-user': 'carol', 'x-test-roles': 'compliance' } });
  t.is(res.statusCode, 302);
  const location = String(res.headers.location);
  t.regex(location, /X-Amz-Signature=/);
  t.regex(location, /X-Amz-Expires=300/);
  const bytes = Buffer.from(await (await fetch(location)).arrayBuffer());
  t.is(bytes.length, oct.row.archiveSize);
  t.is(createHash('sha256').update(bytes).digest('hex'), oct.row.archiveSha256);
  const reads = await records(s.log, 'audit.read');
  t.is(reads.length, 1);
  t.is(reads[0]!.detail?.via, 'presigned-url');
  t.is(reads[0]!.actor?.subject, 'carol');
});
