// The scheduler: catch-up of slots missed while down (late), missed beyond the catch-up limit,
// retries with backoff visible in health and in the next report's exceptions, one run per slot
// across processes, a process killed across a slot and restarted, and idempotent report runs.
import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createTestDb, type TestDb } from './helpers/db.ts';
import { openTestLog, testSigner } from './helpers/log.ts';
import { JobRegistry, Scheduler, type JobDefinition } from '../server/jobs/scheduler.ts';
import { reportJobs } from '../server/reports/report-jobs.ts';
import { CampaignStore } from '../server/reports/campaigns.ts';
import { SqlAccessReviewSource } from '../server/reports/access-source.ts';
import { parseReportsConfig } from '../server/reports/report-config.ts';
import { generateReport, type GenerateContext } from '../server/reports/generate.ts';
import { parsePeriod } from '../reports/period.ts';
import { writeReportDataset } from './helpers/report-data.ts';
import { toInt } from '../server/db.ts';

const T0 = new Date('2026-11-02T10:00:00.000Z');

async function setup(t: any, kind: 'sqlite' | 'postgres' = 'sqlite') {
  const tdb = await createTestDb(kind);
  const log = await openTestLog(tdb.db, testSigner());
  t.teardown(async () => {
    await log.close();
    await tdb.cleanup();
  });
  return { tdb, log };
}

function clock(start: Date) {
  let now = start.getTime();
  return {
    now: () => new Date(now),
    set: (d: Date | string) => (now = new Date(d).getTime()),
    advance: (ms: number) => (now += ms),
  };
}

test('catch-up runs slots missed while down, late; beyond the limit they are recorded as missed', async (t) => {
  const { tdb, log } = await setup(t);
  const ran: string[] = [];
  const job: JobDefinition = {
    name: 'hourly',
    cron: '0 * * * *',
    timezone: 'UTC',
    periodFor: (d) => d.toISOString().slice(0, 13),
    run: async (ctx) => (ran.push(ctx.expectedAt.toISOString()), { outputs: { x: 'y' } }),
  };
  const registry = new JobRegistry();
  registry.register(job);
  const c = clock(T0);
  const s = new Scheduler({
    db: tdb.db,
    log,
    registry,
    holder: 'p1',
    instance: 'p1',
    now: c.now,
    cronTriggers: false,
    catchUpMax: 3,
  });
  await s.start();
  await s.idle();
  t.deepEqual(ran, [], 'no slot before the job existed');
  c.advance(5 * 3_600_000 + 5 * 60_000); // down for five slots, back 5 minutes after the last
  await s.runDue('hourly');
  t.deepEqual(ran, ['2026-11-02T13:00:00.000Z', '2026-11-02T14:00:00.000Z', '2026-11-02T15:00:00.000Z']);
  const runs = await s.store.runs('hourly');
  t.is(runs.length, 5);
  t.deepEqual(
    runs
      .filter((r) => r.status === 'missed')
      .map((r) => r.expectedAt)
      .sort(),
    ['2026-11-02T11:00:00.000Z', '2026-11-02T12:00:00.000Z'],
  );
  t.true(runs.filter((r) => r.status === 'succeeded').every((r) => r.late && r.trigger === 'catch-up'));
  const ex = await s.store.exceptionsBetween('hourly', '2026-11-02T00:00:00Z', '2026-11-03T00:00:00Z');
  t.deepEqual(
    ex.map((e) => e.status),
    ['missed', 'missed', 'late', 'late', 'late'],
  );
  // On time: the next slot, triggered within the tolerance, is not late.
  c.set('2026-11-02T16:00:00.400Z');
  await s.runDue('hourly');
  const last = (await s.store.runs('hourly'))[0]!;
  t.is(last.expectedAt, '2026-11-02T16:00:00.000Z');
  t.false(last.late);
  t.is(last.trigger, 'schedule');
  // Each run is in the audit log.
  await log.syncIndex();
  const entries = await tdb.db('audit_events').where({ event: 'report.run' }).count({ n: '*' }).first();
  t.is(toInt(entries!.n), 4);
  await s.stop();
});

test('a failed run is retried with backoff, shows in health, and is an exception of the next report', async (t) => {
  const { tdb, log } = await setup(t);
  let attempts = 0;
  const registry = new JobRegistry();
  registry.register({
    name: 'flaky',
    cron: '0 6 * * *',
    timezone: 'Europe/Berlin',
    retryBaseMs: 1_000,
    maxAttempts: 4,
    run: async () => {
      attempts++;
      if (attempts < 3) throw new Error(`upstream storage unavailable (${attempts})`);
      return { outputs: { 'r.pdf': 'abc' }, dataHash: 'f'.repeat(64) };
    },
  });
  const c = clock(new Date('2026-11-02T04:00:00.000Z'));
  const s = new Scheduler({
    db: tdb.db,
    log,
    registry,
    holder: 'p1',
    instance: 'p1',
    now: c.now,
    cronTriggers: false,
    retryTimers: false,
  });
  t.teardown(() => s.stop());
  await s.start();
  c.set('2026-11-02T05:00:00.000Z'); // 06:00 in Berlin (UTC+1 in November)
  await s.runDue('flaky');
  let h = await s.health();
  t.true(h.ok, 'a failing report does not make the gateway unready');
  t.is(h.detail.flaky!.failing.length, 1);
  t.regex(h.detail.flaky!.failing[0]!.error!, /upstream storage unavailable \(1\)/);
  t.is(h.detail.flaky!.failing[0]!.nextAttemptAt, '2026-11-02T05:00:01.000Z');
  t.is(h.detail.flaky!.nextRun, '2026-11-03T05:00:00.000Z', 'the next 06:00 in Berlin');
  c.advance(500);
  await s.runDue('flaky');
  t.is(attempts, 1, 'not before the backoff');
  c.advance(600);
  await s.runDue('flaky');
  t.is(attempts, 2);
  h = await s.health();
  t.is(h.detail.flaky!.failing[0]!.nextAttemptAt, '2026-11-02T05:00:03.100Z', 'the delay doubles');
  c.advance(2_100);
  await s.runDue('flaky');
  t.is(attempts, 3);
  const [run] = await s.store.runs('flaky');
  t.is(run!.status, 'succeeded');
  t.is(run!.attempts, 3);
  t.is(run!.expectedAt, '2026-11-02T05:00:00.000Z');
  t.deepEqual((await s.health()).detail.flaky!.failing, []);
  await log.syncIndex();
  const logged = await tdb.db('audit_events').where({ event: 'report.run' }).count({ n: '*' }).first();
  t.is(toInt(logged!.n), 3, 'two failures and the success are recorded');

  // A run that never succeeds is listed in the next report's exceptions.
  registry.register({
    name: 'activity',
    cron: '0 6 1 * *',
    timezone: 'UTC',
    maxAttempts: 1,
    run: async () => {
      throw new Error('disk full');
    },
  });
  await s.store.register('activity', '0 6 1 * *', 'UTC', new Date('2026-06-01T00:00:00Z'));
  c.set('2026-07-01T06:00:10.000Z');
  await s.runDue('activity');
  const ctx: GenerateContext = {
    db: tdb.db,
    log,
    config: parseReportsConfig({}),
    instance: 't',
    runExceptions: (job, a, b) => s.store.exceptionsBetween(job, a, b),
  };
  const out = await generateReport(
    ctx,
    'activity',
    parsePeriod('2026-07'),
    { generatedAt: '2026-08-01T06:00:00.000Z', trigger: 'schedule' },
    { pdf: false },
  );
  const data = JSON.parse(out.json.toString('utf8'));
  t.is(data.runExceptions.length, 1);
  t.is(data.runExceptions[0].status, 'failed');
  t.regex(data.runExceptions[0].detail, /disk full/);
  await s.stop();
});

test('report jobs: idempotent per period, outputs written and hashed, access review launches one campaign', async (t) => {
  const { tdb, log } = await setup(t);
  await writeReportDataset(tdb.db, log, { requestsPerDay: 20, agents: 8, idpAgents: 3, people: 3 });
  const config = parseReportsConfig({});
  const registry = new JobRegistry();
  const s = new Scheduler({
    db: tdb.db,
    log,
    registry,
    holder: 'p1',
    instance: 'p1',
    cronTriggers: false,
    retryTimers: false,
  });
  const ctx: GenerateContext = {
    db: tdb.db,
    log,
    config,
    instance: 't',
    runExceptions: (job, a, b) => s.store.exceptionsBetween(job, a, b),
  };
  const campaigns = new CampaignStore({
    db: tdb.db,
    log,
    source: new SqlAccessReviewSource({ db: tdb.db, log, config }),
    config,
    instance: 't',
  });
  const outDir = join(tdb.dir, 'reports');
  for (const j of reportJobs({ ctx, campaigns, outDir, schedules: {} })) registry.register(j);
  t.deepEqual(
    registry.list().map((j) => [j.name, j.cron]),
    [
      ['access-review', '0 6 1 1,4,7,10 *'],
      ['activity', '0 6 1 * *'],
      ['changes', '15 6 1 * *'],
    ],
  );
  const a = await s.runNow('activity', new Date('2026-08-01T06:00:00.000Z'));
  const b = await s.runNow('activity', new Date('2026-08-01T07:00:00.000Z'));
  t.is(await s.runNow('activity', new Date('2026-08-01T06:00:00.000Z')), undefined, 'a slot runs once');
  t.is(a!.status, 'succeeded');
  t.is(a!.periodLabel, '2026-07');
  t.is(a!.dataHash, b!.dataHash, 'same period and data → same data hash');
  // The files on disk are the last run's (b); the cover of each PDF names its own run.
  const json = readFileSync(join(outDir, 'activity', '2026-07', 'activity.json'));
  t.is(createHash('sha256').update(json).digest('hex'), b!.dataHash ?? '');
  t.not(a!.outputs!['activity.pdf'], b!.outputs!['activity.pdf']);
  t.is(
    b!.outputs!['activity.pdf'],
    createHash('sha256')
      .update(readFileSync(join(outDir, 'activity', '2026-07', 'activity.pdf')))
      .digest('hex'),
  );
  const q1 = await s.runNow('access-review', new Date('2026-10-01T06:00:00.000Z'));
  const q2 = await s.runNow('access-review', new Date('2026-10-01T06:05:00.000Z'));
  t.is(q1!.periodLabel, '2026-Q3');
  t.is(q1!.dataHash, q2!.dataHash, 'the second run reports the campaign the first launched');
  t.is((await campaigns.list()).length, 1);
  t.true(existsSync(join(outDir, 'access-review', '2026-Q3', 'access-review-entitlements.csv')));
});

function startChild(
  tdb: TestDb,
  holder: string,
  cronExpr: string,
  runsFile: string,
  tolerance = '1000',
): Promise<ChildProcess> {
  const target = tdb.databaseUrl ?? tdb.sqliteFile!;
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      'test/fixtures/scheduler-child.ts',
      target,
      tdb.dir,
      holder,
      cronExpr,
      runsFile,
      tolerance,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (d) => String(d).includes('ready') && resolve(child));
    child.once('exit', (code) => reject(new Error(`child exited ${code}: ${err}`)));
  });
}

const readRuns = (file: string) =>
  existsSync(file)
    ? readFileSync(file, 'utf8')
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { holder: string; expectedAt: string; trigger: string; late: boolean })
    : [];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean, ms: number) {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await sleep(100);
  return cond();
}

test('sqlite: killed across scheduled slots, the restarted process catches them up as late', async (t) => {
  const tdb = await createTestDb('sqlite');
  const children: ChildProcess[] = [];
  t.teardown(async () => {
    for (const c of children) c.kill('SIGKILL');
    await tdb.cleanup();
  });
  const runsFile = join(tdb.dir, 'runs.jsonl');
  const a = await startChild(tdb, 'a', '*/2 * * * * *', runsFile);
  children.push(a);
  t.true(await until(() => readRuns(runsFile).length >= 1, 10_000), 'first process ran a slot');
  a.kill('SIGKILL');
  await new Promise((r) => a.once('exit', r));
  const before = readRuns(runsFile);
  await sleep(5_000); // at least two slots pass while nothing runs
  const b = await startChild(tdb, 'b', '*/2 * * * * *', runsFile);
  children.push(b);
  t.true(
    await until(() => readRuns(runsFile).some((r) => r.holder === 'b' && r.trigger === 'catch-up'), 10_000),
    'restart caught up',
  );
  await sleep(2_500);
  b.kill('SIGTERM');
  await new Promise((r) => b.once('exit', r));
  const runs = readRuns(runsFile);
  const caught = runs.filter((r) => r.holder === 'b' && r.trigger === 'catch-up');
  t.true(caught.length >= 2, `caught up ${caught.length} slots`);
  t.true(caught.every((r) => r.late));
  // No slot between the first run and the last is missing or run twice.
  const slots = [...new Set(runs.map((r) => r.expectedAt))].sort();
  t.is(slots.length, runs.length, 'every slot ran once');
  for (let i = 1; i < slots.length; i++)
    t.is(Date.parse(slots[i]!) - Date.parse(slots[i - 1]!), 2_000, `gap after ${slots[i - 1]}`);
  t.true(Date.parse(caught[0]!.expectedAt) > Date.parse(before.at(-1)!.expectedAt));
  const db = tdb.reopen();
  const rows = await db('report_runs').where({ job: 'tick' }).whereIn('status', ['succeeded']);
  t.true(rows.length >= runs.length, 'every run is persisted');
});

test('postgres: two processes on one database run each slot once', async (t) => {
  const tdb = await createTestDb('postgres');
  const children: ChildProcess[] = [];
  t.teardown(async () => {
    for (const c of children) c.kill('SIGKILL');
    await tdb.cleanup();
  });
  const runsFile = join(tdb.dir, 'runs.jsonl');
  const [a, b] = await Promise.all([
    startChild(tdb, 'a', '*/2 * * * * *', runsFile, '60000'),
    startChild(tdb, 'b', '*/2 * * * * *', runsFile, '60000'),
  ]);
  children.push(a!, b!);
  await sleep(9_000);
  for (const c of [a!, b!]) c.kill('SIGTERM');
  await Promise.all([a!, b!].map((c) => new Promise((r) => c.once('exit', r))));
  const runs = readRuns(runsFile);
  t.true(runs.length >= 3, `${runs.length} runs`);
  const slots = runs.map((r) => r.expectedAt);
  t.is(new Set(slots).size, slots.length, 'no slot ran twice');
  const rows = await tdb.db('report_runs').where({ job: 'tick' });
  t.is(rows.length, new Set(rows.map((r: any) => r.expected_at)).size);
  const logged = await tdb.db('audit_events').where({ event: 'report.run' }).count({ n: '*' }).first();
  t.is(toInt(logged!.n), runs.length, 'one log entry per run');
});
