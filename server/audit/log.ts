// The audit log contract: what the rest of auditgate may ask of the Merkle log.
// Storage backends (server/audit/knex-log.ts) implement it; everything else depends only on this.

/** A signed C2SP checkpoint as stored: the note text plus its parsed body. */
export interface StoredCheckpoint {
  size: number;
  /** 32-byte root hash of the tree at `size`. */
  root: Buffer;
  /** The full signed note (body, blank line, signature lines), exactly as served. */
  note: string;
  /** When the log signed it (ISO 8601 UTC); not part of the signed body. */
  signedAt: string;
}

export interface LogEntry {
  index: number;
  /** The exact leaf bytes (RFC 8785 canonical JSON); never re-serialised. */
  data: Buffer;
}

/** Thrown by append() when the log refuses writes (self-check failed, database unavailable, …). */
export class LogUnavailableError extends Error {
  override name = 'LogUnavailableError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** Bad request parameters for reads or proofs (mapped to HTTP 400 at the edge). */
export class LogRangeError extends Error {
  override name = 'LogRangeError';
}

export interface SelfCheckResult {
  ok: boolean;
  checkedSize: number;
  /** Human-readable description of every difference found; empty when ok. */
  problems: string[];
}

export interface AuditLog {
  /**
   * Appends one record. Resolves with its leaf index only after the entry, its tree hashes and
   * the new tree state are committed durably. Rejects with LogUnavailableError when it cannot.
   */
  append(record: object): Promise<number>;
  /** Appends pre-serialised canonical bytes (used by tools that already hold exact bytes). */
  appendBytes(data: Buffer): Promise<number>;
  /** Committed tree size and root. */
  head(): Promise<{ size: number; root: Buffer }>;
  /**
   * Completes the audit_events query index (written after the entries, off the commit path) for
   * every committed entry and returns that tree size: what reports read up to.
   */
  syncIndex(): Promise<number>;
  /** Root hash of the tree at a past size (0 ≤ size ≤ current). */
  rootAt(size: number): Promise<Buffer>;
  inclusionProof(index: number, size: number): Promise<Buffer[]>;
  consistencyProof(oldSize: number, newSize: number): Promise<Buffer[]>;
  /** Entries with start ≤ index < end, in order; yields in pages so it never holds the log in memory. */
  entries(start: number, end: number): AsyncIterable<LogEntry>;
  latestCheckpoint(): Promise<StoredCheckpoint | undefined>;
  /** Signs a new checkpoint if the tree grew since the last one; returns the latest. */
  checkpoint(): Promise<StoredCheckpoint | undefined>;
  /** Result of the start-up self-check; append() refuses while it is not ok. */
  selfCheck(): SelfCheckResult;
  close(): Promise<void>;
}
