// The Streamable HTTP upstream of one target: a keep-alive connection pool, streaming bodies, and
// a whitelist of the client headers that may travel upstream. The client's Authorization, Cookie
// and API key never do; the upstream gets its own credential from the target's configuration.
import type { IncomingHttpHeaders } from 'node:http';
import { Pool, errors as undiciErrors, type Dispatcher } from 'undici';
import type { HttpTargetSpec } from './options.ts';
import { header } from './front-door.ts';

/** Client headers that carry protocol meaning and are passed on as they came. */
const FORWARDED = ['accept', 'content-type', 'mcp-protocol-version', 'last-event-id', 'user-agent', 'mcp-method', 'mcp-name'];

export class UpstreamError extends Error {
  override name = 'UpstreamError';
  constructor(
    message: string,
    /** 502: could not talk to the upstream; 504: it did not answer in time. */
    readonly status: 502 | 504,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface UpstreamResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Dispatcher.ResponseData['body'];
}

export class HttpUpstream {
  private readonly pool: Pool;
  private readonly path: string;

  constructor(readonly spec: HttpTargetSpec) {
    const u = new URL(spec.url);
    this.path = `${u.pathname}${u.search}`;
    this.pool = new Pool(u.origin, {
      connections: 256,
      pipelining: 1,
      headersTimeout: spec.timeoutMs,
      // GET streams may be quiet for a long time; POST streams get a per-request idle limit.
      bodyTimeout: 0,
      keepAliveTimeout: 10_000,
      connectTimeout: Math.min(spec.timeoutMs, 10_000),
    });
  }

  /** Headers for the upstream: whitelisted protocol headers, the mapped session, the target's credential. */
  upstreamHeaders(client: IncomingHttpHeaders, upstreamSession?: string): Record<string, string> {
    const out: Record<string, string> = {};
    for (const name of FORWARDED) {
      const v = header(client, name);
      if (v !== undefined) out[name] = v;
    }
    for (const [name, value] of Object.entries(client)) {
      // Modern-era parameter headers (Mcp-Param-*) describe the body and are safe to pass on.
      if (name.startsWith('mcp-param-') && value !== undefined) out[name] = Array.isArray(value) ? value.join(', ') : value;
    }
    if (upstreamSession) out['mcp-session-id'] = upstreamSession;
    for (const [name, value] of Object.entries(this.spec.headers)) out[name.toLowerCase()] = value;
    return out;
  }

  async request(opts: {
    method: 'POST' | 'GET' | 'DELETE';
    headers: Record<string, string>;
    body?: Buffer;
    signal?: AbortSignal;
    /** Idle limit between body chunks; 0 = none (GET streams). */
    bodyTimeout?: number;
  }): Promise<UpstreamResponse> {
    try {
      const r = await this.pool.request({
        path: this.path,
        method: opts.method,
        headers: opts.headers,
        body: opts.body,
        signal: opts.signal,
        bodyTimeout: opts.bodyTimeout ?? 0,
      });
      return { status: r.statusCode, headers: r.headers as UpstreamResponse['headers'], body: r.body };
    } catch (err) {
      throw toUpstreamError(err, this.spec);
    }
  }

  close(): Promise<void> {
    return this.pool.destroy();
  }
}

export function toUpstreamError(err: unknown, spec: HttpTargetSpec): Error {
  if (err instanceof UpstreamError) return err;
  const e = err as { name?: string; code?: string; message?: string; cause?: { code?: string } };
  if (e?.name === 'AbortError' || e?.code === 'UND_ERR_ABORTED') return err as Error;
  if (err instanceof undiciErrors.HeadersTimeoutError || err instanceof undiciErrors.BodyTimeoutError) {
    return new UpstreamError(`upstream ${spec.name} did not answer within ${spec.timeoutMs} ms`, 504, { cause: err });
  }
  if (err instanceof undiciErrors.ConnectTimeoutError) {
    return new UpstreamError(`upstream ${spec.name}: connection timed out`, 504, { cause: err });
  }
  const code = e?.code ?? e?.cause?.code ?? '';
  const what =
    code === 'ECONNREFUSED'
      ? 'connection refused'
      : code === 'ECONNRESET' || code === 'UND_ERR_SOCKET'
        ? 'connection reset'
        : code === 'ENOTFOUND'
          ? 'host not found'
          : (e?.message ?? 'request failed');
  return new UpstreamError(`upstream ${spec.name} unavailable: ${what}`, 502, { cause: err });
}
