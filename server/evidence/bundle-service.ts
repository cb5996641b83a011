// Producing a period's evidence bundle, for the scheduled job and `auditgate bundle` alike:
// choose the leaf-index range (continuing the previous bundle's chain), collect the log's
// evidence and the period's reports, build the archive, verify it with the same verifier an
// auditor runs, store it write-once, then record its SHA-256 in the audit log (event
// 'evidence.bundle') and in evidence_bundles. Downloads are recorded ('audit.read') before any
// byte or URL is handed out.
import { createPublicKey, randomBytes, randomUUID, type KeyObject } from 'node:crypto';
import { copyFile, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { Db } from '../db.ts';
import { toInt } from '../db.ts';
import type { KnexLog } from '../audit/knex-log.ts';
import type { NoteSigner } from '../audit/note.ts';
import { AUDIT_RECORD_VERSION, auditTimestamp, type AuditActor, type AuditRecord } from '../../gateway/audit-record.ts';
import { buildBundle } from '../../reports/evidence/bundle.ts';
import { httpTimestamper } from '../../reports/evidence/rfc3161.ts';
import { sshFingerprint } from '../../reports/evidence/sshsig.ts';
import type { EvidenceReport, JobRunRef, PreviousBundle, Timestamper } from '../../reports/evidence/types.ts';
import type { EvidenceStore, StoredObject } from '../../reports/evidence/stores/store.ts';
import { LocalDirectoryStore } from '../../reports/evidence/stores/local.ts';
import { S3EvidenceStore } from '../../reports/evidence/stores/s3.ts';
import type { EvidenceConfig } from './config.ts';
import { collectAudit, indexAtTime } from './log-source.ts';
import { verifyBundle, type CheckLine } from './verify.ts';

export class EvidenceError extends Error {
  override name = 'EvidenceError';
}

/** The period was bundled before and the rebuilt archive differs: evidence is never replaced. */
export class EvidenceConflictError extends EvidenceError {
  override name = 'EvidenceConflictError';
}

export class EvidenceNotFoundError extends EvidenceError {
  override name = 'EvidenceNotFoundError';
}

export interface BundleRow {
  bundleId: string;
  periodFrom: string;
  periodTo: string;
  firstIndex: number;
  endIndex: number;
  archiveSha256: string;
  archiveSize: number;
  manifestSha256: string;
  previousSha256: string | null;
  storeKind: string;
  storeKey: string;
  location: string;
  verifiedBy: string;
  versionId: string | null;
  retentionMode: string | null;
  retainUntil: string | null;
  jobRun: JobRunRef | null;
  signerKeyId: string;
  logIdx: number;
  createdAt: string;
}

export interface EvidenceServiceDeps {
  db: Db;
  log: KnexLog;
  /** The log's signing key, for checkpoints at exactly the period's boundaries. */
  logSigner: NoteSigner;
  config: EvidenceConfig;
  store: EvidenceStore;
  evidenceKey: KeyObject;
  instance: string;
  version: string;
  /**
   * The period's reports (PDF, canonical JSON, CSVs) for [from, to), built deterministically:
   * `generatedAt` is when the period's end checkpoint was signed, so a rebuild gives the same bytes.
   */
  reports?: (period: { from: string; to: string }, run: { generatedAt: string; jobRun: JobRunRef | null }) => Promise<EvidenceReport[]>;
  timestamper?: Timestamper;
  /** A period must have ended this long ago, so appends stamped inside it have committed (default 60 s). */
  graceMs?: number;
  now?: () => Date;
}

export interface BundleRequest {
  from: Date;
  to: Date;
  actor: AuditActor;
  /** The scheduler's run; on demand, a rebuild of a recorded bundle reuses the run it named. */
  jobRun?: JobRunRef | null;
  /** Also copy the archive here. */
  out?: string;
}

export interface BundleOutcome {
  row: BundleRow;
  /** false when this bundle's content (its signed manifest) had been produced before: nothing new stored or logged. */
  created: boolean;
  stored?: StoredObject;
  /** The verifier's lines for the freshly built archive. */
  checks: CheckLine[];
}

export function createEvidenceStore(config: EvidenceConfig['store']): EvidenceStore {
  if (config.kind === 'local') return new LocalDirectoryStore(config.directory);
  return new S3EvidenceStore({
    bucket: config.bucket,
    prefix: config.prefix,
    region: config.region,
    endpoint: config.endpoint,
    forcePathStyle: config.forcePathStyle,
  });
}

/** 2026-10-01T00:00:00.000Z → 20261001T000000Z */
const compact = (d: Date): string => d.toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/[-:]/g, '');

export function bundleIdFor(from: Date, to: Date): string {
  return `${compact(from)}--${compact(to)}`;
}

function rowFrom(r: Record<string, unknown>): BundleRow {
  const s = (v: unknown) => (v === null || v === undefined ? null : String(v));
  return {
    bundleId: String(r.bundle_id),
    periodFrom: String(r.period_from),
    periodTo: String(r.period_to),
    firstIndex: toInt(r.first_index),
    endIndex: toInt(r.end_index),
    archiveSha256: String(r.archive_sha256),
    archiveSize: toInt(r.archive_size),
    manifestSha256: String(r.manifest_sha256),
    previousSha256: s(r.previous_sha256),
    storeKind: String(r.store_kind),
    storeKey: String(r.store_key),
    location: String(r.location),
    verifiedBy: String(r.verified_by),
    versionId: s(r.version_id),
    retentionMode: s(r.retention_mode),
    retainUntil: s(r.retain_until),
    jobRun: r.job_run ? (JSON.parse(String(r.job_run)) as JobRunRef) : null,
    signerKeyId: String(r.signer_key_id),
    logIdx: toInt(r.log_idx),
    createdAt: String(r.created_at),
  };
}

export class EvidenceService {
  readonly #d: EvidenceServiceDeps;
  readonly publicKey: KeyObject;
  readonly signerKeyId: string;

  constructor(deps: EvidenceServiceDeps) {
    this.#d = deps;
    this.publicKey = createPublicKey(deps.evidenceKey);
    this.signerKeyId = sshFingerprint(this.publicKey);
  }

  get store(): EvidenceStore {
    return this.#d.store;
  }

  async list(): Promise<BundleRow[]> {
    return (await this.#d.db('evidence_bundles').select('*').orderBy('period_to', 'desc')).map(rowFrom);
  }

  async get(bundleId: string): Promise<BundleRow | undefined> {
    const r = await this.#d.db('evidence_bundles').where({ bundle_id: bundleId }).first();
    return r ? rowFrom(r) : undefined;
  }

  /** The latest bundle whose period ended at or before `from`: the one this bundle continues. */
  async previousFor(from: Date): Promise<BundleRow | undefined> {
    const r = await this.#d
      .db('evidence_bundles')
      .where('period_to', '<=', from.toISOString())
      .orderBy('period_to', 'desc')
      .orderBy('end_index', 'desc')
      .first();
    return r ? rowFrom(r) : undefined;
  }

  async bundle(req: BundleRequest): Promise<BundleOutcome> {
    const d = this.#d;
    const now = (d.now ?? (() => new Date()))();
    const { from, to } = req;
    if (!(from.getTime() < to.getTime())) throw new EvidenceError(`period ${from.toISOString()} .. ${to.toISOString()} is empty`);
    const grace = d.graceMs ?? 60_000;
    if (to.getTime() > now.getTime() - grace) {
      throw new EvidenceError(`period ends at ${to.toISOString()}: bundle it after ${new Date(to.getTime() + grace).toISOString()}, once every record stamped inside it has been committed`);
    }
    const bundleId = bundleIdFor(from, to);
    const existing = await this.get(bundleId);
    const jobRun = req.jobRun ?? existing?.jobRun ?? null;
    const previous = await this.previousFor(from);
    const continues = previous !== undefined && previous.periodTo === from.toISOString();
    const first = continues ? previous.endIndex : await indexAtTime(d.db, d.log, from);
    const end = Math.max(first, await indexAtTime(d.db, d.log, to));
    const upTo = `up to the last record stamped before ${to.toISOString()} (indices below ${end})`;
    const selection = continues
      ? `from the end of bundle ${previous.bundleId} (index ${first}) ${upTo}`
      : `from the first record after the last one stamped before ${from.toISOString()} (index ${first}) ${upTo}`;

    const audit = await collectAudit({ db: d.db, log: d.log, signer: d.logSigner }, first, end, { selection });
    const period = { from: from.toISOString(), to: to.toISOString() };
    const endRow = await d.log.store.checkpointAt(end);
    const generatedAt = endRow?.signedAt ?? period.to;
    const reports = d.reports ? await d.reports(period, { generatedAt, jobRun }) : [];
    const storeKey = `bundles/${from.toISOString().slice(0, 4)}/${bundleId}.tar.gz`;
    const retention = d.config.retention
      ? { mode: d.config.retention.mode, retainUntil: new Date(to.getTime() + d.config.retention.days * 86_400_000) }
      : undefined;
    const target = d.store.describe();
    const prev: PreviousBundle | null = previous
      ? {
          archiveSha256: previous.archiveSha256,
          bundleId: previous.bundleId,
          endSize: previous.endIndex,
          endRoot: await d.log.rootAt(previous.endIndex),
        }
      : null;

    await mkdir(d.config.workDir, { recursive: true, mode: 0o700 });
    const tmp = join(d.config.workDir, `${bundleId}.${randomBytes(6).toString('hex')}.tar.gz`);
    try {
      const built = await buildBundle(
        {
          bundleId,
          period,
          generator: { name: 'auditgate', version: d.version },
          jobRun,
          audit,
          reports,
          previous: prev,
          storage: {
            kind: target.kind,
            key: storeKey,
            bucket: target.bucket,
            objectLock: retention && { mode: retention.mode, retainUntil: retention.retainUntil.toISOString() },
          },
          signer: { privateKey: d.evidenceKey, namespace: d.config.namespace, principal: d.config.principal },
          timestamper: d.timestamper ?? (d.config.tsaUrl ? httpTimestamper(d.config.tsaUrl) : undefined),
          workDir: d.config.workDir,
        },
        tmp,
      );
      // The archive is checked exactly as an auditor would before anything is stored or logged.
      const verified = await verifyBundle(tmp, { vkey: d.log.vkey, signerKey: this.publicKey, namespace: d.config.namespace });
      if (!verified.ok) {
        const bad = verified.lines.filter((l) => l.status === 'FAIL').map((l) => `${l.check}: ${l.detail}`);
        throw new EvidenceError(`the built bundle does not verify: ${bad.join('; ')}`);
      }
      if (req.out) await copyFile(tmp, req.out);

      if (existing) {
        // The signed manifest identifies the content; the archive bytes also differ when a TSA
        // stamped the manifest anew (or another zlib build compressed it).
        if (existing.manifestSha256 !== built.manifestSha256) {
          throw new EvidenceConflictError(
            `period ${bundleId} was bundled before (manifest SHA-256 ${existing.manifestSha256}); the rebuilt content differs (manifest ${built.manifestSha256}) and evidence is never replaced`,
          );
        }
        return { row: existing, created: false, checks: verified.lines };
      }

      const stored = await d.store.put(storeKey, tmp, { sha256: built.archiveSha256, retention });
      const record: AuditRecord = {
        v: AUDIT_RECORD_VERSION,
        id: randomUUID(),
        ts: auditTimestamp(),
        event: 'evidence.bundle',
        gateway: { instance: d.instance, version: d.version },
        actor: req.actor,
        detail: {
          bundle_id: bundleId,
          period,
          first_index: built.firstIndex,
          end_index: built.endIndex,
          record_count: built.recordCount,
          archive_sha256: built.archiveSha256,
          archive_size: built.archiveSize,
          manifest_sha256: built.manifestSha256,
          signer_key_id: this.signerKeyId,
          previous_archive_sha256: previous?.archiveSha256 ?? null,
          store: {
            kind: target.kind,
            location: stored.location,
            verified_by: stored.verifiedBy,
            version_id: stored.versionId ?? null,
            retention: stored.retention ?? null,
          },
          job_run_id: jobRun?.id ?? null,
        },
      };
      const logIdx = await d.log.append(record);
      const row = {
        bundle_id: bundleId,
        period_from: period.from,
        period_to: period.to,
        first_index: built.firstIndex,
        end_index: built.endIndex,
        archive_sha256: built.archiveSha256,
        archive_size: built.archiveSize,
        manifest_sha256: built.manifestSha256,
        previous_sha256: previous?.archiveSha256 ?? null,
        store_kind: target.kind,
        store_key: storeKey,
        location: stored.location,
        verified_by: stored.verifiedBy,
        version_id: stored.versionId ?? null,
        retention_mode: stored.retention?.mode ?? retention?.mode ?? null,
        retain_until: stored.retention?.retainUntil ?? retention?.retainUntil.toISOString() ?? null,
        job_run: jobRun ? JSON.stringify(jobRun) : null,
        signer_key_id: this.signerKeyId,
        log_idx: logIdx,
        created_at: now.toISOString(),
      };
      await d.db('evidence_bundles').insert(row);
      return { row: rowFrom(row), created: true, stored, checks: verified.lines };
    } finally {
      await rm(tmp, { force: true });
    }
  }

  /**
   * Hands out a bundle: a pre-signed URL when the store has one, else a stream. The read is
   * recorded in the audit log first; if it cannot be recorded, nothing is handed out.
   */
  async download(
    bundleId: string,
    actor: AuditActor,
    client?: { address?: string; user_agent?: string },
  ): Promise<{ row: BundleRow; url?: string; stream?: Readable; filename: string }> {
    const d = this.#d;
    const row = await this.get(bundleId);
    if (!row) throw new EvidenceNotFoundError(`no evidence bundle ${bundleId}`);
    const filename = `auditgate-evidence-${row.bundleId}.tar.gz`;
    const url = await d.store.downloadUrl(row.storeKey, { expiresInSeconds: d.config.urlTtlSeconds, filename });
    await d.log.append({
      v: AUDIT_RECORD_VERSION,
      id: randomUUID(),
      ts: auditTimestamp(),
      event: 'audit.read',
      gateway: { instance: d.instance, version: d.version },
      actor,
      client,
      detail: {
        what: 'evidence.bundle',
        bundle_id: row.bundleId,
        archive_sha256: row.archiveSha256,
        via: url ? 'presigned-url' : 'stream',
        ...(url ? { url_expires_in_s: d.config.urlTtlSeconds } : {}),
      },
    } satisfies AuditRecord);
    if (url) return { row, url, filename };
    return { row, stream: await d.store.get(row.storeKey), filename };
  }
}
