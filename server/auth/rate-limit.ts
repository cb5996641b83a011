// Rate limits per identity and per target: token buckets in this process's memory (so with N
// gateway instances behind a balancer the effective limit is up to N times the configured one).
import type { AuditActor } from '../../gateway/audit-record.ts';
import type { RateLimit, RateLimitConfig } from './identity-config.ts';

interface Bucket {
  tokens: number;
  at: number;
}

export type RateDecision =
  | { ok: true }
  | { ok: false; scope: 'identity' | 'target'; limit: RateLimit; retryAfterSeconds: number; message: string };

const MAX_BUCKETS = 50_000;

function describe(l: RateLimit): string {
  const s = l.perMs / 1000;
  const per = s % 3600 === 0 ? `${s / 3600}h` : s % 60 === 0 ? `${s / 60}m` : `${s}s`;
  return `${l.requests} requests per ${per}`;
}

/** Who a limit is counted against: one principal across its keys/tokens, per issuer. */
export function identityKey(actor: AuditActor): string {
  return `${actor.issuer ?? actor.auth_method}\u0000${actor.subject}`;
}

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly cfg: RateLimitConfig,
    private readonly now: () => number = Date.now,
  ) {}

  get enabled(): boolean {
    return Boolean(this.cfg.perIdentity || this.cfg.perTarget || Object.keys(this.cfg.targets).length);
  }

  private level(key: string, l: RateLimit, t: number): Bucket {
    let b = this.buckets.get(key);
    if (!b) {
      if (this.buckets.size >= MAX_BUCKETS) this.prune(t);
      b = { tokens: l.requests, at: t };
      this.buckets.set(key, b);
    }
    b.tokens = Math.min(l.requests, b.tokens + ((t - b.at) * l.requests) / l.perMs);
    b.at = t;
    return b;
  }

  /** Drops buckets that have refilled completely: they hold no information. */
  private prune(t: number): void {
    const longest = Math.max(
      this.cfg.perIdentity?.perMs ?? 0,
      this.cfg.perTarget?.perMs ?? 0,
      ...Object.values(this.cfg.targets).map((l) => l.perMs),
    );
    for (const [k, b] of this.buckets) if (t - b.at >= longest) this.buckets.delete(k);
  }

  /** Takes one request from both the identity's and the target's bucket, or neither. */
  take(actor: AuditActor, target: string): RateDecision {
    const t = this.now();
    const checks: Array<{ scope: 'identity' | 'target'; key: string; limit: RateLimit }> = [];
    if (this.cfg.perIdentity)
      checks.push({ scope: 'identity', key: `i\u0000${identityKey(actor)}`, limit: this.cfg.perIdentity });
    const tl = this.cfg.targets[target] ?? this.cfg.perTarget;
    if (tl) checks.push({ scope: 'target', key: `t\u0000${target}`, limit: tl });
    const levels = checks.map((c) => ({ ...c, bucket: this.level(c.key, c.limit, t) }));
    const short = levels.find((l) => l.bucket.tokens < 1);
    if (short) {
      const waitMs = ((1 - short.bucket.tokens) * short.limit.perMs) / short.limit.requests;
      const who = short.scope === 'identity' ? actor.subject : `target ${target}`;
      return {
        ok: false,
        scope: short.scope,
        limit: short.limit,
        retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)),
        message: `rate limit exceeded for ${who}: ${describe(short.limit)}`,
      };
    }
    for (const l of levels) l.bucket.tokens -= 1;
    return { ok: true };
  }
}
