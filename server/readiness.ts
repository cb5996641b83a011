// /readyz aggregates named checks that components register (database, log self-check, scheduler…),
// so a failing part says which part and why.

export interface CheckResult {
  ok: boolean;
  detail?: unknown;
}

export type ReadinessCheck = () => Promise<CheckResult> | CheckResult;

export class Readiness {
  private readonly checks = new Map<string, ReadinessCheck>();

  register(name: string, check: ReadinessCheck): void {
    this.checks.set(name, check);
  }

  async run(): Promise<{ ok: boolean; checks: Record<string, CheckResult> }> {
    const out: Record<string, CheckResult> = {};
    await Promise.all(
      [...this.checks].map(async ([name, check]) => {
        try {
          out[name] = await check();
        } catch (err) {
          out[name] = { ok: false, detail: (err as Error).message };
        }
      }),
    );
    return { ok: Object.values(out).every((c) => c.ok), checks: out };
  }
}
