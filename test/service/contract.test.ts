// test/run.ts: process-group service-light
/** The contract of the original API (README "API"), over HTTP against the real app and a real PostgreSQL. */

import { suite } from "uvu";
import * as assert from "uvu/assert";
import { countLoans, http, startApp, type TestApp, uniqueBorrower } from "../support/app.js";

const HTTP_DATE =
  /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT$/;
const LOAN_KEYS = [
  "amount",
  "borrower_id",
  "created_at",
  "currency",
  "id",
  "interest_rate_apr",
  "status",
  "term_months",
  "updated_at",
];
const SEED_ID = "00000000-0000-0000-0000-000000000001";

const test = suite<{ app: TestApp }>("contract", {} as { app: TestApp });
test.before(async (ctx) => {
  ctx.app = await startApp();
});
test.after(async (ctx) => {
  await ctx.app.close();
});

test("GET /health answers 200 {status: ok}", async ({ app }) => {
  const r = await http(app.url, "GET", "/health");
  assert.is(r.status, 200);
  assert.equal(r.body, { status: "ok" });
});

test("GET /ready answers 200 {status: ready} while the database answers", async ({ app }) => {
  const r = await http(app.url, "GET", "/ready");
  assert.is(r.status, 200);
  assert.equal(r.body, { status: "ready" });
});

test("GET /api/loans returns a JSON array holding the five seed loans with the original's values", async ({ app }) => {
  // Every page, following the Link header: other test files may have added loans newer than the seed.
  const all: any[] = [];
  for (let path: string | undefined = "/api/loans?limit=200"; path; ) {
    const r: { status: number; body: any[]; headers: Headers } = await http<any[]>(app.url, "GET", path);
    assert.is(r.status, 200);
    assert.ok(Array.isArray(r.body));
    all.push(...r.body);
    path = /<([^>]+)>; rel="next"/.exec(r.headers.get("link") ?? "")?.[1];
  }
  const kenya = all.find((l) => l.id === SEED_ID);
  assert.equal(
    { ...kenya, created_at: undefined, updated_at: undefined },
    {
      id: SEED_ID,
      borrower_id: "usr_kenya_001",
      amount: "12500.00",
      currency: "KES",
      status: "pending",
      term_months: 6,
      interest_rate_apr: "28.00",
      created_at: undefined,
      updated_at: undefined,
    },
  );
  const seeds = new Map(all.filter((l) => l.id.startsWith("00000000-0000-0000-0000-")).map((l) => [l.id, l]));
  assert.is(seeds.size, 5);
  assert.equal(
    [...seeds.values()]
      .map((l) => [l.borrower_id, l.amount, l.currency, l.status, l.term_months, l.interest_rate_apr])
      .sort(),
    [
      ["usr_india_002", "50000.00", "INR", "approved", 12, "24.00"],
      ["usr_kenya_001", "12500.00", "KES", "pending", 6, "28.00"],
      ["usr_nigeria_003", "32000.00", "NGN", "rejected", 9, "30.00"],
      ["usr_philippines_005", "21000.00", "PHP", "repaid", 6, "22.00"],
      ["usr_vietnam_004", "8400.00", "VND", "disbursed", 4, "26.00"],
    ],
  );
});

test("GET /api/loans is newest first, ties broken by id, so the order is total", async ({ app }) => {
  const borrower = uniqueBorrower("order");
  // Three rows inserted in one statement share created_at exactly: only the id orders them.
  await app.db("loans").insert([1, 2, 3].map(() => ({ borrower_id: borrower, amount: "10.00", currency: "USD" })));
  await new Promise((r) => setTimeout(r, 5));
  const newest = await http(app.url, "POST", "/api/loans", {
    json: { borrower_id: borrower, amount: 11, currency: "USD" },
  });
  const r = await http<any[]>(app.url, "GET", `/api/loans?borrower_id=${borrower}`);
  assert.is(r.status, 200);
  assert.is(r.body.length, 4);
  assert.is(r.body[0].id, newest.body.id);
  const tied = r.body.slice(1).map((l) => l.id);
  assert.equal(tied, [...tied].sort().reverse());
});

test("every loan has exactly the nine keys, money as two-decimal strings, times as HTTP-dates", async ({ app }) => {
  const r = await http<any[]>(app.url, "GET", "/api/loans");
  assert.ok(r.body.length >= 5);
  for (const loan of r.body) {
    assert.equal(Object.keys(loan).sort(), LOAN_KEYS);
    assert.match(loan.id, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    assert.match(loan.amount, /^\d+\.\d{2}$/);
    assert.match(loan.currency, /^[A-Z]{3}$/);
    assert.ok(loan.interest_rate_apr === null || /^\d+\.\d{2}$/.test(loan.interest_rate_apr));
    assert.match(loan.created_at, HTTP_DATE);
    assert.match(loan.updated_at, HTTP_DATE);
  }
});

test("GET /api/loans/:id accepts every UUID form the original accepted", async ({ app }) => {
  const forms = [
    SEED_ID,
    SEED_ID.toUpperCase(),
    SEED_ID.replace(/-/g, ""),
    `{${SEED_ID}}`,
    `urn:uuid:${SEED_ID}`,
    `URN:UUID:${SEED_ID.toUpperCase()}`,
  ];
  for (const form of forms) {
    const r = await http(app.url, "GET", `/api/loans/${encodeURIComponent(form)}`);
    assert.is(r.status, 200, form);
    assert.is(r.body.id, SEED_ID, form);
    assert.is(r.body.borrower_id, "usr_kenya_001");
  }
});

test("GET /api/loans/:id answers 400 problem for a non-UUID and 404 problem for an absent one", async ({ app }) => {
  for (const bad of [
    "abc",
    "1",
    "00000000-0000-0000-0000-00000000000g",
    "' OR 1=1 --",
    "00000000-0000-0000-0000-0000000000011",
    "%00",
  ]) {
    const r = await http(app.url, "GET", `/api/loans/${encodeURIComponent(bad)}`);
    assert.is(r.status, 400, bad);
    assert.is(r.headers.get("content-type"), "application/problem+json; charset=utf-8");
    assert.is(r.body.status, 400);
    assert.type(r.body.title, "string");
    assert.type(r.body.detail, "string");
  }
  const r = await http(app.url, "GET", "/api/loans/9b2f1c4e-0000-4000-8000-000000000000");
  assert.is(r.status, 404);
  assert.is(r.body.status, 404);
  assert.is(r.headers.get("content-type"), "application/problem+json; charset=utf-8");
});

test("POST /api/loans answers 201 with the stored loan: pending, stored values, not an echo", async ({ app }) => {
  const borrower = uniqueBorrower("create");
  const r = await http(app.url, "POST", "/api/loans", {
    json: {
      borrower_id: borrower,
      amount: 12000.5,
      currency: "kes",
      term_months: 12,
      interest_rate_apr: 21.5,
      status: "repaid",
      extra: 1,
    },
  });
  assert.is(r.status, 201);
  assert.equal(Object.keys(r.body).sort(), LOAN_KEYS);
  assert.is(r.body.borrower_id, borrower);
  assert.is(r.body.amount, "12000.50");
  assert.is(r.body.currency, "KES");
  assert.is(r.body.status, "pending");
  assert.is(r.body.term_months, 12);
  assert.is(r.body.interest_rate_apr, "21.50");
  assert.match(r.body.created_at, HTTP_DATE);
  const stored = await app.db("loans").where({ id: r.body.id }).first();
  assert.is(stored.amount, "12000.50");
  assert.is(stored.status, "pending");
  const fetched = await http(app.url, "GET", `/api/loans/${r.body.id}`);
  assert.equal(fetched.body, r.body);
});

test("POST /api/loans keeps money exact: numeric strings and numbers alike, never through a float", async ({ app }) => {
  const borrower = uniqueBorrower("exact");
  const cases: Array<[string, string]> = [
    ['"0.01"', "0.01"],
    ["0.1", "0.10"],
    ["50000", "50000.00"],
    ['"49999.99"', "49999.99"],
    ["1.5e3", "1500.00"],
    ["12.500", "12.50"],
    ['"  7 "', "7.00"],
  ];
  for (const [raw, stored] of cases) {
    const r = await http(app.url, "POST", "/api/loans", {
      body: `{"borrower_id":"${borrower}","amount":${raw},"currency":"USD"}`,
      headers: { "content-type": "application/json" },
    });
    assert.is(r.status, 201, raw);
    assert.is(r.body.amount, stored, raw);
  }
  // A float would round this to 0.1 and accept it; exact decimal parsing sees the third decimal place.
  const sneaky = await http(app.url, "POST", "/api/loans", {
    body: `{"borrower_id":"${borrower}","amount":0.10000000000000000001,"currency":"USD"}`,
    headers: { "content-type": "application/json" },
  });
  assert.is(sneaky.status, 400);
  assert.equal(sneaky.body.errors, [{ field: "amount", message: "must have at most 2 decimal places" }]);
});

test("GET /api/stats reports totals, exact average and counts by status and currency", async ({ app }) => {
  const before = await http(app.url, "GET", "/api/stats");
  assert.is(before.status, 200);
  assert.equal(Object.keys(before.body).sort(), [
    "avg_amount",
    "by_currency",
    "by_status",
    "total_amount",
    "total_loans",
  ]);
  const total = await countLoans(app.db);
  assert.is(before.body.total_loans, total);
  const [{ sum }] = (await app.db("loans").sum({ sum: "amount" })) as [{ sum: string }];
  assert.is(before.body.total_amount, Number(sum));
  assert.is(before.body.avg_amount, Math.round((Number(sum) / total) * 100) / 100);
  const borrower = uniqueBorrower("stats");
  await http(app.url, "POST", "/api/loans", { json: { borrower_id: borrower, amount: "0.01", currency: "zzq" } });
  await http(app.url, "POST", "/api/loans", { json: { borrower_id: borrower, amount: "0.02", currency: "ZZQ" } });
  const after = await http(app.url, "GET", "/api/stats");
  assert.is(after.body.total_loans, before.body.total_loans + 2);
  assert.is(Math.round((after.body.total_amount - before.body.total_amount) * 100), 3);
  assert.is(after.body.by_currency.ZZQ, (before.body.by_currency.ZZQ ?? 0) + 2);
  assert.is(after.body.by_status.pending, before.body.by_status.pending + 2);
  for (const v of Object.values(after.body.by_status)) assert.type(v, "number");
});

test("a wrong method on a known path answers 405 with Allow; OPTIONS lists the methods", async ({ app }) => {
  const cases: Array<[string, string, string]> = [
    ["DELETE", "/api/loans", "GET, POST, HEAD, OPTIONS"],
    ["PUT", "/api/loans", "GET, POST, HEAD, OPTIONS"],
    ["POST", `/api/loans/${SEED_ID}`, "GET, PATCH, HEAD, OPTIONS"],
    ["DELETE", `/api/loans/${SEED_ID}`, "GET, PATCH, HEAD, OPTIONS"],
    ["POST", "/api/stats", "GET, HEAD, OPTIONS"],
    ["POST", "/health", "GET, HEAD, OPTIONS"],
    ["PUT", "/ready", "GET, HEAD, OPTIONS"],
  ];
  for (const [method, path, allow] of cases) {
    const r = await http(app.url, method, path);
    assert.is(r.status, 405, `${method} ${path}`);
    assert.is(r.headers.get("allow"), allow);
    assert.is(r.body.status, 405);
    assert.is(r.headers.get("content-type"), "application/problem+json; charset=utf-8");
  }
  const options = await http(app.url, "OPTIONS", "/api/loans");
  assert.is(options.status, 204);
  assert.is(options.headers.get("allow"), "GET, POST, HEAD, OPTIONS");
});

test("an unknown path answers a 404 problem", async ({ app }) => {
  for (const path of ["/", "/api", "/api/loan", "/api/loans/x/y", "/admin"]) {
    const r = await http(app.url, "GET", path);
    assert.is(r.status, 404, path);
    assert.is(r.body.status, 404);
    assert.is(r.headers.get("content-type"), "application/problem+json; charset=utf-8");
  }
});

test("responses carry security headers and a request id, and no x-powered-by", async ({ app }) => {
  const r = await http(app.url, "GET", "/api/stats", { headers: { "x-request-id": "trace-123" } });
  assert.is(r.headers.get("x-powered-by"), null);
  assert.is(r.headers.get("x-content-type-options"), "nosniff");
  assert.is(r.headers.get("x-request-id"), "trace-123");
  const generated = await http(app.url, "GET", "/health");
  assert.match(generated.headers.get("x-request-id") ?? "", /^[0-9a-f-]{36}$/);
});

test.run();
