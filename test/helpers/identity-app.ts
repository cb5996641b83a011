// The service's hapi app with the identity plugins, a real audit log and a real OpenID provider:
// what the service wires, minus the MCP gateway, so the API/UI side can be tested on its own.
import { randomBytes } from 'node:crypto';
import type Hapi from '@hapi/hapi';
import { createApp } from '../../server/app.ts';
import { loadConfig } from '../../server/config.ts';
import { createLogger } from '../../server/logger.ts';
import { Readiness } from '../../server/readiness.ts';
import { buildIdentity, type Identity } from '../../server/auth/identity.ts';
import { AUDIT_READ_ROLES } from '../../server/auth/roles.ts';
import { STRATEGY } from '../../server/auth/hapi-auth.ts';
import type { KnexLog } from '../../server/audit/knex-log.ts';
import type { AuditRecord } from '../../gateway/audit-record.ts';
import { createTestDb, type DbKind, type TestDb } from './db.ts';
import { openTestLog, testSigner } from './log.ts';
import { startIdp, type IdpAccount, type TestIdp } from './idp.ts';

export const AUDIT_DATA_PATH = '/test/audit-data';

export interface IdentityApp {
  tdb: TestDb;
  idp: TestIdp;
  server: Hapi.Server;
  url: string;
  identity: Identity;
  log: KnexLog;
  webClientSecret: string;
  records(): Promise<AuditRecord[]>;
  cleanup(): Promise<void>;
}

export async function startIdentityApp(opts: {
  kind?: DbKind;
  accounts?: Record<string, IdpAccount>;
  /** Client-credentials clients: id → token claims. */
  agents?: Record<string, Record<string, unknown>>;
  doc?: (issuer: string) => Record<string, unknown>;
}): Promise<IdentityApp> {
  const tdb = await createTestDb(opts.kind ?? 'sqlite');
  const cleanups: Array<() => Promise<unknown>> = [() => tdb.cleanup()];
  try {
    const logger = createLogger('silent');
    const server = await createApp({ host: '127.0.0.1', port: 0, logger, readiness: new Readiness() });
    await server.start();
    cleanups.unshift(() => server.stop());
    const url = `http://127.0.0.1:${server.info.port}`;
    const webClientSecret = randomBytes(24).toString('hex');
    const idp = await startIdp({
      accounts: opts.accounts ?? {},
      clients: [
        { client_id: 'auditgate-web', client_secret: webClientSecret, redirect_uris: [`${url}/auth/login`] },
        ...Object.entries(opts.agents ?? {}).map(([id, claims]) => ({
          client_id: id,
          client_secret: `${id}-secret-${randomBytes(8).toString('hex')}`,
          grant_types: ['client_credentials'],
          tokenClaims: claims,
        })),
      ],
    });
    cleanups.unshift(() => idp.stop());
    const env = {
      HOST: '127.0.0.1',
      PORT: String(server.info.port),
      AUDITGATE_DATA_DIR: tdb.dir,
      AUDITGATE_PUBLIC_URL: url,
      AUDITGATE_OIDC_CLIENT_SECRET: webClientSecret,
      AUDITGATE_SESSION_SECRET: randomBytes(32).toString('base64url'),
    };
    const config = loadConfig(env, tdb.dir);
    const doc = opts.doc?.(idp.issuer) ?? {
      identity: {
        issuers: [
          {
            issuer: idp.issuer,
            jwks_cooldown: '50ms',
            default_roles: [],
            group_roles: {
              'auditgate-admins': ['admin'],
              'auditgate-auditors': ['auditor'],
              'auditgate-compliance': ['compliance'],
              ci: ['agent'],
            },
          },
        ],
        sign_in: {
          issuer: idp.issuer,
          client_id: 'auditgate-web',
          scopes: ['openid', 'profile', 'email', 'groups'],
        },
      },
    };
    const identity = await buildIdentity({ config, db: tdb.db, doc: { doc }, env });
    const signer = testSigner();
    const log = await openTestLog(tdb.db, signer);
    cleanups.unshift(() => log.close());
    await identity.register(server, { sink: log, targetExists: (name) => name === 'github' });
    // Stands for every audit-data route (the log API's /log/entries, reports, bundles).
    server.route({
      method: 'GET',
      path: AUDIT_DATA_PATH,
      options: {
        auth: { strategy: STRATEGY, access: { scope: [...AUDIT_READ_ROLES] } },
        plugins: { auditgate: { event: 'audit.read', what: 'test audit data' } },
      },
      handler: () => ({ entries: ['secret audit data'] }),
    });
    return {
      tdb,
      idp,
      server,
      url,
      identity,
      log,
      webClientSecret,
      async records() {
        const { size } = await log.head();
        const out: AuditRecord[] = [];
        for await (const e of log.entries(0, size))
          out.push(JSON.parse(e.data.toString('utf8')) as AuditRecord);
        return out;
      },
      async cleanup() {
        for (const c of cleanups) await c().catch(() => {});
      },
    };
  } catch (err) {
    for (const c of cleanups) await c().catch(() => {});
    throw err;
  }
}
