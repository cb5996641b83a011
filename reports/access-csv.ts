// CSV twins of the access-review tables, with the columns the reference lists for the
// entitlement table. Every cell goes through the formula-injection guard in csv.ts.
import type { AccessReviewData, ReportLine } from './access-review.ts';
import { toCsv, type CsvColumn } from './csv.ts';

export const ENTITLEMENT_DICTIONARY: Array<{
  header: string;
  meaning: string;
  value: (l: ReportLine) => unknown;
}> = [
  {
    header: 'item_id',
    meaning: 'Stable line id: the same account × entitlement has the same id in every review.',
    value: (l) => l.itemId,
  },
  {
    header: 'target',
    meaning: 'System: the MCP target, or "auditgate" for roles on the service itself.',
    value: (l) => l.target,
  },
  {
    header: 'account_id',
    meaning: 'Account as the system knows it: API key id, or issuer#subject for IdP accounts.',
    value: (l) => l.accountId,
  },
  {
    header: 'account_name',
    meaning: 'Subject recorded in the audit log for this account.',
    value: (l) => l.subject,
  },
  { header: 'person', meaning: 'Accountable person; blank = orphaned.', value: (l) => l.person },
  {
    header: 'identity_type',
    meaning: 'human, service (non-interactive account) or agent (MCP client).',
    value: (l) => l.identityType,
  },
  { header: 'role', meaning: 'Role through which the entitlement is held.', value: (l) => l.role },
  {
    header: 'tool',
    meaning: 'Tool on the target; * = every tool; blank = a role on the service.',
    value: (l) => l.tool,
  },
  {
    header: 'entitlement',
    meaning: 'Human-readable entitlement (role, target and tool).',
    value: (l) => l.entitlement,
  },
  {
    header: 'privileged',
    meaning: 'true for administrative roles and privileged tools.',
    value: (l) => l.privileged,
  },
  { header: 'grant_path', meaning: 'direct (on the account), group, or role.', value: (l) => l.grantPath },
  { header: 'grant_ref', meaning: 'Rule, group or role mapping that grants it.', value: (l) => l.grantRef },
  { header: 'granted_at', meaning: 'When the grant was made (UTC).', value: (l) => l.grantedAt },
  { header: 'granted_by', meaning: 'Who made the grant.', value: (l) => l.grantedBy },
  {
    header: 'approval_ref',
    meaning: 'Approval or ticket reference for the grant.',
    value: (l) => l.approvalRef,
  },
  {
    header: 'auth_method',
    meaning: 'How the account authenticates (api_key, oidc, session…).',
    value: (l) => l.authMethod,
  },
  {
    header: 'mfa',
    meaning: 'true/false when the identity provider tells; blank when unknown or not applicable.',
    value: (l) => l.mfa,
  },
  { header: 'created_at', meaning: 'When the account was created (UTC).', value: (l) => l.createdAt },
  {
    header: 'first_used_at',
    meaning: 'First use in the period, from the audit log.',
    value: (l) => l.firstUsedAt,
  },
  {
    header: 'last_used_at',
    meaning: 'Last use in the period, from the audit log.',
    value: (l) => l.lastUsedAt,
  },
  {
    header: 'days_inactive',
    meaning: 'Whole days from last use (or creation) to the snapshot time.',
    value: (l) => l.daysInactive,
  },
  {
    header: 'calls_in_period',
    meaning: 'Requests in the period under this entitlement.',
    value: (l) => l.callsInPeriod,
  },
  {
    header: 'denied_in_period',
    meaning: 'Requests refused by policy in the period.',
    value: (l) => l.deniedInPeriod,
  },
  {
    header: 'flags',
    meaning: 'orphaned, dormant, shared_credential, privileged, new, excessive, no_justification.',
    value: (l) => l.flags.join(';'),
  },
  { header: 'change_since_last_review', meaning: 'new, unchanged, or first_review.', value: (l) => l.change },
  {
    header: 'reviewer',
    meaning: 'Reviewer the line is assigned to (after reassignments).',
    value: (l) => l.reviewer,
  },
  { header: 'decision', meaning: 'keep, revoke, modify, or pending.', value: (l) => l.decision },
  {
    header: 'rationale',
    meaning: 'Reviewer’s reason (required for privileged, flagged, revoke and modify lines).',
    value: (l) => l.rationale,
  },
  { header: 'decided_by', meaning: 'Who decided.', value: (l) => l.decidedBy },
  { header: 'decided_at', meaning: 'When (UTC).', value: (l) => l.decidedAt },
  { header: 'modify_to', meaning: 'For modify: what the access becomes.', value: (l) => l.modifyTo },
  {
    header: 'remediation_ref',
    meaning: 'Reference of the revocation/change (audit-log leaf or ticket).',
    value: (l) => l.remediationRef,
  },
  {
    header: 'remediated_at',
    meaning: 'When the revocation/change was carried out.',
    value: (l) => l.remediatedAt,
  },
  { header: 'sla_due_at', meaning: 'Decision time + remediation SLA.', value: (l) => l.slaDueAt },
  {
    header: 'sla_met',
    meaning: 'true/false once carried out; blank while open or not needed.',
    value: (l) => l.slaMet,
  },
  {
    header: 'verified_absent_at',
    meaning: 'Completion snapshot time at which a revoked line was confirmed gone.',
    value: (l) => l.verifiedAbsentAt,
  },
  {
    header: 'evidence_refs',
    meaning: 'Audit-log leaf indices of first and last use.',
    value: (l) => l.evidenceRefs.join(';'),
  },
];

const lineColumns: CsvColumn<ReportLine>[] = ENTITLEMENT_DICTIONARY.map((d) => ({
  header: d.header,
  value: d.value,
}));

/** File name → CSV text. */
export function accessReviewCsvs(data: AccessReviewData): Record<string, string> {
  const byId = new Map(data.lines.map((l) => [l.itemId, l]));
  const privileged = data.privilegedItemIds.map((id) => byId.get(id)!).filter(Boolean);
  return {
    'entitlements.csv': toCsv(lineColumns, data.lines),
    'privileged.csv': toCsv(lineColumns, privileged),
    'exceptions.csv': toCsv(
      [
        { header: 'kind', value: (e) => e.kind },
        { header: 'item_id', value: (e) => e.itemId },
        { header: 'detail', value: (e) => e.detail },
      ],
      data.exceptions,
    ),
    'removed.csv': toCsv(
      [
        { header: 'item_id', value: (r) => r.itemId },
        { header: 'account_id', value: (r) => r.accountId },
        { header: 'account_name', value: (r) => r.subject },
        { header: 'target', value: (r) => r.target },
        { header: 'entitlement', value: (r) => r.entitlement },
      ],
      data.populationChanges.removed,
    ),
    'reviewers.csv': toCsv(
      [
        { header: 'reviewer', value: (r) => r.reviewer },
        { header: 'lines', value: (r) => r.lines },
        { header: 'privileged', value: (r) => r.privileged },
        { header: 'decided', value: (r) => r.decided },
        { header: 'signed_off', value: (r) => r.signedOff },
      ],
      data.reviewers,
    ),
    'decisions.csv': toCsv(
      [
        { header: 'decided_at', value: (d) => d.decidedAt },
        { header: 'item_id', value: (d) => d.itemId },
        { header: 'decided_by', value: (d) => d.decidedBy },
        { header: 'decision', value: (d) => d.decision },
        { header: 'rationale', value: (d) => d.rationale },
        { header: 'modify_to', value: (d) => d.modifyTo },
      ],
      data.decisionHistory,
    ),
  };
}
