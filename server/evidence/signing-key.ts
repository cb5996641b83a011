// The evidence signing key: Ed25519, separate from the log key (the log key vouches for the
// tree, this one for the bundle manifest), created once on first use as a PKCS#8 PEM file with
// mode 0600, then only ever loaded. Creation links a private temporary file into place, so two
// processes starting at once end up with the same key.
import { constants as fsc } from 'node:fs';
import { link, mkdir, open, readFile, stat, unlink } from 'node:fs/promises';
import { createPrivateKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { ConfigError } from '../errors.ts';

async function readPrivate(file: string): Promise<string> {
  const st = await stat(file);
  if (!st.isFile()) throw new ConfigError(`evidence key ${file}: not a regular file`);
  if ((st.mode & 0o077) !== 0) {
    throw new ConfigError(
      `evidence key ${file}: permissions ${(st.mode & 0o777).toString(8).padStart(4, '0')} let group or others read the signing key; run chmod 600 ${file}`,
    );
  }
  return readFile(file, 'utf8');
}

async function create(file: string): Promise<string> {
  const dir = dirname(file);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const { privateKey } = generateKeyPairSync('ed25519');
  const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
  const tmp = join(dir, `.${basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o600);
  try {
    await fh.writeFile(pem, 'utf8');
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await link(tmp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return readPrivate(file);
  } finally {
    await unlink(tmp);
  }
  const dh = await open(dir, fsc.O_RDONLY);
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
  return pem;
}

/** Loads the evidence signing key from `file`, creating it on first use. */
export async function loadOrCreateEvidenceKey(file: string): Promise<KeyObject> {
  let pem: string;
  try {
    pem = await readPrivate(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    pem = await create(file);
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (err) {
    throw new ConfigError(`evidence key ${file}: not a PEM private key (${(err as Error).message})`);
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new ConfigError(`evidence key ${file}: expected an Ed25519 key, got ${key.asymmetricKeyType}`);
  }
  return key;
}
