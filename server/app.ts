// The hapi server: health routes, error mapping at the edge, and the plugins the service wires in.
import Hapi from '@hapi/hapi';
import Boom from '@hapi/boom';
import type { Logger } from './logger.ts';
import type { Readiness } from './readiness.ts';
import { LogRangeError, LogUnavailableError } from './audit/log.ts';

export interface AppOptions {
  host: string;
  port: number;
  logger: Logger;
  readiness: Readiness;
}

/** Typed domain errors → HTTP. Anything else is a bug and stays a 500 (and is logged). */
// hapi boomifies thrown errors in place (as 500s), so check the class before isBoom.
export function toBoom(err: unknown): Boom.Boom {
  if (err instanceof LogRangeError) return Boom.badRequest(err.message);
  if (err instanceof LogUnavailableError) return Boom.serverUnavailable(err.message);
  if (Boom.isBoom(err)) return err;
  return Boom.badImplementation();
}

export async function createApp(opts: AppOptions): Promise<Hapi.Server> {
  const server = Hapi.server({
    host: opts.host,
    port: opts.port,
    // Our own JSON logs; hapi's default debug output would duplicate errors.
    debug: false,
    routes: { response: { emptyStatusCode: 204 } },
  });

  server.ext('onPreResponse', (request, h) => {
    const res = request.response;
    if (res instanceof Error) {
      const boom = toBoom(res);
      if (boom.output.statusCode >= 500) {
        opts.logger.error({ err: res, path: request.path, method: request.method }, 'request failed');
      }
      const out = h.response(boom.output.payload).code(boom.output.statusCode);
      // Keep the error's headers: WWW-Authenticate on 401, Retry-After on 429/503, Allow on 405.
      for (const [name, value] of Object.entries(boom.output.headers)) out.header(name, String(value));
      return out.takeover();
    }
    return h.continue;
  });

  server.route({
    method: 'GET',
    path: '/healthz',
    options: { auth: false },
    handler: () => ({ status: 'ok' }),
  });

  server.route({
    method: 'GET',
    path: '/readyz',
    options: { auth: false },
    handler: async (_req, h) => {
      const r = await opts.readiness.run();
      return h.response({ status: r.ok ? 'ready' : 'not ready', checks: r.checks }).code(r.ok ? 200 : 503);
    },
  });

  return server;
}
