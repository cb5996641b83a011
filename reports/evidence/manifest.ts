// manifest.sha256 in the exact format `sha256sum` writes and `sha256sum -c --strict` reads:
// "<64 lowercase hex><space><space><path>\n", one line per file, sorted bytewise (LC_ALL=C).
import { isManifestFile, isSafeBundlePath } from './layout.ts';

export class ManifestError extends Error {
  override name = 'ManifestError';
}

export interface ManifestLine {
  path: string;
  sha256: string;
}

/** Bytewise order, which is what `LC_ALL=C sort` gives for our ASCII-only paths. */
export function compareBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

export function formatManifest(lines: ManifestLine[]): string {
  const seen = new Set<string>();
  for (const l of lines) {
    if (!isSafeBundlePath(l.path))
      throw new ManifestError(`unsafe path in manifest: ${JSON.stringify(l.path)}`);
    if (isManifestFile(l.path)) throw new ManifestError(`the manifest cannot list ${l.path}`);
    if (!/^[0-9a-f]{64}$/.test(l.sha256)) throw new ManifestError(`bad SHA-256 for ${l.path}`);
    if (seen.has(l.path)) throw new ManifestError(`duplicate path ${l.path}`);
    seen.add(l.path);
  }
  return [...lines]
    .sort((a, b) => compareBytes(a.path, b.path))
    .map((l) => `${l.sha256}  ${l.path}\n`)
    .join('');
}

/** Strict parse: any line that sha256sum would not write for our paths is an error. */
export function parseManifest(text: string): Map<string, string> {
  if (text.length === 0) throw new ManifestError('manifest is empty');
  if (!text.endsWith('\n')) throw new ManifestError('manifest does not end with a newline');
  if (text.includes('\r')) throw new ManifestError('manifest contains a carriage return');
  const out = new Map<string, string>();
  let prev: string | undefined;
  text
    .slice(0, -1)
    .split('\n')
    .forEach((line, i) => {
      const m = /^([0-9a-f]{64}) {2}(.+)$/.exec(line);
      if (!m) throw new ManifestError(`manifest line ${i + 1} is not "<sha256>  <path>"`);
      const [, hash, path] = m as unknown as [string, string, string];
      if (!isSafeBundlePath(path))
        throw new ManifestError(`manifest line ${i + 1}: unsafe path ${JSON.stringify(path)}`);
      if (isManifestFile(path)) throw new ManifestError(`manifest line ${i + 1}: lists ${path} itself`);
      if (out.has(path)) throw new ManifestError(`manifest line ${i + 1}: ${path} listed twice`);
      if (prev !== undefined && compareBytes(prev, path) >= 0)
        throw new ManifestError(`manifest line ${i + 1}: not sorted`);
      prev = path;
      out.set(path, hash);
    });
  return out;
}
