// test/run.ts: process-group service-light
/** LoanStore: statements built once from the Loan model, the model's schema met by every insert, transitions. */
import { ValidationError } from "objection";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { LoanStore } from "../../../service/src/data/loans.js";
import type { CreateLoanInput } from "../../../service/src/validation.js";
import { countLoans, startApp, type TestApp, uniqueBorrower } from "../../support/app.js";

const test = suite<{ app: TestApp; store: LoanStore }>("data/loans", {} as { app: TestApp; store: LoanStore });
test.before(async (ctx) => {
  ctx.app = await startApp();
  ctx.store = new LoanStore(ctx.app.db);
});
test.after(async (ctx) => {
  await ctx.app.close();
});

const input = (over: Partial<CreateLoanInput> = {}): CreateLoanInput => ({
  borrower_id: uniqueBorrower("store"),
  amount: "100.00",
  currency: "USD",
  term_months: null,
  interest_rate_apr: null,
  ...over,
});

test("every statement is named once, has $n placeholders only, and names the table through the model", ({ store }) => {
  const statements = store.statements();
  const names = statements.map((s) => s.name);
  assert.is(new Set(names).size, names.length);
  // 8 list shapes, by id, status by id, insert, 4 target statuses (approved, rejected, disbursed, repaid, defaulted).
  assert.is(statements.length, 8 + 3 + 5);
  for (const s of statements) {
    assert.match(s.text, /"loans"/, s.name);
    assert.ok(!s.text.includes("?") && !s.text.includes(String.fromCharCode(0)), s.name);
  }
});

test("insert returns the loan as the API shows it, pending, dates as HTTP-dates", async ({ store }) => {
  const loan = await store.insert(input({ term_months: 12, interest_rate_apr: "7.25" }));
  assert.is(loan.status, "pending");
  assert.is(loan.amount, "100.00");
  assert.is(loan.term_months, 12);
  assert.is(loan.interest_rate_apr, "7.25");
  assert.match(loan.created_at, /^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/);
  assert.equal(await store.get(loan.id), loan);
});

test("insert meets the model's schema first: an invalid loan is a ValidationError and nothing is written", async ({
  app,
  store,
}) => {
  const before = await countLoans(app.db);
  for (const bad of [
    input({ currency: "usd" }),
    input({ amount: "0.00" }),
    input({ amount: "50000.01" }),
    input({ borrower_id: "" }),
    input({ term_months: 0 }),
    input({ interest_rate_apr: "100.01" }),
  ]) {
    try {
      await store.insert(bad);
      assert.unreachable(JSON.stringify(bad));
    } catch (err) {
      assert.instance(err, ValidationError, JSON.stringify(bad));
    }
  }
  assert.is(await countLoans(app.db), before);
});

test("list pages newest first with a cursor and filters", async ({ store }) => {
  const borrower = uniqueBorrower("page");
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) ids.push((await store.insert(input({ borrower_id: borrower }))).id);
  const first = await store.list({ limit: 2, borrower_id: borrower });
  assert.ok(first.next);
  const second = await store.list({ limit: 2, borrower_id: borrower, cursor: first.next });
  const third = await store.list({ limit: 2, borrower_id: borrower, cursor: second.next });
  assert.is(third.next, undefined);
  const paged = [...first.loans, ...second.loans, ...third.loans].map((l) => l.id);
  // Pages in sequence are the one-page listing: same order, no duplicate, no gap. (Not simply the insertion
  // order reversed: two inserts in the same millisecond share created_at and are ordered by id, which is random.
  // That happened in the pipeline's container, where inserts are faster.)
  const whole = await store.list({ limit: 10, borrower_id: borrower });
  assert.equal(
    paged,
    whole.loans.map((l) => l.id),
  );
  assert.equal([...paged].sort(), [...ids].sort());
  const approved = await store.list({ limit: 10, borrower_id: borrower, status: "approved" });
  assert.equal(approved.loans, []);
});

test("transition: allowed moves, 409 with the current status, 404 for no loan", async ({ store }) => {
  const { id } = await store.insert(input());
  assert.is((await store.transition(id, "approved")).status, "approved");
  for (const [to, status] of [
    ["pending", 409],
    ["repaid", 409],
  ] as const) {
    try {
      await store.transition(id, to);
      assert.unreachable(to);
    } catch (err) {
      assert.is((err as { status: number }).status, status);
      assert.is((err as { body: { current_status?: string } }).body.current_status, "approved");
    }
  }
  try {
    await store.transition("00000000-0000-0000-0000-0000000000ff", "approved");
    assert.unreachable("absent");
  } catch (err) {
    assert.is((err as { status: number }).status, 404);
  }
});

test.run();
