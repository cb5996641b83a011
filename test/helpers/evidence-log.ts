// A real KnexLog (SQLite or PostgreSQL) holding three months of records — September: 30 (with a
// checkpoint after 15), October: 40 (appended concurrently), November: 5 — and an
// EvidenceService over it with a local store, for the server-side evidence tests.
import { randomBytes, randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { createTestDb, type DbKind, type TestDb } from './db.ts';
import { loadOrCreateLogKey } from '../../server/audit/log-key.ts';
import { openKnexLog, type KnexLog } from '../../server/audit/knex-log.ts';
import type { NoteSigner } from '../../server/audit/note.ts';
import { auditTimestamp, type AuditRecord } from '../../gateway/audit-record.ts';
import type { EvidenceStore } from '../../reports/evidence/stores/store.ts';
import { LocalDirectoryStore } from '../../reports/evidence/stores/local.ts';
import { loadEvidenceConfig } from '../../server/evidence/config.ts';
import { loadOrCreateEvidenceKey } from '../../server/evidence/signing-key.ts';
import { EvidenceService, createEvidenceStore } from '../../server/evidence/bundle-service.ts';
import { evidenceReports } from '../../server/evidence/reports-source.ts';

export function sampleAuditRecord(ts: Date, n: number): AuditRecord {
  return {
    v: 1,
    id: randomUUID(),
    ts: auditTimestamp(ts, 0),
    event: 'mcp.message',
    gateway: { instance: 'test', version: 'test' },
    actor: { subject: `user-${n % 3}`, auth_method: 'api_key' },
    mcp: { target: 'everything', transport: 'stdio', direction: 'client_to_upstream', kind: 'request', method: 'tools/call', name: 'echo' },
  };
}

export interface EvidenceLogSetup {
  tdb: TestDb;
  log: KnexLog;
  signer: NoteSigner;
  service: EvidenceService;
  env: Record<string, string>;
  origin: string;
  cleanup(): Promise<void>;
}

export const SEP = { from: new Date('2026-09-01T00:00:00Z'), to: new Date('2026-10-01T00:00:00Z') };
export const OCT = { from: new Date('2026-10-01T00:00:00Z'), to: new Date('2026-11-01T00:00:00Z') };

export async function evidenceLogSetup(
  kind: DbKind,
  opts: { reports?: boolean; store?: EvidenceStore; env?: Record<string, string> } = {},
): Promise<EvidenceLogSetup> {
  const tdb = await createTestDb(kind);
  const origin = `auditgate.test/ev-${randomBytes(3).toString('hex')}`;
  const env: Record<string, string> = {
    AUDITGATE_DATA_DIR: tdb.dir,
    AUDITGATE_LOG_ORIGIN: origin,
    AUDITGATE_CHECKPOINT_INTERVAL_MS: '86400000',
    AUDITGATE_EVIDENCE_SCHEDULE: 'off',
    ...(tdb.databaseUrl ? { DATABASE_URL: tdb.databaseUrl } : {}),
    ...opts.env,
  };
  const signer = await loadOrCreateLogKey(join(tdb.dir, 'log-key'), origin);
  // A generous append timeout: the whole suite shares two cores and one PostgreSQL.
  const log = await openKnexLog(tdb.db, {
    origin,
    signer,
    batchMaxSize: 64,
    batchMaxDelayMs: 1,
    checkpointIntervalMs: 86_400_000,
    checkpointTimer: false,
    appendTimeoutMs: 60_000,
  });
  for (let i = 0; i < 30; i++) {
    await log.append(sampleAuditRecord(new Date(Date.UTC(2026, 8, 2, 0, 0, i)), i));
    if (i === 14) await log.checkpoint();
  }
  await Promise.all(Array.from({ length: 40 }, (_, i) => log.append(sampleAuditRecord(new Date(Date.UTC(2026, 9, 3, 0, i)), i))));
  await log.checkpoint();
  for (let i = 0; i < 5; i++) await log.append(sampleAuditRecord(new Date(Date.UTC(2026, 10, 1, 0, 0, i)), i));
  const config = loadEvidenceConfig(env, tdb.dir, origin, tdb.dir);
  const service = new EvidenceService({
    db: tdb.db,
    log,
    logSigner: signer,
    config,
    store: opts.store ?? (opts.env?.AUDITGATE_EVIDENCE_STORE ? createEvidenceStore(config.store) : new LocalDirectoryStore(join(tdb.dir, 'evidence'))),
    evidenceKey: await loadOrCreateEvidenceKey(config.keyFile),
    instance: 'test',
    version: 'test',
    reports: opts.reports ? evidenceReports({ db: tdb.db, log, env, dataDir: tdb.dir, cwd: tdb.dir, instance: 'test' }) : undefined,
  });
  return {
    tdb,
    log,
    signer,
    service,
    env,
    origin,
    async cleanup() {
      await log.close().catch(() => {});
      await tdb.cleanup();
    },
  };
}
