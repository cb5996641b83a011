// Per-tool policy enforced by the gateway (the `policies:` section, server/policy as Authorizer):
// a denied call never reaches the upstream and is refused with a JSON-RPC error, list results only
// show what the caller may use, and every decision is recorded with the rule and the policy hash.
import test from 'ava';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { everythingServerPath } from '../server/targets.ts';
import { mcpRecords, startEverythingHttp, startGatewayService, type RunningUpstream } from './helpers/gateway-service.ts';
import { post } from './helpers/raw-mcp.ts';

const POLICIES = [
  { name: 'agents-use-some-tools', effect: 'allow', roles: ['agent'], targets: ['everything'], tools: ['echo', 'get-sum'] },
  { name: 'never-env', effect: 'deny', tools: ['get-env'] },
];

for (const kind of ['stdio', 'http'] as const) {
  test(`${kind}: denied calls are refused before the upstream, lists are filtered, decisions recorded`, async (t) => {
    let upstream: RunningUpstream | undefined;
    const target = kind === 'http' ? { url: (upstream = await startEverythingHttp()).url } : { command: process.execPath, args: [everythingServerPath(), 'stdio'] };
    const gw = await startGatewayService({ targets: { everything: target }, extra: { policies: POLICIES } });
    t.teardown(async () => {
      await gw.cleanup();
      await upstream?.stop();
    });
    const { client, transport } = await gw.connect('everything');
    const tools = await client.listTools();
    t.deepEqual(tools.tools.map((x) => x.name).sort(), ['echo', 'get-sum']);
    const echo = await client.callTool({ name: 'echo', arguments: { message: 'allowed' } });
    t.regex(JSON.stringify(echo.content), /allowed/);
    const err = await t.throwsAsync(client.callTool({ name: 'get-env', arguments: {} }), { instanceOf: McpError });
    t.is((err as McpError).code, -32003);
    t.regex(err!.message, /Forbidden by policy/);
    const defaultDeny = await t.throwsAsync(client.callTool({ name: 'get-tiny-image', arguments: {} }), { instanceOf: McpError });
    t.regex(defaultDeny!.message, /no policy rule allows tools\/call get-tiny-image/);
    const resources = await client.listResources();
    t.is(resources.resources.length, 0, 'no rule allows reading resources: none are listed');
    await client.close();

    const recs = mcpRecords(await gw.records(), transport.sessionId);
    const refused = recs.filter((r) => r.event === 'mcp.refused');
    t.is(refused.length, 2);
    t.like(refused[0], { outcome: { decision: 'deny', rule: 'never-env' }, mcp: { name: 'get-env', method: 'tools/call' }, actor: { subject: 'agent-a' } });
    t.like(refused[1], { outcome: { decision: 'deny', rule: '(default deny)' }, mcp: { name: 'get-tiny-image' } });
    for (const r of refused) t.regex(r.outcome?.policy_hash ?? '', /^[0-9a-f]{16,}$/);
    t.false(
      recs.some((r) => r.event === 'mcp.message' && r.mcp?.direction === 'client_to_upstream' && (r.mcp.name === 'get-env' || r.mcp.name === 'get-tiny-image')),
      'denied calls were never forwarded',
    );
    const allowedCall = recs.find((r) => r.event === 'mcp.message' && r.mcp?.direction === 'client_to_upstream' && r.mcp.name === 'echo');
    t.like(allowedCall, { outcome: { decision: 'allow', rule: 'agents-use-some-tools' } });
    const list = recs.find((r) => r.mcp?.direction === 'upstream_to_client' && Array.isArray((r.detail as { filtered_out?: unknown })?.filtered_out) && JSON.stringify(r.payload?.body).includes('"tools"'));
    t.truthy(list, 'the filtered tools/list answer is recorded as delivered, naming what was taken out');
    t.true((list!.detail!.filtered_out as string[]).includes('get-env'));
    t.regex(String(list!.detail!.upstream_sha256), /^[0-9a-f]{64}$/);
    t.false(JSON.stringify(list!.payload!.body).includes('get-env'));
  });
}

test('modern era: the same policy over the stateless path', async (t) => {
  const gw = await startGatewayService({
    targets: { everything: { command: process.execPath, args: [everythingServerPath(), 'stdio'] } },
    extra: { policies: POLICIES },
  });
  t.teardown(() => gw.cleanup());
  const V = '2026-07-28';
  const meta = { 'io.modelcontextprotocol/protocolVersion': V, 'io.modelcontextprotocol/clientCapabilities': {} };
  const url = gw.endpoint('everything');
  const list = await post(url, { jsonrpc: '2.0', id: 1, method: 'tools/list', params: { _meta: meta } }, { key: gw.key, version: V, headers: { 'mcp-method': 'tools/list' } });
  const body = (await list.json()) as { result: { tools: Array<{ name: string }> } };
  t.deepEqual(body.result.tools.map((x) => x.name).sort(), ['echo', 'get-sum']);
  const denied = await post(
    url,
    { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'get-env', arguments: {}, _meta: meta } },
    { key: gw.key, version: V, headers: { 'mcp-method': 'tools/call', 'mcp-name': 'get-env' } },
  );
  t.is(denied.status, 200);
  t.like(await denied.json(), { id: 2, error: { code: -32003 } });
});

test('a batch with one denied call is not forwarded at all', async (t) => {
  const gw = await startGatewayService({
    targets: { everything: { command: process.execPath, args: [everythingServerPath(), 'stdio'] } },
    extra: { policies: POLICIES },
  });
  t.teardown(() => gw.cleanup());
  const url = gw.endpoint('everything');
  const { rawInitialize } = await import('./helpers/raw-mcp.ts');
  const session = await rawInitialize(url, gw.key, {}, '2025-03-26');
  const res = await post(
    url,
    [
      { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: { message: 'x' } } },
      { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'get-env', arguments: {} } },
    ],
    { key: gw.key, session },
  );
  t.is(res.status, 200);
  const answers = (await res.json()) as Array<{ id: number; error: { code: number; message: string } }>;
  t.deepEqual(
    answers.map((a) => [a.id, a.error.code]),
    [
      [1, -32003],
      [2, -32003],
    ],
  );
  t.regex(answers[1]!.error.message, /Forbidden by policy/);
  const recs = mcpRecords(await gw.records(), session);
  t.false(recs.some((r) => r.event === 'mcp.message' && r.mcp?.direction === 'client_to_upstream' && r.mcp.method === 'tools/call'));
});
