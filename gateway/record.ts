// The one place where something the gateway saw becomes an AuditRecord. Every record of traffic
// passes through buildRecord, so the masking hook (a later issue plugs in field redaction) applies
// to every stored payload, while payload.sha256 always commits to the unmasked message.
import { hash, randomUUID } from 'node:crypto';
import { canonicalJson, rememberCanonical } from './canonical.ts';
import {
  AUDIT_RECORD_VERSION,
  auditTimestamp,
  type AuditActor,
  type AuditClient,
  type AuditRecord,
  type Direction,
  type AuditEventType,
} from './audit-record.ts';
import { isUnrecordableJson, type Classified, type JsonRpcId } from './jsonrpc.ts';

export interface MaskContext {
  target: string;
  direction?: Direction;
  method?: string;
  name?: string;
}

/** Returns the body to store and the JSON pointers it changed; must not mutate its input. */
export type MaskHook = (body: unknown, ctx: MaskContext) => { body: unknown; masked: string[] };

export const identityMask: MaskHook = (body) => ({ body, masked: [] });

/** Who and where: the parts of a record that come from the request, not the message. */
export interface RecordContext {
  target: string;
  transport: 'http' | 'stdio';
  actor?: AuditActor;
  client?: AuditClient;
  session?: string;
  protocolVersion?: string;
}

export type RecordInput =
  | {
      event: 'mcp.message';
      direction: Direction;
      /** A classified JSON-RPC message, or the raw text of an upstream body that was not JSON-RPC. */
      message: Classified | { raw: string };
      batchIndex?: number;
      httpStatus?: number;
      latencyMs?: number;
      streamEventId?: string;
      /** The policy decision that let a client request through. */
      outcome?: NonNullable<AuditRecord['outcome']>;
      detail?: Record<string, unknown>;
    }
  | {
      event: 'mcp.refused';
      reason: string;
      /** Which check refused: auth, origin, accept, content-type, size, parse, session, protocol… */
      rule: string;
      httpStatus: number;
      /** The refused messages when they parsed; otherwise detail carries size and hash of the bytes. */
      messages?: Classified[];
      /** Hash of the policy that denied, for policy refusals. */
      policyHash?: string;
      detail?: Record<string, unknown>;
    }
  | {
      event: 'mcp.session.open' | 'mcp.session.close' | 'mcp.process.spawn' | 'mcp.process.exit';
      detail?: Record<string, unknown>;
    };

export interface RecordBuilderOptions {
  instance: string;
  version: string;
  mask?: MaskHook;
  now?: () => Date;
}

export function sha256Hex(data: string | Uint8Array): string {
  return hash('sha256', data, 'hex');
}

/** SHA-256 of the RFC 8785 canonical JSON of a value (what payload.sha256 commits to). */
export function canonicalSha256(value: unknown): string {
  return sha256Hex(canonicalJson(value));
}

/**
 * The record of upstream text that did not parse as a JSON-RPC message a record can hold (not
 * JSON-RPC at all, or JSON that json-text.ts refuses): kept as text, with why. An HTTP body is
 * relayed as it came; a stdio line is not relayed (`dropped`).
 */
export function upstreamTextInput(text: string, err: unknown, relayed: boolean): Extract<RecordInput, { event: 'mcp.message' }> {
  const input: Extract<RecordInput, { event: 'mcp.message' }> = { event: 'mcp.message', direction: 'upstream_to_client', message: { raw: text } };
  const why = isUnrecordableJson(err) ? err.message : undefined;
  if (!relayed) input.detail = { dropped: why ?? 'not JSON-RPC' };
  else if (why) input.detail = { reason: why };
  return input;
}

export type RecordBuilder = (input: RecordInput, ctx: RecordContext) => AuditRecord;

export function createRecordBuilder(opts: RecordBuilderOptions): RecordBuilder {
  const mask = opts.mask ?? identityMask;
  // The same for every record: serialised once.
  const gateway = Object.freeze({ instance: opts.instance, version: opts.version });
  rememberCanonical(gateway, canonicalJson(gateway));
  const now = opts.now;

  const payloadOf = (body: unknown, mctx: MaskContext) => {
    const text = canonicalJson(body);
    const sha256 = sha256Hex(text);
    const m = mask(body, mctx);
    const stored = m.body === body ? text : canonicalJson(m.body);
    const hash = JSON.stringify(sha256);
    // The payload is most of a record: serialise it once. Keys in RFC 8785 order (body < masked < sha256).
    if (m.masked.length) {
      const payload = { sha256, body: m.body, masked: m.masked };
      rememberCanonical(payload, `{"body":${stored},"masked":${canonicalJson(m.masked)},"sha256":${hash}}`);
      return payload;
    }
    const payload = { sha256, body: m.body };
    rememberCanonical(payload, `{"body":${stored},"sha256":${hash}}`);
    return payload;
  };

  return function buildRecord(input, ctx) {
    const rec: AuditRecord = {
      v: AUDIT_RECORD_VERSION,
      id: randomUUID(),
      ts: now ? auditTimestamp(now()) : auditTimestamp(),
      event: input.event as AuditEventType,
      gateway,
    };
    if (ctx.actor) rec.actor = ctx.actor;
    if (ctx.client && (ctx.client.address || ctx.client.user_agent)) rec.client = ctx.client;
    const mcp: NonNullable<AuditRecord['mcp']> = { target: ctx.target, transport: ctx.transport };
    if (ctx.session) mcp.session = ctx.session;
    if (ctx.protocolVersion) mcp.protocol_version = ctx.protocolVersion;
    rec.mcp = mcp;

    if (input.event === 'mcp.message') {
      mcp.direction = input.direction;
      const msg = input.message;
      if ('raw' in msg) {
        rec.payload = payloadOf(msg.raw, { target: ctx.target, direction: input.direction });
        rec.detail = { ...input.detail, not_jsonrpc: true };
      } else {
        mcp.kind = msg.kind;
        if (msg.id !== undefined) mcp.jsonrpc_id = msg.id as JsonRpcId;
        if (msg.method) mcp.method = msg.method;
        if (msg.name !== undefined) mcp.name = msg.name;
        rec.payload = payloadOf(msg.message, {
          target: ctx.target,
          direction: input.direction,
          method: msg.method,
          name: msg.name,
        });
        if (input.detail) rec.detail = input.detail;
        // An integer beyond 2^53 is rounded in the parsed message: keep what was actually sent —
        // unless masking changed the body, since the text would carry the unmasked values.
        if (msg.exactText !== undefined && !rec.payload.masked) rec.detail = { ...rec.detail, exact_text: msg.exactText };
      }
      if (input.batchIndex !== undefined) mcp.batch_index = input.batchIndex;
      if (input.httpStatus !== undefined) mcp.http_status = input.httpStatus;
      if (input.latencyMs !== undefined) mcp.latency_ms = input.latencyMs;
      if (input.streamEventId !== undefined) mcp.stream_event_id = input.streamEventId;
      if (input.outcome) rec.outcome = input.outcome;
      return rec;
    }

    if (input.event === 'mcp.refused') {
      mcp.direction = 'client_to_upstream';
      mcp.http_status = input.httpStatus;
      rec.outcome = { decision: 'deny', reason: input.reason, rule: input.rule };
      if (input.policyHash) rec.outcome.policy_hash = input.policyHash;
      const msgs = input.messages ?? [];
      const first = msgs[0];
      if (first) {
        mcp.kind = first.kind;
        if (first.id !== undefined) mcp.jsonrpc_id = first.id as JsonRpcId;
        if (first.method) mcp.method = first.method;
        if (first.name !== undefined) mcp.name = first.name;
        const body = msgs.length === 1 ? first.message : msgs.map((m) => m.message);
        rec.payload = payloadOf(body, { target: ctx.target, direction: 'client_to_upstream', method: first.method, name: first.name });
      }
      if (input.detail) rec.detail = input.detail;
      if (first?.exactText !== undefined && !rec.payload?.masked) rec.detail = { ...rec.detail, exact_text: first.exactText };
      return rec;
    }

    if (input.detail) rec.detail = input.detail;
    return rec;
  };
}
