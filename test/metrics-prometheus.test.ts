// A real Prometheus scrapes auditgate with the configuration the README gives (a monitor key in a
// credentials file), and promtool checks and unit-tests the alerting rules shipped in
// docs/prometheus/. Prometheus comes from Debian's package (.ci/run installs it).
import test from 'ava';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort, startGatewayService } from './helpers/gateway-service.ts';

const run = promisify(execFile);
const RULES_DIR = new URL('../docs/prometheus/', import.meta.url).pathname;

test('the shipped alerting rules are valid and pass their unit tests (promtool)', async (t) => {
  const check = await run('promtool', ['check', 'rules', join(RULES_DIR, 'auditgate-alerts.yml')]);
  t.regex(check.stdout, /SUCCESS: 8 rules found/);
  const unit = await run('promtool', ['test', 'rules', join(RULES_DIR, 'auditgate-alerts.test.yml')]);
  t.regex(unit.stdout, /SUCCESS/);
});

interface PromResult {
  metric: Record<string, string>;
  value: [number, string];
}

test('Prometheus scrapes /metrics with a monitor key and sees what the log recorded', async (t) => {
  const gw = await startGatewayService();
  const dir = mkdtempSync(join(tmpdir(), 'auditgate-prom-'));
  t.teardown(async () => {
    await gw.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });
  const monitor = (await gw.newKey('prometheus', ['monitor'])).key;
  writeFileSync(join(dir, 'auditgate.key'), `${monitor}\n`, { mode: 0o600 });
  const target = new URL(gw.url).host;
  // The README's scrape configuration, with a short interval.
  writeFileSync(
    join(dir, 'prometheus.yml'),
    [
      'global: { scrape_interval: 1s, evaluation_interval: 1s }',
      `rule_files: [${JSON.stringify(join(RULES_DIR, 'auditgate-alerts.yml'))}]`,
      'scrape_configs:',
      '  - job_name: auditgate',
      `    authorization: { credentials_file: ${JSON.stringify(join(dir, 'auditgate.key'))} }`,
      `    static_configs: [{ targets: [${JSON.stringify(target)}] }]`,
      '',
    ].join('\n'),
  );

  // Some traffic first: a session with a tool call, and a refused key.
  const { client, transport } = await gw.connect('everything');
  await client.callTool({ name: 'echo', arguments: { message: 'scraped' } });
  await transport.terminateSession();
  await client.close();
  const refused = await fetch(gw.endpoint('everything'), {
    method: 'POST',
    headers: { authorization: 'Bearer not-a-key', 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: '{"jsonrpc":"2.0","id":1,"method":"ping"}',
  });
  t.is(refused.status, 401);

  let stderr = '';
  // Prometheus takes a port it is given: one free when chosen may be taken before it listens
  // (another test process), so a start that fails to bind is tried again on another.
  const startPrometheus = async (): Promise<{ port: number; prom: ReturnType<typeof spawn> }> => {
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const prom = spawn(
        'prometheus',
        [
          `--config.file=${join(dir, 'prometheus.yml')}`,
          `--storage.tsdb.path=${join(dir, 'data')}`,
          `--web.listen-address=127.0.0.1:${port}`,
        ],
        { stdio: ['ignore', 'ignore', 'pipe'] },
      );
      stderr = '';
      prom.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-4000)));
      const started = await new Promise<boolean>((resolve) => {
        const done = (ok: boolean) => {
          clearInterval(poll);
          clearTimeout(limit);
          if (!ok) prom.kill('SIGKILL');
          resolve(ok);
        };
        const poll = setInterval(() => {
          if (/ready to receive web requests/i.test(stderr)) done(true);
        }, 50);
        const limit = setTimeout(() => done(false), 30_000);
        prom.once('exit', () => done(false));
      });
      if (started) return { port, prom };
      if (attempt >= 3 || !/address already in use/i.test(stderr)) throw new Error(`prometheus did not start: ${stderr.slice(-500)}`);
    }
  };
  const { port, prom } = await startPrometheus();
  t.teardown(() => {
    prom.kill('SIGKILL');
  });
  const api = async (path: string) => {
    const r = await fetch(`http://127.0.0.1:${port}${path}`);
    return (await r.json()) as { status: string; data: any };
  };
  const query = async (q: string): Promise<PromResult[]> =>
    (await api(`/api/v1/query?query=${encodeURIComponent(q)}`)).data.result as PromResult[];

  // Until the target has been scraped successfully (Prometheus and its first scrape take a moment).
  let health = '';
  let lastError = '';
  for (let i = 0; i < 150 && health !== 'up'; i++) {
    await new Promise((r) => setTimeout(r, 200));
    try {
      const targets = (await api('/api/v1/targets')).data.activeTargets as Array<{ health: string; lastError: string }>;
      health = targets[0]?.health ?? '';
      lastError = targets[0]?.lastError ?? '';
    } catch {
      // Not listening yet.
    }
  }
  t.is(health, 'up', `scrape health: ${health} ${lastError} ${stderr.slice(-500)}`);

  // Prometheus parsed the exposition; its figures are the log's.
  const records = await gw.records();
  const messages = records.filter((r) => r.event === 'mcp.message').length;
  let got: PromResult[] = [];
  for (let i = 0; i < 50; i++) {
    got = await query('sum(auditgate_mcp_messages_total{job="auditgate"})');
    if (got.length && Number(got[0]!.value[1]) === messages) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  t.is(Number(got[0]?.value[1]), messages, 'messages counted, as the log holds them');
  const calls = await query('auditgate_mcp_messages_total{direction="client_to_upstream", method="tools/call"}');
  t.is(Number(calls[0]?.value[1]), 1);
  t.is(Number((await query('auditgate_mcp_refusals_total{status="401", rule="auth"}'))[0]?.value[1]), 1);
  t.is(Number((await query('auditgate_log_writable'))[0]?.value[1]), 1);
  const size = Number((await query('auditgate_log_tree_size'))[0]?.value[1]);
  t.true(size >= records.length, `tree size ${size} (≥ ${records.length} records read before)`);
  // The rules loaded, and nothing fires on a healthy gateway.
  const rules = (await api('/api/v1/rules')).data.groups as Array<{ name: string; rules: Array<{ name: string; state: string }> }>;
  t.deepEqual(rules.map((g) => g.name), ['auditgate']);
  t.is(rules[0]!.rules.length, 8);
  t.deepEqual(rules[0]!.rules.filter((r) => r.state !== 'inactive').map((r) => r.name), []);
});
