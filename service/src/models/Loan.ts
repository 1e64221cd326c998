import { Model } from "objection";
import { LOAN_STATUSES, type LoanStatus } from "../schemas.js";

/**
 * A loan. Money columns arrive from node-postgres as strings (NUMERIC) and stay strings: never a float.
 * Fields use `declare` (not `!`): under tsx/esbuild, `!` fields become own `undefined` properties that break
 * Objection's patches (objection.js#1791).
 */
export class Loan extends Model {
  static override tableName = "loans";

  declare id: string;
  declare borrower_id: string;
  declare amount: string;
  declare currency: string;
  declare status: LoanStatus;
  declare term_months: number | null;
  declare interest_rate_apr: string | null;
  declare created_at: Date;
  declare updated_at: Date;

  /** The invariants of a stored loan, checked by Objection on insert and patch (the database checks them too). */
  static override jsonSchema = {
    type: "object",
    required: ["borrower_id", "amount", "currency"],
    properties: {
      id: { type: "string" },
      borrower_id: { type: "string", minLength: 1, maxLength: 128 },
      amount: { type: "string", pattern: "^\\d{1,10}\\.\\d{2}$" },
      currency: { type: "string", pattern: "^[A-Z]{3}$" },
      status: { type: "string", enum: [...LOAN_STATUSES] },
      term_months: { type: ["integer", "null"], minimum: 1, maximum: 600 },
      interest_rate_apr: { type: ["string", "null"], pattern: "^\\d{1,3}\\.\\d{2}$" },
    },
  };
}

export interface LoanJson {
  id: string;
  borrower_id: string;
  amount: string;
  currency: string;
  status: LoanStatus;
  term_months: number | null;
  interest_rate_apr: string | null;
  created_at: string;
  updated_at: string;
}

/** A row of `loans` as node-postgres returns it: NUMERIC as strings, timestamptz as Date. */
export type LoanRow = Pick<Loan, keyof LoanJson>;

/**
 * The API's representation: snake_case, money as two-decimal strings, times as HTTP-dates (as the original).
 * For rows from the Objection model (the status transition). The prepared statements in loans.ts get the same
 * representation from PostgreSQL (`COLUMNS`); lifecycle.test.ts checks that a PATCH and a POST agree.
 */
export function toLoanJson(row: LoanRow): LoanJson {
  return {
    id: row.id,
    borrower_id: row.borrower_id,
    amount: row.amount,
    currency: row.currency,
    status: row.status,
    term_months: row.term_months,
    interest_rate_apr: row.interest_rate_apr,
    created_at: new Date(row.created_at).toUTCString(),
    updated_at: new Date(row.updated_at).toUTCString(),
  };
}
