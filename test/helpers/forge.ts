// Hand-made JWTs for attack tests: the test owns the provider's keys, so it can sign tokens the
// provider would never issue (expired, wrong audience…) and craft ones nobody should accept.
import { createPublicKey } from 'node:crypto';
import { importJWK, SignJWT, type JWK, type JWTPayload } from 'jose';

const b64u = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

export async function signWith(
  key: JWK,
  payload: JWTPayload,
  header: Record<string, unknown> = {},
): Promise<string> {
  const k = await importJWK(key, key.alg);
  return new SignJWT(payload)
    .setProtectedHeader({ alg: key.alg!, kid: key.kid, typ: 'at+jwt', ...header })
    .sign(k);
}

/** `alg: none`: header and payload, empty signature. */
export function unsigned(payload: JWTPayload, kid?: string): string {
  return `${b64u({ alg: 'none', typ: 'JWT', ...(kid ? { kid } : {}) })}.${b64u(payload)}.`;
}

/** The classic key-confusion attack: HMAC-SHA256 keyed with the issuer's *public* RSA key (PEM). */
export async function hs256WithPublicKey(rsaPrivate: JWK, payload: JWTPayload): Promise<string> {
  const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...pub } = rsaPrivate;
  const pem = createPublicKey({ key: pub as any, format: 'jwk' }).export({ type: 'spki', format: 'pem' });
  return new SignJWT(payload)
    .setProtectedHeader({ alg: 'HS256', kid: rsaPrivate.kid })
    .sign(Buffer.from(pem));
}

/** Replaces the payload of a signed token, keeping header and signature. */
export function tamper(token: string, change: (p: JWTPayload) => JWTPayload): string {
  const [h, p, s] = token.split('.');
  const payload = JSON.parse(Buffer.from(p!, 'base64url').toString('utf8')) as JWTPayload;
  return `${h}.${b64u(change(payload))}.${s}`;
}

export const nowSec = () => Math.floor(Date.now() / 1000);
