// Evidence bundles produced: one insert-only row per bundle, naming what it covers (period and
// leaf-index range), the archive's SHA-256, where it is stored and how the stored copy was
// checked, and the log entry that recorded it. The next bundle of the chain reads the previous
// row for its start index and the previous archive hash.
import type { Knex } from 'knex';

const WRITER_ROLE = 'auditgate_writer';
const isPg = (knex: Knex): boolean => (knex.client.config as Knex.Config).client === 'pg';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('evidence_bundles', (t) => {
    t.string('bundle_id', 128).primary();
    // ISO 8601 UTC, half-open [from, to).
    t.string('period_from', 32).notNullable();
    t.string('period_to', 32).notNullable();
    t.bigInteger('first_index').notNullable();
    t.bigInteger('end_index').notNullable();
    t.string('archive_sha256', 64).notNullable();
    t.bigInteger('archive_size').notNullable();
    t.string('manifest_sha256', 64).notNullable();
    t.string('previous_sha256', 64).nullable();
    t.string('store_kind', 8).notNullable();
    t.text('store_key').notNullable();
    t.text('location').notNullable();
    t.string('verified_by', 16).notNullable();
    t.text('version_id').nullable();
    t.string('retention_mode', 16).nullable();
    t.string('retain_until', 32).nullable();
    // JSON of the job run named in bundle.json (null when produced on demand): a rebuild reuses it.
    t.text('job_run').nullable();
    t.string('signer_key_id', 64).notNullable();
    t.bigInteger('log_idx').notNullable();
    t.string('created_at', 32).notNullable();
    t.unique(['archive_sha256']);
    t.index(['period_to']);
  });
  if (isPg(knex)) {
    await knex.raw('REVOKE ALL ON evidence_bundles FROM PUBLIC');
    await knex.raw(`
      DO $$
      BEGIN
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${WRITER_ROLE}') THEN
          EXECUTE 'GRANT SELECT, INSERT ON evidence_bundles TO ${WRITER_ROLE}';
        END IF;
      END $$`);
    await knex.raw(`CREATE TRIGGER evidence_bundles_append_only BEFORE UPDATE OR DELETE ON evidence_bundles
      FOR EACH ROW EXECUTE FUNCTION auditgate_append_only()`);
  } else {
    for (const op of ['UPDATE', 'DELETE']) {
      await knex.raw(`CREATE TRIGGER evidence_bundles_no_${op.toLowerCase()} BEFORE ${op} ON evidence_bundles
        BEGIN SELECT RAISE(ABORT, 'auditgate: ${op} on evidence_bundles is not allowed: evidence is append-only'); END`);
    }
  }
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('evidence_bundles');
}
