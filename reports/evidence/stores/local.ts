// The default store: a directory (under the data dir). Files are written to a temporary name,
// fsynced, hard-linked into place (link() never replaces an existing file, so two writers cannot
// overwrite each other) and made read-only, then read back and hashed.
import { constants as fsc, createReadStream } from 'node:fs';
import { chmod, copyFile, link, mkdir, open, stat, unlink } from 'node:fs/promises';
import { createHash, randomBytes } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Writable, type Readable } from 'node:stream';
import {
  StoreConflictError,
  StoreNotFoundError,
  checkKey,
  type EvidenceStore,
  type PutOptions,
  type StoredObject,
} from './store.ts';

async function sha256OfFile(file: string): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  await pipeline(
    createReadStream(file, { highWaterMark: 1 << 20 }),
    new Writable({
      write(chunk: Buffer, _e, cb) {
        hash.update(chunk);
        size += chunk.length;
        cb();
      },
    }),
  );
  return { sha256: hash.digest('hex'), size };
}

export class LocalDirectoryStore implements EvidenceStore {
  readonly kind = 'local' as const;
  readonly directory: string;

  constructor(directory: string) {
    this.directory = resolve(directory);
  }

  describe() {
    return { kind: this.kind, directory: this.directory };
  }

  #path(key: string): string {
    return join(this.directory, ...checkKey(key).split('/'));
  }

  async put(key: string, file: string, opts: PutOptions): Promise<StoredObject> {
    const target = this.#path(key);
    await mkdir(dirname(target), { recursive: true, mode: 0o700 });
    const tmp = join(dirname(target), `.${randomBytes(8).toString('hex')}.tmp`);
    let created = true;
    try {
      await copyFile(file, tmp, fsc.COPYFILE_EXCL);
      // Read-only before it gets its name: the link shares the inode, so it appears read-only.
      await chmod(tmp, 0o400);
      const fh = await open(tmp, fsc.O_RDONLY);
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
      await link(tmp, target);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      created = false;
    } finally {
      await unlink(tmp).catch(() => {});
    }
    if (created) {
      const dh = await open(dirname(target), fsc.O_RDONLY);
      try {
        await dh.sync();
      } finally {
        await dh.close();
      }
    }
    const back = await sha256OfFile(target);
    if (back.sha256 !== opts.sha256) {
      if (!created)
        throw new StoreConflictError(
          `${key} already holds other bytes (SHA-256 ${back.sha256}); evidence is write-once`,
        );
      throw new StoreConflictError(
        `${key}: stored SHA-256 ${back.sha256} differs from the bundle's ${opts.sha256}`,
      );
    }
    return {
      key,
      size: back.size,
      sha256: back.sha256,
      verifiedBy: 'read-back',
      created,
      retention: opts.retention && {
        mode: opts.retention.mode,
        retainUntil: opts.retention.retainUntil.toISOString(),
      },
      location: target,
    };
  }

  async head(key: string): Promise<{ size: number; sha256: string } | undefined> {
    try {
      await stat(this.#path(key));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    return sha256OfFile(this.#path(key));
  }

  async get(key: string): Promise<Readable> {
    const p = this.#path(key);
    try {
      await stat(p);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT')
        throw new StoreNotFoundError(`no evidence object ${key}`);
      throw err;
    }
    return createReadStream(p);
  }

  async downloadUrl(): Promise<undefined> {
    return undefined;
  }
}
