// The log signing key: created once with private permissions, loaded afterwards, refused when
// it is exposed or belongs to another origin.
import test from 'ava';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../server/errors.ts';
import { loadLogKey, loadOrCreateLogKey } from '../server/audit/log-key.ts';
import {
  generateSignerKey,
  openNote,
  parseVerifierKey,
  signNote,
  verifierKey,
} from '../server/audit/note.ts';

function tempDir(t: import('ava').ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'auditgate-key-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('first start creates a 0600 key named for the origin in a new directory; later starts load it', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'data', 'keys', 'log-key');
  const a = await loadOrCreateLogKey(file, 'gw.example/log');
  t.is(a.name, 'gw.example/log');
  t.is(statSync(file).mode & 0o777, 0o600);
  t.is(statSync(join(dir, 'data', 'keys')).mode & 0o077, 0, 'the key directory is private too');
  t.regex(readFileSync(file, 'utf8'), /^PRIVATE\+KEY\+gw\.example\/log\+[0-9a-f]{8}\+/);
  const b = await loadOrCreateLogKey(file, 'gw.example/log');
  t.is(verifierKey(b), verifierKey(a));
  // The loaded key signs what the first one's verifier accepts.
  const note = signNote('gw.example/log\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n', [b]);
  t.deepEqual(openNote(note, [parseVerifierKey(verifierKey(a))]).verified, ['gw.example/log']);
  t.is(verifierKey(await loadLogKey(file, 'gw.example/log')), verifierKey(a));
});

test('concurrent first starts end up with one key', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'log-key');
  const keys = await Promise.all(Array.from({ length: 8 }, () => loadOrCreateLogKey(file, 'o/log')));
  t.is(new Set(keys.map((k) => verifierKey(k))).size, 1);
  t.is(verifierKey(await loadOrCreateLogKey(file, 'o/log')), verifierKey(keys[0]!));
});

test('a key readable by group or others is refused with the fix in the message', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'log-key');
  await loadOrCreateLogKey(file, 'o/log');
  for (const mode of [0o640, 0o604, 0o660]) {
    chmodSync(file, mode);
    const err = await t.throwsAsync(loadOrCreateLogKey(file, 'o/log'), { instanceOf: ConfigError });
    t.is(
      err!.message,
      `log key ${file}: permissions 0${mode.toString(8)} let group or others access the signing key; run chmod 600 ${file}`,
    );
  }
});

test('a key named for another origin is refused', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'log-key');
  writeFileSync(file, `${generateSignerKey('other.example/log')}\n`, { mode: 0o600 });
  const err = await t.throwsAsync(loadOrCreateLogKey(file, 'gw.example/log'), { instanceOf: ConfigError });
  t.regex(
    err!.message,
    /key name "other\.example\/log" differs from the log origin "gw\.example\/log" \(AUDITGATE_LOG_ORIGIN\)/,
  );
});

test('a file that is not a key is refused; loadLogKey never creates one', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'log-key');
  writeFileSync(file, 'hello\n', { mode: 0o600 });
  await t.throwsAsync(loadOrCreateLogKey(file, 'o/log'), {
    instanceOf: ConfigError,
    message: /not a C2SP signed-note private key/,
  });
  const absent = join(dir, 'absent');
  await t.throwsAsync(loadLogKey(absent, 'o/log'), { instanceOf: ConfigError, message: /no such file/ });
  t.throws(() => statSync(absent));
});
