// The access-review report: everything the PDF says, as one JSON object whose RFC 8785 bytes are
// hashed. Deterministic: the same snapshot and campaign state give the same bytes, so a re-run
// (or an auditor re-performing it) gets the same data hash.
import { canonicalBytes, sha256Hex } from './canonical.ts';
import type { AccessSnapshot, IndependenceCheck, RemovedLine } from './access-snapshot.ts';
import { stripUndefined } from './access-snapshot.ts';
import type { Decision, Reassignment, Signoff } from './campaign.ts';
import { currentReviewers, latestDecisions, rationaleRequired, reviewDataHash } from './campaign.ts';
import type { Flag, IdentityType, SnapshotLine, SourceDescription } from './access-types.ts';
import type { RunExceptionRecord } from './run-exceptions.ts';
import type { Period } from './period.ts';

export const ACCESS_REVIEW_SCHEMA = 'auditgate.access-review/1';

export const ACCESS_REVIEW_CONTROLS = [
  { id: 'CC6.1', topic: 'Logical access: authentication method and MFA of every account in scope' },
  {
    id: 'CC6.2',
    topic: 'Provisioning and removal of credentials, including agents, MCP clients and API keys',
  },
  { id: 'CC6.3', topic: 'Periodic review of access against least privilege, with independent reviewers' },
];

export interface ReportLine extends SnapshotLine {
  reviewer: string;
  decision: Decision['decision'] | 'pending';
  rationale: string | null;
  decidedBy: string | null;
  decidedAt: string | null;
  modifyTo: string | null;
  remediationRef: string | null;
  remediatedAt: string | null;
  slaDueAt: string | null;
  slaMet: boolean | null;
  verifiedAbsentAt: string | null;
}

export interface ReportException {
  kind:
    | 'undecided'
    | 'missing_rationale'
    | 'remediation_overdue'
    | 'remediation_not_verified'
    | 'reviewer_not_independent'
    | 'unmatched_usage'
    | 'unattributed_entitlement'
    | 'scheduled_run'
    | 'signoff_missing';
  itemId: string | null;
  detail: string;
}

export interface AccessReviewData {
  schema: typeof ACCESS_REVIEW_SCHEMA;
  reportId: string;
  campaignId: string;
  title: string;
  period: Period;
  asOf: string;
  generator: { name: string; version: string };
  controls: typeof ACCESS_REVIEW_CONTROLS;
  status: 'open' | 'completed';
  scope: {
    auditLog: { treeSize: number; rootHex: string };
    sources: SourceDescription[];
    snapshotHash: string;
    settings: AccessSnapshot['settings'];
    controlTotals: {
      rowsFetched: { identities: number; entitlements: number; usage: number };
      linesInReport: number;
      linesDecided: number;
      identitiesWithoutEntitlement: number;
      unattributedEntitlements: number;
      unmatchedUsageRows: number;
      /** rows fetched (entitlements − unattributed + identities without any) = lines in report. */
      reconciles: boolean;
    };
  };
  summary: {
    identities: Record<IdentityType, number> & { total: number };
    targets: number;
    entitlements: number;
    privileged: number;
    decisions: { keep: number; revoke: number; modify: number; pending: number };
    completionPercent: number;
    remediation: { required: number; withinSla: number; afterSla: number; open: number; verified: number };
    flags: Record<Flag, number>;
    exceptions: number;
  };
  populationChanges: {
    previousReportId: string | null;
    new: string[];
    removed: RemovedLine[];
    orphaned: string[];
    dormant: string[];
  };
  reviewers: Array<{
    reviewer: string;
    lines: number;
    privileged: number;
    decided: number;
    signedOff: boolean;
  }>;
  independence: {
    checks: number;
    conflictsAvoided: { selfReview: number; grantor: number };
    unresolved: IndependenceCheck[];
    reassignments: Reassignment[];
    reassignedToConflicted: number;
  };
  lines: ReportLine[];
  privilegedItemIds: string[];
  exceptions: ReportException[];
  launchVsCompletion: {
    launch: { asOf: string; lines: number; privileged: number; snapshotHash: string };
    completion: { asOf: string; lines: number; privileged: number; snapshotHash: string } | null;
    revokedVerifiedAbsent: number;
    revokedStillPresent: string[];
  };
  signoffs: Signoff[];
  reviewDataHash: string;
  decisionHistory: Decision[];
  unmatchedUsage: AccessSnapshot['unmatchedUsage'];
}

export interface AccessReviewInput {
  campaignId: string;
  generatorVersion: string;
  launch: AccessSnapshot;
  completion?: AccessSnapshot;
  decisions: Decision[];
  reassignments: Reassignment[];
  signoffs: Signoff[];
  runExceptions: RunExceptionRecord[];
}

const addDays = (isoTs: string, days: number) =>
  new Date(Date.parse(isoTs) + days * 86_400_000).toISOString();

export function buildAccessReview(input: AccessReviewInput): AccessReviewData {
  const { launch: snap } = input;
  const settings = snap.settings;
  const latest = latestDecisions(input.decisions);
  const reviewers = currentReviewers(snap, input.reassignments);
  const completionIds = input.completion ? new Set(input.completion.lines.map((l) => l.itemId)) : undefined;

  const lines: ReportLine[] = snap.lines.map((l) => {
    const d = latest.get(l.itemId);
    const needsChange = d && d.decision !== 'keep';
    const slaDueAt = needsChange ? addDays(d.decidedAt, settings.remediationSlaDays) : null;
    const slaMet = needsChange ? (d.remediatedAt ? d.remediatedAt <= slaDueAt! : null) : null;
    const verifiedAbsentAt =
      d?.decision === 'revoke' && input.completion && completionIds && !completionIds.has(l.itemId)
        ? input.completion.asOf
        : null;
    return {
      ...l,
      reviewer: reviewers.get(l.itemId) ?? l.reviewer,
      decision: d?.decision ?? 'pending',
      rationale: d?.rationale ?? null,
      decidedBy: d?.decidedBy ?? null,
      decidedAt: d?.decidedAt ?? null,
      modifyTo: d?.modifyTo ?? null,
      remediationRef: d?.remediationRef ?? null,
      remediatedAt: d?.remediatedAt ?? null,
      slaDueAt,
      slaMet,
      verifiedAbsentAt,
    };
  });

  const exceptions: ReportException[] = [];
  const asOfEnd = input.completion?.asOf ?? snap.asOf;
  for (const l of lines) {
    if (l.decision === 'pending') {
      exceptions.push({
        kind: 'undecided',
        itemId: l.itemId,
        detail: `no decision recorded (reviewer ${l.reviewer})`,
      });
      continue;
    }
    if (rationaleRequired(l, l.decision) && (l.rationale ?? '').trim().length === 0) {
      exceptions.push({
        kind: 'missing_rationale',
        itemId: l.itemId,
        detail: `${l.decision} without rationale`,
      });
    }
    if (l.slaDueAt && !l.remediatedAt && asOfEnd > l.slaDueAt) {
      exceptions.push({
        kind: 'remediation_overdue',
        itemId: l.itemId,
        detail: `${l.decision} due ${l.slaDueAt}, not carried out`,
      });
    } else if (l.slaDueAt && l.remediatedAt && l.slaMet === false) {
      exceptions.push({
        kind: 'remediation_overdue',
        itemId: l.itemId,
        detail: `carried out ${l.remediatedAt}, after the SLA (${l.slaDueAt})`,
      });
    }
    if (l.decision === 'revoke' && input.completion && !l.verifiedAbsentAt) {
      exceptions.push({
        kind: 'remediation_not_verified',
        itemId: l.itemId,
        detail: 'still present in the completion snapshot',
      });
    }
  }
  for (const c of snap.independence.filter((c) => c.unresolved)) {
    exceptions.push({
      kind: 'reviewer_not_independent',
      itemId: c.itemId,
      detail: `no independent reviewer; assigned to ${c.assigned}`,
    });
  }
  for (const u of snap.unmatchedUsage) {
    exceptions.push({
      kind: 'unmatched_usage',
      itemId: null,
      detail: `${u.accountId} used ${u.target}/${u.tool || '(service)'} ${u.calls}× without an entitlement on record`,
    });
  }
  if (snap.totals.unattributedEntitlements > 0) {
    exceptions.push({
      kind: 'unattributed_entitlement',
      itemId: null,
      detail: `${snap.totals.unattributedEntitlements} entitlement(s) reference accounts outside the population`,
    });
  }
  for (const r of input.runExceptions) {
    exceptions.push({
      kind: 'scheduled_run',
      itemId: null,
      detail: `${r.job} run expected ${r.expectedAt} was ${r.status}: ${r.detail}`,
    });
  }

  const decisions = { keep: 0, revoke: 0, modify: 0, pending: 0 };
  for (const l of lines) decisions[l.decision]++;
  const needRemediation = lines.filter((l) => l.decision === 'revoke' || l.decision === 'modify');
  const flagCounts = Object.fromEntries(
    (
      [
        'orphaned',
        'dormant',
        'shared_credential',
        'privileged',
        'new',
        'excessive',
        'no_justification',
      ] as Flag[]
    ).map((f) => [f, lines.filter((l) => l.flags.includes(f)).length]),
  ) as Record<Flag, number>;

  const signedReviewers = new Set(input.signoffs.filter((s) => s.role === 'reviewer').map((s) => s.signer));
  const byReviewer = new Map<string, ReportLine[]>();
  for (const l of lines) byReviewer.set(l.reviewer, [...(byReviewer.get(l.reviewer) ?? []), l]);
  const reviewerRows = [...byReviewer]
    .map(([reviewer, ls]) => ({
      reviewer,
      lines: ls.length,
      privileged: ls.filter((l) => l.privileged).length,
      decided: ls.filter((l) => l.decision !== 'pending').length,
      signedOff: signedReviewers.has(reviewer),
    }))
    .sort((a, b) => (a.reviewer < b.reviewer ? -1 : 1));
  const complete = decisions.pending === 0;
  const ownerSigned = input.signoffs.some((s) => s.role === 'control_owner');
  if (complete) {
    for (const r of reviewerRows.filter((r) => !r.signedOff)) {
      exceptions.push({
        kind: 'signoff_missing',
        itemId: null,
        detail: `reviewer ${r.reviewer} has not signed off`,
      });
    }
    if (!ownerSigned)
      exceptions.push({ kind: 'signoff_missing', itemId: null, detail: 'control owner has not signed off' });
  }

  const distinctAccounts = new Set(lines.map((l) => l.accountId));
  const fetchedLines =
    snap.totals.entitlementsFetched -
    snap.totals.unattributedEntitlements +
    snap.totals.identitiesWithoutEntitlement;
  const reassignedToConflicted = input.reassignments.filter((r) => {
    const l = snap.lines.find((x) => x.itemId === r.itemId);
    return !!l && (r.to === l.subject || r.to === l.person || r.to === l.grantedBy);
  }).length;
  const privilegedLines = lines.filter((l) => l.privileged);

  const data: AccessReviewData = {
    schema: ACCESS_REVIEW_SCHEMA,
    // Campaign reports carry the campaign's id; a report of a bare snapshot carries its hash.
    reportId: `AR-${snap.period.label}-${input.campaignId.startsWith('snapshot-') ? input.campaignId.slice(9, 17) : input.campaignId.slice(0, 8)}`,
    campaignId: input.campaignId,
    title: `User access review — ${snap.period.label}`,
    period: snap.period,
    asOf: snap.asOf,
    generator: { name: 'auditgate', version: input.generatorVersion },
    controls: ACCESS_REVIEW_CONTROLS,
    status: complete && ownerSigned ? 'completed' : 'open',
    scope: {
      auditLog: { treeSize: snap.checkpoint.size, rootHex: snap.checkpoint.root },
      sources: snap.sources,
      snapshotHash: snap.hash,
      settings,
      controlTotals: {
        rowsFetched: {
          identities: snap.totals.identitiesFetched,
          entitlements: snap.totals.entitlementsFetched,
          usage: snap.totals.usageRowsFetched,
        },
        linesInReport: lines.length,
        linesDecided: lines.length - decisions.pending,
        identitiesWithoutEntitlement: snap.totals.identitiesWithoutEntitlement,
        unattributedEntitlements: snap.totals.unattributedEntitlements,
        unmatchedUsageRows: snap.totals.unmatchedUsageRows,
        reconciles: fetchedLines === lines.length && distinctAccounts.size === snap.totals.identitiesFetched,
      },
    },
    summary: {
      identities: { ...snap.identityCounts, total: snap.totals.identitiesFetched },
      targets: new Set(lines.filter((l) => l.tool !== '').map((l) => l.target)).size,
      entitlements: lines.length,
      privileged: privilegedLines.length,
      decisions,
      completionPercent: lines.length
        ? Math.floor(((lines.length - decisions.pending) * 1000) / lines.length) / 10
        : 100,
      remediation: {
        required: needRemediation.length,
        withinSla: needRemediation.filter((l) => l.slaMet === true).length,
        afterSla: needRemediation.filter((l) => l.slaMet === false).length,
        open: needRemediation.filter((l) => !l.remediatedAt).length,
        verified: needRemediation.filter((l) => l.verifiedAbsentAt !== null).length,
      },
      flags: flagCounts,
      exceptions: exceptions.length,
    },
    populationChanges: {
      previousReportId: snap.previousReportId,
      new: lines.filter((l) => l.flags.includes('new')).map((l) => l.itemId),
      removed: snap.removed,
      orphaned: lines.filter((l) => l.flags.includes('orphaned')).map((l) => l.itemId),
      dormant: lines.filter((l) => l.flags.includes('dormant')).map((l) => l.itemId),
    },
    reviewers: reviewerRows,
    independence: {
      checks: snap.independence.length,
      conflictsAvoided: {
        selfReview: snap.independence.filter((c) => c.conflict === 'self_review' && !c.unresolved).length,
        grantor: snap.independence.filter((c) => c.conflict === 'grantor' && !c.unresolved).length,
      },
      unresolved: snap.independence.filter((c) => c.unresolved),
      reassignments: [...input.reassignments].sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0)),
      reassignedToConflicted,
    },
    lines,
    privilegedItemIds: privilegedLines.map((l) => l.itemId),
    exceptions,
    launchVsCompletion: {
      launch: {
        asOf: snap.asOf,
        lines: snap.lines.length,
        privileged: snap.lines.filter((l) => l.privileged).length,
        snapshotHash: snap.hash,
      },
      completion: input.completion
        ? {
            asOf: input.completion.asOf,
            lines: input.completion.lines.length,
            privileged: input.completion.lines.filter((l) => l.privileged).length,
            snapshotHash: input.completion.hash,
          }
        : null,
      revokedVerifiedAbsent: lines.filter((l) => l.decision === 'revoke' && l.verifiedAbsentAt).length,
      revokedStillPresent: input.completion
        ? lines.filter((l) => l.decision === 'revoke' && !l.verifiedAbsentAt).map((l) => l.itemId)
        : [],
    },
    signoffs: [...input.signoffs].sort((a, b) =>
      a.signedAt < b.signedAt ? -1 : a.signedAt > b.signedAt ? 1 : 0,
    ),
    reviewDataHash: reviewDataHash(snap, input.decisions),
    decisionHistory: [...input.decisions].sort((a, b) =>
      a.decidedAt < b.decidedAt ? -1 : a.decidedAt > b.decidedAt ? 1 : a.itemId < b.itemId ? -1 : 1,
    ),
    unmatchedUsage: snap.unmatchedUsage,
  };
  return stripUndefined(data);
}

export function accessReviewBytes(data: AccessReviewData): { bytes: Buffer; hash: string } {
  const bytes = canonicalBytes(data);
  return { bytes, hash: sha256Hex(bytes) };
}
