// Which spec era a request speaks, and the modern era's header checks. Legacy (2024-11-05 …
// 2025-11-25) has initialize and sessions; modern (2026-07-28) is stateless and mirrors the
// method and name of every POST in headers that must agree with the body.
import type { IncomingHttpHeaders } from 'node:http';
import { header, Refusal } from './front-door.ts';
import { INVALID_REQUEST, nameParamOf, type ParsedBody } from './jsonrpc.ts';

export const LEGACY_VERSIONS = ['2024-10-07', '2024-11-05', '2025-03-26', '2025-06-18', '2025-11-25'] as const;
export const MODERN_VERSIONS = ['2026-07-28'] as const;
export const SUPPORTED_VERSIONS: readonly string[] = [...MODERN_VERSIONS, ...[...LEGACY_VERSIONS].reverse()];

export const HEADER_MISMATCH = -32020;
export const UNSUPPORTED_VERSION = -32022;
export const META_VERSION = 'io.modelcontextprotocol/protocolVersion';

export function isModern(version: string | undefined): boolean {
  return version !== undefined && (MODERN_VERSIONS as readonly string[]).includes(version);
}

/** The protocol version a request's body declares in _meta (modern era), if any. */
export function metaVersion(parsed: ParsedBody): string | undefined {
  const first = parsed.messages[0];
  const params = first?.message.params as { _meta?: Record<string, unknown> } | undefined;
  const v = params?._meta?.[META_VERSION];
  return typeof v === 'string' ? v : undefined;
}

export function unsupportedVersion(requested: string): Refusal {
  return new Refusal(400, UNSUPPORTED_VERSION, `Unsupported protocol version: ${requested}`, 'protocol-version', {
    data: { supported: SUPPORTED_VERSIONS, requested },
  });
}

function mismatch(message: string): Refusal {
  return new Refusal(400, HEADER_MISMATCH, `Header mismatch: ${message}`, 'header-mismatch');
}

/** Modern POSTs: one message, Mcp-Method/Mcp-Name present and equal to the body, versions agreeing. */
export function checkModernHeaders(headers: IncomingHttpHeaders, parsed: ParsedBody, version: string): void {
  if (parsed.batch) throw new Refusal(400, INVALID_REQUEST, 'Invalid Request: batches are not part of protocol version ' + version, 'batch');
  const m = parsed.messages[0]!;
  if (m.kind === 'response' || m.kind === 'error') {
    throw new Refusal(400, INVALID_REQUEST, 'Invalid Request: protocol version 2026-07-28 has no client responses', 'protocol');
  }
  const hv = header(headers, 'mcp-protocol-version');
  if (hv === undefined) throw mismatch('MCP-Protocol-Version header is required');
  const mv = metaVersion(parsed);
  if (m.kind === 'request' && mv !== undefined && mv !== hv) {
    throw mismatch(`MCP-Protocol-Version ${JSON.stringify(hv)} does not match _meta protocolVersion ${JSON.stringify(mv)}`);
  }
  const method = header(headers, 'mcp-method');
  if (method === undefined) throw mismatch('Mcp-Method header is required');
  if (method !== m.method) throw mismatch(`Mcp-Method ${JSON.stringify(method)} does not match body method ${JSON.stringify(m.method)}`);
  const key = nameParamOf(m.method!);
  const name = header(headers, 'mcp-name');
  if (key) {
    const params = m.message.params as Record<string, unknown> | undefined;
    const bodyName = params?.[key];
    if (typeof bodyName === 'string') {
      if (name === undefined) throw mismatch(`Mcp-Name header is required for ${m.method}`);
      if (name !== bodyName) throw mismatch(`Mcp-Name ${JSON.stringify(name)} does not match params.${key} ${JSON.stringify(bodyName)}`);
    } else if (name !== undefined) {
      throw mismatch(`Mcp-Name is set but the body has no params.${key}`);
    }
  } else if (name !== undefined) {
    throw mismatch(`Mcp-Name is not defined for ${m.method}`);
  }
}
