// Mounts the gateway on hapi: /mcp/{target} for POST, GET and DELETE. hapi does not parse, buffer
// or compress anything here: the body arrives as the raw stream (the gateway enforces its own size
// limit, so an oversized body gets a recorded JSON-RPC refusal), and the answer — JSON or an SSE
// stream — is written straight to Node's response, event by event.
import type { Plugin, Request, ResponseToolkit } from '@hapi/hapi';
import type { Readable } from 'node:stream';
import type { Gateway } from './gateway.ts';

export interface GatewayPluginOptions {
  gateway: Gateway;
  /** Route prefix; default /mcp. */
  prefix?: string;
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
    server.ext('onPreStop', async () => {
      await gateway.close();
    });
  },
};
