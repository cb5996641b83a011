// People sign in with the organisation's OpenID Connect provider: @hapi/bell runs the
// authorization-code flow with PKCE (S256); we verify the ID token ourselves (signature, issuer,
// audience = our client id, expiry), map its groups to roles, and hand a Session to the cookie.
import { randomBytes, createHmac } from 'node:crypto';
import type Hapi from '@hapi/hapi';
import Bell from '@hapi/bell';
import Boom from '@hapi/boom';
import type { IssuerConfig, SignInConfig } from './identity-config.ts';
import { OidcVerifier } from './oidc.ts';
import { groupsOf, rolesFor } from './claims.ts';
import type { Session } from './hapi-auth.ts';

export const LOGIN_STRATEGY = 'auditgate-oidc-login';

export interface SignInOptions {
  signIn: SignInConfig;
  /** The issuer's bearer-token settings, when it is also a trusted issuer (algorithms, subject claim). */
  issuer?: IssuerConfig;
  publicUrl: string;
  /** Derives the bell state-cookie password; never used as is. */
  sessionSecret: string;
  relevantGroups?: ReadonlySet<string>;
}

/** Registers bell and the login strategy. Discovery happens at the first sign-in, not at start-up. */
export async function registerSignIn(server: Hapi.Server, opts: SignInOptions): Promise<OidcVerifier> {
  const s = opts.signIn;
  // ID tokens are checked with the same machinery as access tokens, but in a verifier of their own:
  // the sign-in issuer is not thereby trusted for MCP bearer tokens.
  const idTokens = new OidcVerifier(
    [
      {
        issuer: s.issuer,
        audiences: [],
        algorithms: opts.issuer?.algorithms ?? ['RS256', 'PS256', 'ES256', 'EdDSA'],
        clockSkewSec: opts.issuer?.clockSkewSec ?? 30,
        requiredScopes: [],
        jwksCooldownMs: opts.issuer?.jwksCooldownMs ?? 30_000,
        jwksMaxAgeMs: opts.issuer?.jwksMaxAgeMs ?? 600_000,
        subjectClaim: opts.issuer?.subjectClaim ?? 'sub',
        groupClaims: s.groupClaims,
        groupRoles: s.groupRoles,
        defaultRoles: s.defaultRoles,
        ...(opts.issuer?.jwksUri ? { jwksUri: opts.issuer.jwksUri } : {}),
      },
    ],
    opts.relevantGroups ? { relevantGroups: opts.relevantGroups } : {},
  );
  const meta = () => idTokens.metadata(s.issuer);
  const endpoint = (key: 'authorization_endpoint' | 'token_endpoint') => async () => {
    const m = await meta();
    const v = m[key];
    if (typeof v !== 'string') throw Boom.badGateway(`${s.issuer} publishes no ${key}`);
    return v;
  };

  await server.register(Bell);
  server.auth.strategy(LOGIN_STRATEGY, 'bell', {
    provider: {
      name: 'oidc',
      protocol: 'oauth2',
      useParamsAuth: false,
      pkce: 'S256',
      auth: endpoint('authorization_endpoint'),
      token: endpoint('token_endpoint'),
      scope: s.scopes,
      async profile(credentials: any, params: any, get: (uri: string) => Promise<any>) {
        const idToken = params?.id_token;
        if (typeof idToken !== 'string')
          throw Boom.unauthorized('the identity provider returned no ID token');
        const r = await idTokens.check(idToken, s.clientId);
        if (!r.ok) throw Boom.unauthorized(`ID token rejected: ${r.message}`);
        let claims: Record<string, unknown> = r.claims;
        // Many IdPs put groups only in userinfo: fetch it when the ID token lacks them.
        const m = await meta();
        if (!s.groupClaims.some((c) => c in claims) && typeof m.userinfo_endpoint === 'string') {
          const info = (await get(m.userinfo_endpoint)) as Record<string, unknown>;
          if (info?.sub === claims.sub) claims = { ...info, ...claims };
        }
        const groups = groupsOf(claims, s);
        const keep = opts.relevantGroups ? groups.filter((g) => opts.relevantGroups!.has(g)) : groups;
        const now = Math.floor(Date.now() / 1000);
        const session: Session = {
          v: 1,
          sub: r.actor.subject,
          iss: s.issuer,
          roles: rolesFor(groups, s),
          csrf: randomBytes(32).toString('base64url'),
          iat: now,
          exp: now + Math.floor(s.sessionTtlMs / 1000),
        };
        if (keep.length) session.groups = keep.sort();
        if (typeof claims.name === 'string') session.name = claims.name.slice(0, 256);
        if (typeof claims.email === 'string') session.email = claims.email.slice(0, 256);
        credentials.profile = session;
      },
    },
    password: createHmac('sha256', opts.sessionSecret).update('bell-state-cookie').digest('base64url'),
    clientId: s.clientId,
    clientSecret: s.clientSecret,
    isSecure: opts.publicUrl.startsWith('https:'),
    // The IdP's redirect back is a cross-site navigation: a Strict state cookie would not come along.
    isSameSite: 'Lax',
    location: opts.publicUrl,
    // Only `next` may come through to the callback; anything else in the query is dropped.
    providerParams: {},
  } as any);
  return idTokens;
}

/** A `next` redirect target must stay on this site: a path, not a URL or a protocol-relative path. */
export function safeNext(next: unknown): string {
  if (typeof next !== 'string' || !next.startsWith('/') || next.startsWith('//') || next.includes('\\'))
    return '/';
  return next;
}
