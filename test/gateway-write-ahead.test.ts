// The gateway on its own (hapi plugin, in-memory AuditSink whose appends the test holds back),
// in front of the real reference server: nothing moves before its record is durable, in either
// direction. Also the record builder (masking hook, hashes, exact ids), JSON-RPC batches of
// 2025-03-26 clients, and the SSE parser.
import test from 'ava';
import { createHash } from 'node:crypto';
import { createServer, request as httpRequest } from 'node:http';
import canonicalizeModule from 'canonicalize';
import { createRecordBuilder } from '../gateway/record.ts';
import { classify } from '../gateway/jsonrpc.ts';
import { SseParser, formatSseEvent } from '../gateway/sse.ts';
import type { TargetSpec } from '../gateway/options.ts';
import { everythingServerPath } from '../server/targets.ts';
import { startEverythingHttp } from './helpers/gateway-service.ts';
import { MemorySink, startGatewayAlone } from './helpers/gateway-doubles.ts';
import { messagesOf, post, rawInitialize, readEvents } from './helpers/raw-mcp.ts';

const canonicalize = canonicalizeModule as unknown as (v: unknown) => string;
const KEY = 'test-key-a';

const startGateway = (targets: TargetSpec[], sink: MemorySink) => startGatewayAlone(targets, sink, { [KEY]: 'agent-a' });

test('write-ahead: a request reaches the upstream only after its record is durable, and the answer reaches the client only after its own', async (t) => {
  const upstream = await startEverythingHttp();
  const arrived: string[] = [];
  const upUrl = new URL(upstream.url);
  const hop = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      arrived.push(body.toString('utf8'));
      const fwd = httpRequest({ host: '127.0.0.1', port: upUrl.port, path: req.url, method: req.method, headers: req.headers }, (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      });
      fwd.end(body);
    });
  });
  await new Promise<void>((r) => hop.listen(0, '127.0.0.1', r));
  const sink = new MemorySink();
  const gw = await startGateway(
    [
      { name: 'remote', kind: 'http', url: `http://127.0.0.1:${(hop.address() as { port: number }).port}/mcp`, headers: {}, timeoutMs: 10_000 },
      { name: 'local', kind: 'stdio', command: process.execPath, args: [everythingServerPath(), 'stdio'], env: {}, timeoutMs: 10_000 },
    ],
    sink,
  );
  t.teardown(async () => {
    sink.release();
    await gw.server.stop();
    await upstream.stop();
    hop.close();
  });

  const session = await rawInitialize(gw.url('remote'), KEY);
  const echo = { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'echo', arguments: { message: 'held' } } };

  // Client → upstream: the request waits for its record.
  sink.hold = (r) => r.mcp?.direction === 'client_to_upstream' && r.mcp.jsonrpc_id === 2;
  const pending = post(gw.url('remote'), echo, { key: KEY, session, version: '2025-11-25' });
  await sink.waitHeld();
  await new Promise((r) => setTimeout(r, 300));
  t.false(arrived.some((b) => b.includes('"held"')), 'not forwarded while its record is pending');
  // Upstream → client: the answer waits for its record too.
  sink.release();
  sink.hold = (r) => r.mcp?.direction === 'upstream_to_client' && r.mcp.jsonrpc_id === 2;
  await sink.waitHeld();
  t.true(arrived.some((b) => b.includes('"held"')), 'forwarded once recorded');
  let answered = false;
  const res = await pending;
  const read = readEvents(res, (ev) => !!ev.data && JSON.parse(ev.data).id === 2).then((evs) => {
    answered = true;
    return evs;
  });
  await new Promise((r) => setTimeout(r, 300));
  t.false(answered, 'the client has not seen the answer while its record is pending');
  sink.release();
  t.like(messagesOf(await read).at(-1), { id: 2, result: { content: [{ text: 'Echo: held' }] } });

  // Same over stdio: the response event waits for its record.
  const s2 = await rawInitialize(gw.url('local'), KEY);
  sink.hold = (r) => r.mcp?.direction === 'upstream_to_client' && r.mcp.jsonrpc_id === 3;
  const res2 = await post(gw.url('local'), { ...echo, id: 3 }, { key: KEY, session: s2, version: '2025-11-25' });
  let answered2 = false;
  // Other server messages may come first on this stream (stdio routing); wait for the answer itself.
  const read2 = readEvents(res2, (ev) => !!ev.data && JSON.parse(ev.data).id === 3).then((evs) => {
    answered2 = true;
    return evs;
  });
  await sink.waitHeld();
  await new Promise((r) => setTimeout(r, 300));
  t.false(answered2);
  sink.release();
  t.like(messagesOf(await read2).at(-1), { id: 3, result: { content: [{ text: 'Echo: held' }] } });

  // Fail closed, then recover by itself.
  sink.failing = true;
  const refused = await post(gw.url('local'), { ...echo, id: 4 }, { key: KEY, session: s2, version: '2025-11-25' });
  t.is(refused.status, 503);
  t.like(await refused.json(), { error: { message: 'audit store unavailable' } });
  sink.failing = false;
  const again = await post(gw.url('local'), { ...echo, id: 5 }, { key: KEY, session: s2, version: '2025-11-25' });
  t.is(again.status, 200);
  t.like(messagesOf(await readEvents(again, (ev) => !!ev.data && JSON.parse(ev.data).id === 5)).at(-1), { id: 5 });
  t.false(sink.records.some((r) => r.mcp?.jsonrpc_id === 4));
});

for (const kind of ['stdio', 'http'] as const) {
  test(`${kind}: a 2025-03-26 batch: each element recorded on its own, ids 1 and "1" kept apart`, async (t) => {
    const upstream = kind === 'http' ? await startEverythingHttp() : undefined;
    const sink = new MemorySink();
    const target: TargetSpec =
      kind === 'http'
        ? { name: 'e', kind: 'http', url: upstream!.url, headers: {}, timeoutMs: 10_000 }
        : { name: 'e', kind: 'stdio', command: process.execPath, args: [everythingServerPath(), 'stdio'], env: {}, timeoutMs: 10_000 };
    const gw = await startGateway([target], sink);
    t.teardown(async () => {
      await gw.server.stop();
      await upstream?.stop();
    });
    const session = await rawInitialize(gw.url('e'), KEY, {}, '2025-03-26');
    const batch = [
      { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: { message: 'number one' } } },
      { jsonrpc: '2.0', id: '1', method: 'tools/call', params: { name: 'echo', arguments: { message: 'string one' } } },
      { jsonrpc: '2.0', method: 'notifications/roots/list_changed' },
    ];
    const res = await post(gw.url('e'), batch, { key: KEY, session });
    t.is(res.status, 200);
    const ct = res.headers.get('content-type') ?? '';
    const flat = (ms: Array<Record<string, unknown>>) => ms.flatMap((m) => (Array.isArray(m) ? m : [m]) as Array<Record<string, unknown>>);
    // Other server messages may share the stream: read until both answers are in.
    const bothAnswered = (ms: Array<Record<string, unknown>>) => ['1', '"1"'].every((id) => ms.some((m) => 'result' in m && JSON.stringify(m.id) === id));
    const answers: Array<Record<string, unknown>> = ct.startsWith('text/event-stream')
      ? flat(messagesOf(await readEvents(res, (_ev, all) => bothAnswered(flat(messagesOf(all))))))
      : ((await res.json()) as Array<Record<string, unknown>>);
    const byId = new Map(answers.filter((a) => 'result' in a).map((a) => [JSON.stringify(a.id), JSON.stringify(a.result)]));
    t.regex(byId.get('1') ?? '', /number one/);
    t.regex(byId.get('"1"') ?? '', /string one/);

    const sent = sink.records.filter((r) => r.mcp?.direction === 'client_to_upstream' && r.mcp.batch_index !== undefined);
    t.deepEqual(
      sent.map((r) => [r.mcp?.batch_index, r.mcp?.jsonrpc_id, r.mcp?.kind]),
      [
        [0, 1, 'request'],
        [1, '1', 'request'],
        [2, undefined, 'notification'],
      ],
    );
    const got = sink.records.filter((r) => r.mcp?.direction === 'upstream_to_client' && r.mcp.kind === 'response');
    const numberAnswer = got.find((r) => r.mcp?.jsonrpc_id === 1);
    const stringAnswer = got.find((r) => r.mcp?.jsonrpc_id === '1');
    t.regex(JSON.stringify(numberAnswer?.payload?.body), /number one/);
    t.regex(JSON.stringify(stringAnswer?.payload?.body), /string one/);
  });
}

test('the record builder: one function for every record, masking hook applied to the stored payload, hash of the unmasked message', (t) => {
  const build = createRecordBuilder({
    instance: 'gw-1',
    version: '9.9.9',
    mask: (body) => {
      const b = structuredClone(body) as { params?: { arguments?: { password?: string } } };
      if (b.params?.arguments?.password) {
        b.params.arguments.password = '***';
        return { body: b, masked: ['/params/arguments/password'] };
      }
      return { body, masked: [] };
    },
  });
  const message = { jsonrpc: '2.0', id: '1', method: 'tools/call', params: { name: 'login', arguments: { user: 'ada', password: 'hunter2' } } };
  const ctx = { target: 'github', transport: 'http' as const, actor: { subject: 'ada', auth_method: 'api_key' as const, key_id: 'k1' }, session: 's1', protocolVersion: '2025-11-25' };
  const rec = build({ event: 'mcp.message', direction: 'client_to_upstream', message: classify(message) }, ctx);
  t.is(rec.v, 1);
  t.regex(rec.id, /^[0-9a-f-]{36}$/);
  t.regex(rec.ts, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
  t.deepEqual(rec.gateway, { instance: 'gw-1', version: '9.9.9' });
  t.like(rec.mcp, { target: 'github', transport: 'http', direction: 'client_to_upstream', kind: 'request', session: 's1', protocol_version: '2025-11-25', jsonrpc_id: '1', method: 'tools/call', name: 'login' });
  t.is(rec.payload?.sha256, createHash('sha256').update(canonicalize(message)).digest('hex'));
  t.deepEqual(rec.payload?.masked, ['/params/arguments/password']);
  t.false(JSON.stringify(rec).includes('hunter2'), 'the stored payload is the masked one');
  t.is(message.params.arguments.password, 'hunter2', 'the message itself is untouched');

  const numeric = build({ event: 'mcp.message', direction: 'upstream_to_client', message: classify({ jsonrpc: '2.0', id: 1, result: {} }), latencyMs: 1.5, httpStatus: 200 }, ctx);
  t.is(numeric.mcp?.jsonrpc_id, 1);
  t.is(numeric.mcp?.latency_ms, 1.5);
  t.is(numeric.mcp?.http_status, 200);
  t.is(numeric.payload?.masked, undefined);

  const refused = build({ event: 'mcp.refused', reason: 'Forbidden', rule: 'origin', httpStatus: 403 }, { target: 'github', transport: 'http' });
  t.like(refused, { event: 'mcp.refused', outcome: { decision: 'deny', rule: 'origin', reason: 'Forbidden' }, mcp: { http_status: 403 } });
  t.is(refused.payload, undefined);
});

test('SSE parser: events split anywhere, CRLF/CR line ends, comments, priming events, multi-line data', (t) => {
  const stream = ': keep-alive\r\n\r\nid: a-0\ndata: \n\nevent: message\r\nid: a-1\r\ndata: {"x":\r\ndata: 1}\r\n\r\nretry: 3000\rid: a-2\rdata: é✓\r\r';
  const bytes = Buffer.from(stream, 'utf8');
  for (let split = 1; split < bytes.length; split += 3) {
    const p = new SseParser();
    const evs = [...p.push(bytes.subarray(0, split)), ...p.push(bytes.subarray(split)), ...p.end()];
    t.deepEqual(evs, [{ comment: 'keep-alive' }, { id: 'a-0', data: '' }, { event: 'message', id: 'a-1', data: '{"x":\n1}' }, { retry: 3000, id: 'a-2', data: 'é✓' }], `split at ${split}`);
  }
  t.is(formatSseEvent({ event: 'message', id: 'a-1', data: '{"x":\n1}' }), 'event: message\nid: a-1\ndata: {"x":\ndata: 1}\n\n');
  t.is(formatSseEvent({ id: 'p', data: '' }), 'id: p\ndata: \n\n');
});
