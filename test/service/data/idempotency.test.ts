// test/run.ts: process-group service-light
/** Idempotent creation in the data layer: one loan per key, the first response replayed, a reused key refused. */
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { IdempotentCreation, requestHash } from "../../../service/src/data/idempotency.js";
import { LoanStore } from "../../../service/src/data/loans.js";
import type { CreateLoanInput } from "../../../service/src/validation.js";
import { startApp, type TestApp, uniqueBorrower } from "../../support/app.js";

const test = suite<{ app: TestApp; creation: IdempotentCreation }>(
  "data/idempotency",
  {} as { app: TestApp; creation: IdempotentCreation },
);
test.before(async (ctx) => {
  ctx.app = await startApp();
  ctx.creation = new IdempotentCreation(ctx.app.db, new LoanStore(ctx.app.db));
});
test.after(async (ctx) => {
  await ctx.app.close();
});

const input = (): CreateLoanInput => ({
  borrower_id: uniqueBorrower("idem"),
  amount: "10.00",
  currency: "USD",
  term_months: 3,
  interest_rate_apr: null,
});

test("requestHash depends on every field and on nothing else", () => {
  const a = input();
  assert.is(requestHash(a), requestHash({ ...a }));
  for (const change of [
    { borrower_id: "other" },
    { amount: "10.01" },
    { currency: "EUR" },
    { term_months: null },
    { interest_rate_apr: "1.00" },
  ]) {
    assert.is.not(requestHash({ ...a, ...change }), requestHash(a), JSON.stringify(change));
  }
});

test("without a key every call creates", async ({ creation }) => {
  const a = input();
  const one = await creation.create(a);
  const two = await creation.create(a);
  assert.is.not(one.loan.id, two.loan.id);
  assert.is(one.replayed || two.replayed, false);
});

test("the same key and request: the first loan, replayed; concurrent retries create one loan", async ({
  app,
  creation,
}) => {
  const a = input();
  const key = `k-${a.borrower_id}`;
  const results = await Promise.all(Array.from({ length: 6 }, () => creation.create(a, key)));
  assert.is(new Set(results.map((r) => r.loan.id)).size, 1);
  assert.is(results.filter((r) => !r.replayed).length, 1);
  const later = await creation.create(a, key);
  assert.is(later.replayed, true);
  assert.equal(later.loan, results.find((r) => !r.replayed)?.loan);
  const rows = await app.db("loans").where({ borrower_id: a.borrower_id }).count({ n: "*" });
  assert.is(Number(rows[0]?.n), 1);
});

test("the same key with another request is a 422", async ({ creation }) => {
  const a = input();
  const key = `k-${a.borrower_id}`;
  await creation.create(a, key);
  try {
    await creation.create({ ...a, amount: "11.00" }, key);
    assert.unreachable("reused key accepted");
  } catch (err) {
    assert.is((err as { status: number }).status, 422);
  }
});

test.run();
