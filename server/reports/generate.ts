// One entry point that turns (report kind, period) into its outputs: canonical JSON + data hash,
// PDF, CSVs. Used by the CLI, the API and the scheduler, so all three give the same bytes.
import type { Db } from '../db.ts';
import type { AuditLog } from '../audit/log.ts';
import { buildSnapshot, collectSnapshotInput } from '../../reports/access-snapshot.ts';
import { accessReviewBytes, buildAccessReview } from '../../reports/access-review.ts';
import { accessReviewCsvs } from '../../reports/access-csv.ts';
import { renderAccessReviewPdf } from '../../reports/pdf/access-review-pdf.ts';
import type { Period } from '../../reports/period.ts';
import type { RunInfo, RunExceptionRecord } from '../../reports/run-exceptions.ts';
import { canonicalBytes, sha256Hex } from '../../reports/canonical.ts';
import { SqlAccessReviewSource } from './access-source.ts';
import { CampaignStore } from './campaigns.ts';
import type { ReportsConfig } from './report-config.ts';
import type { PolicyEngine } from '../policy/policy.ts';
import type { RecordSink } from './audit-entries.ts';
import { VERSION } from '../version.ts';
import { buildActivityReport } from '../../reports/activity.ts';
import { renderActivityPdf } from '../../reports/pdf/activity-pdf.ts';
import { activityCsvs } from '../../reports/activity-csv.ts';
import { SqlActivitySource } from './activity-source.ts';
import { buildChangeLog } from '../../reports/changes.ts';
import { renderChangeLogPdf } from '../../reports/pdf/changes-pdf.ts';
import { changeLogCsvs } from '../../reports/changes-csv.ts';
import { SqlChangeSource } from './change-source.ts';

export type ReportKind = 'access-review' | 'activity' | 'changes';
export const REPORT_KINDS: ReportKind[] = ['access-review', 'activity', 'changes'];

export interface ReportOutputs {
  kind: ReportKind;
  reportId: string;
  /** RFC 8785 bytes; SHA-256 = dataHash. */
  json: Buffer;
  dataHash: string;
  pdf?: Buffer;
  csv: Record<string, string>;
  /** file name → SHA-256 of every output produced. */
  hashes: Record<string, string>;
}

export interface GenerateContext {
  db: Db;
  log: Pick<AuditLog, 'head' | 'rootAt' | 'entries' | 'syncIndex'> & RecordSink;
  config: ReportsConfig;
  instance: string;
  targetNames?: () => string[] | Promise<string[]>;
  /** The per-tool policy in force (entitlements per allowed tool). */
  policy?: () => PolicyEngine;
  runExceptions?: (job: string, fromIso: string, toIso: string) => Promise<RunExceptionRecord[]>;
}

export async function generateReport(
  ctx: GenerateContext,
  kind: ReportKind,
  period: Period,
  run: RunInfo,
  want: { pdf?: boolean; csv?: boolean; campaignId?: string; timings?: Record<string, number> } = {},
): Promise<ReportOutputs> {
  let mark = performance.now();
  const lap = (what: string) => {
    const now = performance.now();
    if (want.timings) want.timings[what] = Math.round(now - mark);
    mark = now;
  };
  let json: Buffer;
  let dataHash: string;
  let reportId: string;
  let pdf: Buffer | undefined;
  let csv: Record<string, string> = {};
  if (kind === 'access-review') {
    const source = new SqlAccessReviewSource({
      db: ctx.db,
      log: ctx.log,
      config: ctx.config,
      targetNames: ctx.targetNames,
      policy: ctx.policy,
    });
    const store = new CampaignStore({
      db: ctx.db,
      log: ctx.log,
      source,
      config: ctx.config,
      instance: ctx.instance,
      runExceptions: ctx.runExceptions ? (a, b) => ctx.runExceptions!('access-review', a, b) : undefined,
    });
    const campaign = want.campaignId
      ? await store.get(want.campaignId)
      : await store.latestForPeriod(period.label);
    let data;
    if (campaign) {
      data = await store.reportData(campaign.id);
      lap('data');
    } else {
      // No campaign launched for the period: report the population as of the period's end, all
      // lines pending. The id is derived from the snapshot, so a re-run gives the same bytes.
      const input = await collectSnapshotInput(source, {
        period,
        settings: ctx.config.settings,
        previous: await store.previousLines(period),
      });
      lap('sql');
      const snapshot = buildSnapshot(input);
      const runExceptions = ctx.runExceptions
        ? await ctx.runExceptions('access-review', period.start, period.end)
        : [];
      data = buildAccessReview({
        campaignId: `snapshot-${snapshot.hash.slice(0, 16)}`,
        generatorVersion: VERSION,
        launch: snapshot,
        decisions: [],
        reassignments: [],
        signoffs: [],
        runExceptions,
      });
      lap('model');
    }
    ({ bytes: json, hash: dataHash } = accessReviewBytes(data));
    reportId = data.reportId;
    lap('json');
    if (want.pdf !== false) pdf = await renderAccessReviewPdf(data, dataHash, run);
    lap('pdf');
    if (want.csv) csv = accessReviewCsvs(data);
    lap('csv');
  } else if (kind === 'activity') {
    const source = new SqlActivitySource({ db: ctx.db, log: ctx.log, config: ctx.config });
    const runExceptions = ctx.runExceptions
      ? await ctx.runExceptions('activity', period.start, period.end)
      : [];
    const data = await buildActivityReport(source, {
      period,
      generatorVersion: VERSION,
      businessHours: ctx.config.businessHours,
      runExceptions,
    });
    lap('sql');
    json = canonicalBytes(data);
    dataHash = sha256Hex(json);
    reportId = data.reportId;
    if (want.pdf !== false) pdf = await renderActivityPdf(data, dataHash, run);
    lap('pdf');
    if (want.csv) csv = activityCsvs(data);
  } else {
    const source = new SqlChangeSource({ db: ctx.db, log: ctx.log });
    const data = await buildChangeLog(source, { period, generatorVersion: VERSION });
    json = canonicalBytes(data);
    dataHash = sha256Hex(json);
    reportId = data.reportId;
    if (want.pdf !== false) pdf = await renderChangeLogPdf(data, dataHash, run);
    if (want.csv) csv = changeLogCsvs(data);
  }
  const base = kind;
  const hashes: Record<string, string> = { [`${base}.json`]: dataHash };
  if (pdf) hashes[`${base}.pdf`] = sha256Hex(pdf);
  for (const [name, text] of Object.entries(csv)) hashes[`${base}-${name}`] = sha256Hex(text);
  return { kind, reportId, json, dataHash, pdf, csv, hashes };
}
