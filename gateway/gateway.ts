// The gateway: one entry point per HTTP request to /mcp/{target}. It checks the request (origin,
// credential, headers, body), decides the spec era, finds or creates the session bound to the
// caller's identity, records every client message durably, and only then hands it to the HTTP or
// stdio upstream. Framework-free: it works on Node's request/response; gateway/hapi.ts mounts it.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import type { AuditActor } from './audit-record.ts';
import { Auditor, AuditUnavailableError } from './auditor.ts';
import { createRecordBuilder, sha256Hex, type RecordContext, type RecordInput } from './record.ts';
import { DEFAULT_MAX_SESSIONS, DEFAULTS, type GatewayOptions, type HttpTargetSpec, type ResolvedOptions, type StdioTargetSpec, type TargetSpec } from './options.ts';
import { silentLogger, type GatewayLogger } from './logger.ts';
import {
  checkContentType,
  checkGetAccept,
  checkOrigin,
  checkPostAccept,
  ClientGoneError,
  header,
  originPolicy,
  readBody,
  Refusal,
  TRANSPORT_ERROR,
  type OriginPolicy,
} from './front-door.ts';
import { errorMessage, INTERNAL_ERROR, INVALID_REQUEST, JsonRpcFormatError, parseBody, type Classified, type ParsedBody } from './jsonrpc.ts';
import { checkModernHeaders, isModern, metaVersion, SUPPORTED_VERSIONS, unsupportedVersion } from './protocol.ts';
import { mintSessionId, principalKey, SessionRegistry, type Session } from './session.ts';
import { HttpUpstream } from './http-upstream.ts';
import { AUDIT_UNAVAILABLE_MESSAGE, forwardDelete, forwardGet, forwardPost, HttpSession, upstreamSessionDigest, type HttpDeps } from './http-forward.ts';
import { StdioSession, type StdioDeps } from './stdio-session.ts';
import { StatelessStdio } from './stdio-stateless.ts';
import { PendingRequests } from './pending.ts';
import { sendEmpty, sendJson, sendRpcError } from './respond.ts';
import { PolicyGate, POLICY_DENIED } from './policy-gate.ts';
import type { Decision } from './types.ts';

/** JSON-RPC code the SDK uses for "session not found". */
const SESSION_NOT_FOUND = -32001;

export interface GatewayStats {
  sessions: number;
}

export class Gateway {
  readonly options: ResolvedOptions;
  readonly logger: GatewayLogger;
  private readonly auditor: Auditor;
  private readonly targets = new Map<string, TargetSpec>();
  private readonly httpUpstreams = new Map<string, HttpUpstream>();
  private readonly stateless = new Map<string, StatelessStdio>();
  private readonly sessions: SessionRegistry;
  /** Per target, and per target and owner: initializations whose session is not in the registry yet (HTTP). */
  private readonly opening = new Map<string, number>();
  private readonly origins: OriginPolicy;
  private readonly httpDeps: HttpDeps;
  private readonly stdioDeps: StdioDeps;
  private readonly policy: PolicyGate;
  private closed = false;

  constructor(opts: GatewayOptions) {
    this.logger = opts.logger ?? silentLogger;
    this.options = {
      ...opts,
      logger: this.logger,
      maxBodyBytes: opts.maxBodyBytes ?? DEFAULTS.maxBodyBytes,
      maxResponseBytes: opts.maxResponseBytes ?? DEFAULTS.maxResponseBytes,
      allowedOrigins: opts.allowedOrigins ?? [],
      sessionIdleMs: opts.sessionIdleMs ?? DEFAULTS.sessionIdleMs,
      auditRetryMs: opts.auditRetryMs ?? DEFAULTS.auditRetryMs,
      stdioShutdown: opts.stdioShutdown ?? DEFAULTS.stdioShutdown,
      stdioMaxRestarts: opts.stdioMaxRestarts ?? DEFAULTS.stdioMaxRestarts,
    };
    const build = createRecordBuilder({ instance: opts.instance, version: opts.version, mask: opts.mask });
    this.auditor = new Auditor(opts.sink, build, this.logger, this.options.auditRetryMs);
    for (const t of opts.targets) {
      this.targets.set(t.name, t);
      if (t.kind === 'http') this.httpUpstreams.set(t.name, new HttpUpstream(t));
    }
    this.sessions = new SessionRegistry(this.options.sessionIdleMs);
    this.origins = originPolicy(opts.publicUrl, this.options.allowedOrigins);
    const forget = (id: string) => this.sessions.remove(id);
    this.policy = new PolicyGate(opts.authorizer);
    this.httpDeps = { auditor: this.auditor, logger: this.logger, policy: this.policy, maxResponseBytes: this.options.maxResponseBytes, forget };
    this.stdioDeps = {
      auditor: this.auditor,
      logger: this.logger,
      policy: this.policy,
      shutdown: this.options.stdioShutdown,
      maxRestarts: this.options.stdioMaxRestarts,
      forget,
    };
  }

  targetNames(): string[] {
    return [...this.targets.keys()];
  }

  stats(): GatewayStats {
    return { sessions: this.sessions.size };
  }

  resourceUrl(target: string): string {
    return `${this.options.publicUrl.replace(/\/+$/, '')}/mcp/${encodeURIComponent(target)}`;
  }

  /**
   * Handles one HTTP request for /mcp/{target}. `body` is the request stream (defaults to `req`
   * itself; hapi hands over its own payload stream). Never throws: failures become answers.
   */
  async handle(targetName: string, req: IncomingMessage, res: ServerResponse, body: Readable = req): Promise<void> {
    const target = this.targets.get(targetName);
    const ctx: RecordContext = {
      target: targetName,
      transport: target?.kind ?? 'http',
      client: { address: req.socket?.remoteAddress, user_agent: header(req.headers, 'user-agent')?.slice(0, 512) },
    };
    if (!ctx.client?.address) delete ctx.client?.address;
    if (!ctx.client?.user_agent) delete ctx.client?.user_agent;
    try {
      if (this.closed) throw new Refusal(503, TRANSPORT_ERROR, 'Service Unavailable: the gateway is shutting down', 'shutdown');
      if (!target) throw new Refusal(404, TRANSPORT_ERROR, `Not Found: no target named ${JSON.stringify(targetName)}`, 'target');
      checkOrigin(req.headers, this.origins);
      let auth: Awaited<ReturnType<typeof this.options.authenticator.authenticate>>;
      try {
        auth = await this.options.authenticator.authenticate({
          headers: req.headers,
          remoteAddress: req.socket?.remoteAddress,
          target: targetName,
          resourceUrl: this.resourceUrl(targetName),
        });
      } catch (err) {
        // The credential store itself failed (e.g. its database is down): fail closed.
        this.logger.error({ err: (err as Error).message, target: targetName }, 'authenticator failed');
        throw new Refusal(503, TRANSPORT_ERROR, 'Service Unavailable: credentials cannot be checked right now', 'auth-unavailable', {
          headers: { 'retry-after': '1' },
        });
      }
      if (!auth.ok) {
        if (auth.actor) ctx.actor = auth.actor;
        const headers: Record<string, string> = auth.wwwAuthenticate ? { 'www-authenticate': auth.wwwAuthenticate } : {};
        if (auth.retryAfterSeconds !== undefined) headers['retry-after'] = String(auth.retryAfterSeconds);
        throw new Refusal(auth.status, TRANSPORT_ERROR, auth.message, 'auth', {
          headers,
          detail: auth.attempted ? { attempted: auth.attempted } : undefined,
        });
      }
      ctx.actor = auth.actor;
      switch (req.method) {
        case 'POST':
          await this.post(target, ctx, req, res, body);
          return;
        case 'GET':
          await this.get(target, ctx, req, res);
          return;
        case 'DELETE':
          await this.delete(target, ctx, req, res);
          return;
        default:
          throw new Refusal(405, TRANSPORT_ERROR, 'Method Not Allowed', 'method', { headers: { allow: 'GET, POST, DELETE' } });
      }
    } catch (err) {
      await this.fail(err, ctx, res);
    }
  }

  private async fail(err: unknown, ctx: RecordContext, res: ServerResponse): Promise<void> {
    if (err instanceof JsonRpcFormatError) {
      err = new Refusal(400, err.code, err.code === -32700 ? `Parse error: ${err.message}` : `Invalid Request: ${err.message}`, 'parse');
    }
    if (err instanceof Refusal) {
      await this.refuse(err, ctx, res);
      return;
    }
    if (err instanceof AuditUnavailableError) {
      sendRpcError(res, 503, null, TRANSPORT_ERROR, AUDIT_UNAVAILABLE_MESSAGE, undefined, { 'retry-after': '1' });
      return;
    }
    if (err instanceof ClientGoneError) {
      res.destroy();
      return;
    }
    this.logger.error({ err, target: ctx.target }, 'gateway request failed');
    if (!res.headersSent) sendRpcError(res, 500, null, INTERNAL_ERROR, 'Internal error');
    else res.destroy();
  }

  /** Records a refusal, then answers it; if it cannot be recorded, the answer is 503 instead. */
  private async refuse(r: Refusal, ctx: RecordContext, res: ServerResponse): Promise<void> {
    const input: RecordInput = {
      event: 'mcp.refused',
      reason: r.message,
      rule: r.rule,
      httpStatus: r.status,
      messages: r.extra.messages,
      detail: r.extra.detail,
    };
    try {
      await this.auditor.append(input, ctx);
    } catch {
      sendRpcError(res, 503, null, TRANSPORT_ERROR, AUDIT_UNAVAILABLE_MESSAGE, undefined, { 'retry-after': '1' });
      return;
    }
    const id = r.extra.messages?.length === 1 ? r.extra.messages[0]!.id : null;
    sendRpcError(res, r.status, id ?? null, r.code, r.message, r.extra.data, r.extra.headers);
  }

  private async readParsed(req: IncomingMessage, body: Readable): Promise<{ raw: Buffer; parsed: ParsedBody }> {
    checkContentType(req.headers);
    checkPostAccept(req.headers);
    const raw = await readBody(body, req.headers, this.options.maxBodyBytes);
    try {
      return { raw, parsed: parseBody(raw) };
    } catch (err) {
      if (err instanceof JsonRpcFormatError) {
        throw new Refusal(400, err.code, err.code === -32700 ? `Parse error: ${err.message}` : `Invalid Request: ${err.message}`, err.rule, {
          detail: { bytes: raw.length, sha256: sha256Hex(raw) },
        });
      }
      throw err;
    }
  }

  private messageInputs(
    parsed: ParsedBody,
    latency?: (m: Classified) => number | undefined,
    decisions?: Map<Classified, Decision>,
  ): RecordInput[] {
    return parsed.messages.map((m, i) => {
      const input: RecordInput = { event: 'mcp.message', direction: 'client_to_upstream', message: m };
      if (parsed.batch) input.batchIndex = i;
      const l = latency?.(m);
      if (l !== undefined) input.latencyMs = l;
      const d = decisions?.get(m);
      if (d) {
        input.outcome = { decision: 'allow' };
        if (d.rule) input.outcome.rule = d.rule;
        if (d.reason) input.outcome.reason = d.reason;
        if (d.policyHash) input.outcome.policy_hash = d.policyHash;
      }
      return input;
    });
  }

  /** Decides the requests of a POST; on a denial records the refusal and answers it (true: handled). */
  private async denied(ctx: RecordContext, parsed: ParsedBody, res: ServerResponse): Promise<Map<Classified, Decision> | undefined> {
    const { decisions, denied } = await this.policy.check(ctx.actor!, ctx.target, parsed.messages);
    if (!denied) return decisions;
    const d = denied.decision;
    const reason = d.reason ?? 'denied by policy';
    try {
      await this.auditor.append(
        {
          event: 'mcp.refused',
          reason,
          rule: d.rule ?? 'policy',
          httpStatus: 200,
          messages: parsed.messages,
          ...(d.policyHash ? { policyHash: d.policyHash } : {}),
          detail: { check: 'policy' },
        },
        ctx,
      );
    } catch {
      sendRpcError(res, 503, null, TRANSPORT_ERROR, AUDIT_UNAVAILABLE_MESSAGE, undefined, { 'retry-after': '1' });
      return undefined;
    }
    // A JSON-RPC error per request (HTTP 200), so clients see a tool-level refusal, not a transport failure.
    const errors = parsed.messages
      .filter((m) => m.kind === 'request')
      .map((m) =>
        errorMessage(
          m.id,
          POLICY_DENIED,
          m === denied.message ? `Forbidden by policy: ${reason}` : 'Not forwarded: another request in this batch was denied by policy',
          d.rule ? { rule: d.rule } : undefined,
        ),
      );
    sendJson(res, 200, parsed.batch ? errors : errors[0]);
    return undefined;
  }

  private async post(target: TargetSpec, ctx: RecordContext, req: IncomingMessage, res: ServerResponse, body: Readable): Promise<void> {
    const { raw, parsed } = await this.readParsed(req, body);
    const hv = header(req.headers, 'mcp-protocol-version');
    const version = hv ?? metaVersion(parsed);
    if (version !== undefined && !SUPPORTED_VERSIONS.includes(version)) {
      throw unsupportedVersion(version);
    }
    if (isModern(version)) {
      ctx.protocolVersion = version;
      try {
        checkModernHeaders(req.headers, parsed, version!);
      } catch (err) {
        if (err instanceof Refusal) err.extra.messages = parsed.messages;
        throw err;
      }
      const decisions = await this.denied(ctx, parsed, res);
      if (!decisions) return;
      await this.auditor.append(this.messageInputs(parsed, undefined, decisions), ctx);
      if (target.kind === 'http') {
        await forwardPost(this.httpDeps, { ...this.httpPost(target, req, res, ctx, parsed, raw), pending: new PendingRequests(), modern: true });
      } else {
        await this.statelessFor(target).post(parsed.messages[0]!, ctx, res);
      }
      return;
    }

    // Legacy era.
    if (parsed.batch && hv !== undefined && hv > '2025-03-26') {
      throw new Refusal(400, INVALID_REQUEST, `Invalid Request: batches are not supported in protocol version ${hv}`, 'batch', {
        messages: parsed.messages,
      });
    }
    const init = parsed.messages.find((m) => m.kind === 'request' && m.method === 'initialize');
    const sid = header(req.headers, 'mcp-session-id');
    if (init) {
      if (parsed.messages.length > 1) {
        throw new Refusal(400, INVALID_REQUEST, 'Invalid Request: initialize must be sent on its own', 'batch', { messages: parsed.messages });
      }
      const params = init.message.params as { protocolVersion?: unknown } | undefined;
      if (typeof params?.protocolVersion === 'string') ctx.protocolVersion = params.protocolVersion;
      const decisions = await this.denied(ctx, parsed, res);
      if (!decisions) return;
      await this.initialize(target, ctx, req, res, raw, parsed, decisions);
      return;
    }
    if (sid === undefined) {
      throw new Refusal(400, TRANSPORT_ERROR, 'Bad Request: Mcp-Session-Id header is required', 'session', { messages: parsed.messages });
    }
    const session = this.sessionFor(target, sid, ctx.actor!, parsed.messages);
    ctx.session = session.id;
    ctx.protocolVersion = hv ?? session.protocolVersion;
    session.touch();
    const decisions = await this.denied(ctx, parsed, res);
    if (!decisions) return;
    if (session instanceof HttpSession) {
      await this.auditor.append(this.messageInputs(parsed, (m) => session.serverPending.answered(m), decisions), ctx);
      await forwardPost(this.httpDeps, {
        ...this.httpPost(target as HttpTargetSpec, req, res, ctx, parsed, raw),
        session,
        pending: session.pending,
        modern: false,
      });
      return;
    }
    const stdio = session as StdioSession;
    await this.auditor.append(this.messageInputs(parsed, (m) => stdio.answerLatency(m), decisions), ctx);
    await stdio.post(parsed.messages, res, hv, ctx.actor);
  }

  /** Finds a live session for this target and checks it belongs to the caller. */
  private sessionFor(target: TargetSpec, sid: string, actor: AuditActor, messages?: Classified[]): Session {
    const session = this.sessions.get(sid);
    if (!session || session.target.name !== target.name) {
      throw new Refusal(404, SESSION_NOT_FOUND, 'Session not found', 'session', {
        messages,
        detail: { session_sha256: sha256Hex(sid).slice(0, 16) },
      });
    }
    if (session.owner !== principalKey(actor)) {
      throw new Refusal(403, TRANSPORT_ERROR, 'Forbidden: this session belongs to another identity', 'session-owner', {
        messages,
        detail: { session: session.id, session_subject: session.actor.subject },
      });
    }
    return session;
  }

  private async initialize(
    target: TargetSpec,
    ctx: RecordContext,
    req: IncomingMessage,
    res: ServerResponse,
    raw: Buffer,
    parsed: ParsedBody,
    decisions: Map<Classified, Decision>,
  ): Promise<void> {
    const actor = ctx.actor!;
    const owner = principalKey(actor);
    const ownerKey = `${target.name}\n${owner}`;
    const counts = this.sessions.countFor(target.name, owner);
    const open = counts.all + (this.opening.get(target.name) ?? 0);
    const mine = counts.owner + (this.opening.get(ownerKey) ?? 0);
    const limit = target.maxSessions ?? DEFAULT_MAX_SESSIONS[target.kind];
    const perIdentity = target.maxSessionsPerIdentity ?? limit;
    if (mine >= perIdentity && perIdentity < limit) {
      throw new Refusal(
        429,
        TRANSPORT_ERROR,
        `Too Many Requests: you have ${perIdentity} sessions open on target ${target.name}, the limit per identity; end one (DELETE) or retry later`,
        'sessions',
        { messages: parsed.messages, headers: { 'retry-after': '5' }, detail: { open: mine, limit: perIdentity, per: 'identity' } },
      );
    }
    if (open >= limit) {
      throw new Refusal(
        503,
        TRANSPORT_ERROR,
        `Service Unavailable: target ${target.name} has ${limit} sessions open, its limit; end one (DELETE) or retry later`,
        'sessions',
        { messages: parsed.messages, headers: { 'retry-after': '5' }, detail: { open, limit } },
      );
    }
    const id = mintSessionId();
    ctx.session = id;
    if (target.kind === 'stdio') {
      const session = new StdioSession(id, target, owner, actor, ctx.client ?? {}, this.stdioDeps);
      this.sessions.add(session);
      try {
        await session.start();
        await this.auditor.append(this.messageInputs(parsed, undefined, decisions), ctx);
      } catch (err) {
        await session.close('open_failed').catch(() => {});
        throw err;
      }
      await session.post(parsed.messages, res, undefined, actor);
      return;
    }
    const post = this.httpPost(target, req, res, ctx, parsed, raw);
    for (const k of [target.name, ownerKey]) this.opening.set(k, (this.opening.get(k) ?? 0) + 1);
    try {
      await this.auditor.append(this.messageInputs(parsed, undefined, decisions), ctx);
      await forwardPost(this.httpDeps, {
        ...post,
        pending: new PendingRequests(),
        modern: false,
        onInitialized: async (resp) => {
          if (resp.status < 200 || resp.status >= 300) return undefined;
          const up = resp.headers['mcp-session-id'];
          const upstreamId = typeof up === 'string' ? up : undefined;
          const session = new HttpSession(id, target, owner, actor, ctx.client ?? {}, upstreamId, post.upstream, this.httpDeps);
          const detail: Record<string, unknown> = { transport: 'http' };
          if (upstreamId) detail.upstream_session_sha256 = upstreamSessionDigest(upstreamId);
          await this.auditor.append({ event: 'mcp.session.open', detail }, session.recordContext());
          this.sessions.add(session);
          return session;
        },
      });
    } finally {
      for (const k of [target.name, ownerKey]) {
        const n = this.opening.get(k)! - 1;
        if (n === 0) this.opening.delete(k);
        else this.opening.set(k, n);
      }
    }
  }

  /** What every POST forwarded to an HTTP upstream carries, whatever the era or session. */
  private httpPost(target: HttpTargetSpec, req: IncomingMessage, res: ServerResponse, ctx: RecordContext, parsed: ParsedBody, raw: Buffer) {
    return { upstream: this.httpUpstreams.get(target.name)!, target, headers: req.headers, res, ctx, messages: parsed.messages, raw };
  }

  private async get(target: TargetSpec, ctx: RecordContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const hv = header(req.headers, 'mcp-protocol-version');
    if (hv !== undefined && !SUPPORTED_VERSIONS.includes(hv)) throw unsupportedVersion(hv);
    if (isModern(hv)) {
      ctx.protocolVersion = hv;
      throw new Refusal(405, TRANSPORT_ERROR, 'Method Not Allowed: protocol version 2026-07-28 has no GET stream', 'method', {
        headers: { allow: 'POST' },
      });
    }
    checkGetAccept(req.headers);
    const session = this.requestSession(target, ctx, req, hv);
    session.touch();
    const last = header(req.headers, 'last-event-id');
    if (session instanceof HttpSession) {
      await forwardGet(this.httpDeps, {
        upstream: this.httpUpstreams.get(target.name)!,
        target: target as HttpTargetSpec,
        headers: req.headers,
        res,
        ctx,
        session,
      });
      return;
    }
    await (session as StdioSession).get(res, last);
  }

  /** The legacy session a GET or DELETE names (required header, bound to the caller), noted in the record context. */
  private requestSession(target: TargetSpec, ctx: RecordContext, req: IncomingMessage, hv: string | undefined) {
    const sid = header(req.headers, 'mcp-session-id');
    if (sid === undefined) throw new Refusal(400, TRANSPORT_ERROR, 'Bad Request: Mcp-Session-Id header is required', 'session');
    const session = this.sessionFor(target, sid, ctx.actor!);
    ctx.session = session.id;
    ctx.protocolVersion = hv ?? session.protocolVersion;
    return session;
  }

  private async delete(target: TargetSpec, ctx: RecordContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const hv = header(req.headers, 'mcp-protocol-version');
    if (isModern(hv)) {
      ctx.protocolVersion = hv;
      throw new Refusal(405, TRANSPORT_ERROR, 'Method Not Allowed: protocol version 2026-07-28 has no sessions', 'method', {
        headers: { allow: 'POST' },
      });
    }
    const session = this.requestSession(target, ctx, req, hv);
    if (session instanceof HttpSession) {
      await forwardDelete(this.httpDeps, {
        upstream: this.httpUpstreams.get(target.name)!,
        target: target as HttpTargetSpec,
        headers: req.headers,
        res,
        ctx,
        session,
      });
      return;
    }
    await session.close('client_delete');
    sendEmpty(res, 200);
  }

  private statelessFor(target: StdioTargetSpec): StatelessStdio {
    let s = this.stateless.get(target.name);
    if (!s) {
      s = new StatelessStdio(target, { auditor: this.auditor, logger: this.logger, shutdown: this.options.stdioShutdown, policy: this.policy });
      this.stateless.set(target.name, s);
    }
    return s;
  }

  /** Ends every session (recorded), stops stdio children and closes upstream pools. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Children get the full stdin → SIGTERM → SIGKILL sequence; a hanging audit store cannot hold
    // shutdown past this deadline.
    const deadline = this.options.stdioShutdown.graceMs + this.options.stdioShutdown.termMs + 5_000;
    await this.sessions.closeAll('gateway_shutdown', deadline);
    const stateless = [...this.stateless.values()];
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), deadline);
    });
    if ((await Promise.race([Promise.allSettled(stateless.map((s) => s.close())), late])) === 'late') for (const s of stateless) s.kill();
    clearTimeout(timer);
    await Promise.allSettled([...this.httpUpstreams.values()].map((u) => u.close()));
  }
}
