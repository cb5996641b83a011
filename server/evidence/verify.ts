// Verifies an evidence bundle offline, trusting only keys given out of band: the log's verifier
// key (--vkey) and the evidence signer's public key (--signer-key). Without them the bundle's own
// copies are used and a WARN line says so. Every check yields one PASS/FAIL/SKIP/WARN line naming
// what it covered or what failed. Needs nothing but Node: no database, no server.
import { createHash, createPublicKey, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { completeSubtrees, foldSubtrees, verifyConsistency } from '../audit/merkle.ts';
import { openNote, parseCheckpoint, parseVerifierKey } from '../audit/note.ts';
import { BUNDLE_FORMAT, DEFAULT_NAMESPACE, PATHS, isManifestFile } from '../../reports/evidence/layout.ts';
import { parseManifest } from '../../reports/evidence/manifest.ts';
import { parseOpenSshPublicKey, sshFingerprint, sshsigVerify } from '../../reports/evidence/sshsig.ts';
import { canonicalBytes } from '../../reports/canonical.ts';
import { readTimestampReply } from '../../reports/evidence/rfc3161.ts';
import { readBundle, sha256File, type FileSeen } from './bundle-reader.ts';
import { RecordChecker, type RecordCheckResult } from './record-check.ts';
import { pdfPageTexts } from './pdf-text.ts';

export type CheckStatus = 'PASS' | 'FAIL' | 'SKIP' | 'WARN';

export interface CheckLine {
  status: CheckStatus;
  check: string;
  detail: string;
}

export interface VerifyBundleOptions {
  /** The log's C2SP verifier key text, trusted out of band. */
  vkey?: string;
  /** The evidence signer's public key, trusted out of band. */
  signerKey?: KeyObject;
  /** The previous bundle of the chain (a .tar.gz or an extracted directory). */
  previous?: string;
  /** Expected SSHSIG namespace (default: what bundle.json states, else the format's default). */
  namespace?: string;
  /** Called as each check is decided. */
  report?: (line: CheckLine) => void;
}

export interface VerifyBundleResult {
  ok: boolean;
  lines: CheckLine[];
  archiveSha256?: string;
  records?: number;
}

/** The fields of bundle.json the verifier relies on (checked before use). */
interface BundleJson {
  format: string;
  bundle_id: string;
  period: { from: string; to: string };
  log: { origin: string; vkey: string };
  audit: { first_index: number; end_index: number; record_count: number };
  reports: Array<{ name: string; files: string[]; json: string | null; pdf: string | null; data_sha256: string | null }>;
  signer: { key_id: string; namespace: string; principal: string };
  previous_bundle: { archive_sha256: string; bundle_id: string; end_size: number; end_root: string } | null;
}

type Checkpoint = { origin: string; size: number; root: Buffer };

const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');
const sha256hex = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const msg = (err: unknown): string => (err as Error)?.message ?? String(err);

function hashFromB64(s: unknown, what: string): Buffer {
  if (typeof s !== 'string' || !/^[A-Za-z0-9+/]{43}=$/.test(s)) throw new Error(`${what} is not a base64 SHA-256 hash`);
  return Buffer.from(s, 'base64');
}

function isInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** Reads the public key formats an auditor may hold: PEM (SPKI), an OpenSSH line, or allowed_signers. */
export function parseSignerKey(text: string): KeyObject {
  const t = text.trim();
  if (t.startsWith('-----BEGIN PUBLIC KEY-----')) {
    const k = createPublicKey(t);
    if (k.asymmetricKeyType !== 'ed25519') throw new Error(`expected an Ed25519 key, got ${k.asymmetricKeyType}`);
    return k;
  }
  const line = t.split('\n').find((l) => /(^|\s)ssh-ed25519\s/.test(l));
  if (!line) throw new Error('no Ed25519 public key found (PEM, "ssh-ed25519 …" or an allowed_signers line)');
  return parseOpenSshPublicKey(line.slice(line.indexOf('ssh-ed25519')));
}

function parseBundleJson(content: Buffer | undefined): BundleJson {
  if (!content) throw new Error(`${PATHS.bundleJson} is missing`);
  const j = JSON.parse(content.toString('utf8')) as BundleJson;
  if (j?.format !== BUNDLE_FORMAT) throw new Error(`format is ${JSON.stringify(j?.format)}, expected ${BUNDLE_FORMAT}`);
  const a = j.audit;
  if (!isInt(a?.first_index) || !isInt(a.end_index) || a.end_index < a.first_index) throw new Error('audit index range is malformed');
  if (a.record_count !== a.end_index - a.first_index) throw new Error('audit.record_count does not equal end_index − first_index');
  if (typeof j.log?.origin !== 'string' || typeof j.log.vkey !== 'string') throw new Error('log origin/vkey missing');
  if (!Array.isArray(j.reports)) throw new Error('reports is not a list');
  if (typeof j.bundle_id !== 'string') throw new Error('bundle_id missing');
  return j;
}

/** Start state from the compact-range file, checked for shape only (the root is compared later). */
function parseCompactRange(content: Buffer): { size: number; hashes: Buffer[]; root: Buffer } {
  const j = JSON.parse(content.toString('utf8')) as {
    tree_size: unknown;
    root: unknown;
    subtrees: Array<{ level: unknown; index: unknown; hash: unknown }>;
  };
  if (!isInt(j.tree_size)) throw new Error('tree_size is not a non-negative integer');
  if (!Array.isArray(j.subtrees)) throw new Error('subtrees is not a list');
  const want = completeSubtrees(0, j.tree_size);
  if (want.length !== j.subtrees.length) {
    throw new Error(`a tree of ${j.tree_size} leaves has ${want.length} maximal subtrees, the file lists ${j.subtrees.length}`);
  }
  const hashes = j.subtrees.map((s, i) => {
    if (s.level !== want[i]!.level || s.index !== want[i]!.index) {
      throw new Error(`subtree ${i} is ${s.level}/${s.index}, expected ${want[i]!.level}/${want[i]!.index}`);
    }
    return hashFromB64(s.hash, `subtree ${i} hash`);
  });
  return { size: j.tree_size, hashes, root: foldSubtrees(hashes) };
}

function parseWithin(content: Buffer): Array<{ size: number; note: string }> {
  const text = content.toString('utf8');
  if (text === '') return [];
  if (!text.endsWith('\n')) throw new Error(`${PATHS.checkpointsWithin} does not end with a newline`);
  return text
    .slice(0, -1)
    .split('\n')
    .map((line, i) => {
      const j = JSON.parse(line) as { size: unknown; note: unknown };
      if (!isInt(j.size) || typeof j.note !== 'string') throw new Error(`line ${i + 1} is not {size, note}`);
      return { size: j.size, note: j.note };
    });
}

export async function verifyBundle(path: string, opts: VerifyBundleOptions = {}): Promise<VerifyBundleResult> {
  const lines: CheckLine[] = [];
  const emit = (status: CheckStatus, check: string, detail: string) => {
    const line = { status, check, detail };
    lines.push(line);
    opts.report?.(line);
  };
  let archiveSha256: string | undefined;
  const counted: { records?: number } = {};
  const done = (): VerifyBundleResult => ({
    ok: lines.length > 0 && lines.every((l) => l.status !== 'FAIL'),
    lines,
    archiveSha256,
    records: counted.records,
  });

  // ---- read everything once; records stream through the tree as they pass
  const checker = new RecordChecker();
  const shapeProblems: string[] = [];
  let files: FileSeen[];
  try {
    archiveSha256 = await sha256File(path).catch((err) => {
      if ((err as NodeJS.ErrnoException).code === 'EISDIR') return undefined;
      throw err;
    });
    files = await readBundle(path, {
      streamed: (p) => p === PATHS.entries,
      onChunk: (_p, chunk) => checker.write(chunk),
      onStreamEnd: () => checker.end(),
      onFile: (f) => {
        // Only shapes how records are hashed; whether any of it is true is decided below.
        try {
          if (f.path === PATHS.compactRange) {
            const cr = parseCompactRange(f.content!);
            checker.start(cr.size, cr.hashes);
          }
          if (f.path === PATHS.checkpointsWithin) checker.watch(parseWithin(f.content!).map((c) => c.size));
        } catch (err) {
          shapeProblems.push(`${f.path}: ${msg(err)}`);
        }
      },
    });
  } catch (err) {
    emit('FAIL', 'archive', `cannot read ${path}: ${msg(err)}`);
    return done();
  }
  const byPath = new Map(files.map((f) => [f.path, f]));
  const content = (p: string): Buffer | undefined => byPath.get(p)?.content;
  emit('PASS', 'archive', `${files.length} files${archiveSha256 ? `, archive SHA-256 ${archiveSha256}` : ' (directory)'}`);

  // ---- manifest: every file listed with its hash, nothing missing, nothing extra
  const manifestBytes = content(PATHS.manifest);
  if (!manifestBytes) {
    emit('FAIL', 'manifest', `${PATHS.manifest} is missing`);
  } else {
    try {
      const listed = parseManifest(manifestBytes.toString('utf8'));
      const bad: string[] = [];
      for (const [p, hash] of listed) {
        const f = byPath.get(p);
        if (!f) bad.push(`missing: ${p}`);
        else if (f.sha256 !== hash) bad.push(`changed: ${p} (SHA-256 ${f.sha256}, manifest ${hash})`);
      }
      for (const f of files) if (!isManifestFile(f.path) && !listed.has(f.path)) bad.push(`not in the manifest: ${f.path}`);
      for (const f of files) {
        if (isManifestFile(f.path) && ![PATHS.manifest, PATHS.manifestSig, PATHS.manifestSigBin, PATHS.manifestTsr].includes(f.path as never)) {
          bad.push(`unexpected file: ${f.path}`);
        }
      }
      if (bad.length) emit('FAIL', 'manifest', bad.join('; '));
      else {
        emit('PASS', 'manifest', `${listed.size} files match their SHA-256; no file missing or extra`);
      }
    } catch (err) {
      emit('FAIL', 'manifest', msg(err));
    }
  }

  // ---- bundle.json
  let bj: BundleJson | undefined;
  try {
    bj = parseBundleJson(content(PATHS.bundleJson));
    emit('PASS', 'bundle.json', `${bj.bundle_id}: period ${bj.period?.from} – ${bj.period?.to}, records ${bj.audit.first_index}..${bj.audit.end_index - 1} of ${bj.log.origin}`);
  } catch (err) {
    emit('FAIL', 'bundle.json', msg(err));
  }

  // ---- manifest signatures
  let signerKey = opts.signerKey;
  if (!signerKey) {
    try {
      signerKey = parseSignerKey(content(PATHS.signerPub)?.toString('utf8') ?? '');
      emit('WARN', 'signer key', `no --signer-key given: using the bundle's own ${PATHS.signerPub} (${sshFingerprint(signerKey)}); compare it with the key the organisation gave you`);
    } catch (err) {
      emit('FAIL', 'signer key', `no --signer-key given and ${PATHS.signerPub} is unusable: ${msg(err)}`);
    }
  }
  if (signerKey && manifestBytes) {
    const namespace = opts.namespace ?? bj?.signer?.namespace ?? DEFAULT_NAMESPACE;
    const sig = content(PATHS.manifestSig);
    if (!sig) emit('FAIL', 'manifest signature', `${PATHS.manifestSig} is missing`);
    else {
      try {
        sshsigVerify(manifestBytes, sig.toString('utf8'), signerKey, namespace);
        emit('PASS', 'manifest signature', `SSHSIG by ${sshFingerprint(signerKey)} in namespace ${namespace}`);
      } catch (err) {
        emit('FAIL', 'manifest signature', `${PATHS.manifestSig}: ${msg(err)}`);
      }
    }
    const raw = content(PATHS.manifestSigBin);
    if (!raw) emit('FAIL', 'manifest raw signature', `${PATHS.manifestSigBin} is missing`);
    else if (raw.length !== 64 || !cryptoVerify(null, manifestBytes, signerKey, raw)) {
      emit('FAIL', 'manifest raw signature', `${PATHS.manifestSigBin} is not a valid Ed25519 signature of ${PATHS.manifest} by ${sshFingerprint(signerKey)}`);
    } else emit('PASS', 'manifest raw signature', `Ed25519 by ${sshFingerprint(signerKey)}`);
  }

  // ---- log key and checkpoints
  let verifier: ReturnType<typeof parseVerifierKey> | undefined;
  try {
    if (opts.vkey) verifier = parseVerifierKey(opts.vkey.trim());
    else {
      const own = content(PATHS.logVkey)?.toString('utf8').trim();
      if (!own) throw new Error(`${PATHS.logVkey} is missing`);
      verifier = parseVerifierKey(own);
      emit('WARN', 'log key', `no --vkey given: using the bundle's own ${PATHS.logVkey} (${own}); compare it with the log key the organisation gave you`);
    }
  } catch (err) {
    emit('FAIL', 'log key', msg(err));
  }
  const open = (note: Buffer | string | undefined, what: string): Checkpoint => {
    if (note === undefined) throw new Error(`${what} is missing`);
    let cp;
    try {
      cp = parseCheckpoint(openNote(note.toString(), [verifier!]).body);
    } catch (err) {
      throw new Error(`${what}: ${msg(err)} (log key ${verifier!.name})`);
    }
    if (cp.origin !== verifier!.name) throw new Error(`${what} is for log ${cp.origin}, not ${verifier!.name}`);
    return { origin: cp.origin, size: cp.size, root: Buffer.from(cp.root) };
  };
  let start: Checkpoint | undefined;
  let end: Checkpoint | undefined;
  const within: Checkpoint[] = [];
  if (verifier) {
    try {
      start = open(content(PATHS.checkpointStart), PATHS.checkpointStart);
      end = open(content(PATHS.checkpointEnd), PATHS.checkpointEnd);
      const w = content(PATHS.checkpointsWithin);
      for (const c of w ? parseWithin(w) : []) {
        const cp = open(c.note, `${PATHS.checkpointsWithin} size ${c.size}`);
        if (cp.size !== c.size) throw new Error(`${PATHS.checkpointsWithin}: line for size ${c.size} holds a checkpoint of size ${cp.size}`);
        if (cp.size <= (within.at(-1)?.size ?? start.size) || cp.size >= end.size) {
          throw new Error(`${PATHS.checkpointsWithin}: size ${cp.size} is out of order or outside (${start.size}, ${end.size})`);
        }
        within.push(cp);
      }
      const problems: string[] = [];
      if (bj) {
        if (bj.log.origin !== start.origin) problems.push(`bundle.json names log ${bj.log.origin}, checkpoints are for ${start.origin}`);
        if (bj.audit.first_index !== start.size) problems.push(`bundle.json first_index ${bj.audit.first_index} ≠ start checkpoint size ${start.size}`);
        if (bj.audit.end_index !== end.size) problems.push(`bundle.json end_index ${bj.audit.end_index} ≠ end checkpoint size ${end.size}`);
      }
      if (end.size < start.size) problems.push(`end checkpoint size ${end.size} is below start ${start.size}`);
      if (problems.length) emit('FAIL', 'checkpoints', problems.join('; '));
      else {
        emit('PASS', 'checkpoints', `start (size ${start.size}) and end (size ${end.size})${within.length ? ` and ${within.length} within` : ''} signed by ${verifier.name}`);
      }
    } catch (err) {
      emit('FAIL', 'checkpoints', msg(err));
      start = end = undefined;
    }
  }

  // ---- consistency proof start → end
  if (start && end) {
    try {
      const j = JSON.parse(content(PATHS.consistencyProof)?.toString('utf8') ?? 'null') as {
        old_size: unknown;
        new_size: unknown;
        proof: unknown[];
      } | null;
      if (!j) throw new Error(`${PATHS.consistencyProof} is missing`);
      if (j.old_size !== start.size || j.new_size !== end.size) {
        throw new Error(`proof is for sizes ${j.old_size} → ${j.new_size}, checkpoints are ${start.size} → ${end.size}`);
      }
      if (!Array.isArray(j.proof)) throw new Error('proof is not a list');
      const proof = j.proof.map((p, i) => hashFromB64(p, `proof[${i}]`));
      if (start.size === 0) {
        if (proof.length) throw new Error('a proof from the empty tree must be empty');
        emit('PASS', 'consistency proof', 'start is the empty tree: nothing to prove (the record check below covers every leaf)');
      } else {
        verifyConsistency(start.size, end.size, start.root, end.root, proof);
        emit('PASS', 'consistency proof', `${start.size} → ${end.size} (${proof.length} hashes)`);
      }
    } catch (err) {
      emit('FAIL', 'consistency proof', msg(err));
    }
  } else emit('FAIL', 'consistency proof', 'not checked: no verified checkpoints');

  // ---- start state and completeness
  const records: RecordCheckResult = checker.result();
  counted.records = records.count;
  let startStateOk = false;
  if (start) {
    try {
      if (shapeProblems.length) throw new Error(shapeProblems.join('; '));
      const cr = content(PATHS.compactRange);
      if (!cr) throw new Error(`${PATHS.compactRange} is missing`);
      const parsed = parseCompactRange(cr);
      if (parsed.size !== start.size) throw new Error(`compact range is for size ${parsed.size}, start checkpoint is ${start.size}`);
      if (!parsed.root.equals(start.root)) throw new Error(`compact range folds to ${b64(parsed.root)}, start checkpoint root is ${b64(start.root)}`);
      startStateOk = true;
      emit('PASS', 'start state', `${completeSubtrees(0, start.size).length} subtree hashes fold to the start checkpoint root`);
    } catch (err) {
      emit('FAIL', 'start state', msg(err));
    }
  } else emit('FAIL', 'start state', 'not checked: no verified start checkpoint');

  if (start && end && startStateOk) {
    const expected = end.size - start.size;
    const problems = [...records.problems];
    if (records.count !== expected) {
      problems.unshift(`${records.count} records, expected ${expected} (indices ${start.size}..${end.size - 1})`);
    }
    const rootOk = records.endRoot !== undefined && records.count === expected && records.endRoot.equals(end.root);
    if (rootOk && problems.length === 0) {
      emit('PASS', 'records complete', `${records.count} records (${records.count ? `indices ${start.size}..${end.size - 1}` : 'the period added no leaf'}) recompute the end root ${b64(end.root)}${within.length ? ` and the ${within.length} signed roots inside the period` : ''}`);
    } else {
      // The log's own signed roots bound where the first bad record is.
      let lo = start.size;
      let hi = end.size;
      for (const cp of within) {
        const got = records.rootsAt.get(cp.size);
        if (got && got.equals(cp.root)) lo = cp.size;
        else {
          hi = cp.size;
          break;
        }
      }
      const where =
        hi - lo === 1
          ? `the first bad record is index ${lo} (line ${lo - start.size + 1})`
          : `the first bad record is among indices ${lo}..${hi - 1} (lines ${lo - start.size + 1}..${hi - start.size}): records before index ${lo} match the log's signed root${lo === start.size ? ' (the start)' : ` at size ${lo}`}`;
      const rootMsg = records.endRoot && !records.endRoot.equals(end.root) ? `recomputed end root ${b64(records.endRoot)} ≠ signed ${b64(end.root)}; ` : '';
      emit('FAIL', 'records complete', `${problems.length ? `${problems.join('; ')}; ` : ''}${rootMsg}${where}`);
    }
  } else emit('FAIL', 'records complete', 'not checked: no verified start state');

  // ---- reports: data hash = SHA-256 of the canonical JSON, shown in every PDF footer
  if (bj) {
    if (bj.reports.length === 0) emit('SKIP', 'reports', 'this bundle holds no reports');
    for (const r of bj.reports) {
      const problems: string[] = [];
      for (const f of r.files ?? []) if (!byPath.has(f)) problems.push(`${f} is missing`);
      let hash: string | undefined;
      if (r.json) {
        const json = content(r.json);
        if (!json) problems.push(`${r.json} is missing`);
        else {
          hash = sha256hex(json);
          if (hash !== r.data_sha256) problems.push(`SHA-256 of ${r.json} is ${hash}, bundle.json says ${r.data_sha256}`);
          try {
            if (!canonicalBytes(JSON.parse(json.toString('utf8'))).equals(json)) problems.push(`${r.json} is not RFC 8785 canonical JSON`);
          } catch (err) {
            problems.push(`${r.json}: ${msg(err)}`);
          }
        }
      }
      let pages = 0;
      if (r.pdf && hash) {
        const pdf = content(r.pdf);
        if (!pdf) problems.push(`${r.pdf} is missing`);
        else {
          try {
            const texts = pdfPageTexts(pdf);
            pages = texts.length;
            const without = texts.map((t, i) => (t.replace(/\s+/g, '').includes(hash!) ? 0 : i + 1)).filter((n) => n > 0);
            if (pages === 0) problems.push(`${r.pdf} has no pages`);
            if (without.length) problems.push(`${r.pdf}: the data hash ${hash} is not in the footer of page(s) ${without.join(', ')}`);
          } catch (err) {
            problems.push(`${r.pdf}: ${msg(err)}`);
          }
        }
      }
      if (problems.length) emit('FAIL', `report ${r.name}`, problems.join('; '));
      else {
        emit('PASS', `report ${r.name}`, hash ? `data SHA-256 ${hash} matches the canonical JSON${pages ? ` and the footer of all ${pages} PDF pages` : ''}` : `${r.files.length} files present`);
      }
    }
  }

  // ---- chain to the previous bundle
  if (bj) {
    const prevRef = bj.previous_bundle;
    if (!opts.previous) {
      if (prevRef) emit('SKIP', 'chain', `previous bundle ${prevRef.bundle_id} (archive SHA-256 ${prevRef.archive_sha256}) not given: pass --previous FILE to check the chain`);
      else emit('PASS', 'chain', 'first bundle of its chain (no previous bundle named)');
    } else if (!prevRef) {
      emit('FAIL', 'chain', 'a previous bundle was given but this bundle names none');
    } else {
      try {
        const prevHash = await sha256File(opts.previous);
        const problems: string[] = [];
        if (prevHash !== prevRef.archive_sha256) problems.push(`previous archive SHA-256 is ${prevHash}, this bundle names ${prevRef.archive_sha256}`);
        const prevFiles = await readBundle(opts.previous, { streamed: (p) => p === PATHS.entries, onChunk: () => {}, onStreamEnd: () => {} });
        const prevContent = (p: string) => prevFiles.find((f) => f.path === p)?.content;
        const pj = parseBundleJson(prevContent(PATHS.bundleJson));
        if (pj.bundle_id !== prevRef.bundle_id) problems.push(`previous bundle is ${pj.bundle_id}, this bundle names ${prevRef.bundle_id}`);
        if (verifier && start) {
          const pend = open(prevContent(PATHS.checkpointEnd), `previous ${PATHS.checkpointEnd}`);
          if (pend.size !== start.size || !pend.root.equals(start.root)) {
            problems.push(`previous bundle ends at size ${pend.size} (root ${b64(pend.root)}), this one starts at ${start.size} (root ${b64(start.root)}): records in between are not covered`);
          }
        } else problems.push('cannot compare checkpoints: no verified start checkpoint');
        if (problems.length) emit('FAIL', 'chain', problems.join('; '));
        else emit('PASS', 'chain', `follows ${pj.bundle_id} (archive SHA-256 ${prevHash}) with no gap: it ended at size ${start!.size}`);
      } catch (err) {
        emit('FAIL', 'chain', `previous bundle: ${msg(err)}`);
      }
    }
  }

  // ---- RFC 3161 time-stamp token over the manifest, when the bundle has one
  const tsr = content(PATHS.manifestTsr);
  if (tsr && manifestBytes) {
    try {
      const info = readTimestampReply(tsr);
      if (info.imprintAlgorithm !== '2.16.840.1.101.3.4.2.1') throw new Error(`token hashes with ${info.imprintAlgorithm}, not SHA-256`);
      if (!info.imprint.equals(createHash('sha256').update(manifestBytes).digest())) throw new Error('the token is for another manifest');
      emit(
        'PASS',
        'timestamp',
        `RFC 3161 token of ${info.genTime} (serial ${info.serial}) for this manifest; check the TSA's signature with: openssl ts -verify -data ${PATHS.manifest} -in ${PATHS.manifestTsr} -CAfile <TSA CA certificate>`,
      );
    } catch (err) {
      emit('FAIL', 'timestamp', `${PATHS.manifestTsr}: ${msg(err)}`);
    }
  }
  return done();
}
