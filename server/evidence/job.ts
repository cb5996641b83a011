// The scheduled evidence bundle: a job for the report scheduler (server/jobs), so it shares the
// reports' run records, leases, retries and catch-up. Each slot bundles the period that ended
// most recently before it (minus the grace for in-flight appends); catch-up runs missed slots
// oldest first, so the chain of bundles stays in order.
import type { JobDefinition, JobContext, JobResult } from '../jobs/scheduler.ts';
import { SCHEDULER_ACTOR } from '../reports/audit-entries.ts';
import type { JobRunRef } from '../../reports/evidence/types.ts';
import type { EvidencePeriodKind } from './config.ts';
import type { EvidenceService } from './bundle-service.ts';

export const EVIDENCE_JOB = 'evidence-bundle';

/** The [from, to) period of `kind` that ended most recently at or before `at` (UTC calendar). */
export function periodEndingBy(kind: EvidencePeriodKind, at: Date): { from: Date; to: Date } {
  const y = at.getUTCFullYear();
  const m = at.getUTCMonth();
  if (kind === 'day') {
    const to = new Date(Date.UTC(y, m, at.getUTCDate()));
    return { from: new Date(to.getTime() - 86_400_000), to };
  }
  if (kind === 'quarter') {
    const q = Math.floor(m / 3) * 3;
    return { from: new Date(Date.UTC(y, q - 3, 1)), to: new Date(Date.UTC(y, q, 1)) };
  }
  return { from: new Date(Date.UTC(y, m - 1, 1)), to: new Date(Date.UTC(y, m, 1)) };
}

function label(p: { from: Date; to: Date }): string {
  return `${p.from.toISOString().slice(0, 10)}..${p.to.toISOString().slice(0, 10)}`;
}

export function evidenceJob(
  service: EvidenceService,
  schedule: { cron: string; timezone: string; period: EvidencePeriodKind },
  opts: { graceMs?: number } = {},
): JobDefinition {
  const grace = opts.graceMs ?? 60_000;
  const periodAt = (slot: Date) => periodEndingBy(schedule.period, new Date(slot.getTime() - grace));
  return {
    name: EVIDENCE_JOB,
    cron: schedule.cron,
    timezone: schedule.timezone,
    periodFor: (slot) => label(periodAt(slot)),
    async run(ctx: JobContext): Promise<JobResult> {
      const period = periodAt(ctx.expectedAt);
      const jobRun: JobRunRef = {
        id: ctx.runId,
        job: ctx.job,
        trigger: ctx.trigger === 'manual' ? 'manual' : ctx.trigger === 'schedule' ? 'scheduled' : 'catch-up',
        scheduledFor: ctx.expectedAt.toISOString(),
      };
      const r = await service.bundle({ ...period, actor: SCHEDULER_ACTOR, jobRun });
      return {
        periodLabel: label(period),
        outputs: { [`${r.row.bundleId}.tar.gz`]: r.row.archiveSha256 },
        dataHash: r.row.archiveSha256,
      };
    },
  };
}
