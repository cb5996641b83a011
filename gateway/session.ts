// Legacy-era sessions: gateway-minted ids, each bound to the principal that created it. A session
// never authenticates anyone (the credential is checked on every request); it only scopes state.
import { randomBytes } from 'node:crypto';
import type { AuditActor, AuditClient } from './audit-record.ts';
import type { RecordContext } from './record.ts';
import type { TargetSpec } from './options.ts';

/** The identity a session belongs to: same subject through the same kind of credential and issuer. */
export function principalKey(actor: AuditActor): string {
  return JSON.stringify([actor.auth_method, actor.issuer ?? '', actor.subject]);
}

/** 192 random bits, base64url: visible ASCII as the spec requires, unguessable. */
export function mintSessionId(): string {
  return randomBytes(24).toString('base64url');
}

export abstract class Session {
  readonly createdAt = Date.now();
  lastActive = Date.now();
  ended = false;
  protocolVersion?: string;

  constructor(
    readonly id: string,
    readonly target: TargetSpec,
    readonly owner: string,
    /** The identity that opened the session: upstream-initiated traffic is attributed to it. */
    readonly actor: AuditActor,
    readonly client: AuditClient,
  ) {}

  abstract readonly transport: 'http' | 'stdio';

  /** Open client connections (streams) on this session; a session with any is not idle. */
  abstract openStreams(): number;

  /** Ends the session (upstream DELETE or process shutdown); records the close. Idempotent. */
  abstract close(reason: string): Promise<void>;

  /** Last resort at shutdown when close() did not finish in time: stop whatever runs, now. */
  abstract kill(): void;

  /** Context for records of upstream-initiated traffic on this session. */
  recordContext(): RecordContext {
    const ctx: RecordContext = {
      target: this.target.name,
      transport: this.transport,
      actor: this.actor,
      client: this.client,
      session: this.id,
    };
    if (this.protocolVersion) ctx.protocolVersion = this.protocolVersion;
    return ctx;
  }

  touch(): void {
    this.lastActive = Date.now();
  }
}

export class SessionRegistry {
  private readonly sessions = new Map<string, Session>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly idleMs: number) {
    this.timer = setInterval(() => void this.sweep(), Math.min(Math.max(idleMs / 4, 1_000), 60_000));
    this.timer.unref();
  }

  get(id: string): Session | undefined {
    const s = this.sessions.get(id);
    return s && !s.ended ? s : undefined;
  }

  add(s: Session): void {
    this.sessions.set(s.id, s);
  }

  remove(id: string): void {
    this.sessions.delete(id);
  }

  get size(): number {
    return this.sessions.size;
  }

  /** Live sessions of one target: all of them, and those of one owner (a principalKey). */
  countFor(target: string, owner: string): { all: number; owner: number } {
    let all = 0;
    let mine = 0;
    for (const s of this.sessions.values()) {
      if (s.ended || s.target.name !== target) continue;
      all++;
      if (s.owner === owner) mine++;
    }
    return { all, owner: mine };
  }

  async sweep(now = Date.now()): Promise<void> {
    for (const s of [...this.sessions.values()]) {
      if (s.ended) {
        this.sessions.delete(s.id);
        continue;
      }
      if (s.openStreams() === 0 && now - s.lastActive > this.idleMs) {
        this.sessions.delete(s.id);
        await s.close('idle').catch(() => {});
      }
    }
  }

  /** Closes every session; those not closed within `deadlineMs` (e.g. the audit store hangs) are killed. */
  async closeAll(reason: string, deadlineMs: number): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    const all = [...this.sessions.values()];
    this.sessions.clear();
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), deadlineMs);
    });
    const done = Promise.allSettled(all.map((s) => s.close(reason)));
    if ((await Promise.race([done, late])) === 'late') for (const s of all) s.kill();
    clearTimeout(timer);
  }
}
