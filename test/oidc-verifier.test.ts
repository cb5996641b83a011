// Bearer JWT validation against a real OpenID provider on loopback: good tokens map to actors,
// every attack from the identity issue is refused with the right status and a precise message.
import test from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import { decodeJwt } from 'jose';
import { startIdp, signingKey } from './helpers/idp.ts';
import { signWith, unsigned, hs256WithPublicKey, tamper, nowSec } from './helpers/forge.ts';
import { OidcVerifier } from '../server/auth/oidc.ts';
import { parseIdentityConfig } from '../server/auth/identity-config.ts';
import { createAuthenticator } from '../server/auth/authenticator.ts';
import { ApiKeyStore } from '../server/auth/api-keys.ts';
import type { AuthRequest, AuthResult } from '../gateway/types.ts';
import type { Db } from '../server/db.ts';

const RESOURCE = 'http://127.0.0.1:8080/mcp/github';
const OTHER_RESOURCE = 'http://127.0.0.1:8080/mcp/payments';
const secret = () => randomBytes(24).toString('hex');

async function setup(t: any, identity: Record<string, unknown> = {}) {
  const idp = await startIdp({
    accounts: {},
    clients: [
      {
        client_id: 'agent-ci',
        client_secret: secret(),
        grant_types: ['client_credentials'],
        tokenClaims: { groups: ['ci', 'unrelated'] },
      },
      { client_id: 'agent-plain', client_secret: secret(), grant_types: ['client_credentials'] },
    ],
  });
  t.teardown(() => idp.stop());
  const cfg = parseIdentityConfig({
    identity: {
      issuers: [
        {
          issuer: idp.issuer,
          jwks_cooldown: '50ms',
          group_roles: { ci: ['agent', 'auditor'] },
          default_roles: [],
          ...identity,
        },
      ],
    },
  });
  const verifier = new OidcVerifier(cfg.issuers, { relevantGroups: new Set(['ci']) });
  // API keys are not under test here; the store is never asked for a JWT.
  const auth = createAuthenticator({ apiKeys: new ApiKeyStore(null as unknown as Db), bearer: verifier });
  const call = (token: string, resourceUrl = RESOURCE): Promise<AuthResult> =>
    auth.authenticate({
      headers: { authorization: `Bearer ${token}` },
      target: 'github',
      resourceUrl,
    } satisfies AuthRequest);
  return { idp, verifier, auth, call };
}

function refused(t: any, r: AuthResult, status: number, message: RegExp) {
  t.false(r.ok, 'must be refused');
  if (r.ok) return;
  t.is(r.status, status);
  t.regex(r.message, message);
  if (status === 401)
    t.regex(
      r.wwwAuthenticate ?? '',
      /^Bearer resource_metadata="http:\/\/127\.0\.0\.1:8080\/\.well-known\/oauth-protected-resource\/mcp\/github", error="invalid_token"/,
    );
}

test('a client-credentials token for this resource maps to an actor (issuer, client, scopes, groups, roles, jti hash)', async (t) => {
  const { idp, call } = await setup(t);
  const token = await idp.clientToken('agent-ci', RESOURCE);
  const r = await call(token);
  t.true(r.ok, JSON.stringify(r));
  if (!r.ok) return;
  const jti = decodeJwt(token).jti as string;
  t.deepEqual(r.actor, {
    subject: 'agent-ci',
    auth_method: 'oidc',
    issuer: idp.issuer,
    client_id: 'agent-ci',
    scopes: ['mcp'],
    roles: ['agent', 'auditor'],
    groups: ['ci'],
    token_hash: createHash('sha256').update(jti).digest('hex'),
  });
  t.false(JSON.stringify(r).includes(token));
});

test('no mapped role: 403 (agent role required for MCP traffic)', async (t) => {
  const { idp, call } = await setup(t);
  const r = await call(await idp.clientToken('agent-plain', RESOURCE));
  t.like(r, { ok: false, status: 403 });
});

test('attacks are refused with 401 and a precise message', async (t) => {
  const { idp, call } = await setup(t);
  const key = idp.keys[0]!;
  const base = { iss: idp.issuer, sub: 'agent-ci', aud: RESOURCE, groups: ['ci'], scope: 'mcp', jti: 'j1' };
  const good = await signWith(key, { ...base, iat: nowSec(), exp: nowSec() + 300 });
  t.true((await call(good)).ok, 'the forged-but-valid control token must pass, or the attacks prove nothing');

  refused(
    t,
    await call(await signWith(key, { ...base, iat: nowSec() - 600, exp: nowSec() - 120 })),
    401,
    /expired/,
  );
  refused(
    t,
    await call(await signWith(key, { ...base, nbf: nowSec() + 600, exp: nowSec() + 900 })),
    401,
    /not yet valid/,
  );
  refused(
    t,
    await call(await idp.clientToken('agent-ci', OTHER_RESOURCE)),
    401,
    /audience does not include this resource/,
  );
  refused(
    t,
    await call(await signWith(key, { ...base, aud: 'http://127.0.0.1:8080/mcp', exp: nowSec() + 300 })),
    401,
    /audience/,
  );
  refused(
    t,
    await call(await signWith(key, { ...base, iss: 'http://127.0.0.1:1/evil', exp: nowSec() + 300 })),
    401,
    /issuer .* is not trusted/,
  );
  refused(
    t,
    await call(unsigned({ ...base, exp: nowSec() + 300 }, key.kid)),
    401,
    /algorithm "none" is not accepted/,
  );
  refused(
    t,
    await call(await hs256WithPublicKey(key, { ...base, exp: nowSec() + 300 })),
    401,
    /algorithm "HS256" is not accepted/,
  );
  const stranger = await signingKey();
  refused(
    t,
    await call(await signWith(stranger, { ...base, exp: nowSec() + 300 })),
    401,
    /signing key is not among/,
  );
  // Same kid as the real key, different key material: the signature check must catch it.
  refused(
    t,
    await call(await signWith({ ...stranger, kid: key.kid }, { ...base, exp: nowSec() + 300 })),
    401,
    /signature is invalid/,
  );
  refused(
    t,
    await call(tamper(good, (p) => ({ ...p, sub: 'admin', groups: ['admins'] }))),
    401,
    /signature is invalid/,
  );
  refused(t, await call(await signWith(key, { ...base, exp: undefined })), 401, /claim|exp/);
  refused(t, await call('not.a.jwt'), 401, /malformed/);
});

test('refusals carry what was attempted, never the token', async (t) => {
  const { idp, call } = await setup(t);
  const token = await signWith(idp.keys[0]!, {
    iss: idp.issuer,
    sub: 'mallory',
    aud: OTHER_RESOURCE,
    exp: nowSec() + 60,
  });
  const r = await call(token);
  t.like(r, { ok: false, attempted: { auth_method: 'oidc', issuer: idp.issuer, subject: 'mallory' } });
  if (!r.ok) {
    t.is(r.attempted?.token_hash, createHash('sha256').update(token).digest('hex'));
    t.false(JSON.stringify(r).includes(token));
  }
});

test('missing required scope: 403 insufficient_scope naming the scope', async (t) => {
  const { idp, call } = await setup(t, { required_scopes: ['mcp', 'mcp:write'] });
  const r = await call(await idp.clientToken('agent-ci', RESOURCE));
  t.like(r, { ok: false, status: 403 });
  if (!r.ok) {
    t.regex(r.wwwAuthenticate!, /error="insufficient_scope"/);
    t.regex(r.wwwAuthenticate!, /scope="mcp mcp:write"/);
    t.regex(r.message, /mcp:write/);
  }
});

test('key rotation at the provider: the new kid is accepted after a JWKS refresh, without restart', async (t) => {
  const { idp, verifier, call } = await setup(t);
  t.true((await call(await idp.clientToken('agent-ci', RESOURCE))).ok);
  const oldKid = idp.keys[0]!.kid;
  const next = await idp.rotate(false);
  const token = await idp.clientToken('agent-ci', RESOURCE);
  t.not(next.kid, oldKid);
  t.is(
    (JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString()) as { kid?: string }).kid,
    next.kid,
  );
  await new Promise((r) => setTimeout(r, 60)); // past the JWKS cooldown configured above
  t.true((await call(token)).ok, 'new kid accepted by the same verifier instance');
  // The retired key is gone from the JWKS: tokens it signs stop working once the set is refetched.
  const old = await signWith(
    { ...(await signingKey()), kid: oldKid },
    { iss: idp.issuer, sub: 'x', aud: RESOURCE, exp: nowSec() + 60 },
  );
  t.false((await call(old)).ok);
  t.true(verifier.issuerUrls.includes(idp.issuer));
});

test('identity provider unreachable: 503, not a client error', async (t) => {
  const { idp, call } = await setup(t);
  const token = await signWith(idp.keys[0]!, {
    iss: idp.issuer,
    sub: 'agent-ci',
    aud: RESOURCE,
    exp: nowSec() + 60,
    groups: ['ci'],
  });
  await idp.stop();
  const r = await call(token);
  t.like(r, { ok: false, status: 503 });
});

test('a malformed API key is refused before any database query', async (t) => {
  const { call } = await setup(t);
  t.like(await call('agk_short'), { ok: false, status: 401 });
});

test('a verified token is remembered only until it expires', async (t) => {
  const { idp, call } = await setup(t, { clock_skew: '0s' });
  const token = await signWith(idp.keys[0]!, {
    iss: idp.issuer,
    sub: 'agent-ci',
    aud: RESOURCE,
    groups: ['ci'],
    exp: nowSec() + 2,
  });
  t.true((await call(token)).ok);
  t.true((await call(token)).ok, 'second use (from the cache) is still fine');
  await new Promise((r) => setTimeout(r, 2_100));
  refused(t, await call(token), 401, /expired/);
});
