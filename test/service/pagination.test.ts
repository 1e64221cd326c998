// test/run.ts: process-group service-light
/** Keyset pagination on GET /api/loans: array body kept, Link rel="next", filters, no duplicates or gaps. */

import { suite } from "uvu";
import * as assert from "uvu/assert";
import { http, startApp, type TestApp, uniqueBorrower } from "../support/app.js";

const test = suite<{ app: TestApp }>("pagination", {} as { app: TestApp });
test.before(async (ctx) => {
  ctx.app = await startApp();
});
test.after(async (ctx) => {
  await ctx.app.close();
});

function nextLink(headers: Headers): string | undefined {
  const link = headers.get("link");
  if (!link) return undefined;
  const m = /^<([^>]+)>; rel="next"$/.exec(link);
  assert.ok(m, `Link header format: ${link}`);
  return m?.[1];
}

async function seedBorrower(app: TestApp, n: number, status = "pending") {
  const borrower = uniqueBorrower("page");
  // Half in one statement (identical created_at: only the id orders them), half one by one.
  const rows = Array.from({ length: n }, (_, i) => ({
    borrower_id: borrower,
    amount: `${i + 1}.00`,
    currency: "EUR",
    status,
  }));
  await app.db("loans").insert(rows.slice(0, n / 2));
  for (const row of rows.slice(n / 2)) await app.db("loans").insert(row);
  return borrower;
}

async function walk(app: TestApp, first: string, onPage?: (page: number) => Promise<void>) {
  const ids: string[] = [];
  let path: string | undefined = first;
  let pages = 0;
  while (path && pages < 1000) {
    const r = await http<any[]>(app.url, "GET", path);
    assert.is(r.status, 200);
    assert.ok(Array.isArray(r.body));
    ids.push(...r.body.map((l) => l.id));
    pages += 1;
    await onPage?.(pages);
    path = nextLink(r.headers);
  }
  return { ids, pages };
}

test("without parameters the list is one page of at most 100, with a next link when there is more", async ({ app }) => {
  await seedBorrower(app, 110);
  const r = await http<any[]>(app.url, "GET", "/api/loans");
  assert.is(r.status, 200);
  assert.is(r.body.length, 100);
  const next = nextLink(r.headers);
  assert.ok(next?.startsWith("/api/loans?limit=100&cursor="));
});

test("limit bounds the page; the last page has no Link header", async ({ app }) => {
  const borrower = await seedBorrower(app, 10);
  const { ids, pages } = await walk(app, `/api/loans?borrower_id=${borrower}&limit=3`);
  assert.is(ids.length, 10);
  assert.is(pages, 4);
  const exact = await http(app.url, "GET", `/api/loans?borrower_id=${borrower}&limit=10`);
  assert.is(exact.body.length, 10);
  assert.is(exact.headers.get("link"), null);
});

test("walking every page visits each row once, in the same order as one big page", async ({ app }) => {
  const borrower = await seedBorrower(app, 40);
  const all = await http<any[]>(app.url, "GET", `/api/loans?borrower_id=${borrower}&limit=200`);
  const { ids } = await walk(app, `/api/loans?borrower_id=${borrower}&limit=7`);
  assert.equal(
    ids,
    all.body.map((l) => l.id),
  );
});

test("rows inserted while a client pages cause no duplicates and no gaps among the rows that existed", async ({
  app,
}) => {
  const borrower = await seedBorrower(app, 30);
  const existing = (await http<any[]>(app.url, "GET", `/api/loans?borrower_id=${borrower}&limit=200`)).body.map(
    (l) => l.id,
  );
  const { ids } = await walk(app, `/api/loans?borrower_id=${borrower}&limit=4`, async () => {
    // Newer rows of the same borrower land before the cursor, so the walk neither repeats nor skips.
    await http(app.url, "POST", "/api/loans", { json: { borrower_id: borrower, amount: 5, currency: "EUR" } });
  });
  assert.is(new Set(ids).size, ids.length, "no duplicates");
  assert.equal(ids, existing, "exactly the rows that existed, in order");
});

test("filters status and borrower_id select rows, and the next link keeps them", async ({ app }) => {
  const borrower = await seedBorrower(app, 6, "approved");
  await app.db("loans").insert({ borrower_id: borrower, amount: "1.00", currency: "EUR", status: "rejected" });
  const approved = await walk(app, `/api/loans?borrower_id=${borrower}&status=approved&limit=2`);
  assert.is(approved.ids.length, 6);
  const first = await http(app.url, "GET", `/api/loans?borrower_id=${borrower}&status=approved&limit=2`);
  assert.match(first.headers.get("link") ?? "", /status=approved/);
  assert.match(first.headers.get("link") ?? "", new RegExp(`borrower_id=${borrower}`));
  const rejected = await http<any[]>(app.url, "GET", `/api/loans?borrower_id=${borrower}&status=rejected`);
  assert.equal(
    rejected.body.map((l) => l.status),
    ["rejected"],
  );
  const none = await http<any[]>(app.url, "GET", `/api/loans?borrower_id=${uniqueBorrower("nobody")}`);
  assert.equal(none.body, []);
});

test("a tampered cursor is a 400 problem, not a 500", async ({ app }) => {
  for (const cursor of [
    Buffer.from("[1,2]").toString("base64url"),
    Buffer.from('["not a date","00000000-0000-0000-0000-000000000001"]').toString("base64url"),
    Buffer.from('["2026-01-01T00:00:00Z","x\' OR 1=1"]').toString("base64url"),
    Buffer.from("{}").toString("base64url"),
    "%%%",
  ]) {
    const r = await http(app.url, "GET", `/api/loans?cursor=${encodeURIComponent(cursor)}`);
    assert.is(r.status, 400, cursor);
    assert.is(r.body.status, 400);
  }
});

test.run();
