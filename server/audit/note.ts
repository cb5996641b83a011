// C2SP signed-note v1, tlog-checkpoint v1 and tlog-cosignature v1, with Ed25519 from
// node:crypto. Our checkpoints must verify with the ecosystem's tools (Go's sumdb/note,
// litetlog, witnesses) so the formats follow the C2SP specs byte for byte; see
// /work/shared/reference/merkle-log.md.
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  randomBytes,
  sign,
  verify,
  type KeyObject,
} from 'node:crypto';

/** Signature type bytes (C2SP signed-note "signature types"). */
const SIG_TYPE_ED25519 = 0x01;
const SIG_TYPE_COSIGNATURE_V1 = 0x04;

const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SIG_LINE_PREFIX = '\u2014 ';
const PRIVATE_KEY_PREFIX = 'PRIVATE+KEY+';
const MAX_SIGNATURE_LINES = 100;
const ED25519_SIG_SIZE = 64;
const ROOT_SIZE = 32;

export type NoteErrorCode = 'malformed' | 'bad-key' | 'invalid-signature' | 'unverified';

/**
 * Any rejected note, key or checkpoint. `code` separates "the text is broken" from "a known key's
 * signature is wrong" and "no key we trust signed it", which callers answer differently.
 */
export class NoteError extends Error {
  override name = 'NoteError';
  readonly code: NoteErrorCode;
  constructor(message: string, code: NoteErrorCode = 'malformed') {
    super(message);
    this.code = code;
  }
}

export interface NoteSigner {
  name: string;
  /** 4 bytes. */
  keyId: Buffer;
  /** 32-byte Ed25519 public key. */
  publicKey: Buffer;
  /** Signature bytes as they follow the key ID in a signature line. */
  sign(msg: Buffer): Buffer;
}

export interface NoteVerifier {
  name: string;
  keyId: Buffer;
  /** `sig` excludes the 4-byte key ID. */
  verify(msg: Buffer, sig: Buffer): boolean;
}

export interface OpenedNote {
  body: string;
  /** Names of the known keys whose signatures verified. */
  verified: string[];
  /** Signatures from keys the caller did not supply; not checked. */
  unverified: { name: string; keyId: Buffer }[];
}

export interface Checkpoint {
  origin: string;
  size: number;
  root: Buffer;
  extensions: string[];
}

// Go's isValidName: non-empty, no Unicode space, no '+'. Control characters and lone
// surrogates (invalid UTF-8 once encoded) are rejected too.
const BAD_NAME_CHAR = /[\s+\p{Cc}\p{Cs}]/u;
const STRICT_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function checkName(name: string, what = 'key name'): void {
  if (typeof name !== 'string' || name === '') throw new NoteError(`${what} is empty`, 'bad-key');
  const bad = BAD_NAME_CHAR.exec(name);
  if (bad) {
    throw new NoteError(
      `${what} ${JSON.stringify(name)} contains U+${bad[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`,
      'bad-key',
    );
  }
}

/** Standard base64 with padding, canonical (the re-encoding must give the same text). */
function decodeBase64(text: string, what: string, code: NoteErrorCode = 'malformed'): Buffer {
  if (!STRICT_BASE64.test(text)) throw new NoteError(`${what} is not standard padded base64`, code);
  const bytes = Buffer.from(text, 'base64');
  if (bytes.toString('base64') !== text) throw new NoteError(`${what} is not canonical base64`, code);
  return bytes;
}

/** Splits at the first `sep`; the tail keeps any further separators (base64 may contain '+'). */
function chop(s: string, sep: string): [string, string | undefined] {
  const i = s.indexOf(sep);
  return i < 0 ? [s, undefined] : [s.slice(0, i), s.slice(i + sep.length)];
}

function keyIdForType(name: string, sigType: number, key: Buffer): Buffer {
  return createHash('sha256')
    .update(Buffer.from(name, 'utf8'))
    .update(Buffer.from([0x0a, sigType]))
    .update(key)
    .digest()
    .subarray(0, 4);
}

/** C2SP key ID of an Ed25519 (type 0x01) key: SHA-256(name || 0x0A || 0x01 || key)[:4]. */
export function keyIdFor(name: string, publicKey: Buffer): Buffer {
  return keyIdForType(name, SIG_TYPE_ED25519, publicKey);
}

function ed25519KeysFromSeed(seed: Buffer): { privateKey: KeyObject; publicKey: Buffer } {
  if (!Buffer.isBuffer(seed) || seed.length !== 32) {
    throw new NoteError(`Ed25519 seed must be 32 bytes, got ${seed?.length}`, 'bad-key');
  }
  const privateKey = createPrivateKey({
    key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]),
    format: 'der',
    type: 'pkcs8',
  });
  const spki = createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
  return { privateKey, publicKey: Buffer.from(spki.subarray(SPKI_ED25519_PREFIX.length)) };
}

function ed25519PublicKey(raw: Buffer): KeyObject {
  return createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, raw]), format: 'der', type: 'spki' });
}

function ed25519Verify(key: KeyObject, msg: Buffer, sig: Buffer): boolean {
  if (sig.length !== ED25519_SIG_SIZE) return false;
  try {
    return verify(null, msg, key, sig);
  } catch {
    return false;
  }
}

export function signerFromSeed(name: string, seed: Buffer): NoteSigner {
  checkName(name);
  const { privateKey, publicKey } = ed25519KeysFromSeed(seed);
  return {
    name,
    keyId: keyIdFor(name, publicKey),
    publicKey,
    sign: (msg: Buffer) => sign(null, msg, privateKey),
  };
}

function signerKeyText(name: string, keyId: Buffer, seed: Buffer): string {
  return `${PRIVATE_KEY_PREFIX}${name}+${keyId.toString('hex')}+${Buffer.concat([Buffer.from([SIG_TYPE_ED25519]), seed]).toString('base64')}`;
}

/** A new random signer key in the Go/C2SP text form; it is a secret. */
export function generateSignerKey(name: string): string {
  checkName(name);
  const seed = randomBytes(32);
  return signerKeyText(name, signerFromSeed(name, seed).keyId, seed);
}

/** Parses "PRIVATE+KEY+<name>+<hex id>+<base64(0x01 || seed)>"; surrounding whitespace is ignored. */
export function parseSignerKey(text: string): NoteSigner {
  if (typeof text !== 'string') throw new NoteError('signer key must be a string', 'bad-key');
  const trimmed = text.trim();
  if (!trimmed.startsWith(PRIVATE_KEY_PREFIX)) {
    throw new NoteError(`signer key must start with ${PRIVATE_KEY_PREFIX}`, 'bad-key');
  }
  const [name, rest] = chop(trimmed.slice(PRIVATE_KEY_PREFIX.length), '+');
  const [idHex, key64] = rest === undefined ? ['', undefined] : chop(rest, '+');
  if (key64 === undefined) throw new NoteError('signer key must be PRIVATE+KEY+<name>+<id>+<key>', 'bad-key');
  checkName(name);
  if (!/^[0-9a-fA-F]{8}$/.test(idHex)) throw new NoteError('signer key ID must be 8 hex digits', 'bad-key');
  const key = decodeBase64(key64, 'signer key', 'bad-key');
  if (key.length !== 33 || key[0] !== SIG_TYPE_ED25519) {
    throw new NoteError('signer key must be an Ed25519 key (0x01 followed by a 32-byte seed)', 'bad-key');
  }
  const signer = signerFromSeed(name, key.subarray(1));
  if (!signer.keyId.equals(Buffer.from(idHex, 'hex'))) {
    throw new NoteError(
      `signer key ID ${idHex} does not match the key (${signer.keyId.toString('hex')})`,
      'bad-key',
    );
  }
  return signer;
}

/** The public verifier key "<name>+<8 hex key ID>+<base64(0x01 || public key)>". */
export function verifierKey(signer: { name: string; publicKey: Buffer }): string {
  checkName(signer.name);
  const id = keyIdFor(signer.name, signer.publicKey);
  return `${signer.name}+${id.toString('hex')}+${Buffer.concat([Buffer.from([SIG_TYPE_ED25519]), signer.publicKey]).toString('base64')}`;
}

/** Splits and checks a vkey of the given signature type; returns name, key ID and raw key. */
function parseVkey(vkey: string, sigType: number): { name: string; keyId: Buffer; publicKey: Buffer } {
  if (typeof vkey !== 'string') throw new NoteError('verifier key must be a string', 'bad-key');
  const [name, rest] = chop(vkey.trim(), '+');
  const [idHex, key64] = rest === undefined ? ['', undefined] : chop(rest, '+');
  if (key64 === undefined) throw new NoteError('verifier key must be <name>+<id>+<key>', 'bad-key');
  checkName(name);
  if (!/^[0-9a-fA-F]{8}$/.test(idHex)) throw new NoteError('verifier key ID must be 8 hex digits', 'bad-key');
  const key = decodeBase64(key64, 'verifier key', 'bad-key');
  if (key.length === 0) throw new NoteError('verifier key is empty', 'bad-key');
  if (key[0] !== sigType) {
    throw new NoteError(
      `verifier key has signature type 0x${key[0]!.toString(16).padStart(2, '0')}, expected 0x0${sigType}`,
      'bad-key',
    );
  }
  if (key.length !== 33)
    throw new NoteError(`verifier key must hold a 32-byte Ed25519 key, got ${key.length - 1}`, 'bad-key');
  const keyId = keyIdForType(name, sigType, key.subarray(1));
  if (!keyId.equals(Buffer.from(idHex, 'hex'))) {
    throw new NoteError(
      `verifier key ID ${idHex} does not match the key (${keyId.toString('hex')})`,
      'bad-key',
    );
  }
  return { name, keyId, publicKey: Buffer.from(key.subarray(1)) };
}

export function parseVerifierKey(vkey: string): NoteVerifier {
  const { name, keyId, publicKey } = parseVkey(vkey, SIG_TYPE_ED25519);
  const key = ed25519PublicKey(publicKey);
  return { name, keyId, verify: (msg, sig) => ed25519Verify(key, msg, sig) };
}

/** The first character signed-note forbids in a note: any control character but '\n', or a lone surrogate. */
function forbiddenNoteChar(text: string): number | undefined {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if ((c < 0x20 && c !== 0x0a) || (c >= 0x7f && c <= 0x9f)) return c;
    if (c >= 0xd800 && c <= 0xdbff) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) i++;
      else return c;
    } else if (c >= 0xdc00 && c <= 0xdfff) return c;
  }
  return undefined;
}

function checkNoteText(text: string, what: string): void {
  const cp = forbiddenNoteChar(text);
  if (cp !== undefined) {
    const desc =
      cp === 0x0d
        ? 'a carriage return (CRLF line endings?)'
        : cp >= 0xd800
          ? 'an unpaired surrogate (not valid UTF-8)'
          : `control character U+${cp.toString(16).toUpperCase().padStart(4, '0')}`;
    throw new NoteError(`${what} contains ${desc}`);
  }
}

/** Signs `body` (which must end in "\n") and returns the signed note text. */
export function signNote(body: string, signers: NoteSigner[]): string {
  if (typeof body !== 'string' || body === '') throw new NoteError('note body is empty');
  if (!body.endsWith('\n')) throw new NoteError('note body must end with a newline');
  checkNoteText(body, 'note body');
  if (signers.length === 0) throw new NoteError('a note needs at least one signer');
  if (signers.length > MAX_SIGNATURE_LINES) throw new NoteError(`more than ${MAX_SIGNATURE_LINES} signers`);
  const msg = Buffer.from(body, 'utf8');
  const lines = signers.map((s) => {
    checkName(s.name);
    if (s.keyId.length !== 4) throw new NoteError(`key ID of ${s.name} must be 4 bytes`, 'bad-key');
    return `${SIG_LINE_PREFIX}${s.name} ${Buffer.concat([s.keyId, s.sign(msg)]).toString('base64')}\n`;
  });
  return `${body}\n${lines.join('')}`;
}

/**
 * Parses a signed note and checks it against `verifiers`. Signatures from unknown keys are
 * listed but not checked; any bad signature from a known key rejects the whole note, and so
 * does a note that no known key signed. Bytes are decoded as strict UTF-8.
 */
export function openNote(input: string | Uint8Array, verifiers: NoteVerifier[]): OpenedNote {
  let text: string;
  if (typeof input === 'string') text = input;
  else {
    try {
      text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(input);
    } catch {
      throw new NoteError('note is not valid UTF-8');
    }
  }
  checkNoteText(text, 'note');
  const split = text.lastIndexOf('\n\n');
  if (split < 0) throw new NoteError('note has no blank line before its signatures');
  const body = text.slice(0, split + 1);
  const sigBlock = text.slice(split + 2);
  if (sigBlock === '') throw new NoteError('note has no signature lines');
  if (!sigBlock.endsWith('\n')) throw new NoteError('note does not end with a newline');
  const lines = sigBlock.slice(0, -1).split('\n');
  if (lines.length > MAX_SIGNATURE_LINES)
    throw new NoteError(`note has more than ${MAX_SIGNATURE_LINES} signatures`);

  const msg = Buffer.from(body, 'utf8');
  const verified = new Set<string>();
  const unverified: { name: string; keyId: Buffer }[] = [];
  const seenUnknown = new Set<string>();
  lines.forEach((line, i) => {
    const where = `signature line ${i + 1}`;
    if (!line.startsWith(SIG_LINE_PREFIX)) throw new NoteError(`${where} does not start with "\u2014 "`);
    const [name, sig64] = chop(line.slice(SIG_LINE_PREFIX.length), ' ');
    if (sig64 === undefined || sig64 === '') throw new NoteError(`${where} has no signature`);
    try {
      checkName(name);
    } catch (e) {
      throw new NoteError(`${where}: ${(e as Error).message}`);
    }
    const raw = decodeBase64(sig64, `${where} signature`);
    if (raw.length < 5) throw new NoteError(`${where} signature is too short`);
    const keyId = raw.subarray(0, 4);
    const sig = raw.subarray(4);
    const candidates = verifiers.filter((v) => v.name === name && v.keyId.equals(keyId));
    if (candidates.length === 0) {
      if (!seenUnknown.has(line)) {
        seenUnknown.add(line);
        unverified.push({ name, keyId: Buffer.from(keyId) });
      }
      return;
    }
    if (!candidates.some((v) => v.verify(msg, sig))) {
      throw new NoteError(
        `invalid signature from ${name} (key ${keyId.toString('hex')})`,
        'invalid-signature',
      );
    }
    verified.add(name);
  });
  if (verified.size === 0) throw new NoteError('note is not signed by any known key', 'unverified');
  return { body, verified: [...verified], unverified };
}

// ---- C2SP tlog-checkpoint ----

function checkLine(line: string, what: string): void {
  if (typeof line !== 'string' || line === '') throw new NoteError(`checkpoint ${what} is empty`);
  if (line.includes('\n')) throw new NoteError(`checkpoint ${what} contains a newline`);
  checkNoteText(line, `checkpoint ${what}`);
}

/** The checkpoint body: origin, size, base64 root, then any extension lines, each ending "\n". */
export function formatCheckpoint(c: {
  origin: string;
  size: number;
  root: Buffer;
  extensions?: string[];
}): string {
  checkLine(c.origin, 'origin');
  if (!Number.isSafeInteger(c.size) || c.size < 0)
    throw new NoteError(`checkpoint size ${c.size} is not a valid size`);
  if (!Buffer.isBuffer(c.root) || c.root.length !== ROOT_SIZE) {
    throw new NoteError(`checkpoint root must be ${ROOT_SIZE} bytes`);
  }
  const ext = c.extensions ?? [];
  ext.forEach((e, i) => checkLine(e, `extension line ${i + 1}`));
  return [c.origin, String(c.size), c.root.toString('base64'), ...ext].map((l) => `${l}\n`).join('');
}

/** Parses a checkpoint body strictly (sizes beyond 2^53 − 1 are rejected: we hold them as numbers). */
export function parseCheckpoint(body: string): Checkpoint {
  if (typeof body !== 'string' || !body.endsWith('\n'))
    throw new NoteError('checkpoint must end with a newline');
  checkNoteText(body, 'checkpoint');
  const lines = body.slice(0, -1).split('\n');
  if (lines.length < 3) throw new NoteError(`checkpoint has ${lines.length} lines, needs at least 3`);
  const [origin, sizeText, root64, ...extensions] = lines as [string, string, string, ...string[]];
  if (origin === '') throw new NoteError('checkpoint origin is empty');
  if (!/^(0|[1-9][0-9]*)$/.test(sizeText)) {
    throw new NoteError(`checkpoint size ${JSON.stringify(sizeText)} is not a decimal without leading zeros`);
  }
  const size = Number(sizeText);
  if (!Number.isSafeInteger(size)) throw new NoteError(`checkpoint size ${sizeText} exceeds 2^53 − 1`);
  const root = decodeBase64(root64, 'checkpoint root');
  if (root.length !== ROOT_SIZE)
    throw new NoteError(`checkpoint root is ${root.length} bytes, not ${ROOT_SIZE}`);
  extensions.forEach((e, i) => {
    if (e === '') throw new NoteError(`checkpoint extension line ${i + 1} is empty`);
  });
  return { origin, size, root, extensions };
}

// ---- C2SP tlog-cosignature v1 (signature type 0x04) ----

function cosignedMessage(timestamp: bigint, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`cosignature/v1\ntime ${timestamp}\n`, 'utf8'), body]);
}

/** The vkey of a witness cosigner: "<name>+<id>+<base64(0x04 || public key)>". */
export function cosignatureVerifierKey(signer: { name: string; publicKey: Buffer }): string {
  checkName(signer.name);
  const id = keyIdForType(signer.name, SIG_TYPE_COSIGNATURE_V1, signer.publicKey);
  return `${signer.name}+${id.toString('hex')}+${Buffer.concat([Buffer.from([SIG_TYPE_COSIGNATURE_V1]), signer.publicKey]).toString('base64')}`;
}

/**
 * Verifier for a witness's cosignatures. After a successful verify(), `lastTimestamp` holds the
 * cosigned time (unix seconds).
 */
export function parseCosignatureVerifierKey(vkey: string): NoteVerifier & { lastTimestamp?: number } {
  const { name, keyId, publicKey } = parseVkey(vkey, SIG_TYPE_COSIGNATURE_V1);
  const key = ed25519PublicKey(publicKey);
  const v: NoteVerifier & { lastTimestamp?: number } = {
    name,
    keyId,
    verify(msg, sig) {
      if (sig.length !== 8 + ED25519_SIG_SIZE) return false;
      const t = sig.readBigUInt64BE(0);
      if (t > BigInt(Number.MAX_SAFE_INTEGER)) return false;
      if (!ed25519Verify(key, cosignedMessage(t, msg), sig.subarray(8))) return false;
      v.lastTimestamp = Number(t);
      return true;
    },
  };
  return v;
}

/** A witness-style cosigner; `now` gives unix seconds (the cosignature's time). */
export function cosignerFromSeed(
  name: string,
  seed: Buffer,
  now: () => number = () => Math.floor(Date.now() / 1000),
): NoteSigner {
  checkName(name);
  const { privateKey, publicKey } = ed25519KeysFromSeed(seed);
  return {
    name,
    keyId: keyIdForType(name, SIG_TYPE_COSIGNATURE_V1, publicKey),
    publicKey,
    sign(msg: Buffer) {
      const t = now();
      if (!Number.isSafeInteger(t) || t < 0)
        throw new NoteError(`cosignature time ${t} is not a valid unix time`);
      const time = Buffer.alloc(8);
      time.writeBigUInt64BE(BigInt(t));
      return Buffer.concat([time, sign(null, cosignedMessage(BigInt(t), msg), privateKey)]);
    },
  };
}
