// The configuration file (AUDITGATE_CONFIG, default ./auditgate.config.yaml when present) and its
// gateway part: the MCP targets and the gateway's limits. The file is read once, by
// readConfigDocument; each section is validated by its owner (identity, policies, targets) with
// messages that name the key. Upstream credentials are never written in the file: a header or
// child environment value names an environment variable that holds it.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { resolve, extname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import type { Config } from './config.ts';
import { ConfigError } from './errors.ts';
import { parseDuration } from './auth/identity-config.ts';
import type { TargetSpec } from '../gateway/options.ts';

export const DEFAULT_CONFIG_FILE = 'auditgate.config.yaml';

export interface ConfigDocument {
  /** The file read, or undefined when there is none (defaults apply). */
  path?: string;
  doc: Record<string, unknown>;
}

/** Reads and parses the configuration file (YAML or JSON); no file at the default path is fine. */
export function readConfigDocument(config: Pick<Config, 'configFile'>, cwd = process.cwd()): ConfigDocument {
  const path = config.configFile ?? resolve(cwd, DEFAULT_CONFIG_FILE);
  if (!config.configFile && !existsSync(path)) return { doc: {} };
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`AUDITGATE_CONFIG: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = extname(path).toLowerCase() === '.json' ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new ConfigError(`${path}: not valid ${extname(path).toLowerCase() === '.json' ? 'JSON' : 'YAML'}: ${(err as Error).message.split('\n')[0]}`);
  }
  if (doc === null || doc === undefined) return { path, doc: {} };
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigError(`${path}: the top level must be a mapping`);
  // A misspelt section (say `polices:`) must not be ignored: that would silently drop the rules.
  const unknown = Object.keys(doc).filter((k) => !CONFIG_SECTIONS.includes(k));
  if (unknown.length) {
    throw new ConfigError(
      `${path}: unknown top-level key${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => JSON.stringify(k)).join(', ')} (expected: ${CONFIG_SECTIONS.join(', ')})`,
    );
  }
  return { path, doc: doc as Record<string, unknown> };
}

/** The sections of the configuration file; each is validated by the module that owns it. */
export const CONFIG_SECTIONS = ['targets', 'gateway', 'identity', 'rate_limits', 'policies', 'reports'];

const envRef = z
  .object({
    env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name'),
    prefix: z.string().optional(),
  })
  .strict();

const valueSpec = z.union([z.string(), envRef]);
const duration = z.union([z.string(), z.number()]);

const httpTarget = z
  .object({
    url: z.string(),
    headers: z.record(z.string(), valueSpec).default({}),
    timeout: duration.optional(),
    max_sessions: z.number().int().min(1).max(1_000_000).optional(),
    max_sessions_per_identity: z.number().int().min(1).max(1_000_000).optional(),
  })
  .strict();

const stdioTarget = z
  .object({
    command: z.string().min(1, 'must not be empty'),
    args: z.array(z.string()).default([]),
    env: z.record(z.string(), valueSpec).default({}),
    cwd: z.string().optional(),
    timeout: duration.optional(),
    max_sessions: z.number().int().min(1).max(100_000).optional(),
    max_sessions_per_identity: z.number().int().min(1).max(100_000).optional(),
  })
  .strict();

const gatewaySection = z
  .object({
    max_body_bytes: z.number().int().min(1024).max(1024 * 1024 * 1024).optional(),
    allowed_origins: z.array(z.string()).optional(),
    session_idle: duration.optional(),
    upstream_timeout: duration.optional(),
    audit_retry: duration.optional(),
  })
  .strict();

export interface GatewaySettings {
  targets: TargetSpec[];
  /** True when no file configured targets and the demo target is served. */
  demo: boolean;
  maxBodyBytes?: number;
  allowedOrigins?: string[];
  sessionIdleMs?: number;
  auditRetryMs?: number;
}

const TARGET_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** Headers that carry credentials: their values must come from the environment, not the file. */
const CREDENTIAL_HEADER = /^(authorization|proxy-authorization|cookie)$|key|token|secret|password/i;
/** Headers the gateway sets itself per request. */
const RESERVED_HEADERS = new Set(['host', 'content-length', 'content-type', 'accept', 'mcp-session-id', 'mcp-protocol-version', 'last-event-id', 'connection', 'transfer-encoding']);
const DEFAULT_TIMEOUT_MS = 60_000;

function issue(key: string, err: z.ZodError): never {
  const first = err.issues[0]!;
  const path = [key, ...first.path.map(String)].filter(Boolean).join('.');
  throw new ConfigError(`${path}: ${first.message}`);
}

function resolveValue(v: z.infer<typeof valueSpec>, key: string, env: Record<string, string | undefined>): string {
  if (typeof v === 'string') return v;
  const value = env[v.env];
  if (value === undefined || value === '') throw new ConfigError(`${key}: environment variable ${v.env} is not set`);
  return `${v.prefix ?? ''}${value}`;
}

/** Path of the reference server's entry point, from the installed package (no network, no npx). */
export function everythingServerPath(): string {
  const require = createRequire(import.meta.url);
  const pkg = require.resolve('@modelcontextprotocol/server-everything/package.json');
  return resolve(pkg, '..', 'dist', 'index.js');
}

export function demoTarget(): TargetSpec {
  return {
    name: 'everything',
    kind: 'stdio',
    command: process.execPath,
    args: [everythingServerPath(), 'stdio'],
    env: {},
    timeoutMs: DEFAULT_TIMEOUT_MS,
  };
}

/** Validates the `targets:` and `gateway:` sections and resolves credentials from the environment. */
export function parseGatewayConfig(
  cfg: ConfigDocument,
  env: Record<string, string | undefined> = process.env,
): GatewaySettings {
  const doc = cfg.doc;
  const g = gatewaySection.safeParse(doc.gateway ?? {});
  if (!g.success) issue('gateway', g.error);
  const defaultTimeout = g.data.upstream_timeout !== undefined ? parseDuration(g.data.upstream_timeout, 'gateway.upstream_timeout') : DEFAULT_TIMEOUT_MS;
  const settings: GatewaySettings = { targets: [], demo: false };
  if (g.data.max_body_bytes !== undefined) settings.maxBodyBytes = g.data.max_body_bytes;
  if (g.data.session_idle !== undefined) settings.sessionIdleMs = parseDuration(g.data.session_idle, 'gateway.session_idle');
  if (g.data.audit_retry !== undefined) settings.auditRetryMs = parseDuration(g.data.audit_retry, 'gateway.audit_retry');
  if (g.data.allowed_origins) {
    settings.allowedOrigins = g.data.allowed_origins.map((o, i) => {
      try {
        const u = new URL(o);
        if (u.origin === 'null' || u.origin !== o.replace(/\/+$/, '')) throw new Error();
        return u.origin;
      } catch {
        throw new ConfigError(`gateway.allowed_origins.${i}: ${JSON.stringify(o)} is not an origin like https://app.example.com`);
      }
    });
  }

  if (doc.targets === undefined) {
    if (cfg.path) throw new ConfigError(`targets: ${cfg.path} configures no targets (add a targets: mapping)`);
    settings.targets = [demoTarget()];
    settings.demo = true;
    return settings;
  }
  if (typeof doc.targets !== 'object' || doc.targets === null || Array.isArray(doc.targets)) {
    throw new ConfigError('targets: must be a mapping of target name → { url | command }');
  }
  for (const [name, raw] of Object.entries(doc.targets as Record<string, unknown>)) {
    const key = `targets.${name}`;
    if (!TARGET_NAME.test(name)) {
      throw new ConfigError(`${key}: a target name is letters, digits, '.', '_' or '-' (at most 64), starting with a letter or digit`);
    }
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ConfigError(`${key}: must be a mapping with url or command`);
    const r = raw as Record<string, unknown>;
    if ('url' in r && 'command' in r) throw new ConfigError(`${key}: set either url (HTTP upstream) or command (stdio upstream), not both`);
    if (!('url' in r) && !('command' in r)) throw new ConfigError(`${key}: needs url (HTTP upstream) or command (stdio upstream)`);
    if ('url' in r) {
      const p = httpTarget.safeParse(r);
      if (!p.success) issue(key, p.error);
      let u: URL;
      try {
        u = new URL(p.data.url);
      } catch {
        throw new ConfigError(`${key}.url: ${JSON.stringify(p.data.url)} is not a URL`);
      }
      if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new ConfigError(`${key}.url: must be http:// or https://`);
      if (u.username || u.password) throw new ConfigError(`${key}.url: put credentials in headers (from the environment), not in the URL`);
      const headers: Record<string, string> = {};
      for (const [h, v] of Object.entries(p.data.headers)) {
        const hk = `${key}.headers.${h}`;
        if (!/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/.test(h)) throw new ConfigError(`${hk}: not a valid header name`);
        if (RESERVED_HEADERS.has(h.toLowerCase())) throw new ConfigError(`${hk}: the gateway sets this header itself`);
        if (typeof v === 'string' && CREDENTIAL_HEADER.test(h)) {
          throw new ConfigError(`${hk}: credentials must come from the environment: use { env: VARIABLE, prefix: "Bearer " }`);
        }
        const value = resolveValue(v, hk, env);
        // eslint-disable-next-line no-control-regex
        if (/[\r\n\u0000]/.test(value)) throw new ConfigError(`${hk}: the value contains a line break or NUL`);
        headers[h.toLowerCase()] = value;
      }
      settings.targets.push({
        name,
        kind: 'http',
        url: u.toString(),
        headers,
        timeoutMs: p.data.timeout !== undefined ? parseDuration(p.data.timeout, `${key}.timeout`) : defaultTimeout,
        ...(p.data.max_sessions !== undefined ? { maxSessions: p.data.max_sessions } : {}),
        ...(p.data.max_sessions_per_identity !== undefined ? { maxSessionsPerIdentity: p.data.max_sessions_per_identity } : {}),
      });
    } else {
      const p = stdioTarget.safeParse(r);
      if (!p.success) issue(key, p.error);
      const childEnv: Record<string, string> = {};
      for (const [k, v] of Object.entries(p.data.env)) {
        if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new ConfigError(`${key}.env.${k}: not a valid environment variable name`);
        childEnv[k] = resolveValue(v, `${key}.env.${k}`, env);
      }
      settings.targets.push({
        name,
        kind: 'stdio',
        command: p.data.command,
        args: p.data.args,
        env: childEnv,
        ...(p.data.cwd ? { cwd: resolve(cfg.path ? resolve(cfg.path, '..') : process.cwd(), p.data.cwd) } : {}),
        timeoutMs: p.data.timeout !== undefined ? parseDuration(p.data.timeout, `${key}.timeout`) : defaultTimeout,
        ...(p.data.max_sessions !== undefined ? { maxSessions: p.data.max_sessions } : {}),
        ...(p.data.max_sessions_per_identity !== undefined ? { maxSessionsPerIdentity: p.data.max_sessions_per_identity } : {}),
      });
    }
  }
  if (settings.targets.length === 0) throw new ConfigError('targets: at least one target is required');
  return settings;
}
