// The composition root: builds every component from a checked Config and wires them together.
// Tests start the whole service through here too, so what they exercise is what `npm start` runs.
import { resolve } from 'node:path';
import type Hapi from '@hapi/hapi';
import type { Config } from './config.ts';
import { createDb, migrate, isPostgres, type Db } from './db.ts';
import { createLogger, type Logger } from './logger.ts';
import { Readiness } from './readiness.ts';
import { createApp } from './app.ts';
import { loadOrCreateLogKey } from './audit/log-key.ts';
import { openKnexLog, type KnexLog } from './audit/knex-log.ts';
import { emptyCheckpointNote, logApiPlugin } from './routes/log-api.ts';
import { VERSION } from './version.ts';
import { mountGateway, type MountedGateway } from './mcp-gateway.ts';
import { readConfigDocument } from './targets.ts';
import { buildIdentity } from './auth/identity.ts';
import { STRATEGY } from './auth/hapi-auth.ts';
import { AUDIT_READ_ROLES } from './auth/roles.ts';
import { mountReports, type MountedReports } from './reports/mount.ts';
import { setupEvidence } from './evidence/setup.ts';
import { metricsPlugin, ServiceMetrics } from './metrics.ts';

export interface Service {
  config: Config;
  server: Hapi.Server;
  db: Db;
  log: KnexLog;
  logger: Logger;
  readiness: Readiness;
  /** The MCP gateway on /mcp/{target}. */
  mcp: MountedGateway;
  /** Reports, campaigns and the job scheduler (register jobs on reports.registry). */
  reports: MountedReports;
  metrics: ServiceMetrics;
  /** Base URL the service listens on (after start). */
  url: string;
  stop(): Promise<void>;
}

export interface ServiceOptions {
  logger?: Logger;
}

export function openDatabase(config: Config): Db {
  return createDb({ databaseUrl: config.databaseUrl, sqliteFile: resolve(config.dataDir, 'auditgate.sqlite') });
}

export async function startService(config: Config, opts: ServiceOptions = {}): Promise<Service> {
  const logger = opts.logger ?? createLogger(config.logLevel);
  const db = openDatabase(config);
  const stoppers: Array<() => Promise<void>> = [];
  try {
    await migrate(db);
    const signer = await loadOrCreateLogKey(config.log.keyFile, config.log.origin);
    const targetNames = new Set<string>();
    const metrics = new ServiceMetrics({ knownTarget: (name) => targetNames.has(name), instance: config.instanceId });
    const log = await openKnexLog(db, {
      origin: config.log.origin,
      signer,
      batchMaxSize: config.log.batchMaxSize,
      batchMaxDelayMs: config.log.batchMaxDelayMs,
      checkpointIntervalMs: config.log.checkpointIntervalMs,
      logger,
      onCommit: metrics.committed,
    });
    stoppers.push(() => log.close());
    metrics.watchLog(log);

    const readiness = new Readiness();
    readiness.register('database', async () => {
      await db.raw('select 1');
      return { ok: true, detail: isPostgres(db) ? 'postgresql' : 'sqlite' };
    });
    readiness.register('audit-log', () => {
      const r = log.selfCheck();
      return { ok: r.ok, detail: r.ok ? { checkedSize: r.checkedSize } : { problems: r.problems } };
    });

    const server = await createApp({ host: config.host, port: config.port, logger, readiness });
    const configDocument = readConfigDocument(config);
    // Identity first: the routes below name its auth strategy. Configuration edits made since the
    // last start are recorded (config.change) before anything is served.
    const identity = await buildIdentity({ config, db, doc: configDocument, logger });
    await identity.recordConfiguration(log);
    await identity.register(server, { sink: log, targetExists: (name) => targetNames.has(name) });
    await server.register({ plugin: metricsPlugin, options: { metrics } });
    await server.register({
      plugin: logApiPlugin,
      options: {
        log,
        emptyCheckpoint: emptyCheckpointNote(config.log.origin, signer),
        // The entries are audit data: auditor, compliance or admin only, and each read is itself logged.
        entriesRoute: {
          auth: { strategy: STRATEGY, access: { scope: [...AUDIT_READ_ROLES] } },
          plugins: { auditgate: { event: 'audit.read', what: 'log entries' } },
        },
      },
    });
    const mcp = await mountGateway({
      config,
      server,
      db,
      log,
      logger,
      configDocument,
      authenticator: identity.authenticator,
      authorizer: identity.authorizer,
      observe: (record) => metrics.observe(record),
    });
    for (const t of mcp.settings.targets) targetNames.add(t.name);

    // Reports and the scheduler; a module with its own scheduled job registers it on
    // reports.registry before reports.start().
    const reports = await mountReports({
      config,
      server,
      db,
      log,
      logger,
      readiness,
      apiKeys: identity.apiKeys,
      targetNames: () => mcp?.settings.targets.map((t) => t.name) ?? [],
      policy: () => identity.policy,
    });
    stoppers.push(() => reports.stop());
    // Evidence bundles: download routes, and the scheduled bundle job on the report scheduler.
    await setupEvidence({ config, db, log, logSigner: signer, server, registry: reports.registry, targetNames: () => mcp.settings.targets.map((t) => t.name), policy: () => identity.policy });

    await server.start();
    await reports.start();
    const url = server.info.uri.replace('0.0.0.0', '127.0.0.1');
    logger.info({ url, version: VERSION, origin: config.log.origin, dataDir: config.dataDir }, 'auditgate started');
    return {
      config,
      server,
      db,
      log,
      logger,
      readiness,
      mcp,
      reports,
      metrics,
      url,
      async stop() {
        await server.stop({ timeout: 5_000 });
        for (const s of stoppers.reverse()) await s();
        await db.destroy();
      },
    };
  } catch (err) {
    for (const s of stoppers.reverse()) await s().catch(() => {});
    await db.destroy().catch(() => {});
    throw err;
  }
}
