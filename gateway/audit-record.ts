// The audit record: the JSON object whose RFC 8785 canonical bytes become one Merkle-log leaf.
// This shape is evidence that outlives the code: add optional fields freely, but never change the
// meaning of an existing field without bumping `v`.

export const AUDIT_RECORD_VERSION = 1 as const;

/** Which hop a message was seen on. The gateway forwards verbatim, so one record per message per direction. */
export type Direction = 'client_to_upstream' | 'upstream_to_client';

export type MessageKind = 'request' | 'response' | 'error' | 'notification';

export type AuditEventType =
  | 'mcp.message' // one JSON-RPC message (each batch element separately)
  | 'mcp.session.open'
  | 'mcp.session.close'
  | 'mcp.process.spawn' // stdio upstream started
  | 'mcp.process.exit'
  | 'mcp.refused' // request refused before forwarding (auth, policy, session, malformed, rate limit…)
  | 'audit.read' // someone read audit data or downloaded evidence
  | 'config.change' // targets, policies, roles, keys changed
  | 'report.run' // scheduled or on-demand report / bundle run
  | 'evidence.bundle' // an evidence bundle was produced (archive SHA-256)
  | 'log.start'; // a gateway process attached to the log

/** The verified identity behind a request. Never contains a secret or a token. */
export interface AuditActor {
  subject: string;
  auth_method: 'api_key' | 'oidc' | 'session' | 'aws_iam' | 'local' | 'none';
  key_id?: string;
  issuer?: string;
  client_id?: string;
  scopes?: string[];
  roles?: string[];
  /** IdP groups that configuration refers to (role mapping, policy) — not every membership. */
  groups?: string[];
  /** SHA-256 (hex) of the token's jti, or of the token itself when it has none — never the token. */
  token_hash?: string;
}

export interface AuditClient {
  address?: string;
  user_agent?: string;
}

export interface AuditMcp {
  target: string;
  transport: 'http' | 'stdio';
  direction?: Direction;
  kind?: MessageKind;
  session?: string;
  protocol_version?: string;
  /** JSON-RPC id exactly as sent: 1 and "1" are different ids. */
  jsonrpc_id?: string | number | null;
  method?: string;
  /** tools/call tool name, resources/read URI, prompts/get name. */
  name?: string;
  batch_index?: number;
  http_status?: number;
  latency_ms?: number;
  /** SSE event id the message travelled under, when it came on a stream. */
  stream_event_id?: string;
}

export interface AuditPayload {
  /** SHA-256 (hex) of the message's canonical JSON before masking. */
  sha256: string;
  /** The message as stored: after the masking hook ran. */
  body: unknown;
  /** JSON pointers of masked fields, when masking changed anything. */
  masked?: string[];
}

export interface AuditRecord {
  v: typeof AUDIT_RECORD_VERSION;
  /** Unique event id (UUID). */
  id: string;
  /**
   * UTC, microsecond precision: 2026-11-25T17:18:24.123456Z. From the writing process's audit clock
   * (auditTimestamp): within one process it never goes backwards, so a record built after another
   * never carries an earlier time.
   */
  ts: string;
  event: AuditEventType;
  gateway: { instance: string; version: string };
  actor?: AuditActor;
  client?: AuditClient;
  mcp?: AuditMcp;
  payload?: AuditPayload;
  /** Outcome for refusals and decisions: why, and which rule or check. */
  outcome?: { decision: 'allow' | 'deny' | 'error'; reason?: string; rule?: string; policy_hash?: string };
  /**
   * Event-specific details (process pid/exit code, config diff hashes, report hashes…). For a
   * message holding an integer beyond 2^53, `exact_text` is the text it came in: `payload` holds
   * the parsed message, in which such an integer is rounded.
   */
  detail?: Record<string, unknown>;
}

// The process's audit clock. Date.now() has only milliseconds, and filling the last three digits
// from an unrelated counter made records of the same millisecond go backwards about once per
// millisecond (a response could carry an earlier time than its request). The clock is the
// monotonic clock, which counts real microseconds, plus an offset to wall time: at first the
// process's time origin (wall time at start, sub-millisecond), then checked against the wall
// clock once a second and moved only when it has left the millisecond Date.now() reports (NTP
// slewed or stepped the clock), so the sub-millisecond digits stay real between checks. It never
// goes backwards within the process by less than a second — such a correction holds the clock
// instead — while a larger step of the system clock is followed, so it shows in the records.
const CHECK_MS = 1_000;
const MAX_HOLD_US = 1_000_000;
let offsetMs = performance.timeOrigin;
let checkedAt = -Infinity;
let lastUs = 0;

/** Microseconds since the epoch, on the audit clock. */
export function auditClockMicros(): number {
  const mono = performance.now();
  if (mono - checkedAt >= CHECK_MS) {
    checkedAt = mono;
    const wall = Date.now();
    const estimate = mono + offsetMs;
    // Date.now() is the wall time truncated to the millisecond: a right clock lies in [wall, wall + 1).
    if (estimate < wall || estimate >= wall + 1) offsetMs = wall + 0.5 - mono;
  }
  let us = Math.floor((mono + offsetMs) * 1000);
  if (us < lastUs && lastUs - us < MAX_HOLD_US) us = lastUs;
  lastUs = us;
  return us;
}

/**
 * Microsecond-precision UTC timestamp (2026-11-25T17:18:24.123456Z) on the audit clock; with a
 * Date (tests, fixed times), that instant with `micros` as the sub-millisecond digits.
 */
export function auditTimestamp(now?: Date, micros = 0): string {
  let ms: number;
  let extra: number;
  if (now) {
    ms = now.getTime();
    extra = micros;
  } else {
    const us = auditClockMicros();
    ms = Math.floor(us / 1000);
    extra = us - ms * 1000;
  }
  return `${new Date(ms).toISOString().slice(0, 23)}${String(extra).padStart(3, '0')}Z`;
}
