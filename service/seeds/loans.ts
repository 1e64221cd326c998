import type { Knex } from "knex";
import { Loan } from "../src/models/Loan.js";

/** The five loans of the original API's seed, with their fixed ids. Idempotent: existing ids are left alone. */
export const SEED_LOANS = [
  {
    id: "00000000-0000-0000-0000-000000000001",
    borrower_id: "usr_kenya_001",
    amount: "12500.00",
    currency: "KES",
    status: "pending",
    term_months: 6,
    interest_rate_apr: "28.00",
  },
  {
    id: "00000000-0000-0000-0000-000000000002",
    borrower_id: "usr_india_002",
    amount: "50000.00",
    currency: "INR",
    status: "approved",
    term_months: 12,
    interest_rate_apr: "24.00",
  },
  {
    id: "00000000-0000-0000-0000-000000000003",
    borrower_id: "usr_nigeria_003",
    amount: "32000.00",
    currency: "NGN",
    status: "rejected",
    term_months: 9,
    interest_rate_apr: "30.00",
  },
  {
    id: "00000000-0000-0000-0000-000000000004",
    borrower_id: "usr_vietnam_004",
    amount: "8400.00",
    currency: "VND",
    status: "disbursed",
    term_months: 4,
    interest_rate_apr: "26.00",
  },
  {
    id: "00000000-0000-0000-0000-000000000005",
    borrower_id: "usr_philippines_005",
    amount: "21000.00",
    currency: "PHP",
    status: "repaid",
    term_months: 6,
    interest_rate_apr: "22.00",
  },
] as const;

/** Through the Loan model, bound to `knex`: the seed meets the model's schema like every other insert. */
export async function seedLoans(knex: Knex): Promise<number> {
  // Run as knex's query (not Objection's): its result is the rows actually inserted, none for ids present.
  const inserted = await Loan.bindKnex(knex)
    .query()
    .insert(SEED_LOANS.map((l) => ({ ...l })))
    .onConflict("id")
    .ignore()
    .returning("id")
    .toKnexQuery();
  return (inserted as { id: string }[]).length;
}
