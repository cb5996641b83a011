// The identity part of the configuration file (AUDITGATE_CONFIG): trusted token issuers, people's
// sign-in, role mapping, API-key cache and rate limits. The file is read by one loader; this module
// only validates its `identity:` and `rate_limits:` sections, with messages naming the key.
import { z } from 'zod';
import { ConfigError } from '../errors.ts';
import { ROLES, type Role } from './roles.ts';

/** `30s`, `5m`, `8h`, `1d`, `250ms` or a number of seconds → milliseconds. */
export function parseDuration(v: string | number, key: string): number {
  if (typeof v === 'number') {
    if (!(v >= 0) || !Number.isFinite(v)) throw new ConfigError(`${key}: expected a non-negative duration`);
    return v * 1000;
  }
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(v.trim());
  if (!m)
    throw new ConfigError(`${key}: expected a duration like 30s, 5m, 8h or 250ms, got ${JSON.stringify(v)}`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[
    m[2] as 'ms' | 's' | 'm' | 'h' | 'd'
  ];
  return Math.round(Number(m[1]) * unit);
}

// Asymmetric only: an HMAC algorithm would let anyone holding the issuer's *public* key mint tokens.
export const ASYMMETRIC_ALGS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
] as const;

const duration = z.union([z.string(), z.number()]);
const role = z.enum(ROLES);
const httpsOrLoopbackUrl = z.string().refine(
  (s) => {
    try {
      const u = new URL(s);
      return (
        u.protocol === 'https:' ||
        (u.protocol === 'http:' && ['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname))
      );
    } catch {
      return false;
    }
  },
  { message: 'must be an https:// URL (http:// only on loopback)' },
);

const roleMapping = z
  .object({
    /** Claims holding group names/ids or app roles (dot paths, e.g. realm_access.roles). */
    group_claims: z.array(z.string().min(1)).default(['groups']),
    /** Group (claim value) → auditgate roles. */
    group_roles: z.record(z.string(), z.array(role)).default({}),
    /**
     * Roles every identity from this issuer gets, in addition to mapped ones. 'agent' by default:
     * a token whose audience is one of our MCP resources was issued for MCP traffic.
     */
    default_roles: z.array(role).default(['agent']),
  })
  .strict();

const issuerSchema = z
  .object({
    issuer: httpsOrLoopbackUrl,
    /** Skip discovery and use this JWKS. */
    jwks_uri: httpsOrLoopbackUrl.optional(),
    /** Extra audiences accepted besides the resource URL (weakens per-target binding; avoid). */
    audiences: z.array(z.string().min(1)).default([]),
    algorithms: z.array(z.enum(ASYMMETRIC_ALGS)).min(1).default(['RS256', 'PS256', 'ES256', 'EdDSA']),
    clock_skew: duration.default('30s'),
    /** Scopes every token must carry for MCP traffic (403 insufficient_scope otherwise). */
    required_scopes: z.array(z.string().min(1)).default([]),
    /** Refetch the JWKS on an unknown kid at most this often. */
    jwks_cooldown: duration.default('30s'),
    /** Refetch the JWKS at least this often even when every kid is known. */
    jwks_max_age: duration.default('10m'),
    /** Required JWT `typ` header, e.g. at+jwt (RFC 9068); unset accepts any. */
    token_type: z.string().optional(),
    /** Claim naming the principal (Entra: oid is stable across apps, sub is not). */
    subject_claim: z.string().min(1).default('sub'),
    ...roleMapping.shape,
  })
  .strict();

const signInSchema = z
  .object({
    issuer: httpsOrLoopbackUrl,
    client_id: z.string().min(1),
    /** Environment variable holding the client secret (secrets never live in the file). */
    client_secret_env: z.string().min(1).default('AUDITGATE_OIDC_CLIENT_SECRET'),
    scopes: z.array(z.string().min(1)).default(['openid', 'profile', 'email']),
    session_ttl: duration.default('8h'),
    // Without defaults: absent keys fall back to the issuer's mapping.
    group_claims: z.array(z.string().min(1)).optional(),
    group_roles: z.record(z.string(), z.array(role)).optional(),
    default_roles: z.array(role).optional(),
  })
  .strict();

const limitSchema = z.object({ requests: z.number().int().positive(), per: duration }).strict();

const identitySchema = z
  .object({
    issuers: z.array(issuerSchema).default([]),
    sign_in: signInSchema.optional(),
    api_keys: z
      .object({ cache_ttl: duration.default('1s') })
      .strict()
      .default({ cache_ttl: '1s' }),
  })
  .strict();

const rateLimitsSchema = z
  .object({
    per_identity: limitSchema.optional(),
    per_target: limitSchema.optional(),
    /** Per-target overrides by target name. */
    targets: z.record(z.string(), limitSchema).default({}),
  })
  .strict();

export interface RoleMapping {
  groupClaims: string[];
  groupRoles: Record<string, Role[]>;
  defaultRoles: Role[];
}

export interface IssuerConfig extends RoleMapping {
  issuer: string;
  jwksUri?: string;
  audiences: string[];
  algorithms: string[];
  clockSkewSec: number;
  requiredScopes: string[];
  jwksCooldownMs: number;
  jwksMaxAgeMs: number;
  tokenType?: string;
  subjectClaim: string;
}

export interface SignInConfig extends RoleMapping {
  issuer: string;
  clientId: string;
  clientSecret: string;
  scopes: string[];
  sessionTtlMs: number;
}

export interface RateLimit {
  requests: number;
  perMs: number;
}

export interface RateLimitConfig {
  perIdentity?: RateLimit;
  perTarget?: RateLimit;
  targets: Record<string, RateLimit>;
}

export interface IdentityConfig {
  issuers: IssuerConfig[];
  signIn?: SignInConfig;
  apiKeyCacheTtlMs: number;
  /** Cookie encryption password (≥ 32 chars): AUDITGATE_SESSION_SECRET or generated. */
  sessionSecret?: string;
  rateLimits: RateLimitConfig;
}

function fail(section: string, err: z.ZodError): never {
  const first = err.issues[0]!;
  const path = [section, ...first.path.map(String)].join('.');
  throw new ConfigError(`${path}: ${first.message}`);
}

function mapping(m: {
  group_claims?: string[];
  group_roles?: Record<string, Role[]>;
  default_roles?: Role[];
}): RoleMapping {
  return {
    groupClaims: m.group_claims ?? ['groups'],
    groupRoles: m.group_roles ?? {},
    defaultRoles: m.default_roles ?? [],
  };
}

function limit(l: z.infer<typeof limitSchema>, key: string): RateLimit {
  const perMs = parseDuration(l.per, `${key}.per`);
  if (perMs <= 0) throw new ConfigError(`${key}.per: must be longer than 0`);
  return { requests: l.requests, perMs };
}

/**
 * Validates the `identity` and `rate_limits` sections of the parsed configuration document.
 * Secrets come from the environment: the sign-in client secret and the session cookie secret.
 */
export function parseIdentityConfig(
  doc: { identity?: unknown; rate_limits?: unknown } | undefined,
  env: Record<string, string | undefined> = process.env,
): IdentityConfig {
  const idRes = identitySchema.safeParse(doc?.identity ?? {});
  if (!idRes.success) fail('identity', idRes.error);
  const rlRes = rateLimitsSchema.safeParse(doc?.rate_limits ?? {});
  if (!rlRes.success) fail('rate_limits', rlRes.error);
  const id = idRes.data;
  const rl = rlRes.data;

  const seen = new Set<string>();
  const issuers = id.issuers.map((i, n): IssuerConfig => {
    const key = `identity.issuers.${n}`;
    if (seen.has(i.issuer)) throw new ConfigError(`${key}.issuer: ${i.issuer} is listed twice`);
    seen.add(i.issuer);
    return {
      issuer: i.issuer,
      ...(i.jwks_uri ? { jwksUri: i.jwks_uri } : {}),
      audiences: i.audiences,
      algorithms: i.algorithms,
      clockSkewSec: Math.round(parseDuration(i.clock_skew, `${key}.clock_skew`) / 1000),
      requiredScopes: i.required_scopes,
      jwksCooldownMs: parseDuration(i.jwks_cooldown, `${key}.jwks_cooldown`),
      jwksMaxAgeMs: parseDuration(i.jwks_max_age, `${key}.jwks_max_age`),
      ...(i.token_type ? { tokenType: i.token_type } : {}),
      subjectClaim: i.subject_claim,
      ...mapping(i),
    };
  });
  for (const i of issuers) {
    if (i.clockSkewSec > 300)
      throw new ConfigError(`identity.issuers: clock_skew for ${i.issuer} is above 5m`);
  }

  let signIn: SignInConfig | undefined;
  if (id.sign_in) {
    const s = id.sign_in;
    const clientSecret = env[s.client_secret_env];
    if (!clientSecret) {
      throw new ConfigError(
        `identity.sign_in.client_secret_env: environment variable ${s.client_secret_env} is not set`,
      );
    }
    if (!s.scopes.includes('openid')) throw new ConfigError(`identity.sign_in.scopes: must include openid`);
    // Sign-in falls back to the issuer's role mapping when it has none of its own.
    const base = issuers.find((i) => i.issuer === s.issuer);
    const own = mapping(s);
    signIn = {
      issuer: s.issuer,
      clientId: s.client_id,
      clientSecret,
      scopes: s.scopes,
      sessionTtlMs: parseDuration(s.session_ttl, 'identity.sign_in.session_ttl'),
      groupClaims: s.group_claims ?? base?.groupClaims ?? own.groupClaims,
      groupRoles: s.group_roles ?? base?.groupRoles ?? own.groupRoles,
      defaultRoles: s.default_roles ?? [],
    };
  }

  const sessionSecret = env.AUDITGATE_SESSION_SECRET || undefined;
  if (sessionSecret !== undefined && sessionSecret.length < 32) {
    throw new ConfigError('AUDITGATE_SESSION_SECRET: must be at least 32 characters');
  }

  const targets: Record<string, RateLimit> = {};
  for (const [name, l] of Object.entries(rl.targets)) targets[name] = limit(l, `rate_limits.targets.${name}`);
  return {
    issuers,
    ...(signIn ? { signIn } : {}),
    apiKeyCacheTtlMs: parseDuration(id.api_keys.cache_ttl, 'identity.api_keys.cache_ttl'),
    ...(sessionSecret ? { sessionSecret } : {}),
    rateLimits: {
      ...(rl.per_identity ? { perIdentity: limit(rl.per_identity, 'rate_limits.per_identity') } : {}),
      ...(rl.per_target ? { perTarget: limit(rl.per_target, 'rate_limits.per_target') } : {}),
      targets,
    },
  };
}
