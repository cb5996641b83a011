// Forwarding to a Streamable HTTP upstream: POST answers (JSON or SSE) and GET streams relayed
// as they come, status codes and error bodies kept, every message recorded before the client
// sees it. Upstream session ids stay behind the gateway; clients only see gateway-minted ids.
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import type { HttpTargetSpec } from './options.ts';
import type { Auditor } from './auditor.ts';
import { AuditUnavailableError } from './auditor.ts';
import type { GatewayLogger } from './logger.ts';
import type { RecordContext, RecordInput } from './record.ts';
import { canonicalSha256, sha256Hex, upstreamTextInput } from './record.ts';
import { isListMethod, type PolicyGate } from './policy-gate.ts';
import { HttpUpstream, UpstreamError, toUpstreamError, type UpstreamResponse } from './http-upstream.ts';
import { Session } from './session.ts';
import { PendingRequests } from './pending.ts';
import { errorMessage, idKey, INTERNAL_ERROR, parseUpstream, type Classified } from './jsonrpc.ts';
import { sendEmpty, sendJson, sendRpcError, SseWriter } from './respond.ts';
import { SseParser, type SseEvent } from './sse.ts';
import type { AuditActor, AuditClient } from './audit-record.ts';

/** JSON-RPC code for "the upstream did not answer in time" (the SDK's RequestTimeout). */
export const UPSTREAM_TIMEOUT = -32001;
export const AUDIT_UNAVAILABLE_MESSAGE = 'audit store unavailable';

export interface HttpDeps {
  auditor: Auditor;
  logger: GatewayLogger;
  policy: PolicyGate;
  maxResponseBytes: number;
  /** Called when a session ends, so the registry forgets it. */
  forget(id: string): void;
}

const MAX_EVENT_IDS = 10_000;
/** Names relayed POST streams within a session (only compared for equality). */
let streamCounter = 0;

export class HttpSession extends Session {
  readonly transport = 'http' as const;
  /** Client requests forwarded and not yet answered (latency of their responses). */
  readonly pending = new PendingRequests();
  /** Server-initiated requests relayed and not yet answered by the client. */
  readonly serverPending = new PendingRequests();
  /** Which relayed stream each upstream event id travelled on: a resumption never crosses streams. */
  readonly eventStreams = new Map<string, string>();
  streams = 0;

  constructor(
    id: string,
    target: HttpTargetSpec,
    owner: string,
    actor: AuditActor,
    client: AuditClient,
    readonly upstreamSessionId: string | undefined,
    private readonly upstream: HttpUpstream,
    private readonly deps: HttpDeps,
  ) {
    super(id, target, owner, actor, client);
  }

  openStreams(): number {
    return this.streams;
  }

  kill(): void {
    // Nothing runs on the gateway's side of an HTTP session.
  }

  noteEvent(eventId: string, stream: string): void {
    this.eventStreams.set(eventId, stream);
    if (this.eventStreams.size > MAX_EVENT_IDS) {
      const oldest = this.eventStreams.keys().next().value;
      if (oldest !== undefined) this.eventStreams.delete(oldest);
    }
  }

  /** Ends the session; `upstreamDone` when the client's DELETE already reached the upstream. */
  async close(reason: string, upstreamDone = false): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    this.deps.forget(this.id);
    let upstreamStatus: number | undefined;
    if (!upstreamDone && this.upstreamSessionId && reason !== 'upstream_404') {
      try {
        const headers = this.upstream.upstreamHeaders({}, this.upstreamSessionId);
        if (this.protocolVersion) headers['mcp-protocol-version'] = this.protocolVersion;
        const r = await this.upstream.request({ method: 'DELETE', headers });
        upstreamStatus = r.status;
        await r.body.dump();
      } catch (err) {
        this.deps.logger.warn({ target: this.target.name, err: (err as Error).message }, 'upstream session DELETE failed');
      }
    }
    const detail: Record<string, unknown> = { reason };
    if (upstreamStatus !== undefined) detail.upstream_status = upstreamStatus;
    await this.deps.auditor
      .appendPersistent({ event: 'mcp.session.close', detail }, this.recordContext())
      .catch((err) => this.deps.logger.error({ err: (err as Error).message, session: this.id }, 'could not record session close'));
  }
}

/** Response headers the client may see from the upstream (session ids are replaced, credentials challenges dropped). */
function clientHeaders(resp: UpstreamResponse, sessionId: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  const ct = resp.headers['content-type'];
  if (typeof ct === 'string') out['content-type'] = ct;
  for (const name of ['allow', 'retry-after']) {
    const v = resp.headers[name];
    if (typeof v === 'string') out[name] = v;
  }
  if (sessionId) out['mcp-session-id'] = sessionId;
  return out;
}

export interface PostContext {
  upstream: HttpUpstream;
  target: HttpTargetSpec;
  headers: IncomingHttpHeaders;
  res: ServerResponse;
  ctx: RecordContext;
  session?: HttpSession;
  /** The client's messages, already recorded. */
  messages: Classified[];
  raw: Buffer;
  /** Pending requests for latency when there is no session (modern era). */
  pending: PendingRequests;
  serverPending?: PendingRequests;
  /** For an initialize: called with the upstream answer before anything reaches the client; returns the new session. */
  onInitialized?: (resp: UpstreamResponse) => Promise<HttpSession | undefined>;
  /** Modern era: closing the response stream is cancellation, so the upstream request is aborted too. */
  modern: boolean;
}

/** A gateway-made error response for each unanswered request, recorded before it is sent. */
async function gatewayErrors(
  deps: HttpDeps,
  ctx: RecordContext,
  requests: Classified[],
  code: number,
  message: string,
  httpStatus: number,
  pending: PendingRequests,
): Promise<Record<string, unknown>[]> {
  const bodies = requests.map((r) => errorMessage(r.id, code, message));
  const inputs: RecordInput[] = bodies.map((b, i) => {
    const c: Classified = { kind: 'error', message: b, id: requests[i]!.id };
    return {
      event: 'mcp.message',
      direction: 'upstream_to_client',
      message: c,
      httpStatus,
      latencyMs: pending.answered(c),
      detail: { origin: 'gateway', reason: message },
    };
  });
  await deps.auditor.append(inputs, ctx);
  return bodies;
}

export async function forwardPost(deps: HttpDeps, p: PostContext): Promise<void> {
  const requests = p.messages.filter((m) => m.kind === 'request');
  const abort = new AbortController();
  const onClientClose = () => {
    if (!p.res.writableEnded) abort.abort();
  };
  p.res.once('close', onClientClose);
  const headers = p.upstream.upstreamHeaders(p.headers, p.session?.upstreamSessionId);
  const pending = p.session?.pending ?? p.pending;
  pending.sent(requests);
  let resp: UpstreamResponse;
  try {
    resp = await p.upstream.request({
      method: 'POST',
      headers,
      body: p.raw,
      signal: abort.signal,
      bodyTimeout: p.target.timeoutMs,
    });
  } catch (err) {
    p.res.off('close', onClientClose);
    if (abort.signal.aborted) return;
    const e = toUpstreamError(err, p.target);
    if (!(e instanceof UpstreamError)) throw e;
    deps.logger.warn({ target: p.target.name, err: e.message }, 'upstream request failed');
    const code = e.status === 504 ? UPSTREAM_TIMEOUT : INTERNAL_ERROR;
    if (requests.length === 0) {
      sendRpcError(p.res, e.status, null, code, e.message);
      return;
    }
    const bodies = await gatewayErrors(deps, p.ctx, requests, code, e.message, e.status, pending);
    sendJson(p.res, e.status, bodies.length === 1 && p.messages.length === 1 ? bodies[0] : bodies);
    return;
  }

  let sessionId = p.session?.id;
  if (p.onInitialized) {
    const s = await p.onInitialized(resp);
    sessionId = s?.id;
    p.session = s;
    if (s) p.ctx.session = s.id;
  }
  if (resp.status === 404 && p.session) {
    // The upstream forgot the session: so does the gateway, and the client learns it from the 404.
    await p.session.close('upstream_404');
  }
  const outHeaders = clientHeaders(resp, sessionId);
  const ct = String(resp.headers['content-type'] ?? '').toLowerCase();

  if (ct.startsWith('text/event-stream')) {
    await relaySse(deps, {
      resp,
      res: p.res,
      ctx: p.ctx,
      session: p.session,
      pending,
      serverPending: p.session?.serverPending ?? p.serverPending ?? new PendingRequests(),
      streamKey: `p:${++streamCounter}`,
      headers: outHeaders,
      expected: requests,
      abort,
      modern: p.modern,
    });
    return;
  }
  p.res.off('close', onClientClose);
  const body = await readAll(resp, deps.maxResponseBytes, p.target);
  if (body.length === 0) {
    sendEmpty(p.res, resp.status, outHeaders);
    return;
  }
  const serverPending = p.session?.serverPending ?? p.serverPending;
  const text = body.toString('utf8');
  const relayed = await upstreamInputs(deps, p.ctx, text, resp.status, pending, serverPending, p.session);
  try {
    await deps.auditor.appendPersistent(relayed.inputs, p.ctx, () => !p.res.destroyed);
  } catch (err) {
    if (err instanceof AuditUnavailableError) {
      sendRpcError(p.res, 503, requests[0]?.id ?? null, -32000, AUDIT_UNAVAILABLE_MESSAGE, undefined, { 'retry-after': '1' });
      return;
    }
    throw err;
  }
  sendJson(p.res, resp.status, relayed.text === text ? body : Buffer.from(relayed.text, 'utf8'), outHeaders);
}

async function readAll(resp: UpstreamResponse, limit: number, target: HttpTargetSpec): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of resp.body) {
      size += (chunk as Buffer).length;
      if (size > limit) {
        resp.body.destroy();
        throw new UpstreamError(`upstream ${target.name} sent a response larger than ${limit} bytes`, 502);
      }
      chunks.push(chunk as Buffer);
    }
  } catch (err) {
    throw toUpstreamError(err, target);
  }
  return Buffer.concat(chunks, size);
}

/**
 * Record inputs for a body (or SSE data) from the upstream; non-JSON-RPC text is recorded raw.
 * List results are filtered by policy first: the record and the client get the filtered message
 * (`text` is then the re-serialised body), the record naming what was taken out.
 */
async function upstreamInputs(
  deps: HttpDeps,
  ctx: RecordContext,
  text: string,
  httpStatus: number,
  pending: PendingRequests,
  serverPending: PendingRequests | undefined,
  session: HttpSession | undefined,
  streamEventId?: string,
): Promise<{ inputs: RecordInput[]; text: string }> {
  let parsed: ReturnType<typeof parseUpstream>;
  try {
    parsed = parseUpstream(text);
  } catch (err) {
    const input = upstreamTextInput(text, err, true);
    input.httpStatus = httpStatus;
    if (streamEventId !== undefined) input.streamEventId = streamEventId;
    return { inputs: [input], text };
  }
  let changed = false;
  const delivered: Classified[] = [];
  const inputs: RecordInput[] = [];
  for (const [i, original] of parsed.messages.entries()) {
    let m = original;
    const input: RecordInput = { event: 'mcp.message', direction: 'upstream_to_client', message: m, httpStatus };
    const answered = pending.take(m);
    if (answered) input.latencyMs = answered.latencyMs;
    if (answered && m.kind === 'response' && isListMethod(answered.method) && deps.policy.active && ctx.actor) {
      const f = await deps.policy.filter(ctx.actor, ctx.target, answered.method!, m.message);
      if (f) {
        m = { ...m, message: f.message };
        input.message = m;
        input.detail = { filtered_out: f.removed, upstream_sha256: canonicalSha256(original.message) };
        if (f.policyHash) input.outcome = { decision: 'deny', rule: 'list-filter', policy_hash: f.policyHash };
        changed = true;
      }
    }
    if (parsed.batch) input.batchIndex = i;
    if (streamEventId !== undefined) input.streamEventId = streamEventId;
    if (m.kind === 'request') serverPending?.sent([m]);
    if (session && m.kind === 'response') noteNegotiatedVersion(session, m);
    delivered.push(m);
    inputs.push(input);
  }
  if (!changed) return { inputs, text };
  return { inputs, text: JSON.stringify(parsed.batch ? delivered.map((d) => d.message) : delivered[0]!.message) };
}

function noteNegotiatedVersion(session: HttpSession, m: Classified): void {
  const result = m.message.result as { protocolVersion?: unknown; serverInfo?: unknown } | undefined;
  if (!session.protocolVersion && result && typeof result.protocolVersion === 'string' && result.serverInfo) {
    session.protocolVersion = result.protocolVersion;
  }
}

interface RelayOptions {
  resp: UpstreamResponse;
  res: ServerResponse;
  ctx: RecordContext;
  session?: HttpSession;
  pending: PendingRequests;
  serverPending: PendingRequests;
  /** Identifies this relayed stream among the session's streams. */
  streamKey: string;
  headers: Record<string, string>;
  /** Requests this POST stream must answer; unanswered ones get an error if the upstream breaks. */
  expected: Classified[];
  abort: AbortController;
  modern: boolean;
}

/** Relays an upstream SSE stream event by event; each message is recorded before it is written. */
export async function relaySse(deps: HttpDeps, o: RelayOptions): Promise<void> {
  const writer = new SseWriter(o.res, o.resp.status, o.headers);
  if (o.session) o.session.streams++;
  const open = new Set(o.expected.map((r) => idKey(r.id)));
  const parser = new SseParser();
  let broken: Error | undefined;
  writer.onClose(() => {
    if (!o.res.writableFinished) o.abort.abort();
  });
  const relay = async (ev: SseEvent): Promise<boolean> => {
    if (ev.id !== undefined && o.session) {
      const seenOn = o.session.eventStreams.get(ev.id);
      // Some servers replay every stream's events on resumption; never put one message on two streams.
      if (seenOn !== undefined && seenOn !== o.streamKey) return true;
      o.session.noteEvent(ev.id, o.streamKey);
    }
    if (ev.data !== undefined && ev.data !== '' && (ev.event === undefined || ev.event === 'message')) {
      const relayed = await upstreamInputs(deps, o.ctx, ev.data, o.resp.status, o.pending, o.serverPending, o.session, ev.id);
      const inputs = relayed.inputs;
      if (relayed.text !== ev.data) ev = { ...ev, data: relayed.text };
      for (const i of inputs) {
        if (i.event === 'mcp.message' && 'kind' in i.message && (i.message.kind === 'response' || i.message.kind === 'error')) {
          open.delete(idKey(i.message.id));
        }
      }
      await deps.auditor.appendPersistent(inputs, o.ctx, () => !writer.closed);
      // Every request this stream was opened for is answered: servers end the stream now.
      if (open.size === 0 && o.expected.length > 0) return writer.write(ev, true);
    }
    return writer.write(ev);
  };
  try {
    for await (const chunk of o.resp.body) {
      for (const ev of parser.push(chunk as Buffer)) {
        if (!(await relay(ev))) {
          o.abort.abort();
          return;
        }
      }
    }
    for (const ev of parser.end()) await relay(ev);
  } catch (err) {
    if (err instanceof AuditUnavailableError) {
      // Fail closed: the client sees a broken stream and may resume once the store is back.
      deps.logger.error({ target: o.ctx.target }, 'audit store unavailable: dropping the client stream');
      o.abort.abort();
      writer.abort();
      return;
    }
    if (o.abort.signal.aborted) return;
    broken = toUpstreamError(err, { name: o.ctx.target, timeoutMs: 0 } as HttpTargetSpec);
  } finally {
    if (o.session) o.session.streams--;
  }
  if (broken && open.size > 0 && !writer.closed) {
    // The upstream broke before answering: tell the client clearly instead of leaving it waiting.
    const unanswered = o.expected.filter((r) => open.has(idKey(r.id)));
    const timeout = broken instanceof UpstreamError && broken.status === 504;
    const message = timeout ? `upstream ${o.ctx.target} stopped sending before answering` : `upstream ${o.ctx.target} broke the stream: ${broken.message}`;
    try {
      const bodies = await gatewayErrors(deps, o.ctx, unanswered, timeout ? UPSTREAM_TIMEOUT : INTERNAL_ERROR, message, o.resp.status, o.pending);
      for (const b of bodies) await writer.write({ event: 'message', data: JSON.stringify(b) });
    } catch {
      writer.abort();
      return;
    }
  } else if (broken) {
    deps.logger.warn({ target: o.ctx.target, err: broken.message }, 'upstream stream broke');
  }
  writer.end();
}

export interface GetContext {
  upstream: HttpUpstream;
  target: HttpTargetSpec;
  headers: IncomingHttpHeaders;
  res: ServerResponse;
  ctx: RecordContext;
  session: HttpSession;
}

export async function forwardGet(deps: HttpDeps, g: GetContext): Promise<void> {
  const abort = new AbortController();
  const onClose = () => abort.abort();
  g.res.once('close', onClose);
  const headers = g.upstream.upstreamHeaders(g.headers, g.session.upstreamSessionId);
  let resp: UpstreamResponse;
  try {
    resp = await g.upstream.request({ method: 'GET', headers, signal: abort.signal, bodyTimeout: 0 });
  } catch (err) {
    g.res.off('close', onClose);
    if (abort.signal.aborted) return;
    const e = toUpstreamError(err, g.target);
    if (!(e instanceof UpstreamError)) throw e;
    sendRpcError(g.res, e.status, null, e.status === 504 ? UPSTREAM_TIMEOUT : INTERNAL_ERROR, e.message);
    return;
  }
  g.res.off('close', onClose);
  if (resp.status === 404) await g.session.close('upstream_404');
  const outHeaders = clientHeaders(resp, g.session.id);
  const ct = String(resp.headers['content-type'] ?? '').toLowerCase();
  if (resp.status === 200 && ct.startsWith('text/event-stream')) {
    const last = typeof g.headers['last-event-id'] === 'string' ? g.headers['last-event-id'] : undefined;
    const streamKey = (last && g.session.eventStreams.get(last)) || 'get';
    await relaySse(deps, {
      resp,
      res: g.res,
      ctx: g.ctx,
      session: g.session,
      pending: g.session.pending,
      serverPending: g.session.serverPending,
      streamKey,
      headers: outHeaders,
      expected: [],
      abort,
      modern: false,
    });
    return;
  }
  // 405 (no GET stream), 400, 404…: pass the upstream's answer through as it is.
  const body = await readAll(resp, deps.maxResponseBytes, g.target);
  if (body.length) {
    const { inputs } = await upstreamInputs(deps, g.ctx, body.toString('utf8'), resp.status, g.session.pending, g.session.serverPending, g.session);
    await deps.auditor.appendPersistent(inputs, g.ctx, () => !g.res.destroyed);
    sendJson(g.res, resp.status, body, outHeaders);
  } else {
    sendEmpty(g.res, resp.status, outHeaders);
  }
}

export async function forwardDelete(
  deps: HttpDeps,
  d: { upstream: HttpUpstream; target: HttpTargetSpec; headers: IncomingHttpHeaders; res: ServerResponse; ctx: RecordContext; session: HttpSession },
): Promise<void> {
  const headers = d.upstream.upstreamHeaders(d.headers, d.session.upstreamSessionId);
  let resp: UpstreamResponse | undefined;
  try {
    resp = d.session.upstreamSessionId ? await d.upstream.request({ method: 'DELETE', headers }) : undefined;
  } catch (err) {
    const e = toUpstreamError(err, d.target);
    deps.logger.warn({ target: d.target.name, err: e.message }, 'upstream DELETE failed');
  }
  // The client asked to end the session: the gateway ends its side whatever the upstream said.
  await d.session.close('client_delete', true);
  if (!resp) {
    sendEmpty(d.res, 200);
    return;
  }
  const body = await readAll(resp, deps.maxResponseBytes, d.target);
  if (body.length) {
    const { inputs } = await upstreamInputs(deps, d.ctx, body.toString('utf8'), resp.status, d.session.pending, undefined, undefined);
    await deps.auditor.appendPersistent(inputs, d.ctx);
    sendJson(d.res, resp.status, body, clientHeaders(resp, undefined));
  } else {
    sendEmpty(d.res, resp.status, clientHeaders(resp, undefined));
  }
}

/** Digest of an upstream session id: correlates records without storing the upstream's secret. */
export function upstreamSessionDigest(id: string): string {
  return sha256Hex(id).slice(0, 16);
}
