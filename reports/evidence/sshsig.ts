// OpenSSH signatures (PROTOCOL.sshsig) for Ed25519, written by hand so that an auditor can check
// the manifest with `ssh-keygen -Y verify` and nothing of ours. The format is small: an
// SSH-wire-encoded blob, base64 at 70 columns between BEGIN/END SSH SIGNATURE lines. Ed25519
// signatures are deterministic, so the same manifest and key always give the same bytes.
import { createHash, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';

const MAGIC = Buffer.from('SSHSIG');
const SIG_VERSION = 1;
const KEY_TYPE = 'ssh-ed25519';
const BEGIN = '-----BEGIN SSH SIGNATURE-----';
const END = '-----END SSH SIGNATURE-----';
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

export type SshsigHash = 'sha256' | 'sha512';

export class SshsigError extends Error {
  override name = 'SshsigError';
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

/** SSH wire "string": uint32 length, then the bytes. */
function sshString(data: Uint8Array | string): Buffer {
  const b = typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data);
  return Buffer.concat([u32(b.length), b]);
}

class WireReader {
  #buf: Buffer;
  #pos = 0;
  constructor(buf: Buffer) {
    this.#buf = buf;
  }
  bytes(n: number, what: string): Buffer {
    if (this.#pos + n > this.#buf.length) throw new SshsigError(`truncated ${what}`);
    const out = this.#buf.subarray(this.#pos, this.#pos + n);
    this.#pos += n;
    return out;
  }
  u32(what: string): number {
    return this.bytes(4, what).readUInt32BE();
  }
  string(what: string): Buffer {
    return this.bytes(this.u32(`${what} length`), what);
  }
  end(what: string): void {
    if (this.#pos !== this.#buf.length)
      throw new SshsigError(`${this.#buf.length - this.#pos} trailing bytes after ${what}`);
  }
}

/** The raw 32-byte Ed25519 public key of a KeyObject (public or private). */
export function rawEd25519PublicKey(key: KeyObject): Buffer {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  if (pub.asymmetricKeyType !== 'ed25519')
    throw new SshsigError(`expected an Ed25519 key, got ${pub.asymmetricKeyType}`);
  const der = pub.export({ format: 'der', type: 'spki' });
  return Buffer.from(der.subarray(der.length - 32));
}

export function ed25519PublicKeyFromRaw(raw: Uint8Array): KeyObject {
  if (raw.length !== 32) throw new SshsigError(`an Ed25519 public key is 32 bytes, got ${raw.length}`);
  return createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, raw]), format: 'der', type: 'spki' });
}

/** The SSH wire encoding of an Ed25519 public key (what `ssh-ed25519 AAAA…` base64-encodes). */
export function sshPublicKeyBlob(key: KeyObject): Buffer {
  return Buffer.concat([sshString(KEY_TYPE), sshString(rawEd25519PublicKey(key))]);
}

/** One line of an OpenSSH public key file: `ssh-ed25519 AAAA… comment`. */
export function openSshPublicKeyLine(key: KeyObject, comment?: string): string {
  const line = `${KEY_TYPE} ${sshPublicKeyBlob(key).toString('base64')}`;
  return comment ? `${line} ${comment}` : line;
}

/** What `ssh-keygen -l` prints: SHA256:<unpadded base64 of SHA-256 of the key blob>. */
export function sshFingerprint(key: KeyObject): string {
  return `SHA256:${createHash('sha256').update(sshPublicKeyBlob(key)).digest('base64').replace(/=+$/, '')}`;
}

/** An allowed_signers line restricting the key to one namespace (ssh-keygen(1) ALLOWED SIGNERS). */
export function allowedSignersLine(principal: string, namespace: string, key: KeyObject): string {
  if (/[\s"]/.test(principal))
    throw new SshsigError(`principal must not contain spaces or quotes: ${principal}`);
  if (/["\\]/.test(namespace)) throw new SshsigError(`namespace must not contain quotes: ${namespace}`);
  return `${principal} namespaces="${namespace}" ${openSshPublicKeyLine(key)}`;
}

/** Parses `ssh-ed25519 AAAA… [comment]` into a key; rejects other key types. */
export function parseOpenSshPublicKey(line: string): KeyObject {
  const parts = line.trim().split(/\s+/);
  if (parts[0] !== KEY_TYPE || !parts[1]) throw new SshsigError(`not an ${KEY_TYPE} public key line`);
  return publicKeyFromBlob(Buffer.from(parts[1], 'base64'));
}

function publicKeyFromBlob(blob: Buffer): KeyObject {
  const r = new WireReader(blob);
  const type = r.string('key type').toString('utf8');
  if (type !== KEY_TYPE) throw new SshsigError(`unsupported key type ${JSON.stringify(type)}`);
  const raw = r.string('public key');
  r.end('public key');
  return ed25519PublicKeyFromRaw(raw);
}

function signedData(namespace: string, hashAlg: SshsigHash, message: Uint8Array): Buffer {
  const digest = createHash(hashAlg).update(message).digest();
  return Buffer.concat([MAGIC, sshString(namespace), sshString(''), sshString(hashAlg), sshString(digest)]);
}

function armor(blob: Buffer): string {
  const b64 = blob.toString('base64');
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += 70) lines.push(b64.slice(i, i + 70));
  return `${BEGIN}\n${lines.join('\n')}\n${END}\n`;
}

/** `ssh-keygen -Y sign -n <namespace>` for an Ed25519 private key: the armored signature text. */
export function sshsigSign(
  message: Uint8Array,
  privateKey: KeyObject,
  namespace: string,
  hashAlg: SshsigHash = 'sha512',
): string {
  if (namespace === '') throw new SshsigError('namespace must not be empty');
  const sig = sign(null, signedData(namespace, hashAlg, message), privateKey);
  const blob = Buffer.concat([
    MAGIC,
    u32(SIG_VERSION),
    sshString(sshPublicKeyBlob(privateKey)),
    sshString(namespace),
    sshString(''),
    sshString(hashAlg),
    sshString(Buffer.concat([sshString(KEY_TYPE), sshString(sig)])),
  ]);
  return armor(blob);
}

export interface ParsedSshsig {
  publicKey: KeyObject;
  namespace: string;
  hashAlg: SshsigHash;
  signature: Buffer;
}

export function parseSshsig(text: string): ParsedSshsig {
  const lines = text.replace(/\r\n/g, '\n').trim().split('\n');
  if (lines[0] !== BEGIN || lines[lines.length - 1] !== END)
    throw new SshsigError('not an armored SSH signature');
  const b64 = lines.slice(1, -1).join('');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64)) throw new SshsigError('signature body is not base64');
  const r = new WireReader(Buffer.from(b64, 'base64'));
  if (!r.bytes(6, 'magic').equals(MAGIC)) throw new SshsigError('bad SSHSIG magic');
  const version = r.u32('version');
  if (version !== SIG_VERSION) throw new SshsigError(`unsupported SSHSIG version ${version}`);
  const publicKey = publicKeyFromBlob(r.string('public key'));
  const namespace = r.string('namespace').toString('utf8');
  r.string('reserved');
  const hashAlg = r.string('hash algorithm').toString('utf8');
  if (hashAlg !== 'sha256' && hashAlg !== 'sha512')
    throw new SshsigError(`unsupported hash algorithm ${hashAlg}`);
  const sigBlob = new WireReader(r.string('signature'));
  r.end('signature');
  const sigType = sigBlob.string('signature type').toString('utf8');
  if (sigType !== KEY_TYPE) throw new SshsigError(`unsupported signature type ${sigType}`);
  const signature = sigBlob.string('signature bytes');
  sigBlob.end('signature blob');
  if (signature.length !== 64)
    throw new SshsigError(`an Ed25519 signature is 64 bytes, got ${signature.length}`);
  return { publicKey, namespace, hashAlg, signature };
}

/**
 * `ssh-keygen -Y verify`: the signature must be over `message`, in `namespace`, by a key equal
 * to `trustedKey`. Throws SshsigError naming what did not match.
 */
export function sshsigVerify(
  message: Uint8Array,
  text: string,
  trustedKey: KeyObject,
  namespace: string,
): void {
  const parsed = parseSshsig(text);
  if (parsed.namespace !== namespace) {
    throw new SshsigError(
      `signature namespace is ${JSON.stringify(parsed.namespace)}, expected ${JSON.stringify(namespace)}`,
    );
  }
  if (!rawEd25519PublicKey(parsed.publicKey).equals(rawEd25519PublicKey(trustedKey))) {
    throw new SshsigError(
      `signed by ${sshFingerprint(parsed.publicKey)}, expected ${sshFingerprint(trustedKey)}`,
    );
  }
  if (!verify(null, signedData(namespace, parsed.hashAlg, message), trustedKey, parsed.signature)) {
    throw new SshsigError('signature does not match the message');
  }
}
