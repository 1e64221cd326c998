// test/run.ts: process-group service-light
/** Statistics: the shaping of the GROUPING SETS rows, and the store's answer against a full scan. */
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { StatsStore, shapeStats } from "../../../service/src/data/stats.js";
import { startApp, type TestApp } from "../../support/app.js";

const test = suite<{ app: TestApp }>("data/stats", {} as { app: TestApp });
test.before(async (ctx) => {
  ctx.app = await startApp();
});
test.after(async (ctx) => {
  await ctx.app.close();
});

test("shapeStats: the grand total row, per-status and per-currency rows; empty groups left out", () => {
  const row = (status: string | null, currency: string | null, gs: number, gc: number, n: string, total = "0") => ({
    status,
    currency,
    gs,
    gc,
    n,
    total,
    avg: "0",
  });
  const stats = shapeStats([
    { ...row(null, null, 1, 1, "3", "30.50"), avg: "10.17" },
    row("pending", null, 0, 1, "2"),
    row("approved", null, 0, 1, "1"),
    row("repaid", null, 0, 1, "0"),
    row(null, "USD", 1, 0, "3"),
  ]);
  assert.equal(stats, {
    total_loans: 3,
    total_amount: 30.5,
    avg_amount: 10.17,
    by_status: { pending: 2, approved: 1 },
    by_currency: { USD: 3 },
  });
  assert.equal(shapeStats([]), { total_loans: 0, total_amount: 0, avg_amount: 0, by_status: {}, by_currency: {} });
});

test("the maintained aggregates equal a full scan of loans", async ({ app }) => {
  const stats = await new StatsStore(app.db).get();
  const scan = await app.db.raw(`SELECT count(*)::int AS n, coalesce(sum(amount), 0) AS total FROM loans`);
  assert.is(stats.total_loans, scan.rows[0].n);
  assert.is(stats.total_amount, Number(scan.rows[0].total));
  const byStatus = await app.db.raw("SELECT status, count(*)::int AS n FROM loans GROUP BY status");
  assert.equal(
    stats.by_status,
    Object.fromEntries(byStatus.rows.map((r: { status: string; n: number }) => [r.status, r.n])),
  );
});

test.run();
