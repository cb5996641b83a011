// A deliberately naive RFC 9162 §2.1 tree over in-memory leaves, written straight from the RFC's
// recursive definitions and sharing no code with server/audit/: the independent recomputation
// that the log API tests compare every served hash against.
import { createHash } from 'node:crypto';

const sha = (...parts: Buffer[]): Buffer => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
};

/** Largest power of two strictly less than n (n > 1). */
function k(n: number): number {
  let p = 1;
  while (p * 2 < n) p *= 2;
  return p;
}

export class NaiveTree {
  readonly leaves: Buffer[];
  readonly #memo = new Map<string, Buffer>();

  constructor(entries: Buffer[]) {
    this.leaves = entries.map((e) => sha(Buffer.from([0]), e));
  }

  /** MTH(D[lo:hi]) */
  mth(lo: number, hi: number): Buffer {
    const key = `${lo},${hi}`;
    const hit = this.#memo.get(key);
    if (hit) return hit;
    const n = hi - lo;
    let out: Buffer;
    if (n === 0) out = sha();
    else if (n === 1) out = this.leaves[lo]!;
    else out = sha(Buffer.from([1]), this.mth(lo, lo + k(n)), this.mth(lo + k(n), hi));
    this.#memo.set(key, out);
    return out;
  }

  root(size: number): Buffer {
    return this.mth(0, size);
  }

  /** PATH(m, D[lo:hi]) */
  path(m: number, lo: number, hi: number): Buffer[] {
    const n = hi - lo;
    if (n <= 1) return [];
    const split = k(n);
    if (m < split) return [...this.path(m, lo, lo + split), this.mth(lo + split, hi)];
    return [...this.path(m - split, lo + split, hi), this.mth(lo, lo + split)];
  }

  inclusion(index: number, size: number): Buffer[] {
    return this.path(index, 0, size);
  }

  /** SUBPROOF(m, D[lo:hi], b) */
  subproof(m: number, lo: number, hi: number, b: boolean): Buffer[] {
    const n = hi - lo;
    if (m === n) return b ? [] : [this.mth(lo, hi)];
    const split = k(n);
    if (m <= split) return [...this.subproof(m, lo, lo + split, b), this.mth(lo + split, hi)];
    return [...this.subproof(m - split, lo + split, hi, false), this.mth(lo, lo + split)];
  }

  consistency(oldSize: number, newSize: number): Buffer[] {
    return this.subproof(oldSize, 0, newSize, true);
  }

  /** The stored-hash row of leaf i: position L = MTH of the 2^L leaves ending at i, while complete. */
  storedRow(i: number): Buffer[] {
    const row: Buffer[] = [];
    for (let width = 1; (i + 1) % width === 0; width *= 2) row.push(this.mth(i + 1 - width, i + 1));
    return row;
  }
}
