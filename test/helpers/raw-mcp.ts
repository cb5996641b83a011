// Raw Streamable HTTP requests for tests that need control the SDK client does not give: exact
// headers, reading part of a stream and hanging up, resuming with Last-Event-ID.
import { SseParser, type SseEvent } from '../../gateway/sse.ts';

export interface RawOptions {
  key?: string;
  session?: string;
  version?: string;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

export function mcpHeaders(o: RawOptions = {}): Record<string, string> {
  const h: Record<string, string> = {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
  };
  if (o.key) h.authorization = `Bearer ${o.key}`;
  if (o.session) h['mcp-session-id'] = o.session;
  if (o.version) h['mcp-protocol-version'] = o.version;
  return { ...h, ...o.headers };
}

export function post(url: string, body: unknown, o: RawOptions = {}): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: mcpHeaders(o),
    body: typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body),
    signal: o.signal,
  });
}

/** Reads SSE events until `until` says stop (or the stream ends), then cancels the body. */
export async function readEvents(res: Response, until: (ev: SseEvent, all: SseEvent[]) => boolean, timeoutMs = 15_000): Promise<SseEvent[]> {
  const reader = res.body!.getReader();
  const parser = new SseParser();
  const all: SseEvent[] = [];
  const timer = setTimeout(() => void reader.cancel().catch(() => {}), timeoutMs);
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return all;
      for (const ev of parser.push(value)) {
        all.push(ev);
        if (until(ev, all)) return all;
      }
    }
  } catch {
    return all;
  } finally {
    clearTimeout(timer);
    await reader.cancel().catch(() => {});
  }
}

export function messagesOf(events: SseEvent[]): Array<Record<string, unknown>> {
  return events.filter((e) => e.data).map((e) => JSON.parse(e.data!) as Record<string, unknown>);
}

/** initialize + notifications/initialized over raw HTTP; returns the session id. */
export async function rawInitialize(url: string, key: string, capabilities: Record<string, unknown> = {}, version = '2025-11-25'): Promise<string> {
  const res = await post(
    url,
    { jsonrpc: '2.0', id: 'init-1', method: 'initialize', params: { protocolVersion: version, capabilities, clientInfo: { name: 'raw', version: '1' } } },
    { key },
  );
  if (res.status !== 200) throw new Error(`initialize: ${res.status} ${await res.text()}`);
  const session = res.headers.get('mcp-session-id');
  if (!session) throw new Error('initialize: no session id');
  if ((res.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
    await readEvents(res, (ev) => !!ev.data && JSON.parse(ev.data).id === 'init-1');
  } else {
    await res.text();
  }
  const ack = await post(url, { jsonrpc: '2.0', method: 'notifications/initialized' }, { key, session, version });
  if (ack.status !== 202) throw new Error(`initialized: ${ack.status}`);
  await ack.text();
  return session;
}
