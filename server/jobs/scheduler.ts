// The report scheduler: node-cron triggers, but what runs is decided from the database — every
// slot of a job's cron between its last run and now — so a slot missed while the service was
// down is run on start-up (marked late), two processes on one database run a slot once (a
// unique run row per slot, under a per-job lease), and a failed run is retried with backoff.
// Generic: any module can register a job (the evidence bundle does).
import cron, { type ScheduledTask } from 'node-cron';
import type { AuditActor } from '../../gateway/audit-record.ts';
import type { Db } from '../db.ts';
import { reportRecord, SCHEDULER_ACTOR, type RecordSink } from '../reports/audit-entries.ts';
import { JobStore, type RunRow, type RunTrigger } from './job-store.ts';

export interface JobContext {
  runId: string;
  job: string;
  /** The schedule slot this run is for (not when it actually started). */
  expectedAt: Date;
  trigger: RunTrigger;
  late: boolean;
  attempt: number;
}

export interface JobResult {
  periodLabel?: string;
  /** Output name → SHA-256 (hex). */
  outputs: Record<string, string>;
  dataHash?: string;
}

export interface JobDefinition {
  name: string;
  cron: string;
  timezone: string;
  run(ctx: JobContext): Promise<JobResult>;
  /** Period a slot covers (stored before the run starts, so a failed run still says what it was for). */
  periodFor?(expectedAt: Date): string;
  /** Attempts including the first (default 4). */
  maxAttempts?: number;
  /** First retry delay; doubles each attempt (default 60 s). */
  retryBaseMs?: number;
}

export class JobDefinitionError extends Error {
  override name = 'JobDefinitionError';
}

export class JobRegistry {
  private readonly jobs = new Map<string, JobDefinition>();

  register(def: JobDefinition): void {
    if (!/^[a-z0-9][a-z0-9._-]{0,63}$/.test(def.name))
      throw new JobDefinitionError(
        `job name ${JSON.stringify(def.name)} is not a short lower-case identifier`,
      );
    if (!cron.validate(def.cron))
      throw new JobDefinitionError(
        `job ${def.name}: ${JSON.stringify(def.cron)} is not a valid cron expression`,
      );
    try {
      new Intl.DateTimeFormat('en-US', { timeZone: def.timezone });
    } catch {
      throw new JobDefinitionError(`job ${def.name}: unknown time zone ${JSON.stringify(def.timezone)}`);
    }
    if (this.jobs.has(def.name)) throw new JobDefinitionError(`job ${def.name} is already registered`);
    this.jobs.set(def.name, def);
  }

  get(name: string): JobDefinition | undefined {
    return this.jobs.get(name);
  }

  list(): JobDefinition[] {
    return [...this.jobs.values()];
  }
}

export interface SchedulerOptions {
  db: Db;
  log: RecordSink;
  registry: JobRegistry;
  /** Identifies this process in leases and run rows. */
  holder: string;
  instance: string;
  now?: () => Date;
  /** Lease length; renewed while a run is in progress. */
  leaseMs?: number;
  /** At most this many missed slots per job are run on catch-up; older ones are recorded as missed. */
  catchUpMax?: number;
  /** A run starting later than this after its slot is late. */
  lateToleranceMs?: number;
  /** Start cron triggers (false in tests that drive runDue with a fake clock). */
  cronTriggers?: boolean;
  /** Arm a timer for each retry (false in tests that drive runDue with a fake clock). */
  retryTimers?: boolean;
  onError?: (err: unknown, job: string) => void;
}

export interface JobHealth {
  cron: string;
  timezone: string;
  nextRun: string | null;
  lastRun: {
    expectedAt: string;
    status: string;
    late: boolean;
    finishedAt: string | null;
    dataHash: string | null;
  } | null;
  failing: Array<{
    runId: string;
    expectedAt: string;
    attempts: number;
    error: string | null;
    nextAttemptAt: string | null;
  }>;
}

export class Scheduler {
  readonly store: JobStore;
  private readonly tasks: ScheduledTask[] = [];
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly inflight = new Set<Promise<unknown>>();
  private readonly registered = new Map<string, string>();
  private readonly running = new Set<string>();
  private stopped = false;
  private readonly now: () => Date;

  constructor(private readonly o: SchedulerOptions) {
    this.store = new JobStore(o.db);
    this.now = o.now ?? (() => new Date());
  }

  /** Registers every job, catches up missed slots and retries, then starts the cron triggers. */
  async start(): Promise<void> {
    for (const job of this.o.registry.list()) {
      this.registered.set(job.name, await this.store.register(job.name, job.cron, job.timezone, this.now()));
    }
    for (const job of this.o.registry.list()) {
      if (this.o.cronTriggers === false) continue;
      const task = cron.createTask(job.cron, () => this.track(this.runDue(job.name)), {
        timezone: job.timezone,
        name: `auditgate:${job.name}`,
        noOverlap: false,
      });
      this.tasks.push(task);
      await task.start();
    }
    for (const job of this.o.registry.list()) this.track(this.runDue(job.name));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.tasks) await t.destroy();
    for (const t of this.timers) clearTimeout(t);
    await Promise.allSettled([...this.inflight]);
  }

  /** Resolves when every run started so far has finished (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.inflight.size) await Promise.allSettled([...this.inflight]);
  }

  private track<T>(p: Promise<T>): void {
    const q = p.catch((err) => this.o.onError?.(err, 'scheduler'));
    this.inflight.add(q);
    void q.finally(() => this.inflight.delete(q));
  }

  /** Slots of a job's cron in (from, to], oldest first. */
  slotsBetween(job: JobDefinition, from: Date, to: Date, limit = 10_000): Date[] {
    const task = cron.createTask(job.cron, () => undefined, { timezone: job.timezone });
    // node-cron walks its matcher forward from any date; older builds without it get a minute scan.
    const matcher = (task as unknown as { timeMatcher?: { getNextMatch(d: Date): Date } }).timeMatcher;
    const out: Date[] = [];
    let cursor = new Date(Math.floor(from.getTime() / 1000) * 1000);
    while (out.length < limit) {
      let next: Date | undefined;
      if (matcher) next = matcher.getNextMatch(cursor);
      else {
        for (let t = cursor.getTime() + 1000; t <= to.getTime(); t += 1000)
          if (task.match(new Date(t))) {
            next = new Date(t);
            break;
          }
      }
      if (!next || next.getTime() > to.getTime()) break;
      if (next.getTime() > from.getTime()) out.push(next);
      cursor = next;
    }
    void task.destroy();
    return out;
  }

  /**
   * Runs what is due for a job at `now`: abandoned and failed runs whose retry time came, and
   * every slot since the last run (catch-up beyond the newest is late). Safe to call from any
   * number of processes at once.
   */
  async runDue(name: string): Promise<void> {
    // Serialised per job within this process: a trigger that arrives while a pass is running
    // waits for it and then looks again, so nothing due is skipped.
    const prev = this.passes.get(name) ?? Promise.resolve();
    const pass = prev.catch(() => undefined).then(() => this.runDueOnce(name));
    this.passes.set(name, pass);
    try {
      await pass;
    } finally {
      if (this.passes.get(name) === pass) this.passes.delete(name);
    }
  }

  private readonly passes = new Map<string, Promise<void>>();

  private async runDueOnce(name: string): Promise<void> {
    if (this.stopped) return;
    const job = this.o.registry.get(name);
    if (!job) throw new JobDefinitionError(`no job ${name}`);
    this.running.add(name);
    const leaseMs = this.o.leaseMs ?? 10 * 60_000;
    try {
      const now = this.now();
      if (!(await this.store.acquireLease(name, this.o.holder, now, leaseMs))) return;
      try {
        for (const run of await this.store.abandoned(name, now)) {
          await this.store.fail(
            run.id,
            now.toISOString(),
            'the process running it stopped before it finished',
            now.toISOString(),
          );
        }
        for (const run of await this.store.dueRetries(name, now)) {
          if (this.stopped) return;
          if (await this.store.startRetry(run.id, this.o.holder, this.now().toISOString())) {
            await this.execute(job, (await this.store.get(run.id))!);
          }
        }
        const registeredAt =
          this.registered.get(name) ?? (await this.store.register(name, job.cron, job.timezone, now));
        const last = await this.store.latestExpected(name);
        const from = new Date(Math.max(Date.parse(registeredAt), last ? Date.parse(last) : 0));
        const slots = this.slotsBetween(job, from, now);
        const max = this.o.catchUpMax ?? 12;
        const tooOld = slots.slice(0, Math.max(0, slots.length - max));
        for (const s of tooOld) {
          await this.store.recordMissed(
            name,
            s.toISOString(),
            now.toISOString(),
            `missed while the service was down; more than ${max} slots behind, not caught up`,
          );
        }
        for (const slot of slots.slice(tooOld.length)) {
          if (this.stopped) return;
          await this.store.acquireLease(name, this.o.holder, this.now(), leaseMs);
          const startedAt = this.now();
          const late = startedAt.getTime() - slot.getTime() > (this.o.lateToleranceMs ?? 60_000);
          const run = await this.store.claim({
            job: name,
            expectedAt: slot.toISOString(),
            trigger: late ? 'catch-up' : 'schedule',
            late,
            holder: this.o.holder,
            startedAt: startedAt.toISOString(),
            periodLabel: job.periodFor?.(slot) ?? null,
          });
          if (run) await this.execute(job, run);
        }
      } finally {
        await this.store.releaseLease(name, this.o.holder);
      }
    } finally {
      this.running.delete(name);
    }
  }

  /** Runs a job now for a given slot (the API's "run now"); the slot must be free. */
  async runNow(
    name: string,
    expectedAt: Date,
    actor: AuditActor = SCHEDULER_ACTOR,
  ): Promise<RunRow | undefined> {
    const job = this.o.registry.get(name);
    if (!job) throw new JobDefinitionError(`no job ${name}`);
    const run = await this.store.claim({
      job: name,
      expectedAt: expectedAt.toISOString(),
      trigger: 'manual',
      late: false,
      holder: this.o.holder,
      startedAt: this.now().toISOString(),
      periodLabel: job.periodFor?.(expectedAt) ?? null,
    });
    if (!run) return undefined;
    await this.execute(job, run, actor);
    return this.store.get(run.id);
  }

  private async execute(job: JobDefinition, run: RunRow, actor: AuditActor = SCHEDULER_ACTOR): Promise<void> {
    const ctx: JobContext = {
      runId: run.id,
      job: job.name,
      expectedAt: new Date(run.expectedAt),
      trigger: run.trigger,
      late: run.late,
      attempt: run.attempts,
    };
    const base = {
      action: 'job.run',
      job: job.name,
      run_id: run.id,
      expected_at: run.expectedAt,
      trigger: run.trigger,
      late: run.late,
      attempt: run.attempts,
    };
    try {
      // Keep the lease while the job runs, so no other process takes a long run for abandoned.
      const leaseMs = this.o.leaseMs ?? 10 * 60_000;
      const heartbeat = setInterval(
        () => {
          this.store
            .acquireLease(job.name, this.o.holder, this.now(), leaseMs)
            .catch((err) => this.o.onError?.(err, job.name));
        },
        Math.max(1_000, Math.floor(leaseMs / 3)),
      );
      heartbeat.unref();
      let result: JobResult;
      try {
        result = await job.run(ctx);
      } finally {
        clearInterval(heartbeat);
      }
      const finished = this.now().toISOString();
      await this.store.succeed(
        run.id,
        finished,
        result.outputs,
        result.dataHash ?? null,
        result.periodLabel ?? run.periodLabel,
      );
      const idx = await this.o.log.append(
        reportRecord(
          'report.run',
          actor,
          {
            ...base,
            status: 'succeeded',
            period: result.periodLabel ?? run.periodLabel,
            data_sha256: result.dataHash ?? null,
            outputs: result.outputs,
          },
          this.o.instance,
        ),
      );
      await this.store.setLogIdx(run.id, idx);
    } catch (err) {
      const max = job.maxAttempts ?? 4;
      const delay = (job.retryBaseMs ?? 60_000) * 2 ** (run.attempts - 1);
      const now = this.now();
      const next = run.attempts < max ? new Date(now.getTime() + delay).toISOString() : null;
      const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
      await this.store.fail(run.id, now.toISOString(), message, next);
      try {
        const idx = await this.o.log.append(
          reportRecord(
            'report.run',
            actor,
            { ...base, status: 'failed', error: message, next_attempt_at: next },
            this.o.instance,
          ),
        );
        await this.store.setLogIdx(run.id, idx);
      } catch (logErr) {
        this.o.onError?.(logErr, job.name);
      }
      this.o.onError?.(err, job.name);
      if (next && !this.stopped && this.o.retryTimers !== false) {
        const timer = setTimeout(() => {
          this.timers.delete(timer);
          this.track(this.runDue(job.name));
        }, delay);
        timer.unref();
        this.timers.add(timer);
      }
    }
  }

  /** For /readyz details and the UI. */
  async health(): Promise<{ ok: boolean; detail: Record<string, JobHealth> }> {
    const detail: Record<string, JobHealth> = {};
    for (const job of this.o.registry.list()) {
      const runs = await this.store.runs(job.name, 20);
      const last = runs.find((r) => r.status !== 'missed') ?? runs[0];
      // A task that is not started has no next run in node-cron 4: walk the expression instead.
      const nextRun = this.slotsBetween(job, this.now(), new Date(this.now().getTime() + 366 * 86_400_000), 1)[0];
      detail[job.name] = {
        cron: job.cron,
        timezone: job.timezone,
        nextRun: nextRun ? nextRun.toISOString() : null,
        lastRun: last
          ? {
              expectedAt: last.expectedAt,
              status: last.status,
              late: last.late,
              finishedAt: last.finishedAt,
              dataHash: last.dataHash,
            }
          : null,
        failing: runs
          .filter((r) => r.status === 'failed')
          .map((r) => ({
            runId: r.id,
            expectedAt: r.expectedAt,
            attempts: r.attempts,
            error: r.error,
            nextAttemptAt: r.nextAttemptAt,
          })),
      };
    }
    // A failing report must not take the gateway out of service: it is reported, not fatal.
    return { ok: true, detail };
  }
}
