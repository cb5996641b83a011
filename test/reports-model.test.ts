// The pure report model: periods, canonical JSON, CSV formula neutralisation, flags, reviewer
// independence, the rationale rules, seals, reconciliation — without a database.
import test from 'ava';
import { parsePeriod, previousPeriod, lastCompletePeriod, PeriodError } from '../reports/period.ts';
import { canonicalBytes, dataHash, CanonicalJsonError } from '../reports/canonical.ts';
import { neutraliseCell, toCsv } from '../reports/csv.ts';
import { buildSnapshot, type SnapshotInput } from '../reports/access-snapshot.ts';
import { DEFAULT_SETTINGS, type IdentityRecord } from '../reports/access-types.ts';
import {
  checkDecision,
  checkReassignment,
  makeSignoff,
  verifySeal,
  ReviewRuleError,
  type Decision,
} from '../reports/campaign.ts';
import { buildAccessReview, accessReviewBytes } from '../reports/access-review.ts';
import { accessReviewCsvs } from '../reports/access-csv.ts';

test('periods are half-open UTC ranges', (t) => {
  t.deepEqual(parsePeriod('2026-Q3'), {
    label: '2026-Q3',
    start: '2026-07-01T00:00:00.000Z',
    end: '2026-10-01T00:00:00.000Z',
  });
  t.is(parsePeriod('2026-02').end, '2026-03-01T00:00:00.000Z');
  t.is(parsePeriod('2026').end, '2027-01-01T00:00:00.000Z');
  t.is(parsePeriod('2026-07-01..2026-07-15').end, '2026-07-15T00:00:00.000Z');
  t.is(previousPeriod(parsePeriod('2026-Q1')).label, '2025-Q4');
  t.is(previousPeriod(parsePeriod('2026-01')).label, '2025-12');
  t.deepEqual(previousPeriod(parsePeriod('2026-07-10..2026-07-17')), {
    label: '2026-07-03..2026-07-10',
    start: '2026-07-03T00:00:00.000Z',
    end: '2026-07-10T00:00:00.000Z',
  });
  // Part of a day (an on-demand bundle): the same length just before, times kept.
  const partOfDay = { label: 'x', start: '2026-11-26T02:00:00.000Z', end: '2026-11-26T02:16:00.000Z' };
  t.deepEqual(previousPeriod(partOfDay), {
    label: '2026-11-26T01:44:00.000Z..2026-11-26T02:00:00.000Z',
    start: '2026-11-26T01:44:00.000Z',
    end: '2026-11-26T02:00:00.000Z',
  });
  const acrossDays = { label: 'x', start: '2026-11-02T12:00:00.000Z', end: '2026-11-03T18:00:00.000Z' };
  t.is(previousPeriod(acrossDays).start, '2026-11-01T06:00:00.000Z');
  t.is(lastCompletePeriod('quarter', new Date('2026-10-01T06:00:00Z')).label, '2026-Q3');
  t.is(lastCompletePeriod('month', new Date('2026-01-01T06:00:00Z')).label, '2025-12');
  for (const bad of ['2026-Q5', '2026-13', 'last quarter', '2026-07-10..2026-07-01'])
    t.throws(() => parsePeriod(bad), { instanceOf: PeriodError });
});

test('canonical JSON is RFC 8785 and refuses what would change meaning silently', (t) => {
  t.is(
    canonicalBytes({ b: 1, a: [true, null, 'é'], c: 1e21 }).toString(),
    '{"a":[true,null,"é"],"b":1,"c":1e+21}',
  );
  t.is(dataHash({ x: 1 }), dataHash({ x: 1.0 }));
  t.throws(() => canonicalBytes({ a: undefined }), { instanceOf: CanonicalJsonError });
  t.throws(() => canonicalBytes({ a: Number.NaN }), { instanceOf: CanonicalJsonError });
});

test('CSV cells that a spreadsheet would run as formulas are neutralised (CWE-1236)', (t) => {
  for (const evil of ['=HYPERLINK("http://x")', '+1+1', '-2+3', '@SUM(A1)', '\tcmd', '\rcmd'])
    t.is(neutraliseCell(evil)[0], "'");
  t.is(neutraliseCell('agent-01'), 'agent-01');
  const csv = toCsv([{ header: 'a', value: (r: { a: string }) => r.a }], [{ a: '=1+1' }, { a: 'x,"y"' }]);
  t.is(csv, `a\r\n'=1+1\r\n"x,""y"""\r\n`);
});

function input(over: Partial<SnapshotInput> = {}): SnapshotInput {
  const ids: IdentityRecord[] = [
    {
      accountId: 'k1',
      subject: 'bot-1',
      type: 'agent',
      person: 'alice',
      authMethod: 'api_key',
      createdAt: '2026-01-01T00:00:00.000Z',
      createdBy: 'admin',
      source: 'api_keys',
    },
    {
      accountId: 'k2',
      subject: 'bot-2',
      type: 'agent',
      authMethod: 'api_key',
      createdAt: '2026-08-01T00:00:00.000Z',
      createdBy: 'owner-a',
      source: 'api_keys',
    },
    {
      accountId: 'idp#owner-a',
      subject: 'owner-a',
      type: 'human',
      person: 'owner-a',
      authMethod: 'oidc',
      createdAt: '2026-07-02T00:00:00.000Z',
      source: 'audit_events',
    },
    {
      accountId: 'k3',
      subject: 'lonely',
      type: 'service',
      person: 'bob',
      authMethod: 'api_key',
      createdAt: '2026-01-01T00:00:00.000Z',
      source: 'api_keys',
    },
  ];
  return {
    period: parsePeriod('2026-Q3'),
    asOf: '2026-10-01T00:00:00.000Z',
    checkpoint: { size: 100, root: 'ab'.repeat(32) },
    identities: ids,
    entitlements: [
      {
        accountId: 'k1',
        target: 'db',
        tool: '*',
        role: 'agent',
        privileged: false,
        grantPath: 'direct',
        approvalRef: 'CHG-1',
      },
      {
        accountId: 'k1',
        target: 'db',
        tool: 'drop_table',
        role: 'agent',
        privileged: false,
        grantPath: 'direct',
      },
      {
        accountId: 'k2',
        target: 'db',
        tool: '*',
        role: 'agent',
        privileged: false,
        grantPath: 'direct',
        grantedBy: 'owner-a',
      },
      {
        accountId: 'idp#owner-a',
        target: 'db',
        tool: '*',
        role: 'agent',
        privileged: false,
        grantPath: 'group',
      },
      { accountId: 'ghost', target: 'db', tool: '*', role: 'agent', privileged: false, grantPath: 'direct' },
    ],
    usage: [
      {
        accountId: 'k1',
        target: 'db',
        tool: 'query',
        firstUsedAt: '2026-07-02T00:00:00.000Z',
        lastUsedAt: '2026-09-30T00:00:00.000Z',
        calls: 10,
        denied: 1,
        firstLeaf: 3,
        lastLeaf: 90,
      },
      {
        accountId: 'idp#owner-a',
        target: 'db',
        tool: 'query',
        firstUsedAt: '2026-07-02T00:00:00.000Z',
        lastUsedAt: '2026-07-03T00:00:00.000Z',
        calls: 2,
        denied: 0,
        firstLeaf: 4,
        lastLeaf: 5,
      },
      {
        accountId: 'k9',
        target: 'db',
        tool: 'query',
        firstUsedAt: '2026-07-02T00:00:00.000Z',
        lastUsedAt: '2026-07-03T00:00:00.000Z',
        calls: 7,
        denied: 0,
        firstLeaf: 6,
        lastLeaf: 7,
      },
    ],
    credentialSpread: [{ accountId: 'k1', maxAddressesPerHour: 4, distinctAddresses: 9 }],
    targets: [{ name: 'db', owner: 'owner-a', privilegedTools: ['drop_table'] }],
    sources: [],
    settings: { ...DEFAULT_SETTINGS, dormantDays: 30, controlOwner: 'ciso', fallbackReviewer: 'sec' },
    ...over,
  };
}

test('snapshot: flags, never-dropped accounts, reconciliation and independent reviewers', (t) => {
  const s = buildSnapshot(input());
  const line = (acc: string, tool = '*') => s.lines.find((l) => l.accountId === acc && l.tool === tool)!;
  t.deepEqual(line('k1').flags, ['shared_credential']);
  t.is(line('k1').callsInPeriod, 10);
  t.deepEqual(line('k1').evidenceRefs, [3, 90]);
  t.deepEqual(line('k1', 'drop_table').flags, [
    'dormant',
    'shared_credential',
    'privileged',
    'excessive',
    'no_justification',
  ]);
  t.deepEqual(
    line('k2').flags,
    ['orphaned', 'dormant', 'new'],
    'no person = orphaned; unused for 61 days; created in the period = new',
  );
  t.deepEqual(line('idp#owner-a').flags, ['dormant', 'new'], 'last use 89 days before the snapshot');
  t.is(line('idp#owner-a').daysInactive, 90);
  // The target owner reviews, except her own access (→ fallback) and the grant she made (→ fallback).
  t.is(line('k1').reviewer, 'owner-a');
  t.is(line('idp#owner-a').reviewer, 'sec');
  t.is(line('k2').reviewer, 'sec');
  t.deepEqual(
    s.independence
      .filter((c) => c.conflict)
      .map((c) => c.conflict)
      .sort(),
    ['grantor', 'self_review'],
  );
  // An account with no entitlement is a line of its own; an entitlement of an unknown account
  // and use without an entitlement are counted, not lost.
  t.is(line('k3', '').role, '(none)');
  t.is(s.totals.unattributedEntitlements, 1);
  t.deepEqual(
    s.unmatchedUsage.map((u) => u.accountId),
    ['k9'],
  );
  const report = buildAccessReview({
    campaignId: 'c1',
    generatorVersion: '1',
    launch: s,
    decisions: [],
    reassignments: [],
    signoffs: [],
    runExceptions: [],
  });
  t.true(report.scope.controlTotals.reconciles);
  t.is(report.summary.identities.total, 4);
  t.true(report.exceptions.some((e) => e.kind === 'unmatched_usage' && e.detail.includes('k9')));
  t.true(report.exceptions.some((e) => e.kind === 'unattributed_entitlement'));
  // The same input gives the same bytes; a changed fact changes the hash.
  t.is(
    accessReviewBytes(report).hash,
    accessReviewBytes(
      buildAccessReview({
        campaignId: 'c1',
        generatorVersion: '1',
        launch: buildSnapshot(input()),
        decisions: [],
        reassignments: [],
        signoffs: [],
        runExceptions: [],
      }),
    ).hash,
  );
  const other = buildSnapshot(input({ usage: input().usage.map((u) => ({ ...u, calls: u.calls + 1 })) }));
  t.not(other.hash, s.hash);
  // New/removed against a previous review.
  const next = buildSnapshot(
    input({
      previous: {
        reportId: 'AR-prev',
        lines: [
          ...s.lines.filter((l) => l.accountId !== 'k2'),
          {
            itemId: 'E-gone',
            accountId: 'kx',
            subject: 'old',
            target: 'db',
            entitlement: 'role agent: db / all tools',
          },
        ],
      },
    }),
  );
  t.deepEqual(
    next.removed.map((r) => r.itemId),
    ['E-gone'],
  );
  t.deepEqual(
    next.lines.filter((l) => l.change === 'new').map((l) => l.accountId),
    ['k2'],
  );
});

test('decisions: assigned reviewer only, never own access, rationale for flagged/privileged/revoke', (t) => {
  const s = buildSnapshot(input());
  const k1 = s.lines.find((l) => l.accountId === 'k1' && l.tool === '*')!;
  const d = (over: Partial<Decision>): Decision => ({
    itemId: k1.itemId,
    decision: 'keep',
    rationale: '',
    decidedBy: 'owner-a',
    decidedAt: '2026-10-02T00:00:00.000Z',
    ...over,
  });
  const code = (fn: () => void) => (t.throws(fn, { instanceOf: ReviewRuleError }) as ReviewRuleError).code;
  t.is(
    code(() => checkDecision(s, [], d({ decidedBy: 'sec', rationale: 'x'.repeat(20) }))),
    'not_assigned',
  );
  t.is(
    code(() => checkDecision(s, [], d({ rationale: 'approved' }))),
    'rationale_required',
    'flagged line: "approved" is no reason',
  );
  t.notThrows(() =>
    checkDecision(s, [], d({ rationale: 'Shared by the three CI runners by design; ticket SEC-9.' })),
  );
  t.is(
    code(() =>
      checkDecision(s, [], d({ decision: 'modify', rationale: 'Too broad for what it does today.' })),
    ),
    'modify_target_required',
  );
  const own = s.lines.find((l) => l.accountId === 'idp#owner-a')!;
  t.is(
    code(() =>
      checkDecision(
        s,
        [
          {
            itemId: own.itemId,
            from: 'sec',
            to: 'owner-a',
            by: 'x',
            at: '2026-10-02T00:00:00.000Z',
            reason: 'mistake',
          },
        ],
        { ...d({}), itemId: own.itemId, rationale: 'x'.repeat(20) },
      ),
    ),
    'self_review',
  );
  t.is(
    code(() =>
      checkReassignment(s, [], {
        itemId: own.itemId,
        from: 'sec',
        to: 'owner-a',
        by: 'ciso',
        at: '2026-10-02T00:00:00.000Z',
        reason: 'owner asked',
      }),
    ),
    'self_review',
  );
  t.notThrows(() =>
    checkReassignment(s, [], {
      itemId: own.itemId,
      from: 'sec',
      to: 'ciso',
      by: 'ciso',
      at: '2026-10-02T00:00:00.000Z',
      reason: 'security team busy',
    }),
  );
});

test('sign-off: reviewers first, then the control owner; seals bind signer, time and data', (t) => {
  const s = buildSnapshot(input());
  const decisions: Decision[] = s.lines.map((l) => ({
    itemId: l.itemId,
    decision: 'keep',
    rationale: 'Reviewed with the owner; still needed for the nightly job.',
    decidedBy: l.reviewer,
    decidedAt: '2026-10-03T00:00:00.000Z',
  }));
  const state = {
    decisions: decisions.slice(1),
    reassignments: [],
    signoffs: [] as ReturnType<typeof makeSignoff>[],
  };
  const who = (signer: string, role: 'reviewer' | 'control_owner' = 'reviewer') => ({
    role,
    signer,
    signedAt: '2026-10-04T00:00:00.000Z',
  });
  const firstReviewer = s.lines[0]!.reviewer;
  t.is(
    (
      t.throws(() => makeSignoff('c1', s, state, who(firstReviewer)), {
        instanceOf: ReviewRuleError,
      }) as ReviewRuleError
    ).code,
    'not_complete',
  );
  state.decisions = decisions;
  t.is(
    (
      t.throws(() => makeSignoff('c1', s, state, who('ciso', 'control_owner')), {
        instanceOf: ReviewRuleError,
      }) as ReviewRuleError
    ).code,
    'not_complete',
  );
  for (const r of new Set(s.lines.map((l) => l.reviewer)))
    state.signoffs.push(makeSignoff('c1', s, state, who(r)));
  const owner = makeSignoff('c1', s, state, who('ciso', 'control_owner'));
  state.signoffs.push(owner);
  t.true(verifySeal('c1', owner));
  t.false(verifySeal('c2', owner), 'bound to the campaign');
  t.false(verifySeal('c1', { ...owner, signedAt: '2026-10-05T00:00:00.000Z' }));
  t.false(verifySeal('c1', { ...owner, reviewDataHash: '0'.repeat(64) }));
  const report = buildAccessReview({
    campaignId: 'c1',
    generatorVersion: '1',
    launch: s,
    ...state,
    runExceptions: [],
  });
  t.is(report.status, 'completed');
  t.is(report.summary.completionPercent, 100);
  t.is(owner.reviewDataHash, report.reviewDataHash);
  const csv = accessReviewCsvs(report)['entitlements.csv']!.split('\r\n');
  t.is(csv.length, report.lines.length + 2);
});

test('CLI: a bad period or nothing to write is a usage error (exit 2)', async (t) => {
  const { main } = await import('../server/cli/main.ts');
  const err: string[] = [];
  const io = { out: () => {}, err: (l: string) => err.push(l), env: {}, cwd: '/' };
  t.is(await main(['report', 'access-review', '--period', '2026-Q9', '--json'], io), 2);
  t.regex(err.join('\n'), /expected YYYY-Qn/);
  t.is(await main(['report', 'activity', '--period', '2026-Q3'], io), 2);
  t.regex(err.join('\n'), /nothing to write/);
  t.is(await main(['report', 'changes', '--period', '2026-08', '--json', '--campaign', 'x'], io), 2);
});
