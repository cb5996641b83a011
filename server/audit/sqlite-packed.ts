// What crosses to the log's SQLite writer thread. A batch travels as one buffer that is moved, not
// copied: structured cloning a Buffer copies its whole backing ArrayBuffer, and small Buffers share
// Node's 8 KiB pool, so sending entries one Buffer each copied kilobytes per entry.
import type { SqliteBatch } from './sqlite-batch.ts';

export interface PackedBatch {
  oldSize: number;
  newSize: number;
  /** Index of the first entry; the rest follow in order. */
  firstIdx: number;
  /** Per entry: data length, hashes length. */
  lengths: number[];
  /** oldRoot ‖ newRoot ‖ (data ‖ hashes) per entry. */
  bytes: Uint8Array;
}

export type WriterRequest =
  | { id: number; packed: PackedBatch }
  /** audit_events rows as JSON text: half the cost of structured-cloning 19-field objects. */
  | { id: number; index: string }
  | { id: number; close: true };
export type WriterReply =
  { id: number; moved: boolean } | { id: number; error: { message: string; code?: string } };

interface Batch {
  oldSize: number;
  oldRoot: Uint8Array;
  newSize: number;
  newRoot: Uint8Array;
  entries: Array<{ idx: number; data: Uint8Array; hashes: Uint8Array }>;
}

export function pack(b: Batch): PackedBatch {
  let total = b.oldRoot.length + b.newRoot.length;
  const lengths: number[] = [];
  for (const e of b.entries) {
    total += e.data.length + e.hashes.length;
    lengths.push(e.data.length, e.hashes.length);
  }
  // Not from the shared pool: this buffer's memory is handed to the other thread.
  const bytes = Buffer.allocUnsafeSlow(total);
  let off = 0;
  const put = (u: Uint8Array) => {
    bytes.set(u, off);
    off += u.length;
  };
  put(b.oldRoot);
  put(b.newRoot);
  for (const e of b.entries) {
    put(e.data);
    put(e.hashes);
  }
  return {
    oldSize: b.oldSize,
    newSize: b.newSize,
    firstIdx: b.entries[0]?.idx ?? b.oldSize,
    lengths,
    bytes,
  };
}

export function unpack(p: PackedBatch, rootLength: number): SqliteBatch {
  const bytes = Buffer.from(p.bytes.buffer, p.bytes.byteOffset, p.bytes.byteLength);
  let off = 0;
  const take = (n: number) => bytes.subarray(off, (off += n));
  const oldRoot = take(rootLength);
  const newRoot = take(rootLength);
  const entries: SqliteBatch['entries'] = [];
  for (let i = 0; i < p.lengths.length; i += 2) {
    entries.push({ idx: p.firstIdx + i / 2, data: take(p.lengths[i]!), hashes: take(p.lengths[i + 1]!) });
  }
  return { oldSize: p.oldSize, oldRoot, newSize: p.newSize, newRoot, entries };
}
