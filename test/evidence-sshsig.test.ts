// Our SSHSIG code against OpenSSH itself, in both directions: ssh-keygen accepts what we sign,
// and we accept exactly what ssh-keygen signs (and refuse it for another message or namespace).
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './helpers/evidence-fixture.ts';
import {
  allowedSignersLine,
  parseOpenSshPublicKey,
  parseSshsig,
  sshFingerprint,
  sshsigSign,
  sshsigVerify,
} from '../reports/evidence/sshsig.ts';

const NS = 'auditgate-evidence@v1';

test('ssh-keygen -Y verify accepts our signatures (sha512 and sha256) and -l prints our fingerprint', (t) => {
  const dir = tempDir(t);
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const msg = Buffer.from('a\nmanifest\n');
  writeFileSync(join(dir, 'msg'), msg);
  writeFileSync(join(dir, 'allowed'), `${allowedSignersLine('ev@x', NS, publicKey)}\n`);
  for (const alg of ['sha512', 'sha256'] as const) {
    writeFileSync(join(dir, `msg.${alg}.sig`), sshsigSign(msg, privateKey, NS, alg));
    const r = spawnSync('ssh-keygen', ['-Y', 'verify', '-f', 'allowed', '-I', 'ev@x', '-n', NS, '-s', `msg.${alg}.sig`], {
      cwd: dir,
      input: msg,
      encoding: 'utf8',
    });
    t.is(r.status, 0, r.stderr);
    // The namespace restriction in allowed_signers is enforced by OpenSSH too.
    const wrongNs = spawnSync('ssh-keygen', ['-Y', 'verify', '-f', 'allowed', '-I', 'ev@x', '-n', 'file', '-s', `msg.${alg}.sig`], {
      cwd: dir,
      input: msg,
    });
    t.not(wrongNs.status, 0);
  }
  writeFileSync(join(dir, 'k.pub'), `${allowedSignersLine('ev@x', NS, publicKey).split(' ').slice(2).join(' ')}\n`);
  const fp = spawnSync('ssh-keygen', ['-l', '-f', 'k.pub'], { cwd: dir, encoding: 'utf8' });
  t.is(fp.status, 0, fp.stderr);
  t.true(fp.stdout.includes(sshFingerprint(publicKey)));
});

test('we accept what ssh-keygen -Y sign writes, and only for that message, namespace and key', (t) => {
  const dir = tempDir(t);
  const gen = spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'test', '-f', join(dir, 'id')]);
  t.is(gen.status, 0);
  const msg = Buffer.from('hello\n');
  writeFileSync(join(dir, 'm'), msg);
  const s = spawnSync('ssh-keygen', ['-Y', 'sign', '-f', join(dir, 'id'), '-n', NS, join(dir, 'm')]);
  t.is(s.status, 0, String(s.stderr));
  const sig = readFileSync(join(dir, 'm.sig'), 'utf8');
  const key = parseOpenSshPublicKey(readFileSync(join(dir, 'id.pub'), 'utf8'));
  t.notThrows(() => sshsigVerify(msg, sig, key, NS));
  t.is(parseSshsig(sig).hashAlg, 'sha512');
  t.throws(() => sshsigVerify(Buffer.from('hello!\n'), sig, key, NS), { message: /does not match/ });
  t.throws(() => sshsigVerify(msg, sig, key, 'file'), { message: /namespace/ });
  t.throws(() => sshsigVerify(msg, sig, generateKeyPairSync('ed25519').publicKey, NS), { message: /signed by SHA256:/ });
  // Armour damage is refused, not misread.
  t.throws(() => parseSshsig(sig.replace('-----END SSH SIGNATURE-----', '')), { message: /armored/ });
  const lines = sig.trim().split('\n');
  lines[1] = lines[1]!.slice(0, 20);
  t.throws(() => sshsigVerify(msg, lines.join('\n'), key, NS));
});
