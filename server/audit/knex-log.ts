// The audit log on SQLite or PostgreSQL through knex.
//
// Writes: appends queue in memory and are committed in batches (group commit). One transaction
// per batch compare-and-swaps the single log_state row from the size and root this process
// last saw to the new ones, then inserts the entries with their stored hashes. The CAS is the
// commit point: if another writer moved the state first, it matches no row, the batch rolls back,
// the frontier is reloaded from stored hashes and the batch retried — two writers can interleave
// but never fork the log. Callers are answered only after COMMIT returned.
//
// The audit_events query index is derived from the entries and written after them, off the
// commit path, in larger transactions every few milliseconds: in the commit it doubled what each
// commit wrote and waited for. Whatever a crash leaves unindexed is rebuilt from the entries when
// the log opens, and syncIndex() completes the index before a report reads it.
//
// Reads: proofs and past roots come from stored hashes in one query each (plus an LRU of
// high-level nodes), so they cost O(log n) row reads.
//
// Checkpoints are signed only from committed state, only after the state root is recomputed
// from stored hashes and a consistency proof from the previous signed checkpoint verifies.
import { toBuffer, toInt, type Db } from '../db.ts';
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
import { canonicalJson } from '../../gateway/canonical.ts';
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
import { auditEventFields, type AuditEventFields, type AuditEventRow } from './audit-events.ts';
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
  /** How long committed entries wait to be indexed together (default 20 ms). */
  indexDelayMs?: number;
  /** The self-check re-hashes at least this many of the newest entries (default 1000). */
  selfCheckSample?: number;
  /** File-backed SQLite: commit on a writer thread of the log's own (default true). */
  sqliteWriterThread?: boolean;
  /** Told of every committed batch (metrics); must be cheap: it runs on the commit path. */
  onCommit?: (entries: number, ms: number) => void;
}

/** What the log is doing, read when metrics are scraped. */
export interface LogSnapshot {
  /** Tree size as of this process's last commit or reload. */
  size: number;
  /** Appends waiting for a batch, and entries in the batch being committed. */
  queued: number;
  committing: number;
  /** Committed entries whose audit_events rows are not written yet. */
  indexBacklog: number;
  /** False once the self-check failed or an inconsistency was detected: appends are refused. */
  writable: boolean;
  /** The newest checkpoint this process signed or found. */
  checkpoint?: { size: number; signedAt: string };
  /** SQLite: commits made on the event loop and on the writer thread. */
  writer?: { inline: number; thread: number };
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
  /** Appends answered with LogUnavailableError (refused, failed or timed out). */
  failed: number;
}

export class KnexLog implements AuditLog {
  readonly store: LogStore;
  readonly origin: string;
  /** The C2SP verifier key line of the log's signing key. */
  readonly vkey: string;
  readonly stats: BatchStats = { batches: 0, entries: 0, casConflicts: 0, failed: 0 };

  readonly #db: Db;
  readonly #writer: BatchWriter;
  readonly #opts: Required<Omit<KnexLogOptions, 'logger' | 'onCommit'>> &
    Pick<KnexLogOptions, 'logger' | 'onCommit'>;
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
  /** audit_events rows of committed entries, in index order, not yet written. */
  #indexQueue: AuditEventRow[] = [];
  #indexTimer: NodeJS.Timeout | undefined;
  #indexRun: Promise<void> | undefined;
  /** Every entry below this size is known to have its audit_events row. */
  #indexedBelow = 0;
  #checkpointRun: Promise<StoredCheckpoint | undefined> | undefined;
  #lastCheckpoint: { size: number; signedAt: string } | undefined;

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
      indexDelayMs: 20,
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
    } else {
      await this.#writer.start();
    }
    if (!this.#problems.length && this.#opts.indexEvents && outcome.frontier) {
      // A crash can leave committed entries without their index rows (they are written after).
      try {
        await this.#completeIndex(outcome.frontier.size);
      } catch (err) {
        throw unavailable('audit log could not complete the audit_events index', err);
      }
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

  snapshot(): LogSnapshot {
    const s: LogSnapshot = {
      size: this.#frontier.size,
      queued: this.#queue.length,
      committing: this.#committing.length,
      indexBacklog: this.#indexQueue.length,
      writable: this.#problems.length === 0 && !this.#closed,
    };
    if (this.#lastCheckpoint) s.checkpoint = { ...this.#lastCheckpoint };
    if (this.#writer.stats) s.writer = { ...this.#writer.stats };
    return s;
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
    let text: string;
    try {
      text = canonicalJson(record);
    } catch (err) {
      return Promise.reject(new TypeError(`audit record cannot be canonicalised: ${(err as Error).message}`));
    }
    return this.#enqueue(Buffer.from(text, 'utf8'), record);
  }

  appendBytes(data: Buffer): Promise<number> {
    let parsed: unknown;
    try {
      const text = data.toString('utf8');
      parsed = JSON.parse(text);
      if (!Buffer.from(canonicalJson(parsed), 'utf8').equals(data)) throw new Error('not canonical');
    } catch {
      return Promise.reject(new TypeError('appendBytes takes the RFC 8785 canonical JSON bytes of a record'));
    }
    return this.#enqueue(Buffer.from(data), parsed);
  }

  #enqueue(data: Buffer, record: unknown): Promise<number> {
    if (this.#closed || this.#problems.length) {
      this.stats.failed++;
      const why = this.#closed ? 'audit log is closed' : `audit log refuses writes: ${this.#problems[0]}`;
      return Promise.reject(new LogUnavailableError(why));
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
    else {
      this.stats.failed++;
      p.reject(result);
    }
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
          const started = performance.now();
          const first = await this.#commitOnce(batch);
          this.#opts.onCommit?.(batch.length, performance.now() - started);
          this.stats.batches++;
          this.stats.entries += batch.length;
          if (this.#opts.indexEvents) {
            batch.forEach((p, i) => this.#indexQueue.push({ idx: first + i, ...p.fields! }));
            this.#scheduleIndex(this.#opts.indexDelayMs);
          }
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

  // ---------------------------------------------------------------- the audit_events index

  #scheduleIndex(delayMs: number): void {
    if (this.#indexRun || this.#indexTimer || this.#indexQueue.length === 0 || this.#closed) return;
    this.#indexTimer = setTimeout(() => {
      this.#indexTimer = undefined;
      this.#flushIndex().then(
        () => this.#scheduleIndex(this.#opts.indexDelayMs),
        // The rows stay queued (and the entries hold them anyway): try again later.
        () => this.#scheduleIndex(1_000),
      );
    }, delayMs);
    // Rows still queued at exit are rebuilt from the entries when the log next opens.
    this.#indexTimer.unref();
  }

  /** Writes the queued rows, oldest first; rejects (keeping what is left queued) if the database fails. */
  #flushIndex(): Promise<void> {
    if (this.#indexRun) return this.#indexRun;
    clearTimeout(this.#indexTimer);
    this.#indexTimer = undefined;
    this.#indexRun = (async () => {
      while (this.#indexQueue.length) {
        const rows = this.#indexQueue.slice(0, 5_000);
        try {
          await this.#writer.writeIndex(rows);
        } catch (err) {
          this.#opts.logger?.warn({ err }, 'audit_events index write failed; will retry');
          throw unavailable('audit log index write failed', err);
        }
        this.#indexQueue.splice(0, rows.length);
      }
    })().finally(() => {
      this.#indexRun = undefined;
    });
    return this.#indexRun;
  }

  /**
   * Makes sure every committed entry — this process's and any other writer's — has its
   * audit_events row, and returns the tree size the index is complete for. Reports call it
   * before they aggregate over audit_events.
   */
  async syncIndex(): Promise<number> {
    if (!this.#opts.indexEvents) return this.#indexedBelow;
    await this.#flushIndex();
    const { size } = await this.store.state();
    await this.#completeIndex(size);
    return size;
  }

  /** Fills in missing audit_events rows below `size` from the entries themselves. */
  async #completeIndex(size: number): Promise<void> {
    if (size <= this.#indexedBelow) return;
    const from = this.#indexedBelow;
    if (from === 0) {
      // Opening: one cheap look at the whole table first; rows exist only for committed entries.
      const r = await this.#db('audit_events').count({ n: '*' }).max({ m: 'idx' }).first();
      const n = toInt(r?.n ?? 0);
      const max = r?.m === null || r?.m === undefined ? -1 : toInt(r.m);
      if (n === size && max === size - 1) {
        this.#indexedBelow = size;
        return;
      }
    }
    await this.#fillIndex(from, size);
    this.#indexedBelow = Math.max(this.#indexedBelow, size);
  }

  /** Counts rows in [lo, hi); where some are missing, halves the range until it is small, then inserts them. */
  async #fillIndex(lo: number, hi: number): Promise<void> {
    if (hi <= lo) return;
    const r = await this.#db('audit_events')
      .where('idx', '>=', lo)
      .andWhere('idx', '<', hi)
      .count({ n: '*' })
      .first();
    if (toInt(r?.n ?? 0) === hi - lo) return;
    if (hi - lo > 2_048) {
      const mid = lo + Math.floor((hi - lo) / 2);
      await this.#fillIndex(lo, mid);
      await this.#fillIndex(mid, hi);
      return;
    }
    const have = new Set(
      (await this.#db('audit_events').where('idx', '>=', lo).andWhere('idx', '<', hi).pluck('idx')).map(
        toInt,
      ),
    );
    const rows: AuditEventRow[] = [];
    const data = await this.#db('log_entries')
      .where('idx', '>=', lo)
      .andWhere('idx', '<', hi)
      .select('idx', 'data')
      .orderBy('idx');
    for (const e of data as Array<{ idx: unknown; data: Buffer }>) {
      const idx = toInt(e.idx);
      if (have.has(idx)) continue;
      let record: unknown;
      try {
        record = JSON.parse(toBuffer(e.data).toString('utf8'));
      } catch {
        record = undefined; // fsck reports the entry; its index row says nothing
      }
      rows.push({ idx, ...auditEventFields(record) });
    }
    this.#opts.logger?.info(
      { from: lo, to: hi, rows: rows.length },
      'audit_events: indexing entries that had no row',
    );
    await this.#writer.writeIndex(rows);
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
    this.#checkpointRun ??= this.#checkpoint()
      .then((c) => {
        if (c && c.size >= (this.#lastCheckpoint?.size ?? 0)) this.#lastCheckpoint = { size: c.size, signedAt: c.signedAt };
        return c;
      })
      .finally(() => {
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
    // What cannot be indexed now (database down) is indexed from the entries at the next open.
    await this.#flushIndex().catch(() => {});
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
