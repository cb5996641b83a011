// Report settings: who owns what (target owners, account owners/managers), which tools are
// privileged, review thresholds and schedules. Read from the `reports:` section of the service's
// configuration file, validated once.
import { readConfigDocument } from '../targets.ts';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import YAML from 'yaml';
import { z } from 'zod';
import { ConfigError } from '../errors.ts';
import { DEFAULT_SETTINGS, type IdentityType, type ReviewSettings } from '../../reports/access-types.ts';

const identityOwner = z.object({
  person: z.string().min(1).optional(),
  manager: z.string().min(1).optional(),
  type: z.enum(['human', 'service', 'agent']).optional(),
});

const schedule = z.object({
  cron: z.string().min(1),
  timezone: z.string().min(1).default('UTC'),
  enabled: z.boolean().default(true),
});

const schema = z.object({
  control_owner: z.string().min(1).default(DEFAULT_SETTINGS.controlOwner),
  fallback_reviewer: z.string().min(1).default(DEFAULT_SETTINGS.fallbackReviewer),
  dormant_days: z.number().int().min(1).max(3650).default(DEFAULT_SETTINGS.dormantDays),
  shared_address_threshold: z
    .number()
    .int()
    .min(2)
    .max(1000)
    .default(DEFAULT_SETTINGS.sharedAddressThreshold),
  remediation_sla_days: z.number().int().min(1).max(365).default(DEFAULT_SETTINGS.remediationSlaDays),
  /** Keyed by subject (as recorded in the log) or API key id. */
  identities: z.record(z.string(), identityOwner).default({}),
  targets: z
    .record(
      z.string(),
      z.object({ owner: z.string().min(1).optional(), privileged_tools: z.array(z.string()).default([]) }),
    )
    .default({}),
  /** Business hours for off-hours anomaly detection (UTC hours, [start, end)). */
  business_hours: z
    .object({ start: z.number().int().min(0).max(23), end: z.number().int().min(1).max(24) })
    .default({ start: 7, end: 19 }),
  schedules: z.record(z.string(), schedule).default({}),
});

export interface IdentityOwner {
  person?: string;
  manager?: string;
  type?: IdentityType;
}

export interface ReportsConfig {
  settings: ReviewSettings;
  identities: Record<string, IdentityOwner>;
  targets: Record<string, { owner?: string; privilegedTools: string[] }>;
  businessHours: { start: number; end: number };
  schedules: Record<string, { cron: string; timezone: string; enabled: boolean }>;
}

export function parseReportsConfig(raw: unknown, where = 'reports'): ReportsConfig {
  const r = schema.safeParse(raw ?? {});
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw new ConfigError(`${where}.${i.path.join('.')}: ${i.message}`);
  }
  const c = r.data;
  return {
    settings: {
      controlOwner: c.control_owner,
      fallbackReviewer: c.fallback_reviewer,
      dormantDays: c.dormant_days,
      sharedAddressThreshold: c.shared_address_threshold,
      remediationSlaDays: c.remediation_sla_days,
    },
    identities: c.identities,
    targets: Object.fromEntries(
      Object.entries(c.targets).map(([k, v]) => [k, { owner: v.owner, privilegedTools: v.privileged_tools }]),
    ),
    businessHours: c.business_hours,
    schedules: c.schedules,
  };
}

export function loadReportsConfig(
  env: Record<string, string | undefined>,
  dataDir: string,
  cwd = process.cwd(),
): ReportsConfig {
  // The service's configuration file is the one place for settings: its `reports:` section wins.
  // A separate reports file (AUDITGATE_REPORTS_CONFIG, or <data dir>/reports.yaml) is still read
  // when that section is absent.
  const main = readConfigDocument(
    { configFile: env.AUDITGATE_CONFIG ? resolve(cwd, env.AUDITGATE_CONFIG) : undefined },
    cwd,
  );
  if (main.doc.reports !== undefined) {
    return parseReportsConfig(main.doc.reports, `${main.path ?? 'configuration'}: reports`);
  }
  const file = env.AUDITGATE_REPORTS_CONFIG
    ? resolve(cwd, env.AUDITGATE_REPORTS_CONFIG)
    : resolve(dataDir, 'reports.yaml');
  if (!existsSync(file)) {
    if (env.AUDITGATE_REPORTS_CONFIG)
      throw new ConfigError(`AUDITGATE_REPORTS_CONFIG: ${file} does not exist`);
    return parseReportsConfig({});
  }
  let doc: unknown;
  try {
    doc = YAML.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ConfigError(`${file}: ${(err as Error).message}`);
  }
  const section =
    doc && typeof doc === 'object' && 'reports' in doc ? (doc as { reports: unknown }).reports : doc;
  return parseReportsConfig(section, `${file}: reports`);
}
