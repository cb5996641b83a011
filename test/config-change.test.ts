// Configuration edits made in the file between starts become config.change entries (who, what,
// before/after hashes) before the service serves anything: the change history is evidence.
import test from 'ava';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { createTestDb, DB_KINDS } from './helpers/db.ts';
import { loadConfig } from '../server/config.ts';
import { createLogger } from '../server/logger.ts';
import { startService } from '../server/service.ts';
import { policyHash, parsePolicies } from '../server/policy/policy.ts';
import { stateHash } from '../server/auth/config-change.ts';
import type { AuditRecord } from '../gateway/audit-record.ts';

const POLICY_A = [{ name: 'agents-everything', effect: 'allow', roles: ['agent'] }];
const POLICY_B = [{ name: 'no-deletes', effect: 'deny', tools: ['delete_*'] }, ...POLICY_A];

for (const kind of DB_KINDS) {
  test(`${kind}: policy, role-mapping and rate-limit edits between starts are recorded once each, with before/after hashes`, async (t) => {
    const tdb = await createTestDb(kind, { migrate: false });
    t.teardown(() => tdb.cleanup());
    const file = join(tdb.dir, 'auditgate.config.json');
    const env = {
      HOST: '127.0.0.1',
      PORT: '0',
      AUDITGATE_DATA_DIR: tdb.dir,
      AUDITGATE_CONFIG: file,
      AUDITGATE_LOG_ORIGIN: `auditgate.test/cc-${randomBytes(4).toString('hex')}`,
      ...(tdb.databaseUrl ? { DATABASE_URL: tdb.databaseUrl } : {}),
    };
    const write = (doc: Record<string, unknown>) => writeFileSync(file, JSON.stringify(doc));
    const changes = async (): Promise<AuditRecord[]> => {
      const s = await startService(loadConfig(env, tdb.dir), { logger: createLogger('silent') });
      try {
        const { size } = await s.log.head();
        const out: AuditRecord[] = [];
        for await (const e of s.log.entries(0, size))
          out.push(JSON.parse(e.data.toString('utf8')) as AuditRecord);
        return out.filter((r) => r.event === 'config.change');
      } finally {
        await s.stop();
      }
    };
    const targets = { demo: { url: 'http://127.0.0.1:9/mcp' } };

    write({ targets, policies: POLICY_A });
    const first = await changes();
    t.deepEqual(
      first.map((r) => [r.detail!.kind, r.detail!.action]),
      [
        ['policy', 'load'],
        ['targets', 'load'],
      ],
    );
    t.like(first[0]!.detail, {
      before_sha256: null,
      summary: { source: file, policy_hash: policyHash(parsePolicies(POLICY_A)) },
    });
    t.is(first[0]!.actor!.auth_method, 'local');

    t.is((await changes()).length, 2, 'an unchanged configuration records nothing new');

    const identity = {
      issuers: [{ issuer: 'http://127.0.0.1:1/idp', group_roles: { 'idp-admins': ['admin'] } }],
    };
    write({
      targets,
      policies: POLICY_B,
      identity,
      rate_limits: { per_identity: { requests: 10, per: '1m' } },
    });
    const third = (await changes()).slice(2);
    t.deepEqual(
      third.map((r) => [r.detail!.kind, r.detail!.action]),
      [
        ['policy', 'update'],
        ['identity', 'load'],
        ['rate_limits', 'load'],
      ],
    );
    t.is(
      third[0]!.detail!.before_sha256,
      first[0]!.detail!.after_sha256,
      'the update starts where the last recorded state ended',
    );
    t.is(
      third[0]!.detail!.after_sha256,
      stateHash({ policy_hash: policyHash(parsePolicies(POLICY_B)), rules: parsePolicies(POLICY_B) }),
    );
    t.like(third[0]!.detail, { summary: { policy_hash: policyHash(parsePolicies(POLICY_B)) } });

    // Removing every policy is a change too (back to allow-all): it must not go unrecorded.
    write({ targets, identity, rate_limits: { per_identity: { requests: 10, per: '1m' } } });
    const fourth = (await changes()).slice(5);
    t.deepEqual(
      fourth.map((r) => [r.detail!.kind, r.detail!.action]),
      [['policy', 'update']],
    );
  });
}
