// Any S3-compatible endpoint (AWS, MinIO, Ceph RGW, R2) through @aws-sdk/client-s3. Uploads
// carry a SHA-256 checksum (and Content-MD5, which Object Lock writes need on some servers) and,
// when configured, Object Lock retention. After the upload the stored checksum is compared with
// ours; servers that keep none (Ceph 16, s3rver) get a full read-back instead, and the result
// says which check ran. Credentials come from the SDK's standard provider chain (environment,
// shared config, instance roles), never from our configuration files.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import {
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import {
  StoreConflictError,
  StoreError,
  StoreNotFoundError,
  checkKey,
  type EvidenceStore,
  type PutOptions,
  type StoredObject,
} from './store.ts';

export interface S3StoreOptions {
  bucket: string;
  /** Key prefix, e.g. "auditgate/evidence/" (a trailing '/' is added when missing). */
  prefix?: string;
  region?: string;
  /** Custom endpoint for non-AWS servers, e.g. http://127.0.0.1:7480. */
  endpoint?: string;
  forcePathStyle?: boolean;
  /** Explicit credentials (tests); otherwise the SDK's default provider chain. */
  credentials?: S3ClientConfig['credentials'];
  /** Injected client (tests). */
  client?: S3Client;
}

const isNotFound = (err: unknown): boolean =>
  err instanceof S3ServiceException &&
  (err.$metadata?.httpStatusCode === 404 || err.name === 'NotFound' || err.name === 'NoSuchKey');

export class S3EvidenceStore implements EvidenceStore {
  readonly kind = 's3' as const;
  readonly client: S3Client;
  readonly bucket: string;
  readonly prefix: string;

  constructor(opts: S3StoreOptions) {
    if (!opts.bucket || opts.bucket.length < 3)
      throw new StoreError('S3 bucket name must have at least 3 characters');
    this.bucket = opts.bucket;
    const p = (opts.prefix ?? '').replace(/^\/+/, '');
    this.prefix = p === '' || p.endsWith('/') ? p : `${p}/`;
    if (this.prefix) checkKey(this.prefix.slice(0, -1));
    this.client =
      opts.client ??
      new S3Client({
        region: opts.region ?? 'us-east-1',
        endpoint: opts.endpoint,
        forcePathStyle: opts.forcePathStyle ?? Boolean(opts.endpoint),
        credentials: opts.credentials,
        // We send our own SHA-256; the SDK's default CRC32 trailers are refused by some servers.
        requestChecksumCalculation: 'WHEN_REQUIRED',
        responseChecksumValidation: 'WHEN_REQUIRED',
      });
  }

  describe() {
    return { kind: this.kind, bucket: this.bucket, prefix: this.prefix };
  }

  #key(key: string): string {
    return `${this.prefix}${checkKey(key)}`;
  }

  async put(key: string, file: string, opts: PutOptions): Promise<StoredObject> {
    const Key = this.#key(key);
    const existing = await this.head(key);
    if (existing) {
      // Write-once: the same bytes again are fine (a retried job), anything else is refused.
      const same = existing.sha256
        ? existing.sha256 === opts.sha256
        : (await this.#readBack(Key)).sha256 === opts.sha256;
      if (!same)
        throw new StoreConflictError(
          `s3://${this.bucket}/${Key} already holds other bytes; evidence is write-once`,
        );
      const verified = await this.#verify(Key, opts.sha256, existing.size);
      return { ...verified, key, created: false, location: `s3://${this.bucket}/${Key}` };
    }
    // A Buffer body: some servers (Ceph) refuse the SDK's chunked uploads with trailing checksums.
    const body = await readFile(file);
    const sha = createHash('sha256').update(body).digest();
    if (sha.toString('hex') !== opts.sha256) {
      throw new StoreError(`${file} changed: SHA-256 ${sha.toString('hex')}, expected ${opts.sha256}`);
    }
    const out = await this.client.send(
      new PutObjectCommand({
        Bucket: this.bucket,
        Key,
        Body: body,
        ContentLength: body.length,
        ContentType: opts.contentType ?? 'application/gzip',
        ContentMD5: createHash('md5').update(body).digest('base64'),
        ChecksumAlgorithm: 'SHA256',
        ChecksumSHA256: sha.toString('base64'),
        ...(opts.retention
          ? { ObjectLockMode: opts.retention.mode, ObjectLockRetainUntilDate: opts.retention.retainUntil }
          : {}),
      }),
    );
    const verified = await this.#verify(Key, opts.sha256, body.length, out.VersionId);
    return {
      ...verified,
      key,
      created: true,
      versionId: out.VersionId,
      location: `s3://${this.bucket}/${Key}`,
    };
  }

  /** Compares what the server holds with our SHA-256: its stored checksum if it keeps one, else the bytes. */
  async #verify(
    Key: string,
    sha256: string,
    size: number,
    VersionId?: string,
  ): Promise<Omit<StoredObject, 'key' | 'created' | 'location'>> {
    const head = await this.client.send(
      new HeadObjectCommand({
        Bucket: this.bucket,
        Key,
        ChecksumMode: 'ENABLED',
        ...(VersionId ? { VersionId } : {}),
      }),
    );
    if (head.ContentLength !== size) {
      throw new StoreError(
        `s3://${this.bucket}/${Key}: stored ${head.ContentLength} bytes, uploaded ${size}`,
      );
    }
    const retention =
      head.ObjectLockMode && head.ObjectLockRetainUntilDate
        ? {
            mode: head.ObjectLockMode as 'COMPLIANCE' | 'GOVERNANCE',
            retainUntil: head.ObjectLockRetainUntilDate.toISOString(),
          }
        : undefined;
    // A composite (multipart) checksum ends in "-N" and is not the SHA-256 of the object.
    if (head.ChecksumSHA256 && !head.ChecksumSHA256.includes('-')) {
      const stored = Buffer.from(head.ChecksumSHA256, 'base64').toString('hex');
      if (stored !== sha256)
        throw new StoreError(`s3://${this.bucket}/${Key}: stored SHA-256 ${stored}, ours ${sha256}`);
      return { size, sha256, verifiedBy: 's3-checksum', versionId: head.VersionId ?? VersionId, retention };
    }
    const back = await this.#readBack(Key, VersionId);
    if (back.sha256 !== sha256)
      throw new StoreError(`s3://${this.bucket}/${Key}: read back SHA-256 ${back.sha256}, ours ${sha256}`);
    return { size, sha256, verifiedBy: 'read-back', versionId: head.VersionId ?? VersionId, retention };
  }

  async #readBack(Key: string, VersionId?: string): Promise<{ sha256: string; size: number }> {
    const got = await this.client.send(
      new GetObjectCommand({ Bucket: this.bucket, Key, ...(VersionId ? { VersionId } : {}) }),
    );
    const hash = createHash('sha256');
    let size = 0;
    for await (const chunk of got.Body as Readable) {
      hash.update(chunk as Buffer);
      size += (chunk as Buffer).length;
    }
    return { sha256: hash.digest('hex'), size };
  }

  async head(key: string): Promise<{ size: number; sha256?: string } | undefined> {
    try {
      const h = await this.client.send(
        new HeadObjectCommand({ Bucket: this.bucket, Key: this.#key(key), ChecksumMode: 'ENABLED' }),
      );
      const sha =
        h.ChecksumSHA256 && !h.ChecksumSHA256.includes('-')
          ? Buffer.from(h.ChecksumSHA256, 'base64').toString('hex')
          : undefined;
      return { size: h.ContentLength ?? 0, sha256: sha };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async get(key: string): Promise<Readable> {
    try {
      const got = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.#key(key) }));
      return got.Body as Readable;
    } catch (err) {
      if (isNotFound(err)) throw new StoreNotFoundError(`no evidence object ${key}`);
      throw err;
    }
  }

  async downloadUrl(key: string, opts: { expiresInSeconds: number; filename?: string }): Promise<string> {
    const cmd = new GetObjectCommand({
      Bucket: this.bucket,
      Key: this.#key(key),
      ...(opts.filename
        ? { ResponseContentDisposition: `attachment; filename="${opts.filename.replace(/["\\]/g, '')}"` }
        : {}),
    });
    return getSignedUrl(this.client, cmd, { expiresIn: opts.expiresInSeconds });
  }
}
