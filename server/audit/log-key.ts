// The log's Ed25519 signing key: created once on first start, then only ever loaded. Losing or
// leaking it is serious (checkpoints are signed with it), so the file must stay private and must
// belong to this log's origin.
import { constants as fsc } from 'node:fs';
import { mkdir, open, link, unlink, stat, readFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { ConfigError } from '../errors.ts';
import { generateSignerKey, parseSignerKey, type NoteSigner } from './note.ts';

export async function loadOrCreateLogKey(file: string, origin: string): Promise<NoteSigner> {
  let text: string;
  try {
    text = await readPrivateFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    text = await createKeyFile(file, origin);
  }
  return checkKey(file, text, origin);
}

function checkKey(file: string, text: string, origin: string): NoteSigner {
  let signer: NoteSigner;
  try {
    signer = parseSignerKey(text.trim());
  } catch (err) {
    throw new ConfigError(`log key ${file}: not a C2SP signed-note private key (${(err as Error).message})`);
  }
  if (signer.name !== origin) {
    throw new ConfigError(
      `log key ${file}: key name ${JSON.stringify(signer.name)} differs from the log origin ${JSON.stringify(origin)} ` +
        '(AUDITGATE_LOG_ORIGIN); checkpoints must be signed by a key named after their origin',
    );
  }
  return signer;
}

/** Loads an existing key only (for tools that must never create one, like `log fsck`). */
export async function loadLogKey(file: string, origin: string): Promise<NoteSigner> {
  let text: string;
  try {
    text = await readPrivateFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new ConfigError(
        `log key ${file}: no such file (set AUDITGATE_LOG_KEY_FILE, or pass the verifier key)`,
      );
    }
    throw err;
  }
  return checkKey(file, text, origin);
}

async function readPrivateFile(file: string): Promise<string> {
  const st = await stat(file);
  if (!st.isFile()) throw new ConfigError(`log key ${file}: not a regular file`);
  if ((st.mode & 0o077) !== 0) {
    throw new ConfigError(
      `log key ${file}: permissions ${(st.mode & 0o777).toString(8).padStart(4, '0')} let group or others access ` +
        `the signing key; run chmod 600 ${file}`,
    );
  }
  return readFile(file, 'utf8');
}

/**
 * Writes a new key atomically: a private temporary file, fsynced, then hard-linked into place.
 * link() fails if the name exists, so two processes starting at once cannot overwrite each
 * other's key: the loser reads the winner's.
 */
async function createKeyFile(file: string, origin: string): Promise<string> {
  const dir = dirname(file);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const text = `${generateSignerKey(origin)}\n`;
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
    return readPrivateFile(file);
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
