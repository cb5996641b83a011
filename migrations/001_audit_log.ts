// The audit log's tables. Everything here is evidence: rows are written once and never changed.
//
// - log_entries: one row per leaf, the exact entry bytes plus the hashes that appending that leaf
//   stored (the Go sumdb StoredHashIndex layout: leaf hash first, then one hash per complete
//   subtree the leaf closes, 32 bytes each), so proofs need O(log n) row reads.
// - log_state: a single row (id = 1), the commit point. Every batch compare-and-swaps it
//   (`WHERE size = <old>`), which is what stops two writers from forking the log.
// - log_checkpoints: signed C2SP checkpoints, insert-only, at most one per tree size.
// - audit_events: a derived, queryable copy of fields of each entry for reports and the UI; it is
//   written in the same transaction as the entry, but the entry bytes stay the evidence.
//
// Append-only is enforced twice: triggers that raise on UPDATE/DELETE (on both databases), and,
// on PostgreSQL, privileges (docs/database-roles.md): the application role gets only SELECT and
// INSERT on these tables and UPDATE on log_state. The triggers stop mistakes and a compromised
// application; the privileges keep working if someone disables the triggers as the owner.
import { createHash } from 'node:crypto';
import type { Knex } from 'knex';

const APPEND_ONLY = ['log_entries', 'log_checkpoints', 'audit_events'] as const;

/** The group role the application connects through (see docs/database-roles.md). */
export const WRITER_ROLE = 'auditgate_writer';

const isPg = (knex: Knex): boolean => (knex.client.config as Knex.Config).client === 'pg';

export async function up(knex: Knex): Promise<void> {
  const pg = isPg(knex);

  // Index columns: bigint on PostgreSQL; on SQLite "integer" makes the primary key the rowid
  // itself (SQLite integers are 64-bit anyway), so a row is one B-tree entry instead of two.
  const indexColumn = (t: Knex.CreateTableBuilder, name: string) =>
    (pg ? t.bigInteger(name) : t.integer(name)).primary();

  await knex.schema.createTable('log_entries', (t) => {
    indexColumn(t, 'idx');
    t.binary('data').notNullable();
    t.binary('hashes').notNullable();
  });

  await knex.schema.createTable('log_state', (t) => {
    t.integer('id').primary();
    t.bigInteger('size').notNullable();
    t.binary('root').notNullable();
    t.timestamp('updated_at', { useTz: true }).notNullable();
    t.check('?? = 1', ['id'], 'log_state_single_row');
    t.check('?? >= 0', ['size'], 'log_state_size_non_negative');
  });
  // MTH of the empty tree, SHA-256(""), computed here so the migration never depends on code
  // that may change later.
  await knex('log_state').insert({
    id: 1,
    size: 0,
    root: createHash('sha256').digest(),
    updated_at: new Date().toISOString(),
  });

  await knex.schema.createTable('log_checkpoints', (t) => {
    indexColumn(t, 'size');
    t.binary('root').notNullable();
    t.text('note').notNullable();
    t.timestamp('signed_at', { useTz: true }).notNullable();
  });

  // Text columns everywhere: a long target or tool name must never make an append fail.
  // ts: timestamptz on PostgreSQL; on SQLite the record's own ISO-8601 UTC text with six
  // fractional digits, so text order is time order. Compare it with ISO strings on both.
  await knex.schema.createTable('audit_events', (t) => {
    indexColumn(t, 'idx');
    t.timestamp('ts', { useTz: true, precision: 6 }).nullable();
    for (const c of [
      'event',
      'direction',
      'kind',
      'target',
      'transport',
      'session',
      'jsonrpc_method',
      'name',
      'subject',
      'auth_method',
      'key_id',
      'issuer',
      'client_address',
    ]) {
      t.text(c).nullable();
    }
    t.integer('http_status').nullable();
    t.double('latency_ms').nullable();
    t.text('decision').nullable();
    t.text('rule').nullable();
    t.index(['ts'], 'audit_events_ts');
    t.index(['subject', 'ts'], 'audit_events_subject_ts');
    t.index(['target', 'ts'], 'audit_events_target_ts');
    t.index(['event', 'ts'], 'audit_events_event_ts');
  });

  if (pg) {
    await knex.raw(`
      CREATE FUNCTION auditgate_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        RAISE EXCEPTION 'auditgate: % on % is not allowed: the audit log is append-only', TG_OP, TG_TABLE_NAME
          USING ERRCODE = 'insufficient_privilege';
      END $$`);
    for (const table of APPEND_ONLY) {
      await knex.raw(`CREATE TRIGGER ${table}_append_only BEFORE UPDATE OR DELETE ON ${table}
        FOR EACH ROW EXECUTE FUNCTION auditgate_append_only()`);
      // Row triggers do not see TRUNCATE.
      await knex.raw(`CREATE TRIGGER ${table}_no_truncate BEFORE TRUNCATE ON ${table}
        FOR EACH STATEMENT EXECUTE FUNCTION auditgate_append_only()`);
    }
    // The state row only moves forward and is never removed.
    await knex.raw(`
      CREATE FUNCTION auditgate_state_forward() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF TG_OP <> 'UPDATE' OR NEW.id <> OLD.id OR NEW.size < OLD.size THEN
          RAISE EXCEPTION 'auditgate: log_state may only grow (% at size %)', TG_OP, OLD.size
            USING ERRCODE = 'insufficient_privilege';
        END IF;
        RETURN NEW;
      END $$`);
    await knex.raw(`CREATE TRIGGER log_state_forward BEFORE UPDATE OR DELETE ON log_state
      FOR EACH ROW EXECUTE FUNCTION auditgate_state_forward()`);
    await knex.raw(`CREATE TRIGGER log_state_no_truncate BEFORE TRUNCATE ON log_state
      FOR EACH STATEMENT EXECUTE FUNCTION auditgate_append_only()`);

    // Privileges. Creating a role is a cluster-wide change: do it only when the migrating user
    // may (CREATEROLE), tolerate a concurrent creation, and otherwise leave it to the DBA
    // (docs/database-roles.md). Granting on our own tables needs nothing beyond ownership.
    const tables = [...APPEND_ONLY, 'log_state'].join(', ');
    await knex.raw(`REVOKE ALL ON ${tables} FROM PUBLIC`);
    await knex.raw(`
      DO $$
      BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${WRITER_ROLE}')
           AND EXISTS (SELECT 1 FROM pg_roles WHERE rolname = current_user AND (rolcreaterole OR rolsuper)) THEN
          BEGIN
            CREATE ROLE ${WRITER_ROLE} NOLOGIN;
          EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL; -- another database's migration created it at the same moment
          END;
        END IF;
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${WRITER_ROLE}') THEN
          EXECUTE 'GRANT SELECT, INSERT ON ${APPEND_ONLY.join(', ')} TO ${WRITER_ROLE}';
          EXECUTE 'GRANT SELECT, UPDATE ON log_state TO ${WRITER_ROLE}';
        ELSE
          RAISE NOTICE 'auditgate: role ${WRITER_ROLE} does not exist; see docs/database-roles.md';
        END IF;
      END $$`);
  } else {
    for (const table of APPEND_ONLY) {
      for (const op of ['UPDATE', 'DELETE']) {
        await knex.raw(`CREATE TRIGGER ${table}_no_${op.toLowerCase()} BEFORE ${op} ON ${table}
          BEGIN SELECT RAISE(ABORT, 'auditgate: ${op} on ${table} is not allowed: the audit log is append-only'); END`);
      }
    }
    await knex.raw(`CREATE TRIGGER log_state_forward BEFORE UPDATE ON log_state
      WHEN NEW.id <> OLD.id OR NEW.size < OLD.size
      BEGIN SELECT RAISE(ABORT, 'auditgate: log_state may only grow'); END`);
    await knex.raw(`CREATE TRIGGER log_state_no_delete BEFORE DELETE ON log_state
      BEGIN SELECT RAISE(ABORT, 'auditgate: log_state may not be deleted'); END`);
  }
}

export async function down(knex: Knex): Promise<void> {
  // Only for development databases: dropping the tables destroys the evidence.
  for (const table of ['audit_events', 'log_checkpoints', 'log_state', 'log_entries']) {
    await knex.schema.dropTableIfExists(table);
  }
  if (isPg(knex)) {
    await knex.raw('DROP FUNCTION IF EXISTS auditgate_append_only()');
    await knex.raw('DROP FUNCTION IF EXISTS auditgate_state_forward()');
  }
}
