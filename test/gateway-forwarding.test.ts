// The official SDK client through the real service (API keys, durable audit log) to the reference
// server over stdio and over Streamable HTTP: the protocol works as it does directly, and every
// message the client sent or received is a log entry with the caller's identity, in order,
// written before the message moved on.
import test from 'ava';
import { createHash } from 'node:crypto';
import canonicalizeModule from 'canonicalize';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { AuditRecord } from '../gateway/audit-record.ts';
import { everythingServerPath } from '../server/targets.ts';
import { mcpRecords, startEverythingHttp, startGatewayService, type GatewayService, type RunningUpstream } from './helpers/gateway-service.ts';
import { CapturingTransport, type Seen } from './helpers/capture-transport.ts';
import { main as cli } from '../server/cli/main.ts';

const canonicalize = canonicalizeModule as unknown as (v: unknown) => string;

type Kind = 'stdio' | 'http';

async function setup(kind: Kind): Promise<{ gw: GatewayService; upstream?: RunningUpstream; cleanup(): Promise<void> }> {
  let upstream: RunningUpstream | undefined;
  const targets =
    kind === 'http'
      ? { everything: { url: (upstream = await startEverythingHttp()).url } }
      : { everything: { command: process.execPath, args: [everythingServerPath(), 'stdio'] } };
  const gw = await startGatewayService({ targets });
  return {
    gw,
    upstream,
    async cleanup() {
      await gw.cleanup();
      await upstream?.stop();
    },
  };
}

function connectCapturing(gw: GatewayService, target: string, key = gw.key): CapturingTransport {
  return new CapturingTransport(new URL(gw.endpoint(target)), { requestInit: { headers: { Authorization: `Bearer ${key}` } } });
}

/** Finds the record of each message the client saw, checks identity and payload, returns their log positions. */
function matchRecords(t: import('ava').ExecutionContext, records: AuditRecord[], seen: Seen[], expect: { subject: string; keyId: string; session: string; transport: Kind }): number[] {
  const used = new Set<number>();
  return seen.map((s) => {
    const direction = s.dir === 'out' ? 'client_to_upstream' : 'upstream_to_client';
    const i = records.findIndex(
      (r, idx) => !used.has(idx) && r.event === 'mcp.message' && r.mcp?.direction === direction && canonicalize(r.payload?.body) === canonicalize(s.message),
    );
    t.true(i >= 0, `no ${direction} record for ${JSON.stringify(s.message).slice(0, 200)}`);
    if (i < 0) return -1;
    used.add(i);
    const r = records[i]!;
    t.is(r.actor?.subject, expect.subject);
    t.is(r.actor?.auth_method, 'api_key');
    t.is(r.actor?.key_id, expect.keyId);
    t.is(r.mcp?.session, expect.session);
    t.is(r.mcp?.target, 'everything');
    t.is(r.mcp?.transport, expect.transport);
    t.is(r.payload?.sha256, createHash('sha256').update(canonicalize(s.message)).digest('hex'));
    if ('id' in s.message) t.is(r.mcp?.jsonrpc_id, s.message.id as string | number);
    if (r.mcp?.kind === 'response' || r.mcp?.kind === 'error') {
      if (s.dir === 'in') {
        t.is(typeof r.mcp.latency_ms, 'number', 'responses carry their latency');
        t.is(r.mcp.http_status, 200);
      }
    }
    t.regex(r.ts, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    t.truthy(r.gateway.instance);
    return i;
  });
}

for (const kind of ['stdio', 'http'] as const) {
  test(`${kind}: tools, resources and prompts work through the gateway, and every message is recorded in order with the caller's identity`, async (t) => {
    const env = await setup(kind);
    t.teardown(env.cleanup);
    const { gw } = env;
    const keyId = /^agk_([0-9a-f]{16})_/.exec(gw.key)![1]!;

    const transport = connectCapturing(gw, 'everything');
    const client = new Client({ name: 'gateway-test', version: '1.0.0' }, { capabilities: {} });
    await client.connect(transport);
    t.is(client.getServerVersion()?.name, 'mcp-servers/everything');
    const session = transport.sessionId!;
    t.truthy(session);

    const tools = await client.listTools();
    t.true(tools.tools.some((x) => x.name === 'echo'));
    const echo = await client.callTool({ name: 'echo', arguments: { message: 'héllo ✓ "quoted"' } });
    t.deepEqual(echo.content, [{ type: 'text', text: 'Echo: héllo ✓ "quoted"' }]);
    const sum = await client.callTool({ name: 'get-sum', arguments: { a: 2, b: 40 } });
    t.regex(JSON.stringify(sum.content), /42/);
    const resources = await client.listResources();
    t.true(resources.resources.length > 0);
    const read = await client.readResource({ uri: resources.resources[0]!.uri });
    t.true(read.contents.length > 0);
    const prompts = await client.listPrompts();
    t.true(prompts.prompts.some((p) => p.name === 'args-prompt'));
    const prompt = await client.getPrompt({ name: 'args-prompt', arguments: { city: 'Lyon' } });
    t.regex(JSON.stringify(prompt.messages), /Lyon/);
    const image = await client.callTool({ name: 'get-tiny-image', arguments: {} });
    t.true((image.content as Array<{ type: string }>).some((c) => c.type === 'image'));

    await transport.terminateSession();
    await client.close();

    // The session is gone: a request with its id is a 404, and the refusal is recorded.
    const after = await fetch(gw.endpoint('everything'), {
      method: 'POST',
      headers: {
        authorization: `Bearer ${gw.key}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-session-id': session,
        'mcp-protocol-version': '2025-11-25',
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 99, method: 'tools/list' }),
    });
    t.is(after.status, 404);
    t.like(await after.json(), { jsonrpc: '2.0', id: 99, error: { code: -32001 } });

    const all = mcpRecords(await gw.records());
    const positions = matchRecords(t, all, transport.seen, { subject: 'agent-a', keyId, session, transport: kind });
    // Client messages are recorded in the order the client sent them.
    const outs = positions.filter((_, i) => transport.seen[i]!.dir === 'out');
    t.deepEqual([...outs].sort((a, b) => a - b), outs);
    // Every response is recorded after its request.
    for (const [i, s] of transport.seen.entries()) {
      if (s.dir !== 'in' || !('id' in s.message) || 'method' in s.message) continue;
      const req = transport.seen.findIndex((o) => o.dir === 'out' && 'method' in o.message && o.message.id === s.message.id);
      t.true(positions[req]! < positions[i]!, `response ${String(s.message.id)} recorded after its request`);
    }
    const sessionRecords = all.filter((r) => r.mcp?.session === session);
    // The session opens before any upstream message reaches the client (over HTTP once the
    // upstream accepted initialize, over stdio before the process is spawned).
    const open = sessionRecords.findIndex((r) => r.event === 'mcp.session.open');
    t.true(open >= 0 && open < sessionRecords.findIndex((r) => r.mcp?.direction === 'upstream_to_client'));
    const close = sessionRecords.find((r) => r.event === 'mcp.session.close');
    t.like(close, { detail: { reason: 'client_delete' } });
    if (kind === 'stdio') {
      t.is(sessionRecords[open + 1]!.event, 'mcp.process.spawn');
      const exit = sessionRecords.findIndex((r) => r.event === 'mcp.process.exit');
      t.true(exit > 0 && exit < sessionRecords.indexOf(close!));
    }
    const refusal = all.find((r) => r.event === 'mcp.refused' && r.mcp?.jsonrpc_id === 99);
    t.like(refusal, { outcome: { decision: 'deny', rule: 'session' }, mcp: { http_status: 404 }, actor: { subject: 'agent-a' } });

    // An auditor's check of the whole log over HTTP passes afterwards.
    await gw.service.log.checkpoint();
    const vkey = (await (await fetch(`${gw.url}/log/vkey`)).text()).trim();
    const out: string[] = [];
    const auditor = await gw.newKey('auditor-1', ['auditor']);
    const code = await cli(['verify-log', '--url', gw.url, '--vkey', vkey], {
      env: { AUDITGATE_TOKEN: auditor.key },
      out: (l) => out.push(l),
      err: (l) => out.push(l),
    });
    t.is(code, 0, out.join('\n'));
    t.false(out.some((l) => l.startsWith('FAIL')));
  });
}

test('the upstream gets its own credential from the environment, never the client key, and a stdio child gets a minimal environment', async (t) => {
  const { createServer, request } = await import('node:http');
  const upstream = await startEverythingHttp();
  // A recording hop in front of the reference server: it keeps every header the gateway sent.
  const seenHeaders: Array<Record<string, string | string[] | undefined>> = [];
  const upUrl = new URL(upstream.url);
  const recorder = createServer((req, res) => {
    seenHeaders.push({ ...req.headers });
    const fwd = request({ host: '127.0.0.1', port: upUrl.port, path: req.url, method: req.method, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    req.pipe(fwd);
  });
  await new Promise<void>((r) => recorder.listen(0, '127.0.0.1', r));
  const recorderUrl = `http://127.0.0.1:${(recorder.address() as { port: number }).port}/mcp`;
  const upstreamToken = `upstream-${Math.random().toString(36).slice(2)}`;
  // The service resolves credentials from its own environment, like `npm start` does.
  process.env.TEST_UPSTREAM_TOKEN = upstreamToken;
  process.env.SECRET_OF_THE_GATEWAY = 'do-not-leak';
  t.teardown(() => {
    delete process.env.TEST_UPSTREAM_TOKEN;
    delete process.env.SECRET_OF_THE_GATEWAY;
  });
  const gw = await startGatewayService({
    targets: {
      remote: { url: recorderUrl, headers: { Authorization: { env: 'TEST_UPSTREAM_TOKEN', prefix: 'Bearer ' } } },
      local: { command: process.execPath, args: [everythingServerPath(), 'stdio'], env: { VISIBLE_TO_CHILD: 'yes' } },
    },
  });
  t.teardown(async () => {
    await gw.cleanup();
    await upstream.stop();
    recorder.close();
  });

  const { client } = await gw.connect('remote');
  await client.callTool({ name: 'echo', arguments: { message: 'x' } });
  await client.close();
  t.true(seenHeaders.length >= 3);
  for (const h of seenHeaders) {
    t.is(h.authorization, `Bearer ${upstreamToken}`);
    t.false(JSON.stringify(h).includes(gw.key), 'the client API key never reaches the upstream');
    t.is(h.cookie, undefined);
    t.is(h['x-api-key'], undefined);
  }

  const { client: local } = await gw.connect('local');
  const envResult = await local.callTool({ name: 'get-env', arguments: {} });
  const text = JSON.stringify(envResult.content);
  t.true(text.includes('VISIBLE_TO_CHILD'));
  t.false(text.includes('SECRET_OF_THE_GATEWAY'), 'the gateway environment is not handed to the child');
  t.false(text.includes('AUDITGATE_'), 'no auditgate settings reach the child');
  await local.close();

  // Neither the client key nor the upstream credential is in any log entry.
  const dump = JSON.stringify(await gw.records());
  t.false(dump.includes(gw.key.slice(-43)));
  t.false(dump.includes(upstreamToken));
});
