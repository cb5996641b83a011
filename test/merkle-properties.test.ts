// Checks server/audit/merkle.ts against a deliberately naive RFC 9162 §2.1 implementation for
// every tree size up to 300 (and a few larger ones), through the stored-hash layout the log
// writes, and shows every single mutation of a valid proof is rejected.
import test from 'ava';
import { createHash } from 'node:crypto';
import {
  EMPTY_ROOT,
  Frontier,
  HASH_SIZE,
  ProofError,
  completeSubtrees,
  consistencyProofRanges,
  foldSubtrees,
  hashRanges,
  inclusionProofRanges,
  leafHash,
  nodeHash,
  rootFromInclusionProof,
  rootRanges,
  storedAt,
  storedHashCount,
  verifyConsistency,
  verifyInclusion,
  type NodeAddr,
  type Range,
} from '../server/audit/merkle.ts';

// ---- Naive RFC 9162 §2.1, recursive, over the leaf data D[lo:hi] ----

const MAX = 1025;
const DATA = Array.from({ length: MAX }, (_, i) => Buffer.from(`entry ${i}`));
const rawSha = (b: Buffer): Buffer => createHash('sha256').update(b).digest();

/** Largest power of two strictly less than n (n > 1). */
function naiveK(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

// Memoised only to keep the run short; the recursion is the RFC's text.
const mthMemo = new Map<string, Buffer>();
function MTH(lo: number, hi: number): Buffer {
  const key = `${lo},${hi}`;
  const hit = mthMemo.get(key);
  if (hit) return hit;
  const n = hi - lo;
  let out: Buffer;
  if (n === 0) out = rawSha(Buffer.alloc(0));
  else if (n === 1) out = rawSha(Buffer.concat([Buffer.from([0]), DATA[lo]!]));
  else {
    const k = naiveK(n);
    out = rawSha(Buffer.concat([Buffer.from([1]), MTH(lo, lo + k), MTH(lo + k, hi)]));
  }
  mthMemo.set(key, out);
  return out;
}

/** PATH(m, D[lo:hi]) */
function PATH(m: number, lo: number, hi: number): Buffer[] {
  const n = hi - lo;
  if (n === 1) return [];
  const k = naiveK(n);
  if (m < k) return [...PATH(m, lo, lo + k), MTH(lo + k, hi)];
  return [...PATH(m - k, lo + k, hi), MTH(lo, lo + k)];
}

/** SUBPROOF(m, D[lo:hi], b) */
function SUBPROOF(m: number, lo: number, hi: number, b: boolean): Buffer[] {
  const n = hi - lo;
  if (m === n) return b ? [] : [MTH(lo, hi)];
  const k = naiveK(n);
  if (m <= k) return [...SUBPROOF(m, lo, lo + k, b), MTH(lo + k, hi)];
  return [...SUBPROOF(m - k, lo + k, hi, false), MTH(lo, lo + k)];
}
const PROOF = (m: number, n: number): Buffer[] => SUBPROOF(m, 0, n, true);

// ---- The stored-hash layout, filled only from Frontier.append results ----

const building = new Frontier();
const rows: Buffer[][] = DATA.map((d) => building.append(leafHash(d)));

/** A reader over `rows` that refuses anything a tree of `size` leaves has not written yet. */
function readerFor(size: number) {
  const stats = { calls: 0, addrs: 0 };
  const read = async (addrs: NodeAddr[]): Promise<Buffer[]> => {
    stats.calls++;
    stats.addrs += addrs.length;
    return addrs.map((a) => {
      const { row, position } = storedAt(a);
      if (row >= size) throw new Error(`read row ${row} of a tree of size ${size}`);
      const h = rows[row]![position];
      if (!h) throw new Error(`row ${row} has no position ${position}`);
      return h;
    });
  };
  return { read, stats };
}

const SMALL_SIZES = Array.from({ length: 300 }, (_, i) => i + 1);
const BIG_SIZES = [511, 512, 513, 1000, 1023, 1024, 1025];
const log2ceil = (n: number): number => (n <= 1 ? 0 : Math.ceil(Math.log2(n)));
const addrBound = (n: number): number => 2 * log2ceil(n) + 2;
// Mutating every proof of every size costs minutes; beyond EXHAUSTIVE leaves, mutate a few
// positions per size (edges, middle, one that varies with the size).
const EXHAUSTIVE = 64;
const mutateAt = (i: number, size: number): boolean =>
  size <= EXHAUSTIVE || i <= 1 || i >= size - 2 || i === size >> 1 || i === (size * 37 + 11) % (size - 1);

/** Indices exercised for a size: all of them for small trees, the interesting ones otherwise. */
function indicesFor(size: number, all: boolean): number[] {
  if (all) return Array.from({ length: size }, (_, i) => i);
  const s = new Set([0, 1, 2, 3, size >> 1, (size >> 1) - 1, size - 3, size - 2, size - 1]);
  for (let p = 1; p < size; p *= 2) s.add(p - 1).add(p);
  return [...s].filter((i) => i >= 0 && i < size).sort((a, b) => a - b);
}

function flipBit(b: Uint8Array, bit: number): Buffer {
  const c = Buffer.from(b);
  c[bit >> 3]! ^= 1 << (bit & 7);
  return c;
}

const OTHER = rawSha(Buffer.from('not a tree node'));

/** Structural mutations of a proof: every variant must be rejected. */
function proofMutations(proof: Buffer[]): { what: string; proof: Buffer[] }[] {
  const out: { what: string; proof: Buffer[] }[] = [];
  proof.forEach((p, i) => {
    for (const bit of [0, 255, (i * 37 + 11) % 256]) {
      out.push({
        what: `flip bit ${bit} of [${i}]`,
        proof: proof.map((q, j) => (j === i ? flipBit(q, bit) : q)),
      });
    }
    out.push({ what: `drop [${i}]`, proof: proof.filter((_, j) => j !== i) });
    out.push({ what: `duplicate [${i}]`, proof: [...proof.slice(0, i + 1), p, ...proof.slice(i + 1)] });
    out.push({ what: `truncate to ${i}`, proof: proof.slice(0, i) });
  });
  for (let i = 0; i <= proof.length; i++) {
    out.push({ what: `insert other at ${i}`, proof: [...proof.slice(0, i), OTHER, ...proof.slice(i)] });
  }
  for (let i = 0; i + 1 < proof.length; i++) {
    if (!proof[i]!.equals(proof[i + 1]!)) {
      const swapped = [...proof];
      [swapped[i], swapped[i + 1]] = [swapped[i + 1]!, swapped[i]!];
      out.push({ what: `swap [${i}] and [${i + 1}]`, proof: swapped });
    }
  }
  out.push({
    what: 'short element',
    proof: proof.map((p, j) => (j === 0 ? p.subarray(0, HASH_SIZE - 1) : p)),
  });
  out.push({
    what: 'long element',
    proof: proof.map((p, j) => (j === 0 ? Buffer.concat([p, Buffer.alloc(1)]) : p)),
  });
  return out.filter((m) => m.proof.length > 0 || proof.length > 0);
}

const rejects = (f: () => void): boolean => {
  try {
    f();
    return false;
  } catch (e) {
    if (e instanceof ProofError) return true;
    throw e;
  }
};

// The sibling directions along an inclusion path. The verifier sees only (index, size) and
// the hashes, so two (index, size) pairs with the same shape accept the same proof: RFC 9162
// binds a root to its size only through the signed checkpoint.
const inclusionShape = (index: number, size: number): string =>
  inclusionProofRanges(index, size)
    .map((r) => (r.lo > index ? 'R' : 'L'))
    .join('');
function consistencyShape(m: number, n: number): string {
  if (m === n) return '=';
  const pow2 = (m & (m - 1)) === 0 ? 'P' : 'S';
  return (
    pow2 +
    consistencyProofRanges(m, n)
      .map((r) => (r.hi <= m ? 'L' : r.lo >= m ? 'R' : '?'))
      .join('')
  );
}

async function checkInclusion(t: any, index: number, size: number, mutate: boolean): Promise<void> {
  const { read, stats } = readerFor(size);
  const proof = await hashRanges(inclusionProofRanges(index, size), read);
  const want = PATH(index, 0, size);
  if (!proof.every((p, i) => p.equals(want[i]!)) || proof.length !== want.length) {
    t.fail(`inclusion proof ${index}/${size} differs from RFC PATH`);
    return;
  }
  if (stats.calls > 1 || stats.addrs > addrBound(size)) {
    t.fail(`inclusion ${index}/${size}: ${stats.calls} reads of ${stats.addrs} addresses`);
    return;
  }
  const root = MTH(0, size);
  const leaf = leafHash(DATA[index]!);
  verifyInclusion(index, size, leaf, proof, root);
  if (!rootFromInclusionProof(index, size, leaf, proof).equals(root)) t.fail('rootFromInclusionProof');
  if (!mutate) return;

  for (const m of proofMutations(proof)) {
    if (!rejects(() => verifyInclusion(index, size, leaf, m.proof, root))) {
      t.fail(`inclusion ${index}/${size}: accepted ${m.what}`);
    }
  }
  for (const bit of [0, 100, 255]) {
    if (!rejects(() => verifyInclusion(index, size, flipBit(leaf, bit), proof, root)))
      t.fail('wrong leaf accepted');
    if (!rejects(() => verifyInclusion(index, size, leaf, proof, flipBit(root, bit))))
      t.fail('wrong root accepted');
  }
  for (const other of [size - 1, size + 1]) {
    if (other >= 1 && other <= MAX && !MTH(0, other).equals(root)) {
      if (!rejects(() => verifyInclusion(index, size, leaf, proof, MTH(0, other))))
        t.fail(`root of ${other} accepted`);
    }
  }
  if (index + 1 < size && !leaf.equals(leafHash(DATA[index + 1]!))) {
    if (!rejects(() => verifyInclusion(index, size, leafHash(DATA[index + 1]!), proof, root))) {
      t.fail('neighbour leaf accepted');
    }
  }
  for (const i of [index - 1, index + 1]) {
    if (i < 0) continue;
    if (!rejects(() => verifyInclusion(i, size, leaf, proof, root)))
      t.fail(`inclusion ${index}/${size}: index ${i} accepted`);
  }
  for (const s of [size - 1, size + 1, size * 2, size >> 1]) {
    const accepted = !rejects(() => verifyInclusion(index, s, leaf, proof, root));
    const sameShape = index < s && inclusionShape(index, s) === inclusionShape(index, size);
    if (accepted !== sameShape)
      t.fail(`inclusion ${index}/${size} as size ${s}: accepted=${accepted}, same shape=${sameShape}`);
  }
}

async function checkConsistency(t: any, m: number, n: number, mutate: boolean): Promise<void> {
  const { read, stats } = readerFor(n);
  const proof = await hashRanges(consistencyProofRanges(m, n), read);
  const want = PROOF(m, n);
  if (proof.length !== want.length || !proof.every((p, i) => p.equals(want[i]!))) {
    t.fail(`consistency proof ${m}→${n} differs from RFC PROOF`);
    return;
  }
  if (stats.calls > 1 || stats.addrs > addrBound(n)) {
    t.fail(`consistency ${m}→${n}: ${stats.calls} reads of ${stats.addrs} addresses`);
    return;
  }
  const r1 = MTH(0, m);
  const r2 = MTH(0, n);
  verifyConsistency(m, n, r1, r2, proof);
  if (!mutate) return;

  for (const mu of proofMutations(proof)) {
    if (!rejects(() => verifyConsistency(m, n, r1, r2, mu.proof)))
      t.fail(`consistency ${m}→${n}: accepted ${mu.what}`);
  }
  if (m !== n) {
    for (const bit of [0, 255]) {
      if (!rejects(() => verifyConsistency(m, n, flipBit(r1, bit), r2, proof)))
        t.fail('wrong old root accepted');
      if (!rejects(() => verifyConsistency(m, n, r1, flipBit(r2, bit), proof)))
        t.fail('wrong new root accepted');
    }
    if (!rejects(() => verifyConsistency(m, n, r2, r1, proof))) t.fail('swapped roots accepted');
  } else if (!rejects(() => verifyConsistency(m, n, r1, flipBit(r2, 7), proof))) {
    t.fail('equal sizes with different roots accepted');
  }
  for (const [m2, n2] of [
    [m - 1, n],
    [m + 1, n],
    [m, n - 1],
    [m, n + 1],
    [m * 2, n],
    [m, n * 2],
  ] as const) {
    if (m2 === m && n2 === n) continue;
    const accepted = !rejects(() => verifyConsistency(m2, n2, r1, r2, proof));
    const sameShape = m2 >= 1 && m2 <= n2 && consistencyShape(m2, n2) === consistencyShape(m, n);
    if (accepted !== sameShape) {
      t.fail(`consistency ${m}→${n} as ${m2}→${n2}: accepted=${accepted}, same shape=${sameShape}`);
    }
    if (accepted && m2 !== m) t.fail(`consistency ${m}→${n}: accepted with old size ${m2}`);
  }
}

// ---- Tests ----

test('hash primitives match RFC 9162 definitions', (t) => {
  t.is(EMPTY_ROOT.toString('hex'), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  t.deepEqual(leafHash(Buffer.from('abc')), rawSha(Buffer.from('\x00abc', 'latin1')));
  t.deepEqual(nodeHash(Buffer.from('L'), Buffer.from('R')), rawSha(Buffer.from('\x01LR', 'latin1')));
  t.deepEqual(foldSubtrees([]), EMPTY_ROOT);
  t.deepEqual(rootRanges(0), []);
  t.deepEqual(rootRanges(7), [{ lo: 0, hi: 7 }]);
});

test('Frontier roots, stored rows and restore agree with naive MTH for sizes 0..1025', (t) => {
  const f = new Frontier();
  t.deepEqual(f.root(), EMPTY_ROOT);
  t.deepEqual(f.hashes(), []);
  for (let size = 1; size <= MAX; size++) {
    const row = rows[size - 1]!;
    if (row.length !== storedHashCount(size - 1)) t.fail(`row ${size - 1} has ${row.length} hashes`);
    // Position L of row n must be the complete subtree of height L ending at leaf n.
    row.forEach((h, L) => {
      const lo = size - 2 ** L;
      if (!h.equals(MTH(lo, size))) t.fail(`row ${size - 1} position ${L}`);
    });
    const stored = f.append(leafHash(DATA[size - 1]!));
    if (!stored.every((h, i) => h.equals(row[i]!))) t.fail(`append is not deterministic at ${size}`);
    if (!f.root().equals(MTH(0, size))) t.fail(`root of size ${size}`);
    // The frontier is exactly the complete subtrees of [0,size), readable from storage.
    const addrs = completeSubtrees(0, size);
    const fromStorage = addrs.map((a) => rows[storedAt(a).row]![storedAt(a).position]!);
    if (!f.hashes().every((h, i) => h.equals(fromStorage[i]!)) || f.hashes().length !== addrs.length) {
      t.fail(`frontier hashes of size ${size}`);
    }
    if (size < MAX) {
      const restored = new Frontier(size, fromStorage);
      const next = restored.append(leafHash(DATA[size]!));
      if (!next.every((h, i) => h.equals(rows[size]![i]!)) || next.length !== rows[size]!.length) {
        t.fail(`restored frontier at ${size} appends differently`);
      }
    }
  }
  t.is(f.size, MAX);
  t.deepEqual(f.root(), MTH(0, MAX));
});

test('Frontier clone is independent and constructor validates', (t) => {
  const f = new Frontier();
  for (let i = 0; i < 5; i++) f.append(leafHash(DATA[i]!));
  const c = f.clone();
  c.append(leafHash(DATA[5]!));
  t.is(f.size, 5);
  t.is(c.size, 6);
  t.deepEqual(f.root(), MTH(0, 5));
  t.deepEqual(c.root(), MTH(0, 6));
  f.hashes()[0]!.fill(0);
  t.deepEqual(f.root(), MTH(0, 5), 'hashes() returns copies');
  t.throws(() => new Frontier(5, [MTH(0, 4)]), { instanceOf: RangeError });
  t.throws(() => new Frontier(1, [Buffer.alloc(31)]), { instanceOf: RangeError });
  t.throws(() => new Frontier(-1, []), { instanceOf: RangeError });
  t.throws(() => f.append(Buffer.alloc(33)), { instanceOf: RangeError });
});

test('inclusion proofs for every index of sizes 1..300 match PATH, verify, and resist mutation', async (t) => {
  let n = 0;
  for (const size of SMALL_SIZES) {
    for (const index of indicesFor(size, true)) {
      await checkInclusion(t, index, size, mutateAt(index, size));
      n++;
    }
  }
  t.is(n, (300 * 301) / 2);
});

test('inclusion proofs for larger sizes', async (t) => {
  for (const size of BIG_SIZES) {
    for (const index of indicesFor(size, size <= 1025)) {
      await checkInclusion(t, index, size, mutateAt(index, size));
    }
  }
  t.pass();
});

test('consistency proofs for every pair of sizes 1..300 match PROOF, verify, and resist mutation', async (t) => {
  let n = 0;
  for (const size of SMALL_SIZES) {
    for (let old = 1; old <= size; old++) {
      await checkConsistency(t, old, size, mutateAt(old, size + 1));
      n++;
    }
  }
  t.is(n, (300 * 301) / 2);
});

test('consistency proofs for larger sizes', async (t) => {
  for (const size of BIG_SIZES) {
    for (const old of indicesFor(size + 1, false).filter((o) => o >= 1))
      await checkConsistency(t, old, size, true);
  }
  t.pass();
});

test('accepted size mutations are exactly the RFC 9162 shape collisions', (t) => {
  // Leaf 0 of 5 and of 6 share a path shape, as do 4→5 and 4→6: the same proof bytes verify
  // against the same root under either size. Harmless, because a checkpoint signs size and root
  // together, but it is why the size-mutation checks above compare with the shape.
  t.is(inclusionShape(0, 5), inclusionShape(0, 6));
  const leaf0 = leafHash(DATA[0]!);
  const p = PATH(0, 0, 5);
  t.notThrows(() => verifyInclusion(0, 6, leaf0, p, MTH(0, 5)));
  t.throws(() => verifyInclusion(0, 6, leaf0, p, MTH(0, 6)), { instanceOf: ProofError });
  t.notThrows(() => verifyConsistency(4, 6, MTH(0, 4), MTH(0, 5), PROOF(4, 5)));
});

test('verifier edge cases', (t) => {
  const leaf = leafHash(DATA[0]!);
  const r1 = MTH(0, 1);
  const r2 = MTH(0, 2);
  t.throws(() => verifyInclusion(0, 0, leaf, [], EMPTY_ROOT), { instanceOf: ProofError });
  t.throws(() => verifyInclusion(1, 1, leaf, [], r1), { instanceOf: ProofError });
  t.throws(() => verifyInclusion(-1, 1, leaf, [], r1), { instanceOf: ProofError });
  t.throws(() => verifyInclusion(0.5, 1, leaf, [], r1), { instanceOf: ProofError });
  t.notThrows(() => verifyInclusion(0, 1, leaf, [], r1));
  t.throws(() => verifyInclusion(0, 1, leaf, [], r1.subarray(0, 31)), { instanceOf: ProofError });
  t.throws(() => verifyInclusion(0, 1, Buffer.concat([leaf, Buffer.alloc(1)]), [], r1), {
    instanceOf: ProofError,
  });
  t.throws(() => rootFromInclusionProof(0, 2, leaf, []), { instanceOf: ProofError });
  // old > new; old == 0 even against an empty new tree; old == new only with empty proof.
  t.throws(() => verifyConsistency(2, 1, r2, r1, []), { instanceOf: ProofError });
  t.throws(() => verifyConsistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, []), { instanceOf: ProofError });
  t.throws(() => verifyConsistency(0, 1, EMPTY_ROOT, r1, []), { instanceOf: ProofError });
  t.notThrows(() => verifyConsistency(2, 2, r2, r2, []));
  t.throws(() => verifyConsistency(2, 2, r2, r2, [r2]), { instanceOf: ProofError });
  t.throws(() => verifyConsistency(2, 2, r2, r1, []), { instanceOf: ProofError });
  t.throws(() => verifyConsistency(1, 2, r1, r2, []), { instanceOf: ProofError });
  t.throws(() => verifyConsistency(1, 2, r1.subarray(1), r2, [leafHash(DATA[1]!)]), {
    instanceOf: ProofError,
  });
  t.notThrows(() => verifyConsistency(1, 2, r1, r2, [leafHash(DATA[1]!)]));
  // Wrong-length inputs whose hashes would otherwise line up: only the length checks reject.
  const long = Buffer.concat([leaf, Buffer.alloc(1)]);
  const short = leaf.subarray(1);
  const sib = leafHash(DATA[1]!);
  t.throws(() => verifyInclusion(0, 2, long, [sib], nodeHash(long, sib)), { instanceOf: ProofError });
  t.throws(() => verifyInclusion(0, 2, leaf, [short], nodeHash(leaf, short)), { instanceOf: ProofError });
  t.throws(() => rootFromInclusionProof(0, 2, leaf, [long]), { instanceOf: ProofError });
  t.throws(() => verifyConsistency(1, 2, short, nodeHash(short, sib), [sib]), { instanceOf: ProofError });
  t.throws(() => verifyConsistency(1, 2, r1, nodeHash(r1, long), [long]), { instanceOf: ProofError });
  const fakeNew = Buffer.concat([r2, Buffer.alloc(1)]);
  t.throws(() => verifyConsistency(2, 3, r2, fakeNew, [MTH(2, 3)]), { instanceOf: ProofError });
  // Uint8Array views (not Buffers) with an offset are compared by content.
  const backing = new Uint8Array(40);
  backing.set(r2, 8);
  t.notThrows(() => verifyConsistency(1, 2, r1, backing.subarray(8), [new Uint8Array(leafHash(DATA[1]!))]));
});

test('range helpers reject bad input', (t) => {
  t.throws(() => inclusionProofRanges(3, 3), { instanceOf: RangeError });
  t.throws(() => inclusionProofRanges(0, 0), { instanceOf: RangeError });
  t.throws(() => consistencyProofRanges(0, 3), { instanceOf: RangeError });
  t.throws(() => consistencyProofRanges(4, 3), { instanceOf: RangeError });
  t.deepEqual(consistencyProofRanges(3, 3), []);
  t.throws(() => completeSubtrees(5, 4), { instanceOf: RangeError });
  t.deepEqual(completeSubtrees(4, 4), []);
  t.throws(() => storedHashCount(-1), { instanceOf: RangeError });
  t.throws(() => storedAt({ level: 60, index: 1 }), { instanceOf: RangeError });
});

test('hashRanges reads once, deduplicates, and checks the reader', async (t) => {
  const ranges: Range[] = [
    ...inclusionProofRanges(5, 300),
    ...consistencyProofRanges(100, 300),
    { lo: 0, hi: 300 },
    { lo: 0, hi: 256 },
  ];
  const { read, stats } = readerFor(300);
  const got = await hashRanges(ranges, read);
  t.is(stats.calls, 1);
  const distinct = new Set(
    ranges.flatMap((r) => completeSubtrees(r.lo, r.hi).map((a) => `${a.level}/${a.index}`)),
  );
  t.is(stats.addrs, distinct.size);
  t.deepEqual(
    got,
    ranges.map((r) => MTH(r.lo, r.hi)),
  );

  let calls = 0;
  t.deepEqual(await hashRanges([], async () => (calls++, [])), []);
  t.is(calls, 0);
  await t.throwsAsync(hashRanges([{ lo: 0, hi: 4 }], async () => []));
  await t.throwsAsync(hashRanges([{ lo: 0, hi: 4 }], async () => [Buffer.alloc(31)]));
});

test('sizes beyond 2^32 use arithmetic, not 32-bit shifts', (t) => {
  t.is(storedHashCount(2 ** 32 - 1), 33);
  t.is(storedHashCount(2 ** 40 - 1), 41);
  t.is(storedHashCount(2 ** 52), 1);
  t.is(storedHashCount(2 ** 53 - 2), 1);
  t.deepEqual(storedAt({ level: 33, index: 5 }), { row: 6 * 2 ** 33 - 1, position: 33 });
  t.deepEqual(completeSubtrees(0, 2 ** 40 + 3), [
    { level: 40, index: 0 },
    { level: 1, index: 2 ** 39 },
    { level: 0, index: 2 ** 40 + 2 },
  ]);
  const big = 2 ** 53 - 1;
  const first = inclusionProofRanges(0, big);
  t.is(first.length, 53);
  t.deepEqual(first[52], { lo: 2 ** 52, hi: big });
  const last = inclusionProofRanges(big - 1, big);
  t.is(last.length, 52);
  t.deepEqual(last[51], { lo: 0, hi: 2 ** 52 });
  // Consistency ranges tile [0, new), and those left of `old` tile [0, old).
  const old = 2 ** 33 + 1;
  const cons = consistencyProofRanges(old, big);
  t.true(cons.length <= 54);
  const tiles = (rs: Range[], hi: number): boolean => {
    const sorted = [...rs].sort((a, b) => a.lo - b.lo);
    return sorted.every((r, i) => r.lo === (i === 0 ? 0 : sorted[i - 1]!.hi)) && sorted.at(-1)!.hi === hi;
  };
  t.true(tiles(cons, big));
  t.true(
    tiles(
      cons.filter((r) => r.hi <= old),
      old,
    ),
  );
  t.deepEqual(cons[0], { lo: 2 ** 33, hi: old });
  // A frontier for 2^40−1 leaves, then one append merges 40 subtrees into one.
  const hashes = completeSubtrees(0, 2 ** 40 - 1).map((_, i) => rawSha(Buffer.from([i])));
  t.is(hashes.length, 40);
  const f = new Frontier(2 ** 40 - 1, hashes);
  const stored = f.append(leafHash(DATA[0]!));
  t.is(stored.length, 41);
  t.is(f.size, 2 ** 40);
  t.is(f.hashes().length, 1);
  t.deepEqual(f.root(), stored[40]);
  // A proof for a leaf past 2^32 verifies (directions depend on high bits).
  const idx = 2 ** 33 + 12345;
  const size = 2 ** 34 + 7;
  const proof = inclusionProofRanges(idx, size).map((_, i) => rawSha(Buffer.from(`p${i}`)));
  const root = rootFromInclusionProof(idx, size, leafHash(DATA[1]!), proof);
  t.notThrows(() => verifyInclusion(idx, size, leafHash(DATA[1]!), proof, root));
  t.throws(() => verifyInclusion(idx + 2 ** 32, size, leafHash(DATA[1]!), proof, root), {
    instanceOf: ProofError,
  });
});
