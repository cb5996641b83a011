// The evidence signing key: Ed25519, separate from the log key (the log key vouches for the
// tree, this one for the bundle manifest), created once on first use as a PKCS#8 PEM file with
// mode 0600, then only ever loaded. Creation links a private temporary file into place, so two
// processes starting at once end up with the same key.
import { createPrivateKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { ConfigError } from '../errors.ts';
import { createPrivateFileOnce, readPrivateFile } from '../secret-file.ts';

async function create(file: string): Promise<string> {
  const { privateKey } = generateKeyPairSync('ed25519');
  return createPrivateFileOnce(
    file,
    privateKey.export({ format: 'pem', type: 'pkcs8' }) as string,
    'evidence key',
  );
}

/** Loads the evidence signing key from `file`, creating it on first use. */
export async function loadOrCreateEvidenceKey(file: string): Promise<KeyObject> {
  let pem: string;
  try {
    pem = await readPrivateFile(file, 'evidence key');
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
