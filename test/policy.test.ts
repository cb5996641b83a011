import test from 'ava';
import { PolicyEngine, parsePolicies, policyHash, globToRegExp } from '../server/policy/policy.ts';
import { ConfigError } from '../server/errors.ts';
import type { AuditActor } from '../gateway/audit-record.ts';

const bot: AuditActor = { subject: 'ci-bot', auth_method: 'api_key', key_id: 'k1', roles: ['agent'] };
const contractor: AuditActor = {
  subject: 'x@vendor',
  auth_method: 'oidc',
  issuer: 'https://idp',
  roles: ['agent'],
  groups: ['contractors'],
};
const auditor: AuditActor = {
  subject: 'eve',
  auth_method: 'oidc',
  issuer: 'https://idp',
  roles: ['auditor'],
};

const rules = parsePolicies([
  { name: 'contractors-no-github', effect: 'deny', groups: ['contractors'], targets: ['github'] },
  { name: 'no-deletes', effect: 'deny', targets: ['*'], tools: ['delete_*', 'drop?table'] },
  { name: 'secrets-off-limits', effect: 'deny', resources: ['file:///etc/*'] },
  { name: 'agents-github', effect: 'allow', roles: ['agent'], targets: ['github'] },
  {
    name: 'agents-fs-read',
    effect: 'allow',
    roles: ['agent'],
    targets: ['fs'],
    tools: ['read_*'],
    resources: ['file:///*'],
  },
]);
const engine = new PolicyEngine(rules);

test('first match wins; deny rules before allow rules take effect', (t) => {
  t.like(engine.decide(bot, { target: 'github', method: 'tools/call', name: 'create_issue' }), {
    allow: true,
    rule: 'agents-github',
  });
  t.like(engine.decide(bot, { target: 'github', method: 'tools/call', name: 'delete_repo' }), {
    allow: false,
    rule: 'no-deletes',
  });
  t.like(engine.decide(bot, { target: 'github', method: 'tools/call', name: 'drop_table' }), {
    allow: false,
    rule: 'no-deletes',
  });
  t.like(engine.decide(contractor, { target: 'github', method: 'tools/call', name: 'create_issue' }), {
    allow: false,
    rule: 'contractors-no-github',
  });
  t.like(engine.decide(contractor, { target: 'github', method: 'initialize' }), {
    allow: false,
    rule: 'contractors-no-github',
  });
});

test('default deny once any rule exists; the policy hash is on every decision', (t) => {
  const d = engine.decide(auditor, { target: 'github', method: 'tools/call', name: 'create_issue' });
  t.like(d, { allow: false, rule: '(default deny)' });
  t.is(d.policyHash, policyHash(rules));
  t.regex(d.policyHash!, /^[0-9a-f]{64}$/);
  t.like(engine.decide(bot, { target: 'unknown', method: 'tools/call', name: 'x' }), {
    allow: false,
    policyHash: engine.hash,
  });
  const open = new PolicyEngine([]);
  t.like(open.decide(bot, { target: 'github', method: 'tools/call', name: 'delete_repo' }), {
    allow: true,
    policyHash: policyHash([]),
  });
});

test('tool/resource/prompt rules only match their kind; unnamed methods follow target access', (t) => {
  t.like(engine.decide(bot, { target: 'fs', method: 'tools/call', name: 'read_file' }), {
    allow: true,
    rule: 'agents-fs-read',
  });
  t.like(engine.decide(bot, { target: 'fs', method: 'tools/call', name: 'write_file' }), {
    allow: false,
    rule: '(default deny)',
  });
  t.like(engine.decide(bot, { target: 'fs', method: 'resources/read', name: 'file:///home/a' }), {
    allow: true,
  });
  t.like(engine.decide(bot, { target: 'fs', method: 'resources/read', name: 'file:///etc/passwd' }), {
    allow: false,
    rule: 'secrets-off-limits',
  });
  t.like(engine.decide(bot, { target: 'fs', method: 'prompts/get', name: 'p' }), { allow: false });
  // Partial allow → the client may initialize and list; the deny rules on names do not block that.
  for (const method of ['initialize', 'ping', 'tools/list', 'notifications/initialized']) {
    t.like(engine.decide(bot, { target: 'fs', method }), { allow: true, rule: 'agents-fs-read' }, method);
  }
  t.like(engine.decide(auditor, { target: 'fs', method: 'initialize' }), { allow: false });
});

test('list filtering: per-item decisions leave only callable tools', (t) => {
  const tools = ['read_file', 'read_dir', 'write_file', 'delete_file'];
  const visible = tools.filter(
    (name) => engine.decide(bot, { target: 'fs', method: 'tools/call', name }).allow,
  );
  t.deepEqual(visible, ['read_file', 'read_dir']);
});

test('who: fields AND together, entries within a field OR; subjects and issuers are globs', (t) => {
  const e = new PolicyEngine(
    parsePolicies([
      {
        name: 'r',
        effect: 'allow',
        subjects: ['svc-*'],
        issuers: ['https://idp'],
        roles: ['agent', 'admin'],
      },
    ]),
  );
  const a = (s: Partial<AuditActor>): AuditActor => ({
    subject: 'svc-1',
    auth_method: 'oidc',
    issuer: 'https://idp',
    roles: ['agent'],
    ...s,
  });
  const call = { target: 't', method: 'tools/call', name: 'x' };
  t.true(e.decide(a({}), call).allow);
  t.true(e.decide(a({ roles: ['admin'] }), call).allow);
  t.false(e.decide(a({ subject: 'human' }), call).allow);
  t.false(e.decide(a({ issuer: 'https://other' }), call).allow);
  t.false(e.decide(a({ roles: ['auditor'] }), call).allow);
  t.false(
    e.decide({ subject: 'svc-1', auth_method: 'api_key', roles: ['agent'] }, call).allow,
    'issuer required when listed',
  );
});

test('globs are literal apart from * and ?', (t) => {
  t.true(globToRegExp('a.b*').test('a.b.c'));
  t.false(globToRegExp('a.b').test('axb'));
  t.false(globToRegExp('read_*').test('xread_file'));
  t.true(globToRegExp('file:///(x)?').test('file:///(x)1'));
});

test('policy validation names the key', (t) => {
  t.throws(() => parsePolicies([{ name: 'a', effect: 'permit' }]), {
    instanceOf: ConfigError,
    message: /^policies\.0\.effect/,
  });
  t.throws(
    () =>
      parsePolicies([
        { name: 'a', effect: 'allow' },
        { name: 'a', effect: 'deny' },
      ]),
    { message: /policies\.1\.name/ },
  );
  t.throws(() => parsePolicies([{ name: 'a', effect: 'allow', roles: ['root'] }]), {
    message: /policies\.0\.roles/,
  });
  t.throws(() => parsePolicies([{ name: 'a', effect: 'allow', tool: ['x'] }]), { message: /policies\.0/ });
  t.is(
    policyHash(parsePolicies([{ name: 'a', effect: 'allow' }])),
    policyHash([{ name: 'a', effect: 'allow' }]),
  );
  t.not(policyHash(rules), policyHash([...rules].reverse()), 'order is part of the policy');
});
