// Realistic audit records (gateway/audit-record.ts) of about 1 KiB, deterministic per seed, for
// log tests, the crash fixture and the benchmark.
import { createHash } from 'node:crypto';
import { AUDIT_RECORD_VERSION, type AuditRecord } from '../../gateway/audit-record.ts';

const TOOLS = ['search_issues', 'read_file', 'create_ticket', 'run_query', 'list_buckets'];
const TARGETS = ['github', 'filesystem', 'jira', 'warehouse', 's3'];
const SUBJECTS = ['alice@example.com', 'bob@example.com', 'svc-ci', 'carol@example.com'];

/** A tools/call request or response record; `seed` makes it unique and reproducible. */
export function sampleAuditRecord(seed: number, instance = 'test-instance'): AuditRecord {
  const h = createHash('sha256').update(`record ${seed}`).digest('hex');
  const request = seed % 2 === 0;
  const tool = TOOLS[seed % TOOLS.length]!;
  const body = request
    ? {
        jsonrpc: '2.0',
        id: seed,
        method: 'tools/call',
        params: {
          name: tool,
          arguments: {
            query: `repo:acme/app is:open label:bug ${h.slice(0, 24)}`,
            limit: 25,
            page: seed % 7,
          },
        },
      }
    : {
        jsonrpc: '2.0',
        id: seed - 1,
        result: {
          content: [
            { type: 'text', text: `Found ${seed % 50} results. First: ${h} — ${'lorem ipsum '.repeat(12)}` },
          ],
          isError: false,
        },
      };
  return {
    v: AUDIT_RECORD_VERSION,
    id: `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`,
    ts: new Date(Date.UTC(2026, 10, 25, 12, 0, 0) + seed * 3)
      .toISOString()
      .replace('Z', `${String(seed % 1000).padStart(3, '0')}Z`),
    event: 'mcp.message',
    gateway: { instance, version: '0.1.0' },
    actor: {
      subject: SUBJECTS[seed % SUBJECTS.length]!,
      auth_method: 'api_key',
      key_id: `key_${h.slice(40, 48)}`,
      scopes: ['mcp:tools'],
      token_hash: h,
    },
    client: { address: `127.0.0.${(seed % 250) + 1}`, user_agent: 'claude-code/1.0 (node 20)' },
    mcp: {
      target: TARGETS[seed % TARGETS.length]!,
      transport: 'http',
      direction: request ? 'client_to_upstream' : 'upstream_to_client',
      kind: request ? 'request' : 'response',
      session: `sess-${h.slice(0, 16)}`,
      protocol_version: '2025-06-18',
      jsonrpc_id: request ? seed : seed - 1,
      method: 'tools/call',
      name: tool,
      http_status: 200,
      latency_ms: (seed % 97) + 0.5,
    },
    payload: { sha256: createHash('sha256').update(JSON.stringify(body)).digest('hex'), body },
    outcome: { decision: 'allow', rule: 'default-allow' },
  };
}
