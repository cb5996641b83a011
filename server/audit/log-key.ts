// The log's Ed25519 signing key: created once on first start, then only ever loaded. Losing or
// leaking it is serious (checkpoints are signed with it), so the file must stay private and must
// belong to this log's origin.
import { ConfigError } from '../errors.ts';
import { createPrivateFileOnce, readPrivateFile } from '../secret-file.ts';
import { generateSignerKey, parseSignerKey, type NoteSigner } from './note.ts';

export async function loadOrCreateLogKey(file: string, origin: string): Promise<NoteSigner> {
  let text: string;
  try {
    text = await readPrivateFile(file, 'log key');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    text = await createPrivateFileOnce(file, `${generateSignerKey(origin)}\n`, 'log key');
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
    text = await readPrivateFile(file, 'log key');
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
