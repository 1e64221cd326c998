// test/run.ts: process-group service-light
/** Idempotency-Key on POST /api/loans: replays, mismatched bodies, concurrent retries. */
import { randomUUID } from "node:crypto";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { http, startApp, type TestApp, uniqueBorrower } from "../support/app.js";

const test = suite<{ app: TestApp }>("idempotency", {} as { app: TestApp });
test.before(async (ctx) => {
  ctx.app = await startApp();
});
test.after(async (ctx) => {
  await ctx.app.close();
});

const countFor = async (app: TestApp, borrower: string) =>
  Number(((await app.db("loans").where({ borrower_id: borrower }).count({ n: "*" })) as [{ n: string }])[0].n);

test("a retry with the same key and body returns the original 201 response and creates nothing", async ({ app }) => {
  const borrower = uniqueBorrower("idem");
  const key = randomUUID();
  const body = { borrower_id: borrower, amount: "250.00", currency: "USD" };
  const first = await http(app.url, "POST", "/api/loans", { json: body, headers: { "idempotency-key": key } });
  assert.is(first.status, 201);
  // The loan moves on; the replay still returns the original response.
  await http(app.url, "PATCH", `/api/loans/${first.body.id}`, { json: { status: "approved" } });
  const again = await http(app.url, "POST", "/api/loans", { json: body, headers: { "idempotency-key": key } });
  assert.is(again.status, 201);
  assert.equal(again.body, first.body);
  assert.is(again.headers.get("idempotent-replayed"), "true");
  assert.is(await countFor(app, borrower), 1);
});

test("the same request written differently (number vs string, case) is the same request", async ({ app }) => {
  const borrower = uniqueBorrower("idem");
  const key = randomUUID();
  const first = await http(app.url, "POST", "/api/loans", {
    json: { borrower_id: borrower, amount: 250, currency: "usd" },
    headers: { "idempotency-key": key },
  });
  const again = await http(app.url, "POST", "/api/loans", {
    json: { borrower_id: borrower, amount: "250.00", currency: "USD", ignored: true },
    headers: { "idempotency-key": key },
  });
  assert.is(again.status, 201);
  assert.is(again.body.id, first.body.id);
});

test("the same key with a different body is rejected with 422 and creates nothing", async ({ app }) => {
  const borrower = uniqueBorrower("idem");
  const key = randomUUID();
  await http(app.url, "POST", "/api/loans", {
    json: { borrower_id: borrower, amount: 1, currency: "USD" },
    headers: { "idempotency-key": key },
  });
  const other = await http(app.url, "POST", "/api/loans", {
    json: { borrower_id: borrower, amount: 2, currency: "USD" },
    headers: { "idempotency-key": key },
  });
  assert.is(other.status, 422);
  assert.is(other.headers.get("content-type"), "application/problem+json; charset=utf-8");
  assert.is(other.body.status, 422);
  assert.is(await countFor(app, borrower), 1);
});

test("without a key, two identical requests create two loans", async ({ app }) => {
  const borrower = uniqueBorrower("idem");
  const body = { borrower_id: borrower, amount: 1, currency: "USD" };
  await http(app.url, "POST", "/api/loans", { json: body });
  await http(app.url, "POST", "/api/loans", { json: body });
  assert.is(await countFor(app, borrower), 2);
});

test("ten concurrent requests with one key create exactly one loan and all answer with it", async ({ app }) => {
  for (let round = 0; round < 3; round++) {
    const borrower = uniqueBorrower("race");
    const key = randomUUID();
    const body = { borrower_id: borrower, amount: "99.99", currency: "GBP" };
    const results = await Promise.all(
      Array.from({ length: 10 }, () =>
        http(app.url, "POST", "/api/loans", { json: body, headers: { "idempotency-key": key } }),
      ),
    );
    assert.equal(
      results.map((r) => r.status),
      Array(10).fill(201),
    );
    assert.is(new Set(results.map((r) => r.body.id)).size, 1);
    assert.is(await countFor(app, borrower), 1);
  }
});

test("a key is kept at least 24 hours: the row records when it was made and the purge spares younger keys", async ({
  app,
}) => {
  const { purgeIdempotencyKeys } = await import("../../service/src/data/idempotency.js");
  const borrower = uniqueBorrower("ttl");
  const key = randomUUID();
  const body = { borrower_id: borrower, amount: 3, currency: "USD" };
  const first = await http(app.url, "POST", "/api/loans", { json: body, headers: { "idempotency-key": key } });
  await app
    .db("idempotency_keys")
    .where({ key })
    .update({ created_at: app.db.raw("now() - interval '23 hours'") });
  await purgeIdempotencyKeys(app.db, 24);
  const replay = await http(app.url, "POST", "/api/loans", { json: body, headers: { "idempotency-key": key } });
  assert.is(replay.body.id, first.body.id);
  await app
    .db("idempotency_keys")
    .where({ key })
    .update({ created_at: app.db.raw("now() - interval '25 hours'") });
  assert.ok((await purgeIdempotencyKeys(app.db, 24)) >= 1);
  const fresh = await http(app.url, "POST", "/api/loans", { json: body, headers: { "idempotency-key": key } });
  assert.is.not(fresh.body.id, first.body.id);
});

test.run();
