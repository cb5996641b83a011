// The review workflow on a frozen snapshot: reassignments with a trail, keep/revoke/modify
// decisions with the rationale rules, and sealed sign-offs. Pure functions that validate and
// compute; the server stores the results and records each step in the audit log.
import { canonicalBytes, sha256Hex } from './canonical.ts';
import type { AccessSnapshot } from './access-snapshot.ts';
import { assignReviewer } from './access-snapshot.ts';
import type { SnapshotLine } from './access-types.ts';

export type DecisionKind = 'keep' | 'revoke' | 'modify';

export interface Decision {
  itemId: string;
  decision: DecisionKind;
  rationale: string;
  decidedBy: string;
  decidedAt: string;
  /** For modify: what the access becomes. */
  modifyTo?: string;
  /** Change ticket / audit-log leaf of the revocation or modification, once carried out. */
  remediationRef?: string;
  remediatedAt?: string;
}

export interface Reassignment {
  itemId: string;
  from: string;
  to: string;
  by: string;
  at: string;
  reason: string;
}

export type SignoffRole = 'reviewer' | 'control_owner';

export interface Signoff {
  role: SignoffRole;
  signer: string;
  signedAt: string;
  statement: string;
  /** The review data hash the signer attested (snapshot + decisions at the time). */
  reviewDataHash: string;
  /** SHA-256 over the canonical signed fields (everything above). */
  seal: string;
}

export class ReviewRuleError extends Error {
  override name = 'ReviewRuleError';
  constructor(
    message: string,
    readonly code:
      | 'unknown_item'
      | 'not_assigned'
      | 'self_review'
      | 'rationale_required'
      | 'modify_target_required'
      | 'not_complete'
      | 'already_signed'
      | 'conflict',
  ) {
    super(message);
  }
}

export const MIN_RATIONALE = 15;
// Rationales that say nothing: the classic "approve all" failure auditors look for.
const EMPTY_RATIONALE =
  /^(ok|okay|fine|yes|approved?|keep|lgtm|n\/?a|none|-+|\.+|as before|no change)[.!]*$/i;

/** Current reviewer per line after reassignments (later reassignments win). */
export function currentReviewers(
  snapshot: AccessSnapshot,
  reassignments: Reassignment[],
): Map<string, string> {
  const m = new Map(snapshot.lines.map((l) => [l.itemId, l.reviewer]));
  for (const r of [...reassignments].sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0)))
    m.set(r.itemId, r.to);
  return m;
}

function lineOf(snapshot: AccessSnapshot, itemId: string): SnapshotLine {
  const line = snapshot.lines.find((l) => l.itemId === itemId);
  if (!line) throw new ReviewRuleError(`no line ${itemId} in this campaign's snapshot`, 'unknown_item');
  return line;
}

export function checkReassignment(
  snapshot: AccessSnapshot,
  reassignments: Reassignment[],
  r: Reassignment,
): void {
  const line = lineOf(snapshot, r.itemId);
  const check = assignReviewer(line, [r.to]);
  if (check.conflict === 'self_review') {
    throw new ReviewRuleError(`${r.to} cannot review ${r.itemId}: it is their own access`, 'self_review');
  }
  if (check.conflict === 'grantor') {
    throw new ReviewRuleError(`${r.to} granted ${r.itemId} and cannot review it`, 'self_review');
  }
  const current = currentReviewers(snapshot, reassignments).get(r.itemId);
  if (current !== r.from)
    throw new ReviewRuleError(`${r.itemId} is assigned to ${current}, not ${r.from}`, 'conflict');
  if (r.reason.trim().length < 5)
    throw new ReviewRuleError('a reassignment needs a reason', 'rationale_required');
}

/** Does this line need a written rationale whatever the decision? */
export function rationaleRequired(line: SnapshotLine, decision: DecisionKind): boolean {
  return line.privileged || line.flags.length > 0 || decision !== 'keep';
}

export function checkDecision(snapshot: AccessSnapshot, reassignments: Reassignment[], d: Decision): void {
  const line = lineOf(snapshot, d.itemId);
  if (d.decidedBy === line.subject || (line.person !== null && d.decidedBy === line.person)) {
    throw new ReviewRuleError(
      `${d.decidedBy} cannot decide on their own access (${d.itemId})`,
      'self_review',
    );
  }
  const reviewer = currentReviewers(snapshot, reassignments).get(d.itemId);
  if (reviewer !== d.decidedBy) {
    throw new ReviewRuleError(`${d.itemId} is assigned to ${reviewer}, not ${d.decidedBy}`, 'not_assigned');
  }
  const text = d.rationale.trim();
  if (rationaleRequired(line, d.decision) && (text.length < MIN_RATIONALE || EMPTY_RATIONALE.test(text))) {
    const why = line.privileged
      ? 'privileged'
      : line.flags.length
        ? `flagged (${line.flags.join(', ')})`
        : d.decision;
    throw new ReviewRuleError(
      `${d.itemId} is ${why}: the decision needs a rationale of at least ${MIN_RATIONALE} characters that says why`,
      'rationale_required',
    );
  }
  if (d.decision === 'modify' && !d.modifyTo?.trim()) {
    throw new ReviewRuleError(
      `${d.itemId}: a modify decision must say what the access becomes`,
      'modify_target_required',
    );
  }
}

/** Latest decision per line. */
export function latestDecisions(decisions: Decision[]): Map<string, Decision> {
  const m = new Map<string, Decision>();
  for (const d of decisions) {
    const prev = m.get(d.itemId);
    if (!prev || d.decidedAt >= prev.decidedAt) m.set(d.itemId, d);
  }
  return m;
}

/** What reviewers attest: the frozen snapshot plus the decision in force on every line. */
export function reviewDataHash(snapshot: AccessSnapshot, decisions: Decision[]): string {
  const latest = [...latestDecisions(decisions).values()].sort((a, b) => (a.itemId < b.itemId ? -1 : 1));
  return sha256Hex(
    canonicalBytes({ snapshot: snapshot.hash, decisions: JSON.parse(JSON.stringify(latest)) }),
  );
}

export function sealOf(fields: Omit<Signoff, 'seal'> & { campaignId: string }): string {
  return sha256Hex(
    canonicalBytes({
      campaignId: fields.campaignId,
      role: fields.role,
      signer: fields.signer,
      signedAt: fields.signedAt,
      statement: fields.statement,
      reviewDataHash: fields.reviewDataHash,
    }),
  );
}

export const REVIEWER_STATEMENT =
  'I reviewed every access line assigned to me in this campaign and recorded a decision with a rationale where required.';
export const OWNER_STATEMENT =
  'As control owner I confirm the review is complete, reviewers were independent of the access they reviewed, and revocations are tracked to completion.';

export function makeSignoff(
  campaignId: string,
  snapshot: AccessSnapshot,
  state: { decisions: Decision[]; reassignments: Reassignment[]; signoffs: Signoff[] },
  who: { role: SignoffRole; signer: string; signedAt: string },
): Signoff {
  const reviewers = currentReviewers(snapshot, state.reassignments);
  const decided = latestDecisions(state.decisions);
  if (state.signoffs.some((s) => s.role === who.role && s.signer === who.signer)) {
    throw new ReviewRuleError(`${who.signer} already signed off as ${who.role}`, 'already_signed');
  }
  if (who.role === 'reviewer') {
    const mine = [...reviewers].filter(([, r]) => r === who.signer).map(([id]) => id);
    if (mine.length === 0)
      throw new ReviewRuleError(`${who.signer} has no lines to review in this campaign`, 'not_assigned');
    const open = mine.filter((id) => !decided.has(id));
    if (open.length) {
      throw new ReviewRuleError(
        `${who.signer} still has ${open.length} undecided line(s), e.g. ${open[0]}`,
        'not_complete',
      );
    }
  } else {
    const all = new Set(reviewers.values());
    const signed = new Set(state.signoffs.filter((s) => s.role === 'reviewer').map((s) => s.signer));
    const missing = [...all].filter((r) => !signed.has(r));
    if (missing.length)
      throw new ReviewRuleError(`reviewers not signed off yet: ${missing.join(', ')}`, 'not_complete');
    const open = snapshot.lines.filter((l) => !decided.has(l.itemId));
    if (open.length) throw new ReviewRuleError(`${open.length} line(s) have no decision`, 'not_complete');
  }
  const fields = {
    role: who.role,
    signer: who.signer,
    signedAt: who.signedAt,
    statement: who.role === 'reviewer' ? REVIEWER_STATEMENT : OWNER_STATEMENT,
    reviewDataHash: reviewDataHash(snapshot, state.decisions),
  };
  return { ...fields, seal: sealOf({ ...fields, campaignId }) };
}

export function verifySeal(campaignId: string, s: Signoff): boolean {
  return sealOf({ ...s, campaignId }) === s.seal;
}
