import test from 'ava';
import { RateLimiter } from '../server/auth/rate-limit.ts';
import { parseIdentityConfig } from '../server/auth/identity-config.ts';
import { createAuthenticator } from '../server/auth/authenticator.ts';
import { ApiKeyStore } from '../server/auth/api-keys.ts';
import { createTestDb } from './helpers/db.ts';
import type { AuditActor } from '../gateway/audit-record.ts';

const a: AuditActor = { subject: 'a', auth_method: 'api_key', roles: ['agent'] };
const b: AuditActor = { subject: 'b', auth_method: 'api_key', roles: ['agent'] };

function limiter(rate_limits: unknown) {
  let now = 1_000_000;
  const rl = new RateLimiter(parseIdentityConfig({ rate_limits }).rateLimits, () => now);
  return { rl, advance: (ms: number) => (now += ms) };
}

test('per identity: a burst up to the limit, then 429 with Retry-After; refills over time', (t) => {
  const { rl, advance } = limiter({ per_identity: { requests: 3, per: '1m' } });
  for (let i = 0; i < 3; i++) t.true(rl.take(a, 'x').ok);
  const r = rl.take(a, 'x');
  t.like(r, { ok: false, scope: 'identity', retryAfterSeconds: 20 });
  if (!r.ok) t.is(r.message, 'rate limit exceeded for a: 3 requests per 1m');
  t.true(rl.take(b, 'x').ok, 'another identity has its own bucket');
  advance(20_000);
  t.true(rl.take(a, 'x').ok);
  t.false(rl.take(a, 'x').ok);
});

test('per target, with per-target overrides; a refused request consumes nothing', (t) => {
  const { rl } = limiter({
    per_identity: { requests: 100, per: '1m' },
    per_target: { requests: 2, per: '1s' },
    targets: { big: { requests: 5, per: '1s' } },
  });
  t.true(rl.take(a, 'small').ok);
  t.true(rl.take(b, 'small').ok);
  t.like(rl.take(a, 'small'), { ok: false, scope: 'target' });
  for (let i = 0; i < 5; i++) t.true(rl.take(a, 'big').ok);
  t.false(rl.take(b, 'big').ok);
  // a made 7 successful + 1 refused on 'small'; identity bucket was only charged for successes.
  const { rl: rl2 } = limiter({
    per_identity: { requests: 2, per: '1h' },
    per_target: { requests: 1, per: '1h' },
  });
  t.true(rl2.take(a, 't1').ok);
  t.false(rl2.take(a, 't1').ok);
  t.true(rl2.take(a, 't2').ok, 'the refusal on t1 did not use up the identity budget');
});

test('no limits configured: never refuses', (t) => {
  const { rl } = limiter(undefined);
  t.false(rl.enabled);
  for (let i = 0; i < 1000; i++) t.true(rl.take(a, 'x').ok);
});

test('the authenticator answers 429 with Retry-After and the actor for the record', async (t) => {
  const tdb = await createTestDb('sqlite');
  t.teardown(() => tdb.cleanup());
  const keys = new ApiKeyStore(tdb.db);
  const { key, record } = await keys.create({ subject: 'bot', createdBy: 't' });
  const { rl } = limiter({ per_identity: { requests: 1, per: '1h' } });
  const auth = createAuthenticator({ apiKeys: keys, rateLimiter: rl });
  const req = {
    headers: { authorization: `Bearer ${key}` },
    target: 'x',
    resourceUrl: 'http://127.0.0.1:1/mcp/x',
  };
  t.true((await auth.authenticate(req)).ok);
  t.like(await auth.authenticate(req), {
    ok: false,
    status: 429,
    retryAfterSeconds: 3600,
    actor: { subject: 'bot', key_id: record.id },
  });
  // Bad credentials are refused as 401 before any bucket is touched.
  t.like(await auth.authenticate({ ...req, headers: {} }), { ok: false, status: 401 });
});
