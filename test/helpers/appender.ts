// Runs test/fixtures/log-appender.ts as a child process and collects what it acknowledged.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { TestDb } from './db.ts';

const FIXTURE = fileURLToPath(new URL('../fixtures/log-appender.ts', import.meta.url));

export interface Appender {
  child: ChildProcess;
  /** index → sha256 hex of the entry bytes, for every acknowledged append seen so far. */
  acked: Map<number, string>;
  /** Resolves when the first acknowledgement arrives. */
  firstAck: Promise<void>;
  /** Resolves with the exit code (or signal) and stderr when the child ends. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string; done: boolean }>;
}

export function startAppender(
  tdb: TestDb,
  opts: {
    key: string;
    origin: string;
    tag?: string;
    count?: number;
    concurrency?: number;
    checkpointMs?: number;
  },
): Appender {
  const args = [
    '--import',
    'tsx',
    FIXTURE,
    '--key',
    opts.key,
    '--origin',
    opts.origin,
    ...(tdb.databaseUrl ? ['--pg', tdb.databaseUrl] : ['--sqlite', tdb.sqliteFile!]),
    '--tag',
    opts.tag ?? 'w',
    '--count',
    String(opts.count ?? 0),
    '--concurrency',
    String(opts.concurrency ?? 32),
    '--checkpoint-ms',
    String(opts.checkpointMs ?? 50),
  ];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const acked = new Map<number, string>();
  let buf = '';
  let stderr = '';
  let done = false;
  let gotFirst!: () => void;
  const firstAck = new Promise<void>((r) => (gotFirst = r));
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    buf += chunk;
    const lines = buf.split('\n');
    buf = lines.pop()!;
    for (const line of lines) {
      if (line === 'done') {
        done = true;
        continue;
      }
      const [i, h] = line.split(' ');
      acked.set(Number(i), h!);
      gotFirst();
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const exited = new Promise<{
    code: number | null;
    signal: NodeJS.Signals | null;
    stderr: string;
    done: boolean;
  }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stderr, done })));
  exited.then(() => gotFirst());
  return { child, acked, firstAck, exited };
}
