// People and the API: the full bell sign-in (authorization code + PKCE) against a real OpenID
// provider to a session cookie with the mapped role; the API with bearer tokens and API keys;
// every refusal (missing role, role escalation, CSRF, wrong audience) recorded in the log.
import test from 'ava';
import { randomBytes } from 'node:crypto';
import { startIdentityApp, AUDIT_DATA_PATH, type IdentityApp } from './helpers/identity-app.ts';
import { Browser } from './helpers/browser.ts';
import { SESSION_COOKIE } from '../server/auth/hapi-auth.ts';
import type { AuditRecord } from '../gateway/audit-record.ts';

const ACCOUNTS = {
  alice: { groups: ['auditgate-admins'], email: 'alice@example.com', name: 'Alice Admin' },
  eve: { groups: ['auditgate-auditors', 'unrelated-group'], email: 'eve@example.com' },
  mallory: { groups: ['staff'] },
};
const AGENTS = { 'ci-agent': { groups: ['ci'] }, 'audit-bot': { groups: ['auditgate-auditors'] } };

async function app(t: any): Promise<IdentityApp> {
  const a = await startIdentityApp({ accounts: ACCOUNTS, agents: AGENTS });
  t.teardown(() => a.cleanup());
  return a;
}

async function signIn(a: IdentityApp, login: string): Promise<{ browser: Browser; me: any }> {
  const browser = new Browser();
  const page = await browser.go(`${a.url}/auth/login?next=/auth/me`, { login });
  if (page.status !== 200)
    throw new Error(`sign-in ended with ${page.status} at ${page.url}: ${page.body.slice(0, 300)}`);
  return { browser, me: JSON.parse(page.body) };
}

const last = (records: AuditRecord[], pred: (r: AuditRecord) => boolean) => records.filter(pred).at(-1);

test('sign-in: authorization code + PKCE through bell to a session cookie with the mapped role', async (t) => {
  const a = await app(t);
  const browser = new Browser();
  const start = await browser.request(`${a.url}/auth/login?next=/auth/me`);
  t.is(start.status, 302);
  const authz = new URL(start.headers.get('location')!);
  t.is(authz.origin, a.idp.issuer);
  t.is(authz.searchParams.get('code_challenge_method'), 'S256');
  t.regex(authz.searchParams.get('code_challenge') ?? '', /^[A-Za-z0-9_-]{43}$/);
  t.is(authz.searchParams.get('client_id'), 'auditgate-web');
  t.true(authz.searchParams.get('scope')!.split(' ').includes('openid'));

  const page = await browser.go(authz.toString(), { login: 'alice' });
  t.is(page.status, 200, page.body.slice(0, 300));
  t.is(page.url, `${a.url}/auth/me`, 'redirected back to next');
  const me = JSON.parse(page.body);
  t.like(me, {
    subject: 'alice',
    auth_method: 'session',
    issuer: a.idp.issuer,
    roles: ['admin'],
    email: 'alice@example.com',
    name: 'Alice Admin',
  });
  t.deepEqual(me.groups, ['auditgate-admins'], 'only groups the configuration refers to are kept');
  t.regex(me.csrf_token, /^[A-Za-z0-9_-]{43}$/);

  // The callback set the session cookie with the right attributes.
  const callback = browser.visited.find((u) => u.startsWith(`${a.url}/auth/login?code=`));
  t.truthy(callback, 'the IdP redirected back with a code');
  const res = await fetch(callback!, { redirect: 'manual' });
  t.not(res.status, 302, 'a replayed authorization code (without the state cookie) does not sign anyone in');
  t.true(browser.jar.has(SESSION_COOKIE));
  t.false(
    decodeURIComponent(browser.jar.get(SESSION_COOKIE)!.value).includes('alice'),
    'the cookie is encrypted',
  );
});

test('session cookie attributes: HttpOnly, SameSite=Lax, Path=/, not readable', async (t) => {
  const a = await app(t);
  const { browser } = await signIn(a, 'eve');
  const line = browser.setCookies.find((c) => c.startsWith(`${SESSION_COOKIE}=`));
  t.truthy(line);
  t.regex(line!, /; HttpOnly/i);
  t.regex(line!, /; SameSite=Lax/i);
  t.regex(line!, /; Path=\//);
  t.notRegex(line!, /; Secure/i, 'http:// public URL: not Secure (an https:// one sets it)');
  t.false(line!.includes('eve'), 'the cookie is encrypted (iron), not readable');
  // bell's state cookie for the round trip to the IdP is Lax too (the callback is a cross-site navigation).
  t.regex(
    browser.setCookies.find((c) => c.startsWith('bell-'))!,
    /SameSite=Lax/i,
  );
});

test('an auditor reads audit data; the read is recorded before it is served', async (t) => {
  const a = await app(t);
  const { browser } = await signIn(a, 'eve');
  // A credential a client appends to the query must not reach the append-only log.
  const page = await browser.request(`${a.url}${AUDIT_DATA_PATH}?start=0&end=5&access_token=tok-123&api_key=k-456`);
  t.is(page.status, 200);
  const rec = last(await a.records(), (r) => r.event === 'audit.read');
  t.false(JSON.stringify(rec).includes('tok-123') || JSON.stringify(rec).includes('k-456'));
  t.like(rec, {
    event: 'audit.read',
    actor: { subject: 'eve', auth_method: 'session', issuer: a.idp.issuer, roles: ['auditor'] },
    outcome: { decision: 'allow' },
    detail: {
      what: 'test audit data',
      method: 'GET',
      path: AUDIT_DATA_PATH,
      query: { start: '0', end: '5', access_token: '[redacted]', api_key: '[redacted]' },
    },
  });
});

test('a person without an audit role is refused (403, recorded); no credential is 401 with resource metadata', async (t) => {
  const a = await app(t);
  const { browser, me } = await signIn(a, 'mallory');
  t.deepEqual(me.roles, []);
  const page = await browser.request(`${a.url}${AUDIT_DATA_PATH}`);
  t.is(page.status, 403);
  t.regex(
    JSON.parse(page.body).message,
    /mallory lacks a role required here \(one of: auditor, compliance, admin\)/,
  );
  const anon = await fetch(`${a.url}${AUDIT_DATA_PATH}`);
  t.is(anon.status, 401);
  t.regex(
    anon.headers.get('www-authenticate') ?? '',
    /^Bearer resource_metadata="http:\/\/127\.0\.0\.1:\d+\/\.well-known\/oauth-protected-resource"/,
  );
  const denials = (await a.records()).filter(
    (r) => r.event === 'audit.read' && r.outcome?.decision === 'deny',
  );
  t.is(denials.length, 2);
  t.like(denials[0], { actor: { subject: 'mallory' }, detail: { status: 403 } });
  t.like(denials[1], { detail: { status: 401 } });
  t.is(denials[1]!.actor, undefined);
});

test('API with bearer tokens: audience must be the gateway URL; roles from token groups; API keys too', async (t) => {
  const a = await app(t);
  const good = await a.idp.clientToken('audit-bot', a.url);
  const r1 = await fetch(`${a.url}${AUDIT_DATA_PATH}`, { headers: { authorization: `Bearer ${good}` } });
  t.is(r1.status, 200);
  const mcpToken = await a.idp.clientToken('audit-bot', `${a.url}/mcp/github`);
  const r2 = await fetch(`${a.url}${AUDIT_DATA_PATH}`, { headers: { authorization: `Bearer ${mcpToken}` } });
  t.is(r2.status, 401, 'a token for an MCP target is not a token for the API');
  t.regex(r2.headers.get('www-authenticate')!, /error="invalid_token"/);
  t.regex(r2.headers.get('www-authenticate')!, /audience/);
  const agent = await a.idp.clientToken('ci-agent', a.url);
  const r3 = await fetch(`${a.url}${AUDIT_DATA_PATH}`, { headers: { authorization: `Bearer ${agent}` } });
  t.is(r3.status, 403, 'the agent role is for MCP traffic only');

  const { key } = await a.identity.apiKeys.create({
    subject: 'report-bot',
    roles: ['auditor'],
    createdBy: 't',
  });
  t.is((await fetch(`${a.url}${AUDIT_DATA_PATH}`, { headers: { 'x-api-key': key } })).status, 200);
  const recs = (await a.records()).filter((r) => r.event === 'audit.read');
  t.deepEqual(
    recs.map((r) => [
      r.outcome?.decision,
      r.actor?.subject ?? (r.detail?.attempted ? 'attempted' : undefined),
    ]),
    [
      ['allow', 'audit-bot'],
      ['deny', 'attempted'],
      ['deny', 'ci-agent'],
      ['allow', 'report-bot'],
    ],
  );
  t.like(recs[1]!.detail, { attempted: { auth_method: 'oidc', subject: 'audit-bot', issuer: a.idp.issuer } });
  t.false(JSON.stringify(await a.records()).includes(good), 'no token in the log');
});

test('role escalation on the API is refused and recorded', async (t) => {
  const a = await app(t);
  const { browser, me } = await signIn(a, 'eve');
  const body = JSON.stringify({ subject: 'eve-admin', roles: ['admin'] });
  const headers = { 'content-type': 'application/json', 'x-csrf-token': me.csrf_token, origin: a.url };
  const asAuditor = await browser.request(`${a.url}/api/keys`, { method: 'POST', headers, body });
  t.is(asAuditor.status, 403);
  const { key } = await a.identity.apiKeys.create({ subject: 'ci', roles: ['agent'], createdBy: 't' });
  const asAgent = await fetch(`${a.url}/api/keys`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body,
  });
  t.is(asAgent.status, 403);
  t.is((await a.identity.apiKeys.list()).length, 1, 'no key was created');
  const denials = (await a.records()).filter(
    (r) => r.event === 'config.change' && r.outcome?.decision === 'deny',
  );
  t.deepEqual(
    denials.map((r) => r.actor?.subject),
    ['eve', 'ci'],
  );
  t.like(denials[0], {
    outcome: { decision: 'deny', reason: 'eve lacks a role required here (one of: admin); has: auditor' },
    detail: { what: 'api_keys', method: 'POST', status: 403 },
  });
});

test('CSRF: a session POST without the token, or from a foreign origin, is refused and recorded; with it, it works', async (t) => {
  const a = await app(t);
  const { browser, me } = await signIn(a, 'alice');
  const body = JSON.stringify({ subject: 'new-agent', roles: ['agent'] });
  const json = { 'content-type': 'application/json' };
  const noToken = await browser.request(`${a.url}/api/keys`, { method: 'POST', headers: json, body });
  t.is(noToken.status, 403);
  t.regex(JSON.parse(noToken.body).message, /CSRF/);
  // The classic attack: an auto-submitting form on another site (the browser adds the cookie).
  const form = await browser.request(`${a.url}/api/keys`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'http://evil.example' },
    body: 'subject=evil&roles=admin',
  });
  t.is(form.status, 403);
  const wrong = await browser.request(`${a.url}/api/keys`, {
    method: 'POST',
    headers: { ...json, 'x-csrf-token': randomBytes(32).toString('base64url') },
    body,
  });
  t.is(wrong.status, 403);
  t.is((await a.identity.apiKeys.list()).length, 0);

  const ok = await browser.request(`${a.url}/api/keys`, {
    method: 'POST',
    headers: { ...json, 'x-csrf-token': me.csrf_token, origin: a.url },
    body,
  });
  t.is(ok.status, 201, ok.body);
  const created = JSON.parse(ok.body);
  t.regex(created.key, /^agk_/);
  t.is(ok.headers.get('cache-control'), 'no-store');
  // A form post with the token in a field also works (plain HTML UI).
  const formOk = await browser.request(`${a.url}/api/keys`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ subject: 'form-agent', csrf: me.csrf_token }).toString(),
  });
  t.is(formOk.status, 201, formOk.body);

  const recs = (await a.records()).filter((r) => r.event === 'config.change');
  t.deepEqual(
    recs.map((r) => r.outcome?.decision ?? 'change'),
    ['deny', 'deny', 'deny', 'change', 'change'],
  );
  t.like(recs[3], {
    actor: { subject: 'alice', auth_method: 'session' },
    detail: { kind: 'api_key', action: 'create', id: created.id },
  });
  t.false(JSON.stringify(recs).includes(created.key));

  const revoke = await browser.request(`${a.url}/api/keys/${created.id}/revoke`, {
    method: 'POST',
    headers: { 'x-csrf-token': me.csrf_token },
  });
  t.is(revoke.status, 200, revoke.body);
  t.like(await a.identity.apiKeys.verify(created.key), { ok: false, reason: 'revoked' });
});

test('logout clears the session; a tampered cookie is not a session', async (t) => {
  const a = await app(t);
  const { browser, me } = await signIn(a, 'alice');
  t.is((await browser.request(`${a.url}/auth/me`)).status, 200);
  const forged = new Browser();
  const v = browser.jar.get(SESSION_COOKIE)!.value;
  forged.jar.set(SESSION_COOKIE, {
    value: v.slice(0, -4) + (v.endsWith('AAAA') ? 'BBBB' : 'AAAA'),
    path: '/',
  });
  t.is((await forged.request(`${a.url}/auth/me`)).status, 401);
  t.is(
    (await browser.request(`${a.url}/auth/logout`, { method: 'POST' })).status,
    403,
    'logout needs the CSRF token too',
  );
  t.is(
    (
      await browser.request(`${a.url}/auth/logout`, {
        method: 'POST',
        headers: { 'x-csrf-token': me.csrf_token },
      })
    ).status,
    204,
  );
  t.false(browser.jar.has(SESSION_COOKIE));
  t.is((await browser.request(`${a.url}/auth/me`)).status, 401);
});

test('RFC 9728 protected-resource metadata per target', async (t) => {
  const a = await app(t);
  const res = await fetch(`${a.url}/.well-known/oauth-protected-resource/mcp/github`);
  t.is(res.status, 200);
  t.deepEqual(await res.json(), {
    resource: `${a.url}/mcp/github`,
    authorization_servers: [a.idp.issuer],
    bearer_methods_supported: ['header'],
    resource_name: 'auditgate MCP target github',
  });
  t.is((await fetch(`${a.url}/.well-known/oauth-protected-resource/mcp/nope`)).status, 404);
  t.like(await (await fetch(`${a.url}/.well-known/oauth-protected-resource`)).json(), { resource: a.url });
});
