// The audit_events row derived from one entry: the fields reports and the UI filter on. The
// entry bytes remain the evidence; this index may be lossy (long values are cut, NULs replaced)
// but it must never make an append fail, whatever the record holds.

export interface AuditEventFields {
  ts: string | null;
  event: string | null;
  direction: string | null;
  kind: string | null;
  target: string | null;
  transport: string | null;
  session: string | null;
  jsonrpc_method: string | null;
  name: string | null;
  subject: string | null;
  auth_method: string | null;
  key_id: string | null;
  issuer: string | null;
  client_address: string | null;
  http_status: number | null;
  latency_ms: number | null;
  decision: string | null;
  rule: string | null;
}

export type AuditEventRow = AuditEventFields & { idx: number };

export const AUDIT_EVENT_COLUMNS: ReadonlyArray<keyof AuditEventRow> = [
  'idx',
  'ts',
  'event',
  'direction',
  'kind',
  'target',
  'transport',
  'session',
  'jsonrpc_method',
  'name',
  'subject',
  'auth_method',
  'key_id',
  'issuer',
  'client_address',
  'http_status',
  'latency_ms',
  'decision',
  'rule',
];

// PostgreSQL btree entries must stay under ~2.7 kB; 512 UTF-16 units is at most 1.5 kB of UTF-8.
const MAX_TEXT = 512;

const obj = (v: unknown): Record<string, unknown> | undefined =>
  v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;

// ES2024's String well-formedness methods (Node 20 has them; the project's lib is ES2023).
type WellFormed = { isWellFormed(): boolean; toWellFormed(): string };

function text(v: unknown): string | null {
  if (typeof v !== 'string') return null;
  // PostgreSQL text cannot hold NUL.
  let s = v.includes('\u0000') ? v.replaceAll('\u0000', '\ufffd') : v;
  if (s.length > MAX_TEXT) s = s.slice(0, MAX_TEXT);
  // A lone surrogate (or a pair the cut above split) has no UTF-8 form; rows cross to the
  // database as JSON, whose parser refuses one.
  return (s as unknown as WellFormed).isWellFormed() ? s : (s as unknown as WellFormed).toWellFormed();
}

function int32(v: unknown): number | null {
  return typeof v === 'number' && Number.isInteger(v) && v >= -2147483648 && v <= 2147483647 ? v : null;
}

function finite(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

const ISO_UTC = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/;

/**
 * ISO-8601 with six fractional digits in UTC, so text order is time order on SQLite and
 * PostgreSQL parses it into timestamptz without losing the microseconds. Anything else → null.
 */
export function normaliseTimestamp(v: unknown): string | null {
  if (typeof v !== 'string') return null;
  const m = ISO_UTC.exec(v);
  if (!m) return null;
  const ms = Date.parse(v);
  if (Number.isNaN(ms)) return null;
  const frac = (m[2] ?? '').padEnd(6, '0').slice(0, 6);
  if (m[3] === 'Z') return `${m[1]}.${frac}Z`;
  // Shift to UTC; the sub-millisecond digits do not depend on the offset.
  const iso = new Date(ms).toISOString();
  return iso.startsWith('-') || iso.startsWith('+') ? null : `${iso.slice(0, 19)}.${frac}Z`;
}

/** Reads what it can from any JSON value; an AuditRecord (gateway/audit-record.ts) fills every column. */
export function auditEventFields(record: unknown): AuditEventFields {
  const r = obj(record) ?? {};
  const mcp = obj(r.mcp) ?? {};
  const actor = obj(r.actor) ?? {};
  const client = obj(r.client) ?? {};
  const outcome = obj(r.outcome) ?? {};
  return {
    ts: normaliseTimestamp(r.ts),
    event: text(r.event),
    direction: text(mcp.direction),
    kind: text(mcp.kind),
    target: text(mcp.target),
    transport: text(mcp.transport),
    session: text(mcp.session),
    jsonrpc_method: text(mcp.method),
    name: text(mcp.name),
    subject: text(actor.subject),
    auth_method: text(actor.auth_method),
    key_id: text(actor.key_id),
    issuer: text(actor.issuer),
    client_address: text(client.address),
    http_status: int32(mcp.http_status),
    latency_ms: finite(mcp.latency_ms),
    decision: text(outcome.decision),
    rule: text(outcome.rule),
  };
}
