// AccessReviewSource over auditgate's own stores: api_keys (migration 002), IdP subjects seen in
// the audit log, and use aggregated in SQL from audit_events — bounded by a tree size so the same
// query over the same log always returns the same rows. Nothing here loads the log into memory.
import type { AuditLog } from '../audit/log.ts';
import type { Db } from '../db.ts';
import type {
  AccessReviewSource,
  CredentialSpreadRecord,
  EntitlementRecord,
  IdentityRecord,
  LogCheckpointRef,
  Sourced,
  SourceDescription,
  TargetRecord,
  UsageRecord,
} from '../../reports/access-types.ts';
import type { Period } from '../../reports/period.ts';
import { hourBucket, intOut, isoOrNull, isoOut, runQuery, logBoundary } from './sql.ts';
import type { ReportsConfig } from './report-config.ts';
import type { PolicyEngine } from '../policy/policy.ts';
import type { AuditActor } from '../../gateway/audit-record.ts';

/** Roles that carry administrative power over the gateway itself. */
const PRIVILEGED_ROLES = new Set(['admin', 'approver']);
const MCP_ROLE = 'agent';
const TICKET = /\b[A-Z][A-Z0-9]+-\d+\b/;

/** Account id as the usage queries compute it: the API key id, else "<issuer>#<subject>". */
export const ACCOUNT_SQL =
  "CASE WHEN key_id IS NOT NULL THEN key_id ELSE COALESCE(issuer, '') || '#' || subject END";

export interface AccessSourceOptions {
  db: Db;
  log: Pick<AuditLog, 'head' | 'rootAt' | 'entries' | 'syncIndex'>;
  config: ReportsConfig;
  /** Configured MCP targets (server/targets.ts); targets seen in the log are added. */
  targetNames?: () => string[] | Promise<string[]>;
  /** The per-tool policy in force: entitlements become the tools it allows each account. */
  policy?: () => PolicyEngine;
}

export class SqlAccessReviewSource implements AccessReviewSource {
  constructor(private readonly o: AccessSourceOptions) {}

  async checkpoint(asOf: string): Promise<LogCheckpointRef> {
    const ref = await logBoundary(this.o.db, this.o.log, asOf);
    this.upToSize = ref.size;
    return ref;
  }

  async identities(asOf: string, period: Period, upTo: LogCheckpointRef): Promise<Sourced<IdentityRecord>> {
    const { db, config } = this.o;
    const keys = await runQuery<Record<string, unknown>>(
      db,
      'api_keys (active at snapshot)',
      `SELECT id, subject, roles, created_at, created_by, expires_at, description FROM api_keys
       WHERE created_at <= ? AND (revoked_at IS NULL OR revoked_at > ?) AND (expires_at IS NULL OR expires_at > ?)
       ORDER BY id`,
      [asOf, asOf, asOf],
      asOf,
    );
    const idp = await runQuery<Record<string, unknown>>(
      db,
      'audit_events (IdP subjects seen in period)',
      `SELECT COALESCE(issuer, '') AS issuer, subject, MIN(ts) AS first_seen, MAX(idx) AS last_idx,
              SUM(CASE WHEN auth_method = 'session' THEN 1 ELSE 0 END) AS sessions
       FROM audit_events
       WHERE idx < ? AND ts >= ? AND ts < ? AND auth_method IN ('oidc', 'session') AND subject IS NOT NULL
       GROUP BY COALESCE(issuer, ''), subject ORDER BY 1, 2`,
      [upTo.size, period.start, period.end],
      asOf,
    );
    const rows: IdentityRecord[] = [];
    this.keyRoles.clear();
    for (const k of keys.rows) {
      const roles = parseRoles(k.roles);
      const subject = String(k.subject);
      const owner = config.identities[String(k.id)] ?? config.identities[subject] ?? {};
      this.keyRoles.set(String(k.id), {
        roles,
        createdAt: String(k.created_at),
        createdBy: String(k.created_by),
        description: k.description ? String(k.description) : undefined,
      });
      rows.push({
        accountId: String(k.id),
        subject,
        type: owner.type ?? (roles.includes(MCP_ROLE) ? 'agent' : 'service'),
        person: owner.person,
        manager: owner.manager,
        authMethod: 'api_key',
        createdAt: isoOut(k.created_at),
        createdBy: String(k.created_by),
        expiresAt: k.expires_at ? isoOut(k.expires_at) : undefined,
        source: 'api_keys',
      });
    }
    this.idpRoles.clear();
    for (const s of idp.rows) {
      const subject = String(s.subject);
      const accountId = `${s.issuer}#${subject}`;
      const human = intOut(s.sessions) > 0;
      const owner = config.identities[accountId] ?? config.identities[subject] ?? {};
      const actor = await this.lastActor(intOut(s.last_idx));
      this.idpRoles.set(accountId, {
        roles: actor.roles,
        groups: actor.groups,
        firstSeen: isoOut(s.first_seen),
      });
      rows.push({
        accountId,
        subject,
        type: owner.type ?? (human ? 'human' : 'agent'),
        // A person signing in is accountable for their own account; a workload needs an owner on record.
        person: owner.person ?? (human ? subject : undefined),
        manager: owner.manager,
        authMethod: human ? 'oidc (sign-in)' : 'oidc',
        mfa: actor.mfa,
        createdAt: isoOut(s.first_seen),
        createdBy: String(s.issuer) || undefined,
        source: 'audit_events',
      });
    }
    rows.sort((a, b) => (a.accountId < b.accountId ? -1 : a.accountId > b.accountId ? 1 : 0));
    return { rows, sources: [keys.source, idp.source] };
  }

  private readonly keyRoles = new Map<
    string,
    { roles: string[]; createdAt: string; createdBy: string; description?: string }
  >();
  private readonly idpRoles = new Map<string, { roles: string[]; groups: string[]; firstSeen: string }>();

  /** Roles and groups of an IdP subject, from the actor of its latest entry (the log holds what the token said). */
  private async lastActor(idx: number): Promise<{ roles: string[]; groups: string[]; mfa?: boolean }> {
    for await (const e of this.o.log.entries(idx, idx + 1)) {
      try {
        const rec = JSON.parse(e.data.toString('utf8')) as {
          actor?: { roles?: unknown; groups?: unknown; amr?: unknown };
        };
        const roles = Array.isArray(rec.actor?.roles) ? rec.actor.roles.map(String) : [];
        const groups = Array.isArray(rec.actor?.groups) ? rec.actor.groups.map(String) : [];
        const amr = Array.isArray(rec.actor?.amr) ? rec.actor.amr.map(String) : undefined;
        return {
          roles,
          groups,
          mfa: amr ? amr.includes('mfa') || amr.includes('otp') || amr.includes('hwk') : undefined,
        };
      } catch {
        return { roles: [], groups: [] };
      }
    }
    return { roles: [], groups: [] };
  }

  async entitlements(identities: IdentityRecord[], asOf: string): Promise<Sourced<EntitlementRecord>> {
    const targets = await this.targetList();
    const rows: EntitlementRecord[] = [];
    const extraSources: SourceDescription[] = [];
    // The tools each target is known to have: every tool called (or refused) up to the snapshot,
    // plus the tools configured as privileged.
    const catalog = new Map<string, string[]>();
    if (this.o.policy && this.o.policy().rules.length > 0) {
      const r = await runQuery<Record<string, unknown>>(
        this.o.db,
        'audit_events (tool catalogue per target)',
        `SELECT DISTINCT target, name FROM audit_events
         WHERE idx < ? AND jsonrpc_method = 'tools/call' AND name IS NOT NULL AND target IS NOT NULL ORDER BY 1, 2`,
        [this.upToSize],
        asOf,
      );
      extraSources.push(r.source);
      for (const x of r.rows)
        catalog.set(String(x.target), [...(catalog.get(String(x.target)) ?? []), String(x.name)]);
      for (const t of targets) {
        const known = new Set(catalog.get(t.name) ?? []);
        for (const p of t.privilegedTools ?? []) known.add(p);
        catalog.set(t.name, [...known].sort());
      }
    }
    for (const id of identities) {
      const key = this.keyRoles.get(id.accountId);
      const idp = this.idpRoles.get(id.accountId);
      const roles = key?.roles ?? idp?.roles ?? [];
      const grantPath = key ? 'direct' : idp?.groups.length ? 'group' : 'role';
      const grantRef = key
        ? 'API key roles'
        : idp?.groups.length
          ? `groups: ${idp.groups.join(', ')}`
          : 'token roles';
      const approvalRef = key?.description ? TICKET.exec(key.description)?.[0] : undefined;
      const policy = this.o.policy?.();
      for (const role of [...new Set(roles)].sort()) {
        if (role === MCP_ROLE && policy && policy.rules.length > 0) {
          // Effective entitlements under the policy: every known tool of every target it allows.
          const actor: AuditActor = {
            subject: id.subject,
            auth_method: key ? 'api_key' : id.authMethod.startsWith('oidc (') ? 'session' : 'oidc',
            roles,
            ...(key ? { key_id: id.accountId } : {}),
            ...(idp?.groups.length ? { groups: idp.groups } : {}),
            ...(!key && id.accountId.includes('#') && id.accountId.split('#')[0]
              ? { issuer: id.accountId.split('#')[0] }
              : {}),
          };
          for (const t of targets) {
            for (const tool of catalog.get(t.name) ?? []) {
              const d = policy.decide(actor, { target: t.name, method: 'tools/call', name: tool });
              if (!d.allow) continue;
              const rule = policy.rules.find((r) => r.name === d.rule);
              rows.push({
                accountId: id.accountId,
                target: t.name,
                tool,
                role,
                privileged: !!t.privilegedTools?.includes(tool),
                grantPath: rule?.subjects ? 'direct' : rule?.groups ? 'group' : 'role',
                grantRef: `policy rule ${d.rule}`,
                grantedAt: key?.createdAt ?? idp?.firstSeen,
                grantedBy: key?.createdBy,
                approvalRef,
              });
            }
          }
        } else if (role === MCP_ROLE) {
          // No per-tool policy store to consult here: the agent role reaches every tool of every target.
          for (const t of targets) {
            rows.push({
              accountId: id.accountId,
              target: t.name,
              tool: '*',
              role,
              privileged: t.privilegedTools !== undefined && t.privilegedTools.length > 0,
              grantPath,
              grantRef,
              grantedAt: key?.createdAt ?? idp?.firstSeen,
              grantedBy: key?.createdBy,
              approvalRef,
            });
          }
        } else {
          rows.push({
            accountId: id.accountId,
            target: 'auditgate',
            tool: '',
            role,
            privileged: PRIVILEGED_ROLES.has(role),
            grantPath,
            grantRef,
            grantedAt: key?.createdAt ?? idp?.firstSeen,
            grantedBy: key?.createdBy,
            approvalRef,
          });
        }
      }
    }
    const policy = this.o.policy?.();
    const text =
      policy && policy.rules.length
        ? `roles of each account (api_keys.roles; IdP: actor.roles/groups of the latest entry) × tools allowed by policy ${policy.hash}`
        : 'roles of each account (api_keys.roles; IdP: actor.roles of the latest entry) × MCP targets for role agent (no policy: every tool)';
    return {
      rows,
      sources: [
        ...extraSources,
        {
          name: 'effective entitlements (derived)',
          query: text,
          queryHash: (await import('node:crypto')).createHash('sha256').update(text).digest('hex'),
          asOf,
          rows: rows.length,
        },
      ],
    };
  }

  async usage(period: Period, upTo: LogCheckpointRef): Promise<Sourced<UsageRecord>> {
    const r = await runQuery<Record<string, unknown>>(
      this.o.db,
      'audit_events (use per account, target, tool)',
      `SELECT ${ACCOUNT_SQL} AS account, target, COALESCE(name, '') AS tool,
              MIN(ts) AS first_ts, MAX(ts) AS last_ts, COUNT(*) AS calls, MIN(idx) AS first_idx, MAX(idx) AS last_idx
       FROM audit_events
       WHERE idx < ? AND ts >= ? AND ts < ? AND event = 'mcp.message' AND direction = 'client_to_upstream'
         AND kind = 'request' AND subject IS NOT NULL AND target IS NOT NULL
       GROUP BY ${ACCOUNT_SQL}, target, COALESCE(name, '') ORDER BY 1, 2, 3`,
      [upTo.size, period.start, period.end],
      period.end,
    );
    const denied = await runQuery<Record<string, unknown>>(
      this.o.db,
      'audit_events (refusals per account, target, tool)',
      `SELECT ${ACCOUNT_SQL} AS account, target, COALESCE(name, '') AS tool, COUNT(*) AS n
       FROM audit_events
       WHERE idx < ? AND ts >= ? AND ts < ? AND event = 'mcp.refused' AND subject IS NOT NULL AND target IS NOT NULL
       GROUP BY ${ACCOUNT_SQL}, target, COALESCE(name, '') ORDER BY 1, 2, 3`,
      [upTo.size, period.start, period.end],
      period.end,
    );
    const deniedBy = new Map(
      denied.rows.map((d) => [`${d.account}\u0000${d.target}\u0000${d.tool}`, intOut(d.n)]),
    );
    const rows: UsageRecord[] = r.rows.map((u) => ({
      accountId: String(u.account),
      target: String(u.target),
      tool: String(u.tool),
      firstUsedAt: isoOut(u.first_ts),
      lastUsedAt: isoOut(u.last_ts),
      calls: intOut(u.calls),
      denied: deniedBy.get(`${u.account}\u0000${u.target}\u0000${u.tool}`) ?? 0,
      firstLeaf: intOut(u.first_idx),
      lastLeaf: intOut(u.last_idx),
    }));
    return { rows, sources: [r.source, denied.source] };
  }

  async credentialSpread(period: Period, upTo: LogCheckpointRef): Promise<Sourced<CredentialSpreadRecord>> {
    const hb = hourBucket(this.o.db);
    const r = await runQuery<Record<string, unknown>>(
      this.o.db,
      'audit_events (client addresses per credential and hour)',
      `SELECT account, MAX(n) AS max_per_hour FROM (
         SELECT ${ACCOUNT_SQL} AS account, ${hb} AS hour, COUNT(DISTINCT client_address) AS n
         FROM audit_events
         WHERE idx < ? AND ts >= ? AND ts < ? AND event = 'mcp.message' AND direction = 'client_to_upstream'
           AND subject IS NOT NULL AND client_address IS NOT NULL
         GROUP BY ${ACCOUNT_SQL}, ${hb}) per_hour
       GROUP BY account ORDER BY account`,
      [upTo.size, period.start, period.end],
      period.end,
    );
    const total = await runQuery<Record<string, unknown>>(
      this.o.db,
      'audit_events (client addresses per credential)',
      `SELECT ${ACCOUNT_SQL} AS account, COUNT(DISTINCT client_address) AS n
       FROM audit_events
       WHERE idx < ? AND ts >= ? AND ts < ? AND event = 'mcp.message' AND direction = 'client_to_upstream'
         AND subject IS NOT NULL AND client_address IS NOT NULL
       GROUP BY ${ACCOUNT_SQL} ORDER BY 1`,
      [upTo.size, period.start, period.end],
      period.end,
    );
    const totals = new Map(total.rows.map((t) => [String(t.account), intOut(t.n)]));
    return {
      rows: r.rows.map((x) => ({
        accountId: String(x.account),
        maxAddressesPerHour: intOut(x.max_per_hour),
        distinctAddresses: totals.get(String(x.account)) ?? 0,
      })),
      sources: [r.source, total.source],
    };
  }

  async targets(): Promise<TargetRecord[]> {
    return this.targetList();
  }

  private cachedTargets?: TargetRecord[];
  private upToSize = 0;

  private async targetList(): Promise<TargetRecord[]> {
    if (this.cachedTargets) return this.cachedTargets;
    const names = new Set<string>(this.o.targetNames ? await this.o.targetNames() : []);
    for (const n of Object.keys(this.o.config.targets)) names.add(n);
    // Bounded by the snapshot's tree size, so a target first seen later does not change this report.
    const seen = await this.o
      .db('audit_events')
      .distinct('target')
      .whereNotNull('target')
      .where('idx', '<', this.upToSize);
    for (const s of seen as Array<{ target: string }>) names.add(s.target);
    this.cachedTargets = [...names].sort().map((name) => ({
      name,
      owner: this.o.config.targets[name]?.owner,
      privilegedTools: this.o.config.targets[name]?.privilegedTools ?? [],
    }));
    return this.cachedTargets;
  }
}

function parseRoles(v: unknown): string[] {
  try {
    const r = typeof v === 'string' ? JSON.parse(v) : v;
    return Array.isArray(r) ? r.map(String) : [];
  } catch {
    return [];
  }
}

export { isoOrNull };
