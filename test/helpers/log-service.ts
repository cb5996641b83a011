// The whole service, started the way `npm start` starts it, on a fresh database (SQLite file or
// PostgreSQL database) and a fresh data dir, listening on a free loopback port. Tests can stop
// and restart it on the same data, as an operator (or an attacker restoring a backup) would.
import { randomBytes } from 'node:crypto';
import { loadConfig } from '../../server/config.ts';
import { createLogger } from '../../server/logger.ts';
import { startService, type Service } from '../../server/service.ts';
import { createTestDb, type DbKind, type TestDb } from './db.ts';
import { ApiKeyStore } from '../../server/auth/api-keys.ts';

export interface LogService {
  tdb: TestDb;
  origin: string;
  env: Record<string, string>;
  /** The running service (undefined while stopped). */
  service: Service | undefined;
  url: string;
  start(): Promise<Service>;
  stop(): Promise<void>;
  cleanup(): Promise<void>;
}

export async function startLogService(kind: DbKind, opts: { origin?: string } = {}): Promise<LogService> {
  // The service runs its own migrations; the helper's handle stays unused so that PostgreSQL
  // snapshots (CREATE DATABASE … TEMPLATE) find no other session on the database.
  const tdb = await createTestDb(kind, { migrate: false });
  const origin = opts.origin ?? `auditgate.test/log-${randomBytes(4).toString('hex')}`;
  const env: Record<string, string> = {
    HOST: '127.0.0.1',
    PORT: '0',
    AUDITGATE_DATA_DIR: tdb.dir,
    AUDITGATE_LOG_ORIGIN: origin,
    // Tests sign checkpoints explicitly (log.checkpoint()); no timer races with them.
    AUDITGATE_CHECKPOINT_INTERVAL_MS: '86400000',
    LOG_LEVEL: 'silent',
    ...(tdb.databaseUrl ? { DATABASE_URL: tdb.databaseUrl } : {}),
  };
  const h: LogService = {
    tdb,
    origin,
    env,
    service: undefined,
    url: '',
    async start() {
      if (h.service) throw new Error('already running');
      h.service = await startService(loadConfig(env, tdb.dir), { logger: createLogger('silent') });
      h.url = h.service.url;
      return h.service;
    },
    async stop() {
      const s = h.service;
      h.service = undefined;
      await s?.stop();
    },
    async cleanup() {
      await h.stop().catch(() => {});
      await tdb.cleanup();
    },
  };
  try {
    await h.start();
  } catch (err) {
    await tdb.cleanup();
    throw err;
  }
  return h;
}

/** A plausible audit record (config.change events), varied in size and content per index. */
export function sampleRecord(i: number, tag = 'test'): Record<string, unknown> {
  return {
    v: 1,
    id: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
    ts: `2026-11-25T17:18:${String(i % 60).padStart(2, '0')}.${String(i).padStart(6, '0').slice(-6)}Z`,
    event: 'config.change',
    gateway: { instance: `${tag}-instance`, version: '0.1.0' },
    actor: { subject: `user-${i % 7}`, auth_method: 'local' },
    detail: { tag, i, note: 'é✓ "quoted" \\ '.repeat(i % 4), nested: { z: i, a: [i, i * 2] } },
  };
}

/** A fresh API key for the running service (default role auditor: may read /log/entries). */
export async function auditorToken(h: LogService, roles: string[] = ['auditor']): Promise<string> {
  const { key } = await new ApiKeyStore(h.service!.db).create({
    subject: `test-${roles.join('-')}`,
    roles,
    createdBy: 'test',
  });
  return key;
}
