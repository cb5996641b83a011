// The small interfaces the gateway needs from its host. The gateway never imports server/: the
// server implements these (audit log, API keys/OIDC, policy) and passes them in.
import type { AuditActor, AuditRecord } from './audit-record.ts';

/** Durable audit storage: resolves with the leaf index only once the record is durable. */
export interface AuditSink {
  append(record: AuditRecord): Promise<number>;
}

/** Thrown by an AuditSink that cannot make records durable right now (fail closed: 503). */
export interface AuditUnavailable extends Error {
  name: 'LogUnavailableError';
}

export interface AuthRequest {
  /** Lower-cased header names, as Node gives them. */
  headers: Record<string, string | string[] | undefined>;
  remoteAddress?: string;
  /** The target the request is for (its resource URL is the OAuth audience). */
  target: string;
  /** Public URL of the target's endpoint, e.g. https://gw.example.com/mcp/github. */
  resourceUrl: string;
}

export type AuthResult =
  | { ok: true; actor: AuditActor }
  | {
      ok: false;
      /**
       * 401 no/invalid credential, 403 valid but not allowed (e.g. insufficient_scope), 429 rate
       * limit exceeded (send Retry-After), 503 the identity provider's keys are unreachable.
       */
      status: 401 | 403 | 429 | 503;
      /** Safe to show the client and to record: never contains the credential. */
      message: string;
      /** Value for WWW-Authenticate on 401/403 (RFC 6750 / RFC 9728). */
      wwwAuthenticate?: string;
      /** Seconds for Retry-After on 429/503. */
      retryAfterSeconds?: number;
      /** What was presented, for the refusal record (e.g. key id, issuer, subject) — never the secret. */
      attempted?: Partial<AuditActor>;
      /**
       * The verified identity, when the credential was good and the refusal is about permission
       * or rate (403 role/scope, 429): the refusal record names it as its actor.
       */
      actor?: AuditActor;
    };

/** Checks the credential on every request (and the rate limits: a 429 comes back as a refusal). */
export interface Authenticator {
  authenticate(req: AuthRequest): Promise<AuthResult>;
}

export interface CallDescriptor {
  target: string;
  /** JSON-RPC method, e.g. tools/call, resources/read, prompts/get. */
  method: string;
  /** Tool name, resource URI or prompt name, when the method has one. */
  name?: string;
}

export interface Decision {
  allow: boolean;
  /** Which rule decided (shown to the client on deny, recorded always). */
  rule?: string;
  reason?: string;
  /** Hash of the policy in force (recorded on every decision). */
  policyHash?: string;
}

/**
 * Per-tool policy (the identity issue); the gateway asks before forwarding and filters lists.
 * Call it for every client request: methods without a name (initialize, ping, tools/list …) are
 * allowed when the actor may use the target at all. To filter a list result, call it once per
 * item with the method that item would be used with — tools/list → {method:'tools/call', name},
 * resources/list → {method:'resources/read', name: uri}, resources/templates/list →
 * {method:'resources/read', name: uriTemplate}, prompts/list → {method:'prompts/get', name} —
 * and drop the denied ones. decide() is synchronous in practice (in-memory rules): cheap per item.
 */
export interface Authorizer {
  decide(actor: AuditActor, call: CallDescriptor): Promise<Decision> | Decision;
}
