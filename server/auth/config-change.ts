// Config-change evidence (SOC 2 CC8.1): every change to keys, policies, roles and targets becomes
// one 'config.change' log entry saying who changed what, with hashes of the state before and after.
import { randomUUID } from 'node:crypto';
import { userInfo, hostname } from 'node:os';
import {
  AUDIT_RECORD_VERSION,
  auditTimestamp,
  type AuditActor,
  type AuditRecord,
} from '../../gateway/audit-record.ts';
import { canonicalSha256 } from '../../gateway/record.ts';
import { VERSION } from '../version.ts';
import type { ApiKeyRecord } from './api-keys.ts';

/** SHA-256 (hex) of the RFC 8785 canonical JSON of a value; null/undefined (nothing there) → null. */
export function stateHash(value: unknown): string | null {
  if (value === undefined || value === null) return null;
  return canonicalSha256(value);
}

export interface ConfigChange {
  /** What kind of thing changed: 'api_key', 'policy', 'role_mapping', 'targets', … */
  kind: string;
  /** 'create', 'revoke', 'update', 'delete', 'load' … */
  action: string;
  /** Which one (key id, policy name, file path). */
  id?: string;
  before?: unknown;
  after?: unknown;
  /** Non-secret facts worth reading without reconstructing state (subject, roles, expiry…). */
  summary?: Record<string, unknown>;
}

export function configChangeRecord(actor: AuditActor, change: ConfigChange, instance: string): AuditRecord {
  return {
    v: AUDIT_RECORD_VERSION,
    id: randomUUID(),
    ts: auditTimestamp(),
    event: 'config.change',
    gateway: { instance, version: VERSION },
    actor,
    detail: {
      kind: change.kind,
      action: change.action,
      ...(change.id !== undefined ? { id: change.id } : {}),
      before_sha256: stateHash(change.before),
      after_sha256: stateHash(change.after),
      ...(change.summary ? { summary: change.summary } : {}),
    },
  };
}

/** The person at the terminal, for CLI changes: the OS account on this host. */
export function localActor(): AuditActor {
  let user = 'unknown';
  try {
    user = userInfo().username;
  } catch {
    // No passwd entry (some containers): still record that it was a local change.
  }
  return { subject: `${user}@${hostname()}`, auth_method: 'local' };
}

/** Before/after state of a key for config.change hashes: every field except secrets (none are held). */
export function keyChange(
  action: string,
  before: ApiKeyRecord | undefined,
  after: ApiKeyRecord,
): ConfigChange {
  return {
    kind: 'api_key',
    action,
    id: after.id,
    before,
    after,
    summary: {
      subject: after.subject,
      roles: after.roles,
      ...(after.expiresAt ? { expires_at: after.expiresAt } : {}),
      ...(after.revokedAt ? { revoked_at: after.revokedAt } : {}),
    },
  };
}
