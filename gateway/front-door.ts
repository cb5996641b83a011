// Checks on the raw HTTP request before anything is forwarded: Origin/Host (DNS rebinding),
// Accept, Content-Type and the body size. Each failure is a Refusal the gateway records and
// answers with a JSON-RPC error body, so clients see a clear reason.
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import type { Classified } from './jsonrpc.ts';

/** Transport-level failures use the implementation-defined server error range, like the SDK does. */
export const TRANSPORT_ERROR = -32000;

export class Refusal extends Error {
  override name = 'Refusal';
  constructor(
    readonly status: number,
    readonly code: number,
    message: string,
    /** Which check refused, recorded as outcome.rule. */
    readonly rule: string,
    readonly extra: {
      headers?: Record<string, string>;
      data?: unknown;
      messages?: Classified[];
      detail?: Record<string, unknown>;
    } = {},
  ) {
    super(message);
  }
}

export function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
}

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '::1', '[::1]']);

export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.toLowerCase();
  return LOOPBACK_HOSTS.has(h) || /^127\.\d+\.\d+\.\d+$/.test(h) || h.endsWith('.localhost');
}

function hostnameOf(hostHeader: string): string {
  // "[::1]:8080" → "[::1]", "example.com:443" → "example.com"
  if (hostHeader.startsWith('[')) return hostHeader.slice(0, hostHeader.indexOf(']') + 1);
  return hostHeader.split(':')[0] ?? '';
}

export interface OriginPolicy {
  /** The gateway's own origin (from its public URL). */
  self: string;
  allowed: Set<string>;
  /** The gateway is reached on loopback: Host must be loopback too, loopback origins are fine. */
  loopback: boolean;
}

export function originPolicy(publicUrl: string, allowedOrigins: string[] = []): OriginPolicy {
  const u = new URL(publicUrl);
  return {
    self: u.origin,
    allowed: new Set(allowedOrigins.map((o) => o.replace(/\/+$/, '').toLowerCase())),
    loopback: isLoopbackHost(u.hostname),
  };
}

/** Browsers send Origin; a foreign one is a DNS-rebinding or cross-site attempt → 403. */
export function checkOrigin(headers: IncomingHttpHeaders, policy: OriginPolicy): void {
  const host = header(headers, 'host');
  if (policy.loopback && host !== undefined && !isLoopbackHost(hostnameOf(host))) {
    throw new Refusal(403, TRANSPORT_ERROR, `Forbidden: Host ${JSON.stringify(host)} is not allowed`, 'host');
  }
  const origin = header(headers, 'origin');
  if (origin === undefined) return;
  const o = origin.toLowerCase();
  if (o === policy.self.toLowerCase() || policy.allowed.has(o)) return;
  if (policy.loopback) {
    try {
      if (isLoopbackHost(new URL(origin).hostname)) return;
    } catch {
      // not a URL (e.g. "null"): refused below
    }
  }
  throw new Refusal(403, TRANSPORT_ERROR, `Forbidden: Origin ${JSON.stringify(origin)} is not allowed`, 'origin');
}

function accepts(headers: IncomingHttpHeaders, type: string): boolean {
  const accept = header(headers, 'accept') ?? '';
  return accept
    .split(',')
    .map((p) => (p.split(';')[0] ?? '').trim().toLowerCase())
    .includes(type);
}

export function checkPostAccept(headers: IncomingHttpHeaders): void {
  if (!accepts(headers, 'application/json') || !accepts(headers, 'text/event-stream')) {
    throw new Refusal(
      406,
      TRANSPORT_ERROR,
      'Not Acceptable: Client must accept both application/json and text/event-stream',
      'accept',
    );
  }
}

export function checkGetAccept(headers: IncomingHttpHeaders): void {
  if (!accepts(headers, 'text/event-stream')) {
    throw new Refusal(406, TRANSPORT_ERROR, 'Not Acceptable: Client must accept text/event-stream', 'accept');
  }
}

export function checkContentType(headers: IncomingHttpHeaders): void {
  const ct = header(headers, 'content-type');
  const mime = (ct?.split(';')[0] ?? '').trim().toLowerCase();
  if (mime !== 'application/json') {
    throw new Refusal(
      415,
      TRANSPORT_ERROR,
      `Unsupported Media Type: Content-Type must be application/json${ct ? `, got ${JSON.stringify(ct.slice(0, 100))}` : ''}`,
      'content-type',
    );
  }
  const charset = /charset\s*=\s*"?([^";\s]+)/i.exec(ct ?? '')?.[1];
  if (charset && charset.toLowerCase() !== 'utf-8' && charset.toLowerCase() !== 'utf8') {
    throw new Refusal(415, TRANSPORT_ERROR, `Unsupported Media Type: charset must be utf-8, got ${charset}`, 'content-type');
  }
}

function tooLarge(limit: number, detail: Record<string, unknown>): Refusal {
  return new Refusal(413, TRANSPORT_ERROR, `Payload Too Large: the body exceeds ${limit} bytes`, 'size', {
    headers: { connection: 'close' },
    detail: { limit, ...detail },
  });
}

/** Reads a request body up to `limit` bytes; refuses (413) as soon as it is known to be larger. */
export async function readBody(body: Readable, headers: IncomingHttpHeaders, limit: number): Promise<Buffer> {
  const declared = header(headers, 'content-length');
  if (declared !== undefined && /^\d+$/.test(declared) && Number(declared) > limit) {
    throw tooLarge(limit, { content_length: Number(declared) });
  }
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = () => {
      body.off('data', onData);
      body.off('end', onEnd);
      body.off('error', onError);
      body.off('aborted', onAborted);
    };
    const onData = (chunk: Buffer | string) => {
      const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      size += buf.length;
      if (size > limit) {
        cleanup();
        // Keep discarding instead of destroying the socket, so the 413 answer still reaches the client.
        body.on('error', () => {});
        body.resume();
        reject(tooLarge(limit, { received_at_least: size }));
        return;
      }
      chunks.push(buf);
    };
    const onEnd = () => {
      cleanup();
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(new ClientGoneError(err.message));
    };
    const onAborted = () => {
      cleanup();
      reject(new ClientGoneError('client aborted the request'));
    };
    body.on('data', onData);
    body.on('end', onEnd);
    body.on('error', onError);
    body.on('aborted', onAborted);
  });
}

/** The client went away while we were reading its request: nothing to answer. */
export class ClientGoneError extends Error {
  override name = 'ClientGoneError';
}
