// ChangeSource: the period's config.change entries, located through audit_events and read as
// the exact leaf bytes from the log, a page at a time.
import type { AuditLog } from '../audit/log.ts';
import type { Db } from '../db.ts';
import type { ChangeEntry, ChangeSource } from '../../reports/changes.ts';
import type { LogCheckpointRef, SourceDescription } from '../../reports/access-types.ts';
import type { Period } from '../../reports/period.ts';
import { intOut, logBoundary } from './sql.ts';
import { createHash } from 'node:crypto';

const SQL =
  "SELECT idx FROM audit_events WHERE idx < ? AND ts >= ? AND ts < ? AND event = 'config.change' AND idx > ? ORDER BY idx LIMIT 500";

export class SqlChangeSource implements ChangeSource {
  constructor(private readonly o: { db: Db; log: Pick<AuditLog, 'head' | 'rootAt' | 'entries' | 'syncIndex'> }) {}

  async checkpoint(asOf: string): Promise<LogCheckpointRef> {
    return logBoundary(this.o.db, this.o.log, asOf);
  }

  describe(p: Period, upTo: LogCheckpointRef): SourceDescription {
    const text = `${SQL} -- paged by idx; each entry read from the log\n-- bindings: ${JSON.stringify([upTo.size, p.start, p.end])}`;
    return {
      name: 'audit_events + log entries (config.change)',
      query: text,
      queryHash: createHash('sha256').update(text).digest('hex'),
      asOf: p.end,
      rows: 0,
    };
  }

  async *changes(p: Period, upTo: LogCheckpointRef): AsyncIterable<ChangeEntry> {
    let after = -1;
    while (true) {
      const rows = await this.o.db.raw(SQL, [upTo.size, p.start, p.end, after]);
      const list = (Array.isArray(rows) ? rows : rows.rows) as Array<{ idx: unknown }>;
      if (list.length === 0) return;
      for (const row of list) {
        const idx = intOut(row.idx);
        after = idx;
        for await (const e of this.o.log.entries(idx, idx + 1)) yield toChange(idx, e.data);
      }
    }
  }
}

function toChange(idx: number, data: Buffer): ChangeEntry {
  const r = JSON.parse(data.toString('utf8')) as {
    ts?: string;
    actor?: { subject?: string; auth_method?: string };
    detail?: Record<string, unknown>;
  };
  const d = r.detail ?? {};
  const str = (v: unknown) => (typeof v === 'string' && v !== '' ? v : null);
  return {
    leaf: idx,
    ts: new Date(r.ts ?? 0).toISOString(),
    author: r.actor?.subject ?? '(unknown)',
    authMethod: r.actor?.auth_method ?? '',
    kind: str(d.kind) ?? '(unspecified)',
    action: str(d.action) ?? '',
    objectId: str(d.id),
    beforeSha256: str(d.before_sha256),
    afterSha256: str(d.after_sha256),
    summary: d.summary === undefined ? null : JSON.stringify(d.summary),
    approver: str(d.approved_by) ?? str(d.approver),
    approvalRef: str(d.approval_ref),
  };
}
