// How an SSE answer leaves the gateway, seen on the client's socket: the event that answers the
// last open request goes out with the end of the stream in one write (one segment instead of two),
// and an event is never held back when the upstream keeps the stream open after it.
import test from 'ava';
import { connect, type Socket } from 'node:net';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { MemorySink, startGatewayAlone } from './helpers/gateway-doubles.ts';

const KEY = 'test-key-sse';
const V = '2025-11-25';

/** A minimal legacy-era upstream: initialize as JSON, tools/call answered as SSE, then `after`. */
function upstream(after: (res: ServerResponse) => void) {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const msg = JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null') as { id?: number; method?: string } | null;
      if (msg?.method === 'initialize') {
        res.writeHead(200, { 'content-type': 'application/json', 'mcp-session-id': 'up-1' });
        res.end(JSON.stringify({ jsonrpc: '2.0', id: msg.id, result: { protocolVersion: V, capabilities: { tools: {} }, serverInfo: { name: 'sse-writes', version: '1' } } }));
      } else if (msg?.id === undefined) {
        res.writeHead(202).end();
      } else {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(`event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', id: msg.id, result: { content: [{ type: 'text', text: 'done' }] } })}\n\n`);
        after(res);
      }
    });
  });
  return new Promise<{ url: string; close: () => void }>((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({ url: `http://127.0.0.1:${(server.address() as { port: number }).port}/mcp`, close: () => server.close() }),
    ),
  );
}

async function gatewayFor(url: string) {
  const sink = new MemorySink();
  const { server, port } = await startGatewayAlone([{ name: 'up', kind: 'http', url, headers: {}, timeoutMs: 10_000 }], sink, {
    [KEY]: 'agent-sse',
  });
  // Each call of a socket's _write/_writev (stream implementer methods) is one write to the
  // kernel; keep what each carried, per client connection.
  const writes: string[][] = [];
  server.listener.on('connection', (sock: Socket) => {
    const mine: string[] = [];
    writes.push(mine);
    const s = sock as unknown as {
      _write(chunk: Buffer | string, enc: string, cb: () => void): void;
      _writev(chunks: Array<{ chunk: Buffer | string }>, cb: () => void): void;
    };
    const write = s._write.bind(sock);
    const writev = s._writev.bind(sock);
    s._write = (chunk, enc, cb) => {
      mine.push(String(chunk));
      write(chunk, enc, cb);
    };
    s._writev = (chunks, cb) => {
      mine.push(chunks.map((c) => String(c.chunk)).join(''));
      writev(chunks, cb);
    };
  });
  return { server, sink, port, writes };
}

/** One HTTP/1.1 request on a raw socket; resolves with each 'data' chunk and when each arrived. */
function rawPost(port: number, body: unknown, session?: string): Promise<Array<{ text: string; at: number }>> {
  // A kept-alive connection, as MCP clients use: the answer is complete at chunked encoding's last chunk.
  const keepAlive = session !== undefined;
  const payload = JSON.stringify(body);
  const head = [
    'POST /mcp/up HTTP/1.1',
    'host: 127.0.0.1',
    'content-type: application/json',
    'accept: application/json, text/event-stream',
    `authorization: Bearer ${KEY}`,
    `mcp-protocol-version: ${V}`,
    ...(session ? [`mcp-session-id: ${session}`] : []),
    `content-length: ${Buffer.byteLength(payload)}`,
    `connection: ${keepAlive ? 'keep-alive' : 'close'}`,
  ].join('\r\n');
  return new Promise((resolve, reject) => {
    const chunks: Array<{ text: string; at: number }> = [];
    const s = connect(port, '127.0.0.1', () => s.write(`${head}\r\n\r\n${payload}`));
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      chunks.push({ text: d, at: performance.now() });
      if (keepAlive && d.endsWith('0\r\n\r\n')) {
        s.destroy();
        resolve(chunks);
      }
    });
    s.on('end', () => resolve(chunks));
    s.on('error', reject);
  });
}

async function session(port: number): Promise<string> {
  const chunks = await rawPost(port, {
    jsonrpc: '2.0',
    id: 0,
    method: 'initialize',
    params: { protocolVersion: V, capabilities: {}, clientInfo: { name: 't', version: '1' } },
  });
  const m = /mcp-session-id: ([^\r\n]+)/i.exec(chunks.map((c) => c.text).join(''));
  if (!m) throw new Error('no session id');
  return m[1]!;
}

const call = { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'echo', arguments: {} } };

/** The upstream (ending its streams with `after`), the gateway in front of it, and a session. */
async function setup(t: { teardown(fn: () => unknown): void }, after: (res: ServerResponse) => void) {
  const up = await upstream(after);
  const gw = await gatewayFor(up.url);
  t.teardown(async () => {
    await gw.server.stop();
    up.close();
  });
  return { gw, sid: await session(gw.port) };
}

test('the last answer of a stream and the stream end leave in one write', async (t) => {
  // The upstream ends its stream a moment after the answer, as SDK servers do (two segments).
  const { gw, sid } = await setup(t, (res) => setTimeout(() => res.end(), 5));
  for (let i = 0; i < 3; i++) {
    const id = 10 + i;
    // The answer's record commits after the upstream's end has arrived, as under load.
    gw.sink.hold = (r) => r.mcp?.direction === 'upstream_to_client' && r.mcp.jsonrpc_id === id;
    const reply = rawPost(gw.port, { ...call, id }, sid);
    await gw.sink.waitHeld();
    await new Promise((r) => setTimeout(r, 50));
    gw.sink.release();
    const chunks = await reply;
    t.true(chunks.some((c) => c.text.includes(`"id":${id}`)), 'the answer arrived');
    const sent = gw.writes.at(-1)!;
    const answer = sent.filter((w) => w.includes(`"id":${id}`));
    t.is(answer.length, 1);
    // Chunked encoding's last chunk goes in the same write as the answer.
    t.true(answer[0]!.endsWith('0\r\n\r\n'), `answer and end in one write: ${JSON.stringify(sent.map((w) => w.slice(-12)))}`);
  }
  t.true(gw.sink.records.some((r) => r.mcp?.direction === 'upstream_to_client' && r.mcp.jsonrpc_id === 12));
});

test('an answer is not held back when the upstream keeps its stream open', async (t) => {
  const { gw, sid } = await setup(t, (res) => setTimeout(() => res.end(), 600));
  const chunks = await rawPost(gw.port, call, sid);
  const answer = chunks.find((c) => c.text.includes('"id":7'));
  const end = chunks.find((c) => c.text.endsWith('0\r\n\r\n'));
  t.truthy(answer);
  t.truthy(end);
  t.not(answer, end);
  // The upstream ends its stream 600 ms after the answer: the client must not wait for that.
  t.true(end!.at - answer!.at >= 300, `answer only ${Math.round(end!.at - answer!.at)} ms before the end`);
});
