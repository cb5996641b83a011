// In-memory stand-ins for the gateway's own interfaces (AuditSink, Authenticator), for tests of
// the gateway alone: a sink whose appends a test can hold back or fail, a fixed-key authenticator,
// and the gateway mounted on a hapi server with them.
import Hapi from '@hapi/hapi';
import type { AuditRecord } from '../../gateway/audit-record.ts';
import { Gateway } from '../../gateway/gateway.ts';
import { gatewayPlugin } from '../../gateway/hapi.ts';
import type { TargetSpec } from '../../gateway/options.ts';
import type { AuditSink, Authenticator, AuthResult } from '../../gateway/types.ts';

export class MemorySink implements AuditSink {
  readonly records: AuditRecord[] = [];
  /** Appends matching this stay pending until release() (write-ahead checks). */
  hold: ((r: AuditRecord) => boolean) | undefined;
  /** While set, every append rejects (an unavailable store). */
  failing = false;
  private held: Array<{ record: AuditRecord; resolve: (n: number) => void }> = [];
  private waiters: Array<() => void> = [];

  async append(record: AuditRecord): Promise<number> {
    if (this.failing) throw Object.assign(new Error('store down'), { name: 'LogUnavailableError' });
    if (this.hold?.(record)) {
      return new Promise<number>((resolve) => {
        this.held.push({ record, resolve });
        for (const w of this.waiters.splice(0)) w();
      });
    }
    this.records.push(record);
    return this.records.length - 1;
  }

  get pending(): AuditRecord[] {
    return this.held.map((h) => h.record);
  }

  /** Resolves once some append is being held. */
  async waitHeld(): Promise<void> {
    if (this.held.length) return;
    await new Promise<void>((r) => this.waiters.push(r));
  }

  release(): void {
    this.hold = undefined;
    for (const h of this.held.splice(0)) {
      this.records.push(h.record);
      h.resolve(this.records.length - 1);
    }
  }
}

/** Accepts `Bearer <key>` for the keys it was given; everything else is a 401. */
export function staticAuthenticator(keys: Record<string, string>): Authenticator {
  return {
    async authenticate(req): Promise<AuthResult> {
      const m = /^Bearer (.+)$/.exec(String(req.headers.authorization ?? ''));
      const subject = m ? keys[m[1]!] : undefined;
      if (!subject) return { ok: false, status: 401, message: 'unknown key', wwwAuthenticate: 'Bearer' };
      return { ok: true, actor: { subject, auth_method: 'api_key', key_id: `key-${subject}` } };
    },
  };
}

/** The gateway alone on a hapi server: records go to `sink`, `keys` maps API keys to subjects. */
export async function startGatewayAlone(targets: TargetSpec[], sink: MemorySink, keys: Record<string, string>) {
  const server = Hapi.server({ host: '127.0.0.1', port: 0 });
  const gateway = new Gateway({
    targets,
    sink,
    authenticator: staticAuthenticator(keys),
    publicUrl: 'http://127.0.0.1',
    instance: 'test',
    version: '0.0.0',
  });
  await server.register({ plugin: gatewayPlugin, options: { gateway } });
  await server.start();
  const port = server.info.port as number;
  return { server, gateway, port, url: (t: string) => `http://127.0.0.1:${port}/mcp/${t}` };
}
