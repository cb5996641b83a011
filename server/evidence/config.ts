// Evidence bundle settings from the environment, checked once (a wrong value names its variable).
// S3 credentials are not configured here: the AWS SDK's default provider chain finds them
// (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, shared config files, instance or task roles).
import { resolve } from 'node:path';
import cron from 'node-cron';
import { ConfigError } from '../errors.ts';
import { boolVar, intVar, type Env } from '../env-vars.ts';
import { DEFAULT_NAMESPACE } from '../../reports/evidence/layout.ts';
import type { RetentionMode } from '../../reports/evidence/stores/store.ts';

export type EvidencePeriodKind = 'month' | 'quarter' | 'day';

export interface EvidenceConfig {
  /** Ed25519 evidence signing key (PKCS#8 PEM), created on first use. */
  keyFile: string;
  namespace: string;
  principal: string;
  store:
    | { kind: 'local'; directory: string }
    | {
        kind: 's3';
        bucket: string;
        prefix: string;
        region: string;
        endpoint?: string;
        forcePathStyle: boolean;
      };
  /** Object Lock retention for stored bundles (S3); retain-until = period end + retentionDays. */
  retention?: { mode: RetentionMode; days: number };
  /** Scheduled bundles: cron, time zone and the period each run covers (the one just ended). */
  schedule: { cron: string; timezone: string; period: EvidencePeriodKind } | null;
  /** Lifetime of pre-signed download URLs. */
  urlTtlSeconds: number;
  /** Where bundles are built before they are stored. */
  workDir: string;
  /** RFC 3161 time-stamp authority for the manifest, when set. */
  tsaUrl?: string;
}

export function loadEvidenceConfig(env: Env, dataDir: string, origin: string, cwd = process.cwd()): EvidenceConfig {
  const kind = env.AUDITGATE_EVIDENCE_STORE || 'local';
  let store: EvidenceConfig['store'];
  if (kind === 'local') {
    store = { kind, directory: resolve(cwd, env.AUDITGATE_EVIDENCE_DIR || resolve(dataDir, 'evidence')) };
  } else if (kind === 's3') {
    const bucket = env.AUDITGATE_EVIDENCE_S3_BUCKET;
    if (!bucket || !/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
      throw new ConfigError('AUDITGATE_EVIDENCE_S3_BUCKET: an S3 bucket name (3–63 lower-case letters, digits, dots, hyphens) is required with AUDITGATE_EVIDENCE_STORE=s3');
    }
    const endpoint = env.AUDITGATE_EVIDENCE_S3_ENDPOINT || env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || undefined;
    if (endpoint) {
      try {
        new URL(endpoint);
      } catch {
        throw new ConfigError(`AUDITGATE_EVIDENCE_S3_ENDPOINT: ${JSON.stringify(endpoint)} is not a URL`);
      }
    }
    store = {
      kind,
      bucket,
      prefix: env.AUDITGATE_EVIDENCE_S3_PREFIX ?? 'auditgate/evidence/',
      region: env.AUDITGATE_EVIDENCE_S3_REGION || env.AWS_REGION || env.AWS_DEFAULT_REGION || 'us-east-1',
      endpoint,
      forcePathStyle: boolVar(env, 'AUDITGATE_EVIDENCE_S3_FORCE_PATH_STYLE', Boolean(endpoint)),
    };
  } else {
    throw new ConfigError(`AUDITGATE_EVIDENCE_STORE: expected local or s3, got ${JSON.stringify(kind)}`);
  }

  let retention: EvidenceConfig['retention'];
  const mode = env.AUDITGATE_EVIDENCE_LOCK_MODE;
  if (mode) {
    if (mode !== 'COMPLIANCE' && mode !== 'GOVERNANCE') {
      throw new ConfigError(`AUDITGATE_EVIDENCE_LOCK_MODE: expected COMPLIANCE or GOVERNANCE, got ${JSON.stringify(mode)}`);
    }
    retention = { mode, days: intVar(env, 'AUDITGATE_EVIDENCE_RETENTION_DAYS', 2557, 1, 36_500) };
  } else if (env.AUDITGATE_EVIDENCE_RETENTION_DAYS) {
    throw new ConfigError('AUDITGATE_EVIDENCE_RETENTION_DAYS: set AUDITGATE_EVIDENCE_LOCK_MODE (COMPLIANCE or GOVERNANCE) too');
  }

  let schedule: EvidenceConfig['schedule'] = null;
  const cronExpr = env.AUDITGATE_EVIDENCE_SCHEDULE ?? '15 0 1 * *';
  if (cronExpr !== '' && cronExpr !== 'off') {
    if (!cron.validate(cronExpr)) throw new ConfigError(`AUDITGATE_EVIDENCE_SCHEDULE: ${JSON.stringify(cronExpr)} is not a cron expression`);
    const period = (env.AUDITGATE_EVIDENCE_PERIOD || 'month') as EvidencePeriodKind;
    if (!['month', 'quarter', 'day'].includes(period)) {
      throw new ConfigError(`AUDITGATE_EVIDENCE_PERIOD: expected month, quarter or day, got ${JSON.stringify(period)}`);
    }
    schedule = { cron: cronExpr, timezone: env.AUDITGATE_EVIDENCE_TZ || 'UTC', period };
  }

  const namespace = env.AUDITGATE_EVIDENCE_NAMESPACE || DEFAULT_NAMESPACE;
  if (/[\s"\\]/.test(namespace)) throw new ConfigError('AUDITGATE_EVIDENCE_NAMESPACE: no spaces, quotes or backslashes');
  const principal = env.AUDITGATE_EVIDENCE_PRINCIPAL || `evidence@${origin.split('/')[0]}`;
  if (/[\s"]/.test(principal)) throw new ConfigError('AUDITGATE_EVIDENCE_PRINCIPAL: no spaces or quotes');
  const tsaUrl = env.AUDITGATE_EVIDENCE_TSA_URL || undefined;
  if (tsaUrl && !/^https?:\/\//.test(tsaUrl)) throw new ConfigError('AUDITGATE_EVIDENCE_TSA_URL: expected an http(s) URL');

  return {
    keyFile: resolve(cwd, env.AUDITGATE_EVIDENCE_KEY_FILE || resolve(dataDir, 'evidence-key.pem')),
    namespace,
    principal,
    store,
    retention,
    schedule,
    urlTtlSeconds: intVar(env, 'AUDITGATE_EVIDENCE_URL_TTL', 300, 10, 7 * 86_400),
    workDir: resolve(dataDir, 'tmp'),
    tsaUrl,
  };
}
