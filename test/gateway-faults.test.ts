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
const initBody = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: V, capabilities: {}, clientInfo: { name: 't', version: '1' } } };

test('front door: malformed JSON, wrong content type, oversized body, invalid UTF-8, Accept, Origin, unknown target — clear errors, all recorded', async (t) => {
  const gw = await startGatewayService({ targets: { everything: stdioEverything() }, gateway: { max_body_bytes: 2048 } });
  t.teardown(() => gw.cleanup());
  const url = gw.endpoint('everything');
  const cases: Array<{ name: string; res: Promise<Response>; status: number; code: number; rule: string }> = [
    { name: 'malformed JSON', res: post(url, '{"jsonrpc":"2.0","id":1,"method":', { key: gw.key }), status: 400, code: -32700, rule: 'parse' },
    { name: 'not JSON-RPC', res: post(url, { hello: 'world' }, { key: gw.key }), status: 400, code: -32600, rule: 'parse' },
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
