// The canonical JSON twin of every report (RFC 8785, JCS) and its data hash. The hash of the
// canonical bytes is what the PDF footer, the evidence bundle and sign-off seals refer to, so
// anyone can recompute it with any JCS implementation and `sha256sum`.
import { createHash } from 'node:crypto';
import canonicalizeModule from 'canonicalize';

// The package is CommonJS typed as an ES default export; under NodeNext TypeScript sees the
// module object, while Node hands us module.exports (the function) as the default.
const canonicalize = canonicalizeModule as unknown as (input: unknown) => string | undefined;

export class CanonicalJsonError extends Error {
  override name = 'CanonicalJsonError';
}

/** RFC 8785 bytes. Rejects what JCS cannot represent (undefined at top level, NaN, Infinity). */
export function canonicalBytes(value: unknown): Buffer {
  assertJsonSafe(value, '$');
  const text = canonicalize(value);
  if (text === undefined) throw new CanonicalJsonError('value has no JSON representation');
  return Buffer.from(text, 'utf8');
}

export function sha256Hex(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** SHA-256 (hex) of the canonical bytes: the report's data hash. */
export function dataHash(value: unknown): string {
  return sha256Hex(canonicalBytes(value));
}

// canonicalize silently drops undefined members and turns NaN into null; evidence must not
// change meaning quietly, so refuse them instead.
function assertJsonSafe(v: unknown, path: string): void {
  if (v === null) return;
  switch (typeof v) {
    case 'string':
    case 'boolean':
      return;
    case 'number':
      if (!Number.isFinite(v)) throw new CanonicalJsonError(`${path}: ${v} is not a JSON number`);
      return;
    case 'object':
      if (Array.isArray(v)) {
        v.forEach((x, i) => assertJsonSafe(x, `${path}[${i}]`));
        return;
      }
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
        if (x === undefined)
          throw new CanonicalJsonError(`${path}.${k}: undefined (use null or omit the key)`);
        assertJsonSafe(x, `${path}.${k}`);
      }
      return;
    default:
      throw new CanonicalJsonError(`${path}: ${typeof v} is not JSON`);
  }
}

/** Drops keys whose value is undefined (a convenience for building report objects). */
export function compact<T extends Record<string, unknown>>(o: T): T {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v;
  return out as T;
}
