// Identity on MCP traffic through the whole service: OIDC access tokens bound to the target's
// resource URL, the attack list refused at /mcp/{target} with the right status and each
// refusal recorded, no token passthrough (checked at the upstream), sessions bound to identities,
// and rate limits.
import test from 'ava';
import { createHash } from 'node:crypto';
import { decodeJwt } from 'jose';
import { startIdentityService, type IdentityService } from './helpers/identity-service.ts';
import { signWith, unsigned, hs256WithPublicKey, tamper, nowSec } from './helpers/forge.ts';
import { signingKey } from './helpers/idp.ts';
import { post, rawInitialize } from './helpers/raw-mcp.ts';
import { ApiKeyStore } from '../server/auth/api-keys.ts';
import type { AuditRecord } from '../gateway/audit-record.ts';

const AGENTS = { 'ci-agent': { groups: ['ci'] }, 'other-agent': { groups: ['ci'] } };

async function svc(
  t: any,
  extra: Partial<Parameters<typeof startIdentityService>[0]> = {},
): Promise<IdentityService> {
  const s = await startIdentityService({ agents: AGENTS, ...extra });
  t.teardown(() => s.cleanup());
  return s;
}

const INIT = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '1' } },
};
const refusals = (rs: AuditRecord[]) => rs.filter((r) => r.event === 'mcp.refused');

test('an OIDC access token for the target works; every record carries the verified identity; the upstream never sees the token', async (t) => {
  const s = await svc(t);
  const token = await s.idp.clientToken('ci-agent', s.resource('echo'));
  const url = s.resource('echo');
  const session = await rawInitialize(url, token);
  const call = await post(
    url,
    { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'echo', arguments: { text: 'hi' } } },
    { key: token, session, version: '2025-11-25' },
  );
  t.is(call.status, 200);
  t.regex(await call.text(), /echo:hi/);

  // What the upstream received: its own credential, never the client's token.
  t.true(s.upstream.seen.length >= 3);
  for (const req of s.upstream.seen) {
    t.is(req.headers['x-upstream-key'], s.upstreamSecret);
    t.is(req.headers.authorization, undefined, 'no Authorization header is passed upstream');
    t.false(JSON.stringify(req).includes(token), 'the token appears nowhere in what the upstream got');
  }

  const recs = (await s.records()).filter((r) => r.event === 'mcp.message');
  t.true(recs.length >= 4);
  const claims = decodeJwt(token);
  for (const r of recs) {
    t.like(r.actor, {
      subject: 'ci-agent',
      auth_method: 'oidc',
      issuer: s.idp.issuer,
      client_id: 'ci-agent',
      scopes: ['mcp'],
      roles: ['agent'],
      token_hash: createHash('sha256').update(String(claims.jti)).digest('hex'),
    });
  }
  t.false(JSON.stringify(await s.records()).includes(token), 'no token in the log');
});

test('attacks at /mcp/{target}: each refused with the right status, a WWW-Authenticate pointing at the metadata, and recorded', async (t) => {
  const s = await svc(t);
  const url = s.resource('echo');
  const key = s.idp.keys[0]!;
  const base = {
    iss: s.idp.issuer,
    sub: 'ci-agent',
    client_id: 'ci-agent',
    aud: url,
    groups: ['ci'],
    scope: 'mcp',
  };
  const exp = nowSec() + 300;
  const control = await signWith(key, { ...base, jti: 'control', exp });
  const ok = await post(url, INIT, { key: control });
  t.is(ok.status, 200, 'the hand-signed control token passes, so the refusals below are about the attack');
  await ok.text();

  const keys = new ApiKeyStore(s.service.db);
  const revoked = await keys.create({ subject: 'old-bot', createdBy: 't' });
  await keys.revoke(revoked.record.id, 'admin');

  const attacks: Array<[string, string, RegExp]> = [
    ['expired', await signWith(key, { ...base, iat: nowSec() - 900, exp: nowSec() - 300 }), /expired/],
    [
      'not yet valid',
      await signWith(key, { ...base, nbf: nowSec() + 600, exp: nowSec() + 900 }),
      /not yet valid/,
    ],
    ['wrong issuer', await signWith(key, { ...base, iss: 'http://127.0.0.1:9/evil', exp }), /not trusted/],
    ['wrong audience', await s.idp.clientToken('ci-agent', s.resource('other')), /audience/],
    ['alg none', unsigned({ ...base, exp }, key.kid), /algorithm "none"/],
    ['HS256 with the public key', await hs256WithPublicKey(key, { ...base, exp }), /algorithm "HS256"/],
    ['unknown kid', await signWith(await signingKey(), { ...base, exp }), /signing key is not among/],
    ['tampered payload', tamper(control, (p) => ({ ...p, sub: 'admin' })), /signature is invalid/],
    ['revoked API key', revoked.key, /revoked/],
  ];
  for (const [name, token, why] of attacks) {
    const res = await post(url, INIT, { key: token });
    t.is(res.status, 401, name);
    const www = res.headers.get('www-authenticate') ?? '';
    t.true(
      www.startsWith(`Bearer resource_metadata="${s.url}/.well-known/oauth-protected-resource/mcp/echo"`),
      `${name}: ${www}`,
    );
    t.regex(www, /error="invalid_token"/, name);
    const body = (await res.json()) as { error: { message: string } };
    t.regex(body.error.message, why, name);
  }
  const refused = refusals(await s.records());
  t.is(refused.length, attacks.length);
  for (const [i, r] of refused.entries()) {
    t.like(r, { mcp: { target: 'echo', http_status: 401 }, outcome: { decision: 'deny' } }, attacks[i]![0]);
    t.regex(r.outcome!.reason ?? '', attacks[i]![2], attacks[i]![0]);
  }
  t.like(refused.at(-1)!.detail, { attempted: { key_id: revoked.record.id, subject: 'old-bot' } });
  const log = JSON.stringify(await s.records());
  for (const [name, token] of attacks) t.false(log.includes(token), `${name}: token not in the log`);

  // The metadata the challenge points at names the provider that issues tokens for this resource.
  const meta = (await (
    await fetch(`${s.url}/.well-known/oauth-protected-resource/mcp/echo`)
  ).json()) as Record<string, unknown>;
  t.deepEqual(meta.authorization_servers, [s.idp.issuer]);
  t.is(meta.resource, url);
});

test("another identity using someone else's session id is refused and recorded", async (t) => {
  const s = await svc(t);
  const url = s.resource('echo');
  const mine = await s.idp.clientToken('ci-agent', url);
  const theirs = await s.idp.clientToken('other-agent', url);
  const session = await rawInitialize(url, mine);
  const res = await post(
    url,
    { jsonrpc: '2.0', id: 9, method: 'tools/call', params: { name: 'echo', arguments: {} } },
    { key: theirs, session, version: '2025-11-25' },
  );
  t.is(res.status, 403);
  await res.text();
  const r = refusals(await s.records()).at(-1);
  t.like(r, {
    actor: { subject: 'other-agent', auth_method: 'oidc' },
    mcp: { http_status: 403 },
    detail: { session, session_subject: 'ci-agent' },
  });
});

test('a missing required scope is 403 insufficient_scope', async (t) => {
  const s = await svc(t, {
    identity: (issuer) => ({
      issuers: [{ issuer, group_roles: { ci: ['agent'] }, required_scopes: ['mcp', 'mcp:admin'] }],
    }),
  });
  const res = await post(s.resource('echo'), INIT, {
    key: await s.idp.clientToken('ci-agent', s.resource('echo')),
  });
  t.is(res.status, 403);
  t.regex(res.headers.get('www-authenticate') ?? '', /error="insufficient_scope".*scope="mcp mcp:admin"/);
  await res.text();
  t.like(refusals(await s.records()).at(-1), { mcp: { http_status: 403 } });
});

test('rate limit per identity: 429 with Retry-After, recorded', async (t) => {
  const s = await svc(t, { rate_limits: { per_identity: { requests: 3, per: '1h' } } });
  const url = s.resource('echo');
  const token = await s.idp.clientToken('ci-agent', url);
  const statuses: number[] = [];
  for (let i = 0; i < 4; i++) {
    const res = await post(
      url,
      { jsonrpc: '2.0', id: i, method: 'ping' },
      { key: token, version: '2026-07-28', headers: { 'mcp-method': 'ping' } },
    );
    statuses.push(res.status);
    if (res.status === 429) t.regex(res.headers.get('retry-after') ?? '', /^\d+$/);
    await res.text();
  }
  t.is(statuses.at(-1), 429);
  t.is(statuses.filter((x) => x === 429).length, 1);
  const other = await post(url, INIT, { key: await s.idp.clientToken('other-agent', url) });
  t.is(other.status, 200, 'another identity has its own budget');
  await other.text();
  const r = refusals(await s.records()).at(-1);
  t.like(r, { actor: { subject: 'ci-agent' }, mcp: { http_status: 429 } });
  t.regex(r!.outcome!.reason!, /rate limit exceeded for ci-agent: 3 requests per 1h/);
});

test('GET /log/entries on the service: auditors only, every read and refusal recorded', async (t) => {
  const s = await svc(t);
  const keys = new ApiKeyStore(s.service.db);
  const auditor = (await keys.create({ subject: 'eve', roles: ['auditor'], createdBy: 't' })).key;
  const agent = (await keys.create({ subject: 'bot', roles: ['agent'], createdBy: 't' })).key;
  // The service's own start-up entries (config.change for this test's configuration) are there to read.
  const entries = (key?: string) =>
    fetch(`${s.url}/log/entries?start=0&end=1`, { headers: key ? { authorization: `Bearer ${key}` } : {} });
  const anon = await entries();
  t.is(anon.status, 401);
  t.regex(anon.headers.get('www-authenticate') ?? '', /resource_metadata=/);
  t.is((await entries(agent)).status, 403);
  const ok = await entries(auditor);
  t.is(ok.status, 200);
  t.regex(await ok.text(), /^\{"actor":.*"event":"config\.change".*\}\n$/);
  t.is(
    (await fetch(`${s.url}/log/checkpoint`)).status,
    200,
    'checkpoints and proofs stay public: they hold hashes only',
  );
  const reads = (await s.records()).filter((r) => r.event === 'audit.read');
  t.deepEqual(
    reads.map((r) => [r.outcome?.decision, r.actor?.subject ?? null]),
    [
      ['deny', null],
      ['deny', 'bot'],
      ['allow', 'eve'],
    ],
  );
  t.like(reads[2]!.detail, { what: 'log entries', query: { start: '0', end: '1' } });
});
