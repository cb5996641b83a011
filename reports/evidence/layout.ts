// Where things live inside an evidence bundle. The builder and the verifier both use these names,
// and docs/auditors.md describes them: changing one is a format change (bump BUNDLE_FORMAT).

export const BUNDLE_FORMAT = 'auditgate-evidence-bundle/v1';
export const DEFAULT_NAMESPACE = 'auditgate-evidence@v1';

export const PATHS = {
  readme: 'README.md',
  bundleJson: 'bundle.json',
  entries: 'audit/entries.ndjson',
  checkpointStart: 'audit/checkpoint-start.txt',
  checkpointEnd: 'audit/checkpoint-end.txt',
  /** The log's own signed checkpoints strictly inside the period, one JSON object per line. */
  checkpointsWithin: 'audit/checkpoints.ndjson',
  consistencyProof: 'audit/consistency-proof.json',
  // Named so that it sorts before entries.ndjson: a streaming verifier then knows the start
  // state before the first record arrives.
  compactRange: 'audit/compact-range-start.json',
  logVkey: 'keys/log.vkey',
  signerPub: 'keys/signer.pub',
  signerPem: 'keys/signer.pub.pem',
  allowedSigners: 'keys/allowed_signers',
  manifest: 'manifest.sha256',
  manifestSig: 'manifest.sha256.sig',
  manifestSigBin: 'manifest.sha256.sig.bin',
  manifestTsr: 'manifest.sha256.tsr',
} as const;

/** Files about the manifest: not listed in it (the auditor's `find` excludes `manifest.sha256*`). */
export function isManifestFile(path: string): boolean {
  return path === PATHS.manifest || path.startsWith(`${PATHS.manifest}.`);
}

/**
 * Paths we write and accept: relative, '/'-separated, no '.', '..' or empty segments, and only
 * characters that sha256sum never escapes (so the manifest stays plain `<hex>  <path>` lines).
 */
export function isSafeBundlePath(path: string): boolean {
  if (!/^[A-Za-z0-9._@+=-]+(\/[A-Za-z0-9._@+=-]+)*$/.test(path)) return false;
  return path.split('/').every((seg) => seg !== '.' && seg !== '..');
}
