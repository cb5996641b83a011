// Write-ahead auditing: nothing moves until its record is durable. A client message that cannot be
// recorded is refused at once (503); an upstream message is retried for a while, because the
// upstream already acted and dropping its answer unrecorded is not an option either.
import type { AuditSink } from './types.ts';
import type { RecordBuilder, RecordContext, RecordInput } from './record.ts';
import type { GatewayLogger } from './logger.ts';

/** The audit store could not make a record durable: fail closed. */
export class AuditUnavailableError extends Error {
  override name = 'AuditUnavailableError';
  constructor(options?: { cause?: unknown }) {
    super('audit store unavailable', options);
  }
}

export class Auditor {
  private lastFailureLogged = 0;

  constructor(
    private readonly sink: AuditSink,
    readonly build: RecordBuilder,
    private readonly logger: GatewayLogger,
    private readonly retryMs: number,
  ) {}

  /** Appends records in the given order and resolves when all are durable; throws AuditUnavailableError. */
  async append(inputs: RecordInput | RecordInput[], ctx: RecordContext): Promise<void> {
    const list = Array.isArray(inputs) ? inputs : [inputs];
    // Building throws only on a programming error; keep it outside the fail-closed mapping.
    const records = list.map((i) => this.build(i, ctx));
    try {
      // Each append is queued in call order by the log, so batch elements keep their order.
      await Promise.all(records.map((r) => this.sink.append(r)));
    } catch (err) {
      this.noteFailure(err);
      throw new AuditUnavailableError({ cause: err });
    }
  }

  /**
   * Like append, but retries with backoff for up to retryMs (or until `alive()` turns false) —
   * for upstream messages that already exist and must not be delivered unrecorded.
   */
  async appendPersistent(inputs: RecordInput | RecordInput[], ctx: RecordContext, alive: () => boolean = () => true): Promise<void> {
    const list = Array.isArray(inputs) ? inputs : [inputs];
    const records = list.map((i) => this.build(i, ctx));
    const deadline = Date.now() + this.retryMs;
    // One at a time, so a retry never reorders records or appends one twice.
    for (const record of records) {
      let delay = 50;
      for (;;) {
        try {
          await this.sink.append(record);
          break;
        } catch (err) {
          this.noteFailure(err);
          if (Date.now() + delay > deadline || !alive()) throw new AuditUnavailableError({ cause: err });
          await new Promise((r) => setTimeout(r, delay));
          delay = Math.min(delay * 2, 1_000);
        }
      }
    }
  }

  private noteFailure(err: unknown): void {
    const now = Date.now();
    if (now - this.lastFailureLogged > 5_000) {
      this.lastFailureLogged = now;
      this.logger.error({ err: (err as Error)?.message ?? String(err) }, 'audit append failed: failing closed');
    }
  }
}
