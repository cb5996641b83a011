// The targets part of the configuration file: YAML or JSON, credentials from the environment,
// and start-up errors that name the key and say what is wrong.
import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../server/errors.ts';
import { parseGatewayConfig, readConfigDocument, everythingServerPath } from '../server/targets.ts';

function tmp(t: import('ava').ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'auditgate-targets-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('YAML file: an HTTP target with a credential header from the environment and a stdio target', (t) => {
  const dir = tmp(t);
  const file = join(dir, 'auditgate.config.yaml');
  writeFileSync(
    file,
    [
      'gateway:',
      '  max_body_bytes: 65536',
      '  upstream_timeout: 20s',
      '  allowed_origins: [https://app.example.com]',
      'targets:',
      '  github:',
      '    url: https://api.example.com/mcp/',
      '    headers:',
      '      Authorization: { env: GH_TOKEN, prefix: "Bearer " }',
      '      X-Tenant: acme',
      '    timeout: 5s',
      '  files:',
      '    command: node',
      '    args: [server.js, --root, /srv]',
      '    env: { ROOT: /srv, API_TOKEN: { env: FILES_TOKEN } }',
      '    cwd: tools',
      '    max_sessions: 8',
      '    max_sessions_per_identity: 2',
    ].join('\n'),
  );
  const s = parseGatewayConfig(readConfigDocument({ configFile: file }), { GH_TOKEN: 'ghp_x', FILES_TOKEN: 'ft' });
  t.false(s.demo);
  t.is(s.maxBodyBytes, 65536);
  t.deepEqual(s.allowedOrigins, ['https://app.example.com']);
  t.deepEqual(s.targets[0], {
    name: 'github',
    kind: 'http',
    url: 'https://api.example.com/mcp/',
    headers: { authorization: 'Bearer ghp_x', 'x-tenant': 'acme' },
    timeoutMs: 5_000,
  });
  t.like(s.targets[1], { name: 'files', kind: 'stdio', command: 'node', args: ['server.js', '--root', '/srv'], env: { ROOT: '/srv', API_TOKEN: 'ft' }, timeoutMs: 20_000, cwd: join(dir, 'tools'), maxSessions: 8, maxSessionsPerIdentity: 2 });
});

test('no file: the demo target spawns the installed reference server over stdio', (t) => {
  const dir = tmp(t);
  const s = parseGatewayConfig(readConfigDocument({}, dir), {});
  t.true(s.demo);
  t.like(s.targets[0], { name: 'everything', kind: 'stdio', command: process.execPath, args: [everythingServerPath(), 'stdio'] });
});

test('precise errors name the key', (t) => {
  const dir = tmp(t);
  const cases: Array<[unknown, RegExp]> = [
    [{ targets: { gh: { url: 'https://x/mcp', headers: { Authorization: 'Bearer literal' } } } }, /^targets\.gh\.headers\.Authorization: credentials must come from the environment/],
    [{ targets: { gh: { url: 'https://x/mcp', headers: { Authorization: { env: 'MISSING_VAR' } } } } }, /^targets\.gh\.headers\.Authorization: environment variable MISSING_VAR is not set/],
    [{ targets: { gh: { url: 'ftp://x' } } }, /^targets\.gh\.url: must be http/],
    [{ targets: { gh: { url: 'https://user:pw@x/mcp' } } }, /^targets\.gh\.url: put credentials in headers/],
    [{ targets: { gh: { url: 'https://x', command: 'node' } } }, /^targets\.gh: set either url .* or command/],
    [{ targets: { gh: {} } }, /^targets\.gh: needs url .* or command/],
    [{ targets: { 'bad name!': { url: 'https://x' } } }, /^targets\.bad name!: a target name is/],
    [{ targets: { gh: { command: 'node', args: 'server.js' } } }, /^targets\.gh\.args: /],
    [{ targets: { gh: { command: 'node', colour: 'red' } } }, /^targets\.gh: .*colour/i],
    [{ targets: { gh: { url: 'https://x', timeout: 'soon' } } }, /^targets\.gh\.timeout: expected a duration/],
    [{ targets: { gh: { command: 'node', max_sessions: 0 } } }, /^targets\.gh\.max_sessions: /],
    [{ targets: {} }, /^targets: at least one target is required/],
    [{ gateway: { max_body_bytes: 10 }, targets: { a: { url: 'https://x' } } }, /^gateway\.max_body_bytes: /],
    [{ gateway: { allowed_origins: ['https://app.example.com/path'] }, targets: { a: { url: 'https://x' } } }, /^gateway\.allowed_origins\.0: /],
    [{ identity: {} }, /^targets: .* configures no targets/],
    [{ polices: [], targets: { a: { url: 'https://x' } } }, /c\.json: unknown top-level key "polices" \(expected: .*policies/],
  ];
  for (const [doc, re] of cases) {
    const file = join(dir, 'c.json');
    writeFileSync(file, JSON.stringify(doc));
    const err = t.throws(() => parseGatewayConfig(readConfigDocument({ configFile: file }), {}), { instanceOf: ConfigError });
    t.regex(err!.message, re, JSON.stringify(doc));
  }
  const yaml = join(dir, 'broken.yaml');
  writeFileSync(yaml, 'targets:\n  a: [unclosed\n');
  t.throws(() => readConfigDocument({ configFile: yaml }), { instanceOf: ConfigError, message: /broken\.yaml: not valid YAML/ });
  t.throws(() => readConfigDocument({ configFile: join(dir, 'absent.yaml') }), { instanceOf: ConfigError, message: /AUDITGATE_CONFIG: cannot read .*absent\.yaml: ENOENT/ });
});
