// test/run.ts: process-group service-light
/** The prepared-statement runner: statements built from query builders, named, run prepared, released. */
import knexFactory from "knex";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { intParam, param, prepare, runPrepared } from "../../../service/src/data/prepared.js";
import { createDb } from "../../../service/src/db.js";

const test = suite("data/prepared");
const pg = knexFactory({ client: "pg" });

test("prepare() turns placeholders into $n in order and lays out values by name, constants kept", () => {
  const q = pg("loans")
    .select("id")
    .where("status", "approved")
    .where("borrower_id", param("b"))
    .where("currency", param("c"))
    .limit(intParam("limit"));
  const s = prepare<"b" | "c" | "limit">("t_one", q);
  assert.is(s.name, "t_one");
  assert.is(s.text, 'select "id" from "loans" where "status" = $1 and "borrower_id" = $2 and "currency" = $3 limit $4');
  assert.equal(s.params, ["b", "c", "limit"]);
  assert.equal(s.values({ c: "EUR", b: "x", limit: 21 }), ["approved", "x", "EUR", 21]);
  // A parameter left out is NULL, never a placeholder's text.
  assert.equal(s.values({ b: "x" } as never), ["approved", "x", null, null]);
});

test("a parameter used twice takes its value at both places", () => {
  const s = prepare("t_twice", pg("loans").select("id").where("id", param("id")).orWhere("borrower_id", param("id")));
  assert.equal(s.params, ["id"]);
  assert.equal(s.values({ id: "a" }), ["a", "a"]);
});

test("intParam() gives one number per name", () => {
  assert.is(intParam("n1"), intParam("n1"));
  assert.is.not(intParam("n1"), intParam("n2"));
});

test("runPrepared runs the statement under its name (prepared on the connection) and releases the connection", async () => {
  const url = process.env.DATABASE_URL;
  if (!url) throw new Error("DATABASE_URL is not set: run the tests with `npm test`");
  // One connection: a connection not released would make the next call wait out the acquire timeout.
  const db = createDb({
    databaseUrl: url,
    dbPoolMin: 0,
    dbPoolMax: 1,
    dbAcquireTimeoutMs: 2000,
    dbStatementTimeoutMs: 5000,
  });
  try {
    const add = prepare<"a">("t_add_one", db.select(db.raw("?::int + 1 AS n", [param("a")])));
    for (let i = 0; i < 3; i++) assert.equal(await runPrepared(db, add, { a: i }), [{ n: i + 1 }]);
    const failing = prepare("t_fails", db.select(db.raw("1 / 0 AS n")));
    try {
      await runPrepared(db, failing);
      assert.unreachable("division by zero");
    } catch (err) {
      assert.match((err as Error).message, /division by zero/);
    }
    const names = prepare("t_names", db("pg_prepared_statements").select("name").orderBy("name"));
    const rows = await runPrepared<{ name: string }>(db, names);
    assert.ok(
      rows.some((r) => r.name === "t_add_one"),
      JSON.stringify(rows),
    );
  } finally {
    await db.destroy();
  }
});

test.run();
