// What the access review reads (the server implements AccessReviewSource over its database and
// audit log) and what it produces. reports/ never imports server/: this file is the contract.
import type { Period } from './period.ts';

export type IdentityType = 'human' | 'service' | 'agent';
export type GrantPath = 'direct' | 'group' | 'role';

/** One account that can hold access: an API key, an IdP subject, a service account. */
export interface IdentityRecord {
  /** Account id as the system knows it: API key id, or "<issuer>#<subject>" for IdP subjects. */
  accountId: string;
  /** The subject name recorded in the audit log for this account. */
  subject: string;
  type: IdentityType;
  /** The accountable person; absent = orphaned. */
  person?: string;
  /** Who reviews this identity's access when no target owner applies (e.g. the person's manager). */
  manager?: string;
  authMethod: string;
  /** true/false when known; absent when the source cannot tell (e.g. API keys have no MFA). */
  mfa?: boolean;
  createdAt?: string;
  createdBy?: string;
  expiresAt?: string;
  /** Where the row came from (which source table or log query). */
  source: string;
}

/** One effective entitlement of one account. */
export interface EntitlementRecord {
  accountId: string;
  /** System/target: an MCP target name, or "auditgate" for the service's own roles. */
  target: string;
  /** Tool name, "*" for every tool of the target, or "" for a service role. */
  tool: string;
  role: string;
  privileged: boolean;
  grantPath: GrantPath;
  /** Rule id / group name through which it is granted. */
  grantRef?: string;
  grantedAt?: string;
  grantedBy?: string;
  approvalRef?: string;
}

/** Use of one account on one target/tool, aggregated from the audit log (SQL side). */
export interface UsageRecord {
  /** Key id for API keys, subject otherwise — whatever identifies the account in the log. */
  accountId: string;
  target: string;
  tool: string;
  firstUsedAt: string;
  lastUsedAt: string;
  calls: number;
  denied: number;
  /** Leaf indices of the first and last use (evidence references into the audit log). */
  firstLeaf: number;
  lastLeaf: number;
}

/** Per account: the most distinct client addresses seen within one hour (shared credential). */
export interface CredentialSpreadRecord {
  accountId: string;
  maxAddressesPerHour: number;
  distinctAddresses: number;
}

export interface TargetRecord {
  name: string;
  owner?: string;
  transport?: string;
  /** Tools whose use counts as privileged access. */
  privilegedTools?: string[];
}

export interface SourceDescription {
  /** Short name shown in the IPE panel, e.g. "api_keys", "audit_events.usage". */
  name: string;
  /** The query text (or a description of the computation) that produced the rows. */
  query: string;
  /** SHA-256 of the query text, so a re-run can be matched to this report. */
  queryHash: string;
  asOf: string;
  rows: number;
}

export interface LogCheckpointRef {
  /** Tree size the data was read up to (entries with index < size). */
  size: number;
  /** Root hash (hex) of the tree at that size. */
  root: string;
}

/** The interface the server implements; every method reads a frozen view (asOf / tree size). */
export interface AccessReviewSource {
  /** Log state the snapshot is read from: all entries at or before `asOf`. */
  checkpoint(asOf: string): Promise<LogCheckpointRef>;
  identities(asOf: string, period: Period, upTo: LogCheckpointRef): Promise<Sourced<IdentityRecord>>;
  entitlements(identities: IdentityRecord[], asOf: string): Promise<Sourced<EntitlementRecord>>;
  usage(period: Period, upTo: LogCheckpointRef): Promise<Sourced<UsageRecord>>;
  credentialSpread(period: Period, upTo: LogCheckpointRef): Promise<Sourced<CredentialSpreadRecord>>;
  targets(): Promise<TargetRecord[]>;
}

export interface Sourced<T> {
  rows: T[];
  sources: SourceDescription[];
}

export type Flag =
  'orphaned' | 'dormant' | 'shared_credential' | 'privileged' | 'new' | 'excessive' | 'no_justification';

export const FLAG_LABELS: Record<Flag, string> = {
  orphaned: 'orphaned',
  dormant: 'dormant',
  shared_credential: 'shared credential',
  privileged: 'privileged',
  new: 'new',
  excessive: 'excessive',
  no_justification: 'no justification',
};

/** One row of the frozen snapshot: an account × an entitlement, with use and flags. */
export interface SnapshotLine {
  /** Stable id: the same account × entitlement gets the same id in every review. */
  itemId: string;
  target: string;
  accountId: string;
  subject: string;
  person: string | null;
  identityType: IdentityType;
  role: string;
  tool: string;
  /** "role agent → github / *" style human-readable entitlement. */
  entitlement: string;
  privileged: boolean;
  grantPath: GrantPath;
  grantRef: string | null;
  grantedAt: string | null;
  grantedBy: string | null;
  approvalRef: string | null;
  authMethod: string;
  mfa: boolean | null;
  createdAt: string | null;
  firstUsedAt: string | null;
  lastUsedAt: string | null;
  /** Whole days from last use (or creation when never used) to the snapshot time. */
  daysInactive: number | null;
  callsInPeriod: number;
  deniedInPeriod: number;
  flags: Flag[];
  /** 'new' | 'unchanged' relative to the previous review (removed lines are listed separately). */
  change: 'new' | 'unchanged' | 'first_review';
  reviewer: string;
  /** Audit-log leaf indices of first and last use. */
  evidenceRefs: number[];
}

export interface ReviewSettings {
  /** Lines unused for this many days are dormant. */
  dormantDays: number;
  /** A credential seen from at least this many addresses within one hour is shared. */
  sharedAddressThreshold: number;
  /** Days after a revoke/modify decision by which the change must be carried out. */
  remediationSlaDays: number;
  /** Accountable for the control; reviews what nobody else independent can. */
  controlOwner: string;
  /** Reviewer when neither target owner nor manager is set or both are conflicted. */
  fallbackReviewer: string;
}

export const DEFAULT_SETTINGS: ReviewSettings = {
  dormantDays: 90,
  sharedAddressThreshold: 3,
  remediationSlaDays: 14,
  controlOwner: 'control-owner',
  fallbackReviewer: 'security-team',
};
