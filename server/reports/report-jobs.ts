// The scheduled reports: each slot reports the period that ended most recently before it.
// Outputs go to <dataDir>/reports/<kind>/<period>/ and their hashes into the run record and log.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { JobDefinition } from '../jobs/scheduler.ts';
import { lastCompletePeriod, type Period } from '../../reports/period.ts';
import { generateReport, type GenerateContext, type ReportKind } from './generate.ts';
import type { CampaignStore } from './campaigns.ts';
import { SCHEDULER_ACTOR } from './audit-entries.ts';

export const DEFAULT_SCHEDULES: Record<
  'access-review' | 'activity' | 'changes',
  { cron: string; timezone: string; period: 'quarter' | 'month' }
> = {
  // 06:00 UTC on the first day of each quarter: the quarter that just ended.
  'access-review': { cron: '0 6 1 1,4,7,10 *', timezone: 'UTC', period: 'quarter' },
  // 06:00 UTC on the first of each month: the month that just ended.
  activity: { cron: '0 6 1 * *', timezone: 'UTC', period: 'month' },
  changes: { cron: '15 6 1 * *', timezone: 'UTC', period: 'month' },
};

export interface ReportJobOptions {
  ctx: GenerateContext;
  campaigns: CampaignStore;
  outDir: string;
  schedules: Record<string, { cron: string; timezone: string; enabled: boolean }>;
  /** Margin after a period's end before its slot may report it (appends still in flight). */
  graceMs?: number;
}

export function reportJobs(o: ReportJobOptions): JobDefinition[] {
  const jobs: JobDefinition[] = [];
  for (const kind of Object.keys(DEFAULT_SCHEDULES) as ReportKind[]) {
    const def = DEFAULT_SCHEDULES[kind];
    const cfg = o.schedules[kind];
    if (cfg && !cfg.enabled) continue;
    const periodFor = (slot: Date): Period =>
      lastCompletePeriod(def.period, new Date(slot.getTime() - (o.graceMs ?? 0)));
    jobs.push({
      name: kind,
      cron: cfg?.cron ?? def.cron,
      timezone: cfg?.timezone ?? def.timezone,
      periodFor: (slot) => periodFor(slot).label,
      async run(ctx) {
        const period = periodFor(ctx.expectedAt);
        let campaignId: string | undefined;
        if (kind === 'access-review') {
          // The quarterly run launches the period's campaign (once): that freezes the population.
          const existing = await o.campaigns.latestForPeriod(period.label);
          campaignId = existing?.id ?? (await o.campaigns.launch({ period, actor: SCHEDULER_ACTOR })).id;
        }
        const out = await generateReport(
          o.ctx,
          kind,
          period,
          {
            runId: ctx.runId,
            schedule: cfg?.cron ?? def.cron,
            timezone: cfg?.timezone ?? def.timezone,
            expectedAt: ctx.expectedAt.toISOString(),
            generatedAt: ctx.expectedAt.toISOString(),
            trigger: ctx.trigger === 'schedule' ? 'schedule' : 'catch-up',
          },
          { csv: true, campaignId },
        );
        const dir = join(o.outDir, kind, period.label);
        mkdirSync(dir, { recursive: true });
        writeFileSync(join(dir, `${kind}.json`), out.json);
        if (out.pdf) writeFileSync(join(dir, `${kind}.pdf`), out.pdf);
        for (const [name, text] of Object.entries(out.csv)) writeFileSync(join(dir, `${kind}-${name}`), text);
        return { periodLabel: period.label, outputs: out.hashes, dataHash: out.dataHash };
      },
    });
  }
  return jobs;
}
