// An access-review campaign through the HTTP API as the UI drives it: launch, reviewers deciding
// only their own lines with the rationale rules, reassignment, a revocation carried out by the
// service and verified in the completion snapshot, sealed sign-offs, and downloads recorded as
// audit reads.
import test from 'ava';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startLogService } from './helpers/log-service.ts';
import { writeReportDataset, REPORTS_YAML } from './helpers/report-data.ts';
import { ApiKeyStore } from '../server/auth/api-keys.ts';
import type { AccessReviewData, ReportLine } from '../reports/access-review.ts';
import { verifySeal } from '../reports/campaign.ts';
import { toInt } from '../server/db.ts';

test('sqlite: a campaign from launch to sealed sign-off through the API', async (t) => {
  const svc = await startLogService('sqlite');
  t.teardown(() => svc.cleanup());
  writeFileSync(join(svc.tdb.dir, 'reports.yaml'), REPORTS_YAML);
  await svc.stop();
  const service = await svc.start();
  const ds = await writeReportDataset(service.db, service.log, { requestsPerDay: 60 });
  const keys = new ApiKeyStore(service.db);
  const tokens = new Map<string, string>();
  const keyFor = async (subject: string, roles: string[]) => {
    const k = tokens.get(subject) ?? (await keys.create({ subject, roles, createdBy: 'test' })).key;
    tokens.set(subject, k);
    return k;
  };
  const call = async (who: string, method: string, url: string, payload?: object) => {
    const res = await service.server.inject({
      method,
      url,
      payload,
      headers: { authorization: `Bearer ${tokens.get(who)}` },
    });
    return {
      status: res.statusCode,
      body: res.headers['content-type']?.toString().includes('json')
        ? JSON.parse(res.payload)
        : res.rawPayload,
      headers: res.headers,
    };
  };
  await keyFor('ciso@acme.example', ['compliance', 'approver']);
  await keyFor('root-admin', ['admin']);
  await keyFor('external-auditor', ['auditor']);

  const launched = await call('ciso@acme.example', 'POST', '/api/reports/campaigns', { period: '2026-Q3' });
  t.is(launched.status, 201, JSON.stringify(launched.body));
  const id = launched.body.id as string;
  t.is(launched.body.asOf, '2026-10-01T00:00:00.000Z');
  t.is(
    (await call('external-auditor', 'POST', '/api/reports/campaigns', { period: '2026-Q3' })).status,
    403,
    'auditors are read-only',
  );

  const all = await call('ciso@acme.example', 'GET', `/api/reports/campaigns/${id}/lines?limit=1000`);
  t.is(all.status, 200);
  const lines = all.body.lines as Array<ReportLine & { decision: unknown }>;
  t.is(lines.length, all.body.total);
  const reviewers = [...new Set(lines.map((l) => l.reviewer))];
  for (const r of reviewers) await keyFor(r, ['approver']);

  // Nobody decides a line assigned to someone else, nor their own access.
  const agent02 = lines.find((l) => l.subject === 'agent-02' && l.target === 'github')!;
  t.is(agent02.reviewer, 'cto@acme.example');
  await keyFor('eng-lead@acme.example', ['approver']);
  const notMine = await call('eng-lead@acme.example', 'POST', `/api/reports/campaigns/${id}/decisions`, {
    itemId: agent02.itemId,
    decision: 'keep',
    rationale: 'I know this agent well, it is mine',
  });
  t.is(notMine.status, 403);
  const flagged = lines.find((l) => l.flags.includes('dormant') && l.reviewer === 'eng-lead@acme.example')!;
  const lazy = await call('eng-lead@acme.example', 'POST', `/api/reports/campaigns/${id}/decisions`, {
    itemId: flagged.itemId,
    decision: 'keep',
    rationale: 'ok',
  });
  t.is(lazy.status, 422, 'a flagged line needs a real rationale');
  // Reassignment to the subject's own person is refused; to an independent reviewer it is recorded.
  const aliceLine = lines.find((l) => l.person === 'alice@acme.example')!;
  const selfAssign = await call('ciso@acme.example', 'POST', `/api/reports/campaigns/${id}/reassign`, {
    itemId: aliceLine.itemId,
    to: 'alice@acme.example',
    reason: 'owner asked',
  });
  t.is(selfAssign.status, 403);
  const reassigned = await call('ciso@acme.example', 'POST', `/api/reports/campaigns/${id}/reassign`, {
    itemId: aliceLine.itemId,
    to: 'security-team@acme.example',
    reason: 'target owner on leave',
  });
  t.is(reassigned.status, 201);
  await keyFor('security-team@acme.example', ['approver']);
  aliceLine.reviewer = 'security-team@acme.example';

  // Every line decided by its reviewer; the never-used legacy key is revoked.
  const legacy = ds.keys.find((k) => k.subject === 'legacy-export')!;
  const revokeLines = lines.filter((l) => l.accountId === legacy.id);
  t.true(revokeLines.length > 0);
  for (const l of lines) {
    const revoke = l.accountId === legacy.id;
    const r = await call(l.reviewer, 'POST', `/api/reports/campaigns/${id}/decisions`, {
      itemId: l.itemId,
      decision: revoke ? 'revoke' : 'keep',
      rationale: revoke
        ? 'Never used since creation in March; the export job was retired.'
        : `Needed for ${l.subject}'s work on ${l.target}; confirmed with owner.`,
    });
    t.is(r.status, 201, `${l.itemId}: ${JSON.stringify(r.body)}`);
  }
  // The control owner signs last.
  const early = await call('ciso@acme.example', 'POST', `/api/reports/campaigns/${id}/signoff`, {
    role: 'control_owner',
  });
  t.is(early.status, 409);
  const finalReviewers = [...new Set(lines.map((l) => l.reviewer))];
  for (const r of finalReviewers)
    t.is(
      (await call(r, 'POST', `/api/reports/campaigns/${id}/signoff`, { role: 'reviewer' })).status,
      201,
      r,
    );
  t.is(
    (
      await call('eng-lead@acme.example', 'POST', `/api/reports/campaigns/${id}/signoff`, {
        role: 'control_owner',
      })
    ).status,
    403,
    'only the control owner',
  );

  // The service carries out the revocation, then the completion snapshot verifies it.
  for (const l of revokeLines) {
    const rem = await call('root-admin', 'POST', `/api/reports/campaigns/${id}/remediate`, {
      itemId: l.itemId,
    });
    t.is(rem.status, 200, JSON.stringify(rem.body));
  }
  t.truthy((await service.db('api_keys').where({ id: legacy.id }).first()).revoked_at);
  t.is(
    (
      await call('ciso@acme.example', 'POST', `/api/reports/campaigns/${id}/signoff`, {
        role: 'control_owner',
      })
    ).status,
    201,
  );
  const done = await call('ciso@acme.example', 'POST', `/api/reports/campaigns/${id}/complete`);
  t.is(done.status, 200);
  t.is(done.body.status, 'completed');

  // Downloads: JSON and PDF carry the same data hash; each download is an audit.read entry.
  await service.log.syncIndex();
  const readsBefore = toInt(
    (await service.db('audit_events').where({ event: 'audit.read' }).count({ n: '*' }).first())!.n,
  );
  const json = await call('external-auditor', 'GET', `/api/reports/campaigns/${id}/report.json`);
  t.is(json.status, 200);
  const d = json.body as AccessReviewData;
  const raw = await service.server.inject({
    method: 'GET',
    url: `/api/reports/campaigns/${id}/report.json`,
    headers: { authorization: `Bearer ${tokens.get('external-auditor')}` },
  });
  const hash = createHash('sha256').update(raw.rawPayload).digest('hex');
  t.is(json.headers['x-report-data-sha256'], hash);
  const pdf = await call('external-auditor', 'GET', `/api/reports/campaigns/${id}/report.pdf`);
  t.is(pdf.status, 200);
  t.is(pdf.headers['x-report-data-sha256'], hash, 'the PDF is rendered from the same data');
  t.is((pdf.body as Buffer).subarray(0, 5).toString(), '%PDF-');
  const csv = await call('external-auditor', 'GET', `/api/reports/campaigns/${id}/report.entitlements`);
  t.is(csv.status, 200);
  await service.log.syncIndex();
  const readsAfter = toInt(
    (await service.db('audit_events').where({ event: 'audit.read' }).count({ n: '*' }).first())!.n,
  );
  t.is(readsAfter - readsBefore, 4, 'JSON twice, PDF and CSV');

  t.is(d.status, 'completed');
  t.is(d.summary.decisions.pending, 0);
  t.is(d.summary.decisions.revoke, revokeLines.length);
  t.is(d.scope.controlTotals.linesDecided, d.lines.length);
  t.is(
    d.summary.remediation.verified,
    revokeLines.length,
    'revoked lines absent from the completion snapshot',
  );
  const revoked = d.lines.filter((l) => l.decision === 'revoke');
  t.true(
    revoked.every(
      (l) => l.slaMet === true && l.verifiedAbsentAt !== null && l.remediationRef!.includes(legacy.id),
    ),
  );
  t.regex(revoked.map((l) => l.remediationRef).join('\n'), /audit log leaf \d+: API key/);
  t.is(d.independence.reassignments.length, 1);
  t.is(d.signoffs.length, finalReviewers.length + 1);
  t.true(d.signoffs.every((s) => verifySeal(id, s)));
  t.false(verifySeal(id, { ...d.signoffs[0]!, signer: 'someone-else' }), 'a seal binds the signer');
  t.deepEqual(
    d.exceptions.filter((e) => e.kind !== 'unmatched_usage'),
    [],
  );
  // Every campaign step is in the log.
  const steps = await service.db('audit_events').where({ event: 'report.run' }).count({ n: '*' }).first();
  t.true(toInt(steps!.n) >= 1 + lines.length + 1 + finalReviewers.length + 1 + revokeLines.length + 1);
  const rev = await service
    .db('audit_events')
    .where({ event: 'config.change', key_id: null })
    .count({ n: '*' })
    .first();
  t.true(toInt(rev!.n) >= 1);

  // A decision on a completed campaign is refused.
  const late = await call(lines[0]!.reviewer, 'POST', `/api/reports/campaigns/${id}/decisions`, {
    itemId: lines[0]!.itemId,
    decision: 'keep',
    rationale: 'changing my mind after completion',
  });
  t.is(late.status, 409);
  const ready = await service.server.inject({ method: 'GET', url: '/readyz' });
  const checks = JSON.parse(ready.payload).checks;
  t.truthy(checks.scheduler?.detail?.['access-review'], 'the scheduler reports its jobs in /readyz');
});
