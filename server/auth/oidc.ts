// The OAuth 2.1 resource-server side: bearer JWTs checked against configured issuers (discovery +
// remote JWKS with caching and rotation), with the audience bound to the resource URL (RFC 8707).
import { createHash } from 'node:crypto';
import {
  createRemoteJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  errors as joseErrors,
  jwtVerify,
  type JWTPayload,
  type JWTVerifyGetKey,
} from 'jose';
import type { AuthRequest, AuthResult } from '../../gateway/types.ts';
import type { AuditActor } from '../../gateway/audit-record.ts';
import type { IssuerConfig } from './identity-config.ts';
import { bearerChallenge, type BearerTokenVerifier } from './authenticator.ts';
import { clientIdOf, groupsOf, rolesFor, scopesOf } from './claims.ts';

export interface IssuerMetadata {
  issuer: string;
  jwks_uri: string;
  authorization_endpoint?: string;
  token_endpoint?: string;
  userinfo_endpoint?: string;
  end_session_endpoint?: string;
  [k: string]: unknown;
}

/** The identity provider could not be reached or answered nonsense (not the client's fault). */
export class IssuerUnavailableError extends Error {
  override name = 'IssuerUnavailableError';
}

const FETCH_TIMEOUT_MS = 5_000;
const VERIFIED_TTL_MS = 60_000;
const VERIFIED_MAX = 10_000;
// A failed discovery is retried after this long, so a provider outage at start-up heals by itself.
const DISCOVERY_RETRY_MS = 5_000;

/**
 * OpenID Connect discovery, falling back to RFC 8414 (plain OAuth authorization servers). The
 * document must name the same issuer we asked about (OIDC Discovery §4.3), or we would trust
 * whatever keys a misconfigured or hostile endpoint points at.
 */
export async function discover(issuer: string): Promise<IssuerMetadata> {
  const base = issuer.replace(/\/+$/, '');
  const u = new URL(issuer);
  const path = u.pathname === '/' ? '' : u.pathname.replace(/\/+$/, '');
  const candidates = [
    `${base}/.well-known/openid-configuration`,
    `${u.origin}/.well-known/oauth-authorization-server${path}`,
  ];
  const problems: string[] = [];
  for (const url of candidates) {
    let res: Response;
    try {
      res = await fetch(url, { signal: AbortSignal.timeout(FETCH_TIMEOUT_MS), redirect: 'error' });
    } catch (err) {
      problems.push(`${url}: ${(err as Error).message}`);
      continue;
    }
    if (!res.ok) {
      problems.push(`${url}: HTTP ${res.status}`);
      continue;
    }
    let doc: IssuerMetadata;
    try {
      doc = (await res.json()) as IssuerMetadata;
    } catch {
      problems.push(`${url}: not JSON`);
      continue;
    }
    if (doc.issuer !== issuer) {
      throw new IssuerUnavailableError(
        `${url} names issuer ${JSON.stringify(doc.issuer)}, expected ${issuer}`,
      );
    }
    if (typeof doc.jwks_uri !== 'string') throw new IssuerUnavailableError(`${url} has no jwks_uri`);
    return doc;
  }
  throw new IssuerUnavailableError(`discovery for ${issuer} failed: ${problems.join('; ')}`);
}

export type JwtCheck =
  | { ok: true; claims: JWTPayload; issuer: IssuerConfig; actor: AuditActor }
  | {
      ok: false;
      /** 401 bad token, 403 missing scope, 503 the issuer's keys are unreachable. */
      status: 401 | 403 | 503;
      error: 'invalid_token' | 'insufficient_scope' | 'temporarily_unavailable';
      message: string;
      attempted?: Partial<AuditActor>;
      /** The verified identity, when the token was good but not enough (missing scope). */
      actor?: AuditActor;
      missingScopes?: string[];
    };

function sha256hex(s: string): string {
  return createHash('sha256').update(s, 'utf8').digest('hex');
}

class IssuerState {
  private metadata?: Promise<IssuerMetadata>;
  private failedAt = 0;
  private jwks?: JWTVerifyGetKey;

  constructor(readonly cfg: IssuerConfig) {}

  async meta(): Promise<IssuerMetadata> {
    if (this.metadata && !(this.failedAt && Date.now() - this.failedAt > DISCOVERY_RETRY_MS))
      return this.metadata;
    this.failedAt = 0;
    const p = discover(this.cfg.issuer);
    this.metadata = p;
    p.catch(() => {
      this.failedAt = Date.now();
    });
    return p;
  }

  async keys(): Promise<JWTVerifyGetKey> {
    if (this.jwks) return this.jwks;
    const uri = this.cfg.jwksUri ?? (await this.meta()).jwks_uri;
    // jose refetches on an unknown kid (rotation) at most once per cooldown, and at least every max age.
    this.jwks ??= createRemoteJWKSet(new URL(uri), {
      cooldownDuration: this.cfg.jwksCooldownMs,
      cacheMaxAge: this.cfg.jwksMaxAgeMs,
      timeoutDuration: FETCH_TIMEOUT_MS,
    });
    return this.jwks;
  }
}

export interface OidcVerifierOptions {
  /**
   * Groups worth keeping on the actor (those named by role mapping or policy). Others are dropped
   * so that records stay small and do not leak an identity's unrelated memberships.
   */
  relevantGroups?: ReadonlySet<string>;
}

export class OidcVerifier implements BearerTokenVerifier {
  private readonly issuers = new Map<string, IssuerState>();
  /**
   * Tokens already verified for a resource, by SHA-256 of the token: an RS256 check costs about
   * 0.3 ms, and an agent sends the same token with every message. An entry lives until the token
   * expires but at most VERIFIED_TTL_MS, which bounds how long a key withdrawn from the issuer's
   * JWKS keeps validating tokens it signed.
   */
  private readonly verified = new Map<string, { result: JwtCheck & { ok: true }; until: number }>();

  constructor(
    issuers: IssuerConfig[],
    private readonly opts: OidcVerifierOptions = {},
  ) {
    for (const i of issuers) this.issuers.set(i.issuer, new IssuerState(i));
  }

  get issuerUrls(): string[] {
    return [...this.issuers.keys()];
  }

  metadata(issuer: string): Promise<IssuerMetadata> {
    const s = this.issuers.get(issuer);
    if (!s) throw new Error(`issuer ${issuer} is not configured`);
    return s.meta();
  }

  /** Fetch discovery documents and key sets now (start-up), so the first request is not slow. */
  async warm(): Promise<void> {
    await Promise.allSettled([...this.issuers.values()].map((s) => s.keys()));
  }

  /** Verifies a JWT for one resource (its audience). Never throws for a bad token. */
  async check(token: string, resource: string): Promise<JwtCheck> {
    const tokenHash = sha256hex(token);
    const cacheKey = `${resource}\u0000${tokenHash}`;
    const hit = this.verified.get(cacheKey);
    if (hit) {
      if (Date.now() < hit.until) return hit.result;
      this.verified.delete(cacheKey);
    }
    const r = await this.checkUncached(token, tokenHash, resource);
    if (r.ok && typeof r.claims.exp === 'number') {
      if (this.verified.size >= VERIFIED_MAX) this.verified.clear();
      this.verified.set(cacheKey, {
        result: r,
        until: Math.min(r.claims.exp * 1000, Date.now() + VERIFIED_TTL_MS),
      });
    }
    return r;
  }

  private async checkUncached(token: string, tokenHash: string, resource: string): Promise<JwtCheck> {
    let header: ReturnType<typeof decodeProtectedHeader>;
    let unverified: JWTPayload;
    try {
      header = decodeProtectedHeader(token);
      unverified = decodeJwt(token);
    } catch {
      return {
        ok: false,
        status: 401,
        error: 'invalid_token',
        message: 'malformed bearer token',
        attempted: { auth_method: 'oidc', token_hash: tokenHash },
      };
    }
    // What the token claims, for the refusal record: unverified, so labelled as attempted only.
    const attempted: Partial<AuditActor> = { auth_method: 'oidc', token_hash: tokenHash };
    if (typeof unverified.iss === 'string') attempted.issuer = unverified.iss.slice(0, 512);
    if (typeof unverified.sub === 'string') attempted.subject = unverified.sub.slice(0, 256);
    const refuse = (message: string): JwtCheck => ({
      ok: false,
      status: 401,
      error: 'invalid_token',
      message,
      attempted,
    });

    const state = typeof unverified.iss === 'string' ? this.issuers.get(unverified.iss) : undefined;
    if (!state) return refuse(`token issuer ${JSON.stringify(unverified.iss ?? null)} is not trusted here`);
    const cfg = state.cfg;
    if (typeof header.alg !== 'string' || !cfg.algorithms.includes(header.alg)) {
      return refuse(
        `token algorithm ${JSON.stringify(header.alg ?? null)} is not accepted (allowed: ${cfg.algorithms.join(', ')})`,
      );
    }

    let keys: JWTVerifyGetKey;
    try {
      keys = await state.keys();
    } catch (err) {
      return {
        ok: false,
        status: 503,
        error: 'temporarily_unavailable',
        message: `cannot fetch the signing keys of ${cfg.issuer}: ${(err as Error).message}`,
        attempted,
      };
    }
    let claims: JWTPayload;
    try {
      ({ payload: claims } = await jwtVerify(token, keys, {
        issuer: cfg.issuer,
        audience: [resource, ...cfg.audiences],
        algorithms: cfg.algorithms,
        clockTolerance: cfg.clockSkewSec,
        requiredClaims: ['exp', cfg.subjectClaim],
        ...(cfg.tokenType ? { typ: cfg.tokenType } : {}),
      }));
    } catch (err) {
      return this.explain(err, refuse, cfg, resource, attempted);
    }

    const subject = claims[cfg.subjectClaim];
    if (typeof subject !== 'string' || !subject) return refuse(`token has no ${cfg.subjectClaim} claim`);
    const scopes = scopesOf(claims);
    const groups = groupsOf(claims, cfg);
    const actor: AuditActor = {
      subject,
      auth_method: 'oidc',
      issuer: cfg.issuer,
      roles: rolesFor(groups, cfg),
      scopes,
      token_hash: typeof claims.jti === 'string' && claims.jti ? sha256hex(claims.jti) : tokenHash,
    };
    const clientId = clientIdOf(claims);
    if (clientId) actor.client_id = clientId;
    const keep = this.opts.relevantGroups ? groups.filter((g) => this.opts.relevantGroups!.has(g)) : groups;
    if (keep.length) actor.groups = keep.sort();
    const missing = cfg.requiredScopes.filter((s) => !scopes.includes(s));
    if (missing.length) {
      return {
        ok: false,
        status: 403,
        error: 'insufficient_scope',
        message: `token lacks required scope: ${missing.join(' ')}`,
        actor,
        missingScopes: cfg.requiredScopes,
      };
    }
    return { ok: true, claims, issuer: cfg, actor };
  }

  private explain(
    err: unknown,
    refuse: (m: string) => JwtCheck,
    cfg: IssuerConfig,
    resource: string,
    attempted: Partial<AuditActor>,
  ): JwtCheck {
    if (err instanceof joseErrors.JWTExpired) return refuse('token has expired');
    if (err instanceof joseErrors.JWTClaimValidationFailed) {
      switch (err.claim) {
        case 'nbf':
          return refuse('token is not yet valid (nbf)');
        case 'iat':
          return refuse('token was issued in the future (iat)');
        case 'aud':
          return refuse(`token audience does not include this resource (${resource})`);
        case 'iss':
          return refuse(`token issuer is not ${cfg.issuer}`);
        case 'typ':
          return refuse(`token type must be ${cfg.tokenType}`);
        default:
          return refuse(`token claim ${err.claim} is invalid: ${err.reason}`);
      }
    }
    if (err instanceof joseErrors.JWKSNoMatchingKey)
      return refuse(`token signing key is not among ${cfg.issuer}'s published keys`);
    if (err instanceof joseErrors.JWSSignatureVerificationFailed) return refuse('token signature is invalid');
    if (err instanceof joseErrors.JOSEAlgNotAllowed) return refuse('token algorithm is not accepted');
    if (err instanceof joseErrors.JWKSTimeout || err instanceof joseErrors.JWKSInvalid) {
      return {
        ok: false,
        status: 503,
        error: 'temporarily_unavailable',
        message: `cannot fetch the signing keys of ${cfg.issuer}`,
        attempted,
      };
    }
    if (err instanceof joseErrors.JOSEError) return refuse(`token rejected: ${err.code}`);
    // fetch failures for the JWKS (connection refused…) are not the client's fault either.
    if (err instanceof TypeError || (err as { name?: string })?.name === 'AbortError') {
      return {
        ok: false,
        status: 503,
        error: 'temporarily_unavailable',
        message: `cannot fetch the signing keys of ${cfg.issuer}`,
        attempted,
      };
    }
    throw err;
  }

  /** BearerTokenVerifier for the gateway: audience = the target's resource URL. */
  async verify(token: string, req: AuthRequest): Promise<AuthResult> {
    const r = await this.check(token, req.resourceUrl);
    if (r.ok) return { ok: true, actor: r.actor };
    if (r.status === 403) {
      return {
        ok: false,
        status: 403,
        message: r.message,
        wwwAuthenticate: bearerChallenge(req.resourceUrl, 'insufficient_scope', r.message, {
          scope: (r.missingScopes ?? []).join(' '),
        }),
        ...(r.actor ? { actor: r.actor } : {}),
      };
    }
    if (r.status === 503) {
      return {
        ok: false,
        status: 503,
        message: r.message,
        retryAfterSeconds: 5,
        ...(r.attempted ? { attempted: r.attempted } : {}),
      };
    }
    return {
      ok: false,
      status: 401,
      message: r.message,
      wwwAuthenticate: bearerChallenge(req.resourceUrl, 'invalid_token', r.message),
      ...(r.attempted ? { attempted: r.attempted } : {}),
    };
  }
}
