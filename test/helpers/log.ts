// Opening real logs on real test databases, with a signing key generated for the run.
import { createHash } from 'node:crypto';
import type { Db } from '../../server/db.ts';
import { openKnexLog, type KnexLog, type KnexLogOptions } from '../../server/audit/knex-log.ts';
import { generateSignerKey, parseSignerKey, type NoteSigner } from '../../server/audit/note.ts';

export const TEST_ORIGIN = 'auditgate.test/log';

export function testSigner(origin = TEST_ORIGIN): NoteSigner {
  return parseSignerKey(generateSignerKey(origin));
}

export function openTestLog(
  db: Db,
  signer: NoteSigner,
  opts: Partial<KnexLogOptions> = {},
): Promise<KnexLog> {
  return openKnexLog(db, {
    origin: signer.name,
    signer,
    batchMaxSize: 64,
    batchMaxDelayMs: 2,
    checkpointIntervalMs: 1_000,
    checkpointTimer: false,
    ...opts,
  });
}

export const sha256hex = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** Every stored entry, read straight from the table (not through the log). */
export async function storedEntries(db: Db): Promise<Map<number, Buffer>> {
  const rows = await db('log_entries').select('idx', 'data').orderBy('idx');
  return new Map(rows.map((r: { idx: unknown; data: Buffer }) => [Number(r.idx), r.data]));
}

/** What an attacker with database access does first: switch off the append-only triggers. */
export async function disableAppendOnly(db: Db, kind: 'sqlite' | 'postgres', table: string): Promise<void> {
  if (kind === 'postgres') {
    await db.raw(`ALTER TABLE ${table} DISABLE TRIGGER USER`);
  } else {
    const triggers = await db('sqlite_master').select('name').where({ type: 'trigger', tbl_name: table });
    for (const t of triggers) await db.raw(`DROP TRIGGER ${t.name}`);
  }
}
