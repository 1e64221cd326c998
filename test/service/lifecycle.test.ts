// test/run.ts: process-group service-light
/** The status lifecycle through PATCH /api/loans/:id, including concurrent transitions of one loan. */

import { suite } from "uvu";
import * as assert from "uvu/assert";
import { TRANSITIONS } from "../../service/src/models/transitions.js";
import { LOAN_STATUSES } from "../../service/src/schemas.js";
import { http, startApp, type TestApp, uniqueBorrower } from "../support/app.js";
import { waitFor } from "../support/wait.js";

const test = suite<{ app: TestApp }>("lifecycle", {} as { app: TestApp });
test.before(async (ctx) => {
  ctx.app = await startApp();
});
test.after(async (ctx) => {
  await ctx.app.close();
});

async function loanIn(app: TestApp, status: string): Promise<string> {
  const [row] = await app
    .db("loans")
    .insert({ borrower_id: uniqueBorrower("life"), amount: "10.00", currency: "USD", status })
    .returning("id");
  return row.id;
}

const ALLOWED = new Set([
  "pending>approved",
  "pending>rejected",
  "approved>disbursed",
  "disbursed>repaid",
  "disbursed>defaulted",
]);

test("the transition table is exactly the documented one", () => {
  const table = LOAN_STATUSES.flatMap((from) => TRANSITIONS[from].map((to) => `${from}>${to}`));
  assert.equal(new Set(table), ALLOWED);
});

test("every (from, to) pair: allowed ones answer 200 with the new status, the rest 409 and change nothing", async ({
  app,
}) => {
  for (const from of LOAN_STATUSES) {
    for (const to of LOAN_STATUSES) {
      const id = await loanIn(app, from);
      const r = await http(app.url, "PATCH", `/api/loans/${id}`, { json: { status: to } });
      const stored = await app.db("loans").where({ id }).first("status");
      if (ALLOWED.has(`${from}>${to}`)) {
        assert.is(r.status, 200, `${from} → ${to}`);
        assert.is(r.body.status, to);
        assert.is(r.body.id, id);
        assert.is(stored.status, to);
      } else {
        assert.is(r.status, 409, `${from} → ${to}`);
        assert.is(r.headers.get("content-type"), "application/problem+json; charset=utf-8");
        assert.is(r.body.current_status, from);
        assert.is(stored.status, from);
      }
    }
  }
});

test("a full happy path pending → approved → disbursed → repaid updates updated_at", async ({ app }) => {
  const created = await http(app.url, "POST", "/api/loans", {
    json: { borrower_id: uniqueBorrower("happy"), amount: 100, currency: "USD" },
  });
  const id = created.body.id;
  // The API shows updated_at to the second: the transitions' (now()) must fall in a later second than the
  // creation's. Wait until the database's clock is there.
  const nextSecond = new Date(Date.parse(created.body.updated_at) + 1000).toISOString();
  await waitFor(
    "the database clock in the second after the creation",
    async () => {
      const { rows } = await app.db.raw("SELECT clock_timestamp() >= ?::timestamptz AS later", [nextSecond]);
      return rows[0].later === true;
    },
    5000,
    20,
  );
  for (const status of ["approved", "disbursed", "repaid"]) {
    const r = await http(app.url, "PATCH", `/api/loans/${id}`, { json: { status } });
    assert.is(r.status, 200);
    assert.is(r.body.status, status);
  }
  const final = await http(app.url, "GET", `/api/loans/${id}`);
  assert.is(final.body.status, "repaid");
  assert.is(final.body.created_at, created.body.created_at);
  assert.ok(Date.parse(final.body.updated_at) > Date.parse(created.body.updated_at));
});

test("concurrent transitions of one loan: exactly one wins, the others get 409", async ({ app }) => {
  for (let round = 0; round < 5; round++) {
    const id = await loanIn(app, "pending");
    const targets = Array.from({ length: 10 }, (_, i) => (i % 2 ? "approved" : "rejected"));
    const results = await Promise.all(
      targets.map((status) => http(app.url, "PATCH", `/api/loans/${id}`, { json: { status } })),
    );
    const wins = results.filter((r) => r.status === 200);
    assert.is(wins.length, 1, `round ${round}: ${results.map((r) => r.status)}`);
    assert.is(results.filter((r) => r.status === 409).length, 9);
    const stored = await app.db("loans").where({ id }).first("status");
    assert.is(stored.status, wins[0]?.body.status);
  }
});

test("status changes keep /api/stats exact", async ({ app }) => {
  const before = (await http(app.url, "GET", "/api/stats")).body;
  const id = await loanIn(app, "pending");
  await http(app.url, "PATCH", `/api/loans/${id}`, { json: { status: "approved" } });
  const after = (await http(app.url, "GET", "/api/stats")).body;
  assert.is(after.by_status.pending, before.by_status.pending);
  assert.is(after.by_status.approved, before.by_status.approved + 1);
  assert.is(after.total_loans, before.total_loans + 1);
});

test.run();

test("a loan's JSON is the same from POST, GET, the list and PATCH, field by field", async ({ app }) => {
  for (const extra of [{ term_months: 7, interest_rate_apr: "9.5" }, {}]) {
    const borrower = uniqueBorrower("same");
    const posted = await http(app.url, "POST", "/api/loans", {
      json: { borrower_id: borrower, amount: "1234.5", currency: "eur", ...extra },
    });
    assert.is(posted.status, 201);
    const id = posted.body.id as string;
    const got = await http(app.url, "GET", `/api/loans/${id}`);
    const listed = await http<any[]>(app.url, "GET", `/api/loans?borrower_id=${borrower}`);
    assert.is(listed.body.length, 1);
    const keys = Object.keys(posted.body);
    assert.equal(keys, Object.keys(got.body));
    assert.equal(keys, Object.keys(listed.body[0]));
    for (const key of keys) {
      assert.equal(got.body[key], posted.body[key], `GET ${key}`);
      assert.equal(listed.body[0][key], posted.body[key], `list ${key}`);
    }
    const patched = await http(app.url, "PATCH", `/api/loans/${id}`, { json: { status: "approved" } });
    assert.is(patched.status, 200);
    assert.equal(Object.keys(patched.body), keys);
    const after = await http(app.url, "GET", `/api/loans/${id}`);
    const listedAfter = await http<any[]>(app.url, "GET", `/api/loans?borrower_id=${borrower}`);
    for (const key of keys) {
      // The PATCH answers with the row as every read shows it afterwards …
      assert.equal(patched.body[key], after.body[key], `PATCH vs GET ${key}`);
      assert.equal(patched.body[key], listedAfter.body[0][key], `PATCH vs list ${key}`);
      // … and changes nothing but the status and updated_at.
      if (key !== "status" && key !== "updated_at") assert.equal(patched.body[key], posted.body[key], `PATCH ${key}`);
    }
    assert.is(patched.body.status, "approved");
    assert.match(patched.body.updated_at, /^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/);
  }
});
