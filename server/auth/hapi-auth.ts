// Identity for the service's own HTTP API and UI (not /mcp, which the gateway authenticates):
// one hapi auth strategy, 'auditgate', that accepts a bearer JWT (audience = the gateway's public
// URL), an API key, or a signed-in person's session cookie (with CSRF protection on every
// state-changing request). Route roles are hapi scopes. Routes that serve audit data or change
// configuration say so in `plugins.auditgate.event`: reads are recorded before the data is served,
// refusals are recorded too.
import { randomUUID, timingSafeEqual } from 'node:crypto';
import type Hapi from '@hapi/hapi';
import Boom from '@hapi/boom';
import Cookie from '@hapi/cookie';
import {
  AUDIT_RECORD_VERSION,
  auditTimestamp,
  type AuditActor,
  type AuditEventType,
  type AuditRecord,
} from '../../gateway/audit-record.ts';
import type { AuditSink } from '../../gateway/types.ts';
import { VERSION } from '../version.ts';
import type { ApiKeyStore } from './api-keys.ts';
import { extractCredential, resourceMetadataUrl } from './authenticator.ts';
import type { OidcVerifier } from './oidc.ts';

export const STRATEGY = 'auditgate';
export const SESSION_STRATEGY = 'auditgate-session';
export const SESSION_COOKIE = 'auditgate_session';
export const CSRF_HEADER = 'x-csrf-token';

/** What a signed-in person's (encrypted, signed) session cookie holds. */
export interface Session {
  v: 1;
  sub: string;
  iss: string;
  name?: string;
  email?: string;
  roles: string[];
  groups?: string[];
  /** Per-session anti-CSRF token: sent back in X-CSRF-Token (or a `csrf` form field). */
  csrf: string;
  /** Seconds since the epoch. */
  iat: number;
  exp: number;
}

export interface Credentials {
  actor: AuditActor;
  /** hapi checks route `access.scope` against these: our roles. */
  scope: string[];
  via: 'bearer' | 'api_key' | 'session';
  session?: Session;
}

/** Per-route: `options.plugins.auditgate`. */
export interface RouteAudit {
  /** 'audit.read' for routes serving audit data (recorded before serving); 'config.change' for changes. */
  event: Extract<AuditEventType, 'audit.read' | 'config.change'>;
  /** What is being read or changed, for the record (default: the route path). */
  what?: string;
}

export interface IdentityPluginOptions {
  apiKeys: ApiKeyStore;
  /** Bearer JWT verification; tokens must carry the gateway's public URL as audience. */
  oidc?: OidcVerifier;
  publicUrl: string;
  /** ≥ 32 characters: encrypts the session cookie. */
  sessionSecret: string;
  sessionTtlMs: number;
  sink: AuditSink;
  instance: string;
}

/** Per-request state the scheme leaves for its payload step. */
interface RequestAuditState {
  csrfChecked?: boolean;
}

declare module '@hapi/hapi' {
  interface PluginsStates {
    auditgate?: RequestAuditState;
  }
  interface PluginSpecificConfiguration {
    auditgate?: RouteAudit;
  }
}

const UNSAFE = new Set(['post', 'put', 'patch', 'delete']);

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export function sessionActor(s: Session): AuditActor {
  const actor: AuditActor = { subject: s.sub, auth_method: 'session', issuer: s.iss, roles: [...s.roles] };
  if (s.groups?.length) actor.groups = [...s.groups];
  return actor;
}

function routeAudit(request: Hapi.Request): RouteAudit | undefined {
  return request.route.settings.plugins?.auditgate;
}

/** Query parameters whose names suggest a credential: their values never reach the log. */
const SECRET_PARAM = /token|secret|passw|key|auth|sig|cookie|credential|session/i;

/**
 * The query as an audit.read record keeps it. No route takes a credential in the query, but a
 * client may still append one (?access_token=…); the log is append-only, so it must not land there.
 */
export function recordedQuery(query: Record<string, unknown>): Record<string, unknown> {
  // fromEntries defines properties, so even a parameter named __proto__ stays a plain member.
  return Object.fromEntries(Object.entries(query).map(([name, value]) => [name, SECRET_PARAM.test(name) ? '[redacted]' : value]));
}

function clientOf(request: Hapi.Request): AuditRecord['client'] {
  const c: NonNullable<AuditRecord['client']> = {};
  if (request.info.remoteAddress) c.address = request.info.remoteAddress;
  const ua = request.headers['user-agent'] as string | undefined;
  if (ua) c.user_agent = ua.slice(0, 512);
  return c;
}

export const identityPlugin: Hapi.Plugin<IdentityPluginOptions> = {
  name: 'auditgate-identity',
  async register(server, opts) {
    const publicOrigin = new URL(opts.publicUrl).origin;
    const secure = opts.publicUrl.startsWith('https:');
    const record = (r: Omit<AuditRecord, 'v' | 'id' | 'ts' | 'gateway'>) =>
      opts.sink.append({
        v: AUDIT_RECORD_VERSION,
        id: randomUUID(),
        ts: auditTimestamp(),
        gateway: { instance: opts.instance, version: VERSION },
        ...r,
      });

    await server.register(Cookie);
    server.auth.strategy(SESSION_STRATEGY, 'cookie', {
      cookie: {
        name: SESSION_COOKIE,
        password: opts.sessionSecret,
        isSecure: secure,
        isHttpOnly: true,
        // Lax: the cookie still rides the top-level redirect back from the IdP; cross-site POSTs
        // do not carry it (and the CSRF token stops them where SameSite is not enforced).
        isSameSite: 'Lax',
        path: '/',
        ttl: opts.sessionTtlMs,
        clearInvalid: true,
      },
      validate: async (_request: Hapi.Request, session: Session) => {
        const ok = session?.v === 1 && typeof session.exp === 'number' && session.exp > Date.now() / 1000;
        return { isValid: ok };
      },
    });

    /**
     * Records a refusal on an audited route (no/bad credential, missing role, CSRF) and returns
     * the error. The refusal stands even if the record cannot be written: nothing is served.
     */
    const refuse = async (
      request: Hapi.Request,
      err: Boom.Boom,
      who: { actor?: AuditActor; attempted?: Partial<AuditActor> } = {},
    ): Promise<Boom.Boom> => {
      const audit = routeAudit(request);
      if (!audit) return err;
      const detail: Record<string, unknown> = {
        what: audit.what ?? request.route.path,
        method: request.method.toUpperCase(),
        path: request.path,
        status: err.output.statusCode,
      };
      if (!who.actor && who.attempted) detail.attempted = who.attempted;
      await record({
        event: audit.event,
        ...(who.actor ? { actor: who.actor } : {}),
        client: clientOf(request),
        outcome: { decision: 'deny', reason: err.message },
        detail,
      }).catch(() => undefined);
      return err;
    };

    /** hapi checks route scopes after authentication, where a refusal could not be recorded: check here first. */
    const missingRole = (request: Hapi.Request, c: Credentials): string | undefined => {
      for (const access of request.route.settings.auth?.access ?? []) {
        const scope = access.scope as { selection?: string[]; required?: string[] } | false;
        if (!scope) continue;
        const has = (r: string) => c.scope.includes(r);
        if (scope.selection && !scope.selection.some(has)) {
          return `${c.actor.subject} lacks a role required here (one of: ${scope.selection.join(', ')}); has: ${c.scope.join(', ') || 'none'}`;
        }
        if (scope.required && !scope.required.every(has)) {
          return `${c.actor.subject} lacks a role required here (all of: ${scope.required.join(', ')}); has: ${c.scope.join(', ') || 'none'}`;
        }
      }
      return undefined;
    };

    const accept = async (request: Hapi.Request, h: Hapi.ResponseToolkit, c: Credentials) => {
      const missing = missingRole(request, c);
      if (missing)
        return h.unauthenticated(await refuse(request, Boom.forbidden(missing), { actor: c.actor }));
      return h.authenticated({ credentials: c as any });
    };

    server.auth.scheme(STRATEGY, () => ({
      options: { payload: true },
      async authenticate(request, h) {
        const cred = extractCredential(request.headers as Record<string, string | string[] | undefined>);
        const apiResource = opts.publicUrl;
        // Boom.unauthorized builds WWW-Authenticate from the scheme and these attributes.
        const challenge = (error?: 'invalid_request' | 'invalid_token', message?: string) => {
          const attrs: Record<string, string> = { resource_metadata: resourceMetadataUrl(apiResource) };
          if (error) attrs.error = error;
          if (error && message) attrs.error_description = message;
          return Boom.unauthorized(message ?? 'authentication required', 'Bearer', attrs);
        };
        if (cred.kind === 'bad')
          return h.unauthenticated(await refuse(request, challenge('invalid_request', cred.message)));
        if (cred.kind === 'x-api-key' || (cred.kind === 'bearer' && cred.value.startsWith('agk_'))) {
          const r = await opts.apiKeys.verify(cred.value);
          if (!r.ok) {
            const msg = {
              malformed: 'malformed API key',
              unknown: 'unknown API key',
              revoked: `API key ${r.keyId} has been revoked`,
              expired: `API key ${r.keyId} has expired`,
            }[r.reason];
            const attempted: Partial<AuditActor> = {
              auth_method: 'api_key',
              ...(r.keyId ? { key_id: r.keyId } : {}),
              ...(r.subject ? { subject: r.subject } : {}),
            };
            return h.unauthenticated(await refuse(request, challenge('invalid_token', msg), { attempted }));
          }
          const actor: AuditActor = {
            subject: r.key.subject,
            auth_method: 'api_key',
            key_id: r.key.id,
            roles: [...r.key.roles],
          };
          return accept(request, h, { actor, scope: [...r.key.roles], via: 'api_key' });
        }
        if (cred.kind === 'bearer') {
          if (!opts.oidc) {
            return h.unauthenticated(
              await refuse(
                request,
                challenge('invalid_token', 'bearer tokens are not accepted: no issuer is configured'),
              ),
            );
          }
          const r = await opts.oidc.check(cred.value, apiResource);
          if (!r.ok) {
            const who = r.actor ? { actor: r.actor } : r.attempted ? { attempted: r.attempted } : {};
            if (r.status === 503)
              return h.unauthenticated(await refuse(request, Boom.serverUnavailable(r.message), who));
            if (r.status === 403)
              return h.unauthenticated(await refuse(request, Boom.forbidden(r.message), who));
            return h.unauthenticated(await refuse(request, challenge('invalid_token', r.message), who));
          }
          return accept(request, h, { actor: r.actor, scope: r.actor.roles ?? [], via: 'bearer' });
        }
        // No header credential: a signed-in person's cookie, if any.
        let session: Session;
        try {
          const res = await server.auth.test(SESSION_STRATEGY, request);
          session = res.credentials as unknown as Session;
        } catch {
          return h.unauthenticated(await refuse(request, challenge()));
        }
        const actor = sessionActor(session);
        if (UNSAFE.has(request.method.toLowerCase())) {
          // A browser sends Origin on cross-origin POSTs: a foreign one is refused outright.
          const origin = request.headers.origin as string | undefined;
          if (origin && origin !== publicOrigin) {
            return h.unauthenticated(
              await refuse(request, Boom.forbidden(`cross-origin request from ${origin} refused`), { actor }),
            );
          }
          const token = request.headers[CSRF_HEADER];
          if (typeof token === 'string') {
            if (!safeEqual(token, session.csrf)) {
              return h.unauthenticated(
                await refuse(request, Boom.forbidden('CSRF token does not match this session'), { actor }),
              );
            }
            request.plugins.auditgate = { csrfChecked: true };
          }
        }
        return accept(request, h, { actor, scope: [...session.roles], via: 'session', session });
      },
      // Form posts carry the CSRF token in the body; it can only be checked once the payload is parsed.
      async payload(request, h) {
        const c = request.auth.credentials as unknown as Credentials;
        if (c.via !== 'session' || !UNSAFE.has(request.method.toLowerCase())) return h.continue;
        if (request.plugins.auditgate?.csrfChecked) return h.continue;
        const field = (request.payload as Record<string, unknown> | null)?.csrf;
        if (typeof field === 'string' && c.session && safeEqual(field, c.session.csrf)) return h.continue;
        throw await refuse(
          request,
          Boom.forbidden(
            'missing CSRF token: send X-CSRF-Token (from GET /auth/me) with state-changing requests',
          ),
          { actor: c.actor },
        );
      },
    }));
    server.auth.strategy(STRATEGY, STRATEGY);

    // Reads of audit data are recorded before a byte is served; if the record cannot be made
    // durable the read is refused (503), exactly like MCP traffic.
    server.ext('onPreHandler', async (request, h) => {
      const audit = routeAudit(request);
      if (!audit || audit.event !== 'audit.read' || !request.auth.isAuthenticated) return h.continue;
      const c = request.auth.credentials as unknown as Credentials;
      await record({
        event: 'audit.read',
        actor: c.actor,
        client: clientOf(request),
        outcome: { decision: 'allow' },
        detail: {
          what: audit.what ?? request.route.path,
          method: request.method.toUpperCase(),
          path: request.path,
          query: recordedQuery(request.query),
        },
      }).catch((err) => {
        throw Boom.serverUnavailable(
          `audit store unavailable: the read was not served (${(err as Error).message})`,
        );
      });
      return h.continue;
    });
  },
};
