// Configuration from the environment, checked once at start-up (hapi's habit): every later module
// receives a typed, validated object and never reads process.env itself.
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { ConfigError } from './errors.ts';
import { intVar, type Env } from './env-vars.ts';

export interface LogConfig {
  /** C2SP checkpoint origin, e.g. "auditgate.example.com/log". */
  origin: string;
  /** Signer key file (C2SP PRIVATE+KEY text); default <dataDir>/log-key, generated on first start. */
  keyFile: string;
  /** Group commit: at most this many entries per database transaction. */
  batchMaxSize: number;
  /** Group commit: wait at most this long for more entries before committing a batch. */
  batchMaxDelayMs: number;
  /** Sign a new checkpoint at most this often, when the tree grew. */
  checkpointIntervalMs: number;
}

export interface Config {
  host: string;
  port: number;
  dataDir: string;
  /** PostgreSQL connection string; SQLite under dataDir when absent. */
  databaseUrl?: string;
  /** Path to the YAML/JSON file with targets and policies (AUDITGATE_CONFIG). */
  configFile?: string;
  /** Identifies this process in audit records. */
  instanceId: string;
  /** Public base URL of this gateway (resource identifier for OAuth audiences). */
  publicUrl: string;
  logLevel: string;
  log: LogConfig;
}

/** C2SP note key names: non-empty, no '+', no whitespace or control characters. */
function checkOrigin(origin: string): string {
  // eslint-disable-next-line no-control-regex
  if (origin === '' || /[+\s\u0000-\u001f\u007f]/.test(origin)) {
    throw new ConfigError(
      `AUDITGATE_LOG_ORIGIN: ${JSON.stringify(origin)} is not a valid checkpoint origin (no spaces, '+' or control characters)`,
    );
  }
  return origin;
}

export function loadConfig(env: Env = process.env, cwd = process.cwd()): Config {
  const host = env.HOST || '127.0.0.1';
  const port = intVar(env, 'PORT', 8080, 0, 65535);
  const dataDir = resolve(cwd, env.AUDITGATE_DATA_DIR || './data');
  const databaseUrl = env.DATABASE_URL || undefined;
  if (databaseUrl && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    throw new ConfigError('DATABASE_URL: only postgres:// or postgresql:// URLs are supported');
  }
  const publicUrl = (env.AUDITGATE_PUBLIC_URL || `http://${host.includes(':') ? `[${host}]` : host}:${port}`).replace(
    /\/+$/,
    '',
  );
  try {
    new URL(publicUrl);
  } catch {
    throw new ConfigError(`AUDITGATE_PUBLIC_URL: ${JSON.stringify(publicUrl)} is not a URL`);
  }
  const origin = checkOrigin(env.AUDITGATE_LOG_ORIGIN || `${hostname()}/auditgate`);
  return {
    host,
    port,
    dataDir,
    databaseUrl,
    configFile: env.AUDITGATE_CONFIG ? resolve(cwd, env.AUDITGATE_CONFIG) : undefined,
    instanceId: env.AUDITGATE_INSTANCE_ID || `${hostname()}:${process.pid}`,
    publicUrl,
    logLevel: env.LOG_LEVEL || 'info',
    log: {
      origin,
      keyFile: resolve(cwd, env.AUDITGATE_LOG_KEY_FILE || resolve(dataDir, 'log-key')),
      batchMaxSize: intVar(env, 'AUDITGATE_LOG_BATCH_SIZE', 256, 1, 10_000),
      batchMaxDelayMs: intVar(env, 'AUDITGATE_LOG_BATCH_DELAY_MS', 0, 0, 10_000),
      checkpointIntervalMs: intVar(env, 'AUDITGATE_CHECKPOINT_INTERVAL_MS', 5_000, 100, 86_400_000),
    },
  };
}
