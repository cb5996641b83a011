// API keys for workloads without an identity provider. Only a SHA-256 of each key's secret is
// stored: the secret itself is shown once at creation and never again.
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('api_keys', (t) => {
    // The public part of the key (agk_<id>_<secret>): lets a leaked key be identified and revoked.
    t.string('id', 32).primary();
    t.string('subject', 256).notNullable();
    // JSON array of role names; small and read whole, so no join table.
    t.text('roles').notNullable();
    // Hex SHA-256 of the 256-bit secret. A fast hash is enough: the secret is random, not a password.
    t.string('secret_hash', 64).notNullable();
    // ISO 8601 UTC strings: identical on SQLite and PostgreSQL and they sort as time does.
    t.string('created_at', 32).notNullable();
    t.string('created_by', 256).notNullable();
    t.string('expires_at', 32).nullable();
    t.string('revoked_at', 32).nullable();
    t.string('revoked_by', 256).nullable();
    t.text('description').nullable();
    t.index(['subject']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('api_keys');
}
