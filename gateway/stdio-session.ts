// A legacy session on a stdio upstream: one child process per session. stdio has no streams or
// event ids, so the gateway provides them: each POST carrying requests gets an SSE stream with
// gateway-made event ids (and a priming event for 2025-11-25 clients), a per-stream replay buffer
// serves resumption with Last-Event-ID, and messages from the child are routed to the stream
// they belong to. Every message is recorded before it is written anywhere.
import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { StdioTargetSpec } from './options.ts';
import type { Auditor } from './auditor.ts';
import type { GatewayLogger } from './logger.ts';
import type { RecordInput } from './record.ts';
import type { AuditActor, AuditClient, AuditRecord } from './audit-record.ts';
import { Session } from './session.ts';
import { StdioProcess, type StdioShutdown } from './stdio-process.ts';
import { PendingRequests } from './pending.ts';
import { errorMessage, idKey, INTERNAL_ERROR, parseUpstream, stdioLine, type Classified, type JsonRpcId } from './jsonrpc.ts';
import { sendEmpty, SseWriter } from './respond.ts';
import { formatSseEvent } from './sse.ts';
import { UPSTREAM_TIMEOUT } from './http-forward.ts';
import { isListMethod, type PolicyGate } from './policy-gate.ts';
import { canonicalSha256, upstreamTextInput } from './record.ts';

export interface StdioDeps {
  auditor: Auditor;
  logger: GatewayLogger;
  policy: PolicyGate;
  shutdown: StdioShutdown;
  maxRestarts: number;
  forget(id: string): void;
}

const REPLAY_LIMIT = 1_000;
/** How long a finished stream stays resumable. */
const DONE_STREAM_TTL_MS = 5 * 60_000;
const INBOX_HIGH_WATER = 256;

interface Stream {
  id: string;
  kind: 'post' | 'get';
  seq: number;
  /** Formatted events kept for resumption, oldest first. */
  replay: Array<{ seq: number; text: string }>;
  writer?: SseWriter;
  /** Client requests on this stream still waiting for their answer. */
  open: Set<string>;
  done: boolean;
  doneAt?: number;
  /** Last seq written to a client connection (a new standalone GET picks up after it). */
  delivered: number;
}

interface PendingClient {
  stream: Stream;
  t0: number;
  method?: string;
  /** Who asked: list results are filtered for them. */
  actor?: AuditActor;
  timer?: NodeJS.Timeout;
  progressToken?: string | number;
}

/** Versions from which clients understand priming events and polling (2025-11-25). */
function primes(version: string | undefined): boolean {
  return version !== undefined && version >= '2025-11-25';
}

function tokenKey(t: string | number): string {
  return typeof t === 'number' ? `n:${t}` : `s:${t}`;
}

export class StdioSession extends Session {
  readonly transport = 'stdio' as const;
  private proc!: StdioProcess;
  private readonly streams = new Map<string, Stream>();
  private getStream: Stream | undefined;
  private readonly pendingClient = new Map<string, PendingClient>();
  private readonly serverPending = new PendingRequests();
  private readonly progress = new Map<string, Stream>();
  /** Where each server-initiated request was sent, so its cancellation follows it. */
  private readonly serverRoutes = new Map<string, Stream>();
  /** Requests the gateway itself sent (re-initialize after a restart): answers are recorded, not relayed. */
  private readonly internal = new Set<string>();
  private readonly inbox: string[] = [];
  private pumping = false;
  private closing = false;
  private initializeMessage: Record<string, unknown> | undefined;
  private restarts: number[] = [];
  private internalSeq = 0;
  /** Resolves once the current child's exit has been handled (and recorded). */
  private exitHandled: Promise<void> = Promise.resolve();

  constructor(
    id: string,
    readonly spec: StdioTargetSpec,
    owner: string,
    actor: AuditActor,
    client: AuditClient,
    private readonly deps: StdioDeps,
  ) {
    super(id, spec, owner, actor, client);
  }

  openStreams(): number {
    let n = 0;
    for (const s of this.streams.values()) if (s.writer && !s.writer.closed) n++;
    return n;
  }

  kill(): void {
    this.ended = true;
    this.proc?.child.kill('SIGKILL');
  }

  /** Records the session and spawns its process (recorded too). */
  async start(): Promise<void> {
    await this.deps.auditor.append({ event: 'mcp.session.open', detail: { transport: 'stdio' } }, this.recordContext());
    await this.spawn();
  }

  private async spawn(): Promise<void> {
    const proc = new StdioProcess(this.spec, this.deps.logger, this.spec.name);
    this.proc = proc;
    proc.on('line', (line: string) => {
      if (this.proc !== proc) return;
      this.inbox.push(line);
      if (this.inbox.length > INBOX_HIGH_WATER) proc.pause();
      void this.pump();
    });
    proc.on('spawn-error', (err: Error) => {
      this.deps.logger.error({ target: this.spec.name, err: err.message }, 'could not start the upstream process');
    });
    this.exitHandled = new Promise<void>((resolve) => {
      proc.once('exit', (code: number | null, signal: string | null) => {
        void this.onExit(proc, code, signal).finally(resolve);
      });
    });
    await this.deps.auditor.append(
      {
        event: 'mcp.process.spawn',
        detail: { pid: proc.pid ?? null, command: this.spec.command, args: this.spec.args },
      },
      this.recordContext(),
    );
  }

  /** Client messages (already recorded) for the child; answers 202 or opens the POST's SSE stream. */
  /**
   * `headerVersion` is the request's MCP-Protocol-Version: as the SDK server does, a POST stream is
   * primed (resumable) when the initialize asks for 2025-11-25+, or the header says so.
   */
  async post(messages: Classified[], res: ServerResponse, headerVersion?: string, actor?: AuditActor): Promise<void> {
    this.touch();
    const requests = messages.filter((m) => m.kind === 'request');
    for (const m of messages) {
      if (m.kind === 'request' && m.method === 'initialize') this.initializeMessage = m.message;
      if (m.kind === 'notification' && m.method === 'notifications/cancelled') this.cancelled(m);
    }
    if (requests.length === 0) {
      await this.writeAll(messages);
      sendEmpty(res, 202);
      return;
    }
    const stream = this.newStream('post');
    const writer = new SseWriter(res, 200, { 'mcp-session-id': this.id });
    this.attach(stream, writer);
    const init = requests.find((r) => r.method === 'initialize');
    const version = init ? (init.message.params as { protocolVersion?: string } | undefined)?.protocolVersion : headerVersion;
    if (primes(version ?? '2025-03-26')) this.emit(stream, '');
    for (const r of requests) {
      const key = idKey(r.id);
      stream.open.add(key);
      const p: PendingClient = { stream, t0: performance.now(), method: r.method, actor: actor ?? this.actor };
      if (r.progressToken !== undefined) {
        p.progressToken = r.progressToken;
        this.progress.set(tokenKey(r.progressToken), stream);
      }
      p.timer = setTimeout(() => void this.timeout(r), this.spec.timeoutMs);
      p.timer.unref();
      this.pendingClient.set(key, p);
    }
    try {
      await this.writeAll(messages);
    } catch (err) {
      await this.failRequests(requests, INTERNAL_ERROR, (err as Error).message);
    }
  }

  /** The client cancelled a request: the server will not answer it, so the gateway stops waiting. */
  private cancelled(m: Classified): void {
    const requestId = (m.message.params as { requestId?: JsonRpcId } | undefined)?.requestId;
    if (requestId === undefined) return;
    const key = idKey(requestId);
    const p = this.pendingClient.get(key);
    if (!p) return;
    this.pendingClient.delete(key);
    if (p.timer) clearTimeout(p.timer);
    if (p.progressToken !== undefined) this.progress.delete(tokenKey(p.progressToken));
    p.stream.open.delete(key);
    this.finishIfAnswered(p.stream);
  }

  /** The latency of a client's answer to a server-initiated request. */
  answerLatency(m: Classified): number | undefined {
    return this.serverPending.answered(m);
  }

  /** A GET: resume a stream after Last-Event-ID, or open the session's standalone stream. */
  async get(res: ServerResponse, lastEventId: string | undefined): Promise<void> {
    this.touch();
    if (lastEventId !== undefined) {
      const cut = lastEventId.lastIndexOf('-');
      const stream = cut > 0 ? this.streams.get(lastEventId.slice(0, cut)) : undefined;
      const seq = cut > 0 ? Number(lastEventId.slice(cut + 1)) : NaN;
      if (stream && Number.isInteger(seq)) {
        if (stream.writer && !stream.writer.closed) stream.writer.end();
        const writer = new SseWriter(res, 200, { 'mcp-session-id': this.id });
        for (const ev of stream.replay) if (ev.seq > seq) writer.writeNow(ev.text);
        stream.delivered = stream.seq;
        // A finished stream stays open after the replay, as the SDK server does: a client that
        // resumes it would otherwise reconnect again and again.
        this.attach(stream, writer);
        return;
      }
      // An id we do not know (or no longer keep): start a fresh standalone stream.
    }
    let stream = this.getStream;
    if (stream?.writer && !stream.writer.closed) {
      // One standalone stream per session, as the SDK server does.
      sendEmpty(res, 409);
      return;
    }
    if (!stream) {
      stream = this.newStream('get');
      this.getStream = stream;
    }
    const writer = new SseWriter(res, 200, { 'mcp-session-id': this.id });
    const from = stream.delivered;
    const undelivered = stream.replay.filter((e) => e.seq > from);
    this.attach(stream, writer);
    for (const ev of undelivered) writer.writeNow(ev.text);
    stream.delivered = stream.seq;
  }

  async close(reason: string): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    this.closing = true;
    this.deps.forget(this.id);
    for (const p of this.pendingClient.values()) if (p.timer) clearTimeout(p.timer);
    await this.proc.shutdown(this.deps.shutdown);
    // Let the last lines of output and the exit record be written before the close record.
    await this.exitHandled;
    await this.drained();
    for (const s of this.streams.values()) s.writer?.end();
    this.streams.clear();
    await this.deps.auditor
      .appendPersistent({ event: 'mcp.session.close', detail: { reason } }, this.recordContext())
      .catch((err) => this.deps.logger.error({ err: (err as Error).message, session: this.id }, 'could not record session close'));
  }

  private newStream(kind: 'post' | 'get'): Stream {
    const s: Stream = {
      id: randomBytes(8).toString('hex'),
      kind,
      seq: 0,
      replay: [],
      open: new Set(),
      done: false,
      delivered: 0,
    };
    this.streams.set(s.id, s);
    this.pruneStreams();
    return s;
  }

  private attach(stream: Stream, writer: SseWriter): void {
    stream.writer = writer;
    writer.onClose(() => {
      if (stream.writer === writer) stream.writer = undefined;
      this.touch();
    });
  }

  /** Appends an event to a stream (kept for resumption) and writes it if a client is attached. */
  private emit(stream: Stream, data: string): string {
    stream.seq++;
    const id = `${stream.id}-${stream.seq}`;
    const text = formatSseEvent(data === '' ? { id, data: '' } : { event: 'message', id, data });
    if (data !== '') {
      stream.replay.push({ seq: stream.seq, text });
      if (stream.replay.length > REPLAY_LIMIT) stream.replay.shift();
    }
    if (stream.writer?.writeNow(text)) stream.delivered = stream.seq;
    return id;
  }

  private finishIfAnswered(stream: Stream): void {
    if (stream.kind !== 'post' || stream.open.size > 0 || stream.done) return;
    stream.done = true;
    stream.doneAt = Date.now();
    stream.writer?.end();
    stream.writer = undefined;
  }

  private pruneStreams(): void {
    const now = Date.now();
    for (const [id, s] of this.streams) {
      if (s.done && s.doneAt !== undefined && now - s.doneAt > DONE_STREAM_TTL_MS) this.streams.delete(id);
    }
  }

  private async writeAll(messages: Classified[]): Promise<void> {
    // One message per line: a 2025-03-26 batch is split, since stdio servers read single messages.
    for (const m of messages) await this.proc.send(stdioLine(m));
  }

  /** Processes the child's output in order: record (retrying while the store is down), then route. */
  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.inbox.length) {
        const line = this.inbox[0]!;
        try {
          await this.handleLine(line);
        } catch (err) {
          this.deps.logger.error({ err: (err as Error).message, session: this.id }, 'audit store unavailable: ending the stdio session');
          this.inbox.length = 0;
          this.pumping = false;
          await this.close('audit_unavailable');
          return;
        }
        this.inbox.shift();
        if (this.inbox.length < INBOX_HIGH_WATER / 2) this.proc.resume();
      }
    } finally {
      this.pumping = false;
      this.resolveDrained();
    }
  }

  private drainWaiters: Array<() => void> = [];

  private drained(): Promise<void> {
    if (!this.pumping && this.inbox.length === 0) return Promise.resolve();
    return new Promise((r) => this.drainWaiters.push(r));
  }

  private resolveDrained(): void {
    if (this.inbox.length === 0) for (const w of this.drainWaiters.splice(0)) w();
  }

  private async handleLine(line: string): Promise<void> {
    let messages: Classified[];
    try {
      messages = parseUpstream(line).messages;
    } catch (err) {
      // A stray print to stdout, or JSON a record cannot hold: recorded as text, not relayed.
      await this.deps.auditor.appendPersistent(upstreamTextInput(line, err, false), this.recordContext());
      return;
    }
    for (const m of messages) await this.route(m, line, messages.length === 1);
  }

  private async route(m: Classified, line: string, whole: boolean): Promise<void> {
    let data = whole ? line : JSON.stringify(m.message);
    const ctx = this.recordContext();
    if ((m.kind === 'response' || m.kind === 'error') && this.internal.has(idKey(m.id))) {
      this.internal.delete(idKey(m.id));
      await this.deps.auditor.appendPersistent(
        { event: 'mcp.message', direction: 'upstream_to_client', message: m, detail: { origin: 'gateway', delivered: false } },
        ctx,
        () => !this.ended,
      );
      return;
    }
    let stream: Stream | undefined;
    let latency: number | undefined;
    let detail: Record<string, unknown> | undefined;
    let outcome: NonNullable<AuditRecord['outcome']> | undefined;
    if (m.kind === 'response' || m.kind === 'error') {
      const key = idKey(m.id);
      const p = this.pendingClient.get(key);
      if (p && m.kind === 'response' && isListMethod(p.method) && this.deps.policy.active && p.actor) {
        const f = await this.deps.policy.filter(p.actor, this.spec.name, p.method!, m.message);
        if (f) {
          detail = { filtered_out: f.removed, upstream_sha256: canonicalSha256(m.message) };
          if (f.policyHash) outcome = { decision: 'deny', rule: 'list-filter', policy_hash: f.policyHash };
          m = { ...m, message: f.message };
          data = JSON.stringify(f.message);
        }
      }
      if (p) {
        this.pendingClient.delete(key);
        if (p.timer) clearTimeout(p.timer);
        if (p.progressToken !== undefined) this.progress.delete(tokenKey(p.progressToken));
        latency = Math.round((performance.now() - p.t0) * 1000) / 1000;
        stream = p.stream;
        stream.open.delete(key);
        if (m.kind === 'response' && m.message.result && typeof (m.message.result as { protocolVersion?: unknown }).protocolVersion === 'string' && !this.protocolVersion) {
          this.protocolVersion = (m.message.result as { protocolVersion: string }).protocolVersion;
          ctx.protocolVersion = this.protocolVersion;
        }
      }
    } else {
      if (m.kind === 'request') this.serverPending.sent([m]);
      stream = this.affinity(m);
    }
    const target = stream ?? this.standalone();
    if (m.kind === 'request') {
      this.serverRoutes.set(idKey(m.id), target);
      if (this.serverRoutes.size > 1_000) this.serverRoutes.delete(this.serverRoutes.keys().next().value!);
    }
    const eventId = `${target.id}-${target.seq + 1}`;
    const input: RecordInput = {
      event: 'mcp.message',
      direction: 'upstream_to_client',
      message: m,
      httpStatus: 200,
      streamEventId: eventId,
    };
    if (latency !== undefined) input.latencyMs = latency;
    if (detail) input.detail = detail;
    if (outcome) input.outcome = outcome;
    await this.deps.auditor.appendPersistent(input, ctx, () => !this.ended);
    this.emit(target, data);
    this.finishIfAnswered(target);
  }

  /** Where a server-initiated message goes: by progress token, else the open GET stream, else the single in-flight POST. */
  private affinity(m: Classified): Stream | undefined {
    if (m.progressToken !== undefined) {
      const s = this.progress.get(tokenKey(m.progressToken));
      if (s && !s.done) return s;
    }
    const params = m.message.params as { requestId?: JsonRpcId } | undefined;
    if (m.method === 'notifications/cancelled' && params?.requestId !== undefined) {
      // The server cancels one of its own requests: send it where that request went.
      const s = this.serverRoutes.get(idKey(params.requestId));
      if (s) return s;
    }
    if (this.getStream?.writer && !this.getStream.writer.closed) return this.getStream;
    const inFlight = [...this.streams.values()].filter((s) => s.kind === 'post' && !s.done);
    if (inFlight.length === 1) return inFlight[0];
    // No affinity and no listener: queue on the standalone stream until a GET picks it up.
    return undefined;
  }

  private standalone(): Stream {
    if (!this.getStream) this.getStream = this.newStream('get');
    return this.getStream;
  }

  private async timeout(r: Classified): Promise<void> {
    const key = idKey(r.id);
    if (!this.pendingClient.has(key)) return;
    const message = `upstream ${this.spec.name} did not answer within ${this.spec.timeoutMs} ms`;
    // Tell the child to stop working on it, then answer the client.
    const cancel = { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: r.id, reason: message } };
    try {
      await this.deps.auditor.appendPersistent(
        {
          event: 'mcp.message',
          direction: 'client_to_upstream',
          message: { kind: 'notification', message: cancel, method: 'notifications/cancelled' },
          detail: { origin: 'gateway', reason: 'timeout' },
        },
        this.recordContext(),
        () => !this.ended,
      );
      await this.proc.send(JSON.stringify(cancel)).catch(() => {});
    } catch {
      // The failure below is still reported to the client if it can be recorded.
    }
    await this.failRequests([r], UPSTREAM_TIMEOUT, message).catch(() => {});
  }

  /** Answers requests with a gateway-made error (recorded first) and forgets them. */
  private async failRequests(requests: Classified[], code: number, message: string): Promise<void> {
    for (const r of requests) {
      const key = idKey(r.id);
      const p = this.pendingClient.get(key);
      if (!p) continue;
      this.pendingClient.delete(key);
      if (p.timer) clearTimeout(p.timer);
      if (p.progressToken !== undefined) this.progress.delete(tokenKey(p.progressToken));
      p.stream.open.delete(key);
      const body = errorMessage(r.id, code, message);
      const c: Classified = { kind: 'error', message: body, id: r.id };
      const eventId = `${p.stream.id}-${p.stream.seq + 1}`;
      await this.deps.auditor.appendPersistent(
        {
          event: 'mcp.message',
          direction: 'upstream_to_client',
          message: c,
          httpStatus: 200,
          latencyMs: Math.round((performance.now() - p.t0) * 1000) / 1000,
          streamEventId: eventId,
          detail: { origin: 'gateway', reason: message },
        },
        this.recordContext(),
      );
      this.emit(p.stream, JSON.stringify(body));
      this.finishIfAnswered(p.stream);
    }
  }

  private async onExit(proc: StdioProcess, code: number | null, signal: string | null): Promise<void> {
    if (this.proc !== proc) return;
    const unexpected = !this.closing;
    await this.drained();
    await this.deps.auditor
      .appendPersistent(
        { event: 'mcp.process.exit', detail: { pid: proc.pid ?? null, code, signal, unexpected } },
        this.recordContext(),
      )
      .catch((err) => this.deps.logger.error({ err: (err as Error).message }, 'could not record process exit'));
    if (!unexpected) return;
    this.deps.logger.warn({ target: this.spec.name, session: this.id, code, signal }, 'upstream process exited');
    const requests: Classified[] = [...this.pendingClient.keys()].map((key) => ({
      kind: 'request',
      message: {},
      id: keyToId(key),
    }));
    const why = `upstream process exited (${signal ?? `code ${code}`})`;
    await this.failRequests(requests, INTERNAL_ERROR, why).catch(() => {});
    const now = Date.now();
    this.restarts = this.restarts.filter((t) => now - t < 60_000);
    if (!this.initializeMessage || this.restarts.length >= this.deps.maxRestarts || this.ended) {
      await this.close('upstream_exited');
      return;
    }
    this.restarts.push(now);
    try {
      await this.spawn();
      await this.reinitialize();
    } catch (err) {
      this.deps.logger.error({ err: (err as Error).message, session: this.id }, 'restarting the upstream process failed');
      await this.close('restart_failed');
    }
  }

  /** A restarted child has lost the handshake: replay the client's initialize (answer kept internal). */
  private async reinitialize(): Promise<void> {
    const init = this.initializeMessage!;
    const id = `auditgate-reinit-${++this.internalSeq}`;
    const request = { ...init, id };
    const initialized = { jsonrpc: '2.0', method: 'notifications/initialized' };
    const ctx = this.recordContext();
    await this.deps.auditor.append(
      [
        {
          event: 'mcp.message',
          direction: 'client_to_upstream',
          message: { kind: 'request', message: request, id, method: 'initialize' },
          detail: { origin: 'gateway', reason: 'restart' },
        },
        {
          event: 'mcp.message',
          direction: 'client_to_upstream',
          message: { kind: 'notification', message: initialized, method: 'notifications/initialized' },
          detail: { origin: 'gateway', reason: 'restart' },
        },
      ],
      ctx,
    );
    this.internal.add(idKey(id));
    await this.proc.send(JSON.stringify(request));
    await this.proc.send(JSON.stringify(initialized));
  }
}

function keyToId(key: string): JsonRpcId {
  if (key.startsWith('n:')) return Number(key.slice(2));
  if (key.startsWith('s:')) return key.slice(2);
  return null;
}
