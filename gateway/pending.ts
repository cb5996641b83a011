// Requests waiting for their answer, per direction, so each response record carries its latency
// (and the gateway knows which method a response answers, e.g. to filter list results).
import { idKey, type Classified } from './jsonrpc.ts';

export interface Answered {
  latencyMs: number;
  method?: string;
}

export class PendingRequests {
  private readonly started = new Map<string, { t0: number; method?: string }>();

  /** Notes the requests among `messages` as sent now. */
  sent(messages: readonly Classified[], at = performance.now()): void {
    for (const m of messages) if (m.kind === 'request') this.started.set(idKey(m.id), { t0: at, method: m.method });
  }

  /** For a response/error: how long since its request was sent, and its method (and forgets it). */
  take(m: Classified, at = performance.now()): Answered | undefined {
    if (m.kind !== 'response' && m.kind !== 'error') return undefined;
    const key = idKey(m.id);
    const s = this.started.get(key);
    if (s === undefined) return undefined;
    this.started.delete(key);
    const out: Answered = { latencyMs: Math.round((at - s.t0) * 1000) / 1000 };
    if (s.method) out.method = s.method;
    return out;
  }

  /** For a response/error: milliseconds since its request was sent (and forgets it); else undefined. */
  answered(m: Classified, at = performance.now()): number | undefined {
    return this.take(m, at)?.latencyMs;
  }

  has(m: Classified): boolean {
    return this.started.has(idKey(m.id));
  }

  get size(): number {
    return this.started.size;
  }

  clear(): void {
    this.started.clear();
  }
}
