/**
 * The loan: the one place that names the `loans` table and its columns, holds the rules of a stored loan and
 * says how a loan is shown. Every statement on `loans` (service/src/data/loans.ts) is written with this model's
 * query builder, bound explicitly to the knex instance it is given (`Loan.bindKnex(db)`, never a global).
 */
import type { Knex } from "knex";
import { AjvValidator, Model } from "objection";
import { createLoanSchema, type LoanStatus, loanSchema } from "../schemas.js";
import { addValueKeywords } from "../validation.js";

/** The stored columns, in the API's key order. */
export const LOAN_COLUMNS = [
  "id",
  "borrower_id",
  "amount",
  "currency",
  "status",
  "term_months",
  "interest_rate_apr",
  "created_at",
  "updated_at",
] as const;

/** The columns a client sets on creation (the rest have database defaults). */
export const LOAN_INPUT_COLUMNS = ["borrower_id", "amount", "currency", "term_months", "interest_rate_apr"] as const;

type Column = (typeof LOAN_COLUMNS)[number];
type SchemaProperties = Record<string, Record<string, unknown>>;

/**
 * The model's JSON Schema, derived from the API's schemas (schemas.ts, the one source of the rules): a column
 * must satisfy both the request rule that admits it (`CreateLoan`, e.g. bounds and scale of `amount`, the text
 * rules of `borrower_id`) and the representation the API promises for it (`Loan`, e.g. `currency` upper-case).
 * A rule added to either schema applies to the model with no edit here.
 */
export function deriveLoanJsonSchema() {
  const request = createLoanSchema.properties as unknown as SchemaProperties;
  const shown = loanSchema.properties as unknown as SchemaProperties;
  const properties: SchemaProperties = {};
  for (const column of LOAN_COLUMNS) {
    const rules = [request[column], shown[column]].filter((r): r is Record<string, unknown> => r !== undefined);
    properties[column] = rules.length === 1 ? (rules[0] as Record<string, unknown>) : { allOf: rules };
  }
  return { type: "object", required: [...createLoanSchema.required], properties };
}

/** JavaScript's `Date#toUTCString` format, the original API's dates: `Wed, 25 Nov 2026 18:14:16 GMT`. */
const HTTP_DATE = `'Dy, DD Mon YYYY HH24:MI:SS "GMT"'`;

/**
 * A loan. Money columns arrive from node-postgres as strings (NUMERIC) and stay strings: never a float.
 * Fields use `declare` (not `!`): under tsx/esbuild, `!` fields become own `undefined` properties that break
 * Objection's patches (objection.js#1791).
 */
export class Loan extends Model {
  static override tableName = "loans";
  static override idColumn = "id";

  declare id: string;
  declare borrower_id: string;
  declare amount: string;
  declare currency: string;
  declare status: LoanStatus;
  declare term_months: number | null;
  declare interest_rate_apr: string | null;
  declare created_at: Date | string;
  declare updated_at: Date | string;

  /** Checked by Objection on `fromJson`, insert and patch (the database's CHECKs are the last line). */
  static override jsonSchema = deriveLoanJsonSchema();

  static override createValidator() {
    return new AjvValidator({
      onCreateAjv: (ajv) => addValueKeywords(ajv as unknown as Parameters<typeof addValueKeywords>[0]),
      options: { allErrors: true, strict: true, strictTypes: false },
    });
  }

  /**
   * The select list that shows a loan as the API does (`LoanJson`), formatted by PostgreSQL: no Date is parsed
   * and formatted per row in the service. Columns are named (never `*`): a prepared statement's result shape
   * must not follow the table's. The aliases shadow the columns in ORDER BY, so an ORDER BY beside them names
   * `loans.created_at` (see `Loan.orderColumn`).
   */
  static apiColumns(knex: Knex): (string | Knex.Raw)[] {
    return LOAN_COLUMNS.map((c: Column) =>
      c === "created_at" || c === "updated_at"
        ? knex.raw(`to_char(??.?? AT TIME ZONE 'UTC', ${HTTP_DATE}) AS ??`, [Loan.tableName, c, c])
        : c,
    );
  }

  /** The keyset position of a row, exact to the millisecond (the column's precision), as `Date#toISOString`. */
  static cursorColumn(knex: Knex): Knex.Raw {
    return knex.raw(`to_char(??.?? AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS cursor_at`, [
      Loan.tableName,
      "created_at",
    ]);
  }

  /** A column qualified by the table, for ORDER BY and WHERE beside `apiColumns` (whose aliases shadow). */
  static column(name: Column): string {
    return `${Loan.tableName}.${name}`;
  }
}

/** A loan as the API shows it: snake_case, money as two-decimal strings, times as HTTP-dates (as the original). */
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
