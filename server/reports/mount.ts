// Wires the report subsystem into the service: sources, campaign store, API routes, the job
// registry (other modules add jobs before start) and the scheduler with its /readyz check.
import { join } from 'node:path';
import type Hapi from '@hapi/hapi';
import type { Config } from '../config.ts';
import type { Db } from '../db.ts';
import type { KnexLog } from '../audit/knex-log.ts';
import type { Logger } from '../logger.ts';
import type { Readiness } from '../readiness.ts';
import type { ApiKeyStore } from '../auth/api-keys.ts';
import { JobRegistry, Scheduler } from '../jobs/scheduler.ts';
import { SqlAccessReviewSource } from './access-source.ts';
import { CampaignStore } from './campaigns.ts';
import { loadReportsConfig, type ReportsConfig } from './report-config.ts';
import { reportJobs } from './report-jobs.ts';
import { reportsApiPlugin } from './routes.ts';
import type { GenerateContext } from './generate.ts';
import type { PolicyEngine } from '../policy/policy.ts';

export interface MountedReports {
  config: ReportsConfig;
  registry: JobRegistry;
  scheduler: Scheduler;
  campaigns: CampaignStore;
  generate: GenerateContext;
  /** Starts the scheduler (after every module registered its jobs). */
  start(): Promise<void>;
  stop(): Promise<void>;
}

export async function mountReports(o: {
  config: Config;
  server: Hapi.Server;
  db: Db;
  log: KnexLog;
  logger: Logger;
  readiness: Readiness;
  apiKeys?: ApiKeyStore;
  targetNames?: () => string[];
  policy?: () => PolicyEngine;
  env?: Record<string, string | undefined>;
}): Promise<MountedReports> {
  const reportsConfig = loadReportsConfig(o.env ?? process.env, o.config.dataDir);
  const registry = new JobRegistry();
  const scheduler = new Scheduler({
    db: o.db,
    log: o.log,
    registry,
    holder: o.config.instanceId,
    instance: o.config.instanceId,
    onError: (err, job) => o.logger.error({ err, job }, 'scheduled job failed'),
  });
  const generate: GenerateContext = {
    db: o.db,
    log: o.log,
    config: reportsConfig,
    instance: o.config.instanceId,
    targetNames: o.targetNames,
    policy: o.policy,
    runExceptions: (job, a, b) => scheduler.store.exceptionsBetween(job, a, b),
  };
  const campaigns = new CampaignStore({
    db: o.db,
    log: o.log,
    source: new SqlAccessReviewSource({
      db: o.db,
      log: o.log,
      config: reportsConfig,
      targetNames: o.targetNames,
      policy: o.policy,
    }),
    config: reportsConfig,
    instance: o.config.instanceId,
    runExceptions: (a, b) => scheduler.store.exceptionsBetween('access-review', a, b),
  });
  for (const job of reportJobs({
    ctx: generate,
    campaigns,
    outDir: join(o.config.dataDir, 'reports'),
    schedules: reportsConfig.schedules,
  })) {
    registry.register(job);
  }
  await o.server.register({
    plugin: reportsApiPlugin,
    options: {
      campaigns,
      generate,
      scheduler,
      apiKeys: o.apiKeys,
      sink: o.log,
      instance: o.config.instanceId,
    },
  });
  o.readiness.register('scheduler', () => scheduler.health());
  let started = false;
  return {
    config: reportsConfig,
    registry,
    scheduler,
    campaigns,
    generate,
    async start() {
      await scheduler.start();
      started = true;
    },
    async stop() {
      if (started) await scheduler.stop();
    },
  };
}
