// RFC 9162 §2.1 Merkle tree math for the audit log: hashing, proof shapes, the stored-hash
// layout and proof verification. Pure: no I/O, so storage backends, the CLI verifier and tests
// all share one implementation.
//
// Sizes and indices are JS numbers. Bit tricks (`>>`, `&`) truncate to 32 bits, so everything
// here uses arithmetic on integers ≤ 2^53 instead.
import { createHash, hash } from 'node:crypto';

export const HASH_SIZE = 32;

/** MTH({}) = SHA-256 of the empty string. */
export const EMPTY_ROOT: Buffer = createHash('sha256').digest();

const LEAF_PREFIX = Buffer.from([0x00]);
const NODE_PREFIX = Buffer.from([0x01]);

// Inputs up to this size are hashed from one reused buffer with the one-shot hash: a Hash object
// with its updates cost ≈ 2.5× as much for a 1.7 KiB record and ≈ 1.6× for a node. Larger leaves stream.
const SCRATCH = 64 * 1024;
const scratch = Buffer.alloc(1 + SCRATCH);

/** SHA-256(prefix ‖ a ‖ b). */
function prefixedHash(prefix: Buffer, a: Uint8Array, b?: Uint8Array): Buffer {
  const n = a.length + (b?.length ?? 0);
  if (n > SCRATCH) {
    const h = createHash('sha256').update(prefix).update(a);
    return (b ? h.update(b) : h).digest();
  }
  scratch[0] = prefix[0]!;
  scratch.set(a, 1);
  if (b) scratch.set(b, 1 + a.length);
  return hash('sha256', scratch.subarray(0, 1 + n), 'buffer') as unknown as Buffer;
}

export function leafHash(data: Uint8Array): Buffer {
  return prefixedHash(LEAF_PREFIX, data);
}

export function nodeHash(left: Uint8Array, right: Uint8Array): Buffer {
  return prefixedHash(NODE_PREFIX, left, right);
}

/** A complete subtree: `level` L and `index` k cover leaves [k·2^L, (k+1)·2^L). */
export interface NodeAddr {
  level: number;
  index: number;
}

/** Leaves lo ≤ i < hi. */
export interface Range {
  lo: number;
  hi: number;
}

export class ProofError extends Error {
  override name = 'ProofError';
}

function checkSize(what: string, n: number, min = 0): void {
  if (!Number.isSafeInteger(n) || n < min)
    throw new RangeError(`${what} must be an integer ≥ ${min}, got ${n}`);
}

const half = (n: number): number => Math.floor(n / 2);
const isOdd = (n: number): boolean => n % 2 === 1;

/** The k with k < n ≤ 2k (RFC 9162's split point); n ≥ 2. */
function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

function isPowerOfTwo(n: number): boolean {
  let p = 1;
  while (p < n) p *= 2;
  return p === n;
}

function trailingOnes(n: number): number {
  let c = 0;
  while (isOdd(n)) {
    c++;
    n = half(n);
  }
  return c;
}

/**
 * Where the stored-hash layout keeps a complete subtree: in the row of its last leaf
 * ((k+1)·2^L − 1), at position L. Each row is written once, when that leaf is appended.
 */
export function storedAt(addr: NodeAddr): { row: number; position: number } {
  checkSize('level', addr.level);
  checkSize('index', addr.index);
  const row = (addr.index + 1) * 2 ** addr.level - 1;
  if (!Number.isSafeInteger(row))
    throw new RangeError(`node ${addr.level}/${addr.index} is beyond 2^53 leaves`);
  return { row, position: addr.level };
}

/** How many hashes appending leaf n (0-based) stores: the leaf plus one per subtree it completes. */
export function storedHashCount(n: number): number {
  checkSize('leaf index', n);
  return 1 + trailingOnes(n);
}

/**
 * Splits [lo, hi) into maximal complete subtrees, left to right. For a range that occurs in an
 * RFC 9162 tree (lo is a multiple of a power of two ≥ hi − lo) the sizes strictly decrease, so
 * folding them right to left gives the range's MTH.
 */
export function completeSubtrees(lo: number, hi: number): NodeAddr[] {
  checkSize('lo', lo);
  checkSize('hi', hi);
  if (lo > hi) throw new RangeError(`empty range [${lo}, ${hi})`);
  const out: NodeAddr[] = [];
  while (lo < hi) {
    let level = 0;
    let width = 1;
    // Grow while the next-larger subtree still starts at lo and fits before hi.
    while (lo % (width * 2) === 0 && lo + width * 2 <= hi) {
      width *= 2;
      level++;
    }
    out.push({ level, index: lo / width });
    lo += width;
  }
  return out;
}

/** Combines the complete-subtree hashes of a range, right to left, into its MTH. */
export function foldSubtrees(hashes: Buffer[]): Buffer {
  if (hashes.length === 0) return Buffer.from(EMPTY_ROOT);
  let acc = hashes[hashes.length - 1]!;
  for (let i = hashes.length - 2; i >= 0; i--) acc = nodeHash(hashes[i]!, acc);
  return acc;
}

/** Ranges whose MTHs are PATH(index, D[0:size]) of RFC 9162 §2.1.3.1, leaf upward. */
export function inclusionProofRanges(index: number, size: number): Range[] {
  checkSize('size', size, 1);
  checkSize('index', index);
  if (index >= size) throw new RangeError(`index ${index} is not below size ${size}`);
  const topDown: Range[] = [];
  let lo = 0;
  let hi = size;
  while (hi - lo > 1) {
    const mid = lo + splitPoint(hi - lo);
    if (index < mid) {
      topDown.push({ lo: mid, hi });
      hi = mid;
    } else {
      topDown.push({ lo, hi: mid });
      lo = mid;
    }
  }
  return topDown.reverse();
}

/** Ranges whose MTHs are PROOF(oldSize, D[0:newSize]) of RFC 9162 §2.1.4.1, in proof order. */
export function consistencyProofRanges(oldSize: number, newSize: number): Range[] {
  checkSize('old size', oldSize, 1);
  checkSize('new size', newSize, 1);
  if (oldSize > newSize) throw new RangeError(`old size ${oldSize} exceeds new size ${newSize}`);
  const topDown: Range[] = [];
  let lo = 0;
  let hi = newSize;
  // b of SUBPROOF: true while the old tree is a prefix starting at the root's left edge,
  // where the verifier already knows the old subtree hash.
  let atLeftEdge = true;
  while (oldSize !== hi) {
    const mid = lo + splitPoint(hi - lo);
    if (oldSize <= mid) {
      topDown.push({ lo: mid, hi });
      hi = mid;
    } else {
      topDown.push({ lo, hi: mid });
      lo = mid;
      atLeftEdge = false;
    }
  }
  if (!atLeftEdge) topDown.push({ lo, hi });
  return topDown.reverse();
}

export function rootRanges(size: number): Range[] {
  checkSize('size', size);
  return size === 0 ? [] : [{ lo: 0, hi: size }];
}

const addrKey = (a: NodeAddr): string => `${a.level}/${a.index}`;

/**
 * Hashes of the given ranges from stored complete-subtree hashes. All addresses go to the
 * reader in one call (deduplicated) so a database backend needs one query per proof; the
 * reader is not called when nothing needs reading. An empty range hashes to EMPTY_ROOT.
 */
export async function hashRanges(
  ranges: Range[],
  read: (addrs: NodeAddr[]) => Promise<Buffer[]>,
): Promise<Buffer[]> {
  const perRange = ranges.map((r) => completeSubtrees(r.lo, r.hi));
  const unique = new Map<string, NodeAddr>();
  for (const addrs of perRange) for (const a of addrs) if (!unique.has(addrKey(a))) unique.set(addrKey(a), a);
  const wanted = [...unique.values()];
  const got = wanted.length === 0 ? [] : await read(wanted);
  if (got.length !== wanted.length) {
    throw new Error(`node reader returned ${got.length} hashes for ${wanted.length} addresses`);
  }
  const byKey = new Map<string, Buffer>();
  wanted.forEach((a, i) => {
    const h = got[i]!;
    if (h.length !== HASH_SIZE)
      throw new Error(`node reader returned a ${h.length}-byte hash for ${addrKey(a)}`);
    byKey.set(addrKey(a), h);
  });
  return perRange.map((addrs) => foldSubtrees(addrs.map((a) => byKey.get(addrKey(a))!)));
}

/**
 * The right edge of a tree (its "compact range"): hashes of the maximal complete subtrees of
 * [0, size), enough to append leaves and compute the root without reading anything else.
 */
export class Frontier {
  #size: number;
  #hashes: Buffer[];

  constructor(size = 0, hashes: Buffer[] = []) {
    checkSize('size', size);
    const expected = completeSubtrees(0, size).length;
    if (hashes.length !== expected) {
      throw new RangeError(`a tree of ${size} leaves has ${expected} frontier hashes, got ${hashes.length}`);
    }
    for (const h of hashes) {
      if (h.length !== HASH_SIZE)
        throw new RangeError(`frontier hash must be ${HASH_SIZE} bytes, got ${h.length}`);
    }
    this.#size = size;
    this.#hashes = hashes.map((h) => Buffer.from(h));
  }

  get size(): number {
    return this.#size;
  }

  /** Appends one leaf hash; returns the hashes to store for that leaf (see storedAt). */
  append(leaf: Buffer): Buffer[] {
    if (leaf.length !== HASH_SIZE)
      throw new RangeError(`leaf hash must be ${HASH_SIZE} bytes, got ${leaf.length}`);
    if (this.#size >= Number.MAX_SAFE_INTEGER) throw new RangeError('tree is full');
    let h: Buffer = Buffer.from(leaf);
    const stored = [h];
    // Each trailing 1 bit of the old size is a complete subtree that the new leaf now pairs up.
    for (let n = this.#size; isOdd(n); n = half(n)) {
      h = nodeHash(this.#hashes.pop()!, h);
      stored.push(h);
    }
    this.#hashes.push(h);
    this.#size++;
    return stored.map((b) => Buffer.from(b));
  }

  root(): Buffer {
    return foldSubtrees(this.#hashes);
  }

  clone(): Frontier {
    return new Frontier(this.#size, this.#hashes);
  }

  hashes(): Buffer[] {
    return this.#hashes.map((h) => Buffer.from(h));
  }
}

function requireHash(what: string, h: Uint8Array): void {
  if (h.length !== HASH_SIZE) throw new ProofError(`${what} must be ${HASH_SIZE} bytes, got ${h.length}`);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
}

function checkProofSize(what: string, n: number): void {
  if (!Number.isSafeInteger(n) || n < 0)
    throw new ProofError(`${what} must be a non-negative integer, got ${n}`);
}

/** The root implied by an inclusion proof (RFC 9162 §2.1.3.2); throws ProofError if malformed. */
export function rootFromInclusionProof(
  index: number,
  size: number,
  leaf: Uint8Array,
  proof: Uint8Array[],
): Buffer {
  checkProofSize('index', index);
  checkProofSize('size', size);
  if (index >= size) throw new ProofError(`index ${index} is not below size ${size}`);
  requireHash('leaf hash', leaf);
  proof.forEach((p, i) => requireHash(`proof[${i}]`, p));
  let fn = index;
  let sn = size - 1;
  let r: Buffer = Buffer.from(leaf);
  for (const p of proof) {
    if (sn === 0) throw new ProofError('inclusion proof is too long');
    if (isOdd(fn) || fn === sn) {
      r = nodeHash(p, r);
      if (!isOdd(fn)) {
        while (!isOdd(fn) && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  if (sn !== 0) throw new ProofError('inclusion proof is too short');
  return r;
}

export function verifyInclusion(
  index: number,
  size: number,
  leaf: Uint8Array,
  proof: Uint8Array[],
  root: Uint8Array,
): void {
  checkProofSize('index', index);
  checkProofSize('size', size);
  if (index >= size) throw new ProofError(`index ${index} is not below size ${size}`);
  requireHash('root', root);
  const computed = rootFromInclusionProof(index, size, leaf, proof);
  if (!sameBytes(computed, root)) throw new ProofError('inclusion proof does not lead to the root');
}

export function verifyConsistency(
  oldSize: number,
  newSize: number,
  oldRoot: Uint8Array,
  newRoot: Uint8Array,
  proof: Uint8Array[],
): void {
  checkProofSize('old size', oldSize);
  checkProofSize('new size', newSize);
  if (oldSize > newSize) throw new ProofError(`old size ${oldSize} exceeds new size ${newSize}`);
  // Nothing can be proved about an empty old tree; the witness protocol special-cases it.
  if (oldSize === 0) throw new ProofError('consistency from an empty tree is not provable');
  if (oldSize === newSize) {
    if (proof.length !== 0) throw new ProofError('equal sizes need an empty proof');
    if (!sameBytes(oldRoot, newRoot)) throw new ProofError('equal sizes but the roots differ');
    return;
  }
  requireHash('old root', oldRoot);
  requireHash('new root', newRoot);
  proof.forEach((p, i) => requireHash(`proof[${i}]`, p));
  // When the old tree is a complete subtree of the new one its root is the first node on the
  // path, so the proof omits it.
  const path = isPowerOfTwo(oldSize) ? [oldRoot, ...proof] : proof;
  if (path.length === 0) throw new ProofError('consistency proof is empty');
  let fn = oldSize - 1;
  let sn = newSize - 1;
  while (isOdd(fn)) {
    fn = half(fn);
    sn = half(sn);
  }
  let fr: Buffer = Buffer.from(path[0]!);
  let sr: Buffer = Buffer.from(path[0]!);
  for (const c of path.slice(1)) {
    if (sn === 0) throw new ProofError('consistency proof is too long');
    if (isOdd(fn) || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      if (!isOdd(fn)) {
        while (!isOdd(fn) && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  if (sn !== 0) throw new ProofError('consistency proof is too short');
  if (!sameBytes(fr, oldRoot)) throw new ProofError('consistency proof does not lead to the old root');
  if (!sameBytes(sr, newRoot)) throw new ProofError('consistency proof does not lead to the new root');
}
