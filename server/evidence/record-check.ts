// Recomputing the tree over the period's records: start from the start tree's compact range and
// append the leaf hash of every NDJSON line, noting the root at the sizes asked for (the log's
// intermediate checkpoints) and at the end. This class only computes; the verifier compares the
// roots with signed checkpoints, so nothing read here has to be trusted while it streams past.
import { Frontier, leafHash } from '../audit/merkle.ts';

const NEWLINE = 0x0a;

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
  /** Malformed lines, by leaf index. */
  problems: string[];
}

export class RecordChecker {
  #frontier: Frontier | undefined;
  #firstIndex: number | undefined;
  #pending: Buffer[] = [];
  #carry: Buffer | undefined;
  #count = 0;
  #watch = new Set<number>();
  #rootsAt = new Map<number, Buffer>();
  #missed: number[] = [];
  #problems: string[] = [];
  #ended = false;

  /** Note the root when the tree reaches each of these sizes. */
  watch(sizes: Iterable<number>): void {
    for (const s of sizes) {
      if (this.#frontier && this.#frontier.size >= s) this.#missed.push(s);
      else this.#watch.add(s);
    }
  }

  /** The start tree's compact range. Records seen before it are replayed. */
  start(frontier: Frontier): void {
    if (this.#frontier) throw new Error('start state given twice');
    this.#frontier = frontier;
    this.#firstIndex = frontier.size;
    const pending = this.#pending;
    this.#pending = [];
    for (const h of pending) this.#append(h);
  }

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
      this.#record(buf.subarray(pos, nl));
      pos = nl + 1;
    }
    if (pos < buf.length) this.#carry = Buffer.from(buf.subarray(pos));
  }

  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    if (this.#carry) {
      this.#problems.push(`line ${this.#count + 1}: the records file does not end with a newline`);
      this.#record(this.#carry);
      this.#carry = undefined;
    }
  }

  #record(line: Buffer): void {
    this.#count++;
    if (line.length === 0) this.#problems.push(`line ${this.#count} is empty`);
    const h = leafHash(line);
    if (this.#frontier) this.#append(h);
    else this.#pending.push(h);
  }

  #append(h: Buffer): void {
    const f = this.#frontier!;
    f.append(h);
    if (this.#watch.has(f.size)) this.#rootsAt.set(f.size, f.root());
  }

  result(): RecordCheckResult {
    this.end();
    return {
      count: this.#count,
      firstIndex: this.#firstIndex,
      endRoot: this.#frontier?.root(),
      rootsAt: this.#rootsAt,
      missedSizes: [...this.#missed],
      problems: [...this.#problems],
    };
  }
}
