// GET /metrics, scraped as Prometheus would (a bearer credential, text format), checked against
// the audit log itself: every count the metrics give must be what the log's records say happened.
import test from 'ava';
import { randomBytes } from 'node:crypto';
import { startEverythingHttp, startGatewayService, type GatewayService } from './helpers/gateway-service.ts';
import type { AuditRecord } from '../gateway/audit-record.ts';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The Prometheus text format (version 0.0.4): one sample per line, # lines are HELP/TYPE. */
function parseExposition(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not an exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

/** Sum of the samples of a metric whose labels include `where`. */
function sum(samples: Sample[], name: string, where: Record<string, string> = {}): number {
  return samples
    .filter((s) => s.name === name && Object.entries(where).every(([k, v]) => s.labels[k] === v))
    .reduce((a, s) => a + s.value, 0);
}

async function scrape(gw: GatewayService, key?: string): Promise<Response> {
  return fetch(`${gw.url}/metrics`, key ? { headers: { authorization: `Bearer ${key}` } } : {});
}

/** Waits until the log has committed everything appended so far (a scrape then sees it all). */
async function settled(gw: GatewayService): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const s = gw.service.log.snapshot();
    if (s.queued === 0 && s.committing === 0) return;
    await new Promise((r) => setTimeout(r, 10));
  }
}

for (const kind of ['sqlite', 'postgres'] as const) {
  test(`${kind}: metrics count what the audit log recorded: messages, refusals, sessions, latencies, commits`, async (t) => {
    const upstream = await startEverythingHttp();
    const gw = await startGatewayService({ kind, targets: { everything: { url: upstream.url } } });
    t.teardown(async () => {
      await gw.cleanup();
      await upstream.stop();
    });
    const monitor = (await gw.newKey('prometheus', ['monitor'])).key;

    const { client, transport } = await gw.connect('everything');
    await client.listTools();
    const echo = await client.callTool({ name: 'echo', arguments: { message: 'counted' } });
    t.deepEqual(echo.content, [{ type: 'text', text: 'Echo: counted' }]);
    await transport.terminateSession();
    await client.close();
    // Refusals: a wrong key, a target that does not exist (its name must not become a label).
    const bogusTarget = `no-such-${randomBytes(4).toString('hex')}`;
    const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' });
    const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
    const wrong = await fetch(gw.endpoint('everything'), {
      method: 'POST',
      headers: { ...headers, authorization: `Bearer agk_${'0'.repeat(16)}_${'A'.repeat(43)}` },
      body,
    });
    t.is(wrong.status, 401);
    const missing = await fetch(gw.endpoint(bogusTarget), { method: 'POST', headers: { ...headers, authorization: `Bearer ${gw.key}` }, body });
    t.is(missing.status, 404);
    await settled(gw);

    const res = await scrape(gw, monitor);
    t.is(res.status, 200);
    t.regex(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    const m = parseExposition(text);
    const records: AuditRecord[] = await gw.records();
    const head = await gw.service.log.head();

    // Messages, per direction / kind / method, exactly as the log holds them.
    const messages = records.filter((r) => r.event === 'mcp.message');
    t.true(messages.length >= 6, 'initialize, initialized, tools/list, tools/call and answers');
    const groups = new Map<string, number>();
    for (const r of messages) {
      const k = `${r.mcp!.direction}|${r.mcp!.kind}|${r.mcp!.method ?? ''}`;
      groups.set(k, (groups.get(k) ?? 0) + 1);
    }
    for (const [k, n] of groups) {
      const [direction, kind, method] = k.split('|') as [string, string, string];
      t.is(sum(m, 'auditgate_mcp_messages_total', { target: 'everything', direction, kind, method }), n, k);
    }
    t.is(sum(m, 'auditgate_mcp_messages_total'), messages.length);
    t.is(
      sum(m, 'auditgate_mcp_messages_total', { target: 'everything', direction: 'client_to_upstream', method: 'tools/call' }),
      1,
    );

    // Refusals by status; the bogus target's name appears nowhere.
    const refused = records.filter((r) => r.event === 'mcp.refused');
    t.is(sum(m, 'auditgate_mcp_refusals_total'), refused.length);
    t.is(sum(m, 'auditgate_mcp_refusals_total', { target: 'everything', status: '401' }), refused.filter((r) => r.mcp?.http_status === 401).length);
    t.is(sum(m, 'auditgate_mcp_refusals_total', { target: '(unknown)', status: '404', rule: 'target' }), 1);
    t.false(text.includes(bogusTarget), 'a client-chosen target name never becomes a label');

    // Sessions opened and closed; response latencies, one observation per answered request.
    const count = (event: string) => records.filter((r) => r.event === event).length;
    t.is(sum(m, 'auditgate_mcp_session_events_total', { target: 'everything', event: 'open' }), count('mcp.session.open'));
    t.is(sum(m, 'auditgate_mcp_session_events_total', { target: 'everything', event: 'close' }), count('mcp.session.close'));
    t.true(count('mcp.session.close') >= 1, 'the client closed its session');
    const answered = messages.filter((r) => r.mcp!.direction === 'upstream_to_client' && r.mcp!.latency_ms !== undefined);
    t.true(answered.length >= 3);
    t.is(sum(m, 'auditgate_mcp_response_latency_seconds_count', { target: 'everything', direction: 'upstream_to_client' }), answered.length);
    const latencySum = answered.reduce((a, r) => a + r.mcp!.latency_ms! / 1000, 0);
    t.true(Math.abs(sum(m, 'auditgate_mcp_response_latency_seconds_sum', { direction: 'upstream_to_client' }) - latencySum) < 1e-6);

    // The log: every entry of this fresh log was committed by this process.
    t.is(sum(m, 'auditgate_log_entries_total'), head.size);
    t.is(sum(m, 'auditgate_log_tree_size'), head.size);
    t.is(sum(m, 'auditgate_log_writable'), 1);
    t.is(sum(m, 'auditgate_log_append_failures_total'), 0);
    t.is(sum(m, 'auditgate_log_pending_entries'), 0);
    const commits = sum(m, 'auditgate_log_commits_total');
    t.true(commits >= 1 && commits <= head.size);
    t.is(sum(m, 'auditgate_log_commit_seconds_count'), commits, 'one commit-time observation per commit');
    if (kind === 'sqlite')
      t.is(sum(m, 'auditgate_log_sqlite_commits_total'), commits, 'each SQLite commit was made on the event loop or the thread');
    else t.false(text.includes('auditgate_log_sqlite_commits_total{'), 'no SQLite figures on PostgreSQL');
    t.is(sum(m, 'auditgate_build_info'), 1);
    t.true(sum(m, 'process_cpu_seconds_total') > 0, 'process metrics are there too');

    // A checkpoint shows up once signed.
    await gw.service.log.checkpoint();
    const after = parseExposition(await (await scrape(gw, monitor)).text());
    t.is(sum(after, 'auditgate_log_checkpoint_size'), (await gw.service.log.head()).size);
    t.true(Math.abs(sum(after, 'auditgate_log_checkpoint_timestamp_seconds') - Date.now() / 1000) < 60);
  });
}

test('/metrics needs a credential with the monitor (or admin) role, and monitor reads nothing else', async (t) => {
  const gw = await startGatewayService();
  t.teardown(() => gw.cleanup());
  const monitor = (await gw.newKey('prometheus', ['monitor'])).key;
  const admin = (await gw.newKey('root', ['admin'])).key;

  const anonymous = await scrape(gw);
  t.is(anonymous.status, 401);
  t.regex(anonymous.headers.get('www-authenticate') ?? '', /^Bearer /);
  t.is((await scrape(gw, 'agk_0000000000000000_' + 'A'.repeat(43))).status, 401);
  t.is((await scrape(gw, gw.key)).status, 403, 'an agent key does not read metrics');
  t.is((await scrape(gw, admin)).status, 200);
  t.is((await scrape(gw, monitor)).status, 200);

  const as = (path: string) => fetch(`${gw.url}${path}`, { headers: { authorization: `Bearer ${monitor}` } });
  t.is((await as('/log/entries?start=0&end=1')).status, 403, 'monitor cannot read audit data');
  t.is((await as('/api/keys')).status, 403, 'monitor cannot list keys');
  const mcp = await fetch(gw.endpoint('everything'), {
    method: 'POST',
    headers: { authorization: `Bearer ${monitor}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
  });
  t.is(mcp.status, 403, 'monitor cannot send MCP traffic');
});

test('a log that refuses appends shows as not writable, with its refusals counted', async (t) => {
  const upstream = await startEverythingHttp();
  const gw = await startGatewayService({ targets: { everything: { url: upstream.url } } });
  t.teardown(async () => {
    await gw.cleanup();
    await upstream.stop();
  });
  const monitor = (await gw.newKey('prometheus', ['monitor'])).key;
  const before = parseExposition(await (await scrape(gw, monitor)).text());
  t.is(sum(before, 'auditgate_log_writable'), 1);
  await gw.service.log.close();
  await t.throwsAsync(gw.service.log.append({ event: 'test' }), { name: 'LogUnavailableError' });
  const after = parseExposition(await (await scrape(gw, monitor)).text());
  t.is(sum(after, 'auditgate_log_writable'), 0);
  t.is(sum(after, 'auditgate_log_append_failures_total'), 1);

  // MCP traffic now fails closed; a message whose record never became durable is not counted.
  const messages = sum(after, 'auditgate_mcp_messages_total');
  const refused = await fetch(gw.endpoint('everything'), {
    method: 'POST',
    headers: { authorization: `Bearer ${gw.key}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '1' } },
    }),
  });
  t.is(refused.status, 503);
  const later = parseExposition(await (await scrape(gw, monitor)).text());
  t.is(sum(later, 'auditgate_mcp_messages_total'), messages, 'no message counted that the log does not hold');
  t.true(sum(later, 'auditgate_log_append_failures_total') > 1, 'the failed appends are counted instead');
});
