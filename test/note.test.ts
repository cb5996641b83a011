// C2SP signed-note / checkpoint / cosignature: reproduces the worked example in
// /work/shared/testdata/signed-note/example.md (example-only keys derived from public strings)
// byte for byte, and checks that malformed or forged notes are rejected.
import test from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import {
  NoteError,
  cosignatureVerifierKey,
  cosignerFromSeed,
  formatCheckpoint,
  generateSignerKey,
  keyIdFor,
  openNote,
  parseCheckpoint,
  parseCosignatureVerifierKey,
  parseSignerKey,
  parseVerifierKey,
  signNote,
  signerFromSeed,
  verifierKey,
  type NoteVerifier,
} from '../server/audit/note.ts';
import {
  Frontier,
  consistencyProofRanges,
  hashRanges,
  inclusionProofRanges,
  leafHash,
  storedAt,
  verifyConsistency,
  verifyInclusion,
} from '../server/audit/merkle.ts';

const sha256 = (s: string): Buffer => createHash('sha256').update(s).digest();

// ---- The worked example ----
const LOG_NAME = 'audit.example.com/mcp-gateway';
const LOG_SEED = sha256('EXAMPLE ONLY - log seed');
const LOG_VKEY = 'audit.example.com/mcp-gateway+29a88473+Afti+6kMtKsjFjotrK1hERjiAma0bx13rdE9jfiiClQr';
const WITNESS_NAME = 'witness.example.net/w1';
// Not stated in example.md; this seed is the one that reproduces its witness vkey and cosignature.
const WITNESS_SEED = sha256('EXAMPLE ONLY - witness seed');
const WITNESS_VKEY = 'witness.example.net/w1+5d131f69+BLGEnw+ITHq01oN6hVoYXIEFTyGSmYJePoJoL9PCVb57';
const WITNESS_TIME = 1767225600;
const BODY = 'audit.example.com/mcp-gateway\n5\nbNr5kzO51N4yujwwVD+SRWxWCmOIGSQqVuIDq5gKXhY=\n';
const LOG_LINE =
  '— audit.example.com/mcp-gateway KaiEc0ueEXuaJ8wUYK7O2kDAQI+e0Z86TD/y4OhGeTK43lmmdKDwrOip9Gvt9u/Xk7ru34flWUmyNbONRwc3FBjh5AM=\n';
const WITNESS_LINE =
  '— witness.example.net/w1 XRMfaQAAAABpVbkABICYdwAWOENvURVbIIaPAC3hTqDf9aZ5IShnd9b3I8GNjmTcBFf2mhbCxNTonQPGEiuKc6wHHV68KOPklKFRBw==\n';
const NOTE = `${BODY}\n${LOG_LINE}${WITNESS_LINE}`;

const logVerifier = (): NoteVerifier => parseVerifierKey(LOG_VKEY);

function rejects(t: any, f: () => unknown, code: string, message?: RegExp): void {
  const e = t.throws(f, message ? { instanceOf: NoteError, message } : { instanceOf: NoteError });
  if (e) t.is((e as NoteError).code, code, (e as Error).message);
}

test('example seed reproduces the log vkey and signature byte for byte', (t) => {
  t.is(LOG_SEED.toString('hex'), '350019f205c07e504de92a07cfd330eff4e93d3defd93bf3c4b3157ea191f0fa');
  const signer = signerFromSeed(LOG_NAME, LOG_SEED);
  t.is(verifierKey(signer), LOG_VKEY);
  t.is(signer.keyId.toString('hex'), '29a88473');
  t.deepEqual(keyIdFor(LOG_NAME, signer.publicKey), signer.keyId);
  t.is(signNote(BODY, [signer]), `${BODY}\n${LOG_LINE}`);
});

test('example witness cosignature reproduces byte for byte', (t) => {
  const witness = cosignerFromSeed(WITNESS_NAME, WITNESS_SEED, () => WITNESS_TIME);
  t.is(cosignatureVerifierKey(witness), WITNESS_VKEY);
  t.is(signNote(BODY, [signerFromSeed(LOG_NAME, LOG_SEED), witness]), NOTE);
});

test('example vkeys parse although their base64 contains "+"', (t) => {
  const v = logVerifier();
  t.is(v.name, LOG_NAME);
  t.is(v.keyId.toString('hex'), '29a88473');
  const w = parseCosignatureVerifierKey(WITNESS_VKEY);
  t.is(w.name, WITNESS_NAME);
  t.is(w.keyId.toString('hex'), '5d131f69');
  t.is(w.lastTimestamp, undefined);
});

test('example note verifies with the log vkey; the witness line is listed as unverified', (t) => {
  const opened = openNote(NOTE, [logVerifier()]);
  t.is(opened.body, BODY);
  t.deepEqual(opened.verified, [LOG_NAME]);
  t.deepEqual(opened.unverified, [{ name: WITNESS_NAME, keyId: Buffer.from('5d131f69', 'hex') }]);
  // Bytes in, same result.
  t.deepEqual(openNote(Buffer.from(NOTE, 'utf8'), [logVerifier()]).verified, [LOG_NAME]);
});

test('example cosignature verifies with the witness vkey and exposes its time', (t) => {
  const w = parseCosignatureVerifierKey(WITNESS_VKEY);
  const opened = openNote(NOTE, [logVerifier(), w]);
  t.deepEqual(opened.verified.sort(), [LOG_NAME, WITNESS_NAME].sort());
  t.deepEqual(opened.unverified, []);
  t.is(w.lastTimestamp, WITNESS_TIME);
  // A cosignature is over "cosignature/v1\ntime …\n" + body, so it is not an Ed25519 note
  // signature: the same key as a type-0x01 verifier has a different key ID and never matches.
  const wrongType = openNote.bind(null, `${BODY}\n${WITNESS_LINE}`, [logVerifier()]);
  rejects(t, wrongType, 'unverified');
});

test('example checkpoint, inclusion and consistency proofs match our Merkle tree', async (t) => {
  const entries = [0, 1, 2, 3, 4].map((i) =>
    Buffer.from(
      JSON.stringify({
        v: 'mcp-audit/v1',
        seq: i,
        kind: i % 2 === 0 ? 'request' : 'response',
        sha256: sha256(`payload ${i}`).toString('hex'),
      }),
    ),
  );
  t.is(
    entries[2]!.toString(),
    '{"v":"mcp-audit/v1","seq":2,"kind":"request","sha256":"d2a81b0b3d1ea58bbafcd5e3e10e6ec1ac4c0f7e901ecc7cffdcd5a30a1f416a"}',
  );
  const f = new Frontier();
  const rows = entries.map((e) => f.append(leafHash(e)));
  const cp = parseCheckpoint(BODY);
  t.deepEqual(cp, { origin: LOG_NAME, size: 5, root: f.root(), extensions: [] });
  t.is(formatCheckpoint({ origin: LOG_NAME, size: 5, root: f.root() }), BODY);
  const read = async (addrs: { level: number; index: number }[]) =>
    addrs.map((a) => rows[storedAt(a).row]![storedAt(a).position]!);
  const inc = await hashRanges(inclusionProofRanges(2, 5), read);
  t.deepEqual(
    inc.map((h) => h.toString('base64')),
    [
      'xYj6dcwLKV8Iumm7/N3PdOXi28JewwQ7OmU5wRyroMo=',
      'aMXbV492wVt1Jjebp48wJGPBTDnTIxWWc4gXryzTMHc=',
      '5mD+OChGeZyZTO4Tl4AKFgpf9lK2RIqy8rfPBouXtLc=',
    ],
  );
  t.notThrows(() => verifyInclusion(2, 5, leafHash(entries[2]!), inc, cp.root));
  const root3 = Buffer.from('4hycT0svEyv8LKOYDyFaVfaJchlEyox8tpi+k6TAZo8=', 'base64');
  const cons = await hashRanges(consistencyProofRanges(3, 5), read);
  t.deepEqual(
    cons.map((h) => h.toString('base64')),
    [
      'iihoqQ80+P5L3TTZ18JjA9qsf1YsWQS75VHlsy8q+7w=',
      'xYj6dcwLKV8Iumm7/N3PdOXi28JewwQ7OmU5wRyroMo=',
      'aMXbV492wVt1Jjebp48wJGPBTDnTIxWWc4gXryzTMHc=',
      '5mD+OChGeZyZTO4Tl4AKFgpf9lK2RIqy8rfPBouXtLc=',
    ],
  );
  t.notThrows(() => verifyConsistency(3, 5, root3, cp.root, cons));
});

// ---- Rejections ----

test('rejects CRLF line endings and other control characters', (t) => {
  rejects(t, () => openNote(NOTE.replaceAll('\n', '\r\n'), [logVerifier()]), 'malformed', /carriage return/);
  for (const c of ['\r', '\t', '\u0000', '\u001b', '\u007f', '\u0085']) {
    rejects(t, () => openNote(NOTE.replace('\n5\n', `\n5${c}\n`), [logVerifier()]), 'malformed');
    rejects(t, () => signNote(`x${c}\n`, [signerFromSeed(LOG_NAME, LOG_SEED)]), 'malformed');
  }
  rejects(
    t,
    () => openNote(Buffer.concat([Buffer.from(NOTE), Buffer.from([0xff])]), [logVerifier()]),
    'malformed',
    /UTF-8/,
  );
});

test('rejects a missing final newline, a missing blank line and bad signature lines', (t) => {
  const v = [logVerifier()];
  rejects(t, () => openNote(NOTE.slice(0, -1), v), 'malformed', /newline/);
  rejects(t, () => openNote(`${BODY}${LOG_LINE}`, v), 'malformed');
  rejects(t, () => openNote(`${BODY}\n`, v), 'malformed');
  rejects(t, () => openNote(BODY, v), 'malformed');
  rejects(t, () => openNote(`${BODY}\n${LOG_LINE.replace('—', '-')}`, v), 'malformed', /does not start/);
  rejects(t, () => openNote(`${BODY}\n${LOG_LINE.replace('— ', '—')}`, v), 'malformed');
  rejects(t, () => openNote(`${BODY}\n${LOG_LINE.replace('=\n', '\n')}`, v), 'malformed', /base64/);
  rejects(t, () => openNote(`${BODY}\n${LOG_LINE.replace('KaiE', 'Ka!E')}`, v), 'malformed', /base64/);
  rejects(t, () => openNote(`${BODY}\n${LOG_LINE.replace(' Kai', '  Kai')}`, v), 'malformed');
  rejects(t, () => openNote(`${BODY}\n— ${LOG_NAME}\n`, v), 'malformed', /no signature/);
  rejects(t, () => openNote(`${BODY}\n— ${LOG_NAME} AAAA\n`, v), 'malformed', /too short/);
  // The last blank line is the separator, so the log's line would become part of the body.
  rejects(t, () => openNote(`${BODY}\n${LOG_LINE}\n${WITNESS_LINE}`, v), 'unverified');
  rejects(t, () => openNote(`${BODY}\n${LOG_LINE}\n${LOG_LINE}`, v), 'invalid-signature');
});

test('rejects a tampered body, a tampered known signature, and notes no known key signed', (t) => {
  const v = [logVerifier()];
  rejects(t, () => openNote(NOTE.replace('\n5\n', '\n6\n'), v), 'invalid-signature');
  const raw = Buffer.from(LOG_LINE.slice(2 + LOG_NAME.length + 1, -1), 'base64');
  for (const byte of [4, 20, 67]) {
    const bad = Buffer.from(raw);
    bad[byte]! ^= 1;
    const line = `— ${LOG_NAME} ${bad.toString('base64')}\n`;
    rejects(t, () => openNote(`${BODY}\n${line}${WITNESS_LINE}`, v), 'invalid-signature');
  }
  // A wrong-length signature from a known key is an invalid signature, not an unknown key.
  const short = Buffer.concat([raw.subarray(0, 4), raw.subarray(4, 67)]);
  rejects(t, () => openNote(`${BODY}\n— ${LOG_NAME} ${short.toString('base64')}\n`, v), 'invalid-signature');
  // A good signature does not excuse a bad one from the same key.
  const bad = Buffer.from(raw);
  bad[30]! ^= 0x80;
  rejects(t, () => openNote(`${NOTE}— ${LOG_NAME} ${bad.toString('base64')}\n`, v), 'invalid-signature');
  // Only unknown keys: the witness alone, or the log's signature under another name / key ID.
  rejects(t, () => openNote(`${BODY}\n${WITNESS_LINE}`, v), 'unverified');
  rejects(t, () => openNote(NOTE, []), 'unverified');
  rejects(
    t,
    () => openNote(NOTE, [parseVerifierKey(verifierKey(signerFromSeed(LOG_NAME, randomBytes(32))))]),
    'unverified',
  );
  const otherName = signerFromSeed('other.example/log', LOG_SEED);
  rejects(t, () => openNote(NOTE, [parseVerifierKey(verifierKey(otherName))]), 'unverified');
});

test('a bad signature from an unknown key is ignored', (t) => {
  const junk = `— stranger.example/x ${Buffer.alloc(68, 7).toString('base64')}\n`;
  const opened = openNote(`${NOTE}${junk}${junk}`, [logVerifier()]);
  t.deepEqual(opened.verified, [LOG_NAME]);
  t.is(opened.unverified.length, 2, 'identical unknown lines are listed once');
});

test('accepts 100 signature lines (16 required) and rejects 101', (t) => {
  const log = signerFromSeed(LOG_NAME, LOG_SEED);
  const others = Array.from({ length: 99 }, (_, i) => signerFromSeed(`w${i}.example`, sha256(`other ${i}`)));
  const note = signNote(BODY, [...others, log]);
  t.is(note.split('\n— ').length - 1, 100);
  const opened = openNote(note, [logVerifier()]);
  t.deepEqual(opened.verified, [LOG_NAME]);
  t.is(opened.unverified.length, 99);
  // All 100 known: every one is checked.
  const all = openNote(
    note,
    [...others, log].map((s) => parseVerifierKey(verifierKey(s))),
  );
  t.is(all.verified.length, 100);
  const extra = `— w100.example ${Buffer.alloc(68, 1).toString('base64')}\n`;
  rejects(t, () => openNote(note + extra, [logVerifier()]), 'malformed', /100/);
});

test('verifier keys: bad key ID, names, types and encodings are rejected', (t) => {
  const [name, id, key] = [LOG_NAME, '29a88473', 'Afti+6kMtKsjFjotrK1hERjiAma0bx13rdE9jfiiClQr'];
  rejects(t, () => parseVerifierKey(`${name}+29a88474+${key}`), 'bad-key', /does not match/);
  rejects(t, () => parseVerifierKey(`other.example+${id}+${key}`), 'bad-key', /does not match/);
  rejects(t, () => parseVerifierKey(`${name}+29a8847+${key}`), 'bad-key', /8 hex/);
  rejects(t, () => parseVerifierKey(`${name}+29a8847g+${key}`), 'bad-key', /8 hex/);
  rejects(t, () => parseVerifierKey(`${name}+${id}`), 'bad-key');
  rejects(t, () => parseVerifierKey(`+${id}+${key}`), 'bad-key', /empty/);
  rejects(t, () => parseVerifierKey(`a b+${id}+${key}`), 'bad-key', /U\+0020/);
  rejects(t, () => parseVerifierKey(`a\u0001b+${id}+${key}`), 'bad-key');
  rejects(t, () => parseVerifierKey(`${name}+${id}+${key.slice(0, -4)}`), 'bad-key');
  rejects(t, () => parseVerifierKey(`${name}+${id}+${key}=`), 'bad-key', /base64/);
  rejects(t, () => parseVerifierKey(WITNESS_VKEY), 'bad-key', /type 0x04/);
  rejects(t, () => parseCosignatureVerifierKey(LOG_VKEY), 'bad-key', /type 0x01/);
  rejects(t, () => parseCosignatureVerifierKey(WITNESS_VKEY.replace('5d131f69', '5d131f6a')), 'bad-key');
  // Upper-case hex is accepted, as Go does.
  t.is(parseVerifierKey(`${name}+29A88473+${key}`).keyId.toString('hex'), id);
});

test('signer keys round-trip and are checked', (t) => {
  const text = generateSignerKey('log.example/a');
  t.regex(text, /^PRIVATE\+KEY\+log\.example\/a\+[0-9a-f]{8}\+[A-Za-z0-9+/]{44}$/);
  const signer = parseSignerKey(`${text}\n`);
  t.is(signer.name, 'log.example/a');
  t.is(text.split('+')[3], signer.keyId.toString('hex'));
  const note = signNote('hello\n', [signer]);
  t.deepEqual(openNote(note, [parseVerifierKey(verifierKey(signer))]).verified, ['log.example/a']);
  t.not(generateSignerKey('log.example/a'), text, 'keys are random');

  const exampleKey = `PRIVATE+KEY+${LOG_NAME}+29a88473+${Buffer.concat([Buffer.from([1]), LOG_SEED]).toString('base64')}`;
  t.is(verifierKey(parseSignerKey(exampleKey)), LOG_VKEY);
  rejects(t, () => parseSignerKey(exampleKey.replace('29a88473', '29a88474')), 'bad-key', /does not match/);
  rejects(t, () => parseSignerKey(exampleKey.replace('PRIVATE+KEY+', '')), 'bad-key', /PRIVATE\+KEY/);
  rejects(t, () => parseSignerKey(`PRIVATE+KEY+${LOG_NAME}+29a88473`), 'bad-key');
  rejects(
    t,
    () => parseSignerKey(`PRIVATE+KEY+${LOG_NAME}+29a88473+${Buffer.alloc(33, 4).toString('base64')}`),
    'bad-key',
    /Ed25519/,
  );
  rejects(t, () => signerFromSeed(LOG_NAME, Buffer.alloc(31)), 'bad-key', /32 bytes/);
  rejects(t, () => signerFromSeed('bad+name', LOG_SEED), 'bad-key');
});

test('signNote checks its input', (t) => {
  const s = signerFromSeed(LOG_NAME, LOG_SEED);
  rejects(t, () => signNote('no newline', [s]), 'malformed', /newline/);
  rejects(t, () => signNote('', [s]), 'malformed');
  rejects(t, () => signNote('x\n', []), 'malformed', /signer/);
});

test('checkpoints: strict parsing', (t) => {
  const root = Buffer.alloc(32, 9).toString('base64');
  t.deepEqual(parseCheckpoint(`o\n0\n${root}\n`).size, 0);
  t.deepEqual(parseCheckpoint(`o\n9007199254740991\n${root}\next a\next b\n`), {
    origin: 'o',
    size: 9007199254740991,
    root: Buffer.alloc(32, 9),
    extensions: ['ext a', 'ext b'],
  });
  for (const size of ['05', '00', '+5', '-1', '5.0', '1e3', ' 5', '', '9007199254740992', 'five']) {
    rejects(t, () => parseCheckpoint(`o\n${size}\n${root}\n`), 'malformed');
  }
  const r31 = Buffer.alloc(31, 9).toString('base64');
  const r33 = Buffer.alloc(33, 9).toString('base64');
  rejects(t, () => parseCheckpoint(`o\n5\n${r31}\n`), 'malformed', /31 bytes/);
  rejects(t, () => parseCheckpoint(`o\n5\n${r33}\n`), 'malformed', /33 bytes/);
  rejects(t, () => parseCheckpoint(`o\n5\n${root.slice(0, -1)}\n`), 'malformed', /base64/);
  rejects(t, () => parseCheckpoint(`o\n5\n${Buffer.alloc(32, 9).toString('base64url')}\n`), 'malformed');
  rejects(t, () => parseCheckpoint(`o\n5\n${root}`), 'malformed', /newline/);
  rejects(t, () => parseCheckpoint(`o\n5\n`), 'malformed', /3/);
  rejects(t, () => parseCheckpoint(`\n5\n${root}\n`), 'malformed', /origin/);
  rejects(t, () => parseCheckpoint(`o\n5\n${root}\n\n`), 'malformed', /extension/);
  rejects(t, () => parseCheckpoint(`o\r\n5\r\n${root}\r\n`), 'malformed');
  // Non-canonical base64: the last character carries bits that 32 bytes do not use.
  rejects(t, () => parseCheckpoint(`o\n5\n${root.slice(0, 42)}R=\n`), 'malformed', /canonical/);
});

test('checkpoints: formatting', (t) => {
  const root = Buffer.alloc(32, 3);
  const body = formatCheckpoint({ origin: 'log.example/x', size: 42, root, extensions: ['e1'] });
  t.is(body, `log.example/x\n42\n${root.toString('base64')}\ne1\n`);
  t.deepEqual(parseCheckpoint(body), { origin: 'log.example/x', size: 42, root, extensions: ['e1'] });
  rejects(t, () => formatCheckpoint({ origin: 'a\nb', size: 1, root }), 'malformed');
  rejects(t, () => formatCheckpoint({ origin: '', size: 1, root }), 'malformed');
  rejects(t, () => formatCheckpoint({ origin: 'o', size: -1, root }), 'malformed');
  rejects(t, () => formatCheckpoint({ origin: 'o', size: 1.5, root }), 'malformed');
  rejects(t, () => formatCheckpoint({ origin: 'o', size: 1, root: root.subarray(1) }), 'malformed');
  rejects(t, () => formatCheckpoint({ origin: 'o', size: 1, root, extensions: [''] }), 'malformed');
});

test('cosigner: time is signed and lastTimestamp follows the verified cosignature', (t) => {
  let now = 1000;
  const c = cosignerFromSeed('w.example', sha256('test witness'), () => now);
  const v = parseCosignatureVerifierKey(cosignatureVerifierKey(c));
  const body = 'o\n1\n' + Buffer.alloc(32).toString('base64') + '\n';
  const note1 = signNote(body, [c]);
  now = 2000;
  const note2 = signNote(body, [c]);
  openNote(note1, [v]);
  t.is(v.lastTimestamp, 1000);
  openNote(note2, [v]);
  t.is(v.lastTimestamp, 2000);
  // Changing the embedded time without re-signing breaks the signature.
  const line = note1.split('\n').at(-2)!;
  const raw = Buffer.from(line.split(' ')[2]!, 'base64');
  raw.writeBigUInt64BE(2000n, 4);
  rejects(t, () => openNote(`${body}\n— w.example ${raw.toString('base64')}\n`, [v]), 'invalid-signature');
  t.is(v.lastTimestamp, 2000);
  rejects(t, () => signNote(body, [cosignerFromSeed('w.example', sha256('x'), () => -1)]), 'malformed');
});
