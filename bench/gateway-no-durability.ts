// For `npm run bench:gateway`: the gateway alone — same code path (hapi adapter, front-door checks,
// session mapping, SSE relay, one record built per message) but the records go to an in-memory sink
// that resolves at once and the credential is a fixed key. Shows what the gateway itself costs,
// apart from the durable log's commits. Never a way to run auditgate.
//   node --import tsx bench/gateway-no-durability.ts <upstream-url> <port> <key>
import Hapi from '@hapi/hapi';
import { Gateway } from '../gateway/gateway.ts';
import { gatewayPlugin } from '../gateway/hapi.ts';
import type { AuditRecord } from '../gateway/audit-record.ts';

const [upstream, port, key] = process.argv.slice(2) as [string, string, string];
let appended = 0;
const gateway = new Gateway({
  targets: [{ name: 'bench', kind: 'http', url: upstream, headers: {}, timeoutMs: 30_000 }],
  sink: {
    async append(record: AuditRecord) {
      // Serialised as the log would, so the cost of building and encoding the record stays in.
      JSON.stringify(record);
      return appended++;
    },
  },
  authenticator: {
    async authenticate(req) {
      return req.headers.authorization === `Bearer ${key}`
        ? { ok: true, actor: { subject: 'bench', auth_method: 'api_key', key_id: 'bench' } }
        : { ok: false, status: 401, message: 'unknown key' };
    },
  },
  publicUrl: `http://127.0.0.1:${port}`,
  instance: 'bench',
  version: '0',
});
const server = Hapi.server({ host: '127.0.0.1', port: Number(port) });
await server.register({ plugin: gatewayPlugin, options: { gateway } });
await server.start();
console.log(`listening ${server.info.port}`);
// Exit normally on a signal, so `node --cpu-prof` can write its profile.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(0));
