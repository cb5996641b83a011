// Reports on a realistic quarter written through the real audit log: the CLI writes PDF, JSON
// and CSVs; every number in the JSON is checked against independent SQL; the PDF is checked as
// an auditor would (pdftotext: sections, totals, the data hash in every footer; pdftoppm: pages
// render). Both databases.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createTestDb, DB_KINDS, type TestDb } from './helpers/db.ts';
import { writeReportDataset, REPORTS_YAML, type Dataset } from './helpers/report-data.ts';
import { loadConfig } from '../server/config.ts';
import { openKnexLog } from '../server/audit/knex-log.ts';
import { loadOrCreateLogKey } from '../server/audit/log-key.ts';
import { main } from '../server/cli/main.ts';
import type { AccessReviewData } from '../reports/access-review.ts';
import type { ActivityReportData } from '../reports/activity.ts';
import type { ChangeLogData } from '../reports/changes.ts';
import { toInt } from '../server/db.ts';

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const iso = (v: unknown) => (v instanceof Date ? v.toISOString() : new Date(String(v)).toISOString());
const Q3 = { start: '2026-07-01T00:00:00.000Z', end: '2026-10-01T00:00:00.000Z' };

interface Fixture {
  tdb: TestDb;
  env: Record<string, string>;
  ds: Dataset;
  out: string;
  run(kind: string, ...extra: string[]): Promise<{ code: number; stdout: string[]; stderr: string[] }>;
}

async function fixture(kind: 'sqlite' | 'postgres'): Promise<Fixture> {
  const tdb = await createTestDb(kind);
  const env: Record<string, string> = {
    AUDITGATE_DATA_DIR: tdb.dir,
    AUDITGATE_LOG_ORIGIN: 'auditgate.test/reports',
    LOG_LEVEL: 'silent',
    ...(tdb.databaseUrl ? { DATABASE_URL: tdb.databaseUrl } : {}),
  };
  writeFileSync(join(tdb.dir, 'reports.yaml'), REPORTS_YAML);
  const config = loadConfig(env, tdb.dir);
  // The key the CLI will use (data dir), with group commit so a quarter of traffic writes fast.
  const signer = await loadOrCreateLogKey(config.log.keyFile, config.log.origin);
  const log = await openKnexLog(tdb.db, {
    origin: config.log.origin,
    signer,
    batchMaxSize: 512,
    batchMaxDelayMs: 2,
    checkpointIntervalMs: 1000,
    checkpointTimer: false,
    appendTimeoutMs: 60_000,
  });
  const ds = await writeReportDataset(tdb.db, log, { requestsPerDay: 90 });
  await log.close();
  const out = join(tdb.dir, 'out');
  mkdirSync(out);
  return {
    tdb,
    env,
    ds,
    out,
    async run(kind, ...extra) {
      const stdout: string[] = [];
      const stderr: string[] = [];
      const code = await main(['report', kind, '--period', '2026-Q3', ...extra], {
        env,
        cwd: tdb.dir,
        out: (l) => stdout.push(l),
        err: (l) => stderr.push(l),
      });
      return { code, stdout, stderr };
    },
  };
}

function pdfPages(file: string): string[] {
  const text = execFileSync('pdftotext', ['-layout', file, '-'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  return text.split('\f').filter((p, i, a) => i < a.length - 1 || p.trim() !== '');
}

for (const kind of DB_KINDS) {
  test(`${kind}: access review — every figure matches independent SQL, PDF is complete`, async (t) => {
    const f = await fixture(kind);
    t.teardown(() => f.tdb.cleanup());
    const pdf = join(f.out, 'access-review.pdf');
    const r = await f.run('access-review', '--out', pdf, '--json', '--csv', join(f.out, 'csv'));
    t.is(r.code, 0, r.stderr.join('\n'));
    const json = readFileSync(join(f.out, 'access-review.json'));
    const hash = sha(json);
    t.true(r.stdout[0]!.includes(hash), 'the CLI prints the data hash of the JSON it wrote');
    const d = JSON.parse(json.toString('utf8')) as AccessReviewData;
    const db = f.tdb.db;

    // Population: API keys active at the snapshot + IdP subjects seen in the period.
    const keys = await db('api_keys')
      .where('created_at', '<=', Q3.end)
      .andWhere((q) => q.whereNull('revoked_at').orWhere('revoked_at', '>', Q3.end))
      .andWhere((q) => q.whereNull('expires_at').orWhere('expires_at', '>', Q3.end));
    const idp = await db('audit_events')
      .whereIn('auth_method', ['oidc', 'session'])
      .andWhere('ts', '>=', Q3.start)
      .andWhere('ts', '<', Q3.end)
      .distinct('issuer', 'subject');
    t.is(d.summary.identities.total, keys.length + idp.length);
    t.is(d.scope.controlTotals.rowsFetched.identities, keys.length + idp.length);
    const humans = await db('audit_events')
      .where('auth_method', 'session')
      .andWhere('ts', '>=', Q3.start)
      .andWhere('ts', '<', Q3.end)
      .distinct('subject');
    t.is(d.summary.identities.human, humans.length);
    const agentKeys = keys.filter((k: any) => JSON.parse(k.roles).includes('agent')).length;
    t.is(d.summary.identities.agent, agentKeys + idp.length - humans.length);
    t.is(d.summary.identities.service, keys.length - agentKeys);
    t.false(
      d.lines.some((l) => l.accountId === f.ds.revokedKeyId),
      'a key revoked during the period is not in the population',
    );

    // Every identity appears; lines reconcile with what was fetched.
    const accounts = new Set(d.lines.map((l) => l.accountId));
    t.is(accounts.size, d.summary.identities.total);
    t.true(d.scope.controlTotals.reconciles);
    t.is(d.scope.controlTotals.linesInReport, d.lines.length);
    t.is(d.summary.entitlements, d.lines.length);
    t.is(d.summary.privileged, d.lines.filter((l) => l.privileged).length);
    const seenTargets = await db('audit_events')
      .whereNotNull('target')
      .andWhere('ts', '<', Q3.end)
      .distinct('target');
    // Targets in scope: those seen in the period plus those configured (here the demo target),
    // exactly as the service's scheduled run sees them.
    const { configuredReportScope } = await import('../server/reports/scope.ts');
    const { loadConfig } = await import('../server/config.ts');
    const configured = configuredReportScope(loadConfig(f.env, f.tdb.dir), f.env, f.tdb.dir).targetNames();
    t.is(d.summary.targets, new Set([...seenTargets.map((r: any) => r.target), ...configured]).size);
    // Privileged: admin/approver roles, and every-tool grants on targets with privileged tools.
    t.is(
      d.summary.privileged,
      d.lines.filter(
        (l) =>
          ['admin', 'approver'].includes(l.role) ||
          (l.tool === '*' && ['github', 'postgres-prod', 'filesystem'].includes(l.target)),
      ).length,
    );
    t.is(d.summary.decisions.pending, d.lines.length);

    // Use per line, recomputed with a different grouping (key id, issuer, subject, target).
    const usage = await db('audit_events')
      .select('key_id', 'issuer', 'subject', 'target')
      .count({ n: '*' })
      .min({ first: 'ts' })
      .max({ last: 'ts' })
      .where({ event: 'mcp.message', direction: 'client_to_upstream', kind: 'request' })
      .andWhere('ts', '>=', Q3.start)
      .andWhere('ts', '<', Q3.end)
      .groupBy('key_id', 'issuer', 'subject', 'target');
    const byAccount = new Map<string, { n: number; first: string; last: string }>();
    for (const u of usage as any[]) {
      const account = u.key_id ?? `${u.issuer ?? ''}#${u.subject}`;
      byAccount.set(`${account}|${u.target}`, { n: toInt(u.n), first: iso(u.first), last: iso(u.last) });
    }
    let checked = 0;
    for (const l of d.lines.filter((x) => x.tool === '*')) {
      const u = byAccount.get(`${l.accountId}|${l.target}`);
      t.is(l.callsInPeriod, u?.n ?? 0, `${l.itemId} calls`);
      t.is(l.lastUsedAt, u?.last ?? null, `${l.itemId} last use`);
      t.is(l.firstUsedAt, u?.first ?? null, `${l.itemId} first use`);
      const base = l.lastUsedAt ?? l.createdAt!;
      t.is(l.daysInactive, Math.floor((Date.parse(Q3.end) - Date.parse(base)) / 86_400_000));
      t.is(l.flags.includes('dormant'), l.daysInactive! >= 45, `${l.itemId} dormant flag`);
      checked++;
    }
    t.true(checked > 100, `checked ${checked} MCP lines`);
    // Evidence refs point at entries of that account and target.
    for (const l of d.lines.filter((x) => x.evidenceRefs.length).slice(0, 40)) {
      const e = await db('audit_events').whereIn('idx', l.evidenceRefs);
      t.is(e.length, l.evidenceRefs.length);
      for (const row of e) t.is(row.target, l.target);
    }
    // Flags the dataset plants.
    const linesOf = (id: string) => d.lines.filter((l) => l.accountId === id);
    t.true(linesOf(f.ds.sharedKeyId).every((l) => l.flags.includes('shared_credential')));
    for (const id of f.ds.dormantKeyIds)
      t.true(
        linesOf(id).every((l) => l.flags.includes('dormant')),
        `dormant key ${id}`,
      );
    const legacy = f.ds.keys.find((k) => k.subject === 'legacy-export')!;
    t.true(linesOf(legacy.id).every((l) => l.lastUsedAt === null && l.flags.includes('dormant')));
    t.true(
      d.lines
        .filter((l) => l.subject === 'agent-00')
        .every((l) => l.person === 'alice@acme.example' && !l.flags.includes('orphaned')),
    );
    t.true(d.lines.filter((l) => l.subject === 'agent-03').every((l) => l.flags.includes('orphaned')));
    const breakGlass = d.lines.filter((l) => l.subject === 'break-glass');
    t.deepEqual(breakGlass.map((l) => l.role).sort(), ['admin', 'approver']);
    t.true(breakGlass.every((l) => l.privileged && l.flags.includes('no_justification')));
    t.is(d.lines.find((l) => l.subject === 'ops-automation')!.approvalRef, 'SEC-77');
    t.is(d.summary.flags.dormant, d.lines.filter((l) => l.flags.includes('dormant')).length);
    t.is(d.populationChanges.orphaned.length, d.summary.flags.orphaned);
    // Reviewers: never the subject or the grantor.
    for (const l of d.lines) {
      t.not(l.reviewer, l.subject);
      t.not(l.reviewer, l.person);
      t.not(l.reviewer, l.grantedBy);
    }
    const agent02 = d.lines.filter(
      (l) => l.subject === 'agent-02' && (l.target === 'github' || l.target === 'filesystem'),
    );
    t.true(
      agent02.length > 0 && agent02.every((l) => l.reviewer === 'cto@acme.example'),
      'the target owner is the subject: the manager reviews',
    );
    t.true(d.independence.conflictsAvoided.selfReview > 0);

    // The log checkpoint the data came from.
    const before = await db('audit_events').where('ts', '<', Q3.end).count({ n: '*' }).first();
    t.is(d.scope.auditLog.treeSize, toInt(before!.n));
    t.regex(d.scope.auditLog.rootHex, /^[0-9a-f]{64}$/);

    // CSV: one row per line plus the header, formula-safe.
    const csv = readFileSync(join(f.out, 'csv', 'access-review-entitlements.csv'), 'utf8')
      .trimEnd()
      .split('\r\n');
    t.is(csv.length, d.lines.length + 1);
    t.true(csv[0]!.startsWith('item_id,target,account_id'));

    // The PDF as an auditor reads it.
    const pages = pdfPages(pdf);
    const info = execFileSync('pdfinfo', [pdf], { encoding: 'utf8' });
    t.is(Number(/Pages:\s+(\d+)/.exec(info)![1]), pages.length);
    pages.forEach((p, i) => {
      t.true(p.includes(hash), `data hash in the footer of page ${i + 1}`);
      t.true(p.includes(`Page ${i + 1} of ${pages.length}`), `page ${i + 1} numbered`);
    });
    const all = pages.join('\n');
    for (const s of [
      'Executive summary',
      'Scope and method',
      'Population changes',
      'Reviewer assignments and independence',
      'Entitlements',
      'Privileged access',
      'Exceptions and remediation',
      'Access at launch and after remediation',
      'Sign-off',
      'Appendix',
      'CC6.2',
      'CC6.3',
    ]) {
      t.true(all.includes(s), `PDF has ${s}`);
    }
    t.true(all.includes(`Lines in this report`) && all.includes(`Reconciles`));
    t.true(all.includes(d.scope.auditLog.rootHex));
    // Every line's item id is printed in the entitlement table.
    const missing = d.lines.filter((l) => !all.includes(l.itemId));
    t.deepEqual(
      missing.map((l) => l.itemId),
      [],
    );
    const entPages = pages.filter((p) => p.includes('Entitlements (continued)'));
    t.true(
      entPages.length > 0 && entPages.every((p) => /Item\s+Target\s+Account/.test(p)),
      'continued tables repeat their header',
    );
    const fonts = execFileSync('pdffonts', [pdf], { encoding: 'utf8' }).trim().split('\n').slice(2);
    t.true(
      fonts.length >= 4 && fonts.every((l) => /\byes\s+yes\s+yes\b/.test(l)),
      `fonts embedded:\n${fonts.join('\n')}`,
    );
    execFileSync('pdftoppm', ['-r', '40', '-png', '-f', '1', '-l', '3', pdf, join(f.out, 'page')]);
    const pngs = readdirSync(f.out).filter((n) => n.startsWith('page') && n.endsWith('.png'));
    t.is(pngs.length, 3);
    for (const p of pngs) t.true(readFileSync(join(f.out, p)).subarray(1, 4).toString() === 'PNG');

    // Idempotent: a re-run over the same period gives the same bytes although the log grew.
    const r2 = await f.run('access-review', '--json');
    t.is(r2.code, 0);
    t.is(sha(r2.stdout.join('\n')), hash);
    // The runs themselves are in the log.
    const runs = await db('audit_events').where({ event: 'report.run' }).count({ n: '*' }).first();
    t.is(toInt(runs!.n), 2);
  });

  test(`${kind}: activity report and change log — figures match independent SQL`, async (t) => {
    const f = await fixture(kind);
    t.teardown(() => f.tdb.cleanup());
    const db = f.tdb.db;
    const r = await f.run('activity', '--out', join(f.out, 'activity.pdf'), '--json');
    t.is(r.code, 0, r.stderr.join('\n'));
    const a = JSON.parse(readFileSync(join(f.out, 'activity.json'), 'utf8')) as ActivityReportData;
    const inQ3 = () => db('audit_events').where('ts', '>=', Q3.start).andWhere('ts', '<', Q3.end);
    const count = async (q: any) => toInt((await q.count({ n: '*' }).first()).n);
    t.is(a.totals.events, await count(inQ3()));
    t.is(
      a.totals.requests,
      await count(inQ3().where({ event: 'mcp.message', direction: 'client_to_upstream', kind: 'request' })),
    );
    t.is(a.totals.refused, await count(inQ3().where({ event: 'mcp.refused' })));
    t.is(a.totals.errors, await count(inQ3().where({ event: 'mcp.message', kind: 'error' })));
    t.is(a.daily.length, 92);
    t.is(
      a.daily.reduce((s, x) => s + x.requests, 0),
      a.totals.requests,
    );
    const aug19 = a.daily.find((x) => x.day === '2026-08-19')!;
    t.is(
      aug19.refused,
      await count(
        inQ3()
          .where({ event: 'mcp.refused' })
          .andWhere('ts', '>=', '2026-08-19T00:00:00Z')
          .andWhere('ts', '<', '2026-08-20T00:00:00Z'),
      ),
    );
    for (const pt of a.perTarget) {
      t.is(
        pt.requests,
        await count(
          inQ3().where({
            target: pt.target,
            event: 'mcp.message',
            direction: 'client_to_upstream',
            kind: 'request',
          }),
        ),
        pt.target,
      );
      const ids = await inQ3().where({ target: pt.target }).countDistinct({ n: 'subject' }).first();
      t.is(pt.identities, toInt(ids!.n));
    }
    t.is(
      a.perTarget.reduce((s, x) => s + x.requests, 0),
      a.totals.requests,
    );
    for (const pt of a.perTarget) {
      t.is(
        pt.errors,
        await count(inQ3().where({ target: pt.target, event: 'mcp.message', kind: 'error' })),
        `${pt.target} errors`,
      );
      t.is(
        pt.refused,
        await count(inQ3().where({ target: pt.target, event: 'mcp.refused' })),
        `${pt.target} refused`,
      );
      const lat = await inQ3()
        .where({ target: pt.target, direction: 'upstream_to_client' })
        .max({ m: 'latency_ms' })
        .first();
      t.is(pt.maxLatencyMs, Number(lat!.m), `${pt.target} max latency`);
      const tools = await inQ3()
        .where({ target: pt.target, jsonrpc_method: 'tools/call' })
        .countDistinct({ n: 'name' })
        .first();
      t.is(pt.tools, toInt(tools!.n), `${pt.target} tools`);
    }
    for (const tool of a.tools) {
      t.is(
        tool.calls,
        await count(
          inQ3().where({
            target: tool.target,
            name: tool.tool,
            event: 'mcp.message',
            direction: 'client_to_upstream',
            kind: 'request',
          }),
        ),
        `${tool.target}/${tool.tool}`,
      );
    }
    const byEvent = await inQ3().select('event').count({ n: '*' }).groupBy('event');
    t.deepEqual(
      Object.fromEntries(a.byEvent.map((e) => [e.event, e.n])),
      Object.fromEntries(byEvent.map((e: any) => [e.event, toInt(e.n)])),
    );
    const offHours = a.offHours.accounts.find((x) => x.subject === 'svc-etl-4');
    t.true(!!offHours && offHours.requests >= 400, 'the night-time burst is attributed');
    t.is(
      a.denials.reduce((s, x) => s + x.n, 0),
      await count(inQ3().where((q) => q.where({ event: 'mcp.refused' }).orWhere({ decision: 'deny' }))),
    );
    t.true(a.anomalies.some((x) => x.kind === 'denial_burst' && x.subject === 'agent-05'));
    t.deepEqual(
      a.offHours.spikes.map((s) => s.hour),
      ['2026-08-22T02'],
    );
    t.true(a.firstSeenTools.some((x) => x.target === 'github' && x.tool === 'create_release'));
    // First seen: no entry before the period for that subject.
    for (const fs of a.firstSeenIdentities) {
      t.is(
        await count(db('audit_events').where({ subject: fs.subject }).andWhere('ts', '<', Q3.start)),
        0,
        fs.subject,
      );
    }
    const seenBefore = await db('audit_events').where('ts', '<', Q3.start).distinct('subject');
    const active = await inQ3()
      .whereIn('event', ['mcp.message', 'mcp.refused'])
      .whereNotNull('subject')
      .distinct('subject');
    t.is(
      a.firstSeenIdentities.length,
      active.length - seenBefore.filter((s: any) => active.some((x: any) => x.subject === s.subject)).length,
    );
    const priv = await count(
      inQ3()
        .where({
          event: 'mcp.message',
          direction: 'client_to_upstream',
          kind: 'request',
          jsonrpc_method: 'tools/call',
        })
        .andWhere((q) =>
          q
            .where({ target: 'postgres-prod', name: 'execute_sql' })
            .orWhere({ target: 'github', name: 'merge_pull_request' })
            .orWhere({ target: 'filesystem', name: 'write_file' }),
        ),
    );
    t.is(
      a.privilegedCalls.reduce((s, x) => s + x.n, 0),
      priv,
    );
    const pages = pdfPages(join(f.out, 'activity.pdf'));
    const hash = sha(readFileSync(join(f.out, 'activity.json')));
    t.true(pages.every((p) => p.includes(hash)));
    t.true(pages.join('\n').includes('Anomalies'));

    const c = await f.run('changes', '--json');
    t.is(c.code, 0);
    const ch = JSON.parse(c.stdout.join('\n')) as ChangeLogData;
    t.is(ch.totals.changes, await count(inQ3().where({ event: 'config.change' })));
    t.deepEqual([ch.totals.approvedByOther, ch.totals.selfApproved, ch.totals.noApproval], [2, 1, 2]);
    t.is(ch.exceptions.length, 3);
    t.true(ch.changes.every((x) => x.beforeSha256 && x.afterSha256));
  });
}

test('sqlite: with a per-tool policy, entitlements are the tools each account is allowed, with the deciding rule', async (t) => {
  const f = await fixture('sqlite');
  t.teardown(() => f.tdb.cleanup());
  const { PolicyEngine, parsePolicies } = await import('../server/policy/policy.ts');
  const { generateReport } = await import('../server/reports/generate.ts');
  const { parseReportsConfig } = await import('../server/reports/report-config.ts');
  const { parsePeriod } = await import('../reports/period.ts');
  const policy = new PolicyEngine(
    parsePolicies([
      {
        name: 'ci-github',
        effect: 'allow',
        subjects: ['ci-runner-*'],
        targets: ['github'],
        tools: ['search_issues', 'get_pull_request'],
      },
      { name: 'no-prod-writes', effect: 'deny', targets: ['postgres-prod'], tools: ['execute_sql'] },
      { name: 'agents', effect: 'allow', roles: ['agent'], targets: ['jira', 'postgres-prod'] },
    ]),
  );
  const { openKnexLog } = await import('../server/audit/knex-log.ts');
  const { loadOrCreateLogKey } = await import('../server/audit/log-key.ts');
  const config = loadConfig(f.env, f.tdb.dir);
  const real = await openKnexLog(f.tdb.db, {
    origin: config.log.origin,
    signer: await loadOrCreateLogKey(config.log.keyFile, config.log.origin),
    batchMaxSize: 16,
    batchMaxDelayMs: 2,
    checkpointIntervalMs: 1000,
    checkpointTimer: false,
  });
  t.teardown(() => real.close());
  const out = await generateReport(
    {
      db: f.tdb.db,
      log: real,
      config: parseReportsConfig({ targets: { 'postgres-prod': { privileged_tools: ['execute_sql'] } } }),
      instance: 't',
      policy: () => policy,
    },
    'access-review',
    parsePeriod('2026-Q3'),
    { generatedAt: '2026-10-01T06:00:00.000Z', trigger: 'cli' },
    { pdf: false },
  );
  const d = JSON.parse(out.json.toString('utf8')) as AccessReviewData;
  const ci = d.lines.filter((l) => l.subject === 'ci-runner-0');
  t.deepEqual(ci.map((l) => `${l.target}/${l.tool}`).sort(), [
    'github/get_pull_request',
    'github/search_issues',
    'jira/create_ticket',
    'jira/search',
    'jira/transition_ticket',
    'postgres-prod/describe_table',
    'postgres-prod/run_query',
  ]);
  t.is(ci.find((l) => l.target === 'github')!.grantRef, 'policy rule ci-github');
  t.is(ci.find((l) => l.target === 'github')!.grantPath, 'direct');
  t.is(ci.find((l) => l.target === 'jira')!.grantPath, 'role');
  t.false(
    d.lines.some((l) => l.tool === 'execute_sql' || l.tool === '*'),
    'denied and unknown tools are not entitlements',
  );
  // Per-tool use: calls of a line are that tool's calls only.
  const n = await f.tdb
    .db('audit_events')
    .where({
      key_id: ci[0]!.accountId,
      target: 'jira',
      name: 'search',
      event: 'mcp.message',
      direction: 'client_to_upstream',
    })
    .andWhere('ts', '>=', Q3.start)
    .andWhere('ts', '<', Q3.end)
    .count({ n: '*' })
    .first();
  t.is(
    d.lines.find((l) => l.subject === 'ci-runner-0' && l.tool === 'search')?.callsInPeriod ?? 0,
    toInt(n!.n),
  );
  t.true(d.scope.sources.some((s) => s.name.includes('tool catalogue')));
  // Calls the policy would not allow show up as use without an entitlement.
  t.true(d.exceptions.some((e) => e.kind === 'unmatched_usage'));
});
