// Sign-in and out, "who am I", and RFC 9728 protected-resource metadata for each MCP target.
import type Hapi from '@hapi/hapi';
import Boom from '@hapi/boom';
import { STRATEGY, type Credentials, type Session } from '../auth/hapi-auth.ts';
import { LOGIN_STRATEGY, safeNext } from '../auth/sign-in.ts';

export interface AuthRoutesOptions {
  publicUrl: string;
  signIn: boolean;
  /** Issuers that may mint tokens for our resources (RFC 9728 authorization_servers). */
  authorizationServers: string[];
  scopesSupported: string[];
  /** Whether /mcp/{target} exists (metadata for unknown targets is a 404, not an invitation). */
  targetExists(name: string): boolean;
}

function metadata(opts: AuthRoutesOptions, resource: string, name: string) {
  return {
    resource,
    authorization_servers: opts.authorizationServers,
    bearer_methods_supported: ['header'],
    ...(opts.scopesSupported.length ? { scopes_supported: opts.scopesSupported } : {}),
    resource_name: name,
  };
}

export const authRoutesPlugin: Hapi.Plugin<AuthRoutesOptions> = {
  name: 'auditgate-auth-routes',
  register(server, opts) {
    const base = opts.publicUrl.replace(/\/+$/, '');

    server.route({
      method: 'GET',
      path: '/.well-known/oauth-protected-resource/mcp/{target}',
      options: { auth: false },
      handler: (request, h) => {
        const target = request.params.target as string;
        if (!opts.targetExists(target)) throw Boom.notFound(`no target named ${JSON.stringify(target)}`);
        return h
          .response(
            metadata(opts, `${base}/mcp/${encodeURIComponent(target)}`, `auditgate MCP target ${target}`),
          )
          .header('cache-control', 'max-age=300');
      },
    });

    server.route({
      method: 'GET',
      path: '/.well-known/oauth-protected-resource',
      options: { auth: false },
      handler: (_request, h) =>
        h.response(metadata(opts, base, 'auditgate API')).header('cache-control', 'max-age=300'),
    });

    if (opts.signIn) {
      server.route({
        method: 'GET',
        path: '/auth/login',
        options: { auth: { strategy: LOGIN_STRATEGY, mode: 'try' } },
        handler: (request, h) => {
          if (!request.auth.isAuthenticated) {
            // bell failures (user cancelled at the IdP, bad state) end here: say so, do not loop.
            throw Boom.unauthorized(`sign-in failed: ${request.auth.error?.message ?? 'unknown error'}`);
          }
          const creds = request.auth.credentials as unknown as {
            profile: Session;
            query?: Record<string, unknown>;
          };
          (request as any).cookieAuth.set(creds.profile);
          return h.redirect(safeNext(creds.query?.next));
        },
      });
    }

    server.route({
      method: 'POST',
      path: '/auth/logout',
      options: { auth: { strategy: STRATEGY } },
      handler: (request, h) => {
        const c = request.auth.credentials as unknown as Credentials;
        if (c.via !== 'session') throw Boom.badRequest('not signed in with a session');
        (request as any).cookieAuth.clear();
        return h.response().code(204);
      },
    });

    server.route({
      method: 'GET',
      path: '/auth/me',
      options: { auth: { strategy: STRATEGY } },
      handler: (request) => {
        const c = request.auth.credentials as unknown as Credentials;
        return {
          subject: c.actor.subject,
          auth_method: c.actor.auth_method,
          ...(c.actor.issuer ? { issuer: c.actor.issuer } : {}),
          ...(c.actor.key_id ? { key_id: c.actor.key_id } : {}),
          roles: c.actor.roles ?? [],
          ...(c.actor.groups ? { groups: c.actor.groups } : {}),
          ...(c.session
            ? {
                name: c.session.name,
                email: c.session.email,
                expires_at: new Date(c.session.exp * 1000).toISOString(),
                // The UI sends this back in X-CSRF-Token on every state-changing request.
                csrf_token: c.session.csrf,
              }
            : {}),
        };
      },
    });
  },
};
