// The gateway's Authenticator: turns the credential on each MCP request into a verified actor, or
// a refusal the gateway can send (401/403 with WWW-Authenticate) and record. API keys are checked
// here; JWT bearer tokens are handed to the OIDC verifier when one is configured.
import type { AuthRequest, AuthResult, Authenticator } from '../../gateway/types.ts';
import type { AuditActor } from '../../gateway/audit-record.ts';
import { looksLikeApiKey, type ApiKeyStore } from './api-keys.ts';
import { MCP_ROLE } from './roles.ts';
import type { RateLimiter } from './rate-limit.ts';

/** Verifies non-API-key bearer tokens (OIDC JWTs). Returns the actor or a refusal. */
export interface BearerTokenVerifier {
  verify(token: string, req: AuthRequest): Promise<AuthResult>;
}

export interface AuthenticatorOptions {
  apiKeys: ApiKeyStore;
  /** JWT verification (OIDC issuers); without it only API keys are accepted. */
  bearer?: BearerTokenVerifier;
  /** Role an identity must hold to pass; default 'agent' (MCP traffic). null: any authenticated identity. */
  requiredRole?: string | null;
  /** Per-identity and per-target limits, checked once the identity is known (429 when exceeded). */
  rateLimiter?: RateLimiter;
}

/**
 * RFC 9728 §3.1: the metadata URL inserts /.well-known/oauth-protected-resource between the host
 * and the resource's path, e.g. https://gw/mcp/github → https://gw/.well-known/oauth-protected-resource/mcp/github.
 */
export function resourceMetadataUrl(resourceUrl: string): string {
  const u = new URL(resourceUrl);
  const path = u.pathname === '/' ? '' : u.pathname.replace(/\/+$/, '');
  return `${u.origin}/.well-known/oauth-protected-resource${path}`;
}

/** A quoted-string for an auth-param (RFC 9110 §11.2): escape backslash and quote, drop controls. */
function quote(s: string): string {
  // eslint-disable-next-line no-control-regex
  return `"${s.replace(/[\u0000-\u001f\u007f]/g, ' ').replace(/["\\]/g, '\\$&')}"`;
}

/** WWW-Authenticate for a refusal. No error code when no credential was sent (RFC 6750 §3.1). */
export function bearerChallenge(
  resourceUrl: string,
  error?: 'invalid_request' | 'invalid_token' | 'insufficient_scope',
  description?: string,
  extra: Record<string, string> = {},
): string {
  const params = [`resource_metadata=${quote(resourceMetadataUrl(resourceUrl))}`];
  if (error) params.push(`error=${quote(error)}`);
  if (error && description) params.push(`error_description=${quote(description)}`);
  for (const [k, v] of Object.entries(extra)) params.push(`${k}=${quote(v)}`);
  return `Bearer ${params.join(', ')}`;
}

export function unauthorized(
  req: AuthRequest,
  message: string,
  error?: 'invalid_request' | 'invalid_token',
  attempted?: Partial<AuditActor>,
): AuthResult {
  return {
    ok: false,
    status: 401,
    message,
    wwwAuthenticate: bearerChallenge(req.resourceUrl, error, error ? message : undefined),
    ...(attempted ? { attempted } : {}),
  };
}

function single(v: string | string[] | undefined): string | string[] | undefined {
  return Array.isArray(v) && v.length === 1 ? v[0] : v;
}

type Credential =
  { kind: 'bearer' | 'x-api-key'; value: string } | { kind: 'none' } | { kind: 'bad'; message: string };

/** Finds the one credential on a request. Two credentials (RFC 6750 §2) or a bad header is an error. */
export function extractCredential(headers: AuthRequest['headers']): Credential {
  const auth = single(headers['authorization']);
  const xkey = single(headers['x-api-key']);
  if (Array.isArray(auth) || Array.isArray(xkey))
    return { kind: 'bad', message: 'more than one credential header' };
  if (auth !== undefined && xkey !== undefined) {
    return { kind: 'bad', message: 'send one credential: Authorization or X-API-Key, not both' };
  }
  if (xkey !== undefined) {
    const v = xkey.trim();
    return v ? { kind: 'x-api-key', value: v } : { kind: 'bad', message: 'empty X-API-Key header' };
  }
  if (auth === undefined) return { kind: 'none' };
  const m = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i.exec(auth);
  if (!m) {
    const scheme = /^\S+/.exec(auth)?.[0] ?? '';
    return /^bearer$/i.test(scheme)
      ? { kind: 'bad', message: 'malformed bearer token' }
      : { kind: 'bad', message: 'unsupported authorization scheme: use Bearer' };
  }
  return { kind: 'bearer', value: m[1]! };
}

export function createAuthenticator(opts: AuthenticatorOptions): Authenticator {
  const requiredRole = opts.requiredRole === undefined ? MCP_ROLE : opts.requiredRole;

  const admit = (req: AuthRequest, res: AuthResult): AuthResult => {
    if (!res.ok || !opts.rateLimiter) return res;
    const r = opts.rateLimiter.take(res.actor, req.target);
    if (r.ok) return res;
    return {
      ok: false,
      status: 429,
      message: r.message,
      retryAfterSeconds: r.retryAfterSeconds,
      actor: res.actor,
    };
  };

  const withRole = (req: AuthRequest, res: AuthResult): AuthResult => {
    if (!res.ok) return res;
    if (requiredRole === null || res.actor.roles?.includes(requiredRole)) return admit(req, res);
    return {
      ok: false,
      status: 403,
      message: `${res.actor.subject} does not have the '${requiredRole}' role needed for MCP traffic`,
      wwwAuthenticate: bearerChallenge(
        req.resourceUrl,
        'insufficient_scope',
        `the '${requiredRole}' role is required`,
      ),
      actor: res.actor,
    };
  };

  return {
    async authenticate(req: AuthRequest): Promise<AuthResult> {
      const cred = extractCredential(req.headers);
      if (cred.kind === 'none')
        return unauthorized(req, 'authentication required: send Authorization: Bearer <token or API key>');
      if (cred.kind === 'bad') return unauthorized(req, cred.message, 'invalid_request');
      if (cred.kind === 'x-api-key' || looksLikeApiKey(cred.value)) {
        const r = await opts.apiKeys.verify(cred.value);
        if (r.ok) {
          return withRole(req, {
            ok: true,
            actor: {
              subject: r.key.subject,
              auth_method: 'api_key',
              key_id: r.key.id,
              roles: [...r.key.roles],
            },
          });
        }
        const attempted: Partial<AuditActor> = { auth_method: 'api_key' };
        if (r.keyId) attempted.key_id = r.keyId;
        if (r.subject) attempted.subject = r.subject;
        const message = {
          malformed: 'malformed API key',
          unknown: 'unknown API key',
          revoked: `API key ${r.keyId} has been revoked`,
          expired: `API key ${r.keyId} has expired`,
        }[r.reason];
        return unauthorized(req, message, 'invalid_token', attempted);
      }
      if (!opts.bearer)
        return unauthorized(
          req,
          'bearer token not accepted: this gateway accepts API keys only',
          'invalid_token',
        );
      return withRole(req, await opts.bearer.verify(cred.value, req));
    },
  };
}
