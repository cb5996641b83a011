// Configuration and policy change log (CC8.1): every 'config.change' entry of the period with
// who changed what, before/after state hashes, and whether someone other than the author approved.
import type { LogCheckpointRef, SourceDescription } from './access-types.ts';
import type { Period } from './period.ts';

export const CHANGES_SCHEMA = 'auditgate.changes/1';

export interface ChangeEntry {
  leaf: number;
  ts: string;
  author: string;
  authMethod: string;
  kind: string;
  action: string;
  objectId: string | null;
  beforeSha256: string | null;
  afterSha256: string | null;
  summary: string | null;
  approver: string | null;
  approvalRef: string | null;
}

export interface ChangeSource {
  checkpoint(asOf: string): Promise<LogCheckpointRef>;
  /** Streams the period's config.change entries in log order. */
  changes(p: Period, upTo: LogCheckpointRef): AsyncIterable<ChangeEntry>;
  describe(p: Period, upTo: LogCheckpointRef): SourceDescription;
}

export interface ChangeLogData {
  schema: typeof CHANGES_SCHEMA;
  reportId: string;
  title: string;
  period: Period;
  generator: { name: string; version: string };
  controls: Array<{ id: string; topic: string }>;
  scope: { auditLog: { treeSize: number; rootHex: string }; sources: SourceDescription[] };
  totals: {
    changes: number;
    approvedByOther: number;
    selfApproved: number;
    noApproval: number;
    authors: number;
  };
  byKind: Array<{ kind: string; action: string; n: number }>;
  changes: Array<ChangeEntry & { segregation: 'approved_by_other' | 'self_approved' | 'no_approval' }>;
  exceptions: Array<{ leaf: number; detail: string }>;
}

export async function buildChangeLog(
  source: ChangeSource,
  opts: { period: Period; generatorVersion: string },
): Promise<ChangeLogData> {
  const p = opts.period;
  const upTo = await source.checkpoint(p.end);
  const changes: ChangeLogData['changes'] = [];
  for await (const c of source.changes(p, upTo)) {
    const segregation = !c.approver
      ? 'no_approval'
      : c.approver === c.author
        ? 'self_approved'
        : 'approved_by_other';
    changes.push({ ...c, segregation });
  }
  const kinds = new Map<string, number>();
  for (const c of changes)
    kinds.set(`${c.kind}\u0000${c.action}`, (kinds.get(`${c.kind}\u0000${c.action}`) ?? 0) + 1);
  const src = source.describe(p, upTo);
  return {
    schema: CHANGES_SCHEMA,
    reportId: `CHG-${p.label}`,
    title: `Configuration and policy change log — ${p.label}`,
    period: p,
    generator: { name: 'auditgate', version: opts.generatorVersion },
    controls: [
      {
        id: 'CC8.1',
        topic:
          'Changes to targets, policies, roles and keys are recorded, attributable and approved by someone other than the author',
      },
    ],
    scope: {
      auditLog: { treeSize: upTo.size, rootHex: upTo.root },
      sources: [{ ...src, rows: changes.length }],
    },
    totals: {
      changes: changes.length,
      approvedByOther: changes.filter((c) => c.segregation === 'approved_by_other').length,
      selfApproved: changes.filter((c) => c.segregation === 'self_approved').length,
      noApproval: changes.filter((c) => c.segregation === 'no_approval').length,
      authors: new Set(changes.map((c) => c.author)).size,
    },
    byKind: [...kinds]
      .map(([k, n]) => ({ kind: k.split('\u0000')[0]!, action: k.split('\u0000')[1]!, n }))
      .sort((a, b) => (a.kind + a.action < b.kind + b.action ? -1 : 1)),
    changes,
    exceptions: changes
      .filter((c) => c.segregation !== 'approved_by_other')
      .map((c) => ({
        leaf: c.leaf,
        detail:
          c.segregation === 'self_approved'
            ? `${c.author} approved their own ${c.kind} ${c.action}`
            : `${c.kind} ${c.action} by ${c.author} has no recorded approval`,
      })),
  };
}
