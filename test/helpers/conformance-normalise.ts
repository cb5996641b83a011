// Turns the raw checks.json of a conformance scenario into something two runs can be compared on: the
// same server reached directly and through the gateway must give equal results, so everything that
// depends on where it was reached or when (timestamps, ports, URLs, session and event ids, HTTP headers
// the gateway is entitled to change) is replaced by a placeholder.

export type CheckStatus = 'SUCCESS' | 'FAILURE' | 'WARNING' | 'SKIPPED' | 'INFO';

/** One check as the suite writes it (types.ts of @modelcontextprotocol/conformance 0.1.13). */
export interface RawCheck {
  id: string;
  name: string;
  description: string;
  status: CheckStatus;
  timestamp?: string;
  specReferences?: unknown;
  details?: Record<string, unknown>;
  metadata?: Record<string, unknown>;
  errorMessage?: string;
  logs?: string[];
}

export interface NormalisedCheck {
  id: string;
  name: string;
  status: CheckStatus;
  description: string;
  errorMessage?: string;
  details?: unknown;
}

export interface ScenarioResult {
  scenario: string;
  /** 'fail': a FAILURE check, or no checks at all; 'warn': no failure but a WARNING; else 'pass'. */
  status: 'pass' | 'warn' | 'fail';
  /** The suite's own verdict: a scenario passes when none of its checks is a FAILURE. */
  passed: boolean;
  counts: Record<CheckStatus, number>;
  checks: NormalisedCheck[];
}

const EVENT_ID_KEYS = new Set(['eventId', 'lastEventId', 'lastEventIdUsed']);
const SESSION_ID_KEYS = new Set(['sessionId', 'mcp-session-id']);
// Of all HTTP headers only the media type says something about the server's behaviour (SSE or JSON);
// the rest (date, session id, framing, proxy hints) legitimately differ behind a gateway.
const KEPT_HEADERS = new Set(['content-type']);
// Answers a gateway gives itself instead of relaying: a request with a foreign Host/Origin must be refused
// at the front door, so the refusal's body is the gateway's wording, not the upstream's (its status code
// still counts).
const OWN_ANSWER_DETAILS: Record<string, string[]> = { 'localhost-host-rebinding-rejected': ['body'] };
const LOOPBACK_AUTHORITY = /(?:127\.0\.0\.1|localhost|\[::1\]):\d+/g;
const ISO_TIME = /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z/g;
const EVENT_ID_IN_TEXT = /\(id: (?!none\))[^)]*\)/g;

export interface NormaliseContext {
  /** The URL the suite was pointed at. */
  url: string;
  /** Values that must never appear in results (e.g. the bearer token the preload added). */
  secrets?: string[];
}

function collectSessionIds(value: unknown, found: Set<string>): void {
  if (Array.isArray(value)) {
    for (const item of value) collectSessionIds(item, found);
  } else if (value !== null && typeof value === 'object') {
    for (const [key, inner] of Object.entries(value)) {
      if (SESSION_ID_KEYS.has(key) && typeof inner === 'string' && inner.length > 0) found.add(inner);
      else collectSessionIds(inner, found);
    }
  }
}

function makeStringNormaliser(context: NormaliseContext, sessionIds: Set<string>): (text: string) => string {
  const url = new URL(context.url);
  const replacements: Array<[string, string]> = [
    ...(context.secrets ?? []).filter((s) => s.length > 0).map((s): [string, string] => [s, '<redacted>']),
    [context.url, '<url>'],
    [url.host, '<host>'],
    // Session ids are opaque strings of the server's (or gateway's) choosing; short ones could collide
    // with ordinary text, and every real one is long.
    ...[...sessionIds].filter((id) => id.length >= 8).map((id): [string, string] => [id, '<session-id>']),
  ];
  replacements.sort((a, b) => b[0].length - a[0].length);
  return (text) => {
    let out = text;
    for (const [from, to] of replacements) out = out.split(from).join(to);
    return out
      .replace(LOOPBACK_AUTHORITY, '<host>')
      .replace(ISO_TIME, '<time>')
      .replace(EVENT_ID_IN_TEXT, '(id: <event-id>)');
  };
}

/**
 * A parsed SSE event as the suite records it ({ id, event, data }); its `id` is the server's (or gateway's)
 * event counter, whose value depends on how concurrent streams interleave.
 */
function isSseEvent(value: object): boolean {
  const keys = Object.keys(value);
  return (
    keys.includes('data') &&
    keys.includes('id') &&
    keys.every((k) => ['id', 'event', 'data', 'retry'].includes(k))
  );
}

function normaliseValue(value: unknown, key: string | undefined, str: (text: string) => string): unknown {
  if (key !== undefined && EVENT_ID_KEYS.has(key) && typeof value === 'string') return '<event-id>';
  if (key !== undefined && SESSION_ID_KEYS.has(key) && typeof value === 'string') return '<session-id>';
  if (key === 'headers' && value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const kept: Record<string, unknown> = {};
    for (const [name, inner] of Object.entries(value)) {
      if (KEPT_HEADERS.has(name.toLowerCase()))
        kept[name.toLowerCase()] = normaliseValue(inner, undefined, str);
    }
    return kept;
  }
  if (typeof value === 'string') return str(value);
  if (Array.isArray(value)) return value.map((item) => normaliseValue(item, undefined, str));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    const sseEvent = isSseEvent(value);
    for (const [innerKey, inner] of Object.entries(value)) {
      if (inner === undefined) continue;
      out[innerKey] = sseEvent && innerKey === 'id' ? '<event-id>' : normaliseValue(inner, innerKey, str);
    }
    return out;
  }
  return value;
}

export function normaliseScenario(
  scenario: string,
  raw: RawCheck[],
  context: NormaliseContext,
): ScenarioResult {
  const sessionIds = new Set<string>();
  collectSessionIds(raw, sessionIds);
  const str = makeStringNormaliser(context, sessionIds);
  const counts: Record<CheckStatus, number> = { SUCCESS: 0, FAILURE: 0, WARNING: 0, SKIPPED: 0, INFO: 0 };
  const checks = raw.map((check): NormalisedCheck => {
    counts[check.status] = (counts[check.status] ?? 0) + 1;
    const out: NormalisedCheck = {
      id: check.id,
      name: check.name,
      status: check.status,
      description: str(check.description),
    };
    if (check.errorMessage !== undefined) out.errorMessage = str(check.errorMessage);
    if (check.details !== undefined) {
      const details = normaliseValue(check.details, undefined, str) as Record<string, unknown>;
      for (const key of OWN_ANSWER_DETAILS[check.id] ?? []) {
        if (key in details) details[key] = '<answered by the front server>';
      }
      out.details = details;
    }
    return out;
  });
  const status = counts.FAILURE > 0 || checks.length === 0 ? 'fail' : counts.WARNING > 0 ? 'warn' : 'pass';
  return { scenario, status, passed: status !== 'fail', counts, checks };
}

/** A result standing in for a scenario whose run produced no checks.json (crash, timeout, bad URL). */
export function missingScenarioResult(
  scenario: string,
  reason: string,
  context: NormaliseContext,
): ScenarioResult {
  return normaliseScenario(
    scenario,
    [
      {
        id: 'harness-no-result',
        name: 'HarnessNoResult',
        description: 'The conformance run wrote no result for this scenario',
        status: 'FAILURE',
        errorMessage: reason,
      },
    ],
    context,
  );
}

function stable(value: unknown): string {
  return JSON.stringify(value, (_key, inner: unknown) =>
    inner !== null && typeof inner === 'object' && !Array.isArray(inner)
      ? Object.fromEntries(Object.entries(inner).sort(([a], [b]) => a.localeCompare(b)))
      : inner,
  );
}

/**
 * Scenario-by-scenario differences between two runs (e.g. direct vs through the gateway), as readable
 * lines; empty when the runs agree.
 */
export function diffConformance(
  expected: Map<string, ScenarioResult>,
  actual: Map<string, ScenarioResult>,
): string[] {
  const lines: string[] = [];
  const names = [...new Set([...expected.keys(), ...actual.keys()])].sort();
  for (const name of names) {
    const a = expected.get(name);
    const b = actual.get(name);
    if (!a || !b) {
      lines.push(`${name}: only in ${a ? 'expected' : 'actual'}`);
      continue;
    }
    if (a.status !== b.status) lines.push(`${name}: status ${a.status} → ${b.status}`);
    const length = Math.max(a.checks.length, b.checks.length);
    for (let i = 0; i < length; i++) {
      const ca = a.checks[i];
      const cb = b.checks[i];
      if (stable(ca) === stable(cb)) continue;
      lines.push(`${name} check #${i}: ${ca ? stable(ca) : '(none)'} → ${cb ? stable(cb) : '(none)'}`);
    }
  }
  return lines;
}
