// What an evidence bundle reads from the audit log for one leaf-index range [first, end): the
// exact entry bytes, the log's signed checkpoints at exactly `first` and `end` (signed now from
// stored hashes when the log has none at that size, only after a consistency proof to the log's
// latest checkpoint verifies, and kept in log_checkpoints like every checkpoint the log signs),
// the checkpoints already signed inside the range, the consistency proof, and the start tree's
// compact range.
import type { Db } from '../db.ts';
import { toInt } from '../db.ts';
import type { KnexLog } from '../audit/knex-log.ts';
import { EMPTY_ROOT, completeSubtrees, verifyConsistency } from '../audit/merkle.ts';
import { formatCheckpoint, openNote, parseCheckpoint, parseVerifierKey, signNote, type NoteSigner } from '../audit/note.ts';
import type { EvidenceAudit, EvidenceCheckpoint } from '../../reports/evidence/types.ts';

export class EvidenceSourceError extends Error {
  override name = 'EvidenceSourceError';
}

export interface LogSourceDeps {
  db: Db;
  log: KnexLog;
  /** The log's own signing key (the one that signs its checkpoints). */
  signer: NoteSigner;
}

/** Microsecond ISO text, the form audit_events.ts holds on SQLite (text order = time order). */
export function microIso(d: Date): string {
  return `${d.toISOString().slice(0, 23)}000Z`;
}

/**
 * Where time `at` falls in the log: one past the largest leaf index whose record is stamped
 * before `at` (0 when none is), capped at the tree size. The reports state the same boundary
 * (their "audit-log checkpoint the data came from"), so a report and its bundle reconcile, and
 * consecutive periods tile the log: every record stamped before `at` lies below it. Stamps rise
 * with the index up to small jitter between concurrent writers, so the hour before `at` is
 * searched first and the whole table only when that hour was quiet.
 */
export async function indexAtTime(db: Db, log: KnexLog, at: Date): Promise<number> {
  const hi = microIso(at);
  const lo = microIso(new Date(at.getTime() - 3_600_000));
  let last: number | undefined;
  const near = await db('audit_events').max({ m: 'idx' }).where('ts', '<', hi).andWhere('ts', '>=', lo).first();
  if (near && near.m !== null && near.m !== undefined) last = toInt(near.m);
  else {
    const earlier = await db('audit_events').select('idx').where('ts', '<', hi).orderBy('ts', 'desc').orderBy('idx', 'desc').first();
    if (earlier) last = toInt(earlier.idx);
  }
  const size = (await log.head()).size;
  return last === undefined ? 0 : Math.min(size, last + 1);
}

function opener(log: KnexLog) {
  const verifier = parseVerifierKey(log.vkey);
  return (note: string, size: number): EvidenceCheckpoint => {
    const cp = parseCheckpoint(openNote(note, [verifier]).body);
    if (cp.origin !== log.origin || cp.size !== size) {
      throw new EvidenceSourceError(`stored checkpoint ${size} is for ${cp.origin} at size ${cp.size}`);
    }
    return { size, root: Buffer.from(cp.root), note };
  };
}

/** A checkpoint at exactly `size`, signed by the log's key. */
export async function checkpointAtSize(deps: LogSourceDeps, size: number): Promise<EvidenceCheckpoint> {
  const { db, log, signer } = deps;
  const open = opener(log);
  if (size === 0) {
    // The empty tree is consistent with every tree; like the log API's size-0 checkpoint, it is
    // signed deterministically on demand and not stored (a stored one would have nothing to be
    // proven consistent from).
    const root = Buffer.from(EMPTY_ROOT);
    return { size, root, note: signNote(formatCheckpoint({ origin: log.origin, size, root }), [signer]) };
  }
  const existing = await log.store.checkpointAt(size);
  if (existing) return open(existing.note, size);

  const latest = await log.checkpoint();
  if (!latest || latest.size < size) {
    throw new EvidenceSourceError(`size ${size} is beyond the log's latest checkpoint (${latest?.size ?? 0})`);
  }
  const root = await log.rootAt(size);
  if (latest.size > size) {
    verifyConsistency(size, latest.size, root, latest.root, await log.consistencyProof(size, latest.size));
  } else if (!latest.root.equals(root)) {
    throw new EvidenceSourceError(`root at size ${size} differs from the log's checkpoint of that size`);
  }
  const note = signNote(formatCheckpoint({ origin: log.origin, size, root }), [signer]);
  await db('log_checkpoints')
    .insert({ size, root, note, signed_at: new Date().toISOString() })
    .onConflict('size')
    .ignore();
  const kept = await log.store.checkpointAt(size);
  if (!kept) throw new EvidenceSourceError(`checkpoint ${size}: insert did not persist`);
  const cp = open(kept.note, size);
  if (!cp.root.equals(root)) throw new EvidenceSourceError(`checkpoint ${size}: another root is stored for this size`);
  return cp;
}

/** Up to `max` of the log's stored checkpoints strictly inside (first, end), spread evenly. */
export async function checkpointsWithin(deps: LogSourceDeps, first: number, end: number, max: number): Promise<EvidenceCheckpoint[]> {
  if (max <= 0 || end - first < 2) return [];
  const sizes = (await deps.db('log_checkpoints').select('size').where('size', '>', first).andWhere('size', '<', end).orderBy('size')).map(
    (r: { size: unknown }) => toInt(r.size),
  );
  let chosen = sizes;
  if (sizes.length > max) {
    const picked = new Set<number>();
    for (let i = 0; i < max; i++) picked.add(sizes[Math.round((i * (sizes.length - 1)) / Math.max(1, max - 1))]!);
    chosen = [...picked].sort((a, b) => a - b);
  }
  if (chosen.length === 0) return [];
  const open = opener(deps.log);
  const rows = await deps.db('log_checkpoints').select('size', 'note').whereIn('size', chosen).orderBy('size');
  return rows.map((r: { size: unknown; note: string }) => open(r.note, toInt(r.size)));
}

export interface CollectOptions {
  /** Most intermediate checkpoints to include (default 256). */
  maxWithin?: number;
  selection?: string;
}

export async function collectAudit(deps: LogSourceDeps, first: number, end: number, opts: CollectOptions = {}): Promise<EvidenceAudit> {
  const { log } = deps;
  if (!Number.isSafeInteger(first) || first < 0 || end < first) throw new EvidenceSourceError(`bad index range ${first}..${end}`);
  const head = await log.head();
  if (end > head.size) throw new EvidenceSourceError(`end index ${end} is beyond the log size ${head.size}`);
  const start = await checkpointAtSize(deps, first);
  const endCp = await checkpointAtSize(deps, end);
  const addrs = completeSubtrees(0, first);
  const startHashes = (await log.store.frontierAt(first)).hashes();
  return {
    origin: log.origin,
    vkey: log.vkey,
    start,
    end: endCp,
    within: await checkpointsWithin(deps, first, end, opts.maxWithin ?? 256),
    consistencyProof: first === 0 || first === end ? [] : await log.consistencyProof(first, end),
    startState: addrs.map((a, i) => ({ level: a.level, index: a.index, hash: startHashes[i]! })),
    entries: log.entries(first, end),
    selection: opts.selection,
  };
}
