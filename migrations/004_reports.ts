// Access-review campaigns and scheduled report runs. A campaign's launch snapshot is stored as
// its exact canonical bytes (hashed at launch), so the population a review decided on can be
// shown to an auditor unchanged; decisions, reassignments and sign-offs are insert-only rows,
// each also recorded in the audit log (log_idx). Report runs persist what the scheduler expected
// and did; the lease row lets only one process run a job at a time.
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('report_campaigns', (t) => {
    t.string('id', 36).primary();
    t.string('period_label', 32).notNullable();
    t.string('period_start', 32).notNullable();
    t.string('period_end', 32).notNullable();
    t.string('as_of', 32).notNullable();
    t.string('status', 16).notNullable(); // open | completed
    t.string('launched_by', 256).notNullable();
    t.string('launched_at', 32).notNullable();
    t.string('snapshot_hash', 64).notNullable();
    // RFC 8785 bytes of the launch snapshot; SHA-256 of this text = snapshot_hash.
    t.text('snapshot').notNullable();
    t.string('completion_hash', 64).nullable();
    t.text('completion_snapshot').nullable();
    t.string('completed_at', 32).nullable();
    t.bigInteger('launch_log_idx').nullable();
    t.index(['period_label']);
  });

  await knex.schema.createTable('report_campaign_lines', (t) => {
    t.string('campaign_id', 36).notNullable().references('id').inTable('report_campaigns');
    t.string('item_id', 32).notNullable();
    t.integer('position').notNullable();
    t.text('target').notNullable();
    t.text('subject').notNullable();
    t.text('reviewer').notNullable();
    t.boolean('privileged').notNullable();
    t.text('flags').notNullable();
    t.primary(['campaign_id', 'item_id']);
    t.index(['campaign_id', 'reviewer']);
  });

  await knex.schema.createTable('report_decisions', (t) => {
    t.increments('id').primary();
    t.string('campaign_id', 36).notNullable().references('id').inTable('report_campaigns');
    t.string('item_id', 32).notNullable();
    t.string('decision', 8).notNullable();
    t.text('rationale').notNullable();
    t.text('decided_by').notNullable();
    t.string('decided_at', 32).notNullable();
    t.text('modify_to').nullable();
    t.text('remediation_ref').nullable();
    t.string('remediated_at', 32).nullable();
    t.bigInteger('log_idx').nullable();
    t.index(['campaign_id', 'item_id']);
  });

  await knex.schema.createTable('report_reassignments', (t) => {
    t.increments('id').primary();
    t.string('campaign_id', 36).notNullable().references('id').inTable('report_campaigns');
    t.string('item_id', 32).notNullable();
    t.text('from_reviewer').notNullable();
    t.text('to_reviewer').notNullable();
    t.text('by').notNullable();
    t.string('at', 32).notNullable();
    t.text('reason').notNullable();
    t.bigInteger('log_idx').nullable();
  });

  await knex.schema.createTable('report_signoffs', (t) => {
    t.increments('id').primary();
    t.string('campaign_id', 36).notNullable().references('id').inTable('report_campaigns');
    t.string('role', 16).notNullable();
    t.text('signer').notNullable();
    t.string('signed_at', 32).notNullable();
    t.text('statement').notNullable();
    t.string('review_data_hash', 64).notNullable();
    t.string('seal', 64).notNullable();
    t.bigInteger('log_idx').nullable();
    t.unique(['campaign_id', 'role', 'signer']);
  });

  await knex.schema.createTable('report_runs', (t) => {
    t.string('id', 36).primary();
    t.string('job', 64).notNullable();
    t.string('period_label', 32).nullable();
    // The schedule slot this run is for; unique per job, so two processes cannot both run it.
    t.string('expected_at', 32).notNullable();
    t.string('trigger', 16).notNullable(); // schedule | catch-up | manual
    t.string('status', 16).notNullable(); // running | succeeded | failed
    t.boolean('late').notNullable().defaultTo(false);
    t.integer('attempts').notNullable().defaultTo(0);
    t.string('started_at', 32).nullable();
    t.string('finished_at', 32).nullable();
    t.string('next_attempt_at', 32).nullable();
    t.text('error').nullable();
    // JSON: output name → SHA-256, and the report data hash.
    t.text('outputs').nullable();
    t.string('data_hash', 64).nullable();
    t.text('holder').nullable();
    t.bigInteger('log_idx').nullable();
    t.unique(['job', 'expected_at']);
    t.index(['job', 'status']);
  });

  // When each job was first scheduled: catch-up never invents runs from before a job existed.
  await knex.schema.createTable('report_jobs', (t) => {
    t.string('job', 64).primary();
    t.text('cron').notNullable();
    t.string('timezone', 64).notNullable();
    t.string('registered_at', 32).notNullable();
  });

  await knex.schema.createTable('report_job_leases', (t) => {
    t.string('job', 64).primary();
    t.text('holder').notNullable();
    t.string('expires_at', 32).notNullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  for (const t of [
    'report_job_leases',
    'report_jobs',
    'report_runs',
    'report_signoffs',
    'report_reassignments',
    'report_decisions',
    'report_campaign_lines',
    'report_campaigns',
  ]) {
    await knex.schema.dropTableIfExists(t);
  }
}
