// Evidence bundles without a database: an in-memory log over merkle.ts (stored hashes by
// address, as the real store keeps them), signed by a real C2SP note key, and a builder that
// turns any index range of it into a bundle. Tests that need the real store use KnexLog instead.
import { createHash, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  EMPTY_ROOT,
  Frontier,
  completeSubtrees,
  consistencyProofRanges,
  hashRanges,
  leafHash,
  rootRanges,
  storedAt,
  type NodeAddr,
} from '../../server/audit/merkle.ts';
import { formatCheckpoint, signNote, signerFromSeed, verifierKey, type NoteSigner } from '../../server/audit/note.ts';
import { buildBundle, type BuiltBundle } from '../../reports/evidence/bundle.ts';
import { DEFAULT_NAMESPACE } from '../../reports/evidence/layout.ts';
import type { BundleInput, EvidenceCheckpoint, EvidenceReport, PreviousBundle } from '../../reports/evidence/types.ts';

export class MemoryLog {
  readonly entries: Buffer[] = [];
  readonly #nodes = new Map<string, Buffer>();
  readonly #frontier = new Frontier();
  readonly signer: NoteSigner;
  readonly vkey: string;

  constructor(readonly origin: string, seed: Buffer = randomBytes(32)) {
    this.signer = signerFromSeed(origin, seed);
    this.vkey = verifierKey(this.signer);
  }

  append(data: Buffer): number {
    const idx = this.#frontier.size;
    const stored = this.#frontier.append(leafHash(data));
    // stored[L] is the level-L subtree ending at this leaf.
    stored.forEach((h, level) => this.#nodes.set(`${level}/${Math.floor(idx / 2 ** level)}`, h));
    this.entries.push(data);
    return idx;
  }

  get size(): number {
    return this.entries.length;
  }

  #read = async (addrs: NodeAddr[]): Promise<Buffer[]> =>
    addrs.map((a) => {
      const h = this.#nodes.get(`${a.level}/${a.index}`);
      if (!h) throw new Error(`no node ${a.level}/${a.index} (row ${storedAt(a).row})`);
      return h;
    });

  async rootAt(size: number): Promise<Buffer> {
    if (size === 0) return Buffer.from(EMPTY_ROOT);
    const [r] = await hashRanges(rootRanges(size), this.#read);
    return r!;
  }

  async checkpoint(size: number): Promise<EvidenceCheckpoint> {
    const root = await this.rootAt(size);
    return { size, root, note: signNote(formatCheckpoint({ origin: this.origin, size, root }), [this.signer]) };
  }

  async consistencyProof(a: number, b: number): Promise<Buffer[]> {
    if (a === 0 || a === b) return [];
    return hashRanges(consistencyProofRanges(a, b), this.#read);
  }

  async compactRange(size: number) {
    const addrs = completeSubtrees(0, size);
    const hashes = addrs.length ? await this.#read(addrs) : [];
    return addrs.map((a, i) => ({ level: a.level, index: a.index, hash: hashes[i]! }));
  }
}

/** A record shaped like an audit record, in canonical (sorted-key, compact) JSON. */
export function sampleRecord(i: number, pad = 0): Buffer {
  const ts = new Date(Date.UTC(2026, 10, 1) + i * 1000).toISOString().replace('Z', '000Z');
  const body = { event: 'mcp.message', id: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`, pad: 'x'.repeat(pad), ts, v: 1 };
  return Buffer.from(JSON.stringify(body));
}

export function fillLog(log: MemoryLog, n: number, pad = 0): void {
  for (let i = log.size; i < n; i++) log.append(sampleRecord(i, pad));
}

export interface EvidenceKeys {
  privateKey: KeyObject;
  publicKey: KeyObject;
}

export function evidenceKeys(): EvidenceKeys {
  return generateKeyPairSync('ed25519');
}

export interface FixtureBundleOptions {
  log: MemoryLog;
  keys: EvidenceKeys;
  from: number;
  to: number;
  out: string;
  within?: number[];
  reports?: EvidenceReport[];
  previous?: PreviousBundle | null;
  bundleId?: string;
  namespace?: string;
}

export async function fixtureBundleInput(o: FixtureBundleOptions): Promise<BundleInput> {
  const { log } = o;
  const start = await log.checkpoint(o.from);
  const end = await log.checkpoint(o.to);
  const within = await Promise.all((o.within ?? []).map((s) => log.checkpoint(s)));
  return {
    bundleId: o.bundleId ?? `test-${o.from}-${o.to}`,
    period: { from: '2026-10-01T00:00:00Z', to: '2026-11-01T00:00:00Z' },
    generator: { name: 'auditgate', version: 'test' },
    jobRun: null,
    audit: {
      origin: log.origin,
      vkey: log.vkey,
      start,
      end,
      within,
      consistencyProof: await log.consistencyProof(o.from, o.to),
      startState: await log.compactRange(o.from),
      entries: log.entries.slice(o.from, o.to).map((data, i) => ({ index: o.from + i, data })),
      selection: 'test fixture',
    },
    reports: o.reports ?? [],
    previous: o.previous ?? null,
    storage: null,
    signer: { privateKey: o.keys.privateKey, namespace: o.namespace ?? DEFAULT_NAMESPACE, principal: 'evidence@auditgate.test' },
  };
}

export async function fixtureBundle(o: FixtureBundleOptions): Promise<BuiltBundle> {
  return buildBundle(await fixtureBundleInput(o), o.out);
}

export function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'auditgate-evidence-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
