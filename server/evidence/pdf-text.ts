// Just enough PDF reading to find the text on each page of a report we generated (pdfkit: plain
// object syntax, Flate-compressed content streams, embedded fonts with ToUnicode CMaps), so the
// verifier can check the data hash in every page footer with nothing but Node. It is not a
// general PDF parser: anything it cannot read makes the check fail, never pass.
import { inflateSync } from 'node:zlib';

export class PdfReadError extends Error {
  override name = 'PdfReadError';
}

interface PdfObject {
  dict: string;
  stream?: Buffer;
}

type FontMap = { bytesPerCode: number; map: Map<number, string> } | 'latin1';

function parseObjects(pdf: Buffer): Map<number, PdfObject> {
  const text = pdf.toString('latin1');
  const objects = new Map<number, PdfObject>();
  const re = /(\d+) 0 obj\b/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(text))) {
    const id = Number(m[1]);
    const bodyStart = m.index + m[0].length;
    const streamAt = text.indexOf('stream', bodyStart);
    const endAt = text.indexOf('endobj', bodyStart);
    if (endAt < 0) throw new PdfReadError(`object ${id} has no endobj`);
    if (streamAt >= 0 && streamAt < endAt && text.slice(streamAt - 3, streamAt) !== 'end') {
      const dict = text.slice(bodyStart, streamAt);
      const len = /\/Length (\d+)\b/.exec(dict);
      if (!len) throw new PdfReadError(`stream object ${id} has no direct /Length`);
      let dataStart = streamAt + 'stream'.length;
      if (text[dataStart] === '\r') dataStart++;
      if (text[dataStart] === '\n') dataStart++;
      let data = pdf.subarray(dataStart, dataStart + Number(len[1]));
      if (/\/Filter\s*\/FlateDecode/.test(dict)) data = inflateSync(data);
      else if (/\/Filter/.test(dict)) throw new PdfReadError(`object ${id}: unsupported stream filter`);
      objects.set(id, { dict, stream: data });
      const after = text.indexOf('endobj', dataStart + Number(len[1]));
      re.lastIndex = after < 0 ? text.length : after;
    } else {
      objects.set(id, { dict: text.slice(bodyStart, endAt) });
      re.lastIndex = endAt;
    }
  }
  return objects;
}

const ref = (dict: string, key: string): number | undefined => {
  const m = new RegExp(`/${key}\\s+(\\d+) 0 R`).exec(dict);
  return m ? Number(m[1]) : undefined;
};

function get(objects: Map<number, PdfObject>, id: number | undefined, what: string): PdfObject {
  const o = id === undefined ? undefined : objects.get(id);
  if (!o) throw new PdfReadError(`missing ${what} (object ${id})`);
  return o;
}

function parseToUnicode(cmap: string): FontMap {
  const hex = (s: string) => parseInt(s, 16);
  // Hex strings may hold spaces (pdfkit writes a ligature as "<0066 0069>").
  const utf16 = (h: string) => Buffer.from(h.replace(/\s+/g, ''), 'hex').swap16().toString('utf16le');
  const map = new Map<number, string>();
  const space = /begincodespacerange\s*<([0-9a-fA-F]+)>/.exec(cmap);
  const bytesPerCode = space ? space[1]!.length / 2 : 2;
  for (const block of cmap.matchAll(/beginbfchar([\s\S]*?)endbfchar/g)) {
    for (const p of block[1]!.matchAll(/<([0-9a-fA-F]+)>\s*<([0-9a-fA-F\s]+)>/g)) map.set(hex(p[1]!), utf16(p[2]!));
  }
  for (const block of cmap.matchAll(/beginbfrange([\s\S]*?)endbfrange/g)) {
    for (const p of block[1]!.matchAll(/<([0-9a-fA-F]+)>\s*<([0-9a-fA-F]+)>\s*(\[[^\]]*\]|<[0-9a-fA-F\s]+>)/g)) {
      const lo = hex(p[1]!);
      const hi = hex(p[2]!);
      const dst = p[3]!;
      if (dst.startsWith('[')) {
        const items = [...dst.matchAll(/<([0-9a-fA-F\s]+)>/g)].map((x) => utf16(x[1]!));
        items.forEach((s, i) => map.set(lo + i, s));
      } else {
        const base = utf16(dst.slice(1, -1));
        for (let c = lo; c <= hi; c++) {
          map.set(c, base.slice(0, -1) + String.fromCharCode(base.charCodeAt(base.length - 1) + (c - lo)));
        }
      }
    }
  }
  return { bytesPerCode, map };
}

function decodeLiteral(s: string): Buffer {
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c !== '\\') {
      out.push(c.charCodeAt(0) & 0xff);
      continue;
    }
    const n = s[++i];
    if (n === undefined) break;
    const esc: Record<string, number> = { n: 10, r: 13, t: 9, b: 8, f: 12, '(': 40, ')': 41, '\\': 92 };
    if (n in esc) out.push(esc[n]!);
    else if (/[0-7]/.test(n)) {
      let oct = n;
      while (oct.length < 3 && /[0-7]/.test(s[i + 1] ?? '')) oct += s[++i];
      out.push(parseInt(oct, 8) & 0xff);
    } else if (n === '\r' || n === '\n') {
      if (n === '\r' && s[i + 1] === '\n') i++;
    } else out.push(n.charCodeAt(0) & 0xff);
  }
  return Buffer.from(out);
}

function decodeWith(font: FontMap | undefined, bytes: Buffer): string {
  if (!font || font === 'latin1') return bytes.toString('latin1');
  let s = '';
  for (let i = 0; i + font.bytesPerCode <= bytes.length; i += font.bytesPerCode) {
    const code = font.bytesPerCode === 2 ? bytes.readUInt16BE(i) : bytes[i]!;
    s += font.map.get(code) ?? '\ufffd';
  }
  return s;
}

/** Text shown by one content stream, text objects separated by newlines. */
function contentText(content: string, fonts: Map<string, FontMap>): string {
  let font: FontMap | undefined;
  let out = '';
  const tokens = /\/([^\s/<>[\]()]+)\s+[\d.]+\s+Tf|<([0-9a-fA-F\s]*)>|\(((?:\\[\s\S]|[^\\)])*)\)|\b(ET)\b/g;
  let m: RegExpExecArray | null;
  while ((m = tokens.exec(content))) {
    if (m[1] !== undefined) font = fonts.get(m[1]);
    else if (m[2] !== undefined) out += decodeWith(font, Buffer.from(m[2].replace(/\s+/g, ''), 'hex'));
    else if (m[3] !== undefined) out += decodeWith(font, decodeLiteral(m[3]));
    else if (m[4]) out += '\n';
  }
  return out;
}

/** The text of each page, in page order. */
export function pdfPageTexts(pdf: Buffer): string[] {
  if (!pdf.subarray(0, 5).equals(Buffer.from('%PDF-'))) throw new PdfReadError('not a PDF');
  const objects = parseObjects(pdf);
  const root = [...objects.values()].find((o) => /\/Type\s*\/Catalog\b/.test(o.dict));
  const pagesRoot = get(objects, root && ref(root.dict, 'Pages'), 'page tree');
  const pageIds: number[] = [];
  const walk = (node: PdfObject, depth: number) => {
    if (depth > 32) throw new PdfReadError('page tree too deep');
    const kids = /\/Kids\s*\[([^\]]*)\]/.exec(node.dict);
    if (!kids) throw new PdfReadError('page tree node without /Kids');
    for (const k of kids[1]!.matchAll(/(\d+) 0 R/g)) {
      const id = Number(k[1]);
      const kid = get(objects, id, 'page');
      if (/\/Type\s*\/Pages\b/.test(kid.dict)) walk(kid, depth + 1);
      else pageIds.push(id);
    }
  };
  walk(pagesRoot, 0);

  const fontCache = new Map<number, FontMap>();
  const fontFor = (id: number): FontMap => {
    let f = fontCache.get(id);
    if (!f) {
      const fo = get(objects, id, 'font');
      const tu = ref(fo.dict, 'ToUnicode');
      f = tu === undefined ? 'latin1' : parseToUnicode(get(objects, tu, 'ToUnicode CMap').stream!.toString('latin1'));
      fontCache.set(id, f);
    }
    return f;
  };

  return pageIds.map((id) => {
    const page = get(objects, id, 'page');
    const resId = ref(page.dict, 'Resources');
    const resources = resId === undefined ? page.dict : get(objects, resId, 'page resources').dict;
    const fonts = new Map<string, FontMap>();
    const fontDict = /\/Font\s*<<([\s\S]*?)>>/.exec(resources);
    if (fontDict) for (const f of fontDict[1]!.matchAll(/\/([^\s/]+)\s+(\d+) 0 R/g)) fonts.set(f[1]!, fontFor(Number(f[2])));
    const contentIds: number[] = [];
    const arr = /\/Contents\s*\[([^\]]*)\]/.exec(page.dict);
    if (arr) for (const c of arr[1]!.matchAll(/(\d+) 0 R/g)) contentIds.push(Number(c[1]));
    else {
      const c = ref(page.dict, 'Contents');
      if (c !== undefined) contentIds.push(c);
    }
    return contentIds
      .map((c) => contentText(get(objects, c, 'page contents').stream?.toString('latin1') ?? '', fonts))
      .join('\n');
  });
}
