import type { Knex } from "knex";

export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE TABLE idempotency_keys (
      key           text PRIMARY KEY,
      request_hash  text NOT NULL,
      loan_id       uuid NOT NULL REFERENCES loans (id) ON DELETE CASCADE,
      response_body jsonb NOT NULL,
      created_at    timestamptz NOT NULL DEFAULT now()
    )
  `);
  await knex.raw("CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at)");
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw("DROP TABLE IF EXISTS idempotency_keys");
}
