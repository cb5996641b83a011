// Reads of the log tables, shared by the writer (knex-log.ts) and the checkers (log-check.ts).
// Everything that turns rows into hashes lives here, so "one query per proof" and the row layout
// are decided in one place.
import type { Knex } from 'knex';
import { isPostgres, toBuffer, toInt, type Db } from '../db.ts';
import { Frontier, HASH_SIZE, completeSubtrees, storedAt, storedHashCount, type NodeAddr } from './merkle.ts';

export interface StateRow {
  size: number;
  root: Buffer;
}

export interface EntryRow {
  idx: number;
  data: Buffer;
  hashes: Buffer;
}

export interface CheckpointRow {
  size: number;
  root: Buffer;
  note: string;
  signedAt: string;
}

/** The store holds something that cannot be what the log wrote (a missing row, a short blob). */
export class LogCorruptError extends Error {
  override name = 'LogCorruptError';
  constructor(
    message: string,
    readonly index: number,
  ) {
    super(message);
  }
}

/** A small LRU: Map keeps insertion order, so re-inserting on hit moves a key to the end. */
class Lru<K, V> {
  #map = new Map<K, V>();
  constructor(readonly capacity: number) {}
  get(k: K): V | undefined {
    const v = this.#map.get(k);
    if (v !== undefined) {
      this.#map.delete(k);
      this.#map.set(k, v);
    }
    return v;
  }
  set(k: K, v: V): void {
    this.#map.delete(k);
    this.#map.set(k, v);
    if (this.#map.size > this.capacity) this.#map.delete(this.#map.keys().next().value as K);
  }
}

// Nodes at or above this level cover ≥ 64 leaves and recur across many proofs; stored hashes
// never change, so caching them is safe. Below it, proofs of random leaves rarely share nodes.
const CACHE_MIN_LEVEL = 6;
const PAGE = 1000;

function toIso(v: unknown): string {
  if (v instanceof Date) return v.toISOString();
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return new Date(v).toISOString();
  return String(v);
}

export function hashAt(blob: Buffer, idx: number, position: number): Buffer {
  const want = storedHashCount(idx) * HASH_SIZE;
  if (blob.length !== want) {
    throw new LogCorruptError(
      `entry ${idx}: stored hashes are ${blob.length} bytes, expected ${want} (${want / HASH_SIZE} hashes)`,
      idx,
    );
  }
  return Buffer.from(blob.subarray(position * HASH_SIZE, (position + 1) * HASH_SIZE));
}

export class LogStore {
  readonly pg: boolean;
  #nodes = new Lru<string, Buffer>(65_536);

  constructor(readonly db: Db) {
    this.pg = isPostgres(db);
  }

  async state(q: Knex | Knex.Transaction = this.db): Promise<StateRow> {
    const row = await q('log_state').select('size', 'root').where({ id: 1 }).first();
    if (!row) throw new LogCorruptError('log_state: the state row (id = 1) is missing', 0);
    return { size: toInt(row.size), root: toBuffer(row.root) };
  }

  /** Stored-hash blobs of the given rows, in one query. */
  async hashBlobs(rows: number[], q: Knex | Knex.Transaction = this.db): Promise<Map<number, Buffer>> {
    const out = new Map<number, Buffer>();
    if (rows.length === 0) return out;
    const query = this.pg
      ? q.raw('SELECT idx, hashes FROM log_entries WHERE idx = ANY(?::bigint[])', [rows])
      : q('log_entries').select('idx', 'hashes').whereIn('idx', rows);
    const result = await query;
    const list: Array<{ idx: unknown; hashes: unknown }> = this.pg ? result.rows : result;
    for (const r of list) out.set(toInt(r.idx), toBuffer(r.hashes));
    return out;
  }

  /** Stored hashes of complete subtrees (merkle.hashRanges' reader): at most one query. */
  async readNodes(addrs: NodeAddr[], q: Knex | Knex.Transaction = this.db): Promise<Buffer[]> {
    const out: Buffer[] = new Array(addrs.length);
    const need: Array<{ i: number; row: number; position: number; key: string }> = [];
    addrs.forEach((a, i) => {
      const key = `${a.level}/${a.index}`;
      const hit = a.level >= CACHE_MIN_LEVEL ? this.#nodes.get(key) : undefined;
      if (hit) out[i] = hit;
      else need.push({ i, key, ...storedAt(a) });
    });
    if (need.length) {
      const blobs = await this.hashBlobs([...new Set(need.map((n) => n.row))], q);
      for (const n of need) {
        const blob = blobs.get(n.row);
        if (!blob) throw new LogCorruptError(`entry ${n.row}: missing (its stored hashes are needed)`, n.row);
        const h = hashAt(blob, n.row, n.position);
        out[n.i] = h;
        if (n.position >= CACHE_MIN_LEVEL) this.#nodes.set(n.key, h);
      }
    }
    return out;
  }

  /** The right edge of the tree of `size` leaves, from stored hashes: O(log n) reads, one query. */
  async frontierAt(size: number, q: Knex | Knex.Transaction = this.db): Promise<Frontier> {
    return new Frontier(size, await this.readNodes(completeSubtrees(0, size), q));
  }

  /**
   * Entries stored at or beyond the committed size. One statement, so the size and the count come
   * from the same snapshot even while other processes append.
   */
  async entriesBeyondState(): Promise<{ size: number; beyond: number }> {
    const rows = await this.db.raw(
      'SELECT s.size AS size, (SELECT COUNT(*) FROM log_entries e WHERE e.idx >= s.size) AS beyond FROM log_state s WHERE s.id = 1',
    );
    const row = (this.pg ? rows.rows : rows)[0];
    return { size: toInt(row.size), beyond: toInt(row.beyond) };
  }

  /**
   * Rows start ≤ idx < end in pages of index ranges, the next page already requested while the
   * caller works on the current one. Gaps are the caller's to detect (rows carry their idx).
   */
  async *pages(
    start: number,
    end: number,
    columns: Array<'data' | 'hashes'> = ['data', 'hashes'],
    pageSize = PAGE,
  ): AsyncGenerator<EntryRow[]> {
    const fetch = async (lo: number): Promise<EntryRow[]> => {
      const hi = Math.min(end, lo + pageSize);
      const rows = await this.db('log_entries')
        .select('idx', ...columns)
        .where('idx', '>=', lo)
        .andWhere('idx', '<', hi)
        .orderBy('idx');
      return rows.map((r: Record<string, unknown>) => ({
        idx: toInt(r.idx),
        data: r.data === undefined ? EMPTY : toBuffer(r.data),
        hashes: r.hashes === undefined ? EMPTY : toBuffer(r.hashes),
      }));
    };
    let lo = start;
    let pending = lo < end ? fetch(lo) : undefined;
    while (pending) {
      const current = pending;
      lo += pageSize;
      pending = lo < end ? fetch(lo) : undefined;
      // A rejected prefetch must not become an unhandled rejection if the consumer stops early.
      pending?.catch(() => {});
      yield await current;
    }
  }

  async latestCheckpoint(): Promise<CheckpointRow | undefined> {
    const row = await this.db('log_checkpoints')
      .select('size', 'root', 'note', 'signed_at')
      .orderBy('size', 'desc')
      .first();
    return row ? checkpointRow(row) : undefined;
  }

  async checkpointAt(size: number): Promise<CheckpointRow | undefined> {
    const row = await this.db('log_checkpoints')
      .select('size', 'root', 'note', 'signed_at')
      .where({ size })
      .first();
    return row ? checkpointRow(row) : undefined;
  }

  /** All checkpoints in size order, page by page. */
  async *checkpoints(pageSize = PAGE): AsyncGenerator<CheckpointRow> {
    let after = -1;
    while (true) {
      const rows = await this.db('log_checkpoints')
        .select('size', 'root', 'note', 'signed_at')
        .where('size', '>', after)
        .orderBy('size')
        .limit(pageSize);
      for (const r of rows) yield checkpointRow(r);
      if (rows.length < pageSize) return;
      after = toInt(rows[rows.length - 1].size);
    }
  }
}

const EMPTY = Buffer.alloc(0);

function checkpointRow(r: Record<string, unknown>): CheckpointRow {
  return { size: toInt(r.size), root: toBuffer(r.root), note: String(r.note), signedAt: toIso(r.signed_at) };
}
