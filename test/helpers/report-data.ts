// A realistic quarter of gateway traffic for report tests and the benchmark: API keys (agents,
// service accounts, admins) created through the real ApiKeyStore, IdP workloads and people,
// six targets with their tools, weekday traffic with responses and latencies, refusals, a
// shared key, dormant and never-used keys, an off-hours burst and config changes — all written
// through the real audit log's append, in time order.
import { createHash, randomUUID } from 'node:crypto';
import { AUDIT_RECORD_VERSION, type AuditRecord } from '../../gateway/audit-record.ts';
import type { Db } from '../../server/db.ts';
import { ApiKeyStore } from '../../server/auth/api-keys.ts';

export interface ReportDataOptions {
  /** Requests per weekday at scale 1 (each also gets a response). */
  requestsPerDay?: number;
  seed?: number;
  agents?: number;
  idpAgents?: number;
  people?: number;
}

export const TARGET_TOOLS: Record<string, string[]> = {
  github: ['search_issues', 'get_pull_request', 'create_issue', 'merge_pull_request'],
  jira: ['search', 'create_ticket', 'transition_ticket'],
  'postgres-prod': ['run_query', 'describe_table', 'execute_sql'],
  slack: ['post_message', 'search_messages'],
  filesystem: ['read_file', 'list_directory', 'write_file'],
  's3-docs': ['list_objects', 'get_object'],
};

export const PRIVILEGED_TOOLS: Record<string, string[]> = {
  'postgres-prod': ['execute_sql'],
  github: ['merge_pull_request'],
  filesystem: ['write_file'],
};

export const REPORTS_YAML = `reports:
  control_owner: ciso@acme.example
  fallback_reviewer: security-team@acme.example
  dormant_days: 45
  shared_address_threshold: 3
  remediation_sla_days: 14
  targets:
    github: { owner: eng-lead@acme.example, privileged_tools: [merge_pull_request] }
    jira: { owner: pm-lead@acme.example }
    postgres-prod: { owner: dba-lead@acme.example, privileged_tools: [execute_sql] }
    slack: { owner: it-lead@acme.example }
    filesystem: { owner: eng-lead@acme.example, privileged_tools: [write_file] }
    s3-docs: { owner: it-lead@acme.example }
  identities:
    ci-runner-0: { person: dev0@acme.example, manager: eng-lead@acme.example }
    ci-runner-1: { person: dev1@acme.example, manager: eng-lead@acme.example }
    agent-00: { person: alice@acme.example, manager: eng-lead@acme.example }
    agent-01: { person: bob@acme.example, manager: eng-lead@acme.example }
    agent-02: { person: eng-lead@acme.example, manager: cto@acme.example }
`;

export interface Dataset {
  period: { start: string; end: string; label: string };
  entries: number;
  requests: number;
  keys: Array<{ id: string; subject: string; roles: string[] }>;
  sharedKeyId: string;
  dormantKeyIds: string[];
  revokedKeyId: string;
}

function rng(seed: number) {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return ((s >>> 0) % 1_000_000) / 1_000_000;
  };
}

const micro = (ms: number, n: number) =>
  new Date(ms).toISOString().replace('Z', `${String(n % 1000).padStart(3, '0')}Z`);

interface Actor {
  subject: string;
  auth_method: 'api_key' | 'oidc' | 'session';
  key_id?: string;
  issuer?: string;
  roles: string[];
  groups?: string[];
  amr?: string[];
  targets: string[];
  address: string;
  /** Use stops after this time (dormant accounts). */
  activeUntil?: number;
  activeFrom?: number;
  weight: number;
}

export interface Appender {
  append(record: object): Promise<number>;
}

/** Writes the dataset; returns what the tests need to know about it. */
export async function writeReportDataset(
  db: Db,
  log: Appender,
  opts: ReportDataOptions = {},
): Promise<Dataset> {
  const rand = rng(opts.seed ?? 7);
  const pick = <T>(a: readonly T[]) => a[Math.floor(rand() * a.length)]!;
  const start = Date.parse('2026-07-01T00:00:00Z');
  const end = Date.parse('2026-10-01T00:00:00Z');
  const targets = Object.keys(TARGET_TOOLS);
  const keysAt = (iso: string) => new ApiKeyStore(db, { now: () => Date.parse(iso) });

  const actors: Actor[] = [];
  const keys: Dataset['keys'] = [];
  const nAgents = opts.agents ?? 24;
  for (let i = 0; i < nAgents; i++) {
    const created = i % 6 === 5 ? '2026-08-10T09:00:00.000Z' : '2026-02-03T10:00:00.000Z';
    const subject = `agent-${String(i).padStart(2, '0')}`;
    const { record } = await keysAt(created).create({
      subject,
      roles: ['agent'],
      createdBy: i % 4 === 0 ? 'eng-lead@acme.example' : 'platform-admin@acme.example',
      description: i % 3 === 0 ? `CHG-${4100 + i} coding agent for team ${i % 5}` : `coding agent ${i}`,
    });
    keys.push({ id: record.id, subject, roles: ['agent'] });
    actors.push({
      subject,
      auth_method: 'api_key',
      key_id: record.id,
      roles: ['agent'],
      targets: targets.filter((_, j) => (i + j) % 3 !== 0),
      address: `10.1.${i}.10`,
      activeUntil: i % 7 === 3 ? Date.parse('2026-07-20T00:00:00Z') : undefined,
      activeFrom: Date.parse(created),
      weight: 1 + (i % 4),
    });
  }
  // CI runners: service accounts with owners, one of them shared across build hosts.
  for (let i = 0; i < 3; i++) {
    const subject = `ci-runner-${i}`;
    const { record } = await keysAt('2026-01-15T08:00:00.000Z').create({
      subject,
      roles: ['agent'],
      createdBy: 'platform-admin@acme.example',
      description: `CHG-${3000 + i} CI`,
    });
    keys.push({ id: record.id, subject, roles: ['agent'] });
    actors.push({
      subject,
      auth_method: 'api_key',
      key_id: record.id,
      roles: ['agent'],
      targets: ['github', 'filesystem'],
      address: `10.2.0.${i + 1}`,
      weight: 3,
    });
  }
  // Never used, and a revoked one (outside the population at the snapshot).
  const unused = await keysAt('2026-03-01T12:00:00.000Z').create({
    subject: 'legacy-export',
    roles: ['agent'],
    createdBy: 'platform-admin@acme.example',
  });
  keys.push({ id: unused.record.id, subject: 'legacy-export', roles: ['agent'] });
  const revoked = await keysAt('2026-02-01T12:00:00.000Z').create({
    subject: 'old-bot',
    roles: ['agent'],
    createdBy: 'platform-admin@acme.example',
  });
  await new ApiKeyStore(db, { now: () => Date.parse('2026-08-15T12:00:00.000Z') }).revoke(
    revoked.record.id,
    'ciso@acme.example',
  );
  // Administrative keys (privileged): one with an approval reference, one without.
  const admin1 = await keysAt('2026-01-05T09:00:00.000Z').create({
    subject: 'ops-automation',
    roles: ['admin'],
    createdBy: 'ciso@acme.example',
    description: 'SEC-77 ops automation',
  });
  const admin2 = await keysAt('2026-05-05T09:00:00.000Z').create({
    subject: 'break-glass',
    roles: ['admin', 'approver'],
    createdBy: 'platform-admin@acme.example',
  });
  const auditorKey = await keysAt('2026-06-01T09:00:00.000Z').create({
    subject: 'evidence-exporter',
    roles: ['auditor'],
    createdBy: 'ciso@acme.example',
  });
  for (const k of [admin1, admin2, auditorKey])
    keys.push({ id: k.record.id, subject: k.record.subject, roles: k.record.roles });

  // IdP workloads (client-credential tokens) and people signing in to the UI.
  const issuer = 'https://idp.acme.example';
  for (let i = 0; i < (opts.idpAgents ?? 8); i++) {
    actors.push({
      subject: `svc-${['billing', 'support', 'search', 'reporting', 'etl', 'triage', 'docs', 'qa', 'sales', 'ml'][i % 10]}-${i}`,
      auth_method: 'oidc',
      issuer,
      roles: ['agent'],
      groups: ['mcp-agents'],
      targets: targets.filter((_, j) => (i + j) % 2 === 0),
      address: `10.3.${i}.5`,
      activeFrom: i === 0 ? Date.parse('2026-09-10T00:00:00Z') : undefined,
      weight: 2,
    });
  }
  const people = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi'].slice(
    0,
    opts.people ?? 8,
  );
  for (const [i, p] of people.entries()) {
    actors.push({
      subject: `${p}@acme.example`,
      auth_method: 'session',
      issuer,
      roles: i < 2 ? ['admin'] : i < 4 ? ['compliance'] : ['agent'],
      groups: i < 2 ? ['gateway-admins'] : ['staff'],
      amr: i % 3 === 0 ? ['pwd'] : ['pwd', 'mfa'],
      targets: i < 4 ? [] : ['jira', 'slack'],
      address: `192.0.2.${10 + i}`,
      weight: 1,
    });
  }

  const sharedKey = actors.find((a) => a.subject === 'ci-runner-1')!;
  const records: AuditRecord[] = [];
  let seq = 0;
  const rec = (ms: number, a: Actor, rest: Partial<AuditRecord>, address = a.address): AuditRecord => {
    const n = seq++;
    return {
      v: AUDIT_RECORD_VERSION,
      id: randomUUID(),
      ts: micro(ms, n),
      event: 'mcp.message',
      gateway: { instance: 'gw-1', version: '0.1.0' },
      actor: {
        subject: a.subject,
        auth_method: a.auth_method,
        ...(a.key_id ? { key_id: a.key_id } : {}),
        ...(a.issuer ? { issuer: a.issuer } : {}),
        roles: a.roles,
        ...(a.groups ? { groups: a.groups } : {}),
        ...(a.amr ? { amr: a.amr } : {}),
      } as AuditRecord['actor'],
      client: { address, user_agent: 'mcp-client/1.0' },
      ...rest,
    };
  };
  const call = (ms: number, a: Actor, target: string, tool: string, address?: string) => {
    const session = createHash('sha256')
      .update(`${a.subject}${Math.floor(ms / 3_600_000)}`)
      .digest('hex')
      .slice(0, 16);
    const body = {
      jsonrpc: '2.0',
      id: seq,
      method: 'tools/call',
      params: { name: tool, arguments: { q: 'status' } },
    };
    records.push(
      rec(
        ms,
        a,
        {
          mcp: {
            target,
            transport: 'http',
            direction: 'client_to_upstream',
            kind: 'request',
            session,
            method: 'tools/call',
            name: tool,
            jsonrpc_id: seq,
          },
          payload: { sha256: '0'.repeat(64), body },
        },
        address,
      ),
    );
    const isError = rand() < 0.02;
    records.push(
      rec(ms + 40 + Math.floor(rand() * 400), a, {
        mcp: {
          target,
          transport: 'http',
          direction: 'upstream_to_client',
          kind: isError ? 'error' : 'response',
          session,
          name: tool,
          http_status: 200,
          latency_ms: 20 + Math.floor(rand() * 900),
        },
      }),
    );
  };
  const refuse = (ms: number, a: Actor, target: string, tool: string, rule: string) => {
    records.push(
      rec(ms, a, {
        event: 'mcp.refused',
        mcp: {
          target,
          transport: 'http',
          direction: 'client_to_upstream',
          kind: 'request',
          method: 'tools/call',
          name: tool,
        },
        outcome: { decision: 'deny', reason: 'denied by policy', rule },
      }),
    );
  };

  // A little history before the quarter, so "first seen" has something to compare with.
  for (const a of actors.slice(0, 10)) {
    if (a.targets.length)
      call(
        Date.parse('2026-06-20T10:00:00Z') + seq * 1000,
        a,
        a.targets[0]!,
        TARGET_TOOLS[a.targets[0]!]![0]!,
      );
  }
  const perDay = opts.requestsPerDay ?? 120;
  const active = actors.filter((a) => a.targets.length);
  const totalWeight = active.reduce((s, a) => s + a.weight, 0);
  for (let day = start; day < end; day += 86_400_000) {
    const dow = new Date(day).getUTCDay();
    const n = dow === 0 || dow === 6 ? Math.floor(perDay / 10) : perDay;
    const times = Array.from({ length: n }, () => day + (7 + rand() * 11) * 3_600_000).sort((x, y) => x - y);
    for (const t of times) {
      let r = rand() * totalWeight;
      let a = active[0]!;
      for (const x of active) {
        r -= x.weight;
        if (r <= 0) {
          a = x;
          break;
        }
      }
      if ((a.activeUntil && t > a.activeUntil) || (a.activeFrom && t < a.activeFrom)) continue;
      const target = pick(a.targets);
      const tool = pick(TARGET_TOOLS[target]!);
      if (PRIVILEGED_TOOLS[target]?.includes(tool) && rand() < 0.5) {
        refuse(t, a, target, tool, `deny-privileged-${target}`);
        continue;
      }
      // The shared CI key is used from four build hosts in the same hours.
      const address = a === sharedKey ? `10.2.9.${1 + Math.floor(rand() * 4)}` : undefined;
      call(t, a, target, tool, address);
    }
  }
  // A burst of refusals from one agent probing the production database.
  const prober = actors.find((a) => a.subject === 'agent-05')!;
  for (let i = 0; i < 25; i++)
    refuse(
      Date.parse('2026-08-19T14:00:00Z') + i * 30_000,
      prober,
      'postgres-prod',
      'execute_sql',
      'deny-privileged-postgres-prod',
    );
  // Off-hours spike: Saturday 02:00 UTC.
  const night = actors.find((a) => a.subject === 'svc-etl-4') ?? active[1]!;
  for (let i = 0; i < 400; i++)
    call(
      Date.parse('2026-08-22T02:00:00Z') + i * 8_000,
      night,
      night.targets[0]!,
      TARGET_TOOLS[night.targets[0]!]![0]!,
    );
  // First-ever call of a new tool.
  call(Date.parse('2026-09-15T11:00:00Z'), actors[0]!, 'github', 'create_release');

  // Config changes: approved by another person, self-approved, and unapproved.
  const changes: Array<[string, string, string, string | null]> = [
    ['2026-07-03T09:00:00Z', 'platform-admin@acme.example', 'policy', 'ciso@acme.example'],
    ['2026-07-21T15:30:00Z', 'platform-admin@acme.example', 'targets', 'platform-admin@acme.example'],
    ['2026-08-15T12:00:00Z', 'ciso@acme.example', 'api_key', null],
    ['2026-09-02T10:10:00Z', 'eng-lead@acme.example', 'role_mapping', 'ciso@acme.example'],
    ['2026-09-29T17:45:00Z', 'platform-admin@acme.example', 'policy', null],
  ];
  for (const [ts, who, kind, approver] of changes) {
    records.push({
      v: AUDIT_RECORD_VERSION,
      id: randomUUID(),
      ts: micro(Date.parse(ts), seq++),
      event: 'config.change',
      gateway: { instance: 'gw-1', version: '0.1.0' },
      actor: { subject: who, auth_method: 'session' },
      detail: {
        kind,
        action: kind === 'api_key' ? 'revoke' : 'update',
        id: kind === 'api_key' ? revoked.record.id : `${kind}-main`,
        before_sha256: createHash('sha256').update(`${ts}before`).digest('hex'),
        after_sha256: createHash('sha256').update(`${ts}after`).digest('hex'),
        ...(approver
          ? { approved_by: approver, approval_ref: `CHG-${ts.slice(5, 7)}${ts.slice(8, 10)}` }
          : {}),
      },
    });
  }
  // Traffic after the quarter: must not leak into a Q3 report.
  for (const a of active.slice(0, 5))
    call(Date.parse('2026-10-02T10:00:00Z') + seq * 1000, a, a.targets[0]!, TARGET_TOOLS[a.targets[0]!]![0]!);

  records.sort((x, y) => (x.ts < y.ts ? -1 : x.ts > y.ts ? 1 : 0));
  for (let i = 0; i < records.length; i += 512) {
    await Promise.all(records.slice(i, i + 512).map((r) => log.append(r)));
  }
  return {
    period: { start: '2026-07-01T00:00:00.000Z', end: '2026-10-01T00:00:00.000Z', label: '2026-Q3' },
    entries: records.length,
    requests: records.filter((r) => r.mcp?.direction === 'client_to_upstream' && r.event === 'mcp.message')
      .length,
    keys,
    sharedKeyId: sharedKey.key_id!,
    dormantKeyIds: actors.filter((a) => a.activeUntil && a.key_id).map((a) => a.key_id!),
    revokedKeyId: revoked.record.id,
  };
}
