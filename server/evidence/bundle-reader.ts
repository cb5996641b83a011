// Reads an evidence bundle — a .tar.gz as produced, or the directory an auditor extracted it
// to — one file at a time, hashing every byte. Small files are kept in memory; the records file
// is handed to a streaming consumer so a bundle of millions of records never sits in memory.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, lstat } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';
import { isSafeBundlePath } from '../../reports/evidence/layout.ts';

export class BundleFormatError extends Error {
  override name = 'BundleFormatError';
}

export interface FileSeen {
  path: string;
  size: number;
  sha256: string;
  /** The content, for every file except the streamed one. */
  content?: Buffer;
}

export interface ReadHooks {
  /** Paths whose content is streamed to `onChunk` instead of kept. */
  streamed: (path: string) => boolean;
  onChunk: (path: string, chunk: Buffer) => void;
  onStreamEnd: (path: string) => void;
  /** Called once a kept file is complete (lets the consumer learn the start state early). */
  onFile?: (file: FileSeen) => void;
}

// zlib's default 16 KiB output chunks make inflating a large bundle several times slower.
const GUNZIP_CHUNK = 256 * 1024;

/** Larger non-streamed files are refused rather than buffered: a bundle is not a memory bomb. */
const MAX_KEPT_FILE = 512 * 1024 * 1024;

async function consume(path: string, source: AsyncIterable<Buffer>, hooks: ReadHooks): Promise<FileSeen> {
  const hash = createHash('sha256');
  let size = 0;
  const streamed = hooks.streamed(path);
  const kept: Buffer[] = [];
  for await (const chunk of source) {
    hash.update(chunk);
    size += chunk.length;
    if (streamed) {
      hooks.onChunk(path, chunk);
    } else {
      if (size > MAX_KEPT_FILE) throw new BundleFormatError(`${path} is larger than ${MAX_KEPT_FILE} bytes`);
      kept.push(chunk);
    }
  }
  if (streamed) hooks.onStreamEnd(path);
  const file: FileSeen = { path, size, sha256: hash.digest('hex') };
  if (!streamed) file.content = Buffer.concat(kept, size);
  if (!streamed) hooks.onFile?.(file);
  return file;
}

async function readArchive(file: string, hooks: ReadHooks): Promise<FileSeen[]> {
  const files: FileSeen[] = [];
  const dirs = new Set<string>();
  const seen = new Set<string>();
  const extract = tar.extract();
  const reading = (async () => {
    for await (const entry of extract) {
      const h = entry.header;
      const name = h.name;
      if (h.type === 'directory') {
        const d = name.replace(/\/$/, '');
        if (!isSafeBundlePath(d)) throw new BundleFormatError(`unsafe directory name in archive: ${JSON.stringify(name)}`);
        dirs.add(d);
        entry.resume();
        continue;
      }
      if (h.type !== 'file' && h.type !== 'contiguous-file') {
        throw new BundleFormatError(`archive member ${JSON.stringify(name)} is a ${h.type}, not a regular file`);
      }
      if (!isSafeBundlePath(name)) throw new BundleFormatError(`unsafe file name in archive: ${JSON.stringify(name)}`);
      if (seen.has(name)) throw new BundleFormatError(`archive holds ${name} twice`);
      seen.add(name);
      files.push(await consume(name, entry as unknown as AsyncIterable<Buffer>, hooks));
    }
  })();
  // A refused member must stop the whole pipeline, not leave it waiting for a reader.
  reading.catch((err) => extract.destroy(err));
  await Promise.all([pipeline(createReadStream(file, { highWaterMark: 1 << 20 }), createGunzip({ chunkSize: GUNZIP_CHUNK }), extract), reading]);
  for (const d of dirs) {
    if (seen.has(d)) throw new BundleFormatError(`${d} is both a file and a directory`);
  }
  return files;
}

async function readDirectory(root: string, hooks: ReadHooks): Promise<FileSeen[]> {
  const paths: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const ent of await readdir(dir, { withFileTypes: true })) {
      const full = join(dir, ent.name);
      const rel = relative(root, full).split(sep).join('/');
      if (ent.isDirectory()) await walk(full);
      else if (ent.isFile()) paths.push(rel);
      else throw new BundleFormatError(`${rel} is not a regular file`);
    }
  };
  await walk(root);
  // The same order as the archive, so the streaming consumer sees the start state first.
  paths.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  const files: FileSeen[] = [];
  for (const p of paths) {
    if (!isSafeBundlePath(p)) throw new BundleFormatError(`unsafe file name: ${JSON.stringify(p)}`);
    files.push(await consume(p, createReadStream(join(root, p), { highWaterMark: 1 << 20 }), hooks));
  }
  return files;
}

/** Every file of the bundle at `path` (a .tar.gz or an extracted directory). */
export async function readBundle(path: string, hooks: ReadHooks): Promise<FileSeen[]> {
  const st = await lstat(path);
  if (st.isDirectory()) return readDirectory(path, hooks);
  if (!st.isFile()) throw new BundleFormatError(`${path} is neither a file nor a directory`);
  return readArchive(path, hooks);
}

/** SHA-256 of a whole file, streamed. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(
    createReadStream(path, { highWaterMark: 1 << 20 }),
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        hash.update(chunk);
        cb();
      },
    }),
  );
  return hash.digest('hex');
}
