// Persistence for scheduled jobs: one row per (job, expected time) — unique, so a slot runs at
// most once across every process on the database — plus a lease per job so only one process
// works on a job at a time, and the registration time that bounds catch-up.
import { randomUUID } from 'node:crypto';
import type { Db } from '../db.ts';
import { toInt } from '../db.ts';
import type { RunExceptionRecord } from '../../reports/run-exceptions.ts';

export type RunStatus = 'running' | 'succeeded' | 'failed' | 'missed';
export type RunTrigger = 'schedule' | 'catch-up' | 'retry' | 'manual';

export interface RunRow {
  id: string;
  job: string;
  periodLabel: string | null;
  expectedAt: string;
  trigger: RunTrigger;
  status: RunStatus;
  late: boolean;
  attempts: number;
  startedAt: string | null;
  finishedAt: string | null;
  nextAttemptAt: string | null;
  error: string | null;
  outputs: Record<string, string> | null;
  dataHash: string | null;
  holder: string | null;
  logIdx: number | null;
}

const isUniqueViolation = (err: unknown) => {
  const e = err as { code?: string; message?: string };
  return (
    e.code === '23505' ||
    e.code === 'SQLITE_CONSTRAINT_UNIQUE' ||
    e.code === 'SQLITE_CONSTRAINT_PRIMARYKEY' ||
    /UNIQUE constraint failed/.test(e.message ?? '')
  );
};

export class JobStore {
  constructor(private readonly db: Db) {}

  /** Records when a job was first scheduled (kept on later starts). */
  async register(job: string, cron: string, timezone: string, now: Date): Promise<string> {
    try {
      await this.db('report_jobs').insert({ job, cron, timezone, registered_at: now.toISOString() });
    } catch (err) {
      if (!isUniqueViolation(err)) throw err;
      await this.db('report_jobs').where({ job }).update({ cron, timezone });
    }
    return (await this.db('report_jobs').where({ job }).first()).registered_at as string;
  }

  /**
   * Takes or renews the job's lease. Returns false while another holder's lease is live.
   * The conditional UPDATE is atomic on both databases, so two processes cannot both win.
   */
  async acquireLease(job: string, holder: string, now: Date, ttlMs: number): Promise<boolean> {
    const expires = new Date(now.getTime() + ttlMs).toISOString();
    try {
      await this.db('report_job_leases').insert({ job, holder, expires_at: expires });
      return true;
    } catch (err) {
      if (!isUniqueViolation(err)) throw err;
    }
    const n = await this.db('report_job_leases')
      .where({ job })
      .andWhere((q) => q.where('holder', holder).orWhere('expires_at', '<', now.toISOString()))
      .update({ holder, expires_at: expires });
    return toInt(n) === 1;
  }

  async releaseLease(job: string, holder: string): Promise<void> {
    await this.db('report_job_leases')
      .where({ job, holder })
      .update({ expires_at: new Date(0).toISOString() });
  }

  /** Claims a slot: inserts its run row. false when the slot already has a run (by anyone). */
  async claim(input: {
    job: string;
    expectedAt: string;
    trigger: RunTrigger;
    late: boolean;
    holder: string;
    startedAt: string;
    periodLabel: string | null;
  }): Promise<RunRow | undefined> {
    const id = randomUUID();
    try {
      await this.db('report_runs').insert({
        id,
        job: input.job,
        period_label: input.periodLabel,
        expected_at: input.expectedAt,
        trigger: input.trigger,
        status: 'running',
        late: input.late,
        attempts: 1,
        started_at: input.startedAt,
        holder: input.holder,
      });
    } catch (err) {
      if (isUniqueViolation(err)) return undefined;
      throw err;
    }
    return this.get(id);
  }

  /** Records a slot that will not be run (too old to catch up): it still shows as an exception. */
  async recordMissed(job: string, expectedAt: string, now: string, reason: string): Promise<void> {
    try {
      await this.db('report_runs').insert({
        id: randomUUID(),
        job,
        expected_at: expectedAt,
        trigger: 'catch-up',
        status: 'missed',
        late: true,
        attempts: 0,
        finished_at: now,
        error: reason,
      });
    } catch (err) {
      if (!isUniqueViolation(err)) throw err;
    }
  }

  async startRetry(id: string, holder: string, startedAt: string): Promise<boolean> {
    const n = await this.db('report_runs')
      .where({ id, status: 'failed' })
      .update({
        status: 'running',
        holder,
        started_at: startedAt,
        attempts: this.db.raw('attempts + 1'),
        next_attempt_at: null,
        trigger: 'retry',
      });
    return toInt(n) === 1;
  }

  async succeed(
    id: string,
    finishedAt: string,
    outputs: Record<string, string>,
    dataHash: string | null,
    periodLabel: string | null,
  ): Promise<void> {
    await this.db('report_runs')
      .where({ id })
      .update({
        status: 'succeeded',
        finished_at: finishedAt,
        outputs: JSON.stringify(outputs),
        data_hash: dataHash,
        error: null,
        period_label: periodLabel,
      });
  }

  async fail(id: string, finishedAt: string, error: string, nextAttemptAt: string | null): Promise<void> {
    await this.db('report_runs')
      .where({ id })
      .update({
        status: 'failed',
        finished_at: finishedAt,
        error: error.slice(0, 2000),
        next_attempt_at: nextAttemptAt,
      });
  }

  async setLogIdx(id: string, logIdx: number): Promise<void> {
    await this.db('report_runs').where({ id }).update({ log_idx: logIdx });
  }

  async get(id: string): Promise<RunRow | undefined> {
    const r = await this.db('report_runs').where({ id }).first();
    return r ? toRun(r) : undefined;
  }

  async latestExpected(job: string): Promise<string | undefined> {
    const r = await this.db('report_runs').where({ job }).max({ m: 'expected_at' }).first();
    return (r?.m as string | null) ?? undefined;
  }

  async runs(job?: string, limit = 100): Promise<RunRow[]> {
    const q = this.db('report_runs')
      .orderBy([{ column: 'expected_at', order: 'desc' }, { column: 'id' }])
      .limit(limit);
    if (job) q.where({ job });
    return (await q).map(toRun);
  }

  /** Failed runs whose next attempt is due. */
  async dueRetries(job: string, now: Date): Promise<RunRow[]> {
    const rows = await this.db('report_runs')
      .where({ job, status: 'failed' })
      .whereNotNull('next_attempt_at')
      .andWhere('next_attempt_at', '<=', now.toISOString());
    return rows.map(toRun);
  }

  /** Runs marked running by a holder whose lease lapsed (the process died mid-run). */
  async abandoned(job: string, now: Date): Promise<RunRow[]> {
    const lease = await this.db('report_job_leases').where({ job }).first();
    if (lease && lease.expires_at >= now.toISOString()) return [];
    return (await this.db('report_runs').where({ job, status: 'running' })).map(toRun);
  }

  /** Late, failed or missed runs expected in [from, to): the exceptions a report lists. */
  async exceptionsBetween(job: string, fromIso: string, toIso: string): Promise<RunExceptionRecord[]> {
    const rows = await this.db('report_runs')
      .where({ job })
      .andWhere('expected_at', '>=', fromIso)
      .andWhere('expected_at', '<', toIso)
      .andWhere((q) => q.where('late', true).orWhereIn('status', ['failed', 'missed']))
      .orderBy([{ column: 'expected_at' }, { column: 'id' }]);
    return rows.map((r: any) => {
      const run = toRun(r);
      const status: RunExceptionRecord['status'] =
        run.status === 'failed' ? 'failed' : run.status === 'missed' ? 'missed' : 'late';
      const detail =
        status === 'failed'
          ? `failed after ${run.attempts} attempt(s): ${run.error ?? 'unknown error'}`
          : status === 'missed'
            ? (run.error ?? 'not run')
            : `ran late (${run.trigger}) at ${run.startedAt}${run.status === 'succeeded' ? '' : `, status ${run.status}`}`;
      return { job, runId: run.id, expectedAt: run.expectedAt, status, detail };
    });
  }
}

function toRun(r: any): RunRow {
  return {
    id: r.id,
    job: r.job,
    periodLabel: r.period_label ?? null,
    expectedAt: r.expected_at,
    trigger: r.trigger,
    status: r.status,
    late: r.late === true || r.late === 1,
    attempts: toInt(r.attempts),
    startedAt: r.started_at ?? null,
    finishedAt: r.finished_at ?? null,
    nextAttemptAt: r.next_attempt_at ?? null,
    error: r.error ?? null,
    outputs: r.outputs ? JSON.parse(r.outputs) : null,
    dataHash: r.data_hash ?? null,
    holder: r.holder ?? null,
    logIdx: r.log_idx === null || r.log_idx === undefined ? null : toInt(r.log_idx),
  };
}
