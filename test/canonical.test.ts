// gateway/canonical.ts is a second RFC 8785 implementation (for speed); the `canonicalize`
// package is the reference it must agree with, byte for byte, on every JSON value.
import test from 'ava';
import { createHash } from 'node:crypto';
import canonicalizeModule from 'canonicalize';
import { canonicalJson } from '../gateway/canonical.ts';
import { createRecordBuilder, type MaskHook } from '../gateway/record.ts';
import { classify } from '../gateway/jsonrpc.ts';

const canonicalize = canonicalizeModule as unknown as (value: unknown) => string | undefined;

/** Deterministic PRNG (mulberry32) so a failure can be replayed from its seed. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const TRICKY_STRINGS = [
  '',
  'a',
  'é',
  '€',
  '\u20ac',
  '😀',
  '\ud83d',
  '\ude00x',
  '\u0000',
  '\u001f',
  '"',
  '\\',
  '/',
  '\u2028',
  '\u2029',
  '\u007f',
  'ｱ',
  '\ufeff',
  'key',
  'Key',
  '10',
  '9',
];
const TRICKY_NUMBERS = [
  0,
  -0,
  1,
  -1,
  0.1,
  1e21,
  1e-7,
  123456789012345680000,
  5e-324,
  1.7976931348623157e308,
  -1.5e-10,
  333333333.3333333,
  2 ** 53,
  4.35,
  0.000001,
  1e20,
];

function randomValue(r: () => number, depth: number): unknown {
  const pick = r();
  if (depth > 4 || pick < 0.35) {
    const p = r();
    if (p < 0.15) return null;
    if (p < 0.25) return r() < 0.5;
    if (p < 0.45) return TRICKY_NUMBERS[Math.floor(r() * TRICKY_NUMBERS.length)];
    if (p < 0.6) return (r() - 0.5) * 10 ** Math.floor(r() * 40 - 20);
    if (p < 0.8) return TRICKY_STRINGS[Math.floor(r() * TRICKY_STRINGS.length)];
    return Array.from({ length: Math.floor(r() * 12) }, () =>
      String.fromCharCode(Math.floor(r() * 0x10000)),
    ).join('');
  }
  if (pick < 0.6) return Array.from({ length: Math.floor(r() * 5) }, () => randomValue(r, depth + 1));
  const o: Record<string, unknown> = {};
  const n = Math.floor(r() * 6);
  for (let i = 0; i < n; i++) {
    const k =
      r() < 0.5
        ? TRICKY_STRINGS[Math.floor(r() * TRICKY_STRINGS.length)]!
        : String.fromCharCode(Math.floor(r() * 0x10000), Math.floor(r() * 0x300));
    o[k] = r() < 0.05 ? undefined : randomValue(r, depth + 1);
  }
  return o;
}

test('canonicalJson equals the canonicalize package on 20,000 random JSON values', (t) => {
  for (let seed = 1; seed <= 20_000; seed++) {
    const v = randomValue(rng(seed), 0);
    const expected = canonicalize(v);
    const actual = canonicalJson(v);
    if (actual !== expected) {
      t.fail(`seed ${seed}: ${JSON.stringify(v)}\n  ours:      ${actual}\n  reference: ${expected}`);
      return;
    }
  }
  t.pass();
});

test('canonicalJson refuses what RFC 8785 cannot express', (t) => {
  for (const bad of [NaN, Infinity, -Infinity, { a: [1, NaN] }, { x: Infinity }])
    t.throws(() => canonicalJson(bad));
  t.throws(() => canonicalJson(10n));
  t.throws(() => canonicalJson(undefined));
  t.is(canonicalJson({ a: undefined, b: [undefined] }), '{"b":[null]}');
});

test('a built record serialises to the reference canonical bytes, masked or not, and payload.sha256 commits to the unmasked message', (t) => {
  const message = JSON.parse(
    '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"deploy","arguments":{"token":"s3cr3t","n":1e-7,"€":"😀","a":[1,2,{"z":null,"y":-0}]}}}',
  );
  const mask: MaskHook = (body) => {
    const copy = structuredClone(body) as { params: { arguments: Record<string, unknown> } };
    copy.params.arguments.token = '***';
    return { body: copy, masked: ['/params/arguments/token'] };
  };
  for (const withMask of [false, true]) {
    const build = createRecordBuilder({ instance: 'i-1', version: '0.0.0', ...(withMask ? { mask } : {}) });
    const rec = build(
      { event: 'mcp.message', direction: 'client_to_upstream', message: classify(message) },
      {
        target: 'demo',
        transport: 'http',
        actor: { subject: 'alice', auth_method: 'api_key', key_id: 'k1' },
        session: 's',
      },
    );
    t.is(canonicalJson(rec), canonicalize(rec)!, withMask ? 'masked' : 'unmasked');
    t.is(rec.payload!.sha256, createHash('sha256').update(canonicalize(message)!).digest('hex'));
    t.is(canonicalJson(rec).includes('s3cr3t'), !withMask);
  }
});
