// The baseline for `npm run bench:gateway`: a bare Node pass-through proxy in a few lines of undici.
// No authentication, no audit, no parsing: what any reverse proxy costs.
//   node --import tsx bench/bare-proxy.ts <upstream-url> <port>
import { createServer } from 'node:http';
import { Pool } from 'undici';

const upstream = new URL(process.argv[2]!);
const pool = new Pool(upstream.origin, { connections: 256 });
const server = createServer(async (req, res) => {
  try {
    const { authorization: _a, host: _h, connection: _c, ...headers } = req.headers;
    const up = await pool.request({ path: upstream.pathname, method: req.method as 'POST', headers, body: req.method === 'POST' ? req : undefined });
    res.writeHead(up.statusCode, up.headers as Record<string, string>);
    for await (const chunk of up.body) res.write(chunk);
    res.end();
  } catch {
    if (!res.headersSent) res.writeHead(502);
    res.end();
  }
});
server.listen(Number(process.argv[3] ?? 0), '127.0.0.1', () => console.log(`listening ${(server.address() as { port: number }).port}`));
