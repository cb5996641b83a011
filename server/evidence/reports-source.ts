// The period's reports for its evidence bundle: every report kind (access review, activity,
// change log) as PDF + canonical JSON + CSVs, from the same generator the scheduler, API and CLI
// use. Reports are bounded by the period and by tree size, and their generated-at time is fixed
// by the caller, so a rebuild of the bundle gives the same bytes.
import type { Db } from '../db.ts';
import type { KnexLog } from '../audit/knex-log.ts';
import { parsePeriod, rangePeriod, type Period } from '../../reports/period.ts';
import type { EvidenceReport, JobRunRef } from '../../reports/evidence/types.ts';
import { generateReport, REPORT_KINDS } from '../reports/generate.ts';
import { loadReportsConfig } from '../reports/report-config.ts';
import { JobStore } from '../jobs/job-store.ts';
import type { PolicyEngine } from '../policy/policy.ts';

/** The report period for [from, to): a month, quarter or year label when it is one, else a date range. */
export function reportPeriod(from: string, to: string): Period {
  const f = new Date(from);
  const t = new Date(to);
  const y = f.getUTCFullYear();
  const m = f.getUTCMonth();
  for (const c of [`${y}`, `${y}-Q${Math.floor(m / 3) + 1}`, `${y}-${String(m + 1).padStart(2, '0')}`]) {
    const p = parsePeriod(c);
    if (p.start === f.toISOString() && p.end === t.toISOString()) return p;
  }
  return rangePeriod(f, t);
}

export interface ReportsSourceOptions {
  db: Db;
  log: KnexLog;
  env: Record<string, string | undefined>;
  dataDir: string;
  cwd: string;
  instance: string;
  targetNames?: () => string[] | Promise<string[]>;
  /** The per-tool policy in force, so bundled access reviews match the scheduled ones. */
  policy?: () => PolicyEngine;
}

export function evidenceReports(o: ReportsSourceOptions) {
  const config = loadReportsConfig(o.env, o.dataDir, o.cwd);
  const jobs = new JobStore(o.db);
  return async (period: { from: string; to: string }, run: { generatedAt: string; jobRun: JobRunRef | null }): Promise<EvidenceReport[]> => {
    const p = reportPeriod(period.from, period.to);
    const out: EvidenceReport[] = [];
    for (const kind of REPORT_KINDS) {
      const r = await generateReport(
        { db: o.db, log: o.log, config, instance: o.instance, targetNames: o.targetNames, policy: o.policy, runExceptions: (job, a, b) => jobs.exceptionsBetween(job, a, b) },
        kind,
        p,
        {
          generatedAt: run.generatedAt,
          trigger: run.jobRun ? (run.jobRun.trigger === 'catch-up' ? 'catch-up' : 'schedule') : 'cli',
          runId: run.jobRun?.id,
          expectedAt: run.jobRun?.scheduledFor,
        },
        { pdf: true, csv: true },
      );
      const files = [
        { name: `${kind}.json`, content: r.json },
        ...(r.pdf ? [{ name: `${kind}.pdf`, content: r.pdf }] : []),
        ...Object.entries(r.csv).map(([name, text]) => ({ name: `${kind}-${name}`, content: Buffer.from(text, 'utf8') })),
      ];
      out.push({
        name: kind,
        files,
        json: `${kind}.json`,
        pdf: r.pdf ? `${kind}.pdf` : undefined,
        meta: { report_id: r.reportId, period: p.label, data_sha256: r.dataHash },
      });
    }
    return out;
  };
}
