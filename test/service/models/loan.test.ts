// test/run.ts: process-group service-light
/** The Loan model: its schema derived from the API's schemas (one source of rules), its validator, its table. */
import { ValidationError } from "objection";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { LOAN_COLUMNS, Loan } from "../../../service/src/models/Loan.js";
import { createLoanSchema, loanSchema } from "../../../service/src/schemas.js";
import { validateCreateLoan } from "../../../service/src/validation.js";

const test = suite("models/Loan");

const isValidationError = (err: unknown) => err instanceof ValidationError;

test("each column's rules are the API's own schema objects (an edit to schemas.ts flows through)", () => {
  const props = Loan.jsonSchema.properties as Record<string, { allOf?: unknown[] }>;
  assert.equal(Object.keys(props), [...LOAN_COLUMNS]);
  // Identity, not a copy: the request rule and the representation rule themselves.
  assert.ok(props.borrower_id?.allOf?.includes(createLoanSchema.properties.borrower_id));
  assert.ok(props.borrower_id?.allOf?.includes(loanSchema.properties.borrower_id));
  assert.ok(props.amount?.allOf?.includes(createLoanSchema.properties.amount));
  assert.is(props.status, loanSchema.properties.status as unknown);
  assert.equal(Loan.jsonSchema.required, [...createLoanSchema.required]);
});

test("the model accepts what request validation produces and rejects what it refuses", () => {
  const good = [
    { borrower_id: "usr_1", amount: "12000.5", currency: "kes" },
    { borrower_id: "usr_2", amount: 50000, currency: "USD", term_months: 600, interest_rate_apr: 0 },
    { borrower_id: "u", amount: "0.01", currency: "EUR", term_months: null, interest_rate_apr: "100" },
  ];
  for (const body of good) {
    const input = validateCreateLoan({ ...body });
    const loan = Loan.fromJson({ ...input });
    assert.is(loan.amount, input.amount);
  }
  const bad = [
    { borrower_id: "usr", amount: "0", currency: "USD" },
    { borrower_id: "usr", amount: "50000.01", currency: "USD" },
    { borrower_id: "usr", amount: "1.001", currency: "USD" },
    { borrower_id: "usr", amount: "1", currency: "US" },
    { borrower_id: "", amount: "1", currency: "USD" },
    { borrower_id: "usr", amount: "1", currency: "USD", term_months: 601 },
    { borrower_id: "usr", amount: "1", currency: "USD", interest_rate_apr: "-1" },
    { amount: "1", currency: "USD" },
  ];
  for (const body of bad) {
    assert.throws(() => validateCreateLoan({ ...body }), undefined, `request accepted ${JSON.stringify(body)}`);
    assert.throws(() => Loan.fromJson({ ...body }), isValidationError, `model accepted ${JSON.stringify(body)}`);
  }
  // Stored form: the model refuses a lower-case currency (the API upper-cases it before).
  assert.throws(() => Loan.fromJson({ borrower_id: "u", amount: "1.00", currency: "usd" }), isValidationError);
});

test("the model names its table; statuses are checked on patch", () => {
  assert.is(Loan.tableName, "loans");
  assert.throws(() => Loan.fromJson({ status: "paid" }, { patch: true }), isValidationError);
  assert.not.throws(() => Loan.fromJson({ status: "approved" }, { patch: true }));
});

test.run();
