// RFC 3161 trusted time for the manifest: a TimeStampReq over SHA-256(manifest) sent to a
// time-stamp authority over HTTP (RFC 3161 §3.4), and just enough DER reading to check a reply:
// granted, for our manifest's hash, and at what time. The token's CMS signature is checked with
// the TSA's certificate by `openssl ts -verify` (docs/auditors.md): that needs the TSA's CA,
// which only the auditor can choose to trust.
import { createHash, randomBytes } from 'node:crypto';
import type { Timestamper } from './types.ts';

export class TimestampError extends Error {
  override name = 'TimestampError';
}

const SHA256_OID = Buffer.from('0609608648016503040201', 'hex'); // 2.16.840.1.101.3.4.2.1
const ID_CT_TSTINFO = '1.2.840.113549.1.9.16.1.4';

function tlv(tag: number, content: Buffer): Buffer {
  const n = content.length;
  const len =
    n < 0x80
      ? Buffer.from([n])
      : n < 0x100
        ? Buffer.from([0x81, n])
        : n < 0x10000
          ? Buffer.from([0x82, n >> 8, n & 0xff])
          : Buffer.from([0x83, n >> 16, (n >> 8) & 0xff, n & 0xff]);
  return Buffer.concat([Buffer.from([tag]), len, content]);
}

/** A positive DER INTEGER from big-endian bytes. */
function derUint(bytes: Buffer): Buffer {
  let b = bytes;
  while (b.length > 1 && b[0] === 0 && b[1]! < 0x80) b = b.subarray(1);
  if (b[0]! >= 0x80) b = Buffer.concat([Buffer.from([0]), b]);
  return tlv(0x02, b);
}

/** TimeStampReq { version 1, messageImprint { sha256, hash }, nonce, certReq TRUE }. */
export function timeStampRequest(sha256: Buffer, nonce: Buffer = randomBytes(8)): Buffer {
  if (sha256.length !== 32) throw new TimestampError('the message imprint must be a SHA-256 hash');
  const algorithm = tlv(0x30, Buffer.concat([SHA256_OID, Buffer.from([0x05, 0x00])]));
  const imprint = tlv(0x30, Buffer.concat([algorithm, tlv(0x04, sha256)]));
  return tlv(
    0x30,
    Buffer.concat([derUint(Buffer.from([1])), imprint, derUint(nonce), Buffer.from([0x01, 0x01, 0xff])]),
  );
}

interface Node {
  tag: number;
  content: Buffer;
  children?: Node[];
}

function parse(buf: Buffer, depth = 0): Node[] {
  if (depth > 32) throw new TimestampError('DER nesting too deep');
  const out: Node[] = [];
  let p = 0;
  while (p < buf.length) {
    const tag = buf[p++]!;
    if ((tag & 0x1f) === 0x1f) throw new TimestampError('multi-byte DER tags are not supported');
    let len = buf[p++];
    if (len === undefined) throw new TimestampError('truncated DER');
    if (len & 0x80) {
      const k = len & 0x7f;
      if (k === 0 || k > 4) throw new TimestampError('unsupported DER length');
      len = 0;
      for (let i = 0; i < k; i++) len = len * 256 + buf[p++]!;
    }
    const content = buf.subarray(p, p + len);
    if (content.length !== len) throw new TimestampError('truncated DER');
    p += len;
    const constructed = (tag & 0x20) !== 0;
    out.push({ tag, content, children: constructed ? parse(content, depth + 1) : undefined });
  }
  return out;
}

function oid(content: Buffer): string {
  const parts = [Math.floor(content[0]! / 40), content[0]! % 40];
  let v = 0;
  for (const b of content.subarray(1)) {
    v = v * 128 + (b & 0x7f);
    if (!(b & 0x80)) {
      parts.push(v);
      v = 0;
    }
  }
  return parts.join('.');
}

export interface TimestampInfo {
  /** PKIStatus: 0 granted, 1 granted with modifications. */
  status: number;
  /** GeneralizedTime of the token, as ISO 8601. */
  genTime: string;
  /** Hash algorithm OID and hash the TSA signed. */
  imprintAlgorithm: string;
  imprint: Buffer;
  serial: string;
}

/** Reads a TimeStampResp: status, and from the token's TSTInfo the imprint and time. */
export function readTimestampReply(der: Buffer): TimestampInfo {
  const [resp] = parse(der);
  const statusInfo = resp?.children?.[0];
  const status = statusInfo?.children?.[0];
  if (!resp || resp.tag !== 0x30 || !status || status.tag !== 0x02)
    throw new TimestampError('not a TimeStampResp');
  const code = status.content.readUIntBE(0, Math.min(status.content.length, 6));
  if (code !== 0 && code !== 1) throw new TimestampError(`the TSA refused the request (PKIStatus ${code})`);
  // ContentInfo { signedData OID, [0] SignedData { version, digestAlgorithms, encapContentInfo { eContentType, [0] OCTET STRING TSTInfo } … } }
  const token = resp.children?.[1];
  const signedData = token?.children?.[1]?.children?.[0];
  const encap = signedData?.children?.[2];
  if (!encap?.children || oid(encap.children[0]!.content) !== ID_CT_TSTINFO)
    throw new TimestampError('the reply holds no TSTInfo');
  const octets = encap.children[1]?.children?.[0];
  if (!octets || octets.tag !== 0x04) throw new TimestampError('malformed TSTInfo wrapper');
  const [tst] = parse(octets.content);
  const f = tst?.children;
  if (!f || f.length < 5) throw new TimestampError('malformed TSTInfo');
  const imprint = f[2]!.children!;
  const alg = imprint[0]!.children![0]!;
  const t = f[4]!.content.toString('latin1'); // YYYYMMDDHHMMSS[.fff]Z
  const m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\.\d+)?Z$/.exec(t);
  if (!m) throw new TimestampError(`unreadable genTime ${JSON.stringify(t)}`);
  return {
    status: code,
    genTime: `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}${m[7] ?? ''}Z`,
    imprintAlgorithm: oid(alg.content),
    imprint: Buffer.from(imprint[1]!.content),
    serial: f[3]!.content.toString('hex'),
  };
}

/** A TSA reached over HTTP(S) (RFC 3161 §3.4). */
export function httpTimestamper(url: string, opts: { timeoutMs?: number } = {}): Timestamper {
  return {
    url,
    async stamp(manifest: Buffer): Promise<Buffer> {
      const hash = createHash('sha256').update(manifest).digest();
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/timestamp-query', accept: 'application/timestamp-reply' },
        body: timeStampRequest(hash),
        signal: AbortSignal.timeout(opts.timeoutMs ?? 30_000),
      });
      if (!res.ok) throw new TimestampError(`TSA ${url} answered HTTP ${res.status}`);
      const der = Buffer.from(await res.arrayBuffer());
      const info = readTimestampReply(der);
      if (!info.imprint.equals(hash)) throw new TimestampError(`TSA ${url} stamped another hash`);
      return der;
    },
  };
}
