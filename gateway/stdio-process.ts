// One stdio upstream process: newline-delimited JSON on stdin/stdout, stderr as logs. The command
// comes only from server-side configuration. The child gets a minimal environment so the
// gateway's own secrets (database URL, signing keys, upstream tokens of other targets) stay out.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { EventEmitter } from 'node:events';
import type { GatewayLogger } from './logger.ts';

export interface StdioSpec {
  command: string;
  args: string[];
  /** Extra environment for the child (resolved by the server from its config). */
  env: Record<string, string>;
  cwd?: string;
}

export interface StdioShutdown {
  /** After closing stdin, how long to wait for the child to exit by itself. */
  graceMs: number;
  /** After SIGTERM, how long to wait before SIGKILL. */
  termMs: number;
}

/** Variables a typical program needs to run at all; nothing else of the gateway's is passed on. */
const INHERITED_ENV = ['PATH', 'HOME', 'LANG', 'LC_ALL', 'TZ', 'TMPDIR', 'TEMP', 'TMP', 'SYSTEMROOT', 'USER'];

export function minimalEnv(extra: Record<string, string>, from: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const env: Record<string, string> = {};
  for (const k of INHERITED_ENV) {
    const v = from[k];
    if (v !== undefined) env[k] = v;
  }
  return { ...env, ...extra };
}

// Children still running when the gateway's process exits (normally or on an uncaught error) are
// killed, so an upstream never outlives the gateway that spawned it.
const liveChildren = new Set<ChildProcessWithoutNullStreams>();
let exitHookInstalled = false;
function track(child: ChildProcessWithoutNullStreams): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const c of liveChildren) c.kill('SIGKILL');
    });
  }
  liveChildren.add(child);
  child.once('exit', () => liveChildren.delete(child));
}

export class StdioWriteError extends Error {
  override name = 'StdioWriteError';
}

/**
 * Events: 'line' (one stdout line, without its newline), 'exit' (code, signal), 'error' (spawn failure).
 * Lines are split without copying chunks that hold no newline, so multi-megabyte lines stay linear.
 */
export class StdioProcess extends EventEmitter {
  readonly child: ChildProcessWithoutNullStreams;
  readonly pid: number | undefined;
  private pending: Buffer[] = [];
  private exited = false;
  private readonly exitPromise: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private stderrTail = '';

  constructor(
    readonly spec: StdioSpec,
    private readonly logger: GatewayLogger,
    readonly label: string,
  ) {
    super();
    this.child = spawn(spec.command, spec.args, {
      env: minimalEnv(spec.env),
      cwd: spec.cwd,
      stdio: ['pipe', 'pipe', 'pipe'],
      windowsHide: true,
    });
    this.pid = this.child.pid;
    track(this.child);
    this.exitPromise = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.exited = true;
        resolve({ code, signal });
      });
      this.child.once('error', (err) => {
        if (this.child.pid === undefined) {
          this.exited = true;
          resolve({ code: null, signal: null });
        }
        this.emit('spawn-error', err);
      });
    });
    // 'exit' fires before stdout is drained; wait for 'close' so the last lines are not lost.
    this.child.once('close', (code, signal) => this.emit('exit', code, signal));
    this.child.stdout.on('data', (chunk: Buffer) => this.onStdout(chunk));
    this.child.stderr.setEncoding('utf8');
    this.child.stderr.on('data', (text: string) => this.onStderr(text));
    // EPIPE on a dead child surfaces through write callbacks; keep it from becoming uncaught.
    this.child.stdin.on('error', (err) => this.logger.debug({ err: err.message, target: label }, 'stdio stdin error'));
  }

  get running(): boolean {
    return !this.exited;
  }

  /** Stops reading stdout (backpressure: the child blocks on write) until resume(). */
  pause(): void {
    this.child.stdout.pause();
  }

  resume(): void {
    this.child.stdout.resume();
  }

  /** Writes one message line; resolves when it is handed to the pipe (waits for drain). */
  send(line: string): Promise<void> {
    if (line.includes('\n') || line.includes('\r')) {
      return Promise.reject(new StdioWriteError('a stdio message must not contain a line break'));
    }
    if (this.exited || this.child.stdin.destroyed || this.child.stdin.writableEnded) {
      return Promise.reject(new StdioWriteError('upstream process is not running'));
    }
    return new Promise((resolve, reject) => {
      const ok = this.child.stdin.write(`${line}\n`, (err) => {
        if (err) reject(new StdioWriteError(`writing to upstream process failed: ${err.message}`));
        else if (ok) resolve();
      });
      if (!ok) this.child.stdin.once('drain', () => resolve());
    });
  }

  /** close stdin → wait → SIGTERM → wait → SIGKILL. Resolves once the child is gone. */
  async shutdown(opts: StdioShutdown): Promise<void> {
    if (this.exited) return;
    this.child.stdin.end();
    if (await this.waitExit(opts.graceMs)) return;
    this.child.kill('SIGTERM');
    if (await this.waitExit(opts.termMs)) return;
    this.child.kill('SIGKILL');
    await this.exitPromise;
  }

  exit(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    return this.exitPromise;
  }

  private async waitExit(ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), ms);
    });
    const done = await Promise.race([this.exitPromise.then(() => true as const), timeout]);
    clearTimeout(timer);
    return done;
  }

  private onStdout(chunk: Buffer): void {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      if (nl < 0) break;
      let line: Buffer;
      if (this.pending.length) {
        this.pending.push(chunk.subarray(start, nl));
        line = Buffer.concat(this.pending);
        this.pending = [];
      } else {
        line = chunk.subarray(start, nl);
      }
      start = nl + 1;
      let text = line.toString('utf8');
      if (text.endsWith('\r')) text = text.slice(0, -1);
      if (text.trim() !== '') this.emit('line', text);
    }
    if (start < chunk.length) this.pending.push(chunk.subarray(start));
  }

  private onStderr(text: string): void {
    // stderr is the child's log, not an error channel: pass it to our log, line by line.
    const lines = (this.stderrTail + text).split('\n');
    this.stderrTail = lines.pop() ?? '';
    if (this.stderrTail.length > 64 * 1024) this.stderrTail = '';
    for (const l of lines) {
      if (l.trim()) this.logger.debug({ target: this.label, pid: this.pid, stderr: l.slice(0, 2000) }, 'upstream stderr');
    }
  }
}
