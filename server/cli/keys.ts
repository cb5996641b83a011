// `auditgate keys create|list|revoke`: API keys for workloads, on the same database the service
// uses. The key is printed once at creation; afterwards only its id exists anywhere.
import { loadConfig } from '../config.ts';
import { openDatabase } from '../service.ts';
import { migrate, type Db } from '../db.ts';
import { UsageError } from '../errors.ts';
import {
  ApiKeyInputError,
  ApiKeyNotFoundError,
  ApiKeyStore,
  keyStatus,
  parseApiKey,
  parseExpiry,
  type ApiKeyRecord,
} from '../auth/api-keys.ts';
import { configChangeRecord, keyChange, localActor, type ConfigChange } from '../auth/config-change.ts';
import type { AuditActor } from '../../gateway/audit-record.ts';
import { openCliLog } from './open-log.ts';
import { parseFlags, type CliIo, type Command } from './command.ts';

interface KeyAdmin {
  store: ApiKeyStore;
  db: Db;
  /** Appends a config.change entry; resolves once it is durable. */
  record(change: ConfigChange): Promise<number>;
}

async function withStore<T>(io: CliIo, fn: (admin: KeyAdmin) => Promise<T>, actor?: AuditActor): Promise<T> {
  const config = loadConfig(io.env, io.cwd);
  const db = openDatabase(config);
  let log: Awaited<ReturnType<typeof openCliLog>> | undefined;
  try {
    await migrate(db);
    return await fn({
      store: new ApiKeyStore(db, { cacheTtlMs: 0 }),
      db,
      async record(change) {
        log ??= await openCliLog(config, db);
        return log.append(configChangeRecord(actor ?? localActor(), change, `cli:${config.instanceId}`));
      },
    });
  } finally {
    await log?.close();
    await db.destroy();
  }
}

export const createCommand: Command = {
  name: 'keys create',
  summary: 'Create an API key for a workload; the key is printed once and only its hash is stored.',
  usage:
    'auditgate keys create --subject NAME [--role ROLE]... [--expires 30d|12h|2w|ISO-DATE] [--description TEXT] [--json]',
  async run(argv, io) {
    const { values } = parseFlags(argv, {
      subject: { type: 'string' },
      role: { type: 'string', multiple: true },
      expires: { type: 'string' },
      description: { type: 'string' },
      json: { type: 'boolean' },
    });
    if (!values.subject) throw new UsageError('--subject is required');
    let expiresAt: string | undefined;
    try {
      expiresAt = values.expires ? parseExpiry(values.expires) : undefined;
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    const actor = localActor();
    return withStore(
      io,
      async ({ store, record }) => {
        let created: { key: string; record: ApiKeyRecord };
        try {
          created = await store.create({
            subject: values.subject!,
            roles: values.role,
            expiresAt,
            description: values.description,
            createdBy: actor.subject,
          });
        } catch (err) {
          if (err instanceof ApiKeyInputError) throw new UsageError(err.message);
          throw err;
        }
        const { key, record: rec } = created;
        try {
          await record(keyChange('create', undefined, rec));
        } catch (err) {
          // An unrecorded key must not exist: take it back before reporting the failure.
          await store.discard(rec.id);
          io.err(
            `auditgate keys create: the audit log refused the change, no key was created: ${(err as Error).message}`,
          );
          return 1;
        }
        if (values.json) {
          io.out(JSON.stringify({ key, ...rec }));
        } else {
          io.out(key);
          io.err(
            `Created API key ${rec.id} for ${rec.subject} (roles: ${rec.roles.join(', ')}` +
              `${rec.expiresAt ? `; expires ${rec.expiresAt}` : '; no expiry'}).`,
          );
          io.err('This is the only time the key is shown: store it in your secret manager now.');
        }
        return 0;
      },
      actor,
    );
  },
};

export const listCommand: Command = {
  name: 'keys list',
  summary: 'List API keys (ids, subjects, roles, status) — never secrets.',
  usage: 'auditgate keys list [--active] [--json]',
  async run(argv, io) {
    const { values } = parseFlags(argv, { active: { type: 'boolean' }, json: { type: 'boolean' } });
    return withStore(io, async ({ store }) => {
      const keys = await store.list({ includeInactive: !values.active });
      const now = Date.now();
      if (values.json) {
        io.out(JSON.stringify(keys.map((k) => ({ ...k, status: keyStatus(k, now) }))));
        return 0;
      }
      if (!keys.length) {
        io.err('No API keys. Create one with: auditgate keys create --subject NAME');
        return 0;
      }
      const rows = keys.map((k) => [
        k.id,
        k.subject,
        k.roles.join(','),
        keyStatus(k, now),
        k.createdAt.slice(0, 19) + 'Z',
        k.expiresAt ? k.expiresAt.slice(0, 19) + 'Z' : '-',
        k.description ?? '',
      ]);
      const head = ['ID', 'SUBJECT', 'ROLES', 'STATUS', 'CREATED', 'EXPIRES', 'DESCRIPTION'];
      const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
      for (const r of [head, ...rows])
        io.out(
          r
            .map((c, i) => c.padEnd(widths[i]!))
            .join('  ')
            .trimEnd(),
        );
      return 0;
    });
  },
};

export const revokeCommand: Command = {
  name: 'keys revoke',
  summary: 'Revoke an API key by id (or by the leaked key itself); running gateways refuse it within 1 s.',
  usage: 'auditgate keys revoke ID',
  async run(argv, io) {
    const { positionals } = parseFlags(argv, {}, true);
    if (positionals.length !== 1) throw new UsageError('expected exactly one key id');
    const arg = positionals[0]!;
    const id = parseApiKey(arg)?.id ?? arg;
    if (!/^[0-9a-f]{16}$/.test(id)) throw new UsageError(`${JSON.stringify(arg)} is not an API key id`);
    const actor = localActor();
    return withStore(
      io,
      async ({ store, record }) => {
        try {
          const r = await store.revoke(id, actor.subject);
          if (!r.changed) {
            io.err(`API key ${id} was already revoked at ${r.before.revokedAt} by ${r.before.revokedBy}.`);
            return 0;
          }
          try {
            await record(keyChange('revoke', r.before, r.after));
          } catch (err) {
            // The revocation stands (refusing access is the safe side); the missing record is loud.
            io.err(
              `auditgate keys revoke: key ${id} IS revoked, but the audit log refused the record: ${(err as Error).message}`,
            );
            return 1;
          }
          io.err(`Revoked API key ${id} (${r.after.subject}).`);
          return 0;
        } catch (err) {
          if (err instanceof ApiKeyNotFoundError) {
            io.err(`auditgate keys revoke: ${err.message}`);
            return 1;
          }
          throw err;
        }
      },
      actor,
    );
  },
};
