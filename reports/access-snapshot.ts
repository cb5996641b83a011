// Freezing the population: every account that holds access × every effective entitlement, with
// use from the audit log, flags, and an independent reviewer. Pure: the server supplies rows.
import { canonicalBytes, sha256Hex } from './canonical.ts';
import type { Period } from './period.ts';
import { daysBetween } from './period.ts';
import type {
  AccessReviewSource,
  CredentialSpreadRecord,
  EntitlementRecord,
  Flag,
  IdentityRecord,
  IdentityType,
  LogCheckpointRef,
  ReviewSettings,
  SnapshotLine,
  SourceDescription,
  TargetRecord,
  UsageRecord,
} from './access-types.ts';

export interface SnapshotInput {
  period: Period;
  asOf: string;
  checkpoint: LogCheckpointRef;
  identities: IdentityRecord[];
  entitlements: EntitlementRecord[];
  usage: UsageRecord[];
  credentialSpread: CredentialSpreadRecord[];
  targets: TargetRecord[];
  sources: SourceDescription[];
  settings: ReviewSettings;
  /** Item ids (and what they were) from the previous review's launch snapshot, when there was one. */
  previous?: {
    reportId: string;
    lines: Array<Pick<SnapshotLine, 'itemId' | 'accountId' | 'subject' | 'target' | 'entitlement'>>;
  };
}

export interface RemovedLine {
  itemId: string;
  accountId: string;
  subject: string;
  target: string;
  entitlement: string;
}

export interface IndependenceCheck {
  itemId: string;
  /** The reviewer first considered (target owner, then manager, then fallbacks). */
  candidate: string;
  conflict: 'self_review' | 'grantor' | null;
  assigned: string;
  /** true when no independent reviewer could be found (an exception). */
  unresolved: boolean;
}

export interface ControlTotals {
  identitiesFetched: number;
  entitlementsFetched: number;
  usageRowsFetched: number;
  /** Lines in the snapshot: one per entitlement (every fetched entitlement becomes a line). */
  lines: number;
  /** Identities without any entitlement appear as a line of their own, never dropped. */
  identitiesWithoutEntitlement: number;
  /** Entitlements whose account is not in the population (listed as exceptions, not lines). */
  unattributedEntitlements: number;
  /** Usage that matched no entitlement (access used without a grant on record). */
  unmatchedUsageRows: number;
}

export interface AccessSnapshot {
  period: Period;
  asOf: string;
  checkpoint: LogCheckpointRef;
  settings: ReviewSettings;
  sources: SourceDescription[];
  lines: SnapshotLine[];
  removed: RemovedLine[];
  independence: IndependenceCheck[];
  unmatchedUsage: UsageRecord[];
  identityCounts: Record<IdentityType, number>;
  targets: TargetRecord[];
  previousReportId: string | null;
  totals: ControlTotals;
  /** SHA-256 of the canonical snapshot (everything above). */
  hash: string;
}

export async function collectSnapshotInput(
  source: AccessReviewSource,
  opts: { period: Period; asOf?: string; settings: ReviewSettings; previous?: SnapshotInput['previous'] },
): Promise<SnapshotInput> {
  const asOf = opts.asOf ?? opts.period.end;
  const checkpoint = await source.checkpoint(asOf);
  const ids = await source.identities(asOf, opts.period, checkpoint);
  const ents = await source.entitlements(ids.rows, asOf);
  const usage = await source.usage(opts.period, checkpoint);
  const spread = await source.credentialSpread(opts.period, checkpoint);
  const targets = await source.targets();
  return {
    period: opts.period,
    asOf,
    checkpoint,
    identities: ids.rows,
    entitlements: ents.rows,
    usage: usage.rows,
    credentialSpread: spread.rows,
    targets,
    sources: [...ids.sources, ...ents.sources, ...usage.sources, ...spread.sources],
    settings: opts.settings,
    previous: opts.previous,
  };
}

/** Stable across reviews: the same account × entitlement always gets the same id. */
export function itemIdFor(accountId: string, target: string, role: string, tool: string): string {
  return `E-${sha256Hex(`${accountId}\u0000${target}\u0000${role}\u0000${tool}`).slice(0, 12)}`;
}

const byString = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

function describeEntitlement(e: { role: string; target: string; tool: string }): string {
  if (!e.tool) return `role ${e.role}`;
  return `role ${e.role}: ${e.target} / ${e.tool === '*' ? 'all tools' : e.tool}`;
}

/** Which reviewer gets a line: target owner, then the person's manager, then fallbacks — never the subject or the grantor. */
export function assignReviewer(
  line: Pick<SnapshotLine, 'itemId' | 'subject' | 'person' | 'grantedBy' | 'target'>,
  candidates: Array<string | undefined>,
): IndependenceCheck {
  const conflicted = (r: string): IndependenceCheck['conflict'] => {
    if (r === line.subject || (line.person !== null && r === line.person)) return 'self_review';
    if (line.grantedBy !== null && r === line.grantedBy) return 'grantor';
    return null;
  };
  const list = candidates.filter((c): c is string => !!c);
  const first = list[0]!;
  const firstConflict = conflicted(first);
  const ok = list.find((c) => conflicted(c) === null);
  return {
    itemId: line.itemId,
    candidate: first,
    conflict: firstConflict,
    assigned: ok ?? first,
    unresolved: ok === undefined,
  };
}

export function buildSnapshot(input: SnapshotInput): AccessSnapshot {
  const { settings, asOf } = input;
  const targets = new Map(input.targets.map((t) => [t.name, t]));
  const identities = new Map(input.identities.map((i) => [i.accountId, i]));
  const spread = new Map(input.credentialSpread.map((s) => [s.accountId, s]));
  const previous = input.previous ? new Set(input.previous.lines.map((l) => l.itemId)) : undefined;

  // Usage by account → target → tool; an entitlement to "*" matches every tool of its target.
  const usageBy = new Map<string, UsageRecord[]>();
  for (const u of input.usage) {
    const k = `${u.accountId}\u0000${u.target}`;
    const arr = usageBy.get(k) ?? [];
    arr.push(u);
    usageBy.set(k, arr);
  }
  const matchedUsage = new Set<UsageRecord>();

  const ents = [...input.entitlements];
  const entitled = new Set(ents.map((e) => e.accountId));
  // An account with no effective entitlement still belongs in the population (never dropped).
  for (const i of input.identities) {
    if (!entitled.has(i.accountId)) {
      ents.push({
        accountId: i.accountId,
        target: 'auditgate',
        tool: '',
        role: '(none)',
        privileged: false,
        grantPath: 'direct',
      });
    }
  }

  const lines: SnapshotLine[] = [];
  const unattributed: EntitlementRecord[] = [];
  const independence: IndependenceCheck[] = [];
  for (const e of ents) {
    const id = identities.get(e.accountId);
    if (!id) {
      unattributed.push(e);
      continue;
    }
    const itemId = itemIdFor(e.accountId, e.target, e.role, e.tool);
    const candidates = (usageBy.get(`${e.accountId}\u0000${e.target}`) ?? []).filter(
      (u) => e.tool === '*' || u.tool === e.tool || (e.tool === '' && u.tool === ''),
    );
    let first: UsageRecord | undefined;
    let last: UsageRecord | undefined;
    let calls = 0;
    let denied = 0;
    for (const u of candidates) {
      matchedUsage.add(u);
      calls += u.calls;
      denied += u.denied;
      if (!first || u.firstUsedAt < first.firstUsedAt) first = u;
      if (!last || u.lastUsedAt > last.lastUsedAt) last = u;
    }
    const lastUsedAt = last?.lastUsedAt ?? null;
    const activityBase = lastUsedAt ?? id.createdAt ?? null;
    const daysInactive = activityBase ? Math.max(0, daysBetween(activityBase, asOf)) : null;
    const target = targets.get(e.target);
    const privileged =
      e.privileged || (e.tool !== '' && e.tool !== '*' && !!target?.privilegedTools?.includes(e.tool));
    const isNew = previous ? !previous.has(itemId) : !!id.createdAt && id.createdAt >= input.period.start;

    const flags: Flag[] = [];
    if (!id.person) flags.push('orphaned');
    if (daysInactive !== null && daysInactive >= settings.dormantDays) flags.push('dormant');
    else if (daysInactive === null) flags.push('dormant'); // no creation date and never used: cannot show recent need
    const sp = spread.get(e.accountId);
    if (sp && sp.maxAddressesPerHour >= settings.sharedAddressThreshold) flags.push('shared_credential');
    if (privileged) flags.push('privileged');
    if (isNew) flags.push('new');
    if (privileged && calls === 0) flags.push('excessive');
    if (privileged && !e.approvalRef) flags.push('no_justification');

    const base = {
      itemId,
      subject: id.subject,
      person: id.person ?? null,
      grantedBy: e.grantedBy ?? id.createdBy ?? null,
      target: e.target,
    };
    const check = assignReviewer(base, [
      target?.owner,
      id.manager,
      settings.fallbackReviewer,
      settings.controlOwner,
    ]);
    independence.push(check);
    lines.push({
      itemId,
      target: e.target,
      accountId: e.accountId,
      subject: id.subject,
      person: id.person ?? null,
      identityType: id.type,
      role: e.role,
      tool: e.tool,
      entitlement: describeEntitlement(e),
      privileged,
      grantPath: e.grantPath,
      grantRef: e.grantRef ?? null,
      grantedAt: e.grantedAt ?? id.createdAt ?? null,
      grantedBy: base.grantedBy,
      approvalRef: e.approvalRef ?? null,
      authMethod: id.authMethod,
      mfa: id.mfa ?? null,
      createdAt: id.createdAt ?? null,
      firstUsedAt: first?.firstUsedAt ?? null,
      lastUsedAt,
      daysInactive,
      callsInPeriod: calls,
      deniedInPeriod: denied,
      flags,
      change: previous ? (isNew ? 'new' : 'unchanged') : 'first_review',
      reviewer: check.assigned,
      evidenceRefs: [
        ...new Set([first?.firstLeaf, last?.lastLeaf].filter((x): x is number => x !== undefined)),
      ],
    });
  }
  lines.sort(
    (a, b) => byString(a.target, b.target) || byString(a.subject, b.subject) || byString(a.itemId, b.itemId),
  );
  independence.sort((a, b) => byString(a.itemId, b.itemId));

  const present = new Set(lines.map((l) => l.itemId));
  const removed: RemovedLine[] = (input.previous?.lines ?? [])
    .filter((l) => !present.has(l.itemId))
    .map((l) => ({
      itemId: l.itemId,
      accountId: l.accountId,
      subject: l.subject,
      target: l.target,
      entitlement: l.entitlement,
    }))
    .sort((a, b) => byString(a.itemId, b.itemId));

  // Requests without a tool name (initialize, lists, pings) are use of the target itself: they
  // need some entitlement on that target, not a particular one.
  const onTarget = new Set(lines.filter((l) => l.tool !== '').map((l) => `${l.accountId}\u0000${l.target}`));
  const unmatchedUsage = input.usage
    .filter(
      (u) => !matchedUsage.has(u) && !(u.tool === '' && onTarget.has(`${u.accountId}\u0000${u.target}`)),
    )
    .sort(
      (a, b) =>
        byString(a.accountId, b.accountId) || byString(a.target, b.target) || byString(a.tool, b.tool),
    );
  const identityCounts: Record<IdentityType, number> = { human: 0, service: 0, agent: 0 };
  for (const i of input.identities) identityCounts[i.type]++;

  const totals: ControlTotals = {
    identitiesFetched: input.identities.length,
    entitlementsFetched: input.entitlements.length,
    usageRowsFetched: input.usage.length,
    lines: lines.length,
    identitiesWithoutEntitlement: input.identities.filter((i) => !entitled.has(i.accountId)).length,
    unattributedEntitlements: unattributed.length,
    unmatchedUsageRows: unmatchedUsage.length,
  };
  const body = {
    period: input.period,
    asOf,
    checkpoint: input.checkpoint,
    settings,
    sources: input.sources,
    lines,
    removed,
    independence,
    unmatchedUsage,
    identityCounts,
    targets: [...input.targets].sort((a, b) => byString(a.name, b.name)),
    previousReportId: input.previous?.reportId ?? null,
    totals,
  };
  return { ...body, hash: sha256Hex(canonicalBytes(stripUndefined(body))) };
}

/** JSON round trip drops undefined members (optional fields of source rows) before hashing. */
export function stripUndefined<T>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T;
}
