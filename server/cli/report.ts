// `auditgate report access-review|activity|changes --period 2026-Q3 --out FILE.pdf [--json] [--csv DIR]`:
// the same generator the scheduler and the API use, run against the local database; the run is
// recorded in the audit log with the hashes of what it wrote.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { loadConfig } from '../config.ts';
import { openDatabase } from '../service.ts';
import { migrate } from '../db.ts';
import { UsageError } from '../errors.ts';
import { parsePeriod, PeriodError } from '../../reports/period.ts';
import { configuredReportScope } from '../reports/scope.ts';
import { generateReport, type ReportKind } from '../reports/generate.ts';
import { loadReportsConfig } from '../reports/report-config.ts';
import { reportRecord } from '../reports/audit-entries.ts';
import { JobStore } from '../jobs/job-store.ts';
import { localActor } from '../auth/config-change.ts';
import { openCliLog } from './open-log.ts';
import { parseFlags, type Command } from './command.ts';

function reportCommand(kind: ReportKind, summary: string): Command {
  const usage = `auditgate report ${kind} --period PERIOD [--out FILE.pdf] [--json] [--csv DIR]${kind === 'access-review' ? ' [--campaign ID]' : ''}`;
  return {
    name: `report ${kind}`,
    summary,
    usage,
    async run(argv, io) {
      const { values } = parseFlags(argv, {
        period: { type: 'string' },
        out: { type: 'string' },
        json: { type: 'boolean' },
        csv: { type: 'string' },
        campaign: { type: 'string' },
      });
      if (!values.period)
        throw new UsageError('--period is required (2026-Q3, 2026-08, 2026 or 2026-07-01..2026-10-01)');
      if (!values.out && !values.json && !values.csv)
        throw new UsageError('nothing to write: give --out FILE.pdf, --json and/or --csv DIR');
      if (values.campaign && kind !== 'access-review')
        throw new UsageError('--campaign applies to access-review only');
      let period;
      try {
        period = parsePeriod(values.period);
      } catch (err) {
        if (err instanceof PeriodError) throw new UsageError(err.message);
        throw err;
      }
      const config = loadConfig(io.env, io.cwd);
      const reportsConfig = loadReportsConfig(io.env, config.dataDir, io.cwd);
      const db = openDatabase(config);
      try {
        await migrate(db);
        const log = await openCliLog(config, db);
        try {
          const jobs = new JobStore(db);
          const generatedAt = new Date().toISOString();
          const out = await generateReport(
            {
              db,
              log,
              config: reportsConfig,
              instance: config.instanceId,
              runExceptions: (job, a, b) => jobs.exceptionsBetween(job, a, b),
              ...configuredReportScope(config, io.env, io.cwd),
            },
            kind,
            period,
            { generatedAt, trigger: 'cli' },
            { pdf: !!values.out, csv: !!values.csv, campaignId: values.campaign },
          );
          const written: string[] = [];
          if (values.out) {
            const file = resolve(io.cwd, values.out);
            mkdirSync(dirname(file), { recursive: true });
            writeFileSync(file, out.pdf!);
            written.push(file);
          }
          if (values.json) {
            if (values.out) {
              const file = resolve(io.cwd, values.out.replace(/\.pdf$/i, '') + '.json');
              writeFileSync(file, out.json);
              written.push(file);
            } else {
              io.out(out.json.toString('utf8'));
            }
          }
          if (values.csv) {
            const dir = resolve(io.cwd, values.csv);
            mkdirSync(dir, { recursive: true });
            for (const [name, text] of Object.entries(out.csv)) {
              writeFileSync(join(dir, `${kind}-${name}`), text);
              written.push(join(dir, `${kind}-${name}`));
            }
          }
          await log.append(
            reportRecord(
              'report.run',
              localActor(),
              {
                action: 'report.generate',
                report: kind,
                report_id: out.reportId,
                period: period.label,
                trigger: 'cli',
                data_sha256: out.dataHash,
                outputs: out.hashes,
              },
              config.instanceId,
            ),
          );
          if (values.out || !values.json) {
            io.out(`${kind} ${out.reportId}: data SHA-256 ${out.dataHash}`);
            for (const w of written) io.out(`wrote ${w}`);
          } else {
            io.err(`${kind} ${out.reportId}: data SHA-256 ${out.dataHash}`);
          }
          return 0;
        } finally {
          await log.close();
        }
      } finally {
        await db.destroy();
      }
    },
  };
}

export const accessReviewCommand = reportCommand(
  'access-review',
  'write the user access review (PDF, canonical JSON, CSVs) for a period',
);
export const activityCommand = reportCommand(
  'activity',
  'write the gateway activity and anomaly report (CC7.2) for a period',
);
export const changesCommand = reportCommand(
  'changes',
  'write the configuration and policy change log (CC8.1) for a period',
);
