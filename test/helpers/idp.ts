// A real OpenID provider (oidc-provider, certified) on loopback for the identity tests: sign-in
// with authorization code + PKCE, client-credentials JWT access tokens bound to a resource
// (RFC 8707), and key rotation by swapping the provider instance behind the same URL.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import Provider from 'oidc-provider';

export interface IdpAccount {
  groups?: string[];
  email?: string;
  name?: string;
}

export interface IdpClient {
  client_id: string;
  client_secret: string;
  redirect_uris?: string[];
  grant_types?: string[];
  /** Claims added to this client's client-credentials access tokens (e.g. groups). */
  tokenClaims?: Record<string, unknown>;
}

export interface TestIdp {
  issuer: string;
  /** Private signing keys currently published (first one signs). Tests forge tokens with these. */
  keys: JWK[];
  clients: IdpClient[];
  /** Client-credentials access token (a JWT) for a resource. */
  clientToken(clientId: string, resource: string, scope?: string): Promise<string>;
  /** Replace the signing key: a new kid signs; the old public key stays published if keepOld. */
  rotate(keepOld?: boolean): Promise<JWK>;
  stop(): Promise<void>;
}

export async function signingKey(alg: 'RS256' | 'ES256' = 'RS256'): Promise<JWK> {
  const { privateKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = await exportJWK(privateKey);
  return { ...jwk, alg, use: 'sig', kid: randomBytes(8).toString('hex') };
}

export async function startIdp(opts: {
  accounts: Record<string, IdpAccount>;
  clients: IdpClient[];
  accessTokenTtlSec?: number;
}): Promise<TestIdp> {
  let current: any;
  const server: Server = createServer((req, res) => current.callback()(req, res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const cookieKeys = [randomBytes(32).toString('hex')];

  const make = (keys: JWK[]) => {
    const p = new Provider(issuer, {
      clients: opts.clients.map((c) => ({
        client_id: c.client_id,
        client_secret: c.client_secret,
        redirect_uris: c.redirect_uris ?? [],
        grant_types: c.grant_types ?? ['authorization_code'],
        response_types: c.redirect_uris?.length ? ['code'] : [],
        token_endpoint_auth_method: 'client_secret_basic',
        scope: 'openid profile email groups mcp',
      })),
      jwks: { keys },
      cookies: { keys: cookieKeys },
      // Every authorization request must carry a S256 code challenge: proves bell does PKCE.
      pkce: { methods: ['S256'], required: () => true },
      scopes: ['openid', 'offline_access', 'mcp'],
      claims: { openid: ['sub'], email: ['email'], profile: ['name'], groups: ['groups'] },
      conformIdTokenClaims: false,
      findAccount: async (_ctx: unknown, id: string) => {
        const a = opts.accounts[id];
        if (!a) return undefined;
        return { accountId: id, claims: async () => ({ sub: id, ...a }) };
      },
      features: {
        devInteractions: { enabled: true },
        clientCredentials: { enabled: true },
        resourceIndicators: {
          enabled: true,
          defaultResource: () => undefined,
          useGrantedResource: () => false,
          getResourceServerInfo: (_ctx: unknown, resource: string) => ({
            scope: 'mcp',
            audience: resource,
            accessTokenTTL: opts.accessTokenTtlSec ?? 300,
            accessTokenFormat: 'jwt',
          }),
        },
      },
      extraTokenClaims: (_ctx: unknown, token: { clientId?: string }) =>
        opts.clients.find((c) => c.client_id === token.clientId)?.tokenClaims,
      ttl: {
        AccessToken: opts.accessTokenTtlSec ?? 300,
        ClientCredentials: opts.accessTokenTtlSec ?? 300,
        AuthorizationCode: 60,
        IdToken: 300,
        Interaction: 600,
        Session: 3600,
        Grant: 3600,
      },
    });
    // The provider logs through its own event emitter; keep test output clean.
    p.on('server_error', () => {});
    return p;
  };

  const idp: TestIdp = {
    issuer,
    keys: [await signingKey()],
    clients: opts.clients,
    async clientToken(clientId, resource, scope = 'mcp') {
      const c = opts.clients.find((x) => x.client_id === clientId)!;
      const res = await fetch(`${issuer}/token`, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          authorization: `Basic ${Buffer.from(`${c.client_id}:${c.client_secret}`).toString('base64')}`,
        },
        body: new URLSearchParams({ grant_type: 'client_credentials', resource, scope }),
      });
      const body = (await res.json()) as {
        access_token?: string;
        error?: string;
        error_description?: string;
      };
      if (!body.access_token)
        throw new Error(`token request failed: ${body.error} ${body.error_description}`);
      return body.access_token;
    },
    async rotate(keepOld = true) {
      const next = await signingKey();
      idp.keys = keepOld ? [next, ...idp.keys] : [next];
      current = make(idp.keys);
      return next;
    },
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
  current = make(idp.keys);
  return idp;
}
