// `auditgate keys create|list|revoke` against the service's own database, on SQLite and
// PostgreSQL: the key is printed once, only its hash is stored, and every change is a
// config.change entry in the audit log.
import test from 'ava';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { createTestDb, DB_KINDS, type TestDb } from './helpers/db.ts';
import { main } from '../server/cli/main.ts';
import { loadConfig } from '../server/config.ts';
import { openCliLog } from '../server/cli/open-log.ts';
import { ApiKeyStore, parseApiKey } from '../server/auth/api-keys.ts';
import { stateHash } from '../server/auth/config-change.ts';
import type { AuditRecord } from '../gateway/audit-record.ts';

const BIN = fileURLToPath(new URL('../bin/auditgate.mjs', import.meta.url));

function envFor(tdb: TestDb): Record<string, string | undefined> {
  return {
    AUDITGATE_DATA_DIR: tdb.dir,
    AUDITGATE_LOG_ORIGIN: 'auditgate.test/keys',
    ...(tdb.databaseUrl ? { DATABASE_URL: tdb.databaseUrl } : {}),
  };
}

async function cli(tdb: TestDb, ...argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, {
    out: (l) => out.push(l),
    err: (l) => err.push(l),
    env: envFor(tdb),
    cwd: tdb.dir,
  });
  return { code, out, err };
}

async function logRecords(tdb: TestDb): Promise<AuditRecord[]> {
  const config = loadConfig(envFor(tdb), tdb.dir);
  const log = await openCliLog(config, tdb.db);
  try {
    const { size } = await log.head();
    const out: AuditRecord[] = [];
    for await (const e of log.entries(0, size)) out.push(JSON.parse(e.data.toString('utf8')) as AuditRecord);
    return out;
  } finally {
    await log.close();
  }
}

for (const kind of DB_KINDS) {
  test(`${kind}: create prints the key once, list shows no secret, revoke refuses it; each change is logged`, async (t) => {
    const tdb = await createTestDb(kind);
    t.teardown(() => tdb.cleanup());

    const created = await cli(
      tdb,
      'keys',
      'create',
      '--subject',
      'ci-bot',
      '--role',
      'agent',
      '--role',
      'auditor',
      '--expires',
      '30d',
      '--description',
      'CI pipeline',
    );
    t.is(created.code, 0, created.err.join('\n'));
    t.is(created.out.length, 1, 'stdout carries the key and nothing else (scriptable)');
    const key = created.out[0]!;
    const parsed = parseApiKey(key);
    t.truthy(parsed);
    t.regex(created.err.join('\n'), /only time the key is shown/);

    const store = new ApiKeyStore(tdb.db, { cacheTtlMs: 0 });
    const v = await store.verify(key);
    t.true(v.ok);
    if (v.ok) {
      t.deepEqual(v.key.roles, ['agent', 'auditor']);
      t.is(v.key.description, 'CI pipeline');
      t.regex(v.key.createdBy, /@/);
    }

    const listed = await cli(tdb, 'keys', 'list');
    t.is(listed.code, 0);
    const text = listed.out.join('\n');
    t.regex(text, new RegExp(parsed!.id));
    t.regex(text, /ci-bot\s+agent,auditor\s+active/);
    t.false(text.includes(parsed!.secret));
    const json = await cli(tdb, 'keys', 'list', '--json');
    t.false(json.out.join('').includes(parsed!.secret));
    t.false(json.out.join('').includes('secret_hash'));

    const revoked = await cli(tdb, 'keys', 'revoke', parsed!.id);
    t.is(revoked.code, 0, revoked.err.join('\n'));
    t.like(await store.verify(key), { ok: false, reason: 'revoked' });
    t.regex((await cli(tdb, 'keys', 'list')).out.join('\n'), /revoked/);
    t.is((await cli(tdb, 'keys', 'list', '--active')).out.length, 0);
    // Revoking again is harmless and not a second change.
    t.is((await cli(tdb, 'keys', 'revoke', key)).code, 0);

    const changes = (await logRecords(tdb)).filter((r) => r.event === 'config.change');
    t.is(changes.length, 2);
    const [c, r] = changes;
    t.like(c!.detail, {
      kind: 'api_key',
      action: 'create',
      id: parsed!.id,
      before_sha256: null,
      summary: { subject: 'ci-bot', roles: ['agent', 'auditor'] },
    });
    t.like(r!.detail, { kind: 'api_key', action: 'revoke', id: parsed!.id });
    t.is(
      r!.detail!.before_sha256,
      c!.detail!.after_sha256,
      'the revoke starts from the state the create left',
    );
    const after = await store.get(parsed!.id);
    t.is(r!.detail!.after_sha256, stateHash(after));
    t.is(c!.actor!.auth_method, 'local');
    const all = JSON.stringify(await logRecords(tdb));
    t.false(all.includes(parsed!.secret), 'the secret never reaches the log');
  });

  test(`${kind}: bad input is a usage error (exit 2) and changes nothing`, async (t) => {
    const tdb = await createTestDb(kind);
    t.teardown(() => tdb.cleanup());
    for (const argv of [
      ['keys', 'create'],
      ['keys', 'create', '--subject', 'x', '--role', 'root'],
      ['keys', 'create', '--subject', 'x', '--expires', 'yesterday'],
      ['keys', 'create', '--subject', 'x', '--expires', '2001-01-01'],
      ['keys', 'revoke'],
      ['keys', 'revoke', 'not-an-id'],
    ]) {
      const r = await cli(tdb, ...argv);
      t.is(r.code, 2, `${argv.join(' ')} → ${r.err.join(' ')}`);
    }
    t.is((await cli(tdb, 'keys', 'revoke', 'ffffffffffffffff')).code, 1);
    t.is(
      (await tdb.db('api_keys').count({ n: '*' }))[0]!.n as unknown as number | string,
      kind === 'postgres' ? '0' : 0,
    );
  });
}

test('npx auditgate keys create works as a separate process', async (t) => {
  const tdb = await createTestDb('sqlite');
  t.teardown(() => tdb.cleanup());
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [BIN, 'keys', 'create', '--subject', 'proc'],
    {
      env: { ...process.env, ...envFor(tdb) },
      cwd: tdb.dir,
    },
  );
  const key = stdout.trim();
  t.like(await new ApiKeyStore(tdb.db).verify(key), { ok: true });
});
