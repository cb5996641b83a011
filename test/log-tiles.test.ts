// C2SP tlog-tiles read paths on the real service (SQLite and PostgreSQL): every hash tile and
// entry bundle equals the naive tree's hashes and the appended bytes; paths are parsed strictly;
// tiles not yet complete are 404; entry bundles need the same credential as /log/entries.
import test from 'ava';
import canonicalizeModule from 'canonicalize';
import { Agent, fetch } from 'undici';
import { DB_KINDS } from './helpers/db.ts';
import { NaiveTree } from './helpers/naive-tree.ts';
import { auditorToken, sampleRecord, startLogService, type LogService } from './helpers/log-service.ts';
import { parseTilePath, tileIndexPath } from '../server/routes/log-tiles.ts';

const canonicalize = canonicalizeModule as unknown as (value: unknown) => string | undefined;
const noKeepAlive = new Agent({ pipelining: 0 });

async function get(h: LogService, path: string, token?: string) {
  const r = await fetch(`${h.url}${path}`, {
    dispatcher: noKeepAlive,
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  return { status: r.status, type: r.headers.get('content-type'), body: Buffer.from(await r.arrayBuffer()) };
}

test('tile index paths: 3-digit groups with an x prefix, parsed strictly', (t) => {
  t.is(tileIndexPath(0), '000');
  t.is(tileIndexPath(999), '999');
  t.is(tileIndexPath(1000), 'x001/000');
  t.is(tileIndexPath(1234067), 'x001/x234/067');
  t.deepEqual(parseTilePath('0/x001/x234/067'), { level: 0, index: 1234067, width: 256 });
  t.deepEqual(parseTilePath('2/005.p/17'), { level: 2, index: 5, width: 17 });
  t.deepEqual(parseTilePath('entries/x001/000.p/255'), { level: 'entries', index: 1000, width: 255 });
  for (const [bad, why] of [
    ['0/1', /3-digit groups/],
    ['0/0001', /3-digit groups/],
    ['0/x000/001', /not canonical; the same tile is 0\/001/],
    ['0/001/x002', /3-digit groups/],
    ['0/000.p/0', /partial width must be 1\.\.255/],
    ['0/000.p/256', /partial width must be 1\.\.255/],
    ['0/000.p/07', /partial width must be 1\.\.255/],
    ['7/000', /level must be 0\.\.6/],
    ['a/000', /level must be/],
    ['0', /no tile index/],
    ['0/', /3-digit groups/],
  ] as const) {
    t.throws(() => parseTilePath(bad), { message: why }, bad);
  }
});

for (const kind of DB_KINDS) {
  test(`${kind}: hash tiles and entry bundles equal the naive tree and the appended bytes`, async (t) => {
    const h = await startLogService(kind);
    t.teardown(() => h.cleanup());
    const log = h.service!.log;
    const token = await auditorToken(h);
    const base = (await log.head()).size;
    const entries: Buffer[] = [];
    for await (const e of log.entries(0, base)) entries.push(e.data);
    const records = Array.from({ length: 600 }, (_, i) => sampleRecord(i, 'tiles'));
    const indices = await Promise.all(records.map((r) => log.append(r)));
    indices.forEach((idx, i) => (entries[idx] = Buffer.from(canonicalize(records[i])!)));
    const size = base + records.length;
    const tree = new NaiveTree(entries);
    const leaves = (from: number, to: number) => Buffer.concat(tree.leaves.slice(from, to));

    // Level 0: full tiles of 256 leaf hashes, then the partial last one (and any shorter prefix).
    const full0 = Math.floor(size / 256);
    const rest0 = size % 256;
    t.true(full0 >= 2 && rest0 > 0);
    for (let n = 0; n < full0; n++) {
      const r = await get(h, `/log/tile/0/${tileIndexPath(n)}`);
      t.is(r.status, 200);
      t.is(r.type, 'application/octet-stream');
      t.deepEqual(r.body, leaves(n * 256, (n + 1) * 256), `tile 0/${n}`);
    }
    for (const w of [rest0, 1]) {
      const r = await get(h, `/log/tile/0/${tileIndexPath(full0)}.p/${w}`);
      t.is(r.status, 200);
      t.deepEqual(r.body, leaves(full0 * 256, full0 * 256 + w));
    }
    // Level 1: hashes of complete 256-leaf subtrees.
    const r1 = await get(h, `/log/tile/1/000.p/${full0}`);
    t.is(r1.status, 200);
    t.deepEqual(
      r1.body,
      Buffer.concat(Array.from({ length: full0 }, (_, j) => tree.mth(j * 256, (j + 1) * 256))),
    );
    // Not complete yet: 404.
    for (const path of [
      `/log/tile/0/${tileIndexPath(full0)}`,
      `/log/tile/0/${tileIndexPath(full0)}.p/${rest0 + 1}`,
      `/log/tile/1/000`,
      `/log/tile/1/000.p/${full0 + 1}`,
      `/log/tile/0/x001/000`,
    ]) {
      const r = await get(h, path);
      t.is(r.status, 404, path);
      t.regex(JSON.parse(r.body.toString()).message, /is not complete at tree size \d+/, path);
    }
    // Malformed: 400.
    for (const path of [
      '/log/tile/0/1',
      '/log/tile/0/x000/001',
      '/log/tile/9/000',
      '/log/tile/0/000.p/300',
    ]) {
      const r = await get(h, path);
      t.is(r.status, 400, path);
      t.regex(JSON.parse(r.body.toString()).message, /^tile path /, path);
    }

    // Entry bundles: uint16 big-endian length, then the exact entry bytes; audit data.
    t.is((await get(h, '/log/tile/entries/000')).status, 401);
    const decode = (b: Buffer): Buffer[] => {
      const out: Buffer[] = [];
      for (let o = 0; o < b.length;) {
        const len = b.readUInt16BE(o);
        out.push(b.subarray(o + 2, o + 2 + len));
        o += 2 + len;
      }
      return out;
    };
    const bundle = await get(h, '/log/tile/entries/001', token);
    t.is(bundle.status, 200);
    t.deepEqual(decode(bundle.body), entries.slice(256, 512));
    const last = await get(h, `/log/tile/entries/${tileIndexPath(full0)}.p/${rest0}`, token);
    t.deepEqual(decode(last.body), entries.slice(full0 * 256, size));
    t.is((await get(h, `/log/tile/entries/${tileIndexPath(full0)}`, token)).status, 404);
  });

  test(`${kind}: an entry too long for a bundle is refused, never cut`, async (t) => {
    const h = await startLogService(kind);
    t.teardown(() => h.cleanup());
    const token = await auditorToken(h);
    const idx = await h.service!.log.append({ ...sampleRecord(0), detail: { blob: 'y'.repeat(70_000) } });
    const r = await get(h, `/log/tile/entries/000.p/${idx + 1}`, token);
    t.is(r.status, 501);
    t.regex(
      JSON.parse(r.body.toString()).message,
      new RegExp(`entry ${idx} is \\d+ bytes; .* at most 65535`),
    );
  });
}
