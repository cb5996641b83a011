// Where finished bundles are kept. Every store is write-once: a key is written at most once,
// re-putting the same bytes is a no-op, different bytes are refused. After writing, the store
// reads back what it holds and compares SHA-256, and says which check it could run.
import type { Readable } from 'node:stream';

export type RetentionMode = 'COMPLIANCE' | 'GOVERNANCE';

export interface PutOptions {
  /** SHA-256 (hex) of the file, computed by the caller while building it. */
  sha256: string;
  /** Object Lock retention (S3 only; the local store records it but cannot enforce it). */
  retention?: { mode: RetentionMode; retainUntil: Date };
  contentType?: string;
}

/**
 * How the stored bytes were confirmed:
 * - `s3-checksum`: the server's stored x-amz-checksum-sha256 (HeadObject, ChecksumMode ENABLED);
 * - `read-back`: the object was read back in full and hashed (servers that keep no SHA-256,
 *   such as Ceph 16, and the local directory).
 */
export type VerifiedBy = 's3-checksum' | 'read-back';

export interface StoredObject {
  key: string;
  size: number;
  sha256: string;
  verifiedBy: VerifiedBy;
  /** false when the key already held these exact bytes. */
  created: boolean;
  versionId?: string;
  retention?: { mode: RetentionMode; retainUntil: string };
  /** Where it is, for people: s3://bucket/key or a file path. */
  location: string;
}

export class StoreError extends Error {
  override name = 'StoreError';
}

/** The key already holds different bytes: write-once refuses to replace them. */
export class StoreConflictError extends StoreError {
  override name = 'StoreConflictError';
}

export class StoreNotFoundError extends StoreError {
  override name = 'StoreNotFoundError';
}

export interface EvidenceStore {
  readonly kind: 'local' | 's3';
  /** Describes the target without secrets, e.g. "s3://bucket/prefix/" (for logs and bundle.json). */
  describe(): { kind: 'local' | 's3'; bucket?: string; prefix?: string; directory?: string };
  put(key: string, file: string, opts: PutOptions): Promise<StoredObject>;
  /** Size and SHA-256 of what is stored, or undefined when the key is absent. */
  head(key: string): Promise<{ size: number; sha256?: string } | undefined>;
  get(key: string): Promise<Readable>;
  /** A time-limited URL a browser can download from, when the store has one (S3); else undefined. */
  downloadUrl(
    key: string,
    opts: { expiresInSeconds: number; filename?: string },
  ): Promise<string | undefined>;
}

/** Keys are relative, '/'-separated, with no empty, '.' or '..' segments. */
export function checkKey(key: string): string {
  if (
    !/^[A-Za-z0-9._=@+-]+(\/[A-Za-z0-9._=@+-]+)*$/.test(key) ||
    key.split('/').some((s) => s === '.' || s === '..')
  ) {
    throw new StoreError(`invalid object key ${JSON.stringify(key)}`);
  }
  return key;
}
