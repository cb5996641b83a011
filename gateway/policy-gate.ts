// Per-tool policy at the gateway: every client request is decided before it is forwarded, and list
// results are filtered so a client only sees the tools, resources and prompts it may use. The
// Authorizer (server/policy) decides; this module only asks and applies.
import type { AuditActor } from './audit-record.ts';
import type { Authorizer, Decision } from './types.ts';
import type { Classified } from './jsonrpc.ts';

/** JSON-RPC error code for a request the policy denies (implementation-defined server range). */
export const POLICY_DENIED = -32003;

/** How each list method's items are used, so each item is decided as its use would be. */
const LISTS: Record<string, { key: string; field: string; use: string }> = {
  'tools/list': { key: 'tools', field: 'name', use: 'tools/call' },
  'prompts/list': { key: 'prompts', field: 'name', use: 'prompts/get' },
  'resources/list': { key: 'resources', field: 'uri', use: 'resources/read' },
  'resources/templates/list': { key: 'resourceTemplates', field: 'uriTemplate', use: 'resources/read' },
};

export function isListMethod(method: string | undefined): boolean {
  return method !== undefined && method in LISTS;
}

export interface Filtered {
  /** The response as the client will get it. */
  message: Record<string, unknown>;
  /** Names (or URIs) taken out. */
  removed: string[];
  policyHash?: string;
}

export class PolicyGate {
  constructor(private readonly authorizer: Authorizer | undefined) {}

  get active(): boolean {
    return this.authorizer !== undefined;
  }

  /** Decides each request; returns the decisions in order and the first denial, if any. */
  async check(
    actor: AuditActor,
    target: string,
    messages: Classified[],
  ): Promise<{ decisions: Map<Classified, Decision>; denied?: { message: Classified; decision: Decision } }> {
    const decisions = new Map<Classified, Decision>();
    if (!this.authorizer) return { decisions };
    let denied: { message: Classified; decision: Decision } | undefined;
    for (const m of messages) {
      if (m.kind !== 'request' || !m.method) continue;
      const call = m.name !== undefined ? { target, method: m.method, name: m.name } : { target, method: m.method };
      const d = await this.authorizer.decide(actor, call);
      decisions.set(m, d);
      if (!d.allow && !denied) denied = { message: m, decision: d };
    }
    return denied ? { decisions, denied } : { decisions };
  }

  /** For a result of a list method: the result without the items the actor may not use (undefined: unchanged). */
  async filter(actor: AuditActor, target: string, listMethod: string, response: Record<string, unknown>): Promise<Filtered | undefined> {
    const spec = LISTS[listMethod];
    const result = response.result as Record<string, unknown> | undefined;
    if (!this.authorizer || !spec || !result || !Array.isArray(result[spec.key])) return undefined;
    const kept: unknown[] = [];
    const removed: string[] = [];
    let policyHash: string | undefined;
    for (const item of result[spec.key] as Array<Record<string, unknown>>) {
      const name = item && typeof item[spec.field] === 'string' ? (item[spec.field] as string) : undefined;
      if (name === undefined) {
        kept.push(item);
        continue;
      }
      const d = await this.authorizer.decide(actor, { target, method: spec.use, name });
      policyHash ??= d.policyHash;
      if (d.allow) kept.push(item);
      else removed.push(name);
    }
    if (removed.length === 0) return undefined;
    const out: Filtered = { message: { ...response, result: { ...result, [spec.key]: kept } }, removed };
    if (policyHash) out.policyHash = policyHash;
    return out;
  }
}
