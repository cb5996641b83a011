// Wire-level probes for what the 0.1.13 suite cannot check: SSE resumption as a 2025-11-25 client does it
// (the suite's server-sse-polling announces 2025-03-26 and so never sees a priming event, see
// conformance-fixture.test.ts) and a server-initiated notification on the GET stream. Raw fetch rather than
// the SDK client, so the probe controls exactly when each stream opens and what each request carries.

export interface SseEvent {
  id?: string;
  event?: string;
  data?: string;
  retry?: number;
}

/** Incremental text/event-stream parser; emits every event block that set at least one field. */
export class SseParser {
  #buffer = '';
  #current: SseEvent = {};
  #touched = false;

  push(text: string): SseEvent[] {
    const out: SseEvent[] = [];
    this.#buffer += text;
    const lines = this.#buffer.split(/\r\n|\n|\r/);
    this.#buffer = lines.pop() ?? '';
    for (const line of lines) {
      if (line === '') {
        if (this.#touched) out.push(this.#current);
        this.#current = {};
        this.#touched = false;
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon === -1 ? line : line.slice(0, colon);
      let value = colon === -1 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      this.#touched = true;
      const current = this.#current;
      if (field === 'data') current.data = current.data === undefined ? value : `${current.data}\n${value}`;
      else if (field === 'id') current.id = value;
      else if (field === 'event') current.event = value;
      else if (field === 'retry' && /^\d+$/.test(value)) current.retry = Number(value);
    }
    return out;
  }
}

interface JsonRpcMessage {
  jsonrpc: '2.0';
  id?: string | number;
  method?: string;
  params?: unknown;
  result?: Record<string, unknown>;
  error?: { code: number; message: string };
}

function parseMessage(data: string | undefined): JsonRpcMessage | undefined {
  if (data === undefined || data.trim() === '') return undefined;
  try {
    return JSON.parse(data) as JsonRpcMessage;
  } catch {
    return undefined;
  }
}

/**
 * Reads events until `stop` says so, the stream ends, or `timeoutMs` passes; then cancels the stream, which
 * closes the connection (an SSE stream left open would hold the server's stream slot).
 */
async function collect(
  response: Response,
  stop: (event: SseEvent) => boolean,
  timeoutMs: number,
): Promise<{ events: SseEvent[]; ended: boolean }> {
  const events: SseEvent[] = [];
  if (!response.body) return { events, ended: true };
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  const parser = new SseParser();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>(
    (resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)),
  );
  let ended = false;
  try {
    reading: while (true) {
      const next = await Promise.race([reader.read(), timeout]);
      if (next === 'timeout') break;
      if (next.done) {
        ended = true;
        break;
      }
      for (const event of parser.push(decoder.decode(next.value, { stream: true }))) {
        events.push(event);
        if (stop(event)) break reading;
      }
    }
  } finally {
    clearTimeout(timer);
    await reader.cancel().catch(() => {});
  }
  return { events, ended };
}

/** A legacy-era Streamable HTTP session driven by hand. */
export class RawMcpSession {
  sessionId: string | undefined;
  protocolVersion = '2025-11-25';

  constructor(
    readonly url: string,
    readonly extraHeaders: Record<string, string> = {},
  ) {}

  headers(more: Record<string, string> = {}): Record<string, string> {
    return {
      ...this.extraHeaders,
      ...(this.sessionId !== undefined ? { 'mcp-session-id': this.sessionId } : {}),
      'mcp-protocol-version': this.protocolVersion,
      ...more,
    };
  }

  post(message: JsonRpcMessage): Promise<Response> {
    return fetch(this.url, {
      method: 'POST',
      headers: this.headers({
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
      }),
      body: JSON.stringify(message),
    });
  }

  /** POSTs a request and waits for its response, from a JSON body or from the SSE stream. */
  async request(
    id: string,
    method: string,
    params: unknown = {},
    timeoutMs = 10_000,
  ): Promise<JsonRpcMessage> {
    const response = await this.post({ jsonrpc: '2.0', id, method, params });
    if (!response.ok) throw new Error(`${method}: HTTP ${response.status} ${await response.text()}`);
    if (response.headers.get('content-type')?.includes('application/json')) {
      return (await response.json()) as JsonRpcMessage;
    }
    const { events } = await collect(response, (e) => parseMessage(e.data)?.id === id, timeoutMs);
    const answer = events.map((e) => parseMessage(e.data)).find((m) => m?.id === id);
    if (!answer) throw new Error(`${method}: no response on the SSE stream`);
    return answer;
  }

  async initialize(): Promise<void> {
    const response = await this.post({
      jsonrpc: '2.0',
      id: 'init',
      method: 'initialize',
      params: {
        protocolVersion: this.protocolVersion,
        capabilities: {},
        clientInfo: { name: 'auditgate-conformance-probe', version: '1.0.0' },
      },
    });
    if (!response.ok) throw new Error(`initialize: HTTP ${response.status} ${await response.text()}`);
    this.sessionId = response.headers.get('mcp-session-id') ?? undefined;
    const answer = response.headers.get('content-type')?.includes('application/json')
      ? ((await response.json()) as JsonRpcMessage)
      : (await collect(response, (e) => parseMessage(e.data)?.id === 'init', 10_000)).events
          .map((e) => parseMessage(e.data))
          .find((m) => m?.id === 'init');
    const version = answer?.result?.['protocolVersion'];
    if (typeof version !== 'string') throw new Error('initialize: no protocolVersion in the answer');
    this.protocolVersion = version;
    const initialized = await this.post({ jsonrpc: '2.0', method: 'notifications/initialized' });
    await initialized.body?.cancel();
  }

  openGet(lastEventId?: string): Promise<Response> {
    return fetch(this.url, {
      method: 'GET',
      headers: this.headers({
        accept: 'text/event-stream',
        ...(lastEventId !== undefined ? { 'last-event-id': lastEventId } : {}),
      }),
    });
  }

  async delete(): Promise<number> {
    const response = await fetch(this.url, { method: 'DELETE', headers: this.headers() });
    await response.body?.cancel();
    return response.status;
  }
}

export interface SseResumptionReport {
  protocolVersion: string;
  postStatus: number;
  postContentType: string | null;
  /** The first event on the POST stream had an id and empty data (SEP-1699 priming event). */
  primingEventFirst: boolean;
  /** `retry:` announced on the POST stream, if any. */
  retryMs: number | undefined;
  /** The POST stream ended before the tool result arrived on it. */
  closedBeforeResult: boolean;
  resultOnPostStream: boolean;
  resumeStatus: number | undefined;
  resultOnResume: boolean;
  resultText: string | undefined;
  deleteStatus: number;
}

/**
 * The server-sse-polling scenario as a 2025-11-25 client performs it: call test_reconnection, expect a
 * priming event with an id and `retry:`, the stream closing before the answer, and the answer replayed on a
 * GET carrying Last-Event-ID. Ends the session with DELETE.
 */
export async function probeSseResumption(
  url: string,
  opts: { headers?: Record<string, string> } = {},
): Promise<SseResumptionReport> {
  const session = new RawMcpSession(url, opts.headers);
  await session.initialize();
  const callId = 'sse-probe-call';
  const isResult = (e: SseEvent): boolean => parseMessage(e.data)?.id === callId;
  const post = await session.post({
    jsonrpc: '2.0',
    id: callId,
    method: 'tools/call',
    params: { name: 'test_reconnection', arguments: {} },
  });
  const postContentType = post.headers.get('content-type');
  const { events, ended } = await collect(post, isResult, 10_000);
  const resultOnPostStream = events.some(isResult);
  const lastEventId = [...events].reverse().find((e) => e.id !== undefined)?.id;
  const first = events[0];

  let resumeStatus: number | undefined;
  let resumed: SseEvent[] = [];
  if (!resultOnPostStream && lastEventId !== undefined) {
    const get = await session.openGet(lastEventId);
    resumeStatus = get.status;
    if (get.ok) resumed = (await collect(get, isResult, 5_000)).events;
    else await get.body?.cancel();
  }
  const result = [...events, ...resumed].map((e) => parseMessage(e.data)).find((m) => m?.id === callId);
  const content = result?.result?.['content'];
  const firstContent = Array.isArray(content) ? (content[0] as { text?: unknown } | undefined) : undefined;

  return {
    protocolVersion: session.protocolVersion,
    postStatus: post.status,
    postContentType,
    primingEventFirst: first !== undefined && first.id !== undefined && (first.data ?? '') === '',
    retryMs: events.find((e) => e.retry !== undefined)?.retry,
    closedBeforeResult: ended && !resultOnPostStream,
    resultOnPostStream,
    resumeStatus,
    resultOnResume: resumed.some(isResult),
    resultText: typeof firstContent?.text === 'string' ? firstContent.text : undefined,
    deleteStatus: await session.delete(),
  };
}

export interface GetStreamNotificationReport {
  getStatus: number;
  getContentType: string | null;
  /** The notifications/resources/updated that arrived on the GET stream, if any. */
  notification: JsonRpcMessage | undefined;
  toolText: string | undefined;
  deleteStatus: number;
}

/**
 * Opens the GET stream, subscribes to test://watched-resource and calls fixture_update_watched_resource:
 * the fixture sends the resulting notifications/resources/updated unrelated to any request, so it must
 * arrive on the GET stream.
 */
export async function probeGetStreamNotification(
  url: string,
  opts: { headers?: Record<string, string> } = {},
): Promise<GetStreamNotificationReport> {
  const session = new RawMcpSession(url, opts.headers);
  await session.initialize();
  // The server registers the stream before it answers, so once the headers are here nothing sent later
  // can miss it.
  const get = await session.openGet();
  const isUpdate = (e: SseEvent): boolean =>
    parseMessage(e.data)?.method === 'notifications/resources/updated';
  if (!get.ok) await get.body?.cancel();
  const notified = get.ok ? collect(get, isUpdate, 5_000) : Promise.resolve({ events: [], ended: true });
  await session.request('sub', 'resources/subscribe', { uri: 'test://watched-resource' });
  const call = await session.request('touch', 'tools/call', {
    name: 'fixture_update_watched_resource',
    arguments: {},
  });
  const { events } = await notified;
  const content = call.result?.['content'];
  const firstContent = Array.isArray(content) ? (content[0] as { text?: unknown } | undefined) : undefined;
  return {
    getStatus: get.status,
    getContentType: get.headers.get('content-type'),
    notification: events
      .map((e) => parseMessage(e.data))
      .find((m) => m?.method === 'notifications/resources/updated'),
    toolText: typeof firstContent?.text === 'string' ? firstContent.text : undefined,
    deleteStatus: await session.delete(),
  };
}
