// `npm run bench:gateway`: tools/call with ~1 KiB arguments and results, N concurrent MCP clients
// (each its own session), measured
//   - directly against the upstream (bench/upstream.ts: an official-SDK MCP server with an echo tool),
//   - through a bare Node pass-through proxy (bench/bare-proxy.ts, a few lines of undici: the baseline),
//   - through the gateway's code alone (bench/gateway-no-durability.ts: records to an in-memory sink),
//   - through auditgate (API-key authentication, durable write-ahead audit) on SQLite,
//   - through auditgate on PostgreSQL.
// Upstream, proxy and auditgate each run in their own process, as `npm start` runs them; the load
// generator is this process. Prints Markdown for docs/performance.md, including the log's group
// commits during each window as auditgate's own /metrics reports them (commits/s, entries per
// commit, commit time, SQLite commits on the event loop or the writer thread).
//
//   npm run bench:gateway -- [--seconds 6] [--warmup 2] [--prewarm 8] [--clients 32] [--rounds 5] [--db sqlite --db postgres]
//                            [--paced-share 0.5 | --rate N] [--paced-rounds N] [--only REGEX] [--compare DIR]… [--log-batch-delay MS]
//
// "vs bare proxy" is the median of per-round shares (each round's rate over the proxy's in that
// round; rounds rotate the order of paths), with their range: the machine's speed drifts.
// Two phases: saturation (every client calls back to back: the most calls/s a path sustains), then
// every path at the same offered load — by default half the bare proxy's saturation rate — where
// p50/p99 say what each path adds per call, not how long its queue is.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { main as cli } from '../server/cli/main.ts';
import { createTestDb, type DbKind, type TestDb } from '../test/helpers/db.ts';
import { freePort } from '../test/helpers/gateway-service.ts';

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '6' },
    warmup: { type: 'string', default: '2' },
    clients: { type: 'string', default: '32' },
    rounds: { type: 'string', default: '5' },
    db: { type: 'string', multiple: true },
    payload: { type: 'string', default: '1024' },
    prewarm: { type: 'string', default: '8' },
    /** AUDITGATE_LOG_BATCH_DELAY_MS for the auditgate processes (default: the service default). */
    'log-batch-delay': { type: 'string' },
    /** Run only the paths whose name matches this regular expression (e.g. "SQLite|code only"); the bare proxy always runs. */
    only: { type: 'string' },
    /** Other checkouts (e.g. git worktrees of earlier commits) whose auditgate runs as extra paths. */
    compare: { type: 'string', multiple: true },
    /** Total calls/s for the paced phase (default: --paced-share of the bare proxy's saturation rate). */
    rate: { type: 'string' },
    'paced-share': { type: 'string', default: '0.5' },
    'paced-rounds': { type: 'string' },
  },
});
const SECONDS = Number(args.seconds);
const WARMUP = Number(args.warmup);
const CLIENTS = Number(args.clients);
const ROUNDS = Number(args.rounds);
const PACED_SHARE = Number(args['paced-share']);
const PACED_ROUNDS = Number(args['paced-rounds'] ?? args.rounds);
const KINDS = (args.db ?? ['sqlite', 'postgres']) as DbKind[];
const PAYLOAD = Number(args.payload);
/** Seconds each path runs once, unmeasured, before the rounds: JIT warm-up of every process. */
const PREWARM = Number(args.prewarm);
/** Extra node flags for the auditgate processes, e.g. BENCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof". */
const NODE_ARGS = (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
const ROOT = join(import.meta.dirname, '..');
const V = '2025-11-25';

const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

/** Starts a node process and resolves with the first stdout match of `ready`. */
function startProcess(
  argv: string[],
  env: NodeJS.ProcessEnv,
  ready: RegExp,
  cwd = ROOT,
): Promise<{ child: ChildProcess; match: RegExpMatchArray }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, argv, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let out = '';
    let err = '';
    const timer = setTimeout(
      () => reject(new Error(`${argv.join(' ')} did not start: ${out}${err}`)),
      30_000,
    );
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const m = out.match(ready);
      if (m) {
        clearTimeout(timer);
        resolve({ child, match: m });
      }
    });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (err = (err + d).slice(-4000)));
    child.once('exit', (code) => {
      children.delete(child);
      clearTimeout(timer);
      reject(new Error(`${argv.join(' ')} exited (${code}): ${err}`));
    });
  });
}

function stop(child: ChildProcess): Promise<void> {
  return new Promise((r) => {
    if (child.exitCode !== null || child.signalCode !== null) return r();
    child.once('exit', () => r());
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
  });
}

interface Result {
  calls: number;
  seconds: number;
  /** Closed loop: send to answer. Paced: intended send time to answer (a backlog counts). */
  latencies: number[];
  /** Paced only: actual send to answer. */
  serviceLatencies?: number[];
  errors: number;
  /** CPU time (ms) the process in the middle (upstream, proxy or auditgate) spent per call. */
  cpuMsPerCall?: number;
  /** The same for its main thread alone: the event loop every request goes through. */
  mainCpuMsPerCall?: number;
  /**
   * Times the middle process's main thread went to sleep per call (voluntary context switches:
   * waiting in epoll, or in an fsync). On a VM each sleep and wake-up costs CPU of its own.
   */
  mainSleepsPerCall?: number;
  /** CPU time of the PostgreSQL server's processes per call (auditgate on PostgreSQL only). */
  dbCpuMsPerCall?: number;
  /** CPU time of the whole machine per call (every process: load generator, upstream, middle, database). */
  machineCpuMsPerCall?: number;
  /** auditgate's log over the window, from its /metrics (versions without /metrics: none). */
  log?: LogWindow;
}

/** The log's group commits over a measured window. */
interface LogWindow {
  commitsPerSecond: number;
  entriesPerCommit: number;
  /** Mean duration of a commit (ms). */
  commitMs: number;
  /** SQLite: share of commits made on the event loop (the rest on the writer thread). */
  eventLoopShare?: number;
}

/** Where to scrape auditgate's metrics, and the monitor key to do it with. */
interface MetricsTarget {
  url: string;
  key: string;
}

/** The log's counters from one scrape of /metrics, or undefined if it failed. */
async function scrapeLog(m: MetricsTarget | undefined): Promise<Map<string, number> | undefined> {
  if (!m) return undefined;
  try {
    const r = await fetch(m.url, { headers: { authorization: `Bearer ${m.key}` } });
    if (r.status !== 200) return undefined;
    const out = new Map<string, number>();
    for (const line of (await r.text()).split('\n')) {
      const hit = /^(auditgate_log_[a-z_]+(?:\{where="[a-z_]+"\})?) (\S+)$/.exec(line);
      if (hit) out.set(hit[1]!, Number(hit[2]));
    }
    return out;
  } catch {
    return undefined;
  }
}

function logWindow(a: Map<string, number> | undefined, b: Map<string, number> | undefined, seconds: number): LogWindow | undefined {
  if (!a || !b) return undefined;
  const d = (k: string) => (b.get(k) ?? 0) - (a.get(k) ?? 0);
  const commits = d('auditgate_log_commits_total');
  if (commits <= 0) return undefined;
  const w: LogWindow = {
    commitsPerSecond: commits / seconds,
    entriesPerCommit: d('auditgate_log_entries_total') / commits,
    commitMs: (d('auditgate_log_commit_seconds_sum') * 1000) / d('auditgate_log_commit_seconds_count'),
  };
  const inline = d('auditgate_log_sqlite_commits_total{where="event_loop"}');
  const thread = d('auditgate_log_sqlite_commits_total{where="thread"}');
  if (inline + thread > 0) w.eventLoopShare = inline / (inline + thread);
  return w;
}

/** utime + stime in ms from the text of a /proc stat file (clock ticks are 10 ms). */
function statCpuMs(stat: string): number {
  // Fields after the command name, which is in parentheses and may itself hold spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** utime + stime of a process (or of its main thread) in ms. */
function cpuMs(pid: number | undefined, mainThread = false): number | undefined {
  if (pid === undefined) return undefined;
  try {
    return statCpuMs(readFileSync(mainThread ? `/proc/${pid}/task/${pid}/stat` : `/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

/** utime + stime in ms of each PostgreSQL server process (the server runs on this machine), by pid. */
function postgresCpuMs(): Map<string, number> {
  const ms = new Map<string, number>();
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (stat.includes('(postgres)')) ms.set(pid, statCpuMs(stat));
    } catch {
      // The process ended between the listing and the read.
    }
  }
  return ms;
}

/**
 * CPU the server's processes spent between two readings. Per process: knex's pool closes idle
 * connections, and a backend that exited in between would otherwise subtract all its past CPU
 * (its CPU within the window is lost; one that started counts in full).
 */
function postgresCpuBetween(start: Map<string, number>, end: Map<string, number>): number {
  let ms = 0;
  for (const [pid, t] of end) ms += t - (start.get(pid) ?? 0);
  return ms;
}

/** Voluntary context switches of a process's main thread so far. */
function mainSleeps(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const m = /^voluntary_ctxt_switches:\s*(\d+)/m.exec(readFileSync(`/proc/${pid}/task/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** Busy CPU time of the whole machine in ms (/proc/stat: every field but idle and iowait). */
function machineCpuMs(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = f;
  return (user! + nice! + system! + irq! + softirq! + steal!) * 10;
}

const MESSAGE = 'x'.repeat(PAYLOAD);

interface Window {
  warmup: number;
  seconds: number;
  /**
   * Total calls/s to offer, spread evenly over the clients (each sends on its own fixed schedule,
   * phase-shifted): an open loop, as traffic from many independent agents arrives. Latency is
   * then measured from the intended send time, so a path that falls behind is charged for its
   * backlog (no coordinated omission). Without it, every client calls back to back (closed loop).
   */
  rate?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** N MCP clients, each initializes its own session, then calls tools/call echo back to back or at a fixed rate. */
async function load(
  url: string,
  headers: Record<string, string>,
  middlePid?: number,
  window: Window = { warmup: WARMUP, seconds: SECONDS },
  postgres = false,
  metrics?: MetricsTarget,
): Promise<Result> {
  const { warmup: WARMUP_S, seconds: SECONDS_S, rate } = window;
  const u = new URL(url);
  const pool = new Pool(u.origin, { connections: CLIENTS, pipelining: 1 });
  const base = {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    ...headers,
  };
  const rpc = async (body: unknown, extra: Record<string, string> = {}) => {
    const r = await pool.request({
      path: u.pathname,
      method: 'POST',
      headers: { ...base, ...extra },
      body: JSON.stringify(body),
    });
    const text = await r.body.text();
    return { status: r.statusCode, headers: r.headers, text };
  };
  const latencies: number[] = [];
  const serviceLatencies: number[] = [];
  let calls = 0;
  let errors = 0;
  const start = performance.now();
  const measureFrom = start + WARMUP_S * 1000;
  const end = measureFrom + SECONDS_S * 1000;
  let cpuStart: number | undefined;
  let cpuEnd: number | undefined;
  let mainStart: number | undefined;
  let mainEnd: number | undefined;
  let dbStart: Map<string, number> | undefined;
  let dbEnd: Map<string, number> | undefined;
  let machineStart: number | undefined;
  let machineEnd: number | undefined;
  let sleepsStart: number | undefined;
  let sleepsEnd: number | undefined;
  let logStart: Promise<Map<string, number> | undefined> | undefined;
  let logEnd: Promise<Map<string, number> | undefined> | undefined;
  const cpuTimers = [
    setTimeout(() => {
      logStart = scrapeLog(metrics);
      cpuStart = cpuMs(middlePid);
      mainStart = cpuMs(middlePid, true);
      sleepsStart = mainSleeps(middlePid);
      if (postgres) dbStart = postgresCpuMs();
      machineStart = machineCpuMs();
    }, WARMUP_S * 1000),
    setTimeout(() => {
      cpuEnd = cpuMs(middlePid);
      mainEnd = cpuMs(middlePid, true);
      sleepsEnd = mainSleeps(middlePid);
      if (postgres) dbEnd = postgresCpuMs();
      machineEnd = machineCpuMs();
      logEnd = scrapeLog(metrics);
    }, (WARMUP_S + SECONDS_S) * 1000),
  ];
  const client = async (c: number) => {
    const init = await rpc({
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: { protocolVersion: V, capabilities: {}, clientInfo: { name: `bench-${c}`, version: '1' } },
    });
    if (init.status !== 200) throw new Error(`initialize: ${init.status} ${init.text.slice(0, 300)}`);
    const session = String(init.headers['mcp-session-id']);
    const s = { 'mcp-session-id': session, 'mcp-protocol-version': V };
    await rpc({ jsonrpc: '2.0', method: 'notifications/initialized' }, s);
    // Paced: client c sends at start + (c/N + k) × interval.
    const interval = rate ? (CLIENTS / rate) * 1000 : 0;
    let due = start + (c / CLIENTS) * interval;
    for (let id = 1; ; id++) {
      // Timers may fire a little early: never send before the intended time.
      while (rate && due > performance.now()) await sleep(due - performance.now());
      const sent = performance.now();
      const t0 = rate ? due : sent;
      due += interval;
      if (t0 >= end) break;
      const r = await rpc(
        {
          jsonrpc: '2.0',
          id,
          method: 'tools/call',
          params: { name: 'echo', arguments: { message: MESSAGE } },
        },
        s,
      );
      const t1 = performance.now();
      const ok = r.status === 200 && r.text.includes(`"id":${id}`) && r.text.includes('Echo: x');
      if (t0 >= measureFrom && t1 <= end) {
        if (ok) {
          calls++;
          latencies.push(t1 - t0);
          serviceLatencies.push(t1 - sent);
        } else errors++;
      }
      if (!ok && errors < 3) console.error(`call failed: ${r.status} ${r.text.slice(0, 200)}`);
    }
    await pool
      .request({ path: u.pathname, method: 'DELETE', headers: { ...headers, ...s } })
      .then((r) => r.body.dump())
      .catch(() => {});
  };
  await Promise.all(Array.from({ length: CLIENTS }, (_, c) => client(c)));
  for (const timer of cpuTimers) clearTimeout(timer);
  await pool.close();
  latencies.sort((a, b) => a - b);
  serviceLatencies.sort((a, b) => a - b);
  const r: Result = { calls, seconds: SECONDS_S, latencies, errors, ...(rate ? { serviceLatencies } : {}) };
  if (cpuStart !== undefined && cpuEnd !== undefined && calls > 0)
    r.cpuMsPerCall = (cpuEnd - cpuStart) / calls;
  if (mainStart !== undefined && mainEnd !== undefined && calls > 0)
    r.mainCpuMsPerCall = (mainEnd - mainStart) / calls;
  if (sleepsStart !== undefined && sleepsEnd !== undefined && calls > 0)
    r.mainSleepsPerCall = (sleepsEnd - sleepsStart) / calls;
  if (dbStart !== undefined && dbEnd !== undefined && calls > 0)
    r.dbCpuMsPerCall = postgresCpuBetween(dbStart, dbEnd) / calls;
  if (machineStart !== undefined && machineEnd !== undefined && calls > 0)
    r.machineCpuMsPerCall = (machineEnd - machineStart) / calls;
  const log = logWindow(await logStart, await logEnd, SECONDS_S);
  if (log) r.log = log;
  return r;
}

const pct = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

/**
 * Starts auditgate from `root` (this checkout, or another one given with --compare: an earlier
 * version measured in the same rounds, so that machine noise hits both alike).
 */
async function startAuditgate(
  kind: DbKind,
  upstreamUrl: string,
  root = ROOT,
): Promise<{ url: string; key: string; tdb: TestDb; child: ChildProcess; metrics?: MetricsTarget }> {
  const tdb = await createTestDb(kind, { migrate: false });
  const config = join(tdb.dir, 'auditgate.config.json');
  writeFileSync(config, JSON.stringify({ targets: { bench: { url: upstreamUrl } } }));
  const port = await freePort();
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '',
    HOST: '127.0.0.1',
    PORT: String(port),
    AUDITGATE_DATA_DIR: tdb.dir,
    AUDITGATE_CONFIG: config,
    LOG_LEVEL: 'warn',
    ...(tdb.databaseUrl ? { DATABASE_URL: tdb.databaseUrl } : {}),
    ...(args['log-batch-delay'] !== undefined
      ? { AUDITGATE_LOG_BATCH_DELAY_MS: args['log-batch-delay'] }
      : {}),
  };
  // `auditgate keys create` of that checkout: in this process for this one, else its CLI.
  const createKey = async (argv: string[]): Promise<{ ok: boolean; key: string; output: string }> => {
    const args = ['keys', 'create', ...argv];
    if (root === ROOT) {
      const out: string[] = [];
      const code = await cli(args, { env, cwd: tdb.dir, out: (l) => out.push(l), err: (l) => out.push(l) });
      return { ok: code === 0, key: (out[0] ?? '').trim(), output: out.join('\n') };
    }
    const r = spawnSync(process.execPath, [join(root, 'bin/auditgate.mjs'), ...args], { cwd: tdb.dir, env, encoding: 'utf8' });
    return { ok: r.status === 0, key: r.stdout.split('\n')[0]!.trim(), output: r.stdout + r.stderr };
  };
  const agent = await createKey(['--subject', 'bench']);
  if (!agent.ok) throw new Error(`keys create (${root}) failed: ${agent.output}`);
  const key = agent.key;
  // A second key to scrape /metrics with; versions before the monitor role have neither.
  const monitor = await createKey(['--subject', 'bench-monitor', '--role', 'monitor']);
  const monitorKey = monitor.ok ? monitor.key : undefined;
  const { child } = await startProcess(
    [...NODE_ARGS, '--import', 'tsx', join(root, 'server/main.ts')],
    env,
    /\/mcp\/bench/,
    root,
  );
  return {
    url: `http://127.0.0.1:${port}/mcp/bench`,
    key,
    tdb,
    child,
    ...(monitorKey ? { metrics: { url: `http://127.0.0.1:${port}/metrics`, key: monitorKey } } : {}),
  };
}

interface Row {
  name: string;
  r: Result;
  /** Which round: a path's share of the proxy is taken against the proxy's run in the same round. */
  round: number;
}

async function main(): Promise<void> {
  console.error(
    `bench:gateway — ${CLIENTS} clients, ${SECONDS} s (+${WARMUP} s warm-up), ~${PAYLOAD} B arguments and results, ${ROUNDS} round(s)`,
  );
  const upstreamPort = await freePort();
  const upstreamProc = await startProcess(
    ['--import', 'tsx', 'bench/upstream.ts', String(upstreamPort)],
    { PATH: process.env.PATH ?? '' },
    /listening/,
  );
  const upstream = { url: `http://127.0.0.1:${upstreamPort}/mcp`, stop: () => stop(upstreamProc.child) };
  const proxyPort = await freePort();
  const proxy = await startProcess(
    ['--import', 'tsx', 'bench/bare-proxy.ts', upstream.url, String(proxyPort)],
    { PATH: process.env.PATH ?? '' },
    /listening/,
  );
  const bareGatewayPort = await freePort();
  const bareGateway = await startProcess(
    [...NODE_ARGS, '--import', 'tsx', 'bench/gateway-no-durability.ts', upstream.url, String(bareGatewayPort), 'bench-key'],
    { PATH: process.env.PATH ?? '' },
    /listening/,
  );
  const gateways = new Map<string, Awaited<ReturnType<typeof startAuditgate>>>();
  for (const kind of KINDS) gateways.set(kind, await startAuditgate(kind, upstream.url));
  const compareLabels = new Map<string, string>();
  for (const dir of (args.compare ?? []).map((d) => resolve(d))) {
    const label = spawnSync('git', ['-C', dir, 'log', '-1', '--format=%h'], { encoding: 'utf8' }).stdout.trim() || dir;
    for (const kind of KINDS) {
      const id = `compare:${label}:${kind}`;
      compareLabels.set(id, label);
      gateways.set(id, await startAuditgate(kind, upstream.url, dir));
    }
  }
  const saturated: Row[] = [];
  const paced: Row[] = [];
  let pacedRate = 0;
  try {
    type Run = (w?: Window) => Promise<Result>;
    const plan: Array<[string, Run]> = [
      ['direct to the upstream', (w) => load(upstream.url, {}, upstreamProc.child.pid, w)],
      ['bare Node proxy (undici)', (w) => load(`http://127.0.0.1:${proxyPort}/mcp`, {}, proxy.child.pid, w)],
      [
        'gateway code only (in-memory sink, fixed key) ²',
        (w) =>
          load(
            `http://127.0.0.1:${bareGatewayPort}/mcp/bench`,
            { authorization: 'Bearer bench-key' },
            bareGateway.child.pid,
            w,
          ),
      ],
      ...[...gateways.keys()].map((id): [string, Run] => {
        const g = gateways.get(id)!;
        const kind = id.slice(id.lastIndexOf(':') + 1);
        const name = `auditgate, ${kind === 'sqlite' ? 'SQLite' : 'PostgreSQL'}`;
        const label = compareLabels.get(id);
        return [
          label ? `${name} — ${label} (--compare)` : name,
          (w) => load(g.url, { authorization: `Bearer ${g.key}` }, g.child.pid, w, kind === 'postgres', g.metrics),
        ];
      }),
    ];
    if (args.only) {
      const only = new RegExp(args.only, 'i');
      for (let i = plan.length - 1; i >= 0; i--)
        if (!only.test(plan[i]![0]) && !plan[i]![0].startsWith('bare')) plan.splice(i, 1);
    }
    if (PREWARM > 0) {
      for (const [name, run] of plan) {
        console.error(`  warming up ${name} …`);
        await run({ warmup: PREWARM, seconds: 0.5 });
      }
    }
    // 1. Saturation: every client calls back to back — the most calls/s each path sustains.
    // Each round starts at a different path, so none always runs in the same slot (right after
    // the proxy, or after another database's run).
    const rotated = (round: number) => plan.map((_, i) => plan[(i + round) % plan.length]!);
    for (let round = 0; round < ROUNDS; round++) {
      for (const [name, run] of rotated(round)) {
        console.error(`  saturation round ${round + 1}: ${name} …`);
        saturated.push({ name, r: await run(), round });
      }
    }
    // 2. The same offered load for every path — half of what the bare proxy sustained in step 1,
    //    unless --rate says otherwise — so latency compares what each path adds at that load
    //    rather than how deep its queue is at saturation.
    const bareRates = saturated.filter((x) => x.name.startsWith('bare')).map((x) => x.r.calls / x.r.seconds);
    pacedRate = args.rate ? Number(args.rate) : Math.round(median(bareRates) * PACED_SHARE);
    for (let round = 0; round < PACED_ROUNDS; round++) {
      for (const [name, run] of rotated(round)) {
        console.error(`  ${pacedRate} calls/s round ${round + 1}: ${name} …`);
        paced.push({ name, r: await run({ warmup: WARMUP, seconds: SECONDS, rate: pacedRate }), round });
      }
    }
  } finally {
    await Promise.allSettled(
      [...gateways.values()].map(async (g) => {
        await stop(g.child);
        await g.tdb.cleanup();
      }),
    );
    await stop(proxy.child);
    await stop(bareGateway.child);
    await upstream.stop();
  }

  const f1 = (n: number) => n.toFixed(1);
  // The median of the per-round shares, and their range when there is more than one round.
  const pctOf = (x: { share: number; shareMin: number; shareMax: number }) =>
    `${Math.round(x.share * 100)} %` +
    (x.shareMax > x.shareMin ? ` (${Math.round(x.shareMin * 100)}–${Math.round(x.shareMax * 100)} %)` : '');
  const f2 = (n: number) => n.toFixed(2);
  const opt = (n: number) => (Number.isNaN(n) ? '–' : f2(n));
  const sign = (n: number) => `${n >= 0 ? '+' : ''}${f2(n)}`;
  const sat = summarise(saturated);
  const pac = summarise(paced);
  const bare = sat.find((s) => s.name.startsWith('bare'))!;
  const pacedBare = pac.find((s) => s.name.startsWith('bare'))!;
  console.log(
    `Machine: ${cpus().length} × ${cpus()[0]?.model ?? 'CPU'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Linux ${release()}, Node ${process.versions.node}.`,
  );
  console.log(
    `${CLIENTS} client(s) (one MCP session each), tools/call echo with ${PAYLOAD}-byte arguments and results, ${SECONDS} s measured after ${WARMUP} s warm-up, median of ${ROUNDS} round(s)` +
      `${args['log-batch-delay'] !== undefined ? `, AUDITGATE_LOG_BATCH_DELAY_MS=${args['log-batch-delay']}` : ', log settings at their defaults'}.`,
  );
  console.log('');
  console.log(
    `**Saturation** — each client calls back to back (closed loop; p50 ≈ ${CLIENTS} / rate by Little's law):`,
  );
  console.log('');
  console.log(
    '| path | calls/s | p50 (ms) | p99 (ms) | CPU ms/call ¹ (main thread) | main thread sleeps/call ⁴ | database server CPU ms/call | machine CPU ms/call ³ | vs bare proxy | errors |',
  );
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---|---:|');
  for (const s of sat) {
    const rel =
      s === bare
        ? 'baseline'
        : `${pctOf(s)} of calls/s, p50 ${sign(s.p50 - bare.p50)} ms`;
    console.log(
      `| ${s.name} | ${f1(s.rate)} | ${f2(s.p50)} | ${f2(s.p99)} | ${f2(s.cpu)} (${f2(s.mainCpu)}) | ${f2(s.sleeps)} | ${opt(s.dbCpu)} | ${f2(s.machineCpu)} | ${rel} | ${s.errors} |`,
    );
  }
  console.log('');
  console.log(
    `**At ${pacedRate} calls/s** (${args.rate ? '--rate' : `${Math.round(PACED_SHARE * 100)} % of the bare proxy's saturation rate above`}), offered by the same ${CLIENTS} clients on fixed schedules; latency from the intended send time (median of ${PACED_ROUNDS} round(s)):`,
  );
  console.log('');
  console.log(
    '| path | calls/s done | p50 (ms) | p99 (ms) | p50 send→answer (ms) | CPU ms/call ¹ (main thread) | main thread sleeps/call ⁴ | database server CPU ms/call | machine CPU ms/call ³ | p50 vs bare proxy | errors |',
  );
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|');
  for (const s of pac) {
    const rel = s === pacedBare ? 'baseline' : `${sign(s.p50 - pacedBare.p50)} ms`;
    console.log(
      `| ${s.name} | ${f1(s.rate)} | ${f2(s.p50)} | ${f2(s.p99)} | ${f2(s.serviceP50)} | ${f2(s.cpu)} (${f2(s.mainCpu)}) | ${f2(s.sleeps)} | ${opt(s.dbCpu)} | ${f2(s.machineCpu)} | ${rel} | ${s.errors} |`,
    );
  }
  console.log('');
  console.log(
    '¹ CPU time of the process in the middle per call: the upstream (direct), the proxy, or auditgate (its database server not included); in brackets its main thread alone, the event loop every request goes through.',
  );
  console.log(
    "² bench/gateway-no-durability.ts: the gateway's code path with records going to a sink that resolves at once — its own cost, without the log's durable commits. Not a way to run auditgate.",
  );
  console.log(
    "³ Busy CPU time of the whole machine per call (/proc/stat): load generator, upstream, the path's processes and its database server together. The machine is CPU-bound, so a path's calls/s follows this figure.",
  );
  console.log(
    "⁴ How often the main thread of the process in the middle went to sleep per call (voluntary context switches: waiting for the network in epoll, or for the disk in an fsync). Each sleep and wake-up costs CPU of its own, on this VM tens of microseconds.",
  );
  const logRows = [
    ...sat.filter((s) => s.log).map((s) => ({ phase: 'saturation', s })),
    ...pac.filter((s) => s.log).map((s) => ({ phase: `${pacedRate} calls/s`, s })),
  ];
  if (logRows.length) {
    console.log('');
    console.log("**The audit log during these runs** (auditgate's own `/metrics`, scraped at the start and end of each measured window; medians over rounds):");
    console.log('');
    console.log('| path | load | commits/s | entries per commit | commit ms (mean) | commits on the event loop (SQLite) |');
    console.log('|---|---|---:|---:|---:|---:|');
    for (const { phase, s } of logRows) {
      const l = s.log!;
      const share = l.eventLoopShare === undefined ? '–' : `${Math.round(l.eventLoopShare * 100)} %`;
      console.log(`| ${s.name} | ${phase} | ${f1(l.commitsPerSecond)} | ${f1(l.entriesPerCommit)} | ${f2(l.commitMs)} | ${share} |`);
    }
  }
  for (const label of ['SQLite', 'PostgreSQL']) {
    const s = sat.find((x) => x.name.includes(label) && !x.name.includes('--compare'));
    const p = pac.find((x) => x.name.includes(label) && !x.name.includes('--compare'));
    if (!s || !p) continue;
    const rateOk = s.share >= 0.5;
    const kept = p.rate >= pacedRate * 0.97 && p.errors === 0;
    const p50Ok = kept && p.p50 <= pacedBare.p50 + 2;
    console.log('');
    console.log(
      `Goal (${label}): ≥ 50 % of the bare proxy's calls/s — ${rateOk ? 'met' : 'NOT met'} (${pctOf(s)}); ` +
        `at ${pacedRate} calls/s ${kept ? 'sustained' : 'NOT sustained'} with p50 ≤ bare + 2 ms — ${p50Ok ? 'met' : 'NOT met'} (${sign(p.p50 - pacedBare.p50)} ms); ` +
        `at saturation p50 ${sign(s.p50 - bare.p50)} ms.`,
    );
    if (label === 'SQLite' && (!rateOk || !p50Ok)) process.exitCode = 1;
  }
}

/** Each figure's median over the rounds that have one. */
function medianLog(ws: LogWindow[]): LogWindow | undefined {
  if (!ws.length) return undefined;
  const shares = ws.map((w) => w.eventLoopShare).filter((x): x is number => x !== undefined);
  return {
    commitsPerSecond: median(ws.map((w) => w.commitsPerSecond)),
    entriesPerCommit: median(ws.map((w) => w.entriesPerCommit)),
    commitMs: median(ws.map((w) => w.commitMs)),
    ...(shares.length ? { eventLoopShare: median(shares) } : {}),
  };
}

// Other load on the machine moves single runs a lot: report the median round (rounds interleave the paths).
function median(xs: number[]): number {
  return [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
}

function summarise(rows: Row[]) {
  const byName = new Map<string, Result[]>();
  for (const row of rows) byName.set(row.name, [...(byName.get(row.name) ?? []), row.r]);
  // Each round's rate over the bare proxy's in the same round: the machine's speed drifts over a
  // run, and a ratio within a round cancels more of that drift than a ratio of medians.
  const bareRate = new Map<number, number>();
  for (const row of rows) if (row.name.startsWith('bare')) bareRate.set(row.round, row.r.calls / row.r.seconds);
  const shares = new Map<string, number[]>();
  for (const row of rows) {
    const b = bareRate.get(row.round);
    if (b) shares.set(row.name, [...(shares.get(row.name) ?? []), row.r.calls / row.r.seconds / b]);
  }
  return [...byName.entries()].map(([name, rs]) => {
    const share = shares.get(name) ?? [];
    const cpu = rs.map((r) => r.cpuMsPerCall).filter((x): x is number => x !== undefined);
    const mainCpu = rs.map((r) => r.mainCpuMsPerCall).filter((x): x is number => x !== undefined);
    const sleeps = rs.map((r) => r.mainSleepsPerCall).filter((x): x is number => x !== undefined);
    const dbCpu = rs.map((r) => r.dbCpuMsPerCall).filter((x): x is number => x !== undefined);
    const machineCpu = rs.map((r) => r.machineCpuMsPerCall).filter((x): x is number => x !== undefined);
    return {
      name,
      rate: median(rs.map((r) => r.calls / r.seconds)),
      /** Median, lowest and highest per-round share of the bare proxy's calls/s. */
      share: share.length ? median(share) : NaN,
      shareMin: share.length ? Math.min(...share) : NaN,
      shareMax: share.length ? Math.max(...share) : NaN,
      p50: median(rs.map((r) => pct(r.latencies, 50))),
      p99: median(rs.map((r) => pct(r.latencies, 99))),
      serviceP50: median(rs.map((r) => pct(r.serviceLatencies ?? r.latencies, 50))),
      errors: rs.reduce((s, r) => s + r.errors, 0),
      cpu: cpu.length ? median(cpu) : NaN,
      mainCpu: mainCpu.length ? median(mainCpu) : NaN,
      sleeps: sleeps.length ? median(sleeps) : NaN,
      dbCpu: dbCpu.length ? median(dbCpu) : NaN,
      machineCpu: machineCpu.length ? median(machineCpu) : NaN,
      log: medianLog(rs.map((r) => r.log).filter((x): x is LogWindow => x !== undefined)),
    };
  });
}

await main();
