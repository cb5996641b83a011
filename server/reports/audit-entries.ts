// Audit-log records for what the report subsystem does: campaign steps, report runs and
// downloads. Campaign steps use event 'report.run' with detail.action naming the step, so the
// record schema's event list stays as the gateway defined it.
import { randomUUID } from 'node:crypto';
import {
  AUDIT_RECORD_VERSION,
  auditTimestamp,
  type AuditActor,
  type AuditRecord,
} from '../../gateway/audit-record.ts';
import { VERSION } from '../version.ts';

export interface RecordSink {
  append(record: object): Promise<number>;
}

export function reportRecord(
  event: 'report.run' | 'audit.read',
  actor: AuditActor,
  detail: Record<string, unknown>,
  instance: string,
): AuditRecord {
  return {
    v: AUDIT_RECORD_VERSION,
    id: randomUUID(),
    ts: auditTimestamp(),
    event,
    gateway: { instance, version: VERSION },
    actor,
    detail,
  };
}

/** The scheduler acts as itself, not as a person. */
export const SCHEDULER_ACTOR: AuditActor = { subject: 'auditgate-scheduler', auth_method: 'local' };
