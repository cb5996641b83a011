import test from 'ava';
import { createTestDb, DB_KINDS } from './helpers/db.ts';
import {
  ApiKeyStore,
  ApiKeyInputError,
  ApiKeyNotFoundError,
  parseApiKey,
  parseExpiry,
  API_KEY_REGEX,
} from '../server/auth/api-keys.ts';
import { createAuthenticator, resourceMetadataUrl } from '../server/auth/authenticator.ts';
import type { AuthRequest } from '../gateway/types.ts';

const resourceUrl = 'http://127.0.0.1:9/mcp/demo';
const req = (headers: AuthRequest['headers']): AuthRequest => ({ headers, target: 'demo', resourceUrl });

for (const kind of DB_KINDS) {
  test(`${kind}: a created key verifies; only its hash is stored`, async (t) => {
    const tdb = await createTestDb(kind);
    t.teardown(() => tdb.cleanup());
    const store = new ApiKeyStore(tdb.db);
    const { key, record } = await store.create({
      subject: 'ci-bot',
      roles: ['agent', 'auditor'],
      createdBy: 'test',
      description: 'CI',
    });
    t.regex(key, /^agk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
    t.deepEqual(key.match(API_KEY_REGEX), [key]);
    const parsed = parseApiKey(key)!;
    t.is(parsed.id, record.id);
    const rows = await tdb.db('api_keys').select();
    t.is(rows.length, 1);
    t.false(JSON.stringify(rows).includes(parsed.secret), 'secret must not be stored');
    const v = await store.verify(key);
    t.true(v.ok);
    if (v.ok) t.deepEqual(v.key.roles, ['agent', 'auditor']);
    t.is((await store.list())[0]!.description, 'CI');
  });

  test(`${kind}: wrong secret, unknown id, malformed, revoked and expired keys are refused`, async (t) => {
    const tdb = await createTestDb(kind);
    t.teardown(() => tdb.cleanup());
    let now = Date.now();
    const store = new ApiKeyStore(tdb.db, { now: () => now });
    const { key, record } = await store.create({ subject: 'a', createdBy: 'test' });
    const other = await store.create({
      subject: 'b',
      createdBy: 'test',
      expiresAt: new Date(now + 60_000).toISOString(),
    });
    const flipped = key.slice(0, -1) + (key.endsWith('A') ? 'B' : 'A');
    t.like(await store.verify(flipped), { ok: false, reason: 'unknown', keyId: record.id });
    t.like(await store.verify(`agk_0000000000000000_${'x'.repeat(43)}`), { ok: false, reason: 'unknown' });
    t.like(await store.verify('agk_nope'), { ok: false, reason: 'malformed' });
    t.like(await store.verify(other.key), { ok: true });
    now += 60_001;
    t.like(await store.verify(other.key), { ok: false, reason: 'expired', subject: 'b' });
    const r = await store.revoke(record.id, 'admin-alice');
    t.true(r.changed);
    t.is(r.after.revokedBy, 'admin-alice');
    t.like(await store.verify(key), { ok: false, reason: 'revoked' });
    t.false((await store.revoke(record.id, 'someone-else')).changed);
    t.is((await store.get(record.id))!.revokedBy, 'admin-alice');
    await t.throwsAsync(store.revoke('ffffffffffffffff', 'x'), { instanceOf: ApiKeyNotFoundError });
    await t.throwsAsync(store.create({ subject: 'c', roles: ['root'], createdBy: 't' }), {
      instanceOf: ApiKeyInputError,
      // The message names every role there is, monitor included.
      message: 'unknown role "root" (expected one of: admin, compliance, auditor, approver, agent, monitor)',
    });
    await t.throwsAsync(store.create({ subject: '  ', createdBy: 't' }), { instanceOf: ApiKeyInputError });
  });

  test(`${kind}: a revocation by another process takes effect within the cache TTL`, async (t) => {
    const tdb = await createTestDb(kind);
    t.teardown(() => tdb.cleanup());
    const gateway = new ApiKeyStore(tdb.db, { cacheTtlMs: 200 });
    const cli = new ApiKeyStore(tdb.reopen());
    const { key, record } = await cli.create({ subject: 'a', createdBy: 'test' });
    t.true((await gateway.verify(key)).ok);
    await cli.revoke(record.id, 'admin');
    // The gateway's cached entry was fetched before the revocation: once the TTL has passed since
    // then, the next check must refuse. (A wall-clock bound on a polling loop failed on a busy machine.)
    await new Promise((r) => setTimeout(r, 200 + 20));
    const after = await gateway.verify(key);
    t.false(after.ok, 'the revocation applies once the cache TTL has passed');
  });

  test(`${kind}: authenticator maps keys to actors and refusals to 401/403 with resource metadata`, async (t) => {
    const tdb = await createTestDb(kind);
    t.teardown(() => tdb.cleanup());
    const store = new ApiKeyStore(tdb.db);
    const auth = createAuthenticator({ apiKeys: store });
    const agent = await store.create({ subject: 'bot', createdBy: 't' });
    const auditor = await store.create({ subject: 'eve', roles: ['auditor'], createdBy: 't' });

    const ok = await auth.authenticate(req({ authorization: `Bearer ${agent.key}` }));
    t.deepEqual(ok, {
      ok: true,
      actor: { subject: 'bot', auth_method: 'api_key', key_id: agent.record.id, roles: ['agent'] },
    });
    t.like(await auth.authenticate(req({ 'x-api-key': agent.key })), { ok: true });
    t.like(await auth.authenticate(req({ authorization: `bearer ${agent.key}` })), { ok: true });

    const none = await auth.authenticate(req({}));
    t.like(none, { ok: false, status: 401 });
    if (!none.ok)
      t.is(
        none.wwwAuthenticate,
        `Bearer resource_metadata="http://127.0.0.1:9/.well-known/oauth-protected-resource/mcp/demo"`,
      );

    const both = await auth.authenticate(
      req({ authorization: `Bearer ${agent.key}`, 'x-api-key': agent.key }),
    );
    t.like(both, { ok: false, status: 401 });
    t.like(
      await auth.authenticate(req({ authorization: `Basic ${Buffer.from('a:b').toString('base64')}` })),
      { ok: false, status: 401 },
    );
    t.like(await auth.authenticate(req({ authorization: 'Bearer eyJhbGciOiJub25lIn0.e30.' })), {
      ok: false,
      status: 401,
    });

    await store.revoke(agent.record.id, 'admin');
    const revoked = await auth.authenticate(req({ authorization: `Bearer ${agent.key}` }));
    t.like(revoked, {
      ok: false,
      status: 401,
      attempted: { key_id: agent.record.id, subject: 'bot', auth_method: 'api_key' },
    });
    if (!revoked.ok) {
      t.regex(revoked.message, /revoked/);
      t.regex(revoked.wwwAuthenticate!, /error="invalid_token"/);
      t.false(JSON.stringify(revoked).includes(parseApiKey(agent.key)!.secret));
    }
    const noRole = await auth.authenticate(req({ authorization: `Bearer ${auditor.key}` }));
    t.like(noRole, { ok: false, status: 403 });
    if (!noRole.ok) t.regex(noRole.wwwAuthenticate!, /insufficient_scope/);
  });
}

test('expiry specs', (t) => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  t.is(parseExpiry('30d', now), '2026-01-31T00:00:00.000Z');
  t.is(parseExpiry('12h', now), '2026-01-01T12:00:00.000Z');
  t.is(parseExpiry('2027-03-01', now), '2027-03-01T00:00:00.000Z');
  t.throws(() => parseExpiry('2025-03-01', now), { instanceOf: ApiKeyInputError });
  t.throws(() => parseExpiry('soon', now), { instanceOf: ApiKeyInputError });
});

test('resource metadata URL per RFC 9728', (t) => {
  t.is(
    resourceMetadataUrl('https://gw.example.com/mcp/github'),
    'https://gw.example.com/.well-known/oauth-protected-resource/mcp/github',
  );
  t.is(
    resourceMetadataUrl('https://gw.example.com/'),
    'https://gw.example.com/.well-known/oauth-protected-resource',
  );
});
