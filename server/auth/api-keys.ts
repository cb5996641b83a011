// API keys: creation, listing, revocation and the per-request check. The key a client holds is
// `agk_<id>_<secret>`; only SHA-256(secret) is stored, so a database dump yields no usable key,
// and the recognisable prefix + id let a leaked key be spotted (secret scanning) and revoked.
import { hash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Db } from '../db.ts';
import { isRole, ROLES, type Role } from './roles.ts';

export const API_KEY_PREFIX = 'agk_';
// id: 8 random bytes as hex; secret: 32 random bytes (256 bits) as base64url (43 characters).
const KEY_PATTERN = /^agk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;
/** For secret scanners and log scrubbers: matches a whole key anywhere in text. */
export const API_KEY_REGEX = /\bagk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}/g;

export interface ApiKeyRecord {
  id: string;
  subject: string;
  roles: Role[];
  createdAt: string;
  createdBy: string;
  expiresAt?: string;
  revokedAt?: string;
  revokedBy?: string;
  description?: string;
}

export type ApiKeyStatus = 'active' | 'revoked' | 'expired';

export type VerifyResult =
  | { ok: true; key: ApiKeyRecord }
  | {
      ok: false;
      reason: 'malformed' | 'unknown' | 'revoked' | 'expired';
      /** The key id the client presented, when it parsed: safe to record, never the secret. */
      keyId?: string;
      subject?: string;
    };

/** Bad input to create/revoke (empty subject, unknown role, past expiry…). */
export class ApiKeyInputError extends Error {
  override name = 'ApiKeyInputError';
}

export class ApiKeyNotFoundError extends Error {
  override name = 'ApiKeyNotFoundError';
  constructor(readonly keyId: string) {
    super(`no API key with id ${keyId}`);
  }
}

interface Row {
  id: string;
  subject: string;
  roles: string;
  secret_hash: string;
  created_at: string;
  created_by: string;
  expires_at: string | null;
  revoked_at: string | null;
  revoked_by: string | null;
  description: string | null;
}

interface CacheEntry {
  key: ApiKeyRecord;
  hash: Buffer;
  fetchedAt: number;
}

export interface ApiKeyStoreOptions {
  /**
   * How long a looked-up key is trusted without asking the database again. This bounds how late
   * a revocation made by another process (the CLI, another instance) takes effect; revocations
   * through this store apply at once. 0 checks the database on every request.
   */
  cacheTtlMs?: number;
  now?: () => number;
}

export function parseApiKey(presented: string): { id: string; secret: string } | undefined {
  const m = KEY_PATTERN.exec(presented);
  return m ? { id: m[1]!, secret: m[2]! } : undefined;
}

/** Looks like one of ours (prefix), even if malformed: decides whether to try other verifiers. */
export function looksLikeApiKey(presented: string): boolean {
  return presented.startsWith(API_KEY_PREFIX);
}

function sha256(s: string): Buffer {
  return hash('sha256', s, 'buffer') as unknown as Buffer;
}

/** `30d`, `12h`, `45m`, `2w`, or an ISO 8601 date/time; returns an ISO UTC timestamp in the future. */
export function parseExpiry(spec: string, now: number = Date.now()): string {
  const rel = /^(\d+)([mhdw])$/.exec(spec.trim());
  let at: number;
  if (rel) {
    const unit = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }[rel[2] as 'm' | 'h' | 'd' | 'w'];
    at = now + Number(rel[1]) * unit;
  } else if (/^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(spec.trim())) {
    at = Date.parse(spec.trim());
  } else {
    throw new ApiKeyInputError(
      `expiry ${JSON.stringify(spec)}: expected e.g. 30d, 12h, 2w or an ISO 8601 date`,
    );
  }
  if (!Number.isFinite(at)) throw new ApiKeyInputError(`expiry ${JSON.stringify(spec)} is not a valid date`);
  if (at <= now) throw new ApiKeyInputError(`expiry ${JSON.stringify(spec)} is in the past`);
  return new Date(at).toISOString();
}

function toRecord(row: Row): ApiKeyRecord {
  const rec: ApiKeyRecord = {
    id: row.id,
    subject: row.subject,
    roles: (JSON.parse(row.roles) as string[]).filter(isRole),
    createdAt: row.created_at,
    createdBy: row.created_by,
  };
  if (row.expires_at) rec.expiresAt = row.expires_at;
  if (row.revoked_at) rec.revokedAt = row.revoked_at;
  if (row.revoked_by) rec.revokedBy = row.revoked_by;
  if (row.description) rec.description = row.description;
  return rec;
}

export function keyStatus(key: ApiKeyRecord, now: number = Date.now()): ApiKeyStatus {
  if (key.revokedAt) return 'revoked';
  if (key.expiresAt && Date.parse(key.expiresAt) <= now) return 'expired';
  return 'active';
}

const CACHE_MAX = 10_000;

export class ApiKeyStore {
  readonly cacheTtlMs: number;
  private readonly now: () => number;
  private readonly cache = new Map<string, CacheEntry>();
  private readonly inflight = new Map<string, Promise<CacheEntry | undefined>>();

  constructor(
    private readonly db: Db,
    opts: ApiKeyStoreOptions = {},
  ) {
    this.cacheTtlMs = opts.cacheTtlMs ?? 1_000;
    this.now = opts.now ?? Date.now;
  }

  async create(input: {
    subject: string;
    roles?: string[];
    expiresAt?: string;
    description?: string;
    createdBy: string;
  }): Promise<{ key: string; record: ApiKeyRecord }> {
    const subject = input.subject.trim();
    if (!subject) throw new ApiKeyInputError('subject must not be empty');
    if (subject.length > 256) throw new ApiKeyInputError('subject is longer than 256 characters');
    const roles = [...new Set(input.roles?.length ? input.roles : ['agent'])];
    for (const r of roles) {
      if (!isRole(r))
        throw new ApiKeyInputError(
          `unknown role ${JSON.stringify(r)} (expected one of: ${ROLES.join(', ')})`,
        );
    }
    if (input.expiresAt !== undefined && !(Date.parse(input.expiresAt) > this.now())) {
      throw new ApiKeyInputError('expiry must be a future date');
    }
    const id = randomBytes(8).toString('hex');
    const secret = randomBytes(32).toString('base64url');
    const row: Row = {
      id,
      subject,
      roles: JSON.stringify(roles),
      secret_hash: sha256(secret).toString('hex'),
      created_at: new Date(this.now()).toISOString(),
      created_by: input.createdBy,
      expires_at: input.expiresAt ? new Date(input.expiresAt).toISOString() : null,
      revoked_at: null,
      revoked_by: null,
      description: input.description?.trim() || null,
    };
    await this.db('api_keys').insert(row);
    return { key: `${API_KEY_PREFIX}${id}_${secret}`, record: toRecord(row) };
  }

  async get(id: string): Promise<ApiKeyRecord | undefined> {
    const row = (await this.db('api_keys').where({ id }).first()) as Row | undefined;
    return row ? toRecord(row) : undefined;
  }

  async list(opts: { includeInactive?: boolean } = {}): Promise<ApiKeyRecord[]> {
    const rows = (await this.db('api_keys').orderBy([{ column: 'created_at' }, { column: 'id' }])) as Row[];
    const all = rows.map(toRecord);
    return opts.includeInactive === false ? all.filter((k) => keyStatus(k, this.now()) === 'active') : all;
  }

  /** Revokes a key; returns the record before and after. Revoking a revoked key changes nothing. */
  async revoke(
    id: string,
    by: string,
  ): Promise<{ before: ApiKeyRecord; after: ApiKeyRecord; changed: boolean }> {
    const before = await this.get(id);
    if (!before) throw new ApiKeyNotFoundError(id);
    if (before.revokedAt) return { before, after: before, changed: false };
    const at = new Date(this.now()).toISOString();
    // whereNull: two concurrent revocations must not overwrite each other's who/when.
    await this.db('api_keys')
      .where({ id })
      .whereNull('revoked_at')
      .update({ revoked_at: at, revoked_by: by });
    this.cache.delete(id);
    const after = (await this.get(id))!;
    return { before, after, changed: after.revokedAt === at && after.revokedBy === by };
  }

  /** Removes a key that was never handed out (its creation could not be recorded). */
  async discard(id: string): Promise<void> {
    await this.db('api_keys').where({ id }).delete();
    this.cache.delete(id);
  }

  /** The per-request check: constant-time comparison of the secret's hash; revocation and expiry. */
  async verify(presented: string): Promise<VerifyResult> {
    const parsed = parseApiKey(presented);
    if (!parsed) return { ok: false, reason: 'malformed' };
    const entry = await this.lookup(parsed.id);
    if (!entry) return { ok: false, reason: 'unknown', keyId: parsed.id };
    // A wrong secret for an existing id is reported as unknown: the client learns nothing new.
    if (!timingSafeEqual(sha256(parsed.secret), entry.hash))
      return { ok: false, reason: 'unknown', keyId: parsed.id };
    const key = entry.key;
    const status = keyStatus(key, this.now());
    if (status !== 'active') return { ok: false, reason: status, keyId: key.id, subject: key.subject };
    return { ok: true, key };
  }

  /** Forget cached keys (tests; or after a bulk change made elsewhere). */
  clearCache(): void {
    this.cache.clear();
  }

  private async lookup(id: string): Promise<CacheEntry | undefined> {
    const hit = this.cache.get(id);
    if (hit && this.now() - hit.fetchedAt < this.cacheTtlMs) return hit;
    // Concurrent requests with one key share one query instead of stampeding the database.
    let p = this.inflight.get(id);
    if (!p) {
      p = this.fetch(id).finally(() => this.inflight.delete(id));
      this.inflight.set(id, p);
    }
    return p;
  }

  private async fetch(id: string): Promise<CacheEntry | undefined> {
    const row = (await this.db('api_keys').where({ id }).first()) as Row | undefined;
    if (!row) {
      this.cache.delete(id);
      return undefined;
    }
    const entry = { key: toRecord(row), hash: Buffer.from(row.secret_hash, 'hex'), fetchedAt: this.now() };
    if (this.cacheTtlMs > 0) {
      if (this.cache.size >= CACHE_MAX) this.cache.clear();
      this.cache.set(id, entry);
    }
    return entry;
  }
}
