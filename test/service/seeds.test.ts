// test/run.ts: process-group service-light
/** The seed: the original's five loans, through the Loan model, idempotent (a second run inserts nothing). */
import knexFactory from "knex";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { SEED_LOANS, seedLoans } from "../../service/seeds/loans.js";
import { migrateLatest } from "../../service/src/db.js";
import { migrationSource } from "../../service/src/migrations.js";

const test = suite("seeds");

test("into an empty database: 5 inserted, then 0; the rows are the original's", async () => {
  const url = process.env.DATABASE_URL;
  if (!url) throw new Error("DATABASE_URL is not set: run the tests with `npm test`");
  const admin = knexFactory({ client: "pg", connection: url });
  const name = `seed_${process.pid}_${Date.now()}`;
  await admin.raw(`CREATE DATABASE ${name}`);
  const target = new URL(url);
  target.pathname = `/${name}`;
  const db = knexFactory({ client: "pg", connection: target.toString(), migrations: { migrationSource } });
  try {
    await migrateLatest(db);
    assert.is(await seedLoans(db), 5);
    assert.is(await seedLoans(db), 0);
    const rows = await db("loans").select("id", "borrower_id", "amount", "currency", "status").orderBy("id");
    assert.equal(
      rows,
      SEED_LOANS.map(({ id, borrower_id, amount, currency, status }) => ({
        id,
        borrower_id,
        amount,
        currency,
        status,
      })),
    );
  } finally {
    await db.destroy();
    await admin.raw(`DROP DATABASE IF EXISTS ${name}`);
    await admin.destroy();
  }
});

test("the seed meets the Loan model's schema", async () => {
  const { Loan } = await import("../../service/src/models/Loan.js");
  for (const loan of SEED_LOANS) Loan.fromJson({ ...loan });
});

test.run();
