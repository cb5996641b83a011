// What the host gives the gateway: checked targets (credentials already resolved from the
// server's environment), the audit sink, the authenticator and the limits.
import type { AuditSink, Authenticator, Authorizer } from './types.ts';
import type { MaskHook } from './record.ts';
import type { GatewayLogger } from './logger.ts';
import type { StdioShutdown } from './stdio-process.ts';

interface TargetCommon {
  name: string;
  /** How long to wait for an upstream answer (HTTP response headers, a POST stream going idle, a stdio response). */
  timeoutMs: number;
  /**
   * Legacy sessions open at once (default DEFAULT_MAX_SESSIONS): each stdio session is a process on
   * this host, so without a bound one credential could start them until the host runs out.
   */
  maxSessions?: number;
  /** Of those, how many one identity may hold (default: all), so that one cannot crowd out the others. */
  maxSessionsPerIdentity?: number;
}

export const DEFAULT_MAX_SESSIONS = { stdio: 64, http: 4_096 } as const;

export interface HttpTargetSpec extends TargetCommon {
  kind: 'http';
  url: string;
  /** The upstream's own credential headers, values resolved by the server. Never logged or recorded. */
  headers: Record<string, string>;
}

export interface StdioTargetSpec extends TargetCommon {
  kind: 'stdio';
  command: string;
  args: string[];
  env: Record<string, string>;
  cwd?: string;
}

export type TargetSpec = HttpTargetSpec | StdioTargetSpec;

export interface GatewayOptions {
  targets: TargetSpec[];
  sink: AuditSink;
  authenticator: Authenticator;
  /** Per-tool policy: decides each client request and filters list results. None: everything allowed. */
  authorizer?: Authorizer;
  /** Public base URL of the gateway: the OAuth resource of a target is `${publicUrl}/mcp/${name}`. */
  publicUrl: string;
  instance: string;
  version: string;
  mask?: MaskHook;
  logger?: GatewayLogger;
  /** POST body limit in bytes (413 above it). */
  maxBodyBytes?: number;
  /** Largest JSON (non-stream) upstream response the gateway will record and relay. */
  maxResponseBytes?: number;
  /** Browser origins allowed besides the gateway's own (and loopback origins on a loopback gateway). */
  allowedOrigins?: string[];
  /** Legacy sessions unused this long (no request, no open stream) are ended. */
  sessionIdleMs?: number;
  /** How long an upstream message waits for a failing audit store before its stream is given up. */
  auditRetryMs?: number;
  stdioShutdown?: StdioShutdown;
  /** stdio restarts allowed per session within a minute before the session is ended instead. */
  stdioMaxRestarts?: number;
}

export interface ResolvedOptions extends Required<Omit<GatewayOptions, 'mask' | 'logger' | 'authorizer'>> {
  mask?: MaskHook;
  authorizer?: Authorizer;
  logger: GatewayLogger;
}

export const DEFAULTS = {
  maxBodyBytes: 4 * 1024 * 1024,
  maxResponseBytes: 64 * 1024 * 1024,
  sessionIdleMs: 30 * 60_000,
  auditRetryMs: 30_000,
  stdioShutdown: { graceMs: 2_000, termMs: 2_000 },
  stdioMaxRestarts: 3,
  timeoutMs: 60_000,
};
