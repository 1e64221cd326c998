// test/run.ts: process-group service-light
/** POST /api/loans validation: each rule just inside and just outside its bound; bad bodies; no 5xx; no writes. */

import { suite } from "uvu";
import * as assert from "uvu/assert";
import { countLoans, http, startApp, type TestApp, uniqueBorrower } from "../support/app.js";

const test = suite<{ app: TestApp }>("validation", {} as { app: TestApp });
test.before(async (ctx) => {
  ctx.app = await startApp();
});
test.after(async (ctx) => {
  await ctx.app.close();
});

const base = () => ({ borrower_id: uniqueBorrower("v"), amount: "100.00", currency: "USD" });

async function post(app: TestApp, body: unknown) {
  return http(app.url, "POST", "/api/loans", { json: body });
}

function assertProblem(r: { status: number; headers: Headers; body: any }, status: number) {
  assert.is(r.status, status);
  assert.is(r.headers.get("content-type"), "application/problem+json; charset=utf-8");
  assert.is(r.body.status, status);
  assert.type(r.body.title, "string");
  assert.type(r.body.detail, "string");
  assert.not.match(JSON.stringify(r.body), /select|insert|stack|at .*\.ts|pg_|knex/i);
}

// [field, value, accepted?, stored value when accepted]
const boundaries: Array<[string, unknown, boolean, unknown?]> = [
  ["amount", "0.01", true, "0.01"],
  ["amount", "0.00", false],
  ["amount", 0, false],
  ["amount", -1, false],
  ["amount", 50000, true, "50000.00"],
  ["amount", "50000.00", true, "50000.00"],
  ["amount", "50000.01", false],
  ["amount", 50001, false],
  ["amount", "12.345", false],
  ["amount", "abc", false],
  ["amount", "", false],
  ["amount", "NaN", false],
  ["amount", "Infinity", false],
  ["amount", "1e400", false],
  ["amount", true, false],
  ["amount", null, false],
  ["amount", [1], false],
  ["amount", { value: 1 }, false],
  ["currency", "usd", true, "USD"],
  ["currency", "UsD", true, "USD"],
  ["currency", "US", false],
  ["currency", "USDX", false],
  ["currency", "U1D", false],
  ["currency", "ßab", false],
  ["currency", "ﬀab", false],
  ["currency", 123, false],
  ["currency", null, false],
  ["borrower_id", "x", true, "x"],
  ["borrower_id", "b".repeat(128), true, "b".repeat(128)],
  ["borrower_id", "b".repeat(129), false],
  ["borrower_id", "", false],
  ["borrower_id", "   ", false],
  ["borrower_id", "nul\u0000byte", false],
  ["borrower_id", "ünïcödé ✓", true, "ünïcödé ✓"],
  ["borrower_id", 42, false],
  ["borrower_id", null, false],
  ["term_months", 1, true, 1],
  ["term_months", 600, true, 600],
  ["term_months", 0, false],
  ["term_months", 601, false],
  ["term_months", 2147483648, false],
  ["term_months", 1e300, false],
  ["term_months", 1.5, false],
  ["term_months", 12.0, true, 12],
  ["term_months", "12", true, 12],
  ["term_months", "twelve", false],
  ["term_months", null, true, null],
  ["interest_rate_apr", 0, true, "0.00"],
  ["interest_rate_apr", "100", true, "100.00"],
  ["interest_rate_apr", 100.01, false],
  ["interest_rate_apr", -0.01, false],
  ["interest_rate_apr", 12.345, false],
  ["interest_rate_apr", null, true, null],
  ["interest_rate_apr", "x", false],
];

test("each field rule accepts just inside its bound and rejects just outside, naming the field", async ({ app }) => {
  for (const [field, value, ok, stored] of boundaries) {
    const r = await post(app, { ...base(), [field]: value });
    const label = `${field}=${JSON.stringify(value)}`;
    if (ok) {
      assert.is(r.status, 201, label);
      assert.equal(r.body[field], stored, label);
    } else {
      assertProblem(r, 400);
      assert.equal(
        r.body.errors.map((e: { field: string }) => e.field),
        [field],
        label,
      );
    }
  }
});

test("a missing required field is named; term_months and interest_rate_apr are optional", async ({ app }) => {
  for (const field of ["borrower_id", "amount", "currency"]) {
    const body: Record<string, unknown> = base();
    delete body[field];
    const r = await post(app, body);
    assertProblem(r, 400);
    assert.equal(r.body.errors, [{ field, message: "is required" }]);
  }
  const r = await post(app, base());
  assert.is(r.status, 201);
  assert.is(r.body.term_months, null);
  assert.is(r.body.interest_rate_apr, null);
});

test("validation lists every failing field at once", async ({ app }) => {
  const r = await post(app, {
    borrower_id: "",
    amount: "1.005",
    currency: "ßab",
    term_months: 99999999999,
    interest_rate_apr: 101,
  });
  assertProblem(r, 400);
  assert.is(r.body.type, "/problems/validation-error");
  assert.equal(r.body.errors.map((e: { field: string }) => e.field).sort(), [
    "amount",
    "borrower_id",
    "currency",
    "interest_rate_apr",
    "term_months",
  ]);
  for (const e of r.body.errors) assert.ok(e.message.length > 3);
});

test("the two inputs that crashed the original (term_months beyond int32, a currency growing when upper-cased) are 400", async ({
  app,
}) => {
  const big = await post(app, { ...base(), term_months: 2147483648 });
  assertProblem(big, 400);
  assert.equal(
    big.body.errors.map((e: { field: string }) => e.field),
    ["term_months"],
  );
  const ss = await post(app, { ...base(), currency: "ßab" });
  assertProblem(ss, 400);
  assert.equal(
    ss.body.errors.map((e: { field: string }) => e.field),
    ["currency"],
  );
});

test("unknown keys are ignored and status cannot be chosen by the client", async ({ app }) => {
  const r = await post(app, {
    ...base(),
    status: "approved",
    id: "00000000-0000-0000-0000-000000000009",
    created_at: "x",
    foo: { bar: 1 },
  });
  assert.is(r.status, 201);
  assert.is(r.body.status, "pending");
  assert.is.not(r.body.id, "00000000-0000-0000-0000-000000000009");
});

test("malformed JSON, non-object bodies, wrong content types and empty bodies are 400 problems", async ({ app }) => {
  const json = { "content-type": "application/json" };
  const cases: Array<[string | undefined, Record<string, string>]> = [
    ["{", json],
    ['{"borrower_id": "x",}', json],
    ["not json", json],
    ["[]", json],
    ['[{"borrower_id":"x","amount":1,"currency":"USD"}]', json],
    ["123", json],
    ['"string"', json],
    ["null", json],
    ["true", json],
    ["", json],
    [undefined, {}],
    [JSON.stringify(base()), { "content-type": "text/plain" }],
    [JSON.stringify(base()), { "content-type": "application/x-www-form-urlencoded" }],
    ["borrower_id=x&amount=1&currency=USD", { "content-type": "application/x-www-form-urlencoded" }],
    ['{"a":1}', { "content-type": "application/json; charset=latin1" }],
  ];
  for (const [body, headers] of cases) {
    const r = await http(app.url, "POST", "/api/loans", { body, headers });
    assert.ok(r.status === 400 || r.status === 415, `${body} ${JSON.stringify(headers)} → ${r.status}`);
    assertProblem(r, r.status);
  }
});

test("a body over the 8 KiB limit is a 413 problem", async ({ app }) => {
  const r = await post(app, { ...base(), filler: "x".repeat(9000) });
  assertProblem(r, 413);
  const justUnder = await post(app, { ...base(), filler: "x".repeat(7000) });
  assert.is(justUnder.status, 201);
});

test("rejected requests write nothing", async ({ app }) => {
  const before = await countLoans(app.db);
  await post(app, { ...base(), amount: "0" });
  await post(app, { ...base(), currency: "ßab" });
  await post(app, { ...base(), term_months: 2147483648 });
  await http(app.url, "POST", "/api/loans", { body: "{", headers: { "content-type": "application/json" } });
  await post(app, { ...base(), filler: "x".repeat(9000) });
  assert.is(await countLoans(app.db), before);
});

test("PATCH validation: unknown status or any other field is 400, an absent loan 404, a bad id 400", async ({
  app,
}) => {
  const created = await post(app, base());
  const id = created.body.id;
  const cases: unknown[] = [
    { status: "paid" },
    { status: "approved", amount: 1 },
    { amount: 1 },
    {},
    { status: null },
    { status: 1 },
  ];
  for (const body of cases) {
    const r = await http(app.url, "PATCH", `/api/loans/${id}`, { json: body });
    assertProblem(r, 400);
  }
  const absent = await http(app.url, "PATCH", "/api/loans/9b2f1c4e-0000-4000-8000-000000000000", {
    json: { status: "approved" },
  });
  assertProblem(absent, 404);
  const badId = await http(app.url, "PATCH", "/api/loans/nope", { json: { status: "approved" } });
  assertProblem(badId, 400);
  const unchanged = await http(app.url, "GET", `/api/loans/${id}`);
  assert.is(unchanged.body.status, "pending");
});

test("list query validation: bad limit, cursor, status or an unknown parameter is 400", async ({ app }) => {
  for (const q of [
    "limit=0",
    "limit=201",
    "limit=abc",
    "limit=1.5",
    "limit=-1",
    "cursor=garbage",
    "cursor=",
    "status=paid",
    "limit=1&limit=2",
    "bogus=1",
  ]) {
    const r = await http(app.url, "GET", `/api/loans?${q}`);
    assertProblem(r, 400);
    assert.ok(Array.isArray(r.body.errors), q);
  }
  const ok = await http(app.url, "GET", "/api/loans?limit=200");
  assert.is(ok.status, 200);
});

test("an Idempotency-Key that is empty, too long or not visible ASCII is a 400", async ({ app }) => {
  for (const key of ["", "k".repeat(256), "has space", "tab\tkey"]) {
    const r = await http(app.url, "POST", "/api/loans", { json: base(), headers: { "idempotency-key": key } });
    assertProblem(r, 400);
  }
});

test.run();
