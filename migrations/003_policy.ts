// The last-recorded state of each part of the configuration (policy, identity/role mapping, rate
// limits, targets). At start-up the service compares the configuration it loaded with this and,
// when it differs, writes a config.change log entry (before/after hashes) before serving: edits
// to the configuration file become evidence even though they happen outside the service.
// Also grants the application role what the identity tables need (see docs/database-roles.md).
import type { Knex } from 'knex';

const WRITER_ROLE = 'auditgate_writer';
const isPg = (knex: Knex): boolean => (knex.client.config as Knex.Config).client === 'pg';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('config_state', (t) => {
    t.string('kind', 64).primary();
    t.string('sha256', 64).notNullable();
    // Canonical JSON of the non-secret state, so the next change can say what it changed from.
    t.text('state').notNullable();
    t.string('changed_at', 32).notNullable();
  });
  if (isPg(knex)) {
    await knex.raw(`REVOKE ALL ON api_keys, config_state FROM PUBLIC`);
    await knex.raw(`
      DO $$
      BEGIN
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${WRITER_ROLE}') THEN
          EXECUTE 'GRANT SELECT, INSERT, UPDATE ON api_keys, config_state TO ${WRITER_ROLE}';
          -- DELETE only to take back a key whose creation could not be recorded (never shown to anyone).
          EXECUTE 'GRANT DELETE ON api_keys TO ${WRITER_ROLE}';
        END IF;
      END $$`);
  }
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('config_state');
}
