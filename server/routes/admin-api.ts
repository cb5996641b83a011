// Administration over HTTP: API keys (admin only) and the policy in force. Every change is a
// config.change log entry, and a refused attempt (wrong role, no CSRF token) is recorded too.
import type Hapi from '@hapi/hapi';
import Boom from '@hapi/boom';
import type { AuditSink } from '../../gateway/types.ts';
import {
  ApiKeyInputError,
  ApiKeyNotFoundError,
  keyStatus,
  parseExpiry,
  type ApiKeyRecord,
  type ApiKeyStore,
} from '../auth/api-keys.ts';
import { configChangeRecord, keyChange } from '../auth/config-change.ts';
import { STRATEGY, type Credentials } from '../auth/hapi-auth.ts';
import type { PolicyEngine } from '../policy/policy.ts';

export interface AdminApiOptions {
  apiKeys: ApiKeyStore;
  policy: () => PolicyEngine;
  sink: AuditSink;
  instance: string;
}

const ADMIN = { strategy: STRATEGY, access: { scope: ['admin'] } };
const READERS = { strategy: STRATEGY, access: { scope: ['admin', 'compliance', 'auditor'] } };

function view(k: ApiKeyRecord) {
  return { ...k, status: keyStatus(k) };
}

export const adminApiPlugin: Hapi.Plugin<AdminApiOptions> = {
  name: 'auditgate-admin-api',
  register(server, opts) {
    const record = (c: Credentials, change: Parameters<typeof configChangeRecord>[1]) =>
      opts.sink.append(configChangeRecord(c.actor, change, opts.instance));

    server.route({
      method: 'GET',
      path: '/api/keys',
      options: { auth: ADMIN },
      handler: async () => (await opts.apiKeys.list()).map(view),
    });

    server.route({
      method: 'POST',
      path: '/api/keys',
      options: {
        auth: ADMIN,
        plugins: { auditgate: { event: 'config.change', what: 'api_keys' } },
        payload: { allow: ['application/json', 'application/x-www-form-urlencoded'], maxBytes: 16 * 1024 },
      },
      handler: async (request, h) => {
        const c = request.auth.credentials as unknown as Credentials;
        const body = (request.payload ?? {}) as Record<string, unknown>;
        const roles = typeof body.roles === 'string' ? [body.roles] : body.roles;
        if (typeof body.subject !== 'string') throw Boom.badRequest('subject is required');
        if (roles !== undefined && !(Array.isArray(roles) && roles.every((r) => typeof r === 'string'))) {
          throw Boom.badRequest('roles must be a list of role names');
        }
        let created: { key: string; record: ApiKeyRecord };
        try {
          created = await opts.apiKeys.create({
            subject: body.subject,
            roles: roles as string[] | undefined,
            expiresAt: typeof body.expires === 'string' ? parseExpiry(body.expires) : undefined,
            description: typeof body.description === 'string' ? body.description : undefined,
            createdBy: c.actor.subject,
          });
        } catch (err) {
          if (err instanceof ApiKeyInputError) throw Boom.badRequest(err.message);
          throw err;
        }
        try {
          await record(c, keyChange('create', undefined, created.record));
        } catch (err) {
          await opts.apiKeys.discard(created.record.id);
          throw Boom.serverUnavailable(
            `audit store unavailable: no key was created (${(err as Error).message})`,
          );
        }
        // The only time the key exists outside the client: never cache this response.
        return h
          .response({ key: created.key, ...view(created.record) })
          .code(201)
          .header('cache-control', 'no-store');
      },
    });

    server.route({
      method: 'POST',
      path: '/api/keys/{id}/revoke',
      options: { auth: ADMIN, plugins: { auditgate: { event: 'config.change', what: 'api_keys' } } },
      handler: async (request) => {
        const c = request.auth.credentials as unknown as Credentials;
        const id = request.params.id as string;
        try {
          const r = await opts.apiKeys.revoke(id, c.actor.subject);
          if (r.changed) await record(c, keyChange('revoke', r.before, r.after));
          return view(r.after);
        } catch (err) {
          if (err instanceof ApiKeyNotFoundError) throw Boom.notFound(err.message);
          throw err;
        }
      },
    });

    server.route({
      method: 'GET',
      path: '/api/policy',
      options: { auth: READERS },
      handler: () => {
        const p = opts.policy();
        return { policy_hash: p.hash, rules: p.rules };
      },
    });
  },
};
