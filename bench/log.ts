// `npm run bench:log`: durable appends/s of the audit log against plain knex inserts, and proof
// latency at 1,000,000 entries, on SQLite and PostgreSQL. Prints Markdown for docs/performance.md.
//
//   npm run bench:log -- [--db sqlite|postgres]… [--concurrency N]… [--seconds 2] [--rounds 3]
//                        [--proof-size 1000000 (0: skip)] [--samples 2000] [--proofs-only]
import { parseArgs } from 'node:util';
import { cpus, totalmem, release } from 'node:os';
import canonicalizeModule from 'canonicalize';
import type { Db } from '../server/db.ts';
import { isPostgres } from '../server/db.ts';
import { openKnexLog } from '../server/audit/knex-log.ts';
import { Frontier, leafHash } from '../server/audit/merkle.ts';
import { generateSignerKey, parseSignerKey } from '../server/audit/note.ts';
import { createTestDb, type DbKind } from '../test/helpers/db.ts';
import { sampleAuditRecord } from '../test/helpers/audit-records.ts';

const canonicalize = canonicalizeModule as unknown as (value: unknown) => string | undefined;

const { values: args } = parseArgs({
  options: {
    db: { type: 'string', multiple: true },
    seconds: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '3' },
    'proof-size': { type: 'string', default: '1000000' },
    samples: { type: 'string', default: '2000' },
    concurrency: { type: 'string', multiple: true },
    'proofs-only': { type: 'boolean', default: false },
  },
});
const KINDS = (args.db ?? ['sqlite', 'postgres']) as DbKind[];
const SECONDS = Number(args.seconds);
const PROOF_SIZE = Number(args['proof-size']);
const SAMPLES = Number(args.samples);
const CONCURRENCY = (args.concurrency ?? ['1', '16', '256']).map(Number);
const BATCH_MAX = 256; // the service default (AUDITGATE_LOG_BATCH_SIZE)
const BATCH_DELAY_MS = 0; // the service default (AUDITGATE_LOG_BATCH_DELAY_MS)
const ROUNDS = Number(args.rounds);
const WARMUP_MS = 300;

const ORIGIN = 'bench.auditgate/log';
const signer = parseSignerKey(generateSignerKey(ORIGIN));
// Realistic records (≈1 KiB canonical JSON), prepared once so neither side pays to build them.
const POOL = Array.from({ length: 4096 }, (_, i) => sampleAuditRecord(i, 'bench'));
const POOL_BYTES = POOL.map((r) => Buffer.from(canonicalize(r)!, 'utf8'));
const POOL_LEAVES = POOL_BYTES.map((b) => leafHash(b));
const AVG_BYTES = Math.round(POOL_BYTES.reduce((s, b) => s + b.length, 0) / POOL_BYTES.length);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

interface Window {
  rate: number;
  avgBatch: number;
  /** CPU time of this process per entry (µs): less sensitive to other load than the rate. */
  cpuUs: number;
}

/** A log that stays open across measurement windows, so windows of different kinds can alternate. */
async function openLogRunner(kind: DbKind, indexEvents: boolean) {
  const tdb = await createTestDb(kind);
  const log = await openKnexLog(tdb.db, {
    origin: ORIGIN,
    signer,
    batchMaxSize: BATCH_MAX,
    batchMaxDelayMs: BATCH_DELAY_MS,
    checkpointIntervalMs: 5_000,
    indexEvents,
  });
  return {
    async run(concurrency: number): Promise<Window> {
      let stop = false;
      let measuring = false;
      let count = 0;
      const workers = Array.from({ length: concurrency }, async (_, w) => {
        for (let i = w; !stop; i += concurrency) {
          await log.append(POOL[i % POOL.length]!);
          if (measuring) count++;
        }
      });
      await sleep(WARMUP_MS);
      const s0 = { ...log.stats };
      const c0 = process.cpuUsage();
      measuring = true;
      const t0 = performance.now();
      await sleep(SECONDS * 1000);
      const done = count;
      const elapsed = (performance.now() - t0) / 1000;
      const cpu = process.cpuUsage(c0);
      const s1 = { ...log.stats };
      stop = true;
      await Promise.all(workers);
      return {
        rate: done / elapsed,
        avgBatch: (s1.entries - s0.entries) / Math.max(1, s1.batches - s0.batches),
        cpuUs: (cpu.user + cpu.system) / done,
      };
    },
    async close() {
      await log.close();
      await tdb.cleanup();
    },
  };
}

/** Plain knex: the same record rows (JSON text, no hashing, no tree) in transactions of `batch` rows. */
async function openBaselineRunner(kind: DbKind) {
  const tdb = await createTestDb(kind, { migrate: false });
  const db = tdb.db;
  await db.schema.createTable('bench_plain', (t) => {
    t.bigInteger('idx').primary();
    t.binary('data').notNullable();
  });
  let idx = 0;
  const insertUntil = async (batch: number, until: number): Promise<number> => {
    let n = 0;
    while (performance.now() < until) {
      const rows: Array<{ idx: number; data: Buffer }> = [];
      for (let j = 0; j < batch; j++, idx++) {
        rows.push({ idx, data: Buffer.from(JSON.stringify(POOL[idx % POOL.length]), 'utf8') });
      }
      await db.transaction((trx) => trx('bench_plain').insert(rows));
      n += batch;
    }
    return n;
  };
  return {
    async run(batch: number): Promise<Window> {
      await insertUntil(batch, performance.now() + WARMUP_MS);
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      const n = await insertUntil(batch, t0 + SECONDS * 1000);
      const cpu = process.cpuUsage(c0);
      return {
        rate: n / ((performance.now() - t0) / 1000),
        avgBatch: batch,
        cpuUs: (cpu.user + cpu.system) / n,
      };
    },
    close: () => tdb.cleanup(),
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Fast fill: the log's exact row layout computed here and inserted in large transactions. */
async function fill(db: Db, n: number): Promise<void> {
  const f = new Frontier();
  const PER_TRX = 20_000;
  const PER_INSERT = 400; // knex writes multi-row SQLite inserts as UNION ALL (at most 500 terms)
  for (let start = 0; start < n; start += PER_TRX) {
    const rows: Array<{ idx: number; data: Buffer; hashes: Buffer }> = [];
    for (let i = start; i < Math.min(n, start + PER_TRX); i++) {
      rows.push({
        idx: i,
        data: POOL_BYTES[i % POOL.length]!,
        hashes: Buffer.concat(f.append(POOL_LEAVES[i % POOL.length]!)),
      });
    }
    await db.transaction(async (trx) => {
      for (let i = 0; i < rows.length; i += PER_INSERT)
        await trx('log_entries').insert(rows.slice(i, i + PER_INSERT));
    });
    if (start % 200_000 === 0) process.stderr.write(`  filled ${start.toLocaleString('en-US')}\n`);
  }
  await db('log_state')
    .where({ id: 1 })
    .update({ size: f.size, root: f.root(), updated_at: new Date().toISOString() });
}

function stats(ms: number[]): { median: number; p99: number } {
  const s = [...ms].sort((a, b) => a - b);
  return {
    median: s[Math.floor(s.length / 2)]!,
    p99: s[Math.min(s.length - 1, Math.floor(s.length * 0.99))]!,
  };
}

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

async function proofBench(kind: DbKind) {
  const tdb = await createTestDb(kind);
  try {
    const t0 = performance.now();
    await fill(tdb.db, PROOF_SIZE);
    const fillS = (performance.now() - t0) / 1000;
    const t1 = performance.now();
    const log = await openKnexLog(tdb.db, {
      origin: ORIGIN,
      signer,
      batchMaxSize: BATCH_MAX,
      batchMaxDelayMs: BATCH_DELAY_MS,
      checkpointIntervalMs: 5_000,
      checkpointTimer: false,
    });
    const openMs = performance.now() - t1;
    if (!log.selfCheck().ok)
      throw new Error(`self-check failed after the fill: ${log.selfCheck().problems.join('; ')}`);
    await log.checkpoint();
    const rand = rng(42);
    const randInt = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
    const time = async (f: () => Promise<unknown>, n: number) => {
      const out: number[] = [];
      for (let i = 0; i < n; i++) {
        const s = performance.now();
        await f();
        out.push(performance.now() - s);
      }
      return out;
    };
    const inclusion = () => {
      const size = randInt(1, PROOF_SIZE);
      return log.inclusionProof(randInt(0, size - 1), size);
    };
    const consistency = () => {
      const size = randInt(1, PROOF_SIZE);
      return log.consistencyProof(randInt(1, size), size);
    };
    const root = () => log.rootAt(randInt(0, PROOF_SIZE));
    await time(inclusion, 200);
    await time(consistency, 200);
    const inc = stats(await time(inclusion, SAMPLES));
    const con = stats(await time(consistency, SAMPLES));
    const rt = stats(await time(root, SAMPLES));
    const t2 = performance.now();
    const c2 = process.cpuUsage();
    const fsck = await log.fsck();
    const fsckS = (performance.now() - t2) / 1000;
    const fsckCpu = process.cpuUsage(c2);
    const fsckCpuS = (fsckCpu.user + fsckCpu.system) / 1e6;
    if (!fsck.ok) throw new Error(`fsck failed: ${fsck.problems.join('; ')}`);
    await log.close();
    return { fillS, openMs, inc, con, rt, fsckS, fsckCpuS };
  } finally {
    await tdb.cleanup();
  }
}

async function versions(): Promise<string[]> {
  const out: string[] = [];
  for (const kind of KINDS) {
    const tdb = await createTestDb(kind, { migrate: false });
    try {
      const r = isPostgres(tdb.db)
        ? await tdb.db.raw('SHOW server_version')
        : await tdb.db.raw('SELECT sqlite_version() AS v');
      out.push(
        isPostgres(tdb.db)
          ? `PostgreSQL ${r.rows[0].server_version} (loopback, synchronous_commit=on)`
          : `SQLite ${r[0].v} (better-sqlite3, WAL, synchronous=FULL)`,
      );
    } finally {
      await tdb.cleanup();
    }
  }
  return out;
}

const lines: string[] = [];
const say = (l = '') => {
  lines.push(l);
  console.log(l);
};

say(
  `Run: \`npm run bench:log${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}\` on ${new Date().toISOString().slice(0, 10)}`,
);
say(
  `Machine: ${cpus().length} × ${cpus()[0]?.model.trim()}, ${Math.round(totalmem() / 2 ** 30)} GiB RAM, Linux ${release()}, Node ${process.version}`,
);
for (const v of await versions()) say(`- ${v}`);
say(
  `Records: realistic AuditRecords, ${AVG_BYTES} bytes of canonical JSON on average. Each figure is the median of ${ROUNDS} ` +
    `${SECONDS} s windows (after ${WARMUP_MS} ms warm-up); the log, the log with audit_events and the plain-knex baseline ` +
    `take turns window by window, so load from elsewhere on the machine hits all three alike. ` +
    `Batch limits ${BATCH_MAX} entries / ${BATCH_DELAY_MS} ms (service defaults). CPU = this process's CPU time per entry (µs).`,
);
if (!args['proofs-only']) {
  say();
  say(
    '| database | appenders | log (entries/s) | log + audit_events (entries/s) | avg batch | plain knex, same batch size (rows/s) | log / plain | log + index / plain | CPU µs/entry: log / +index / plain |',
  );
  say('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const kind of KINDS) {
    for (const c of CONCURRENCY) {
      const [bare, indexed, base] = await Promise.all([
        openLogRunner(kind, false),
        openLogRunner(kind, true),
        openBaselineRunner(kind),
      ]);
      const rb: Window[] = [];
      const ri: Window[] = [];
      const rp: Window[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        rb.push(await bare.run(c));
        ri.push(await indexed.run(c));
        rp.push(await base.run(Math.max(1, Math.round(ri[ri.length - 1]!.avgBatch))));
      }
      await Promise.all([bare.close(), indexed.close(), base.close()]);
      const m = (ws: Window[], k: keyof Window) => median(ws.map((w) => w[k]));
      const [b, i, p] = [m(rb, 'rate'), m(ri, 'rate'), m(rp, 'rate')];
      say(
        `| ${kind} | ${c} | ${fmt(b)} | ${fmt(i)} | ${m(ri, 'avgBatch').toFixed(1)} | ${fmt(p)} (batch ${Math.round(m(rp, 'avgBatch'))}) | ` +
          `${Math.round((100 * b) / p)}% | ${Math.round((100 * i) / p)}% | ${m(rb, 'cpuUs').toFixed(0)} / ${m(ri, 'cpuUs').toFixed(0)} / ${m(rp, 'cpuUs').toFixed(0)} |`,
      );
    }
  }
}
if (PROOF_SIZE > 0) {
  say();
  say(
    `Proofs at ${PROOF_SIZE.toLocaleString('en-US')} entries, ${SAMPLES} random (index, size) / (old, new) pairs each, after 200 warm-up calls:`,
  );
  say();
  say(
    '| database | fill (s) | open + self-check (ms) | inclusion median / p99 (ms) | consistency median / p99 (ms) | rootAt median / p99 (ms) | fsck of all entries: wall / CPU (s) |',
  );
  say('|---|---:|---:|---:|---:|---:|---:|');
  for (const kind of KINDS) {
    const r = await proofBench(kind);
    const ms = (s: { median: number; p99: number }) => `${s.median.toFixed(3)} / ${s.p99.toFixed(3)}`;
    say(
      `| ${kind} | ${r.fillS.toFixed(0)} | ${r.openMs.toFixed(0)} | ${ms(r.inc)} | ${ms(r.con)} | ${ms(r.rt)} | ${r.fsckS.toFixed(1)} / ${r.fsckCpuS.toFixed(1)} |`,
    );
  }
}
