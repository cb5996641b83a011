// The whole service (server/service.ts) with a configuration file that has identity, policy and
// rate-limit sections, a real OpenID provider, and an HTTP MCP upstream that remembers every
// header and body it received (to prove what the gateway does and does not pass on).
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { z } from 'zod';
import { loadConfig } from '../../server/config.ts';
import { createLogger } from '../../server/logger.ts';
import { startService, type Service } from '../../server/service.ts';
import type { AuditRecord } from '../../gateway/audit-record.ts';
import { createTestDb, type DbKind, type TestDb } from './db.ts';
import { startIdp, type TestIdp } from './idp.ts';
import { freePort } from './gateway-service.ts';

export interface SeenRequest {
  method: string;
  headers: IncomingMessage['headers'];
  body: string;
}

export interface RecordingUpstream {
  url: string;
  seen: SeenRequest[];
  stop(): Promise<void>;
}

/** A stateless Streamable HTTP MCP server with a few tools, recording each request it gets. */
export async function startRecordingUpstream(
  tools: string[] = ['echo', 'read_file', 'delete_file'],
): Promise<RecordingUpstream> {
  const seen: SeenRequest[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      seen.push({ method: req.method ?? '', headers: req.headers, body });
      const mcp = new McpServer({ name: 'recording-upstream', version: '1.0.0' });
      for (const name of tools) {
        mcp.registerTool(
          name,
          { description: name, inputSchema: { text: z.string().optional() } },
          async ({ text }) => ({
            content: [{ type: 'text', text: `${name}:${text ?? ''}` }],
          }),
        );
      }
      const transport = new StreamableHTTPServerTransport({
        sessionIdGenerator: undefined,
        enableJsonResponse: true,
      });
      res.on('close', () => {
        void transport.close();
        void mcp.close();
      });
      mcp
        .connect(transport)
        .then(() => transport.handleRequest(req, res, body ? JSON.parse(body) : undefined))
        .catch(() => {
          if (!res.headersSent) res.writeHead(500).end();
        });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`,
    seen,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

export interface IdentityService {
  tdb: TestDb;
  idp: TestIdp;
  upstream: RecordingUpstream;
  service: Service;
  url: string;
  /** The secret the upstream expects from the gateway (server-side credential, never the client's). */
  upstreamSecret: string;
  resource(target: string): string;
  records(): Promise<AuditRecord[]>;
  cleanup(): Promise<void>;
}

export async function startIdentityService(opts: {
  kind?: DbKind;
  /** Client-credentials clients: id → extra token claims (e.g. groups). */
  agents: Record<string, Record<string, unknown>>;
  identity?: (issuer: string) => Record<string, unknown>;
  policies?: unknown[];
  rate_limits?: Record<string, unknown>;
}): Promise<IdentityService> {
  const cleanups: Array<() => Promise<unknown>> = [];
  const run = async () => {
    const tdb = await createTestDb(opts.kind ?? 'sqlite', { migrate: false });
    cleanups.unshift(() => tdb.cleanup());
    const idp = await startIdp({
      accounts: {},
      clients: Object.entries(opts.agents).map(([id, claims]) => ({
        client_id: id,
        client_secret: `${id}-${randomBytes(12).toString('hex')}`,
        grant_types: ['client_credentials'],
        tokenClaims: claims,
      })),
    });
    cleanups.unshift(() => idp.stop());
    const upstream = await startRecordingUpstream();
    cleanups.unshift(() => upstream.stop());
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    // The service resolves upstream credentials from process.env (mountGateway); one value per
    // test process, so that concurrent tests do not overwrite each other's.
    const upstreamSecret = (process.env.TEST_UPSTREAM_KEY ??= randomBytes(16).toString('hex'));
    const doc = {
      targets: {
        echo: { url: upstream.url, headers: { 'x-upstream-key': { env: 'TEST_UPSTREAM_KEY' } } },
        other: { url: upstream.url },
      },
      identity: opts.identity?.(idp.issuer) ?? {
        issuers: [
          { issuer: idp.issuer, jwks_cooldown: '50ms', group_roles: { ci: ['agent'] }, default_roles: [] },
        ],
      },
      ...(opts.policies ? { policies: opts.policies } : {}),
      ...(opts.rate_limits ? { rate_limits: opts.rate_limits } : {}),
    };
    const file = join(tdb.dir, 'auditgate.config.json');
    writeFileSync(file, JSON.stringify(doc));
    const env: Record<string, string> = {
      HOST: '127.0.0.1',
      PORT: String(port),
      AUDITGATE_DATA_DIR: tdb.dir,
      AUDITGATE_CONFIG: file,
      AUDITGATE_LOG_ORIGIN: `auditgate.test/id-${randomBytes(4).toString('hex')}`,
      AUDITGATE_CHECKPOINT_INTERVAL_MS: '86400000',
      TEST_UPSTREAM_KEY: upstreamSecret,
      ...(tdb.databaseUrl ? { DATABASE_URL: tdb.databaseUrl } : {}),
    };
    const service = await startService(loadConfig(env, tdb.dir), {
      logger: createLogger(process.env.AUDITGATE_TEST_LOG ?? 'silent'),
    });
    cleanups.unshift(() => service.stop());
    return {
      tdb,
      idp,
      upstream,
      service,
      url,
      upstreamSecret,
      resource: (target: string) => `${url}/mcp/${target}`,
      async records() {
        const head = await service.log.head();
        const out: AuditRecord[] = [];
        for await (const e of service.log.entries(0, head.size))
          out.push(JSON.parse(e.data.toString('utf8')) as AuditRecord);
        return out;
      },
      async cleanup() {
        for (const c of cleanups) await c().catch(() => {});
      },
    } satisfies IdentityService;
  };
  for (let attempt = 1; ; attempt++) {
    try {
      return await run();
    } catch (err) {
      for (const c of cleanups.splice(0)) await c().catch(() => {});
      // The port was free when chosen, but something (another test process, an outgoing
      // connection's local port) took it before the service listened: choose again.
      if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE' && attempt < 3) continue;
      throw err;
    }
  }
}
