// Runs the @modelcontextprotocol/conformance server scenarios from tests, and starts the conformance
// fixture server they are proven against.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  missingScenarioResult,
  normaliseScenario,
  type NormaliseContext,
  type RawCheck,
  type ScenarioResult,
} from './conformance-normalise.ts';

export { diffConformance, type NormalisedCheck, type ScenarioResult } from './conformance-normalise.ts';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

export const REPO_ROOT = join(here, '..', '..');
export const FIXTURE_PATH = join(REPO_ROOT, 'test', 'fixtures', 'conformance-server.ts');
export const AUTH_PRELOAD_PATH = join(here, 'conformance-auth-preload.mjs');
/** Environment variable the preload reads: a JSON object of headers to add to every request. */
export const HEADERS_ENV = 'AUDITGATE_TEST_HEADERS';

const conformanceDir = dirname(require.resolve('@modelcontextprotocol/conformance/package.json'));
const conformancePackage = require('@modelcontextprotocol/conformance/package.json') as {
  bin: Record<string, string>;
};
const conformanceBinEntry = conformancePackage.bin['conformance'];
if (conformanceBinEntry === undefined)
  throw new Error('@modelcontextprotocol/conformance has no "conformance" bin');
/** The suite's CLI (dist/index.js in 0.1.13). */
export const CONFORMANCE_BIN = join(conformanceDir, conformanceBinEntry);

// An absolute loader URL makes the fixture command independent of the cwd it is started from.
const TSX_LOADER = import.meta.resolve('tsx');

const DEFAULT_TIMEOUT_MS = 60_000;
const MAX_PARALLEL_PROCESSES = 4;
const RESULT_DIR = /^server-(.+)-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z$/;

// Children still running when the test process exits are killed, so a failed test cannot leak them.
const liveChildren = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of liveChildren) child.kill('SIGKILL');
});

interface ProcessOutcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  stdout: string;
  stderr: string;
}

function tail(text: string, max = 4000): string {
  return text.length > max ? `…${text.slice(-max)}` : text;
}

function runProcess(args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<ProcessOutcome> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    liveChildren.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout = tail(stdout + chunk, 64_000)));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr = tail(stderr + chunk, 64_000)));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      liveChildren.delete(child);
      reject(error);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      liveChildren.delete(child);
      resolve({ code, signal, timedOut, stdout, stderr });
    });
  });
}

let scenarioList: Promise<string[]> | undefined;

/** Server scenario names of the installed suite, in the order `--suite all` runs them. */
export function listServerScenarios(): Promise<string[]> {
  scenarioList ??= runProcess([CONFORMANCE_BIN, 'list', '--server'], process.env, DEFAULT_TIMEOUT_MS).then(
    (outcome) => {
      if (outcome.code !== 0) throw new Error(`conformance list failed: ${tail(outcome.stderr)}`);
      const names = [...outcome.stdout.matchAll(/^\s+- (\S+)\s*$/gm)].map((m) => m[1] as string);
      if (names.length === 0)
        throw new Error(`conformance list printed no scenarios: ${tail(outcome.stdout)}`);
      return names;
    },
  );
  return scenarioList;
}

async function readResults(outDir: string): Promise<Map<string, RawCheck[]>> {
  const found = new Map<string, RawCheck[]>();
  // Names end in an ISO time, so sorting puts a scenario's latest run last.
  for (const entry of (await readdir(outDir)).sort()) {
    const scenario = RESULT_DIR.exec(entry)?.[1];
    if (scenario === undefined) continue;
    const text = await readFile(join(outDir, entry, 'checks.json'), 'utf8').catch(() => undefined);
    if (text !== undefined) found.set(scenario, JSON.parse(text) as RawCheck[]);
  }
  return found;
}

function describeFailure(outcome: ProcessOutcome, timeoutMs: number): string {
  if (outcome.timedOut) return `conformance process killed after ${timeoutMs} ms`;
  return `conformance process ended (code ${outcome.code}, signal ${outcome.signal}) without a result: ${tail(outcome.stderr || outcome.stdout, 2000)}`;
}

export interface RunConformanceOptions {
  /** Scenario names to run; default: every server scenario (`--suite all`, pending ones included). */
  scenarios?: string[];
  /** Headers added to every request the suite makes (through conformance-auth-preload.mjs). */
  headers?: Record<string, string>;
  /** Per conformance process; default 60 s. */
  timeoutMs?: number;
}

/**
 * Runs the suite's server scenarios against `url` and returns one normalised result per scenario. The
 * whole suite runs in one process (about 2 s against the fixture); named scenarios run one process each,
 * a few at a time, since the CLI takes one --scenario per run.
 */
export async function runConformance(
  url: string,
  opts: RunConformanceOptions = {},
): Promise<Map<string, ScenarioResult>> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env[HEADERS_ENV];
  if (opts.headers !== undefined) env[HEADERS_ENV] = JSON.stringify(opts.headers);
  const context: NormaliseContext = { url, secrets: Object.values(opts.headers ?? {}) };
  // The preload is loaded even without headers so that a direct run and a gateway run differ only in env.
  const baseArgs = ['--import', AUTH_PRELOAD_PATH, CONFORMANCE_BIN, 'server', '--url', url];

  const outDir = await mkdtemp(join(tmpdir(), 'auditgate-conformance-'));
  try {
    const failures = new Map<string, string>();
    let expected: string[];
    if (opts.scenarios === undefined) {
      expected = await listServerScenarios();
      const outcome = await runProcess([...baseArgs, '--suite', 'all', '-o', outDir], env, timeoutMs);
      const reason = describeFailure(outcome, timeoutMs);
      for (const name of expected) failures.set(name, reason);
    } else {
      expected = [...opts.scenarios];
      const queue = [...expected];
      const worker = async (): Promise<void> => {
        for (let name = queue.shift(); name !== undefined; name = queue.shift()) {
          const outcome = await runProcess([...baseArgs, '--scenario', name, '-o', outDir], env, timeoutMs);
          failures.set(name, describeFailure(outcome, timeoutMs));
        }
      };
      await Promise.all(Array.from({ length: Math.min(MAX_PARALLEL_PROCESSES, queue.length) }, worker));
    }

    const raw = await readResults(outDir);
    const results = new Map<string, ScenarioResult>();
    for (const name of expected) {
      const checks = raw.get(name);
      results.set(
        name,
        checks === undefined
          ? missingScenarioResult(name, failures.get(name) ?? 'no result', context)
          : normaliseScenario(name, checks, context),
      );
    }
    return results;
  } finally {
    await rm(outDir, { recursive: true, force: true });
  }
}

export interface RunningFixture {
  url: string;
  close(): Promise<void>;
}

/** Command line of the fixture in stdio mode, for the gateway's stdio targets (absolute paths, any cwd). */
export function fixtureStdioCommand(): { command: string; args: string[] } {
  return { command: process.execPath, args: ['--import', TSX_LOADER, FIXTURE_PATH, '--stdio'] };
}

/** Starts the fixture as its own process on a free loopback port. */
export async function startFixture(mode: 'http'): Promise<RunningFixture> {
  if (mode !== 'http') throw new Error(`startFixture: unsupported mode ${String(mode)}`);
  const child = spawn(process.execPath, ['--import', TSX_LOADER, FIXTURE_PATH, '--http', '--port', '0'], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  liveChildren.add(child);
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr = tail(stderr + chunk, 16_000)));
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      liveChildren.delete(child);
      resolve();
    }),
  );

  const url = await new Promise<string>((resolve, reject) => {
    let stdout = '';
    const timer = setTimeout(() => fail(new Error(`fixture did not start in time: ${tail(stderr)}`)), 30_000);
    function fail(error: Error): void {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(error);
    }
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      const match = /^LISTENING (\S+)$/m.exec(stdout);
      if (match?.[1] !== undefined) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    child.once('exit', (code, signal) =>
      fail(new Error(`fixture exited (${code ?? signal}): ${tail(stderr)}`)),
    );
  });

  return {
    url,
    async close() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const killTimer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(killTimer);
    },
  };
}
