// test/run.ts: process-group service-light
/** Migrations are discovered from the folder: a new file applies with no list to edit, compiled or not. */
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import knexFactory from "knex";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { discoverMigrations, MIGRATIONS_DIR, migrationSourceFor } from "../../service/src/migrations.js";

const test = suite("migrations");

test("every migration file of service/migrations is discovered, in timestamp order", () => {
  const files = readdirSync(MIGRATIONS_DIR).filter((f) => /^\d{14}_.*\.ts$/.test(f));
  assert.ok(files.length >= 3);
  assert.equal([...discoverMigrations().keys()], files.map((f) => f.replace(/\.ts$/, "")).sort());
});

test("compiled files (.js) count, declarations, maps and other files do not; a name given twice is an error", () => {
  const dir = mkdtempSync(join(tmpdir(), "migrations-"));
  try {
    for (const f of ["20260101000000_a.js", "20260101000000_a.d.ts", "20260101000000_a.js.map", "README.md"]) {
      writeFileSync(join(dir, f), "");
    }
    writeFileSync(join(dir, "20250101000000_b.js"), "");
    const url = pathToFileURL(`${dir}/`);
    assert.equal([...discoverMigrations(url).keys()], ["20250101000000_b", "20260101000000_a"]);
    writeFileSync(join(dir, "20260101000000_a.ts"), "");
    assert.throws(() => discoverMigrations(url), /two files for migration 20260101000000_a/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a new file dropped in the folder is applied by migrate.latest with nothing else edited", async () => {
  const url = process.env.DATABASE_URL;
  if (!url) throw new Error("DATABASE_URL is not set: run the tests with `npm test`");
  const dir = mkdtempSync(join(tmpdir(), "migrations-"));
  const admin = knexFactory({ client: "pg", connection: url });
  const name = `mig_${process.pid}_${Date.now()}`;
  await admin.raw(`CREATE DATABASE ${name}`);
  const target = new URL(url);
  target.pathname = `/${name}`;
  const db = knexFactory({
    client: "pg",
    connection: target.toString(),
    migrations: { migrationSource: migrationSourceFor(pathToFileURL(`${dir}/`)) },
  });
  try {
    const migration = (table: string) =>
      `export async function up(knex) { await knex.raw("CREATE TABLE ${table} (id int)"); }\n` +
      `export async function down(knex) { await knex.raw("DROP TABLE ${table}"); }\n`;
    writeFileSync(join(dir, "20260101000000_first.mjs"), migration("first_t"));
    assert.equal((await db.migrate.latest())[1], ["20260101000000_first"]);
    writeFileSync(join(dir, "20260102000000_second.ts"), migration("second_t"));
    const fresh = knexFactory({
      client: "pg",
      connection: target.toString(),
      migrations: { migrationSource: migrationSourceFor(pathToFileURL(`${dir}/`)) },
    });
    try {
      assert.equal((await fresh.migrate.latest())[1], ["20260102000000_second"]);
      const tables = await fresh.raw("SELECT to_regclass('second_t') AS t");
      assert.is(tables.rows[0].t, "second_t");
    } finally {
      await fresh.destroy();
    }
  } finally {
    await db.destroy();
    await admin.raw(`DROP DATABASE IF EXISTS ${name}`);
    await admin.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
