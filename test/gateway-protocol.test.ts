// Protocol features through the gateway, over a stdio and an HTTP upstream: progress,
// cancellation, server-initiated requests (sampling, elicitation, roots) and their answers, the
// GET stream, resumption with Last-Event-ID, and sessions bound to the identity that opened them.
import test from 'ava';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  ListRootsRequestSchema,
  type Progress,
} from '@modelcontextprotocol/sdk/types.js';
import { everythingServerPath } from '../server/targets.ts';
import { mcpRecords, startEverythingHttp, startGatewayService, type GatewayService, type RunningUpstream } from './helpers/gateway-service.ts';
import { messagesOf, post, rawInitialize, readEvents } from './helpers/raw-mcp.ts';

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

const V = '2025-11-25';

for (const kind of ['stdio', 'http'] as const) {
  test(`${kind}: progress, cancellation, and sampling / elicitation / roots round-trips`, async (t) => {
    const env = await setup(kind);
    t.teardown(env.cleanup);
    const { gw } = env;
    const client = new Client(
      { name: 'gateway-test', version: '1.0.0' },
      { capabilities: { sampling: {}, elicitation: {}, roots: { listChanged: true } } },
    );
    const sampled: string[] = [];
    client.setRequestHandler(CreateMessageRequestSchema, async (req) => {
      const c = req.params.messages[0]!.content as { type: string; text?: string };
      sampled.push(c.text ?? '');
      return { model: 'test-model', role: 'assistant', content: { type: 'text', text: 'sampled by the test client' } };
    });
    client.setRequestHandler(ElicitRequestSchema, async () => ({
      action: 'accept',
      content: { name: 'Ada Lovelace', check: true, email: 'ada@example.com' },
    }));
    let rootsAsked = 0;
    client.setRequestHandler(ListRootsRequestSchema, async () => {
      rootsAsked++;
      return { roots: [{ uri: 'file:///work/project', name: 'project' }] };
    });
    const { transport } = await gw.connect('everything', { client });
    const session = transport.sessionId!;

    const progress: Progress[] = [];
    const long = await client.callTool(
      { name: 'trigger-long-running-operation', arguments: { duration: 0.6, steps: 3 } },
      undefined,
      { onprogress: (p) => progress.push(p) },
    );
    t.regex(JSON.stringify(long.content), /Long running operation completed/);
    t.deepEqual(
      progress.map((p) => p.progress),
      [1, 2, 3],
    );

    const sampling = await client.callTool({ name: 'trigger-sampling-request', arguments: { prompt: 'hello sampler' } });
    t.regex(JSON.stringify(sampling.content), /sampled by the test client/);
    t.regex(sampled[0]!, /hello sampler/);

    const elicit = await client.callTool({ name: 'trigger-elicitation-request', arguments: {} });
    t.regex(JSON.stringify(elicit.content), /Ada Lovelace/);

    // The server asks for roots on its own (no related request): the GET stream carries it.
    const roots = await client.callTool({ name: 'get-roots-list', arguments: {} });
    t.regex(JSON.stringify(roots.content), /file:\/\/\/work\/project/);
    t.true(rootsAsked >= 1);

    // Cancellation: the client gives up; the notification is recorded and forwarded.
    const ac = new AbortController();
    const cancelled = client.callTool({ name: 'trigger-long-running-operation', arguments: { duration: 5, steps: 5 } }, undefined, {
      signal: ac.signal,
    });
    setTimeout(() => ac.abort('test cancels'), 400);
    await t.throwsAsync(cancelled);
    // The session still works after a cancellation.
    const echo = await client.callTool({ name: 'echo', arguments: { message: 'still here' } });
    t.regex(JSON.stringify(echo.content), /still here/);
    await client.close();

    const recs = mcpRecords(await gw.records(), session);
    const find = (dir: string, pred: (b: Record<string, unknown>) => boolean) =>
      recs.findIndex((r) => r.mcp?.direction === dir && pred(r.payload?.body as Record<string, unknown>));
    // Server-initiated requests go upstream → client; their answers client → upstream, with latency.
    for (const method of ['sampling/createMessage', 'elicitation/create', 'roots/list']) {
      const req = find('upstream_to_client', (b) => b.method === method);
      t.true(req >= 0, `${method} recorded`);
      const id = (recs[req]!.payload!.body as { id: unknown }).id;
      const ans = find('client_to_upstream', (b) => b.id === id && 'result' in b);
      t.true(ans > req, `the client's answer to ${method} is recorded after it`);
      t.is(recs[ans]!.mcp?.kind, 'response');
      t.is(typeof recs[ans]!.mcp?.latency_ms, 'number');
      t.is(recs[ans]!.actor?.subject, 'agent-a');
    }
    const progressRecords = recs.filter((r) => r.mcp?.method === 'notifications/progress' && r.mcp.direction === 'upstream_to_client');
    t.true(progressRecords.length >= 3);
    const cancel = find('client_to_upstream', (b) => b.method === 'notifications/cancelled');
    t.true(cancel >= 0, 'the cancellation is recorded');
    t.is(recs[cancel]!.mcp?.kind, 'notification');
  });

  test(`${kind}: GET stream, and a dropped POST stream resumed with Last-Event-ID`, async (t) => {
    const env = await setup(kind);
    t.teardown(env.cleanup);
    const { gw } = env;
    const url = gw.endpoint('everything');
    const session = await rawInitialize(url, gw.key);

    // A standalone GET stream opens; a second one on the same session is refused (409), as the SDK server does.
    const ac1 = new AbortController();
    const opened = Date.now();
    const get = await fetch(url, {
      headers: { authorization: `Bearer ${gw.key}`, accept: 'text/event-stream', 'mcp-session-id': session, 'mcp-protocol-version': V },
      signal: ac1.signal,
    });
    t.is(get.status, 200);
    // A quiet stream still opens at once: its headers do not wait for a first event.
    t.true(Date.now() - opened < 3_000, `GET stream opened after ${Date.now() - opened} ms`);
    t.regex(get.headers.get('content-type') ?? '', /^text\/event-stream/);
    t.is(get.headers.get('cache-control'), 'no-cache');
    const second = await fetch(url, {
      headers: { authorization: `Bearer ${gw.key}`, accept: 'text/event-stream', 'mcp-session-id': session, 'mcp-protocol-version': V },
    });
    t.is(second.status, 409);
    await second.body?.cancel();
    ac1.abort();

    // A long operation on a POST stream: read the first progress event, then hang up.
    const ac2 = new AbortController();
    const res = await post(
      url,
      {
        jsonrpc: '2.0',
        id: 7,
        method: 'tools/call',
        params: { name: 'trigger-long-running-operation', arguments: { duration: 1.2, steps: 3 }, _meta: { progressToken: 'tok-7' } },
      },
      { key: gw.key, session, version: V, signal: ac2.signal },
    );
    t.is(res.status, 200);
    const first = await readEvents(res, (ev) => !!ev.data);
    ac2.abort();
    const firstData = first.filter((e) => e.data);
    t.is(firstData.length, 1);
    t.like(JSON.parse(firstData[0]!.data!), { method: 'notifications/progress', params: { progress: 1, progressToken: 'tok-7' } });
    const lastId = firstData[0]!.id!;
    t.truthy(lastId, 'events carry ids');

    // Resume after the operation finished while nobody listened: the rest arrives, in order, once.
    await new Promise((r) => setTimeout(r, 1_500));
    const resumed = await fetch(url, {
      headers: {
        authorization: `Bearer ${gw.key}`,
        accept: 'text/event-stream',
        'mcp-session-id': session,
        'mcp-protocol-version': V,
        'last-event-id': lastId,
      },
    });
    t.is(resumed.status, 200);
    const rest = messagesOf(await readEvents(resumed, (ev) => !!ev.data && JSON.parse(ev.data).id === 7, 10_000));
    t.deepEqual(
      rest.map((m) => (m.id === 7 ? 'result' : (m.params as { progress: number }).progress)),
      [2, 3, 'result'],
    );
    t.regex(JSON.stringify(rest.at(-1)), /Long running operation completed/);

    // Each relayed message was recorded once per delivery, with the event id it travelled under.
    const recs = mcpRecords(await gw.records(), session);
    const resultRecords = recs.filter((r) => r.mcp?.direction === 'upstream_to_client' && r.mcp.jsonrpc_id === 7);
    t.true(resultRecords.length >= 1);
    t.truthy(resultRecords[0]!.mcp?.stream_event_id);
    t.is(typeof resultRecords[0]!.mcp?.latency_ms, 'number');
  });

  test(`${kind}: a session belongs to the identity that opened it`, async (t) => {
    const env = await setup(kind);
    t.teardown(env.cleanup);
    const { gw } = env;
    const url = gw.endpoint('everything');
    const session = await rawInitialize(url, gw.key);
    const list = { jsonrpc: '2.0', id: 'l1', method: 'tools/list' };

    const other = await gw.newKey('agent-b');
    const stolen = await post(url, list, { key: other.key, session, version: V });
    t.is(stolen.status, 403);
    t.like(await stolen.json(), { id: 'l1', error: { message: 'Forbidden: this session belongs to another identity' } });
    const stolenGet = await fetch(url, {
      headers: { authorization: `Bearer ${other.key}`, accept: 'text/event-stream', 'mcp-session-id': session },
    });
    t.is(stolenGet.status, 403);
    await stolenGet.text();
    const stolenDelete = await fetch(url, { method: 'DELETE', headers: { authorization: `Bearer ${other.key}`, 'mcp-session-id': session } });
    t.is(stolenDelete.status, 403);
    await stolenDelete.text();

    // The same subject through another of its keys is the same identity.
    const sameSubject = await gw.newKey('agent-a');
    const ok = await post(url, list, { key: sameSubject.key, session, version: V });
    t.is(ok.status, 200);
    await ok.text();

    // No credential at all: 401 with a JSON-RPC body, even with a valid session id.
    const anonymous = await post(url, list, { session, version: V });
    t.is(anonymous.status, 401);
    t.like(await anonymous.json(), { jsonrpc: '2.0', error: { code: -32000 } });
    t.truthy(anonymous.headers.get('www-authenticate'));

    const unknown = await post(url, list, { key: gw.key, session: 'no-such-session', version: V });
    t.is(unknown.status, 404);
    await unknown.text();
    const missing = await post(url, list, { key: gw.key, version: V });
    t.is(missing.status, 400);
    await missing.text();

    // DELETE ends it; afterwards the session is unknown.
    const del = await fetch(url, { method: 'DELETE', headers: { authorization: `Bearer ${gw.key}`, 'mcp-session-id': session, 'mcp-protocol-version': V } });
    t.is(del.status, 200);
    await del.text();
    const gone = await post(url, list, { key: gw.key, session, version: V });
    t.is(gone.status, 404);
    await gone.text();

    const recs = mcpRecords(await gw.records());
    const refusals = recs.filter((r) => r.event === 'mcp.refused');
    const owner = refusals.filter((r) => r.outcome?.rule === 'session-owner');
    t.is(owner.length, 3, 'each attempt by another identity is recorded');
    for (const r of owner) {
      t.is(r.actor?.subject, 'agent-b');
      t.is(r.actor?.key_id, other.id);
      t.is(r.mcp?.http_status, 403);
    }
    t.true(refusals.some((r) => r.outcome?.rule === 'auth' && r.mcp?.http_status === 401));
    t.true(refusals.some((r) => r.outcome?.rule === 'session' && r.mcp?.http_status === 404));
    t.true(refusals.some((r) => r.outcome?.rule === 'session' && r.mcp?.http_status === 400));
    const okRecord = recs.find((r) => r.mcp?.jsonrpc_id === 'l1' && r.event === 'mcp.message' && r.mcp.direction === 'client_to_upstream');
    t.is(okRecord?.actor?.key_id, sameSubject.id, 'each request records the key it came with');
  });
}
