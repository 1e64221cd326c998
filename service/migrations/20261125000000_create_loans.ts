import type { Knex } from "knex";

export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE TABLE loans (
      id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      borrower_id       text NOT NULL CHECK (char_length(borrower_id) BETWEEN 1 AND 128),
      amount            numeric(12, 2) NOT NULL CHECK (amount > 0 AND amount <= 50000),
      currency          char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
      status            text NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'approved', 'rejected', 'disbursed', 'repaid', 'defaulted')),
      term_months       integer CHECK (term_months BETWEEN 1 AND 600),
      interest_rate_apr numeric(5, 2) CHECK (interest_rate_apr BETWEEN 0 AND 100),
      -- Millisecond precision: a JavaScript Date holds it exactly, so the keyset cursor round-trips.
      created_at        timestamptz(3) NOT NULL DEFAULT now(),
      updated_at        timestamptz(3) NOT NULL DEFAULT now()
    )
  `);
  // Newest first, ties broken by id: the list's order and its keyset cursor.
  await knex.raw("CREATE INDEX loans_created_at_id_idx ON loans (created_at DESC, id DESC)");
  await knex.raw("CREATE INDEX loans_status_created_at_id_idx ON loans (status, created_at DESC, id DESC)");
  await knex.raw("CREATE INDEX loans_borrower_created_at_id_idx ON loans (borrower_id, created_at DESC, id DESC)");
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw("DROP TABLE IF EXISTS loans");
}
