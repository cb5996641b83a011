// Runs the transparency-dev/merkle JSON vectors (test/vectors/merkle) against our verifiers, and
// checks the classic Certificate Transparency roots, so our math agrees with other logs' tooling.
import test from 'ava';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import {
  EMPTY_ROOT,
  Frontier,
  ProofError,
  consistencyProofRanges,
  hashRanges,
  inclusionProofRanges,
  leafHash,
  storedAt,
  verifyConsistency,
  verifyInclusion,
  type NodeAddr,
} from '../server/audit/merkle.ts';

const vectorDir = fileURLToPath(new URL('./vectors/merkle/', import.meta.url));

function jsonFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return jsonFiles(p);
    return e.name.endsWith('.json') ? [p] : [];
  });
}

const b64 = (s: string): Buffer => Buffer.from(s, 'base64');
// Some vectors spell an empty proof as null.
const proofOf = (p: string[] | null): Buffer[] => (p ?? []).map(b64);

interface InclusionVector {
  leafIdx: number;
  treeSize: number;
  root: string;
  leafHash: string;
  proof: string[] | null;
  desc: string;
  wantErr: boolean;
}
interface ConsistencyVector {
  size1: number;
  size2: number;
  root1: string;
  root2: string;
  proof: string[] | null;
  desc: string;
  wantErr: boolean;
}

// The classic CT test leaves and the roots of their prefixes (RFC 6962 test suite).
const CT_LEAVES = [
  '',
  '00',
  '10',
  '2021',
  '3031',
  '40414243',
  '5051525354555657',
  '606162636465666768696a6b6c6d6e6f',
].map((h) => Buffer.from(h, 'hex'));
const CT_ROOTS = [
  'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
];

// The CT tree in our stored-hash layout, so vectors built from these leaves can also be checked
// against the proofs we generate.
const ctFrontier = new Frontier();
const ctRows = CT_LEAVES.map((l) => ctFrontier.append(leafHash(l)));
const ctRootAt = (size: number): Buffer => Buffer.from(CT_ROOTS[size]!, 'hex');
async function readCt(addrs: NodeAddr[], size: number): Promise<Buffer[]> {
  return addrs.map((a) => {
    const { row, position } = storedAt(a);
    if (row >= size) throw new Error(`read of row ${row} beyond size ${size}`);
    return ctRows[row]![position]!;
  });
}

test('CT roots for sizes 0..8 from Frontier', (t) => {
  const f = new Frontier();
  t.is(f.root().toString('hex'), CT_ROOTS[0]!);
  t.deepEqual(EMPTY_ROOT, ctRootAt(0));
  for (let i = 0; i < CT_LEAVES.length; i++) {
    f.append(leafHash(CT_LEAVES[i]!));
    t.is(f.root().toString('hex'), CT_ROOTS[i + 1]!, `size ${i + 1}`);
  }
});

const inclusionFiles = jsonFiles(join(vectorDir, 'inclusion'));
const consistencyFiles = jsonFiles(join(vectorDir, 'consistency'));

test('all vector files are present', (t) => {
  // Guards against a broken copy silently running zero vectors.
  t.is(inclusionFiles.length, 98);
  t.is(consistencyFiles.length, 98);
  const inc = inclusionFiles.map((f) => JSON.parse(readFileSync(f, 'utf8')) as InclusionVector);
  const con = consistencyFiles.map((f) => JSON.parse(readFileSync(f, 'utf8')) as ConsistencyVector);
  t.true(inc.filter((v) => !v.wantErr).length >= 5);
  t.true(con.filter((v) => !v.wantErr).length >= 5);
});

for (const file of inclusionFiles) {
  const v = JSON.parse(readFileSync(file, 'utf8')) as InclusionVector;
  const name = relative(vectorDir, file);
  test(`vector ${name}: ${v.desc}`, async (t) => {
    const run = () => verifyInclusion(v.leafIdx, v.treeSize, b64(v.leafHash), proofOf(v.proof), b64(v.root));
    if (v.wantErr) {
      t.throws(run, { instanceOf: ProofError });
      return;
    }
    t.notThrows(run);
    // Where the vector is over the CT leaves, our generated proof must be the same bytes.
    if (v.treeSize <= CT_LEAVES.length && b64(v.root).equals(ctRootAt(v.treeSize))) {
      t.deepEqual(b64(v.leafHash), leafHash(CT_LEAVES[v.leafIdx]!));
      const ours = await hashRanges(inclusionProofRanges(v.leafIdx, v.treeSize), (a) =>
        readCt(a, v.treeSize),
      );
      t.deepEqual(ours, proofOf(v.proof));
    }
  });
}

for (const file of consistencyFiles) {
  const v = JSON.parse(readFileSync(file, 'utf8')) as ConsistencyVector;
  const name = relative(vectorDir, file);
  test(`vector ${name}: ${v.desc}`, async (t) => {
    const run = () => verifyConsistency(v.size1, v.size2, b64(v.root1), b64(v.root2), proofOf(v.proof));
    if (v.wantErr) {
      t.throws(run, { instanceOf: ProofError });
      return;
    }
    t.notThrows(run);
    if (
      v.size1 > 0 &&
      v.size2 <= CT_LEAVES.length &&
      b64(v.root1).equals(ctRootAt(v.size1)) &&
      b64(v.root2).equals(ctRootAt(v.size2))
    ) {
      const ours = await hashRanges(consistencyProofRanges(v.size1, v.size2), (a) => readCt(a, v.size2));
      t.deepEqual(ours, proofOf(v.proof));
    }
  });
}

test('leafHash is SHA-256(0x00 ‖ data) for every size, and a short leaf after a long one sees none of its bytes', (t) => {
  const reference = (d: Uint8Array) => createHash('sha256').update(Buffer.from([0])).update(d).digest();
  // Around the reused-buffer limit (64 KiB) and the sizes records have; long before short on purpose.
  for (const size of [200_000, 65_536, 65_535, 1_700, 33, 1, 0]) {
    const data = Buffer.alloc(size, size % 251);
    t.deepEqual(leafHash(data), reference(data), `size ${size}`);
    t.deepEqual(leafHash(data.subarray(0, size >> 1)), reference(data.subarray(0, size >> 1)), `size ${size >> 1}`);
  }
});
