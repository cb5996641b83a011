// The audit log on SQLite or PostgreSQL through knex.
//
// Writes: appends queue in memory and are committed in batches (group commit). One transaction
// per batch compare-and-swaps the single log_state row from the size and root this process
// last saw to the new ones, then inserts the entries with their stored hashes and the
// audit_events rows. The CAS is the commit point: if another writer moved the state first, it
// matches no row, the batch rolls back, the frontier is reloaded from stored hashes and the batch
// retried — two writers can interleave but never fork the log. Callers are answered only after
// COMMIT returned.
//
// Reads: proofs and past roots come from stored hashes in one query each (plus an LRU of
// high-level nodes), so they cost O(log n) row reads.
//
// Checkpoints are signed only from committed state, only after the state root is recomputed
// from stored hashes and a consistency proof from the previous signed checkpoint verifies.
import canonicalizeModule from 'canonicalize';
import type { Db } from '../db.ts';
import type { Logger } from '../logger.ts';
import {
  EMPTY_ROOT,
  Frontier,
  ProofError,
  consistencyProofRanges,
  hashRanges,
  inclusionProofRanges,
  leafHash,
  verifyConsistency,
  type Range,
} from './merkle.ts';
import { formatCheckpoint, signNote, verifierKey, type NoteSigner } from './note.ts';
import {
  LogRangeError,
  LogUnavailableError,
  type AuditLog,
  type LogEntry,
  type SelfCheckResult,
  type StoredCheckpoint,
} from './log.ts';
import { LogCorruptError, LogStore, type CheckpointRow } from './log-store.ts';
import { auditEventFields, type AuditEventFields } from './audit-events.ts';
import { batchWriter, type BatchWriter } from './log-writer.ts';
import {
  Findings,
  checkpointOpener,
  fsck as runFsck,
  openStoredCheckpoint,
  selfCheck as runSelfCheck,
  type CheckpointOpener,
  type FsckResult,
} from './log-check.ts';

// The package is CommonJS (module.exports = fn); its typings describe an ESM default export.
const canonicalize = canonicalizeModule as unknown as (value: unknown) => string | undefined;

export type { FsckResult, FsckCheck } from './log-check.ts';

export interface KnexLogOptions {
  /** Checkpoint origin; the signer's key name must equal it. */
  origin: string;
  signer: NoteSigner;
  /** Group commit: at most this many entries per transaction. */
  batchMaxSize: number;
  /** Group commit: how long an idle log waits for more entries before committing. */
  batchMaxDelayMs: number;
  /** Sign a checkpoint at most this often, when the tree grew. */
  checkpointIntervalMs: number;
  logger?: Logger;
  /** Run the checkpoint timer (default true); tests drive checkpoint() themselves. */
  checkpointTimer?: boolean;
  /** An append that is not committed within this time rejects with LogUnavailableError (default 5000). */
  appendTimeoutMs?: number;
  /** Write the audit_events row of each entry (default true). */
  indexEvents?: boolean;
  /** The self-check re-hashes at least this many of the newest entries (default 1000). */
  selfCheckSample?: number;
  /** File-backed SQLite: commit on a writer thread of the log's own (default true). */
  sqliteWriterThread?: boolean;
}

interface Pending {
  data: Buffer;
  leaf: Buffer;
  fields: AuditEventFields | undefined;
  resolve: (index: number) => void;
  reject: (err: Error) => void;
  /** performance.now() after which the caller is told the log is unavailable. */
  deadline: number;
  settled: boolean;
}

/** The state row moved under us: another writer committed first. */
class CasConflict extends Error {}

const MAX_CAS_ATTEMPTS = 50;
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

export interface BatchStats {
  batches: number;
  entries: number;
  casConflicts: number;
}

export class KnexLog implements AuditLog {
  readonly store: LogStore;
  readonly origin: string;
  /** The C2SP verifier key line of the log's signing key. */
  readonly vkey: string;
  readonly stats: BatchStats = { batches: 0, entries: 0, casConflicts: 0 };

  readonly #db: Db;
  readonly #writer: BatchWriter;
  readonly #opts: Required<Omit<KnexLogOptions, 'logger'>> & { logger?: Logger };
  readonly #open: CheckpointOpener;
  /** Committed tree as of this process's last commit or reload. */
  #frontier = new Frontier();
  #root: Buffer = Buffer.from(EMPTY_ROOT);
  #queue: Pending[] = [];
  #flushTimer: NodeJS.Timeout | NodeJS.Immediate | undefined;
  #deadlineTimer: NodeJS.Timeout | undefined;
  /** The batch being committed (for the deadline sweep). */
  #committing: Pending[] = [];
  #inFlight: Promise<void> | undefined;
  #problems: string[] = [];
  #checkedSize = 0;
  #closed = false;
  #checkpointTimer: NodeJS.Timeout | undefined;
  #checkpointRun: Promise<StoredCheckpoint | undefined> | undefined;

  /** Use openKnexLog(): the log must pass its self-check before it takes writes. */
  constructor(db: Db, opts: KnexLogOptions) {
    if (opts.signer.name !== opts.origin) {
      throw new Error(
        `log signer key is named ${JSON.stringify(opts.signer.name)}, not the origin ${JSON.stringify(opts.origin)}`,
      );
    }
    if (!Number.isSafeInteger(opts.batchMaxSize) || opts.batchMaxSize < 1)
      throw new RangeError('batchMaxSize must be ≥ 1');
    this.#db = db;
    this.store = new LogStore(db);
    this.#writer = batchWriter(db, { thread: opts.sqliteWriterThread !== false });
    this.origin = opts.origin;
    this.#opts = {
      checkpointTimer: true,
      appendTimeoutMs: 5_000,
      indexEvents: true,
      selfCheckSample: 1_000,
      sqliteWriterThread: true,
      ...opts,
    };
    this.vkey = verifierKey(opts.signer);
    this.#open = checkpointOpener(this.vkey);
  }

  // ---------------------------------------------------------------- start-up

  /** Runs the self-check and, when it passes, adopts the verified frontier for writing. */
  async runSelfCheck(): Promise<SelfCheckResult> {
    let outcome;
    try {
      outcome = await runSelfCheck(this.store, {
        origin: this.origin,
        open: this.#open,
        sample: this.#opts.selfCheckSample,
      });
    } catch (err) {
      throw unavailable('audit log self-check could not read the database', err);
    }
    this.#checkedSize = outcome.checkedSize;
    this.#problems = outcome.findings.problems();
    if (outcome.frontier) {
      this.#frontier = outcome.frontier;
      this.#root = outcome.frontier.root();
    }
    if (this.#problems.length) {
      this.#opts.logger?.error({ problems: this.#problems }, 'audit log self-check failed: appends refused');
    }
    return this.selfCheck();
  }

  startCheckpointTimer(): void {
    if (!this.#opts.checkpointTimer || this.#checkpointTimer) return;
    this.#checkpointTimer = setInterval(() => {
      if (this.#checkpointRun || this.#problems.length) return;
      this.checkpoint().catch((err) => this.#opts.logger?.warn({ err }, 'audit log checkpoint failed'));
    }, this.#opts.checkpointIntervalMs);
    this.#checkpointTimer.unref();
  }

  selfCheck(): SelfCheckResult {
    return { ok: this.#problems.length === 0, checkedSize: this.#checkedSize, problems: [...this.#problems] };
  }

  /** Records a detected inconsistency: from now on this process refuses to write or sign. */
  #alarm(problem: string): LogUnavailableError {
    if (!this.#problems.includes(problem)) this.#problems.push(problem);
    this.#opts.logger?.error({ problem }, 'audit log alarm: appends and checkpoints refused');
    return new LogUnavailableError(`audit log refuses writes: ${problem}`);
  }

  // ---------------------------------------------------------------- appends

  append(record: object): Promise<number> {
    if (record === null || typeof record !== 'object' || Array.isArray(record)) {
      return Promise.reject(new TypeError('an audit record must be a JSON object'));
    }
    let text: string | undefined;
    try {
      text = canonicalize(record);
    } catch (err) {
      return Promise.reject(new TypeError(`audit record cannot be canonicalised: ${(err as Error).message}`));
    }
    if (text === undefined) return Promise.reject(new TypeError('audit record cannot be canonicalised'));
    return this.#enqueue(Buffer.from(text, 'utf8'), record);
  }

  appendBytes(data: Buffer): Promise<number> {
    let parsed: unknown;
    try {
      const text = data.toString('utf8');
      parsed = JSON.parse(text);
      const canonical = canonicalize(parsed);
      if (canonical === undefined || !Buffer.from(canonical, 'utf8').equals(data))
        throw new Error('not canonical');
    } catch {
      return Promise.reject(new TypeError('appendBytes takes the RFC 8785 canonical JSON bytes of a record'));
    }
    return this.#enqueue(Buffer.from(data), parsed);
  }

  #enqueue(data: Buffer, record: unknown): Promise<number> {
    if (this.#closed) return Promise.reject(new LogUnavailableError('audit log is closed'));
    if (this.#problems.length) {
      return Promise.reject(new LogUnavailableError(`audit log refuses writes: ${this.#problems[0]}`));
    }
    // Hashing here, while the previous batch commits, keeps it off the commit path.
    const leaf = leafHash(data);
    const fields = this.#opts.indexEvents ? auditEventFields(record) : undefined;
    return new Promise<number>((resolve, reject) => {
      const p: Pending = {
        data,
        leaf,
        fields,
        resolve,
        reject,
        settled: false,
        deadline: performance.now() + this.#opts.appendTimeoutMs,
      };
      this.#queue.push(p);
      this.#watchDeadlines();
      this.#schedule();
    });
  }

  #settle(p: Pending, result: number | Error): void {
    if (p.settled) return;
    p.settled = true;
    if (typeof result === 'number') p.resolve(result);
    else p.reject(result);
  }

  /**
   * Appends that are not committed by their deadline are rejected, whether still queued or in a
   * batch that hangs. One sweeping timer while anything is pending: a timer per append costs
   * more than the rest of the append's bookkeeping.
   */
  #watchDeadlines(): void {
    if (this.#deadlineTimer) return;
    const every = Math.max(5, Math.min(250, this.#opts.appendTimeoutMs / 4));
    this.#deadlineTimer = setInterval(() => {
      const now = performance.now();
      const late = (p: Pending) => !p.settled && p.deadline <= now;
      const timeout = () =>
        new LogUnavailableError(
          `audit log append not committed within ${this.#opts.appendTimeoutMs} ms: database unavailable`,
        );
      for (const p of this.#committing) if (late(p)) this.#settle(p, timeout());
      if (this.#queue.some(late)) {
        this.#queue = this.#queue.filter((p) => {
          if (!late(p)) return true;
          this.#settle(p, timeout());
          return false;
        });
      }
      if (this.#queue.length === 0 && !this.#inFlight) {
        clearInterval(this.#deadlineTimer);
        this.#deadlineTimer = undefined;
      }
    }, every);
  }

  #cancelFlush(): void {
    const t = this.#flushTimer;
    if (t === undefined) return;
    if ('hasRef' in t && 'refresh' in t) clearTimeout(t as NodeJS.Timeout);
    else clearImmediate(t as NodeJS.Immediate);
  }

  #schedule(): void {
    if (this.#inFlight || this.#queue.length === 0) return;
    if (this.#queue.length >= this.#opts.batchMaxSize) {
      this.#cancelFlush();
      this.#flushTimer = undefined;
      this.#startBatch();
    } else if (!this.#flushTimer) {
      const go = () => {
        this.#flushTimer = undefined;
        this.#startBatch();
      };
      // Delay 0 = commit as soon as the log is idle; appends made in the same turn of the event
      // loop (a batch's elements, both sides of a hop) still share the commit. setTimeout(0) would
      // wait a clamped millisecond on every idle append.
      this.#flushTimer =
        this.#opts.batchMaxDelayMs > 0 ? setTimeout(go, this.#opts.batchMaxDelayMs) : setImmediate(go);
    }
  }

  #startBatch(): void {
    if (this.#inFlight) return;
    // Entries whose caller already gave up (timeout) are still committed if they are in the
    // batch: "not acknowledged" never promises "not written".
    const batch = this.#queue.splice(0, this.#opts.batchMaxSize);
    if (batch.length === 0) return;
    this.#committing = batch;
    this.#inFlight = this.#commit(batch).finally(() => {
      this.#inFlight = undefined;
      this.#committing = [];
      // Whatever queued during the commit has waited long enough: go at once, but through the
      // event loop. better-sqlite3 is synchronous, so a commit can complete without yielding and
      // back-to-back batches would otherwise starve timers and I/O.
      if (this.#queue.length) setImmediate(() => this.#startBatch());
    });
  }

  async #commit(batch: Pending[]): Promise<void> {
    try {
      for (let attempt = 1; ; attempt++) {
        if (this.#problems.length)
          throw new LogUnavailableError(`audit log refuses writes: ${this.#problems[0]}`);
        try {
          const first = await this.#commitOnce(batch);
          this.stats.batches++;
          this.stats.entries += batch.length;
          batch.forEach((p, i) => this.#settle(p, first + i));
          return;
        } catch (err) {
          if (!(err instanceof CasConflict)) throw err;
          this.stats.casConflicts++;
          if (attempt >= MAX_CAS_ATTEMPTS) {
            throw new LogUnavailableError(
              `audit log: lost the state compare-and-swap ${attempt} times to other writers`,
            );
          }
          await this.#reload();
        }
      }
    } catch (err) {
      const e = err instanceof LogUnavailableError ? err : unavailable('audit log database unavailable', err);
      if (!(err instanceof LogUnavailableError)) this.#opts.logger?.warn({ err }, 'audit log batch failed');
      for (const p of batch) this.#settle(p, e);
    }
  }

  /** One transaction: CAS the state row, insert entries and index rows. Returns the first index. */
  async #commitOnce(batch: Pending[]): Promise<number> {
    const base = this.#frontier;
    const next = base.clone();
    const entries = batch.map((p) => {
      const idx = next.size;
      return { idx, data: p.data, hashes: Buffer.concat(next.append(p.leaf)) };
    });
    const root = next.root();
    const moved = await this.#writer.write({
      oldSize: base.size,
      oldRoot: this.#root,
      newSize: next.size,
      newRoot: root,
      entries,
      events: this.#opts.indexEvents
        ? batch.map((p, i) => ({ idx: base.size + i, ...p.fields! }))
        : undefined,
    });
    if (!moved) throw new CasConflict();
    this.#frontier = next;
    this.#root = root;
    return base.size;
  }

  /** Another writer committed: rebuild the frontier from stored hashes and check it against the state row. */
  async #reload(): Promise<void> {
    const state = await this.store.state();
    if (state.size < this.#frontier.size) {
      throw this.#alarm(
        `state row: size went back from ${this.#frontier.size} to ${state.size}: entries removed or an old database restored`,
      );
    }
    const frontier = await this.store.frontierAt(state.size).catch((err) => {
      if (err instanceof LogCorruptError) throw this.#alarm(err.message);
      throw err;
    });
    const root = frontier.root();
    if (!root.equals(state.root)) {
      throw this.#alarm(
        `state row: root ${hex(state.root)} at size ${state.size}, ${hex(root)} from the stored hashes`,
      );
    }
    this.#frontier = frontier;
    this.#root = root;
  }

  // ---------------------------------------------------------------- reads

  async head(): Promise<{ size: number; root: Buffer }> {
    return this.store.state();
  }

  /** A size that is committed: known from this process's frontier, else from the state row. */
  async #requireCommitted(what: string, size: number): Promise<void> {
    if (size <= this.#frontier.size) return;
    const { size: current } = await this.store.state();
    if (size > current) throw new LogRangeError(`${what} ${size} is beyond the tree size ${current}`);
  }

  async rootAt(size: number): Promise<Buffer> {
    checkInt('size', size, 0);
    await this.#requireCommitted('size', size);
    return this.#rootFromStore(size);
  }

  async #rootFromStore(size: number): Promise<Buffer> {
    if (size === 0) return Buffer.from(EMPTY_ROOT);
    return (await this.#hashRanges([{ lo: 0, hi: size }]))[0]!;
  }

  async inclusionProof(index: number, size: number): Promise<Buffer[]> {
    checkInt('index', index, 0);
    checkInt('size', size, 1);
    if (index >= size) throw new LogRangeError(`index ${index} is not below size ${size}`);
    await this.#requireCommitted('size', size);
    return this.#hashRanges(inclusionProofRanges(index, size));
  }

  async consistencyProof(oldSize: number, newSize: number): Promise<Buffer[]> {
    checkInt('old size', oldSize, 1);
    checkInt('new size', newSize, 1);
    if (oldSize > newSize) throw new LogRangeError(`old size ${oldSize} exceeds new size ${newSize}`);
    await this.#requireCommitted('new size', newSize);
    if (oldSize === newSize) return [];
    return this.#hashRanges(consistencyProofRanges(oldSize, newSize));
  }

  #hashRanges(ranges: Range[]): Promise<Buffer[]> {
    return hashRanges(ranges, (addrs) => this.store.readNodes(addrs));
  }

  async *entries(start: number, end: number): AsyncIterable<LogEntry> {
    checkInt('start', start, 0);
    checkInt('end', end, 0);
    if (start > end) throw new LogRangeError(`start ${start} is after end ${end}`);
    await this.#requireCommitted('end', end);
    let expected = start;
    for await (const page of this.store.pages(start, end, ['data'])) {
      for (const row of page) {
        if (row.idx !== expected)
          throw new LogCorruptError(`entry ${expected}: missing from the store`, expected);
        expected++;
        yield { index: row.idx, data: row.data };
      }
    }
    if (expected !== end) throw new LogCorruptError(`entry ${expected}: missing from the store`, expected);
  }

  // ---------------------------------------------------------------- checkpoints

  async latestCheckpoint(): Promise<StoredCheckpoint | undefined> {
    const row = await this.store.latestCheckpoint();
    return row && toStored(row);
  }

  /** Serialised per process; concurrent processes are kept apart by the size primary key. */
  checkpoint(): Promise<StoredCheckpoint | undefined> {
    this.#checkpointRun ??= this.#checkpoint().finally(() => {
      this.#checkpointRun = undefined;
    });
    return this.#checkpointRun;
  }

  async #checkpoint(): Promise<StoredCheckpoint | undefined> {
    if (this.#problems.length)
      throw new LogUnavailableError(`audit log refuses to sign: ${this.#problems[0]}`);
    // Checkpoint first, state second: the state only grows, so a checkpoint that another process
    // signed from committed state can never be ahead of the state read after it.
    const latest = await this.store.latestCheckpoint();
    const state = await this.store.state();
    const prev = latest ? this.#verifiedCheckpoint(latest) : undefined;
    if (prev && prev.size > state.size) {
      throw this.#alarm(
        `checkpoint ${prev.size}: signed for more entries than the state row holds (size ${state.size})`,
      );
    }
    if (prev && prev.size === state.size) {
      if (!prev.root.equals(state.root)) {
        throw this.#alarm(
          `checkpoint ${prev.size}: root ${hex(prev.root)} signed, the state row says ${hex(state.root)}`,
        );
      }
      return toStored(latest!);
    }
    if (state.size === 0) return undefined;

    const stored = await this.#rootFromStore(state.size);
    if (!stored.equals(state.root)) {
      throw this.#alarm(
        `state row: root ${hex(state.root)} at size ${state.size}, ${hex(stored)} from the stored hashes`,
      );
    }
    if (prev) {
      try {
        const proof = await this.#hashRanges(consistencyProofRanges(prev.size, state.size));
        verifyConsistency(prev.size, state.size, prev.root, state.root, proof);
      } catch (err) {
        if (!(err instanceof ProofError) && !(err instanceof LogCorruptError)) throw err;
        throw this.#alarm(
          `checkpoint ${state.size}: not consistent with checkpoint ${prev.size} (${err.message}); not signed`,
        );
      }
    }

    const note = signNote(formatCheckpoint({ origin: this.origin, size: state.size, root: state.root }), [
      this.#opts.signer,
    ]);
    const row: CheckpointRow = {
      size: state.size,
      root: state.root,
      note,
      signedAt: new Date().toISOString(),
    };
    await this.#db('log_checkpoints')
      .insert({ size: row.size, root: row.root, note: row.note, signed_at: row.signedAt })
      .onConflict('size')
      .ignore();
    // Another process may have signed this size first: fine if it is the same tree, an alarm if not.
    const kept = await this.store.checkpointAt(state.size);
    if (!kept) throw new LogUnavailableError(`checkpoint ${state.size}: insert did not persist`);
    if (!kept.root.equals(state.root) || !this.#verifiedCheckpoint(kept).root.equals(state.root)) {
      throw this.#alarm(
        `checkpoint ${state.size}: a different checkpoint of this size is stored (root ${hex(kept.root)}, ours ${hex(state.root)})`,
      );
    }
    if (kept.note === note) this.#opts.logger?.debug({ size: state.size }, 'audit log checkpoint signed');
    return toStored(kept);
  }

  /** A stored checkpoint that verifies with this log's key and matches its columns; alarms otherwise. */
  #verifiedCheckpoint(row: CheckpointRow): { size: number; root: Buffer } {
    const f = new Findings();
    const opened = openStoredCheckpoint(row, this.origin, this.#open, f);
    if (!opened) throw this.#alarm(f.problems()[0]!);
    return opened;
  }

  // ---------------------------------------------------------------- checks

  /** The full check of everything stored (see log-check.ts). Read-only; safe while appending. */
  fsck(
    opts: { pageSize?: number; onProgress?: (done: number, total: number) => void } = {},
  ): Promise<FsckResult> {
    return runFsck(this.store, { origin: this.origin, open: this.#open, ...opts });
  }

  /** Waits for queued appends and a running checkpoint, then stops; the database handle stays the caller's. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#checkpointTimer);
    if (this.#flushTimer) {
      this.#cancelFlush();
      this.#flushTimer = undefined;
      this.#startBatch();
    }
    while (this.#inFlight || this.#queue.length) {
      if (!this.#inFlight) this.#startBatch();
      await this.#inFlight;
    }
    clearInterval(this.#deadlineTimer);
    this.#deadlineTimer = undefined;
    await this.#checkpointRun?.catch(() => {});
    await this.#writer.close();
  }
}

function toStored(row: CheckpointRow): StoredCheckpoint {
  return { size: row.size, root: row.root, note: row.note, signedAt: row.signedAt };
}

function checkInt(what: string, v: number, min: number): void {
  if (!Number.isSafeInteger(v) || v < min)
    throw new LogRangeError(`${what} must be an integer ≥ ${min}, got ${v}`);
}

function unavailable(message: string, cause: unknown): LogUnavailableError {
  return new LogUnavailableError(`${message}: ${(cause as Error)?.message ?? String(cause)}`, { cause });
}

/**
 * Opens the log: runs the start-up self-check (appends are refused if it fails, and
 * selfCheck() says why), then starts the checkpoint timer.
 */
export async function openKnexLog(db: Db, opts: KnexLogOptions): Promise<KnexLog> {
  const log = new KnexLog(db, opts);
  await log.runSelfCheck();
  log.startCheckpointTimer();
  return log;
}
