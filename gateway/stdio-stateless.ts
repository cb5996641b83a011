// Modern-era (stateless) requests to a stdio target: one shared child per target, since there is
// no session to own one. Requests from many clients interleave on it, so the gateway gives each
// a private upstream id (and progress token) and maps the answers back; records show the messages
// exactly as the client sent and received them. Closing the response stream cancels the request.
import type { ServerResponse } from 'node:http';
import type { StdioTargetSpec } from './options.ts';
import type { Auditor } from './auditor.ts';
import type { GatewayLogger } from './logger.ts';
import type { RecordContext, RecordInput } from './record.ts';
import { StdioProcess, type StdioShutdown } from './stdio-process.ts';
import { errorMessage, INTERNAL_ERROR, METHOD_NOT_FOUND, parseUpstream, stdioLine, type Classified, type JsonRpcId } from './jsonrpc.ts';
import { sendEmpty, sendJson, SseWriter } from './respond.ts';
import { UPSTREAM_TIMEOUT, AUDIT_UNAVAILABLE_MESSAGE } from './http-forward.ts';
import { AuditUnavailableError } from './auditor.ts';
import { isListMethod, type PolicyGate } from './policy-gate.ts';
import { canonicalSha256, upstreamTextInput } from './record.ts';

interface Waiting {
  clientId: JsonRpcId;
  method?: string;
  clientToken?: string | number;
  upstreamToken?: string;
  res: ServerResponse;
  /** Opened on the first message that is not the final answer. */
  writer?: SseWriter;
  ctx: RecordContext;
  t0: number;
  timer: NodeJS.Timeout;
}

/** HTTP status for a modern-era JSON answer: the spec maps some JSON-RPC errors to statuses. */
function statusFor(body: Record<string, unknown>): number {
  const code = (body.error as { code?: unknown } | undefined)?.code;
  if (code === METHOD_NOT_FOUND) return 404;
  if (code === -32020 || code === -32022) return 400;
  return 200;
}

export class StatelessStdio {
  private proc: StdioProcess | undefined;
  private readonly waiting = new Map<string, Waiting>();
  private readonly byToken = new Map<string, Waiting>();
  private seq = 0;
  private chain: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(
    readonly spec: StdioTargetSpec,
    private readonly deps: { auditor: Auditor; logger: GatewayLogger; shutdown: StdioShutdown; policy: PolicyGate },
  ) {}

  private baseCtx(ctx: RecordContext): RecordContext {
    return { target: ctx.target, transport: 'stdio', ...(ctx.protocolVersion ? { protocolVersion: ctx.protocolVersion } : {}) };
  }

  private async ensure(ctx: RecordContext): Promise<StdioProcess> {
    if (this.proc?.running) return this.proc;
    const proc = new StdioProcess(this.spec, this.deps.logger, this.spec.name);
    this.proc = proc;
    proc.on('line', (line: string) => {
      // Strictly in order: each message is recorded before the next is looked at.
      this.chain = this.chain.then(() => this.onLine(line)).catch((err) =>
        this.deps.logger.error({ err: (err as Error).message, target: this.spec.name }, 'stateless stdio message lost'),
      );
    });
    proc.on('exit', (code: number | null, signal: string | null) => void this.onExit(proc, code, signal, ctx));
    await this.deps.auditor.append(
      { event: 'mcp.process.spawn', detail: { pid: proc.pid ?? null, command: this.spec.command, args: this.spec.args, shared: true } },
      this.baseCtx(ctx),
    );
    return proc;
  }

  /** One modern-era message (already recorded). Requests get their answer as JSON, or SSE when more comes first. */
  async post(m: Classified, ctx: RecordContext, res: ServerResponse): Promise<void> {
    const proc = await this.ensure(ctx);
    if (m.kind !== 'request') {
      await proc.send(stdioLine(m));
      sendEmpty(res, 202);
      return;
    }
    const upstreamId = `auditgate-${++this.seq}`;
    const message: Record<string, unknown> = { ...m.message, id: upstreamId };
    const w: Waiting = {
      clientId: m.id ?? null,
      method: m.method,
      res,
      ctx,
      t0: performance.now(),
      timer: setTimeout(() => void this.timeout(upstreamId), this.spec.timeoutMs),
    };
    w.timer.unref();
    if (m.progressToken !== undefined) {
      w.clientToken = m.progressToken;
      w.upstreamToken = `auditgate-p-${this.seq}`;
      const params = m.message.params as Record<string, unknown>;
      message.params = { ...params, _meta: { ...(params._meta as object), progressToken: w.upstreamToken } };
      this.byToken.set(w.upstreamToken, w);
    }
    this.waiting.set(upstreamId, w);
    res.once('close', () => {
      if (!res.writableFinished && this.waiting.get(upstreamId) === w) void this.cancel(upstreamId, 'client closed the response stream');
    });
    try {
      await proc.send(JSON.stringify(message));
    } catch (err) {
      await this.answer(upstreamId, errorMessage(w.clientId, INTERNAL_ERROR, (err as Error).message), true);
    }
  }

  private forget(upstreamId: string): Waiting | undefined {
    const w = this.waiting.get(upstreamId);
    if (!w) return undefined;
    this.waiting.delete(upstreamId);
    clearTimeout(w.timer);
    if (w.upstreamToken) this.byToken.delete(w.upstreamToken);
    return w;
  }

  /** Records and sends the final answer (JSON unless a stream is already open). */
  private async answer(upstreamId: string, body: Record<string, unknown>, fromGateway: boolean, upstreamBody?: Record<string, unknown>): Promise<void> {
    const w = this.forget(upstreamId);
    if (!w) return;
    let filtered: Record<string, unknown> | undefined;
    if (!fromGateway && !('error' in body) && isListMethod(w.method) && this.deps.policy.active && w.ctx.actor) {
      const f = await this.deps.policy.filter(w.ctx.actor, this.spec.name, w.method!, body);
      if (f) {
        filtered = { filtered_out: f.removed, upstream_sha256: canonicalSha256(body) };
        body = f.message;
      }
    }
    const c: Classified = { kind: 'error' in body ? 'error' : 'response', message: body, id: w.clientId };
    const status = w.writer ? 200 : statusFor(body);
    const input: RecordInput = {
      event: 'mcp.message',
      direction: 'upstream_to_client',
      message: c,
      httpStatus: status,
      latencyMs: Math.round((performance.now() - w.t0) * 1000) / 1000,
      detail: fromGateway ? { origin: 'gateway' } : { upstream_id: upstreamBody?.id ?? upstreamId, ...filtered },
    };
    try {
      await this.deps.auditor.appendPersistent(input, w.ctx, () => !w.res.destroyed);
    } catch (err) {
      if (!(err instanceof AuditUnavailableError)) throw err;
      if (w.writer) w.writer.abort();
      else sendJson(w.res, 503, errorMessage(w.clientId, -32000, AUDIT_UNAVAILABLE_MESSAGE), { 'retry-after': '1' });
      return;
    }
    if (w.writer) {
      await w.writer.write({ event: 'message', data: JSON.stringify(body) });
      w.writer.end();
    } else {
      sendJson(w.res, status, body);
    }
  }

  private async onLine(line: string): Promise<void> {
    let messages: Classified[];
    try {
      messages = parseUpstream(line).messages;
    } catch (err) {
      // A stray print to stdout, or JSON a record cannot hold: recorded as text, not relayed.
      await this.deps.auditor.appendPersistent(upstreamTextInput(line, err, false), this.baseCtx({ target: this.spec.name, transport: 'stdio' }));
      return;
    }
    for (const m of messages) {
      if (m.kind === 'response' || m.kind === 'error') {
        const upstreamId = typeof m.id === 'string' ? m.id : '';
        const w = this.waiting.get(upstreamId);
        if (!w) continue;
        await this.answer(upstreamId, { ...m.message, id: w.clientId }, false, m.message);
        continue;
      }
      if (m.kind === 'notification' && m.progressToken !== undefined) {
        const w = this.byToken.get(String(m.progressToken));
        if (!w) continue;
        const params = m.message.params as Record<string, unknown>;
        const restored = { ...m.message, params: { ...params, progressToken: w.clientToken } };
        const c: Classified = { kind: 'notification', message: restored, method: m.method, progressToken: w.clientToken };
        await this.deps.auditor.appendPersistent({ event: 'mcp.message', direction: 'upstream_to_client', message: c, httpStatus: 200 }, w.ctx, () => !w.res.destroyed);
        w.writer ??= new SseWriter(w.res, 200);
        await w.writer.write({ event: 'message', data: JSON.stringify(restored) });
        continue;
      }
      // A stateless client cannot receive server-initiated requests or unrelated notifications:
      // record them, and answer requests so the server does not wait forever.
      const ctx = this.baseCtx({ target: this.spec.name, transport: 'stdio' });
      await this.deps.auditor.appendPersistent(
        { event: 'mcp.message', direction: 'upstream_to_client', message: m, detail: { delivered: false, reason: 'no stream in protocol 2026-07-28' } },
        ctx,
      );
      if (m.kind === 'request') {
        const reply = errorMessage(m.id, METHOD_NOT_FOUND, 'the client cannot answer server requests in protocol version 2026-07-28');
        await this.deps.auditor.appendPersistent(
          { event: 'mcp.message', direction: 'client_to_upstream', message: { kind: 'error', message: reply, id: m.id }, detail: { origin: 'gateway' } },
          ctx,
        );
        await this.proc?.send(JSON.stringify(reply)).catch(() => {});
      }
    }
  }

  private async cancel(upstreamId: string, reason: string): Promise<void> {
    const w = this.forget(upstreamId);
    if (!w) return;
    const note = { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: upstreamId, reason } };
    await this.deps.auditor
      .appendPersistent(
        {
          event: 'mcp.message',
          direction: 'client_to_upstream',
          message: { kind: 'notification', message: { ...note, params: { requestId: w.clientId, reason } }, method: 'notifications/cancelled' },
          detail: { origin: 'gateway', upstream_id: upstreamId },
        },
        w.ctx,
      )
      .catch(() => {});
    await this.proc?.send(JSON.stringify(note)).catch(() => {});
  }

  private async timeout(upstreamId: string): Promise<void> {
    const w = this.waiting.get(upstreamId);
    if (!w) return;
    const message = `upstream ${this.spec.name} did not answer within ${this.spec.timeoutMs} ms`;
    await this.proc?.send(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: upstreamId, reason: message } })).catch(() => {});
    await this.answer(upstreamId, errorMessage(w.clientId, UPSTREAM_TIMEOUT, message), true).catch(() => {});
  }

  private async onExit(proc: StdioProcess, code: number | null, signal: string | null, ctx: RecordContext): Promise<void> {
    await this.chain;
    await this.deps.auditor
      .appendPersistent({ event: 'mcp.process.exit', detail: { pid: proc.pid ?? null, code, signal, unexpected: !this.closed, shared: true } }, this.baseCtx(ctx))
      .catch(() => {});
    if (this.proc === proc) this.proc = undefined;
    const why = `upstream process exited (${signal ?? `code ${code}`})`;
    for (const id of [...this.waiting.keys()]) {
      const w = this.waiting.get(id)!;
      await this.answer(id, errorMessage(w.clientId, INTERNAL_ERROR, why), true).catch(() => {});
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.proc?.shutdown(this.deps.shutdown);
    await this.chain;
  }

  kill(): void {
    this.closed = true;
    this.proc?.child.kill('SIGKILL');
  }

  get pendingCount(): number {
    return this.waiting.size;
  }
}
