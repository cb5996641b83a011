// What the bundle builder reads. reports/ never imports server/: the server implements these
// from the audit log, the report engine and the job scheduler.
import type { KeyObject } from 'node:crypto';

/** One log entry: its leaf index and its exact leaf bytes (never re-serialised). */
export interface EvidenceRecord {
  index: number;
  data: Uint8Array;
}

/** A checkpoint as the log signed it (C2SP signed note text) with its parsed size and root. */
export interface EvidenceCheckpoint {
  size: number;
  root: Buffer;
  note: string;
}

/** A maximal complete subtree of the start tree: level L, index k cover leaves [k·2^L, (k+1)·2^L). */
export interface SubtreeHash {
  level: number;
  index: number;
  hash: Buffer;
}

export interface EvidenceAudit {
  /** Checkpoint origin (= log key name). */
  origin: string;
  /** The log's C2SP verifier key, copied into keys/ for convenience. */
  vkey: string;
  /** Signed checkpoint at exactly the first index of the period (the tree before it). */
  start: EvidenceCheckpoint;
  /** Signed checkpoint at exactly the end index of the period. */
  end: EvidenceCheckpoint;
  /**
   * Signed checkpoints with start.size < size < end.size, ascending: they let a verifier say
   * between which two checkpoints the first bad record lies. Optional, may be thinned.
   */
  within?: EvidenceCheckpoint[];
  /** RFC 9162 consistency proof start.size → end.size (empty when start.size is 0 or equal). */
  consistencyProof: Buffer[];
  /** The start tree's compact range: its maximal complete subtrees, left to right. */
  startState: SubtreeHash[];
  /** Every entry with start.size ≤ index < end.size, in index order. */
  entries: AsyncIterable<EvidenceRecord> | Iterable<EvidenceRecord>;
  /** How the index range was chosen from the period (stated in bundle.json for the auditor). */
  selection?: string;
}

export interface ReportFile {
  /** File name under reports/, e.g. "access-review.pdf". */
  name: string;
  content: Buffer;
}

export interface EvidenceReport {
  /** Report kind, e.g. "access-review". */
  name: string;
  /** Every file of this report (PDF, canonical JSON, CSVs). */
  files: ReportFile[];
  /** The canonical JSON twin among `files`; its SHA-256 is the report data hash. */
  json?: string;
  /** The PDF among `files`, whose page footers show the report data hash. */
  pdf?: string;
  /** Report id, run id and the like, copied into bundle.json. */
  meta?: Record<string, string | number | boolean | null>;
}

export interface EvidenceSigner {
  /** Ed25519 private key (separate from the log key). */
  privateKey: KeyObject;
  /** SSHSIG namespace, e.g. "auditgate-evidence@v1". */
  namespace: string;
  /** The principal named in keys/allowed_signers. */
  principal: string;
}

export interface PreviousBundle {
  archiveSha256: string;
  bundleId: string;
  endSize: number;
  endRoot: Buffer;
}

export interface JobRunRef {
  id: string;
  job: string;
  trigger: 'scheduled' | 'catch-up' | 'manual';
  scheduledFor?: string;
}

export interface StorageRef {
  kind: 'local' | 's3';
  /** Object key or file name the archive is stored under. */
  key: string;
  bucket?: string;
  objectLock?: { mode: 'COMPLIANCE' | 'GOVERNANCE'; retainUntil: string };
}

/** An RFC 3161 time-stamp authority: returns the DER TimeStampResp for the manifest. */
export interface Timestamper {
  url: string;
  stamp(manifest: Buffer): Promise<Buffer>;
}

export interface BundleInput {
  bundleId: string;
  /** ISO 8601 UTC, half-open [from, to). */
  period: { from: string; to: string };
  generator: { name: string; version: string };
  jobRun?: JobRunRef | null;
  audit: EvidenceAudit;
  reports: EvidenceReport[];
  previous?: PreviousBundle | null;
  storage?: StorageRef | null;
  signer: EvidenceSigner;
  timestamper?: Timestamper;
  /** Directory for the temporary copy of the records (default: the OS temp dir). */
  workDir?: string;
}
