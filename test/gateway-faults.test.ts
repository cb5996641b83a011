// Faults: bad requests at the front door, upstreams that refuse, hang, break mid-stream or crash,
// and an audit store that goes away mid-traffic. Each gives the client a clear answer, the gateway
// keeps serving, refusals are recorded, and nothing moves unrecorded.
import test from 'ava';
import { createServer as createNetServer, type Socket } from 'node:net';
import { createServer as createHttpServer, request as httpRequest } from 'node:http';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { everythingServerPath } from '../server/targets.ts';
import { freePort, mcpRecords, startEverythingHttp, startGatewayService } from './helpers/gateway-service.ts';
import { messagesOf, post, rawInitialize, readEvents } from './helpers/raw-mcp.ts';
import { TcpProxy } from './helpers/tcp-proxy.ts';
import { main as cli } from '../server/cli/main.ts';

const V = '2025-11-25';
const stdioEverything = () => ({ command: process.execPath, args: [everythingServerPath(), 'stdio'] });
/** `depth` arrays, one inside the other. */
const nested = (depth: number) => '['.repeat(depth) + ']'.repeat(depth);
const initBody = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: V, capabilities: {}, clientInfo: { name: 't', version: '1' } } };

test('front door: malformed, ambiguous or too deep JSON, wrong content type, oversized body, invalid UTF-8, Accept, Origin, unknown target — clear errors, all recorded', async (t) => {
  const gw = await startGatewayService({ targets: { everything: stdioEverything() }, gateway: { max_body_bytes: 2048 } });
  t.teardown(() => gw.cleanup());
  const url = gw.endpoint('everything');
  const cases: Array<{ name: string; res: Promise<Response>; status: number; code: number; rule: string }> = [
    { name: 'malformed JSON', res: post(url, '{"jsonrpc":"2.0","id":1,"method":', { key: gw.key }), status: 400, code: -32700, rule: 'parse' },
    { name: 'not JSON-RPC', res: post(url, { hello: 'world' }, { key: gw.key }), status: 400, code: -32600, rule: 'parse' },
    {
      // Level 257: the message, params, arguments, then 254 arrays. It once got a 500 and no record.
      name: 'nested too deep',
      res: post(url, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"x":${nested(254)}}}}`, { key: gw.key }),
      status: 400,
      code: -32600,
      rule: 'depth',
    },
    {
      // JSON.parse keeps the last "name", other parsers the first: policy and record would see
      // one tool and the upstream might run another.
      name: 'duplicate member name',
      res: post(url, '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get-env","name":"echo","arguments":{}}}', { key: gw.key }),
      status: 400,
      code: -32600,
      rule: 'duplicate-key',
    },
    {
      name: 'number out of range',
      res: post(url, '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"n":1e400}}}', { key: gw.key }),
      status: 400,
      code: -32600,
      rule: 'number',
    },
    {
      name: 'wrong content type',
      res: post(url, JSON.stringify(initBody), { key: gw.key, headers: { 'content-type': 'text/plain' } }),
      status: 415,
      code: -32000,
      rule: 'content-type',
    },
    {
      name: 'oversized body',
      res: post(url, { ...initBody, params: { ...initBody.params, padding: 'x'.repeat(4096) } }, { key: gw.key }),
      status: 413,
      code: -32000,
      rule: 'size',
    },
    {
      name: 'oversized body without content-length',
      res: fetch(url, {
        method: 'POST',
        headers: { authorization: `Bearer ${gw.key}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body: new ReadableStream({
          start(c) {
            for (let i = 0; i < 8; i++) c.enqueue(new TextEncoder().encode(' '.repeat(1024)));
            c.close();
          },
        }),
        duplex: 'half',
      } as RequestInit),
      status: 413,
      code: -32000,
      rule: 'size',
    },
    {
      name: 'invalid UTF-8',
      res: post(url, new Uint8Array([...Buffer.from('{"jsonrpc":"2.0","id":1,"method":"x\xff"}', 'latin1')]), { key: gw.key }),
      status: 400,
      code: -32700,
      rule: 'utf-8',
    },
    {
      name: 'Accept without text/event-stream',
      res: post(url, initBody, { key: gw.key, headers: { accept: 'application/json' } }),
      status: 406,
      code: -32000,
      rule: 'accept',
    },
    { name: 'foreign Origin', res: post(url, initBody, { key: gw.key, headers: { origin: 'https://evil.example' } }), status: 403, code: -32000, rule: 'origin' },
    { name: 'unknown target', res: post(gw.endpoint('nope'), initBody, { key: gw.key }), status: 404, code: -32000, rule: 'target' },
  ];
  for (const c of cases) {
    const res = await c.res;
    t.is(res.status, c.status, c.name);
    t.regex(res.headers.get('content-type') ?? '', /application\/json/, c.name);
    const body = (await res.json()) as { jsonrpc: string; error: { code: number; message: string } };
    t.is(body.jsonrpc, '2.0', c.name);
    t.is(body.error.code, c.code, c.name);
    t.true(body.error.message.length > 5, c.name);
  }
  // A loopback Origin is fine for a loopback gateway, and the gateway still works after all that.
  const { client } = await gw.connect('everything');
  const echo = await client.callTool({ name: 'echo', arguments: { message: 'alive' } });
  t.regex(JSON.stringify(echo.content), /alive/);
  // Exactly at the nesting limit (level 256) a message goes through, and is recorded.
  const deepest = await client.callTool({ name: 'echo', arguments: { message: 'deep', x: JSON.parse(nested(253)) } });
  t.regex(JSON.stringify(deepest.content), /deep/);

  const refusals = mcpRecords(await gw.records()).filter((r) => r.event === 'mcp.refused');
  for (const c of cases) {
    t.true(
      refusals.some(
        (r) =>
          r.outcome?.rule === c.rule &&
          r.mcp?.http_status === c.status &&
          // Origin and target are checked before the credential is looked at.
          r.actor?.subject === (['origin', 'target'].includes(c.rule) ? undefined : 'agent-a'),
      ),
      `${c.name} is recorded`,
    );
  }
  const malformed = refusals.find((r) => r.outcome?.rule === 'parse' && r.detail?.sha256);
  t.truthy(malformed, 'an unparseable body is recorded by size and hash');
  const tooDeep = refusals.find((r) => r.outcome?.rule === 'depth');
  t.like(tooDeep?.detail, { bytes: 90 + 2 * 254 }, 'a body nested too deep is recorded by size and hash');
  t.regex(String(tooDeep?.detail?.sha256), /^[0-9a-f]{64}$/);
  const deepCall = mcpRecords(await gw.records()).find((r) => r.mcp?.method === 'tools/call' && JSON.stringify(r.payload?.body).includes('"deep"'));
  t.truthy(deepCall, 'the message at the limit is recorded');
});

test('an upstream message that is not JSON-RPC, nested too deep or ambiguous, is relayed as it came and recorded as text; integers beyond 2^53 are kept exactly', async (t) => {
  const dup = (id: unknown) => `{"jsonrpc":"2.0","id":${JSON.stringify(id)},"result":{"content":[]},"result":{"isError":true}}`;
  // Answers with an integer beyond 2^53 and the request's bytes as the upstream got them.
  const big = (id: unknown, received: string) => `{"jsonrpc":"2.0","id":${JSON.stringify(id)},"result":{"n":98765432109876543210,"received":${JSON.stringify(received)}}}`;
  const deep = (id: unknown) => `{"jsonrpc":"2.0","id":${JSON.stringify(id)},"result":{"x":${nested(20_000)}}}`;
  const upstream = createHttpServer((req, res) => {
    // No GET stream; a DELETE ends nothing here.
    if (req.method !== 'POST') return void res.writeHead(req.method === 'DELETE' ? 200 : 405).end();
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const m = JSON.parse(body) as { id?: unknown; method: string; params?: { name?: string; protocolVersion?: string } };
      if (m.id === undefined) return void res.writeHead(202).end();
      if (m.method === 'initialize') {
        const result = { protocolVersion: m.params?.protocolVersion, capabilities: { tools: {} }, serverInfo: { name: 'odd', version: '1' } };
        res.writeHead(200, { 'content-type': 'application/json', 'mcp-session-id': 'up-1' });
        return void res.end(JSON.stringify({ jsonrpc: '2.0', id: m.id, result }));
      }
      const tool = m.params?.name;
      if (tool === 'deep-sse') {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        return void res.end(`event: message\ndata: ${deep(m.id)}\n\n`);
      }
      if (tool === 'text') return void res.writeHead(200, { 'content-type': 'text/plain' }).end('upstream says hello');
      if (tool === 'dup') return void res.writeHead(200, { 'content-type': 'application/json' }).end(dup(m.id));
      if (tool === 'big') return void res.writeHead(200, { 'content-type': 'application/json' }).end(big(m.id, body));
      res.writeHead(200, { 'content-type': 'application/json' }).end(deep(m.id));
    });
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  // A stdio server that prints a too-deep line before each real answer. (Nested 20,000 deep, such
  // messages once overflowed the stack while their records were built: the client got a 500.)
  const child = `require('readline').createInterface({ input: process.stdin }).on('line', (l) => {
    const m = JSON.parse(l);
    if (m.id === undefined) return;
    if (m.method === 'initialize') return console.log(JSON.stringify({ jsonrpc: '2.0', id: m.id, result: { protocolVersion: m.params.protocolVersion, capabilities: { tools: {} }, serverInfo: { name: 'odd', version: '1' } } }));
    if (m.params.name === 'big') return console.log(JSON.stringify({ jsonrpc: '2.0', id: m.id, result: { received: l } }));
    console.log('{"jsonrpc":"2.0","id":' + JSON.stringify(m.id) + ',"result":{"x":' + '['.repeat(20000) + ']'.repeat(20000) + '}}');
    console.log(JSON.stringify({ jsonrpc: '2.0', id: m.id, result: { content: [{ type: 'text', text: 'fine' }] } }));
  });`;
  const gw = await startGatewayService({
    targets: {
      odd: { url: `http://127.0.0.1:${(upstream.address() as { port: number }).port}/mcp` },
      'odd-stdio': { command: process.execPath, args: ['-e', child] },
    },
  });
  t.teardown(async () => {
    await gw.cleanup();
    upstream.close();
  });
  const call = (id: number, name: string) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: {} } });

  const url = gw.endpoint('odd');
  const session = await rawInitialize(url, gw.key);
  const o = { key: gw.key, session, version: V };
  const json = await post(url, call(2, 'deep-json'), o);
  t.is(json.status, 200);
  t.is(await json.text(), deep(2));
  const sse = await post(url, call(3, 'deep-sse'), o);
  t.deepEqual((await readEvents(sse, () => false)).map((e) => e.data), [deep(3)]);
  const text = await post(url, call(4, 'text'), o);
  t.is(await text.text(), 'upstream says hello');
  const ambiguous = await post(url, call(7, 'dup'), o);
  t.is(await ambiguous.text(), dup(7));
  // Integers beyond 2^53 pass both ways exactly; their records keep the exact text too.
  const bigRequest = '{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"big","arguments":{"order":12345678901234567891}}}';
  const bigAnswer = await post(url, bigRequest, o);
  t.is(await bigAnswer.text(), big(8, bigRequest));

  const stdioUrl = gw.endpoint('odd-stdio');
  const stdioSession = await rawInitialize(stdioUrl, gw.key);
  const answer = await post(stdioUrl, call(5, 'any'), { key: gw.key, session: stdioSession, version: V });
  t.like(messagesOf(await readEvents(answer, (ev) => !!ev.data)), [{ id: 5, result: { content: [{ text: 'fine' }] } }]);
  // The child gets a big integer as sent, too (the line breaks of the body made spaces).
  const bigLine = '{"jsonrpc":"2.0","id":9,\n"method":"tools/call","params":{"name":"big","arguments":{"order":12345678901234567891}}}';
  const bigStdio = await post(stdioUrl, bigLine, { key: gw.key, session: stdioSession, version: V });
  t.like(messagesOf(await readEvents(bigStdio, (ev) => !!ev.data)), [{ id: 9, result: { received: bigLine.replace('\n', ' ') } }]);

  // The same child in the modern era (one shared process, gateway-made upstream ids).
  const modernCall = { ...call(6, 'any'), params: { name: 'any', arguments: {}, _meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28' } } };
  const modern = await post(stdioUrl, modernCall, { key: gw.key, version: '2026-07-28', headers: { 'mcp-method': 'tools/call', 'mcp-name': 'any' } });
  t.like(await modern.json(), { id: 6, result: { content: [{ text: 'fine' }] } });

  const records = mcpRecords(await gw.records());
  const asText = (body: string) => records.find((r) => r.mcp?.direction === 'upstream_to_client' && r.payload?.body === body);
  for (const [id, body] of [[2, deep(2)], [3, deep(3)]] as const) {
    t.like(asText(body), { mcp: { session }, detail: { not_jsonrpc: true, reason: 'JSON nested deeper than 256 levels' } }, `answer ${id}`);
  }
  t.like(asText('upstream says hello'), { mcp: { session }, detail: { not_jsonrpc: true } });
  t.like(asText(dup(7)), { mcp: { session }, detail: { not_jsonrpc: true, reason: 'duplicate member name "result"' } });
  const bigRecords = records.filter((r) => r.mcp?.jsonrpc_id === 8);
  t.deepEqual(
    bigRecords.map((r) => [r.mcp?.direction, r.detail?.exact_text]),
    [
      ['client_to_upstream', bigRequest],
      ['upstream_to_client', big(8, bigRequest)],
    ],
  );
  // The parsed payload holds the rounded value, which is why the exact text is kept.
  t.is((bigRecords[0]?.payload?.body as { params: { arguments: { order: number } } }).params.arguments.order, Number("12345678901234567891"));
  t.like(asText(deep(5)), { mcp: { session: stdioSession }, detail: { dropped: 'JSON nested deeper than 256 levels', not_jsonrpc: true } });
  t.truthy(records.find((r) => r.mcp?.session === stdioSession && r.mcp?.kind === 'response' && r.mcp.jsonrpc_id === 5));
  const modernDropped = records.find(
    (r) => r.mcp?.target === 'odd-stdio' && !r.mcp.session && typeof r.payload?.body === 'string' && r.payload.body.startsWith('{"jsonrpc":"2.0","id":"'),
  );
  t.like(modernDropped, { mcp: { transport: 'stdio', direction: 'upstream_to_client' }, detail: { dropped: 'JSON nested deeper than 256 levels' } });
});

test('session limits of a target, overall (503) and per identity (429): refused with Retry-After, recorded; a DELETE frees a place', async (t) => {
  const http = await startEverythingHttp();
  const gw = await startGatewayService({
    targets: {
      everything: { ...stdioEverything(), max_sessions: 2 },
      remote: { url: http.url, max_sessions: 1 },
      shared: { url: http.url, max_sessions: 3, max_sessions_per_identity: 1 },
    },
  });
  t.teardown(async () => {
    await gw.cleanup();
    await http.stop();
  });
  const url = gw.endpoint('everything');
  const [a] = await Promise.all([rawInitialize(url, gw.key), rawInitialize(url, gw.key)]);
  const refused = await post(url, initBody, { key: gw.key });
  t.is(refused.status, 503);
  t.is(refused.headers.get('retry-after'), '5');
  const body = (await refused.json()) as { id: number; error: { code: number; message: string } };
  t.like(body, { id: 1, error: { code: -32000 } });
  t.regex(body.error.message, /everything has 2 sessions open, its limit/);
  const del = await fetch(url, { method: 'DELETE', headers: { authorization: `Bearer ${gw.key}`, 'mcp-session-id': a!, 'mcp-protocol-version': V } });
  t.is(del.status, 200);
  const again = await rawInitialize(url, gw.key);
  t.truthy(again, 'a place was freed');

  // Over HTTP too, counting initializations still waiting for the upstream.
  const remote = gw.endpoint('remote');
  const [first, second] = await Promise.all([post(remote, initBody, { key: gw.key }), post(remote, initBody, { key: gw.key })]);
  t.deepEqual([first.status, second.status].sort(), [200, 503]);
  await Promise.all([first.text(), second.text()]);

  // One identity cannot take all the places: another one still gets its own.
  const shared = gw.endpoint('shared');
  await rawInitialize(shared, gw.key);
  const crowding = await post(shared, initBody, { key: gw.key });
  t.is(crowding.status, 429);
  t.regex(((await crowding.json()) as { error: { message: string } }).error.message, /you have 1 sessions open on target shared, the limit per identity/);
  const other = await gw.newKey('agent-b');
  t.truthy(await rawInitialize(shared, other.key));

  const refusals = mcpRecords(await gw.records()).filter((r) => r.event === 'mcp.refused' && r.outcome?.rule === 'sessions');
  t.deepEqual(
    refusals.map((r) => [r.mcp?.target, r.mcp?.http_status, r.mcp?.method, r.detail]),
    [
      ['everything', 503, 'initialize', { open: 2, limit: 2 }],
      ['remote', 503, 'initialize', { open: 1, limit: 1 }],
      ['shared', 429, 'initialize', { open: 1, limit: 1, per: 'identity' }],
    ],
  );
});

test('upstream refuses connections → 502; upstream hangs → 504 after the configured timeout; both recorded', async (t) => {
  const closedPort = await freePort();
  const sockets = new Set<Socket>();
  const hang = createNetServer((s) => {
    sockets.add(s);
    s.resume();
  });
  await new Promise<void>((r) => hang.listen(0, '127.0.0.1', r));
  const hangPort = (hang.address() as { port: number }).port;
  const gw = await startGatewayService({
    targets: {
      refused: { url: `http://127.0.0.1:${closedPort}/mcp` },
      hanging: { url: `http://127.0.0.1:${hangPort}/mcp`, timeout: '500ms' },
      'hanging-stdio': { command: process.execPath, args: ['-e', 'process.stdin.resume()'], timeout: '500ms' },
    },
  });
  t.teardown(async () => {
    await gw.cleanup();
    for (const s of sockets) s.destroy();
    hang.close();
  });

  const refused = await post(gw.endpoint('refused'), initBody, { key: gw.key });
  t.is(refused.status, 502);
  t.like(await refused.json(), { id: 1, error: { code: -32603 } });

  const started = Date.now();
  const hung = await post(gw.endpoint('hanging'), initBody, { key: gw.key });
  t.is(hung.status, 504);
  t.like(await hung.json(), { id: 1, error: { code: -32001 } });
  t.true(Date.now() - started < 5_000);

  const stdioHung = await post(gw.endpoint('hanging-stdio'), initBody, { key: gw.key });
  t.is(stdioHung.status, 200);
  const msgs = messagesOf(await readEvents(stdioHung, (ev) => !!ev.data));
  t.like(msgs[0], { id: 1, error: { code: -32001 } });

  const recs = mcpRecords(await gw.records());
  for (const target of ['refused', 'hanging', 'hanging-stdio']) {
    const request = recs.findIndex((r) => r.mcp?.target === target && r.mcp.direction === 'client_to_upstream' && r.mcp.method === 'initialize');
    const answer = recs.findIndex((r) => r.mcp?.target === target && r.mcp.direction === 'upstream_to_client' && r.mcp.kind === 'error');
    t.true(request >= 0 && answer > request, `${target}: request and gateway error recorded in order`);
    t.like(recs[answer], { detail: { origin: 'gateway' } });
  }
});

test('HTTP upstream dies mid-stream: the pending request gets a clear error, not a hang', async (t) => {
  const upstream = await startEverythingHttp();
  const gw = await startGatewayService({ targets: { everything: { url: upstream.url } } });
  t.teardown(async () => {
    await gw.cleanup();
    await upstream.stop();
  });
  const { client } = await gw.connect('everything');
  const call = client.callTool({ name: 'trigger-long-running-operation', arguments: { duration: 5, steps: 5 } }, undefined, {
    onprogress: () => {},
    timeout: 20_000,
  });
  await new Promise((r) => setTimeout(r, 1_500));
  await upstream.stop();
  const err = await t.throwsAsync(call);
  t.regex(err!.message, /upstream everything broke the stream|upstream/);
  const recs = mcpRecords(await gw.records());
  t.true(recs.some((r) => r.mcp?.direction === 'upstream_to_client' && r.mcp.kind === 'error' && r.detail?.origin === 'gateway'));
});

test('stdio child crashes: in-flight requests fail clearly, the crash is recorded, the session continues on a restarted child', async (t) => {
  const gw = await startGatewayService({ targets: { everything: stdioEverything() } });
  t.teardown(() => gw.cleanup());
  const { client, transport } = await gw.connect('everything');
  const session = transport.sessionId!;
  const spawn = mcpRecords(await gw.records(), session).find((r) => r.event === 'mcp.process.spawn');
  const pid = spawn?.detail?.pid as number;
  t.true(pid > 0);
  const call = client.callTool({ name: 'trigger-long-running-operation', arguments: { duration: 5, steps: 5 } });
  await new Promise((r) => setTimeout(r, 500));
  process.kill(pid, 'SIGKILL');
  const err = await t.throwsAsync(call);
  t.regex(err!.message, /upstream process exited/);

  // The session survives: the gateway restarted the child and replayed the handshake.
  const echo = await client.callTool({ name: 'echo', arguments: { message: 'after the crash' } });
  t.regex(JSON.stringify(echo.content), /after the crash/);

  const recs = mcpRecords(await gw.records(), session);
  const exit = recs.find((r) => r.event === 'mcp.process.exit');
  t.like(exit, { detail: { pid, signal: 'SIGKILL', unexpected: true } });
  const spawns = recs.filter((r) => r.event === 'mcp.process.spawn');
  t.is(spawns.length, 2);
  t.true(recs.some((r) => r.mcp?.method === 'initialize' && r.detail?.origin === 'gateway'));
  await client.close();
});

test('audit store down mid-traffic (PostgreSQL unreachable): fail closed with 503, nothing forwarded, then recovery without a restart', async (t) => {
  // The gateway reaches PostgreSQL through a relay the test can cut.
  const proxy = new TcpProxy('127.0.0.1', 5432);
  await proxy.start();
  // A recording hop in front of the upstream counts what the gateway forwarded.
  const upstream = await startEverythingHttp();
  const forwarded: string[] = [];
  const upUrl = new URL(upstream.url);
  const recorder = createHttpServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (body.length) forwarded.push(body.toString('utf8'));
      const fwd = httpRequest({ host: '127.0.0.1', port: upUrl.port, path: req.url, method: req.method, headers: req.headers }, (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      });
      fwd.end(body);
    });
  });
  await new Promise<void>((r) => recorder.listen(0, '127.0.0.1', r));
  const recorderUrl = `http://127.0.0.1:${(recorder.address() as { port: number }).port}/mcp`;
  const gw = await startGatewayService({
    kind: 'postgres',
    targets: { everything: { url: recorderUrl } },
    gateway: { audit_retry: '2s' },
    rewriteDatabaseUrl: (u) => {
      const x = new URL(u);
      x.port = String(proxy.port);
      return x.toString();
    },
  });
  t.teardown(async () => {
    await gw.cleanup();
    await proxy.kill();
    await upstream.stop();
    recorder.close();
  });
  const url = gw.endpoint('everything');
  const session = await rawInitialize(url, gw.key);
  const call = (id: number) =>
    post(url, { jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'echo', arguments: { message: `m${id}` } } }, { key: gw.key, session, version: V });
  const ok = await call(1);
  t.is(ok.status, 200);
  await ok.text();

  await proxy.kill();
  const before = forwarded.length;
  const down = await call(2);
  t.is(down.status, 503);
  t.is(down.headers.get('retry-after'), '1');
  t.like(await down.json(), { jsonrpc: '2.0', error: { message: 'audit store unavailable' } });
  t.is(forwarded.length, before, 'nothing was forwarded while the store was down');
  // Refusals cannot be recorded either, so they fail closed too.
  const anonymous = await post(url, { jsonrpc: '2.0', id: 3, method: 'tools/list' }, { session, version: V });
  t.is(anonymous.status, 503);
  await anonymous.text();

  await proxy.start();
  let status = 0;
  for (let i = 0; i < 60 && status !== 200; i++) {
    await new Promise((r) => setTimeout(r, 250));
    const r = await call(100 + i);
    status = r.status;
    await r.text();
  }
  t.is(status, 200, 'traffic resumes once the store is back, without a restart');

  const recs = mcpRecords(await gw.records(), session);
  t.false(
    recs.some((r) => r.mcp?.jsonrpc_id === 2),
    'the refused request left no record (it could not) and was never forwarded',
  );
  t.false(forwarded.some((f) => f.includes('"m2"')));
  t.true(recs.some((r) => r.mcp?.direction === 'upstream_to_client' && r.mcp.http_status === 200 && (r.mcp.jsonrpc_id as number) >= 100));
});

test('the demo target: with no configuration file the gateway serves server-everything over stdio', async (t) => {
  const gw = await startGatewayService();
  t.teardown(() => gw.cleanup());
  t.deepEqual(gw.service.mcp.gateway.targetNames(), ['everything']);
  // The key comes from the CLI, as the start-up message tells a person to do.
  const out: string[] = [];
  const code = await cli(['keys', 'create', '--subject', 'demo-user'], { env: gw.env, cwd: gw.tdb.dir, out: (l) => out.push(l), err: () => {} });
  t.is(code, 0);
  const client = new Client({ name: 'demo', version: '1' });
  await gw.connect('everything', { client, key: out[0]!.trim() });
  const tools = await client.listTools();
  t.true(tools.tools.length > 5);
  const help = gw.service.mcp.connectHelp(gw.url).join('\n');
  t.true(help.includes(`${gw.url}/mcp/everything`));
  t.true(help.includes('auditgate keys create'));
});
