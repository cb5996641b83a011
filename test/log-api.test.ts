// The log's HTTP API on the real service (SQLite and PostgreSQL): every route's output is checked
// against an independent recomputation (test/helpers/naive-tree.ts and a hand-written C2SP note
// check below, no code shared with server/audit/), and every bad parameter gets a precise 400.
import test from 'ava';
import { createHash, createPublicKey, randomBytes, verify } from 'node:crypto';
import canonicalizeModule from 'canonicalize';
import { Agent, fetch } from 'undici';
import { DB_KINDS } from './helpers/db.ts';
import { NaiveTree } from './helpers/naive-tree.ts';
import { createApp } from '../server/app.ts';
import { createLogger } from '../server/logger.ts';
import { Readiness } from '../server/readiness.ts';
import { auditorToken, sampleRecord, startLogService, type LogService } from './helpers/log-service.ts';
import { createTestDb } from './helpers/db.ts';
import { openKnexLog } from '../server/audit/knex-log.ts';
import { signerFromSeed } from '../server/audit/note.ts';
import { emptyCheckpointNote, logApiPlugin } from '../server/routes/log-api.ts';

// The package is CommonJS (module.exports = fn); its typings describe an ESM default export.
const canonicalize = canonicalizeModule as unknown as (value: unknown) => string | undefined;

const N = 37;

/**
 * A running service whose log holds whatever the service wrote at start-up, then `count`
 * sample records appended concurrently (batching must still give distinct, contiguous indices).
 * `entries` are the expected bytes of every index below `size`: the start-up entries as the log
 * returns them in-process, ours as the canonical JSON of what we appended.
 */
async function withLog(
  kind: (typeof DB_KINDS)[number],
  count: number,
  t: { teardown(f: () => Promise<void>): void; deepEqual(a: unknown, b: unknown, m?: string): void },
) {
  const h = await startLogService(kind);
  t.teardown(() => h.cleanup());
  const log = h.service!.log;
  const token = await auditorToken(h);
  const base = (await log.head()).size;
  const entries: Buffer[] = [];
  for await (const e of log.entries(0, base)) entries.push(e.data);
  const records = Array.from({ length: count }, (_, i) => sampleRecord(i));
  const indices = await Promise.all(records.map((r) => log.append(r)));
  t.deepEqual(
    [...indices].sort((a, b) => a - b),
    Array.from({ length: count }, (_, i) => base + i),
    'indices are contiguous after the start-up entries',
  );
  indices.forEach((idx, i) => (entries[idx] = Buffer.from(canonicalize(records[i])!)));
  const size = base + count;
  return { h, token, base, size, entries, tree: new NaiveTree(entries) };
}

// A fresh connection per request: a reused keep-alive socket that the server closes at the same
// moment (its 5 s idle timeout, reached on a loaded machine) fails with ECONNRESET.
const noKeepAlive = new Agent({ pipelining: 0 });

/** GET on the service; `token` is the bearer credential /log/entries requires. */
async function get(h: LogService, path: string, token?: string) {
  try {
    return await fetch(`${h.url}${path}`, {
      dispatcher: noKeepAlive,
      headers: token ? { authorization: `Bearer ${token}` } : {},
    });
  } catch (err) {
    throw new Error(`GET ${path}: ${(err as Error).message}: ${String((err as Error).cause)}`);
  }
}

/** The C2SP vkey and checkpoint, parsed and verified by hand from the spec text. */
function checkNoteByHand(note: string, vkey: string): { origin: string; size: number; root: Buffer } {
  const [name, keyIdHex, keyB64] = [
    vkey.slice(0, vkey.indexOf('+')),
    vkey.slice(vkey.indexOf('+') + 1, vkey.indexOf('+') + 9),
    vkey.slice(vkey.indexOf('+') + 10),
  ];
  const keyBytes = Buffer.from(keyB64, 'base64');
  if (keyBytes.length !== 33 || keyBytes[0] !== 0x01) throw new Error('vkey is not an Ed25519 key');
  const pub = keyBytes.subarray(1);
  const id = createHash('sha256')
    .update(Buffer.concat([Buffer.from(name), Buffer.from([0x0a, 0x01]), pub]))
    .digest()
    .subarray(0, 4);
  if (id.toString('hex') !== keyIdHex) throw new Error('vkey key id does not match its key');
  const sep = note.indexOf('\n\n');
  const body = note.slice(0, sep + 1);
  const sigLines = note.slice(sep + 2).split('\n');
  if (sigLines.pop() !== '') throw new Error('note must end with a newline');
  const key = createPublicKey({
    key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), pub]),
    format: 'der',
    type: 'spki',
  });
  const ours = sigLines.filter((l) => l.startsWith(`\u2014 ${name} `));
  if (ours.length !== 1) throw new Error(`expected one signature by ${name}`);
  const sig = Buffer.from(ours[0]!.slice(`\u2014 ${name} `.length), 'base64');
  if (!sig.subarray(0, 4).equals(id)) throw new Error('signature key id mismatch');
  if (!verify(null, Buffer.from(body), key, sig.subarray(4))) throw new Error('bad signature');
  const [origin, size, root, extra] = body.split('\n');
  if (extra !== '') throw new Error('checkpoint body must be exactly three lines');
  return { origin: origin!, size: Number(size), root: Buffer.from(root!, 'base64') };
}

const b64 = (bs: Buffer[]): string[] => bs.map((b) => b.toString('base64'));

for (const kind of DB_KINDS) {
  test(`${kind}: checkpoint and vkey verify by hand and commit to the naive root`, async (t) => {
    const { h, size, tree } = await withLog(kind, N, t);
    await h.service!.log.checkpoint();
    const vres = await get(h, '/log/vkey');
    t.is(vres.status, 200);
    t.is(vres.headers.get('content-type'), 'text/plain; charset=utf-8');
    const vkey = (await vres.text()).trim();
    t.regex(vkey, new RegExp(`^${h.origin.replace(/[.]/g, '\\.')}\\+[0-9a-f]{8}\\+[A-Za-z0-9+/]{44}$`));
    const cres = await get(h, '/log/checkpoint');
    t.is(cres.status, 200);
    t.is(cres.headers.get('content-type'), 'text/plain; charset=utf-8');
    const cp = checkNoteByHand(await cres.text(), vkey);
    t.is(cp.origin, h.origin);
    t.is(cp.size, size);
    t.deepEqual(cp.root, tree.root(size));
  });

  test(`${kind}: proofs, entries and stored hashes equal the naive tree's`, async (t) => {
    const { h, token, size, entries, tree } = await withLog(kind, N, t);
    const lines = (from: number, to: number) =>
      Buffer.concat(entries.slice(from, to).flatMap((e) => [e, Buffer.from('\n')]));

    // Entries: the whole range, streamed as exact canonical bytes + "\n".
    const eres = await get(h, `/log/entries?start=0&end=${size}`, token);
    t.is(eres.status, 200);
    t.is(eres.headers.get('content-type'), 'application/x-ndjson');
    const body = Buffer.from(await eres.arrayBuffer());
    t.deepEqual(body, lines(0, size));
    body
      .toString('utf8')
      .split('\n')
      .slice(0, -1)
      .forEach((l, i) => {
        const lh = createHash('sha256')
          .update(Buffer.from([0]))
          .update(Buffer.from(l, 'utf8'))
          .digest();
        t.deepEqual(lh, tree.leaves[i], `leaf hash of line ${i}`);
      });
    // Sub-ranges and the empty range.
    for (const [a, b] of [
      [0, 1],
      [5, 17],
      [size - 1, size],
      [12, 12],
    ] as const) {
      const r = await get(h, `/log/entries?start=${a}&end=${b}`, token);
      t.is(r.status, 200);
      t.deepEqual(Buffer.from(await r.arrayBuffer()), lines(a, b));
    }

    // Stored hashes: every row, every position.
    const hres = await get(h, `/log/hashes?start=0&end=${size}`);
    t.is(hres.status, 200);
    t.is(hres.headers.get('content-type'), 'application/x-ndjson');
    const rows = (await hres.text()).split('\n');
    t.is(rows.pop(), '');
    t.is(rows.length, size);
    rows.forEach((line, i) =>
      t.deepEqual(JSON.parse(line), { index: i, hashes: b64(tree.storedRow(i)) }, `row ${i}`),
    );
    const part = (await (await get(h, '/log/hashes?start=7&end=9')).text()).trim().split('\n');
    t.deepEqual(
      part.map((l) => JSON.parse(l).index),
      [7, 8],
    );

    // Every inclusion and consistency proof for every pair of sizes (in-process requests for
    // speed; the socket path is the same route, checked by a few real requests below).
    const inject = async (url: string) => {
      const r = await h.service!.server.inject(url);
      t.is(r.statusCode, 200, url);
      t.is(r.headers['content-type'], 'application/json; charset=utf-8');
      return JSON.parse(r.payload) as unknown;
    };
    for (let n = 1; n <= size; n++) {
      for (let index = 0; index < n; index++) {
        const got = await inject(`/log/proof/inclusion?index=${index}&size=${n}`);
        t.deepEqual(
          got,
          { index, size: n, hashes: b64(tree.inclusion(index, n)) },
          `inclusion ${index}/${n}`,
        );
      }
      for (let old = 1; old <= n; old++) {
        const got = await inject(`/log/proof/consistency?old=${old}&new=${n}`);
        t.deepEqual(got, { old, new: n, hashes: b64(tree.consistency(old, n)) }, `consistency ${old}→${n}`);
      }
    }
    for (const [index, n] of [
      [0, 1],
      [13, 37],
      [36, size],
    ] as const) {
      const r = await get(h, `/log/proof/inclusion?index=${index}&size=${n}`);
      t.is(r.status, 200);
      t.deepEqual(await r.json(), { index, size: n, hashes: b64(tree.inclusion(index, n)) });
    }
    const rc = await get(h, `/log/proof/consistency?old=11&new=${size}`);
    t.deepEqual(await rc.json(), { old: 11, new: size, hashes: b64(tree.consistency(11, size)) });
  });

  test(`${kind}: entries need an auditor's credential; checkpoint, vkey, proofs and hashes are public`, async (t) => {
    const { h, token } = await withLog(kind, 3, t);
    t.is((await get(h, '/log/entries?start=0&end=1')).status, 401);
    t.is((await get(h, '/log/entries?start=0&end=1', await auditorToken(h, ['agent']))).status, 403);
    t.is((await get(h, '/log/entries?start=0&end=1', token)).status, 200);
    for (const path of [
      '/log/checkpoint',
      '/log/vkey',
      '/log/proof/inclusion?index=0&size=1',
      '/log/proof/consistency?old=1&new=2',
      '/log/hashes?start=0&end=1',
    ]) {
      t.is((await get(h, path)).status, 200, path);
    }
  });

  test(`${kind}: an empty log serves a size-0 checkpoint and empty ranges`, async (t) => {
    // The plugin on its own over a fresh log, so nothing a service writes at start-up interferes.
    const tdb = await createTestDb(kind);
    t.teardown(() => tdb.cleanup());
    const origin = `auditgate.test/empty-${randomBytes(4).toString('hex')}`;
    const signer = signerFromSeed(origin, randomBytes(32));
    const log = await openKnexLog(tdb.db, {
      origin,
      signer,
      batchMaxSize: 16,
      batchMaxDelayMs: 1,
      checkpointIntervalMs: 86_400_000,
      checkpointTimer: false,
    });
    t.teardown(() => log.close());
    // createApp: the service's error mapping (LogRangeError → 400) without the rest of the service.
    const server = await createApp({
      host: '127.0.0.1',
      port: 0,
      logger: createLogger('silent'),
      readiness: new Readiness(),
    });
    await server.register({
      plugin: logApiPlugin,
      options: { log, emptyCheckpoint: emptyCheckpointNote(origin, signer) },
    });
    await server.start();
    t.teardown(() => server.stop());
    const h = { url: server.info.uri } as LogService;

    const vkey = (await (await get(h, '/log/vkey')).text()).trim();
    const res = await get(h, '/log/checkpoint');
    t.is(res.status, 200);
    const cp = checkNoteByHand(await res.text(), vkey);
    t.is(cp.origin, origin);
    t.is(cp.size, 0);
    t.deepEqual(cp.root, createHash('sha256').digest());
    for (const route of ['entries', 'hashes']) {
      const r = await get(h, `/log/${route}?start=0&end=0`);
      t.is(r.status, 200);
      t.is(await r.text(), '');
    }
    const r = await get(h, '/log/proof/inclusion?index=0&size=1');
    t.is(r.status, 400);
    t.regex(((await r.json()) as { message: string }).message, /size 1 is beyond the committed tree size 0/);
    // The first entry replaces the empty checkpoint with a signed one of size 1.
    await log.append(sampleRecord(0));
    const grown = checkNoteByHand(await (await get(h, '/log/checkpoint')).text(), vkey);
    t.is(grown.size, 1);
  });

  test(`${kind}: every bad parameter is a 400 with a precise message`, async (t) => {
    const { h, token, size } = await withLog(kind, 10, t);
    const far = size + 5000;
    const cases: Array<[string, RegExp]> = [
      ['/log/proof/inclusion?size=5', /missing parameter 'index'/],
      ['/log/proof/inclusion?index=1', /missing parameter 'size'/],
      ['/log/proof/inclusion', /missing parameter 'index'/],
      ['/log/proof/inclusion?index=-1&size=5', /'index' must be a non-negative decimal integer.*"-1"/],
      ['/log/proof/inclusion?index=abc&size=5', /'index' must be .*"abc"/],
      ['/log/proof/inclusion?index=1x&size=5', /'index' must be .*"1x"/],
      ['/log/proof/inclusion?index=x1&size=5', /'index' must be .*"x1"/],
      ['/log/proof/inclusion?index=%201&size=5', /'index' must be .*" 1"/],
      ['/log/proof/inclusion?index=01&size=5', /'index' must be .*leading zeros.*"01"/],
      ['/log/proof/inclusion?index=1.0&size=5', /'index' must be .*"1.0"/],
      ['/log/proof/inclusion?index=1e0&size=5', /'index' must be .*"1e0"/],
      ['/log/proof/inclusion?index=0x1&size=5', /'index' must be .*"0x1"/],
      ['/log/proof/inclusion?index=%2B1&size=5', /'index' must be .*"\+1"/],
      ['/log/proof/inclusion?index=&size=5', /'index' must be .*""/],
      ['/log/proof/inclusion?index=1&size=99999999999999999999', /'size' is too large/],
      ['/log/proof/inclusion?index=1&index=2&size=5', /'index' given more than once/],
      ['/log/proof/inclusion?index=1&size=5&leaf=3', /unknown parameter 'leaf'/],
      ['/log/proof/inclusion?index=5&size=5', /index 5 must be less than size 5/],
      ['/log/proof/inclusion?index=7&size=5', /index 7 must be less than size 5/],
      ['/log/proof/inclusion?index=0&size=0', /index 0 must be less than size 0/],
      [
        `/log/proof/inclusion?index=0&size=${size + 1}`,
        new RegExp(`size ${size + 1} is beyond the committed tree size ${size}$`),
      ],
      ['/log/proof/consistency?old=0&new=5', /old must be at least 1/],
      ['/log/proof/consistency?old=0&new=0', /old must be at least 1/],
      ['/log/proof/consistency?old=6&new=5', /old 6 is greater than new 5/],
      [
        `/log/proof/consistency?old=3&new=${size + 1}`,
        new RegExp(`new ${size + 1} is beyond the committed tree size ${size}$`),
      ],
      ['/log/proof/consistency?old=3', /missing parameter 'new'/],
      ['/log/proof/consistency?new=3', /missing parameter 'old'/],
      ['/log/proof/consistency?old=-3&new=5', /'old' must be/],
      ['/log/proof/consistency?old=3&new=five', /'new' must be/],
      ...['entries', 'hashes'].flatMap((r): Array<[string, RegExp]> => [
        [`/log/${r}?start=0`, /missing parameter 'end'/],
        [`/log/${r}?end=3`, /missing parameter 'start'/],
        [`/log/${r}?start=-1&end=3`, /'start' must be/],
        [`/log/${r}?start=0&end=3abc`, /'end' must be/],
        [`/log/${r}?start=5&end=3`, /start 5 is greater than end 3/],
        // Each authorised read of entries is itself appended (audit.read), so the size moves on.
        [`/log/${r}?start=0&end=${far}`, new RegExp(`end ${far} is beyond the committed tree size \\d+$`)],
        [
          `/log/${r}?start=${far}&end=${far}`,
          new RegExp(`end ${far} is beyond the committed tree size \\d+$`),
        ],
        [`/log/${r}?start=0&end=10001`, /at most 10000 per request/],
        [`/log/${r}?start=0&end=3&limit=2`, /unknown parameter 'limit'/],
      ]),
    ];
    for (const [path, message] of cases) {
      const r = await get(h, path, token);
      t.is(r.status, 400, path);
      t.is(r.headers.get('content-type'), 'application/json; charset=utf-8', path);
      const body = (await r.json()) as { error: string; message: string };
      t.is(body.error, 'Bad Request', path);
      t.regex(body.message, message, path);
    }
    // The boundaries themselves are fine.
    t.is((await get(h, `/log/proof/inclusion?index=${size - 1}&size=${size}`)).status, 200);
    t.is((await get(h, `/log/proof/consistency?old=${size}&new=${size}`)).status, 200);
    t.is((await get(h, `/log/entries?start=${size}&end=${size}`, token)).status, 200);
    t.is((await get(h, `/log/hashes?start=${size}&end=${size}`)).status, 200);
  });
}
