// `npm run bench:report`: the access review and the activity report over 1,000,000 audit-log
// entries and 1,000 identities (goal: < 30 s each, peak RSS < 512 MiB). The data is written
// through the real log (group commit); each report then runs in a fresh process that measures
// its own time and peak RSS. Options: --db sqlite|postgres, --entries N, --identities N.
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createTestDb } from '../test/helpers/db.ts';
import { loadConfig } from '../server/config.ts';
import { loadOrCreateLogKey } from '../server/audit/log-key.ts';
import { openKnexLog } from '../server/audit/knex-log.ts';
import { AUDIT_RECORD_VERSION, type AuditRecord } from '../gateway/audit-record.ts';

const { values } = parseArgs({
  options: {
    db: { type: 'string', default: 'sqlite' },
    entries: { type: 'string', default: '1000000' },
    identities: { type: 'string', default: '1000' },
  },
});
const kind = values.db as 'sqlite' | 'postgres';
const ENTRIES = Number(values.entries);
const IDENTITIES = Number(values.identities);
const TARGETS = [
  'github',
  'jira',
  'postgres-prod',
  'slack',
  'filesystem',
  's3-docs',
  'confluence',
  'pagerduty',
  'snowflake',
  'sentry',
];
const TOOLS = ['search', 'read', 'list', 'create', 'update'];

const tdb = await createTestDb(kind);
const env: Record<string, string> = {
  AUDITGATE_DATA_DIR: tdb.dir,
  AUDITGATE_LOG_ORIGIN: 'auditgate.bench/reports',
  LOG_LEVEL: 'silent',
  ...(tdb.databaseUrl ? { DATABASE_URL: tdb.databaseUrl } : {}),
};
try {
  const config = loadConfig(env, tdb.dir);
  const signer = await loadOrCreateLogKey(config.log.keyFile, config.log.origin);
  const log = await openKnexLog(tdb.db, {
    origin: config.log.origin,
    signer,
    batchMaxSize: 2000,
    batchMaxDelayMs: 5,
    checkpointIntervalMs: 60_000,
    checkpointTimer: false,
    appendTimeoutMs: 120_000,
  });

  // 70 % API keys (rows in api_keys), 30 % IdP workloads and people.
  const nKeys = Math.round(IDENTITIES * 0.7);
  const keyRows = Array.from({ length: nKeys }, (_, i) => ({
    id: i.toString(16).padStart(16, '0'),
    subject: `agent-${i}`,
    roles: JSON.stringify(i % 50 === 0 ? ['admin'] : ['agent']),
    secret_hash: '0'.repeat(64),
    created_at: new Date(Date.UTC(2026, 0, 1 + (i % 200))).toISOString(),
    created_by: `admin-${i % 5}@acme.example`,
    expires_at: null,
    revoked_at: null,
    revoked_by: null,
    description: i % 3 === 0 ? `CHG-${i}` : null,
  }));
  for (let i = 0; i < keyRows.length; i += 200) await tdb.db('api_keys').insert(keyRows.slice(i, i + 200));
  const actors = Array.from({ length: IDENTITIES }, (_, i) =>
    i < nKeys
      ? { subject: `agent-${i}`, auth_method: 'api_key' as const, key_id: keyRows[i]!.id, roles: ['agent'] }
      : {
          subject: `user-${i}@acme.example`,
          auth_method: (i % 4 === 0 ? 'session' : 'oidc') as 'session' | 'oidc',
          issuer: 'https://idp.acme.example',
          roles: ['agent'],
        },
  );

  const start = Date.parse('2026-07-01T00:00:00Z');
  const days = 92;
  const perDay = Math.ceil(ENTRIES / 2 / days);
  let written = 0;
  let seq = 0;
  const t0 = performance.now();
  for (let d = 0; d < days && written < ENTRIES; d++) {
    const batch: AuditRecord[] = [];
    for (let k = 0; k < perDay && written + batch.length < ENTRIES; k++) {
      const ms = start + d * 86_400_000 + Math.floor((k / perDay) * 86_400_000);
      // Each identity keeps to "its" targets; some go quiet after the first weeks (dormant).
      const a = actors[(k * 7919 + d * 31) % (d > 20 ? Math.floor(IDENTITIES * 0.9) : IDENTITIES)]!;
      const target = TARGETS[(seq + (k % 3)) % TARGETS.length]!;
      const tool = TOOLS[seq % TOOLS.length]!;
      const ts = new Date(ms).toISOString();
      const actor = {
        subject: a.subject,
        auth_method: a.auth_method,
        ...('key_id' in a ? { key_id: a.key_id } : { issuer: a.issuer }),
        roles: a.roles,
      };
      const session = `s-${a.subject}-${d}`;
      const refused = seq % 97 === 0;
      batch.push({
        v: AUDIT_RECORD_VERSION,
        id: randomUUID(),
        ts,
        event: refused ? 'mcp.refused' : 'mcp.message',
        gateway: { instance: 'bench', version: '0.1.0' },
        actor,
        client: { address: `10.${(seq >> 8) & 255}.${seq & 255}.1`, user_agent: 'bench/1.0' },
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
        ...(refused
          ? { outcome: { decision: 'deny' as const, rule: 'deny-write' } }
          : {
              payload: {
                sha256: '0'.repeat(64),
                body: {
                  jsonrpc: '2.0',
                  id: seq,
                  method: 'tools/call',
                  params: { name: tool, arguments: { q: 'x' } },
                },
              },
            }),
      });
      if (written + batch.length < ENTRIES) {
        batch.push({
          v: AUDIT_RECORD_VERSION,
          id: randomUUID(),
          ts: new Date(ms + 120).toISOString(),
          event: 'mcp.message',
          gateway: { instance: 'bench', version: '0.1.0' },
          actor,
          mcp: {
            target,
            transport: 'http',
            direction: 'upstream_to_client',
            kind: seq % 50 === 0 ? 'error' : 'response',
            session,
            name: tool,
            http_status: 200,
            latency_ms: 20 + (seq % 300),
          },
        });
      }
      seq++;
    }
    for (let i = 0; i < batch.length; i += 4000)
      await Promise.all(batch.slice(i, i + 4000).map((r) => log.append(r)));
    written += batch.length;
  }
  const setupS = (performance.now() - t0) / 1000;
  const head = await log.head();
  await log.close();
  console.log(
    `# ${kind}: wrote ${written.toLocaleString('en-US')} entries (${IDENTITIES} identities, ${TARGETS.length} targets) through the log in ${setupS.toFixed(0)} s; tree size ${head.size}`,
  );
  console.log(
    `# machine: ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}, load average ${loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')}`,
  );

  const out = join(tdb.dir, 'bench-out');
  mkdirSync(out);
  const results = [];
  for (const report of ['access-review', 'activity']) {
    const line = execFileSync(
      process.execPath,
      ['--import', 'tsx', 'bench/report-run.ts', report, '2026-Q3', out],
      { env: { ...process.env, ...env }, encoding: 'utf8', maxBuffer: 1 << 20 },
    );
    const r = JSON.parse(line.trim().split('\n').at(-1)!);
    results.push(r);
    const ok = r.ms < 30_000 && r.maxRssMiB < 512;
    console.log(
      `${report.padEnd(14)} ${(r.ms / 1000).toFixed(1).padStart(6)} s  peak RSS ${String(r.maxRssMiB).padStart(4)} MiB  PDF ${(r.pdfBytes / 2 ** 20).toFixed(1)} MiB  ${r.lines !== null ? `${r.lines} lines` : `${r.requests} requests`}  ${ok ? 'PASS' : 'FAIL'} (goal < 30 s, < 512 MiB)  [${Object.entries(
        r.timings,
      )
        .map(([k, v]) => `${k} ${((v as number) / 1000).toFixed(1)} s`)
        .join(', ')}]`,
    );
  }
  console.log(
    JSON.stringify({
      db: kind,
      entries: written,
      identities: IDENTITIES,
      setupS: Math.round(setupS),
      results,
    }),
  );
} finally {
  await tdb.cleanup();
}
