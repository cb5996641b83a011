// Wiring for the composition root (server/service.ts): evidence settings from the environment,
// the signing key (created on first use), the store, the service, its HTTP routes and — when a
// schedule is configured — the scheduled job in the report scheduler's registry.
import type Hapi from '@hapi/hapi';
import type { Config } from '../config.ts';
import type { Db } from '../db.ts';
import type { KnexLog } from '../audit/knex-log.ts';
import type { NoteSigner } from '../audit/note.ts';
import type { JobRegistry } from '../jobs/scheduler.ts';
import { VERSION } from '../version.ts';
import { loadEvidenceConfig, type EvidenceConfig } from './config.ts';
import { loadOrCreateEvidenceKey } from './signing-key.ts';
import { EvidenceService, createEvidenceStore } from './bundle-service.ts';
import { evidenceReports } from './reports-source.ts';
import type { PolicyEngine } from '../policy/policy.ts';
import { evidenceJob } from './job.ts';
import { evidenceRoutesPlugin } from './routes.ts';

export interface EvidenceSetupOptions {
  config: Config;
  env?: Record<string, string | undefined>;
  db: Db;
  log: KnexLog;
  /** The log's signing key (checkpoints at exactly the period boundaries). */
  logSigner: NoteSigner;
  /** Registers the routes when given. */
  server?: Hapi.Server;
  /** Registers the scheduled job when given and AUDITGATE_EVIDENCE_SCHEDULE is not "off". */
  registry?: JobRegistry;
  targetNames?: () => string[] | Promise<string[]>;
  policy?: () => PolicyEngine;
}

export async function setupEvidence(o: EvidenceSetupOptions): Promise<{ service: EvidenceService; config: EvidenceConfig }> {
  const env = o.env ?? process.env;
  const config = loadEvidenceConfig(env, o.config.dataDir, o.config.log.origin);
  const service = new EvidenceService({
    db: o.db,
    log: o.log,
    logSigner: o.logSigner,
    config,
    store: createEvidenceStore(config.store),
    evidenceKey: await loadOrCreateEvidenceKey(config.keyFile),
    instance: o.config.instanceId,
    version: VERSION,
    reports: evidenceReports({ db: o.db, log: o.log, env, dataDir: o.config.dataDir, cwd: process.cwd(), instance: o.config.instanceId, targetNames: o.targetNames, policy: o.policy }),
  });
  if (o.server) await o.server.register({ plugin: evidenceRoutesPlugin, options: { service } });
  if (o.registry && config.schedule) o.registry.register(evidenceJob(service, config.schedule));
  return { service, config };
}
