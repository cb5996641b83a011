// Requests waiting for their answer, per direction, so each response record carries its latency.
import { idKey, type Classified } from './jsonrpc.ts';

export class PendingRequests {
  private readonly started = new Map<string, number>();

  /** Notes the requests among `messages` as sent now. */
  sent(messages: readonly Classified[], at = performance.now()): void {
    for (const m of messages) if (m.kind === 'request') this.started.set(idKey(m.id), at);
  }

  /** For a response/error: milliseconds since its request was sent (and forgets it); else undefined. */
  answered(m: Classified, at = performance.now()): number | undefined {
    if (m.kind !== 'response' && m.kind !== 'error') return undefined;
    const key = idKey(m.id);
    const t0 = this.started.get(key);
    if (t0 === undefined) return undefined;
    this.started.delete(key);
    return Math.round((at - t0) * 1000) / 1000;
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
