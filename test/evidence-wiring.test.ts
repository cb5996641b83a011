// Evidence in the running service (server/service.ts → setupEvidence): the signing key is
// created private on first start, the monthly bundle job is registered on the report scheduler,
// and the HTTP routes answer reader roles only; a bundle made with the CLI against the same
// database is listed and downloads through the service, each download recorded.
import test from 'ava';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { auditorToken, startLogService } from './helpers/log-service.ts';
import { sampleAuditRecord } from './helpers/evidence-log.ts';
import { main } from '../server/cli/main.ts';
import { EVIDENCE_JOB } from '../server/evidence/job.ts';
import { verifyBundle } from '../server/evidence/verify.ts';
import type { AuditRecord } from '../gateway/audit-record.ts';

test('the service wires evidence: private key, scheduled job, reader-only routes, recorded downloads', async (t) => {
  const h = await startLogService('sqlite');
  t.teardown(() => h.cleanup());
  const svc = h.service!;
  t.is(statSync(join(h.tdb.dir, 'evidence-key.pem')).mode & 0o777, 0o600);
  const job = svc.reports.registry.get(EVIDENCE_JOB);
  t.truthy(job);
  t.is(job!.cron, '15 0 1 * *');

  const auditor = await auditorToken(h, ['auditor']);
  const agent = await auditorToken(h, ['agent']);
  const get = (path: string, token?: string) =>
    fetch(`${h.url}${path}`, { headers: token ? { authorization: `Bearer ${token}` } : {}, redirect: 'manual' });
  t.is((await get('/api/evidence/bundles')).status, 401);
  t.is((await get('/api/evidence/bundles', agent)).status, 403);
  const empty = await get('/api/evidence/bundles', auditor);
  t.is(empty.status, 200);
  t.deepEqual(await empty.json(), []);

  // Records stamped last month, then `auditgate bundle` on the same database.
  const now = new Date();
  const from = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 1, 1));
  const to = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1));
  for (let i = 0; i < 10; i++) await svc.log.append(sampleAuditRecord(new Date(from.getTime() + i * 60_000), i));
  const out: string[] = [];
  const io = { out: (l: string) => out.push(l), err: (l: string) => out.push(l), env: h.env, cwd: h.tdb.dir };
  t.is(await main(['bundle', '--from', from.toISOString(), '--to', to.toISOString(), '--out', 'b.tar.gz'], io), 0, out.join('\n'));

  const list = (await (await get('/api/evidence/bundles', auditor)).json()) as Array<{ bundle_id: string; archive_sha256: string; record_count: number }>;
  t.is(list.length, 1);
  const archive = await get(`/api/evidence/bundles/${list[0]!.bundle_id}/archive`, auditor);
  t.is(archive.status, 200);
  t.is(archive.headers.get('x-archive-sha256'), list[0]!.archive_sha256);
  writeFileSync(join(h.tdb.dir, 'downloaded.tar.gz'), Buffer.from(await archive.arrayBuffer()));
  const v = await verifyBundle(join(h.tdb.dir, 'downloaded.tar.gz'), { vkey: svc.log.vkey });
  t.true(v.ok, JSON.stringify(v.lines.filter((l) => l.status === 'FAIL')));
  t.is(v.records, list[0]!.record_count);
  t.is((await get(`/api/evidence/bundles/${list[0]!.bundle_id}/archive`, agent)).status, 403);

  const reads: AuditRecord[] = [];
  for await (const e of svc.log.entries(0, (await svc.log.head()).size)) {
    const r = JSON.parse(e.data.toString()) as AuditRecord;
    if (r.event === 'audit.read' && r.detail?.what === 'evidence.bundle') reads.push(r);
  }
  t.is(reads.length, 1);
  t.is(reads[0]!.actor?.subject, 'test-auditor');
});
