// Mounts the gateway on hapi: /mcp/{target} for POST, GET and DELETE. hapi does not parse, buffer
// or compress anything here: the body arrives as the raw stream (the gateway enforces its own size
// limit, so an oversized body gets a recorded JSON-RPC refusal), and the answer — JSON or an SSE
// stream — is written straight to Node's response, event by event.
//
// The gateway authenticates, limits and answers every request itself, so hapi's request lifecycle
// adds nothing on this path but its cost per request. By default these requests are therefore
// taken off the server's listener before hapi sees them (fastPath); every other route stays
// hapi's (bench:gateway has not resolved the gain from the machine's noise: docs/performance.md).
// The routes are still registered, so the route table is complete and `fastPath: false` serves
// the same through hapi.
import type { Plugin, Request, ResponseToolkit, Server } from '@hapi/hapi';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import type { Gateway } from './gateway.ts';

export interface GatewayPluginOptions {
  gateway: Gateway;
  /** Route prefix; default /mcp. */
  prefix?: string;
  /** Serve /mcp/{target} straight from the listener, ahead of hapi (default true). */
  fastPath?: boolean;
}

export const gatewayPlugin: Plugin<GatewayPluginOptions> = {
  name: 'auditgate-gateway',
  register(server, opts) {
    const gateway = opts.gateway;
    const path = `${opts.prefix ?? '/mcp'}/{target}`;
    const handler = async (request: Request, h: ResponseToolkit) => {
      const { req, res } = request.raw;
      const body = request.method === 'post' ? (request.payload as Readable) : req;
      await gateway.handle(request.params.target as string, req, res, body);
      // The gateway wrote (and ended or is streaming) the response itself.
      return h.abandon;
    };
    server.route({
      method: 'POST',
      path,
      options: {
        auth: false,
        // The gateway reads and limits the body itself; hapi's own limit only guards the stream.
        payload: {
          parse: false,
          output: 'stream',
          maxBytes: Number.MAX_SAFE_INTEGER,
          timeout: false,
          // The gateway checks Content-Type itself (415 with a recorded refusal); hapi must not reject it first.
          override: 'application/octet-stream',
        },
        timeout: { server: false, socket: false },
        handler,
      },
    });
    server.route({
      method: ['GET', 'DELETE'],
      path,
      options: { auth: false, timeout: { server: false, socket: false }, handler },
    });
    if (opts.fastPath !== false) takeAheadOfHapi(server, opts.prefix ?? '/mcp', gateway);
    server.ext('onPreStop', async () => {
      await gateway.close();
    });
  },
};

const METHODS = new Set(['POST', 'GET', 'DELETE']);

/**
 * The target named by `{prefix}/{target}` (one path segment, percent-decoded as hapi would), or
 * undefined for any other path, which hapi then routes (and answers 404 where nothing matches).
 */
export function targetOf(url: string | undefined, prefix: string): string | undefined {
  if (!url || !url.startsWith(prefix) || url.charCodeAt(prefix.length) !== 47 /* / */) return undefined;
  const end = url.indexOf('?');
  const segment = url.slice(prefix.length + 1, end === -1 ? undefined : end);
  if (segment === '' || segment.includes('/')) return undefined;
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}

function takeAheadOfHapi(server: Server, prefix: string, gateway: Gateway): void {
  const listener = server.listener;
  const hapi = listener.listeners('request') as Array<(req: IncomingMessage, res: ServerResponse) => void>;
  listener.removeAllListeners('request');
  listener.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const target = METHODS.has(req.method ?? '') ? targetOf(req.url, prefix) : undefined;
    if (target === undefined) {
      for (const l of hapi) l.call(listener, req, res);
      return;
    }
    gateway.handle(target, req, res).catch((err: unknown) => {
      // gateway.handle answers its own refusals; this is a bug, answered as hapi would answer it.
      gateway.logger.error({ err: (err as Error)?.message, target }, 'gateway request failed');
      if (!res.headersSent) {
        res.writeHead(500, { 'content-type': 'application/json; charset=utf-8' });
        res.end(
          JSON.stringify({
            statusCode: 500,
            error: 'Internal Server Error',
            message: 'An internal server error occurred',
          }),
        );
      } else res.destroy();
    });
  });
}
