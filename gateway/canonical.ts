// RFC 8785 (JCS) text of audit records, written for the gateway's hot path. Each message's
// canonical text is needed twice — for payload.sha256 and inside the record that stores it — and
// serialising a payload is most of a record's cost, so a record's payload object can carry its text
// from when it was built (rememberCanonical) and the record's serialisation splices it in.
// test/canonical.test.ts checks the output against the `canonicalize` package on random values;
// verification paths keep using that package, so the two implementations check each other.

const remembered = new WeakMap<object, string>();

/** `"key":` per member name seen so far: records repeat the same few dozen names. */
const keyPrefixes = new Map<string, string>();
const KEY_PREFIX_LIMIT = 4_096;

function keyPrefix(k: string): string {
  let p = keyPrefixes.get(k);
  if (p === undefined) {
    p = JSON.stringify(k) + ':';
    // Bounded: names from payloads (arbitrary JSON) must not grow it without end.
    if (keyPrefixes.size < KEY_PREFIX_LIMIT) keyPrefixes.set(k, p);
  }
  return p;
}

/**
 * Declares `text` to be the canonical JSON of `obj`, for canonicalJson to reuse. Only for objects
 * made for one record and never changed afterwards (a record's payload object): the text is what
 * the record commits to even if something the object points at changes later.
 */
export function rememberCanonical(obj: object, text: string): void {
  remembered.set(obj, text);
}

/** The RFC 8785 canonical JSON text of a JSON value; throws on NaN, ±Infinity and BigInt, like `canonicalize`, and on undefined. */
export function canonicalJson(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) throw new Error(`${value} is not allowed in canonical JSON`);
      // ECMAScript's Number-to-String is exactly RFC 8785's number serialisation (-0 → "0").
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object':
      break;
    case 'bigint':
      throw new TypeError('BigInt is not allowed in canonical JSON');
    default:
      // undefined, a function or a symbol has no JSON text (inside objects such members are skipped).
      throw new TypeError(`${typeof value} is not a JSON value`);
  }
  if (value === null) return 'null';
  const known = remembered.get(value);
  if (known !== undefined) return known;
  const toJSON = (value as { toJSON?: unknown }).toJSON;
  if (typeof toJSON === 'function') return canonicalJson(toJSON.call(value));
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) {
      const v: unknown = value[i];
      if (i > 0) out += ',';
      out += v === undefined || typeof v === 'symbol' || typeof v === 'function' ? 'null' : canonicalJson(v);
    }
    return out + ']';
  }
  const obj = value as Record<string, unknown>;
  // Array.prototype.sort without a comparator orders by UTF-16 code units, as RFC 8785 requires.
  const keys = Object.keys(obj).sort();
  let out = '{';
  let first = true;
  for (const k of keys) {
    const v = obj[k];
    if (v === undefined || typeof v === 'symbol' || typeof v === 'function') continue;
    if (!first) out += ',';
    first = false;
    out += keyPrefix(k) + canonicalJson(v);
  }
  return out + '}';
}
