// A reproducible tar.gz: the same files always give the same archive bytes. Sorted names, one
// fixed mtime, uid/gid 0 with empty owner names, fixed modes, explicit parent directories, and a
// gzip header with no file name, mtime 0 and a fixed OS byte.
import { createReadStream, createWriteStream } from 'node:fs';
import { createHash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip, constants as zc } from 'node:zlib';
import tar from 'tar-stream';
import { compareBytes } from './manifest.ts';
import { isSafeBundlePath } from './layout.ts';

export type TarSource = { path: string; content: Buffer } | { path: string; file: string; size: number };

export interface ArchiveResult {
  sha256: string;
  size: number;
}

const FILE_MODE = 0o644;
const DIR_MODE = 0o755;
/** RFC 1952 OS byte: zlib writes its build platform's code; pin "Unix" so every platform agrees. */
const GZIP_OS_UNIX = 3;

/** Hashes and counts what passes through; pins the gzip header's OS byte (offset 9). */
class HashingPassThrough extends Transform {
  readonly hash = createHash('sha256');
  size = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.size <= 9 && this.size + chunk.length > 9) {
      chunk = Buffer.from(chunk);
      chunk[9 - this.size] = GZIP_OS_UNIX;
    }
    this.size += chunk.length;
    this.hash.update(chunk);
    cb(null, chunk);
  }
}

function parentDirs(paths: string[]): string[] {
  const dirs = new Set<string>();
  for (const p of paths) {
    const parts = p.split('/');
    for (let i = 1; i < parts.length; i++) dirs.add(`${parts.slice(0, i).join('/')}/`);
  }
  return [...dirs];
}

/** Writes the archive to `outFile` and returns its SHA-256 (hex) and size. */
export async function writeDeterministicTarGz(
  sources: TarSource[],
  outFile: string,
  opts: { mtime: Date; gzipLevel?: number },
): Promise<ArchiveResult> {
  const byPath = new Map<string, TarSource>();
  for (const s of sources) {
    if (!isSafeBundlePath(s.path)) throw new Error(`unsafe archive path ${JSON.stringify(s.path)}`);
    if (byPath.has(s.path)) throw new Error(`duplicate archive path ${s.path}`);
    byPath.set(s.path, s);
  }
  // Whole seconds: tar headers hold seconds, and a fractional Date would round differently.
  const mtime = new Date(Math.floor(opts.mtime.getTime() / 1000) * 1000);
  const names = [...byPath.keys(), ...parentDirs([...byPath.keys()])].sort(compareBytes);
  const common = { mtime, uid: 0, gid: 0, uname: '', gname: '' };

  const pack = tar.pack();
  const gzip = createGzip({ level: opts.gzipLevel ?? 6, strategy: zc.Z_DEFAULT_STRATEGY });
  const hasher = new HashingPassThrough();
  const written = pipeline(pack, gzip, hasher, createWriteStream(outFile));

  const feed = (async () => {
    for (const name of names) {
      if (name.endsWith('/')) {
        await new Promise<void>((res, rej) =>
          pack.entry({ ...common, name, type: 'directory', mode: DIR_MODE }, (err) =>
            err ? rej(err) : res(),
          ),
        );
        continue;
      }
      const src = byPath.get(name)!;
      if ('content' in src) {
        await new Promise<void>((res, rej) =>
          pack.entry(
            { ...common, name, type: 'file', mode: FILE_MODE, size: src.content.length },
            src.content,
            (err) => (err ? rej(err) : res()),
          ),
        );
      } else {
        const sink = pack.entry({ ...common, name, type: 'file', mode: FILE_MODE, size: src.size });
        await pipeline(createReadStream(src.file), sink);
      }
    }
    pack.finalize();
  })();
  // If feeding fails, destroy the pack so the pipeline settles instead of hanging.
  feed.catch((err) => pack.destroy(err));
  await Promise.all([feed, written]);
  return { sha256: hasher.hash.digest('hex'), size: hasher.size };
}
