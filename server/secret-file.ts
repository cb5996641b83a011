// Private key and secret files in the data directory (log key, evidence key): created once,
// never overwritten, readable by the owner only.
import { constants as fsc } from 'node:fs';
import { link, mkdir, open, readFile, stat, unlink } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { ConfigError } from './errors.ts';

/** Reads a secret file, refusing one that group or others could read. `what` names it in errors. */
export async function readPrivateFile(file: string, what: string): Promise<string> {
  const st = await stat(file);
  if (!st.isFile()) throw new ConfigError(`${what} ${file}: not a regular file`);
  if ((st.mode & 0o077) !== 0) {
    throw new ConfigError(
      `${what} ${file}: permissions ${(st.mode & 0o777).toString(8).padStart(4, '0')} let group or others access ` +
        `the signing key; run chmod 600 ${file}`,
    );
  }
  return readFile(file, 'utf8');
}

/**
 * Writes `text` as a new secret file atomically: a private temporary file, fsynced, then
 * hard-linked into place. link() fails if the name exists, so two processes starting at once
 * cannot overwrite each other's key: the loser reads and returns the winner's.
 */
export async function createPrivateFileOnce(file: string, text: string, what: string): Promise<string> {
  const dir = dirname(file);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = join(dir, `.${basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o600);
  try {
    await fh.writeFile(text, 'utf8');
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await link(tmp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return readPrivateFile(file, what);
  } finally {
    await unlink(tmp);
  }
  const dh = await open(dir, fsc.O_RDONLY);
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
  return text;
}
