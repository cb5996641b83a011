// Wires the MCP gateway into the service: targets from the configuration file, the real audit log
// as the gateway's AuditSink, the API-key Authenticator (or one the caller passes, e.g. with OIDC),
// and the hapi routes under /mcp/{target}.
import type Hapi from '@hapi/hapi';
import type { Config } from './config.ts';
import type { Db } from './db.ts';
import type { Logger } from './logger.ts';
import type { AuditLog } from './audit/log.ts';
import type { AuditSink, Authenticator, Authorizer } from '../gateway/types.ts';
import type { AuditRecord } from '../gateway/audit-record.ts';
import { Gateway } from '../gateway/gateway.ts';
import { gatewayPlugin } from '../gateway/hapi.ts';
import { ApiKeyStore } from './auth/api-keys.ts';
import { createAuthenticator } from './auth/authenticator.ts';
import { parseGatewayConfig, readConfigDocument, type ConfigDocument, type GatewaySettings } from './targets.ts';
import { VERSION } from './version.ts';

export interface MountedGateway {
  gateway: Gateway;
  settings: GatewaySettings;
  /** Lines telling a person how to connect (printed by `auditgate serve`). */
  connectHelp(url: string): string[];
}

export interface MountOptions {
  config: Config;
  server: Hapi.Server;
  db: Db;
  log: Pick<AuditLog, 'append'>;
  logger: Logger;
  /** The parsed configuration file; read here when not given. */
  configDocument?: ConfigDocument;
  /** Seam for the identity work: an Authenticator that also verifies OIDC bearer tokens. */
  authenticator?: Authenticator;
  /** Per-tool policy (the `policies:` section); without it every authenticated call is allowed. */
  authorizer?: Authorizer;
  env?: Record<string, string | undefined>;
  /** Sees every record the gateway appended, once the log made it durable (metrics). */
  observe?: (record: AuditRecord) => void;
}

export async function mountGateway(opts: MountOptions): Promise<MountedGateway> {
  const doc = opts.configDocument ?? readConfigDocument(opts.config);
  const settings = parseGatewayConfig(doc, opts.env ?? process.env);
  const observe = opts.observe;
  // Counted once durable: a record the gateway retries during an outage is counted once, and one
  // that never made it is not counted at all (the log counts the failed appends).
  const sink: AuditSink = {
    append: observe
      ? async (record) => {
          const index = await opts.log.append(record);
          observe(record);
          return index;
        }
      : (record) => opts.log.append(record),
  };
  const authenticator = opts.authenticator ?? createAuthenticator({ apiKeys: new ApiKeyStore(opts.db) });
  const gateway = new Gateway({
    targets: settings.targets,
    sink,
    authenticator,
    ...(opts.authorizer ? { authorizer: opts.authorizer } : {}),
    publicUrl: opts.config.publicUrl,
    instance: opts.config.instanceId,
    version: VERSION,
    logger: opts.logger.child({ component: 'gateway' }),
    ...(settings.maxBodyBytes !== undefined ? { maxBodyBytes: settings.maxBodyBytes } : {}),
    ...(settings.allowedOrigins ? { allowedOrigins: settings.allowedOrigins } : {}),
    ...(settings.sessionIdleMs !== undefined ? { sessionIdleMs: settings.sessionIdleMs } : {}),
    ...(settings.auditRetryMs !== undefined ? { auditRetryMs: settings.auditRetryMs } : {}),
  });
  await opts.server.register({ plugin: gatewayPlugin, options: { gateway } });
  return {
    gateway,
    settings,
    connectHelp(url: string) {
      const lines = [''];
      lines.push(settings.demo ? 'auditgate is serving the demo target "everything" (MCP reference server over stdio).' : 'auditgate MCP targets:');
      for (const t of settings.targets) lines.push(`  ${url}/mcp/${t.name}   (${t.kind === 'http' ? `→ ${t.url}` : `stdio: ${t.command}`})`);
      lines.push('');
      lines.push('Every request needs an API key. Create one (printed once):');
      lines.push('  npx auditgate keys create --subject my-agent');
      lines.push('then connect an MCP client with the header  Authorization: Bearer <key>, e.g.');
      const first = settings.targets[0]?.name ?? 'everything';
      lines.push(
        `  npx -y @modelcontextprotocol/inspector@2.12.0 --cli --server-url ${url}/mcp/${first} --method tools/list --header "Authorization: Bearer <key>"`,
      );
      lines.push('');
      return lines;
    },
  };
}
