// A stand-in log server for volume tests of the verifier: it speaks the read side of
// docs/log-api.md for a large synthetic log (entries generated from their index, stored hashes
// kept in one flat buffer), so a run over hundreds of thousands of entries needs no database.
import { createServer, type Server } from 'node:http';
import { randomBytes } from 'node:crypto';
import { Frontier, HASH_SIZE, leafHash } from '../../server/audit/merkle.ts';
import { formatCheckpoint, signNote, signerFromSeed, verifierKey } from '../../server/audit/note.ts';

export interface SyntheticLog {
  url: string;
  vkey: string;
  size: number;
  close(): Promise<void>;
}

/** Entry i: canonical JSON, about `pad` + 40 bytes long. */
export function syntheticEntry(i: number, pad: number): Buffer {
  return Buffer.from(`{"i":${i},"pad":"${'x'.repeat(pad)}","v":1}`);
}

/** `token`: when set, /log/entries answers 401 unless it comes as `Authorization: Bearer <token>`. */
export async function startSyntheticLog(
  size: number,
  pad = 200,
  opts: { token?: string } = {},
): Promise<SyntheticLog> {
  const origin = `synthetic.test/log-${randomBytes(4).toString('hex')}`;
  const signer = signerFromSeed(origin, randomBytes(32));
  // Row i's hashes start at offsets[i] in `hashes` (1 + trailing ones of i hashes per row).
  const offsets = new Float64Array(size + 1);
  const hashes = Buffer.alloc(size * 2 * HASH_SIZE);
  const frontier = new Frontier();
  let at = 0;
  for (let i = 0; i < size; i++) {
    offsets[i] = at;
    for (const h of frontier.append(leafHash(syntheticEntry(i, pad)))) {
      h.copy(hashes, at);
      at += HASH_SIZE;
    }
  }
  offsets[size] = at;
  const note = signNote(formatCheckpoint({ origin, size, root: frontier.root() }), [signer]);
  const vkey = verifierKey(signer);

  const server: Server = createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    const start = Number(u.searchParams.get('start'));
    const end = Number(u.searchParams.get('end'));
    const stream = (line: (i: number) => Buffer) => {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      let i = start;
      // Honour back-pressure like the real server: the client's memory use is what is measured.
      const pump = () => {
        while (i < end) {
          if (!res.write(line(i++))) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    };
    if (u.pathname === '/log/vkey') res.end(`${vkey}\n`);
    else if (u.pathname === '/log/checkpoint') res.end(note);
    else if (
      u.pathname === '/log/entries' &&
      opts.token &&
      req.headers.authorization !== `Bearer ${opts.token}`
    ) {
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ statusCode: 401, error: 'Unauthorized', message: 'authentication required' }));
    } else if (u.pathname === '/log/entries')
      stream((i) => Buffer.concat([syntheticEntry(i, pad), Buffer.from('\n')]));
    else if (u.pathname === '/log/hashes') {
      stream((i) => {
        const row: string[] = [];
        for (let o = offsets[i]!; o < offsets[i + 1]!; o += HASH_SIZE) {
          row.push(hashes.subarray(o, o + HASH_SIZE).toString('base64'));
        }
        return Buffer.from(`${JSON.stringify({ index: i, hashes: row })}\n`);
      });
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    vkey,
    size,
    close: () =>
      new Promise<void>((done) => {
        server.closeAllConnections();
        server.close(() => done());
      }),
  };
}
