// Access-review campaigns on the database: launch freezes and stores the snapshot; decisions,
// reassignments and sign-offs are validated by the pure model (reports/campaign.ts), stored, and
// each recorded in the audit log before the call returns.
import { randomUUID } from 'node:crypto';
import type { AuditActor } from '../../gateway/audit-record.ts';
import type { Db } from '../db.ts';
import { toInt } from '../db.ts';
import { canonicalBytes, sha256Hex } from '../../reports/canonical.ts';
import {
  buildSnapshot,
  collectSnapshotInput,
  stripUndefined,
  type AccessSnapshot,
} from '../../reports/access-snapshot.ts';
import type { AccessReviewSource } from '../../reports/access-types.ts';
import {
  checkDecision,
  checkReassignment,
  makeSignoff,
  ReviewRuleError,
  type Decision,
  type DecisionKind,
  type Reassignment,
  type Signoff,
  type SignoffRole,
} from '../../reports/campaign.ts';
import { buildAccessReview, type AccessReviewData } from '../../reports/access-review.ts';
import { previousPeriod, type Period } from '../../reports/period.ts';
import type { RunExceptionRecord } from '../../reports/run-exceptions.ts';
import type { ReportsConfig } from './report-config.ts';
import { reportRecord, type RecordSink } from './audit-entries.ts';
import { VERSION } from '../version.ts';

export class CampaignNotFoundError extends Error {
  override name = 'CampaignNotFoundError';
  constructor(readonly campaignId: string) {
    super(`no access-review campaign ${campaignId}`);
  }
}

export class CampaignStateError extends Error {
  override name = 'CampaignStateError';
}

export interface CampaignRow {
  id: string;
  period: Period;
  asOf: string;
  status: 'open' | 'completed';
  launchedBy: string;
  launchedAt: string;
  snapshotHash: string;
  completionHash: string | null;
  completedAt: string | null;
}

export interface CampaignState {
  decisions: Decision[];
  reassignments: Reassignment[];
  signoffs: Signoff[];
}

export interface CampaignStoreOptions {
  db: Db;
  log: RecordSink;
  source: AccessReviewSource;
  config: ReportsConfig;
  instance: string;
  /** Missed/failed scheduled runs to list as exceptions (the job store). */
  runExceptions?: (fromIso: string, toIso: string) => Promise<RunExceptionRecord[]>;
  now?: () => Date;
}

const iso = (d: Date) => d.toISOString();

export class CampaignStore {
  private readonly now: () => Date;
  constructor(private readonly o: CampaignStoreOptions) {
    this.now = o.now ?? (() => new Date());
  }

  /** Freezes the population as of `asOf` (default: the period's end) and stores it. */
  async launch(input: { period: Period; asOf?: string; actor: AuditActor }): Promise<CampaignRow> {
    const previous = await this.previousLines(input.period);
    const snapshot = buildSnapshot(
      await collectSnapshotInput(this.o.source, {
        period: input.period,
        asOf: input.asOf,
        settings: this.o.config.settings,
        previous,
      }),
    );
    const id = randomUUID();
    const launchedAt = iso(this.now());
    const bytes = canonicalBytes(stripUndefined(snapshot));
    const logIdx = await this.o.log.append(
      reportRecord(
        'report.run',
        input.actor,
        {
          action: 'access_review.launch',
          campaign_id: id,
          period: input.period.label,
          as_of: snapshot.asOf,
          snapshot_sha256: snapshot.hash,
          lines: snapshot.lines.length,
          tree_size: snapshot.checkpoint.size,
        },
        this.o.instance,
      ),
    );
    await this.o.db.transaction(async (trx) => {
      await trx('report_campaigns').insert({
        id,
        period_label: input.period.label,
        period_start: input.period.start,
        period_end: input.period.end,
        as_of: snapshot.asOf,
        status: 'open',
        launched_by: input.actor.subject,
        launched_at: launchedAt,
        snapshot_hash: snapshot.hash,
        snapshot: bytes.toString('utf8'),
        launch_log_idx: logIdx,
      });
      const rows = snapshot.lines.map((l, position) => ({
        campaign_id: id,
        item_id: l.itemId,
        position,
        target: l.target,
        subject: l.subject,
        reviewer: l.reviewer,
        privileged: l.privileged,
        flags: l.flags.join(','),
      }));
      for (let i = 0; i < rows.length; i += 200)
        await trx('report_campaign_lines').insert(rows.slice(i, i + 200));
    });
    return (await this.get(id))!;
  }

  async get(id: string): Promise<CampaignRow | undefined> {
    const r = await this.o.db('report_campaigns').where({ id }).first();
    return r ? toCampaign(r) : undefined;
  }

  async list(): Promise<CampaignRow[]> {
    const rows = await this.o
      .db('report_campaigns')
      .orderBy([{ column: 'launched_at', order: 'desc' }, { column: 'id' }]);
    return rows.map(toCampaign);
  }

  async latestForPeriod(label: string): Promise<CampaignRow | undefined> {
    const r = await this.o
      .db('report_campaigns')
      .where({ period_label: label })
      .orderBy('launched_at', 'desc')
      .first();
    return r ? toCampaign(r) : undefined;
  }

  async snapshot(id: string, which: 'launch' | 'completion' = 'launch'): Promise<AccessSnapshot | undefined> {
    const r = await this.o.db('report_campaigns').where({ id }).first();
    if (!r) throw new CampaignNotFoundError(id);
    const text = which === 'launch' ? r.snapshot : r.completion_snapshot;
    if (!text) return undefined;
    const expected = which === 'launch' ? r.snapshot_hash : r.completion_hash;
    // Parsing and re-canonicalising a large snapshot costs far more than hashing its text: keep
    // the verified result per exact stored text (any change to the text misses the cache).
    const textHash = sha256Hex(text);
    const cached = this.verified.get(textHash);
    if (cached && cached.hash === expected) return cached;
    const snap = JSON.parse(text) as Omit<AccessSnapshot, 'hash'> & { hash: string };
    // The stored bytes are evidence: refuse to review a snapshot that no longer matches its hash.
    const { hash, ...body } = snap;
    if (sha256Hex(canonicalBytes(body)) !== expected || hash !== expected) {
      throw new CampaignStateError(
        `campaign ${id}: stored ${which} snapshot does not match its hash ${expected}`,
      );
    }
    if (this.verified.size >= 8) this.verified.delete(this.verified.keys().next().value!);
    this.verified.set(textHash, snap as AccessSnapshot);
    return snap as AccessSnapshot;
  }

  /** Verified snapshots by SHA-256 of their stored text (shared: never mutate them). */
  private readonly verified = new Map<string, AccessSnapshot>();

  async state(id: string): Promise<CampaignState> {
    const db = this.o.db;
    const [d, r, s] = await Promise.all([
      db('report_decisions').where({ campaign_id: id }).orderBy('id'),
      db('report_reassignments').where({ campaign_id: id }).orderBy('id'),
      db('report_signoffs').where({ campaign_id: id }).orderBy('id'),
    ]);
    return {
      decisions: d.map((x: any) =>
        stripUndefined({
          itemId: x.item_id,
          decision: x.decision,
          rationale: x.rationale,
          decidedBy: x.decided_by,
          decidedAt: x.decided_at,
          modifyTo: x.modify_to ?? undefined,
          remediationRef: x.remediation_ref ?? undefined,
          remediatedAt: x.remediated_at ?? undefined,
        }),
      ),
      reassignments: r.map((x: any) => ({
        itemId: x.item_id,
        from: x.from_reviewer,
        to: x.to_reviewer,
        by: x.by,
        at: x.at,
        reason: x.reason,
      })),
      signoffs: s.map((x: any) => ({
        role: x.role,
        signer: x.signer,
        signedAt: x.signed_at,
        statement: x.statement,
        reviewDataHash: x.review_data_hash,
        seal: x.seal,
      })),
    };
  }

  private async openCampaign(
    id: string,
  ): Promise<{ row: CampaignRow; snap: AccessSnapshot; state: CampaignState }> {
    const row = await this.get(id);
    if (!row) throw new CampaignNotFoundError(id);
    if (row.status !== 'open') throw new CampaignStateError(`campaign ${id} is ${row.status}`);
    const snap = (await this.snapshot(id))!;
    return { row, snap, state: await this.state(id) };
  }

  async decide(
    id: string,
    input: { itemId: string; decision: DecisionKind; rationale: string; modifyTo?: string },
    actor: AuditActor,
  ): Promise<Decision> {
    const { snap, state } = await this.openCampaign(id);
    if (!['keep', 'revoke', 'modify'].includes(input.decision)) {
      throw new ReviewRuleError(`decision must be keep, revoke or modify`, 'conflict');
    }
    const d: Decision = stripUndefined({
      itemId: input.itemId,
      decision: input.decision,
      rationale: input.rationale.trim(),
      decidedBy: actor.subject,
      decidedAt: iso(this.now()),
      modifyTo: input.modifyTo?.trim() || undefined,
    });
    checkDecision(snap, state.reassignments, d);
    const logIdx = await this.o.log.append(
      reportRecord(
        'report.run',
        actor,
        {
          action: 'access_review.decision',
          campaign_id: id,
          item_id: d.itemId,
          decision: d.decision,
          rationale: d.rationale,
          ...(d.modifyTo ? { modify_to: d.modifyTo } : {}),
        },
        this.o.instance,
      ),
    );
    await this.o.db('report_decisions').insert({
      campaign_id: id,
      item_id: d.itemId,
      decision: d.decision,
      rationale: d.rationale,
      decided_by: d.decidedBy,
      decided_at: d.decidedAt,
      modify_to: d.modifyTo ?? null,
      log_idx: logIdx,
    });
    return d;
  }

  async reassign(
    id: string,
    input: { itemId: string; to: string; reason: string },
    actor: AuditActor,
  ): Promise<Reassignment> {
    const { snap, state } = await this.openCampaign(id);
    const current = (
      await this.o.db('report_campaign_lines').where({ campaign_id: id, item_id: input.itemId }).first()
    )?.reviewer;
    if (!current)
      throw new ReviewRuleError(`no line ${input.itemId} in this campaign's snapshot`, 'unknown_item');
    const r: Reassignment = {
      itemId: input.itemId,
      from: current,
      to: input.to.trim(),
      by: actor.subject,
      at: iso(this.now()),
      reason: input.reason.trim(),
    };
    checkReassignment(snap, state.reassignments, r);
    const logIdx = await this.o.log.append(
      reportRecord(
        'report.run',
        actor,
        {
          action: 'access_review.reassign',
          campaign_id: id,
          item_id: r.itemId,
          from: r.from,
          to: r.to,
          reason: r.reason,
        },
        this.o.instance,
      ),
    );
    await this.o.db.transaction(async (trx) => {
      await trx('report_reassignments').insert({
        campaign_id: id,
        item_id: r.itemId,
        from_reviewer: r.from,
        to_reviewer: r.to,
        by: r.by,
        at: r.at,
        reason: r.reason,
        log_idx: logIdx,
      });
      await trx('report_campaign_lines')
        .where({ campaign_id: id, item_id: r.itemId })
        .update({ reviewer: r.to });
    });
    return r;
  }

  /** Records that a revoke/modify decision was carried out (by the service or by hand, with a reference). */
  async recordRemediation(id: string, itemId: string, ref: string, actor: AuditActor): Promise<void> {
    const latest = await this.o
      .db('report_decisions')
      .where({ campaign_id: id, item_id: itemId })
      .orderBy('id', 'desc')
      .first();
    if (!latest || latest.decision === 'keep')
      throw new CampaignStateError(`${itemId} has no revoke/modify decision to carry out`);
    const at = iso(this.now());
    await this.o.log.append(
      reportRecord(
        'report.run',
        actor,
        { action: 'access_review.remediation', campaign_id: id, item_id: itemId, reference: ref },
        this.o.instance,
      ),
    );
    await this.o
      .db('report_decisions')
      .where({ id: latest.id })
      .update({ remediation_ref: ref, remediated_at: at });
  }

  async signoff(id: string, role: SignoffRole, actor: AuditActor): Promise<Signoff> {
    const { snap, state } = await this.openCampaign(id);
    if (role === 'control_owner' && actor.subject !== this.o.config.settings.controlOwner) {
      throw new ReviewRuleError(
        `${actor.subject} is not the control owner (${this.o.config.settings.controlOwner})`,
        'not_assigned',
      );
    }
    const so = makeSignoff(id, snap, state, { role, signer: actor.subject, signedAt: iso(this.now()) });
    const logIdx = await this.o.log.append(
      reportRecord(
        'report.run',
        actor,
        {
          action: 'access_review.signoff',
          campaign_id: id,
          role,
          review_data_sha256: so.reviewDataHash,
          seal: so.seal,
        },
        this.o.instance,
      ),
    );
    await this.o.db('report_signoffs').insert({
      campaign_id: id,
      role: so.role,
      signer: so.signer,
      signed_at: so.signedAt,
      statement: so.statement,
      review_data_hash: so.reviewDataHash,
      seal: so.seal,
      log_idx: logIdx,
    });
    return so;
  }

  /** Takes the completion snapshot (now) that verifies revocations; completes the campaign once the owner signed. */
  async complete(id: string, actor: AuditActor): Promise<CampaignRow> {
    const { row, state } = await this.openCampaign(id);
    const asOf = iso(this.now());
    const completion = buildSnapshot(
      await collectSnapshotInput(this.o.source, {
        period: row.period,
        asOf,
        settings: this.o.config.settings,
      }),
    );
    const owner = state.signoffs.some((s) => s.role === 'control_owner');
    await this.o.log.append(
      reportRecord(
        'report.run',
        actor,
        {
          action: 'access_review.complete',
          campaign_id: id,
          completion_snapshot_sha256: completion.hash,
          signed_off: owner,
        },
        this.o.instance,
      ),
    );
    await this.o
      .db('report_campaigns')
      .where({ id })
      .update({
        completion_hash: completion.hash,
        completion_snapshot: canonicalBytes(stripUndefined(completion)).toString('utf8'),
        completed_at: asOf,
        status: owner ? 'completed' : 'open',
      });
    return (await this.get(id))!;
  }

  async lines(id: string, opts: { reviewer?: string; offset?: number; limit?: number } = {}) {
    const q = this.o.db('report_campaign_lines').where({ campaign_id: id });
    if (opts.reviewer) q.andWhere({ reviewer: opts.reviewer });
    const total = toInt((await q.clone().count({ n: '*' }).first())?.n ?? 0);
    const rows = await q
      .orderBy('position')
      .offset(opts.offset ?? 0)
      .limit(Math.min(opts.limit ?? 100, 1000));
    const snap = await this.snapshot(id);
    const byId = new Map(snap!.lines.map((l) => [l.itemId, l]));
    const state = await this.state(id);
    const latest = new Map<string, Decision>();
    for (const d of state.decisions) latest.set(d.itemId, d);
    return {
      total,
      lines: rows.map((r: any) => ({
        ...byId.get(r.item_id)!,
        reviewer: r.reviewer,
        decision: latest.get(r.item_id) ?? null,
      })),
    };
  }

  /** The report data for a campaign: launch snapshot + decisions + sign-offs (+ completion snapshot). */
  async reportData(id: string): Promise<AccessReviewData> {
    const row = await this.get(id);
    if (!row) throw new CampaignNotFoundError(id);
    const launch = (await this.snapshot(id, 'launch'))!;
    const completion = await this.snapshot(id, 'completion');
    const state = await this.state(id);
    const runExceptions = this.o.runExceptions
      ? await this.o.runExceptions(row.period.start, row.launchedAt)
      : [];
    return buildAccessReview({
      campaignId: id,
      generatorVersion: VERSION,
      launch,
      completion,
      ...state,
      runExceptions,
    });
  }

  /** Lines of the latest campaign of the previous period, for new/removed since last review. */
  async previousLines(period: Period) {
    const prev = previousPeriod(period);
    const c = await this.latestForPeriod(prev.label);
    if (!c) return undefined;
    const snap = await this.snapshot(c.id);
    return { reportId: `AR-${prev.label}-${c.id.slice(0, 8)}`, lines: snap!.lines };
  }
}

function toCampaign(r: any): CampaignRow {
  return {
    id: r.id,
    period: { label: r.period_label, start: r.period_start, end: r.period_end },
    asOf: r.as_of,
    status: r.status,
    launchedBy: r.launched_by,
    launchedAt: r.launched_at,
    snapshotHash: r.snapshot_hash,
    completionHash: r.completion_hash ?? null,
    completedAt: r.completed_at ?? null,
  };
}
