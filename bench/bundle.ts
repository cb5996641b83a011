// `npm run bench:bundle`: build and verify an evidence bundle of 1,000,000 realistic audit
// records (≈1 KiB canonical JSON each, as the gateway writes them), the period starting at an
// empty tree. Times the build (NDJSON + manifest + signatures + deterministic tar.gz) and our
// verifier (every file hashed, signatures, checkpoints, every record re-hashed into the tree),
// and, for comparison, `sha256sum -c` over the extracted files. Prints Markdown for
// docs/performance.md ("Evidence bundles").
//
//   npm run bench:bundle -- [--records 1000000] [--within 256] [--keep]
import { parseArgs } from 'node:util';
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { cpus, release, totalmem, tmpdir } from 'node:os';
import { join } from 'node:path';
import canonicalizeModule from 'canonicalize';
import { EMPTY_ROOT, Frontier, leafHash } from '../server/audit/merkle.ts';
import { formatCheckpoint, generateSignerKey, parseSignerKey, signNote, verifierKey } from '../server/audit/note.ts';
import { buildBundle } from '../reports/evidence/bundle.ts';
import { DEFAULT_NAMESPACE } from '../reports/evidence/layout.ts';
import type { EvidenceCheckpoint, EvidenceRecord } from '../reports/evidence/types.ts';
import { verifyBundle } from '../server/evidence/verify.ts';
import { sampleAuditRecord } from '../test/helpers/audit-records.ts';

const canonicalize = canonicalizeModule as unknown as (value: unknown) => string | undefined;

const { values: args } = parseArgs({
  options: {
    records: { type: 'string', default: '1000000' },
    within: { type: 'string', default: '256' },
    keep: { type: 'boolean', default: false },
  },
});
const N = Number(args.records);
const WITHIN = Number(args.within);
const ORIGIN = 'bench.auditgate/log';
const signer = parseSignerKey(generateSignerKey(ORIGIN));
const evidenceKey = generateKeyPairSync('ed25519');

// The records differ only in a few fields; serialising 1M records costs more than bundling
// them, so they are made once per pass from a small cycle of templates, still unique per index.
const TEMPLATES = Array.from({ length: 64 }, (_, i) => canonicalize(sampleAuditRecord(i))!);
function recordBytes(i: number): Buffer {
  const t = TEMPLATES[i % TEMPLATES.length]!;
  // Replace the event id with one derived from the index: every record stays distinct.
  return Buffer.from(t.replace(/"id":"[^"]*"/, `"id":"bench-${String(i).padStart(10, '0')}"`), 'utf8');
}

function checkpoint(size: number, root: Buffer): EvidenceCheckpoint {
  return { size, root, note: signNote(formatCheckpoint({ origin: ORIGIN, size, root }), [signer]) };
}

async function* entries(): AsyncGenerator<EvidenceRecord> {
  for (let i = 0; i < N; i++) yield { index: i, data: recordBytes(i) };
}

const mb = (n: number) => (n / 1e6).toFixed(0);
const secs = (ms: number) => (ms / 1000).toFixed(1);
const rate = (n: number, ms: number) => Math.round(n / (ms / 1000)).toLocaleString('en-US');

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'auditgate-bench-bundle-'));
  mkdirSync(dir, { recursive: true });
  try {
    // Pass 1: the log's view — end root and checkpoints spread over the period.
    let t0 = performance.now();
    const f = new Frontier();
    const every = WITHIN > 0 ? Math.max(1, Math.floor(N / (WITHIN + 1))) : Infinity;
    const within: EvidenceCheckpoint[] = [];
    let bytes = 0;
    for (let i = 0; i < N; i++) {
      const d = recordBytes(i);
      bytes += d.length + 1;
      f.append(leafHash(d));
      if (f.size % every === 0 && f.size < N && within.length < WITHIN) within.push(checkpoint(f.size, f.root()));
    }
    const end = checkpoint(N, f.root());
    const prepMs = performance.now() - t0;

    // Build.
    const out = join(dir, 'bundle.tar.gz');
    t0 = performance.now();
    const built = await buildBundle(
      {
        bundleId: 'bench',
        period: { from: '2026-10-01T00:00:00Z', to: '2026-11-01T00:00:00Z' },
        generator: { name: 'auditgate', version: 'bench' },
        audit: {
          origin: ORIGIN,
          vkey: verifierKey(signer),
          start: checkpoint(0, Buffer.from(EMPTY_ROOT)),
          end,
          within,
          consistencyProof: [],
          startState: [],
          entries: entries(),
        },
        reports: [],
        signer: { privateKey: evidenceKey.privateKey, namespace: DEFAULT_NAMESPACE, principal: 'bench@auditgate' },
        workDir: dir,
      },
      out,
    );
    const buildMs = performance.now() - t0;

    // Verify with our verifier.
    t0 = performance.now();
    const v = await verifyBundle(out, { vkey: verifierKey(signer), signerKey: evidenceKey.publicKey });
    const verifyMs = performance.now() - t0;
    if (!v.ok) throw new Error(`bundle does not verify: ${JSON.stringify(v.lines.filter((l) => l.status === 'FAIL'))}`);

    // The auditor's tools, for scale.
    const x = join(dir, 'x');
    mkdirSync(x);
    t0 = performance.now();
    const tar = spawnSync('tar', ['-xzf', out, '-C', x, '-m']);
    const tarMs = performance.now() - t0;
    t0 = performance.now();
    const sum = spawnSync('sha256sum', ['-c', '--strict', '--quiet', 'manifest.sha256'], { cwd: x });
    const sumMs = performance.now() - t0;
    if (tar.status !== 0 || sum.status !== 0) throw new Error('tar or sha256sum failed');

    const cpu = cpus()[0]?.model ?? 'unknown CPU';
    console.log(`### Evidence bundle of ${N.toLocaleString('en-US')} records`);
    console.log('');
    console.log(`Machine: ${cpus().length} × ${cpu}, ${Math.round(totalmem() / 2 ** 30)} GiB RAM, Linux ${release()}, Node ${process.versions.node}.`);
    console.log(`Records: ${mb(bytes)} MB of NDJSON (≈${Math.round(bytes / N)} bytes each); ${within.length} signed checkpoints inside the period.`);
    console.log('');
    console.log('| step | time | records/s | notes |');
    console.log('| --- | ---: | ---: | --- |');
    console.log(`| build (NDJSON, manifest, SSHSIG + raw Ed25519, deterministic tar.gz) | ${secs(buildMs)} s | ${rate(N, buildMs)} | archive ${mb(built.archiveSize)} MB |`);
    console.log(`| verify with \`auditgate verify-bundle\` (all checks) | ${secs(verifyMs)} s | **${rate(N, verifyMs)}** | goal ≥ 150,000 |`);
    console.log(`| \`tar -xzf\` | ${secs(tarMs)} s | ${rate(N, tarMs)} | |`);
    console.log(`| \`sha256sum -c --strict\` on the extracted files | ${secs(sumMs)} s | ${rate(N, sumMs)} | |`);
    console.log('');
    console.log(`(Preparing the records and the log's roots took ${secs(prepMs)} s and is not counted.)`);
    console.log('');
    console.log(JSON.stringify({ records: N, ndjsonBytes: bytes, archiveBytes: built.archiveSize, buildMs: Math.round(buildMs), verifyMs: Math.round(verifyMs), verifyPerSec: Math.round(N / (verifyMs / 1000)), tarMs: Math.round(tarMs), sha256sumMs: Math.round(sumMs) }));
    if (args.keep) console.log(`kept: ${out} (${statSync(out).size} bytes)`);
  } finally {
    if (!args.keep) rmSync(dir, { recursive: true, force: true });
  }
}

await main();
