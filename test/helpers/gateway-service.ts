// The whole service with the MCP gateway, started as `npm start` starts it (server/service.ts),
// on a fresh database and data dir, with a configuration file listing the targets a test needs,
// real API keys, and SDK clients. Also: the reference server over Streamable HTTP on a free port.
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { ClientCapabilities } from '@modelcontextprotocol/sdk/types.js';
import { loadConfig } from '../../server/config.ts';
import { createLogger } from '../../server/logger.ts';
import { startService, type Service } from '../../server/service.ts';
import { ApiKeyStore } from '../../server/auth/api-keys.ts';
import { everythingServerPath } from '../../server/targets.ts';
import type { AuditRecord } from '../../gateway/audit-record.ts';
import { createTestDb, type DbKind, type TestDb } from './db.ts';

export interface GatewayService {
  tdb: TestDb;
  service: Service;
  url: string;
  env: Record<string, string>;
  /** An API key for subject "agent-a" (role agent). */
  key: string;
  /** Creates another key (another identity unless the subject is reused). */
  newKey(subject: string, roles?: string[]): Promise<{ key: string; id: string }>;
  endpoint(target: string): string;
  /** An SDK client connected through the gateway. */
  connect(target: string, opts?: { key?: string; capabilities?: ClientCapabilities; client?: Client }): Promise<{ client: Client; transport: StreamableHTTPClientTransport }>;
  /** All log entries, parsed, in log order. */
  records(): Promise<AuditRecord[]>;
  stop(): Promise<void>;
  start(): Promise<void>;
  cleanup(): Promise<void>;
}

export interface GatewayServiceOptions {
  kind?: DbKind;
  /** The `targets:` mapping of the configuration file; omitted: no file (the demo target). */
  targets?: Record<string, unknown>;
  gateway?: Record<string, unknown>;
  /** Other top-level sections of the configuration file (policies, identity…). */
  extra?: Record<string, unknown>;
  env?: Record<string, string>;
  /** Rewrites DATABASE_URL (e.g. to go through a proxy that a test can stop). */
  rewriteDatabaseUrl?: (url: string) => string;
}

export async function startGatewayService(opts: GatewayServiceOptions = {}): Promise<GatewayService> {
  const tdb = await createTestDb(opts.kind ?? 'sqlite', { migrate: false });
  const env: Record<string, string> = {
    HOST: '127.0.0.1',
    PORT: '0',
    AUDITGATE_DATA_DIR: tdb.dir,
    AUDITGATE_LOG_ORIGIN: `auditgate.test/gw-${randomBytes(4).toString('hex')}`,
    AUDITGATE_CHECKPOINT_INTERVAL_MS: '86400000',
    LOG_LEVEL: 'silent',
    ...(tdb.databaseUrl ? { DATABASE_URL: opts.rewriteDatabaseUrl ? opts.rewriteDatabaseUrl(tdb.databaseUrl) : tdb.databaseUrl } : {}),
    ...opts.env,
  };
  if (opts.targets || opts.gateway || opts.extra) {
    const file = join(tdb.dir, 'auditgate.config.json');
    writeFileSync(
      file,
      JSON.stringify({ ...opts.extra, ...(opts.targets ? { targets: opts.targets } : {}), ...(opts.gateway ? { gateway: opts.gateway } : {}) }),
    );
    env.AUDITGATE_CONFIG = file;
  }
  const clients: Client[] = [];
  const boot = () => startService(loadConfig(env, tdb.dir), { logger: createLogger(process.env.AUDITGATE_TEST_LOG ?? 'silent') });
  let service: Service;
  try {
    service = await boot();
  } catch (err) {
    await tdb.cleanup();
    throw err;
  }
  const h: GatewayService = {
    tdb,
    service,
    url: service.url,
    env,
    key: '',
    async newKey(subject, roles = ['agent']) {
      const { key, record } = await new ApiKeyStore(h.service.db).create({ subject, roles, createdBy: 'test' });
      return { key, id: record.id };
    },
    endpoint: (target) => `${h.url}/mcp/${target}`,
    async connect(target, o = {}) {
      const client = o.client ?? new Client({ name: 'gateway-test', version: '1.0.0' }, { capabilities: o.capabilities ?? {} });
      const transport = new StreamableHTTPClientTransport(new URL(h.endpoint(target)), {
        requestInit: { headers: { Authorization: `Bearer ${o.key ?? h.key}` } },
      });
      await client.connect(transport);
      clients.push(client);
      return { client, transport };
    },
    async records() {
      const head = await h.service.log.head();
      const out: AuditRecord[] = [];
      for await (const e of h.service.log.entries(0, head.size)) out.push(JSON.parse(e.data.toString('utf8')) as AuditRecord);
      return out;
    },
    async stop() {
      await Promise.allSettled(clients.splice(0).map((c) => c.close()));
      await h.service.stop();
    },
    async start() {
      h.service = await boot();
      h.url = h.service.url;
    },
    async cleanup() {
      await h.stop().catch(() => {});
      await tdb.cleanup();
    },
  };
  h.key = (await h.newKey('agent-a')).key;
  return h;
}

/** A free loopback port (the reference server binds all interfaces and takes its port from PORT). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface RunningUpstream {
  url: string;
  port: number;
  child: ChildProcess;
  stop(): Promise<void>;
}

const EXIT_WITH_PARENT = new URL('./exit-with-parent.mjs', import.meta.url).href;
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

/** server-everything's Streamable HTTP transport on a free port (path /mcp). */
export async function startEverythingHttp(port?: number): Promise<RunningUpstream> {
  for (let attempt = 0; ; attempt++) {
    const p = port ?? (await freePort());
    try {
      return await spawnEverything(p);
    } catch (err) {
      if (port !== undefined || attempt >= 3) throw err;
    }
  }
}

function spawnEverything(port: number): Promise<RunningUpstream> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', EXIT_WITH_PARENT, everythingServerPath(), 'streamableHttp'], {
      env: { PATH: process.env.PATH ?? '', PORT: String(port) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    live.add(child);
    let err = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`server-everything did not start: ${err}`));
    }, 20_000);
    child.stdout.resume();
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      err += d;
      if (err.includes(`listening on port ${port}`)) {
        clearTimeout(timer);
        const stop = () =>
          new Promise<void>((r) => {
            if (child.exitCode !== null || child.signalCode !== null) return r();
            child.once('exit', () => r());
            child.kill('SIGKILL');
          });
        resolve({ url: `http://127.0.0.1:${port}/mcp`, port, child, stop });
      }
    });
    child.once('exit', (code) => {
      live.delete(child);
      clearTimeout(timer);
      reject(new Error(`server-everything exited (${code}): ${err}`));
    });
  });
}

/** Records of MCP traffic only (drops log.start and other service events), for order assertions. */
export function mcpRecords(all: AuditRecord[], session?: string): AuditRecord[] {
  return all.filter((r) => r.event.startsWith('mcp.') && (session === undefined || r.mcp?.session === session));
}
