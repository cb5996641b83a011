// Composition of everything identity: API keys, OIDC bearer tokens, people's sign-in, roles,
// policy and rate limits, built from the checked configuration. The service hands the gateway
// `authenticator` and `authorizer`, and registers `register()`'s plugins on its hapi server.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type Hapi from '@hapi/hapi';
import type { AuditSink, Authenticator, Authorizer } from '../../gateway/types.ts';
import type { AuditActor } from '../../gateway/audit-record.ts';
import type { Config } from '../config.ts';
import type { Db } from '../db.ts';
import type { Logger } from '../logger.ts';
import { ConfigError } from '../errors.ts';
import { ApiKeyStore } from './api-keys.ts';
import { createAuthenticator } from './authenticator.ts';
import { parseIdentityConfig, type IdentityConfig } from './identity-config.ts';
import { OidcVerifier } from './oidc.ts';
import { RateLimiter } from './rate-limit.ts';
import { PolicyEngine, parsePolicies } from '../policy/policy.ts';
import { identityPlugin } from './hapi-auth.ts';
import { registerSignIn } from './sign-in.ts';
import { configChangeRecord, localActor, stateHash } from './config-change.ts';
import { authRoutesPlugin } from '../routes/auth-routes.ts';
import { adminApiPlugin } from '../routes/admin-api.ts';

export interface Identity {
  settings: IdentityConfig;
  apiKeys: ApiKeyStore;
  oidc?: OidcVerifier;
  policy: PolicyEngine;
  rateLimiter: RateLimiter;
  /** For the gateway: credential + role + rate limit on every /mcp request. */
  authenticator: Authenticator;
  /** For the gateway: per-tool policy. */
  authorizer: Authorizer;
  /** The hapi side: the 'auditgate' auth strategy, sign-in, /auth/*, /api/*, RFC 9728 metadata. */
  register(
    server: Hapi.Server,
    opts: { sink: AuditSink; targetExists(name: string): boolean },
  ): Promise<void>;
  /**
   * Writes a config.change entry for each part of the configuration (policy, identity and role
   * mapping, rate limits, targets) that differs from what was last recorded. Call before serving.
   */
  recordConfiguration(
    sink: AuditSink,
  ): Promise<Array<{ kind: string; before: string | null; after: string }>>;
}

export interface IdentityOptions {
  config: Config;
  db: Db;
  /** The parsed configuration file (server/targets.ts readConfigDocument). */
  doc: { path?: string; doc: Record<string, unknown> };
  env?: Record<string, string | undefined>;
  logger?: Logger;
}

/** AUDITGATE_SESSION_SECRET, or a random one kept in the data directory (one instance only). */
function sessionSecret(settings: IdentityConfig, dataDir: string): string {
  if (settings.sessionSecret) return settings.sessionSecret;
  const file = join(dataDir, 'session-secret');
  if (existsSync(file)) {
    const s = readFileSync(file, 'utf8').trim();
    if (s.length < 32) throw new ConfigError(`${file}: session secret is shorter than 32 characters`);
    return s;
  }
  const s = randomBytes(48).toString('base64url');
  try {
    writeFileSync(file, `${s}\n`, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    // Another process created it first: use theirs.
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return readFileSync(file, 'utf8').trim();
    throw err;
  }
  return s;
}

/** The non-secret identity configuration, as recorded (client secrets and cookie keys left out). */
function identityState(s: IdentityConfig): Record<string, unknown> {
  return {
    issuers: s.issuers,
    sign_in: s.signIn ? { ...s.signIn, clientSecret: undefined } : null,
    api_key_cache_ttl_ms: s.apiKeyCacheTtlMs,
  };
}

/** JSON round trip: drops undefined fields so the stored text and the hash agree. */
function clean(state: unknown): unknown {
  return JSON.parse(JSON.stringify(state)) as unknown;
}

/** The recorded parts of the configuration, each hashed on its own so a change names its part. */
function configParts(settings: IdentityConfig, policy: PolicyEngine, doc: Record<string, unknown>) {
  return [
    { kind: 'policy', state: { policy_hash: policy.hash, rules: policy.rules } },
    { kind: 'identity', state: identityState(settings) },
    { kind: 'rate_limits', state: settings.rateLimits },
    // Targets as written in the file: credentials there are environment-variable names only.
    { kind: 'targets', state: { targets: doc.targets ?? null, gateway: doc.gateway ?? null } },
  ];
}

export async function buildIdentity(opts: IdentityOptions): Promise<Identity> {
  const env = opts.env ?? process.env;
  const settings = parseIdentityConfig(opts.doc.doc as { identity?: unknown; rate_limits?: unknown }, env);
  const policy = new PolicyEngine(parsePolicies(opts.doc.doc.policies));
  const relevantGroups = new Set<string>([
    ...policy.groupsReferenced,
    ...settings.issuers.flatMap((i) => Object.keys(i.groupRoles)),
    ...Object.keys(settings.signIn?.groupRoles ?? {}),
  ]);
  const apiKeys = new ApiKeyStore(opts.db, { cacheTtlMs: settings.apiKeyCacheTtlMs });
  const oidc = settings.issuers.length ? new OidcVerifier(settings.issuers, { relevantGroups }) : undefined;
  const rateLimiter = new RateLimiter(settings.rateLimits);
  const authenticator = createAuthenticator({
    apiKeys,
    ...(oidc ? { bearer: oidc } : {}),
    ...(rateLimiter.enabled ? { rateLimiter } : {}),
  });
  const secret = sessionSecret(settings, opts.config.dataDir);
  const publicUrl = opts.config.publicUrl;
  const instance = opts.config.instanceId;
  if (oidc) {
    // Fetch discovery documents and keys now so the first request is fast; failures are retried.
    void oidc.warm();
  }

  return {
    settings,
    apiKeys,
    ...(oidc ? { oidc } : {}),
    policy,
    rateLimiter,
    authenticator,
    authorizer: policy,
    async register(server, { sink, targetExists }) {
      await server.register({
        plugin: identityPlugin,
        options: {
          apiKeys,
          ...(oidc ? { oidc } : {}),
          publicUrl,
          sessionSecret: secret,
          sessionTtlMs: settings.signIn?.sessionTtlMs ?? 8 * 3_600_000,
          sink,
          instance,
        },
      });
      if (settings.signIn) {
        const issuer = settings.issuers.find((i) => i.issuer === settings.signIn!.issuer);
        await registerSignIn(server, {
          signIn: settings.signIn,
          ...(issuer ? { issuer } : {}),
          publicUrl,
          sessionSecret: secret,
          relevantGroups,
        });
      }
      await server.register({
        plugin: authRoutesPlugin,
        options: {
          publicUrl,
          signIn: Boolean(settings.signIn),
          authorizationServers: settings.issuers.map((i) => i.issuer),
          scopesSupported: [...new Set(settings.issuers.flatMap((i) => i.requiredScopes))],
          targetExists,
        },
      });
      await server.register({
        plugin: adminApiPlugin,
        options: { apiKeys, policy: () => policy, sink, instance },
      });
    },
    async recordConfiguration(sink) {
      const parts = configParts(settings, policy, opts.doc.doc);
      // What an empty configuration looks like: a fresh install without a file records nothing.
      const empty = configParts(parseIdentityConfig(undefined, {}), new PolicyEngine([]), {});
      const defaults = new Map(empty.map((p) => [p.kind, stateHash(clean(p.state))]));
      const actor: AuditActor = localActor();
      const changed: Array<{ kind: string; before: string | null; after: string }> = [];
      for (const { kind, state } of parts) {
        const current = clean(state);
        const after = stateHash(current)!;
        const prev = (await opts.db('config_state').where({ kind }).first()) as
          { sha256: string; state: string } | undefined;
        if ((prev?.sha256 ?? defaults.get(kind)) === after) continue;
        await sink.append(
          configChangeRecord(
            actor,
            {
              kind,
              action: prev ? 'update' : 'load',
              before: prev ? (JSON.parse(prev.state) as unknown) : undefined,
              after: current,
              summary: {
                source: opts.doc.path ?? '(defaults)',
                ...(kind === 'policy' ? { policy_hash: policy.hash } : {}),
              },
            },
            instance,
          ),
        );
        const row = {
          kind,
          sha256: after,
          state: JSON.stringify(current),
          changed_at: new Date().toISOString(),
        };
        if (prev) await opts.db('config_state').where({ kind }).update(row);
        else await opts.db('config_state').insert(row).onConflict('kind').merge();
        changed.push({ kind, before: prev?.sha256 ?? null, after });
      }
      return changed;
    },
  };
}
