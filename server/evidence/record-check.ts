// Recomputing the tree over the period's records: start from the start tree's compact range and
// append the leaf hash of every NDJSON line, noting the root at the sizes asked for (the log's
// intermediate checkpoints) and at the end. This class only computes; the verifier compares the
// roots with signed checkpoints, so nothing read here has to be trusted while it streams past.
//
// This is the verifier's hot loop (a million records should take seconds), so it hashes in place
// rather than through merkle.ts's Frontier, which copies every hash it touches: the leaf prefix
// byte is written over the newline before the line, and the compact range lives in one buffer.
// The arithmetic is RFC 9162's, as in merkle.ts; test/evidence-record-check.test.ts holds the
// two equal for every tree size up to a few hundred and random start sizes.
import { createHash, hash as oneShot } from 'node:crypto';
import { HASH_SIZE, completeSubtrees, foldSubtrees } from '../audit/merkle.ts';

const NEWLINE = 0x0a;
const LEAF = 0x00;
const NODE = 0x01;
const MAX_DEPTH = 64;

/** SHA-256 of `data` as a new Buffer; one-shot where Node has it (20.12+), which is ~2× faster for small inputs. */
const sha256: (data: Buffer) => Buffer =
  typeof oneShot === 'function'
    ? (data) => oneShot('sha256', data, 'buffer')
    : (data) => createHash('sha256').update(data).digest();

/** The compact range of a growing tree: its maximal complete subtrees' hashes, left to right. */
export class CompactRange {
  #size: number;
  #depth: number;
  readonly #stack = Buffer.alloc(MAX_DEPTH * HASH_SIZE);
  readonly #pair = Buffer.alloc(1 + 2 * HASH_SIZE);

  constructor(size: number, hashes: Buffer[]) {
    const want = completeSubtrees(0, size).length;
    if (hashes.length !== want) throw new RangeError(`a tree of ${size} leaves has ${want} maximal subtrees, got ${hashes.length}`);
    hashes.forEach((h, i) => {
      if (h.length !== HASH_SIZE) throw new RangeError(`subtree hash ${i} is ${h.length} bytes`);
      h.copy(this.#stack, i * HASH_SIZE);
    });
    this.#size = size;
    this.#depth = hashes.length;
    this.#pair[0] = NODE;
  }

  get size(): number {
    return this.#size;
  }

  appendLeafHash(leaf: Buffer): void {
    const s = this.#stack;
    leaf.copy(s, this.#depth * HASH_SIZE);
    this.#depth++;
    // Each trailing 1 bit of the old size is a complete subtree the new leaf now pairs with.
    for (let n = this.#size; n % 2 === 1; n = Math.floor(n / 2)) {
      const right = (this.#depth - 1) * HASH_SIZE;
      const left = right - HASH_SIZE;
      s.copy(this.#pair, 1, left, right);
      s.copy(this.#pair, 1 + HASH_SIZE, right, right + HASH_SIZE);
      sha256(this.#pair).copy(s, left);
      this.#depth--;
    }
    this.#size++;
  }

  root(): Buffer {
    const hashes: Buffer[] = [];
    for (let i = 0; i < this.#depth; i++) hashes.push(Buffer.from(this.#stack.subarray(i * HASH_SIZE, (i + 1) * HASH_SIZE)));
    return foldSubtrees(hashes);
  }
}

export interface RecordCheckResult {
  /** Lines seen (records). */
  count: number;
  /** Leaf index of the first record (the start tree's size), when the start state was given. */
  firstIndex?: number;
  /** Root after every record, when the start state was given. */
  endRoot?: Buffer;
  /** Root at each watched size the records reached. */
  rootsAt: Map<number, Buffer>;
  /** Watched sizes registered only after the records had passed them. */
  missedSizes: number[];
  /** Malformed lines, by line number. */
  problems: string[];
}

export class RecordChecker {
  #tree: CompactRange | undefined;
  #firstIndex: number | undefined;
  #pending: Buffer[] = [];
  #carry: Buffer | undefined;
  #scratch = Buffer.alloc(4096);
  #count = 0;
  #watch = new Set<number>();
  #rootsAt = new Map<number, Buffer>();
  #missed: number[] = [];
  #problems: string[] = [];
  #ended = false;

  /** Note the root when the tree reaches each of these sizes. */
  watch(sizes: Iterable<number>): void {
    for (const s of sizes) {
      if (this.#tree && this.#tree.size >= s) this.#missed.push(s);
      else this.#watch.add(s);
    }
  }

  /** The start tree: its size and compact range. Records seen before it are replayed. */
  start(size: number, hashes: Buffer[]): void {
    if (this.#tree) throw new Error('start state given twice');
    this.#tree = new CompactRange(size, hashes);
    this.#firstIndex = size;
    const pending = this.#pending;
    this.#pending = [];
    for (const h of pending) this.#append(h);
  }

  /** Feeds NDJSON bytes. The chunk is briefly written to (and restored) while its lines are hashed. */
  write(chunk: Buffer): void {
    let buf = chunk;
    if (this.#carry) {
      buf = Buffer.concat([this.#carry, chunk]);
      this.#carry = undefined;
    }
    let pos = 0;
    for (;;) {
      const nl = buf.indexOf(NEWLINE, pos);
      if (nl < 0) break;
      this.#record(buf, pos, nl);
      pos = nl + 1;
    }
    if (pos < buf.length) this.#carry = Buffer.from(buf.subarray(pos));
  }

  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    if (this.#carry) {
      this.#problems.push(`line ${this.#count + 1}: the records file does not end with a newline`);
      const c = this.#carry;
      this.#carry = undefined;
      this.#record(c, 0, c.length);
    }
  }

  /** Hashes buf[start, end) as a leaf: SHA-256(0x00 ‖ line). */
  #record(buf: Buffer, start: number, end: number): void {
    this.#count++;
    if (end === start) this.#problems.push(`line ${this.#count} is empty`);
    let h: Buffer;
    if (start > 0) {
      // The byte before the line is the previous line's newline: borrow it for the prefix.
      const saved = buf[start - 1]!;
      buf[start - 1] = LEAF;
      h = sha256(buf.subarray(start - 1, end));
      buf[start - 1] = saved;
    } else {
      const len = end - start + 1;
      if (this.#scratch.length < len) this.#scratch = Buffer.alloc(Math.max(len, this.#scratch.length * 2));
      this.#scratch[0] = LEAF;
      buf.copy(this.#scratch, 1, start, end);
      h = sha256(this.#scratch.subarray(0, len));
    }
    if (this.#tree) this.#append(h);
    else this.#pending.push(h);
  }

  #append(h: Buffer): void {
    const t = this.#tree!;
    t.appendLeafHash(h);
    if (this.#watch.has(t.size)) this.#rootsAt.set(t.size, t.root());
  }

  result(): RecordCheckResult {
    this.end();
    return {
      count: this.#count,
      firstIndex: this.#firstIndex,
      endRoot: this.#tree?.root(),
      rootsAt: this.#rootsAt,
      missedSizes: [...this.#missed],
      problems: [...this.#problems],
    };
  }
}
