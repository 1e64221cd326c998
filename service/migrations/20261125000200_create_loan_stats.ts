import type { Knex } from "knex";

/**
 * Maintained aggregates for GET /api/stats: counts and exact sums per (status, currency), kept by a trigger in
 * the same transaction as every write, so they are exact under concurrent writes and status changes and the
 * stats query reads a handful of rows instead of scanning the table. Each (status, currency) is split over 16
 * shards chosen at random per write, so concurrent inserts of one currency do not queue on a single row lock.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE TABLE loan_stats (
      status     text NOT NULL,
      currency   char(3) NOT NULL,
      shard      smallint NOT NULL,
      loan_count bigint NOT NULL DEFAULT 0,
      amount_sum numeric(20, 2) NOT NULL DEFAULT 0,
      PRIMARY KEY (status, currency, shard)
    )
  `);
  await knex.raw(`
    CREATE FUNCTION loan_stats_apply(p_status text, p_currency char(3), p_count bigint, p_amount numeric)
    RETURNS void LANGUAGE sql AS $$
      INSERT INTO loan_stats (status, currency, shard, loan_count, amount_sum)
      VALUES (p_status, p_currency, floor(random() * 16)::smallint, p_count, p_amount)
      ON CONFLICT (status, currency, shard) DO UPDATE
        SET loan_count = loan_stats.loan_count + EXCLUDED.loan_count,
            amount_sum = loan_stats.amount_sum + EXCLUDED.amount_sum
    $$
  `);
  await knex.raw(`
    CREATE FUNCTION loan_stats_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM loan_stats_apply(OLD.status, OLD.currency, -1, -OLD.amount);
      END IF;
      IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM loan_stats_apply(NEW.status, NEW.currency, 1, NEW.amount);
      END IF;
      RETURN NULL;
    END
    $$
  `);
  await knex.raw(`
    CREATE TRIGGER loans_stats_ins_del AFTER INSERT OR DELETE ON loans
    FOR EACH ROW EXECUTE FUNCTION loan_stats_trigger()
  `);
  await knex.raw(`
    CREATE TRIGGER loans_stats_upd AFTER UPDATE OF status, currency, amount ON loans
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.currency IS DISTINCT FROM NEW.currency
          OR OLD.amount IS DISTINCT FROM NEW.amount)
    EXECUTE FUNCTION loan_stats_trigger()
  `);
  // Rows that existed before this migration.
  await knex.raw(`
    INSERT INTO loan_stats (status, currency, shard, loan_count, amount_sum)
    SELECT status, currency, 0, count(*), sum(amount) FROM loans GROUP BY status, currency
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw("DROP TRIGGER IF EXISTS loans_stats_upd ON loans");
  await knex.raw("DROP TRIGGER IF EXISTS loans_stats_ins_del ON loans");
  await knex.raw("DROP FUNCTION IF EXISTS loan_stats_trigger()");
  await knex.raw("DROP FUNCTION IF EXISTS loan_stats_apply(text, char, bigint, numeric)");
  await knex.raw("DROP TABLE IF EXISTS loan_stats");
}
