// The configuration file is one document with one section per concern; the reports section is
// read from it like the others, and a misspelt section stops the start instead of being ignored.
import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadReportsConfig } from '../server/reports/report-config.ts';
import { ConfigError } from '../server/errors.ts';

function dir(t: import('ava').ExecutionContext): string {
  const d = mkdtempSync(join(tmpdir(), 'auditgate-config-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

test('the reports section of the service configuration file is the one read', (t) => {
  const d = dir(t);
  writeFileSync(
    join(d, 'auditgate.config.yaml'),
    'targets:\n  a: { url: "https://x.example/mcp" }\nreports:\n  control_owner: ciso@acme.example\n  dormant_days: 30\n',
  );
  // A stale separate file must not win over the main configuration.
  writeFileSync(join(d, 'reports.yaml'), 'reports:\n  control_owner: someone-else@acme.example\n');
  const r = loadReportsConfig({ AUDITGATE_CONFIG: 'auditgate.config.yaml' }, d, d);
  t.is(r.settings.controlOwner, 'ciso@acme.example');
  t.is(r.settings.dormantDays, 30);
});

test('a bad value in the reports section names the file and key', (t) => {
  const d = dir(t);
  writeFileSync(join(d, 'c.yaml'), 'reports:\n  dormant_days: -1\n');
  const err = t.throws(() => loadReportsConfig({ AUDITGATE_CONFIG: 'c.yaml' }, d, d), { instanceOf: ConfigError });
  t.regex(err!.message, /c\.yaml: reports.*dormant_days/);
});

test('an unknown top-level section is refused', (t) => {
  const d = dir(t);
  writeFileSync(join(d, 'c.yaml'), 'report:\n  dormant_days: 30\n');
  t.throws(() => loadReportsConfig({ AUDITGATE_CONFIG: 'c.yaml' }, d, d), {
    instanceOf: ConfigError,
    message: /unknown top-level key "report"/,
  });
});
