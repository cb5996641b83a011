// Checking the stored log against itself: the start-up self-check (bounded: the last checkpoint
// and the recent tail) and fsck (everything, streaming in constant memory). Both replay entries
// through a Frontier and compare every stored hash with the recomputed one, so a problem is
// reported at the first index where the stored data stops making sense.
import {
  EMPTY_ROOT,
  HASH_SIZE,
  Frontier,
  ProofError,
  consistencyProofRanges,
  hashRanges,
  leafHash,
  storedHashCount,
  verifyConsistency,
} from './merkle.ts';
import { LogCorruptError, type CheckpointRow, type LogStore, type StateRow } from './log-store.ts';
import { openNote, parseCheckpoint, parseVerifierKey } from './note.ts';

// In the order problems are reported: causes (missing or altered entries) before their effects.
export const CHECKS = [
  'entries present',
  'entry hashes',
  'stored tree hashes',
  'checkpoint signatures',
  'checkpoint roots',
  'checkpoint consistency',
  'state row',
] as const;
export type CheckName = (typeof CHECKS)[number];

export interface FsckCheck {
  name: CheckName;
  ok: boolean;
  /** What was checked when ok; the first problem and the count otherwise. */
  detail: string;
  firstBadIndex?: number;
}

export interface FsckResult {
  ok: boolean;
  size: number;
  entriesChecked: number;
  checkpointsChecked: number;
  checks: FsckCheck[];
  /** Every problem as a sentence naming the index (capped per check, with a count of the rest). */
  problems: string[];
  durationMs: number;
}

/** Verifies a stored checkpoint note with the log's key; throws when it does not verify. */
export type CheckpointOpener = (note: string) => { origin: string; size: number; root: Buffer };

/** Opens checkpoint notes signed by the key of this verifier key line (C2SP vkey). */
export function checkpointOpener(vkey: string): CheckpointOpener {
  const verifier = parseVerifierKey(vkey);
  return (note) => {
    const cp = parseCheckpoint(openNote(note, [verifier]).body);
    return { origin: cp.origin, size: cp.size, root: Buffer.from(cp.root) };
  };
}

const MAX_MESSAGES_PER_CHECK = 10;
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** Problems grouped by check, remembering the first bad index of each. */
export class Findings {
  #by = new Map<CheckName, { count: number; firstBadIndex?: number; messages: string[] }>();

  add(check: CheckName, index: number | undefined, message: string): void {
    let f = this.#by.get(check);
    if (!f) this.#by.set(check, (f = { count: 0, messages: [] }));
    f.count++;
    if (index !== undefined && (f.firstBadIndex === undefined || index < f.firstBadIndex))
      f.firstBadIndex = index;
    if (f.messages.length < MAX_MESSAGES_PER_CHECK) f.messages.push(message);
  }

  get ok(): boolean {
    return this.#by.size === 0;
  }

  problems(): string[] {
    const out: string[] = [];
    for (const name of CHECKS) {
      const f = this.#by.get(name);
      if (!f) continue;
      out.push(...f.messages);
      if (f.count > f.messages.length) {
        out.push(
          `${name}: ${f.count - f.messages.length} more problems` +
            (f.firstBadIndex !== undefined ? ` (first bad index ${f.firstBadIndex})` : ''),
        );
      }
    }
    return out;
  }

  checks(passDetail: Partial<Record<CheckName, string>>): FsckCheck[] {
    return CHECKS.map((name) => {
      const f = this.#by.get(name);
      if (!f) return { name, ok: true, detail: passDetail[name] ?? 'ok' };
      const first = f.firstBadIndex !== undefined ? `first bad index ${f.firstBadIndex}; ` : '';
      return {
        name,
        ok: false,
        detail: `${first}${f.count} problem${f.count === 1 ? '' : 's'}: ${f.messages[0]}`,
        ...(f.firstBadIndex !== undefined ? { firstBadIndex: f.firstBadIndex } : {}),
      };
    });
  }
}

/** A checkpoint whose signature verified, with the size and root from its signed body. */
interface OpenedCheckpoint {
  size: number;
  root: Buffer;
}

/** Checks the note of a stored checkpoint row; returns its signed content, or undefined (reported). */
export function openStoredCheckpoint(
  row: CheckpointRow,
  origin: string,
  open: CheckpointOpener,
  f: Findings,
): OpenedCheckpoint | undefined {
  let body: { origin: string; size: number; root: Buffer };
  try {
    body = open(row.note);
  } catch (err) {
    f.add(
      'checkpoint signatures',
      row.size,
      `checkpoint ${row.size}: signature does not verify (${(err as Error).message})`,
    );
    return undefined;
  }
  if (body.origin !== origin) {
    f.add(
      'checkpoint signatures',
      row.size,
      `checkpoint ${row.size}: signed for origin ${JSON.stringify(body.origin)}, this log is ${JSON.stringify(origin)}`,
    );
    return undefined;
  }
  if (body.size !== row.size || !body.root.equals(row.root)) {
    f.add(
      'checkpoint signatures',
      row.size,
      `checkpoint ${row.size}: stored columns (size ${row.size}, root ${hex(row.root)}) differ from the signed note (size ${body.size}, root ${hex(body.root)})`,
    );
    return undefined;
  }
  return { size: body.size, root: body.root };
}

/**
 * Feeds entries, in order, through two frontiers: one built from the stored leaf hashes (checks
 * every stored interior hash against the hashes below it) and, once they diverge, one from the
 * entry bytes (what an auditor recomputes). Stops at the first missing entry: no later hash can
 * be recomputed without it.
 */
class Replayer {
  readonly stored: Frontier;
  #fromData: Frontier | undefined;
  expected: number;
  broken = false;

  constructor(
    initial: Frontier,
    private readonly f: Findings,
  ) {
    this.stored = initial.clone();
    this.expected = initial.size;
  }

  /** Root recomputed from entry bytes (equal to the stored-hash root until they diverge). */
  dataRoot(): Buffer {
    return (this.#fromData ?? this.stored).root();
  }

  get size(): number {
    return this.stored.size;
  }

  feed(idx: number, data: Buffer, hashes: Buffer): boolean {
    if (idx !== this.expected) {
      this.missing(this.expected, idx);
      return false;
    }
    const leaf = leafHash(data);
    const count = storedHashCount(idx);
    const blobOk = hashes.length === count * HASH_SIZE;
    if (!blobOk) {
      this.f.add(
        'stored tree hashes',
        idx,
        `entry ${idx}: stored hashes are ${hashes.length} bytes, expected ${count * HASH_SIZE}`,
      );
    }
    const storedLeaf = blobOk ? hashes.subarray(0, HASH_SIZE) : leaf;
    if (!leaf.equals(storedLeaf)) {
      this.f.add(
        'entry hashes',
        idx,
        `entry ${idx}: leaf hash ${hex(storedLeaf)} stored, ${hex(leaf)} recomputed from the entry's ${data.length} bytes`,
      );
      this.#fromData ??= this.stored.clone();
    }
    const recomputed = this.stored.append(Buffer.from(storedLeaf));
    this.#fromData?.append(leaf);
    if (blobOk) {
      for (let p = 1; p < recomputed.length; p++) {
        const s = hashes.subarray(p * HASH_SIZE, (p + 1) * HASH_SIZE);
        if (!recomputed[p]!.equals(s)) {
          this.f.add(
            'stored tree hashes',
            idx,
            `entry ${idx}: stored hash of node (level ${p}, index ${(idx + 1) / 2 ** p - 1}) is ${hex(s)}, ` +
              `${hex(recomputed[p]!)} recomputed from the hashes below it`,
          );
        }
      }
    }
    this.expected++;
    return true;
  }

  missing(from: number, upto: number | undefined): void {
    const span =
      upto === undefined ? '' : upto - from > 1 ? ` (entries ${from}..${upto - 1} are absent)` : '';
    this.f.add('entries present', from, `entry ${from}: missing${span}`);
    this.broken = true;
  }
}

function compareCheckpointRoot(cp: OpenedCheckpoint, recomputed: Buffer, f: Findings): void {
  if (!recomputed.equals(cp.root)) {
    f.add(
      'checkpoint roots',
      cp.size,
      `checkpoint ${cp.size}: root ${hex(cp.root)} signed, ${hex(recomputed)} recomputed from the entries`,
    );
  }
}

async function consistencyFromStore(store: LogStore, oldSize: number, newSize: number): Promise<Buffer[]> {
  if (oldSize === newSize) return [];
  return hashRanges(consistencyProofRanges(oldSize, newSize), (a) => store.readNodes(a));
}

async function checkConsistency(
  store: LogStore,
  prev: OpenedCheckpoint,
  cur: OpenedCheckpoint,
  f: Findings,
): Promise<void> {
  try {
    const proof = await consistencyFromStore(store, prev.size, cur.size);
    verifyConsistency(prev.size, cur.size, prev.root, cur.root, proof);
  } catch (err) {
    if (!(err instanceof ProofError) && !(err instanceof LogCorruptError)) throw err;
    f.add(
      'checkpoint consistency',
      cur.size,
      `checkpoint ${cur.size}: not consistent with checkpoint ${prev.size} (${err.message})`,
    );
  }
}

export interface SelfCheckOutcome {
  findings: Findings;
  state: StateRow;
  /** Frontier at state.size from stored hashes (checked against the replayed tail). */
  frontier?: Frontier;
  checkedSize: number;
}

/**
 * Start-up check: the last checkpoint verifies and its root is recomputed from stored data; the
 * entries after it (and at least the last `sample`) are re-hashed and every stored hash of that
 * tail is recomputed; the state row's root is the recomputed root.
 */
export async function selfCheck(
  store: LogStore,
  opts: { origin: string; open: CheckpointOpener; sample: number },
): Promise<SelfCheckOutcome> {
  const f = new Findings();
  // Checkpoint before state: a concurrent writer may sign a newer checkpoint at any moment, but
  // never one beyond the state it committed, and the state only grows.
  const last = await store.latestCheckpoint();
  const state = await store.state();
  let cp: OpenedCheckpoint | undefined;
  if (last) {
    cp = openStoredCheckpoint(last, opts.origin, opts.open, f);
    if (cp && cp.size > state.size) {
      f.add(
        'checkpoint roots',
        cp.size,
        `checkpoint ${cp.size}: signed for more entries than the state row holds (size ${state.size}): entries were removed or the state rolled back`,
      );
      cp = undefined;
    }
  }
  const start = Math.min(cp?.size ?? state.size, Math.max(0, state.size - opts.sample));
  const frontier = await checkedFrontierAt(store, start, f);
  if (!frontier) return { findings: f, state, checkedSize: state.size };
  const r = new Replayer(frontier, f);
  const atCheckpoint = (): void => {
    if (cp && r.size === cp.size) compareCheckpointRoot(cp, r.dataRoot(), f);
  };
  atCheckpoint();
  outer: for await (const page of store.pages(start, state.size)) {
    for (const row of page) {
      if (!r.feed(row.idx, row.data, row.hashes)) break outer;
      atCheckpoint();
    }
  }
  await finish(store, r, state, f);
  return { findings: f, state, frontier: f.ok ? r.stored : undefined, checkedSize: state.size };
}

async function checkedFrontierAt(store: LogStore, size: number, f: Findings): Promise<Frontier | undefined> {
  try {
    return await store.frontierAt(size);
  } catch (err) {
    if (!(err instanceof LogCorruptError)) throw err;
    f.add(/missing/.test(err.message) ? 'entries present' : 'stored tree hashes', err.index, err.message);
    return undefined;
  }
}

/** After the replay: nothing missing at the end, nothing beyond the state, and the state root. */
async function finish(store: LogStore, r: Replayer, state: StateRow, f: Findings): Promise<void> {
  if (!r.broken && r.size < state.size) r.missing(r.size, state.size);
  if (!r.broken) {
    const root = r.dataRoot();
    if (!root.equals(state.root)) {
      f.add(
        'state row',
        undefined,
        `state row: root ${hex(state.root)} at size ${state.size}, ${hex(root)} recomputed from the entries`,
      );
    }
  }
  const now = await store.entriesBeyondState();
  if (now.beyond > 0) {
    f.add(
      'entries present',
      now.size,
      `entry ${now.size}: ${now.beyond} entries stored beyond the committed size ${now.size}`,
    );
  }
}

/** The full check: every entry, every stored hash, every checkpoint. Constant memory. */
export async function fsck(
  store: LogStore,
  opts: {
    origin: string;
    open: CheckpointOpener;
    pageSize?: number;
    onProgress?: (done: number, total: number) => void;
  },
): Promise<FsckResult> {
  const t0 = performance.now();
  const f = new Findings();
  const state = await store.state();

  // Checkpoints are consumed in size order alongside the entries.
  const cps = store.checkpoints()[Symbol.asyncIterator]();
  let next: OpenedCheckpoint | undefined;
  let prev: OpenedCheckpoint | undefined;
  let checkpointsChecked = 0;
  const advance = async (): Promise<void> => {
    next = undefined;
    while (true) {
      const it = await cps.next();
      if (it.done) return;
      checkpointsChecked++;
      const opened = openStoredCheckpoint(it.value, opts.origin, opts.open, f);
      if (!opened) continue;
      // Signed after fsck read the state (the log is live)? Then it is beyond this check's reach.
      if (opened.size > state.size && opened.size <= (await store.state()).size) {
        continue;
      }
      if (opened.size > state.size) {
        f.add(
          'checkpoint roots',
          opened.size,
          `checkpoint ${opened.size}: signed for more entries than the state row holds (size ${state.size})`,
        );
        continue;
      }
      if (opened.size === 0 && !opened.root.equals(EMPTY_ROOT)) {
        f.add('checkpoint roots', 0, `checkpoint 0: root ${hex(opened.root)} is not the empty tree's root`);
        continue;
      }
      if (prev && prev.size > 0) await checkConsistency(store, prev, opened, f);
      prev = opened;
      next = opened;
      return;
    }
  };
  await advance();

  const r = new Replayer(new Frontier(), f);
  const atCheckpoints = async (): Promise<void> => {
    while (next && next.size === r.size) {
      compareCheckpointRoot(next, r.dataRoot(), f);
      await advance();
    }
  };
  await atCheckpoints();
  outer: for await (const page of store.pages(0, state.size, ['data', 'hashes'], opts.pageSize)) {
    for (const row of page) {
      if (!r.feed(row.idx, row.data, row.hashes)) break outer;
      if (next && next.size === r.size) await atCheckpoints();
    }
    opts.onProgress?.(r.size, state.size);
  }
  await finish(store, r, state, f);
  // Checkpoints not reached by the replay (after a gap) still get their signature and consistency checked.
  while (next) await advance();

  return {
    ok: f.ok,
    size: state.size,
    entriesChecked: r.size,
    checkpointsChecked,
    checks: f.checks({
      'state row': `size ${state.size}, root ${hex(state.root)} recomputed from the entries`,
      'entries present':
        state.size === 0
          ? 'empty log, no entries stored'
          : `entries 0..${state.size - 1} present, none beyond`,
      'entry hashes': `${r.size} entries re-hashed`,
      'stored tree hashes': `every stored hash of ${r.size} entries recomputed`,
      'checkpoint signatures': `${checkpointsChecked} checkpoint signatures verify`,
      'checkpoint roots': `${checkpointsChecked} checkpoint roots recomputed from the entries`,
      'checkpoint consistency': `consecutive checkpoints consistent (proofs from stored hashes)`,
    }),
    problems: f.problems(),
    durationMs: Math.round(performance.now() - t0),
  };
}
