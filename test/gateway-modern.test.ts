// The modern era (2026-07-28): stateless requests with Mcp-Method/Mcp-Name headers that must agree
// with the body, no GET stream, no sessions, closing the response stream cancels. Over a stdio
// target the gateway serves it from a shared child; over an HTTP target it forwards verbatim and
// passes the upstream's answer through (the reference server only speaks the legacy era).
import test from 'ava';
import { everythingServerPath } from '../server/targets.ts';
import { mcpRecords, startEverythingHttp, startGatewayService } from './helpers/gateway-service.ts';
import { messagesOf, post, readEvents } from './helpers/raw-mcp.ts';

const V = '2026-07-28';
const META = { 'io.modelcontextprotocol/protocolVersion': V, 'io.modelcontextprotocol/clientCapabilities': {} };

function call(id: number | string, name: string, args: Record<string, unknown>, extraMeta: Record<string, unknown> = {}) {
  return { jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args, _meta: { ...META, ...extraMeta } } };
}

function modern(key: string, method: string, name?: string, extra: Record<string, string> = {}) {
  return { key, version: V, headers: { 'mcp-method': method, ...(name !== undefined ? { 'mcp-name': name } : {}), ...extra } };
}

test('modern era over a stdio target: stateless calls, progress, header/body checks, 405, cancellation', async (t) => {
  const gw = await startGatewayService({ targets: { everything: { command: process.execPath, args: [everythingServerPath(), 'stdio'] } } });
  t.teardown(() => gw.cleanup());
  const url = gw.endpoint('everything');

  const list = await post(url, { jsonrpc: '2.0', id: 1, method: 'tools/list', params: { _meta: META } }, modern(gw.key, 'tools/list'));
  t.is(list.status, 200);
  t.is(list.headers.get('mcp-session-id'), null, 'no sessions in the modern era');
  const tools = (await list.json()) as { id: number; result: { tools: Array<{ name: string }> } };
  t.is(tools.id, 1);
  t.true(tools.result.tools.some((x) => x.name === 'echo'));

  // Two clients use the shared child at once with the same JSON-RPC id: each gets its own answer.
  const [a, b] = await Promise.all([
    post(url, call(5, 'echo', { message: 'from a' }), modern(gw.key, 'tools/call', 'echo')),
    post(url, call(5, 'echo', { message: 'from b' }), modern(gw.key, 'tools/call', 'echo')),
  ]);
  t.like(await a.json(), { jsonrpc: '2.0', id: 5, result: { content: [{ type: 'text', text: 'Echo: from a' }] } });
  t.like(await b.json(), { jsonrpc: '2.0', id: 5, result: { content: [{ type: 'text', text: 'Echo: from b' }] } });

  // Progress arrives on an SSE stream scoped to the request, with the client's own token.
  const long = await post(
    url,
    call('p1', 'trigger-long-running-operation', { duration: 0.4, steps: 2 }, { progressToken: 'mine' }),
    modern(gw.key, 'tools/call', 'trigger-long-running-operation'),
  );
  t.regex(long.headers.get('content-type') ?? '', /^text\/event-stream/);
  const msgs = messagesOf(await readEvents(long, (ev) => !!ev.data && JSON.parse(ev.data).id === 'p1'));
  t.deepEqual(
    msgs.map((m) => (m.id === 'p1' ? 'result' : (m.params as { progressToken: string }).progressToken)),
    ['mine', 'mine', 'result'],
  );

  // Header/body mismatches: 400 with -32020, and nothing is forwarded.
  const wrongName = await post(url, call(9, 'echo', { message: 'x' }), modern(gw.key, 'tools/call', 'get-env'));
  t.is(wrongName.status, 400);
  t.like(await wrongName.json(), { id: 9, error: { code: -32020 } });
  const wrongMethod = await post(url, call(10, 'echo', { message: 'x' }), modern(gw.key, 'tools/list'));
  t.is(wrongMethod.status, 400);
  t.like(await wrongMethod.json(), { error: { code: -32020 } });
  const noMethod = await post(url, call(11, 'echo', { message: 'x' }), { key: gw.key, version: V, headers: { 'mcp-name': 'echo' } });
  t.is(noMethod.status, 400);
  t.like(await noMethod.json(), { error: { code: -32020 } });
  const metaMismatch = await post(
    url,
    { ...call(12, 'echo', { message: 'x' }), params: { name: 'echo', arguments: { message: 'x' }, _meta: { ...META, 'io.modelcontextprotocol/protocolVersion': '2025-11-25' } } },
    modern(gw.key, 'tools/call', 'echo'),
  );
  t.is(metaMismatch.status, 400);
  t.like(await metaMismatch.json(), { error: { code: -32020 } });

  // Unknown versions and methods.
  const future = await post(url, call(13, 'echo', { message: 'x' }), { key: gw.key, version: '2099-01-01', headers: { 'mcp-method': 'tools/call', 'mcp-name': 'echo' } });
  t.is(future.status, 400);
  const futureBody = (await future.json()) as { error: { code: number; data: { supported: string[]; requested: string } } };
  t.is(futureBody.error.code, -32022);
  t.is(futureBody.error.data.requested, '2099-01-01');
  t.true(futureBody.error.data.supported.includes(V));
  const unknownMethod = await post(url, { jsonrpc: '2.0', id: 14, method: 'no/such-method', params: { _meta: META } }, modern(gw.key, 'no/such-method'));
  t.is(unknownMethod.status, 404);
  t.like(await unknownMethod.json(), { id: 14, error: { code: -32601 } });

  // No GET stream, no DELETE.
  for (const method of ['GET', 'DELETE']) {
    const r = await fetch(url, { method, headers: { authorization: `Bearer ${gw.key}`, accept: 'text/event-stream', 'mcp-protocol-version': V } });
    t.is(r.status, 405, method);
    t.is(r.headers.get('allow'), 'POST');
    await r.text();
  }

  // Closing the response stream cancels the request upstream.
  const ac = new AbortController();
  const slow = await post(
    url,
    call('slow', 'trigger-long-running-operation', { duration: 5, steps: 5 }, { progressToken: 'slow' }),
    { ...modern(gw.key, 'tools/call', 'trigger-long-running-operation'), signal: ac.signal },
  );
  await readEvents(slow, (ev) => !!ev.data);
  ac.abort();
  await new Promise((r) => setTimeout(r, 300));

  const recs = mcpRecords(await gw.records());
  const fromA = recs.filter((r) => r.mcp?.jsonrpc_id === 5 && r.mcp.direction === 'upstream_to_client');
  t.is(fromA.length, 2, 'both answers recorded, each with the id the client sent');
  for (const r of recs.filter((r) => r.event === 'mcp.message')) {
    t.is(r.mcp?.protocol_version, V);
    t.is(r.mcp?.session, undefined);
  }
  const mismatches = recs.filter((r) => r.event === 'mcp.refused' && r.outcome?.rule === 'header-mismatch');
  t.is(mismatches.length, 4);
  t.true(recs.some((r) => r.event === 'mcp.refused' && r.outcome?.rule === 'protocol-version' && r.mcp?.http_status === 400));
  t.false(
    recs.some((r) => r.event === 'mcp.message' && r.mcp?.jsonrpc_id === 9),
    'a refused request is not recorded as forwarded',
  );
  const cancel = recs.find((r) => r.mcp?.method === 'notifications/cancelled' && r.mcp.direction === 'client_to_upstream');
  t.like(cancel, { detail: { origin: 'gateway' }, payload: { body: { params: { requestId: 'slow' } } } });
});

test('modern era over an HTTP target: forwarded verbatim, the upstream answer passes through', async (t) => {
  const upstream = await startEverythingHttp();
  const gw = await startGatewayService({ targets: { everything: { url: upstream.url } } });
  t.teardown(async () => {
    await gw.cleanup();
    await upstream.stop();
  });
  const url = gw.endpoint('everything');
  // The reference server predates 2026-07-28 and says so with a 400; the gateway does not pretend otherwise.
  const direct = await post(upstream.url, call(1, 'echo', { message: 'x' }), modern('', 'tools/call', 'echo'));
  const directBody = await direct.text();
  const through = await post(url, call(1, 'echo', { message: 'x' }), modern(gw.key, 'tools/call', 'echo'));
  t.is(through.status, direct.status);
  t.is(await through.text(), directBody);
  // The gateway still checks the headers before anything is forwarded.
  const mismatch = await post(url, call(2, 'echo', { message: 'x' }), modern(gw.key, 'tools/call', 'other'));
  t.is(mismatch.status, 400);
  t.like(await mismatch.json(), { error: { code: -32020 } });
  const recs = mcpRecords(await gw.records());
  const answer = recs.find((r) => r.mcp?.direction === 'upstream_to_client');
  t.is(answer?.mcp?.http_status, direct.status);
});
