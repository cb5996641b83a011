// Per-tool policy: ordered rules (who → target → tool/resource/prompt → allow|deny), first match
// wins, default deny once any rule exists. Every decision carries the hash of the policy in force,
// so a record says not only what was decided but under which version of the rules.
import { z } from 'zod';
import type { AuditActor } from '../../gateway/audit-record.ts';
import { canonicalSha256 } from '../../gateway/record.ts';
import type { Authorizer, CallDescriptor, Decision } from '../../gateway/types.ts';
import { ConfigError } from '../errors.ts';
import { ROLES } from '../auth/roles.ts';

const patterns = z.array(z.string().min(1)).min(1);

const ruleSchema = z
  .object({
    /** Unique; shown to a client whose call it denies and recorded with every decision it makes. */
    name: z.string().min(1).max(128),
    effect: z.enum(['allow', 'deny']),
    description: z.string().optional(),
    // Who: every field given must match (AND); within a field any entry may match (OR). None: everyone.
    subjects: patterns.optional(),
    groups: patterns.optional(),
    roles: z.array(z.enum(ROLES)).min(1).optional(),
    issuers: patterns.optional(),
    // Where: target names; none = every target.
    targets: patterns.optional(),
    // What: tool names, resource URIs, prompt names. None of the three = every call to the target.
    tools: patterns.optional(),
    resources: patterns.optional(),
    prompts: patterns.optional(),
  })
  .strict();

export type PolicyRule = z.infer<typeof ruleSchema>;

export const policiesSchema = z.array(ruleSchema);

/** Validates the `policies:` section; names must be unique (they identify the deciding rule). */
export function parsePolicies(raw: unknown): PolicyRule[] {
  const res = policiesSchema.safeParse(raw ?? []);
  if (!res.success) {
    const first = res.error.issues[0]!;
    throw new ConfigError(`${['policies', ...first.path.map(String)].join('.')}: ${first.message}`);
  }
  const seen = new Set<string>();
  res.data.forEach((r, i) => {
    if (seen.has(r.name))
      throw new ConfigError(`policies.${i}.name: ${JSON.stringify(r.name)} is used by an earlier rule`);
    seen.add(r.name);
  });
  return res.data;
}

/** SHA-256 (hex) of the RFC 8785 canonical JSON of the rules, in order. */
export function policyHash(rules: PolicyRule[]): string {
  return canonicalSha256(rules);
}

/** `*` any run of characters (including `/`), `?` one character; everything else literal. */
export function globToRegExp(glob: string): RegExp {
  const body = glob
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '[\\s\\S]*')
    .replace(/\?/g, '[\\s\\S]');
  return new RegExp(`^${body}$`);
}

type Kind = 'tools' | 'resources' | 'prompts';

/** Which `what` list a method's name is checked against; undefined for methods without one. */
export function kindOf(method: string): Kind | undefined {
  switch (method) {
    case 'tools/call':
      return 'tools';
    case 'resources/read':
    case 'resources/subscribe':
    case 'resources/unsubscribe':
      return 'resources';
    case 'prompts/get':
      return 'prompts';
    default:
      return undefined;
  }
}

interface Compiled {
  rule: PolicyRule;
  subjects?: RegExp[];
  groups?: RegExp[];
  issuers?: RegExp[];
  targets?: RegExp[];
  what?: Partial<Record<Kind, RegExp[]>>;
}

const any = (res: RegExp[] | undefined, values: string[]): boolean =>
  res === undefined || values.some((v) => res.some((re) => re.test(v)));

export class PolicyEngine implements Authorizer {
  readonly hash: string;
  private readonly compiled: Compiled[];

  constructor(readonly rules: PolicyRule[]) {
    this.hash = policyHash(rules);
    const c = (p?: string[]) => p?.map(globToRegExp);
    this.compiled = rules.map((rule) => {
      const what: Partial<Record<Kind, RegExp[]>> = {};
      for (const k of ['tools', 'resources', 'prompts'] as const) if (rule[k]) what[k] = c(rule[k])!;
      return {
        rule,
        subjects: c(rule.subjects),
        groups: c(rule.groups),
        issuers: c(rule.issuers),
        targets: c(rule.targets),
        what: Object.keys(what).length ? what : undefined,
      };
    });
  }

  /** Groups named anywhere in the rules: the only ones worth keeping on an actor. */
  get groupsReferenced(): string[] {
    return [...new Set(this.rules.flatMap((r) => r.groups ?? []))];
  }

  private who(c: Compiled, actor: AuditActor): boolean {
    if (!any(c.subjects, [actor.subject])) return false;
    if (!any(c.issuers, actor.issuer ? [actor.issuer] : [])) return false;
    if (!any(c.groups, actor.groups ?? [])) return false;
    if (c.rule.roles && !c.rule.roles.some((r) => actor.roles?.includes(r))) return false;
    return true;
  }

  decide(actor: AuditActor, call: CallDescriptor): Decision {
    if (this.rules.length === 0)
      return { allow: true, reason: 'no policy configured', policyHash: this.hash };
    const kind = kindOf(call.method);
    for (const c of this.compiled) {
      if (!this.who(c, actor) || !any(c.targets, [call.target])) continue;
      const allow = c.rule.effect === 'allow';
      if (!c.what)
        return this.decision(allow, c.rule, `rule '${c.rule.name}' ${c.rule.effect}s ${call.target}`);
      if (kind && call.name !== undefined) {
        const res = c.what[kind];
        if (res && res.some((re) => re.test(call.name!))) {
          return this.decision(
            allow,
            c.rule,
            `rule '${c.rule.name}' ${c.rule.effect}s ${kind.slice(0, -1)} ${call.name}`,
          );
        }
        continue;
      }
      // A method without a name (initialize, ping, lists…): an allow for some tools/resources/prompts
      // of this target lets the client use the target at all; a deny of some names does not block it.
      if (allow) return this.decision(true, c.rule, `rule '${c.rule.name}' allows using ${call.target}`);
    }
    return {
      allow: false,
      rule: '(default deny)',
      reason: `no policy rule allows ${call.method}${call.name !== undefined ? ` ${call.name}` : ''} on ${call.target}`,
      policyHash: this.hash,
    };
  }

  private decision(allow: boolean, rule: PolicyRule, reason: string): Decision {
    return { allow, rule: rule.name, reason, policyHash: this.hash };
  }
}
